"""BDConfig.monitor_model: which model's validation drives BD's early stopping (Trainer.stop_on)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_toy_dataset, run_bd
from recdistill.config import make_config
from recdistill.distill.bd import MONITORS, BDConfig
from recdistill.models import build_model
from recdistill.train.trainer import BaseObjective, Trainer


def _config(epochs: int, patience: int, seed: int = 0):
    return make_config(
        overrides={
            "data": {"name": "toy"},
            "model": {"name": "bpr", "size": None, "dim": 4},
            "train": {
                "epochs": epochs,
                "batch_size": 64,
                "progress": False,
                "eval_every": 1,
                "patience": patience,
                "seed": seed,
                "ks": [5, 10],
                "monitor": "H@10",
            },
        }
    )


@pytest.fixture(scope="module")
def ds():
    return make_toy_dataset(n_users=40, n_items=60, density=0.1, seed=11)


# ------------------------------------------------------------------ the trainer's stop rule
def _scripted_trainer(ds, scores: dict[str, list[float]], patience: int, stop_on=None) -> Trainer:
    """A trainer whose validation returns the scripted H@10 of each model, one per validation."""
    torch.manual_seed(0)
    models = {"teacher": build_model("bpr", ds, dim=4), "student": build_model("bpr", ds, dim=2)}
    tr = Trainer(
        models, BaseObjective(models), ds, _config(100, patience), primary="student", stop_on=stop_on
    )
    names = {id(m): n for n, m in models.items()}
    calls = {n: 0 for n in models}

    def evaluate(model, split, protocol=None):
        n = names[id(model)]
        v = scores[n][calls[n]]
        calls[n] += 1
        return {"H@10": v}

    tr.evaluate = evaluate  # type: ignore[method-assign]
    return tr


def _stop_after(tr: Trainer, n_max: int) -> int | None:
    """Validations until ``tr`` stops (None: never within ``n_max``)."""
    for k in range(1, n_max + 1):
        tr.epoch = k
        tr.validate()
        if tr.stopped:
            return k
    return None


#: the student peaks at validation 1, the teacher keeps improving until validation 6
SCRIPT = {
    "student": [0.5, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3],
    "teacher": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.5, 0.5, 0.5, 0.5],
}


@pytest.mark.parametrize(
    ("stop_on", "expected"),
    [
        (None, 4),  # default: the primary (student): best at 1, then 3 validations without improvement
        (("student",), 4),
        (("teacher",), 9),
        (("teacher", "student"), 9),
    ],
)
def test_trainer_stop_on_picks_the_watched_models(ds, stop_on, expected):
    tr = _scripted_trainer(ds, SCRIPT, patience=3, stop_on=stop_on)
    assert _stop_after(tr, 10) == expected
    # every model keeps its own best validation whatever is watched
    assert tr.best["student"]["epoch"] == 1 and tr.best["teacher"]["epoch"] == min(6, expected)


def test_trainer_stop_on_both_waits_for_neither_to_improve(ds):
    # the two alternate improving: 'both' never stops; either one alone stops early
    s = {
        "student": [0.1, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.4, 0.4, 0.4],
        "teacher": [0.1, 0.1, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.4, 0.4],
    }
    assert _stop_after(_scripted_trainer(ds, s, 3, ("teacher", "student")), 10) is None
    assert _stop_after(_scripted_trainer(ds, s, 3, ("student",)), 10) is None  # gaps of 2 only
    assert _stop_after(_scripted_trainer(ds, s, 2, ("student",)), 10) == 4
    assert _stop_after(_scripted_trainer(ds, s, 2, ("teacher",)), 10) == 5
    assert _stop_after(_scripted_trainer(ds, s, 2, ("teacher", "student")), 10) is None


def test_trainer_rejects_unknown_stop_on(ds):
    models = {"student": build_model("bpr", ds, dim=2)}
    with pytest.raises(ValueError, match="stop_on"):
        Trainer(models, BaseObjective(models), ds, _config(1, 1), stop_on=("teacher",))


# ------------------------------------------------------------------ BDConfig
def test_bdconfig_monitor_model_resolves_and_validates():
    assert BDConfig().monitor_model == "auto" and BDConfig().stop_on == ("student",)
    assert BDConfig(monitor_model="teacher").stop_on == ("teacher",)
    assert BDConfig(monitor_model="student").stop_on == ("student",)
    assert set(BDConfig(monitor_model="both").stop_on) == {"teacher", "student"}
    assert BDConfig(fixed="student").stop_on == ("teacher",)  # as before: the trained model
    assert BDConfig(fixed="teacher").stop_on == ("student",)
    assert set(MONITORS) == {"auto", "student", "teacher", "both"}
    with pytest.raises(ValueError, match="monitor_model"):
        BDConfig(monitor_model="neither")
    with pytest.raises(ValueError, match="monitor_model"):
        BDConfig(fixed="student", monitor_model="student")
    with pytest.raises(ValueError, match="monitor_model"):
        BDConfig(fixed="teacher", monitor_model="both")
    from recdistill.distill.bd import BD

    assert BD.build_config({"monitor_model": "teacher"}).monitor_model == "teacher"


# ------------------------------------------------------------------ BD end to end
def _valid_history(log: list[dict], name: str) -> list[float]:
    return [r["valid"][name]["H@10"] for r in log if "valid" in r]


def _expected_stop(hist: dict[str, list[float]], watched: tuple[str, ...], patience: int) -> int | None:
    """Validation index (1-based) at which the trainer's rule stops, from full histories."""
    best = {n: -float("inf") for n in hist}
    bad = 0
    for k in range(len(next(iter(hist.values())))):
        improved = False
        for n, h in hist.items():
            if h[k] > best[n]:
                best[n] = h[k]
                improved = improved or n in watched
        bad = 0 if improved else bad + 1
        if bad >= patience:
            return k + 1
    return None


