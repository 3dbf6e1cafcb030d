"""BD: Bidirectional Distillation (Kweon, Kang, Yu; WWW 2021, paper 001).

Both models train at once (Eq. 2):
    ``L_T = L_CF(T) + λ_{S→T} · L_BD(T; S)``,   ``L_S = L_CF(S) + λ_{T→S} · L_BD(S; T)``,
with ``L_BD(X; Y) = Σ_{j ∈ RDS_{Y→X}(I_u^-)} BCE(σ(z^X_uj/τ), σ(z^Y_uj/τ))`` (Eq. 3) on items
drawn by rank-discrepancy-aware sampling over the unobserved items ``I_u^-`` (ranks 1 = top):
    T→S (the student learns): ``p(i) ∝ tanh(max((rank_S(i) - rank_T(i)) · ε_t, 0))``   (Eq. 4)
    S→T (the teacher learns): ``p(i) ∝ exp((rank_T(i) - rank_S(i)) · ε_e)``           (Eq. 5)
Algorithm 1: warm up with ``L_CF`` only; every ``p`` epochs recompute both ranking lists and draw,
for every training interaction (u, i), ``n_samples`` items per direction (with replacement); these
draws serve the whole period. The trainer updates the teacher, then the student, per batch.

Sampling schemes (Table 5), named by :data:`SCHEMES`:
- ``rank-discrepancy``: Eqs. 4 and 5 (the paper's directions).
- ``rank-aware`` (CD): the learner follows the other model's list, ``p(i) ∝ exp(-rank_other(i)/T_r)``.
- ``top-n`` (RD): uniform over the other model's top-N items.
- ``uniform``: uniform over ``I_u^-``.
- ``swapped`` (Table 5's ablation): the functions swapped between directions, i.e. the teacher
  follows the student with ``tanh(max((rank_T - rank_S) ε_t, 0))`` and the student follows the
  teacher with ``exp((rank_S - rank_T) ε_e)``.
- ``reversed``: the official notebook's directions. It ranks with an ascending argsort, so its
  rank differences have the opposite sign to Eqs. 4-5: teacher ``exp((rank_S - rank_T) ε_e)``,
  student ``tanh(max((rank_T - rank_S) ε_t, 0))`` (METHODS.md, "Known trap").

Observed (training) items are never drawn (weight 0; they are excluded from the ranks, as the
rank engine's ``rank_rows`` does). A user whose weights are all zero (e.g. the two lists agree)
gets uniform draws. ``reversed`` keeps that exclusion (the notebook's multiply-by-0 mask lets
observed items be drawn).

Losses per batch: interaction batches (BPR, NeuMF) sum ``L_BD`` over the row's ``n_samples`` draws
and average over rows (as ``L_CF``); user batches (CDAE) sum over all ``deg(u)·n_samples`` draws of
the user and average over users. The other model's soft label carries no gradient. Draws are
stored as int32 (nnz, n_samples) per direction and looked up by ``Batch.idx``.

Initialisation (the paper's Algorithm 1, line 1): both models are warmed up with ``L_CF`` only
for ``warmup_epochs``; the official notebook instead starts from fully pre-trained models, which
``recdistill distill --method bd --teacher RUN --student RUN`` also allows (``warmup_epochs`` may
then be 0). Both are supported; on citeulike-bd with BPR, starting from scratch gave the best
BD-Student and pre-training the cheapest runs (``results/bd_notes.md``).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from recdistill.data.dataset import Dataset
from recdistill.distill import DISTILLERS
from recdistill.distill.base import Distiller
from recdistill.losses import bd_loss
from recdistill.models.base import Batch, Recommender
from recdistill.ranking.order import rank_rows

if TYPE_CHECKING:
    from recdistill.config import Config
    from recdistill.train.trainer import Trainer

SCHEMES = ("rank-discrepancy", "rank-aware", "top-n", "uniform", "swapped", "reversed")
FIXED = (None, "teacher", "student")
#: BDConfig.monitor_model: the model(s) whose validation drives early stopping
MONITORS = ("auto", "student", "teacher", "both")
LEARNERS = ("teacher", "student")


@dataclass(frozen=True)
class BDConfig:
    """BD's hyperparameters, defaults from the paper (Sec. 5.1.5) and the official notebook.

    lambda_t2s, lambda_s2t: λ_{T→S} and λ_{S→T} of Eq. 2 (paper: 0.5 both).
    n_samples: items drawn per training interaction and direction (paper: {1, 5, 10}; notebook 5).
    eps_t, eps_e: ε_t of Eq. 4 and ε_e of Eq. 5 (paper grids 1e-2..1e-5 / 1e-3..1e-5; best ≈1e-4).
    tau: temperature τ of the soft labels (paper {2, 5, 10}; notebook 2).
    label_only_tau: False = the paper's ``BCE(σ(z^X/τ), σ(z^Y/τ))``; True = the notebook's
        ``BCE(σ(z^X), σ(z^Y/τ))``. Default False (the paper's): on the validation split
        (citeulike-bd, BPR 50/5, mean of seeds 0-2) it gave H@50 T/S 0.0803/0.0403 against
        0.0801/0.0399 for the notebook's, equal within noise (``results/bd_notes.md``).
    period: p of Algorithm 1, epochs between rank refreshes (paper 10).
    warmup_epochs: epochs of ``L_CF`` only before the first refresh (Algorithm 1, line 1).
    sampling: one of :data:`SCHEMES`.
    fixed: None (bidirectional), "teacher" or "student" (that model frozen: Fig. 3 "fixed T/S").
    rank_aware_t: T_r of the rank-aware scheme. top_n: N of the top-N scheme.
    draws_as_negatives: also use the learner's drawn items as the negatives of ``L_CF``
        (Sec. 4.4; for interaction batches, the first ``n_neg`` draws of each row).
    standardize: opt-in, not the paper's (default False = Eq. 3 as written). Each model's logits
        enter Eq. 3 standardised per user, ``(z(u,j) - μ_u)/σ_u``, with ``μ_u``, ``σ_u`` the mean
        and (population) std of that model's logits over ``I_u^-`` at the last refresh (constants
        for the period). BPR fixes only per-user score differences, so two models' absolute
        logits (offset, scale) are arbitrary; standardising makes the BCE compare where each model
        places the item within its own per-user distribution (``results/bd_logits_*.md``).
        On citeulike-bd (BPR 50/5, 3 seeds) it did not help BD-Teacher (test H@50 0.1377 vs
        0.1358 without, control 0.1518) and left BD-Student unchanged (``results/bd_notes.md``).
    chunk: users per chunk when ranking at refresh time.
    teacher_dim, student_dim: model sizes (Fig. 3: S, M, T) for models built from scratch;
        None = the dataset's size presets (BD: 50 / 5).
    monitor_model: which model's validation (``train.monitor``, e.g. H@50) drives early stopping
        (``train.patience`` validations without improvement), one of :data:`MONITORS`:
        ``"auto"`` (default, the behaviour before this setting existed) = the student, or the
        teacher when the student is fixed; ``"student"``; ``"teacher"``; ``"both"`` = stop only
        once neither model improved for ``patience`` validations. Each model keeps its own
        best-validation state whatever is monitored. Not a paper hyperparameter (the paper trains
        until convergence); with ``"auto"`` the student's early best (often BD epoch 2 on
        citeulike-bd) ends runs after a few periods, which cuts the teacher's schedule short
        (``results/bd_notes.md``). A fixed model cannot be monitored.
        CLI: ``--set distill.params.monitor_model=teacher``.
    """

    lambda_t2s: float = 0.5
    lambda_s2t: float = 0.5
    n_samples: int = 5
    eps_t: float = 1e-4
    eps_e: float = 1e-4
    tau: float = 2.0
    label_only_tau: bool = False
    period: int = 10
    warmup_epochs: int = 10
    sampling: str = "rank-discrepancy"
    fixed: str | None = None
    rank_aware_t: float = 10.0
    top_n: int = 10
    draws_as_negatives: bool = False
    standardize: bool = False
    chunk: int = 256
    teacher_dim: int | None = None
    student_dim: int | None = None
    monitor_model: str = "auto"

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"BD config {name}={getattr(self, name)!r}: expected {expected}")

        for name in ("lambda_t2s", "lambda_s2t"):
            if not getattr(self, name) >= 0:
                raise bad(name, "a number >= 0")
        for name in ("eps_t", "eps_e", "tau", "rank_aware_t"):
            if not getattr(self, name) > 0:
                raise bad(name, "a number > 0")
        for name in ("n_samples", "period", "top_n", "chunk"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise bad(name, "an integer >= 1")
        if not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise bad("warmup_epochs", "an integer >= 0")
        if self.sampling not in SCHEMES:
            raise bad("sampling", f"one of {', '.join(SCHEMES)}")
        if self.fixed not in FIXED:
            raise bad("fixed", "None, 'teacher' or 'student'")
        if self.monitor_model not in MONITORS:
            raise bad("monitor_model", f"one of {', '.join(MONITORS)}")
        if self.fixed is not None and self.monitor_model in (self.fixed, "both"):
            raise bad("monitor_model", f"a trained model (the {self.fixed} is fixed): 'auto' or "
                      f"{self.learners[0]!r}")
        for name in ("teacher_dim", "student_dim"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise bad(name, "None or an integer >= 1")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BDConfig:
        """Build from a dict; unknown keys are an error (no silent defaults)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown BD config key(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def learners(self) -> tuple[str, ...]:
        """The models that are trained ("teacher", "student"), without the fixed one."""
        return tuple(n for n in LEARNERS if n != self.fixed)

    @property
    def stop_on(self) -> tuple[str, ...]:
        """The models whose validation drives early stopping (``monitor_model`` resolved)."""
        if self.monitor_model == "auto":
            return ("student",) if "student" in self.learners else ("teacher",)
        if self.monitor_model == "both":
            return LEARNERS
        return (self.monitor_model,)

    def weight(self, learner: str) -> float:
        """λ of the learner's distillation term (λ_{S→T} for the teacher, λ_{T→S} for the student)."""
        return self.lambda_s2t if learner == "teacher" else self.lambda_t2s


def sampling_weights(
    scheme: str,
    learner: str,
    rank_t: torch.Tensor,
    rank_s: torch.Tensor,
    cfg: BDConfig,
    unobserved: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Unnormalised draw weights for ``learner`` from ranks (B, m) of the teacher and the student.

    Returns ``dtype`` (B, m), zero where ``unobserved`` (B, m) bool is False. For the exp
    functions the maximum over the row's unobserved items is subtracted (same distribution, no
    overflow).
    """
    rt, rs = rank_t.to(dtype), rank_s.to(dtype)  # (B, m)
    keep = torch.ones_like(rt, dtype=torch.bool) if unobserved is None else unobserved  # (B, m)
    return _weights(scheme, learner, rt, rs, cfg, keep).masked_fill_(~keep, 0.0)


def _weights(
    scheme: str, learner: str, rt: torch.Tensor, rs: torch.Tensor, cfg: BDConfig, keep: torch.Tensor
) -> torch.Tensor:
    other = rs if learner == "teacher" else rt  # (B, m) the list the learner follows

    def tanh_w(d: torch.Tensor) -> torch.Tensor:
        return torch.tanh(d.mul_(cfg.eps_t).clamp_(min=0.0))  # (B, m)

    def exp_w(d: torch.Tensor) -> torch.Tensor:
        x = d.mul_(cfg.eps_e)  # (B, m)
        top = x.masked_fill(~keep, float("-inf")).amax(dim=1, keepdim=True)  # (B, 1)
        return torch.exp(x.sub_(top).masked_fill_(~keep, float("-inf")))  # (B, m)

    if scheme == "rank-discrepancy":  # Eq. 4 (student) and Eq. 5 (teacher)
        return exp_w(rt - rs) if learner == "teacher" else tanh_w(rs - rt)
    if scheme == "swapped":  # Table 5: functions swapped, discrepancy directions kept
        return tanh_w(rt - rs) if learner == "teacher" else exp_w(rs - rt)
    if scheme == "reversed":  # the official notebook: signs of Eqs. 4-5 reversed
        return exp_w(rs - rt) if learner == "teacher" else tanh_w(rt - rs)
    if scheme == "rank-aware":
        return torch.exp(-(other - 1) / cfg.rank_aware_t)  # (B, m)
    if scheme == "top-n":
        return (other <= cfg.top_n).to(rt.dtype)  # (B, m)
    if scheme == "uniform":
        return torch.ones_like(rt)  # (B, m)
    raise ValueError(f"unknown sampling scheme {scheme!r}; known: {', '.join(SCHEMES)}")


def draw_ragged(
    weights: torch.Tensor, counts: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Draw ``counts[b]`` items with replacement from row b's weights (B, m), by inverse CDF on
    one flat cumulative sum (no loop over rows). Returns int64 (counts.sum(),) items, rows in order.
    A row with zero total weight must not be asked for draws."""
    B, m = weights.shape
    cdf = torch.cumsum(weights.reshape(-1), 0, dtype=torch.float64)  # (B*m,)
    ends = cdf[m - 1 :: m]  # (B,) cumulative total at each row's end
    starts = torch.cat([ends.new_zeros(1), ends[:-1]])  # (B,)
    row = torch.repeat_interleave(torch.arange(B, device=weights.device), counts)  # (N,)
    # uniforms from the (CPU) generator: the same draws on any device
    u = torch.rand(row.numel(), generator=generator, dtype=torch.float64).to(weights.device)  # (N,)
    target = starts[row] + u * (ends[row] - starts[row])  # (N,)
    flat = torch.searchsorted(cdf, target, right=True)  # (N,) first index with cdf > target
    flat = torch.minimum(flat, (row + 1) * m - 1)  # float rounding at a row's end
    items = flat - row * m  # (N,)
    # rounding can land on a zero-weight item just before a positive one; step to the next positive
    zero = weights.reshape(-1)[flat] <= 0
    if bool(zero.any()):
        nxt = torch.searchsorted(cdf, cdf[flat[zero]], right=True)  # (n_zero,)
        items[zero] = torch.minimum(nxt, (row[zero] + 1) * m - 1) - row[zero] * m
    return items


def _observed(users_np: np.ndarray, train: sp.csr_matrix, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) int64 of the training entries of ``users_np`` within the block."""
    sub = train[users_np]
    rows = torch.from_numpy(np.repeat(np.arange(len(users_np)), np.diff(sub.indptr))).to(device)
    return rows, torch.from_numpy(sub.indices.astype(np.int64)).to(device)


def _ranks(scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, pool) -> torch.Tensor:
    """Exact user-side ranks (B, m) int32 among unobserved items, 0 on observed ones, from the rank
    engine's ``rank_rows`` (ties to the lower item index)."""
    return rank_rows(scores, rows, cols, pool=pool)[0]  # (B, m)


def _user_stats(z: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Per-row mean and population std (floored at 1e-12) of ``z`` (B, m) over ``keep`` (B, m),
    float64 (B, 2)."""
    z = z.double()  # (B, m)
    cnt = keep.sum(1).clamp_(min=1).double()  # (B,)
    mu = torch.where(keep, z, 0.0).sum(1) / cnt  # (B,)
    var = torch.where(keep, (z - mu[:, None]) ** 2, 0.0).sum(1) / cnt  # (B,)
    return torch.stack([mu, var.sqrt().clamp_(min=1e-12)], 1)  # (B, 2)


@torch.no_grad()
def draw_bd_samples(
    teacher: Recommender,
    student: Recommender,
    train: sp.csr_matrix,
    cfg: BDConfig,
    generator: torch.Generator,
    learners: tuple[str, ...] = LEARNERS,
    stats: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """One refresh of Algorithm 1 (lines 3-4 and the draws of lines 6 and 9, for the period).

    Ranks every user's unobserved items by both models (chunks of users, exact argsort) and draws
    ``deg(u) · n_samples`` items per user and learner from the scheme's distribution. Returns
    ``{learner: int32 (nnz, n_samples)}``, row k = the draws of the k-th training interaction in
    CSR order (``train.indices``), on the models' device.

    ``stats``: if a dict is given, it is filled with float64 (n_users, 2) per model
    (``"teacher"``, ``"student"``): each user's mean and population std of the model's logits over
    ``I_u^-`` (for ``BDConfig.standardize``; std floored at 1e-12).
    """
    device = teacher.device
    train = sp.csr_matrix(train)
    train.sort_indices()
    n_users = train.shape[0]
    deg_all = np.diff(train.indptr)
    s = cfg.n_samples
    out = {name: torch.empty(train.nnz * s, dtype=torch.int32, device=device) for name in learners}
    if stats is not None:
        for name in LEARNERS:
            stats[name] = torch.zeros(n_users, 2, dtype=torch.float64, device=device)  # (n, 2)
    modes = (teacher.training, student.training)
    teacher.eval()
    student.eval()
    n_threads = torch.get_num_threads() if device.type == "cpu" else 1
    pool = ThreadPoolExecutor(n_threads) if n_threads > 1 else None
    try:
        pos = 0
        for start in range(0, n_users, cfg.chunk):
            users = np.arange(start, min(start + cfg.chunk, n_users))
            deg = torch.from_numpy(deg_all[users]).to(device)  # (B,)
            if int(deg.sum()) == 0 and stats is None:
                continue
            ut = torch.from_numpy(users).to(device)  # (B,)
            rows, cols = _observed(users, train, device)  # (nnz_B,), (nnz_B,)
            z_t, z_s = teacher.score_all(ut), student.score_all(ut)  # (B, m) each
            rank_t = _ranks(z_t.float(), rows, cols, pool)  # (B, m) int32
            rank_s = _ranks(z_s.float(), rows, cols, pool)  # (B, m) int32
            unobserved = rank_t > 0  # (B, m)
            if stats is not None:
                for name, z in (("teacher", z_t), ("student", z_s)):
                    stats[name][ut] = _user_stats(z, unobserved)  # (B, 2)
            if int(deg.sum()) == 0:
                continue
            n = int(deg.sum()) * s
            for name in learners:
                w = sampling_weights(cfg.sampling, name, rank_t, rank_s, cfg, unobserved)  # (B, m)
                empty = w.sum(1) <= 0  # (B,)
                if bool(empty.any()):  # no discrepant item: uniform over I_u^-
                    w[empty] = unobserved[empty].to(w.dtype)
                items = draw_ragged(w, deg * s, generator)  # (deg_B * s,)
                out[name][pos : pos + n] = items.to(torch.int32)
            pos += n
        assert pos == train.nnz * s
    finally:
        if pool is not None:
            pool.shutdown()
        teacher.train(modes[0])
        student.train(modes[1])
    return {name: d.view(train.nnz, s) for name, d in out.items()}


@DISTILLERS.register("bd")
class BD(Distiller):
    """Algorithm 1 as a trainer objective over ``{"teacher": T, "student": S}``.

    ``on_epoch_start(epoch)`` refreshes the draws at ``warmup_epochs + k·period``;
    ``loss(name, batch, epoch)`` returns ``L_CF + λ·L_BD`` for ``name`` (``L_CF`` alone during
    warm-up). Batches carry ``idx``: interaction indices in CSR order (interaction batches) or
    the users (user batches, e.g. CDAE: all the user's draws apply to the user's row).
    ``models`` holds the trained models only (the fixed one, if any, is ``self.all_models``).
    """

    name = "bd"
    Config = BDConfig
    #: BD trains the teacher too: the CLI builds both models (see :func:`run_bd`)
    trains_teacher = True

    def __init__(
        self,
        teacher: Recommender,
        student: Recommender,
        dataset: Dataset,
        config: BDConfig | None = None,
        device: torch.device | str | None = None,
        seed: int = 0,
    ) -> None:
        cfg = config or BDConfig()
        both = {"teacher": teacher, "student": student}
        super().__init__({n: both[n] for n in cfg.learners}, dataset, cfg,
                         device if device is not None else teacher.device, seed)
        self.cfg: BDConfig = cfg
        self.all_models = both
        self.train = sp.csr_matrix(dataset.train)
        self.train.sort_indices()
        self.indptr = torch.from_numpy(self.train.indptr.astype(np.int64)).to(self.device)  # (n+1,)
        self.draws: dict[str, torch.Tensor] = {}
        #: per-user (mean, std) of each model's logits over I_u^- at the last refresh (standardize)
        self.stats: dict[str, torch.Tensor] = {}
        self.n_refresh = 0
        self.refresh_seconds: list[float] = []

    @property
    def trained(self) -> tuple[str, ...]:
        """Names of the models to update, teacher first (the fixed one is left out)."""
        return self.cfg.learners

    def is_distilling(self, epoch: int) -> bool:
        return epoch >= self.cfg.warmup_epochs

    def on_epoch_start(self, epoch: int) -> None:
        """Refresh ranks and draws every ``period`` epochs after warm-up (Algorithm 1, line 3)."""
        super().on_epoch_start(epoch)
        if not self.is_distilling(epoch) or (epoch - self.cfg.warmup_epochs) % self.cfg.period:
            return
        t0 = time.perf_counter()
        stats: dict[str, torch.Tensor] | None = {} if self.cfg.standardize else None
        self.draws = draw_bd_samples(
            self.all_models["teacher"], self.all_models["student"], self.train, self.cfg,
            self.generator, self.trained, stats=stats,
        )
        self.stats = stats or {}
        self.refresh_seconds.append(time.perf_counter() - t0)
        self.n_refresh += 1

    def weights(self, name: str, epoch: int) -> tuple[float, dict[str, float]]:
        """Eq. 2: ``L_CF + λ·L_BD`` (``L_CF`` alone during warm-up)."""
        if not self.is_distilling(epoch):
            return 1.0, {}
        return 1.0, {"BD": self.cfg.weight(name)}

    def kd_terms(self, name: str, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        return {"BD": self.distill_loss(name, batch)}

    def batch_draws(self, name: str, batch: Batch) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The learner's draws for a batch: ``(rows (N,), items (N,))`` for user batches, or
        ``(None, items (B, n_samples))`` for interaction batches."""
        if batch.idx is None:
            raise ValueError("BD needs batches with idx (interaction indices or users)")
        if name not in self.draws:
            raise RuntimeError(f"no BD draws for {name!r}: on_epoch_start was not called after warm-up")
        d = self.draws[name]  # (nnz, s) int32
        if self.all_models[name].batch_unit == "user":
            start, end = self.indptr[batch.users], self.indptr[batch.users + 1]  # (B,), (B,)
            deg = end - start  # (B,)
            row = torch.repeat_interleave(torch.arange(len(deg), device=deg.device), deg)  # (nnz_B,)
            off = torch.arange(row.numel(), device=deg.device) - (torch.cumsum(deg, 0) - deg)[row]
            items = d[start[row] + off].long()  # (nnz_B, s)
            s = items.shape[1]
            return row.repeat_interleave(s), items.reshape(-1)  # (N,), (N,)
        return None, d[batch.idx].long()  # (B, s)

    def distill_loss(self, name: str, batch: Batch) -> torch.Tensor:
        """``L_BD(X; Y)`` of Eq. 3 for learner X = ``name`` on its draws (sum over a row's draws,
        mean over the batch's rows: interactions, or users for user batches)."""
        other_name = "student" if name == "teacher" else "teacher"
        learner, other = self.all_models[name], self.all_models[other_name]
        rows, items = self.batch_draws(name, batch)
        if rows is None:  # interaction batch
            z_x = learner.score(batch.users, items)  # (B, s)
            with torch.no_grad():
                z_y = other.score(batch.users, items)  # (B, s)
            if self.cfg.standardize:
                z_x = self._standardize(name, z_x, batch.users[:, None])  # (B, s)
                z_y = self._standardize(other_name, z_y, batch.users[:, None])  # (B, s)
            return bd_loss(z_x, z_y, self.cfg.tau, self.cfg.label_only_tau, reduction="mean")
        z_x = learner.score_all(batch.users)[rows, items]  # (N,)
        with torch.no_grad():
            z_y = other.score_all(batch.users)[rows, items]  # (N,)
        if self.cfg.standardize:
            z_x = self._standardize(name, z_x, batch.users[rows])  # (N,)
            z_y = self._standardize(other_name, z_y, batch.users[rows])  # (N,)
        per = bd_loss(z_x[:, None], z_y[:, None], self.cfg.tau, self.cfg.label_only_tau, reduction="sum")
        return per / batch.users.numel()

    def _standardize(self, name: str, z: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """``(z - μ_u)/σ_u`` with ``name``'s per-user statistics of the last refresh; ``users``
        broadcasts against ``z``."""
        if name not in self.stats:
            raise RuntimeError(f"no logit statistics for {name!r}: no refresh yet (on_epoch_start)")
        st = self.stats[name].to(z.dtype)  # (n, 2)
        return (z - st[users, 0]) / st[users, 1]  # z's shape

    def loss(self, name: str, batch: Batch, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 2 for ``name``; with ``draws_as_negatives`` the draws are also ``L_CF``'s negatives."""
        if name not in self.trained:
            raise ValueError(f"model {name!r} is fixed; it is not trained")
        if self.cfg.draws_as_negatives and self.is_distilling(epoch) and name in self.draws:
            batch = self._negatives_from_draws(name, batch)
        return super().loss(name, batch, epoch)

    def _negatives_from_draws(self, name: str, batch: Batch) -> Batch:
        """Sec. 4.4: the drawn items double as the base loss's negatives."""
        rows, items = self.batch_draws(name, batch)
        if rows is None:
            n_neg = batch.neg.shape[1] if batch.neg is not None else 1
            return Batch(batch.users, batch.pos, items[:, :n_neg], batch.idx, None)
        return Batch(batch.users, batch.pos, items, batch.idx, rows)

    @classmethod
    def run(cls, config: Config, **kwargs: Any) -> tuple[Trainer, BD, dict[str, Any]]:
        """``recdistill distill --method bd``: :func:`run_bd` with ``distill.params`` as the
        :class:`BDConfig` and ``teacher`` / ``student`` (run directories) as the starting models;
        ``distill.teacher`` is the teacher run when ``teacher`` is not given."""
        bd = BDConfig.from_dict(dict(config.distill.params))
        teacher = kwargs.get("teacher") or config.distill.teacher
        return run_bd(config, bd, kwargs.get("out_dir"), dataset=kwargs.get("dataset"),
                      teacher_run=teacher, student_run=kwargs.get("student"),
                      resume=bool(kwargs.get("resume", False)))

    # -- checkpoints (the trainer saves these with its own state) --------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"draws": {k: v.cpu() for k, v in self.draws.items()}, "n_refresh": self.n_refresh,
                "stats": {k: v.cpu() for k, v in self.stats.items()},
                "generator": self.generator.get_state(), "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.draws = {k: v.to(self.device) for k, v in state["draws"].items()}
        self.stats = {k: v.to(self.device) for k, v in state.get("stats", {}).items()}
        self.n_refresh = state["n_refresh"]
        self.generator.set_state(state["generator"])
        self.epoch = state["epoch"]


def _init_model(
    config: Config, dataset: Dataset, size: str, run: str | Path | None, dim: int | None
) -> Recommender:
    """A pre-trained model from a run directory (its ``size`` model, e.g. a BD run's teacher, or
    its only one), or a fresh one of the ``size`` preset / ``dim``."""
    from recdistill.models import build_model
    from recdistill.train.io import load_run

    if run is not None:
        models = load_run(run, dataset).models
        if size in models:
            model = models[size]
        elif len(models) == 1:
            model = next(iter(models.values()))
        else:
            raise ValueError(f"{run}: holds models {sorted(models)}; expected one model or a {size!r}")
        if model.name != config.model.name:
            raise ValueError(f"{run}: holds a {model.name!r} model, but model.name is {config.model.name!r}")
        return model.train()
    mc = config.model
    return build_model(mc.name, dataset, size=None if dim is not None else size, dim=dim, **mc.params)


def run_bd(
    config: Config,
    bd_config: BDConfig | None = None,
    out_dir: str | Path | None = None,
    dataset: Dataset | None = None,
    teacher_run: str | Path | None = None,
    student_run: str | Path | None = None,
    teacher_dim: int | None = None,
    student_dim: int | None = None,
    resume: bool = False,
) -> tuple[Trainer, BD, dict[str, Any]]:
    """Train a teacher and a student together with BD (Algorithm 1); returns (trainer, bd, metrics).

    ``config``: data, model (``model.name`` for both; sizes from the presets, or ``teacher_dim`` /
    ``student_dim``, else those of ``bd_config``), training settings (``train.epochs`` counts
    warm-up and BD epochs; early stopping after ``train.patience`` validations without improvement
    of the model(s) named by ``bd_config.monitor_model``). Models
    start from ``teacher_run`` / ``student_run`` (pre-trained run directories) when given, else
    from scratch. A ``fixed`` model must be pre-trained. ``out_dir`` gets ``teacher.pt``,
    ``student.pt`` (the trained ones; each model's best validation state), ``metrics.json``
    (BD-Teacher and BD-Student), ``log.jsonl``, ``config.yaml`` and ``bd.json``.
    """
    from recdistill.train.io import atomic_json
    from recdistill.train.run import load_dataset_for, write_config

    cfg = bd_config or BDConfig()
    if cfg.fixed == "teacher" and teacher_run is None:
        raise ValueError("BD with fixed='teacher' needs a pre-trained teacher run (--teacher RUN)")
    if cfg.fixed == "student" and student_run is None:
        raise ValueError("BD with fixed='student' needs a pre-trained student run (--student RUN)")
    if dataset is None:
        dataset = load_dataset_for(config)
    torch.manual_seed(config.train.seed)
    teacher = _init_model(config, dataset, "teacher", teacher_run,
                          teacher_dim if teacher_dim is not None else cfg.teacher_dim)
    if student_dim is None:  # explicit argument, else BDConfig, else model.dim of the run config
        student_dim = cfg.student_dim if cfg.student_dim is not None else config.model.dim
    student = _init_model(config, dataset, "student", student_run, student_dim)
    device = torch.device(config.train.device)
    teacher.to(device)
    student.to(device)
    distiller = BD(teacher, student, dataset, cfg, device=device, seed=config.train.seed)
    if out_dir is not None:
        write_config(config, out_dir)
        atomic_json({"bd": cfg.to_dict(), "teacher_run": None if teacher_run is None else str(teacher_run),
                     "student_run": None if student_run is None else str(student_run),
                     "teacher_parameters": teacher.n_parameters, "student_parameters": student.n_parameters},
                    Path(out_dir) / "bd.json")
    from recdistill.train.trainer import Trainer

    primary = "student" if "student" in distiller.models else "teacher"
    trainer = Trainer(distiller.models, distiller, dataset, config, out_dir, primary=primary,
                      stop_on=cfg.stop_on)
    metrics = trainer.fit(resume=resume)
    if metrics:
        metrics["refresh_seconds"] = [round(x, 3) for x in distiller.refresh_seconds]
        if out_dir is not None:
            atomic_json(metrics, Path(out_dir) / "metrics.json")
    return trainer, distiller, metrics
