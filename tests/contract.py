"""Shared set-up of the contract and golden tests: every registered distiller on tiny data.

``SMALL`` shrinks the hyperparameters a method has (only the keys its config defines are used),
so a method added later runs here with its own defaults for everything else.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np
import torch

from conftest import make_toy_dataset
from recdistill.data.dataset import Dataset
from recdistill.distill import load_distillers
from recdistill.distill.base import Parts
from recdistill.distill.teacher import ModelTeacher
from recdistill.models import build_model
from recdistill.models.base import Batch

SMALL: dict[str, Any] = {
    "warmup_epochs": 1,
    "period": 2,
    "n_samples": 2,
    "teacher_dim": 6,
    "student_dim": 3,
    "n_top": 20,
    "item_n_top": 20,
    "n_interesting": 5,
    "item_n_interesting": 5,
    "n_uninteresting": 5,
    "item_n_uninteresting": 5,
    "rank_temperature": 1.0,
    "dynamic_start_epoch": 1,
    "n_under": 5,
    "n_over": 5,
    "item_n_under": 5,
    "item_n_over": 5,
    "k": 5,
    "l": 4,
    "mx_k": 10,
}
#: the first epoch at which every method distils with SMALL (BD: after one warm-up epoch)
FIRST_KD_EPOCH = 1


#: golden variants: name -> (registered method, params over SMALL); "dcd(item_side)" is DCD's
#: objective before issue #33 (Eq. 9 plus IR-RRD), whose golden values it kept from then
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "dcd(item_side)": ("dcd", {"item_side": True}),
    "dcd(teacher_top)": ("dcd", {"candidates": "teacher_top", "n_candidates": 12}),
    "rrd+ir-rrd(item_rows=lists)": ("rrd+ir-rrd", {"item_rows": "lists"}),
}


def methods() -> list[str]:
    return load_distillers().names()


def golden_names() -> list[str]:
    return methods() + list(VARIANTS)


def dataset() -> Dataset:
    return make_toy_dataset(n_users=24, n_items=36, density=0.2, n_candidates=8, seed=3)


def small_params(method: str) -> dict[str, Any]:
    method, extra = VARIANTS.get(method, (method, {}))
    cls = load_distillers().get(method)
    names = {f.name for f in dataclasses.fields(cls.Config)}
    return {**{k: v for k, v in SMALL.items() if k in names}, **extra}


def teacher_model(ds: Dataset, model: str = "bpr", seed: int = 7) -> Any:
    torch.manual_seed(seed)
    return build_model(model, ds, dim=6)


def _spread(m: Any, seed: int) -> Any:
    """Weights ~ N(0, 0.5) so that logits (and every loss term) are far from their values at 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return m


def load_roles(method: str) -> Any:
    """The :class:`~recdistill.distill.base.Roles` of ``method`` (or a :data:`VARIANTS` entry)."""
    cls = load_distillers().get(VARIANTS.get(method, (method, {}))[0])
    return cls.roles(cls.build_config(small_params(method)))


def build(
    method: str,
    ds: Dataset,
    model: str = "bpr",
    seed: int = 0,
    spread: bool = False,
    teacher_arch: str = "bpr",
) -> Any:
    """The distiller ``method`` through its roles (the method protocol): each trained model of
    architecture ``model`` (dim 6 for a role named ``teacher``, else 3), each frozen teacher a
    random ``teacher_arch`` model of dim 6 (a different one per role). ``spread``: N(0, 0.5)
    weights. ``method`` may name a :data:`VARIANTS` entry."""
    cls = load_distillers().get(VARIANTS.get(method, (method, {}))[0])
    params = cls.build_config(small_params(method))
    roles = cls.roles(params)
    torch.manual_seed(seed)
    fix = (lambda m, k: _spread(m, seed + k)) if spread else (lambda m, k: m)
    models = {r: build_model(model, ds, dim=6 if r == "teacher" else 3) for r in roles.models}
    models = {r: fix(m, 1 if r == "teacher" else 2) for r, m in models.items()}
    teachers = {
        r: ModelTeacher(fix(teacher_model(ds, teacher_arch, seed=7 + i), 1 + 10 * i))
        for i, r in enumerate(roles.teachers)
    }
    return cls.build(Parts(models, teachers, ds, params, seed=seed))


def first_batch(ds: Dataset) -> Batch:
    """A fixed interaction batch: the first 16 training interactions, fixed negatives."""
    users = torch.from_numpy(np.repeat(np.arange(ds.n_users), np.diff(ds.train.indptr))[:16])
    pos = torch.from_numpy(ds.train.indices[:16].astype(np.int64))
    neg = torch.from_numpy(ds.candidates[users.numpy(), :1].astype(np.int64))  # never observed
    return Batch(users, pos, neg, torch.arange(16))


def draws_hash(targets: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(targets):
        t = targets[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def golden_record(method: str) -> dict[str, Any]:
    """First-distilling-epoch targets hash and the first batch's loss terms, per trained model."""
    ds = dataset()
    d = build(method, ds, spread=True)
    for e in range(FIRST_KD_EPOCH + 1):
        d.on_epoch_start(e)
    batch = first_batch(ds)
    losses = {}
    for name in d.models:
        _, parts = d.loss(name, batch, FIRST_KD_EPOCH)
        losses[name] = {k: float(v) for k, v in parts.items()}
    return {
        "targets_sha256": draws_hash(d.targets()),
        "losses": losses,
        "formulas": {n: d.formula(n) for n in d.models},
    }
