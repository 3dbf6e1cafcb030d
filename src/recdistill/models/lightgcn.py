"""LightGCN (He et al., SIGIR 2020): linear propagation of ID embeddings over the user-item graph.

``E^(0)`` holds the user and item embeddings (the only parameters). With ``A`` the symmetric
adjacency of the bipartite training graph and ``D`` its degrees, ``Â = D^-1/2 A D^-1/2`` (Eq. 7;
no self-loops; a node without edges keeps a zero row), ``E^(k+1) = Â E^(k)`` (Eq. 8), and the
final embeddings are the layer mean ``E = Σ_{k=0..K} E^(k) / (K + 1)`` (Eq. 9, α_k = 1/(K+1)).
``z(u, i) = e_u · e_i`` (Eq. 10). Loss: BPR over the final embeddings, plus
``reg · mean(||e_u^(0)||² + ||e_i^(0)||² + mean_j ||e_j^(0)||²) / 2`` on the batch's layer-0
embeddings (Eq. 15; the official code's ``weight_decay`` 1e-4 on ``1/2 (...)/B``).

With gradients, every scoring call propagates (the gradient reaches every embedding through
``Â``): a plain step propagates once, a distillation step once per term that scores the model
(2-3 with BD, RRD or DCD). A ranking pass (the rank engine, the evaluator, a frozen teacher)
enters :meth:`scoring`, which propagates once and scores every chunk from those embeddings,
again if the parameters have changed since (their version counters, e.g. a reloaded state).
Initialisation N(0, 0.1²) as in the official code (``gusye1234/LightGCN-PyTorch``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recdistill.errors import RecdistillError
from recdistill.models.base import Batch, Recommender, register_model


def normalized_adjacency(train: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, int]:
    """``Â = D^-1/2 A D^-1/2`` of the bipartite graph of ``train`` (users first, then items) as
    COO ``(indices (2, 2·nnz) int64, values (2·nnz,) float32, n_nodes)``, rows sorted."""
    canon = sp.csr_matrix(train, copy=True)
    canon.sum_duplicates()
    canon.eliminate_zeros()  # the pattern: one edge per observed pair
    coo = canon.tocoo()
    n_users, n_items = coo.shape
    u = coo.row.astype(np.int64)
    i = coo.col.astype(np.int64) + n_users
    deg = np.bincount(np.concatenate([u, i]), minlength=n_users + n_items).astype(np.float64)
    inv = np.zeros_like(deg)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    w = (inv[u] * inv[i]).astype(np.float32)  # (nnz,)
    rows, cols = np.concatenate([u, i]), np.concatenate([i, u])  # both directions
    order = np.lexsort((cols, rows))
    return np.stack([rows[order], cols[order]]), np.concatenate([w, w])[order], n_users + n_items


@register_model("lightgcn")
class LightGCN(Recommender):
    """``train``: the (n_users x n_items) CSR training matrix (the graph). ``dim``: embedding
    size. ``n_layers``: K propagation layers (paper: 3). ``reg``: L2 on the batch's layer-0
    embeddings (Eq. 15). ``init_std``: std of the normal initialisation."""

    batch_unit = "interaction"
    default_n_neg = 1

    adj: torch.Tensor  # buffer: Â, sparse COO, coalesced (n_nodes, n_nodes)

    def __init__(
        self,
        n_users: int,
        n_items: int,
        train: sp.csr_matrix,
        dim: int = 64,
        n_layers: int = 3,
        reg: float = 1e-4,
        init_std: float = 0.1,
    ) -> None:
        super().__init__(n_users, n_items)
        if train.shape != (n_users, n_items):
            raise RecdistillError(f"train matrix shape {train.shape} != ({n_users}, {n_items})")
        if not isinstance(n_layers, int) or isinstance(n_layers, bool) or n_layers < 0:
            raise RecdistillError(f"lightgcn n_layers: expected an integer >= 0, got {n_layers!r}")
        self.init_kwargs.update(dim=dim, n_layers=n_layers, reg=reg, init_std=init_std)
        self.dim, self.n_layers, self.reg = dim, n_layers, reg
        self.user_emb = nn.Embedding(n_users, dim)
        self.item_emb = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user_emb.weight, std=init_std)
        nn.init.normal_(self.item_emb.weight, std=init_std)
        idx, val, n = normalized_adjacency(train)
        adj = torch.sparse_coo_tensor(
            torch.from_numpy(idx), torch.from_numpy(val), (n, n), is_coalesced=True, check_invariants=True
        )
        self.register_buffer("adj", adj, persistent=False)  # rebuilt from the data, not in model files
        self._prepared: tuple[torch.Tensor, torch.Tensor] | None = None
        self._versions: tuple[int, ...] = ()  # the parameters' versions the prepared ones are of
        #: propagations computed so far (tests: one per ranking pass)
        self.n_propagations = 0

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The final embeddings (Eq. 9): users (n_users, d), items (n_items, d)."""
        self.n_propagations += 1
        e = torch.cat([self.user_emb.weight, self.item_emb.weight])  # (n, d) E^(0)
        total = e
        for _ in range(self.n_layers):
            e = torch.sparse.mm(self.adj, e)  # (n, d) E^(k+1) = Â E^(k)
            total = total + e
        final = total / (self.n_layers + 1)
        return final[: self.n_users], final[self.n_users :]

    def _param_versions(self) -> tuple[int, ...]:
        return tuple(p._version for p in self.parameters())

    def _embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._prepared is None:
            return self.propagate()
        if self._versions != self._param_versions():  # changed inside the pass: prepare again
            self._prepare()
        assert self._prepared is not None
        return self._prepared

    def _prepare(self) -> None:
        with torch.no_grad():
            self._prepared = self.propagate()
        self._versions = self._param_versions()

    @contextlib.contextmanager
    def scoring(self) -> Iterator[None]:
        """Propagate once (no gradient) and score every call inside from those embeddings."""
        if self._prepared is not None:  # nested: the outer pass's embeddings
            yield
            return
        self._prepare()
        try:
            yield
        finally:
            self._prepared = None

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        eu, ei = self._embeddings()
        return eu.index_select(0, users) @ ei.T  # (B, n_items)

    def score_items(self, items: torch.Tensor) -> torch.Tensor:
        """Every user's logits for ``items`` (C,) -> (C, n_users) (the rank engine's item side)."""
        eu, ei = self._embeddings()
        return ei.index_select(0, items) @ eu.T  # (C, n_users)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        eu, ei = self._embeddings()
        p = eu.index_select(0, users)  # (B, d)
        q = ei.index_select(0, items.reshape(-1)).view(*items.shape, -1)  # (B, k, d)
        return (q * p.unsqueeze(-2)).sum(-1)  # (B, k)

    def score_users(self, items: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        eu, ei = self._embeddings()
        q = ei.index_select(0, items)  # (I, d)
        p = eu.index_select(0, users.reshape(-1)).view(*users.shape, -1)  # (I, k, d)
        return (p * q.unsqueeze(-2)).sum(-1)  # (I, k)

    def base_loss(self, batch: Batch) -> torch.Tensor:
        if batch.pos is None or batch.neg is None:
            raise RecdistillError("LightGCN needs batches with pos (B,) and neg (B, n_neg)")
        items = torch.cat([batch.pos[:, None], batch.neg], dim=1)  # (B, 1 + n_neg)
        z = self.score(batch.users, items)  # (B, 1 + n_neg)
        loss = -F.logsigmoid(z[:, :1] - z[:, 1:]).mean()
        if self.reg:
            p0 = self.user_emb.weight.index_select(0, batch.users)  # (B, d) layer 0
            sq = self.item_emb.weight.index_select(0, items.reshape(-1)).pow(2).sum(-1).view(items.shape)
            loss = loss + self.reg * (p0.pow(2).sum(-1) + sq[:, 0] + sq[:, 1:].mean(1)).mean() / 2
        return loss
