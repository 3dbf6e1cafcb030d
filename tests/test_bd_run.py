"""BD end to end on tiny data with the trainer: every base model, fixed T/S, determinism, resume."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_toy_dataset, run_bd
from recdistill.config import make_config
from recdistill.distill.bd import BDConfig
from recdistill.runs import load_run, train_run


def _config(model: str = "bpr", epochs: int = 4, seed: int = 0, eval_every: int = 1):
    return make_config(
        overrides={
            "data": {"name": "toy"},
            "model": {"name": model, "size": None, "dim": 4},
            "train": {
                "epochs": epochs,
                "batch_size": 64,
                "progress": False,
                "eval_every": eval_every,
                "patience": 100,
                "seed": seed,
                "ks": [5, 10],
                "monitor": "H@10",
            },
        }
    )


@pytest.fixture(scope="module")
def ds():
    return make_toy_dataset(n_users=40, n_items=60, density=0.1, seed=11)


@pytest.mark.parametrize("model", ["bpr", "neumf", "cdae"])
def test_run_bd_trains_both_models_and_writes_run(ds, model, tmp_path):
    bd = BDConfig(warmup_epochs=1, period=2, n_samples=2)
    trainer, distiller, metrics = run_bd(
        _config(model, epochs=4, eval_every=4), bd, tmp_path, dataset=ds, teacher_dim=8, student_dim=2
    )
    assert distiller.n_refresh == 2  # epochs 1 and 3 (after one warm-up epoch, period 2)
    assert set(metrics["models"]) == {"teacher", "student"}
    for name in ("teacher", "student"):
        assert 0 <= metrics["models"][name]["test"]["full"]["H@10"] <= 1
    assert {"teacher.pt", "student.pt", "metrics.json", "distill.json", "config.yaml", "log.jsonl"} <= {
        p.name for p in tmp_path.iterdir()
    }
    log = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert "BD" not in log[0]["loss"]["student"] and "BD" in log[1]["loss"]["student"]
    assert "BD" in log[1]["loss"]["teacher"]
    run = load_run(tmp_path, ds)
    assert run.models["teacher"].n_parameters > run.models["student"].n_parameters


def test_run_bd_is_deterministic(ds, tmp_path):
    bd = BDConfig(warmup_epochs=1, period=1, n_samples=2)
    _, a, _ = run_bd(_config(epochs=3), bd, None, dataset=ds, teacher_dim=6, student_dim=2)
    _, b, _ = run_bd(_config(epochs=3), bd, None, dataset=ds, teacher_dim=6, student_dim=2)
    for name in ("teacher", "student"):
        sb = b.all_models[name].state_dict()
        for k, v in a.all_models[name].state_dict().items():
            assert torch.equal(v, sb[k]), k
    assert all(torch.equal(a.draws[k], b.draws[k]) for k in a.draws)


def test_run_bd_resume_matches_uninterrupted(ds, tmp_path):

    bd = BDConfig(warmup_epochs=1, period=2, n_samples=2)
    _, full, _ = run_bd(_config(epochs=4), bd, tmp_path / "full", dataset=ds, teacher_dim=6, student_dim=2)
    # interrupt after 2 epochs, then resume in a fresh process-like setup
    cfg = _config(epochs=4)
    run_bd(cfg, bd, tmp_path / "cut", dataset=ds, teacher_dim=6, student_dim=2, stop_after=2)
    _, resumed, _ = run_bd(cfg, bd, tmp_path / "cut", dataset=ds, teacher_dim=6, student_dim=2, resume=True)
    for name in ("teacher", "student"):
        for v, w in zip(
            full.all_models[name].state_dict().values(), resumed.all_models[name].state_dict().values()
        ):
            assert torch.equal(v, w)


def test_fixed_teacher_is_frozen_and_required(ds, tmp_path):
    cfg_t = _config(epochs=2)
    train_run(cfg_t, tmp_path / "t", dataset=ds)
    teacher_before = load_run(tmp_path / "t", ds).model.state_dict()
    bd = BDConfig(warmup_epochs=0, period=1, n_samples=2, fixed="teacher")
    _, d, metrics = run_bd(
        _config(epochs=2), bd, tmp_path / "bd", dataset=ds, teacher_run=tmp_path / "t", student_dim=2
    )
    assert set(metrics["models"]) == {"student"} and set(d.draws) == {"student"}
    for k, v in d.all_models["teacher"].state_dict().items():
        assert torch.equal(v, teacher_before[k])
    with pytest.raises(ValueError, match="pre-trained teacher"):
        run_bd(_config(epochs=1), bd, None, dataset=ds)


def test_registered_run_reads_distill_params(ds, tmp_path):
    from recdistill.runs import distill_run

    cfg = make_config(
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
                    "sampling": "uniform",
                },
            },
        }
    )
    _, d, metrics = distill_run(cfg, tmp_path, dataset=ds)
    assert d.cfg.sampling == "uniform" and d.n_refresh == 1
    assert metrics["models"]["teacher"]["n_parameters"] == 6 * (ds.n_users + ds.n_items)
    assert metrics["models"]["student"]["n_parameters"] == 3 * (ds.n_users + ds.n_items)
    bad = make_config(overrides={"data": {"name": "toy"}, "distill": {"method": "bd", "params": {"tau": 0}}})
    with pytest.raises(ValueError, match="tau=0"):
        distill_run(bad, dataset=ds)


def test_distill_cli_runs_bd_and_reads_a_bd_run_as_teacher(data_dir, tmp_path, capsys):
    from recdistill.cli import main

    common = [
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
        "distill.params.teacher_dim=8",
    ]
    # the form: --teacher-model names the shared architecture
    assert (
        main(
            [
                "distill",
                "--method",
                "bd",
                "--teacher-model",
                "bpr",
                "--dim",
                "2",
                "--out",
                str(tmp_path / "a"),
                *common,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "bd teacher (" in out and "bd student (" in out
    run = load_run(tmp_path / "a")
    assert run.models["student"].dim == 2 and run.models["teacher"].dim == 8
    # a BD run's teacher (not its student) starts the next BD run
    assert (
        main(
            [
                "distill",
                "--method",
                "bd",
                "--model",
                "bpr",
                "--dim",
                "2",
                "--teacher",
                str(tmp_path / "a"),
                "--out",
                str(tmp_path / "b"),
                *common,
            ]
        )
        == 0
    )
    assert (
        json.loads((tmp_path / "b" / "distill.json").read_text())["teacher_parameters"]
        == run.models["teacher"].n_parameters
    )


def test_distill_cli_teacher_model_must_agree_with_model(tmp_path, capsys):
    from recdistill.cli import main

    assert (
        main(
            [
                "distill",
                "--method",
                "bd",
                "--teacher-model",
                "bpr",
                "--model",
                "cdae",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "disagree" in capsys.readouterr().err
