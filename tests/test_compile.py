"""``train.compile``: every model's compiled base loss gives the eager loss and gradients (float
rounding apart), and a compiled epoch trains on the same batches as an eager one."""

from __future__ import annotations

import shutil

import pytest
import torch

from recdistill.config import make_config
from recdistill.models import MODELS, build_model
from recdistill.testing import toy_batch, toy_dataset
from recdistill.train import BaseObjective, Trainer

# torch.compile on a CPU builds C++ (PyTorch's default compiler, g++); without one the option
# fails with its one-line error, which these tests cannot exercise
needs_compiler = pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler for torch.compile")


@needs_compiler
@pytest.mark.parametrize("name", sorted(MODELS))
def test_compiled_loss_and_gradients_equal_eager(name: str) -> None:
    ds = toy_dataset()
    torch.manual_seed(0)
    eager = build_model(name, ds, dim=8)
    compiled = build_model(name, ds, dim=8)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_base_loss()
    for m in (eager, compiled):
        m.train()
    batch = toy_batch(eager, ds, rows=16)
    torch.manual_seed(3)  # the same dropout / corruption draws in both
    le = eager.base_loss(batch)
    torch.manual_seed(3)
    lc = compiled.base_loss(batch)
    le.backward()
    lc.backward()
    torch.testing.assert_close(lc, le, rtol=1e-5, atol=1e-6)
    for (n, pe), pc in zip(eager.named_parameters(), compiled.parameters()):
        assert pc.grad is not None, n
        torch.testing.assert_close(pc.grad, pe.grad, rtol=1e-4, atol=1e-6, msg=n)


@needs_compiler
def test_compiled_epoch_matches_eager() -> None:
    ds = toy_dataset()
    losses = []
    for flag in ("false", "true"):
        torch.manual_seed(0)
        m = build_model("bpr", ds, dim=8)
        cfg = make_config(sets=["train.progress=false", "train.batch_size=50", f"train.compile={flag}"])
        losses.append(Trainer({"m": m}, BaseObjective({"m": m}), ds, cfg).train_epoch(0)["m"]["loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


@needs_compiler
@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_training_is_reproducible(threads: int) -> None:
    """Same seed, same weights bitwise, also on two threads (where a compiled backward's
    parallel scatter-adds would otherwise add in a varying order)."""
    ds = toy_dataset(n_users=200, n_items=300, density=0.05)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = []
        for _ in range(2):
            torch.manual_seed(0)
            m = build_model("bpr", ds, dim=16)
            sets = ["train.progress=false", "train.batch_size=512", "train.compile=true", "train.n_neg=3"]
            tr = Trainer({"m": m}, BaseObjective({"m": m}), ds, make_config(sets=sets))
            for e in range(2):
                tr.train_epoch(e)
            out.append(m.item_emb.weight.detach().clone())
        assert torch.equal(out[0], out[1])
        assert not torch.are_deterministic_algorithms_enabled()  # the mode was restored
    finally:
        torch.set_num_threads(before)


def test_a_compiler_failure_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from recdistill.errors import RecdistillError

    def failing(fn, **kwargs):  # what torch.compile gives when its backend cannot build
        def call(*a, **k):
            raise torch._dynamo.exc.TorchDynamoException(
                "InvalidCxxCompiler: No working C++ compiler found\nmore"
            )

        return call

    ds = toy_dataset()
    m = build_model("bpr", ds, dim=4)
    monkeypatch.setattr(torch, "compile", failing)
    m.compile_base_loss()
    with pytest.raises(
        RecdistillError, match=r"train.compile=true: torch.compile failed for BPR \(InvalidCxxCompiler"
    ):
        m.base_loss(toy_batch(m, ds))
