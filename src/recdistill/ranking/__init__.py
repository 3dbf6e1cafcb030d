"""The rank engine: exact user-/item-side ranks of unobserved entries, rank-based weights, draws.

Stable entry point: :func:`unobserved_ranks`. Distillers use :class:`RankEngine` ``.refresh`` with
:class:`DrawSpec` s built from :data:`WEIGHTS` (see ``engine``, ``weights``, ``sampling``, ``order``).
"""

from recdistill.ranking.engine import (
    Draws,
    DrawSpec,
    RankEngine,
    Refresh,
    SideMatrix,
    canonical_csr,
    unobserved_ranks,
)
from recdistill.ranking.order import descending_keys, rank_rows
from recdistill.ranking.sampling import (
    RowCDF,
    draw_from_cdf,
    row_cdf,
    sample_with_replacement,
    sample_without_replacement,
    top_m,
)
from recdistill.ranking.weights import WEIGHTS, RankChunk, WeightFn, make_weight, product

__all__ = [
    "WEIGHTS",
    "DrawSpec",
    "Draws",
    "RankChunk",
    "RankEngine",
    "Refresh",
    "RowCDF",
    "SideMatrix",
    "WeightFn",
    "canonical_csr",
    "descending_keys",
    "draw_from_cdf",
    "make_weight",
    "product",
    "rank_rows",
    "row_cdf",
    "sample_with_replacement",
    "sample_without_replacement",
    "top_m",
    "unobserved_ranks",
]
