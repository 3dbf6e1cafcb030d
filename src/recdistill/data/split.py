"""Leave-one-out and ratio splits, and the sampled-protocol candidates (vectorised, seeded).

Ratio split (the protocol of the 2022-26 distillation papers, e.g. RCE-KD's
``preprocess_citeulike.py``): per user, the rows in order (random with the seed, by time, or as
in the file) are cut at ``l = max(floor(c_1 n / C), 1)`` and ``r = max(floor(c_2 n / C), l)``
with ``c`` the cumulative ratios (8, 9, 10 for 8:1:1) and ``C`` their total: rows ``[0, l)``
train, ``[l, r)`` validation, ``[r, n)`` test (a user of 5 items: 4 / 0 / 1).

Leave-one-out (BD Sec. 5.1; RRD/DE-RRD/DCD): per user the last interaction by time is the test
item and the one before it the validation item; without timestamps both are drawn at random
with the seed. Candidates (RRD/DE-RRD/DCD sampled protocol): ``N_CANDIDATES`` = 499 items per
user drawn uniformly without replacement from the items the user never interacted with.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recdistill.errors import RecdistillError

# Seed streams: the split and the candidates use independent generators derived from one seed.
SPLIT_STREAM = 1
CANDIDATE_STREAM = 2

_CHUNK_DRAWS = 1 << 21  # random ints per candidate-sampling chunk (bounds memory, fixed for determinism)


def rng_for(seed: int, stream: int) -> np.random.Generator:
    """The generator of ``stream`` for ``seed`` (same seed -> same numbers, on any machine)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), stream]))


