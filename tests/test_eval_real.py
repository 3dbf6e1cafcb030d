"""Evaluator on the real CiteULike split: a random MF model, checked user by user in float64."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from recdistill.eval import evaluate, heldout_ranks, metrics_from_ranks


@pytest.fixture(scope="module")
def citeulike(data_dir: Path):
    from recdistill.data import load_dataset

    return load_dataset("citeulike", data_dir)


def test_candidates_never_contain_a_positive(citeulike) -> None:
    ds = citeulike
    cands = np.asarray(ds.candidates, dtype=np.int64)  # (n_users, 499)
    assert cands.shape == (ds.n_users, 499)
    for u in range(ds.n_users):  # obvious reference: Python sets
        positives = set(ds.train.indices[ds.train.indptr[u] : ds.train.indptr[u + 1]].tolist())
        positives |= {int(ds.valid_items[u]), int(ds.test_items[u])}
        row = set(cands[u].tolist())
        assert len(row) == 499 and not row & positives, f"user {u}"


def _sorted_position(s: np.ndarray, items: np.ndarray, t: int) -> int:
    """1 + position of ``t`` when ``items`` are sorted by score, equal scores before ``t``."""
    order = np.lexsort((items == t, -s[items].astype(np.float64)))  # explicit sort, float64
    return int(np.flatnonzero(items[order] == t)[0]) + 1


def test_random_mf_matches_bruteforce_on_sampled_users(citeulike) -> None:
    # the first 800 users of the real split (all items), to keep the test quick
    n = 800
    full_ds = citeulike
    ds = dataclasses.replace(
        full_ds,
        n_users=n,
        train=full_ds.train[:n],
        valid_items=full_ds.valid_items[:n],
        test_items=full_ds.test_items[:n],
        candidates=full_ds.candidates[:n],
        user_ids=full_ds.user_ids[:n],
    )
    g = torch.Generator().manual_seed(0)
    U = torch.randn(ds.n_users, 16, generator=g)  # (n_users, 16)
    V = torch.randn(ds.n_items, 16, generator=g)  # (n_items, 16)
    V[::50] = 0.0  # ties: many items score exactly 0
    scores = lambda u: U[u] @ V.T  # noqa: E731  (B, n_items)
    pairs = lambda u, items: (U[u][:, None, :] * V[items]).sum(-1)  # noqa: E731  (B, k)
    full = heldout_ranks(scores, ds, "full", "test")
    sampled = heldout_ranks(None, ds, "sampled", "test", score_items_fn=pairs)
    rng = np.random.default_rng(0)
    for u in rng.choice(np.flatnonzero(ds.test_items >= 0), size=25, replace=False):
        s = scores(torch.tensor([u]))[0].numpy()  # (n_items,)
        t = int(ds.test_items[u])
        keep = np.ones(ds.n_items, dtype=bool)
        keep[ds.train[u].indices] = False
        keep[ds.valid_items[u]] = False  # the other held-out item; t itself stays in the list
        assert full[u] == _sorted_position(s, np.flatnonzero(keep), t), f"user {u}"
        c = np.append(ds.candidates[u].astype(np.int64), t)
        s_c = np.zeros(ds.n_items, dtype=np.float32)
        s_c[c] = pairs(torch.tensor([u]), torch.from_numpy(c)[None])[0].numpy()
        assert sampled[u] == _sorted_position(s_c, c, t), f"user {u}"
    m = evaluate(None, ds, "sampled", "test", ks=(10, 50), score_items_fn=pairs)
    assert m == pytest.approx(metrics_from_ranks(sampled, (10, 50)))
    assert m["n_users"] == int((ds.test_items >= 0).sum()) == int((full > 0).sum())
