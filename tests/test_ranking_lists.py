"""Draws from fixed teacher lists (CD, RRD) and uniform draws outside a pair set, against exact
probabilities and loop references on tiny cases."""

from __future__ import annotations

import math

import torch

from recdistill.data.pairs import PairSet
from recdistill.ranking import TopLists, make_weight, sample_without_replacement_partial, uniform_excluding


def test_list_draws_follow_successive_sampling_in_list_order() -> None:
    # one list per row: items 10..14, positions 1..5; weight exp(-(r-1)/T) with T = 1/log 2 halves per step
    n = 20000
    lists = torch.tensor([[10, 11, 12, 13, 14]]).expand(n, 5)
    tl = TopLists(lists, 20, PairSet(torch.empty(0), torch.empty(0), 20))
    items, valid = tl.draw(
        make_weight("rank_aware", temperature=1 / math.log(2)), 2, torch.Generator().manual_seed(0)
    )
    assert valid.all() and (items[:, 0] < items[:, 1]).all()  # list order kept
    w = torch.tensor([1.0, 0.5, 0.25, 0.125, 0.0625], dtype=torch.float64)
    p = w / w.sum()
    p01 = p[0] * p[1] / (1 - p[0]) + p[1] * p[0] / (1 - p[1])  # P({first, second}) by successive sampling
    freq = ((items[:, 0] == 10) & (items[:, 1] == 11)).double().mean()
    assert abs(float(freq - p01)) < 4 * math.sqrt(float(p01 * (1 - p01)) / n)


def test_short_lists_are_marked_invalid() -> None:
    lists = torch.tensor([[3, 1, -1, -1], [0, 2, 4, 1]])
    tl = TopLists(lists, 5, PairSet(torch.empty(0), torch.empty(0), 5))
    items, valid = tl.draw(make_weight("uniform"), 3, torch.Generator().manual_seed(1))
    assert valid.tolist() == [[True, True, False], [True, True, True]]
    assert items[0, :2].tolist() == [3, 1]  # all of the short list, in list order
    idx, ok = sample_without_replacement_partial(torch.tensor([[1.0, 0.0, 2.0]]), 3, torch.Generator())
    assert ok.tolist() == [[True, True, False]] and sorted(idx[0, :2].tolist()) == [0, 2]


def test_uniform_excluding_never_returns_excluded() -> None:
    rows = torch.arange(4)
    ex_r = torch.tensor([0, 0, 1, 1, 1, 3])
    ex_c = torch.tensor([0, 1, 2, 3, 4, 0])
    excl = PairSet(ex_r, ex_c, 6)
    cols, valid = uniform_excluding(rows, 6, 500, excl, torch.Generator().manual_seed(0))
    assert valid.all()
    for r in range(4):  # loop reference on a tiny case
        banned = {int(c) for rr, c in zip(ex_r, ex_c) if int(rr) == r}
        assert banned.isdisjoint(set(cols[r].tolist()))
        assert set(cols[r].tolist()) == set(range(6)) - banned  # every allowed column appears
    full = PairSet(torch.zeros(6, dtype=torch.long), torch.arange(6), 6)
    _, valid = uniform_excluding(torch.tensor([0]), 6, 3, full, torch.Generator(), max_rounds=3)
    assert not valid.any()


def test_rest_excludes_observed_and_list_pairs() -> None:
    obs = PairSet(torch.tensor([0, 1]), torch.tensor([5, 0]), 8)
    lists = torch.tensor([[1, 2, -1], [3, 4, 5]])
    tl = TopLists(lists, 8, obs)
    cols, valid = tl.rest(400, torch.Generator().manual_seed(2))
    assert valid.all()
    assert set(cols[0].tolist()) == {0, 3, 4, 6, 7}
    assert set(cols[1].tolist()) == {1, 2, 6, 7}


def test_pairset_contains_tensors_and_arrays() -> None:
    import numpy as np

    ps = PairSet(np.array([0, 2, 2]), np.array([1, 0, 3]), 4)
    assert ps.contains(torch.tensor([0, 2, 1]), torch.tensor([1, 3, 1])).tolist() == [True, True, False]
    got = ps.contains(np.array([[0], [2]]), np.array([[0, 1, 3]]))  # broadcast
    assert isinstance(got, np.ndarray) and got.tolist() == [[False, True, False], [True, False, True]]
