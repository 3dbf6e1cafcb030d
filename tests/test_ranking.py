"""Exact ranks of unobserved entries vs a brute-force Python sort (float64), both sides."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from recdistill.ranking import RankEngine, rank_rows, unobserved_ranks
from recdistill.ranking.engine import canonical_csr


def brute_ranks(scores: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per row: unobserved entries sorted by (-score, index) in float64; rank 1 = first, 0 = observed."""
    out = np.zeros(scores.shape, dtype=np.int64)
    for u in range(scores.shape[0]):
        cand = [j for j in range(scores.shape[1]) if not observed[u, j]]
        cand.sort(key=lambda j: (-float(scores[u, j]), j))
        for pos, j in enumerate(cand):
            out[u, j] = pos + 1
    return out


def tied_problem(n: int = 23, m: int = 31, seed: int = 0) -> tuple[torch.Tensor, sp.csr_matrix]:
    """Scores with many ties (few distinct values, +-0.0, +-inf) and a random observed set."""
    rng = np.random.default_rng(seed)
    s = rng.integers(-3, 4, size=(n, m)).astype(np.float32) / 2  # many ties
    s[rng.random((n, m)) < 0.05] = -0.0
    s[rng.random((n, m)) < 0.03] = -np.inf
    s[rng.random((n, m)) < 0.03] = np.inf
    obs = rng.random((n, m)) < 0.25
    obs[0] = False  # a row with nothing observed
    obs[1, : m - 1] = True  # a row with a single unobserved entry
    return torch.from_numpy(s), sp.csr_matrix(obs.astype(np.float32))


class TinyMF(nn.Module):
    """Matrix factorisation with ``score_all`` and, optionally, ``score_items``."""

    def __init__(self, n: int, m: int, dim: int, seed: int, items_side: bool = True) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.p = nn.Parameter(torch.randn(n, dim, generator=g))
        self.q = nn.Parameter(torch.randn(m, dim, generator=g))
        if items_side:
            self.score_items = lambda items: self.q[items] @ self.p.T  # (C, n)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.p[users] @ self.q.T  # (B, m)


@pytest.mark.parametrize("side", ["user", "item"])
@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_ranks_match_brute_force_with_ties(side: str, chunk: int | None) -> None:
    s, train = tied_problem()
    obs = train.toarray() > 0
    got = unobserved_ranks(s, train, side=side, chunk_size=chunk)
    ref = brute_ranks(s.double().numpy(), obs) if side == "user" else brute_ranks(s.double().numpy().T, obs.T)
    assert got.dtype == torch.int32
    np.testing.assert_array_equal(got.numpy(), ref)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_rank_rows_backends_match_brute_force(backend: str) -> None:
    """Both key/sort paths (NumPy workers on CPU; torch, as on CUDA), unsorted observed coords."""
    s, train = tied_problem(seed=7)
    coo = train.tocoo()
    perm = np.random.default_rng(0).permutation(coo.nnz)
    r, c = torch.from_numpy(coo.row[perm]).long(), torch.from_numpy(coo.col[perm]).long()
    ranks, _ = rank_rows(s, r, c, backend=backend)
    np.testing.assert_array_equal(ranks.numpy(), brute_ranks(s.double().numpy(), train.toarray() > 0))


def test_ranks_threads_and_blocks_do_not_change_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import recdistill.ranking.order as order

    monkeypatch.setattr(order, "_BLOCK_BYTES", 8 * 3000 * 4)  # 4-row sort blocks
    rng = np.random.default_rng(1)
    n, m = 70, 3000  # several sort blocks per chunk
    s = torch.from_numpy(rng.integers(0, 50, size=(n, m)).astype(np.float32))
    train = sp.random(n, m, density=0.05, random_state=1, format="csr")
    a = RankEngine(train, num_threads=1).ranks(s)
    b = RankEngine(train, num_threads=3, chunk_size=17).ranks(s)
    assert torch.equal(a, b)
    np.testing.assert_array_equal(a[:5].numpy(), brute_ranks(s[:5].double().numpy(), train[:5].toarray() > 0))


