"""Evaluator tests: held-out ranks against a brute-force per-user sort in float64, with ties."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import make_toy_dataset
from recdistill.data.dataset import Dataset
from recdistill.eval import evaluate, evaluate_model, heldout_ranks, metrics_from_ranks
from recdistill.models.base import Recommender

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# --------------------------------------------------------------------------- reference (slow, obvious)
def reference_ranks(scores: np.ndarray, ds: Dataset, protocol: str, split: str, ties: str) -> np.ndarray:
    """Per user: list the candidates explicitly, sort by score (float64), find the held-out item."""
    target = ds.heldout(split)
    other = ds.heldout("valid" if split == "test" else "test")
    out = np.zeros(ds.n_users, dtype=np.float64)
    for u in range(ds.n_users):
        t = int(target[u])
        if t < 0:
            continue
        if protocol == "full":
            seen = set(ds.train[u].indices.tolist())
            cands = [i for i in range(ds.n_items) if i not in seen and i != other[u] and i != t]
        else:
            cands = [int(i) for i in ds.candidates[u]]
        items = cands + [t]
        s = {i: float(scores[u, i]) for i in items}
        # pessimistic: the held-out item is placed after every item with an equal score
        last = sorted(items, key=lambda i: (-s[i], i == t)).index(t) + 1
        first = sorted(items, key=lambda i: (-s[i], i != t)).index(t) + 1
        out[u] = {"pessimistic": last, "optimistic": first, "average": (first + last) / 2}[ties]
    return out


def toy_with_gaps(seed: int = 0) -> Dataset:
    """Toy data where a few users have no test item and a few others no valid item."""
    ds = make_toy_dataset(n_users=30, n_items=40, n_candidates=10, seed=seed)
    valid, test = ds.valid_items.copy(), ds.test_items.copy()
    test[[3, 17]] = -1
    valid[[5, 17]] = -1
    return dataclasses.replace(ds, valid_items=valid, test_items=test)


def int_scores(ds: Dataset, seed: int = 0, levels: int = 4) -> torch.Tensor:
    """Integer-valued float32 scores in [0, levels): ties are everywhere."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels, (ds.n_users, ds.n_items), generator=g).float()  # (n_users, n_items)


# --------------------------------------------------------------------------- ranks vs reference
@pytest.mark.parametrize("protocol", ["full", "sampled"])
@pytest.mark.parametrize("split", ["valid", "test"])
@pytest.mark.parametrize("ties", ["pessimistic", "average", "optimistic"])
def test_ranks_match_bruteforce_with_ties(protocol: str, split: str, ties: str) -> None:
    ds = toy_with_gaps()
    for levels in (3, 1000):  # heavy ties, then few
        S = int_scores(ds, seed=levels, levels=levels)
        ref = reference_ranks(S.double().numpy(), ds, protocol, split, ties)
        got = heldout_ranks(lambda u, S=S: S[u], ds, protocol, split, ties=ties, batch_size=7)
        np.testing.assert_array_equal(got, ref)
        assert got.dtype == (np.float64 if ties == "average" else np.int64)
        assert (got == 0).sum() == 2  # users without a held-out item of this split


