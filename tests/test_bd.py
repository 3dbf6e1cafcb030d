"""BD (paper 001): sampling weights (Eqs. 4-5 and the Table 5 schemes), draws, Eq. 2/3 losses,
against slow loop references on tiny data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from conftest import make_toy_dataset
from recdistill.distill.bd import BD, SCHEMES, BDConfig, bd_refresh, bd_weight
from recdistill.losses import bd_loss
from recdistill.models.base import Batch, Recommender
from recdistill.ranking import RankChunk, RankEngine


def draw_bd_samples(T, S, train, cfg, generator, learners=("teacher", "student")):
    """The first round of one BD refresh through the rank engine: {learner: int32 (nnz, s)}."""
    out = bd_refresh(RankEngine(train, chunk_size=cfg.chunk), T, S, cfg, generator, learners)
    return {n: d.index[0] for n, d in out.draws.items()}


def sampling_weights(scheme, learner, rt, rs, cfg):
    """The scheme's weights (B, m) from rank matrices (1 = top, 0 = observed)."""
    c = RankChunk(torch.arange(rt.shape[0]), rt.to(torch.int32), rs.to(torch.int32))
    return bd_weight(scheme, learner, cfg)(c)


class TableModel(Recommender):
    """Logits from a learnable (n_users, n_items) table; base loss = BPR on the batch."""

    def __init__(self, table: np.ndarray, batch_unit: str = "interaction") -> None:
        super().__init__(*table.shape)
        self.z = nn.Parameter(torch.tensor(table, dtype=torch.float64))
        self.batch_unit = batch_unit

    def score_all(self, users):
        return self.z[users]

    def score(self, users, items):
        return self.z[users[:, None], items]

    def base_loss(self, batch):
        if self.batch_unit == "user":
            return -self.z[batch.users].mean() * 0 + self.z[batch.users].sigmoid().mean()
        zp = self.score(batch.users, batch.pos[:, None])
        zn = self.score(batch.users, batch.neg)
        return -torch.nn.functional.logsigmoid(zp - zn).mean()


def _brute_ranks(row: np.ndarray, observed: set[int]) -> dict[int, int]:
    unobs = [j for j in range(len(row)) if j not in observed]
    return {j: 1 + sum(row[k] > row[j] for k in unobs) for j in unobs}


def _brute_probs(scheme: str, learner: str, rt: dict, rs: dict, cfg: BDConfig) -> dict[int, float]:
    """The scheme's distribution over I_u^-, transcribed literally (paper Eqs. 4-5, Table 5)."""
    w = {}
    for j in rt:
        if scheme == "rank-discrepancy":
            if learner == "student":
                w[j] = math.tanh(max((rs[j] - rt[j]) * cfg.eps_t, 0))  # Eq. 4
            else:
                w[j] = math.exp((rt[j] - rs[j]) * cfg.eps_e)  # Eq. 5
        elif scheme == "swapped":
            if learner == "teacher":
                w[j] = math.tanh(max((rt[j] - rs[j]) * cfg.eps_t, 0))
            else:
                w[j] = math.exp((rs[j] - rt[j]) * cfg.eps_e)
        elif scheme == "reversed":
            if learner == "teacher":
                w[j] = math.exp((rs[j] - rt[j]) * cfg.eps_e)
            else:
                w[j] = math.tanh(max((rt[j] - rs[j]) * cfg.eps_t, 0))
        elif scheme == "rank-aware":
            other = rs if learner == "teacher" else rt
            w[j] = math.exp(-other[j] / cfg.rank_aware_t)
        elif scheme == "top-n":
            other = rs if learner == "teacher" else rt
            w[j] = 1.0 if other[j] <= cfg.top_n else 0.0
        else:
            w[j] = 1.0
    total = sum(w.values())
    if total == 0:
        return {j: 1 / len(w) for j in w}
    return {j: v / total for j, v in w.items()}


