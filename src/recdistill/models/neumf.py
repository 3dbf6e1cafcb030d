"""NeuMF: GMF and MLP branches fused by a linear layer (He et al., WWW 2017).

``z(u, i) = h^T [p^G_u * q^G_i ; MLP([p^M_u ; q^M_i])]`` with a 2-layer ReLU MLP
``2d -> d -> d`` (BD Sec. 5.1.5: "2-layer MLP"). Pointwise loss: binary cross-entropy with the
observed item labelled 1 and each sampled negative labelled 0, averaged over all labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recdistill.errors import RecdistillError
from recdistill.models.base import Batch, Recommender, lookup, register_model


@register_model("neumf")
class NeuMF(Recommender):
    """``dim``: size of each branch's user/item embeddings and of the MLP layers (BD CiteULike:
    50 teacher, 3.05M parameters / 5 student, 0.30M)."""

    batch_unit = "interaction"
    default_n_neg = 1
    #: bound on the elements of score_all's (users x items x dim) MLP activation
    max_elements: int = 1 << 24

    def __init__(self, n_users: int, n_items: int, dim: int = 20, init_std: float = 0.01) -> None:
        super().__init__(n_users, n_items)
        self.init_kwargs.update(dim=dim, init_std=init_std)
        self.dim = dim
        self.user_gmf = nn.Embedding(n_users, dim)
        self.item_gmf = nn.Embedding(n_items, dim)
        self.user_mlp = nn.Embedding(n_users, dim)
        self.item_mlp = nn.Embedding(n_items, dim)
        for emb in (self.user_gmf, self.item_gmf, self.user_mlp, self.item_mlp):
            nn.init.normal_(emb.weight, std=init_std)
        self.mlp = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        self.predict = nn.Linear(2 * dim, 1)

    def _halves(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, nn.Linear]:
        """The MLP's first layer split into its user and item halves, (d, d) each, its bias,
        and the second layer: ``W [p; q] + b = W_u p + W_i q + b``, so the (…, 2d)
        concatenation is never formed."""
        d = self.dim
        lin1, lin2 = self.mlp[0], self.mlp[2]
        assert isinstance(lin1, nn.Linear) and isinstance(lin2, nn.Linear)
        return lin1.weight[:, :d], lin1.weight[:, d:], lin1.bias, lin2

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        d = self.dim
        w_u, w_i, b1, lin2 = self._halves()
        hu = lookup(self.user_mlp, users) @ w_u.T + b1  # (B, d): once per user
        if items.numel() >= self.n_items:  # many pairs (e.g. 500 candidates a user): every item once
            hi = (self.item_mlp.weight @ w_i.T)[items]  # (B, k, d)
        else:
            hi = lookup(self.item_mlp, items) @ w_i.T  # (B, k, d)
        h2 = torch.relu(lin2(torch.relu(hu[:, None, :] + hi)))  # (B, k, d)
        h_g, h_m = self.predict.weight[0, :d], self.predict.weight[0, d:]  # (d,), (d,)
        pg = lookup(self.user_gmf, users) * h_g  # (B, d)
        gmf = (pg[:, None, :] * lookup(self.item_gmf, items)).sum(-1)  # (B, k)
        return gmf + h2 @ h_m + self.predict.bias  # (B, k)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        # The MLP needs a (B, n_items, d) activation; bound it by chunking the users.
        step = max(1, self.max_elements // max(1, self.n_items * self.dim))
        if users.numel() <= step:
            return self._score_all(users)
        return torch.cat([self._score_all(c) for c in users.split(step)])  # (B, n_items)

    def _score_all(self, users: torch.Tensor) -> torch.Tensor:
        d = self.dim
        w_u, w_i, b1, lin2 = self._halves()
        hu = lookup(self.user_mlp, users) @ w_u.T + b1  # (B, d)
        hi = self.item_mlp.weight @ w_i.T  # (n_items, d)
        h1 = torch.relu(hu[:, None, :] + hi[None, :, :])  # (B, n_items, d)
        h2 = torch.relu(lin2(h1))  # (B, n_items, d)
        h_g, h_m = self.predict.weight[0, :d], self.predict.weight[0, d:]  # (d,), (d,)
        gmf = (lookup(self.user_gmf, users) * h_g) @ self.item_gmf.weight.T  # (B, n_items)
        return gmf + h2 @ h_m + self.predict.bias  # (B, n_items)

    def base_loss(self, batch: Batch) -> torch.Tensor:
        if batch.pos is None or batch.neg is None:
            raise RecdistillError("NeuMF needs batches with pos (B,) and neg (B, n_neg)")
        items = torch.cat([batch.pos[:, None], batch.neg], dim=1)  # (B, 1 + n_neg)
        z = self.score(batch.users, items)  # (B, 1 + n_neg)
        labels = torch.zeros_like(z)
        labels[:, 0] = 1.0
        return F.binary_cross_entropy_with_logits(z, labels)
