"""BD analyses (Eq. 1, Eq. 6, Figs. 1 and 4) against slow, obvious references on tiny data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_toy_dataset
from recdistill.analysis import (
    average_rank_difference,
    heldout_ranks,
    high_ranked_pairs,
    rank_difference,
    student_better_share,
)
from recdistill.analysis.plots import plot_rank_difference, plot_rank_scatter


def _table_fn(table: np.ndarray):
    t = torch.from_numpy(table)
    return lambda users: t[users]


def _brute_rank(row: np.ndarray, observed: set[int], item: int) -> float:
    """1 + #candidates scoring higher + half the tied candidates (item itself excluded); the
    candidates are the items outside ``observed``."""
    r = 1.0
    for j in range(len(row)):
        if j in observed or j == item:
            continue
        if row[j] > row[item]:
            r += 1
        elif row[j] == row[item]:
            r += 0.5
    return r


@pytest.mark.parametrize("split", ["valid", "test"])
def test_heldout_ranks_match_brute_force_with_ties(split):
    ds = make_toy_dataset(n_users=23, n_items=31, seed=3)
    rng = np.random.default_rng(0)
    table = rng.integers(0, 6, size=(ds.n_users, ds.n_items)).astype(np.float64)  # many ties
    users, ranks = heldout_ranks(_table_fn(table), ds, split, chunk=7)
    held = ds.heldout(split)
    other = ds.heldout("test" if split == "valid" else "valid")
    assert np.array_equal(users, np.arange(ds.n_users))
    for u in range(ds.n_users):
        observed = set(ds.train[u].indices.tolist()) | {int(other[u])}  # full protocol candidates
        assert ranks[u] == _brute_rank(table[u], observed, held[u])


def test_heldout_ranks_skip_users_without_heldout_and_check_shape():
    ds = make_toy_dataset(n_users=10, n_items=30, seed=1)
    ds.test_items[[2, 5]] = -1
    table = np.random.default_rng(1).standard_normal((10, 30))
    users, ranks = heldout_ranks(_table_fn(table), ds, "test")
    assert users.tolist() == [0, 1, 3, 4, 6, 7, 8, 9]
    assert ranks.min() >= 1 and ranks.max() <= 30


def test_rank_difference_share_and_eq6():
    rank_t = np.array([1.0, 10.0, 5.0, 7.5])
    rank_s = np.array([3.0, 2.0, 5.0, 1.0])
    diff = rank_difference(rank_t, rank_s)
    assert diff.tolist() == [-2.0, 8.0, 0.0, 6.5]
    assert student_better_share(diff) == 0.5  # ties are not "better"
    # Eq. 6 by hand: (2 + 8 + 0 + 6.5) / (n m)
    assert average_rank_difference(diff, n_users=4, n_items=10) == pytest.approx(16.5 / 40)
    with pytest.raises(ValueError, match="equal length"):
        rank_difference(rank_t, rank_s[:3])
    with pytest.raises(ValueError, match="start at 1"):
        rank_difference(np.array([0.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="positive"):
        average_rank_difference(diff, 0, 10)


def test_high_ranked_pairs_ranks_and_determinism():
    ds = make_toy_dataset(n_users=12, n_items=25, seed=4)
    rng = np.random.default_rng(5)
    t_tab, s_tab = rng.standard_normal((2, ds.n_users, ds.n_items))
    pairs = high_ranked_pairs(_table_fn(t_tab), _table_fn(s_tab), ds, per_user=4, t_r=3.0, seed=7, chunk=5)
    assert len(pairs.rank_s) == len(pairs.rank_t) == 2 * 4 * ds.n_users
    again = high_ranked_pairs(_table_fn(t_tab), _table_fn(s_tab), ds, per_user=4, t_r=3.0, seed=7, chunk=5)
    assert np.array_equal(pairs.rank_s, again.rank_s) and np.array_equal(pairs.rank_t, again.rank_t)
    # each drawn item is unobserved and carries its brute-force teacher and student ranks
    for u, j, r_s, r_t in zip(pairs.users, pairs.items, pairs.rank_s, pairs.rank_t):
        obs = set(ds.train[u].indices.tolist())
        assert j not in obs
        unobs = [k for k in range(ds.n_items) if k not in obs]
        assert r_t == 1 + sum(t_tab[u, k] > t_tab[u, j] for k in unobs)
        assert r_s == 1 + sum(s_tab[u, k] > s_tab[u, j] for k in unobs)
    assert sorted(np.bincount(pairs.users).tolist()) == [8] * ds.n_users


def test_high_ranked_pairs_tiny_temperature_takes_each_lists_top_item():
    ds = make_toy_dataset(n_users=6, n_items=30, seed=6)
    rng = np.random.default_rng(8)
    t_tab, s_tab = rng.standard_normal((2, ds.n_users, ds.n_items))
    pairs = high_ranked_pairs(_table_fn(t_tab), _table_fn(s_tab), ds, per_user=3, t_r=1e-3, seed=0)
    assert np.all(pairs.rank_t[pairs.source == "teacher"] == 1)
    assert np.all(pairs.rank_s[pairs.source == "student"] == 1)
    with pytest.raises(ValueError, match="t_r"):
        high_ranked_pairs(_table_fn(t_tab), _table_fn(s_tab), ds, t_r=0)


def test_plots_write_png(tmp_path):
    diff = np.random.default_rng(0).normal(size=200)
    p1 = plot_rank_difference(diff, tmp_path / "a" / "diff.png", title="toy")
    ds = make_toy_dataset(n_users=8, n_items=20)
    tab = np.random.default_rng(1).standard_normal((8, 20))
    pairs = high_ranked_pairs(_table_fn(tab), _table_fn(-tab), ds, per_user=2)
    p2 = plot_rank_scatter(pairs, tmp_path / "scatter.png")
    for p in (p1, p2):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(x.name for x in tmp_path.rglob("*") if x.is_file()) == ["diff.png", "scatter.png"]
