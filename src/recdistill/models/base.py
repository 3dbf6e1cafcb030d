"""The contract every recommender follows (RecBole's two-method shape, plus pair scores).

Distillation methods are model-agnostic: they only call ``score_all`` and ``score``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Batch:
    """One training batch.

    users: (B,) user ids. pos: (B,) a positive item per row, or None for user-batched models
    (CDAE). neg: (B, n_neg) sampled unobserved items, or None.
    """

    users: torch.Tensor
    pos: torch.Tensor | None = None
    neg: torch.Tensor | None = None


class Recommender(nn.Module):
    """Base class: logits for users against all items or against given items."""

    #: "interaction" (batches of (u, i) training pairs, e.g. BPR, NeuMF) or "user" (batches of
    #: users with their whole training row, e.g. CDAE).
    batch_unit: str = "interaction"

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Logits of ``users`` (B,) against every item -> (B, n_items)."""
        raise NotImplementedError

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits for given items per user: users (B,), items (B, k) -> (B, k)."""
        raise NotImplementedError

    def base_loss(self, batch: Batch) -> torch.Tensor:
        """The model's own collaborative-filtering loss on a batch (a scalar)."""
        raise NotImplementedError

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
