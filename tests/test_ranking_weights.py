"""Each weight function against its formula, written out per entry in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recdistill.ranking import WEIGHTS, RankChunk, make_weight, product


def random_chunk(b: int = 6, m: int = 50, seed: int = 0) -> RankChunk:
    """Two random rank permutations per row over the unobserved entries (0 = observed)."""
    rng = np.random.default_rng(seed)
    rt = np.zeros((b, m), dtype=np.int32)
    rs = np.zeros((b, m), dtype=np.int32)
    for u in range(b):
        unobs = np.flatnonzero(rng.random(m) > 0.3)
        rt[u, unobs] = rng.permutation(len(unobs)) + 1
        rs[u, unobs] = rng.permutation(len(unobs)) + 1
    return RankChunk(torch.arange(b), torch.from_numpy(rt), torch.from_numpy(rs))


def per_entry(c: RankChunk, f) -> np.ndarray:
    rt, rs = c.rank_t.numpy(), c.rank_s.numpy()
    out = np.zeros(rt.shape)
    for u in range(rt.shape[0]):
        for i in range(rt.shape[1]):
            if rt[u, i] > 0:
                out[u, i] = f(float(rt[u, i]), float(rs[u, i]))
    return out


def row_normalised(w: np.ndarray) -> np.ndarray:
    return w / w.sum(axis=1, keepdims=True)


TANH = {  # name, params, formula(rank_T, rank_S)
    "bd_t2s": ({"eps": 1e-2}, lambda t, s: math.tanh(max((s - t) * 1e-2, 0.0))),
    "bd_s2t_swapped": ({"eps": 1e-2}, lambda t, s: math.tanh(max((t - s) * 1e-2, 0.0))),
    "dcd_under": ({"mu": 3e-2}, lambda t, s: math.tanh(max(3e-2 * (s - t), 0.0))),
    "dcd_over": ({"mu": 3e-2}, lambda t, s: math.tanh(max(3e-2 * (t - s), 0.0))),
    "top_n": ({"n": 7}, lambda t, s: 1.0 if t <= 7 else 0.0),
    "uniform": ({}, lambda t, s: 1.0),
}
EXP = {  # compared after row normalisation (only ratios matter)
    "bd_s2t": ({"eps": 5e-2}, lambda t, s: math.exp((t - s) * 5e-2)),
    "bd_t2s_swapped": ({"eps": 5e-2}, lambda t, s: math.exp((s - t) * 5e-2)),
    "rank_aware": ({"temperature": 4.0}, lambda t, s: math.exp(-t / 4.0)),
}


@pytest.mark.parametrize("name", sorted(TANH))
def test_absolute_weights(name: str) -> None:
    params, f = TANH[name]
    c = random_chunk()
    got = make_weight(name, **params)(c)
    assert got.dtype == torch.float32 and got.shape == c.rank_t.shape
    np.testing.assert_allclose(got.double().numpy(), per_entry(c, f), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(EXP))
def test_relative_weights(name: str) -> None:
    params, f = EXP[name]
    c = random_chunk()
    got = make_weight(name, **params)(c).double().numpy()
    assert (got[c.rank_t.numpy() == 0] == 0).all()
    np.testing.assert_allclose(row_normalised(got), row_normalised(per_entry(c, f)), rtol=1e-4, atol=1e-9)


def test_exp_does_not_overflow() -> None:
    """BD Eq. 5 with a large ε: exp(50000) overflows float32 and float64; max-subtraction does not."""
    c = random_chunk(m=3000, seed=1)
    w = make_weight("bd_s2t", eps=100.0)(c)
    assert torch.isfinite(w).all() and (w.amax(1) == 1).all()


def test_by_student_invert_and_product() -> None:
    c = random_chunk(seed=2)
    got = make_weight("top_n", n=5, by="s")(c).numpy()
    np.testing.assert_allclose(got, per_entry(c, lambda t, s: s <= 5))
    got = make_weight("top_n", n=5, invert=True)(c).numpy()
    np.testing.assert_allclose(got, per_entry(c, lambda t, s: t > 5))
    f = product(make_weight("rank_aware", temperature=10.0), make_weight("top_n", n=9))
    want = per_entry(c, lambda t, s: math.exp(-(t - 1) / 10.0) * (t <= 9))
    np.testing.assert_allclose(f(c).numpy(), want, rtol=1e-6)


def test_registry_and_errors() -> None:
    assert {"bd_t2s", "bd_s2t", "dcd_under", "dcd_over", "rank_aware", "top_n", "uniform"} <= set(WEIGHTS)
    with pytest.raises(KeyError, match="unknown weight function 'bd_t2'"):
        make_weight("bd_t2")
    with pytest.raises(ValueError, match="eps"):
        make_weight("bd_t2s", eps=0.0)
    with pytest.raises(ValueError, match="n="):
        make_weight("top_n", n=0)
    c = RankChunk(torch.arange(2), torch.ones(2, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="student"):
        make_weight("dcd_over")(c)


def test_zero_on_observed_claims_hold() -> None:
    """A weight function flagged ``zero_on_observed`` (the engine then skips masking its
    weights) gives exactly 0 on every observed entry; the flag sits where it is true."""
    from recdistill.ranking.weights import ZERO_ON_OBSERVED

    flagged = []
    for name, (params, _) in {**TANH, **EXP}.items():
        base = name.removesuffix("_swapped")
        fn = make_weight(base, **params)
        if getattr(fn, ZERO_ON_OBSERVED, False):
            flagged.append(base)
            for seed in range(3):
                c = random_chunk(seed=seed)
                assert bool((fn(c)[c.rank_t == 0] == 0).all()), base
    assert {"dcd_under", "dcd_over", "bd_t2s"} <= set(flagged)
    assert "uniform" not in flagged and "top_n" not in flagged  # these do weigh observed entries


def test_masked_cdf_draws_equal_masking() -> None:
    """``masked=True`` (copy instead of mask) gives bitwise the same draws, with and without
    replacement, including rows that fall back (fewer positive weights than draws)."""
    from recdistill.ranking import row_cdf, sample_without_replacement
    from recdistill.ranking.sampling import draw_from_cdf

    c = random_chunk(b=8, m=60, seed=4)
    w = make_weight("dcd_under", mu=0.05)(c)
    w[0] = 0.0  # a row with no positive weight: the uniform fallback
    w[1, w[1] > 0] = torch.where(torch.arange(int((w[1] > 0).sum())) < 2, 1.0, 0.0)  # 2 positive < k
    avail = c.unobserved
    ref = sample_without_replacement(w, 5, torch.Generator().manual_seed(3), avail)
    got = sample_without_replacement(w, 5, torch.Generator().manual_seed(3), avail, masked=True)
    assert torch.equal(got, ref)
    counts = torch.full((8,), 7)
    a = draw_from_cdf(row_cdf(w, avail), counts, torch.Generator().manual_seed(1))
    b = draw_from_cdf(row_cdf(w, avail, masked=True), counts, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert bool(avail.gather(1, ref).all())  # never an observed entry
