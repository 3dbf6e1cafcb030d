"""Shared fixtures: the real-data directory and a tiny synthetic dataset built without the
data module (so model, rank and loss tests do not depend on the readers)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from recdistill.data.dataset import Dataset
from recdistill.testing import toy_dataset


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


#: the kit's toy data (``recdistill.testing.toy_dataset``), under the name the tests use
make_toy_dataset = toy_dataset


@pytest.fixture(name="toy_dataset")
def toy_dataset_fixture() -> Dataset:
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
