"""``recdistill compress``: from a user's own log (or a named dataset) to a small model, as one
experiment: a teacher, the plain student of the chosen size tuned on validation, and each
distiller tuned with the same budget (the same number of trials over the student's L2 and the
method's weights), then the best row on validation, its test metrics and gain over the tuned
student, its size and top-50 time against the teacher.

The generated spec is saved as ``<out>/compress.yaml`` and run by the experiment runner into
``<out>/runs``, so the result is reproducible (``recdistill experiment run <out>/compress.yaml``)
and the command resumable (run it again: finished runs are reused). The report is
``<out>/compress.md`` (``.csv``, ``.json``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from recdistill.atomic import atomic_text
from recdistill.errors import RecdistillError

__all__ = ["DEFAULT_METHODS", "compress", "compress_spec"]

#: the distillers compress tunes by default: the two the committed tuned comparison found
#: above an equally tuned student (results/dcd-table2.md)
DEFAULT_METHODS = ("rrd+ir-rrd", "dcd")
#: each method's weights (tied keys share one value), searched on a log scale
METHOD_SPACE: dict[str, dict[str, dict[str, Any]]] = {
    "rd": {"distill.params.alpha": {"low": 1e-3, "high": 0.5, "log": True}},
    "cd": {"distill.params.lambda_kd": {"low": 1e-3, "high": 1.0, "log": True}},
    "rrd": {"distill.params.lambda_rrd": {"low": 1e-5, "high": 1e-1, "log": True}},
    "rrd+ir-rrd": {
        "distill.params.lambda_rrd,distill.params.lambda_ir": {"low": 1e-5, "high": 1e-1, "log": True}
    },
    "dcd": {"distill.params.lambda_ucd,distill.params.lambda_icd": {"low": 1e-6, "high": 1e-2, "log": True}},
}
#: fixed settings of a method's row: DCD as the committed comparison ran it (Eq. 9 plus IR-RRD's
#: term, results/dcd-table2.md), the variant that comparison recommends
METHOD_SET: dict[str, dict[str, Any]] = {"dcd": {"distill.params.item_side": True}}
L2_SPACE = {"train.weight_decay": {"low": 1e-8, "high": 1e-3, "log": True}}
LABELS = {"rd": "RD", "cd": "CD", "rrd": "RRD", "rrd+ir-rrd": "RRD + IR-RRD", "dcd": "DCD"}


def compress_spec(
    data: dict[str, Any],
    model: str = "bpr",
    teacher_dim: int | None = None,
    ratio: float = 10.0,
    student_dim: int | None = None,
    methods: tuple[str, ...] = DEFAULT_METHODS,
    trials: int = 4,
    seeds: tuple[int, ...] = (0,),
    train: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The experiment spec (a mapping, as the YAML reads) that :func:`compress` runs."""
    from recdistill.data import DATASETS
    from recdistill.data.catalog import dataset_protocol
    from recdistill.models import resolve_dim

    for m in methods:
        if m not in METHOD_SPACE:
            raise RecdistillError(f"--methods: {m!r} is not one of {', '.join(METHOD_SPACE)}")
    if not isinstance(trials, int) or trials < 1:
        raise RecdistillError(f"--trials: expected an integer >= 1, got {trials!r}")
    if not ratio > 1:
        raise RecdistillError(f"--ratio: expected a number > 1, got {ratio}")
    name = str(data["name"])
    if name not in DATASETS and Path(name).is_file():  # the saved spec runs from any folder
        name = str(Path(name).resolve())
        data = {**data, "name": name}
    if data.get("data_dir"):
        data = {**data, "data_dir": str(Path(data["data_dir"]).resolve())}
    for flag, v in (("--teacher-dim", teacher_dim), ("--student-dim", student_dim)):
        if v is not None and (not isinstance(v, int) or v < 1):
            raise RecdistillError(f"{flag}: expected an integer >= 1, got {v!r}")
    t_dim = (
        teacher_dim if teacher_dim is not None else resolve_dim(name if name in DATASETS else "", "teacher")
    )
    s_dim = student_dim if student_dim is not None else max(1, round(t_dim / ratio))
    if s_dim >= t_dim:
        raise RecdistillError(f"the student (dim {s_dim}) must be smaller than the teacher (dim {t_dim})")
    sampled = dataset_protocol(name) == "sampled" or data.get("n_candidates") is not None
    monitor = "H@5" if sampled else "H@50"
    base_train = {
        "epochs": 300,
        "batch_size": 1024,
        "lr": 1e-3,
        "eval_every": 5,
        "patience": 3,
        "monitor": monitor,
        "eval_protocol": "sampled" if sampled else "full",
        "ks": [5, 10, 20, 50],
        "progress": False,
        **(train or {}),
    }
    search = {"sampler": "tpe", "trials": trials, "metric": monitor}
    runs: dict[str, Any] = {
        "teacher": {"set": {"model.dim": t_dim}, "seeds": [seeds[0]]},
        "student": {"set": {"model.dim": s_dim}, "search": {**search, "space": dict(L2_SPACE)}},
    }
    rows = [
        {"label": f"Teacher (dim {t_dim})", "run": "teacher"},
        {"label": f"Student (dim {s_dim}, L2 tuned)", "run": "student"},
    ]
    for m in methods:
        runs[m] = {
            "method": m,
            "teacher": "teacher",
            "set": {"model.dim": s_dim, **METHOD_SET.get(m, {})},
            "search": {**search, "space": {**L2_SPACE, **METHOD_SPACE[m]}},
        }
        rows.append({"label": LABELS[m], "run": m, "vs": f"Student (dim {s_dim}, L2 tuned)"})
    return {
        "name": "compress",
        "title": f"compress {name}: {model} {t_dim} -> {s_dim}, every row tuned with {trials} trials",
        "description": (
            "Generated by recdistill compress: a teacher, the plain student tuned on validation, and "
            f"each distiller tuned with the same budget ({trials} TPE trials over the student's L2 and "
            "the method's weights), then the chosen settings on every seed."
        ),
        "base": {"data": dict(data), "model": {"name": model}, "train": base_train},
        "seeds": list(seeds),
        "runs": runs,
        "tables": [{"name": "compress", "metrics": [monitor, monitor.replace("H@", "N@")], "rows": rows}],
    }


