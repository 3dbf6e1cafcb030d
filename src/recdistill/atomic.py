"""Files: every file the package writes goes through :func:`atomic_write`, every torch file it
reads through :func:`safe_torch_load`, every JSON file through :func:`read_json`.

Writes: the content goes to a temporary file in the target's folder, flushed and fsynced, then
moved over the target with ``os.replace`` (atomic on POSIX and Windows); on any error the
temporary file is removed and the target is left as it was.

Under a process group (``torchrun``) only rank 0 writes: the other processes' writes are no-ops
(:mod:`recdistill.parallel`), so checkpoints and metrics are written once.

Reads: ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only, so a
file crafted with a pickle payload is refused before any of its code runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from recdistill.errors import MissingFileError, RecdistillError, UnsafeFileError
from recdistill.parallel import is_main

__all__ = [
    "atomic_bytes",
    "atomic_json",
    "atomic_npy",
    "atomic_text",
    "atomic_torch_save",
    "atomic_write",
    "safe_torch_load",
]


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], None], mode: str = "wb") -> None:
    """Call ``write(f)`` on a temporary file next to ``path`` (opened with ``mode``), then
    ``os.replace`` it onto ``path``. Parent folders are created. A no-op outside rank 0."""
    if not is_main():
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with _interrupts_held():  # Ctrl-C / kill arrive after the write, not inside it
            with os.fdopen(fd, mode) as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends (in the main thread, where Python runs its
    handlers): a KeyboardInterrupt raised inside a writer's callback is turned by torch's zip
    writer into ``RuntimeError: unexpected pos``, which reads as a failed run instead of an
    interrupted one. The handlers are swapped for a recorder during the block, then restored;
    a signal that arrived is then passed to the handler that was in place, so the interrupt
    still stops the command, after a complete write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        got.append(signum)

    old: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not None:  # None: a handler not set from Python, left alone
            old[sig] = signal.signal(sig, hold)
    try:
        yield
    finally:
        for num, handler in old.items():
            signal.signal(num, handler)
        for num in dict.fromkeys(got):  # each signal once, with the handler that was in place
            handler = old[num]
            if callable(handler):
                handler(num, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(num)


def _write(f: IO[Any], data: str | bytes) -> None:
    f.write(data)


def atomic_bytes(data: bytes, path: str | os.PathLike[str]) -> None:
    atomic_write(path, lambda f: _write(f, data))


def atomic_text(text: str, path: str | os.PathLike[str]) -> None:
    atomic_write(path, lambda f: _write(f, text), "w")


def atomic_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """``obj`` as indented JSON with a final newline."""
    atomic_text(json.dumps(obj, indent=2) + "\n", path)


def atomic_npy(arr: np.ndarray, path: str | os.PathLike[str]) -> None:
    """``np.save`` (no pickles: ``allow_pickle=False``)."""
    atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj)``."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def safe_torch_load(path: str | os.PathLike[str], what: str = "file") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a file that needs more (a pickle
    payload, a foreign object) or is not a torch file raises :class:`UnsafeFileError` in one line."""
    import pickle

    import torch

    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{what} not found: {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeFileError(
            f"{p}: refused to load this {what}: it holds objects that only a pickle could rebuild, "
            f"and loading it could run code ({first})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeFileError(f"{p}: not a readable torch {what} ({first})") from None


def read_json(path: str | os.PathLike[str], what: str = "file") -> Any:
    """The JSON in ``path``; a missing file raises :class:`MissingFileError`, a torn or edited
    one (not JSON) a :class:`RecdistillError` in one line naming the file, line and column."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{what} not found: {p}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecdistillError(
            f"{p}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}); the {what} is torn "
            "or was edited: restore it, or train the run again"
        ) from None
    except UnicodeDecodeError as exc:
        raise RecdistillError(
            f"{p}: not a UTF-8 text file (byte {exc.start}); expected the {what} (JSON)"
        ) from None
