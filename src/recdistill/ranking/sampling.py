"""Vectorised draws from per-row weights (no loop over rows), on any device.

- :func:`sample_with_replacement` (BD): inverse CDF on one flat float64 cumulative sum with a
  row offset (row r's CDF lies in [r, r+1]), so rows may ask for different numbers of draws
  (BD's ``deg(u) · s`` per user) with a single ``searchsorted``.
- :func:`sample_without_replacement` (DCD, RRD): exponential races (equivalently Gumbel-top-k):
  the k largest ``w_i / E_i``, ``E_i ~ Exp(1)``; the result is in the order the races were won,
  i.e. a Plackett-Luce draw (first = a draw ``∝ w``, second ``∝ w`` among the rest, ...).
- :func:`top_m` (DCD "w/o sampling"): the k largest weights, ties to the lower index.

``available`` (B, m) bool marks the entries that may be drawn (the unobserved ones); weights
elsewhere are ignored. Fallback: a row whose available weights are all zero is drawn uniformly
over its available entries; without replacement, a row with fewer than k positive weights is
completed by a uniform draw among its other available entries. A row with no available entry
(or, without replacement, fewer than k) is an error.

Random numbers come from ``generator`` on its own device and are moved to the weights' device,
so one seed gives the same draws; a CUDA generator keeps everything on the GPU.
"""

from __future__ import annotations

import torch

from recdistill.ranking.order import INT32_MAX, descending_keys


def _check(weights: torch.Tensor, available: torch.Tensor | None) -> torch.Tensor:
    if weights.dim() != 2:
        raise ValueError(f"weights must be (B, m), got shape {tuple(weights.shape)}")
    if available is not None and available.shape != weights.shape:
        raise ValueError(f"available shape {tuple(available.shape)} != weights {tuple(weights.shape)}")
    bad = ~torch.isfinite(weights) | (weights < 0)  # (B, m)
    if bool(bad.any()):
        r, c = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"weights[{r}, {c}] = {float(weights[r, c])}: expected finite and >= 0")
    if available is None:
        return torch.ones_like(weights, dtype=torch.bool)
    return available


def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, dtype=dtype, device=generator.device)
    return u.to(device)


def _exponential(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    e = torch.empty(shape, dtype=torch.float32, device=generator.device).exponential_(generator=generator)
    return e.to(device)


def _first_bad_row(mask: torch.Tensor, what: str) -> None:
    if bool(mask.any()):
        r = int(mask.nonzero()[0, 0])
        raise ValueError(f"row {r} of the block has {what}")


def sample_with_replacement(
    weights: torch.Tensor,
    counts: int | torch.Tensor,
    generator: torch.Generator,
    available: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw with replacement, ``P(i) = w_i / Σ w`` per row (uniform over ``available`` if Σ w = 0).

    counts: int k -> int64 (B, k); or int64 (B,) per-row counts -> flat int64 (counts.sum(),),
    row 0's draws first.
    """
    avail = _check(weights, available)
    b, m = weights.shape
    if b >= 2**20:
        raise ValueError(f"{b} rows in one block: use blocks of fewer than 2**20 rows")
    fixed = isinstance(counts, int)
    cnt = torch.full((b,), counts, dtype=torch.int64, device=weights.device) if fixed else counts
    cnt = cnt.to(device=weights.device, dtype=torch.int64)  # (B,)
    _first_bad_row((cnt > 0) & ~avail.any(1), "draws requested but no available entry")
    w = torch.where(avail, weights, 0).double()  # (B, m)
    empty = w.sum(1) <= 0  # (B,)
    if bool(empty.any()):
        w[empty] = avail[empty].double()  # uniform fallback
        w[w.sum(1) <= 0] = 1.0  # rows without entries and without draws: any valid CDF
    cdf = torch.cumsum(w, dim=1)  # (B, m)
    cdf /= cdf[:, -1:].clone()  # (B, m) last column exactly 1
    row_ids = torch.arange(b, device=weights.device)  # (B,)
    cdf += row_ids[:, None].double()  # (B, m) row r in [r, r + 1]
    row = torch.repeat_interleave(row_ids, cnt)  # (N,)
    u = _rand((row.numel(),), generator, weights.device, torch.float64)  # (N,)
    target = row.double() + u * (1.0 - 2.0**-30)  # (N,) strictly below r + 1 after rounding
    pos = torch.searchsorted(cdf.view(-1), target, right=True)  # (N,) first cdf > target
    pos = torch.minimum(torch.maximum(pos, row * m), row * m + (m - 1))  # safety: stay in the row
    items = pos - row * m  # (N,)
    return items.view(b, counts) if fixed else items


def sample_without_replacement(
    weights: torch.Tensor,
    k: int,
    generator: torch.Generator,
    available: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw k distinct entries per row (Plackett-Luce order) -> int64 (B, k)."""
    avail = _check(weights, available)
    b, m = weights.shape
    _first_bad_row(avail.sum(1) < k, f"fewer than k={k} available entries")
    w = torch.where(avail, weights.float(), 0.0)  # (B, m)
    w /= w.amax(dim=1, keepdim=True).clamp_min(1e-38)  # (B, m) max 1: no overflow in w / E
    e = _exponential((b, m), generator, weights.device)  # (B, m) Exp(1)
    key = torch.where(w > 0, w / e, -e)  # (B, m) zero weights: a lower, uniform tier
    key.masked_fill_(~avail, float("-inf"))
    return torch.topk(key, k, dim=1).indices  # (B, k), sorted by key: the race order


def top_m(weights: torch.Tensor, k: int, available: torch.Tensor | None = None) -> torch.Tensor:
    """The k largest weights per row, ties to the lower index -> int64 (B, k), largest first."""
    avail = _check(weights, available)
    b, m = weights.shape
    _first_bad_row(avail.sum(1) < k, f"fewer than k={k} available entries")
    keys = descending_keys(weights.float()).to(torch.int64)  # (B, m)
    keys.masked_fill_(~avail, INT32_MAX)  # unavailable after everything
    idx = torch.arange(m, device=weights.device)  # (m,)
    keys = (keys << 32) | idx  # (B, m) unique
    return (torch.topk(keys, k, dim=1, largest=False).values & 0xFFFFFFFF)  # (B, k)
