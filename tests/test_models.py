"""Contract tests every model runs (shapes, score consistency, loss, training), plus each model's
loss against a slow float64 reference and the BD size presets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recdistill.config import make_config
from recdistill.data.dataset import Dataset
from recdistill.errors import RecdistillError
from recdistill.models import BPR, CDAE, MODELS, Batch, NeuMF, build_model, resolve_dim
from recdistill.ranking.negatives import NegativeSampler
from recdistill.train import BaseObjective, Trainer

MODEL_NAMES = MODELS.names()  # every registered model, those added later too


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP oversubscription on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def checkerboard(n_users: int = 40, n_items: int = 40, seed: int = 0) -> Dataset:
    """User u likes the items of u's parity; two liked items per user are held back (valid,
    test), so a model that learnt the structure ranks the test item first or second."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    valid = np.empty(n_users, np.int64)
    test = np.empty(n_users, np.int64)
    cands = np.empty((n_users, 10), np.int32)
    for u in range(n_users):  # tiny fixture
        liked = np.arange(u % 2, n_items, 2)
        held = rng.choice(liked, 2, replace=False)
        valid[u], test[u] = held
        keep = np.setdiff1d(liked, held)
        rows += [u] * keep.size
        cols += keep.tolist()
        cands[u] = rng.choice(np.arange(1 - u % 2, n_items, 2), 10, replace=False)
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    return Dataset(
        "checkerboard", n_users, n_items, train, valid, test, cands, np.arange(n_users), np.arange(n_items)
    )


def make(name: str, ds: Dataset, dim: int = 8, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, ds, dim=dim, **kw)


