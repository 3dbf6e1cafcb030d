"""Progress of a training run: a bar over epochs on a terminal (total, ETA, last validation),
else one line per validation on stderr; only the main process and only with ``progress``."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from recdistill.parallel import is_main

__all__ = ["EpochProgress"]


class EpochProgress:
    """``update`` after each epoch with its log record; ``close`` at the end."""

    def __init__(self, enabled: bool, total: int, initial: int, primary: str, monitor: str) -> None:
        self.enabled = enabled and is_main()
        self.total, self.primary, self.monitor = total, primary, monitor
        self.bar: Any = None
        if self.enabled and sys.stderr.isatty():
            self.bar = tqdm(total=total, initial=initial, desc="epochs", unit="epoch", leave=False)

    def update(self, epoch: int, record: dict[str, Any], best: dict[str, Any], t_epoch: float) -> None:
        """After ``epoch`` (1-based): its validation (if any) against the best so far."""
        text = None
        if "valid" in record:
            last = record["valid"][self.primary][self.monitor]
            text = f"valid {self.monitor} {last:.4f} (best {best['score']:.4f} at epoch {best['epoch']})"
        if self.bar is not None:
            self.bar.update(1)
            if text:
                self.bar.set_postfix_str(text)
            return
        if text and self.enabled:
            eta = (self.total - epoch) * t_epoch
            print(
                f"epoch {epoch}/{self.total}: {text}, {t_epoch:.1f} s/epoch, at most {eta / 60:.1f} min left",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