def compress(
    data: dict[str, Any],
    out: str | Path,
    jobs: int = 1,
    device: str = "cpu",
    print_fn: Callable[[str], Any] = print,
    **spec_args: Any,
) -> dict[str, Any]:
    """Write and run :func:`compress_spec`'s spec under ``out``; print the table and the verdict;
    return the report's data."""
    from recdistill.experiment import Experiment
    from recdistill.experiment.render import table_markdown
    from recdistill.experiment.report import write_report
    from recdistill.experiment.spec import parse_spec

    out = Path(out)
    spec_map = compress_spec(data, **spec_args)
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / "compress.yaml"
    atomic_text(yaml.safe_dump(spec_map, sort_keys=False), spec_path)
    exp = Experiment(parse_spec(spec_map, spec_path), out / "runs", None, {"train": {"device": device}}, None)
    summary = exp.run(jobs=jobs, log=print_fn)
    if not summary.ok:
        raise RecdistillError(f"compress: runs failed: {', '.join(summary.failed + summary.skipped)}")
    rep = write_report(exp.planner, out, f"recdistill compress ({spec_path})")
    table = rep["tables"][0]
    print_fn("")
    print_fn(f"{table['split']} split, {table['protocol']} protocol")
    print_fn("\n".join(table_markdown(table)))
    for line in verdict_lines(rep, exp):
        print_fn(line)
    print_fn(f"spec: {spec_path}; report: {out / 'compress.md'}")
    return rep


def verdict_lines(rep: dict[str, Any], exp: Any) -> list[str]:
    """:func:`choose_row`'s line, then the chosen model's size and top-50 time against the teacher."""
    from recdistill.analysis.profile import profile_model
    from recdistill.runs import load_run

    chosen, line = choose_row(rep)
    lines = [line]
    planner = exp.planner
    models = {}
    dataset = None
    for run in ("teacher", chosen):
        task = planner.task(run, planner.seeds_of(run)[0])
        loaded = load_run(task.directory(planner.root), dataset=dataset)
        dataset = loaded.dataset
        models[run] = loaded.model
    assert dataset is not None
    t, c = (profile_model(models[k], dataset, k=50) for k in ("teacher", chosen))
    n_t, n_c = (sum(p.numel() for p in models[k].parameters()) for k in ("teacher", chosen))
    lines.append(
        f"Size {n_c / 1e6:.2f}M parameters against the teacher's {n_t / 1e6:.2f}M "
        f"({n_t / n_c:.1f}x smaller); "
        f"every user's top-50 in {c['topk_time_s']:.2f} s against {t['topk_time_s']:.2f} s."
    )
    return lines


def choose_row(rep: dict[str, Any]) -> tuple[str, str]:
    """The distiller with the best validation score over its trials (ties: the earlier row) if it
    beats the tuned student's best, else "student"; and the verdict in one line (the chosen row's
    test gain over the tuned student with its spread, or plainly that no method beat it)."""
    table = rep["tables"][0]
    metric = table["metrics"][0]
    rows = {r["run"]: r for r in table["rows"]}
    searches = {s["run"]: s for s in rep["searches"]}

    def best_valid(run: str) -> float:
        scores = [t["valid"] for t in searches[run]["trials"] if t["valid"] is not None]
        if not scores:
            raise RecdistillError(f"compress: {run} has no trial with a validation score")
        return max(scores)

    student_valid = best_valid("student")
    methods = [r for r in rows if r not in ("teacher", "student")]
    best = max(methods, key=best_valid)
    if best_valid(best) <= student_valid:
        return "student", (
            f"No distiller beat the tuned student on validation ({metric} {student_valid:.4f}; best "
            f"{rows[best]['label']} {best_valid(best):.4f}): use the plain student."
        )
    r, s = rows[best]["metrics"][metric], rows["student"]["metrics"][metric]
    vs = (rows[best].get("vs_stats") or {}).get(metric) or {}
    spread = f" ± {r['std']:.4f} over {r['n']} seeds" if r["n"] > 1 else " (1 seed: no spread; --seeds)"
    p = f", paired p = {vs['p']:.2g}" if vs.get("p") is not None else ""
    gain = f"{(r['mean'] / s['mean'] - 1) * 100:+.1f}%" if s["mean"] else "the student scores 0"
    return best, (
        f"Chosen on validation: {rows[best]['label']}. Test {metric} {r['mean']:.4f}{spread} against "
        f"{s['mean']:.4f} for the tuned student ({gain}{p})."
    )