@pytest.mark.parametrize("protocol", ["full", "sampled"])
def test_continuous_scores_match_bruteforce(protocol: str) -> None:
    ds = make_toy_dataset(n_users=25, n_items=60, n_candidates=20, seed=3)
    S = torch.randn(ds.n_users, ds.n_items, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref = reference_ranks(S.numpy(), ds, protocol, "test", "pessimistic")
    np.testing.assert_array_equal(heldout_ranks(lambda u: S[u], ds, protocol), ref)


@pytest.mark.parametrize("protocol", ["full", "sampled"])
@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
def test_chunk_size_invariance(protocol: str, ties: str) -> None:
    ds = toy_with_gaps(seed=1)
    S = int_scores(ds, seed=5)
    runs = [heldout_ranks(lambda u: S[u], ds, protocol, ties=ties, batch_size=b) for b in (1, 4, 29, 1000)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r, runs[0])
    np.testing.assert_array_equal(heldout_ranks(lambda u: S[u], ds, protocol, ties=ties), runs[0])


def test_other_heldout_item_is_excluded_from_full_ranking() -> None:
    ds = make_toy_dataset(n_users=6, n_items=30, n_candidates=5, seed=2)
    S = torch.zeros(ds.n_users, ds.n_items)
    users = torch.arange(ds.n_users)
    S[users, torch.from_numpy(ds.valid_items)] = 10.0  # the other held-out item scores highest
    S[users, torch.from_numpy(ds.test_items)] = 5.0
    np.testing.assert_array_equal(heldout_ranks(lambda u: S[u], ds, "full", "test"), 1)
    # training items score highest too: still excluded
    S[ds.train.nonzero()] = 100.0
    np.testing.assert_array_equal(heldout_ranks(lambda u: S[u], ds, "full", "test"), 1)
    # and the valid item, ranked in turn, is not beaten by the test item
    np.testing.assert_array_equal(heldout_ranks(lambda u: S[u], ds, "full", "valid"), 1)


def test_constant_model_gets_the_worst_rank() -> None:
    ds = toy_with_gaps(seed=4)
    C = torch.full((ds.n_users, ds.n_items), 0.25)
    has = ds.test_items >= 0
    n_seen = np.diff(ds.train.indptr)
    n_full = ds.n_items - n_seen - (ds.valid_items >= 0) - 1  # candidates, held-out item excluded
    ties = ("pessimistic", "optimistic", "average")
    full = {t: heldout_ranks(lambda u: C[u], ds, "full", ties=t) for t in ties}
    np.testing.assert_array_equal(full["pessimistic"][has], n_full[has] + 1)
    np.testing.assert_array_equal(full["optimistic"][has], 1)
    np.testing.assert_array_equal(full["average"][has], (n_full[has] + 2) / 2)
    sampled = heldout_ranks(lambda u: C[u], ds, "sampled")
    np.testing.assert_array_equal(sampled[has], ds.candidates.shape[1] + 1)
    m = evaluate(lambda u: C[u], ds, "sampled", ks=(1, 10))
    assert m["H@10"] == 0.0 and m["N@10"] == 0.0 and m["M@10"] == 0.0
    assert m["n_users"] == int(has.sum())


def test_perfect_model_gets_rank_one() -> None:
    ds = make_toy_dataset(seed=6)
    S = torch.zeros(ds.n_users, ds.n_items)
    S[torch.arange(ds.n_users), torch.from_numpy(ds.test_items)] = 1.0
    m = evaluate(lambda u: S[u], ds, "full", ks=(1,))
    assert m == {"H@1": 1.0, "N@1": 1.0, "M@1": 1.0, "n_users": ds.n_users}


# --------------------------------------------------------------------------- sampled protocol
def test_sampled_candidates_never_contain_a_positive() -> None:
    ds = make_toy_dataset(n_users=50, n_items=80, n_candidates=20, seed=7)
    for u in range(ds.n_users):
        positives = set(ds.train[u].indices.tolist()) | {int(ds.valid_items[u]), int(ds.test_items[u])}
        assert not positives & set(ds.candidates[u].tolist())
        assert len(set(ds.candidates[u].tolist())) == ds.candidates.shape[1]


@pytest.mark.parametrize("which", ["train", "valid", "test", "duplicate"])
def test_positive_or_duplicate_candidate_is_an_error(which: str) -> None:
    ds = make_toy_dataset(seed=8)
    cands = ds.candidates.copy()
    u = 11
    cands[u, 3] = {
        "train": ds.train[u].indices[0],
        "valid": ds.valid_items[u],
        "test": ds.test_items[u],
        "duplicate": cands[u, 0],
    }[which]
    bad = dataclasses.replace(ds, candidates=cands)
    S = torch.zeros(ds.n_users, ds.n_items)
    match = f"user {u} has candidate" if which == "duplicate" else f"candidate {cands[u, 3]} of user {u}"
    with pytest.raises(ValueError, match=match):
        heldout_ranks(lambda u: S[u], bad, "sampled", "test")


def test_sampled_with_score_items_fn_equals_gather() -> None:
    ds = toy_with_gaps(seed=9)
    S = int_scores(ds, seed=2)
    calls = []

    def score_items(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        calls.append(items.shape)
        return S[users[:, None], items]  # (B, k)

    a = heldout_ranks(None, ds, "sampled", ties="average", score_items_fn=score_items, batch_size=8)
    b = heldout_ranks(lambda u: S[u], ds, "sampled", ties="average", batch_size=8)
    np.testing.assert_array_equal(a, b)
    assert all(s[1] == 1 + ds.candidates.shape[1] for s in calls)


# --------------------------------------------------------------------------- metrics on hand cases
def test_metrics_hand_computed() -> None:
    m = metrics_from_ranks(np.array([1, 3, 0, 10, 2]), ks=(1, 3, 10))
    assert m["n_users"] == 4
    assert m["H@1"] == pytest.approx(1 / 4)
    assert m["N@1"] == pytest.approx(1 / 4)
    assert m["M@1"] == pytest.approx(1 / 4)
    assert m["H@3"] == pytest.approx(3 / 4)
    assert m["N@3"] == pytest.approx((1 + 0.5 + 1 / np.log2(3)) / 4)  # rank 3 -> N = 0.5
    assert m["M@3"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 4)
    assert m["H@10"] == pytest.approx(1.0)
    assert m["N@10"] == pytest.approx((1 + 0.5 + 1 / np.log2(11) + 1 / np.log2(3)) / 4)
    assert m["M@10"] == pytest.approx((1 + 1 / 3 + 1 / 10 + 1 / 2) / 4)
    assert list(m) == ["H@1", "N@1", "M@1", "H@3", "N@3", "M@3", "H@10", "N@10", "M@10", "n_users"]


def test_metrics_match_per_user_loop() -> None:
    rng = np.random.default_rng(0)
    ranks = rng.integers(0, 60, size=200)
    ks = (1, 5, 20, 50)
    m = metrics_from_ranks(ranks, ks)
    users = [int(r) for r in ranks if r > 0]
    for k in ks:
        assert m[f"H@{k}"] == pytest.approx(sum(r <= k for r in users) / len(users))
        assert m[f"N@{k}"] == pytest.approx(sum(1 / np.log2(r + 1) for r in users if r <= k) / len(users))
        assert m[f"M@{k}"] == pytest.approx(sum(1 / r for r in users if r <= k) / len(users))
    half = metrics_from_ranks(np.array([1.5, 0.0]), ks=(1, 2))  # averaged ties give half ranks
    assert half["H@1"] == 0.0 and half["M@2"] == pytest.approx(1 / 1.5)


@pytest.mark.parametrize(
    "ranks, ks, match",
    [
        (np.array([0, 0]), (5,), "no user"),
        (np.array([1, -2]), (5,), ">= 1"),
        (np.array([1, 2]), (), "at least one"),
        (np.array([1, 2]), (0, 5), "positive integer"),
        (np.array([1, 2]), (2.5,), "positive integer"),
        (np.array([[1, 2]]), (5,), "1-D"),
    ],
)
def test_metrics_bad_input(ranks: np.ndarray, ks: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        metrics_from_ranks(ranks, ks)


# --------------------------------------------------------------------------- evaluate / errors
def test_evaluate_equals_metrics_of_reference_ranks() -> None:
    ds = toy_with_gaps(seed=10)
    S = int_scores(ds, seed=3, levels=6)
    for protocol in ("full", "sampled"):
        ref = reference_ranks(S.double().numpy(), ds, protocol, "valid", "pessimistic")
        got = evaluate(lambda u: S[u], ds, protocol, "valid", ks=(1, 5, 20))
        assert got == pytest.approx(metrics_from_ranks(ref, (1, 5, 20)))
        assert got["n_users"] == ds.n_users - 2


def test_scores_are_not_modified_and_runs_are_deterministic() -> None:
    ds = make_toy_dataset(seed=11)
    S = int_scores(ds, seed=4)
    before = S.clone()
    a = evaluate(lambda u: S.narrow(0, int(u[0]), len(u)), ds, batch_size=10)  # users are 0..29 in order
    assert torch.equal(S, before)  # a view of S was returned, and left untouched
    b = evaluate(lambda u: S[u], ds, batch_size=30)
    assert a == b


def test_nan_score_is_an_error() -> None:
    ds = make_toy_dataset(seed=12)
    S = torch.randn(ds.n_users, ds.n_items)
    S[13, 7] = float("nan")
    for protocol in ("full", "sampled"):
        S[13, ds.candidates[13, 0]] = float("nan")
        with pytest.raises(ValueError, match="NaN score for user 13"):
            heldout_ranks(lambda u: S[u], ds, protocol, batch_size=4)


def test_infinite_scores_are_ranked() -> None:
    ds = make_toy_dataset(seed=13)
    S = int_scores(ds, seed=6)
    S[::2, :5] = float("inf")
    S[1::3, 3:9] = float("-inf")
    S[torch.arange(0, ds.n_users, 4), torch.from_numpy(ds.test_items[::4])] = float("-inf")
    for protocol in ("full", "sampled"):
        for ties in ("pessimistic", "optimistic", "average"):
            ref = reference_ranks(S.double().numpy(), ds, protocol, "test", ties)
            np.testing.assert_array_equal(heldout_ranks(lambda u: S[u], ds, protocol, ties=ties), ref)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"protocol": "sample"}, "unknown protocol 'sample'"),
        ({"split": "train"}, "unknown split 'train'"),
        ({"ties": "half"}, "unknown ties 'half'"),
        ({"batch_size": 0}, "batch_size"),
        ({"ks": (0,)}, "positive integer"),
        ({"score_items_fn": lambda u, i: i.float()}, "only used by protocol='sampled'"),
    ],
)
def test_evaluate_bad_arguments(kwargs: dict, match: str) -> None:
    ds = make_toy_dataset()
    with pytest.raises(ValueError, match=match):
        evaluate(lambda u: torch.zeros(len(u), ds.n_items), ds, **kwargs)


