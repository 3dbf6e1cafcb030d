"""BPR's hand-written gradient (:class:`recdistill.models.bpr.BPRLoss`) against autograd's, in
float64: the same loss and the same table gradients, with repeated users and items in a batch,
one or several negatives, with and without the per-sample L2."""

from __future__ import annotations

import pytest
import torch

from recdistill.models.base import Batch
from recdistill.models.bpr import BPR, BPRLoss, bpr_loss_reference


def _tables(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    users_w = torch.randn(7, 4, dtype=torch.float64, generator=g)
    items_w = torch.randn(9, 4, dtype=torch.float64, generator=g)
    users = torch.randint(7, (12,), generator=g)  # repeats: 12 rows over 7 users
    return users_w, items_w, users, g


@pytest.mark.parametrize("n_neg", [1, 3])
@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_loss_and_gradients_equal_autograd(n_neg: int, reg: float) -> None:
    users_w, items_w, users, g = _tables(n_neg)
    items = torch.randint(9, (12, 1 + n_neg), generator=g)
    a_u, a_i = users_w.clone().requires_grad_(), items_w.clone().requires_grad_()
    ref = bpr_loss_reference(a_u[users], a_i[items], reg)
    ref.backward()
    b_u, b_i = users_w.clone().requires_grad_(), items_w.clone().requires_grad_()
    out = BPRLoss.apply(b_u, b_i, users, items, reg)
    (out * 1.0).backward()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(b_u.grad, a_u.grad, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(b_i.grad, a_i.grad, rtol=1e-12, atol=1e-15)


def test_gradcheck() -> None:
    users_w, items_w, users, g = _tables(5)
    items = torch.randint(9, (12, 3), generator=g)
    args = (users_w.requires_grad_(), items_w.requires_grad_(), users, items, 0.2)
    assert torch.autograd.gradcheck(BPRLoss.apply, args)


def test_model_paths_agree() -> None:
    """The model's fused path (dense tables) and its module path (sparse tables, ``sparse_adam``)
    give the same loss and the same gradient on every row."""
    torch.manual_seed(0)
    dense = BPR(7, 9, dim=4, reg=0.1).double()
    sparse = BPR(7, 9, dim=4, reg=0.1).double()
    sparse.load_state_dict(dense.state_dict())
    sparse.user_emb.sparse = sparse.item_emb.sparse = True
    batch = Batch(
        torch.tensor([0, 1, 1, 6]), torch.tensor([2, 2, 8, 0]), torch.tensor([[1, 3], [4, 4], [0, 5], [8, 7]])
    )
    ld, ls = dense.base_loss(batch), sparse.base_loss(batch)
    ld.backward()
    ls.backward()
    torch.testing.assert_close(ld, ls, rtol=1e-12, atol=0)
    for a, b in ((dense.user_emb, sparse.user_emb), (dense.item_emb, sparse.item_emb)):
        torch.testing.assert_close(a.weight.grad, b.weight.grad.to_dense(), rtol=1e-12, atol=1e-15)
