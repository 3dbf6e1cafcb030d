"""`recdistill compress`: from a log to a small model (``recdistill.experiment.compress``)."""

from __future__ import annotations

import argparse

from recdistill.commands.experiment import _seeds


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compress",
        help="teacher, tuned student and tuned distillers on your data; the best small model on validation",
    )
    p.add_argument("data", help="a dataset name (recdistill data stats NAME) or an interactions file")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--ratio", type=float, default=10.0, help="teacher dim / student dim (default 10)")
    size.add_argument("--student-dim", type=int, help="the student's dim (instead of --ratio)")
    p.add_argument("--teacher-dim", type=int, help="the teacher's dim (default: the dataset's preset)")
    p.add_argument("--model", default="bpr", help="a registered model (bpr | neumf | cdae | lightgcn)")
    p.add_argument("--methods", default=None, help="comma-separated distillers (default rrd+ir-rrd,dcd)")
    p.add_argument("--trials", type=int, default=4, help="validation trials per row, the same for all (4)")
    p.add_argument(
        "--seeds", type=_seeds, default=(0,), help="seeds the chosen settings run on, e.g. 0-2 (default 0)"
    )
    p.add_argument("--epochs", type=int, default=None, help="at most this many epochs per run (300)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes, one thread each")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="folder for the spec, the runs and the report")
    d = p.add_argument_group("your own data (as recdistill train)")
    d.add_argument("--data-dir", help="raw data folder of named datasets (default: $RECDISTILL_DATA)")
    d.add_argument("--user-col")
    d.add_argument("--item-col")
    d.add_argument("--time-col")
    d.add_argument("--sep")
    d.add_argument("--min-user-interactions", type=int)
    d.add_argument("--k-core", type=int)
    d.add_argument("--n-candidates", type=int, help="sampled protocol with this many candidates")
    p.set_defaults(func=cmd_compress)


def cmd_compress(args: argparse.Namespace) -> int:
    from recdistill.experiment.compress import DEFAULT_METHODS, compress

    data = {"name": args.data}
    for key in ("data_dir", "user_col", "item_col", "time_col", "sep", "min_user_interactions", "k_core"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.n_candidates is not None:
        data["n_candidates"] = args.n_candidates
    methods = tuple(m.strip() for m in args.methods.split(",")) if args.methods else DEFAULT_METHODS
    compress(
        data,
        args.out,
        jobs=args.jobs,
        device=args.device,
        model=args.model,
        teacher_dim=args.teacher_dim,
        ratio=args.ratio,
        student_dim=args.student_dim,
        methods=methods,
        trials=args.trials,
        seeds=args.seeds,
        train={"epochs": args.epochs} if args.epochs else None,
    )
    return 0
