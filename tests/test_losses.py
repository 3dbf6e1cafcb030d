"""Every loss against a loop transcription of its equation (float64) and gradcheck."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from recdistill import losses as L


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=torch.float64) * scale


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ---------------------------------------------------------------------------------- references
def ref_rd(s: torch.Tensor, w: torch.Tensor) -> list[float]:
    out = []
    for b in range(s.shape[0]):
        tot = 0.0
        for r in range(s.shape[1]):
            tot -= float(w[b, r]) * math.log(_sigmoid(float(s[b, r])))
        out.append(tot)
    return out


def ref_bce(s: torch.Tensor, t: torch.Tensor, tau: float, label_only: bool) -> list[float]:
    out = []
    for b in range(s.shape[0]):
        tot = 0.0
        for j in range(s.shape[1]):
            q = _sigmoid(float(t[b, j]) / tau)
            p = _sigmoid(float(s[b, j]) if label_only else float(s[b, j]) / tau)
            tot -= q * math.log(p) + (1 - q) * math.log(1 - p)
        out.append(tot)
    return out


def ref_rpl(z: torch.Tensor, r: torch.Tensor) -> list[float]:
    """-log Π_k exp z_k / (Σ_{l>=k} exp z_l + Σ_j exp r_j), written out term by term."""
    out = []
    for b in range(z.shape[0]):
        logp = 0.0
        K = z.shape[1]
        for k in range(K):
            denom = sum(math.exp(float(z[b, l])) for l in range(k, K))
            denom += sum(math.exp(float(r[b, j])) for j in range(r.shape[1]))
            logp += float(z[b, k]) - math.log(denom)
        out.append(-logp)
    return out


# -------------------------------------------------------------------------------------------- RD
def test_rd_matches_loop_and_reductions() -> None:
    s = _randn(4, 6, seed=1)
    w = torch.rand(4, 6, generator=_gen(2), dtype=torch.float64)
    ref = torch.tensor(ref_rd(s, w), dtype=torch.float64)
    torch.testing.assert_close(L.rd_loss(s, w, reduction="none"), ref)
    torch.testing.assert_close(L.rd_loss(s, w, reduction="sum"), ref.sum())
    torch.testing.assert_close(L.rd_loss(s, w, reduction="mean"), ref.mean())
    rw = torch.tensor([1.0, 0.0, 2.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(L.rd_loss(s, w, reduction="sum", row_weight=rw), (ref * rw).sum())


def test_rd_broadcast_weights_and_gradcheck() -> None:
    s = _randn(3, 5, seed=3).requires_grad_()
    w = torch.exp(-torch.arange(1, 6, dtype=torch.float64) / 2.0)
    w = w / w.sum()
    torch.testing.assert_close(L.rd_loss(s, w, "none"), L.rd_loss(s, w.expand(3, 5), "none"))
    assert torch.autograd.gradcheck(lambda x: L.rd_loss(x, w, "sum"), (s,))


# ------------------------------------------------------------------------------------- CD / BD
@pytest.mark.parametrize("tau", [1.0, 2.5])
@pytest.mark.parametrize("label_only", [False, True])
def test_soft_label_bce_matches_loop(tau: float, label_only: bool) -> None:
    s, t = _randn(3, 7, seed=4), _randn(3, 7, seed=5)
    ref = torch.tensor(ref_bce(s, t, tau, label_only), dtype=torch.float64)
    got = L.soft_label_bce(s, t, tau, label_only=label_only, reduction="none")
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(L.bd_loss(s, t, tau, label_only, reduction="mean"), ref.mean())
    if not label_only:
        torch.testing.assert_close(L.cd_loss(s, t, tau, reduction="sum"), ref.sum())


def test_soft_label_bce_no_grad_into_label_and_gradcheck() -> None:
    s = _randn(2, 4, seed=6).requires_grad_()
    t = _randn(2, 4, seed=7).requires_grad_()
    L.bd_loss(s, t, 2.0, reduction="sum").backward()
    assert t.grad is None and s.grad is not None
    t2 = t.detach()
    for label_only in (False, True):
        assert torch.autograd.gradcheck(lambda x, lo=label_only: L.bd_loss(x, t2, 3.0, lo, "sum"), (s,))


def test_soft_label_bce_minimum_at_label_and_stable() -> None:
    # d/dx of the per-item loss is (σ(x/τ) - σ(t/τ))/τ: zero when student == teacher.
    t = _randn(2, 5, seed=8)
    s = t.clone().requires_grad_()
    L.cd_loss(s, t, 2.0, reduction="sum").backward()
    torch.testing.assert_close(s.grad, torch.zeros_like(s.grad))
    big = torch.tensor([[1e4, -1e4]], dtype=torch.float32)
    assert torch.isfinite(L.cd_loss(big, -big, 1.0)).all()


def test_soft_label_bce_mask_and_errors() -> None:
    s, t = _randn(2, 5, seed=9), _randn(2, 5, seed=10)
    mask = torch.tensor([[True, True, False, True, False], [True] * 5])
    got = L.soft_label_bce(s, t, 1.5, mask=mask, reduction="none")
    want0 = L.soft_label_bce(s[:1, mask[0]], t[:1, mask[0]], 1.5, reduction="none")
    torch.testing.assert_close(got[0], want0[0])
    with pytest.raises(ValueError, match="shapes differ"):
        L.cd_loss(s, t[:, :3])
    with pytest.raises(ValueError, match="tau must be > 0"):
        L.cd_loss(s, t, 0.0)
    with pytest.raises(ValueError, match="unknown reduction 'avg'"):
        L.cd_loss(s, t, 1.0, reduction="avg")


# ----------------------------------------------------------------------------- RRD / UCD / ICD
@pytest.mark.parametrize("K,Lr", [(1, 3), (5, 4), (6, 0)])
def test_relaxed_permutation_matches_loop(K: int, Lr: int) -> None:
    z, r = _randn(4, K, seed=11), _randn(4, Lr, seed=12)
    ref = torch.tensor(ref_rpl(z, r), dtype=torch.float64)
    torch.testing.assert_close(L.relaxed_permutation_loss(z, r, reduction="none"), ref)
    torch.testing.assert_close(L.rrd_loss(z, r), ref.sum())  # official RRD: summed over rows
    torch.testing.assert_close(L.ucd_loss(z, r), ref.mean())  # DCD: averaged
    torch.testing.assert_close(L.icd_loss(z, r, reduction="sum"), ref.sum())


def test_relaxed_permutation_is_plackett_luce_without_rest() -> None:
    # With π' empty the probabilities of all K! orders sum to 1 (ListMLE / Plackett-Luce).
    z = _randn(1, 4, seed=13)
    total = 0.0
    for perm in itertools.permutations(range(4)):
        total += math.exp(-float(L.relaxed_permutation_loss(z[:, list(perm)], z[:, :0], reduction="sum")))
    assert abs(total - 1.0) < 1e-12
    # The best order (sorted by the model's own scores) is the most probable one.
    order = torch.argsort(z[0], descending=True)
    best = L.relaxed_permutation_loss(z[:, order], z[:, :0], reduction="sum")
    worst = L.relaxed_permutation_loss(z[:, order.flip(0)], z[:, :0], reduction="sum")
    assert best < worst


def test_relaxed_permutation_masks_equal_compacted_lists() -> None:
    z, r = _randn(2, 6, seed=14), _randn(2, 5, seed=15)
    zm = torch.tensor([[True, False, True, True, False, True], [True] * 6])
    rm = torch.tensor([[False, True, True, False, True], [True, True, False, False, False]])
    got = L.relaxed_permutation_loss(z, r, zm, rm, reduction="none")
    for b in range(2):
        want = ref_rpl(z[b : b + 1, zm[b]], r[b : b + 1, rm[b]])[0]
        assert abs(float(got[b]) - want) < 1e-10
    # A fully padded row contributes 0 and stays finite with finite gradients.
    zz = z.clone().requires_grad_()
    out = L.relaxed_permutation_loss(zz, r, torch.zeros_like(zm), torch.zeros_like(rm), reduction="sum")
    out.backward()
    assert float(out.detach()) == 0.0 and torch.isfinite(zz.grad).all()


def test_relaxed_permutation_gradcheck_and_stability() -> None:
    z = _randn(3, 5, seed=16).requires_grad_()
    r = _randn(3, 4, seed=17).requires_grad_()
    zm = torch.tensor([[True] * 5, [True, True, False, True, True], [False] * 5])
    rm = torch.tensor([[True] * 4, [True, False, True, True], [True] * 4])
    assert torch.autograd.gradcheck(lambda a, b: L.relaxed_permutation_loss(a, b, reduction="sum"), (z, r))
    assert torch.autograd.gradcheck(
        lambda a, b: L.relaxed_permutation_loss(a, b, zm, rm, reduction="sum"), (z, r)
    )
    big = torch.tensor([[500.0, 100.0, -300.0]], dtype=torch.float32)
    out = L.relaxed_permutation_loss(big, big[:, :2] + 1000.0, reduction="sum")
    assert torch.isfinite(out)


def test_relaxed_permutation_fast_and_exact_paths_match_the_reference() -> None:
    # Spreads below the shift floor take the cumsum path, wider ones logcumsumexp; both must
    # equal the float64 loop, and float32 inputs must stay close to it.
    g = torch.Generator().manual_seed(3)
    for scale in (0.1, 5.0, 40.0, 150.0):
        z = torch.randn(6, 7, generator=g, dtype=torch.float64) * scale
        r = torch.randn(6, 3, generator=g, dtype=torch.float64) * scale
        ref = torch.tensor(ref_rpl(z, r), dtype=torch.float64)
        torch.testing.assert_close(L.relaxed_permutation_loss(z, r, reduction="none"), ref)
        got32 = L.relaxed_permutation_loss(z.float(), r.float(), reduction="none").double()
        torch.testing.assert_close(got32, ref, rtol=1e-4, atol=1e-3 * max(scale, 1.0))
    # Padding after the last valid entry, with a rest far below: finite loss and gradients.
    z = torch.tensor([[0.0, 3.0, 2.0]], requires_grad=True)
    r = torch.tensor([[-1000.0]], requires_grad=True)
    zm = torch.tensor([[True, False, False]])
    out = L.relaxed_permutation_loss(z, r, zm, reduction="sum")
    out.backward()
    assert abs(float(out.detach())) < 1e-6 and torch.isfinite(z.grad).all() and torch.isfinite(r.grad).all()


def test_relaxed_permutation_shape_errors() -> None:
    with pytest.raises(ValueError, match="2-D"):
        L.relaxed_permutation_loss(torch.zeros(3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="numbers of rows"):
        L.relaxed_permutation_loss(torch.zeros(3, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="ordered_logits/ordered_mask"):
        L.relaxed_permutation_loss(torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(3, 1, dtype=torch.bool))


def test_golden_values() -> None:
    """Stored values catch silent changes (torchdistill habit); inputs are fixed small tensors."""
    s = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0, -1.0], [2.0, -2.0, 0.5]], dtype=torch.float64)
    w = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    goldens = {
        "rd": (L.rd_loss(s, w, "sum"), sum(ref_rd(s, w.expand(2, 3)))),
        "cd": (L.cd_loss(s, t, 2.0, "sum"), sum(ref_bce(s, t, 2.0, False))),
        "rpl": (L.relaxed_permutation_loss(s, t, reduction="sum"), sum(ref_rpl(s, t))),
    }
    for name, (got, ref) in goldens.items():
        assert abs(float(got) - ref) < 1e-12, name
    # Checked by hand: row 1 = 2.1021 + 3.4718 + 0.4402, row 2 = 1.2254 + 2.3777 + 2.7803.
    assert abs(float(goldens["rpl"][0]) - 12.397303105772943) < 1e-9
