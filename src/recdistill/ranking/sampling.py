"""Vectorised draws from per-row weights (no loop over rows), on any device.

- :func:`sample_with_replacement` (BD): inverse CDF in two levels (:class:`RowCDF`): float64
  cumulative sums of blocks of 32 entries, normalised with a row offset (row r's CDF lies in
  [r, r+1]) so that rows may ask for different numbers of draws (BD's ``deg(u) · s`` per user)
  with one ``searchsorted``; then a float64 cumulative sum inside each drawn block only. This
  costs one reduction over the weights instead of a full float64 scan; block sums are float32
  pairwise sums (relative error below 1e-6 of a block's mass).
- :func:`sample_without_replacement` (DCD's corrections, the rank engine): a Plackett-Luce draw (first =
  a draw ``∝ w``, second ``∝ w`` among the rest, ...) as successive sampling: ``2k`` draws with
  replacement from the row's CDF, of which the first k distinct entries are kept, in order (the
  first draw not yet taken is ``∝ w`` over the entries not yet taken: the same law). A row that
  got fewer than k distinct entries finishes with an exponential race over its entries not yet
  taken, which continues the same successive draw. This touches every entry once (the CDF)
  instead of a random number, a log, a division and a top-k per entry.
- :func:`sample_without_replacement_partial` (RRD's and CD's top-N lists): exponential races (equivalently
  Gumbel-top-k): the k largest ``w_i / E_i``, ``E_i ~ Exp(1)``, in the order the races were won.
- :func:`top_m` (DCD "w/o sampling"): the k largest weights, ties to the lower index.
- :func:`uniform_excluding` (base-loss negatives, RRD's uninteresting items): uniform columns
  outside a :class:`~recdistill.data.pairs.PairSet`, by rejection (only rejected draws are
  redrawn, so the loop runs over rejection rounds, never over rows).

``available`` (B, m) bool marks the entries that may be drawn (the unobserved ones); weights
elsewhere are ignored. Fallback: a row whose available weights are all zero is drawn uniformly
over its available entries; without replacement, a row with fewer than k positive weights is
completed by a uniform draw among its other available entries. A row with no available entry
(or, without replacement, fewer than k) is an error.

Random numbers come from ``generator`` on its own device and are moved to the weights' device,
so one seed gives the same draws; a CUDA generator keeps everything on the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recdistill.data.pairs import PairSet
from recdistill.errors import RecdistillError
from recdistill.ranking.order import INT32_MAX, descending_keys


def _check(weights: torch.Tensor, available: torch.Tensor | None) -> torch.Tensor:
    if weights.dim() != 2:
        raise RecdistillError(f"weights must be (B, m), got shape {tuple(weights.shape)}")
    if available is not None and available.shape != weights.shape:
        raise RecdistillError(f"available shape {tuple(available.shape)} != weights {tuple(weights.shape)}")
    if weights.numel():
        lo, hi = torch.aminmax(weights)  # NaN propagates
        if not (bool(lo >= 0) and bool(torch.isfinite(hi))):
            bad = ~torch.isfinite(weights) | (weights < 0)  # (B, m)
            r, c = (int(v) for v in bad.nonzero()[0])
            raise RecdistillError(f"weights[{r}, {c}] = {float(weights[r, c])}: expected finite and >= 0")
    if available is None:
        return torch.ones_like(weights, dtype=torch.bool)
    return available


def _rand(
    shape: tuple[int, ...],
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, dtype=dtype, device=generator.device)
    return u.to(device)


def _first_bad_row(mask: torch.Tensor, what: str) -> None:
    if bool(mask.any()):
        r = int(mask.nonzero()[0, 0])
        raise RecdistillError(f"row {r} of the block has {what}")


@dataclass
class RowCDF:
    """Two-level cumulative weights of a block of rows, for :func:`draw_from_cdf`.

    w: float32 (B, m_pad) weights (zero on unavailable entries and padding), m_pad = nb · G.
    block: float64 (B, nb) cumulative block sums; offset: float64 (B, nb), row r's ``block``
    normalised to [0, 1] plus r (the flattened rows form one sorted sequence).
    """

    w: torch.Tensor
    block: torch.Tensor
    offset: torch.Tensor
    m: int


#: entries per block of the two-level CDF
_G = 32


def row_cdf(weights: torch.Tensor, available: torch.Tensor | None = None, masked: bool = False) -> RowCDF:
    """Prepare draws with replacement from each row's weights (B, m); a row whose available
    weights sum to zero is drawn uniformly over its available entries. ``masked``: the caller
    guarantees the weights are 0 wherever ``available`` is False, so they are copied instead of
    masked (the same CDF, one cheaper pass; the uniform fallback still reads ``available``)."""
    return _row_cdf(weights, _check(weights, available), masked)


def _row_cdf(weights: torch.Tensor, avail: torch.Tensor, masked: bool = False) -> RowCDF:
    b, m = weights.shape
    if b >= 2**20:
        raise RecdistillError(f"{b} rows in one block: use blocks of fewer than 2**20 rows")
    nb = -(-m // _G)
    w = torch.empty((b, nb * _G), dtype=torch.float32, device=weights.device)  # (B, m_pad)
    w[:, m:] = 0.0
    zero = torch.zeros((), dtype=torch.float32, device=weights.device)
    if masked:
        w[:, :m].copy_(weights)  # (B, m): already 0 where unavailable
    else:
        torch.where(avail, weights.float(), zero, out=w[:, :m])  # (B, m) one pass
    bsum = w.view(b, nb, _G).sum(-1).double()  # (B, nb) pairwise float32 sums (rel. error < 1e-6)
    if not bool(torch.isfinite(bsum).all()):  # float32 block sums overflowed (weights ~1e37)
        w /= w.amax(dim=1, keepdim=True).clamp_min(1e-38)  # only ratios within a row matter
        bsum = w.view(b, nb, _G).sum(-1).double()
    empty = bsum.sum(1) <= 0  # (B,)
    if bool(empty.any()):  # uniform fallback
        w[empty, :m] = avail[empty].float()
        bsum[empty] = w[empty].view(-1, nb, _G).sum(-1).double()
    block = torch.cumsum(bsum, dim=1)  # (B, nb)
    return RowCDF(w, block, _offsets(block), m)


def _offsets(block: torch.Tensor) -> torch.Tensor:
    """float64 (B, nb): each row's cumulative block sums normalised to [0, 1], plus the row's
    index, so that the flattened rows form one sorted sequence (rows with no available entry are
    never drawn from; callers check)."""
    last = block[:, -1:].clone()  # (B, 1)
    last[last <= 0] = 1.0
    rows = torch.arange(block.shape[0], device=block.device, dtype=torch.float64)[:, None]  # (B, 1)
    return block / last + rows


def draw_from_cdf(cdf: RowCDF, counts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``counts[r]`` (B,) draws with replacement from row r of ``cdf`` -> flat int64 (N,).

    Inverse CDF in two steps, both exact in float64 up to rounding: the block (first offset CDF
    value above ``r + u``), then the entry within the block. Rounding never selects a zero
    weight: equal CDF values are never strictly above the target, and the within-block target
    is clamped to the block's positive range."""
    b, nb = cdf.block.shape
    dev = cdf.w.device
    rows = torch.repeat_interleave(torch.arange(b, device=dev), counts)  # (N,)
    u = _rand((rows.numel(),), generator, dev, torch.float64) * (1.0 - 2.0**-30)  # (N,) in [0, 1)
    pos = torch.searchsorted(cdf.offset.view(-1), rows.double() + u, right=True)  # (N,)
    blk = torch.minimum(
        torch.maximum(pos - rows * nb, torch.zeros_like(pos)), torch.full_like(pos, nb - 1)
    )  # (N,) block within the row
    total = cdf.block[rows, nb - 1]  # (N,)
    before = torch.where(blk > 0, cdf.block[rows, (blk - 1).clamp_min(0)], 0.0)  # (N,)
    x = (u * total - before).clamp_min(0.0)  # (N,) mass to cover inside the block
    inner = cdf.w.view(b * nb, _G).index_select(0, rows * nb + blk).cumsum(1, dtype=torch.float64)  # (N, G)
    # a batched search of each draw's sorted row: the same counts as comparing and summing
    # (bitwise the same draws), without the (N, G) comparison tensors
    j = torch.searchsorted(inner, x[:, None], right=True)  # (N, 1) first cumsum > x
    j_max = torch.searchsorted(inner, inner[:, -1:].contiguous())  # (N, 1) the last positive entry
    item = blk * _G + torch.minimum(j, j_max).squeeze(1)  # (N,)
    return item


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
    if isinstance(counts, int):
        cnt = torch.full((b,), counts, dtype=torch.int64, device=weights.device)
    else:
        cnt = counts.to(device=weights.device, dtype=torch.int64)  # (B,)
    _first_bad_row((cnt > 0) & ~avail.any(1), "draws requested but no available entry")
    items = draw_from_cdf(_row_cdf(weights, avail), cnt, generator)  # (N,)
    return items.view(b, counts) if isinstance(counts, int) else items


