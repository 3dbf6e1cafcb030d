"""Draws against their weights (chi-square, fixed seeds), fallbacks, and the engine's refresh."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import chisquare

import recdistill.ranking.engine as engine_mod
import recdistill.ranking.sampling as sampling_mod
from recdistill.errors import RecdistillError
from recdistill.ranking import (
    DrawSpec,
    RankEngine,
    TeacherRanks,
    make_weight,
    product,
    sample_with_replacement,
    sample_without_replacement,
    top_m,
    unobserved_ranks,
)

P_MIN = 1e-3  # fixed seeds: these p-values are deterministic


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def check_counts(counts: np.ndarray, probs: np.ndarray) -> None:
    """Zero-probability cells never hit; chi-square of the rest against ``probs``."""
    assert counts[probs == 0].sum() == 0
    keep = probs > 0
    res = chisquare(counts[keep], counts.sum() * probs[keep] / probs[keep].sum())
    assert res.pvalue > P_MIN, res


WEIGHTS = torch.tensor(
    [
        [0.0, 1.0, 2.0, 0.5, 0.0, 3.0, 0.25, 1.0],
        [5.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 2.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ]
)  # last: all zero -> uniform
AVAIL = torch.tensor(
    [
        [True, True, True, True, True, False, True, True],
        [True, True, True, True, True, True, True, True],
        [False, True, True, False, True, True, True, True],
    ]
)


def expected_probs() -> np.ndarray:
    w = torch.where(AVAIL, WEIGHTS, 0.0).double().numpy()
    w[2] = AVAIL[2].double().numpy()
    return w / w.sum(1, keepdims=True)


def test_with_replacement_matches_weights() -> None:
    idx = sample_with_replacement(WEIGHTS, 20000, gen(1), AVAIL)  # (3, 20000)
    assert idx.shape == (3, 20000) and idx.dtype == torch.int64
    p = expected_probs()
    for r in range(3):
        check_counts(np.bincount(idx[r].numpy(), minlength=8), p[r])


def test_with_replacement_ragged_counts() -> None:
    counts = torch.tensor([3000, 0, 9000])
    idx = sample_with_replacement(WEIGHTS, counts, gen(2), AVAIL)  # (12000,)
    assert idx.shape == (12000,)
    p = expected_probs()
    check_counts(np.bincount(idx[:3000].numpy(), minlength=8), p[0])
    check_counts(np.bincount(idx[3000:].numpy(), minlength=8), p[2])


def test_with_replacement_many_blocks_and_zeros() -> None:
    """Rows longer than one CDF block, with zero blocks, zeros at block edges, a tiny weight."""
    rng = np.random.default_rng(5)
    m = 330
    w = rng.random((2, m)) * (rng.random((2, m)) < 0.6)
    w[:, 64:192] = 0.0  # two whole zero blocks
    w[:, [63, 192, 255, 256, 329]] = 0.0  # block edges and the last entry
    w[1, 10] = 1e-6 * w[1].sum()  # tiny but positive
    wt = torch.from_numpy(w.astype(np.float32))
    idx = sample_with_replacement(wt, 200000, gen(6))  # (2, 200000)
    p = wt.double().numpy()
    for r in range(2):
        check_counts(np.bincount(idx[r].numpy(), minlength=m), p[r] / p[r].sum())
    big = sample_with_replacement(wt, torch.tensor([3 * 10**5] * 2), gen(7))  # no zero ever drawn
    assert (wt[torch.arange(2).repeat_interleave(3 * 10**5), big] > 0).all()


def plackett_luce_pairs(w: np.ndarray) -> dict[tuple[int, int], float]:
    p = w / w.sum()
    return {
        (i, j): p[i] * p[j] / (1 - p[i])
        for i, j in itertools.permutations(range(len(w)), 2)
        if p[i] > 0 and p[j] > 0
    }


def test_without_replacement_is_plackett_luce() -> None:
    w = torch.tensor([0.5, 3.0, 0.0, 1.0, 2.0, 0.25])
    n = 30000
    idx = sample_without_replacement(w.expand(n, -1).contiguous(), 2, gen(3))  # (n, 2)
    assert (idx[:, 0] != idx[:, 1]).all() and not (idx == 2).any()
    pairs = plackett_luce_pairs(w.double().numpy())
    keys = list(pairs)
    pos = {k: i for i, k in enumerate(keys)}
    counts = np.bincount([pos[(a, b)] for a, b in idx.tolist()], minlength=len(keys))
    check_counts(counts, np.array([pairs[k] for k in keys]))


def plackett_luce_triples(w: np.ndarray) -> dict[tuple[int, int, int], float]:
    p = w / w.sum()
    return {
        (i, j, l): p[i] * p[j] / (1 - p[i]) * p[l] / (1 - p[i] - p[j])
        for i, j, l in itertools.permutations(range(len(w)), 3)
        if p[i] > 0 and p[j] > 0 and p[l] > 0
    }


@pytest.mark.parametrize("oversample", [1, 2])
def test_without_replacement_mixed_rows_are_plackett_luce(
    oversample: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ordered triples against the exact Plackett-Luce law, for rows drawn by successive sampling
    (skewed: many rows finish with the race, more so with ``oversample`` 1) interleaved with rows
    of fewer than k positive weights (races and the uniform tier), in one call."""
    monkeypatch.setattr(sampling_mod, "_OVERSAMPLE", oversample)
    a = torch.tensor([8.0, 1.0, 2.0, 0.0, 4.0, 0.5])  # 5 positive >= k = 3
    b = torch.tensor([0.0, 4.0, 0.0, 0.0, 0.0, 0.0])  # 1 positive < k
    n = 20000
    w = torch.stack([a, b]).repeat(n, 1)  # (2n, 6): a, b, a, b, ...
    idx = sample_without_replacement(w, 3, gen(5))  # (2n, 3)
    ia, ib = idx[0::2], idx[1::2]
    triples = plackett_luce_triples(a.double().numpy())
    keys = list(triples)
    pos = {t: i for i, t in enumerate(keys)}
    assert all(tuple(t) in pos for t in ia.tolist())  # distinct, positive weights only
    counts = np.bincount([pos[tuple(t)] for t in ia.tolist()], minlength=len(keys))
    check_counts(counts, np.array([triples[t] for t in keys]))
    assert (ib[:, 0] == 1).all()
    pairs = [(x, y) for x, y in itertools.permutations([0, 2, 3, 4, 5], 2)]  # uniform tier
    pid = {t: i for i, t in enumerate(pairs)}
    rest = np.bincount([pid[(x, y)] for x, y in ib[:, 1:].tolist()], minlength=len(pairs))
    check_counts(rest, np.ones(len(pairs)))


