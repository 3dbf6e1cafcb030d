"""Top-K metrics from the held-out item's rank (rank counted from 1; 0 = user has no held-out item).

- H@K (hit ratio): ``1[rank <= K]`` (BD Sec. 5.1; DCD Sec. 3.1).
- N@K (NDCG with one relevant item): ``1 / log2(rank + 1)`` if ``rank <= K``, else 0 (BD Sec. 5.1).
- M@K (MRR@K, DCD/RRD): ``1 / rank`` if ``rank <= K``, else 0.

Each is averaged over the users that have a held-out item.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from recdistill.errors import RecdistillError

METRICS = ("H", "N", "M")


def check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    """Validate a list of cut-offs: a non-empty sequence of positive integers."""
    try:
        out = tuple(ks)
    except TypeError:
        raise RecdistillError(f"ks must be a sequence of positive integers, got {ks!r}") from None
    if not out:
        raise RecdistillError("ks must contain at least one cut-off K")
    for k in out:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise RecdistillError(f"every K must be a positive integer; got {k!r} in ks={out!r}")
    return tuple(int(k) for k in out)


def metrics_from_ranks(
    ranks: np.ndarray, ks: Sequence[int] = (5, 10, 20, 50, 100), metrics: Sequence[str] = METRICS
) -> dict[str, float]:
    """H@K, N@K and M@K averaged over users with a rank > 0.

    ``ranks``: (n_users,) integer (or, for averaged ties, float) ranks counted from 1; 0 marks a
    user without a held-out item, who is skipped. Returns ``{"H@5": ..., "N@5": ..., "M@5": ...,
    ..., "n_users": n}`` (``n_users`` = users averaged over).
    """
    ks = check_ks(ks)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise RecdistillError(f"unknown metric(s) {unknown}; known: {', '.join(METRICS)}")
    r = np.asarray(ranks)
    if r.ndim != 1:
        raise RecdistillError(f"ranks must be a 1-D array (one rank per user), got shape {r.shape}")
    if r.size and (np.isnan(r).any() if r.dtype.kind == "f" else False):
        raise RecdistillError("ranks contain NaN")
    if (r < 0).any() or ((r > 0) & (r < 1)).any():
        bad = r[(r < 0) | ((r > 0) & (r < 1))][0]
        raise RecdistillError(f"ranks must be 0 (absent) or >= 1, got {bad}")
    r = r[r > 0].astype(np.float64)  # (n,)
    if r.size == 0:
        raise RecdistillError("no user has a held-out item (every rank is 0); nothing to average")
    out: dict[str, float] = {}
    for k in ks:
        hit = r <= k  # (n,)
        if "H" in metrics:
            out[f"H@{k}"] = float(hit.mean())
        if "N" in metrics:
            out[f"N@{k}"] = float(np.where(hit, 1.0 / np.log2(r + 1.0), 0.0).mean())
        if "M" in metrics:
            out[f"M@{k}"] = float(np.where(hit, 1.0 / r, 0.0).mean())
    out["n_users"] = int(r.size)
    return out
