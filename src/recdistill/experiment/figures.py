"""The figures and analyses of an experiment's report: DCD Fig. 1a's rank discrepancy, BD's
rank differences (Eq. 1, Table 4) and the searches' heat maps, computed from the finished runs
(the model-level analyses live in :mod:`recdistill.analysis`) and cached beside them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from recdistill.atomic import atomic_json, read_json
from recdistill.experiment.plan import Planner
from recdistill.experiment.search import search_state
from recdistill.experiment.stats import finding

__all__ = ["DRAW", "RANK_DIFFERENCE_FILE", "discrepancy_file", "discrepancy_of", "rank_difference_of"]


def discrepancy_file(teacher_task: Any, model: str | None, n: int) -> str:
    return f"discrepancy_{teacher_task.key[:16]}_{model or 'primary'}_n{n}.json"


def discrepancy_of(
    planner: Planner, teacher_task: Any, student_task: Any, model: str | None, n: int
) -> dict[str, float]:
    """DCD Fig. 1a's values for one student run against its teacher run, cached in the student's
    folder (``discrepancy_<teacher key>_<model>_n<n>.json``) since they need every rank."""
    from recdistill.analysis.discrepancy import top_discrepancy
    from recdistill.runs import load_run

    d = student_task.directory(planner.root)
    name = discrepancy_file(teacher_task, model, n)
    cached = planner.result_file(student_task, name)  # here, or in the run's record
    if cached is not None:
        return read_json(cached)
    cache = d / name
    student_run = load_run(d)
    teacher_run = load_run(teacher_task.directory(planner.root), dataset=student_run.dataset)
    metrics = planner.metrics(student_task) or {}
    s_model = student_run.models[model or metrics.get("primary", "model")]
    t_model = teacher_run.models.get("model", next(iter(teacher_run.models.values())))
    values = {
        side: top_discrepancy(t_model, s_model, student_run.dataset, n, side) for side in ("user", "item")
    }
    atomic_json(values, cache)
    return values


def _discrepancy(planner: Planner, fig: Any, path: Path, rep: dict[str, Any]) -> bool:
    """DCD Fig. 1a for a table's rows (every finished seed; the mean over seeds), into the
    report's data (``rep["discrepancy"]``) and a PNG."""
    from recdistill.analysis.plots import plot_discrepancy

    table = next(t for t in planner.spec.tables if t.name == fig.table)
    values: dict[str, dict[str, float]] = {}
    per_seed: dict[str, dict[str, list[float]]] = {}
    for row in table.rows:
        if row.run == fig.run:
            continue
        sides: dict[str, list[float]] = {"user": [], "item": []}
        for seed in planner.seeds_of(row.run):
            st = planner.task(row.run, seed)
            tt = planner.task(fig.run, planner.dep_seed(fig.run, seed))
            if st is None or tt is None:
                continue
            local = planner.status(st) == "done" and planner.status(tt) == "done"
            if not local and planner.result_file(st, discrepancy_file(tt, row.model, fig.n)) is None:
                continue  # neither the models nor a recorded value here
            v = discrepancy_of(planner, tt, st, row.model, fig.n)
            for side in sides:
                sides[side].append(v[side])
        if sides["user"]:
            values[row.label] = {side: float(np.mean(v)) for side, v in sides.items()}
            per_seed[row.label] = sides
    rep.setdefault("discrepancy", {})[fig.table] = {"n": fig.n, "mean": values, "per_seed": per_seed}
    if not values:
        return False
    plot_discrepancy(values, path, fig.n)
    return True


RANK_DIFFERENCE_FILE = "rank_difference_test.json"


def rank_difference_of(planner: Planner, task: Any) -> dict[str, Any] | None:
    """BD Table 4 for one run that starts from a teacher and a student run: ``before`` (those two
    runs' models) and ``after`` (its own ``teacher`` and ``student``), each
    :func:`recdistill.analysis.rank_diff.rank_difference_summary` on the test split; cached in the
    run's folder (``rank_difference_test.json``, kept in its record). None when neither the cache
    nor the three runs' models are here."""
    from recdistill.analysis.rank_diff import rank_difference_summary
    from recdistill.experiment.plan import Task
    from recdistill.runs import load_run

    cached = planner.result_file(task, RANK_DIFFERENCE_FILE)
    if cached is not None:
        return dict(read_json(cached))
    deps = [task.deps.get("teacher"), task.deps.get("student")]
    if not all(isinstance(d, Task) and planner.status(d) == "done" for d in deps):
        return None
    if planner.status(task) != "done":
        return None
    run = load_run(task.directory(planner.root))
    before = [load_run(d.directory(planner.root), dataset=run.dataset) for d in deps]
    t0, s0 = (r.models.get("model", next(iter(r.models.values()))) for r in before)
    values = {
        "before": rank_difference_summary(t0, s0, run.dataset),
        "after": rank_difference_summary(run.models["teacher"], run.models["student"], run.dataset),
    }
    atomic_json(values, task.directory(planner.root) / RANK_DIFFERENCE_FILE)
    return values


