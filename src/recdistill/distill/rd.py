"""RD: Ranking Distillation (Tang & Wang, KDD 2018), from a frozen teacher.

The teacher's top-K unobserved items ``π_1..π_K`` per user (K = 10) are extra positives for the
student (Eq. 4 of RD): ``L_RD(u) = -Σ_r w_r log σ(z^S(u, π_r))`` with weights

- position (Eq. 7): ``w^a_r ∝ exp(-r/λ)``;
- rank discrepancy (Eq. 8): ``w^b_r = tanh(max(μ·(rank^u_S(π_r) - r), 0))``, where
  ``rank^u_S(π_r)`` is the student's rank of ``π_r`` among the user's unobserved items (1 = top);
- hybrid: ``w_r ∝ w^a_r·w^b_r``, normalised per user; the discrepancy part is switched on from
  epoch ``dynamic_start_epoch`` (before it, position weights only), as RD's official code.

Student objective: ``(1-α)·L_base + α·L_RD`` (METHODS.md), ``L_RD`` averaged over the rows of
the batch (each training interaction carries its user's list, as RD's per-instance loss).

Choice (documented): RD estimates ``rank_S`` by sampling every iteration; we compute it exactly
for every user's K items at the start of each epoch with the rank engine
(``recdistill.ranking.RankEngine``: one sort per user, chunked; ties go to the lower item id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from recdistill.data.dataset import Dataset
from recdistill.distill.base import DISTILLERS, FrozenTeacherDistiller
from recdistill.errors import RecdistillError
from recdistill.losses import rd_loss
from recdistill.models.base import Batch, Recommender
from recdistill.ranking import RankEngine

WEIGHTINGS = ("hybrid", "position", "discrepancy", "uniform")


@dataclass(frozen=True)
class RDConfig:
    """RD hyperparameters (defaults of RD's official code; BD Sec. 5.1.5 tunes λ_KD-like α).

    k: K, the teacher's top-K list length (10).
    lambda_position: λ of the position weight ``exp(-r/λ)`` (1).
    mu: μ of the rank-discrepancy weight (0.1).
    alpha: α of ``(1-α)·L_base + α·L_RD`` (0.5).
    weighting: hybrid | position | discrepancy | uniform.
    dynamic_start_epoch: first epoch (0-based) with discrepancy weights (5).
    chunk: users per chunk for the student's ranks (None: the rank engine's default).
    """

    k: int = 10
    lambda_position: float = 1.0
    mu: float = 0.1
    alpha: float = 0.5
    weighting: str = "hybrid"
    dynamic_start_epoch: int = 5
    chunk: int | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise RecdistillError(f"distill.params.k: expected a positive integer, got {self.k}")
        if self.weighting not in WEIGHTINGS:
            raise RecdistillError(
                f"distill.params.weighting: expected one of {WEIGHTINGS}, got {self.weighting!r}"
            )
        if not 0 <= self.alpha <= 1:
            raise RecdistillError(f"distill.params.alpha: expected 0 <= alpha <= 1, got {self.alpha}")
        if not self.lambda_position > 0:
            raise RecdistillError(f"distill.params.lambda_position: expected > 0, got {self.lambda_position}")


def student_ranks_of(
    student: Recommender,
    dataset: Dataset,
    items: torch.Tensor,
    chunk: int | None = None,
    engine: RankEngine | None = None,
) -> torch.Tensor:
    """Exact ``rank^u_S(i)`` of ``items`` (n_users, K) per user, int32 (n_users, K): 1 = top among
    u's unobserved items (ties to the lower item id), 0 for an observed item. ``engine``: a
    :class:`RankEngine` on ``dataset.train`` to reuse (else one on the student's device with
    ``chunk`` users per chunk)."""
    if engine is None:
        engine = RankEngine(dataset.train, student.device, chunk_size=chunk)
    out = torch.empty(items.shape, dtype=torch.int32)  # (n_users, K)
    for rows, (rank,), _ in engine.iter_ranks([student], "user"):
        r = rows.cpu()  # (B,)
        out[r] = rank.gather(1, items[r].to(rank.device)).cpu()  # (B, K)
    return out


def rd_weights(
    student_rank: torch.Tensor | None, k: int, lambda_position: float, mu: float, weighting: str
) -> torch.Tensor:
    """RD's weights (n_users, K), rows normalised to sum 1 (all-zero rows stay 0).

    student_rank: (n_users, K) student ranks of the teacher's π_1..π_K, or None (position only).
    """
    r = torch.arange(1, k + 1, dtype=torch.float64)  # (K,)
    w_a = torch.exp(-r / lambda_position)  # (K,)
    if weighting == "uniform":
        w = torch.ones(1, k, dtype=torch.float64)
    elif weighting == "position" or student_rank is None:
        w = w_a[None, :]
    else:
        w_b = torch.tanh(torch.clamp(mu * (student_rank.double() - r), min=0.0))  # (n_users, K)
        w = w_b if weighting == "discrepancy" else w_a * w_b
    total = w.sum(dim=1, keepdim=True)  # (n, 1)
    return torch.where(total > 0, w / total.clamp_min(1e-300), 0.0)


@DISTILLERS.register("rd")
class RD(FrozenTeacherDistiller):
    """``L = (1-α)·L_base + α·L_RD``."""

    #: the chunk size of the teacher's lists and the student's ranks: the same values at any size
    speed_params: ClassVar[tuple[str, ...]] = ("chunk",)

    name = "rd"
    Config = RDConfig
    needs = "lists"

    def __init__(
        self,
        student: Recommender,
        teacher: Any,
        dataset: Dataset,
        config: RDConfig,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(student, teacher, dataset, config, device, seed)
        topk = teacher.topn(dataset, config.k, "user", config.chunk, self.device)
        self.engine = RankEngine(dataset.train, self.device, chunk_size=config.chunk)
        self.topk = torch.from_numpy(topk.astype(np.int64))  # (n_users, K), -1 = padding
        self.valid = self.topk >= 0  # (n_users, K)
        self.items = self.topk.clamp_min(0)  # (n_users, K)
        self.w = rd_weights(None, config.k, config.lambda_position, config.mu, config.weighting)
        self.w = (self.w * self.valid).to(torch.float32)  # (n_users, K)

    def dynamic(self, epoch: int) -> bool:
        return self.config.weighting in ("hybrid", "discrepancy") and epoch >= self.config.dynamic_start_epoch

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        c = self.config
        ranks = (
            student_ranks_of(self.student, self.dataset, self.items, engine=self.engine)
            if self.dynamic(epoch)
            else None
        )
        if self.dynamic(epoch) or c.weighting == "uniform":
            self.w = rd_weights(ranks, c.k, c.lambda_position, c.mu, c.weighting)
            self.w = (self.w * self.valid).to(torch.float32)

    def targets(self) -> dict[str, torch.Tensor]:
        return {"items": self.items, "weights": self.w}

    def weights(self, name: str, epoch: int) -> tuple[float, dict[str, float]]:
        return 1.0 - self.config.alpha, {"RD": self.config.alpha}

    def kd_terms(self, name: str, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        u = batch.users.cpu()
        items = self.items[u].to(self.device)  # (B, K)
        w = self.w[u if self.w.shape[0] > 1 else torch.zeros_like(u)].to(self.device)  # (B, K)
        s = self.student.score(batch.users, items)  # (B, K)
        return {"RD": rd_loss(s, w, reduction="mean")}
