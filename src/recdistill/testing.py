"""The contract suites, shipped: a model or a distillation method of your own (registered with
``@register_model`` / ``@DISTILLERS.register``) runs the checks that every built-in one passes.

>>> from recdistill.testing import check_model, check_distiller  # doctest: +SKIP
>>> check_model("my-model")
>>> check_distiller("my-method", params={"n_top": 10}, work_dir=tmp_path)

:func:`check_model`: shapes, ``score`` / ``score_users`` / ``score_pairs`` against ``score_all``,
a ranking pass (``Recommender.scoring``) scoring what a plain call scores, a finite loss with
gradients, a saved file that loads back to the same scores, and a loss that falls over a few
epochs. :func:`check_distiller`: trained through :func:`recdistill.runs.distill_run` from its
roles (random frozen teachers, a student of ``model``), its formula printed, distillation terms
logged from its first distilling epoch, its state round-tripping through a ``weights_only``
checkpoint with the same next draws, and a run stopped mid-way and resumed equal to the whole
run to the last bit. Each check raises ``AssertionError`` naming what broke. Everything runs on
:func:`toy_dataset` in a few seconds.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recdistill.config import make_config
from recdistill.data.dataset import Dataset
from recdistill.distill import load_distillers
from recdistill.distill.base import Parts
from recdistill.distill.teacher import ModelTeacher
from recdistill.models import build_model
from recdistill.models.base import Batch, Recommender
from recdistill.models.store import load_model, save_model
from recdistill.runs.distill import distill_run
from recdistill.train.trainer import BaseObjective, Trainer

__all__ = ["check_distiller", "check_model", "toy_batch", "toy_dataset"]


def toy_dataset(
    n_users: int = 30, n_items: int = 40, density: float = 0.15, n_candidates: int = 10, seed: int = 0
) -> Dataset:
    """Random implicit data with one valid and one test item per user and sampled candidates.

    Every user keeps at least 2 training items; held-out items and candidates are disjoint from
    the user's training items and from each other.
    """
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    valid = np.empty(n_users, dtype=np.int64)
    test = np.empty(n_users, dtype=np.int64)
    cands = np.empty((n_users, n_candidates), dtype=np.int32)
    for u in range(n_users):  # tiny data: a loop is the obvious reference
        k = max(2, rng.binomial(n_items, density))
        items = rng.choice(n_items, size=k + 2 + n_candidates, replace=False)
        rows += [u] * k
        cols += items[:k].tolist()
        valid[u], test[u] = items[k], items[k + 1]
        cands[u] = items[k + 2 :]
    train = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, n_items))
    return Dataset(
        name="toy",
        n_users=n_users,
        n_items=n_items,
        train=train,
        valid_items=valid,
        test_items=test,
        candidates=cands,
        user_ids=np.arange(n_users),
        item_ids=np.arange(n_items),
    )


def toy_batch(model: Recommender, ds: Dataset, rows: int = 8) -> Batch:
    """A fixed training batch of the model's kind: the first training interactions with one
    never-observed negative each (interaction models), or the first users with two negatives
    each (user-batched models)."""
    if model.batch_unit == "user":
        users = torch.arange(rows)
        neg = torch.from_numpy(ds.candidates[:rows, :2].astype(np.int64)).reshape(-1)  # (2 rows,)
        return Batch(users, None, neg, users, torch.arange(rows).repeat_interleave(2))
    users = torch.from_numpy(np.repeat(np.arange(ds.n_users), np.diff(ds.train.indptr))[:rows])
    pos = torch.from_numpy(ds.train.indices[:rows].astype(np.int64))
    neg = torch.from_numpy(ds.candidates[users.numpy(), :1].astype(np.int64))  # never observed
    return Batch(users, pos, neg, torch.arange(rows))


def _train_config(
    method: str = "", params: Mapping[str, Any] | None = None, model: str = "bpr", **train: Any
) -> Any:
    return make_config(
        overrides={
            "data": {"name": "toy"},
            "model": {"name": model, "size": None, "dim": 3},
            "train": {
                "epochs": 4,
                "batch_size": 32,
                "progress": False,
                "ks": [5],
                "monitor": "H@5",
                "eval_protocol": "sampled",
                "patience": 100,
                **train,
            },
            "distill": {"method": method, "params": dict(params or {})},
        }
    )


def check_model(name: str, dim: int = 4, **kwargs: Any) -> None:
    """The model contract for the registered model ``name`` (constructor ``kwargs`` besides
    ``dim``); raises ``AssertionError`` naming what broke."""
    ds = toy_dataset()
    torch.manual_seed(0)
    m = build_model(name, ds, dim=dim, **kwargs).eval()
    users = torch.arange(ds.n_users)
    with torch.no_grad():
        full = m.score_all(users)
        assert full.shape == (ds.n_users, ds.n_items), f"{name}: score_all gave {tuple(full.shape)}"
        items = torch.from_numpy(ds.candidates.astype(np.int64))  # (n_users, c)
        torch.testing.assert_close(
            m.score(users, items), full.gather(1, items), msg=f"{name}: score != score_all"
        )
        it = torch.tensor([0, 5])
        us = torch.tensor([[1, 2, 3], [4, 5, 6]])
        torch.testing.assert_close(m.score_users(it, us), full[us, it[:, None]], msg=f"{name}: score_users")
        rows, cols = torch.tensor([0, 0, 2]), torch.tensor([1, 7, 3])
        torch.testing.assert_close(
            m.score_pairs(users[:3], rows, cols), full[rows, cols], msg=f"{name}: score_pairs != score_all"
        )
        with m.scoring():  # a ranking pass scores what a plain call scores
            torch.testing.assert_close(m.score_all(users), full, msg=f"{name}: scoring() changed the scores")
    m.train()
    loss = m.base_loss(toy_batch(m, ds))
    assert loss.dim() == 0 and math.isfinite(float(loss.detach())), (
        f"{name}: base_loss is not a finite scalar: {loss}"
    )
    loss.backward()
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in m.parameters()), (
        f"{name}: base_loss gives no gradient"
    )
    with tempfile.TemporaryDirectory() as tmp:
        save_model(m, Path(tmp) / "m.pt")
        back = load_model(Path(tmp) / "m.pt", ds).eval()
        with torch.no_grad():
            torch.testing.assert_close(
                back.score_all(users), m.eval().score_all(users), msg=f"{name}: reload"
            )
    torch.manual_seed(0)
    m = build_model(name, ds, dim=dim, **kwargs)
    tr = Trainer({"m": m}, BaseObjective({"m": m}), ds, _train_config(model=name, lr=0.02, batch_size=16))
    first = tr.train_epoch(0)["m"]["loss"]
    last = first
    for e in range(1, 6):
        last = tr.train_epoch(e)["m"]["loss"]
    assert math.isfinite(first) and last < first, f"{name}: the loss did not fall ({first} -> {last})"


def _assert_same_state(x: Any, y: Any, name: str, where: str = "state") -> None:
    """Equal nested state (dicts, tensors, numbers, generator states)."""
    if isinstance(x, dict):
        assert isinstance(y, dict) and x.keys() == y.keys(), f"{name}: {where} keys differ"
        for k in x:
            _assert_same_state(x[k], y[k], name, f"{where}.{k}")
    elif isinstance(x, torch.Tensor):
        assert isinstance(y, torch.Tensor) and torch.equal(x, y), (
            f"{name}: {where} differs after a round trip"
        )
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y), f"{name}: {where} length differs"
        for i, (u, v) in enumerate(zip(x, y)):
            _assert_same_state(u, v, name, f"{where}[{i}]")
    else:
        assert x == y, f"{name}: {where} differs after a round trip ({x!r} != {y!r})"


def _sources(cls: Any, params: Any, ds: Dataset) -> dict[str, Any]:
    """A random BPR teacher (dim 6) per frozen role of the method."""
    out = {}
    for i, role in enumerate(cls.roles(params).teachers):
        torch.manual_seed(7 + i)
        out[role] = build_model("bpr", ds, dim=6)
    return out


def check_distiller(
    name: str,
    params: Mapping[str, Any] | None = None,
    model: str = "bpr",
    work_dir: str | Path | None = None,
    first_kd_epoch: int | None = None,
) -> None:
    """The method contract for the registered distiller ``name`` with ``params`` (small enough
    for :func:`toy_dataset`: 30 users, 40 items) and a student of ``model``; runs in
    ``work_dir`` (default: a temporary folder). ``first_kd_epoch``: the first epoch with
    distillation terms (default: the method's ``kd_start``)."""
    with tempfile.TemporaryDirectory() as tmp:
        _check_distiller(name, dict(params or {}), model, Path(work_dir or tmp), first_kd_epoch)


def _check_distiller(name: str, params: dict[str, Any], model: str, out: Path, kd_epoch: int | None) -> None:
    cls = load_distillers().get(name)
    conf = cls.build_config(params)
    first = cls.kd_start(conf) if kd_epoch is None else kd_epoch
    assert first < 4, f"{name}: the check trains 4 epochs, the method distils from epoch {first}"
    ds = toy_dataset(n_users=24, n_items=36, density=0.2, n_candidates=8, seed=3)

    # 1. trains through the run layer, prints its formula, logs its KD terms
    lines: list[str] = []
    trainer, d, metrics = distill_run(
        _train_config(name, params, model),
        out / "run",
        dataset=ds,
        sources=_sources(cls, conf, ds),
        log=lines.append,
    )
    assert trainer.epoch == 4 and metrics["models"], f"{name}: did not train 4 epochs"
    formulas = json.loads((out / "run" / "distill.json").read_text())["formulas"]
    assert set(formulas) == set(d.models), (
        f"{name}: formulas for {sorted(formulas)}, models {sorted(d.models)}"
    )
    for n, f in formulas.items():
        assert f.startswith(f"L_{n} = ") and "L_base" in f and f in lines[0], f"{name}: formula {f!r}"
        assert len(f.split(" + ")) >= 2, f"{name}: formula {f!r} has no distillation term"
    log = [json.loads(x) for x in (out / "run" / "log.jsonl").read_text().splitlines()]
    for n in d.models:
        kd = [set(r["loss"][n]) - {"loss", "base"} for r in log]
        assert all(kd[e] for e in range(first, 4)), (
            f"{name}: {n} has no distillation term in some epoch: {kd}"
        )

    # 2. its state round-trips through a weights_only checkpoint, with the same next draws
    def built() -> Any:
        torch.manual_seed(0)
        roles = cls.roles(conf)
        models = {r: build_model(model, ds, dim=6 if r == "teacher" else 3) for r in roles.models}
        teachers = {r: ModelTeacher(t) for r, t in _sources(cls, conf, ds).items()}
        return cls.build(Parts(models, teachers, ds, conf, seed=0))

    a, b = built(), built()
    for e in range(first + 1):
        a.on_epoch_start(e)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    _assert_same_state(a.state_dict(), b.state_dict(), name)
    a.on_epoch_start(first + 1)
    b.on_epoch_start(first + 1)
    ta, tb = a.targets(), b.targets()
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta), (
        f"{name}: the draws after a state round trip differ"
    )

    # 3. a run stopped after 2 epochs and resumed equals the whole run, bit for bit
    cfg = _train_config(name, params, model, epochs=5)
    whole = distill_run(cfg, out / "whole", dataset=ds, sources=_sources(cls, conf, ds), log=lambda s: None)
    distill_run(
        cfg, out / "cut", dataset=ds, sources=_sources(cls, conf, ds), log=lambda s: None, stop_after=2
    )
    assert not (out / "cut" / "metrics.json").exists(), f"{name}: an interrupted run wrote metrics.json"
    resumed = distill_run(
        cfg, out / "cut", dataset=ds, sources=_sources(cls, conf, ds), resume=True, log=lambda s: None
    )
    for n in whole[0].models:
        for (k, v), w in zip(
            whole[0].models[n].state_dict().items(), resumed[0].models[n].state_dict().values()
        ):
            assert torch.equal(v, w), f"{name}: resumed {n}.{k} differs from the whole run's"
    assert whole[2]["models"] == resumed[2]["models"], f"{name}: resumed metrics differ from the whole run's"
