"""Vectorised uniform negative sampling: items a user has not observed in training.

Rejection sampling against CSR membership: the training pairs are encoded as sorted int64 keys
``u * n_items + i`` and a candidate is accepted when ``searchsorted`` does not find its key.
Only the rejected draws are redrawn, so the loop runs over rejection rounds (a handful on sparse
data), never over users or interactions.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def train_pairs(train: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """The training interactions in CSR order -> (users, items), int64 (nnz,) each."""
    users = np.repeat(np.arange(train.shape[0], dtype=np.int64), np.diff(train.indptr))  # (nnz,)
    return users, train.indices.astype(np.int64)  # (nnz,)


class NegativeSampler:
    """Uniform sampler over ``I_u^-`` (the items u has not observed in ``train``).

    All randomness comes from the ``torch.Generator`` passed to :meth:`sample`; tensors are
    produced on the CPU (the generator's device) and moved by the caller.
    """

    def __init__(self, train: sp.csr_matrix, max_rounds: int = 1000) -> None:
        train = sp.csr_matrix(train)
        train.sort_indices()
        self.n_users, self.n_items = train.shape
        deg = np.diff(train.indptr)
        full = np.flatnonzero(deg >= self.n_items)
        if full.size:
            raise ValueError(
                f"user {int(full[0])} has observed all {self.n_items} items; no negative to sample"
            )
        users, items = train_pairs(train)
        keys = users * self.n_items + items  # (nnz,) sorted: CSR rows in order, indices sorted
        self.keys = torch.from_numpy(np.unique(keys))  # (nnz,) int64
        self.max_rounds = max_rounds

    def is_observed(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Bool mask, True where (users, items) is a training pair; any equal shapes."""
        q = users.to(torch.int64) * self.n_items + items.to(torch.int64)  # (...)
        if self.keys.numel() == 0:
            return torch.zeros_like(q, dtype=torch.bool)
        pos = torch.searchsorted(self.keys, q.reshape(-1)).clamp_(max=self.keys.numel() - 1)
        return (self.keys[pos] == q.reshape(-1)).reshape(q.shape)

    def sample(self, users: torch.Tensor, n_neg: int, generator: torch.Generator) -> torch.Tensor:
        """``n_neg`` negatives per user, with replacement: users (N,) -> items (N, n_neg) int64."""
        users = users.to("cpu", torch.int64)
        u = users[:, None].expand(-1, n_neg)  # (N, n_neg)
        items = torch.randint(self.n_items, u.shape, generator=generator)  # (N, n_neg)
        bad = self.is_observed(u, items)  # (N, n_neg)
        for _ in range(self.max_rounds):
            n_bad = int(bad.sum())
            if n_bad == 0:
                return items
            redraw = torch.randint(self.n_items, (n_bad,), generator=generator)  # (n_bad,)
            items[bad] = redraw
            bad[bad.clone()] = self.is_observed(u[bad], redraw)
        raise RuntimeError(f"negative sampling did not converge in {self.max_rounds} rounds")
