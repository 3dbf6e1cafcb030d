"""Contract tests over the registries: every model x every distiller (including ones added
later) passes the shipped kit (``recdistill.testing``: trains on tiny data, prints its formula,
round-trips its state, resumes in the middle of a refresh period bitwise), every model is a
teacher for every distiller, and every method still computes what it computed when its golden
values were stored (``tests/golden/distillers.json``; regenerate deliberately with
``python tests/make_golden.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from contract import (
    FIRST_KD_EPOCH,
    build,
    dataset,
    first_batch,
    golden_names,
    golden_record,
    load_roles,
    methods,
    small_params,
)
from recdistill.models import MODELS
from recdistill.testing import check_distiller, toy_batch

GOLDEN = Path(__file__).resolve().parent / "golden" / "distillers.json"
PAIRS = [(m, d) for m in MODELS.names() for d in methods()]


@pytest.mark.parametrize(("model", "method"), PAIRS)
def test_every_model_and_distiller_passes_the_kit(model: str, method: str, tmp_path: Path) -> None:
    """``recdistill.testing.check_distiller``: trains, prints its formula, logs its KD terms from
    its first distilling epoch, round-trips its state, resumes mid-period bitwise (BD refreshes
    at epochs 1, 3 with warm-up 1 and period 2: stopping after 2 epochs stops inside a period)."""
    check_distiller(method, small_params(method), model, tmp_path)


@pytest.mark.parametrize("method", golden_names())
def test_golden_values(method: str) -> None:
    stored = json.loads(GOLDEN.read_text())
    assert method in stored, f"no golden values for {method!r}: run `python tests/make_golden.py` and review"
    want, got = stored[method], golden_record(method)
    assert got["formulas"] == want["formulas"]
    assert got["targets_sha256"] == want["targets_sha256"], f"{method}: the first refresh's draws changed"
    assert got["losses"].keys() == want["losses"].keys()
    for name, parts in want["losses"].items():
        assert got["losses"][name] == pytest.approx(parts, rel=1e-5), (
            f"{method}: loss terms of {name} changed"
        )


@pytest.mark.parametrize(("model", "method"), PAIRS)
def test_every_model_is_a_teacher_for_every_distiller(model: str, method: str) -> None:
    """The frozen teachers (and BD's teacher) of architecture ``model``: the first distilling
    epoch's draws and losses are finite."""
    ds = dataset()
    d = build(method, ds, teacher_arch=model, model=model if not load_roles(method).teachers else "bpr")
    for e in range(FIRST_KD_EPOCH + 1):
        d.on_epoch_start(e)
    for name in d.models:
        loss, parts = d.loss(
            name,
            first_batch(ds) if d.models[name].batch_unit == "interaction" else toy_batch(d.models[name], ds),
            FIRST_KD_EPOCH,
        )
        assert torch.isfinite(loss) and len(parts) >= 2, (name, parts)
