"""DCD Fig. 1a: how far the student's ranks are from the teacher's on the teacher's top items.

For every user, the teacher's top-``n`` unobserved items (n = 50) have teacher ranks 1..n; the
discrepancy is the mean of ``|rank_S(i) - rank_T(i)|`` over them (ranks among the user's
unobserved items, 1 = top, exact: :meth:`recdistill.ranking.RankEngine.refresh` with ``top_n``),
averaged over users. The item side is the same with users per item and item-side ranks.
"""

from __future__ import annotations

from typing import Any

import torch

from recdistill.data.dataset import Dataset
from recdistill.ranking import RankEngine


def top_discrepancy(
    teacher: Any,
    student: Any,
    dataset: Dataset,
    n: int = 50,
    side: str = "user",
    device: torch.device | str = "cpu",
) -> float:
    """Mean over rows of the mean ``|rank_S - rank_T|`` over the teacher's top-``n`` entries."""
    out = RankEngine(dataset.train, device).refresh(teacher, student, side, top_n=n)
    assert out.top_t is not None and out.top_t_rank_s is not None
    valid = out.top_t >= 0  # (R, n) rows with fewer unobserved entries are padded
    rank_t = torch.arange(1, n + 1, device=valid.device)[None, :].expand_as(valid)  # (R, n)
    diff = (out.top_t_rank_s.long() - rank_t).abs().double().masked_fill(~valid, 0.0)  # (R, n)
    per_row = diff.sum(1) / valid.sum(1).clamp_min(1)  # (R,)
    return float(per_row[valid.any(1)].mean())