def sample_without_replacement(
    weights: torch.Tensor,
    k: int,
    generator: torch.Generator,
    available: torch.Tensor | None = None,
    masked: bool = False,
) -> torch.Tensor:
    """Draw k distinct entries per row (Plackett-Luce order) -> int64 (B, k).

    Successive sampling (:func:`_successive`); a row with fewer than k positive available weights
    gets them all, in race order, then a uniform draw among its other available entries
    (:func:`_races`). ``masked``: as :func:`row_cdf` (the same draws).
    """
    avail = _check(weights, available)
    m = weights.shape[1]
    if not 1 <= k <= m:
        raise RecdistillError(f"k={k}: expected 1 <= k <= {m} (entries per row)")
    return _successive(_row_cdf(weights, avail, masked), k, generator, weights, avail)


#: draws with replacement per row and per wanted entry in :func:`_successive`
_OVERSAMPLE = 2


def _successive(
    cdf: RowCDF, k: int, generator: torch.Generator, weights: torch.Tensor, avail: torch.Tensor
) -> torch.Tensor:
    """k distinct entries per row of ``cdf`` in Plackett-Luce order -> int64 (B, k).

    ``_OVERSAMPLE · k`` draws with replacement (:func:`draw_from_cdf`); each entry's first
    occurrence, in draw order, is the next entry of the successive draw (conditional on the
    entries taken so far, the first draw outside them is ``∝ w`` over the rest). A row left with
    j < k distinct entries either has fewer than k positive weights (then every draw of it falls
    short, so the choice depends on the weights only) and is drawn by :func:`_races` from
    ``weights`` / ``avail``, or races for the remaining k - j among the entries not yet taken,
    which is that same conditional law (a Plackett-Luce draw of the rest). The race's keys are
    float64 ``E / w`` with ``E = -log1p(-U)`` finite and ``+inf`` where ``w = 0``, so neither a
    subnormal weight nor ``U = 0`` ties a drawable entry with an excluded one."""
    b, m = cdf.w.shape[0], cdf.m
    dev = cdf.w.device
    _first_bad_row(cdf.block[:, -1] <= 0, f"fewer than k={k} available entries")  # none at all
    n = _OVERSAMPLE * k
    items = draw_from_cdf(cdf, torch.full((b,), n, dtype=torch.int64, device=dev), generator).view(b, n)
    srt, perm = items.sort(dim=1, stable=True)  # (B, n): equal entries in draw order
    first_s = torch.ones_like(srt, dtype=torch.bool)  # (B, n) first occurrence, sorted order
    first_s[:, 1:] = srt[:, 1:] != srt[:, :-1]
    first = torch.empty_like(first_s).scatter_(1, perm, first_s)  # (B, n) in draw order
    slot = first.long().cumsum(1) - 1  # (B, n) position among the distinct entries
    take = first & (slot < k)  # (B, n)
    out = torch.empty((b, k), dtype=torch.int64, device=dev)
    row = torch.arange(b, device=dev)[:, None].expand(b, n)  # (B, n)
    out[row[take], slot[take]] = items[take]
    found = take.sum(1)  # (B,)
    lack = (found < k).nonzero()[:, 0]  # (L,)
    if not lack.numel():
        return out
    few = torch.sign(cdf.w[lack]).sum(1) < k  # (L,) fewer than k positive weights
    short, cont = lack[few], lack[~few]
    if cont.numel():  # finish with a race over the entries not yet taken
        w = cdf.w[cont, :m].clone()  # (C, m)
        have = found[cont]  # (C,) >= 1
        j = torch.arange(k, device=dev)[None, :]  # (1, k)
        w.scatter_(1, torch.where(j < have[:, None], out[cont], out[cont, :1]), 0.0)  # taken -> 0
        e = -torch.log1p(-_rand(tuple(w.shape), generator, dev, torch.float64))  # (C, m) Exp(1), finite
        inf = torch.full((), float("inf"), dtype=torch.float64, device=dev)
        key = torch.where(w > 0, e / w.double(), inf)  # (C, m) float64: no underflow to a tie
        rest = torch.topk(key, k, dim=1, largest=False).indices  # (C, k) race order
        more = rest.gather(1, (j - have[:, None]).clamp_min(0))  # (C, k) the race's first k - have
        out[cont] = torch.where(j < have[:, None], out[cont], more)
    if short.numel():
        bad = torch.zeros(b, dtype=torch.bool, device=dev)  # (B,): the row's index in the block
        bad[short] = avail[short].sum(1) < k
        _first_bad_row(bad, f"fewer than k={k} available entries")
        out[short] = _races(weights[short], k, generator, avail[short], partial=False)[0]
    return out