def test_bad_score_shape_and_bad_dataset() -> None:
    ds = make_toy_dataset()
    with pytest.raises(ValueError, match=r"expected \(30, 40\)"):
        evaluate(lambda u: torch.zeros(len(u), ds.n_items - 1), ds, batch_size=30)
    test = ds.test_items.copy()
    test[4] = ds.train[4].indices[0]
    with pytest.raises(ValueError, match="test item .* of user 4 is also in the user's training row"):
        evaluate(lambda u: torch.zeros(len(u), ds.n_items), dataclasses.replace(ds, test_items=test))
    test[4] = ds.n_items
    with pytest.raises(ValueError, match="test item of user 4 is 40"):
        evaluate(lambda u: torch.zeros(len(u), ds.n_items), dataclasses.replace(ds, test_items=test))
    test[4] = ds.valid_items[4]
    with pytest.raises(ValueError, match="user 4 has the same valid and test item"):
        evaluate(lambda u: torch.zeros(len(u), ds.n_items), dataclasses.replace(ds, test_items=test))
    none = dataclasses.replace(ds, test_items=np.full(ds.n_users, -1))
    assert (heldout_ranks(lambda u: torch.zeros(len(u), ds.n_items), none) == 0).all()
    with pytest.raises(ValueError, match="no user with a test item"):
        evaluate(lambda u: torch.zeros(len(u), ds.n_items), none)


