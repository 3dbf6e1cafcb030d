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

import numpy as np
import torch

from recdistill.errors import RecdistillError

INT32_MAX = 2**31 - 1
_LOW32 = 0xFFFFFFFF
#: target bytes of one CPU sort block's int64 keys (fits in L2/L3)
_BLOCK_BYTES = 2**22


def descending_keys(scores: torch.Tensor) -> torch.Tensor:
    """int32 keys (B, m) whose ascending order is the scores' descending order.

    ``-0.0`` and ``+0.0`` map to the same key; ``+inf`` sorts first, ``-inf`` last (among finite
    keys). Raises ValueError on NaN.
    """
    if scores.dtype != torch.float32:
        scores = scores.float()
    if bool(torch.isnan(scores).any()):
        raise RecdistillError("scores contain NaN; ranks are undefined")
    x = scores.contiguous().view(torch.int32)  # (B, m) raw bits
    sign = x >> 31  # (B, m) -1 for negative floats, 0 otherwise
    y = (x ^ (sign & 0x7FFFFFFF)) - sign  # (B, m) monotone in the float, -0.0 -> 0
    return torch.bitwise_not(y)  # (B, m) descending -> ascending


def _keys_numpy(a: np.ndarray) -> np.ndarray:
    """:func:`descending_keys` in NumPy (single-threaded, for the CPU worker threads)."""
    if np.isnan(a).any():
        raise RecdistillError("scores contain NaN; ranks are undefined")
    x = a.view(np.int32)  # (b, m) raw bits
    sign = x >> 31  # (b, m)
    y = x ^ (sign & np.int32(0x7FFFFFFF))  # (b, m)
    y -= sign
    np.invert(y, out=y)
    return y


def _rank_block(
    scores: torch.Tensor,
    obs_r: torch.Tensor,
    obs_c: torch.Tensor,
    out_rank: torch.Tensor,
    out_top: torch.Tensor | None,
    backend: str,
    idx: torch.Tensor,
    arange1: torch.Tensor,
) -> None:
    """Rank one block of rows: keys, observed last, one sort of unique int64 keys, scatter.
    idx: int64 (m,) ``0..m-1``; arange1: int32 (m,) ``1..m``."""
    b, m = scores.shape
    if backend == "numpy":
        k32 = torch.from_numpy(_keys_numpy(scores.float().contiguous().numpy()))  # (b, m) int32
    else:
        k32 = descending_keys(scores)  # (b, m) int32
    k32[obs_r, obs_c] = INT32_MAX  # observed after everything (even -inf scores)
    key = k32.to(torch.int64)  # (b, m)
    key.bitwise_left_shift_(32).bitwise_or_(idx)  # (b, m) unique keys
    if backend == "numpy":
        key.numpy().sort(axis=1)  # in place, NumPy's SIMD sort; releases the GIL
    else:
        key = torch.sort(key, dim=1).values  # (b, m)
    order = key.bitwise_and_(_LOW32)  # (b, m) entry indices, best first
    out_rank.scatter_(1, order, arange1.expand(b, m))  # (b, m) inverse permutation, 1-based
    out_rank[obs_r, obs_c] = 0
    if out_top is not None:
        out_top.copy_(order[:, : out_top.shape[1]])  # (b, N)


def rank_rows(
    scores: torch.Tensor,
    obs_rows: torch.Tensor,
    obs_cols: torch.Tensor,
    top_n: int = 0,
    pool: ThreadPoolExecutor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Exact ranks (1 = top, 0 = observed) of every entry of ``scores`` (B, m) among the row's
    unobserved entries, with the tie rule of this module.

    obs_rows, obs_cols: int64 (nnz,) coordinates of the observed entries within the block.
    top_n: also return the first ``top_n`` entries of each row's order, int32 (B, top_n), -1 where
        the row has fewer unobserved entries.
    pool: CPU threads for the row blocks (None: one thread).
    backend: "auto" (NumPy on CPU, torch elsewhere), "numpy" (CPU only) or "torch"; all give
        the same result.
    Returns ``(ranks int32 (B, m), top int32 (B, top_n) | None)`` on the scores' device.
    """
    b, m = scores.shape
    if m >= 2**31:
        raise RecdistillError(f"{m} columns: ranks are int32, at most 2**31 - 1 columns")
    dev = scores.device
    if backend == "auto":
        backend = "numpy" if dev.type == "cpu" else "torch"
    if backend not in ("numpy", "torch") or (backend == "numpy" and dev.type != "cpu"):
        raise RecdistillError(f"backend={backend!r}: expected 'auto', 'torch', or 'numpy' on CPU")
    obs_rows, obs_cols = obs_rows.to(dev).contiguous(), obs_cols.to(dev).contiguous()
    if obs_rows.numel() > 1 and not bool((obs_rows[1:] >= obs_rows[:-1]).all()):
        perm = torch.argsort(obs_rows, stable=True)
        obs_rows, obs_cols = obs_rows[perm], obs_cols[perm]
    ranks = torch.empty((b, m), dtype=torch.int32, device=dev)  # (B, m)
    top = None
    if top_n > 0:
        top = torch.empty((b, min(top_n, m)), dtype=torch.int64, device=dev)  # (B, N)
    step = b if dev.type != "cpu" else max(1, _BLOCK_BYTES // (8 * m))
    starts = list(range(0, b, step))
    cuts = torch.searchsorted(obs_rows, torch.tensor(starts + [b], device=dev)).tolist()
    idx = torch.arange(m, device=dev)  # (m,)
    arange1 = torch.arange(1, m + 1, dtype=torch.int32, device=dev)  # (m,)

    def work(i: int) -> None:
        s, e = starts[i], min(starts[i] + step, b)
        lo, hi = cuts[i], cuts[i + 1]
        _rank_block(
            scores[s:e],
            obs_rows[lo:hi] - s,
            obs_cols[lo:hi],
            ranks[s:e],
            None if top is None else top[s:e],
            backend,
            idx,
            arange1,
        )

    if pool is None or len(starts) == 1:
        for i in range(len(starts)):
            work(i)
    else:
        list(pool.map(work, range(len(starts))))  # written in place; re-raises errors
    if top is None:
        return ranks, None
    if top_n > m:  # pad to the requested width
        pad = torch.full((b, top_n - m), -1, dtype=torch.int64, device=dev)
        top = torch.cat([top, pad], dim=1)  # (B, N)
    n_unobs = m - torch.bincount(obs_rows, minlength=b)  # (B,)
    pos = torch.arange(top.shape[1], device=dev)  # (N,)
    top = top.masked_fill(pos[None, :] >= n_unobs[:, None], -1)  # (B, N) observed tail -> -1
    return ranks, top.to(torch.int32)
