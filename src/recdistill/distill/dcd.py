"""DCD: Dual Correction Distillation (Lee & Kim, CIKM 2021; paper 000, Sec. 2.3), from a frozen
teacher, on top of RRD and item-side RRD.

Student objective (Eq. 9): ``L_base + λ_RRD·L_RRD + λ_UCD·L_UCD + λ_ICD·L_ICD``; ICD is DCD's
item side, and λ_UCD = λ_ICD = 0 "corresponds to RRD" (Sec. 3.2.3). ``L_RRD`` keeps drawing from
the teacher's fixed top-N lists (``recdistill.distill.rrd``). ``item_side=true`` adds IR-RRD's
``λ_IR·L_IR`` (the objective of every DCD run recorded before issue #33, kept as that variant;
with both corrections off it is the paper's "w/o Correction" row, RRD + IR-RRD).

Every ``period`` epochs (5) the rank engine ranks every unobserved entry under the teacher and the
student (:meth:`recdistill.ranking.RankEngine.refresh`) and draws, without replacement:

- user side (Eqs. 3-5): ``n_under`` (M_u^+ = 40) underestimated items per user with
  ``p ∝ D(S,T) = tanh(max(μ(rank_S - rank_T), 0))`` (weight ``dcd_under``), sorted by the teacher's
  order (``ρ^u``), and ``n_over`` (M_u^- = 40) overestimated items with ``p ∝ D(T,S)``
  (``dcd_over``); μ = 1e-3;
- item side (Eq. 6): the same with users per item from item-side ranks.

Where the draws look (``candidates``): ``"all"`` (default; the paper's "the list of the unobserved
items") over every unobserved entry of the row, or ``"teacher_top"`` over the teacher's
``n_candidates`` (500) best unobserved entries of the row only, as the public user-side DCD
(``woriazzc/KDs`` ``modeling/KD/cf/baseline.py:417``, ``torch.topk(inter_mat, self.mxK)``,
mxK = 500) and the paper's aim (the high-ranked items; Fig. 1a measures the teacher's top 50).
D keeps the ranks over all unobserved entries (both models); only the entries that may be drawn
change. Each refresh logs, per side and list, the share of draws inside the teacher's top 50 and
top 500 and their median teacher rank (``distill.json``: ``draw_shares``).

UCD (Eq. 7) is the relaxed permutation loss of ``ρ^u`` with the overestimated items as the tail
(``recdistill.losses.rrd_loss``); ICD (Eq. 8) the same per item. Rows of a batch (the choice RRD
makes, ``RRD.batch_rows``): its distinct users for UCD and its distinct positive items for ICD
(the items the batch trains; a user batch draws as many items uniformly), so every interaction
batch corrects exactly the rows it updates. Scale: like RRD, each term is summed over those rows
and divided by the batch's rows.

The λ scale (issue #33): the official RRD / IR-RRD code sums the BPR loss over the batch's 1024
interactions and the RRD loss over its distinct users (``SeongKu-Kang/DE-RRD_CIKM20``
``Models/BPR.py:77``, ``Utils/loss.py:12``) with λ_RRD = 1e-3; dividing both by the batch's rows,
as here, keeps their ratio, so our λ is the official code's λ (factor 1). The paper prints batch
means; if it meant a mean over the batch's distinct users for the distillation terms, its λ is
ours divided by B/U = 1024/715 = 1.43 (U: distinct users in a batch of 1024 interactions of
citeulike-dcd, expected 713.5, 715.0 ± 12.9 in a shuffled epoch). Either way the paper's 1e-3 is
our 1e-3 to within 1.43x, less than one step of its x10 grid. No DCD code from its authors is
public; the one public DCD (``woriazzc/KDs``) sums the correction over the batch's users with
λ = 0.01 against a BPR loss summed over a batch of 2048 (``configs/citeulike/bpr/dcd.yaml:6``).

Ablations (Table 3), each a setting: ``user_correction=false`` (w/o User-side),
``item_correction=false`` (w/o Item-side), both false (w/o Correction = RRD + IR-RRD),
``correction_sampling=false`` (w/o Sampling: the M largest errors, ties to the lower id), and
``sample_interesting=false`` (RRD's interesting items = the teacher's top K, no draw).

The teacher is a trained run or a score file (both sides), or a ranked-list file for the user side
only (``item_side=false, item_correction=false``; items outside a user's list share one midrank,
``recdistill.ranking.listranks``, so the discrepancy is exact on the listed items). It is frozen,
so a scored teacher's exact ranks are kept after the first refresh of each side
(``recdistill.ranking.TeacherRanks``: int32, at most 2 GiB for both sides together, about 1 GB on
``citeulike-dcd``; a larger catalogue ranks the teacher again at every refresh) and later refreshes
rank only the student; the draws are the same either way. With fewer unobserved entries per row
than ``n_under`` / ``n_over`` (tiny data), each row gets as many as its sparsest row allows. The
period's draws are part of the checkpoint, so a run resumed in the middle of a period continues
bitwise (the kept teacher ranks are not: a resumed run ranks the teacher again, to the same ranks).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from recdistill.data.dataset import Dataset
from recdistill.distill.base import DISTILLERS
from recdistill.distill.rrd import RRD, RRDConfig, item_side_scores
from recdistill.errors import RecdistillError
from recdistill.losses import rrd_loss
from recdistill.models.base import Batch, Recommender
from recdistill.ranking import DrawSpec, ListRanks, RankEngine, TeacherRanks, make_weight

SIDES = ("user", "item")
#: where the corrections draw (``DCDConfig.candidates``)
CANDIDATES = ("all", "teacher_top")
#: teacher-rank cut-offs of the logged draw shares
SHARE_TOPS = (50, 500)


@dataclass(frozen=True)
class DCDConfig(RRDConfig):
    """DCD's hyperparameters (paper Sec. 3.1: M = 40, μ = 1e-3, resampling every 5 epochs; λ's
    in {1, 1e-1, ..., 1e-5}, best about 1e-2..1e-3), over RRD's (both sides on).

    lambda_ucd, lambda_icd: λ_UCD, λ_ICD of Eq. 9 (1e-3: λ_RRD's value, as the terms share RRD's
        summed scale; the paper's grid is {1, 1e-1, ..., 1e-5}, chosen on validation).
    mu: μ of the discrepancy D. period: epochs between corrections' refreshes (5).
    n_under, n_over: M_u^+, M_u^- per user; item_n_under, item_n_over: M_i^+, M_i^- per item.
    correction_sampling: False = the M largest errors (Table 3 "w/o Sampling").
    user_correction, item_correction: the UCD / ICD terms (Table 3 ablations).
    candidates: "all" (every unobserved entry may be drawn) or "teacher_top" (the teacher's
        ``n_candidates`` best unobserved entries of the row), both sides.
    item_side: IR-RRD's term (False: Eq. 9; True: the objective recorded before issue #33).
    """

    item_side: bool = False
    lambda_ucd: float = 1e-3
    lambda_icd: float = 1e-3
    mu: float = 1e-3
    period: int = 5
    n_under: int = 40
    n_over: int = 40
    item_n_under: int = 40
    item_n_over: int = 40
    correction_sampling: bool = True
    user_correction: bool = True
    item_correction: bool = True
    candidates: str = "all"
    n_candidates: int = 500

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.candidates not in CANDIDATES:
            raise RecdistillError(
                f"distill.params.candidates: expected one of {list(CANDIDATES)}, got {self.candidates!r}"
            )
        for key in ("period", "n_under", "n_over", "item_n_under", "item_n_over", "n_candidates"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise RecdistillError(f"distill.params.{key}: expected an integer >= 1, got {v!r}")
        if not self.mu > 0:
            raise RecdistillError(f"distill.params.mu: expected a number > 0, got {self.mu}")
        for key in ("lambda_ucd", "lambda_icd"):
            if not getattr(self, key) >= 0:
                raise RecdistillError(
                    f"distill.params.{key}: expected a number >= 0, got {getattr(self, key)}"
                )


def draw_shares(rank_t: torch.Tensor) -> dict[str, float]:
    """Of drawn entries with teacher ranks ``rank_t`` (any shape, int; 1 = the teacher's best
    unobserved entry), the share with rank <= each of :data:`SHARE_TOPS` and the median rank."""
    r = rank_t.reshape(-1).double()
    if not r.numel():
        return {**{f"top{n}": float("nan") for n in SHARE_TOPS}, "median_rank": float("nan")}
    out = {f"top{n}": round(float((r <= n).double().mean()), 6) for n in SHARE_TOPS}
    out["median_rank"] = float(r.median())
    return out


@DISTILLERS.register("dcd")
class DCD(RRD):
    """``L = L_base + λ_RRD·L_RRD + λ_UCD·L_UCD + λ_ICD·L_ICD`` (Eq. 9; ``+ λ_IR·L_IR`` with
    ``item_side``)."""

    #: none: DCD draws its corrections chunk by chunk, so ``chunk`` changes its draws
    speed_params: ClassVar[tuple[str, ...]] = ()

    name = "dcd"
    Config = DCDConfig
    needs = "lists"  # the user side; the item side's scores are checked in __init__

    def __init__(
        self,
        student: Recommender,
        teacher: Any,
        dataset: Dataset,
        config: DCDConfig,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        if not getattr(teacher, "has_scores", True) and (config.item_side or config.item_correction):
            raise RecdistillError(
                f"DCD's item side needs teacher scores; teacher {teacher.source!r} gives user-side ranked "
                "lists only: set distill.params.item_side=false and distill.params.item_correction=false "
                "(UCD and RRD only), or give a trained run or a score file"
            )
        super().__init__(student, teacher, dataset, config, device, seed)
        self.cfg: DCDConfig = config
        self._check_sizes(dataset)
        self.engine = RankEngine(dataset.train, self.device, chunk_size=config.chunk)
        #: "user.under" ρ^u (n_users, M+) teacher order, "user.over" (n_users, M-), "item.*" likewise
        self.corr: dict[str, torch.Tensor] = {}
        self.n_refresh = 0
        self.refresh_seconds: list[float] = []
        #: per refresh, side and list: the draws' share in the teacher's top 50 / 500, median rank
        self.draw_shares: list[dict[str, Any]] = []
        #: the frozen teacher's ranks per side, kept after the first refresh (not checkpointed:
        #: a resumed run ranks the teacher again and gets the same ranks)
        self.teacher_ranks = TeacherRanks()
        self._sources: dict[str, Any] = {}  # side -> what the engine ranks for the teacher

    def _check_sizes(self, dataset: Dataset) -> None:
        """Refuse draw sizes no row can have: more distinct entries than the catalogue (items per
        user, users per item) or than the candidates; a row with fewer unobserved entries than
        asked gets as many as the sparsest row allows (said once per side at the first refresh)."""
        c = self.cfg
        if c.candidates == "teacher_top" and not getattr(self.teacher, "has_scores", True):
            raise RecdistillError(
                f"distill.params.candidates=teacher_top needs the teacher's exact top {c.n_candidates}; "
                f"teacher {self.teacher.source!r} gives ranked lists (its unlisted items share one rank): "
                "use candidates=all, or a trained run or a score file"
            )
        for side, n_cols, keys in (
            ("user", dataset.n_items, ("n_under", "n_over")),
            ("item", dataset.n_users, ("item_n_under", "item_n_over")),
        ):
            if side not in self.sides():
                continue
            cap, what = n_cols, f"{n_cols:,} {'items' if side == 'user' else 'users'}"
            if c.candidates == "teacher_top" and c.n_candidates < cap:
                cap, what = c.n_candidates, f"n_candidates = {c.n_candidates:,}"
            for key in keys:
                if getattr(c, key) > cap:
                    raise RecdistillError(
                        f"distill.params.{key}: {getattr(c, key):,} distinct draws per {side} asked, but "
                        f"there are only {what} to draw from"
                    )

    def sides(self) -> tuple[str, ...]:
        c = self.cfg
        return tuple(s for s, on in zip(SIDES, (c.user_correction, c.item_correction)) if on)

    def item_rows_needed(self) -> bool:
        return bool(self.cfg.item_side or self.cfg.item_correction)

    def weights(self, name: str, epoch: int) -> tuple[float, dict[str, float]]:
        base, lams = super().weights(name, epoch)
        if self.cfg.user_correction:
            lams["UCD"] = self.cfg.lambda_ucd
        if self.cfg.item_correction:
            lams["ICD"] = self.cfg.lambda_icd
        return base, lams

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)  # RRD / IR-RRD draws, every epoch
        if self.sides() and (epoch % self.cfg.period == 0 or not self.corr):
            self.refresh()

    def refresh(self) -> None:
        """Both models' exact ranks and the corrections' draws, per side (Eqs. 3-6)."""
        c = self.cfg
        for side in self.sides():
            if side not in self._sources:  # the teacher is frozen: built once
                self._sources[side] = self.teacher.rank_source(self.dataset, side)
            source = self._sources[side]
            sm = self.engine.side(side)
            room = int(
                sm.n_cols - int(np.diff(sm.csr.indptr).max(initial=0))
            )  # the sparsest row's unobserved
            cand = c.n_candidates if c.candidates == "teacher_top" else 0
            if cand:
                room = min(room, cand)
            k_under, k_over = (c.n_under, c.n_over) if side == "user" else (c.item_n_under, c.item_n_over)
            if max(k_under, k_over) > room and self.n_refresh == 0:
                warnings.warn(
                    f"DCD {side} side: {max(k_under, k_over):,} draws per row asked, the sparsest row has "
                    f"{room:,} entries to draw from: every row gets {min(k_under, room):,} / "
                    f"{min(k_over, room):,} (under / over)",
                    stacklevel=2,
                )
            det = not c.correction_sampling
            specs = {
                "under": DrawSpec(
                    make_weight("dcd_under", mu=c.mu),
                    k=min(k_under, room),
                    order="teacher",
                    deterministic=det,
                    candidates=cand,
                ),
                "over": DrawSpec(
                    make_weight("dcd_over", mu=c.mu), k=min(k_over, room), deterministic=det, candidates=cand
                ),
            }
            out = self.engine.refresh(
                source,
                self.student,
                side,
                specs,
                generator=self.generator,
                # ranks from lists are a scatter, not a sort: nothing to keep
                teacher_ranks=None if isinstance(source, ListRanks) else self.teacher_ranks,
            )
            self.corr[f"{side}.under"] = out.draws["under"].index[0]  # (n_rows, M+) int32
            self.corr[f"{side}.over"] = out.draws["over"].index[0]  # (n_rows, M-) int32
            self.refresh_seconds.append(out.seconds)
            for kind in ("under", "over"):
                rank_t = out.draws[kind].rank_t
                assert rank_t is not None  # kept by the specs
                shares = draw_shares(rank_t[0])
                self.draw_shares.append({"refresh": self.n_refresh, "side": side, "list": kind, **shares})
        self.n_refresh += 1

    def kd_terms(self, name: str, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        if self.epoch != epoch:
            self.on_epoch_start(epoch)
        users, items = self.batch_rows(batch)
        terms = self.rrd_terms(batch, users, items)
        n_rows = batch.users.numel()
        student = self.student
        if self.cfg.user_correction:
            rho = self.corr["user.under"][users.to(self.corr["user.under"].device)].long().to(self.device)
            over = self.corr["user.over"][users.to(self.corr["user.over"].device)].long().to(self.device)
            terms["UCD"] = rrd_loss(student.score(users, rho), student.score(users, over), "sum") / n_rows
        if self.cfg.item_correction:
            assert items is not None  # item_rows_needed
            rho = self.corr["item.under"][items.to(self.corr["item.under"].device)].long().to(self.device)
            over = self.corr["item.over"][items.to(self.corr["item.over"].device)].long().to(self.device)
            terms["ICD"] = (
                rrd_loss(item_side_scores(student, rho, items), item_side_scores(student, over, items), "sum")
                / n_rows
            )
        return terms

    def targets(self) -> dict[str, torch.Tensor]:
        return {**super().targets(), **{f"corr.{k}": v for k, v in self.corr.items()}}

    def run_metrics(self) -> dict[str, Any]:
        return {
            "refresh_seconds": [round(x, 3) for x in self.refresh_seconds],
            "n_refresh": self.n_refresh,
            "draw_shares": self.draw_shares,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "corr": {k: v.cpu() for k, v in self.corr.items()},
            "n_refresh": self.n_refresh,
            "draw_shares": [dict(x) for x in self.draw_shares],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.corr = {k: v.to(self.device) for k, v in state.get("corr", {}).items()}
        self.n_refresh = int(state.get("n_refresh", 0))
        self.draw_shares = [dict(x) for x in state.get("draw_shares", [])]
