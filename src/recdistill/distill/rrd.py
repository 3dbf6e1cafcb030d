"""RRD and IR-RRD: relaxed ranking distillation from a frozen teacher.

RRD (Kang et al., CIKM 2020; DCD paper 000, Eqs. 1-2): from the teacher's top-N list of each
user (N = 500), draw K = 40 "interesting" items with ``p ∝ exp(-r/T)`` (r = position in the list,
1 = best; T = 10) without replacement and keep them in teacher order; draw L = 40
"uninteresting" items uniformly from the rest of ``I_u^-`` (unobserved items not in the top-N).
Loss: the relaxed permutation loss (``recdistill.losses.rrd_loss``). Drawn again every epoch.

IR-RRD (item-side RRD, Kang et al., Information Sciences 2021): the same on the item side — for
each item, the teacher's top-N users among those who did not observe it, K interesting users
drawn with ``exp(-r/T)``, L uninteresting users uniformly from the rest of ``U_i^-``.

Which rows a batch distils (a choice the papers leave open; documented here):

- user side: the distinct users of the batch (as the official RRD code, ``batch_user.unique()``);
- item side (``item_rows``): ``"positives"`` (default) the distinct positive items of an
  interaction batch (the items the batch trains); for user batches (CDAE, no ``pos``) as many
  items as rows, drawn uniformly. ``"lists"``: every distinct item of the batch users' RRD lists
  (their interesting and uninteresting items this epoch), as the IR-RRD authors ran it
  (``SeongKu-Kang/DE-RRD_CIKM20`` ``run.py:58``, ``batch_item = torch.cat([interesting_items,
  uninteresting_items]).unique()``; about 17k of citeulike-dcd's 25k items per batch of 1024,
  18x the positives), with their K = L = 20 and λ_IR = 5e-4 (``main_IR_RRD.py``); needs the
  user side.

Scale: the official code sums the base (BPR) loss and the RRD loss over the batch and uses
``λ_RRD = 1e-3``. Our base losses are means over the batch's rows, so ``L_RRD`` here is the
sum over the batch's distinct users divided by the number of rows — the official ratio of the
two terms, hence the official λ. Likewise for ``L_IR``.

Registered names: ``rrd`` (user side), ``ir-rrd`` (item side), ``rrd+ir-rrd`` (both: DCD's
"w/o Correction" ablation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from recdistill.data.dataset import Dataset
from recdistill.data.pairs import PairSet, csr_pairs
from recdistill.distill.base import DISTILLERS, FrozenTeacherDistiller
from recdistill.errors import RecdistillError
from recdistill.losses import rrd_loss
from recdistill.models.base import Batch, Recommender
from recdistill.parallel import block
from recdistill.ranking import TopLists, WeightFn, make_weight, uniform_indices

#: the item rows a batch distils (``RRDConfig.item_rows``)
ITEM_ROWS = ("positives", "lists")


@dataclass(frozen=True)
class RRDConfig:
    """RRD / IR-RRD hyperparameters (official RRD defaults; DCD Sec. 3.1 tunes them in the
    ranges of the RRD paper).

    user_side, item_side: which losses to use (RRD, IR-RRD, or both).
    n_top: N, length of the teacher's user-side top-N list (500).
    n_interesting: K, interesting items drawn per user (40).
    n_uninteresting: L, uninteresting items drawn per user (40).
    temperature: T of ``p ∝ exp(-r/T)`` (10).
    sample_interesting: True (RRD) = draw the K interesting items from the top-N list;
        False = take the teacher's top K in order (no draw; both sides).
    lambda_rrd: λ_RRD (1e-3, with the official summed scale, see the module docstring).
    item_n_top, item_n_interesting, item_n_uninteresting, item_temperature, lambda_ir: the
        same for the item side (rows are items, targets users).
    item_rows: which items a batch distils on the item side: "positives" (the batch's distinct
        positive items) or "lists" (every item of the batch users' RRD lists, the IR-RRD
        authors' choice; see the module docstring).
    chunk: rows per chunk when the teacher's top-N lists are computed (None: the rank engine's default).
    """

    user_side: bool = True
    item_side: bool = False
    n_top: int = 500
    n_interesting: int = 40
    n_uninteresting: int = 40
    temperature: float = 10.0
    sample_interesting: bool = True
    lambda_rrd: float = 1e-3
    item_n_top: int = 500
    item_n_interesting: int = 40
    item_n_uninteresting: int = 40
    item_temperature: float = 10.0
    lambda_ir: float = 1e-3
    item_rows: str = "positives"
    chunk: int | None = None

    def __post_init__(self) -> None:
        if self.item_rows not in ITEM_ROWS:
            raise RecdistillError(
                f"distill.params.item_rows: expected one of {list(ITEM_ROWS)}, got {self.item_rows!r}"
            )
        if self.item_rows == "lists" and not self.user_side:
            raise RecdistillError(
                "distill.params.item_rows=lists takes the items of the users' RRD lists: "
                "it needs user_side=true"
            )
        for key in ("n_top", "n_interesting", "n_uninteresting", "item_n_top", "item_n_interesting"):
            if getattr(self, key) < 1:
                raise RecdistillError(
                    f"distill.params.{key}: expected a positive integer, got {getattr(self, key)}"
                )
        if self.n_interesting > self.n_top or self.item_n_interesting > self.item_n_top:
            raise RecdistillError("distill.params: n_interesting must not exceed n_top (per side)")
        if not (self.temperature > 0 and self.item_temperature > 0):
            raise RecdistillError("distill.params: temperatures must be > 0")
        if not (self.user_side or self.item_side):
            raise RecdistillError("distill.params: at least one of user_side, item_side must be true")


class _Side:
    """One side's per-epoch targets: rows (users or items) -> K interesting, L uninteresting,
    drawn from the teacher's fixed top-N lists (:class:`recdistill.ranking.TopLists`)."""

    def __init__(
        self,
        topn: np.ndarray,
        n_cols: int,
        observed: PairSet,
        k: int,
        l: int,
        temperature: float,
        sample: bool = True,
    ) -> None:
        self.lists = TopLists(topn, n_cols, observed)
        self.k, self.l, self.sample = k, l, sample
        self.weight: WeightFn = make_weight("rank_aware", temperature=temperature)  # p ∝ exp(-r/T)
        self.interesting = self.uninteresting = self.i_valid = self.u_valid = torch.empty(0)

    def resample(self, generator: torch.Generator) -> None:
        if self.sample:  # (R, K) in teacher order
            self.interesting, self.i_valid = self.lists.draw(self.weight, self.k, generator)
        else:  # the teacher's top K
            self.interesting, self.i_valid = self.lists.head(self.k)
        self.uninteresting, self.u_valid = self.lists.rest(self.l, generator)  # (R, L)


