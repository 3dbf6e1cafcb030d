"""Pruned searches: a trial's pruner against a brute-force median rule, resume replay, the spec's
checks, and a pruned search end to end (one trial at a time, keys, choice, report, replay)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from recdistill.errors import RecdistillError
from recdistill.experiment import Experiment, load_spec
from recdistill.experiment.plan import Planner
from recdistill.experiment.pruning import check_pruner, trial_pruner
from recdistill.experiment.search import search_state


def _median_rule(history: list[dict], current: list[float], steps: list[int], n_startup: int) -> int | None:
    """Brute force (maximize): the first step where the trial's best value so far is below the
    median of the completed trials' values at that step (once n_startup trials completed)."""
    done = [h for h in history if not h["pruned"]]
    if len(done) < n_startup:
        return None
    for i, s in enumerate(steps):
        others = [dict((int(e), v) for e, v in h["values"]).get(s) for h in done]
        others = [v for v in others if v is not None]
        if others and max(current[: i + 1]) < float(np.median(others)):
            return s
    return None


@pytest.mark.parametrize("seed", range(6))
def test_trial_pruner_is_the_median_rule(seed: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    steps = [2, 4, 6, 8, 10]
    history = []
    for _ in range(int(rng.integers(2, 6))):
        pruned = bool(rng.random() < 0.3)
        n = int(rng.integers(1, 4)) if pruned else len(steps)
        vals = rng.random(n).tolist()
        history.append(
            {"values": [[s, v] for s, v in zip(steps, vals)], "value": max(vals), "pruned": pruned}
        )
    current = (rng.random(len(steps)) * rng.uniform(0.3, 1.2)).tolist()  # the best so far counts
    pruner = check_pruner({"name": "median", "n_startup_trials": 2}, "p")
    cb = trial_pruner({"pruner": pruner, "mode": "max", "metric": "H@5", "history": history})
    got = None
    seen: list = []
    for s, v in zip(steps, current):
        seen.append((s, {"H@5": v}))
        if cb(seen):
            got = s
            break
    assert got == _median_rule(history, current, steps, n_startup=2)


def test_a_resumed_trial_reports_its_checkpointed_history_first() -> None:
    """A run resumed after epoch 4 calls the pruner first with epochs 2-6: it decides at epoch 6
    as the uninterrupted run does (the best value so far counts), not as a fresh trial would."""
    history = [{"values": [[2, 0.5], [4, 0.5], [6, 0.5]], "value": 0.5, "pruned": False}]
    pruner = check_pruner({"name": "median", "n_startup_trials": 1}, "p")
    ctx = {"pruner": pruner, "mode": "max", "metric": "H@5", "history": history}
    run = [(2, {"H@5": 0.6}), (4, {"H@5": 0.6}), (6, {"H@5": 0.3})]
    whole = trial_pruner(ctx)
    assert [whole(run[: i + 1]) for i in range(3)] == [False, False, False]
    assert trial_pruner(ctx)(run) is False  # resumed: the checkpointed history, then epoch 6
    assert trial_pruner(ctx)(run[2:]) is True  # epoch 6 alone would be pruned


@pytest.mark.parametrize(
    "value, match",
    [
        ("hyperband", r"s\.pruner\.name: expected median \| percentile"),
        ({"name": "median", "patience": 2}, r"s\.pruner\.patience: not a setting of MedianPruner"),
        ({"name": "percentile", "percentile": 150.0}, r"s\.pruner: .*percentile"),
        ({"name": "median", "n_startup_trials": "x"}, r"n_startup_trials: expected a number"),
        ({"name": "median", "n_startup_trials": 1.5}, r"n_startup_trials: expected an integer"),
        ({"name": "percentile"}, r"s\.pruner: PercentilePruner needs percentile"),
        (3, r"s\.pruner: expected a pruner name"),
    ],
)
def test_bad_pruners_are_one_line(value, match) -> None:
    with pytest.raises(RecdistillError, match=match):
        check_pruner(value, "s.pruner")


def test_one_pruner_is_spelled_one_way() -> None:
    assert check_pruner("median", "p") == check_pruner({"name": "median", "n_startup_trials": 5.0}, "p")


def _spec(tmp_path: Path, pruner, name: str = "pruned") -> Path:
    rng = np.random.default_rng(0)
    log = tmp_path / "log.csv"
    rows = [
        f"u{u},i{i}" for u in range(60) for i in rng.choice(50, size=int(rng.integers(6, 12)), replace=False)
    ]
    log.write_text("user,item\n" + "\n".join(rows) + "\n")
    search = {"sampler": "grid", "space": {"train.lr": [0.05, 1.0e-6, 0.02, 2.0e-6]}}
    if pruner is not None:
        search["pruner"] = pruner
    spec = {
        "name": "pruned",
        "title": "Pruned",
        "base": {
            "data": {"name": str(log), "n_candidates": 20},
            "model": {"name": "bpr", "size": None, "dim": 4},
            "train": {"epochs": 6, "eval_every": 1, "patience": 10, "ks": [10], "monitor": "H@10"},
        },
        "set": {"train.progress": False},
        "seeds": [0, 1],
        "runs": {"student": {"search": search}},
        "tables": [{"name": "main", "metrics": ["H@10"], "rows": [{"label": "Student", "run": "student"}]}],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_pruned_search_end_to_end(tmp_path: Path) -> None:
    path = _spec(tmp_path, {"name": "median", "n_startup_trials": 1})
    runs = tmp_path / "runs"
    exp = Experiment.load(path, runs)
    first, pending = exp.tasks()
    assert [t.trial for t in first] == [0] and pending == ["student"]  # one trial at a time
    assert exp.run(log=lambda s: None).ok
    state = search_state(Planner(load_spec(path), runs), "student")
    assert len(state.tasks) == 4 and state.chosen is not None
    # each trial pruned exactly where the median rule over the earlier completed trials says
    history: list[dict] = []
    for t, pruned_at in zip(state.tasks, state.pruned_at):
        curve = json.loads((t.directory(runs) / "curve.json").read_text())["values"]
        m = json.loads((t.directory(runs) / "metrics.json").read_text())
        vals = [v for _, v in curve]
        steps = [int(e) for e, _ in curve]
        assert pruned_at == _median_rule(history, vals, steps, n_startup=1)
        assert m.get("pruned_at") == pruned_at and m["epochs_run"] == (pruned_at or 6)
        history.append({"values": curve, "value": max(vals), "pruned": pruned_at is not None})
    assert any(p is not None for p in state.pruned_at) and any(p is None for p in state.pruned_at[1:])
    assert state.pruned_at[state.best_trial] is None
    # the chosen trial is the search seed's run; the other seed trains once
    planner = Planner(load_spec(path), runs)
    assert planner.task("student", 0).key == state.tasks[state.best_trial].key
    assert (planner.task("student", 1).directory(runs) / "metrics.json").is_file()
    # replayed: the same trials, nothing trained again
    assert Experiment.load(path, runs).run(log=lambda s: None).finished == []
    rep = exp.report(tmp_path / "out")
    trials = rep["searches"][0]["trials"]
    assert [t["pruned_at"] for t in trials] == state.pruned_at
    assert rep["searches"][0]["pruner"] == check_pruner({"name": "median", "n_startup_trials": 1}, "p")
    assert "pruned at epoch" in (tmp_path / "out" / "pruned.md").read_text()
    # a pruned trial is never chosen, even with the best score (a partial run's best so far)
    i = next(i for i, p in enumerate(state.pruned_at) if p is not None)
    mpath = state.tasks[i].directory(runs) / "metrics.json"
    m = json.loads(mpath.read_text())
    m["models"]["model"]["valid"]["full"]["H@10"] = 2.0
    mpath.write_text(json.dumps(m))
    assert search_state(Planner(load_spec(path), runs), "student").best_trial == state.best_trial
    # a finished trial without its curve cannot be compared with: one line
    (state.tasks[0].directory(runs) / "curve.json").unlink()
    with pytest.raises(RecdistillError, match="finished without curve.json"):
        search_state(Planner(load_spec(path), runs), "student")
    # the same search without a pruner is other runs: a pruned trial's key names the pruner
    # and the trials it was pruned against
    plain = [t.key for t in Planner(load_spec(_spec(tmp_path, None, "plain")), runs).tasks()[0]]
    assert len(plain) == 4 and not {t.key for t in state.tasks} & set(plain)


def test_tune_with_a_pruner(tmp_path: Path) -> None:
    from recdistill.cli import main

    spec = yaml.safe_load(_spec(tmp_path, None).read_text())
    cfg = tmp_path / "base.yaml"
    cfg.write_text(yaml.safe_dump(spec["base"]))
    args = ["tune", "--config", str(cfg), "--space", "train.lr=0.05,0.02,0.000002", "--sampler", "grid"]
    args += ["--pruner", "median", "--pruner-startup", "1"]
    args += ["--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    assert main([*args, "--name", "t", "--set", "train.progress=false"]) == 0
    rep = json.loads((tmp_path / "out" / "t.json").read_text())["searches"][0]
    assert rep["pruner"]["n_startup_trials"] == 1 and len(rep["trials"]) == 3
    assert rep["chosen"] is not None and any(t["pruned_at"] is not None for t in rep["trials"])


def test_a_search_metric_the_runs_do_not_compute_fails_before_anything_runs(tmp_path: Path) -> None:
    path = _spec(tmp_path, "median")
    spec = yaml.safe_load(path.read_text())
    spec["runs"]["student"]["search"]["metric"] = "H@50"  # train.ks is [10]
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(
        RecdistillError, match=r"runs\.student\.search\.metric: 'H@50' is not a validation metric"
    ):
        Experiment.load(path, tmp_path / "runs")
