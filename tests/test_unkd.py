"""UnKD against its code written as plain loops: the popularity groups (``splitGroup``), the pairs
per group, the teacher's lists per group, the law of the drawn pairs (chi-square), the loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from contract import build, dataset, first_batch
from recdistill.distill.unkd import group_pair_counts, popularity_groups


def _split_group(pop: np.ndarray, n_groups: int) -> list[list[int]]:
    """``dataloader.py`` ``splitGroup``, line by line (items in our tie order)."""
    order = [int(i) for i in np.argsort(-pop, kind="stable") if pop[i] > 0]
    aver = pop.sum() / n_groups
    groups: list[list[int]] = []
    temp: list[int] = []
    count = 0
    for i in order:
        temp.append(i)
        count += pop[i]
        if count > aver:
            if len(temp) == 1:
                groups.append(temp)
                temp, count = [], 0
                continue
            temp.remove(i)
            groups.append(temp)
            temp, count = [i], pop[i]
    if temp:
        if count > aver / 2 or not groups:
            groups.append(temp)
        else:
            groups[-1].extend(temp)
    return groups


@pytest.mark.parametrize("n_groups", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_match_the_code(n_groups: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pop = rng.zipf(1.6, size=60).clip(max=400) * (rng.random(60) < 0.9)  # some items unseen
    got = popularity_groups(pop, n_groups)
    want = _split_group(pop, n_groups)
    assert [sorted(np.flatnonzero(got == g).tolist()) for g in range(got.max() + 1)] == [
        sorted(g) for g in want
    ]
    assert (got[pop == 0] == -1).all()


def _pairs_reference(mean_pop: list[float], n: int, lam: float) -> list[int]:
    """``splitGroup``'s ratios, then ``get_rank_negItems`` / ``KD_sampling``'s counts."""
    r = [max(mean_pop) + min(mean_pop) - p for p in mean_pop]
    tot = sum(r)
    r = [max(round(x / tot, 2), 0.1) for x in r]
    r = [math.pow(x, lam) for x in r]
    tot = sum(r)
    r = [x / tot for x in r]
    all_n = sum(round(x * n) for x in r)
    return [round(x * n) + (1 if all_n < n and g < n - all_n else 0) for g, x in enumerate(r)]


@pytest.mark.parametrize(
    ("mean_pop", "n", "lam"),
    [
        ([30.0, 3.0], 30, 0.0),
        ([50.0, 9.0, 2.0, 1.0], 30, 1.0),
        ([8.0, 1.5], 2, 0.5),
        ([40.0, 10.0, 5.0], 7, 2.0),
    ],
)
def test_pairs_per_group_match_the_code(mean_pop: list[float], n: int, lam: float) -> None:
    assert group_pair_counts(np.array(mean_pop), n, lam).tolist() == _pairs_reference(mean_pop, n, lam)


def test_teacher_lists_per_group_match_brute_force() -> None:
    ds = dataset()
    d = build("unkd", ds, spread=True)
    scores = d.teacher.score_all(torch.arange(ds.n_users)).numpy()
    for g in range(len(d.lists)):
        items = np.flatnonzero(d.group == g)
        for u in range(ds.n_users):
            unobserved = [i for i in items if i not in set(ds.train[u].indices.tolist())]
            want = sorted(unobserved, key=lambda i: (-scores[u, i], i))[: d.config.list_len]
            n = int(d.lengths[g][u])
            assert d.lists[g][u, :n].tolist() == want and (d.lists[g][u, n:] == -1).all()


def test_pairs_follow_the_codes_law() -> None:
    """Each pair: two positions drawn with P(r) ∝ exp(-(r+1)/T), drawn again while tied, the
    teacher's higher one first: P(a, b) = 2 w_a w_b / (1 - Σ w²) for a < b."""
    ds = dataset()
    d = build("unkd", ds, spread=True)
    g, u = 0, int(torch.argmax((d.lengths[0] >= 2).int() * d.lengths[0]))
    n = int(d.lengths[g][u])
    lst = d.lists[g][u, :n].tolist()
    counts: dict[tuple[int, int], int] = {}
    offset = 0  # the group's first column in pos / neg
    for e in range(300):
        d.on_epoch_start(e)
        for p, q in zip(
            d.pos[u, offset : offset + d.pairs[0]].tolist(), d.neg[u, offset : offset + d.pairs[0]].tolist()
        ):
            a, b = lst.index(p), lst.index(q)
            assert a < b
            counts[(a, b)] = counts.get((a, b), 0) + 1
    w = np.exp(-(np.arange(n) + 1.0) / d.config.rank_temperature)
    w /= w.sum()
    cells = [(a, b) for a in range(n) for b in range(a + 1, n)]
    expected = np.array([2 * w[a] * w[b] / (1 - (w**2).sum()) for a, b in cells]) * sum(counts.values())
    observed = np.array([counts.get(c, 0) for c in cells])
    keep = expected >= 5
    obs, exp = observed[keep], expected[keep]
    assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-3


def test_every_groups_pairs_come_from_its_own_list() -> None:
    ds = dataset()
    d = build("unkd", ds, spread=True)
    d.on_epoch_start(0)
    offsets = np.concatenate([[0], np.cumsum(d.pairs)])
    assert d.pos.shape[1] == offsets[-1] and len(d.pairs) >= 2
    for g in range(len(d.pairs)):
        for u in range(ds.n_users):
            lst = d.lists[g][u, : int(d.lengths[g][u])].tolist()
            for c in range(offsets[g], offsets[g + 1]):
                if d.valid[u, c]:
                    a, b = lst.index(int(d.pos[u, c])), lst.index(int(d.neg[u, c]))
                    assert a < b


def test_the_loss_matches_the_code() -> None:
    ds = dataset()
    d = build("unkd", ds, spread=True)
    d.on_epoch_start(0)
    batch = first_batch(ds)
    got = d.kd_terms("student", batch, 0)["UnKD"]
    rows = []
    for u in batch.users.tolist():
        uu = torch.tensor([u])
        terms = []
        for p, q, ok in zip(d.pos[u].tolist(), d.neg[u].tolist(), d.valid[u].tolist()):
            if ok:
                with torch.no_grad():
                    s = d.student.score(uu, torch.tensor([[p, q]]))[0].double()
                terms.append(-math.log(1 / (1 + math.exp(-(s[0] - s[1]).item())) + 1e-10))
        rows.append(np.mean(terms) if terms else 0.0)
    assert got.item() == pytest.approx(float(np.mean(rows)), rel=1e-5)
