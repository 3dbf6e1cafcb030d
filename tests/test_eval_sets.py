"""Recall / NDCG / Precision with several held-out items per user, against slow references: ranks
by brute force (float64, every item compared), metrics from explicit top-K lists, and the
leave-one-out evaluator's H / N / M on a leave-one-out split."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from conftest import make_toy_dataset
from recdistill.data.dataset import Dataset
from recdistill.eval.evaluator import evaluate
from recdistill.eval.sets import heldout_set_ranks, metrics_from_set_ranks


def _ratio_dataset(seed: int = 0, n_users: int = 25, n_items: int = 30) -> Dataset:
    """Each user's items split 60/20/20 at random (at least one train and one test item)."""
    rng = np.random.default_rng(seed)
    parts: dict[str, tuple[list[int], list[int]]] = {"train": ([], []), "valid": ([], []), "test": ([], [])}
    for u in range(n_users):  # tiny data: a loop is the reference
        items = rng.choice(n_items, size=int(rng.integers(3, 12)), replace=False)
        n_tr, n_va = max(1, int(0.6 * len(items))), int(0.2 * len(items))
        for name, sel in (
            ("train", items[:n_tr]),
            ("valid", items[n_tr : n_tr + n_va]),
            ("test", items[n_tr + n_va :]),
        ):
            parts[name][0].extend([u] * len(sel))
            parts[name][1].extend(sel.tolist())

    def csr(name: str) -> sp.csr_matrix:
        r, c = parts[name]
        m = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n_users, n_items))
        m.sort_indices()
        return m

    return Dataset(
        "ratio-toy",
        n_users,
        n_items,
        csr("train"),
        np.full(n_users, -1, np.int64),
        np.full(n_users, -1, np.int64),
        np.zeros((n_users, 0), np.int32),
        np.arange(n_users),
        np.arange(n_items),
        valid_sets=csr("valid"),
        test_sets=csr("test"),
    )


def _brute_ranks(
    ds: Dataset, scores: np.ndarray, split: str, ties: str, exclude_valid: bool = True
) -> list[list[int]]:
    out = []
    for u in range(ds.n_users):
        ex = set(ds.train[u].indices.tolist())
        if split == "test" and exclude_valid:
            ex |= set(ds.heldout_sets("valid")[u].indices.tolist())
        ranked = [j for j in range(ds.n_items) if j not in ex]
        row = []
        held = sorted(ds.heldout_sets(split)[u].indices.tolist())
        for i in held:
            higher = sum(scores[u, j] > scores[u, i] for j in ranked)
            equal = sum(scores[u, j] == scores[u, i] for j in ranked if j != i)
            tied_before = sum(scores[u, j] == scores[u, i] for j in held if j < i)  # held-out, lower id
            row.append(1 + higher + (equal if ties == "pessimistic" else tied_before))
        out.append(row)
    return out


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
@pytest.mark.parametrize("split", ["valid", "test"])
def test_ranks_match_brute_force_with_ties(split: str, ties: str) -> None:
    ds = _ratio_dataset()
    scores = (
        np.random.default_rng(1).integers(0, 6, size=(ds.n_users, ds.n_items)).astype(np.float64)
    )  # many ties
    indptr, ranks = heldout_set_ranks(
        lambda u: torch.from_numpy(scores[u.numpy()]), ds, split, ties=ties, batch_size=4
    )
    want = _brute_ranks(ds, scores, split, ties)
    got = [ranks[indptr[u] : indptr[u + 1]].tolist() for u in range(ds.n_users)]
    assert got == want


def test_validation_items_may_compete_when_testing() -> None:
    """``exclude_valid=False``: the validation items stay in the test ranking (RCE-KD's code)."""
    ds = _ratio_dataset(seed=5)
    scores = np.random.default_rng(6).integers(0, 9, size=(ds.n_users, ds.n_items)).astype(np.float64)
    fn = lambda u: torch.from_numpy(scores[u.numpy()])  # noqa: E731
    indptr, ranks = heldout_set_ranks(fn, ds, "test", batch_size=6, exclude_valid=False)
    want = _brute_ranks(ds, scores, "test", "pessimistic", exclude_valid=False)
    assert [ranks[indptr[u] : indptr[u + 1]].tolist() for u in range(ds.n_users)] == want
    _, ex = heldout_set_ranks(fn, ds, "test", batch_size=6)
    assert (ranks >= ex).all() and (ranks > ex).any()  # the validation items can only push them down


