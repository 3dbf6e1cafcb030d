"""An interrupt (SIGTERM turned into KeyboardInterrupt, as ``recdistill experiment`` does, or
Ctrl-C) that arrives while a checkpoint is written is delivered after the write: the file is
complete and the interrupt still stops the caller (before, torch's zip writer turned it into
``RuntimeError: unexpected pos``, which the runner recorded as a failed run)."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from recdistill.atomic import atomic_torch_save, atomic_write, safe_torch_load


@pytest.fixture
def term_raises():
    def stop(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, stop)
    yield
    signal.signal(signal.SIGTERM, old)


def test_sigterm_during_a_write_arrives_after_it(tmp_path, term_raises) -> None:
    path = tmp_path / "checkpoint.pt"
    obj = {"w": torch.arange(10_000, dtype=torch.float32)}

    def write(f) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # lands in the middle of the write
        torch.save(obj, f)

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, write)
    assert torch.equal(safe_torch_load(path)["w"], obj["w"])  # complete, not a failed write
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_writes_without_signals_are_unchanged(tmp_path) -> None:
    atomic_torch_save({"a": torch.ones(3)}, tmp_path / "x.pt")
    assert torch.equal(safe_torch_load(tmp_path / "x.pt")["a"], torch.ones(3))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))