@pytest.mark.parametrize("side", ["user", "item"])
def test_sources_agree_and_subsets(side: str) -> None:
    """Tensor, callable, module with/without score_items: same ranks; a subset of rows in any order."""
    n, m = 19, 26
    train = sp.random(n, m, density=0.2, random_state=3, format="csr")
    mf = TinyMF(n, m, 4, seed=0)
    plain = TinyMF(n, m, 4, seed=0, items_side=False)
    full = mf.score_all(torch.arange(n)).detach()  # (n, m)
    rows = [5, 0, 3, 3] if side == "user" else [25, 2, 7]
    ref = unobserved_ranks(full, train, side=side)
    for src in (mf, plain, lambda u: full[u]):
        got = unobserved_ranks(src, train, rows, side=side, chunk_size=2)
        assert torch.equal(got, ref[rows])
    eng = RankEngine(train, chunk_size=3)
    # the score_all-only item-side fallback with a column block smaller than all items
    from recdistill.ranking.scoring import iter_scores

    cpu = torch.device("cpu")
    blocks = list(iter_scores(plain, "item", torch.arange(m), 3, n, m, cpu, fallback_bytes=4 * n * 5))
    assert torch.allclose(torch.cat(blocks), full.T)
    assert torch.equal(eng.ranks(plain, side), ref)
    small = RankEngine(train, chunk_size=3, item_fallback_bytes=4 * n * 5)  # 2 chunks per pass
    assert torch.equal(small.ranks(plain, side), ref)
    assert torch.equal(small.ranks(plain, side, rows), ref[rows])


def test_recommender_in_eval_mode_and_restored() -> None:
    from recdistill.models import MODELS

    data = sp.random(12, 15, density=0.3, random_state=0, format="csr")
    model = MODELS.get("cdae")(n_users=12, n_items=15, train=data) if "cdae" in MODELS else None
    if model is None:
        pytest.skip("no CDAE model registered")
    model.train()
    a = unobserved_ranks(model, data)
    b = unobserved_ranks(model, data)
    assert torch.equal(a, b)  # dropout off while ranking
    assert model.training


def test_observed_never_ranked_and_rank_range() -> None:
    s, train = tied_problem(seed=5)
    r = unobserved_ranks(s, train).numpy()
    obs = train.toarray() > 0
    assert (r[obs] == 0).all()
    for u in range(r.shape[0]):  # each row's ranks are a permutation of 1..|I_u^-|
        np.testing.assert_array_equal(np.sort(r[u][~obs[u]]), np.arange(1, (~obs[u]).sum() + 1))


def test_top_n_lists() -> None:
    s, train = tied_problem(seed=2)
    obs = train.toarray() > 0
    ref = brute_ranks(s.double().numpy(), obs)
    rows = torch.arange(s.shape[0])
    sm_r, sm_c = np.nonzero(obs)
    ranks, top = rank_rows(s, torch.from_numpy(sm_r).long(), torch.from_numpy(sm_c).long(), top_n=40)
    assert top.shape == (len(rows), 40) and top.dtype == torch.int32
    for u in range(len(rows)):
        want = list(np.argsort(np.where(ref[u] > 0, ref[u], 10**9))[: (ref[u] > 0).sum()][:40])
        got = top[u].tolist()
        assert got[: len(want)] == want
        assert all(v == -1 for v in got[len(want) :])


def test_bad_input_errors() -> None:
    s, train = tied_problem()
    bad = s.clone()
    bad[3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        unobserved_ranks(bad, train)
    with pytest.raises(ValueError, match="out of range"):
        unobserved_ranks(s, train, [0, 99])
    with pytest.raises(ValueError, match="side"):
        unobserved_ranks(s, train, side="items")
    with pytest.raises(ValueError, match="expected shape"):
        unobserved_ranks(lambda u: s[u, :5], train)
    with pytest.raises(ValueError, match="scipy sparse"):
        unobserved_ranks(s, train.toarray())


def test_canonical_csr_drops_zeros_and_duplicates() -> None:
    m = sp.csr_matrix(
        (np.array([1.0, 0.0, 1.0, 1.0]), (np.array([0, 0, 1, 1]), np.array([2, 1, 0, 0]))), shape=(2, 3)
    )
    c = canonical_csr(m)
    assert c.nnz == 2 and c.has_sorted_indices
    np.testing.assert_array_equal(c.indices, [2, 0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    s, train = tied_problem(n=300, m=500, seed=4)
    for side in ("user", "item"):
        a = unobserved_ranks(s, train, side=side)
        b = unobserved_ranks(s.cuda(), train, side=side, device="cuda")
        assert torch.equal(a, b.cpu())
