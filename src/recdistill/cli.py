"""Command-line entry point. Subcommands live in ``recdistill.commands.*``; each only parses
arguments and calls the Python API (no logic here)."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module defines ``register(subparsers)``, which adds its subcommands and sets ``func``.
COMMAND_MODULES = ("data", "train", "distill", "analyze")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recdistill", description="Knowledge distillation of top-K recommenders."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"recdistill.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, FileNotFoundError) as exc:  # user errors: one clear line
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"recdistill: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
