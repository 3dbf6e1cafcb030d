"""BD: Bidirectional Distillation (Kweon, Kang, Yu; WWW 2021, paper 001).

Both models train at once (Eq. 2):
    ``L_T = L_CF(T) + λ_{S→T} · L_BD(T; S)``,   ``L_S = L_CF(S) + λ_{T→S} · L_BD(S; T)``,
with ``L_BD(X; Y) = Σ_{j ∈ RDS_{Y→X}(I_u^-)} BCE(σ(z^X_uj/τ), σ(z^Y_uj/τ))`` (Eq. 3) on items
drawn by rank-discrepancy-aware sampling over the unobserved items ``I_u^-`` (ranks 1 = top):
    T→S (the student learns): ``p(i) ∝ tanh(max((rank_S(i) - rank_T(i)) · ε_t, 0))``   (Eq. 4)
    S→T (the teacher learns): ``p(i) ∝ exp((rank_T(i) - rank_S(i)) · ε_e)``           (Eq. 5)
Algorithm 1: warm up with ``L_CF`` only; every ``p`` epochs recompute both ranking lists (lines
3-4); every epoch draw, for every training interaction (u, i), ``n_samples`` items per direction
with replacement from the period's fixed distributions (lines 6 and 9). The ranks and draws come
from the rank engine (:meth:`recdistill.ranking.RankEngine.refresh`, one ``DrawSpec`` per learner,
``rounds = p``: one independent draw per epoch of the period). The trainer updates the teacher,
then the student, per batch.

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

Observed (training) items are never drawn (they are excluded from the ranks and the draws by the
rank engine). A user whose weights are all zero (e.g. the two lists agree) gets uniform draws.
``reversed`` keeps that exclusion (the notebook's multiply-by-0 mask lets observed items be drawn).

Losses per batch: interaction batches (BPR, NeuMF) sum ``L_BD`` over the row's ``n_samples`` draws
and average over rows (as ``L_CF``); user batches (CDAE) sum over all ``deg(u)·n_samples`` draws of
the user and average over users. The other model's soft label carries no gradient. Draws are
stored as int32 (p, nnz, n_samples) per direction and looked up by the epoch's round and
``Batch.idx``.

Initialisation (the paper's Algorithm 1, line 1): both models are warmed up with ``L_CF`` only
for ``warmup_epochs``; the official notebook instead starts from fully pre-trained models, which
``recdistill distill --method bd --teacher RUN --student RUN`` also allows (``warmup_epochs`` may
then be 0). Both are supported (measured comparisons: ``results/bd_notes.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recdistill.data.dataset import Dataset
from recdistill.data.pairs import csr_positions
from recdistill.distill.base import DISTILLERS, Distiller, Parts, Roles
from recdistill.errors import RecdistillError
from recdistill.losses import bd_loss
from recdistill.models.base import Batch, Recommender
from recdistill.ranking import DrawSpec, RankEngine, Refresh, WeightFn, make_weight

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
        ``BCE(σ(z^X), σ(z^Y/τ))``.
    period: p of Algorithm 1, epochs between rank refreshes (paper 10).
    warmup_epochs: epochs of ``L_CF`` only before the first refresh (Algorithm 1, line 1).
    fresh_draws: True (Algorithm 1) = new draws every epoch from the period's distributions;
        False = one draw per refresh, reused for the whole period (the behaviour before this
        setting existed; kept to compare with earlier results).
    sampling: one of :data:`SCHEMES`.
    fixed: None (bidirectional), "teacher" or "student" (that model frozen: Fig. 3 "fixed T/S").
    rank_aware_t: T_r of the rank-aware scheme. top_n: N of the top-N scheme.
    draws_as_negatives: also use the learner's drawn items as the negatives of ``L_CF``
        (Sec. 4.4; for interaction batches, the first ``n_neg`` draws of each row).
    standardize: opt-in, not the paper's (default False = Eq. 3 as written). Each model's logits
        enter Eq. 3 standardised per user, ``(z(u,j) - μ_u)/σ_u``, with ``μ_u``, ``σ_u`` the mean
        and (population) std of that model's logits over ``I_u^-`` at the last refresh (constants
        for the period): BPR fixes only per-user score differences, so two models' absolute
        logits (offset, scale) are arbitrary.
    chunk: users per chunk when ranking at refresh time.
    teacher_dim, student_dim: model sizes (Fig. 3: S, M, T) for models built from scratch;
        None = the dataset's size presets (BD: 50 / 5).
    monitor_model: which model's validation (``train.monitor``) drives early stopping
        (``train.patience`` validations without improvement), one of :data:`MONITORS`:
        ``"auto"`` = the student, or the teacher when the student is fixed; ``"student"``;
        ``"teacher"``; ``"both"`` = stop only once neither model improved for ``patience``
        validations. Each model keeps its own best-validation state whatever is monitored. Not
        a paper hyperparameter (the paper trains until convergence). A fixed model cannot be
        monitored.
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
    fresh_draws: bool = True
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
            return RecdistillError(f"BD config {name}={getattr(self, name)!r}: expected {expected}")

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
            raise bad(
                "monitor_model",
                f"a trained model (the {self.fixed} is fixed): 'auto' or {self.learners[0]!r}",
            )
        for name in ("teacher_dim", "student_dim"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise bad(name, "None or an integer >= 1")

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


def bd_weight(scheme: str, learner: str, cfg: BDConfig) -> WeightFn:
    """The draw weight function (:mod:`recdistill.ranking.weights`) of ``learner`` under ``scheme``.

    rank-discrepancy: Eq. 5 for the teacher ``exp((rank_T - rank_S) ε_e)``, Eq. 4 for the student
    ``tanh(max((rank_S - rank_T) ε_t, 0))``; swapped: the functions exchanged; reversed: the
    notebook's signs; rank-aware / top-n: the other model's list; uniform.
    """
    teacher = learner == "teacher"
    other = "s" if teacher else "t"  # the list the learner follows
    if scheme == "rank-discrepancy":  # Eq. 5 (teacher) and Eq. 4 (student)
        return (
            make_weight("exp_disc", eps=cfg.eps_e, d="t-s")
            if teacher
            else make_weight("tanh_disc", eps=cfg.eps_t, d="s-t")
        )
    if scheme == "swapped":  # Table 5: functions swapped, discrepancy directions kept
        return (
            make_weight("tanh_disc", eps=cfg.eps_t, d="t-s")
            if teacher
            else make_weight("exp_disc", eps=cfg.eps_e, d="s-t")
        )
    if scheme == "reversed":  # the official notebook: signs of Eqs. 4-5 reversed
        return (
            make_weight("exp_disc", eps=cfg.eps_e, d="s-t")
            if teacher
            else make_weight("tanh_disc", eps=cfg.eps_t, d="t-s")
        )
    if scheme == "rank-aware":
        return make_weight("rank_aware", temperature=cfg.rank_aware_t, by=other)
    if scheme == "top-n":
        return make_weight("top_n", n=cfg.top_n, by=other)
    if scheme == "uniform":
        return make_weight("uniform")
    raise RecdistillError(f"unknown sampling scheme {scheme!r}; known: {', '.join(SCHEMES)}")


def bd_refresh(
    engine: RankEngine,
    teacher: Recommender,
    student: Recommender,
    cfg: BDConfig,
    generator: torch.Generator,
    learners: tuple[str, ...] = LEARNERS,
) -> Refresh:
    """One refresh of Algorithm 1 (lines 3-4) with the draws of lines 6 and 9 for the period.

    Ranks every user's unobserved items by both models and draws, per learner (``draws[name]``),
    ``n_samples`` items per training interaction: int32 ``index`` (rounds, nnz, n_samples), row
    k = the k-th training interaction in CSR order (``engine.train.indices``); ``rounds`` = p
    with ``fresh_draws`` (one per epoch), else 1. With ``standardize``, ``stats_t`` / ``stats_s``
    hold each user's (mean, std) of the model's logits over ``I_u^-``.
    """
    rounds = cfg.period if cfg.fresh_draws else 1
    specs = {
        n: DrawSpec(
            bd_weight(cfg.sampling, n, cfg),
            k=cfg.n_samples,
            replacement=True,
            per_interaction=True,
            rounds=rounds,
            keep_ranks=False,
        )
        for n in learners
    }
    return engine.refresh(teacher, student, "user", specs, generator=generator, score_stats=cfg.standardize)


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

    @classmethod
    def roles(cls, config: BDConfig) -> Roles:
        """No frozen teacher: BD builds (or starts from runs) a teacher and a student and trains
        both, or all but the ``fixed`` one (which must start from a run)."""
        return Roles(
            teachers=(),
            models=LEARNERS,
            # the teacher: teacher_dim or its preset; the student: student_dim, else model.dim
            dims={"teacher": config.teacher_dim}
            | ({} if config.student_dim is None else {"student": config.student_dim}),
            need_start=() if config.fixed is None else (config.fixed,),
            may_start=LEARNERS,
            primary="student" if "student" in config.learners else "teacher",
            stop_on=config.stop_on,
        )

    @classmethod
    def build(cls, parts: Parts) -> BD:
        p = parts
        return cls(p.models["teacher"], p.models["student"], p.dataset, p.config, p.device, p.seed)

    @classmethod
    def kd_start(cls, config: BDConfig) -> int:
        return config.warmup_epochs

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
        super().__init__(
            {n: both[n] for n in cfg.learners},
            dataset,
            cfg,
            device if device is not None else teacher.device,
            seed,
        )
        self.cfg: BDConfig = cfg
        self.all_models = both
        self.engine = RankEngine(dataset.train, self.device, chunk_size=cfg.chunk)
        if not np.array_equal(self.engine.train.indices, dataset.train.indices):
            raise RecdistillError("dataset.train must be canonical CSR (sorted, unique indices per row)")
        self.indptr = self.engine.side("user").indptr  # (n+1,) int64
        #: {learner: int32 (rounds, nnz, n_samples)}: the period's draws, one round per epoch
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

    def draw_round(self, epoch: int) -> int:
        """Which of the period's draws epoch ``epoch`` uses (0 without ``fresh_draws``)."""
        return (epoch - self.cfg.warmup_epochs) % self.cfg.period if self.cfg.fresh_draws else 0

    def on_epoch_start(self, epoch: int) -> None:
        """Refresh ranks and draws every ``period`` epochs after warm-up (Algorithm 1, line 3)."""
        super().on_epoch_start(epoch)
        if not self.is_distilling(epoch) or (epoch - self.cfg.warmup_epochs) % self.cfg.period:
            return
        out = bd_refresh(
            self.engine,
            self.all_models["teacher"],
            self.all_models["student"],
            self.cfg,
            self.generator,
            self.trained,
        )
        self.draws = {n: d.index for n, d in out.draws.items()}
        self.stats = {}
        if out.stats_t is not None and out.stats_s is not None:
            self.stats = {"teacher": out.stats_t, "student": out.stats_s}
        self.refresh_seconds.append(out.seconds)
        self.n_refresh += 1

    def targets(self) -> dict[str, torch.Tensor]:
        return dict(self.draws)

    def run_metrics(self) -> dict[str, Any]:
        return {"refresh_seconds": [round(x, 3) for x in self.refresh_seconds], "n_refresh": self.n_refresh}

    def weights(self, name: str, epoch: int) -> tuple[float, dict[str, float]]:
        """Eq. 2: ``L_CF + λ·L_BD`` (``L_CF`` alone during warm-up)."""
        if not self.is_distilling(epoch):
            return 1.0, {}
        return 1.0, {"BD": self.cfg.weight(name)}

    def kd_terms(self, name: str, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        return {"BD": self.distill_loss(name, batch, epoch)}

    def batch_draws(self, name: str, batch: Batch, epoch: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The learner's draws for a batch of epoch ``epoch``: ``(rows (N,), items (N,))`` for
        user batches, or ``(None, items (B, n_samples))`` for interaction batches."""
        if batch.idx is None:
            raise RecdistillError("BD needs batches with idx (interaction indices or users)")
        if name not in self.draws:
            raise RuntimeError(f"no BD draws for {name!r}: on_epoch_start was not called after warm-up")
        d = self.draws[name][self.draw_round(epoch)]  # (nnz, s) int32
        if self.all_models[name].batch_unit == "user":
            row, pos = csr_positions(self.indptr, batch.users)  # (nnz_B,), (nnz_B,)
            items = d[pos].long()  # (nnz_B, s)
            s = items.shape[1]
            return row.repeat_interleave(s), items.reshape(-1)  # (N,), (N,)
        return None, d[batch.idx].long()  # (B, s)

    def distill_loss(self, name: str, batch: Batch, epoch: int) -> torch.Tensor:
        """``L_BD(X; Y)`` of Eq. 3 for learner X = ``name`` on its draws (sum over a row's draws,
        mean over the batch's rows: interactions, or users for user batches)."""
        other_name = "student" if name == "teacher" else "teacher"
        learner, other = self.all_models[name], self.all_models[other_name]
        rows, items = self.batch_draws(name, batch, epoch)
        if rows is None:  # interaction batch
            z_x = learner.score(batch.users, items)  # (B, s)
            with torch.no_grad():
                z_y = other.score(batch.users, items)  # (B, s)
            if self.cfg.standardize:
                z_x = self._standardize(name, z_x, batch.users[:, None])  # (B, s)
                z_y = self._standardize(other_name, z_y, batch.users[:, None])  # (B, s)
            return bd_loss(z_x, z_y, self.cfg.tau, self.cfg.label_only_tau, reduction="mean")
        z_x = learner.score_pairs(batch.users, rows, items)  # (N,)
        with torch.no_grad():
            z_y = other.score_pairs(batch.users, rows, items)  # (N,)
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

    def loss(self, name: str, batch: Batch, epoch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 2 for ``name``; with ``draws_as_negatives`` the draws are also ``L_CF``'s negatives."""
        if name not in self.trained:
            raise RecdistillError(f"model {name!r} is fixed; it is not trained")
        if self.cfg.draws_as_negatives and self.is_distilling(epoch) and name in self.draws:
            batch = self._negatives_from_draws(name, batch, epoch)
        return super().loss(name, batch, epoch)

    def _negatives_from_draws(self, name: str, batch: Batch, epoch: int) -> Batch:
        """Sec. 4.4: the drawn items double as the base loss's negatives."""
        rows, items = self.batch_draws(name, batch, epoch)
        if rows is None:
            n_neg = batch.neg.shape[1] if batch.neg is not None else 1
            return Batch(batch.users, batch.pos, items[:, :n_neg], batch.idx, None)
        return Batch(batch.users, batch.pos, items, batch.idx, rows)

    # -- checkpoints (the trainer saves these with its own state) --------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "draws": {k: v.cpu() for k, v in self.draws.items()},
            "n_refresh": self.n_refresh,
            "stats": {k: v.cpu() for k, v in self.stats.items()},
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.draws = {k: v.to(self.device) for k, v in state["draws"].items()}
        self.stats = {k: v.to(self.device) for k, v in state.get("stats", {}).items()}
        self.n_refresh = state["n_refresh"]
        self.generator.set_state(state["generator"])
        self.epoch = state["epoch"]
