"""The method protocol (issue #35): a method declares its roles and builds itself from them, so a
method with two frozen teachers, defined here and nowhere else, runs through the API, the CLI and
an experiment spec; the API and the CLI make the same run from the same config; a speed knob
never changes a run's key; a distilled student is student-sized from the API as from the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from recdistill.cli import main
from recdistill.config import make_config
from recdistill.distill import load_distillers
from recdistill.distill.base import Distiller, Parts, Roles
from recdistill.errors import RecdistillError
from recdistill.experiment import Experiment, load_spec
from recdistill.models.base import Batch
from recdistill.runs import distill_run, train_run


@dataclass(frozen=True)
class MeanConfig:
    lambda_mean: float = 0.5
    chunk: int | None = None  # a speed knob (not read by this toy)


class MeanOfTeachers(Distiller):
    """Toy: the student's logits on the batch's items pulled to the mean of two teachers' logits."""

    name = "mean-of-teachers"
    Config = MeanConfig

    @classmethod
    def roles(cls, config: Any) -> Roles:
        return Roles(teachers=("teacher_a", "teacher_b"), models=("student",))

    @classmethod
    def build(cls, parts: Parts) -> Distiller:
        d = cls({"student": parts.models["student"]}, parts.dataset, parts.config, parts.device, parts.seed)
        d.teachers = dict(parts.teachers)  # type: ignore[attr-defined]
        return d

    def weights(self, name: str, epoch: int) -> tuple[float, dict[str, float]]:
        return 1.0, {"mean": self.config.lambda_mean}

    def kd_terms(self, name: str, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        assert batch.pos is not None and batch.neg is not None
        items = torch.cat([batch.pos[:, None], batch.neg.reshape(batch.n_rows, -1)], 1)  # (B, 1 + n)
        with torch.no_grad():
            target = sum(t.score(batch.users, items) for t in self.teachers.values()) / 2  # type: ignore[attr-defined]
        s = self.models["student"].score(batch.users, items)
        return {"mean": ((s - target) ** 2).mean()}


@pytest.fixture
def toy_method(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Distiller]]:
    """The toy registered for one test (the registry's own ``register``, then taken out)."""
    registry = load_distillers()
    monkeypatch.setattr(registry, "_items", dict(registry._items))
    registry.register(MeanOfTeachers.name)(MeanOfTeachers)
    yield MeanOfTeachers


