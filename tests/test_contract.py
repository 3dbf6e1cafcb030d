"""Contract tests over the registries: every model x every distiller (including ones added
later) trains on tiny data, prints its formula, round-trips its state, resumes in the middle of a
refresh period bitwise, and still computes what it computed when its golden values were stored
(``tests/golden/distillers.json``; regenerate deliberately with ``python tests/make_golden.py``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from contract import (
    FIRST_KD_EPOCH,
    build,
    dataset,
    golden_names,
    golden_record,
    methods,
    run_config,
    teacher_model,
)
from recdistill.models import MODELS
from recdistill.runs import distill_run

GOLDEN = Path(__file__).resolve().parent / "golden" / "distillers.json"
PAIRS = [(m, d) for m in MODELS.names() for d in methods()]


def _run(method: str, model: str, out: Path | None, **kw):  # type: ignore[no-untyped-def]
    ds = dataset()
    teacher = None if "bd" == method else teacher_model(ds)
    lines: list[str] = []
    res = distill_run(
        run_config(method, model, **kw.pop("train", {})),
        out,
        dataset=ds,
        teacher=teacher,
        log=lines.append,
        **kw,
    )
    return res, lines


@pytest.mark.parametrize(("model", "method"), PAIRS)
def test_every_model_and_distiller_trains_and_prints_its_formula(
    model: str, method: str, tmp_path: Path
) -> None:
    (trainer, d, metrics), lines = _run(method, model, tmp_path / "run")
    assert trainer.epoch == 4 and "student" in metrics["models"]
    formulas = json.loads((tmp_path / "run" / "distill.json").read_text())["formulas"]
    assert set(formulas) == set(d.models)
    for name, f in formulas.items():
        assert f.startswith(f"L_{name} = ") and "L_base" in f and f in lines[0]
        assert len(f.split(" + ")) >= 2, f  # the distillation term(s), even before the first KD epoch
    assert (tmp_path / "run" / "student.pt").is_file()
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    kd = [set(r["loss"]["student"]) - {"loss", "base"} for r in log]  # the KD terms of each epoch
    assert all(kd[e] for e in range(FIRST_KD_EPOCH, 4)), kd


@pytest.mark.parametrize(("model", "method"), PAIRS)
def test_state_dict_round_trip(model: str, method: str) -> None:
    ds = dataset()
    a = build(method, ds, model)
    for e in range(FIRST_KD_EPOCH + 1):
        a.on_epoch_start(e)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = build(method, ds, model)
    b.load_state_dict(torch.load(buf, weights_only=True))  # plain tensors and numbers only
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        x, y = sa[k], sb[k]
        if isinstance(x, dict):
            assert x.keys() == y.keys() and all(torch.equal(x[j], y[j]) for j in x)
        elif isinstance(x, torch.Tensor):
            assert torch.equal(x, y)
        else:
            assert x == y
    # the next epoch draws the same after the round trip
    a.on_epoch_start(FIRST_KD_EPOCH + 1)
    b.on_epoch_start(FIRST_KD_EPOCH + 1)
    ta, tb = a.targets(), b.targets()
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.mark.parametrize(("model", "method"), PAIRS)
def test_resume_in_the_middle_of_a_refresh_period_is_bitwise(model: str, method: str, tmp_path: Path) -> None:
    """BD refreshes at epochs 1, 3 (warm-up 1, period 2): stopping after 2 epochs stops inside
    the first period."""
    (full_tr, _, full), _ = _run(method, model, tmp_path / "full", train={"epochs": 5})
    ds = dataset()
    teacher = None if method == "bd" else teacher_model(ds)
    cfg = run_config(method, model, epochs=5)
    distill_run(cfg, tmp_path / "cut", dataset=ds, teacher=teacher, log=lambda s: None, stop_after=2)
    assert not (tmp_path / "cut" / "metrics.json").exists()
    (res_tr, _, resumed) = distill_run(
        cfg, tmp_path / "cut", dataset=ds, teacher=teacher, resume=True, log=lambda s: None
    )
    for name in full_tr.models:
        for (k, v), w in zip(
            full_tr.models[name].state_dict().items(), res_tr.models[name].state_dict().values()
        ):
            assert torch.equal(v, w), (name, k)
    assert full["models"] == resumed["models"]


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
