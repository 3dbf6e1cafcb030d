"""BPR: matrix factorisation with the pairwise BPR loss (Rendle et al., UAI 2009).

``z(u, i) = p_u . q_i``; loss ``-mean log sigma(z(u, i) - z(u, j))`` over the batch's (u, i, j)
triples (one term per sampled negative j), plus ``reg * mean(||p_u||^2 + ||q_i||^2 +
mean_j ||q_j||^2)`` over the batch's rows (Rendle's per-sample L2, "lambda_Theta"). Adam's
``weight_decay`` (the trainer's L2) also exists, but it decays every row of the embedding
tables at every step, also rows absent from the batch.
"""

from __future__ import annotations

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
        p = lookup(self.user_emb, batch.users)  # (B, d)
        q = lookup(self.item_emb, items)  # (B, 1 + n_neg, d)
        z = (q @ p.unsqueeze(-1)).squeeze(-1)  # (B, 1 + n_neg)
        loss = -F.logsigmoid(z[:, :1] - z[:, 1:]).mean()
        if self.reg:
            sq = q.pow(2).sum(-1)  # (B, 1 + n_neg)
            loss = loss + self.reg * (p.pow(2).sum(-1) + sq[:, 0] + sq[:, 1:].mean(1)).mean()
        return loss
