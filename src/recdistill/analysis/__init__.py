"""Analyses: teacher-vs-student rank differences (BD Eq. 1, Eq. 6, Figs. 1 and 4) and plots."""

from recdistill.analysis.rank_diff import (
    RankPairs,
    average_rank_difference,
    heldout_ranks,
    high_ranked_pairs,
    rank_difference,
    rank_difference_summary,
    student_better_share,
)

__all__ = [
    "RankPairs",
    "average_rank_difference",
    "heldout_ranks",
    "high_ranked_pairs",
    "rank_difference",
    "rank_difference_summary",
    "student_better_share",
]