def _rank_difference(planner: Planner, fig: Any, path: Path, rep: dict[str, Any]) -> bool:
    """BD Table 4 (Eq. 6 before and after ``fig.run``, every finished seed, paired t-tests of
    after against before and, with ``fig.vs``, against ``vs``'s after) into
    ``rep["rank_difference"][run]`` and two findings, and Figs. 1a / 4 (the sorted Eq. 1
    differences before and after, the first finished seed) as a PNG."""
    from recdistill.analysis.plots import plot_rank_difference_curves

    per_seed: dict[str, dict[int, dict[str, Any]]] = {"before": {}, "after": {}}
    if fig.vs:
        per_seed["vs"] = {}
    for seed in planner.seeds_of(fig.run):
        for run in (fig.run, fig.vs) if fig.vs else (fig.run,):
            task = planner.task(run, seed)
            v = None if task is None else rank_difference_of(planner, task)
            if v is None:
                continue
            if run == fig.run:
                per_seed["before"][seed], per_seed["after"][seed] = v["before"], v["after"]
            else:
                per_seed["vs"][seed] = v["after"]
    eq6 = {when: {s: v["eq6"] for s, v in d.items()} for when, d in per_seed.items()}
    table = f"rank difference, run {fig.run}"
    findings = [
        finding(  # "before above after": BD lowers it
            f"{fig.run} lowers the teacher-student average rank difference (BD Table 4)",
            table,
            f"before {fig.run}",
            f"after {fig.run}",
            "Eq. 6",
            eq6["before"],
            eq6["after"],
        )
    ]
    if fig.vs:
        findings.append(
            finding(
                f"{fig.run} leaves a lower average rank difference than {fig.vs} (BD Table 4)",
                table,
                f"after {fig.vs}",
                f"after {fig.run}",
                "Eq. 6",
                eq6["vs"],
                eq6["after"],
            )
        )
    rep["findings"].extend(findings)
    rep.setdefault("rank_difference", {})[fig.run] = {
        "vs": fig.vs,
        "seeds": sorted(eq6["after"]),
        "eq6": {when: {str(s): x for s, x in d.items()} for when, d in eq6.items()},
        "student_better": {
            when: {str(s): v["student_better"] for s, v in d.items()} for when, d in per_seed.items()
        },
        "p": {"before": findings[0]["p"], **({"vs": findings[1]["p"]} if fig.vs else {})},
        "verdict": {"before": findings[0]["verdict"], **({"vs": findings[1]["verdict"]} if fig.vs else {})},
        "paper": fig.paper or {},
    }
    if not eq6["after"]:
        return False
    first = min(eq6["after"])
    curves = {f"before {fig.run}, seed {first}": per_seed["before"][first]}
    curves[f"after {fig.run}, seed {first}"] = per_seed["after"][first]
    if fig.vs and first in per_seed["vs"]:
        curves[f"after {fig.vs}, seed {first}"] = per_seed["vs"][first]
    plot_rank_difference_curves(curves, path)
    return True


def _heatmap(planner: Planner, fig: Any, path: Path, rep: dict[str, Any]) -> bool:
    """A search's validation scores over two of its keys (other keys: the best score), into the
    report's data (``rep["heatmaps"][<file>]``: x and y values, grid[y][x], None where not run)
    and a PNG."""
    from recdistill.analysis.plots import plot_heatmap

    state = search_state(planner, fig.run)
    cells: dict[tuple[Any, Any], float] = {}
    for task, score in zip(state.tasks, state.scores):
        if score is None:
            continue
        k = (task.params[fig.x], task.params[fig.y])
        cells[k] = max(cells.get(k, -math.inf), score)
    if not cells:
        return False
    xs = sorted({k[0] for k in cells})
    ys = sorted({k[1] for k in cells})
    grid = np.full((len(ys), len(xs)), np.nan)
    for (x, y), v in cells.items():
        grid[ys.index(y), xs.index(x)] = v
    title = fig.title or f"{planner.spec.name}: valid {state.metric}"
    rep.setdefault("heatmaps", {})[path.name] = {
        "run": fig.run,
        "x": fig.x,
        "y": fig.y,
        "xs": xs,
        "ys": ys,
        "grid": [[None if np.isnan(v) else float(v) for v in row] for row in grid],
    }
    plot_heatmap(grid, xs, ys, fig.x.split(".")[-1], fig.y.split(".")[-1], title, path)
    return True


#: figure kind -> what draws it (``(planner, figure, path, report) -> made``)
DRAW = {"heatmap": _heatmap, "discrepancy": _discrepancy, "rank-difference": _rank_difference}