def test_run_bd_stop_epoch_follows_monitor_model(ds, tmp_path):
    """Real BD runs on toy data: the stop epoch is the one the watched model's validation gives,
    and it differs between the student and the teacher (so an ignored setting fails)."""
    epochs, patience = 20, 2
    bd = dict(warmup_epochs=1, period=2, n_samples=2)
    # one long run without stopping gives both validation histories (runs are deterministic and
    # identical up to the stop, whatever is monitored)
    _, _, full = run_bd(
        _config(epochs, 1000), BDConfig(**bd), tmp_path / "full", dataset=ds, teacher_dim=8, student_dim=2
    )
    log = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    hist = {n: _valid_history(log, n) for n in ("teacher", "student")}
    expect = {
        m: _expected_stop(hist, BDConfig(monitor_model=m).stop_on, patience) or epochs for m in MONITORS
    }
    assert expect["auto"] == expect["student"]
    assert expect["teacher"] != expect["student"], expect  # the toy data must tell them apart
    assert expect["both"] == max(expect["teacher"], expect["student"])
    for m in MONITORS:
        _, _, met = run_bd(
            _config(epochs, patience),
            BDConfig(**bd, monitor_model=m),
            tmp_path / m,
            dataset=ds,
            teacher_dim=8,
            student_dim=2,
        )
        assert met["epochs_run"] == expect[m], (m, expect)
        assert met["stop_on"] == list(BDConfig(monitor_model=m).stop_on)
        assert json.loads((tmp_path / m / "distill.json").read_text())["params"]["monitor_model"] == m


def test_registered_bd_run_reads_monitor_model(ds, tmp_path):
    from recdistill.runs import distill_run

    def cfg(params):
        return make_config(
            overrides={
                "data": {"name": "toy"},
                "model": {"name": "bpr"},
                "train": {"epochs": 2, "batch_size": 64, "progress": False, "ks": [5, 10], "monitor": "H@10"},
                "distill": {
                    "method": "bd",
                    "params": {
                        "warmup_epochs": 1,
                        "n_samples": 2,
                        "teacher_dim": 6,
                        "student_dim": 3,
                        **params,
                    },
                },
            }
        )

    tr, _, met = distill_run(cfg({"monitor_model": "teacher"}), tmp_path / "t", dataset=ds)
    assert tr.stop_on == ("teacher",) and met["stop_on"] == ["teacher"]
    tr, _, met = distill_run(cfg({}), tmp_path / "d", dataset=ds)
    assert tr.stop_on == ("student",) and met["stop_on"] == ["student"] and met["primary"] == "student"


def test_distill_cli_sets_monitor_model(data_dir, tmp_path):
    from recdistill.cli import main

    out = tmp_path / "bd"
    rc = main(
        [
            "distill",
            "--method",
            "bd",
            "--dataset",
            "ml-100k",
            "--data-dir",
            str(data_dir),
            "--epochs",
            "1",
            "--no-progress",
            "--batch-size",
            "16384",
            "--set",
            "train.ks=[10,50]",
            "--set",
            "train.monitor=H@50",
            "--set",
            "distill.params.warmup_epochs=0",
            "--set",
            "distill.params.teacher_dim=4",
            "--set",
            "distill.params.student_dim=2",
            "--set",
            "distill.params.monitor_model=both",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    assert json.loads((out / "metrics.json").read_text())["stop_on"] == ["teacher", "student"]
    assert json.loads((out / "distill.json").read_text())["params"]["monitor_model"] == "both"
