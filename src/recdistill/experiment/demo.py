"""``recdistill demo``: the packaged spec ``specs/demo.yaml`` (a teacher, the plain student and a
distilled student of the same size) run by the experiment runner, then one table and what the
distilled student gained: accuracy against the plain student, size and time to rank every user's
list against the teacher. If the distilled student does not beat the plain student, it says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recdistill.experiment.plan import Planner
from recdistill.experiment.render import table_markdown
from recdistill.experiment.report import build_report
from recdistill.experiment.spec import ExperimentSpec, load_spec

__all__ = ["DEMO_SPEC", "demo_summary", "run_demo"]

#: the demo's spec, shipped with the package
DEMO_SPEC = Path(__file__).resolve().parent / "specs" / "demo.yaml"
#: the committed multi-seed result of the demo's method (made by ``scripts/demo_reference.py``)
DEMO_REFERENCE = Path(__file__).resolve().parent / "specs" / "demo-reference.json"


def reference_lines(path: Path = DEMO_REFERENCE) -> list[str]:
    """The committed multi-seed comparison behind the demo's choice of method, in words."""
    import json

    ref = json.loads(path.read_text())
    out = [f"Committed result ({ref['source']}, {ref['protocol']} protocol, commit {ref['commit']}):"]
    for m, v in ref["metrics"].items():
        out.append(
            f"  {ref['row']} {m} {v['row_mean']:.4f} ± {v['row_std']:.4f} against {v['than_mean']:.4f} ± "
            f"{v['than_std']:.4f} for the tuned {ref['than'].lower()} over {v['seeds']} seeds "
            f"({v['gain_pct']:+.1f}%, paired p = {v['p']:.2g}); this run is one seed."
        )
    return out


def run_demo(
    out: str | Path = "runs/demo",
    data_dir: str | None = None,
    device: str = "cpu",
    seed: int = 0,
    epochs: int | None = None,
    fresh: bool = False,
    spec: ExperimentSpec | str | Path | None = None,
    print_fn: Callable[[str], Any] = print,
    jobs: int | None = None,
) -> dict[str, Any]:
    """Run the demo spec (default :data:`DEMO_SPEC`) into ``out`` and print its table and
    summary. Finished runs in ``out`` are reused (a changed setting is another run; committed
    records under ``results/runs`` are not, as they keep no model); ``fresh`` trains every
    run again; ``epochs`` sets every run's epochs (a quick look); ``jobs``: runs in parallel
    processes with one thread each (None: 2 where the machine has 2 or more cores, so the plain
    student trains next to the teacher). Returns the report's data."""
    from recdistill.experiment import Experiment

    packaged = spec is None
    spec = spec if isinstance(spec, ExperimentSpec) else load_spec(spec or DEMO_SPEC)
    overrides: dict[str, Any] = {"train": {"device": device}}
    if data_dir:
        overrides["data"] = {"data_dir": str(data_dir)}
    if epochs is not None:
        overrides["train"]["epochs"] = epochs
    # no records: the summary times the models themselves, and a record keeps no model
    exp = Experiment(spec, out, (seed,), overrides, records_dir=None)
    if jobs is None:
        jobs = 2 if (os.cpu_count() or 1) >= 2 else 1
    if jobs < 1:
        from recdistill.errors import RecdistillError

        raise RecdistillError(f"demo: --jobs: expected an integer >= 1, got {jobs}")
    summary = exp.run(jobs=jobs, log=print_fn, fresh=fresh)
    if not summary.ok:
        from recdistill.errors import RecdistillError

        raise RecdistillError(f"demo: runs failed: {', '.join(summary.failed + summary.skipped)}")
    rep = build_report(exp.planner, "recdistill demo")
    table = rep["tables"][0]
    print_fn("")
    print_fn(f"{table['split']} split, {table['protocol']} protocol, seed {seed}")
    print_fn("\n".join(table_markdown(table)))
    for line in demo_summary(exp.planner, table):
        print_fn(line)
    if packaged:
        for line in reference_lines():
            print_fn(line)
    return rep


def demo_summary(planner: Planner, table: dict[str, Any]) -> list[str]:
    """What the distilled row (the one with ``vs``) gained: accuracy over the plain student,
    size and top-50 time against the teacher (the first row)."""
    from recdistill.analysis.profile import profile_model
    from recdistill.runs import load_run

    rows = table["rows"]
    teacher = rows[0]
    kd = next(r for r in rows if r.get("vs"))
    plain = next(r for r in rows if r["label"] == kd["vs"])
    metric = table["metrics"][0]
    a, b, t = (r["metrics"][metric]["mean"] for r in (kd, plain, teacher))
    if a is None or b is None or t is None:
        return ["(some runs have not finished)"]
    lines = []
    if a > b:
        lines.append(
            f"{kd['label']}: {metric} {a:.4f} against {b:.4f} for the plain student "
            f"(+{(a / b - 1) * 100:.1f}%)."
        )
    else:
        lines.append(
            f"{kd['label']}: {metric} {a:.4f}, NOT above the plain student's {b:.4f} in this run: "
            "distillation did not pay here (see results/README.md for the multi-seed comparisons)."
        )
    times = {}
    dataset = None
    for r in (teacher, kd):
        task = planner.task(r["run"], planner.seeds[0])
        assert task is not None
        run = load_run(task.directory(planner.root), dataset=dataset)
        dataset = run.dataset
        model = run.models.get("student", next(iter(run.models.values())))
        times[r["label"]] = profile_model(model, dataset, k=50)["topk_time_s"]
    ratio = teacher["n_parameters"] / kd["n_parameters"]
    lines.append(
        f"It has {ratio:.1f}x fewer parameters than the teacher ({kd['n_parameters'] / 1e6:.2f}M vs "
        f"{teacher['n_parameters'] / 1e6:.2f}M), keeps {a / t * 100:.0f}% of the teacher's {metric}, and "
        f"ranks every user's top-50 in {times[kd['label']]:.2f} s against {times[teacher['label']]:.2f} s."
    )
    return lines
