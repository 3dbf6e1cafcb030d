"""Uniform negatives of the base losses: items a user has not observed in training.

Drawn by :func:`recdistill.ranking.sampling.uniform_excluding` against the training pairs
(:class:`recdistill.data.pairs.PairSet`): only the rejected draws are redrawn, so the loop runs
over rejection rounds (a handful on sparse data), never over users or interactions.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recdistill.data.pairs import PairSet
from recdistill.errors import RecdistillError
from recdistill.ranking.sampling import uniform_excluding


class NegativeSampler:
    """Uniform sampler over ``I_u^-`` (the items u has not observed in ``train``).

    All randomness comes from the ``torch.Generator`` passed to :meth:`sample`; tensors are
    produced on the CPU (the generator's device) and moved by the caller.
    """

    def __init__(self, train: sp.spmatrix, max_rounds: int = 1000) -> None:
        self.pairs = PairSet.from_csr(train)
        self.n_users, self.n_items = train.shape
        deg = np.diff(sp.csr_matrix(train).indptr)
        full = np.flatnonzero(deg >= self.n_items)
        if full.size:
            raise RecdistillError(
                f"user {int(full[0])} has observed all {self.n_items} items; no negative to sample"
            )
        self.max_rounds = max_rounds

    def is_observed(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Bool mask, True where (users, items) is a training pair; any equal shapes."""
        return self.pairs.contains(users, items)

    def sample(self, users: torch.Tensor, n_neg: int, generator: torch.Generator) -> torch.Tensor:
        """``n_neg`` negatives per user, with replacement: users (N,) -> items (N, n_neg) int64."""
        items, valid = uniform_excluding(users, self.n_items, n_neg, self.pairs, generator, self.max_rounds)
        if not bool(valid.all()):
            raise RuntimeError(f"negative sampling did not converge in {self.max_rounds} rounds")
        return items