def item_side_scores(student: Recommender, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Logits of item ``items[r]`` (I,) for the users ``users[r, :]`` (I, k) -> (I, k)."""
    return student.score_users(items, users)


@DISTILLERS.register("rrd")
class RRD(FrozenTeacherDistiller):
    """``L = L_base + λ_RRD·L_RRD`` (+ ``λ_IR·L_IR`` with the item side)."""

    #: the chunk size of the teacher's lists and the student's ranks: the same values at any size
    speed_params: ClassVar[tuple[str, ...]] = ("chunk",)

    name = "rrd"
    Config = RRDConfig
    needs = "lists"

    def __init__(
        self,
        student: Recommender,
        teacher: Any,
        dataset: Dataset,
        config: RRDConfig,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(student, teacher, dataset, config, device, seed)
        if config.item_side and not teacher.has_scores:
            raise RecdistillError(
                f"IR-RRD needs item-side lists, which need teacher scores; teacher {teacher.source!r} "
                "gives ranked lists only"
            )
        c = config
        users, items = csr_pairs(dataset.train)
        self.user = self.item = None
        if c.user_side:
            topn = teacher.topn(dataset, c.n_top, "user", c.chunk, self.device)
            observed = PairSet(users, items, dataset.n_items)
            self.user = _Side(
                topn,
                dataset.n_items,
                observed,
                c.n_interesting,
                c.n_uninteresting,
                c.temperature,
                c.sample_interesting,
            )
        if c.item_side:
            topn = teacher.topn(dataset, c.item_n_top, "item", c.chunk, self.device)
            observed = PairSet(items, users, dataset.n_users)
            self.item = _Side(
                topn,
                dataset.n_users,
                observed,
                c.item_n_interesting,
                c.item_n_uninteresting,
                c.item_temperature,
                c.sample_interesting,
            )

    def weights(self, name: str, epoch: int) -> tuple[float, dict[str, float]]:
        lams: dict[str, float] = {}
        if self.config.user_side:
            lams["RRD"] = self.config.lambda_rrd
        if self.config.item_side:
            lams["IR"] = self.config.lambda_ir
        return 1.0, lams

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        for side in (self.user, self.item):
            if side is not None:
                side.resample(self.generator)

    def targets(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for tag, side in (("user", self.user), ("item", self.item)):
            if side is not None:
                for k in ("interesting", "i_valid", "uninteresting", "u_valid"):
                    out[f"{tag}.{k}"] = getattr(side, k)
        return out

    def _targets(self, side: _Side, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        r = rows.cpu()
        return tuple(
            t[r].to(self.device) for t in (side.interesting, side.uninteresting, side.i_valid, side.u_valid)
        )

    def item_rows_needed(self) -> bool:
        """Whether a batch has an item side to distil (IR-RRD)."""
        return bool(self.config.item_side)

    def batch_rows(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The rows a batch distils: its distinct users, and (with an item side) its distinct
        positive items, or for user batches as many items as rows drawn uniformly. For one
        process's share of a batch (``batch.whole``, under ``torchrun``): this process's block of
        the whole batch's distinct rows, so every row is distilled once, as in one process."""
        whole = batch.whole if batch.whole is not None else batch
        users, items = torch.unique(whole.users), None  # (U,)
        if self.item_rows_needed():
            if self.config.item_rows == "lists":
                assert self.user is not None  # checked by the config
                u = users.cpu()
                side = self.user
                lists = torch.cat([side.interesting[u].reshape(-1), side.uninteresting[u].reshape(-1)])
                valid = torch.cat([side.i_valid[u].reshape(-1), side.u_valid[u].reshape(-1)])
                items = torch.unique(lists[valid.bool()].long()).to(self.device)  # (I,)
            elif whole.pos is not None:
                items = torch.unique(whole.pos)  # (I,)
            else:
                n = whole.users.numel()
                items = uniform_indices(self.dataset.n_items, n, self.generator).to(self.device)  # (B,)
        if batch.whole is not None:
            users = users[slice(*block(users.numel()))]
            items = None if items is None else items[slice(*block(items.numel()))]
        return users, items

    def kd_terms(self, name: str, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        if self.epoch != epoch:  # called without on_epoch_start (e.g. a single loss call)
            self.on_epoch_start(epoch)
        users, items = self.batch_rows(batch)
        return self.rrd_terms(batch, users, items)

    def rrd_terms(
        self, batch: Batch, users: torch.Tensor, items: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """``L_RRD`` over ``users`` and ``L_IR`` over ``items``, each summed and divided by the
        batch's rows (the module docstring's scale)."""
        student = self.student
        n_rows = batch.users.numel()
        terms: dict[str, torch.Tensor] = {}
        if self.user is not None:
            inter, unint, iv, uv = self._targets(self.user, users)  # (U, K), (U, L)
            s_i = student.score(users, inter)  # (U, K)
            s_u = student.score(users, unint)  # (U, L)
            terms["RRD"] = rrd_loss(s_i, s_u, "sum", interesting_mask=iv, uninteresting_mask=uv) / n_rows
        if self.item is not None and items is not None:
            inter, unint, iv, uv = self._targets(self.item, items)  # (I, K) users, (I, L) users
            s_i = item_side_scores(student, inter, items)  # (I, K)
            s_u = item_side_scores(student, unint, items)  # (I, L)
            terms["IR"] = rrd_loss(s_i, s_u, "sum", interesting_mask=iv, uninteresting_mask=uv) / n_rows
        return terms


@DISTILLERS.register("ir-rrd")
class IRRRD(RRD):
    """Item-side RRD only: ``L = L_base + λ_IR·L_IR``."""

    name = "ir-rrd"
    needs = "scores"
    config_defaults = {"user_side": False, "item_side": True}


@DISTILLERS.register("rrd+ir-rrd")
class RRDIR(RRD):
    """RRD and IR-RRD together (DCD Table 3, "w/o Correction"):
    ``L = L_base + λ_RRD·L_RRD + λ_IR·L_IR``."""

    name = "rrd+ir-rrd"
    needs = "scores"
    config_defaults = {"user_side": True, "item_side": True}
