"""CD: Collaborative Distillation (Lee et al., ICDM 2019), from a frozen teacher.

Each epoch, for every user, ``n_samples`` unobserved items are drawn without replacement with
rank-aware probability ``p(i) ∝ exp(-rank^u_T(i)/T_r)`` (the BD paper's "Rank-aware [16]"); the
student matches the teacher's soft labels on them:
``L_CD(u) = Σ_j BCE(σ(z^S(u,j)/τ), σ(z^T(u,j)/τ))`` (``recdistill.losses.cd_loss``).
Objective: ``L_base + λ_KD·L_CD``, ``L_CD`` averaged over the rows of the batch (each training
interaction carries its user's draws).

The distribution is evaluated on the teacher's top-``n_top`` list (drawn by
:class:`recdistill.ranking.TopLists` with the ``rank_aware`` weight): the probability mass beyond
it, ``≈ exp(-n_top/T_r)``, must be below 1e-6 (checked), so the truncation is exact to that level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from recdistill.data.dataset import Dataset
from recdistill.data.pairs import PairSet
from recdistill.distill.base import DISTILLERS, FrozenTeacherDistiller
from recdistill.errors import RecdistillError
from recdistill.losses import cd_loss
from recdistill.models.base import Batch, Recommender
from recdistill.ranking import TopLists, make_weight


@dataclass(frozen=True)
class CDConfig:
    """CD hyperparameters (BD Sec. 5.1.5 grids: λ_KD ∈ {0.01, 0.1, 0.5, 1}, items sampled
    ∈ {10..50}, τ ∈ {1, 1.5, 2}).

    n_samples: items drawn per user per epoch (10).
    rank_temperature: T_r of ``p ∝ exp(-rank/T_r)`` (10).
    tau: τ of the soft labels (1).
    lambda_kd: λ_KD (0.1).
    n_top: length of the teacher list the distribution is evaluated on (500).
    """

    n_samples: int = 10
    rank_temperature: float = 10.0
    tau: float = 1.0
    lambda_kd: float = 0.1
    n_top: int = 500

    def __post_init__(self) -> None:
        if self.n_samples < 1 or self.n_samples > self.n_top:
            raise RecdistillError(f"distill.params.n_samples: expected 1..n_top, got {self.n_samples}")
        if not (self.rank_temperature > 0 and self.tau > 0):
            raise RecdistillError("distill.params: rank_temperature and tau must be > 0")
        if math.exp(-self.n_top / self.rank_temperature) > 1e-6:
            raise RecdistillError(
                f"distill.params.n_top={self.n_top} truncates p ∝ exp(-rank/{self.rank_temperature:g}) "
                f"too early (tail mass ≈ {math.exp(-self.n_top / self.rank_temperature):.1e}); use "
                f"n_top >= {math.ceil(14 * self.rank_temperature)}"
            )


@DISTILLERS.register("cd")
class CD(FrozenTeacherDistiller):
    """``L = L_base + λ_KD·L_CD``."""

    name = "cd"
    Config = CDConfig
    needs = "scores"

    def __init__(
        self,
        student: Recommender,
        teacher: Any,
        dataset: Dataset,
        config: CDConfig,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(student, teacher, dataset, config, device, seed)
        topn = teacher.topn(dataset, config.n_top, "user", None, self.device)
        self.lists = TopLists(topn, dataset.n_items, PairSet.from_csr(dataset.train))  # (n_users, N)
        self.weight = make_weight("rank_aware", temperature=config.rank_temperature)
        self.samples: torch.Tensor | None = None
        self.valid: torch.Tensor | None = None

    def weights(self, name: str, epoch: int) -> tuple[float, dict[str, float]]:
        return 1.0, {"CD": self.config.lambda_kd}

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        self.samples, self.valid = self.lists.draw(self.weight, self.config.n_samples, self.generator)

    def targets(self) -> dict[str, torch.Tensor]:
        if self.samples is None or self.valid is None:
            return {}
        return {"samples": self.samples, "valid": self.valid}

    def kd_terms(self, name: str, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        if self.samples is None or self.epoch != epoch:
            self.on_epoch_start(epoch)
        assert self.samples is not None and self.valid is not None
        u = batch.users.cpu()
        items = self.samples[u].to(self.device)  # (B, n)
        mask = self.valid[u].to(self.device)  # (B, n)
        s = self.student.score(batch.users, items)  # (B, n)
        t = self.teacher.score(batch.users, items).to(s.dtype)  # (B, n)
        return {"CD": cd_loss(s, t, self.config.tau, reduction="mean", mask=mask)}