def test_without_replacement_races_finish_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """With one draw per wanted entry, many rows of a skewed row finish with the race over the
    entries not yet taken (top-k runs), never with the short-row races (enough positive weights);
    every row stays distinct and within the positive weights."""
    calls = []
    real = torch.topk
    monkeypatch.setattr(sampling_mod, "_OVERSAMPLE", 1)
    monkeypatch.setattr(sampling_mod.torch, "topk", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(sampling_mod, "_races", lambda *a, **k: pytest.fail("short-row races called"))
    w = torch.tensor([[100.0, 1.0, 1.0, 1.0, 0.0]]).repeat(1000, 1)
    idx = sample_without_replacement(w, 4, gen(6))  # (1000, 4)
    assert calls and (idx.sort(1).values == torch.arange(4)).all()


def test_without_replacement_finishing_race_never_ties(monkeypatch: pytest.MonkeyPatch) -> None:
    """The finishing race's keys stay apart from the excluded entries: subnormal weights, and
    uniforms of exactly 0, never yield a duplicate, a zero-weight or an unavailable entry."""
    w = torch.tensor([[1.0, 1e-45, 0.5, 0.0, 0.0]]).repeat(5000, 1)
    avail = torch.tensor([[True, True, True, False, True]]).expand(5000, -1)
    for k in (2, 3):
        idx = sample_without_replacement(w, k, gen(7), avail)  # (5000, k)
        srt = idx.sort(1).values
        assert (srt[:, 1:] != srt[:, :-1]).all() and (idx < 3).all()  # distinct, positive weights
    real = sampling_mod._rand

    def zeros(shape: tuple[int, ...], *a: object) -> torch.Tensor:  # the race's uniforms all 0
        return torch.zeros(shape, dtype=torch.float64) if len(shape) == 2 else real(shape, *a)

    monkeypatch.setattr(sampling_mod, "_OVERSAMPLE", 1)
    monkeypatch.setattr(sampling_mod, "_rand", zeros)
    w = torch.tensor([[10.0, 10.0, 1.0, 0.0, 0.0]]).repeat(2000, 1)
    idx = sample_without_replacement(w, 3, gen(8))  # (2000, 3)
    assert (idx.sort(1).values == torch.arange(3)).all()


def test_without_replacement_across_blocks_and_huge_weights() -> None:
    """Plackett-Luce pairs over entries in three CDF blocks (m = 70); weights near the float32
    limit (block sums would overflow) drawn uniformly as their ratios say, with and without
    replacement; a row with no available entry is an error even for k = 1."""
    w = torch.zeros(70)
    w[[3, 35, 40, 69]] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    n = 30000
    idx = sample_without_replacement(w.expand(n, -1).contiguous(), 2, gen(9))  # (n, 2)
    pairs = plackett_luce_pairs(w.double().numpy())
    keys = list(pairs)
    pos = {t: i for i, t in enumerate(keys)}
    counts = np.bincount([pos[(a, b)] for a, b in idx.tolist()], minlength=len(keys))
    check_counts(counts, np.array([pairs[t] for t in keys]))
    huge = torch.full((20000, 40), 2e37)
    firsts = (
        sample_without_replacement(huge, 5, gen(10))[:, 0],
        sample_with_replacement(huge, 1, gen(11))[:, 0],
    )
    for got in firsts:
        check_counts(np.bincount(got.numpy(), minlength=40), np.ones(40))
    avail = torch.tensor([[True] * 5, [False] * 5])
    with pytest.raises(ValueError, match="row 1 of the block has fewer than k=1"):
        sample_without_replacement(torch.ones(2, 5), 1, gen(), avail)


def test_without_replacement_fallbacks() -> None:
    """Fewer positive weights than k: all positives first, then uniform among the other
    available entries; unavailable never drawn; a row with fewer than k available: error."""
    w = torch.tensor([[0.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0]]).expand(9000, -1).contiguous()
    avail = torch.tensor([[True, True, True, False, True, True, True]]).expand(9000, -1)
    idx = sample_without_replacement(w, 3, gen(4), avail)  # (9000, 3)
    assert (idx[:, 0] == 1).all()
    rest = np.bincount(idx[:, 1:].reshape(-1).numpy(), minlength=7)
    check_counts(rest, np.array([1, 0, 1, 0, 1, 1, 1], dtype=float))
    with pytest.raises(ValueError, match="fewer than k=7"):
        sample_without_replacement(w[:2], 7, gen(), avail[:2])
    rows = torch.ones(3, 7)  # rows 0 and 2 can give 6 distinct entries, row 1 only 5
    ok = torch.tensor([[True] * 7, [True] * 5 + [False] * 2, [True] * 7])
    with pytest.raises(ValueError, match="row 1 of the block has fewer than k=6"):
        sample_without_replacement(rows, 6, gen(), ok)


def test_top_m_ties_to_lower_index() -> None:
    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.integers(0, 3, size=(20, 15)).astype(np.float32))
    avail = torch.from_numpy(rng.random((20, 15)) > 0.2)
    got = top_m(w, 4, avail)
    for r in range(20):
        cand = sorted((j for j in range(15) if avail[r, j]), key=lambda j: (-float(w[r, j]), j))
        assert got[r].tolist() == cand[:4]