# --------------------------------------------------------------------------- model entry point, devices
class TinyMF(Recommender):
    def __init__(self, n_users: int, n_items: int, dim: int = 4) -> None:
        super().__init__(n_users, n_items)
        self.P = torch.nn.Embedding(n_users, dim)
        self.Q = torch.nn.Embedding(n_items, dim)
        self.drop = torch.nn.Dropout(0.5)  # would make training-mode scores random

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.drop(self.P(users)) @ self.Q.weight.T  # (B, n_items)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.drop(self.P(users))[:, None, :] * self.Q(items)).sum(-1)  # (B, k)


@pytest.mark.parametrize("device", DEVICES)
def test_evaluate_model(device: str) -> None:
    torch.manual_seed(0)
    ds = toy_with_gaps(seed=14)
    model = TinyMF(ds.n_users, ds.n_items).to(device)
    model.train()
    with torch.no_grad():
        P, Q = model.P.weight.double().cpu(), model.Q.weight.double().cpu()
    ref_scores = (P @ Q.T).numpy()
    for protocol in ("full", "sampled"):
        got = evaluate_model(model, ds, protocol, ks=(1, 10), batch_size=8)
        ref = metrics_from_ranks(reference_ranks(ref_scores, ds, protocol, "test", "pessimistic"), (1, 10))
        assert got == pytest.approx(ref)
        assert model.training  # mode restored


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu() -> None:
    ds = toy_with_gaps(seed=15)
    S = int_scores(ds, seed=7)
    Sc = S.cuda()
    for protocol in ("full", "sampled"):
        cpu = heldout_ranks(lambda u: S[u], ds, protocol, ties="average", batch_size=6)
        gpu = heldout_ranks(lambda u: Sc[u], ds, protocol, ties="average", batch_size=6, device="cuda")
        np.testing.assert_array_equal(cpu, gpu)
