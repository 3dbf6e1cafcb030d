"""Draws from a frozen teacher's fixed top-N lists (CD, RRD, IR-RRD; DCD's RRD part).

A frozen teacher's ranks never change, so its top-N lists are computed once (by the rank engine,
``RankEngine.iter_ranks(..., top_n=N)``) and every epoch draws from them:

- :meth:`TopLists.draw`: k distinct list entries per row with a weight function of the list
  position (a :data:`~recdistill.ranking.weights.WEIGHTS` function applied to the positions as
  the teacher's ranks, e.g. ``rank_aware(temperature=10)``: ``p ∝ exp(-r/T)``), without
  replacement, returned in list order (best first). A row whose list holds fewer than k entries
  gets them all and ``valid`` False for the rest.
- :meth:`TopLists.rest`: k columns per row uniformly (with replacement) from the row's unobserved
  columns outside its list (RRD's "uninteresting" items), by rejection.

Rows are processed in chunks of about 2**22 list entries. Random numbers come from the CPU
generator passed in; results are CPU tensors.
"""

from __future__ import annotations

import numpy as np
import torch

from recdistill.data.pairs import PairSet
from recdistill.errors import RecdistillError
from recdistill.ranking.sampling import sample_without_replacement_partial, uniform_excluding
from recdistill.ranking.weights import RankChunk, WeightFn

#: list entries per chunk of rows
CHUNK_ENTRIES = 2**22


class TopLists:
    """Fixed lists (n_rows, N) of column ids, best first, -1 where a row's list is shorter.

    observed: the observed (row, col) pairs of this side (excluded by :meth:`rest`).
    """

    def __init__(self, lists: np.ndarray | torch.Tensor, n_cols: int, observed: PairSet) -> None:
        self.lists = torch.as_tensor(lists).to("cpu", torch.int64)  # (R, N), -1 = padding
        if self.lists.dim() != 2:
            raise RecdistillError(f"lists must be (rows, N), got shape {tuple(self.lists.shape)}")
        self.n_rows, self.n = self.lists.shape
        self.n_cols = int(n_cols)
        in_list = self.lists >= 0  # (R, N)
        self.lengths = in_list.sum(1)  # (R,)
        # positions as the teacher's ranks: 1..N in the list, 0 on padding (never drawn)
        pos = torch.arange(1, self.n + 1, dtype=torch.int32)[None, :].expand(self.n_rows, -1)
        self.positions = torch.where(in_list, pos, torch.zeros((), dtype=torch.int32))  # (R, N)
        if observed.n_cols != self.n_cols:
            raise RecdistillError(f"observed pairs have {observed.n_cols} columns, lists {self.n_cols}")
        self.observed = observed
        self._exclude: PairSet | None = None

    @property
    def exclude(self) -> PairSet:
        """The observed pairs and the lists' pairs (what :meth:`rest` never returns); built once."""
        if self._exclude is None:
            in_list = self.lists >= 0  # (R, N)
            rows = torch.arange(self.n_rows)[:, None].expand_as(self.lists)[in_list]  # (P,)
            obs = self.observed
            both_r = torch.cat([torch.div(obs.keys, obs.n_cols, rounding_mode="floor"), rows])
            both_c = torch.cat([obs.keys % obs.n_cols, self.lists[in_list]])
            self._exclude = PairSet(both_r, both_c, self.n_cols)
        return self._exclude

    def draw(self, weight: WeightFn, k: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """k distinct entries of every row's list, ``p ∝ weight(positions)``, in list order
        -> (int64 (R, k) column ids, bool (R, k) valid)."""
        if not isinstance(k, int) or k < 1 or k > self.n:
            raise RecdistillError(f"k={k!r}: expected an integer in 1..{self.n} (the list length)")
        out = torch.zeros((self.n_rows, k), dtype=torch.int64)
        valid = torch.zeros((self.n_rows, k), dtype=torch.bool)
        step = max(1, CHUNK_ENTRIES // max(self.n, 1))
        for s in range(0, self.n_rows, step):
            e = min(s + step, self.n_rows)
            ranks = self.positions[s:e]  # (B, N)
            w = weight(RankChunk(torch.arange(s, e), ranks))  # (B, N)
            pos, ok = sample_without_replacement_partial(w, k, generator, ranks > 0)  # (B, k)
            pos = torch.where(ok, pos, self.n).sort(dim=1).values  # (B, k) list order, invalid last
            ok = pos < self.n
            out[s:e] = self.lists[s:e].gather(1, pos.clamp_max(self.n - 1)).masked_fill_(~ok, 0)
            valid[s:e] = ok
        return out, valid

    def head(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Every row's first k list entries (no draw) -> (int64 (R, k), bool (R, k) valid)."""
        if not isinstance(k, int) or k < 1 or k > self.n:
            raise RecdistillError(f"k={k!r}: expected an integer in 1..{self.n} (the list length)")
        top = self.lists[:, :k]  # (R, k)
        return top.clamp_min(0), top >= 0

    def rest(
        self, k: int, generator: torch.Generator, max_rounds: int = 50
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """k columns per row, uniform over the unobserved columns outside the row's list
        -> (int64 (R, k), bool (R, k) valid; False where rejection did not find one)."""
        return uniform_excluding(
            torch.arange(self.n_rows), self.n_cols, k, self.exclude, generator, max_rounds
        )
