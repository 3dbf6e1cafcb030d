"""`recdistill distill`: train a student with a registered distiller (parse, then call the API).

Methods come from ``recdistill.distill.DISTILLERS``; :func:`recdistill.runs.distill_run` runs any
of them, so a new method needs no change here. Hyperparameters: ``--set distill.params.KEY=V``
(validated by the method's own dataclass; unknown keys are errors).
"""

from __future__ import annotations

import argparse
import dataclasses

from recdistill.config import add_training_flags, check_out_args, config_from_args
from recdistill.errors import RecdistillError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distill",
        help="train a student from a teacher (RD, CD, RRD, IR-RRD, BD ...)",
        description="Train a student with a distillation method. Example: recdistill distill "
        "--method rrd --teacher runs/bpr-t --dataset citeulike-dcd --out runs/rrd "
        "--set distill.params.lambda_rrd=1e-3",
    )
    p.add_argument("--method", help="distiller name (see --list-methods)")
    p.add_argument(
        "--teacher",
        help="teacher: a `recdistill train` run directory, or a score (.npy/.npz/.tsv) or "
        "ranked-list file (formats: recdistill.distill.teacher)",
    )
    p.add_argument("--student", help="pre-trained student run directory (methods that use one, e.g. bd)")
    p.add_argument("--cache-dir", help="cache of the teacher's top-N lists (default: <teacher run>/cache)")
    p.add_argument("--list-methods", action="store_true", help="print the registered methods and exit")
    add_training_flags(p)
    p.add_argument(
        "--teacher-model",
        help="architecture of a teacher trained here (bd from scratch: teacher and student share it; "
        "same as --model)",
    )
    p.set_defaults(func=cmd_distill)


def cmd_distill(args: argparse.Namespace) -> int:
    from recdistill.distill import load_distillers
    from recdistill.runs import distill_run, method_config

    registry = load_distillers()
    if args.list_methods:
        for name in registry.names():
            cls = registry.get(name)
            print(f"{name:12s} {(cls.__doc__ or '').strip().splitlines()[0]}")
        return 0
    if args.teacher_model:
        if args.model and args.model != args.teacher_model:
            raise RecdistillError(
                f"--teacher-model {args.teacher_model!r} and --model {args.model!r} disagree; "
                "teacher and student share the architecture"
            )
        args.model = args.teacher_model
    cfg = config_from_args(args)
    method = args.method or cfg.distill.method
    if not method:
        raise RecdistillError(f"--method is required; known: {', '.join(registry.names())}")
    distill = dataclasses.replace(cfg.distill, method=method, teacher=args.teacher or cfg.distill.teacher)
    model = cfg.model
    if args.size is None and args.dim is None and model.size == "teacher" and model.dim is None:
        model = dataclasses.replace(model, size="student")  # distill trains a student by default
    cfg = dataclasses.replace(cfg, distill=distill, model=model)
    method_config(cfg)  # the method's parameters are checked before anything else
    check_out_args(args)
    _, _, metrics = distill_run(
        cfg,
        args.out,
        teacher=distill.teacher,
        student=args.student,
        resume=args.resume,
        fresh=args.fresh,
        cache_dir=args.cache_dir,
    )
    proto = cfg.resolved_protocol()
    for name, m in metrics.get("models", {}).items():
        scores = "  ".join(f"{k} {v:.4f}" for k, v in m["test"][proto].items() if "@" in k)
        print(
            f"{method} {name} ({m['n_parameters']:,} parameters), best epoch {m['best_epoch']}, "
            f"{proto} protocol, test: {scores}"
        )
    print(f"wrote {args.out}/")
    return 0