def a_batch(model, ds: Dataset, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    sampler = NegativeSampler(ds.train)
    if model.batch_unit == "user":
        users = torch.arange(6)
        deg = torch.from_numpy(np.diff(ds.train.indptr))[users]
        neg_row = torch.repeat_interleave(torch.arange(6), deg * 5)
        neg = sampler.sample(users[neg_row], 1, g).squeeze(1)
        return Batch(users, None, neg, users, neg_row)
    coo = ds.train.tocoo()
    idx = torch.arange(0, 12)
    users = torch.from_numpy(coo.row[:12].astype(np.int64))
    pos = torch.from_numpy(coo.col[:12].astype(np.int64))
    return Batch(users, pos, sampler.sample(users, 3, g), idx)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shapes_and_score_matches_score_all(name, toy_dataset):
    model = make(name, toy_dataset).eval()
    users = torch.tensor([0, 3, 7, 29])
    full = model.score_all(users)
    assert full.shape == (4, toy_dataset.n_items)
    items = torch.randint(toy_dataset.n_items, (4, 5), generator=torch.Generator().manual_seed(1))
    part = model.score(users, items)
    assert part.shape == (4, 5)
    torch.testing.assert_close(part, full.gather(1, items), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_score_items_is_the_transposed_score_all(name, toy_dataset):
    model = make(name, toy_dataset).eval()
    if not hasattr(model, "score_items"):
        pytest.skip(f"{name} has no score_items (the rank engine falls back to score_all)")
    items = torch.tensor([0, 5, 39])
    full = model.score_all(torch.arange(toy_dataset.n_users))  # (n_users, n_items)
    torch.testing.assert_close(model.score_items(items), full[:, items].T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_base_loss_is_finite_scalar_with_gradients(name, toy_dataset):
    model = make(name, toy_dataset).train()
    loss = model.base_loss(a_batch(model, toy_dataset))
    assert loss.ndim == 0 and math.isfinite(loss.item())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_registry_and_rebuild_kwargs(name, toy_dataset):
    model = make(name, toy_dataset)
    assert MODELS.get(name) is type(model) and model.name == name
    assert model.init_kwargs["dim"] == 8
    assert model.n_parameters == sum(p.numel() for p in model.parameters())


def _cfg(**train):
    sets = [f"train.{k}={v}" for k, v in train.items()]
    return make_config(sets=sets + ["train.progress=false", "train.ks=[1,2,5]", "train.monitor=H@2"])


#: per-model settings where the defaults (a model added later: lr 0.02, batch 64) do not suit
LRS = {"bpr": 0.05, "neumf": 0.02, "cdae": 0.02}
BATCH = {"bpr": 64, "neumf": 64, "cdae": 4}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_one_epoch_runs_and_loss_decreases(name, toy_dataset):
    model = make(name, toy_dataset)
    cfg = _cfg(epochs=8, batch_size=32, lr=LRS.get(name, 0.02))
    tr = Trainer({"m": model}, BaseObjective({"m": model}), toy_dataset, cfg)
    first = tr.train_epoch(0)["m"]["loss"]
    for e in range(1, 8):
        last = tr.train_epoch(e)["m"]["loss"]
    assert math.isfinite(first) and last < first


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_checkerboard_heldout_item_ranks_near_top(name):
    ds = checkerboard()
    model = make(name, ds, dim=8)
    cfg = _cfg(epochs=40, batch_size=BATCH.get(name, 64), lr=LRS.get(name, 0.02), eval_every=40, patience=100)
    tr = Trainer({"m": model}, BaseObjective({"m": model}), ds, cfg)
    tr.fit()
    # Full protocol: the test item competes with the 20 items of the other parity only (the valid
    # item is excluded), so a model that learnt the structure puts it first.
    full = tr.evaluate(model, "test", "full")
    assert full["H@1"] >= 0.9, full
    assert tr.evaluate(model, "test", "sampled")["H@1"] >= 0.9


# ------------------------------------------------------------------ losses vs float64 references
def _double(model):
    return model.double()


@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_bpr_loss_matches_reference(toy_dataset, reg):
    model = _double(make("bpr", toy_dataset, init_std=0.5, reg=reg))
    b = a_batch(model, toy_dataset)
    ref, l2 = 0.0, 0.0
    P, Q = model.user_emb.weight.detach(), model.item_emb.weight.detach()
    for r in range(b.users.numel()):
        u, i = int(b.users[r]), int(b.pos[r])
        for j in b.neg[r].tolist():
            x = float(P[u] @ Q[i] - P[u] @ Q[j])
            ref += -math.log(1.0 / (1.0 + math.exp(-x)))
            l2 += float(Q[j] @ Q[j]) / b.neg.shape[1]
        l2 += float(P[u] @ P[u] + Q[i] @ Q[i])
    ref = ref / b.neg.numel() + reg * l2 / b.users.numel()
    assert model.base_loss(b).item() == pytest.approx(ref, rel=1e-10)


def test_neumf_matches_plain_forward_and_chunking(toy_dataset):
    model = _double(make("neumf", toy_dataset, dim=6)).eval()
    users = torch.arange(toy_dataset.n_users)
    items = torch.arange(toy_dataset.n_items)
    # obvious path: the concatenated MLP input for every (u, i) pair
    pu, qi = model.user_mlp(users), model.item_mlp(items)
    x = torch.cat([pu[:, None, :].expand(-1, len(items), -1), qi[None].expand(len(users), -1, -1)], -1)
    gmf = model.user_gmf(users)[:, None, :] * model.item_gmf(items)[None]
    ref = model.predict(torch.cat([gmf, model.mlp(x)], -1)).squeeze(-1)
    torch.testing.assert_close(model.score_all(users), ref)
    model.max_elements = 6 * toy_dataset.n_items * 7  # force chunks of 7 users
    torch.testing.assert_close(model.score_all(users), ref)
    # score() on (user, item) pairs, both of its paths (few pairs; every item's half once), with
    # gradients, against the obvious concatenated forward
    model.train()
    for k in (3, toy_dataset.n_items + 5):
        u = torch.randint(0, toy_dataset.n_users, (4,), generator=torch.Generator().manual_seed(k))
        it = torch.randint(0, toy_dataset.n_items, (4, k), generator=torch.Generator().manual_seed(k + 1))
        x = torch.cat([model.user_mlp(u)[:, None, :].expand(-1, k, -1), model.item_mlp(it)], -1)
        g = model.user_gmf(u)[:, None, :] * model.item_gmf(it)
        want = model.predict(torch.cat([g, model.mlp(x)], -1)).squeeze(-1)  # (4, k)
        grads = torch.autograd.grad(want.sum(), list(model.parameters()))
        got = model.score(u, it)
        torch.testing.assert_close(got, want)
        for gw, gg in zip(grads, torch.autograd.grad(got.sum(), list(model.parameters()))):
            torch.testing.assert_close(gg, gw)
    model.eval()
    # the loss: mean BCE over (pos: 1, negs: 0)
    b = a_batch(model, toy_dataset)
    z = model.score(b.users, torch.cat([b.pos[:, None], b.neg], 1)).detach()
    p = torch.sigmoid(z)
    manual = -(torch.log(p[:, 0]).sum() + torch.log(1 - p[:, 1:]).sum()) / z.numel()
    assert model.base_loss(b).item() == pytest.approx(manual.item(), rel=1e-10)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_cdae_rows_dropout_and_loss_reference(toy_dataset, n_layers):
    """The sparse training path (encoder on the observed entries, decoder on the weighted items)
    against the dense CDAE, float64: logits, the dropout corruption, the loss by a loop, and the
    loss's gradients against the dense weighted BCE."""
    model = _double(make("cdae", toy_dataset, dim=6, n_layers=n_layers, user_init_std=0.7, dropout=0.3))
    users = torch.tensor([4, 0, 9])
    dense = torch.from_numpy(toy_dataset.train.toarray()).double()
    torch.testing.assert_close(model.rows(users).double(), dense[users])

    def by_hand(y):  # the dense CDAE, layer by layer (no dropout)
        h = torch.sigmoid(y @ model.enc1.weight.T + model.enc1.bias + model.user_emb.weight[users])
        if n_layers == 2:
            h = torch.sigmoid(h @ model.enc2.weight.T + model.enc2.bias)
            h = torch.sigmoid(h @ model.dec1.weight.T + model.dec1.bias)
        return h @ model.dec2.weight.T + model.dec2.bias

    model.eval()
    full = model.score_all(users)
    torch.testing.assert_close(full, by_hand(dense[users]))
    torch.testing.assert_close(full, model.forward_rows(users, dense[users]))
    items = torch.tensor([[3, 3, 0], [1, 29, 5], [7, 2, 2]])
    torch.testing.assert_close(model.score(users, items), full.gather(1, items))
    rows, its = torch.tensor([2, 0, 0, 1]), torch.tensor([5, 5, 11, 0])
    torch.testing.assert_close(model.score_pairs(users, rows, its), full[rows, its])
    pick = torch.tensor([[0, 2], [1, 1]])  # the item side: users per item
    torch.testing.assert_close(
        model.score_users(torch.tensor([7, 3]), users[pick]), full[pick, torch.tensor([[7], [3]])]
    )
    model.train()
    # dropout: each observed entry kept with probability 0.7 and scaled by 1/0.7, the zeros stay zero
    row, cols = model.input_pairs(users)
    torch.manual_seed(3)
    keep = torch.empty(row.numel(), dtype=torch.float64).bernoulli_(0.7)
    y = torch.zeros_like(dense[users])
    y[row, cols] = keep / 0.7
    torch.manual_seed(3)
    a = model.score_all(users)
    torch.testing.assert_close(a, by_hand(y))
    model.train()
    torch.manual_seed(4)
    assert not torch.equal(a, model.score_all(users))  # a new draw
    assert 0 < keep.sum() < keep.numel()
    # the loss by a loop (eval mode: no dropout), then its gradients against the dense weighted BCE
    model.eval()
    b = a_batch(model, toy_dataset)
    loss = model.base_loss(b)
    z = model.score_all(b.users).detach()
    ref = 0.0
    for r, u in enumerate(b.users.tolist()):  # observed items (label 1), each sampled negative
        for i in toy_dataset.train[u].indices:
            ref += math.log1p(math.exp(-float(z[r, i])))
        for j in b.neg[b.neg_row == r].tolist():
            ref += math.log1p(math.exp(float(z[r, j])))
    assert loss.item() == pytest.approx(ref / b.users.numel(), rel=1e-10)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    yb = dense[b.users]
    weight = yb.clone()
    weight.index_put_((b.neg_row, b.neg), torch.ones(b.neg.numel(), dtype=torch.float64), accumulate=True)
    zd = model.forward_rows(b.users, yb)
    ref_loss = F.binary_cross_entropy_with_logits(zd, yb, weight=weight, reduction="sum") / b.users.numel()
    for g, r in zip(grads, torch.autograd.grad(ref_loss, list(model.parameters()))):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)
    # negatives as a (B, n_neg) matrix: the same loss as the flat form of the same pairs
    grid = NegativeSampler(toy_dataset.train).sample(b.users, 3, torch.Generator().manual_seed(1))  # (B, 3)
    flat_row = torch.arange(b.users.numel()).repeat_interleave(3)
    as_grid = model.base_loss(Batch(b.users, None, grid, b.users))
    as_flat = model.base_loss(Batch(b.users, None, grid.reshape(-1), b.users, flat_row))
    torch.testing.assert_close(as_grid, as_flat)
    with pytest.raises(RecdistillError, match="dropout"):
        make("cdae", toy_dataset, dim=6, dropout=1.0)


# ------------------------------------------------------------------ presets and errors
BD_CITEULIKE = {"bpr": (1.52e6, 0.15e6), "neumf": (3.05e6, 0.30e6), "cdae": (2.80e6, 0.30e6)}


@pytest.mark.parametrize("name", sorted(BD_CITEULIKE))  # the models of BD's Table 3
def test_bd_presets_match_table3_parameter_counts(name):
    ds = Dataset(
        "citeulike-bd",
        5219,
        25187,
        sp.csr_matrix((5219, 25187), dtype=np.float32),
        np.zeros(5219, np.int64),
        np.zeros(5219, np.int64),
        np.zeros((5219, 1), np.int32),
        np.arange(5219),
        np.arange(25187),
    )
    t = build_model(name, ds, size="teacher").n_parameters
    s = build_model(name, ds, size="student").n_parameters
    want_t, want_s = BD_CITEULIKE[name]
    assert abs(t - want_t) / want_t < 0.01 and abs(s - want_s) / want_s < 0.035, (t, s)
    assert 8 < t / s < 11


def test_dcd_preset_and_explicit_dim():
    assert resolve_dim("citeulike-dcd", "teacher") == 200
    assert resolve_dim("citeulike-dcd", "student") == 20
    assert resolve_dim("citeulike-bd", "teacher") == 50
    assert resolve_dim("citeulike-bd", "student", dim=7) == 7
    with pytest.raises(ValueError, match="size"):
        resolve_dim("citeulike-bd", "huge")
    with pytest.raises(ValueError, match="positive"):
        resolve_dim("citeulike-bd", None, 0)


def test_build_model_rejects_unknown_kwargs(toy_dataset):
    with pytest.raises(ValueError, match="no parameter"):
        build_model("bpr", toy_dataset, dim=4, dropout=0.5)
    with pytest.raises(KeyError, match="unknown model 'bprr'"):
        build_model("bprr", toy_dataset, dim=4)
    assert isinstance(build_model("cdae", toy_dataset, dim=4, dropout=0.2), CDAE)
    assert isinstance(build_model("neumf", toy_dataset, dim=4), NeuMF)
    assert isinstance(build_model("bpr", toy_dataset, dim=4), BPR)


def test_cdae_one_layer_is_the_original_cdae(toy_dataset):
    """n_layers=1: z_u = W4 sigma(W1 y_u + V_u + b1) + b4, by hand in float64 (eval mode)."""
    model = _double(make("cdae", toy_dataset, dim=6, n_layers=1)).eval()
    assert not hasattr(model, "enc2") and not hasattr(model, "dec1")
    users = torch.tensor([1, 7])
    y = torch.from_numpy(toy_dataset.train.toarray()).double()[users]
    h = torch.sigmoid(y @ model.enc1.weight.T + model.enc1.bias + model.user_emb.weight[users])
    torch.testing.assert_close(model.score_all(users), h @ model.dec2.weight.T + model.dec2.bias)
    d, n = 6, toy_dataset.n_items
    assert model.n_parameters == toy_dataset.n_users * d + n * d + d + d * n + n
    assert "n_layers" not in make("cdae", toy_dataset, dim=6).init_kwargs  # old saved models: 2
    assert "user_init_std" not in make("cdae", toy_dataset, dim=6).init_kwargs  # old: 0.01
    wide = make("cdae", toy_dataset, dim=6, user_init_std=1.0)
    assert wide.init_kwargs["user_init_std"] == 1.0 and 0.8 < float(wide.user_emb.weight.detach().std()) < 1.2
    with pytest.raises(RecdistillError, match="user_init_std"):
        make("cdae", toy_dataset, dim=6, user_init_std=0)
    with pytest.raises(RecdistillError, match="n_layers"):
        make("cdae", toy_dataset, dim=6, n_layers=3)


def test_lookup_equals_embedding_values_and_gradients():
    from torch import nn

    from recdistill.models.base import lookup

    torch.manual_seed(0)
    emb = nn.Embedding(30, 4).double()
    idx = torch.randint(0, 30, (7, 5))  # repeated rows: their gradients add up
    w = torch.randn(7, 5, 4, dtype=torch.float64)
    a = lookup(emb, idx)
    torch.testing.assert_close(a, emb(idx), rtol=0, atol=0)
    (a * w).sum().backward()
    g_lookup, emb.weight.grad = emb.weight.grad.clone(), None
    (emb(idx) * w).sum().backward()
    torch.testing.assert_close(g_lookup, emb.weight.grad, rtol=0, atol=1e-15)
    emb.sparse = True  # sparse gradients keep nn.Embedding's path
    emb.weight.grad = None
    lookup(emb, idx).sum().backward()
    assert emb.weight.grad.is_sparse
