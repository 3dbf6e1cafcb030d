"""``recdistill experiment run|status|report SPEC ...`` and ``recdistill tune``.

    recdistill tune --config configs/bpr-citeulike-dcd.yaml --set model.size=student \
        --space train.lr=1e-4:1e-1:log --space train.weight_decay=0,1e-6,1e-5 --trials 20

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

from recdistill.atomic import read_json
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
        ("record", "copy the finished runs' small files (metrics, config) into --records, to commit"),
    ):
        p = esub.add_parser(name, help=help_)
        p.add_argument("specs", nargs="+", metavar="SPEC", help="experiment spec file(s) (YAML)")
        p.add_argument("--runs-dir", default="runs/exp", help="where runs are stored (runs/exp)")
        p.add_argument(
            "--records",
            default="results/runs",
            help="finished runs' records, counted as finished where a run's folder is missing "
            "(results/runs; '' for none)",
        )
        p.add_argument("--seeds", type=_seeds, help="seeds instead of the spec's, e.g. 0-4 or 0,2")
        p.add_argument(
            "--only",
            action="append",
            default=[],
            metavar="RUN",
            help="only this run (and what it needs); repeat for several: --only rd --only cd",
        )
        if name == "run":
            p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (1)")
            p.add_argument(
                "--threads", type=int, default=None, help="threads per run (default: 1 with --jobs > 1)"
            )
            p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
            p.add_argument(
                "--fresh",
                action="store_true",
                help="train the selected runs again, finished and recorded ones too, and the runs "
                "they start from (each replaced only once its new run has finished), e.g. for "
                "the models behind a record",
            )
            p.add_argument(
                "--device",
                default=None,
                help="train the runs left on this device (cpu | cuda | cuda:N); a run's key does "
                "not depend on it, so runs finished on another device count as finished",
            )
            p.add_argument(
                "--report", default=None, metavar="DIR", help="write the report(s) to DIR afterwards"
            )
        if name == "report":
            p.add_argument("--out", default="results", help="output folder (results)")
            p.add_argument("--index", default=None, help="also write the verdicts of all SPECs to this file")
            p.add_argument(
                "--with",
                dest="with_reports",
                action="append",
                default=[],
                metavar="REPORT.json",
                help="add an already written report (its JSON) to the index, e.g. one whose runs are "
                "not on this machine; repeatable",
            )
        p.set_defaults(func=cmd_experiment)

    t = sub.add_parser(
        "tune",
        help="choose settings on the validation split with Optuna (one searched run)",
        description="Search SPACE on the validation split (Optuna), then write the report: every "
        "trial's validation score, the chosen values and their test scores. A one-run experiment: "
        "trials are content-addressed runs under --runs-dir, so an interrupted search continues.",
    )
    t.add_argument("--config", required=True, help="base config file (YAML)")
    t.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. model.size=student"
    )
    t.add_argument(
        "--space",
        action="append",
        required=True,
        metavar="KEY=SPEC",
        help="a searched key: LOW:HIGH[:log] (a range) or V1,V2,... (choices); repeatable",
    )
    t.add_argument("--method", default="", help="distil with this method (default: train the base model)")
    t.add_argument(
        "--teacher",
        action="append",
        default=[],
        metavar="[ROLE=]SOURCE",
        help="the method's teacher (a run directory or file); once per role for several: ROLE=SOURCE",
    )
    t.add_argument("--sampler", choices=["tpe", "random", "grid"], default="tpe")
    t.add_argument("--trials", type=int, default=None, help="the budget (grid: its size)")
    t.add_argument("--metric", default=None, help="validation metric (default: the config's monitor)")
    t.add_argument(
        "--pruner",
        choices=["median"],
        default=None,
        help="stop trials early with Optuna's median pruner (trials then run one at a time)",
    )
    t.add_argument(
        "--pruner-startup",
        type=int,
        default=5,
        help="finished trials before the pruner may stop one (Optuna's n_startup_trials, 5)",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--name", default="tune", help="report name (<out>/<name>.md)")
    t.add_argument("--runs-dir", default="runs/exp")
    t.add_argument("--out", default="results", help="report folder")
    t.add_argument("--jobs", type=int, default=1, help="parallel trials (grid, random)")
    t.set_defaults(func=cmd_tune)


def parse_space(items: list[str]) -> dict[str, Any]:
    """``["train.lr=1e-4:1e-1:log", "train.n_neg=1,5"]`` -> an experiment spec's search space."""
    import yaml

    space: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise RecdistillError(f"--space {item!r}: expected KEY=LOW:HIGH[:log] or KEY=V1,V2,...")
        parts = text.split(":")
        if len(parts) in (2, 3) and "," not in text:
            try:
                low, high = float(parts[0]), float(parts[1])
            except ValueError:
                raise RecdistillError(f"--space {item!r}: LOW and HIGH must be numbers") from None
            if len(parts) == 3 and parts[2] != "log":
                raise RecdistillError(f"--space {item!r}: the third field may only be 'log'")
            space[key.strip()] = {"low": low, "high": high, "log": len(parts) == 3}
        else:
            space[key.strip()] = [yaml.safe_load(v) for v in text.split(",")]
    return space