def _setup(seed=0, n_users=9, n_items=30):
    ds = make_toy_dataset(n_users=n_users, n_items=n_items, density=0.2, n_candidates=2, seed=seed)
    rng = np.random.default_rng(seed)
    t_tab = rng.standard_normal((n_users, n_items))
    s_tab = 0.5 * t_tab + rng.standard_normal((n_users, n_items))
    return ds, TableModel(t_tab), TableModel(s_tab), t_tab, s_tab


def test_config_defaults_and_validation():
    cfg = BDConfig()
    assert (cfg.lambda_t2s, cfg.lambda_s2t, cfg.period, cfg.sampling) == (0.5, 0.5, 10, "rank-discrepancy")
    assert cfg.learners == ("teacher", "student")
    assert BDConfig(fixed="teacher").learners == ("student",)
    assert BD.build_config({"tau": 5.0}).tau == 5.0
    with pytest.raises(ValueError, match="unknown config key 'distill.params.taus'"):
        BD.build_config({"taus": 5.0})
    assert cfg.fresh_draws  # Algorithm 1: new draws every epoch
    with pytest.raises(ValueError, match="sampling='rank'"):
        BDConfig(sampling="rank")
    with pytest.raises(ValueError, match="eps_t=0"):
        BDConfig(eps_t=0)
    with pytest.raises(ValueError, match="n_samples=0"):
        BDConfig(n_samples=0)
    with pytest.raises(ValueError, match="fixed='both'"):
        BDConfig(fixed="both")


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("learner", ["teacher", "student"])
def test_sampling_weights_match_paper_equations(scheme, learner):
    cfg = BDConfig(eps_t=0.05, eps_e=0.1, rank_aware_t=3.0, top_n=4)
    rng = np.random.default_rng(1)
    m = 12
    rt = torch.from_numpy(np.stack([rng.permutation(m) + 1 for _ in range(4)]))
    rs = torch.from_numpy(np.stack([rng.permutation(m) + 1 for _ in range(4)]))
    w = sampling_weights(scheme, learner, rt, rs, cfg)
    assert w.dtype == torch.float32
    for b in range(4):
        dt = {j: int(rt[b, j]) for j in range(m)}
        ds = {j: int(rs[b, j]) for j in range(m)}
        ref = _brute_probs(scheme, learner, dt, ds, cfg)
        got = w[b].double() / w[b].double().sum()
        assert np.allclose(got.numpy(), [ref[j] for j in range(m)], rtol=1e-5, atol=1e-7)


def test_exp_weights_do_not_overflow_and_respect_mask():
    cfg = BDConfig(eps_e=1.0)
    rt = torch.tensor([[1, 5000, 0, 3]])  # entry 2 observed (rank 0)
    rs = torch.tensor([[5000, 1, 0, 2000]])
    w = sampling_weights("rank-discrepancy", "teacher", rt, rs, cfg)
    assert torch.isfinite(w).all() and w[0, 2] == 0 and w[0, 1] == 1.0


@pytest.mark.parametrize("scheme", ["rank-discrepancy", "swapped", "rank-aware", "uniform"])
def test_draws_follow_brute_force_distribution(scheme):
    ds, T, S, t_tab, s_tab = _setup(seed=2, n_users=4, n_items=30)
    cfg = BDConfig(n_samples=3000, eps_t=0.05, eps_e=0.1, rank_aware_t=5.0, sampling=scheme, chunk=3)
    draws = draw_bd_samples(T, S, ds.train, cfg, torch.Generator().manual_seed(0))
    train = ds.train
    for learner in ("teacher", "student"):
        d = draws[learner]
        assert d.dtype == torch.int32 and d.shape == (train.nnz, cfg.n_samples)
        for u in range(ds.n_users):
            obs = set(train[u].indices.tolist())
            rt, rs = _brute_ranks(t_tab[u], obs), _brute_ranks(s_tab[u], obs)
            ref = _brute_probs(scheme, learner, rt, rs, cfg)
            got = d[train.indptr[u] : train.indptr[u + 1]].flatten().numpy()
            assert not (set(got.tolist()) & obs)  # observed items are never drawn
            freq = np.bincount(got, minlength=ds.n_items) / len(got)
            tv = 0.5 * sum(abs(freq[j] - ref.get(j, 0.0)) for j in range(ds.n_items))
            assert tv < 0.06, (learner, u, tv)


