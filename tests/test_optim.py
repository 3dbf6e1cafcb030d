"""Row-sparse Adam (``train.optimizer=sparse_adam``) against torch's SparseAdam, its lazy rows,
its errors, and bitwise resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import make_toy_dataset
from recdistill.config import make_config
from recdistill.errors import RecdistillError
from recdistill.models import build_model
from recdistill.runs import train_run
from recdistill.train.optim import RowAdam, RowSparseAdam


def _grads(n: int, d: int, steps: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        idx = torch.randint(n, (12,), generator=g)  # duplicates: summed, as an embedding's backward
        vals = torch.randn(12, d, generator=g, dtype=torch.float64)
        out.append(torch.sparse_coo_tensor(idx[None], vals, (n, d), check_invariants=True))
    return out


@pytest.mark.parametrize("dense", [False, True])
def test_row_adam_equals_torch_sparse_adam(dense: bool) -> None:
    torch.manual_seed(0)
    a = nn.Parameter(torch.randn(30, 4, dtype=torch.float64))
    b = nn.Parameter(a.detach().clone())
    ref, ours = torch.optim.SparseAdam([a], lr=0.05), RowAdam([b], lr=0.05)
    for g in _grads(30, 4, 6, 1):
        a.grad = g.clone()
        b.grad = g.to_dense() if dense else g.clone()  # a dense gradient: its nonzero rows
        ref.step()
        ours.step()
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


def test_untouched_rows_do_not_move_and_tables_get_sparse_gradients() -> None:
    ds = make_toy_dataset()
    torch.manual_seed(0)
    m = build_model("neumf", ds, dim=4)
    opt = RowSparseAdam(m, lr=0.1)
    mlp_before = [p.detach().clone() for n, p in m.named_parameters() if "mlp." in n]
    before = m.item_gmf.weight.detach().clone()
    users, items = torch.tensor([0, 1]), torch.tensor([[2, 3], [4, 5]])
    loss = m.score(users, items).sum()
    opt.zero_grad()
    loss.backward()
    assert m.item_gmf.weight.grad is not None and m.item_gmf.weight.grad.is_sparse
    opt.step()
    moved = (m.item_gmf.weight.detach() != before).any(1)
    assert moved[[2, 3, 4, 5]].all() and not moved[[0, 1] + list(range(6, ds.n_items))].any()
    after = [p.detach() for n, p in m.named_parameters() if "mlp." in n]
    assert any(not torch.equal(x, y) for x, y in zip(mlp_before, after))  # dense Adam on the MLP


def test_weight_decay_with_tables_is_refused() -> None:
    ds = make_toy_dataset()
    with pytest.raises(RecdistillError, match="model.params.reg"):
        RowSparseAdam(build_model("bpr", ds, dim=4), lr=0.1, weight_decay=1e-4)
    with pytest.raises(RecdistillError, match="train.optimizer"):
        make_config(sets=["train.optimizer=sgd"])


@pytest.mark.parametrize("model", ["bpr", "neumf", "cdae"])
def test_sparse_adam_runs_and_resumes_bitwise(model: str, tmp_path) -> None:
    ds = make_toy_dataset()
    cfg = make_config(
        overrides={
            "data": {"name": "toy"},
            "model": {"name": model, "size": None, "dim": 4},
            "train": {
                "epochs": 4,
                "batch_size": 16,
                "progress": False,
                "ks": [5],
                "monitor": "H@5",
                "optimizer": "sparse_adam",
                "patience": 100,
            },
        }
    )
    full_tr, full = train_run(cfg, tmp_path / "full", dataset=ds)
    train_run(cfg, tmp_path / "cut", dataset=ds, stop_after=2)
    cut_tr, resumed = train_run(cfg, tmp_path / "cut", dataset=ds, resume=True)
    assert full["models"] == resumed["models"]
    for v, w in zip(
        full_tr.models["model"].state_dict().values(), cut_tr.models["model"].state_dict().values()
    ):
        assert torch.equal(v, w)
