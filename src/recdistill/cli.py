"""Command-line entry point. Subcommands live in ``recdistill.commands.*``; each only parses
arguments and calls the Python API (no logic here)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Each module defines ``register(subparsers)``, which adds its subcommands and sets ``func``.
COMMAND_MODULES = ("data", "train", "distill", "analyze", "experiment", "serve", "compress")


def build_parser() -> argparse.ArgumentParser:
    from recdistill import __version__

    parser = argparse.ArgumentParser(
        prog="recdistill", description="Knowledge distillation of top-K recommenders."
    )
    parser.add_argument("--version", action="version", version=f"recdistill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"recdistill.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand. A user error (:class:`recdistill.errors.RecdistillError`) prints one line
    and returns 2; Ctrl-C prints where the run stopped and returns 130; anything else is a bug
    and keeps its traceback."""
    from recdistill.errors import RecdistillError, RunInterrupted
    from recdistill.parallel import init_from_env, is_main

    parser = build_parser()
    args = parser.parse_args(argv)
    started = False
    stdout = sys.stdout
    try:
        started = init_from_env()  # under torchrun: the process group; only rank 0 prints
        if not is_main():
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (closed in finally)
        return int(args.func(args) or 0)
    except RunInterrupted as exc:  # Ctrl-C in training: where it stopped, how to resume
        print(f"recdistill: {exc}", file=sys.stderr)
        return 130
    except RecdistillError as exc:  # user errors: one clear line
        print(f"recdistill: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recdistill: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``recdistill ... | head``): not an error of ours
        # stdout is gone: point it at devnull so that Python's exit flush does not fail again
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # not a real file (tests): nothing will flush to it
            pass
        return 0
    finally:
        if sys.stdout is not stdout:
            sys.stdout.close()
            sys.stdout = stdout
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
