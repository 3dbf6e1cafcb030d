"""The rank engine: exact user-/item-side ranks of unobserved entries, rank-based weights, and
every draw the package makes (``sampling`` is the one module that draws).

Stable entry point: :func:`unobserved_ranks`. Methods that rank two live models (BD, DCD) use
:meth:`RankEngine.refresh` with :class:`DrawSpec` s built from :data:`WEIGHTS`; methods with a
frozen teacher (CD, RRD, IR-RRD) draw from its fixed lists with :class:`TopLists`; the base
losses' negatives come from :class:`NegativeSampler` (modules ``engine``, ``lists``,
``negatives``, ``weights``, ``sampling``, ``order``, ``scoring``).
"""

from recdistill.ranking.engine import (
    Draws,
    DrawSpec,
    RankEngine,
    Refresh,
    SideMatrix,
    TeacherRanks,
    canonical_csr,
    row_stats,
    unobserved_ranks,
)
from recdistill.ranking.listranks import ListRanks
from recdistill.ranking.lists import TopLists
from recdistill.ranking.negatives import NegativeSampler
from recdistill.ranking.order import descending_keys, rank_rows
from recdistill.ranking.sampling import (
    RowCDF,
    draw_from_cdf,
    row_cdf,
    sample_with_replacement,
    sample_without_replacement,
    sample_without_replacement_partial,
    top_m,
    uniform_excluding,
    uniform_indices,
)
from recdistill.ranking.weights import WEIGHTS, RankChunk, WeightFn, make_weight, product

__all__ = [
    "WEIGHTS",
    "DrawSpec",
    "Draws",
    "RankChunk",
    "ListRanks",
    "NegativeSampler",
    "RankEngine",
    "Refresh",
    "RowCDF",
    "SideMatrix",
    "TeacherRanks",
    "TopLists",
    "WeightFn",
    "canonical_csr",
    "descending_keys",
    "draw_from_cdf",
    "make_weight",
    "product",
    "rank_rows",
    "row_cdf",
    "row_stats",
    "sample_with_replacement",
    "sample_without_replacement",
    "sample_without_replacement_partial",
    "top_m",
    "uniform_excluding",
    "uniform_indices",
    "unobserved_ranks",
]
