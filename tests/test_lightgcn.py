"""LightGCN against a dense float64 propagation on a small graph, its loss gradient against the
dense reference's, and one propagation per ranking pass (evaluator, rank engine, frozen teacher).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from conftest import make_toy_dataset
from recdistill.distill.teacher import ModelTeacher
from recdistill.errors import RecdistillError
from recdistill.eval.evaluator import evaluate_model
from recdistill.models import build_model, model_from_spec
from recdistill.models.base import Batch
from recdistill.models.lightgcn import LightGCN
from recdistill.models.store import load_model, save_model
from recdistill.ranking import RankEngine


def _graph(seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((7, 9)) < 0.35).astype(np.float32)
    dense[6] = 0  # a user without interactions: a zero row of Â
    dense[:, 8] = 0  # an item nobody has
    return sp.csr_matrix(dense)


def _dense_reference(train: sp.csr_matrix, e0: np.ndarray, n_layers: int) -> np.ndarray:
    """Eq. 7-9 as written, dense, float64: Â = D^-1/2 A D^-1/2, mean of E^(0..K)."""
    nu, ni = train.shape
    a = np.zeros((nu + ni, nu + ni))
    r = train.toarray().astype(np.float64)
    a[:nu, nu:], a[nu:, :nu] = r, r.T
    d = a.sum(1)
    dinv = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
    adj = dinv[:, None] * a * dinv[None, :]
    layers, e = [e0], e0
    for _ in range(n_layers):
        e = adj @ e
        layers.append(e)
    return np.mean(layers, axis=0)


def test_propagation_and_scores_match_a_dense_float64_reference() -> None:
    train = _graph()
    for n_layers in (0, 1, 3):
        torch.manual_seed(0)
        m = LightGCN(7, 9, train, dim=5, n_layers=n_layers)
        e0 = torch.cat([m.user_emb.weight, m.item_emb.weight]).detach().double().numpy()
        want = _dense_reference(train, e0, n_layers)
        eu, ei = m.propagate()
        np.testing.assert_allclose(eu.detach().numpy(), want[:7], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ei.detach().numpy(), want[7:], rtol=1e-5, atol=1e-6)
        scores = want[:7] @ want[7:].T
        np.testing.assert_allclose(
            m.score_all(torch.arange(7)).detach().numpy(), scores, rtol=1e-5, atol=1e-6
        )
        items = torch.tensor([[0, 3, 8]] * 7)
        got = m.score(torch.arange(7), items).detach().numpy()
        np.testing.assert_allclose(got, scores[:, [0, 3, 8]], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            m.score_users(torch.tensor([2, 4]), torch.tensor([[0, 6], [1, 5]])).detach().numpy(),
            [[scores[0, 2], scores[6, 2]], [scores[1, 4], scores[5, 4]]],
            rtol=1e-5,
            atol=1e-6,
        )
        np.testing.assert_allclose(
            m.score_items(torch.tensor([1, 8])).detach().numpy(), scores[:, [1, 8]].T, rtol=1e-5, atol=1e-6
        )
        assert np.all(want[7 + 8] == e0[7 + 8] / (n_layers + 1))  # an isolated node: its layer-0 share


def test_loss_gradient_matches_the_dense_reference() -> None:
    """BPR + Eq. 15's L2 through the propagation: autograd (sparse, float32) against the same
    loss written densely in float64 (torch.autograd.gradcheck on the float64 version)."""
    train = _graph(1)
    torch.manual_seed(1)
    m = LightGCN(7, 9, train, dim=4, n_layers=2, reg=0.3)
    batch = Batch(
        torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 3, 4]), torch.tensor([[5, 6], [0, 7], [8, 1], [2, 3]])
    )
    m.base_loss(batch).backward()
    got = torch.cat([m.user_emb.weight.grad, m.item_emb.weight.grad]).double()

    nu, ni = 7, 9
    a = torch.zeros(nu + ni, nu + ni, dtype=torch.float64)
    r = torch.from_numpy(train.toarray()).double()
    a[:nu, nu:], a[nu:, :nu] = r, r.T
    d = a.sum(1)
    dinv = torch.where(d > 0, d.clamp(min=1).rsqrt(), torch.zeros_like(d))
    adj = dinv[:, None] * a * dinv[None, :]

    def loss(e0: torch.Tensor) -> torch.Tensor:
        layers, e = [e0], e0
        for _ in range(2):
            e = adj @ e
            layers.append(e)
        f = torch.stack(layers).mean(0)
        items = torch.cat([batch.pos[:, None], batch.neg], 1)
        z = (f[nu + items] * f[batch.users][:, None]).sum(-1)
        bpr = -torch.nn.functional.logsigmoid(z[:, :1] - z[:, 1:]).mean()
        sq = e0[nu + items].pow(2).sum(-1)
        return bpr + 0.3 * (e0[batch.users].pow(2).sum(-1) + sq[:, 0] + sq[:, 1:].mean(1)).mean() / 2

    e0 = torch.cat([m.user_emb.weight, m.item_emb.weight]).detach().double().requires_grad_()
    assert torch.autograd.gradcheck(loss, (e0,))
    (want,) = torch.autograd.grad(loss(e0), e0)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_one_propagation_per_ranking_pass() -> None:
    ds = make_toy_dataset(n_users=30, n_items=40)
    m = build_model("lightgcn", ds, dim=4)
    assert isinstance(m, LightGCN)
    n0 = m.n_propagations
    evaluate_model(m, ds, "full", ks=[5], batch_size=4)  # 8 chunks of users
    evaluate_model(m, ds, "sampled", ks=[5], batch_size=4)
    assert m.n_propagations == n0 + 2
    engine = RankEngine(ds.train, "cpu", chunk_size=4)
    engine.ranks(m, "user")
    engine.ranks(m, "item")
    assert m.n_propagations == n0 + 4
    with torch.no_grad():  # outside any pass: a propagation of its own
        fresh = m.score_all(torch.arange(ds.n_users))
    teacher = ModelTeacher(m)  # frozen: one propagation for its whole life
    teacher.topn(ds, 5, "user", chunk=4)
    teacher.score(torch.arange(3), torch.zeros(3, 2, dtype=torch.long))
    teacher.score_all(torch.arange(3))
    assert m.n_propagations == n0 + 6
    # a pass scores what a propagation outside any pass scores
    torch.testing.assert_close(
        engine.ranks(teacher.score_source, "user"), engine.ranks(lambda u: fresh[u], "user")
    )


def test_a_pass_follows_a_change_of_the_parameters() -> None:
    """A model left in a pass (a frozen teacher's) whose state is then replaced scores with the
    new state: the prepared embeddings follow the parameters' versions."""
    ds = make_toy_dataset()
    a, b = build_model("lightgcn", ds, dim=4), build_model("lightgcn", ds, dim=4)
    u = torch.arange(ds.n_users)
    with torch.no_grad():
        want = b.score_all(u)
    with a.scoring():
        a.load_state_dict(b.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(a.score_all(u), want)
    with pytest.raises(RecdistillError, match="n_layers: expected an integer >= 0, got 2.5"):
        LightGCN(ds.n_users, ds.n_items, ds.train, n_layers=2.5)  # type: ignore[arg-type]


def test_saved_model_round_trip(tmp_path: Path) -> None:
    ds = make_toy_dataset()
    m = build_model("lightgcn", ds, dim=4, n_layers=2)
    save_model(m, tmp_path / "m.pt")
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    assert set(blob["state_dict"]) == {"user_emb.weight", "item_emb.weight"}  # Â is rebuilt, not stored
    back = load_model(tmp_path / "m.pt", ds)
    u = torch.arange(ds.n_users)
    torch.testing.assert_close(back.score_all(u), m.score_all(u))
    assert model_from_spec({"model": "lightgcn", "kwargs": m.init_kwargs}, ds).n_layers == 2
