"""Ranks given as ranked lists instead of scores (a teacher from another library that wrote only
its top-N lists), for the rank engine.

A :class:`ListRanks` is a rank source: :meth:`RankEngine.refresh
<recdistill.ranking.RankEngine.refresh>` takes it where it takes a model's scores, and asks it
for a chunk's ranks instead of scoring and sorting. Per row (a user), over the row's unobserved
entries (``n_u`` of them):

- the listed entries get ranks ``1..L_u`` in list order (best first);
- every other unobserved entry gets one shared rank, the middle of positions ``L_u+1..n_u``,
  ``floor((L_u + 1 + n_u) / 2)``: their order is unknown, and this is the mean rank of a
  random order of them, rounded down to an integer rank (the evaluation's tie rule, METHODS.md
  "Ties", counts half of the equal entries the same way);
- observed entries get 0, as in :func:`~recdistill.ranking.order.rank_rows`.

So a rank difference ``rank_S - rank_T`` (DCD's discrepancy, Eqs. 3-5) is exact on the listed
entries and measured against the middle of the unknown tail elsewhere. Lists that cover every
unobserved entry give exactly the ranks of any scores with that order.

Top-N lists of a :class:`ListRanks` are the lists themselves, -1 past a row's list (its order
ends there). Score statistics do not exist: there are no scores.
"""

from __future__ import annotations

import numpy as np
import torch

from recdistill.errors import RecdistillError


class ListRanks:
    """Rank source from ranked lists: ``lists`` (n_rows, N) column ids, best first, -1 padding
    after a row's last entry; the entries of a row are distinct and unobserved (e.g.
    ``ListTeacher.topn``, which drops observed ones). ``side``: the side the lists rank ("user":
    items per user)."""

    def __init__(self, lists: np.ndarray | torch.Tensor, side: str = "user") -> None:
        t = torch.as_tensor(lists)
        if t.dim() != 2:
            raise RecdistillError(f"ranked lists must be (rows, N), got shape {tuple(t.shape)}")
        if t.is_floating_point() or t.dtype == torch.bool:
            raise RecdistillError(f"ranked lists must hold integer ids, got {t.dtype}")
        t = t.to(torch.int64)
        if bool((t < -1).any()):
            raise RecdistillError(f"ranked lists: ids must be >= 0 (-1: padding), got {int(t.min())}")
        valid = t >= 0  # (R, N)
        if bool((valid[:, 1:] & ~valid[:, :-1]).any()):
            raise RecdistillError("ranked lists: -1 padding must come after a row's entries")
        srt = t.sort(dim=1).values  # (R, N)
        dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)  # (R, N-1)
        if bool(dup.any()):
            r, c = (int(x) for x in torch.nonzero(dup)[0])
            raise RecdistillError(f"ranked lists: row {r} lists {int(srt[r, c + 1])} twice")
        self.lists = t  # (R, N) int64
        self.lengths = valid.sum(1)  # (R,) int64
        self.side = side
        self.n_rows = int(t.shape[0])

    def rank_rows(
        self, rows: torch.Tensor, obs_r: torch.Tensor, obs_c: torch.Tensor, n_cols: int, top_n: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Ranks int32 (B, n_cols) of ``rows`` (B,) under the lists (see the module doc), and with
        ``top_n`` the rows' first ``top_n`` list entries, int32 (B, top_n), -1 past a list.

        obs_r, obs_c: int64 coordinates (local row, column) of the rows' observed entries.
        """
        dev = rows.device
        if self.lists.device != dev:
            self.lists, self.lengths = self.lists.to(dev), self.lengths.to(dev)
        if rows.numel() and int(rows.max()) >= self.n_rows:
            raise RecdistillError(f"ranked lists hold {self.n_rows} rows, asked for row {int(rows.max())}")
        b = rows.numel()
        lists = self.lists.index_select(0, rows)  # (B, N)
        length = self.lengths.index_select(0, rows)  # (B,)
        if lists.numel() and int(lists.max()) >= n_cols:
            raise RecdistillError(f"ranked lists hold column id {int(lists.max())}, only {n_cols} columns")
        n_unobs = n_cols - torch.bincount(obs_r, minlength=b)  # (B,)
        tie = torch.div(length + 1 + n_unobs, 2, rounding_mode="floor")  # (B,) midrank of the rest
        ranks = tie.to(torch.int32)[:, None].repeat(1, n_cols)  # (B, m)
        valid = lists >= 0  # (B, N)
        pos = torch.arange(1, lists.shape[1] + 1, dtype=torch.int32, device=dev).expand_as(lists)  # (B, N)
        r_idx = torch.arange(b, device=dev)[:, None].expand_as(lists)[valid]  # (P,)
        ranks[r_idx, lists[valid]] = pos[valid]
        if obs_r.numel():
            listed = torch.zeros((b, n_cols), dtype=torch.bool, device=dev)  # (B, m)
            listed[r_idx, lists[valid]] = True
            hit = listed[obs_r, obs_c]  # (nnz_B,) listed and observed
            if bool(hit.any()):
                i = int(torch.nonzero(hit)[0])
                raise RecdistillError(
                    f"ranked lists: row {int(rows[obs_r[i]])} lists its observed entry {int(obs_c[i])}"
                )
            ranks[obs_r, obs_c] = 0
        top = None
        if top_n > 0:
            top = torch.full((b, top_n), -1, dtype=torch.int32, device=dev)  # (B, top_n)
            w = min(top_n, lists.shape[1])
            top[:, :w] = lists[:, :w].to(torch.int32)
        return ranks, top