@pytest.mark.parametrize("split", ["valid", "test"])  # valid: some users hold no item (skipped)
def test_metrics_match_explicit_top_k_lists(split: str) -> None:
    """Distinct scores: R, P, N, H, M from each user's top-K list, the textbook way."""
    ds = _ratio_dataset(seed=2)
    assert (np.diff(ds.heldout_sets("valid").indptr) == 0).any()
    scores = np.random.default_rng(3).standard_normal((ds.n_users, ds.n_items))
    ks = (1, 3, 5, 10)
    indptr, ranks = heldout_set_ranks(lambda u: torch.from_numpy(scores[u.numpy()]), ds, split, batch_size=7)
    got = metrics_from_set_ranks(indptr, ranks, ks)
    for k in ks:
        acc: dict[str, list[float]] = {m: [] for m in "RPNHM"}
        for u in range(ds.n_users):
            truth = set(ds.heldout_sets(split)[u].indices.tolist())
            if not truth:
                continue
            ex = set(ds.train[u].indices.tolist())
            if split == "test":
                ex |= set(ds.heldout_sets("valid")[u].indices.tolist())
            order = [j for j in np.argsort(-scores[u], kind="stable") if j not in ex][:k]
            hits = [j in truth for j in order]
            dcg = sum(1 / math.log2(p + 2) for p, h in enumerate(hits) if h)
            idcg = sum(1 / math.log2(p + 2) for p in range(min(k, len(truth))))
            acc["R"].append(sum(hits) / len(truth))
            acc["P"].append(sum(hits) / k)
            acc["N"].append(dcg / idcg)
            acc["H"].append(float(any(hits)))
            acc["M"].append(next((1 / (p + 1) for p, h in enumerate(hits) if h), 0.0))
        for m, vals in acc.items():
            assert got[f"{m}@{k}"] == pytest.approx(np.mean(vals), abs=1e-12), (m, k)
    assert got["n_users"] == int((np.diff(ds.heldout_sets(split).indptr) > 0).sum())


def test_optimistic_ties_among_held_out_items_never_exceed_k() -> None:
    """Three held-out items tied at the top: optimistic ranks 1, 2, 3, so P@1 = 1/1, N@1 = 1."""
    ds = _ratio_dataset(seed=7)
    u = int(np.argmax(np.diff(ds.heldout_sets("test").indptr) >= 3))
    scores = np.zeros((ds.n_users, ds.n_items))
    scores[u, ds.heldout_sets("test")[u].indices] = 1.0
    indptr, ranks = heldout_set_ranks(
        lambda x: torch.from_numpy(scores[x.numpy()]), ds, "test", ties="optimistic"
    )
    own = ranks[indptr[u] : indptr[u + 1]]
    assert sorted(own.tolist()) == list(range(1, len(own) + 1))
    m = metrics_from_set_ranks(indptr[[u, u + 1]] - indptr[u], own, (1,))
    assert m["P@1"] == 1.0 and m["N@1"] == 1.0


def test_ndcg_ideal_over_min_k_and_the_held_out_count() -> None:
    """|T_u| = 3 > K = 2 with both top-2 items held out: N@2 = 1 (IDCG over min(K, |T_u|)); the
    third held-out item ranked 4th adds to N@5 but not to N@2."""
    indptr, ranks = np.array([0, 3]), np.array([1, 2, 4])
    m = metrics_from_set_ranks(indptr, ranks, (2, 5))
    assert (
        m["N@2"] == pytest.approx(1.0) and m["R@2"] == pytest.approx(2 / 3) and m["P@2"] == pytest.approx(1.0)
    )
    want = (1 + 1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert m["N@5"] == pytest.approx(want) and m["R@5"] == 1.0 and m["P@5"] == pytest.approx(3 / 5)


def test_one_held_out_item_equals_the_leave_one_out_metrics() -> None:
    ds = make_toy_dataset(n_users=40, n_items=50, seed=4)
    scores = torch.from_numpy(np.random.default_rng(5).integers(0, 8, size=(40, 50)).astype(np.float32))
    loo = evaluate(lambda u: scores[u], ds, "full", "test", ks=(1, 5, 10))
    indptr, ranks = heldout_set_ranks(lambda u: scores[u], ds, "test", batch_size=8)
    sets = metrics_from_set_ranks(indptr, ranks, (1, 5, 10))
    for k in (1, 5, 10):
        assert sets[f"R@{k}"] == pytest.approx(loo[f"H@{k}"]) and sets[f"H@{k}"] == pytest.approx(
            loo[f"H@{k}"]
        )
        assert sets[f"N@{k}"] == pytest.approx(loo[f"N@{k}"]) and sets[f"M@{k}"] == pytest.approx(
            loo[f"M@{k}"]
        )
        assert sets[f"P@{k}"] == pytest.approx(loo[f"H@{k}"] / k)
