"""Ranks from ranked lists (``ListRanks``): against a brute-force reference with the midrank of
the unlisted tail, equal to the engine's score ranks when the lists cover every unobserved entry,
and draws from them equal to draws from those scores."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recdistill.errors import RecdistillError
from recdistill.ranking import DrawSpec, ListRanks, RankEngine, make_weight, unobserved_ranks


def _problem(n: int = 17, m: int = 29, seed: int = 3) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
    """Observed set, and per row a list of distinct unobserved items of random length (some
    empty, one covering every unobserved item), padded with -1."""
    rng = np.random.default_rng(seed)
    obs = rng.random((n, m)) < 0.3
    obs[0] = False
    lists = np.full((n, m), -1, dtype=np.int64)
    for u in range(n):  # tiny data
        cand = np.flatnonzero(~obs[u])
        length = len(cand) if u == 1 else int(rng.integers(0, len(cand) + 1))
        lists[u, :length] = rng.permutation(cand)[:length]
    lists[2] = -1  # an empty list
    return obs, sp.csr_matrix(obs.astype(np.float32)), lists


def brute_list_ranks(obs: np.ndarray, lists: np.ndarray) -> np.ndarray:
    """Listed items 1..L in order; the other unobserved items the mean of positions L+1..n_u
    (floored); observed 0."""
    out = np.zeros(obs.shape, dtype=np.int64)
    for u in range(obs.shape[0]):
        listed = [int(j) for j in lists[u] if j >= 0]
        rest = [j for j in range(obs.shape[1]) if not obs[u, j] and j not in listed]
        positions = list(range(len(listed) + 1, len(listed) + len(rest) + 1))
        for pos, j in enumerate(listed):
            out[u, j] = pos + 1
        for j in rest:
            out[u, j] = int(np.floor(np.mean(positions)))
    return out


@pytest.mark.parametrize("chunk", [None, 1, 4])
def test_list_ranks_match_brute_force(chunk: int | None) -> None:
    obs, train, lists = _problem()
    got = RankEngine(train, chunk_size=chunk).ranks(ListRanks(lists), "user")
    np.testing.assert_array_equal(got.numpy(), brute_list_ranks(obs, lists))


def test_full_lists_give_the_scores_ranks_and_the_same_draws() -> None:
    obs, train, _ = _problem()
    rng = np.random.default_rng(0)
    scores = torch.from_numpy(rng.standard_normal(obs.shape).astype(np.float32))
    ranks = unobserved_ranks(scores, train)
    masked = torch.where(torch.from_numpy(obs), torch.inf, -scores)  # observed last
    full = torch.argsort(masked, dim=1, stable=True)  # (n, m) the scores' order
    full = torch.where(torch.arange(obs.shape[1])[None] < torch.from_numpy((~obs).sum(1))[:, None], full, -1)
    lr = ListRanks(full)
    eng = RankEngine(train)
    torch.testing.assert_close(eng.ranks(lr, "user"), ranks, rtol=0, atol=0)
    student = torch.from_numpy(rng.standard_normal(obs.shape).astype(np.float32))
    specs = {
        "under": DrawSpec(make_weight("dcd_under", mu=0.1), k=3, order="teacher"),
        "over": DrawSpec(make_weight("dcd_over", mu=0.1), k=3),
    }
    a = eng.refresh(lr, student, "user", specs, top_n=5, generator=7)
    b = eng.refresh(scores, student, "user", specs, top_n=5, generator=7)
    for name in specs:
        assert torch.equal(a.draws[name].index, b.draws[name].index), name
    assert a.top_t is not None and b.top_t is not None
    assert torch.equal(a.top_t, b.top_t)


def test_top_lists_are_the_lists_cut_or_padded() -> None:
    obs, train, lists = _problem()
    out = RankEngine(train).refresh(ListRanks(lists), side="user", top_n=lists.shape[1] + 3)
    assert out.top_t is not None
    want = np.concatenate([lists, np.full((lists.shape[0], 3), -1)], axis=1)
    np.testing.assert_array_equal(out.top_t.numpy(), want)


def test_bad_lists_and_uses_are_refused() -> None:
    obs, train, lists = _problem()
    with pytest.raises(RecdistillError, match="padding"):
        ListRanks(np.array([[1, -1, 2]]))
    with pytest.raises(RecdistillError, match="integer"):
        ListRanks(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(RecdistillError, match="row 1 lists 2 twice"):
        ListRanks(np.array([[0, 1, -1], [2, 3, 2]]))
    with pytest.raises(RecdistillError, match=">= 0"):
        ListRanks(np.array([[0, -2]]))
    with pytest.raises(RecdistillError, match=f"hold {lists.shape[0] - 1} rows, the user side has"):
        RankEngine(train).ranks(ListRanks(lists[1:]), "user")
    seen = lists.copy()
    u = 3
    seen[u, 0] = int(np.flatnonzero(obs[u])[0])  # an observed item in the list
    with pytest.raises(RecdistillError, match=f"row {u} lists its observed entry"):
        RankEngine(train).ranks(ListRanks(seen), "user")
    eng = RankEngine(train)
    with pytest.raises(RecdistillError, match="cannot rank the item side"):
        eng.ranks(ListRanks(lists), "item")
    with pytest.raises(RecdistillError, match="need scores"):
        eng.refresh(ListRanks(lists), side="user", score_stats=True)
