"""RCE-KD against the code it comes from, written as plain loops in float64: the draw's weights,
the candidate set C_u, the two cross-entropies and the adaptive weight; a gradcheck; the draw
is distinct positions of the student's top-mxK with the weights' law (chi-square)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from contract import build, dataset, first_batch
from recdistill.distill.rcekd import rce_loss, rce_weights


def test_weights_match_the_code_loop() -> None:
    """pg:45-48: c_j = number of teacher top-K items at student positions >= j, capped at K."""
    g = torch.Generator().manual_seed(0)
    in_q = torch.rand(6, 12, generator=g) < 0.4
    got = rce_weights(in_q, k=3, temperature=10.0)
    for u in range(6):
        for j in range(12):
            c = min(int(in_q[u, j:].sum()), 3)
            assert got[u, j].item() == pytest.approx(math.exp((c + 1) / 10.0))


def _reference_row(
    s: dict[int, float],
    t: dict[int, float],
    s_top: list[int],
    i_set: list[int],
    q: list[int],
    beta: float,
    tau: float,
) -> float:
    """pg:61-95 for one row, as the code writes it (exp without a max shift), float64."""

    def ce(items: list[int]) -> float:
        zt = sum(math.exp(t[i] / tau) for i in items)
        zs = sum(math.exp(s[i] / tau) for i in items)
        return -sum(math.exp(t[i] / tau) / zt * (s[i] / tau - math.log(zs)) for i in items)

    cand = list(i_set) + [i for i in q if i not in i_set and i not in s_top]  # C_u (I_u kept whole)
    w = math.exp(-beta * len(set(q) & set(i_set)) / len(q))
    return (1 - w) * ce(list(s_top)) + w * ce(cand)


def test_the_lists_are_the_models_top_k_over_every_item() -> None:
    """Q_u: the teacher's top-K over all items, training items included (the code); S_u: the
    head of the student's top-mxK; I_u: items of the student's top-mxK."""
    ds = dataset()
    d = build("rcekd", ds, spread=True)
    d.on_epoch_start(0)
    with torch.no_grad():
        t = d.teacher.score_all(torch.arange(ds.n_users)).numpy()
        s = d.student.score_all(torch.arange(ds.n_users)).numpy()
    k = d.config.k
    for u in range(ds.n_users):
        assert d.q[u].tolist() == np.argsort(-t[u], kind="stable")[:k].tolist()
        top = np.argsort(-s[u], kind="stable")[: d.config.mx_k]
        assert d.s_top[u].tolist() == top[:k].tolist()
        assert set(d.i_set[u].tolist()) <= set(top.tolist())
    assert any(set(d.q[u].tolist()) & set(ds.train[u].indices.tolist()) for u in range(ds.n_users))


def test_a_teacher_without_some_scores_gives_no_nan() -> None:
    """A sparse score file scores some pairs -inf: those entries are left out, a row with none
    scored counts 0 (the code's 0/0 would be NaN)."""
    s = torch.zeros(2, 3)
    t = torch.tensor([[0.0, 1.0, -torch.inf], [-torch.inf, -torch.inf, -torch.inf]])
    keep = torch.ones(2, 3, dtype=torch.bool)
    out = rce_loss(s, t, s, t, keep, torch.zeros(2), 3.0, 1.0)
    assert torch.isfinite(out).all() and out[1] == 0


def test_the_loss_of_a_batch_matches_the_code_per_row() -> None:
    ds = dataset()
    d = build("rcekd", ds, spread=True)
    d.on_epoch_start(0)
    batch = first_batch(ds)
    got = d.kd_terms("student", batch, 0)["RCE"]
    rows = []
    for u in batch.users.tolist():
        s_top, i_set, q = (x[u].tolist() for x in (d.s_top, d.i_set, d.q))
        items = sorted(set(s_top) | set(i_set) | set(q))
        uu = torch.tensor([u])
        it = torch.tensor([items])
        with torch.no_grad():
            s = dict(zip(items, d.student.score(uu, it)[0].double().tolist()))
            t = dict(zip(items, d.teacher.score(uu, it)[0].double().tolist()))
        rows.append(_reference_row(s, t, s_top, i_set, q, d.config.beta, d.config.tau))
    assert got.item() == pytest.approx(float(np.mean(rows)), rel=1e-5)  # the mean over every row


def test_gradcheck() -> None:
    g = torch.Generator().manual_seed(1)
    s_top, t_top = (
        torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True),
        torch.randn(3, 4, generator=g, dtype=torch.float64),
    )
    s_c, t_c = (
        torch.randn(3, 6, generator=g, dtype=torch.float64, requires_grad=True),
        torch.randn(3, 6, generator=g, dtype=torch.float64),
    )
    keep = torch.rand(3, 6, generator=g) < 0.7
    keep[:, 0] = True
    overlap = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a, b: rce_loss(a, t_top, b, t_c, keep, overlap, 3.0, 1.0), (s_top, s_c)
    )


def test_draws_are_distinct_positions_with_the_weights_law() -> None:
    """I_u: L distinct items of the student's top-mxK; the first draw's position follows the
    weights (chi-square over the epochs of one user)."""
    ds = dataset()
    d = build("rcekd", ds, spread=True)
    firsts = []
    for e in range(400):
        d.on_epoch_start(e)
        for u in range(ds.n_users):
            assert len(set(d.i_set[u].tolist())) == d.config.l
        # the student does not train here: its top-mxK and the weights stay the same
        firsts.append(d.i_set[0, 0].item())
    top_mx = d._top(d.student.score_all, d.config.mx_k)[0]
    in_q = torch.isin(top_mx, d.q[0])[None]
    w = rce_weights(in_q, d.config.k, d.config.temperature)[0].numpy()
    counts = np.array([firsts.count(int(i)) for i in top_mx])
    expected = w / w.sum() * len(firsts)
    assert stats.chisquare(counts, expected).pvalue > 1e-3
