"""Preprocessing and the whole pipeline from an interaction log to a :class:`Dataset`:
binarise, drop duplicate pairs, filter users (and optional k-core), leave-one-out split, drop
users left without training items, remap ids to 0..n-1 (keeping raw ids), sample candidates."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recdistill.data.dataset import N_CANDIDATES, Dataset
from recdistill.data.readers import Interactions
from recdistill.data.split import leave_one_out, positives_csr, ratio_split, sample_candidates
from recdistill.errors import RecdistillError


def _codes(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(uniques, codes)``: sorted distinct raw ids and each row's index into them."""
    uniq, codes = np.unique(raw, return_inverse=True)
    return uniq, codes.reshape(-1).astype(np.int64)


def drop_duplicate_pairs(users: np.ndarray, items: np.ndarray, times: np.ndarray | None) -> np.ndarray:
    """Sorted row indices that keep one row per (user, item): the earliest (then first in file)."""
    n = len(users)
    n_items = int(items.max()) + 1 if n else 1
    key = users * n_items + items  # (n,) int64
    if times is None:
        order = np.argsort(key, kind="stable")
    else:
        order = np.lexsort((np.arange(n), times, key))
    sk = key[order]
    first = np.ones(n, dtype=bool)
    first[1:] = sk[1:] != sk[:-1]
    return np.sort(order[first])


