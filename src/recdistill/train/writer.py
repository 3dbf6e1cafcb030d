"""A run's files, each written by one object, atomically: ``checkpoint.pt``, ``log.jsonl`` (one
line per epoch, appended by the main process only), ``<name>.pt`` (each model's best state) and
``metrics.json`` (once, at the end). Under ``torchrun`` every process holds the same state, so
the atomic writes of the same content by several processes leave one whole file. A writer
without a folder writes nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from recdistill.atomic import atomic_json, atomic_text, atomic_torch_save, safe_torch_load
from recdistill.errors import RecdistillError
from recdistill.models.base import Recommender
from recdistill.models.store import save_model
from recdistill.parallel import is_main

__all__ = ["RunWriter"]


class RunWriter:
    """The files of one run in ``out_dir`` (None: no files)."""

    def __init__(self, out_dir: str | Path | None) -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / "checkpoint.pt"

    @property
    def log_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / "log.jsonl"

    def start(self, resume: bool) -> dict[str, Any] | None:
        """Make the folder; with ``resume`` and a checkpoint, that checkpoint's state (else None,
        and an old log is removed: a fresh run's log starts empty)."""
        if self.out_dir is None or self.checkpoint_path is None:
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume and self.checkpoint_path.exists():
            return safe_torch_load(self.checkpoint_path, "checkpoint")
        if self.log_path is not None and self.log_path.exists() and is_main():
            self.log_path.unlink()
        return None

    def checkpoint(self, state: dict[str, Any]) -> None:
        if self.checkpoint_path is not None:
            atomic_torch_save(state, self.checkpoint_path)

    def checkpoint_epoch(self) -> int | None:
        """The epoch of the checkpoint on disk (None: none)."""
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return None
        return int(safe_torch_load(self.checkpoint_path, "checkpoint")["epoch"])

    def log(self, record: dict[str, Any]) -> None:
        """Append one epoch's line to ``log.jsonl``."""
        if self.log_path is None or not is_main():
            return
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def trim_log(self, epoch: int) -> None:
        """Drop log lines of epochs after ``epoch`` (the checkpoint's; written before an
        interruption). A torn last line (what a crash mid-write leaves) is dropped too; a bad
        line before it is an error."""
        path = self.log_path
        if path is None or not path.exists():
            return
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        keep = []
        for i, ln in enumerate(lines):
            try:
                rec = json.loads(ln)
                at = int(rec["epoch"])
            except (ValueError, KeyError, TypeError):
                if i == len(lines) - 1:
                    print(
                        f"recdistill: {path}: dropped a torn last line (epoch not recorded)", file=sys.stderr
                    )
                    continue
                raise RecdistillError(
                    f"{path}: line {i + 1} is not a log record ({ln[:40]!r}); remove the line, or train "
                    "without --resume"
                ) from None
            if at <= epoch:
                keep.append(ln)
        atomic_text("".join(ln + "\n" for ln in keep), path)

    def models(self, models: dict[str, Recommender], extra: dict[str, dict[str, Any]]) -> None:
        """``<name>.pt`` for every model (its current state, with ``extra[name]``)."""
        if self.out_dir is None:
            return
        for n, m in models.items():
            save_model(m, self.out_dir / f"{n}.pt", extra=extra.get(n))

    def metrics(self, metrics: dict[str, Any]) -> None:
        """``metrics.json``: written once, last (its presence marks a finished run)."""
        if self.out_dir is not None:
            atomic_json(metrics, self.out_dir / "metrics.json")
