"""The experiment runner: spec checks, content addresses, searches, scheduling, resume, reports."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy import stats

from recdistill.cli import main
from recdistill.errors import RecdistillError
from recdistill.experiment import Experiment, load_spec, parse_spec, run_key
from recdistill.experiment.plan import Planner
from recdistill.experiment.search import search_state
from recdistill.experiment.stats import finding, paired_test, verdict


def _log(path: Path) -> Path:
    rng = np.random.default_rng(0)
    lines = ["user,item"]
    for u in range(60):
        for i in rng.choice(50, size=int(rng.integers(6, 12)), replace=False):
            lines.append(f"u{u},i{i}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _spec(tmp_path: Path, **extra) -> dict:
    log = _log(tmp_path / "log.csv")
    spec = {
        "name": "toy",
        "title": "Toy",
        "base": {
            "data": {"name": str(log), "n_candidates": 20},
            "model": {"name": "bpr", "size": None},
            "train": {
                "epochs": 3,
                "patience": 2,
                "lr": 0.01,
                "ks": [5, 10],
                "monitor": "H@10",
                "eval_protocol": "full",
                "progress": False,
            },
        },
        "seeds": [0, 1, 2],
        "runs": {
            "teacher": {"set": {"model.dim": 16}, "seeds": [0]},
            "student": {
                "set": {"model.dim": 4},
                "search": {"sampler": "grid", "space": {"train.lr": [0.03, 0.01, 0.001]}},
            },
            "rd": {"method": "rd", "teacher": "teacher", "set": {"model.dim": 4}},
        },
        "tables": [
            {
                "name": "main",
                "metrics": ["H@10", "N@10"],
                "rows": [
                    {"label": "Teacher", "run": "teacher"},
                    {"label": "Student", "run": "student"},
                    {"label": "RD", "run": "rd", "vs": "Student"},
                ],
                "paper": {"RD": {"H@10": 0.5}},
                "improvements": [
                    {"label": "Improv.S", "row": "RD", "over": "Student"},
                    {"label": "Improv.B", "row": "Teacher", "over": ["Student", "RD"]},
                ],
            }
        ],
        "findings": [{"claim": "RD beats the student", "row": "RD", "than": "Student", "metric": "H@10"}],
    }
    spec.update(extra)
    return spec


def _write(tmp_path: Path, spec: dict, name: str = "toy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


# ---- spec checks: one line naming the file and the key ----


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda s: s.update(colour="red"), r"toy\.yaml: unknown key 'colour'"),
        (lambda s: s["runs"]["rd"].update(teacher="nope"), r"runs\.rd\.teacher: 'nope' is neither a run"),
        (lambda s: s["runs"]["rd"].pop("teacher"), r"runs\.rd: method 'rd' needs a teacher"),
        (lambda s: s["runs"]["teacher"].update(method="rd", teacher="rd"), r"circular dependency"),
        (lambda s: s["runs"]["student"]["search"].update(sampler="bayes"), r"search\.sampler: expected grid"),
        (lambda s: s["runs"]["student"]["search"].update(trials=5), r"a grid of 3 points runs 3 trials"),
        (lambda s: s["runs"]["student"].update(seeds="x"), r"runs\.student\.seeds: expected list or int"),
        (lambda s: s["tables"][0]["rows"][2].update(vs="Nobody"), r"rows\[2\]\.vs: no row labelled 'Nobody'"),
        (lambda s: s["findings"][0].update(metric="H@50"), r"'H@50' is not a column of main"),
        (lambda s: s["runs"]["rd"].update(set={"lr": 1}), r"runs\.rd\.set: bad key 'lr'"),
    ],
)
def test_spec_errors_are_one_line(tmp_path, change, match):
    spec = _spec(tmp_path)
    change(spec)
    with pytest.raises(RecdistillError, match=match) as exc:
        load_spec(_write(tmp_path, spec))
    assert "\n" not in str(exc.value)


def test_bad_config_value_and_method_param_fail_before_anything_runs(tmp_path):
    spec = _spec(tmp_path)
    spec["runs"]["rd"]["set"] = {"model.dim": 4, "distill.params.alphaa": 0.2}
    with pytest.raises(RecdistillError, match=r"runs\.rd: .*alphaa"):
        Experiment(parse_spec(spec), tmp_path / "runs")
    spec = _spec(tmp_path)
    spec["runs"]["teacher"]["set"] = {"train.lr": -1}
    with pytest.raises(RecdistillError, match=r"runs\.teacher: train\.lr"):
        Experiment(parse_spec(spec), tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_cli_bad_spec_exits_2_with_one_line(tmp_path, capsys):
    spec = _spec(tmp_path)
    spec["runs"]["rd"]["teacher"] = "nope"
    assert main(["experiment", "status", str(_write(tmp_path, spec))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "runs.rd.teacher" in err


# ---- content addresses ----


def test_run_key_is_the_resolved_config():
    cfg = {"data": {"name": "x", "data_dir": "/a"}, "train": {"lr": 0.1, "progress": True}, "distill": {}}
    same = {"data": {"name": "x", "data_dir": "/b"}, "train": {"lr": 0.1, "progress": False}, "distill": {}}
    other = {"data": {"name": "x", "data_dir": "/a"}, "train": {"lr": 0.2, "progress": True}, "distill": {}}
    assert run_key(cfg, {}) == run_key(same, {})  # data_dir and progress cannot change results
    on_cpu, on_gpu = ({**cfg, "train": {**cfg["train"], "device": d}} for d in ("cpu", "cuda:1"))
    assert run_key(on_cpu, {}) == run_key(on_gpu, {})  # the same run on any device
    assert run_key(cfg, {}) != run_key(other, {})
    assert run_key(cfg, {"teacher": "k1"}) != run_key(cfg, {"teacher": "k2"})
    # the method's parameters with defaults filled in: explicit default == left out
    d1 = {**cfg, "distill": {"method": "rd", "params": {}}}
    d2 = {**cfg, "distill": {"method": "rd", "params": {"alpha": 0.5}}}
    full = {"alpha": 0.5, "k": 10}
    assert run_key(d1, {}, full) == run_key(d2, {}, dict(full))
    assert run_key(d1, {}, full) != run_key(d1, {}, {**full, "alpha": 0.2})


def test_committed_records_keep_their_keys():
    """Every committed base-model record (no dependency, no search trial) is still found under its
    key: a change to :func:`run_key` that moved old keys would retrain every finished run."""
    checked = 0
    for task_file in sorted((Path(__file__).parents[1] / "results" / "runs").glob("*/task.json")):
        t = json.loads(task_file.read_text())
        if t["deps"] or t["trial"] is not None or t["config"].get("distill", {}).get("method"):
            continue
        assert run_key(t["config"], {}) == t["key"], task_file
        assert t["key"].startswith(task_file.parent.name)
        checked += 1
    assert checked >= 10


def test_device_override_trains_the_same_runs(tmp_path):
    spec = parse_spec(_spec(tmp_path))
    plain = Experiment(spec, tmp_path / "runs", records_dir=None)
    on_gpu = Experiment(spec, tmp_path / "runs", records_dir=None, overrides={"train": {"device": "cuda"}})
    a, b = plain.tasks()[0], on_gpu.tasks()[0]
    assert [t.key for t in a] == [t.key for t in b]
    assert {t.config["train"]["device"] for t in b} == {"cuda"}
    path = _write(tmp_path, _spec(tmp_path))
    argv = ["experiment", "run", str(path), "--dry-run", "--device", "cuda", "--records", ""]
    assert main([*argv, "--runs-dir", str(tmp_path / "runs")]) == 0
    # the report says which device trained its runs (task.json's config)
    small = _spec(tmp_path)
    small["runs"] = {"teacher": {"set": {"model.dim": 4}}}
    small["seeds"], small["findings"] = [0, 1], []
    small["tables"] = [{"name": "t", "metrics": ["H@10"], "rows": [{"label": "T", "run": "teacher"}]}]
    exp = Experiment(parse_spec(small), tmp_path / "r2", records_dir=None)
    assert exp.run(log=lambda s: None).ok
    assert exp.report_data()["trained_on"] == {"cpu": 2}
    task_file = exp.planner.task("teacher", 1).directory(tmp_path / "r2") / "task.json"
    t = json.loads(task_file.read_text())
    t["config"]["train"]["device"] = "cuda:0"  # as a run trained with --device cuda:0 records it
    task_file.write_text(json.dumps(t))
    exp.report(tmp_path / "out")
    assert "Runs trained on (runs): `cpu` (1), `cuda:0` (1)." in (tmp_path / "out" / "toy.md").read_text()


def test_tasks_share_runs_and_dependencies(tmp_path):
    spec = parse_spec(_spec(tmp_path))
    planner = Planner(spec, tmp_path / "runs")
    tasks, pending = planner.tasks()
    assert pending == ["student"]  # its search has not run
    names = [(t.run, t.seed, t.trial) for t in tasks]
    assert names[0] == ("teacher", 0, None)  # dependencies first
    rd = [t for t in tasks if t.run == "rd"]
    assert [t.seed for t in rd] == [0, 1, 2]
    teacher = tasks[0]
    assert all(t.deps["teacher"].key == teacher.key for t in rd)  # one pinned teacher for all seeds
    assert len({t.key for t in tasks}) == len(tasks)
    # the same spec under another name: the same runs
    other = Planner(parse_spec({**_spec(tmp_path), "name": "other"}), tmp_path / "runs")
    assert {t.key for t in other.tasks()[0]} == {t.key for t in tasks}


def test_only_restricts_to_the_named_runs_and_what_they_need(tmp_path, capsys):
    planner = Planner(parse_spec(_spec(tmp_path)), tmp_path / "runs")
    assert planner.wanted(("rd",)) == ["teacher", "rd"]  # rd starts from the teacher
    assert planner.wanted(("student", "rd")) == ["student", "teacher", "rd"]
    tasks, pending = planner.tasks(("rd",))
    assert {t.run for t in tasks} == {"teacher", "rd"} and pending == []
    with pytest.raises(RecdistillError, match="--only 'rdd': no such run; runs: teacher, student, rd"):
        planner.wanted(("rd", "rdd"))
    # the command takes --only several times
    path = _write(tmp_path, _spec(tmp_path))
    args = ["experiment", "status", str(path), "--runs-dir", str(tmp_path / "runs"), "--records", ""]
    assert main([*args, "--only", "teacher", "--only", "rd"]) == 0
    out = capsys.readouterr().out
    assert "teacher seed 0" in out and "rd seed 2" in out and "student" not in out


# ---- running, searching, resuming, reporting ----


def test_experiment_end_to_end(tmp_path, capsys):
    spec_path = _write(tmp_path, _spec(tmp_path))
    runs = tmp_path / "runs"
    exp = Experiment.load(spec_path, runs)
    summary = exp.run(log=lambda s: None)
    assert summary.ok and not summary.pending
    # 1 teacher + 3 student trials + 2 more student seeds + 3 rd seeds
    assert len(summary.finished) == 9
    assert all(r["state"] == "done" for r in exp.status())

    # the search chose the best validation score, ties to the earlier trial
    planner = exp.planner
    state = search_state(planner, "student")
    scores = [float(s) for s in state.scores if s is not None]
    assert len(scores) == 3
    best = int(np.argmax(scores))
    assert state.best_trial == best and state.chosen == state.tasks[best].params
    for t, s in zip(state.tasks, scores):
        m = json.loads((t.directory(runs) / "metrics.json").read_text())
        assert s == m["models"]["model"]["valid"]["full"]["H@10"]
    # the chosen trial is the seed-0 run (the same config is the same run)
    assert planner.task("student", 0).key == state.tasks[best].key

    record = json.loads((planner.task("rd", 0).directory(runs) / "task.json").read_text())
    assert record["commits"] and record["deps"]["teacher"] == str(planner.task("teacher", 0).directory(runs))

    # nothing runs twice
    again = Experiment.load(spec_path, runs).run(log=lambda s: None)
    assert again.finished == [] and again.ok
    # --seeds without the search's seed: the same search and its choice, no new trials
    later = Experiment.load(spec_path, runs, seeds=(2,))
    assert search_state(later.planner, "student").tasks == state.tasks
    assert later.planner.task("student", 2) == planner.task("student", 2)
    assert later.run(log=lambda s: None).finished == []

    rep = exp.report(tmp_path / "out")
    table = rep["tables"][0]
    rows = {r["label"]: r for r in table["rows"]}
    # brute-force reference: read every seed's metrics.json
    ref = {}
    for label, run in (("Student", "student"), ("RD", "rd")):
        vals = []
        for seed in (0, 1, 2):
            d = planner.task(run, seed).directory(runs)
            m = json.loads((d / "metrics.json").read_text())
            vals.append(m["models"][m["primary"]]["test"]["full"]["H@10"])
        ref[label] = vals
        got = rows[label]["metrics"]["H@10"]
        assert got["n"] == 3
        assert got["mean"] == pytest.approx(sum(vals) / 3, abs=1e-12)
        assert got["std"] == pytest.approx(float(np.std(vals, ddof=1)), abs=1e-12)
    assert rows["Teacher"]["metrics"]["H@10"]["n"] == 1
    vs = rows["RD"]["vs_stats"]["H@10"]
    d = np.array(ref["RD"]) - np.array(ref["Student"])
    if np.ptp(d) > 0:
        t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
        assert vs["p"] == pytest.approx(2 * stats.t.sf(abs(t), 2), rel=1e-9)
    assert vs["improvement_pct"] == pytest.approx((np.mean(ref["RD"]) / np.mean(ref["Student"]) - 1) * 100)
    imp = {i["label"]: i for i in table["improvements"]}
    assert imp["Improv.S"]["metrics"]["H@10"]["improvement_pct"] == pytest.approx(vs["improvement_pct"])
    best = "RD" if np.mean(ref["RD"]) > np.mean(ref["Student"]) else "Student"
    assert imp["Improv.B"]["metrics"]["H@10"]["over"] == best  # the best competitor, per metric
    assert (
        rep["findings"][0]["verdict"]
        == verdict(dict(enumerate(ref["RD"])), dict(enumerate(ref["Student"])))[0]
    )
    md = (tmp_path / "out" / "toy.md").read_text()
    assert "| RD |" in md and "0.5000" in md  # the paper's number alongside
    assert (tmp_path / "out" / "toy.csv").read_text().startswith("table,row,metric")
    assert json.loads((tmp_path / "out" / "toy.json").read_text())["searches"][0]["chosen"] == state.chosen

    # the commits that trained the runs: each run's task.json, counted once per run
    keys = {r["seeds"][s] for r in table["rows"] for s in r["seeds"]}
    here = json.loads((planner.task("rd", 0).directory(runs) / "task.json").read_text())["commits"]
    assert rep["trained_at"] == {here[0]: len(keys)} and "versions of the code" not in md
    older = planner.task("rd", 2).directory(runs) / "task.json"
    saved = older.read_text()
    older.write_text(json.dumps({**json.loads(saved), "commits": ["0ld0ld0ld0ld"]}))
    mixed = exp.report(tmp_path / "mixed")
    assert mixed["trained_at"] == {here[0]: len(keys) - 1, "0ld0ld0ld0ld": 1}
    assert {r["label"]: r for r in mixed["tables"][0]["rows"]}["RD"]["trained_at"]["2"] == ["0ld0ld0ld0ld"]
    assert mixed["code_versions"] == 2  # an unknown commit is its own version
    assert "trained by 2 versions of the code" in (tmp_path / "mixed" / "toy.md").read_text()
    older.write_text(saved)

    # an interrupted run resumes from its checkpoint to the same result
    d = planner.task("rd", 1).directory(runs)
    before = json.loads((d / "metrics.json").read_text())
    (d / "metrics.json").unlink()
    assert [r["state"] for r in exp.status() if r["dir"] == str(d)] == ["partial"]
    resumed = exp.run(log=lambda s: None)
    assert resumed.finished == ["rd seed 1"]
    after = json.loads((d / "metrics.json").read_text())
    assert after["models"] == before["models"]

    # the index from this command's reports plus an already written one (--with)
    other = json.loads((tmp_path / "out" / "toy.json").read_text())
    other["name"], other["findings"][0]["claim"] = "other", "a claim from elsewhere"
    (tmp_path / "other.json").write_text(json.dumps(other))
    out2, index = tmp_path / "out2", tmp_path / "out2" / "README.md"
    out2.mkdir()
    (out2 / "toy_notes.md").write_text("# What the toy runs say\n")  # a written summary: listed
    argv = ["experiment", "report", str(spec_path), "--runs-dir", str(runs), "--out", str(out2)]
    assert main([*argv, "--index", str(index), "--with", str(tmp_path / "other.json")]) == 0
    text = index.read_text()
    assert "[toy](toy.md)" in text and "[other](other.md)" in text and "a claim from elsewhere" in text
    assert "- [toy_notes.md](toy_notes.md): What the toy runs say" in text
    capsys.readouterr()
    assert main([*argv, "--index", str(index), "--with", str(tmp_path / "missing.json")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"recdistill: error: --with {tmp_path / 'missing.json'}: no such file"
    )


def test_parallel_jobs_give_the_same_runs(tmp_path):
    spec = _spec(tmp_path)
    spec["seeds"] = [0, 1]
    spec["runs"]["student"].pop("search")
    path = _write(tmp_path, spec)
    one = Experiment.load(path, tmp_path / "one")
    assert one.run(log=lambda s: None, threads=1).ok
    two = Experiment.load(path, tmp_path / "two")
    assert two.run(jobs=2, log=lambda s: None).ok
    for t in one.tasks()[0]:
        a = json.loads((t.directory(tmp_path / "one") / "metrics.json").read_text())
        b = json.loads((t.directory(tmp_path / "two") / "metrics.json").read_text())
        assert a["models"] == b["models"], t.label
        assert (t.directory(tmp_path / "two") / "output.log").is_file()  # workers write their output there


def test_a_failed_run_skips_its_dependents_and_not_the_others(tmp_path, capsys):
    spec = _spec(tmp_path)
    spec["runs"]["student"].pop("search")
    spec["runs"]["teacher"]["set"] = {"model.dim": 16, "train.device": "cuda:7"}
    path = _write(tmp_path, spec)
    exp = Experiment.load(path, tmp_path / "runs")
    summary = exp.run(log=lambda s: None)
    assert summary.failed == ["teacher seed 0"]
    assert summary.skipped == ["rd seed 0", "rd seed 1", "rd seed 2"]
    assert sorted(summary.finished) == ["student seed 0", "student seed 1", "student seed 2"]
    t = exp.planner.task("teacher", 0)
    assert (t.directory(tmp_path / "runs") / "error.txt").is_file()
    assert main(["experiment", "run", str(path), "--runs-dir", str(tmp_path / "runs")]) == 1


def test_tpe_search_replays_the_same_trials(tmp_path):
    spec = _spec(tmp_path)
    spec["runs"] = {
        "student": {
            "set": {"model.dim": 4},
            "search": {
                "sampler": "tpe",
                "trials": 3,
                "space": {
                    "train.lr": {"low": 1e-3, "high": 1e-1, "log": True},
                    "train.batch_size": [64, 128],
                },
            },
        }
    }
    spec["tables"][0]["rows"] = [{"label": "Student", "run": "student"}]
    spec["tables"][0]["paper"] = {}
    spec["tables"][0]["improvements"] = []
    spec["findings"] = []
    spec["seeds"] = [0]
    path = _write(tmp_path, spec)
    exp = Experiment.load(path, tmp_path / "runs")
    first, pending = exp.tasks()
    assert [t.trial for t in first] == [0] and pending == ["student"]  # one trial at a time
    assert exp.run(log=lambda s: None).ok
    state = search_state(Planner(load_spec(path), tmp_path / "runs"), "student")
    again = search_state(Planner(load_spec(path), tmp_path / "runs"), "student")
    assert [t.key for t in state.tasks] == [t.key for t in again.tasks]
    assert len(state.tasks) == 3 and state.chosen is not None
    assert all(1e-3 <= t.params["train.lr"] <= 1e-1 for t in state.tasks)
    assert state.scores[state.best_trial] == max(s for s in state.scores if s is not None)


def test_tied_keys_and_heatmap(tmp_path):
    spec = _spec(tmp_path)
    spec["runs"]["rd"]["search"] = {
        "sampler": "grid",
        "space": {"distill.params.alpha,distill.params.mu": [0.2, 0.5], "train.lr": [0.01, 0.001]},
    }
    spec["runs"]["student"].pop("search")
    spec["seeds"] = [0]
    spec["figures"] = [
        {"kind": "heatmap", "run": "rd", "x": "train.lr", "y": "distill.params.alpha,distill.params.mu"}
    ]
    path = _write(tmp_path, spec)
    exp = Experiment.load(path, tmp_path / "runs")
    assert exp.run(log=lambda s: None).ok
    state = search_state(exp.planner, "rd")
    for t in state.tasks:
        v = t.params["distill.params.alpha,distill.params.mu"]
        assert t.config["distill"]["params"] == {"alpha": v, "mu": v}
    rep = exp.report(tmp_path / "out")
    assert rep["figures"] and (tmp_path / "out" / rep["figures"][0]).read_bytes()[:4] == b"\x89PNG"
    hm = rep["heatmaps"][rep["figures"][0]]
    assert hm["xs"] == [0.001, 0.01] and hm["ys"] == [0.2, 0.5]
    for t, score in zip(state.tasks, state.scores):  # every cell is its trial's validation score
        x, y = t.params["train.lr"], t.params["distill.params.alpha,distill.params.mu"]
        assert hm["grid"][hm["ys"].index(y)][hm["xs"].index(x)] == score


def _t_two_sided_p(t: float, df: int, steps: int = 200_000) -> float:
    """2 * P(T > |t|) for Student's t with ``df`` degrees of freedom, by the trapezoid rule on its
    density over [|t|, |t| + 2000] (the tail beyond is < 1e-6 for df >= 2)."""
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    x = np.linspace(abs(t), abs(t) + 2000.0, steps)
    f = c * (1 + x**2 / df) ** (-(df + 1) / 2)
    return float(2 * np.sum((f[1:] + f[:-1]) / 2 * np.diff(x)))


def test_paired_test_against_the_t_test_by_hand():
    x = [0.0700, 0.0776, 0.0705, 0.0661, 0.0730]
    y = [0.0692, 0.0665, 0.0720, 0.0650, 0.0700]
    d = [a - b for a, b in zip(x, y)]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    t = mean / (sd / math.sqrt(n))
    p, pairs = paired_test(dict(enumerate(x)), dict(enumerate(y)))
    assert pairs == 5 and p == pytest.approx(_t_two_sided_p(t, n - 1), abs=2e-5)
    assert _t_two_sided_p(2.7764451051977987, n - 1) == pytest.approx(0.05, abs=1e-5)  # t_{0.975,4}
    assert paired_test(dict(enumerate(y)), dict(enumerate(x)))[0] == pytest.approx(p)  # symmetric
    # equal differences: no variance, no p
    assert paired_test({0: 0.2, 1: 0.3, 2: 0.4}, {0: 0.1, 1: 0.2, 2: 0.3}) == (None, 3)


def test_paired_test_and_verdicts():
    a = {0: 0.50, 1: 0.52, 2: 0.51, 3: 0.53}
    b = {0: 0.48, 1: 0.49, 2: 0.50, 3: 0.50, 9: 0.1}  # seed 9 has no pair
    p, n = paired_test(a, b)
    assert n == 4
    assert p == pytest.approx(stats.ttest_rel([0.50, 0.52, 0.51, 0.53], [0.48, 0.49, 0.50, 0.50]).pvalue)
    assert verdict(a, b)[0] == "reproduced"
    assert verdict(b, a)[0] == "contradicted"  # significantly below (was "not reproduced")
    assert verdict({0: 0.5, 1: 0.4}, {0: 0.45, 1: 0.44})[0] == "same direction, not significant"
    assert verdict({0: 0.5}, {0: 0.4})[0] == "incomplete (1 seed)"
    assert verdict(a, {})[0] == "not run yet"
    assert paired_test({0: 1.0}, {0: 0.5}) == (None, 1)


def test_committed_specs_are_valid():
    root = Path(__file__).resolve().parents[1] / "experiments"
    specs = sorted(root.glob("*.yaml"))
    assert specs, "no experiment specs in experiments/"
    for path in specs:
        Experiment.load(path, Path("/nonexistent/runs"))  # checks every run's config and method
    shutil.rmtree(Path("/nonexistent"), ignore_errors=True)


def test_parse_space():
    from recdistill.commands.experiment import parse_space

    assert parse_space(["train.lr=1e-4:1e-1:log", "train.n_neg=1,5", "a.b=0.1:0.2"]) == {
        "train.lr": {"low": 1e-4, "high": 1e-1, "log": True},
        "train.n_neg": [1, 5],
        "a.b": {"low": 0.1, "high": 0.2, "log": False},
    }
    with pytest.raises(RecdistillError, match="expected KEY="):
        parse_space(["train.lr"])
    with pytest.raises(RecdistillError, match="only be 'log'"):
        parse_space(["train.lr=1:2:ln"])


def test_tune_command(tmp_path, capsys):
    spec = _spec(tmp_path)
    cfg = tmp_path / "base.yaml"
    cfg.write_text(yaml.safe_dump({**spec["base"], "model": {"name": "bpr", "size": None, "dim": 4}}))
    args = ["tune", "--config", str(cfg), "--space", "train.lr=0.03,0.003", "--sampler", "grid"]
    args += ["--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--name", "t"]
    assert main([*args, "--set", "train.patience"]) == 2  # the config engine's --set: one line
    assert "expected key=value" in capsys.readouterr().err
    args += ["--set", "train.patience=3"]
    assert main(args) == 0
    rep = json.loads((tmp_path / "out" / "t.json").read_text())
    assert rep["configs"] and all(c["config"]["train"]["patience"] == 3 for c in rep["configs"].values())
    trials = rep["searches"][0]["trials"]
    assert sorted(t["params"]["train.lr"] for t in trials) == [0.003, 0.03]
    best = max(trials, key=lambda t: t["valid"])
    assert rep["searches"][0]["chosen"] == best["params"]
    assert rep["tables"][0]["rows"][0]["metrics"]["H@10"]["n"] == 1
    assert "chosen on validation" in capsys.readouterr().out


def test_inherit_starts_from_the_chosen_settings(tmp_path):
    spec = _spec(tmp_path)
    spec["seeds"] = [0, 1]
    spec["runs"]["rd"]["inherit"] = "student"
    spec["runs"]["rd"]["search"] = {"sampler": "grid", "space": {"distill.params.alpha": [0.2, 0.8]}}
    path = _write(tmp_path, spec)
    exp = Experiment.load(path, tmp_path / "runs")
    tasks, pending = exp.tasks()
    assert "rd" in pending and not [t for t in tasks if t.run == "rd"]  # waits for the student's choice
    assert exp.run(log=lambda s: None).ok
    lr = search_state(exp.planner, "student").chosen["train.lr"]
    rd = [t for t in exp.tasks()[0] if t.run == "rd"]
    assert len(rd) == 2 + 1  # two trials at seed 0 (one of them is the seed-0 run), seed 1
    assert all(t.config["train"]["lr"] == lr for t in rd)
    spec["runs"]["rd"]["inherit"] = "teacher"
    with pytest.raises(RecdistillError, match=r"runs\.rd\.inherit: 'teacher' is not a searched run"):
        load_spec(_write(tmp_path, spec))


def test_a_run_locked_by_another_command_is_waited_for(tmp_path):
    import threading

    from recdistill.experiment.execute import run_tasks
    from recdistill.experiment.plan import RunBusy, run_lock

    spec = _spec(tmp_path)
    spec["runs"] = {"teacher": spec["runs"]["teacher"]}
    spec["tables"] = []
    spec["findings"] = []
    exp = Experiment(parse_spec(spec), tmp_path / "runs")
    task = exp.tasks()[0][0]
    d = task.directory(tmp_path / "runs")
    lines: list[str] = []
    with run_lock(d):
        assert exp.planner.status(task) == "running"
        with pytest.raises(RunBusy):
            with run_lock(d):
                pass
        worker = threading.Thread(
            target=lambda: lines.append(run_tasks(exp.planner, poll_s=0.05, log=lines.append))
        )
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and not (d / "metrics.json").exists()  # waiting, not training
    worker.join(60)
    assert (d / "metrics.json").is_file()
    assert any("another command" in str(x) for x in lines)


def test_demo_spec_runs_reuses_and_retrains(tmp_path, monkeypatch):
    from recdistill.experiment.demo import DEMO_SPEC, run_demo

    load_spec(DEMO_SPEC)  # the packaged spec is valid
    spec = _spec(tmp_path)
    spec["runs"]["student"].pop("search")
    spec["seeds"] = [0]
    spec["findings"] = []
    path = _write(tmp_path, spec)
    lines: list[str] = []
    rep = run_demo(tmp_path / "demo", spec=path, print_fn=lines.append, jobs=2)  # the default on 2 cores
    text = "\n".join(lines)
    assert "| Teacher |" in text and "| RD |" in text and "fewer parameters than the teacher" in text
    rd = {r["label"]: r for r in rep["tables"][0]["rows"]}
    better = rd["RD"]["metrics"]["H@10"]["mean"] > rd["Student"]["metrics"]["H@10"]["mean"]
    assert ("NOT above the plain student" in text) != better  # says so when distillation lost
    lines.clear()
    again = run_demo(tmp_path / "demo", spec=path, print_fn=lines.append, jobs=1)
    assert not any(x.startswith("[starting]") for x in lines)  # finished runs reused
    assert again["tables"] == rep["tables"]
    lines.clear()
    run_demo(tmp_path / "demo", spec=path, print_fn=lines.append, fresh=True, jobs=1)
    assert sum(x.startswith("[starting]") for x in lines) == 3  # every run trained again, once
    lines.clear()
    short = run_demo(tmp_path / "demo", spec=path, print_fn=lines.append, epochs=1, jobs=1)
    assert sum(x.startswith("[starting]") for x in lines) == 3  # other settings: other runs
    assert short["configs"]["rd"]["config"]["train"]["epochs"] == 1
    # a checkout whose results/runs records these runs (metrics, no models): the demo in a new
    # folder trains them, as it times the models (a record standing in failed on load)
    monkeypatch.chdir(tmp_path)
    assert Experiment.load(path, tmp_path / "demo", seeds=(0,)).record() == 3
    assert len(list((tmp_path / "results" / "runs").iterdir())) == 3
    lines.clear()
    fresh_dir = run_demo(tmp_path / "elsewhere", spec=path, print_fn=lines.append, jobs=1)
    assert sum(x.startswith("[starting]") for x in lines) == 3
    assert "fewer parameters than the teacher" in "\n".join(lines)
    metrics = [[r["metrics"] for r in t["rows"]] for t in (fresh_dir["tables"][0], rep["tables"][0])]
    assert metrics[0] == metrics[1]  # the same runs, trained again (same seed)


def test_report_last_and_neutral_new_settings(tmp_path):
    from recdistill.experiment.plan import NEUTRAL_DEFAULTS

    cfg = {"data": {"name": "x"}, "train": {"lr": 0.1}, "distill": {}}  # every section, as a run's
    for (section, key), neutral in NEUTRAL_DEFAULTS.items():
        with_default = {**cfg, section: {**cfg.get(section, {}), key: neutral}}
        assert run_key(with_default, {}) == run_key(cfg, {})  # a new setting at its default: same run
    assert run_key({**cfg, "train": {"lr": 0.1, "report_last": True}}, {}) != run_key(cfg, {})
    assert run_key({**cfg, "data": {"name": "x", "split": "ratio"}}, {}) != run_key(cfg, {})

    spec = _spec(tmp_path)
    spec["runs"] = {"student": {"set": {"model.dim": 4, "train.report_last": True}}}
    spec["seeds"] = [0]
    spec["findings"] = []
    spec["tables"] = [
        {
            "name": "t",
            "metrics": ["H@10"],
            "rows": [{"label": "best", "run": "student"}, {"label": "last", "run": "student", "at": "last"}],
        }
    ]
    exp = Experiment(parse_spec(spec), tmp_path / "runs")
    assert exp.run(log=lambda s: None).ok
    task = exp.tasks()[0][0]
    m = json.loads((task.directory(tmp_path / "runs") / "metrics.json").read_text())["models"]["model"]
    assert m["last"]["epoch"] == 3  # the schedule's last epoch, evaluated before the best state is loaded
    rows = {r["label"]: r for r in exp.report_data()["tables"][0]["rows"]}
    assert rows["last"]["metrics"]["H@10"]["mean"] == m["last"]["test"]["full"]["H@10"]
    assert rows["best"]["metrics"]["H@10"]["mean"] == m["test"]["full"]["H@10"]
    # the last state's test score is the saved model's when the best epoch is the last one
    if m["best_epoch"] == 3:
        assert m["last"]["test"] == m["test"]


def test_a_checkpoint_from_before_a_new_setting_resumes(toy_dataset, tmp_path):
    import torch

    from recdistill.config import make_config
    from recdistill.runs import train_run

    c = make_config(overrides={"model": {"size": None, "dim": 4}, "train": {"epochs": 4, "progress": False}})
    _, full = train_run(c, tmp_path / "a", dataset=toy_dataset)
    train_run(c, tmp_path / "b", dataset=toy_dataset, stop_after=2)
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    del ck["config"]["train"]["report_last"]  # written before the setting existed
    torch.save(ck, tmp_path / "b" / "checkpoint.pt")
    _, resumed = train_run(c, tmp_path / "b", dataset=toy_dataset, resume=True)
    assert resumed["models"] == full["models"]


def test_sigterm_stops_workers_and_the_command_continues_later(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    spec = _spec(tmp_path)
    spec["runs"] = {
        name: {
            "set": {
                "model.dim": dim,
                "train.epochs": 1000,
                "train.eval_every": 500,
                "train.checkpoint_every": 25,
            }
        }
        for name, dim in (("a", 4), ("b", 5))
    }
    spec["seeds"] = [0]
    spec["tables"], spec["findings"] = [], []
    path = _write(tmp_path, spec)
    cmd = [
        sys.executable,
        "-m",
        "recdistill",
        "experiment",
        "run",
        str(path),
        "--runs-dir",
        str(tmp_path / "r"),
    ]
    proc = subprocess.Popen(
        [*cmd, "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    exp = Experiment.load(path, tmp_path / "r")
    deadline = time.time() + 60
    while time.time() < deadline and not all(
        (t.directory(tmp_path / "r") / "checkpoint.pt").is_file() for t in exp.tasks()[0]
    ):
        time.sleep(0.2)
    t0 = time.time()
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert time.time() - t0 < 20  # the workers were stopped, not waited for
    assert "run the same command again" in out
    assert {r["state"] for r in exp.status()} <= {"partial", "todo"}
    partial = [r for r in exp.status() if r["state"] == "partial"]
    assert partial and all(1 <= r["epoch"] <= 1000 for r in partial)  # where each one stopped
    assert "of at most 1000" in exp.status_text()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {r["state"] for r in exp.status()} == {"done"}


def test_combined_verdicts_across_protocols():
    from recdistill.experiment.stats import combined_verdicts

    def rep(protocol, verdicts):
        return {
            "protocol": protocol,
            "findings": [{"claim": c, "metric": "H@50", "verdict": v} for c, v in verdicts],
        }

    out = combined_verdicts(
        [
            rep(
                "paper",
                [("A", "reproduced"), ("B", "reproduced"), ("C", "not reproduced"), ("D", "reproduced")],
            ),
            rep(
                "tuned",
                [("A", "reproduced"), ("B", "not reproduced"), ("C", "reproduced"), ("D", "not run yet")],
            ),
            rep(None, [("E", "reproduced")]),
        ]
    )
    assert {c["claim"]: c["verdict"] for c in out} == {
        "A": "reproduced",
        "B": "reproduced only under the paper protocol",
        "C": "reproduced only under the tuned protocol",
        "D": "not run yet",
    }


def test_discrepancy_figure_matches_the_analysis(tmp_path):
    from recdistill.analysis.discrepancy import top_discrepancy
    from recdistill.runs import load_run

    spec = _spec(tmp_path)
    spec["runs"]["student"].pop("search")
    spec["seeds"] = [0, 1]
    spec["figures"] = [{"kind": "discrepancy", "run": "teacher", "table": "main", "n": 5}]
    exp = Experiment(parse_spec(spec), tmp_path / "runs")
    assert exp.run(log=lambda s: None).ok
    rep = exp.report(tmp_path / "out")
    d = rep["discrepancy"]["main"]
    assert set(d["mean"]) == {"Student", "RD"}  # the teacher's own row is left out
    teacher = load_run(exp.planner.task("teacher", 0).directory(tmp_path / "runs"))
    for label, run in (("Student", "student"), ("RD", "rd")):
        ref = []
        for seed in (0, 1):
            st = load_run(exp.planner.task(run, seed).directory(tmp_path / "runs"), dataset=teacher.dataset)
            model = st.models.get("student", st.models.get("model"))
            ref.append(top_discrepancy(teacher.models["model"], model, teacher.dataset, 5, "user"))
        assert d["mean"][label]["user"] == pytest.approx(float(np.mean(ref)))
    assert (tmp_path / "out" / "toy_teacher_discrepancy.png").read_bytes()[:4] == b"\x89PNG"
    assert "Rank discrepancy (DCD Fig. 1a)" in (tmp_path / "out" / "toy.md").read_text()
    with pytest.raises(RecdistillError, match="no table named 'nope'"):
        parse_spec({**spec, "figures": [{"kind": "discrepancy", "run": "teacher", "table": "nope"}]})


def _eq6_brute(teacher, student, ds) -> float:
    return _rank_diff_brute(teacher, student, ds)["eq6"]


def _rank_diff_brute(teacher, student, ds) -> dict:
    """BD Eqs. 1 and 6 by hand: for each user's test item, its rank among the items outside the
    user's training row and other held-out item (1 + higher + equal / 2) under each model;
    Eq. 6, the share the student ranks strictly better, and the sorted differences."""
    test, valid = ds.heldout("test"), ds.heldout("valid")
    diffs = []
    for u in np.flatnonzero(test >= 0):
        cand = np.ones(ds.n_items, dtype=bool)
        cand[ds.train.indices[ds.train.indptr[u] : ds.train.indptr[u + 1]]] = False
        if valid[u] >= 0:
            cand[valid[u]] = False
        ranks = []
        for m in (teacher, student):
            with torch.no_grad():
                sc = m.score_all(torch.tensor([int(u)]))[0].numpy()
            x, c = sc[test[u]], sc[cand]
            ranks.append(1 + (c > x).sum() + ((c == x).sum() - 1) / 2)  # the test item is in cand
        diffs.append(float(ranks[0] - ranks[1]))
    total = sum(abs(x) for x in diffs)
    return {
        "eq6": total / (ds.n_users * ds.n_items),
        "student_better": sum(x > 0 for x in diffs) / len(diffs),
        "sorted": sorted(diffs),
    }


def test_rank_difference_figure_is_eq6_before_and_after_bd(tmp_path):
    from recdistill.runs import load_run

    spec = _spec(tmp_path)
    spec["seeds"] = [0, 1]
    spec["runs"] = {
        "teacher": {"set": {"model.dim": 16}},
        "student": {"set": {"model.dim": 4}},
        "bd": {
            "method": "bd",
            "teacher": "teacher",
            "student": "student",
            "set": {
                "train.epochs": 2,
                "train.lr": 0.1,  # a large step: BD and its control end apart
                "distill.params.warmup_epochs": 0,
                "distill.params.period": 1,
            },
        },
    }
    spec["runs"]["control"] = {
        **spec["runs"]["bd"],
        "set": {
            **spec["runs"]["bd"]["set"],
            "distill.params.lambda_t2s": 0.0,
            "distill.params.lambda_s2t": 0.0,
        },
    }
    spec["tables"] = [
        {
            "name": "main",
            "metrics": ["H@10"],
            "rows": [
                {"label": "Teacher", "run": "teacher"},
                {"label": "BD-Teacher", "run": "bd", "model": "teacher"},
            ],
        }
    ]
    spec["findings"] = []
    spec["figures"] = [
        {"kind": "rank-difference", "run": "bd", "vs": "control", "paper": {"before": 0.138, "after": 0.1064}}
    ]
    exp = Experiment(parse_spec(spec), tmp_path / "runs", records_dir=tmp_path / "records")
    assert exp.run(log=lambda s: None).ok
    rep = exp.report(tmp_path / "out")
    d = rep["rank_difference"]["bd"]
    assert d["seeds"] == [0, 1] and d["paper"] == {"before": 0.138, "after": 0.1064}
    root = tmp_path / "runs"
    values = []
    for seed in (0, 1):
        bd = load_run(exp.planner.task("bd", seed).directory(root))
        t0, s0 = (
            load_run(exp.planner.task(r, seed).directory(root), dataset=bd.dataset)
            for r in ("teacher", "student")
        )
        ref = _rank_diff_brute(t0.models["model"], s0.models["model"], bd.dataset)
        before = ref["eq6"]
        kept_file = exp.planner.task("bd", seed).directory(root) / "rank_difference_test.json"
        kept = json.loads(kept_file.read_text())
        assert kept["before"]["student_better"] == pytest.approx(ref["student_better"], rel=1e-12)
        curve = kept["before"]["curve"]  # quantiles of the Eq. 1 differences: min, median, max
        assert (curve[0], curve[-1]) == (ref["sorted"][0], ref["sorted"][-1])
        assert curve[len(curve) // 2] == pytest.approx(float(np.median(ref["sorted"])))
        after = _eq6_brute(bd.models["teacher"], bd.models["student"], bd.dataset)
        control = load_run(exp.planner.task("control", seed).directory(root), dataset=bd.dataset)
        after_control = _eq6_brute(control.models["teacher"], control.models["student"], bd.dataset)
        assert d["eq6"]["before"][str(seed)] == pytest.approx(before, rel=1e-9)
        assert d["eq6"]["after"][str(seed)] == pytest.approx(after, rel=1e-9)
        assert d["eq6"]["vs"][str(seed)] == pytest.approx(after_control, rel=1e-9)
        values.append((before, after, after_control))
    # three pairs of models, not mixed up: on some seed the three values differ
    assert any(len(set(v)) == 3 for v in values), values
    # two findings, in the index too: before above after; the control's after above BD's
    found = {f["row"]: f for f in rep["findings"] if f["metric"] == "Eq. 6"}
    assert set(found) == {"before bd", "after control"}
    assert found["before bd"]["verdict"] == d["verdict"]["before"] and found["before bd"]["seeds"] == 2
    assert found["before bd"]["row_mean"] == pytest.approx(np.mean(list(d["eq6"]["before"].values())))
    assert found["after control"]["row_mean"] == pytest.approx(np.mean(list(d["eq6"]["vs"].values())))
    assert found["after control"]["than_mean"] == pytest.approx(np.mean(list(d["eq6"]["after"].values())))
    md = (tmp_path / "out" / "toy.md").read_text()
    assert "Average rank difference (BD Table 4, Eq. 6), before and after run bd" in md
    assert "| after control | after / after control | paper before | paper after |" in md
    assert "| 0.1380 | 0.1064 |" in md
    assert (tmp_path / "out" / "toy_bd_rank-difference.png").read_bytes()[:4] == b"\x89PNG"
    # kept in the records: the same report without the run folders
    assert exp.record() > 0
    shutil.rmtree(root)
    again = Experiment(parse_spec(spec), root, records_dir=tmp_path / "records").report(tmp_path / "out2")
    assert again["rank_difference"] == rep["rank_difference"]
    for bad, match in (
        (
            {"kind": "rank-difference", "run": "teacher"},
            "a run that starts from a teacher run and a student run",
        ),
        ({"kind": "rank-difference", "run": "bd", "paper": {"during": 1.0}}, "paper.during"),
        (
            {"kind": "discrepancy", "run": "teacher", "table": "main", "paper": {"before": 1.0}},
            "paper and vs belong to a rank-difference figure",
        ),
        ({"kind": "rank-difference", "run": "bd", "vs": "student"}, "figures.0.vs|figures\\[0\\].vs"),
    ):
        with pytest.raises(RecdistillError, match=match):
            parse_spec({**spec, "figures": [bad]})


def test_bad_yaml_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nruns:\n  a: {set: {train.lr: 1}\n  b: [\n")
    assert main(["experiment", "status", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.yaml line" in err and err.count("\n") == 0
    assert main(["experiment", "status", str(tmp_path / "missing.yaml")]) == 2
    assert "experiment spec not found" in capsys.readouterr().err


def test_seed_offset_makes_a_second_model_of_one_config(tmp_path):
    spec = _spec(tmp_path)
    spec["runs"] = {
        "a": {"set": {"model.dim": 4}},
        "b": {"set": {"model.dim": 4}, "seed_offset": 1000},
        "c": {"set": {"model.dim": 4}},
    }
    spec["tables"], spec["findings"] = [], []
    planner = Planner(parse_spec(spec), tmp_path / "runs")
    a, b, c = (planner.task(n, 1) for n in "abc")
    assert a.key == c.key and a.key != b.key  # the same config is one run; the offset another
    assert b.config["train"]["seed"] == 1001 and a.config["train"]["seed"] == 1


def test_records_count_as_finished_and_retrain_only_what_a_new_run_needs(tmp_path):
    spec = _spec(tmp_path, seeds=[0, 1])
    path = _write(tmp_path, spec)
    records = tmp_path / "records"
    first = Experiment.load(path, tmp_path / "runs", records_dir=records)
    assert first.run(log=lambda s: None).ok
    n = first.record()
    assert n == len(first.status()) == 1 + 3 + 1 + 2  # teacher, 3 trials (one is seed 0), seed 1, rd x2
    for t in first.tasks()[0]:
        rec = first.planner.record_dir(t)
        assert (rec / "metrics.json").read_bytes() == (
            t.directory(tmp_path / "runs") / "metrics.json"
        ).read_bytes()
        assert not list(rec.glob("*.pt"))  # no model files, no checkpoint
    # another machine: no run folders, only the records
    second = Experiment.load(path, tmp_path / "elsewhere", records_dir=records)
    assert {r["state"] for r in second.status()} == {"recorded"}
    assert second.report_data()["tables"] == first.report_data()["tables"]
    assert second.run(log=lambda s: None).finished == []
    # a run interrupted or failed here but finished elsewhere: its record wins
    t0 = second.planner.task("rd", 1)
    t0.directory(tmp_path / "elsewhere").mkdir(parents=True)
    (t0.directory(tmp_path / "elsewhere") / "error.txt").write_text("x")
    assert second.planner.status(t0) == "recorded"
    # a run finished here reads only its own files, never its record's
    t1 = first.planner.task("rd", 0)
    (first.planner.record_dir(t1) / "extra.json").write_text("{}")
    assert first.planner.result_file(t1, "extra.json") is None
    assert first.planner.result_file(t1, "metrics.json") == t1.directory(tmp_path / "runs") / "metrics.json"
    # a new run that starts from the teacher: the teacher is trained again (the same run, the
    # same metrics), the recorded students are not
    spec["runs"]["cd"] = {"method": "cd", "teacher": "teacher", "set": {"model.dim": 4}, "seeds": [0]}
    third = Experiment.load(_write(tmp_path, spec), tmp_path / "elsewhere", records_dir=records)
    done = third.run(log=lambda s: None).finished
    assert sorted(done) == ["cd seed 0", "teacher seed 0"]
    t = third.planner.task("teacher", 0)
    again = json.loads((t.directory(tmp_path / "elsewhere") / "metrics.json").read_text())
    assert again["models"] == json.loads((third.planner.record_dir(t) / "metrics.json").read_text())["models"]
    with pytest.raises(RecdistillError, match="no records folder"):
        Experiment.load(path, tmp_path / "runs", records_dir=None).record()
    argv = ["experiment", "record", str(path), "--runs-dir", str(tmp_path / "runs")]
    assert main([*argv, "--records", str(tmp_path / "rec2")]) == 0
    assert len(list((tmp_path / "rec2").glob("*/metrics.json"))) == n
    # --fresh trains a recorded run again here (and the teacher it starts from): its model is
    # back, with its record's metrics
    t2 = second.planner.task("rd", 1)
    shutil.rmtree(t2.directory(tmp_path / "elsewhere"))
    argv = [
        "experiment",
        "run",
        str(path),
        "--runs-dir",
        str(tmp_path / "elsewhere"),
        "--records",
        str(records),
    ]
    assert main([*argv, "--only", "rd", "--seeds", "1"]) == 0
    assert not t2.directory(tmp_path / "elsewhere").exists()  # recorded: not trained
    assert main([*argv, "--only", "rd", "--seeds", "1", "--fresh"]) == 0
    out = t2.directory(tmp_path / "elsewhere")
    assert list(out.glob("*.pt"))
    rec = json.loads((second.planner.record_dir(t2) / "metrics.json").read_text())
    assert json.loads((out / "metrics.json").read_text())["models"] == rec["models"]


def test_status_piped_into_head_ends_quietly(tmp_path):
    """``recdistill experiment status SPEC | head -1``: no traceback when the reader leaves."""
    import subprocess
    import sys

    spec = _spec(tmp_path)
    spec["runs"]["student"].pop("search")
    spec["seeds"] = list(range(1000))  # 3000 lines: more than a pipe's buffer
    path = _write(tmp_path, spec)
    cmd = f"{sys.executable} -m recdistill experiment status {path} --runs-dir {tmp_path / 'runs'} | head -1"
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("toy:") and out.stderr == ""


def test_code_version_is_the_src_tree_of_the_commit(tmp_path):
    import subprocess

    from recdistill.experiment.report import code_version, commit_id

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout.strip()

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("x = 1\n")
    git("add", "-A")
    git("commit", "-qm", "a")
    a = git("rev-parse", "--short=12", "HEAD")
    (tmp_path / "README.md").write_text("docs\n")
    git("add", "-A")
    git("commit", "-qm", "docs only")
    b = git("rev-parse", "--short=12", "HEAD")
    (tmp_path / "src" / "m.py").write_text("x = 2\n")
    git("add", "-A")
    git("commit", "-qm", "code")
    c = git("rev-parse", "--short=12", "HEAD")
    assert code_version(a, tmp_path) == code_version(b, tmp_path) != code_version(c, tmp_path)
    assert code_version(a + "+dirty", tmp_path) == a + "+dirty"
    assert code_version("0ld0ld0ld0ld", tmp_path) == "0ld0ld0ld0ld"
    # the commit a run records: +dirty only for uncommitted code, configs or specs
    assert commit_id(tmp_path) == c
    (tmp_path / "README.md").write_text("more docs\n")
    assert commit_id(tmp_path) == c
    (tmp_path / "src" / "m.py").write_text("x = 3\n")
    assert commit_id(tmp_path) == c + "+dirty"
    assert commit_id(tmp_path / "src" / "no-such-dir") == "unknown"


def test_process_commit_stamps_the_code_loaded(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs trained in-process by one command carry the commit current at its first run, even
    when HEAD moves on between runs (the process keeps the code it loaded)."""
    import recdistill.experiment.execute as execute
    import recdistill.experiment.report as report

    spec = _spec(tmp_path)
    spec["runs"] = {"student": {"set": {"model.dim": 4, "train.epochs": 1}}}
    for key in ("tables", "figures", "findings"):  # they name the runs dropped here
        spec.pop(key, None)
    spec["seeds"] = [0, 1]
    path = _write(tmp_path, spec)
    heads = iter(f"{i:012d}" for i in range(100))  # every call sees a newer HEAD
    monkeypatch.setattr(report, "commit_id", lambda cwd=None: next(heads))
    execute.process_commit.cache_clear()
    try:
        exp = Experiment.load(path, tmp_path / "runs")
        assert sorted(exp.run(log=lambda s: None).finished) == ["student seed 0", "student seed 1"]
        dirs = [exp.planner.task("student", s).directory(tmp_path / "runs") for s in (0, 1)]
        stamps = [json.loads((d / "task.json").read_text()) for d in dirs]
        first = stamps[0]["commits"]
        assert len(first) == 1 and all(st["commits"] == first for st in stamps)
    finally:
        execute.process_commit.cache_clear()


