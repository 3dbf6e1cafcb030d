"""The negative sampler never returns a training positive, is uniform over I_u^-, and seeded."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from conftest import make_toy_dataset
from recdistill.data.pairs import csr_pairs, csr_positions
from recdistill.ranking.negatives import NegativeSampler


def test_never_returns_a_positive_and_covers_all_negatives():
    ds = make_toy_dataset(n_users=25, n_items=40, density=0.6, n_candidates=2, seed=2)  # many rejections
    s = NegativeSampler(ds.train)
    users = torch.arange(25).repeat_interleave(400)  # (10000,)
    items = s.sample(users, 3, torch.Generator().manual_seed(0))  # (10000, 3)
    dense = ds.train.toarray() > 0
    assert items.shape == (10000, 3) and items.dtype == torch.int64
    assert not dense[users[:, None].numpy(), items.numpy()].any()
    for u in range(25):  # every unobserved item is drawn (uniform, 1200 draws over <= 40 items)
        drawn = set(items[users == u].flatten().tolist())
        assert drawn == set(np.flatnonzero(~dense[u]).tolist())


def test_uniform_over_unobserved_items():
    train = sp.csr_matrix(np.array([[1, 0, 0, 1, 0, 0]], dtype=np.float32))
    s = NegativeSampler(train)
    items = s.sample(torch.zeros(40000, dtype=torch.int64), 1, torch.Generator().manual_seed(1))
    counts = np.bincount(items.numpy().ravel(), minlength=6)
    assert counts[0] == counts[3] == 0
    freq = counts[[1, 2, 4, 5]] / 40000
    assert np.abs(freq - 0.25).max() < 0.01  # 4 sigma is about 0.0087


def test_seeded_and_is_observed():
    ds = make_toy_dataset()
    s = NegativeSampler(ds.train)
    u = torch.arange(30)
    a = s.sample(u, 5, torch.Generator().manual_seed(7))
    b = s.sample(u, 5, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    users, items = csr_pairs(ds.train)
    assert s.is_observed(torch.from_numpy(users), torch.from_numpy(items)).all()


def test_user_with_every_item_is_an_error():
    train = sp.csr_matrix(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="user 0 has observed all 3 items"):
        NegativeSampler(train)


def test_csr_positions_against_a_loop():
    ds = make_toy_dataset(n_users=30, n_items=40, density=0.1, seed=4)
    m = ds.train.tocsr()
    rows = torch.tensor([7, 0, 7, 29, 3, 12])  # a repeated row
    local, pos = csr_positions(torch.from_numpy(m.indptr.astype(np.int64)), rows)
    want_local, want_pos = [], []
    for r, u in enumerate(rows.tolist()):
        for p in range(m.indptr[u], m.indptr[u + 1]):
            want_local.append(r)
            want_pos.append(p)
    assert local.tolist() == want_local and pos.tolist() == want_pos
    assert local.dtype == pos.dtype == torch.int64
    assert csr_positions(torch.from_numpy(m.indptr.astype(np.int64)), rows[:0])[0].numel() == 0
    local, pos = csr_positions(torch.tensor([0, 2, 2, 5]), torch.tensor([1, 2, 0]))  # row 1 is empty
    assert local.tolist() == [1, 1, 1, 2, 2] and pos.tolist() == [2, 3, 4, 0, 1]
