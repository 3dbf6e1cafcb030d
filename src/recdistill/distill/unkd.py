"""UnKD (Chen et al., "Unbiased Knowledge Distillation for Recommendation", WSDM 2023; code
``chengang95/UnKD``, reimplemented in ``woriazzc/RCEKD`` ``modeling/KD/baseline.py``): the
teacher's ranking knowledge distilled *within popularity groups*, so that popular items do not
dominate what the student learns.

- **Groups** (``dataloader.py:285-325``): items by training popularity, most popular first, cut
  greedily into groups of about equal *interactions* ``avg = Σ pop / G``: a group takes items
  until the next would take it past ``avg`` (that item starts the next group, unless the group is
  still empty); a last group with at most ``avg / 2`` interactions joins the one before. Items
  without training interactions belong to no group; equal popularities in item-id order (the
  code: order of first appearance in the training file).
- **Pairs per group** (``dataloader.py:334-346``, ``sample.py:590-644``): with ``P̄_g`` the
  groups' mean popularities, ``r_g = max(round((maxP + minP - P̄_g) / Σ_h (maxP + minP - P̄_h),
  2), 0.1)``, ``r_g <- r_g^λ / Σ r^λ``, ``n_g = round(r_g N)``, and the first ``N - Σ n_g``
  groups one more (λ = 0: ``round(N / G)`` each).
- **Teacher lists** (``sample.py:617-628``): per user and group, the group's unobserved items by
  the teacher's score, best first, at most ``list_len`` (1000).
- **Draws, each epoch** (``sample.py:630-679``): per user and group, ``n_g`` pairs of list
  positions drawn with replacement with ``P(r) ∝ exp(-(r + 1) / T)`` (T = 20), a tied pair drawn
  again (the code redraws the user's whole set while any pair ties: the same law, pairs being
  independent), and ordered so that the teacher ranks the first item higher. A list of one item
  has no pair (the code loops forever there).
- **Loss** (``sample.py:681-694``): per batch row ``u`` (users as often as they occur),
  ``ℓ_u = mean_{(i, j)} -log(σ(s_ui - s_uj) + 1e-10)`` over its pairs; ``L_UnKD`` is the mean over
  the rows (the original; RCE-KD's copy sums over the rows next to a summed BPR: the same ratio).

Defaults: the original's (G = 2, N = 30, λ = 0, weight 1); RCE-KD's CiteULike/BPR row uses
G = 2, N = 2, weight 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from recdistill.data.dataset import Dataset
from recdistill.distill.base import DISTILLERS, FrozenTeacherDistiller
from recdistill.errors import RecdistillError
from recdistill.models.base import Batch, Recommender
from recdistill.ranking import sample_with_replacement

__all__ = ["UnKD", "UnKDConfig", "group_pair_counts", "popularity_groups"]


@dataclass(frozen=True)
class UnKDConfig:
    """lambda_unkd: the weight of L_UnKD (the code's ``kd_weight`` / ``lmbda``). n_groups: G.
    n_samples: N, pairs per user over all groups. group_lambda: λ, the exponent on the groups'
    ratios (the code's ``unkd_lamda``; 0: every group alike). list_len: the teacher's list per
    user and group. rank_temperature: T of ``exp(-(r + 1) / T)``. chunk: users per chunk when
    the lists are built (speed only)."""

    lambda_unkd: float = 1.0
    n_groups: int = 2
    n_samples: int = 30
    group_lambda: float = 0.0
    list_len: int = 1000
    rank_temperature: float = 20.0
    chunk: int = 512

    def __post_init__(self) -> None:
        for key in ("n_groups", "n_samples", "list_len", "chunk"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise RecdistillError(f"distill.params.{key}: expected a positive integer, got {v!r}")
        if not self.rank_temperature > 0 or not self.lambda_unkd >= 0:
            raise RecdistillError("distill.params: rank_temperature must be > 0 and lambda_unkd >= 0")


def popularity_groups(pop: np.ndarray, n_groups: int) -> np.ndarray:
    """The group of each item (-1: no training interaction), by the greedy cut of the module
    docstring; one step per group (a cumulative sum and a search), not per item."""
    order = np.argsort(-pop, kind="stable")  # most popular first, ties by id
    order = order[pop[order] > 0]
    c = pop[order].astype(np.float64)
    avg = c.sum() / n_groups
    group = np.full(len(pop), -1, dtype=np.int64)
    bounds, s = [], 0
    while s < len(c):
        cum = np.cumsum(c[s:])  # interactions of the group if it ends after each item
        end = s + max(int(np.searchsorted(cum, avg, side="right")), 1)  # the item past avg starts the next
        bounds.append((s, end))
        s = end
    if len(bounds) > 1 and c[bounds[-1][0] : bounds[-1][1]].sum() <= avg / 2:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    for g, (a, b) in enumerate(bounds):
        group[order[a:b]] = g
    return group


def group_pair_counts(mean_pop: np.ndarray, n_samples: int, group_lambda: float) -> np.ndarray:
    """Pairs per user in each group (``dataloader.py:334-346``, ``sample.py:590-604``, 630-644):
    ``r_g = max(round((maxP + minP - P̄_g) / Σ, 2), 0.1)``, then ``r^λ / Σ r^λ``."""
    r = mean_pop.max() + mean_pop.min() - mean_pop
    r = np.array([max(round(float(x), 2), 0.1) for x in r / r.sum()])  # Python's round, as the code
    r = r**group_lambda
    r = r / r.sum()
    n = np.array([round(float(x) * n_samples) for x in r], dtype=np.int64)  # Python's round, as the code
    short = n_samples - int(n.sum())
    if short > 0:
        n[:short] += 1
    return n


@DISTILLERS.register("unkd")
class UnKD(FrozenTeacherDistiller):
    """``L = L_base + λ·L_UnKD`` (UnKD, WSDM 2023; the module docstring)."""

    name = "unkd"
    Config = UnKDConfig
    needs = "scores"
    speed_params: ClassVar[tuple[str, ...]] = ("chunk",)

    def __init__(
        self,
        student: Recommender,
        teacher: Any,
        dataset: Dataset,
        config: UnKDConfig,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(student, teacher, dataset, config, device, seed)
        pop = np.asarray(dataset.train.getnnz(axis=0), dtype=np.int64)  # (n_items,)
        self.group = popularity_groups(pop, config.n_groups)  # (n_items,)
        n_g = int(self.group.max()) + 1
        mean_pop = np.array([pop[self.group == g].mean() for g in range(n_g)])  # one value per group
        self.pairs = group_pair_counts(mean_pop, config.n_samples, config.group_lambda)  # (G,)
        self.lists, self.lengths = self._lists()  # per group: (n_users, L_g) int64, (n_users,)
        self.pos = self.neg = torch.empty(0, dtype=torch.int64)
        self.valid = torch.empty(0, dtype=torch.bool)

    def _lists(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per group, every user's unobserved items of the group by teacher score (best first,
        at most ``list_len``, -1 padded) and the lists' lengths."""
        ds, c = self.dataset, self.config
        groups = [torch.from_numpy(np.flatnonzero(self.group == g)) for g in range(len(self.pairs))]
        width = [min(c.list_len, len(g)) for g in groups]
        lists = [torch.full((ds.n_users, w), -1, dtype=torch.int64) for w in width]
        lengths = [torch.zeros(ds.n_users, dtype=torch.int64) for _ in groups]
        indptr = ds.train.indptr
        for s in range(0, ds.n_users, c.chunk):
            e = min(s + c.chunk, ds.n_users)
            with torch.no_grad():
                scores = self.teacher.score_all(torch.arange(s, e, device=self.device)).float().cpu().clone()
            rows = torch.repeat_interleave(torch.arange(e - s), torch.from_numpy(np.diff(indptr[s : e + 1])))
            scores[
                rows, torch.from_numpy(ds.train.indices[indptr[s] : indptr[e]].astype(np.int64))
            ] = -torch.inf
            for g, items in enumerate(groups):
                sub = scores[:, items]  # (B, |g|)
                val, idx = sub.topk(width[g], dim=1)  # ties: lower position first (stable on CPU)
                ok = torch.isfinite(val)
                lists[g][s:e] = torch.where(ok, items[idx], -1)
                lengths[g][s:e] = ok.sum(1)
        return lists, lengths

    def weights(self, name: str, epoch: int) -> tuple[float, dict[str, float]]:
        return 1.0, {"UnKD": self.config.lambda_unkd}

    def on_epoch_start(self, epoch: int) -> None:
        """Every user's pairs for the epoch: ``pos``, ``neg`` (n_users, P) items, ``valid``."""
        super().on_epoch_start(epoch)
        t = self.config.rank_temperature
        pos, neg, valid = [], [], []
        for g, n in enumerate(self.pairs.tolist()):
            if n == 0:
                continue
            lst, length = self.lists[g], self.lengths[g]
            ranks = torch.arange(lst.shape[1], dtype=torch.float64)
            w = torch.exp(-(ranks + 1.0) / t).expand(lst.shape[0], -1)  # (n_users, L_g)
            ok = length >= 2  # (n_users,) a pair needs two items
            avail = (ranks[None, :] < length[:, None]) & ok[:, None]
            avail[~ok, 0] = True  # rows without a pair draw a placeholder, marked invalid
            r = sample_with_replacement(w, 2 * n, self.generator, avail).view(-1, n, 2)  # (U, n, 2)
            tie = r[..., 0] == r[..., 1]
            tie &= ok[:, None]
            while tie.any():  # a tied pair is drawn again (the same law as the code's redraw)
                rows = tie.nonzero()[:, 0]
                again = sample_with_replacement(w[rows], 2, self.generator, avail[rows])  # (T, 2)
                r[tie] = again
                tie = (r[..., 0] == r[..., 1]) & ok[:, None]
            hi, lo = r.min(2).values, r.max(2).values  # the teacher's higher-ranked position first
            pos.append(lst.gather(1, hi))
            neg.append(lst.gather(1, lo))
            valid.append(ok[:, None].expand(-1, n))
        self.pos, self.neg, self.valid = torch.cat(pos, 1), torch.cat(neg, 1), torch.cat(valid, 1)

    def targets(self) -> dict[str, torch.Tensor]:
        return {"pos": self.pos, "neg": self.neg, "valid": self.valid}

    def kd_terms(self, name: str, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        if self.epoch != epoch:  # called without on_epoch_start (e.g. a single loss call)
            self.on_epoch_start(epoch)
        users = batch.users  # (B,) every row, as the code
        u = users.cpu()
        ok = self.valid[u].to(self.device)  # (B, P)
        p = torch.where(ok, self.pos[u], 0).to(self.device)
        q = torch.where(ok, self.neg[u], 0).to(self.device)
        s_p, s_q = self.student.score(users, p), self.student.score(users, q)  # (B, P)
        ell = -torch.log(torch.sigmoid(s_p - s_q) + 1e-10)  # (B, P)
        per_row = (ell * ok).sum(1) / ok.sum(1).clamp(min=1)  # (B,) a row without pairs: 0
        return {"UnKD": per_row.mean()}