def _bh_reference(ps):
    """Benjamini-Hochberg by its definition: q_(i) = min over j >= i of p_(j) m / j, at most 1."""
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    q = [0.0] * m
    for rank_i, i in enumerate(order, start=1):
        q[i] = min(1.0, min(ps[order[j - 1]] * m / j for j in range(rank_i, m + 1)))
    return q


def test_verdicts_contradicted_and_flagged():
    a = {0: 0.50, 1: 0.52, 2: 0.51, 3: 0.53}
    b = {0: 0.48, 1: 0.49, 2: 0.50, 3: 0.50}
    assert verdict(b, a)[0] == "contradicted"  # significantly below: its own verdict
    assert verdict({0: 0.4, 1: 0.45}, {0: 0.45, 1: 0.44})[0] == "not reproduced"  # below, not significant
    f = finding("c", "t", "r", "o", "H@5", a, b, flag="comparator collapsed")
    assert f["verdict"] == "flagged: comparator collapsed" and f["flag"] == "comparator collapsed"
    assert finding("c", "t", "r", "o", "H@5", a, {}, flag="x")["verdict"] == "not run yet"


def test_adjust_findings_bh_against_reference():
    from recdistill.experiment.stats import adjust_findings

    rng = np.random.default_rng(0)
    fs = []
    for i in range(12):
        base = rng.uniform(0.3, 0.5, 5)
        shift = rng.normal(0.0, 0.01, 5) + (0.02 if i % 3 == 0 else -0.03 if i % 3 == 1 else 0.0)
        a, b = dict(enumerate(base + shift)), dict(enumerate(base))
        fs.append(finding(f"c{i}", "t", "r", "o", "H@5", a, b))
    fs.append(
        finding(
            "flagged",
            "t",
            "r",
            "o",
            "H@5",
            dict(enumerate([0.9] * 3 + [0.8, 0.7])),
            dict(enumerate([0.1, 0.2, 0.3, 0.2, 0.1])),
            flag="comparator collapsed",
        )
    )
    fs.append(finding("one seed", "t", "r", "o", "H@5", {0: 0.5}, {0: 0.4}))
    out = adjust_findings(fs)
    ps = [f["p"] for f in fs[:12]]
    ref = _bh_reference(ps)
    for f, q in zip(out[:12], ref):
        assert f["q"] == pytest.approx(q, rel=1e-12)
        diff = f["row_mean"] - f["than_mean"]
        want = (
            ("reproduced" if diff > 0 else "contradicted")
            if q < 0.05
            else ("same direction, not significant" if diff > 0 else "not reproduced")
        )
        assert f["verdict"] == want
    assert any(f["verdict"] == "contradicted" for f in out) and any(f["verdict"] == "reproduced" for f in out)
    # q never below p; a p < 0.05 can lose its verdict after adjustment
    assert all(f["q"] >= f["p"] - 1e-15 for f in out[:12])
    assert out[12]["q"] is None and out[12]["verdict"].startswith("flagged")
    assert out[13]["q"] is None and out[13]["verdict"] == "incomplete (1 seed)"
    # the family excludes flagged findings: adding one does not move the others' q
    again = adjust_findings(fs[:12])
    assert [f["q"] for f in again] == [f["q"] for f in out[:12]]