def test_draws_are_deterministic_per_seed():
    ds, T, S, *_ = _setup(seed=3)
    cfg = BDConfig(n_samples=4, eps_t=0.05, eps_e=0.1)
    a = draw_bd_samples(T, S, ds.train, cfg, torch.Generator().manual_seed(5))
    b = draw_bd_samples(T, S, ds.train, cfg, torch.Generator().manual_seed(5))
    c = draw_bd_samples(T, S, ds.train, cfg, torch.Generator().manual_seed(6))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["student"], c["student"])


def test_identical_models_fall_back_to_uniform_over_unobserved():
    ds, T, _, t_tab, _ = _setup(seed=4)
    cfg = BDConfig(n_samples=50)
    d = draw_bd_samples(T, TableModel(t_tab.copy()), ds.train, cfg, torch.Generator().manual_seed(0))
    for u in range(ds.n_users):
        got = set(d["student"][ds.train.indptr[u] : ds.train.indptr[u + 1]].flatten().tolist())
        assert not (got & set(ds.train[u].indices.tolist())) and len(got) > 3


def _interaction_batch(train: sp.csr_matrix, idx: np.ndarray, neg: np.ndarray) -> Batch:
    users = np.repeat(np.arange(train.shape[0]), np.diff(train.indptr))
    return Batch(
        users=torch.from_numpy(users[idx]),
        pos=torch.from_numpy(train.indices[idx].astype(np.int64)),
        neg=torch.from_numpy(neg),
        idx=torch.from_numpy(idx),
    )


@pytest.mark.parametrize("label_only", [False, True])
def test_objective_loss_is_eq2_and_only_the_learner_gets_gradients(label_only):
    ds, T, S, t_tab, s_tab = _setup(seed=5)
    cfg = BDConfig(
        n_samples=3,
        warmup_epochs=1,
        period=2,
        tau=2.0,
        label_only_tau=label_only,
        lambda_t2s=0.3,
        lambda_s2t=0.7,
    )
    obj = BD(T, S, ds, cfg, seed=1)
    idx = np.array([0, 3, 5, 8])
    batch = _interaction_batch(ds.train, idx, np.zeros((4, 1), dtype=np.int64) + 29)
    obj.on_epoch_start(0)
    assert obj.draws == {}  # warm-up: no refresh
    loss0, parts0 = obj.loss("student", batch, 0)
    assert set(parts0) == {"base"} and torch.allclose(loss0, S.base_loss(batch))
    obj.on_epoch_start(1)
    assert obj.n_refresh == 1
    obj.on_epoch_start(2)
    assert obj.n_refresh == 1  # period 2: next refresh at epoch 3
    for name, model, other_tab, lam in (("student", S, t_tab, 0.3), ("teacher", T, s_tab, 0.7)):
        T.zero_grad()
        S.zero_grad()
        loss, parts = obj.loss(name, batch, 2)
        items = obj.draws[name][obj.draw_round(2)][idx].long().numpy()  # (4, 3)
        users = batch.users.numpy()
        # loop reference of Eq. 3: Σ_j BCE(σ(z^X/τ), σ(z^Y/τ)), mean over the batch's interactions
        kd = 0.0
        own = model.z.detach().numpy()
        for r in range(4):
            for j in items[r]:
                q = 1 / (1 + math.exp(-other_tab[users[r], j] / 2.0))
                x = own[users[r], j] if label_only else own[users[r], j] / 2.0
                p = 1 / (1 + math.exp(-x))
                kd += -(q * math.log(p) + (1 - q) * math.log(1 - p))
        kd /= 4
        assert parts["BD"] == pytest.approx(kd, rel=1e-9)
        base = float(model.base_loss(batch).detach())
        assert float(loss.detach()) == pytest.approx(base + lam * kd, rel=1e-9)
        loss.backward()
        other = T if model is S else S
        assert model.z.grad is not None and other.z.grad is None


