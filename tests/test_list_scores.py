"""RRD's and DCD's lists of a side scored in one call (``rrd.list_scores``) give each list's
logits as a call per list does, and the same gradients (float rounding apart)."""

from __future__ import annotations

import pytest
import torch

from recdistill.distill.rrd import item_side_scores, list_scores
from recdistill.models import MODELS, build_model
from recdistill.testing import toy_dataset


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("side", ["user", "item"])
def test_one_call_equals_a_call_per_list(name: str, side: str) -> None:
    ds = toy_dataset()
    torch.manual_seed(0)
    model = build_model(name, ds, dim=8).eval()
    n_rows, n_cols = (ds.n_users, ds.n_items) if side == "user" else (ds.n_items, ds.n_users)
    g = torch.Generator().manual_seed(1)
    rows = torch.randint(n_rows, (6,), generator=g)
    lists = [torch.randint(n_cols, (6, k), generator=g) for k in (3, 5, 2)]

    def one(t: torch.Tensor) -> torch.Tensor:
        return model.score(rows, t) if side == "user" else item_side_scores(model, t, rows)

    together = list_scores(model, side, rows, lists)
    sum(s.sum() * (j + 1) for j, s in enumerate(together)).backward()
    g_together = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    apart = [one(t) for t in lists]
    sum(s.sum() * (j + 1) for j, s in enumerate(apart)).backward()
    for a, b in zip(together, apart):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    for a, p in zip(g_together, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-6)
