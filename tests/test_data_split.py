"""Preprocessing, leave-one-out split and candidates against slow, obvious references."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import scipy.sparse as sp

from recdistill.data import from_interactions
from recdistill.data.split import positives_csr, sample_candidates


def random_log(seed: int, n_rows: int = 400, n_users: int = 25, n_items: int = 60, with_time: bool = True):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_rows) * 7 + 100  # raw ids not 0..n-1
    items = rng.integers(0, n_items, n_rows) * 3 + 5
    times = rng.integers(0, 50, n_rows) if with_time else None  # many ties
    return users, items, times


def reference_split(users, items, times, min_user: int = 1):
    """Slow reference: dedupe keeping the earliest (time, row), filter users, per user sort by
    (time, row): last -> test, the one before -> valid, the rest train; < 3 rows -> dropped."""
    first: dict[tuple, tuple] = {}
    for r, (u, i) in enumerate(zip(users.tolist(), items.tolist())):
        key = (times[r], r) if times is not None else (0, r)
        if (u, i) not in first or key < first[(u, i)]:
            first[(u, i)] = key
    per_user: dict = defaultdict(list)
    for (u, i), key in first.items():
        per_user[u].append((key, i))
    train, valid, test = set(), {}, {}
    for u, rows in per_user.items():
        if len(rows) < min_user or len(rows) < 3:
            continue
        rows.sort()
        test[u], valid[u] = rows[-1][1], rows[-2][1]
        train |= {(u, i) for _, i in rows[:-2]}
    return train, valid, test, len(users) - len(first)


def raw_split(ds):
    coo = ds.train.tocoo()
    train = {(ds.user_ids[u].item(), ds.item_ids[i].item()) for u, i in zip(coo.row, coo.col)}
    valid = {ds.user_ids[u].item(): ds.item_ids[i].item() for u, i in enumerate(ds.valid_items) if i >= 0}
    test = {ds.user_ids[u].item(): ds.item_ids[i].item() for u, i in enumerate(ds.test_items) if i >= 0}
    return train, valid, test


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("min_user", [1, 12])
def test_loo_by_time_matches_reference(seed: int, min_user: int) -> None:
    users, items, times = random_log(seed)
    ds = from_interactions(users, items, times, min_user_interactions=min_user, n_candidates=5, seed=seed)
    train, valid, test, dups = reference_split(users, items, times, min_user)
    assert raw_split(ds) == (train, valid, test)
    assert ds.info["duplicates_dropped"] == dups > 0
    assert ds.n_users == len(test) and ds.train.shape == (ds.n_users, ds.n_items)
    all_items = {i for _, i in train} | set(valid.values()) | set(test.values())
    assert ds.n_items == len(all_items) and set(ds.item_ids.tolist()) == all_items
    assert list(ds.user_ids) == sorted(ds.user_ids) and list(ds.item_ids) == sorted(ds.item_ids)
    assert ds.train.dtype == np.float32 and np.all(ds.train.data == 1.0)


def test_duplicates_keep_earliest_time() -> None:
    # user 1 sees item 10 at t=9 and again at t=1: the pair counts at t=1, so item 30 (t=5) is
    # the validation item and item 40 (t=7) the test item; item 10 is in training.
    ds = from_interactions([1, 1, 1, 1, 1], [10, 20, 30, 40, 10], [9, 0, 5, 7, 1], n_candidates=0)
    train, valid, test = raw_split(ds)
    assert train == {(1, 10), (1, 20)} and valid == {1: 30} and test == {1: 40}
    assert ds.info["duplicates_dropped"] == 1


def test_time_ties_keep_file_order() -> None:
    ds = from_interactions([0, 0, 0, 0], [1, 2, 3, 4], [5, 5, 5, 5], n_candidates=0)
    assert raw_split(ds)[1:] == ({0: 3}, {0: 4})


def test_datetime64_timestamps() -> None:
    t = np.array(["2020-01-03", "2020-01-01", "2020-01-02"], dtype="datetime64[D]")
    ds = from_interactions([0, 0, 0], [7, 8, 9], t, n_candidates=0)
    assert raw_split(ds) == ({(0, 8)}, {0: 9}, {0: 7})


def test_users_without_training_item_are_dropped_and_counted() -> None:
    users = [0, 0, 0, 1, 1, 2]
    items = [0, 1, 2, 0, 1, 3]
    ds = from_interactions(users, items, [0, 1, 2, 0, 1, 0], n_candidates=0)
    assert ds.n_users == 1 and ds.user_ids.tolist() == [0]
    assert ds.info["users_dropped"]["no_train_item"] == 2
    assert ds.info["items_dropped"]["no_train_item"] == 1  # item 3 was only user 2's
    assert ds.n_items == 3


def test_random_loo_properties_and_determinism() -> None:
    users, items, _ = random_log(3)
    a = from_interactions(users, items, None, seed=7, n_candidates=20)
    b = from_interactions(users, items, None, seed=7, n_candidates=20)
    c = from_interactions(users, items, None, seed=8, n_candidates=20)
    for x, y in [(a.valid_items, b.valid_items), (a.test_items, b.test_items), (a.candidates, b.candidates)]:
        np.testing.assert_array_equal(x, y)
    assert (a.train != b.train).nnz == 0
    assert not np.array_equal(a.test_items, c.test_items) and not np.array_equal(a.candidates, c.candidates)
    # Each user's train + valid + test is exactly its distinct items, held-out ones distinct.
    train, valid, test, _ = reference_split(users, items, None)
    got_train, got_valid, got_test = raw_split(a)
    assert got_valid.keys() == valid.keys() == got_test.keys()
    for u in valid:
        mine = {i for (v, i) in got_train if v == u} | {got_valid[u], got_test[u]}
        ref = {i for (v, i) in train if v == u} | {valid[u], test[u]}
        assert mine == ref and got_valid[u] != got_test[u]


def test_random_loo_is_uniform() -> None:
    # 4000 users with the same 4 items: each item is the test item about 1/4 of the time.
    n = 4000
    users = np.repeat(np.arange(n), 4)
    items = np.tile(np.arange(4), n)
    ds = from_interactions(users, items, None, seed=0, n_candidates=0)
    freq = np.bincount(ds.item_ids[ds.test_items], minlength=4) / n
    assert np.all(np.abs(freq - 0.25) < 0.03), freq
    pairs = np.bincount(ds.item_ids[ds.valid_items] * 4 + ds.item_ids[ds.test_items], minlength=16) / n
    assert np.all(pairs[[0, 5, 10, 15]] == 0) and np.all(
        np.abs(np.delete(pairs, [0, 5, 10, 15]) - 1 / 12) < 0.02
    )


def test_string_ids_and_k_core() -> None:
    rng = np.random.default_rng(5)
    u = rng.integers(0, 30, 500)
    i = rng.integers(0, 40, 500) ** 2 % 37  # skewed item popularity
    users = np.array([f"user{x}" for x in u])
    items = np.array([f"it{x}" for x in i])
    ds = from_interactions(users, items, np.arange(500), k_core=8, n_candidates=3)
    # Reference k-core on distinct pairs: repeatedly drop users and items with < 8 pairs.
    pairs = set(zip(users.tolist(), items.tolist()))
    while True:
        uc, ic = defaultdict(int), defaultdict(int)
        for a, b in pairs:
            uc[a] += 1
            ic[b] += 1
        kept = {(a, b) for a, b in pairs if uc[a] >= 8 and ic[b] >= 8}
        if kept == pairs:
            break
        pairs = kept
    train, valid, test = raw_split(ds)
    assert train | set(valid.items()) | set(test.items()) == pairs
    assert ds.info["users_dropped"]["k_core"] == len(set(users)) - len({a for a, _ in pairs})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(min_user_interactions=50), "filter min_user_interactions=50 left no interactions"),
        (dict(k_core=40), "filter k_core=40 left no interactions"),
        (dict(min_rating=9.0, ratings=np.ones(6)), "filter min_rating=9.0 left no interactions"),
        (dict(min_rating=3.0), "min_rating needs ratings"),
        (dict(min_user_interactions=0), "min_user_interactions must be >= 1"),
    ],
)
def test_filters_that_leave_nothing_name_the_filter(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        from_interactions([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], **kwargs, n_candidates=0)


def test_leave_one_out_leaving_nothing_and_bad_arrays() -> None:
    with pytest.raises(ValueError, match="leave-one-out"):
        from_interactions([0, 0, 1], [0, 1, 0], n_candidates=0)
    with pytest.raises(ValueError, match="equal length"):
        from_interactions([0, 0], [1])
    with pytest.raises(ValueError, match="timestamps must have shape"):
        from_interactions([0, 0], [1, 2], [1])
    with pytest.raises(ValueError, match="no interactions"):
        from_interactions([], [])


def test_min_rating_binarises() -> None:
    users = [0] * 5
    items = [1, 2, 3, 4, 5]
    ds = from_interactions(
        users, items, [1, 2, 3, 4, 5], ratings=[5, 1, 4, 4, 5], min_rating=4, n_candidates=0
    )
    assert raw_split(ds) == ({(0, 1), (0, 3)}, {0: 4}, {0: 5})
    assert ds.info["rows_dropped"]["min_rating"] == 1


# ---------------------------------------------------------------- candidates


def check_candidates(pos: sp.csr_matrix, cand: np.ndarray, k: int) -> None:
    assert cand.shape == (pos.shape[0], k) and cand.dtype == np.int32
    assert cand.min() >= 0 and cand.max() < pos.shape[1]
    dense = pos.toarray()
    for u in range(pos.shape[0]):  # slow reference, tiny data
        assert len(set(cand[u].tolist())) == k
        assert not dense[u, cand[u]].any()


@pytest.mark.parametrize(
    "n_items, k, density", [(600, 499, 0.1), (520, 499, 0.02), (60, 10, 0.5), (50, 30, 0.1)]
)
def test_candidates_exclude_positives_and_are_unique(n_items: int, k: int, density: float) -> None:
    rng = np.random.default_rng(n_items)
    pos = sp.random(50, n_items, density=density, format="csr", random_state=rng, dtype=np.float64) != 0
    pos = sp.csr_matrix(pos)
    pos.sort_indices()
    cand = sample_candidates(pos, k, seed=3)
    check_candidates(pos, cand, k)
    np.testing.assert_array_equal(cand, sample_candidates(pos, k, seed=3))
    assert not np.array_equal(cand, sample_candidates(pos, k, seed=4))


@pytest.mark.parametrize("n_items, n_pos, k, path", [(12, 5, 3, "exact"), (200, 50, 20, "oversample")])
def test_candidates_are_uniform(n_items: int, n_pos: int, k: int, path: str, monkeypatch) -> None:
    import recdistill.data.split as split

    # Users who all saw items 0..n_pos-1: each other item is a candidate w.p. k / (n_items - n_pos).
    def forbidden(*a, **kw):
        raise AssertionError("wrong sampling path")

    monkeypatch.setattr(split, "_exact_rows" if path == "oversample" else "_draw_chunk", forbidden)
    n = 3000
    rows, cols = np.repeat(np.arange(n), n_pos), np.tile(np.arange(n_pos), n)
    pos = sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(n, n_items))
    cand = split.sample_candidates(pos, k, seed=0)
    freq = np.bincount(cand.ravel(), minlength=n_items) / n
    p = k / (n_items - n_pos)
    sd = np.sqrt(p * (1 - p) / n)
    assert np.all(freq[:n_pos] == 0) and np.all(np.abs(freq[n_pos:] - p) < 4.5 * sd), freq
    # Sum of squared z-scores over the m negatives: expectation m (each count ~ Binomial(n, p)).
    m = n_items - n_pos
    chi2 = (((freq[n_pos:] - p) * n) ** 2 / (n * p * (1 - p))).sum()
    assert abs(chi2 - m) < 6 * np.sqrt(2 * m), (chi2, m)


def test_candidates_exact_fallback_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import recdistill.data.split as split

    # Force the oversampling rounds to fail so every row goes through the exact path.
    monkeypatch.setattr(split, "_draw_chunk", lambda rows, *a, **k: np.zeros(len(rows), dtype=bool))
    rng = np.random.default_rng(0)
    pos = sp.csr_matrix(rng.random((20, 30)) < 0.3)
    cand = split.sample_candidates(pos, 8, seed=1)
    check_candidates(pos, cand, 8)


def test_candidates_short_user_is_an_error() -> None:
    pos = sp.csr_matrix(np.array([[1, 0, 0, 0], [1, 1, 1, 0]], dtype=bool))
    with pytest.raises(ValueError, match=r"n_candidates=2: user 1 \(raw id .b.\) has only 1 items"):
        sample_candidates(pos, 2, seed=0, user_ids=np.array(["a", "b"]))
    assert sample_candidates(pos, 0, seed=0).shape == (2, 0)


def test_dataset_candidates_exclude_train_valid_and_test() -> None:
    users, items, times = random_log(11, n_rows=3000, n_users=30, n_items=700)
    ds = from_interactions(users, items, times, n_candidates=499, seed=2)
    pos = positives_csr(ds.train, ds.valid_items, ds.test_items)
    assert pos.nnz == ds.train.nnz + 2 * ds.n_users
    check_candidates(pos, ds.candidates, 499)
