"""RCE-KD (Zhu & Zhang, "Rejuvenating Cross-Entropy Loss in Knowledge Distillation for
Recommender Systems", arXiv 2509.20989, 2025), as its code runs it (``woriazzc/RCEKD``,
``modeling/KD/playground.py`` class ``RCEKD``; settings ``configs/citeulike/bpr/rcekd.yaml``).

Per user ``u``: ``Q_u``, the teacher's top-``K`` items (fixed; the code ranks every item, the
training items too: ``exclude_observed=false``); each epoch, the student's top-``mxK`` list
``S^mx_u`` and its head ``S_u`` (top ``K``). For position ``j < mxK`` of ``S^mx_u``, ``c_j`` is
the number of ``Q_u`` items at positions ``>= j`` (capped at ``K``), and ``L`` positions are drawn
without replacement with ``P(j) ∝ exp((c_j + 1) / T)``: ``I_u``, the items the student ranks
above many of the teacher's (the "collaborative" draw, ``pg:37-53``). On a batch row ``u``:

- ``ℓ_S = -Σ_{i ∈ S_u} p_T(i) log softmax_{S_u}(s/τ)_i`` with ``p_T = softmax_{S_u}(t/τ)``;
- ``C_u = I_u ∪ (Q_u \\ I_u \\ S_u)`` and ``ℓ_T = -Σ_{i ∈ C_u} p_T(i) log softmax_{C_u}(s/τ)_i``
  with ``p_T = softmax_{C_u}(t/τ)`` (``pg:61-91``);
- the adaptive weight ``w_u = exp(-β |Q_u ∩ I_u| / K)``, ``ℓ_u = (1 - w_u) ℓ_S + w_u ℓ_T``
  (``pg:93-95``).

``L_RCE`` is the mean of ``ℓ_u`` over the batch's rows (users repeated as often as they appear:
the code does not take distinct users). The code sums BPR and ``ℓ_u`` over the batch, ours
averages both: the same objective divided by the batch size, so λ = 500 is the code's λ (its
Adam ``weight_decay`` acts on the summed loss: 1e-5 there is about 1e-5 / 2048 here). Softmaxes
subtract the row maximum (the code's ``exp`` does not; the values are the same where it does not
overflow). Defaults: K = L = 50, mxK = 200, T = 10, β = 3, τ = 1, λ = 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from recdistill.data.dataset import Dataset
from recdistill.distill.base import DISTILLERS, FrozenTeacherDistiller
from recdistill.errors import RecdistillError
from recdistill.models.base import Batch, Recommender
from recdistill.ranking import sample_without_replacement
from recdistill.ranking.scoring import scoring_mode

__all__ = ["RCEKD", "RCEKDConfig", "rce_loss", "rce_weights"]


@dataclass(frozen=True)
class RCEKDConfig:
    """lambda_rce: λ. k: K, the teacher's and the student's top lists. l: L, the items drawn
    from the student's top-mx_k per epoch. mx_k: mxK. temperature: T of the draw. beta: β of
    the adaptive weight. tau: τ of the softmaxes. exclude_observed: rank only unobserved items
    for Q_u and S^mx_u (the code: false). chunk: users per ranking chunk (speed only)."""

    lambda_rce: float = 500.0
    k: int = 50
    l: int = 50  # noqa: E741 (the paper's L)
    mx_k: int = 200
    temperature: float = 10.0
    beta: float = 3.0
    tau: float = 1.0
    exclude_observed: bool = False
    chunk: int = 1024

    def __post_init__(self) -> None:
        for key in ("k", "l", "mx_k", "chunk"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise RecdistillError(f"distill.params.{key}: expected a positive integer, got {v!r}")
        if not self.k <= self.mx_k or not self.l <= self.mx_k:
            raise RecdistillError(
                f"distill.params: k={self.k} and l={self.l} must not exceed mx_k={self.mx_k}"
            )
        for key in ("temperature", "tau"):
            if not getattr(self, key) > 0:
                raise RecdistillError(
                    f"distill.params.{key}: expected a number > 0, got {getattr(self, key)}"
                )
        if not (self.lambda_rce >= 0 and self.beta >= 0):
            raise RecdistillError("distill.params: lambda_rce and beta must be >= 0")


def rce_weights(in_q: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
    """The draw's weights over the student's top-mxK positions (``pg:45-48``): ``in_q`` bool
    (U, mxK), whether position ``j`` holds a teacher top-K item -> ``exp((c_j + 1) / T)`` with
    ``c_j = min(#{j' >= j: in_q}, K)``, float64 (U, mxK)."""
    c = in_q.flip(1).long().cumsum(1).flip(1).clamp(max=k)  # (U, mxK) teacher items at >= j
    return torch.exp((c.double() + 1.0) / temperature)


def _soft_ce(s: torch.Tensor, t: torch.Tensor, keep: torch.Tensor, tau: float) -> torch.Tensor:
    """``-Σ_i p_T(i) log softmax(s/τ)_i`` over the entries ``keep`` of each row -> (U,); an entry
    the teacher does not score (``-inf``, a sparse score file) is left out, a row with none: 0."""
    keep = keep & torch.isfinite(t)
    neg = torch.finfo(s.dtype).min
    ls = torch.log_softmax(torch.where(keep, s / tau, neg), dim=1)  # (U, n)
    pt = torch.softmax(torch.where(keep, t / tau, neg), dim=1)  # (U, n)
    return -(pt * torch.where(keep, ls, 0.0)).sum(1)


def rce_loss(
    s_top: torch.Tensor,
    t_top: torch.Tensor,
    s_cand: torch.Tensor,
    t_cand: torch.Tensor,
    keep: torch.Tensor,
    overlap: torch.Tensor,
    beta: float,
    tau: float,
) -> torch.Tensor:
    """Per row ``(1 - w) ℓ_S + w ℓ_T`` (module docstring) -> (U,). s_top, t_top (U, K): the
    student's and the teacher's scores of ``S_u``; s_cand, t_cand, keep (U, L + K): of ``I_u``
    then ``Q_u``, ``keep`` marking ``C_u``; overlap (U,): ``|Q_u ∩ I_u| / K``."""
    all_top = torch.ones_like(s_top, dtype=torch.bool)
    ell_s = _soft_ce(s_top, t_top, all_top, tau)  # (U,)
    ell_t = _soft_ce(s_cand, t_cand, keep, tau)  # (U,)
    w = torch.exp(-beta * overlap)  # (U,)
    return (1 - w) * ell_s + w * ell_t


def _member(a: torch.Tensor, b: torch.Tensor, chunk: int) -> torch.Tensor:
    """Per row, whether each entry of ``a`` (R, m) is in the same row of ``b`` (R, n) -> bool
    (R, m); in chunks of rows (an (R, m, n) comparison per chunk)."""
    out = torch.empty(a.shape, dtype=torch.bool)
    for s in range(0, a.shape[0], chunk):
        out[s : s + chunk] = (a[s : s + chunk, :, None] == b[s : s + chunk, None, :]).any(2)
    return out


@DISTILLERS.register("rcekd")
class RCEKD(FrozenTeacherDistiller):
    """``L = L_base + λ·L_RCE`` (RCE-KD, arXiv 2509.20989; the module docstring)."""

    name = "rcekd"
    Config = RCEKDConfig
    needs = "scores"
    speed_params: ClassVar[tuple[str, ...]] = ("chunk",)

    def __init__(
        self,
        student: Recommender,
        teacher: Any,
        dataset: Dataset,
        config: RCEKDConfig,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(student, teacher, dataset, config, device, seed)
        if config.mx_k > dataset.n_items:
            raise RecdistillError(f"distill.params.mx_k={config.mx_k} exceeds the {dataset.n_items} items")
        self.q = self._top(teacher.score_all, config.k)  # (n_users, K) Q_u, fixed
        self.s_top = self.i_set = self.cand = torch.empty(0, dtype=torch.int64)
        self.keep = torch.empty(0, dtype=torch.bool)
        self.overlap = self.t_top = self.t_cand = torch.empty(0)

    def _top(self, score_all: Any, k: int) -> torch.Tensor:
        """Every user's top-``k`` items by ``score_all`` (observed ones masked with
        ``exclude_observed``), int64 (n_users, k) on the CPU; chunked."""
        ds, c = self.dataset, self.config
        out = torch.empty(ds.n_users, k, dtype=torch.int64)
        indptr = ds.train.indptr
        for s in range(0, ds.n_users, c.chunk):
            e = min(s + c.chunk, ds.n_users)
            scores = score_all(torch.arange(s, e, device=self.device)).detach().float().clone()  # (B, n)
            if c.exclude_observed:
                rows = torch.repeat_interleave(
                    torch.arange(e - s), torch.from_numpy(indptr[s + 1 : e + 1] - indptr[s:e])
                )
                cols = torch.from_numpy(ds.train.indices[indptr[s] : indptr[e]].astype("int64"))
                scores[rows.to(scores.device), cols.to(scores.device)] = -torch.inf
            out[s:e] = scores.topk(k, dim=1).indices.cpu()
        return out

    def weights(self, name: str, epoch: int) -> tuple[float, dict[str, float]]:
        return 1.0, {"RCE": self.config.lambda_rce}

    def on_epoch_start(self, epoch: int) -> None:
        """The student's top-mxK, then ``I_u`` drawn from it (``pg:37-53``); per user ``C_u``
        and the teacher's scores of ``S_u`` and of the candidates (fixed for the epoch)."""
        super().on_epoch_start(epoch)
        c = self.config
        with scoring_mode(self.student):
            top_mx = self._top(self.student.score_all, c.mx_k)  # (n_users, mxK)
        in_q = _member(top_mx, self.q, c.chunk)  # (n_users, mxK)
        pos = sample_without_replacement(rce_weights(in_q, c.k, c.temperature), c.l, self.generator)  # (n, L)
        self.s_top = top_mx[:, : c.k]  # (n_users, K) S_u
        self.i_set = top_mx.gather(1, pos)  # (n_users, L) I_u
        self.overlap = _member(self.i_set, self.q, c.chunk).sum(1).double() / c.k  # (n_users,)
        self.cand = torch.cat([self.i_set, self.q], 1)  # (n_users, L + K): I_u, then Q_u
        q_out = ~(_member(self.q, self.i_set, c.chunk) | _member(self.q, self.s_top, c.chunk))  # (n, K)
        self.keep = torch.cat([torch.ones_like(self.i_set, dtype=torch.bool), q_out], 1)  # C_u
        self.t_top, self.t_cand = self._teacher_scores(self.s_top), self._teacher_scores(self.cand)

    def _teacher_scores(self, items: torch.Tensor) -> torch.Tensor:
        """The teacher's scores of every user's ``items`` (n_users, m), chunked, on the CPU."""
        out = torch.empty(items.shape, dtype=torch.float32)
        with torch.no_grad():
            for s in range(0, items.shape[0], self.config.chunk):
                e = min(s + self.config.chunk, items.shape[0])
                users = torch.arange(s, e, device=self.device)
                out[s:e] = self.teacher.score(users, items[s:e].to(self.device)).float().cpu()
        return out

    def targets(self) -> dict[str, torch.Tensor]:
        return {"Q": self.q, "S": self.s_top, "I": self.i_set}

    def kd_terms(self, name: str, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        if self.epoch != epoch:  # called without on_epoch_start (e.g. a single loss call)
            self.on_epoch_start(epoch)
        c = self.config
        users = batch.users  # (B,) every row, as the code: not its distinct users
        u = users.cpu()
        s_u, cand, keep, t_top, t_cand = (
            x[u].to(self.device) for x in (self.s_top, self.cand, self.keep, self.t_top, self.t_cand)
        )
        s_top = self.student.score(users, s_u)  # (B, K)
        s_cand = self.student.score(users, cand)  # (B, L + K)
        overlap = self.overlap[u].to(self.device, s_top.dtype)  # (B,)
        return {"RCE": rce_loss(s_top, t_top, s_cand, t_cand, keep, overlap, c.beta, c.tau).mean()}

    def run_metrics(self) -> dict[str, Any]:
        return {}
