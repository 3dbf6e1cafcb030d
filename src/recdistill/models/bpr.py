"""BPR: matrix factorisation with the pairwise BPR loss (Rendle et al., UAI 2009).

``z(u, i) = p_u . q_i``; loss ``-mean log sigma(z(u, i) - z(u, j))`` over the batch's (u, i, j)
triples (one term per sampled negative j), plus ``reg * mean(||p_u||^2 + ||q_i||^2 +
mean_j ||q_j||^2)`` over the batch's rows (Rendle's per-sample L2, "lambda_Theta"). Adam's
``weight_decay`` (the trainer's L2) also exists, but it decays every row of the embedding
tables at every step, also rows absent from the batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recdistill.errors import RecdistillError
from recdistill.models.base import Batch, Recommender, lookup, register_model


@register_model("bpr")
class BPR(Recommender):
    """Matrix factorisation. ``dim``: embedding size (BD CiteULike: 50 teacher / 5 student;
    DCD: 200 / 20). ``init_std``: std of the normal initialisation. ``reg``: per-sample L2."""

    batch_unit = "interaction"
    default_n_neg = 1

    def __init__(
        self, n_users: int, n_items: int, dim: int = 20, init_std: float = 0.01, reg: float = 0.0
    ) -> None:
        super().__init__(n_users, n_items)
        self.init_kwargs.update(dim=dim, init_std=init_std, reg=reg)
        self.dim, self.reg = dim, reg
        self.user_emb = nn.Embedding(n_users, dim)
        self.item_emb = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user_emb.weight, std=init_std)
        nn.init.normal_(self.item_emb.weight, std=init_std)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return lookup(self.user_emb, users) @ self.item_emb.weight.T  # (B, n_items)

    def score_items(self, items: torch.Tensor) -> torch.Tensor:
        """Every user's logits for ``items`` (C,) -> (C, n_users): the item side of the rank
        engine (DCD's item-side ranks) without scoring all items."""
        return lookup(self.item_emb, items) @ self.user_emb.weight.T  # (C, n_users)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        p = lookup(self.user_emb, users)  # (B, d)
        q = lookup(self.item_emb, items)  # (B, k, d)
        return (q * p.unsqueeze(-2)).sum(-1)  # (B, k): product and sum, not bmm (results/bench_dcd.txt)

    def score_users(self, items: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        q = lookup(self.item_emb, items)  # (I, d)
        p = lookup(self.user_emb, users)  # (I, k, d)
        return (p * q.unsqueeze(-2)).sum(-1)  # (I, k)

    def base_loss(self, batch: Batch) -> torch.Tensor:
        if batch.pos is None or batch.neg is None:
            raise RecdistillError("BPR needs batches with pos (B,) and neg (B, n_neg)")
        items = torch.cat([batch.pos[:, None], batch.neg], dim=1)  # (B, 1 + n_neg)
        if self.user_emb.sparse or self.item_emb.sparse or torch.compiler.is_compiling():
            # row-sparse gradients (sparse_adam): the module's path; compiled: autograd's form
            return bpr_loss_reference(self.user_emb(batch.users), self.item_emb(items), self.reg)
        return BPRLoss.apply(self.user_emb.weight, self.item_emb.weight, batch.users, items, self.reg)


def bpr_loss_reference(p: torch.Tensor, q: torch.Tensor, reg: float) -> torch.Tensor:
    """The BPR loss through autograd: ``p`` (B, d) user rows, ``q`` (B, 1 + n_neg, d) the positive
    then the negatives' rows -> ``-mean log sigma(z_i - z_j) + reg * mean(||p||^2 + ||q_i||^2 +
    mean_j ||q_j||^2)`` (the module docstring's loss; :class:`BPRLoss` computes the same)."""
    z = (q * p.unsqueeze(-2)).sum(-1)  # (B, 1 + n_neg): product and sum; a bmm is slower on CPU
    loss = -F.logsigmoid(z[:, :1] - z[:, 1:]).mean()
    if reg:
        sq = q.pow(2).sum(-1)  # (B, 1 + n_neg)
        loss = loss + reg * (p.pow(2).sum(-1) + sq[:, 0] + sq[:, 1:].mean(1)).mean()
    return loss


class BPRLoss(torch.autograd.Function):
    """:func:`bpr_loss_reference` from the tables, with the gradient written by hand: one pass
    of gathers, and in the backward ``dL/dz`` then one ``index_add_`` per table. Autograd's
    graph of the same loss runs about 30 ops per step (gathers, products, sums, logsigmoid,
    their backwards, zero-filled gradients), which at a batch of a few thousand rows costs more
    than the arithmetic (``benchmarks/bench_anchor.py``). Gradients (x = z_i - z_j, n = n_neg):

    - ``dL/dz_i = -sum_j sigma(-x_j) / (B n)``, ``dL/dz_j = sigma(-x_j) / (B n)``
    - ``dL/dp = sum_k dL/dz_k q_k + 2 reg p / B``; ``dL/dq_k = dL/dz_k p + 2 reg w_k q_k / B``
      with ``w_i = 1``, ``w_j = 1 / n``.

    Tested against :func:`bpr_loss_reference` in float64 (``tests/test_bpr_loss.py``).
    """

    @staticmethod
    def forward(
        ctx: Any,
        users_w: torch.Tensor,
        items_w: torch.Tensor,
        users: torch.Tensor,
        items: torch.Tensor,
        reg: float,
    ) -> torch.Tensor:
        p = users_w.index_select(0, users)  # (B, d)
        q = items_w.index_select(0, items.reshape(-1)).view(*items.shape, -1)  # (B, K, d), K = 1 + n
        z = (q * p.unsqueeze(1)).sum(-1)  # (B, K)
        x = z[:, :1] - z[:, 1:]  # (B, n)
        loss = -F.logsigmoid(x).mean()
        if reg:
            sq = q.pow(2).sum(-1)  # (B, K)
            loss = loss + reg * (p.pow(2).sum(-1) + sq[:, 0] + sq[:, 1:].mean(1)).mean()
        ctx.save_for_backward(p, q, x, users, items)
        ctx.reg, ctx.shapes = reg, (users_w.shape, items_w.shape)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        p, q, x, users, items = ctx.saved_tensors
        (b, n), reg = x.shape, ctx.reg
        dz_neg = torch.sigmoid(-x).mul_(grad / (b * n))  # (B, n): dL/dz_j
        dz = torch.cat([-dz_neg.sum(1, keepdim=True), dz_neg], dim=1)  # (B, K)
        gp = (dz.unsqueeze(-1) * q).sum(1)  # (B, d)
        gq = dz.unsqueeze(-1) * p.unsqueeze(1)  # (B, K, d)
        if reg:
            c = 2 * reg / b * grad
            gp.add_(p, alpha=float(c))
            w = torch.full((1, q.shape[1], 1), float(c) / n, dtype=q.dtype, device=q.device)  # (1, K, 1)
            w[0, 0, 0] = float(c)
            gq.addcmul_(q, w)
        g_users = g_items = None
        if ctx.needs_input_grad[0]:
            g_users = torch.zeros(ctx.shapes[0], dtype=p.dtype, device=p.device).index_add_(0, users, gp)
        if ctx.needs_input_grad[1]:
            g_items = torch.zeros(ctx.shapes[1], dtype=q.dtype, device=q.device)
            g_items.index_add_(0, items.reshape(-1), gq.reshape(-1, q.shape[-1]))
        return g_users, g_items, None, None, None