def test_bad_weights_and_empty_rows() -> None:
    with pytest.raises(ValueError, match=r"weights\[0, 1\]"):
        sample_with_replacement(torch.tensor([[1.0, -1.0]]), 2, gen())
    with pytest.raises(ValueError, match="finite"):
        sample_without_replacement(torch.tensor([[1.0, float("inf")]]), 1, gen())
    with pytest.raises(ValueError, match="no available"):
        sample_with_replacement(torch.ones(2, 3), 2, gen(), torch.tensor([[True] * 3, [False] * 3]))


# -- the engine ------------------------------------------------------------------------------


def problem(n: int = 40, m: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    t = torch.from_numpy(rng.normal(size=(n, m)).astype(np.float32))
    s = torch.from_numpy((t.numpy() + rng.normal(size=(n, m))).astype(np.float32))
    train = sp.random(n, m, density=0.15, random_state=seed, format="csr")
    return t, s, train


def specs() -> dict[str, DrawSpec]:
    return {
        "t2s": DrawSpec(
            make_weight("bd_t2s", eps=1e-2), k=3, replacement=True, per_interaction=True, rounds=2
        ),
        "s2t": DrawSpec(make_weight("bd_s2t", eps=1e-2), k=4, replacement=True),
        "under": DrawSpec(make_weight("dcd_under", mu=1e-2), k=5, order="teacher"),
        "over": DrawSpec(make_weight("dcd_over", mu=1e-2), k=5, deterministic=True, rounds=2),
    }


@pytest.mark.parametrize("side", ["user", "item"])
def test_refresh_layout_ranks_and_no_observed(side: str) -> None:
    t, s, train = problem()
    eng = RankEngine(train, chunk_size=7)
    out = eng.refresh(t, s, side, specs(), top_n=10, generator=5)
    rt = unobserved_ranks(t, train, side=side)
    rs = unobserved_ranks(s, train, side=side)
    sm = eng.side(side)
    n_rows = sm.n_rows
    row_of_nz = np.repeat(np.arange(n_rows), np.diff(sm.csr.indptr))
    for name, d in out.draws.items():
        spec = specs()[name]
        assert d.index.dtype == torch.int32
        assert d.index.shape == (spec.rounds, sm.nnz if spec.per_interaction else n_rows, spec.k)
        rows = torch.from_numpy(row_of_nz if spec.per_interaction else np.arange(n_rows)).long()
        for r in range(spec.rounds):
            idx = d.index[r].long()
            assert torch.equal(d.rank_t[r], rt[rows[:, None], idx])
            assert torch.equal(d.rank_s[r], rs[rows[:, None], idx])
            assert (d.rank_t[r] > 0).all()  # never an observed entry
    under = out.draws["under"]
    assert (under.rank_t[0].diff(dim=1) > 0).all()  # teacher order, distinct
    assert torch.equal(out.draws["over"].index[0], out.draws["over"].index[1])
    # top-N lists and the other model's ranks of them
    assert (torch.gather(rt, 1, out.top_t.long()) == torch.arange(1, 11)).all()
    assert torch.equal(out.top_t_rank_s, torch.gather(rs, 1, out.top_t.long()))
    assert torch.equal(out.top_s_rank_t, torch.gather(rt, 1, out.top_s.long()))


def test_refresh_deterministic_per_seed() -> None:
    t, s, train = problem(seed=1)
    a = RankEngine(train, chunk_size=9).refresh(t, s, "user", specs(), generator=11)
    b = RankEngine(train, chunk_size=9).refresh(t, s, "user", specs(), generator=gen(11))
    c = RankEngine(train, chunk_size=9).refresh(t, s, "user", specs(), generator=12)
    for name in specs():
        assert torch.equal(a.draws[name].index, b.draws[name].index)
    assert not torch.equal(a.draws["t2s"].index, c.draws["t2s"].index)


@pytest.mark.parametrize("side", ["user", "item"])
def test_cached_teacher_ranks_give_the_same_draws_and_skip_the_teacher(
    side: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DCD's refreshes with a frozen teacher: the first call stores its exact ranks, later calls
    score only the student and draw exactly what an uncached refresh draws."""
    t, s, train = problem(seed=2)
    cache = TeacherRanks()
    eng = RankEngine(train, chunk_size=7)
    scored: list[object] = []
    real = engine_mod.iter_scores
    monkeypatch.setattr(engine_mod, "iter_scores", lambda m, *a: (scored.append(m), real(m, *a))[1])
    students = [s, s + torch.from_numpy(np.random.default_rng(5).normal(size=s.shape).astype(np.float32))]
    for call, student in enumerate(students):
        scored.clear()
        a = eng.refresh(t, student, side, specs(), generator=20 + call, teacher_ranks=cache)
        seen = [m is t for m in scored]
        b = RankEngine(train, chunk_size=7).refresh(t, student, side, specs(), generator=20 + call)
        for name in specs():
            for field_ in ("index", "rank_t", "rank_s"):
                assert torch.equal(getattr(a.draws[name], field_), getattr(b.draws[name], field_))
        assert seen == ([True, False] if call == 0 else [False])
        assert torch.equal(cache.ranks[side], unobserved_ranks(t, train, side=side))
    assert cache.nbytes == 4 * t.numel()
    ref = RankEngine(train, chunk_size=7).refresh(t, s, side, specs(), top_n=3, generator=0)
    small = TeacherRanks(max_bytes=4 * t.numel() - 1)  # does not fit: never kept, same draws
    for _ in range(2):
        scored.clear()
        got = eng.refresh(t, s, side, specs(), generator=0, teacher_ranks=small)
        assert [m is t for m in scored] == [True, False]  # the teacher ranked every time
        assert all(torch.equal(got.draws[n].index, ref.draws[n].index) for n in specs())
    assert small.ranks == {} and small.nbytes == 0
    # top-N lists need the teacher's scores: with a filled cache the teacher is ranked as usual
    top = eng.refresh(t, s, side, specs(), top_n=3, generator=0, teacher_ranks=cache)
    for key in ("top_t", "top_s", "top_t_rank_s", "top_s_rank_t"):
        assert torch.equal(getattr(top, key), getattr(ref, key)), key
    with pytest.raises(RecdistillError, match="teacher_ranks hold rows"):  # another engine's layout
        RankEngine(train[:-1], chunk_size=7).refresh(
            t[:-1], s[:-1], side, specs(), generator=0, teacher_ranks=cache
        )


def test_per_interaction_distribution() -> None:
    """BD Eq. 4 draws of one user, pooled over its interactions and rounds, follow the weights."""
    n, m = 3, 12
    rng = np.random.default_rng(3)
    t = torch.from_numpy(rng.normal(size=(n, m)).astype(np.float32))
    s = -t  # opposite lists: large discrepancies
    train = sp.csr_matrix(
        np.array(
            [
                [1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
                [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            ],
            dtype=np.float32,
        )
    )
    wf = make_weight("bd_t2s", eps=0.1)
    spec = DrawSpec(wf, k=50, replacement=True, per_interaction=True, rounds=40)
    out = RankEngine(train).refresh(t, s, "user", {"d": spec}, generator=7)
    rt, rs = unobserved_ranks(t, train), unobserved_ranks(s, train)
    rt64, rs64 = rt.double().numpy(), rs.double().numpy()
    w = np.where(rt64 > 0, np.tanh(np.maximum((rs64 - rt64) * 0.1, 0)), 0)  # Eq. 4 in float64
    idx = out.draws["d"].index  # (40, 5, 50)
    user0 = idx[:, :3].reshape(-1).numpy()  # user 0 has interactions 0..2 in CSR order
    check_counts(np.bincount(user0, minlength=m), w[0] / w[0].sum())


def test_teacher_only_refresh_rrd_lists() -> None:
    """RRD with a fixed teacher: K items from the top-N by exp(-rank/T), in teacher order, and L
    uniform items ranked below N; one refresh draws several epochs (rounds)."""
    t, _, train = problem(n=30, m=80, seed=4)
    interesting = DrawSpec(
        product(make_weight("rank_aware", temperature=5.0), make_weight("top_n", n=20)),
        k=6,
        order="teacher",
        rounds=3,
    )
    rest = DrawSpec(make_weight("top_n", n=20, invert=True), k=6, rounds=3)
    specs_ = {"int": interesting, "rest": rest}
    out = RankEngine(train).refresh(t, None, "user", specs_, top_n=20, generator=0)
    a, b = out.draws["int"], out.draws["rest"]
    assert a.rank_s is None and out.top_s is None
    assert ((a.rank_t >= 1) & (a.rank_t <= 20)).all() and (a.rank_t.diff(dim=2) > 0).all()
    assert (b.rank_t > 20).all()
    assert not torch.equal(a.index[0], a.index[1])  # independent rounds
    with pytest.raises(ValueError, match="student.s ranks"):
        RankEngine(train).refresh(t, None, "user", {"s": DrawSpec(make_weight("dcd_over"), k=2)}, generator=0)


def test_refresh_errors() -> None:
    t, s, train = problem()
    eng = RankEngine(train)
    with pytest.raises(ValueError, match="generator"):
        eng.refresh(t, s, "user", specs())
    with pytest.raises(ValueError, match="per_interaction=True needs replacement"):
        DrawSpec(make_weight("uniform"), k=2, per_interaction=True)
    with pytest.raises(ValueError, match="k=0"):
        DrawSpec(make_weight("uniform"), k=0)
    neg = DrawSpec(lambda c: -c.rank_t.float(), k=2)
    with pytest.raises(ValueError, match="spec 'neg', user rows"):
        eng.refresh(t, s, "user", {"neg": neg}, generator=0)
    with pytest.raises(ValueError, match="fewer than k=60"):
        eng.refresh(t, s, "user", {"big": DrawSpec(make_weight("uniform"), k=60)}, generator=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_refresh_ranks_match_cpu() -> None:
    t, s, train = problem(n=200, m=300)
    sp_ = {"u": DrawSpec(make_weight("dcd_under"), k=5, keep_ranks=True, order="teacher")}
    a = RankEngine(train).refresh(t, s, "item", sp_, top_n=20, generator=0)
    b = RankEngine(train, device="cuda").refresh(
        t.cuda(), s.cuda(), "item", sp_, top_n=20, generator=torch.Generator("cuda").manual_seed(0)
    )
    assert torch.equal(a.top_t, b.top_t.cpu()) and torch.equal(a.top_t_rank_s, b.top_t_rank_s.cpu())
    assert (b.draws["u"].rank_t > 0).all()