def leave_one_out(
    users: np.ndarray, times: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split rows of an interaction log (internal user ids, one row per distinct pair).

    Returns ``(order, test_row, valid_row, n_per_user)``: ``order`` sorts rows by user then time
    (ties by row order; random keys when ``times`` is None); ``test_row``/``valid_row`` (n_users,)
    are row indices of the held-out pairs, -1 for users with fewer than 1 / 2 rows.
    """
    n = len(users)
    n_users = int(users.max()) + 1 if n else 0
    if times is None:
        keys = rng_for(seed, SPLIT_STREAM).random(n)  # (n,) random order within each user
        order = np.lexsort((keys, users))
    else:
        order = np.lexsort((np.arange(n), times, users))  # (n,) user, then time, then file row
    counts = np.bincount(users, minlength=n_users)  # (n_users,)
    ends = np.cumsum(counts)  # (n_users,) one past each user's last sorted row
    test_row = np.where(counts >= 1, order[np.maximum(ends - 1, 0)], -1)
    valid_row = np.where(counts >= 2, order[np.maximum(ends - 2, 0)], -1)
    return order, test_row, valid_row, counts


def positives_csr(train: sp.csr_matrix, valid_items: np.ndarray, test_items: np.ndarray) -> sp.csr_matrix:
    """Boolean CSR of every item each user interacted with (train, valid or test), sorted indices."""
    n_users, n_items = train.shape
    coo = train.tocoo()
    rows = [coo.row, np.flatnonzero(valid_items >= 0), np.flatnonzero(test_items >= 0)]
    cols = [coo.col, valid_items[valid_items >= 0], test_items[test_items >= 0]]
    r, c = np.concatenate(rows), np.concatenate(cols)
    m = sp.csr_matrix((np.ones(len(r), dtype=bool), (r, c)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.sort_indices()
    return m


def _needed_draws(n_items: int, n_neg: np.ndarray, k: int) -> np.ndarray:
    """Expected uniform draws over all items until ``k`` distinct negatives: n * ln(N / (N - k))."""
    n_neg = n_neg.astype(np.float64)
    return n_items * (np.log(n_neg + 0.5) - np.log(np.maximum(n_neg - k, 0) + 0.5))


def sample_candidates(
    positives: sp.csr_matrix, n_candidates: int, seed: int, user_ids: np.ndarray | None = None
) -> np.ndarray:
    """``(n_users, n_candidates)`` int32: per user, distinct items not in its row of ``positives``.

    Uniform without replacement; each row is returned sorted ascending. Vectorised: per chunk of
    users draw a matrix of ints, sort each row, reject positives by a sorted (user * n_items +
    item) key lookup and repeats, pick ``k`` of the rest with random keys; the few users left
    short are redrawn with a wider matrix, then exactly (random keys over all items). A user with
    fewer than ``k`` never-interacted items is an error (we do not cap: the sampled protocol
    needs the same candidate count for every user).
    """
    n_users, n_items = positives.shape
    k = int(n_candidates)
    if k < 0:
        raise RecdistillError(f"n_candidates must be >= 0, got {k}")
    out = np.empty((n_users, k), dtype=np.int32)
    if k == 0 or n_users == 0:
        return out
    n_pos = np.diff(positives.indptr)  # (n_users,)
    n_neg = n_items - n_pos
    short = np.flatnonzero(n_neg < k)
    if len(short):
        u = int(short[0])
        raw = f" (raw id {np.asarray(user_ids[u]).item()!r})" if user_ids is not None else ""
        raise RecdistillError(
            f"n_candidates={k}: user {u}{raw} has only {n_neg[u]} items it never interacted with "
            f"({n_items} items in all); {len(short)} users are short. Use a smaller n_candidates."
        )
    pos_keys = (
        np.repeat(np.arange(n_users, dtype=np.int64), n_pos) * n_items + positives.indices
    )  # (nnz,) sorted because the CSR is row-major with sorted indices
    rng = rng_for(seed, CANDIDATE_STREAM)
    need = _needed_draws(n_items, n_neg, k)  # (n_users,)
    remaining = np.arange(n_users)
    exact: list[np.ndarray] = []
    for round_ in range(2):
        if len(remaining) == 0:
            break
        if round_ == 0:
            width = int(np.ceil(np.quantile(need[remaining], 0.9) * 1.25)) + 16
        else:  # the few rows left: wide enough for nearly all of them; the rest go exact
            wide = need[remaining] * 3 + 64 >= n_items
            exact.append(remaining[wide])
            remaining = remaining[~wide]
            if len(remaining) == 0:
                break
            width = int(np.ceil(need[remaining].max() * 3)) + 64
        if width >= n_items:  # drawing more than n_items per row: exact keys are cheaper
            exact.append(remaining)
            remaining = remaining[:0]
            break
        step = max(1, _CHUNK_DRAWS // width)
        left = []
        for s in range(0, len(remaining), step):
            rows = remaining[s : s + step]
            done = _draw_chunk(rows, width, k, n_items, pos_keys, rng, out)
            left.append(rows[~done])
        remaining = np.concatenate(left)
    remaining = np.sort(np.concatenate([*exact, remaining]))
    if len(remaining):
        _exact_rows(remaining, positives, k, rng, out)
    return out


def _draw_chunk(
    rows: np.ndarray,
    width: int,
    k: int,
    n_items: int,
    pos_keys: np.ndarray,
    rng: np.random.Generator,
    out: np.ndarray,
) -> np.ndarray:
    """One oversampling round for ``rows``; fills ``out`` for the rows that got ``k``; returns them.

    The distinct non-positive values among iid uniform draws form, given their number m, a
    uniform random m-subset of the user's negatives; a uniform k-subset of it (random keys) is
    then a uniform k-subset of the negatives. Rows with m < k are redrawn by the caller.
    """
    draws = np.sort(rng.integers(0, n_items, size=(len(rows), width), dtype=np.int64), axis=1)  # (c, w)
    q = rows[:, None].astype(np.int64) * n_items + draws  # (c, w) sorted per row: cache-friendly lookup
    if len(pos_keys):
        hit = pos_keys[np.minimum(np.searchsorted(pos_keys, q), len(pos_keys) - 1)] == q  # (c, w)
    else:
        hit = np.zeros(q.shape, dtype=bool)
    ok = ~hit
    ok[:, 1:] &= draws[:, 1:] != draws[:, :-1]  # (c, w) first of each run of equal values
    done = ok.sum(axis=1) >= k  # (c,)
    keys = rng.random(draws.shape)  # (c, w)
    keys[~ok] = 2.0
    pick = np.argpartition(keys[done], k - 1, axis=1)[:, :k]  # (d, k)
    out[rows[done]] = np.sort(np.take_along_axis(draws[done], pick, axis=1), axis=1)
    return done


def _exact_rows(
    rows: np.ndarray, positives: sp.csr_matrix, k: int, rng: np.random.Generator, out: np.ndarray
) -> None:
    """Exact uniform k-subsets for a few users: random keys over all items, positives pushed last."""
    n_items = positives.shape[1]
    step = max(1, _CHUNK_DRAWS // n_items)
    for s in range(0, len(rows), step):
        r = rows[s : s + step]
        keys = rng.random((len(r), n_items))  # (c, n_items)
        sub = positives[r]
        keys[np.repeat(np.arange(len(r)), np.diff(sub.indptr)), sub.indices] = 2.0
        out[r] = np.sort(np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1)  # (c, k) k smallest keys


ORDERS = ("random", "time", "file")


def ratio_split(
    users: np.ndarray, ratios: tuple[int, ...], order: str, times: np.ndarray | None, seed: int
) -> np.ndarray:
    """Per row of an interaction log (internal user ids, one row per distinct pair): 0 train,
    1 validation, 2 test, by the ratio rule of the module docstring. ``order``: ``random`` (keys
    from ``seed``), ``time`` (``times``; ties in file order) or ``file`` (the rows' order)."""
    if (
        len(ratios) != 3
        or any((not isinstance(x, (int, np.integer))) or x < 0 for x in ratios)
        or ratios[0] < 1
    ):
        raise RecdistillError(
            f"ratios: expected three whole numbers train, valid, test (train >= 1), got {ratios}"
        )
    if order not in ORDERS:
        raise RecdistillError(f"order: expected one of {', '.join(ORDERS)}, got {order!r}")
    n = len(users)
    row = np.arange(n)
    if order == "random":
        keys = rng_for(seed, SPLIT_STREAM).random(n)  # (n,)
        sort = np.lexsort((keys, users))
    elif order == "time":
        if times is None:
            raise RecdistillError("order=time needs timestamps; this log has none (order: random or file)")
        sort = np.lexsort((row, times, users))
    else:
        sort = np.lexsort((row, users))
    u = users[sort]
    counts = np.bincount(users, minlength=int(users.max()) + 1 if n else 0)  # (n_users,)
    starts = np.cumsum(counts) - counts
    pos = row - starts[u]  # (n,) position within the user's ordered rows
    c1, c2, total = ratios[0], ratios[0] + ratios[1], sum(ratios)
    size = counts[u]
    lo = np.maximum((c1 * size) // total, 1)
    hi = np.maximum((c2 * size) // total, lo)
    part = np.where(pos < lo, 0, np.where(pos < hi, 1, 2)).astype(np.int8)  # in sorted order
    out = np.empty(n, dtype=np.int8)
    out[sort] = part
    return out