def test_objective_user_batches_sum_over_all_draws_of_the_user():
    ds, T, S, t_tab, s_tab = _setup(seed=6)
    T.batch_unit = S.batch_unit = "user"
    cfg = BDConfig(n_samples=2, warmup_epochs=0, label_only_tau=False)
    obj = BD(T, S, ds, cfg, seed=0)
    obj.on_epoch_start(0)
    users = torch.tensor([1, 4, 7])
    batch = Batch(users=users, idx=users)
    kd = obj.distill_loss("student", batch, 0)
    ref = 0.0
    for u in users.tolist():
        items = obj.draws["student"][0][ds.train.indptr[u] : ds.train.indptr[u + 1]].flatten().long()
        ref += float(
            bd_loss(
                S.z[u, items][None].detach(), torch.from_numpy(t_tab[u])[items][None], 2.0, reduction="sum"
            )
        )
    assert float(kd.detach()) == pytest.approx(ref / 3, rel=1e-9)


def test_fixed_model_is_not_trained_and_has_no_draws():
    ds, T, S, *_ = _setup(seed=7)
    obj = BD(T, S, ds, BDConfig(fixed="teacher", warmup_epochs=0), seed=0)
    obj.on_epoch_start(0)
    assert obj.trained == ("student",) and set(obj.draws) == {"student"}
    batch = _interaction_batch(ds.train, np.array([0, 1]), np.zeros((2, 1), dtype=np.int64) + 29)
    with pytest.raises(ValueError, match="fixed"):
        obj.loss("teacher", batch, 0)


def test_draws_as_negatives_feed_the_base_loss():
    ds, T, S, *_ = _setup(seed=8)
    obj = BD(T, S, ds, BDConfig(warmup_epochs=0, draws_as_negatives=True, n_samples=2))
    obj.on_epoch_start(0)
    idx = np.array([2, 6])
    batch = _interaction_batch(ds.train, idx, np.zeros((2, 1), dtype=np.int64) + 29)
    _, parts = obj.loss("student", batch, 0)
    neg = obj.draws["student"][0][idx][:, :1].long().numpy()
    ref = _interaction_batch(ds.train, idx, neg)
    assert parts["base"] == pytest.approx(float(S.base_loss(ref).detach()))


def test_fresh_draws_every_epoch_from_the_period_distribution():
    """Algorithm 1 lines 6 and 9: two epochs of one period get different, independent draws from
    the same (period-fixed) distribution; ``fresh_draws=False`` reuses the refresh's draws."""
    from scipy.stats import chi2_contingency

    ds, T, S, *_ = _setup(seed=9, n_users=3, n_items=30)
    cfg = BDConfig(n_samples=2000, eps_t=0.05, eps_e=0.1, warmup_epochs=0, period=3)
    obj = BD(T, S, ds, cfg, seed=0)
    obj.on_epoch_start(0)
    assert obj.draws["student"].shape == (3, ds.train.nnz, 2000)
    idx = torch.arange(ds.train.nnz)
    batch = Batch(users=torch.zeros(ds.train.nnz, dtype=torch.long), idx=idx)
    d0 = obj.batch_draws("student", batch, 0)[1]
    obj.on_epoch_start(1)  # same period: no new refresh
    assert obj.n_refresh == 1
    d1 = obj.batch_draws("student", batch, 1)[1]
    assert not torch.equal(d0, d1)
    u = 0
    rows = slice(ds.train.indptr[u], ds.train.indptr[u + 1])
    a = np.bincount(d0[rows].flatten().numpy(), minlength=ds.n_items)
    b = np.bincount(d1[rows].flatten().numpy(), minlength=ds.n_items)
    keep = (a + b) > 0
    assert chi2_contingency(np.stack([a[keep], b[keep]]))[1] > 1e-3  # same distribution
    frozen = BD(T, S, ds, BDConfig(n_samples=5, warmup_epochs=0, period=3, fresh_draws=False), seed=0)
    frozen.on_epoch_start(0)
    assert frozen.draws["student"].shape[0] == 1
    assert torch.equal(frozen.batch_draws("student", batch, 0)[1], frozen.batch_draws("student", batch, 2)[1])
