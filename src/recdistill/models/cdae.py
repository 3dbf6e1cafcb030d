"""CDAE: collaborative denoising autoencoder (Wu et al., WSDM 2016), 2-layer encoder/decoder.

Input: the user's binary training row ``y_u`` (n_items,), corrupted by dropout (0.5, train mode
only). Encoder ``h1 = sigma(W1 y~_u + V_u + b1)`` (the user embedding ``V_u`` enters the first
hidden layer as in CDAE), ``h2 = sigma(W2 h1 + b2)``; decoder ``h3 = sigma(W3 h2 + b3)``,
logits ``z_u = W4 h3 + b4`` (n_items,). ``n_layers=1``: the original CDAE as the BD notebook
builds it, one linear encoder and one linear decoder, ``z_u = W4 sigma(W1 y~_u + V_u + b1) + b4``.
Loss (BD Sec. 5.1.5): binary cross-entropy on the observed items (label 1) and on
``5 x |I_u^+|`` sampled unobserved items (label 0), summed per user and averaged over the
batch's users.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recdistill.errors import RecdistillError
from recdistill.models.base import Batch, Recommender, lookup

_ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}


class CDAE(Recommender):
    """``train``: the (n_users x n_items) CSR training matrix whose rows are the inputs.
    ``dim``: hidden size of all layers (BD CiteULike: 50 teacher, 2.81M parameters / 5
    student, 0.30M). ``dropout``: input corruption. ``activation``: sigmoid (CDAE), tanh or relu.
    ``n_layers``: hidden layers on each side, 2 (default) or 1 (the original CDAE).
    """

    batch_unit = "user"
    default_n_neg = 5  # per observed item of the user

    indptr: torch.Tensor  # buffers: the training CSR
    indices: torch.Tensor

    def __init__(
        self,
        n_users: int,
        n_items: int,
        train: sp.csr_matrix,
        dim: int = 20,
        dropout: float = 0.5,
        activation: str = "sigmoid",
        n_layers: int = 2,
    ) -> None:
        super().__init__(n_users, n_items)
        if train.shape != (n_users, n_items):
            raise RecdistillError(f"train matrix shape {train.shape} != ({n_users}, {n_items})")
        if activation not in _ACTIVATIONS:
            raise RecdistillError(f"unknown activation {activation!r}; known: {sorted(_ACTIVATIONS)}")
        if n_layers not in (1, 2):
            raise RecdistillError(f"CDAE n_layers: expected 1 or 2, got {n_layers!r}")
        self.init_kwargs.update(dim=dim, dropout=dropout, activation=activation)
        if n_layers != 2:  # saved models from before the setting have 2
            self.init_kwargs.update(n_layers=n_layers)
        self.n_layers = n_layers
        self.dim, self.dropout, self.activation = dim, dropout, activation
        self._act = _ACTIVATIONS[activation]
        train = sp.csr_matrix(train)
        # The training rows, as CSR arrays (not saved in the state dict: rebuilt from the data).
        self.register_buffer("indptr", torch.from_numpy(train.indptr.astype(np.int64)), False)
        self.register_buffer("indices", torch.from_numpy(train.indices.astype(np.int64)), False)
        self.user_emb = nn.Embedding(n_users, dim)
        nn.init.normal_(self.user_emb.weight, std=0.01)
        self.enc1 = nn.Linear(n_items, dim)
        if n_layers == 2:
            self.enc2 = nn.Linear(dim, dim)
            self.dec1 = nn.Linear(dim, dim)
        self.dec2 = nn.Linear(dim, n_items)

    def rows(self, users: torch.Tensor) -> torch.Tensor:
        """The users' binary training rows: users (B,) -> (B, n_items) float."""
        start, end = self.indptr[users], self.indptr[users + 1]  # (B,), (B,)
        deg = end - start  # (B,)
        row = torch.repeat_interleave(torch.arange(users.numel(), device=users.device), deg)  # (nnz_B,)
        offset = torch.arange(row.numel(), device=users.device) - torch.repeat_interleave(
            torch.cumsum(deg, 0) - deg, deg
        )  # (nnz_B,) position within the user's row
        cols = self.indices[start[row] + offset]  # (nnz_B,)
        y = torch.zeros(users.numel(), self.n_items, device=users.device, dtype=self.enc1.weight.dtype)
        y[row, cols] = 1.0
        return y

    def forward_rows(self, users: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Logits from the given input rows: users (B,), y (B, n_items) -> (B, n_items)."""
        y = F.dropout(y, self.dropout, self.training)  # (B, n_items), rescaled by 1/(1-p)
        h = self._act(self.enc1(y) + lookup(self.user_emb, users))  # (B, d)
        if self.n_layers == 2:
            h = self._act(self.enc2(h))  # (B, d)
            h = self._act(self.dec1(h))  # (B, d)
        return self.dec2(h)  # (B, n_items)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.forward_rows(users, self.rows(users))  # (B, n_items)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.score_all(users).gather(1, items)  # (B, k)

    def base_loss(self, batch: Batch) -> torch.Tensor:
        """BCE on observed items and the batch's negatives (``neg`` flat with ``neg_row``, or
        (B, n_neg)); a negative drawn twice counts twice (sampling with replacement)."""
        if batch.neg is None:
            raise RecdistillError("CDAE needs batches with sampled negatives (neg)")
        y = self.rows(batch.users)  # (B, n_items)
        z = self.forward_rows(batch.users, y)  # (B, n_items)
        if batch.neg_row is None:
            neg_row = torch.arange(batch.users.numel(), device=z.device)[:, None].expand_as(batch.neg)
            neg_row, neg = neg_row.reshape(-1), batch.neg.reshape(-1)  # (N,), (N,)
        else:
            neg_row, neg = batch.neg_row, batch.neg  # (N,), (N,)
        weight = y.clone()  # (B, n_items): 1 on observed items
        weight.index_put_((neg_row, neg), torch.ones_like(neg, dtype=z.dtype), accumulate=True)
        bce = F.binary_cross_entropy_with_logits(z, y, weight=weight, reduction="sum")
        return bce / batch.users.numel()