def _log(path: Path) -> Path:
    g = torch.Generator().manual_seed(0)
    lines = ["user,item"]
    for u in range(40):
        for i in torch.randperm(30, generator=g)[: 5 + u % 6].tolist():
            lines.append(f"u{u},i{i}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _base(log: Path) -> dict[str, Any]:
    return {
        "data": {"name": str(log), "n_candidates": 10},
        "model": {"name": "bpr", "size": None},
        "train": {
            "epochs": 2,
            "lr": 0.01,
            "ks": [5],
            "monitor": "H@5",
            "eval_protocol": "full",
            "progress": False,
        },
    }


def _teachers(tmp_path: Path, log: Path) -> dict[str, str]:
    out = {}
    for k, role in enumerate(("teacher_a", "teacher_b")):
        cfg = make_config(overrides={**_base(log), "model": {"name": "bpr", "size": None, "dim": 6 + 2 * k}})
        train_run(cfg, tmp_path / role, log=lambda s: None)
        out[role] = str(tmp_path / role)
    return out


def _student(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "student.pt", weights_only=True)["state_dict"]


def test_a_two_teacher_method_runs_through_the_api_the_cli_and_a_spec(toy_method, tmp_path: Path) -> None:
    log = _log(tmp_path / "log.csv")
    teachers = _teachers(tmp_path, log)
    base = _base(log)
    cfg = make_config(
        overrides={
            **base,
            "model": {"name": "bpr", "size": None, "dim": 3},
            "distill": {"method": toy_method.name, "teacher": teachers},
        }
    )
    _, d, metrics = distill_run(cfg, tmp_path / "api", log=lambda s: None)
    assert set(d.teachers) == {"teacher_a", "teacher_b"} and "student" in metrics["models"]  # type: ignore[attr-defined]
    record = json.loads((tmp_path / "api" / "distill.json").read_text())
    assert record["teacher_a"] == teachers["teacher_a"] and record["teacher_b"] == teachers["teacher_b"]
    assert record["formulas"]["student"] == "L_student = L_base + 0.5·L_mean"

    # the CLI, from the same config: the same run, to the last bit
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({**base, "model": {"name": "bpr", "dim": 3}}))
    args = [
        "distill",
        "--method",
        toy_method.name,
        "--config",
        str(tmp_path / "cfg.yaml"),
        "--out",
        str(tmp_path / "cli"),
    ]
    args += [f"--teacher={role}={path}" for role, path in teachers.items()]
    assert main(args) == 0
    api, cli = _student(tmp_path / "api"), _student(tmp_path / "cli")
    assert api.keys() == cli.keys() and all(torch.equal(api[k], cli[k]) for k in api)

    # a spec: the two teachers are runs of it, given by role
    spec = {
        "name": "two-teachers",
        "base": base,
        "seeds": [0],
        "runs": {
            "ta": {"set": {"model.dim": 6}},
            "tb": {"set": {"model.dim": 8}},
            "toy": {
                "method": toy_method.name,
                "teacher": {"teacher_a": "ta", "teacher_b": "tb"},
                "set": {"model.dim": 3},
            },
        },
        "tables": [{"name": "main", "metrics": ["H@5"], "rows": [{"label": "Toy", "run": "toy"}]}],
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    exp = Experiment(load_spec(tmp_path / "spec.yaml"), tmp_path / "exp")
    exp.run(log=lambda s: None)
    task = exp.planner.task("toy", 0)
    assert task is not None and set(task.deps) == {"teacher_a", "teacher_b"}
    run = task.directory(exp.planner.root)
    assert (run / "metrics.json").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["distill"]["teacher"].keys() == {
        "teacher_a",
        "teacher_b",
    }


def test_roles_are_checked_in_one_line(toy_method, tmp_path: Path) -> None:
    log = _log(tmp_path / "log.csv")
    cfg = make_config(
        overrides={**_base(log), "distill": {"method": toy_method.name, "teacher": {"teacher_a": "x"}}}
    )
    with pytest.raises(
        RecdistillError, match=r"mean-of-teachers: give a teacher_b \(--teacher teacher_b=RUN_DIR\)"
    ):
        distill_run(cfg, None, log=lambda s: None)
    cfg = make_config(overrides={**_base(log), "distill": {"method": "rrd", "teacher": {"teacher_a": "x"}}})
    want = r"rrd: no run or file to give for role 'teacher_a'; its roles: frozen: teacher; trained from"
    with pytest.raises(RecdistillError, match=want):
        distill_run(cfg, None, log=lambda s: None)
    cfg = make_config(overrides={**_base(log), "distill": {"method": "rd", "teacher": "x"}})
    with pytest.raises(RecdistillError, match=r"rd: no run or file to give for role 'student'"):
        distill_run(cfg, None, student="runs/s", log=lambda s: None)  # RD's student starts from scratch
    spec = {
        "name": "s",
        "base": _base(log),
        "runs": {"ta": {}, "toy": {"method": toy_method.name, "teacher": {"teacher_a": "ta"}}},
    }
    with pytest.raises(
        RecdistillError, match=r"runs\.toy: method 'mean-of-teachers' needs teacher\.teacher_b"
    ):
        from recdistill.experiment import parse_spec

        parse_spec(spec)


def test_a_speed_knob_never_changes_a_key(tmp_path: Path) -> None:
    """A method's declared ``speed_params`` (RD's and RRD's ``chunk``) and the train section's
    speed settings leave the key alone; a parameter that changes the draws (BD's and DCD's
    ``chunk``) changes it."""
    log = _log(tmp_path / "log.csv")

    def key(method: str, params: dict[str, Any], train: dict[str, Any]) -> str:
        run: dict[str, Any] = {"method": method, "set": {f"distill.params.{k}": v for k, v in params.items()}}
        if load_distillers().get(method).roles(load_distillers().get(method).build_config({})).teachers:
            run["teacher"] = "t"
        spec = {
            "name": "k",
            "base": {**_base(log), "train": {**_base(log)["train"], **train}},
            "runs": {"t": {}, "r": run},
        }
        (tmp_path / "k.yaml").write_text(yaml.safe_dump(spec))
        task = Experiment(load_spec(tmp_path / "k.yaml"), tmp_path / "exp").planner.task("r", 0)
        assert task is not None
        return task.key

    speed_train = {"eval_batch_size": 7, "progress": True, "device": "cuda", "checkpoint_every": 3}
    declared = []
    for method in load_distillers().names():
        cls = load_distillers().get(method)
        base = key(method, {}, {})
        assert key(method, {}, speed_train) == base, method
        for name in cls.speed_params:
            assert key(method, {name: 3}, {}) == base, (method, name)
            declared.append(method)
        if "chunk" in cls.Config.__dataclass_fields__ and "chunk" not in cls.speed_params:
            assert key(method, {"chunk": 3}, {}) != base, method
    assert {"rd", "rrd"} <= set(declared)


@pytest.mark.parametrize("method", load_distillers().names())
def test_a_declared_speed_param_changes_no_draw_and_no_loss(method: str) -> None:
    """What makes a speed param one: the first distilling epoch's draws and the first batch's
    loss terms are equal at another value (3 against the default)."""
    import contract
    from contract import FIRST_KD_EPOCH, build, dataset, draws_hash, first_batch

    cls = load_distillers().get(method)
    ds = dataset()

    def record(extra: dict[str, Any]) -> tuple[str, dict[str, dict[str, float]]]:
        old = dict(contract.SMALL)
        contract.SMALL.update(extra)
        try:
            d = build(method, ds, spread=True)
        finally:
            contract.SMALL.clear()
            contract.SMALL.update(old)
        for e in range(FIRST_KD_EPOCH + 1):
            d.on_epoch_start(e)
        losses = {
            n: {k: float(v) for k, v in d.loss(n, first_batch(ds), FIRST_KD_EPOCH)[1].items()}
            for n in d.models
        }
        return draws_hash(d.targets()), losses

    if not cls.speed_params:
        pytest.skip(f"{method} declares no speed param")
    base = record({})
    for name in cls.speed_params:
        assert record({name: 3}) == base, (method, name)


def test_the_api_builds_a_student_sized_student(tmp_path: Path) -> None:
    """``model.size`` left at its default: the distilled model is the student preset from the API
    (as from the CLI), not the teacher's size."""
    from conftest import make_toy_dataset
    from recdistill.models import resolve_dim

    ds = make_toy_dataset()
    cfg = make_config(
        overrides={
            "data": {"name": "toy"},
            "train": {
                "epochs": 1,
                "progress": False,
                "ks": [5],
                "eval_protocol": "sampled",
                "monitor": "H@5",
            },
            "distill": {"method": "rd"},
        }
    )
    torch.manual_seed(0)
    from recdistill.models import build_model

    teacher = build_model("bpr", ds, dim=4)
    _, d, _ = distill_run(cfg, None, dataset=ds, teacher=teacher, log=lambda s: None)
    assert (
        d.models["student"].init_kwargs["dim"]
        == resolve_dim("toy", "student")
        != resolve_dim("toy", "teacher")
    )


def test_metrics_json_is_written_once_with_the_methods_figures(tmp_path: Path, monkeypatch) -> None:
    """The trainer writes ``metrics.json`` once, with the distiller's figures in it: no moment
    at which a finished-looking run lacks them."""
    import recdistill.atomic as atomic
    import recdistill.runs.distill as run_distill
    import recdistill.train.writer as writer_mod
    from conftest import make_toy_dataset

    writes: list[dict[str, Any]] = []
    real = atomic.atomic_json

    def counting(obj: Any, path: Any, *a: Any, **k: Any) -> None:
        if Path(path).name == "metrics.json":
            writes.append(json.loads(json.dumps(obj)))
        real(obj, path, *a, **k)

    monkeypatch.setattr(writer_mod, "atomic_json", counting)
    monkeypatch.setattr(run_distill, "atomic_json", counting)
    ds = make_toy_dataset()
    cfg = make_config(
        overrides={
            "data": {"name": "toy"},
            "model": {"dim": 3},
            "train": {
                "epochs": 2,
                "progress": False,
                "ks": [5],
                "eval_protocol": "sampled",
                "monitor": "H@5",
            },
            "distill": {"method": "rd"},
        }
    )
    from recdistill.models import build_model

    distill_run(cfg, tmp_path / "r", dataset=ds, teacher=build_model("bpr", ds, dim=4), log=lambda s: None)
    assert len(writes) == 1 and writes[0]["distilled_epochs"] == 2
    assert json.loads((tmp_path / "r" / "metrics.json").read_text()) == writes[0]