def sample_without_replacement_partial(
    weights: torch.Tensor,
    k: int,
    generator: torch.Generator,
    available: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """As :func:`sample_without_replacement`, but a row with fewer than k positive available
    weights gets only those (no uniform completion): -> (int64 (B, k) entries, bool (B, k) valid);
    invalid slots come last and hold an arbitrary in-range index."""
    idx, valid = _races(weights, k, generator, available, partial=True)
    assert valid is not None
    return idx, valid


def _races(
    weights: torch.Tensor,
    k: int,
    generator: torch.Generator,
    available: torch.Tensor | None,
    partial: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    avail = _check(weights, available)
    b, m = weights.shape
    if not 1 <= k <= m:
        raise RecdistillError(f"k={k}: expected 1 <= k <= {m} (entries per row)")
    zero = torch.zeros((), dtype=torch.float32, device=weights.device)
    w = torch.where(avail, weights.float(), zero)  # (B, m)
    if bool(w.amax() > 1e30):  # keep w / E finite
        w /= w.amax(dim=1, keepdim=True).clamp_min(1e-38)
    logu = _rand((b, m), generator, weights.device).log_()  # (B, m) log U in [-inf, 0)
    key = torch.div(w, logu)  # (B, m) -w/E: negative for w > 0, 0 (or -0) for w = 0
    vals, idx = torch.topk(key, k, dim=1, largest=False)  # (B, k) ascending: race order
    if partial:
        return idx, vals < 0  # (B, k): a slot is a real draw where its key is negative
    short = vals[:, -1] >= 0  # (B,) fewer than k positive weights in the row
    if bool(short.any()):
        rows = short.nonzero()[:, 0]  # (R,)
        ws, av, lu = w[rows], avail[rows], logu[rows]  # (R, m)
        _first_bad_row(av.sum(1) < k, f"fewer than k={k} available entries")
        pos = ws > 0  # (R, m)
        n_pos = pos.sum(1, keepdim=True)  # (R, 1) < k
        inf = torch.full((), float("inf"), device=w.device)
        first = torch.topk(torch.where(pos, key[rows], inf), k, dim=1, largest=False).indices  # (R, k)
        rest_key = torch.where(av & ~pos, lu, -inf)  # (R, m) uniform race among the rest
        rest = torch.topk(rest_key, k, dim=1).indices  # (R, k)
        j = torch.arange(k, device=w.device)[None, :]  # (1, k)
        idx[rows] = torch.where(j < n_pos, first, rest.gather(1, (j - n_pos).clamp_min(0)))  # (R, k)
    return idx, None


def top_m(weights: torch.Tensor, k: int, available: torch.Tensor | None = None) -> torch.Tensor:
    """The k largest weights per row, ties to the lower index -> int64 (B, k), largest first."""
    avail = _check(weights, available)
    b, m = weights.shape
    _first_bad_row(avail.sum(1) < k, f"fewer than k={k} available entries")
    keys = descending_keys(weights.float()).to(torch.int64)  # (B, m)
    keys.masked_fill_(~avail, INT32_MAX)  # unavailable after everything
    idx = torch.arange(m, device=weights.device)  # (m,)
    keys = (keys << 32) | idx  # (B, m) unique
    return torch.topk(keys, k, dim=1, largest=False).values & 0xFFFFFFFF  # (B, k)


def uniform_excluding(
    rows: torch.Tensor,
    n_cols: int,
    k: int,
    exclude: PairSet,
    generator: torch.Generator,
    max_rounds: int = 50,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` columns per row, uniform with replacement over the columns ``c`` with
    ``(row, c)`` not in ``exclude``, by rejection -> (int64 (R, k) columns, bool (R, k) valid).

    rows: (R,) row ids. Draws come from ``generator`` (CPU) and stay on the CPU. A draw still
    rejected after ``max_rounds`` rounds (a row with almost every column excluded) is invalid.
    """
    r = rows.to("cpu", torch.int64)[:, None].expand(-1, k)  # (R, k)
    cols = torch.randint(n_cols, r.shape, generator=generator)  # (R, k)
    bad = exclude.contains(r, cols)  # (R, k)
    for _ in range(max_rounds):
        n_bad = int(bad.sum())
        if n_bad == 0:
            break
        redraw = torch.randint(n_cols, (n_bad,), generator=generator)  # (n_bad,)
        cols[bad] = redraw
        bad[bad.clone()] = exclude.contains(r[bad], redraw)
    return cols, ~bad


def uniform_indices(n: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` ids uniform over ``0..n-1`` with replacement -> int64 (count,) on the CPU."""
    return torch.randint(n, (count,), generator=generator)