def cmd_tune(args: argparse.Namespace) -> int:
    from recdistill.commands.distill import teacher_sources
    from recdistill.config import parse_set
    from recdistill.experiment import Experiment, parse_spec

    _single_process("recdistill tune")
    space = parse_space(args.space)
    search: dict[str, Any] = {"sampler": args.sampler, "space": space}
    if args.trials is not None:
        search["trials"] = args.trials
    if args.metric:
        search["metric"] = args.metric
    if args.pruner:
        search["pruner"] = {"name": args.pruner, "n_startup_trials": args.pruner_startup}
    sets = {}
    for item in args.set:  # the config engine's --set parser (values read as YAML, one-line errors)
        nested: Any = parse_set(item)
        key = item.split("=", 1)[0].strip()
        for part in key.split("."):
            nested = nested[part]
        sets[key] = nested
    run: dict[str, Any] = {"set": sets, "search": search}
    if args.method:
        run["method"] = args.method
    if args.teacher:
        sources = teacher_sources(args.teacher)
        run["teacher"] = (
            str(Path(sources).resolve())
            if isinstance(sources, str)
            else {role: str(Path(src).resolve()) for role, src in sources.items()}
        )
    spec = {
        "name": args.name,
        "title": f"Tuning on validation: {args.method or 'base model'} ({Path(args.config).name})",
        "config": str(Path(args.config).resolve()),
        "seeds": [args.seed],
        "runs": {"tuned": run},
    }
    metrics = _chosen_metrics(Experiment(parse_spec(spec), args.runs_dir))
    spec["tables"] = [{"name": "chosen", "metrics": metrics, "rows": [{"label": "chosen", "run": "tuned"}]}]
    exp = Experiment(parse_spec(spec), args.runs_dir)
    summary = exp.run(jobs=args.jobs)
    command = "recdistill " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    rep = exp.report(args.out, command)
    chosen = rep["searches"][0]["chosen"]
    print(f"{len(summary.finished)} trials run; chosen on validation: {chosen}")
    print(f"wrote {Path(args.out) / args.name}.md (.csv, .json)")
    return 0 if summary.ok else 1


def _chosen_metrics(exp: Any) -> list[str]:
    """The table's columns: the config's monitor and its cut-off's other metrics."""
    from recdistill.experiment.plan import untie

    run = exp.spec.runs["tuned"]
    assert run.search is not None
    first = {k: (v[0] if isinstance(v, list) else v["low"]) for k, v in run.search.space.items()}
    cfg = exp.planner.config(run, exp.planner.seeds[0], untie(first))
    monitor = run.search.metric or cfg.resolved_monitor()
    k = monitor.split("@")[1]
    names = ("R", "N", "P") if monitor.startswith(("R@", "P@")) else ("H", "N", "M")  # a ratio split's
    return [f"{m}@{k}" for m in names]


def _stop_on_sigterm() -> None:
    """``kill PID`` (SIGTERM) stops a run like Ctrl-C: the running runs checkpoint and the command
    can be run again to continue (a command started in the background ignores Ctrl-C's SIGINT)."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _experiments(args: argparse.Namespace) -> list[Any]:
    from recdistill.experiment import Experiment

    records = args.records or None
    device = getattr(args, "device", None)
    overrides = {"train": {"device": device}} if device else None
    return [
        Experiment.load(s, args.runs_dir, args.seeds, records_dir=records, overrides=overrides)
        for s in args.specs
    ]


def _single_process(what: str) -> None:
    from recdistill.parallel import world

    if world()[1] > 1:
        raise RecdistillError(
            f"{what} runs many runs in parallel itself (--jobs N); start it without torchrun "
            "(torchrun is for one train / distill / evaluate command)"
        )


def _report_json(path: str) -> dict[str, Any]:
    """A report's JSON as written by ``experiment report`` (one-line errors otherwise)."""

    try:
        data = read_json(path, "report")
    except FileNotFoundError:
        raise RecdistillError(f"--with {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise RecdistillError(f"--with {path}: not a readable JSON report ({exc})") from None
    if not isinstance(data, dict):
        raise RecdistillError(f"--with {path}: not an experiment report (not a JSON object)")
    missing = [k for k in ("name", "title", "commit", "tables", "findings") if k not in data]
    if missing:
        raise RecdistillError(f"--with {path}: not an experiment report (missing {', '.join(missing)})")
    return data


def cmd_experiment(args: argparse.Namespace) -> int:
    _single_process("recdistill experiment")
    exps = _experiments(args)  # every spec checked before anything runs
    only = tuple(args.only) or None
    command = "recdistill " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else ""
    if args.action == "status" or (args.action == "run" and args.dry_run):
        for e in exps:
            print(e.status_text(only))
        return 0
    if args.action == "record":
        for e in exps:
            print(f"{e.spec.name}: {e.record(only)} finished runs recorded in {args.records}")
        return 0
    if args.action == "report":
        reps = [e.report(args.out, command) for e in exps]
        for e in exps:
            print(f"wrote {Path(args.out) / e.spec.name}.md (.csv, .json)")
        fresh = {r["name"] for r in reps}
        for path in args.with_reports:
            old = _report_json(path)
            if old["name"] not in fresh:  # a report written by this command wins
                reps.append(old)
        reps.sort(key=lambda r: str(r["name"]))
        if args.index:
            from recdistill.experiment import write_index

            write_index(reps, args.index, command, archive=Path(args.index).parent / "archive")
            print(f"wrote {args.index}")
        return 0
    if args.jobs < 1:
        raise RecdistillError(f"--jobs: expected a positive integer, got {args.jobs}")
    _stop_on_sigterm()
    ok = True
    for e in exps:
        summary = e.run(jobs=args.jobs, only=only, threads=args.threads, fresh=args.fresh)
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
