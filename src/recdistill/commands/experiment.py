"""``recdistill experiment run|status|report SPEC ...`` and ``recdistill tune``.

    recdistill experiment run experiments/dcd-table2.yaml --jobs 2      # train what is missing
    recdistill experiment status experiments/dcd-table2.yaml            # done / partial / todo
    recdistill experiment report experiments/*.yaml --out results --index results/README.md
    recdistill experiment run SPEC --dry-run                            # the plan, nothing runs

Runs live under ``--runs-dir`` (default ``runs/exp``) by their content address: the same config
is the same run in every spec; an interrupted command continues where it stopped.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from recdistill.errors import RecdistillError


def _seeds(text: str) -> tuple[int, ...]:
    try:
        out: list[int] = []
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                a, b = part.split("-", 1)
                out += range(int(a), int(b) + 1)
            else:
                out.append(int(part))
        return tuple(out)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2 or 0-4, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    top = sub.add_parser(
        "experiment",
        help="run, check and report experiment specs (one per paper table)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    esub = top.add_subparsers(dest="action", metavar="ACTION")
    esub.required = True
    for name, help_ in (
        ("run", "train every missing run of the spec(s)"),
        ("status", "each run's state: done, partial (resumable), failed, todo"),
        ("report", "write the tables (markdown, CSV, JSON, PNG) from the finished runs"),
    ):
        p = esub.add_parser(name, help=help_)
        p.add_argument("specs", nargs="+", metavar="SPEC", help="experiment spec file(s) (YAML)")
        p.add_argument("--runs-dir", default="runs/exp", help="where runs are stored (runs/exp)")
        p.add_argument("--seeds", type=_seeds, help="seeds instead of the spec's, e.g. 0-4 or 0,2")
        p.add_argument(
            "--only", action="append", default=[], metavar="RUN", help="only this run (and what it needs)"
        )
        if name == "run":
            p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (1)")
            p.add_argument(
                "--threads", type=int, default=None, help="threads per run (default: 1 with --jobs > 1)"
            )
            p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
            p.add_argument(
                "--report", default=None, metavar="DIR", help="write the report(s) to DIR afterwards"
            )
        if name == "report":
            p.add_argument("--out", default="results", help="output folder (results)")
            p.add_argument("--index", default=None, help="also write the verdicts of all SPECs to this file")
        p.set_defaults(func=cmd_experiment)


def _experiments(args: argparse.Namespace) -> list[Any]:
    from recdistill.experiment import Experiment

    return [Experiment.load(s, args.runs_dir, args.seeds) for s in args.specs]


def cmd_experiment(args: argparse.Namespace) -> int:
    exps = _experiments(args)  # every spec checked before anything runs
    only = tuple(args.only) or None
    command = "recdistill " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else ""
    if args.action == "status" or (args.action == "run" and args.dry_run):
        for e in exps:
            print(e.status_text(only))
        return 0
    if args.action == "report":
        reps = [e.report(args.out, command) for e in exps]
        for e in exps:
            print(f"wrote {Path(args.out) / e.spec.name}.md (.csv, .json)")
        if args.index:
            from recdistill.experiment import write_index

            write_index(reps, args.index, command)
            print(f"wrote {args.index}")
        return 0
    if args.jobs < 1:
        raise RecdistillError(f"--jobs: expected a positive integer, got {args.jobs}")
    ok = True
    for e in exps:
        summary = e.run(jobs=args.jobs, only=only, threads=args.threads)
        print(
            f"{e.spec.name}: {len(summary.finished)} runs finished in {summary.seconds:.0f} s"
            + (f"; failed: {', '.join(summary.failed)}" if summary.failed else "")
            + (
                f"; skipped (a run they start from failed): {', '.join(summary.skipped)}"
                if summary.skipped
                else ""
            )
            + (f"; still pending: {', '.join(summary.pending)}" if summary.pending else "")
        )
        ok = ok and summary.ok
        if args.report:
            e.report(args.report, command)
            print(f"wrote {Path(args.report) / e.spec.name}.md")
    return 0 if ok else 1