def _k_core(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Boolean row mask of the k-core: repeat dropping users and items with < k rows."""
    keep = np.ones(len(users), dtype=bool)
    while True:
        uc = np.bincount(users[keep], minlength=int(users.max()) + 1)
        ic = np.bincount(items[keep], minlength=int(items.max()) + 1)
        new = keep & (uc[users] >= k) & (ic[items] >= k)
        if new.sum() == keep.sum():
            return new
        keep = new


def _nothing_left(filter_desc: str, before: int) -> ValueError:
    return RecdistillError(f"filter {filter_desc} left no interactions (of {before})")


def from_interactions(
    users: np.ndarray | list,
    items: np.ndarray | list,
    timestamps: np.ndarray | list | None = None,
    *,
    seed: int = 0,
    min_user_interactions: int = 1,
    k_core: int | None = None,
    n_candidates: int = N_CANDIDATES,
    name: str = "arrays",
    ratings: np.ndarray | list | None = None,
    min_rating: float | None = None,
    info: dict[str, Any] | None = None,
    split: str = "loo",
    ratios: tuple[int, ...] = (8, 1, 1),
    order: str | None = None,
) -> Dataset:
    """Prepare a :class:`Dataset` from raw ids (ints or strings), one row per event.

    ``split``: ``"loo"`` (below) or ``"ratio"``: per user ``ratios`` (train, valid, test) of its
    rows in ``order`` (``random`` with the seed, ``time``, or ``file``; default: ``time`` with
    timestamps, else ``random``), as :func:`recdistill.data.split.ratio_split` cuts them, every
    user kept (one with too few rows holds no test item), no sampled candidates.

    Steps: (optional) keep ``ratings >= min_rating``; binarise and drop duplicate pairs (the
    earliest is kept, counted in ``info['duplicates_dropped']``); keep users with at least
    ``min_user_interactions`` distinct items; optional ``k_core`` (users and items with >= k);
    leave-one-out (last by time = test, the one before = valid; random with ``seed`` when there
    are no timestamps); users left with < 1 training item are dropped (``info['users_dropped']
    ['no_train_item']``); ids are remapped to 0..n-1 in sorted raw-id order; ``n_candidates``
    items per user are drawn from those it never interacted with (a user with fewer such items
    is an error, not capped). Time ties keep file order; ``timestamps`` may be numbers or
    datetime64.
    """
    u_raw = np.asarray(users)
    i_raw = np.asarray(items)
    if u_raw.ndim != 1 or i_raw.shape != u_raw.shape:
        raise RecdistillError(
            f"users and items must be 1-d of equal length, got {u_raw.shape} and {i_raw.shape}"
        )
    t = None if timestamps is None else np.asarray(timestamps)
    if t is not None and t.dtype.kind == "M":  # datetime64 -> int64 seconds
        t = t.astype("datetime64[s]").astype(np.int64)
    if t is not None:
        if t.shape != u_raw.shape:
            raise RecdistillError(f"timestamps must have shape {u_raw.shape}, got {t.shape}")
        if t.dtype.kind not in "iuf":
            raise RecdistillError(f"timestamps must be numeric, got dtype {t.dtype}")
        if t.dtype.kind == "f" and np.isnan(t).any():
            raise RecdistillError(f"timestamps contain NaN (first at row {int(np.argmax(np.isnan(t)))})")
    if min_user_interactions < 1:
        raise RecdistillError(f"min_user_interactions must be >= 1, got {min_user_interactions}")
    if split not in ("loo", "ratio"):
        raise RecdistillError(f"split: expected loo or ratio, got {split!r}")
    if k_core is not None and k_core < 1:
        raise RecdistillError(f"k_core must be >= 1, got {k_core}")
    n_raw = len(u_raw)
    if n_raw == 0:
        raise RecdistillError(f"{name}: no interactions")
    rep: dict[str, Any] = dict(info or {})
    rep.update(name=name, raw_rows=n_raw, seed=int(seed), timestamps=t is not None)
    rep["settings"] = dict(
        min_user_interactions=int(min_user_interactions),
        k_core=None if k_core is None else int(k_core),
        n_candidates=int(n_candidates),
        min_rating=min_rating,
        seed=int(seed),
    )
    if split == "ratio":
        order = order or ("time" if t is not None else "random")
        rep["settings"].update(split="ratio", ratios=[int(x) for x in ratios], order=order)
        del rep["settings"]["n_candidates"]
    users_dropped: dict[str, int] = {}
    items_dropped: dict[str, int] = {}
    rows_dropped: dict[str, int] = {}

    keep = np.arange(n_raw)
    if min_rating is not None:
        if ratings is None:
            raise RecdistillError("min_rating needs ratings; this source has none")
        r = np.asarray(ratings, dtype=np.float64)
        keep = np.flatnonzero(r >= min_rating)
        rows_dropped["min_rating"] = n_raw - len(keep)
        if len(keep) == 0:
            raise _nothing_left(f"min_rating={min_rating}", n_raw)
    user_uniq, uc = _codes(u_raw[keep])
    item_uniq, ic = _codes(i_raw[keep])
    tc = None if t is None else t[keep]
    n_users0, n_items0 = len(user_uniq), len(item_uniq)
    rep["raw_users"], rep["raw_items"] = n_users0, n_items0

    first = drop_duplicate_pairs(uc, ic, tc)
    rep["duplicates_dropped"] = len(uc) - len(first)
    uc, ic = uc[first], ic[first]
    tc = None if tc is None else tc[first]

    def _apply(mask: np.ndarray, desc: str, key: str) -> None:
        nonlocal uc, ic, tc
        before_u, before_i, before = len(np.unique(uc)), len(np.unique(ic)), len(uc)
        if not mask.any():
            raise _nothing_left(desc, before)
        uc, ic = uc[mask], ic[mask]
        tc = None if tc is None else tc[mask]
        users_dropped[key] = before_u - len(np.unique(uc))
        items_dropped[key] = before_i - len(np.unique(ic))
        rows_dropped[key] = before - len(uc)

    if min_user_interactions > 1:
        per_user = np.bincount(uc, minlength=n_users0)
        _apply(
            per_user[uc] >= min_user_interactions,
            f"min_user_interactions={min_user_interactions}",
            "min_user_interactions",
        )
    if k_core is not None and k_core > 1:
        _apply(_k_core(uc, ic, k_core), f"k_core={k_core}", "k_core")

    if split == "ratio":
        assert order is not None
        rep.update(users_dropped=users_dropped, items_dropped=items_dropped, rows_dropped=rows_dropped)
        return _ratio_dataset(uc, ic, tc, user_uniq, item_uniq, tuple(ratios), order, seed, name, rep)

    # Leave-one-out on compact user ids; users need >= 3 rows to keep >= 1 training item.
    u_kept, u_compact = np.unique(uc, return_inverse=True)
    u_compact = u_compact.reshape(-1)
    _, test_row, valid_row, counts = leave_one_out(u_compact, tc, seed)
    ok_user = counts >= 3  # (n,) per compact user
    if not ok_user.any():
        raise _nothing_left("leave-one-out (each user needs >= 3 interactions: train, valid, test)", len(uc))
    is_test = np.zeros(len(uc), dtype=bool)
    is_valid = np.zeros(len(uc), dtype=bool)
    is_test[test_row[ok_user]] = True
    is_valid[valid_row[ok_user]] = True
    row_ok = ok_user[u_compact]
    users_dropped["no_train_item"] = int((~ok_user).sum())
    n_items_before = len(np.unique(ic))

    # Final compact ids over the remaining rows.
    uc, ic, is_test, is_valid = uc[row_ok], ic[row_ok], is_test[row_ok], is_valid[row_ok]
    user_final, u = np.unique(uc, return_inverse=True)
    item_final, i = np.unique(ic, return_inverse=True)
    u, i = u.reshape(-1).astype(np.int64), i.reshape(-1).astype(np.int64)
    items_dropped["no_train_item"] = n_items_before - len(item_final)
    rows_dropped["no_train_item"] = int((~row_ok).sum())
    n_users, n_items = len(user_final), len(item_final)

    is_train = ~(is_test | is_valid)
    train = sp.csr_matrix(
        (np.ones(int(is_train.sum()), dtype=np.float32), (u[is_train], i[is_train])), shape=(n_users, n_items)
    )
    train.sort_indices()
    valid_items = np.full(n_users, -1, dtype=np.int64)
    test_items = np.full(n_users, -1, dtype=np.int64)
    valid_items[u[is_valid]] = i[is_valid]
    test_items[u[is_test]] = i[is_test]
    user_ids = user_uniq[user_final]
    item_ids = item_uniq[item_final]

    pos = positives_csr(train, valid_items, test_items)
    candidates = sample_candidates(pos, n_candidates, seed, user_ids)
    rep.update(
        split="leave-one-out by time" if t is not None else "leave-one-out at random (seeded)",
        users_dropped=users_dropped,
        items_dropped=items_dropped,
        rows_dropped=rows_dropped,
    )
    return Dataset(
        name=name,
        n_users=n_users,
        n_items=n_items,
        train=train,
        valid_items=valid_items,
        test_items=test_items,
        candidates=candidates,
        user_ids=user_ids,
        item_ids=item_ids,
        info=rep,
    )


def _ratio_dataset(
    uc: np.ndarray,
    ic: np.ndarray,
    tc: np.ndarray | None,
    user_uniq: np.ndarray,
    item_uniq: np.ndarray,
    ratios: tuple[int, ...],
    order: str,
    seed: int,
    name: str,
    rep: dict[str, Any],
) -> Dataset:
    """The ratio split of the filtered rows (codes ``uc``, ``ic``): ids remapped to 0..n-1 in
    sorted raw-id order, held-out items as CSR sets."""
    user_final, u = np.unique(uc, return_inverse=True)
    item_final, i = np.unique(ic, return_inverse=True)
    u, i = u.reshape(-1).astype(np.int64), i.reshape(-1).astype(np.int64)
    n_users, n_items = len(user_final), len(item_final)
    part = ratio_split(u, ratios, order, tc, seed)  # (n,) 0 train, 1 valid, 2 test

    def csr(k: int) -> sp.csr_matrix:
        sel = part == k
        m = sp.csr_matrix(
            (np.ones(int(sel.sum()), dtype=np.float32), (u[sel], i[sel])), shape=(n_users, n_items)
        )
        m.sort_indices()
        return m

    counts = {k: int((part == j).sum()) for j, k in enumerate(("train", "valid", "test"))}
    rep.update(
        split=f"ratio {':'.join(map(str, ratios))} per user ({order} order)",
        interactions=counts,
    )
    return Dataset(
        name=name,
        n_users=n_users,
        n_items=n_items,
        train=csr(0),
        valid_items=np.full(n_users, -1, dtype=np.int64),
        test_items=np.full(n_users, -1, dtype=np.int64),
        candidates=np.zeros((n_users, 0), dtype=np.int32),
        user_ids=user_uniq[user_final],
        item_ids=item_uniq[item_final],
        info=rep,
        valid_sets=csr(1),
        test_sets=csr(2),
    )


def from_log(log: Interactions, **options: Any) -> Dataset:
    """:func:`from_interactions` on a reader's output (passes its timestamps and ratings)."""
    info = dict(options.pop("info", None) or {})
    info.setdefault("format", log.fmt)
    info.setdefault("source", list(log.source))
    return from_interactions(log.users, log.items, log.timestamps, ratings=log.ratings, info=info, **options)
