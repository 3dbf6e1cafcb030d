"""`recdistill analyze ...` subcommands: the BD paper's teacher-vs-student rank analyses.

    recdistill analyze rank-diff --teacher runs/bpr-t --student runs/bpr-s --out results/an/before
    recdistill analyze rank-diff --teacher runs/bpr-t --student runs/bpr-s --after runs/bd --out DIR

A model is ``RUN`` (a run with one model, or its ``student``) or ``RUN:NAME`` (``runs/bd:teacher``).
``--after RUN`` also analyses the BD run's teacher and student and writes Table 4 (Eq. 6 before
and after BD) as ``table4.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from recdistill.errors import MissingFileError, RecdistillError


def _one_process() -> None:
    from recdistill.parallel import world

    if world()[1] > 1:
        raise RecdistillError("recdistill analyze runs in one process; start it without torchrun")


def register(sub: argparse._SubParsersAction) -> None:
    top = sub.add_parser("analyze", help="teacher-vs-student analyses (BD Figs. 1, 4; Table 4)")
    asub = top.add_subparsers(dest="analysis", metavar="ANALYSIS")
    asub.required = True
    p = asub.add_parser(
        "rank-diff",
        help="BD Eq. 1 rank differences (Figs. 1a/4), Fig. 1b scatter, Eq. 6 (Table 4)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--teacher", required=True, help="RUN or RUN:NAME of the teacher")
    p.add_argument("--student", required=True, help="RUN or RUN:NAME of the student")
    p.add_argument("--after", default=None, help="a BD run: also analyse its teacher and student")
    p.add_argument("--out", required=True, help="output folder (PNGs, summary.json, table4.md)")
    p.add_argument("--split", choices=["valid", "test"], default="test")
    p.add_argument("--scatter-users", type=int, default=1000, help="users drawn for Fig. 1b")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_rank_diff)
    q = asub.add_parser(
        "discrepancy",
        help="DCD Fig. 1a: mean |rank_S - rank_T| over the teacher's top-N, user and item side",
    )
    q.add_argument("--teacher", required=True, help="RUN or RUN:NAME of the teacher")
    q.add_argument(
        "--student",
        action="append",
        required=True,
        metavar="LABEL=RUN[:NAME]",
        help="a student to compare (repeatable), e.g. DCD=runs/dcd",
    )
    q.add_argument("--n", type=int, default=50, help="the teacher's top-N (50)")
    q.add_argument("--out", required=True, help="output folder (discrepancy.md, .json, .png)")
    q.add_argument("--device", default="cpu")
    q.add_argument("--data-dir", default=None)
    q.set_defaults(func=cmd_discrepancy)


def _load(spec: str, data_dir: str | None, device: str, dataset: Any = None) -> Any:
    """``RUN`` or ``RUN:NAME`` -> (model, dataset)."""
    import dataclasses

    from recdistill.models.store import load_model
    from recdistill.runs import load_config, load_dataset_for

    run, _, name = spec.partition(":")
    run_dir = Path(run)
    if dataset is None:
        cfg = load_config(run_dir)
        if data_dir is not None:
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=data_dir))
        dataset = load_dataset_for(cfg)
    files = sorted(p.stem for p in run_dir.glob("*.pt") if p.name != "checkpoint.pt")
    if not name:
        name = files[0] if len(files) == 1 else "student"
    if name not in files:
        raise MissingFileError(f"{run_dir}: no model {name!r}; saved models: {', '.join(files) or 'none'}")
    return load_model(run_dir / f"{name}.pt", dataset, device), dataset


def cmd_discrepancy(args: argparse.Namespace) -> int:
    _one_process()
    from recdistill.analysis.discrepancy import top_discrepancy
    from recdistill.analysis.plots import plot_discrepancy
    from recdistill.atomic import atomic_json, atomic_text

    teacher, dataset = _load(args.teacher, args.data_dir, args.device)
    values: dict[str, dict[str, float]] = {}
    for spec in args.student:
        label, sep, run = spec.partition("=")
        if not sep:
            label, run = spec, spec
        student, _ = _load(run, args.data_dir, args.device, dataset)
        values[label] = {
            side: top_discrepancy(teacher, student, dataset, args.n, side, args.device)
            for side in ("user", "item")
        }
    out = Path(args.out)
    rows = "".join(f"| {m} | {v['user']:.1f} | {v['item']:.1f} |\n" for m, v in values.items())
    atomic_text(f"| model | user side | item side |\n|---|---:|---:|\n{rows}", out / "discrepancy.md")
    atomic_json({"teacher": args.teacher, "n": args.n, "values": values}, out / "discrepancy.json")
    plot_discrepancy(values, out / "discrepancy.png", args.n)
    print(json.dumps(values, indent=1))
    return 0


def cmd_rank_diff(args: argparse.Namespace) -> int:
    _one_process()
    from recdistill.analysis.report import rank_diff_report
    from recdistill.atomic import atomic_text

    teacher, dataset = _load(args.teacher, args.data_dir, args.device)
    student, _ = _load(args.student, args.data_dir, args.device, dataset)
    out = Path(args.out)
    kw = dict(split=args.split, scatter_users=args.scatter_users, seed=args.seed)
    res = {
        "before": rank_diff_report(
            teacher,
            student,
            dataset,
            out / "before" if args.after else out,
            title="before BD" if args.after else "",
            **kw,
        )
    }
    if args.after:
        t_after, _ = _load(f"{args.after}:teacher", args.data_dir, args.device, dataset)
        s_after, _ = _load(f"{args.after}:student", args.data_dir, args.device, dataset)
        res["after"] = rank_diff_report(t_after, s_after, dataset, out / "after", title="after BD", **kw)
        b, a = res["before"], res["after"]
        atomic_text(
            "| | Eq. 6 average rank diff. | student better | mean rank T | mean rank S |\n"
            "|---|---|---|---|---|\n"
            + "".join(
                f"| {k} BD | {r['average_rank_difference_eq6']:.4f} | {r['student_better_share']:.3f} | "
                f"{r['mean_rank_teacher']:.0f} | {r['mean_rank_student']:.0f} |\n"
                for k, r in (("before", b), ("after", a))
            ),
            out / "table4.md",
        )
    print(json.dumps(res, indent=1))
    return 0
