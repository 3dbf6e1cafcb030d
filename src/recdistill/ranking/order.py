"""Exact ranks of unobserved entries, one sort per row, no ties left to chance.

Rule (METHODS.md, "Notation"): within a row (a user's items, or an item's users), the entries the
row did not observe are ordered by score, descending; **ties go to the lower index first**; the
first gets rank 1. Observed entries are excluded (they sort after every unobserved entry, whatever
its score, even ``-inf``) and get rank 0. ``-0.0`` and ``+0.0`` are equal. NaN scores are an error.

How: each float32 score is mapped to an order-preserving int32 (the IEEE-754 bit trick), inverted
for descending order, observed entries get ``INT32_MAX``; the key ``(desc << 32) | index`` is then a
unique int64 per entry, so a plain (unstable) sort of the keys gives the order above exactly, on
any device. On CPU the keys of small row blocks are sorted with NumPy (SIMD quicksort, releases
the GIL) by ``torch.get_num_threads()`` threads; on CUDA with ``torch.sort``. Ranks are the
inverse permutation, written with ``scatter_`` (no second sort).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

INT32_MAX = 2**31 - 1
_LOW32 = 0xFFFFFFFF
#: target bytes of one CPU sort block's int64 keys (fits in L2/L3)
_BLOCK_BYTES = 2**19


def descending_keys(scores: torch.Tensor) -> torch.Tensor:
    """int32 keys (B, m) whose ascending order is the scores' descending order.

    ``-0.0`` and ``+0.0`` map to the same key; ``+inf`` sorts first, ``-inf`` last (among finite
    keys). Raises ValueError on NaN.
    """
    if scores.dtype != torch.float32:
        scores = scores.float()
    if bool(torch.isnan(scores).any()):
        raise ValueError("scores contain NaN; ranks are undefined")
    x = scores.contiguous().view(torch.int32)  # (B, m) raw bits
    sign = x >> 31  # (B, m) -1 for negative floats, 0 otherwise
    y = (x ^ (sign & 0x7FFFFFFF)) - sign  # (B, m) monotone in the float, -0.0 -> 0
    return torch.bitwise_not(y)  # (B, m) descending -> ascending


def _sort_block(keys32: torch.Tensor, out_rank: torch.Tensor, out_top: torch.Tensor | None,
                arange1: torch.Tensor) -> None:
    """Sort one block of rows in place (CPU or CUDA) and write ranks (and the top of the order)."""
    b, m = keys32.shape
    idx = torch.arange(m, dtype=torch.int64, device=keys32.device)  # (m,)
    key = keys32.to(torch.int64)  # (b, m)
    key.bitwise_left_shift_(32).bitwise_or_(idx)  # (b, m) unique keys
    if key.device.type == "cpu":
        key.numpy().sort(axis=1)  # in place, NumPy's SIMD sort; releases the GIL
    else:
        key = torch.sort(key, dim=1).values  # (b, m)
    order = key.bitwise_and_(_LOW32)  # (b, m) entry indices, best first
    out_rank.scatter_(1, order, arange1.expand(b, m))  # (b, m) inverse permutation, 1-based
    if out_top is not None:
        out_top.copy_(order[:, : out_top.shape[1]])  # (b, N)


def rank_rows(
    scores: torch.Tensor,
    obs_rows: torch.Tensor,
    obs_cols: torch.Tensor,
    top_n: int = 0,
    pool: ThreadPoolExecutor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Exact ranks (1 = top, 0 = observed) of every entry of ``scores`` (B, m) among the row's
    unobserved entries, with the tie rule of this module.

    obs_rows, obs_cols: int64 (nnz,) coordinates of the observed entries within the block.
    top_n: also return the first ``top_n`` entries of each row's order, int32 (B, top_n), -1 where
        the row has fewer unobserved entries.
    pool: CPU threads for the row blocks (None: one thread).
    Returns ``(ranks int32 (B, m), top int32 (B, top_n) | None)`` on the scores' device.
    """
    b, m = scores.shape
    if m >= 2**31:
        raise ValueError(f"{m} columns: ranks are int32, at most 2**31 - 1 columns")
    keys = descending_keys(scores)  # (B, m) int32
    keys[obs_rows, obs_cols] = INT32_MAX  # observed after everything (even -inf scores)
    ranks = torch.empty((b, m), dtype=torch.int32, device=scores.device)  # (B, m)
    top = None
    if top_n > 0:
        top = torch.empty((b, min(top_n, m)), dtype=torch.int64, device=scores.device)  # (B, N)
    arange1 = torch.arange(1, m + 1, dtype=torch.int32, device=scores.device)  # (m,)
    if scores.device.type != "cpu":
        _sort_block(keys, ranks, top, arange1)
    else:
        step = max(1, _BLOCK_BYTES // (8 * m))
        blocks = [(s, min(s + step, b)) for s in range(0, b, step)]

        def work(se: tuple[int, int]) -> None:
            s, e = se
            _sort_block(keys[s:e], ranks[s:e], None if top is None else top[s:e], arange1)

        if pool is None or len(blocks) == 1:
            for se in blocks:
                work(se)
        else:
            list(pool.map(work, blocks))  # results are written in place; re-raise errors
    ranks[obs_rows, obs_cols] = 0
    if top is None:
        return ranks, None
    if top_n > m:  # pad to the requested width
        pad = torch.full((b, top_n - m), -1, dtype=torch.int64, device=scores.device)
        top = torch.cat([top, pad], dim=1)  # (B, N)
    n_unobs = m - torch.bincount(obs_rows, minlength=b)  # (B,)
    pos = torch.arange(top.shape[1], device=scores.device)  # (N,)
    top = top.masked_fill(pos[None, :] >= n_unobs[:, None], -1)  # (B, N) observed tail -> -1
    return ranks, top.to(torch.int32)