def test_index_lists_q_values(tmp_path):
    from recdistill.experiment.report import write_index

    a = {0: 0.50, 1: 0.52, 2: 0.51, 3: 0.53}
    b = {0: 0.48, 1: 0.49, 2: 0.50, 3: 0.50}
    rep = {
        "name": "r",
        "title": "t",
        "commit": "abc",
        "protocol": None,
        "tables": [],
        "findings": [finding("up", "t", "r", "o", "H@5", a, b), finding("down", "t", "r", "o", "H@5", b, a)],
    }
    write_index([rep], tmp_path / "README.md", "cmd")
    text = (tmp_path / "README.md").read_text()
    assert "| p | q |" in text and "contradicted" in text and "Benjamini-Hochberg" in text


def test_settings_added_by_issue_33_keep_earlier_keys():
    """DCD's ``candidates`` / ``n_candidates`` and RRD's ``item_rows`` at the values that give
    what earlier runs did leave a run's key as it was; another value is another run."""
    cfg = {"data": {"name": "toy"}, "distill": {"method": "dcd", "params": {}}}
    old = {"lambda_ucd": 1e-3, "item_side": True}
    key = run_key(cfg, {}, old)
    neutral = dict(old, candidates="all", n_candidates=500, item_rows="positives")
    assert run_key(cfg, {}, neutral) == key
    assert run_key(cfg, {}, dict(neutral, candidates="teacher_top")) != key
    assert run_key(cfg, {}, dict(neutral, item_rows="lists")) != key
    assert run_key(cfg, {}, dict(neutral, item_side=False)) != key  # Eq. 9: a new run
    # the committed DCD specs still find their recorded runs (the pre-#33 objective, pinned)
    spec = Path(__file__).resolve().parents[1] / "experiments" / "dcd-table2.yaml"
    records = Path(__file__).resolve().parents[1] / "results" / "runs"
    exp = Experiment.load(spec, Path("/nonexistent/runs"), records_dir=records)
    states = {r["state"] for r in exp.status(only=("dcd",))}
    assert states == {"recorded"}, states


