"""The ratio split (issue #36): RCE-KD's per-user cut rule against a loop reference, seeded and
ordered as asked; the citeulike-rou preset against RCE-KD's published counts; the dataset cache;
a run trained and evaluated on it end to end (R@K / N@K / P@K, full ranking only)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from recdistill.config import make_config
from recdistill.data.catalog import load_dataset
from recdistill.data.preprocess import from_interactions
from recdistill.data.split import ratio_split
from recdistill.errors import RecdistillError


def _reference(users: np.ndarray, keys: np.ndarray, ratios: tuple[int, int, int]) -> np.ndarray:
    """RCE-KD's preprocess_citeulike.py loop as written: per user in key order,
    l = max(floor(c1 n / C), 1), r = floor(c2 n / C), train [:l], valid [l:r] if l < r, test [r:]
    if r < n (users of 2+ rows: for one row their loop puts it in train and test; ours: train)."""
    out = np.empty(len(users), np.int8)
    c = np.cumsum(ratios)
    for u in np.unique(users):
        rows = np.flatnonzero(users == u)
        rows = rows[np.argsort(keys[rows], kind="stable")]
        n = len(rows)
        lo = max(math.floor(c[0] * n / c[-1]), 1)
        hi = math.floor(c[1] * n / c[-1])
        out[rows[:lo]] = 0
        if lo < hi:
            out[rows[lo:hi]] = 1
        if hi < n:
            out[rows[max(hi, lo) :]] = 2
    return out


@pytest.mark.parametrize("ratios", [(8, 1, 1), (7, 1, 2), (3, 0, 1)])
def test_the_cut_rule_matches_the_reference(ratios: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(40), rng.integers(2, 25, size=40))
    rng.shuffle(users)
    times = rng.integers(0, 5, size=len(users))  # ties broken by file order
    got = ratio_split(users, ratios, "time", times, seed=0)
    want = _reference(users, np.lexsort((np.arange(len(users)), times)).argsort(), ratios)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        ratio_split(users, ratios, "file", None, 0), _reference(users, np.arange(len(users)), ratios)
    )
    a, b, c = (ratio_split(users, ratios, "random", None, s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)  # one seed, one split
    assert not np.array_equal(a, c)
    for part in (0, 1, 2):  # the counts per user depend on the sizes only, not on the order
        np.testing.assert_array_equal(
            np.bincount(users[a == part], minlength=40), np.bincount(users[got == part], minlength=40)
        )


def test_bad_settings_are_one_line() -> None:
    with pytest.raises(RecdistillError, match="ratios: expected three whole numbers"):
        ratio_split(np.zeros(3, np.int64), (0, 1, 1), "random", None, 0)
    with pytest.raises(RecdistillError, match="order=time needs timestamps"):
        ratio_split(np.zeros(3, np.int64), (8, 1, 1), "time", None, 0)
    with pytest.raises(RecdistillError, match="data.split: expected loo|ratio"):
        make_config(overrides={"data": {"split": "80/20"}})
    with pytest.raises(RecdistillError, match="holds no validation items"):
        make_config(overrides={"data": {"split": "ratio", "ratios": [3, 0, 1]}})
    one = ratio_split(np.zeros(1, np.int64), (8, 1, 1), "file", None, 0)
    assert one.tolist() == [0]  # a one-row user: train only (RCE-KD's loop: train and test)


def _ratio_log(path: Path) -> Path:
    rng = np.random.default_rng(3)
    lines = ["user,item"]
    for u in range(50):
        for i in rng.choice(60, size=int(rng.integers(5, 15)), replace=False):
            lines.append(f"u{u},i{i}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_ratio_dataset_caches_and_trains_end_to_end(tmp_path: Path) -> None:
    from recdistill.runs import train_run

    log = _ratio_log(tmp_path / "log.csv")
    opts = dict(split="ratio", ratios=(8, 1, 1), cache_dir=tmp_path / "cache")
    ds = load_dataset(log, **opts)
    again = load_dataset(log, **opts)  # from the cache
    assert "cache" in again.info
    for split in ("valid", "test"):
        assert (ds.heldout_sets(split) != again.heldout_sets(split)).nnz == 0
    train, valid, test = ds.train, ds.heldout_sets("valid"), ds.heldout_sets("test")
    assert train.multiply(valid).nnz == train.multiply(test).nnz == valid.multiply(test).nnz == 0
    assert train.nnz + valid.nnz + test.nnz == len(log.read_text().splitlines()) - 1
    with pytest.raises(RecdistillError, match="ratio split"):
        ds.heldout("test")
    cfg = make_config(
        overrides={
            "data": {"name": str(log), "split": "ratio"},
            "model": {"name": "bpr", "size": None, "dim": 4},
            "train": {"epochs": 2, "lr": 0.01, "progress": False, "ks": [5, 20]},
        }
    )
    assert cfg.resolved_monitor() == "R@20"
    _, metrics = train_run(cfg, tmp_path / "run", dataset=ds, log=lambda s: None)
    test_m = metrics["models"]["model"]["test"]
    assert set(test_m) == {"full"}  # no sampled protocol on a ratio split
    assert {"R@20", "N@20", "P@20", "H@20", "M@20"} <= set(test_m["full"])


def test_citeulike_rou_has_rcekd_counts(data_dir: Path) -> None:
    """RCE-KD's data/citeulike/README: 5,219 users, 25,181 items, 125,580 interactions, 98,405 /
    12,451 / 14,724 train / valid / test (the counts per user follow from the sizes, so any order
    gives them); in the file's order, as their code: each user's test items are its highest ids."""
    ds = load_dataset("citeulike-rou", data_dir=data_dir, cache=False)
    assert (ds.n_users, ds.n_items) == (5219, 25181)
    assert (ds.train.nnz, ds.heldout_sets("valid").nnz, ds.heldout_sets("test").nnz) == (98405, 12451, 14724)
    raw = ds.item_ids.astype(np.int64)  # the raw ids, the file's order within a user
    tr, te = ds.train.tocsr(), ds.heldout_sets("test").tocsr()
    for u in range(0, ds.n_users, 97):
        assert raw[tr[u].indices].max() < raw[te[u].indices].min()
    other = from_interactions(
        np.repeat(np.arange(3), 10), np.tile(np.arange(10), 3), split="ratio", seed=1, name="x"
    )
    assert other.train.nnz == 24 and other.heldout_sets("test").nnz == 3
