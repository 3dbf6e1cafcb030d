"""CDAE: collaborative denoising autoencoder (Wu et al., WSDM 2016), 2-layer encoder/decoder.

Input: the user's binary training row ``y_u`` (n_items,), corrupted by dropout (0.5, train mode
only). Encoder ``h1 = sigma(W1 y~_u + V_u + b1)`` (the user embedding ``V_u`` enters the first
hidden layer as in CDAE), ``h2 = sigma(W2 h1 + b2)``; decoder ``h3 = sigma(W3 h2 + b3)``,
logits ``z_u = W4 h3 + b4`` (n_items,). ``n_layers=1``: the original CDAE as the BD notebook
builds it, one linear encoder and one linear decoder, ``z_u = W4 sigma(W1 y~_u + V_u + b1) + b4``.
Loss (BD Sec. 5.1.5): binary cross-entropy on the observed items (label 1) and on
``5 x |I_u^+|`` sampled unobserved items (label 0), summed per user and averaged over the
batch's users. Training touches only those entries: the encoder sums W1's columns of the
observed items (dropout on them alone) and the decoder scores only the weighted items, so a
batch's forward and backward cost O(nnz d), not O(B n_items d) (the optimiser step still
updates the dense weights); full rows (:meth:`CDAE.score_all`) are for ranking.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recdistill.data.pairs import csr_positions
from recdistill.errors import RecdistillError
from recdistill.models.base import Batch, Recommender, lookup, register_model

_ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}


@register_model("cdae")
class CDAE(Recommender):
    """``train``: the (n_users x n_items) CSR training matrix whose rows are the inputs.
    ``dim``: hidden size of all layers (BD CiteULike: 50 teacher, 2.81M parameters / 5
    student, 0.30M). ``dropout``: input corruption. ``activation``: sigmoid (CDAE), tanh or relu.
    ``n_layers``: hidden layers on each side, 2 (default) or 1 (the original CDAE).
    ``user_init_std``: std of the user embeddings' normal initialisation (0.01; the BD notebook
    keeps ``nn.Embedding``'s N(0, 1), which gives every user a distinct hidden code from the
    first step).
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
        user_init_std: float = 0.01,
    ) -> None:
        super().__init__(n_users, n_items)
        if train.shape != (n_users, n_items):
            raise RecdistillError(f"train matrix shape {train.shape} != ({n_users}, {n_items})")
        if activation not in _ACTIVATIONS:
            raise RecdistillError(f"unknown activation {activation!r}; known: {sorted(_ACTIVATIONS)}")
        if n_layers not in (1, 2):
            raise RecdistillError(f"CDAE n_layers: expected 1 or 2, got {n_layers!r}")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise RecdistillError(f"CDAE dropout: expected a number in [0, 1), got {dropout!r}")
        if not (isinstance(user_init_std, (int, float)) and user_init_std > 0):
            raise RecdistillError(f"CDAE user_init_std: expected a number > 0, got {user_init_std!r}")
        self.init_kwargs.update(dim=dim, dropout=dropout, activation=activation)
        if n_layers != 2:  # saved models from before the setting have 2
            self.init_kwargs.update(n_layers=n_layers)
        if user_init_std != 0.01:  # likewise: saved models from before the setting have 0.01
            self.init_kwargs.update(user_init_std=user_init_std)
        self.n_layers = n_layers
        self.dim, self.dropout, self.activation = dim, dropout, activation
        self._act = _ACTIVATIONS[activation]
        train = sp.csr_matrix(train)
        # The training rows, as CSR arrays (not saved in the state dict: rebuilt from the data).
        self.register_buffer("indptr", torch.from_numpy(train.indptr.astype(np.int64)), False)
        self.register_buffer("indices", torch.from_numpy(train.indices.astype(np.int64)), False)
        self.user_emb = nn.Embedding(n_users, dim)
        nn.init.normal_(self.user_emb.weight, std=float(user_init_std))
        self.enc1 = nn.Linear(n_items, dim)
        if n_layers == 2:
            self.enc2 = nn.Linear(dim, dim)
            self.dec1 = nn.Linear(dim, dim)
        self.dec2 = nn.Linear(dim, n_items)

    def input_pairs(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The users' training rows as pairs: users (B,) -> (row (nnz_B,) into ``users``,
        item (nnz_B,)), row by row in CSR order."""
        row, pos = csr_positions(self.indptr, users)  # (nnz_B,), (nnz_B,)
        return row, self.indices[pos]

    def rows(self, users: torch.Tensor) -> torch.Tensor:
        """The users' binary training rows: users (B,) -> (B, n_items) float."""
        row, cols = self.input_pairs(users)
        y = torch.zeros(users.numel(), self.n_items, device=users.device, dtype=self.enc1.weight.dtype)
        y[row, cols] = 1.0
        return y

    def _hidden(self, pre: torch.Tensor) -> torch.Tensor:
        """The code fed to the decoder from the first layer's pre-activation (B, d) -> (B, d)."""
        h = self._act(pre)
        if self.n_layers == 2:
            h = self._act(self.enc2(h))  # (B, d)
            h = self._act(self.dec1(h))  # (B, d)
        return h

    def forward_rows(self, users: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Logits from given dense input rows: users (B,), y (B, n_items) -> (B, n_items)
        (dropout on every entry in train mode; the reference for :meth:`encode`)."""
        y = F.dropout(y, self.dropout, self.training)  # (B, n_items), rescaled by 1/(1-p)
        return self.dec2(self._hidden(self.enc1(y) + lookup(self.user_emb, users)))  # (B, n_items)

    def encode(self, users: torch.Tensor) -> torch.Tensor:
        """The decoder's input for the users' training rows (B,) -> (B, d), from the rows' nonzero
        entries only: ``W1 y~_u`` is a sum of W1's columns of the user's observed items, each kept
        with probability 1 - dropout and scaled by 1/(1 - dropout) in train mode (the same
        corruption as dense dropout, whose zero entries stay zero); O(nnz_B d), not O(B n_items d)."""
        row, cols = self.input_pairs(users)
        w = self.enc1.weight.index_select(1, cols).t()  # (nnz_B, d): W1's columns
        if self.training and self.dropout > 0:
            keep = torch.empty(row.numel(), device=w.device, dtype=w.dtype).bernoulli_(1 - self.dropout)
            w = w * (keep / (1 - self.dropout))[:, None]  # (nnz_B, d)
        pre = torch.zeros(users.numel(), self.dim, device=w.device, dtype=w.dtype).index_add(0, row, w)
        return self._hidden(pre + self.enc1.bias + lookup(self.user_emb, users))  # (B, d)

    def decode(self, h: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of the given items from the codes: items (...) -> (...), with h (..., d)
        broadcasting against them (e.g. h (B, 1, d) with items (B, k))."""
        q = self.dec2.weight.index_select(0, items.reshape(-1)).view(*items.shape, self.dim)  # (..., d)
        return (q * h).sum(-1) + self.dec2.bias[items]

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.dec2(self.encode(users))  # (B, n_items)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(users).unsqueeze(1), items)  # (B, k)

    def score_pairs(self, users: torch.Tensor, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(users)[rows], items)  # (N,)

    def base_loss(self, batch: Batch) -> torch.Tensor:
        """BCE on observed items (label 1) and the batch's negatives (label 0; ``neg`` flat with
        ``neg_row``, or (B, n_neg)); a negative drawn twice counts twice (sampling with
        replacement). Only these entries carry weight, so only their logits are computed
        (:meth:`decode`). The negatives must be unobserved items (not checked here: the
        trainer's ``NegativeSampler`` and BD's draws as negatives guarantee it); an observed item
        given as a negative would count as a label-0 term."""
        if batch.neg is None:
            raise RecdistillError("CDAE needs batches with sampled negatives (neg)")
        h = self.encode(batch.users)  # (B, d)
        if batch.neg_row is None:
            neg_row = torch.arange(batch.users.numel(), device=h.device)[:, None].expand_as(batch.neg)
            neg_row, neg = neg_row.reshape(-1), batch.neg.reshape(-1)  # (N,), (N,)
        else:
            neg_row, neg = batch.neg_row, batch.neg  # (N,), (N,)
        pos_row, pos = self.input_pairs(batch.users)  # (nnz_B,), (nnz_B,)
        z_pos = self.decode(h[pos_row], pos)  # (nnz_B,)
        z_neg = self.decode(h[neg_row], neg)  # (N,)
        bce = F.softplus(-z_pos).sum() + F.softplus(z_neg).sum()  # -log σ(z), -log(1 - σ(z))
        return bce / batch.users.numel()