@pytest.mark.parametrize(
    "edit,where",
    [
        (lambda s: s.update(name="../../x"), "toy.yaml.name"),
        (lambda s: s.update(name="a/b"), "toy.yaml.name"),
        (lambda s: s.update(name=".hidden"), "toy.yaml.name"),
        (lambda s: s["runs"].update({"../evil": {"set": {"model.dim": 4}}}), "toy.yaml.runs"),
        (lambda s: s["tables"][0].update(name="../t"), "toy.yaml.tables[0].name"),
        (
            lambda s: s.update(
                figures=[
                    {
                        "kind": "heatmap",
                        "run": "student",
                        "x": "train.lr",
                        "y": "train.lr",
                        "file": "../../f.png",
                    }
                ]
            ),
            "toy.yaml.figures[0].file",
        ),
    ],
)
def test_names_that_become_files_must_be_plain(tmp_path, edit, where):
    """A spec's name, its runs', tables' and figure files' names become file names under the
    output folder: a path separator, '..' or a leading dot is a one-line error, before any run."""
    spec = _spec(tmp_path)
    edit(spec)
    with pytest.raises(RecdistillError, match=rf"{re.escape(where)}: .* is not a plain name"):
        parse_spec(spec, tmp_path / "toy.yaml")


def test_demo_reference_is_generated_from_the_committed_report():
    """The multi-seed result the demo prints is what scripts/demo_reference.py makes from
    results/dcd-table2.json (not typed), and names the demo's own method."""
    import importlib.util

    from recdistill.experiment.demo import DEMO_REFERENCE, DEMO_SPEC, reference_lines

    root = Path(__file__).resolve().parents[1]
    mod_spec = importlib.util.spec_from_file_location(
        "demo_reference", root / "scripts" / "demo_reference.py"
    )
    assert mod_spec is not None and mod_spec.loader is not None
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    made = mod.reference(json.loads((root / "results" / "dcd-table2.json").read_text()))
    assert json.loads(DEMO_REFERENCE.read_text()) == json.loads(json.dumps(made))
    spec = load_spec(DEMO_SPEC)
    methods = {r.method for r in spec.runs.values() if r.method}
    assert methods == {"rrd+ir-rrd"} and made["row"] == "RRD + IR-RRD"
    lines = reference_lines()
    assert "RRD + IR-RRD H@5 0.4704" in lines[1] and "tuned student" in lines[1]


