"""Shared fixtures: the real-data directory and a tiny synthetic dataset built without the
data module (so model, rank and loss tests do not depend on the readers)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recdistill.data.dataset import Dataset


def _default_data_dir() -> Path:
    env = os.environ.get("RECDISTILL_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets (``RECDISTILL_DATA`` or ``../shared/data``); skip if absent."""
    d = _default_data_dir()
    if not d.is_dir():
        pytest.skip(f"real data directory not found: {d}")
    return d


def make_toy_dataset(
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
    for u in range(n_users):  # fine in a test fixture: tiny data
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


@pytest.fixture
def toy_dataset() -> Dataset:
    return make_toy_dataset()


def run_bd(
    config,
    bd,
    out_dir=None,
    dataset=None,
    teacher_run=None,
    student_run=None,
    teacher_dim=None,
    student_dim=None,
    resume=False,
    stop_after=None,
):
    """BD through the run layer (``recdistill.runs.distill_run``) from a ``BDConfig``; explicit
    sizes override the config's."""
    import dataclasses

    from recdistill.runs import distill_run

    params = dataclasses.asdict(bd)
    if teacher_dim is not None:
        params["teacher_dim"] = teacher_dim
    if student_dim is not None:
        params["student_dim"] = student_dim
    cfg = dataclasses.replace(config, distill=dataclasses.replace(config.distill, method="bd", params=params))
    return distill_run(
        cfg,
        out_dir,
        dataset=dataset,
        teacher=teacher_run,
        student=student_run,
        resume=resume,
        log=lambda s: None,
        stop_after=stop_after,
    )


def write_log_csv(path: Path, n_users: int, n_items: int, per_user: int, seed: int = 0) -> Path:
    """A CSV interaction log ``user,item,ts`` of ``n_users`` users (``u0``...) with ``per_user``
    distinct random items (``i0``...) each, in time order."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        rows += [f"u{u},i{i},{t}" for t, i in enumerate(items)]
    path.write_text("user,item,ts\n" + "\n".join(rows) + "\n")
    return path
