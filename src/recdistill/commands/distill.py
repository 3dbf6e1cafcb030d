"""`recdistill distill`: train a student with a registered distiller (parse, then call the API).

Methods come from ``recdistill.distill.DISTILLERS``; :func:`recdistill.runs.distill_run` runs any
of them, so a new method needs no change here. Hyperparameters: ``--set distill.params.KEY=V``
(validated by the method's own dataclass; unknown keys are errors).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

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
        action="append",
        default=[],
        metavar="[ROLE=]SOURCE",
        help="teacher: a `recdistill train` run directory, or a score (.npy/.npz/.tsv) or "
        "ranked-list file (formats: recdistill.distill.teacher); for a method with several "
        "teachers, once per role: --teacher teacher_a=runs/a --teacher teacher_b=runs/b",
    )
    p.add_argument(
        "--student", help="pre-trained student run directory (methods that train it from a run, e.g. bd)"
    )
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
    if args.size not in (None, "student"):
        raise RecdistillError(
            f"--size {args.size}: distill builds each model at its role's preset (the student's: "
            "student); give --dim for another size"
        )
    cfg = config_from_args(args)
    if cfg.model.dim is None:  # what distill_run builds, said in the run's config.yaml
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, size="student"))
    method = args.method or cfg.distill.method
    if not method:
        raise RecdistillError(f"--method is required; known: {', '.join(registry.names())}")
    teacher = teacher_sources(args.teacher) if args.teacher else cfg.distill.teacher
    cfg = dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, method=method, teacher=teacher))
    method_config(cfg)  # the method's parameters are checked before anything else
    check_out_args(args)
    _, _, metrics = distill_run(
        cfg,
        args.out,
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


def teacher_sources(values: list[str]) -> str | dict[str, str]:
    """``--teacher`` values: one ``SOURCE`` (the role ``teacher``) or ``ROLE=SOURCE`` per role
    (``ROLE`` a plain name; a value that is an existing path is a source, ``=`` or not)."""
    parsed = [_role_source(v) for v in values]
    if len(parsed) == 1 and parsed[0][0] is None:
        return values[0]
    out: dict[str, str] = {}
    for v, (role, source) in zip(values, parsed):
        if role is None:
            raise RecdistillError(
                f"--teacher {v!r}: with several teachers give ROLE=SOURCE, e.g. teacher_a=runs/a"
            )
        if role in out:
            raise RecdistillError(f"--teacher: role {role!r} given twice")
        out[role] = source
    return out


def _role_source(value: str) -> tuple[str | None, str]:
    role, eq, source = value.partition("=")
    if eq and source and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", role) and not Path(value).exists():
        return role, source
    return None, value