def test_adjust_findings_uses_each_findings_alpha():
    from recdistill.experiment.stats import adjust_findings

    a = {0: 0.50, 1: 0.52, 2: 0.51, 3: 0.53}
    b = {0: 0.48, 1: 0.49, 2: 0.50, 3: 0.50}
    f = finding("c", "t", "r", "o", "H@5", a, b, alpha=1e-6)
    (out,) = adjust_findings([f])
    assert out["q"] == pytest.approx(f["p"]) and out["q"] > 1e-6
    assert out["verdict"] == "same direction, not significant"  # not reproduced at its own alpha


def test_compress_chooses_the_best_validation_row():
    from recdistill.experiment.compress import choose_row

    def row(run, label, mean, vs=None):
        return {"run": run, "label": label, "metrics": {"H@5": {"mean": mean, "std": 0.0, "n": 1}}, "vs": vs}

    def search(run, scores):
        return {"run": run, "trials": [{"valid": s} for s in scores]}

    rep = {
        "tables": [
            {
                "metrics": ["H@5"],
                "rows": [
                    row("teacher", "T", 0.6),
                    row("student", "S", 0.40),
                    row("rrd", "RRD", 0.42),
                    row("dcd", "DCD", 0.41),
                ],
            }
        ],
        "searches": [
            search("student", [0.30, 0.41]),
            search("rrd", [0.43, None, 0.39]),
            search("dcd", [0.45]),
        ],
    }
    chosen, line = choose_row(rep)
    assert (
        chosen == "dcd" and line.startswith("Chosen on validation: DCD. Test H@5 0.4100") and "+2.5%" in line
    )
    rep["searches"][2] = search("dcd", [0.40])
    rep["searches"][1] = search("rrd", [0.41])
    chosen, line = choose_row(rep)
    assert chosen == "student" and line.startswith("No distiller beat the tuned student")
