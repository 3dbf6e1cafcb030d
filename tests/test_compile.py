"""``train.compile``: every model's compiled base loss gives the eager loss and gradients (float
rounding apart), and a compiled epoch trains on the same batches as an eager one."""

from __future__ import annotations

import pytest
import torch

from recdistill.config import make_config
from recdistill.models import MODELS, build_model
from recdistill.testing import toy_batch, toy_dataset
from recdistill.train import BaseObjective, Trainer


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


def test_compiled_epoch_matches_eager() -> None:
    ds = toy_dataset()
    losses = []
    for flag in ("false", "true"):
        torch.manual_seed(0)
        m = build_model("bpr", ds, dim=8)
        cfg = make_config(sets=["train.progress=false", "train.batch_size=50", f"train.compile={flag}"])
        losses.append(Trainer({"m": m}, BaseObjective({"m": m}), ds, cfg).train_epoch(0)["m"]["loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
