"""`recdistill recommend | export`: a finished run's model as recommendations, or as files for a
serving stack. Parse arguments, call the Python API (``Run.recommend``, ``export_run``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from recdistill.errors import RecdistillError

if TYPE_CHECKING:
    from recdistill.runs.store import Run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recommend", help="each user's top-k items from a finished run (raw ids, with scores)")
    p.add_argument("run_dir")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", action="append", help="a raw user id (repeatable)")
    who.add_argument("--users", help="a file of raw user ids, one per line")
    who.add_argument("--all", action="store_true", help="every user of the run's dataset")
    p.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    p.add_argument("--out", help="write .csv or .parquet (default: CSV on standard output)")
    p.add_argument("--keep-train", action="store_true", help="keep the users' training items")
    p.add_argument("--skip-unknown", action="store_true", help="skip unknown user ids (and count them)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("export", help="a finished run's model as factors (BPR) or TorchScript, with id maps")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="the export folder (refused if it exists, without --fresh)")
    p.add_argument("--fresh", action="store_true", help="replace an existing export folder")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_export)


def _run(run_dir: str, data_dir: str | None, device: str = "cpu") -> Run:
    import dataclasses

    from recdistill.runs import check_device, load_config, load_dataset_for, load_run

    cfg = load_config(run_dir)
    if data_dir is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=data_dir))
    return load_run(run_dir, dataset=load_dataset_for(cfg), device=check_device(device))


def _read_users(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise RecdistillError(f"--users: {p} not found")
    try:
        users = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise RecdistillError(f"--users: {p}: not a UTF-8 text file (byte {exc.start})") from None
    if not users:
        raise RecdistillError(f"--users: {p} holds no user id")
    return users


def cmd_recommend(args: argparse.Namespace) -> int:
    from recdistill.atomic import atomic_text, atomic_write

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix not in (".csv", ".parquet"):
        raise RecdistillError(f"--out {out}: expected a .csv or .parquet file")
    run = _run(args.run_dir, args.data_dir, args.device)
    users = None if args.all else (args.user or _read_users(args.users))
    frame = run.recommend(
        users, k=args.k, exclude_train=not args.keep_train, skip_unknown=args.skip_unknown, device=args.device
    )
    skipped = frame.attrs.get("skipped", 0)
    if skipped:
        print(f"skipped {skipped:,} unknown user id(s)", file=sys.stderr)
    if out is None:
        frame.to_csv(sys.stdout, index=False)
    elif out.suffix == ".csv":
        atomic_text(frame.to_csv(index=False), out)
        print(f"wrote {out} ({len(frame):,} rows)")
    else:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise RecdistillError(
                f"--out {out}: writing Parquet needs pyarrow: pip install 'recdistill[parquet]' (or pyarrow)"
            ) from None
        atomic_write(out, lambda f: frame.to_parquet(f, index=False))
        print(f"wrote {out} ({len(frame):,} rows)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from recdistill.runs.export import check_target, export_run

    out = Path(args.out)
    if out.exists() and not args.fresh:
        raise RecdistillError(f"{out} exists: choose another --out, or --fresh to replace it")
    check_target(out, args.run_dir, args.fresh)  # before the run and its dataset are loaded
    manifest = export_run(_run(args.run_dir, args.data_dir), out, fresh=args.fresh, run_dir=args.run_dir)
    files = ", ".join(manifest["files"])
    print(f"wrote {out}/ ({manifest['format']}: {files}, manifest.json)")
    return 0
