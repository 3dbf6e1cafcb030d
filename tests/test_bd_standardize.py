"""BD's opt-in ``standardize`` option: per-user logit statistics, the standardised Eq. 3 against a
loop reference, its gradient (gradcheck, float64), its invariance to per-user affine maps of the
logits, and that it is off by default and survives a checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recdistill.distill.bd import BD, BDConfig, bd_refresh
from recdistill.models.base import Batch
from recdistill.ranking import RankEngine
from test_bd import TableModel, _interaction_batch, _setup


def _brute_stats(tab: np.ndarray, train) -> np.ndarray:
    """(n, 2): mean and population std of each row over its unobserved items, by a plain loop."""
    out = np.zeros((tab.shape[0], 2))
    for u in range(tab.shape[0]):
        obs = set(train[u].indices.tolist())
        vals = [tab[u, j] for j in range(tab.shape[1]) if j not in obs]
        mu = sum(vals) / len(vals)
        out[u] = mu, math.sqrt(sum((v - mu) ** 2 for v in vals) / len(vals))
    return out


def _bce(p: float, q: float) -> float:
    return -(q * math.log(p) + (1 - q) * math.log(1 - p))


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_off_by_default_and_no_stats():
    assert BDConfig().standardize is False
    ds, T, S, *_ = _setup(seed=1)
    obj = BD(T, S, ds, BDConfig(warmup_epochs=0), seed=0)
    obj.on_epoch_start(0)
    assert obj.stats == {}


def test_stats_match_brute_force_and_do_not_change_draws():
    ds, T, S, t_tab, s_tab = _setup(seed=2)
    cfg = BDConfig(n_samples=4, eps_t=0.05, eps_e=0.1, chunk=4)
    eng = RankEngine(ds.train, chunk_size=cfg.chunk)
    a = bd_refresh(
        eng, T, S, BDConfig(**{**cfg.__dict__, "standardize": True}), torch.Generator().manual_seed(3)
    )
    b = bd_refresh(eng, T, S, cfg, torch.Generator().manual_seed(3))
    assert all(torch.equal(a.draws[k].index, b.draws[k].index) for k in a.draws)
    assert b.stats_t is None and b.stats_s is None
    for st, tab in ((a.stats_t, t_tab), (a.stats_s, s_tab)):
        assert st is not None and st.dtype == torch.float64 and st.shape == (ds.n_users, 2)
        np.testing.assert_allclose(st.numpy(), _brute_stats(tab, ds.train), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("label_only", [False, True])
def test_standardised_loss_matches_loop_reference(label_only):
    ds, T, S, t_tab, s_tab = _setup(seed=5)
    s_tab *= 0.3  # different per-model scales, as BPR teacher vs student
    S.z.data *= 0.3
    tau = 2.0
    cfg = BDConfig(
        n_samples=3,
        warmup_epochs=0,
        tau=tau,
        label_only_tau=label_only,
        standardize=True,
        lambda_t2s=0.3,
        lambda_s2t=0.7,
    )
    obj = BD(T, S, ds, cfg, seed=1)
    obj.on_epoch_start(0)
    idx = np.array([0, 3, 5, 8])
    batch = _interaction_batch(ds.train, idx, np.zeros((4, 1), dtype=np.int64) + 29)
    st = {"teacher": _brute_stats(t_tab, ds.train), "student": _brute_stats(s_tab, ds.train)}
    users = batch.users.numpy()
    for name, own, other, tab_x, tab_y in (
        ("student", "student", "teacher", s_tab, t_tab),
        ("teacher", "teacher", "student", t_tab, s_tab),
    ):
        items = obj.draws[name][0][idx].long().numpy()  # (4, 3)
        ref = 0.0
        for r in range(4):
            u = users[r]
            for j in items[r]:
                zx = (tab_x[u, j] - st[own][u, 0]) / st[own][u, 1]
                zy = (tab_y[u, j] - st[other][u, 0]) / st[other][u, 1]
                ref += _bce(_sig(zx if label_only else zx / tau), _sig(zy / tau))
        ref /= 4
        # the statistics come from the rank engine's float32 scores: float32-level agreement
        assert float(obj.distill_loss(name, batch, 0).detach()) == pytest.approx(ref, rel=1e-6)
    # user batches (CDAE-style): sum over all of the user's draws, mean over users
    T.batch_unit = S.batch_unit = "user"
    ub = torch.tensor([1, 4, 7])
    ref = 0.0
    for u in ub.tolist():
        for j in obj.draws["student"][0][ds.train.indptr[u] : ds.train.indptr[u + 1]].flatten().tolist():
            zx = (s_tab[u, j] - st["student"][u, 0]) / st["student"][u, 1]
            zy = (t_tab[u, j] - st["teacher"][u, 0]) / st["teacher"][u, 1]
            ref += _bce(_sig(zx if label_only else zx / tau), _sig(zy / tau))
    kd = obj.distill_loss("student", Batch(users=ub, idx=ub), 0)
    assert float(kd.detach()) == pytest.approx(ref / 3, rel=1e-9)


class _FnTable(TableModel):
    """A TableModel whose logits come from an external tensor (for gradcheck)."""

    ext: torch.Tensor | None = None

    def score_all(self, users):
        return (self.z if self.ext is None else self.ext)[users]

    def score(self, users, items):
        return (self.z if self.ext is None else self.ext)[users[:, None], items]


def test_standardised_loss_gradcheck_and_only_the_learner_gets_gradients():
    ds, _, _, t_tab, s_tab = _setup(seed=7)
    T, S = _FnTable(t_tab), _FnTable(2.5 * s_tab + 1.0)
    obj = BD(T, S, ds, BDConfig(n_samples=3, warmup_epochs=0, standardize=True), seed=2)
    obj.on_epoch_start(0)
    idx = np.arange(0, ds.train.nnz, 2)
    batch = _interaction_batch(ds.train, idx, np.zeros((len(idx), 1), dtype=np.int64))
    for name, model in (("teacher", T), ("student", S)):

        def f(z, model=model, name=name):
            model.ext = z
            try:
                return obj.distill_loss(name, batch, 0)
            finally:
                model.ext = None

        z0 = model.z.detach().clone().requires_grad_(True)
        assert torch.autograd.gradcheck(f, (z0,), eps=1e-6, atol=1e-8)
    T.zero_grad()
    S.zero_grad()
    obj.distill_loss("teacher", batch, 0).backward()
    assert T.z.grad is not None and S.z.grad is None


def test_standardised_loss_is_invariant_to_per_user_affine_maps():
    """Draws (ranks) and the standardised loss do not change when each user's logits of a model
    are scaled by a > 0 and shifted; the paper's loss does."""
    ds, _, _, t_tab, s_tab = _setup(seed=8)
    rng = np.random.default_rng(0)
    a = rng.uniform(0.2, 5.0, (ds.n_users, 1))
    b = rng.normal(0, 3.0, (ds.n_users, 1))
    idx = np.arange(ds.train.nnz)
    batch = _interaction_batch(ds.train, idx, np.zeros((len(idx), 1), dtype=np.int64))
    losses = {}
    for std in (False, True):
        for tag, s in (("plain", s_tab), ("affine", a * s_tab + b)):
            obj = BD(
                TableModel(t_tab),
                TableModel(s),
                ds,
                BDConfig(n_samples=4, warmup_epochs=0, standardize=std),
                seed=3,
            )
            obj.on_epoch_start(0)
            losses[std, tag] = (
                obj.draws,
                float(obj.distill_loss("teacher", batch, 0).detach()),
                float(obj.distill_loss("student", batch, 0).detach()),
            )
    for std in (False, True):
        assert all(
            torch.equal(losses[std, "plain"][0][k], losses[std, "affine"][0][k])
            for k in ("teacher", "student")
        )
    # statistics from the engine's float32 scores: invariant to float32 precision
    assert losses[True, "plain"][1:] == pytest.approx(losses[True, "affine"][1:], rel=1e-6)
    assert losses[False, "plain"][1] != pytest.approx(losses[False, "affine"][1], rel=1e-3)


def test_stats_survive_a_checkpoint():
    ds, T, S, *_ = _setup(seed=9)
    obj = BD(T, S, ds, BDConfig(n_samples=2, warmup_epochs=0, standardize=True), seed=0)
    obj.on_epoch_start(0)
    state = obj.state_dict()
    fresh = BD(T, S, ds, BDConfig(n_samples=2, warmup_epochs=0, standardize=True), seed=0)
    fresh.load_state_dict(state)
    assert set(fresh.stats) == {"teacher", "student"}
    assert all(torch.equal(fresh.stats[k], obj.stats[k]) for k in obj.stats)
    fresh2 = BD(T, S, ds, BDConfig(n_samples=2, warmup_epochs=0, standardize=True), seed=0)
    with pytest.raises(RuntimeError, match="no logit statistics"):
        fresh2._standardize("teacher", torch.zeros(2, 1), torch.tensor([[0], [1]]))


def test_run_bd_with_standardize_resumes_like_uninterrupted(tmp_path):
    from conftest import make_toy_dataset, run_bd
    from test_bd_run import _config

    ds = make_toy_dataset(n_users=40, n_items=60, density=0.1, seed=11)
    bd = BDConfig(warmup_epochs=1, period=2, n_samples=2, standardize=True)
    _, full, _ = run_bd(_config(epochs=4), bd, tmp_path / "full", dataset=ds, teacher_dim=6, student_dim=2)
    assert set(full.stats) == {"teacher", "student"}
    cfg = _config(epochs=4)
    run_bd(cfg, bd, tmp_path / "cut", dataset=ds, teacher_dim=6, student_dim=2, stop_after=2)
    _, resumed, _ = run_bd(cfg, bd, tmp_path / "cut", dataset=ds, teacher_dim=6, student_dim=2, resume=True)
    _, plain, _ = run_bd(
        _config(epochs=4),
        BDConfig(warmup_epochs=1, period=2, n_samples=2),
        None,
        dataset=ds,
        teacher_dim=6,
        student_dim=2,
    )
    for name in ("teacher", "student"):
        for v, w in zip(
            full.all_models[name].state_dict().values(), resumed.all_models[name].state_dict().values()
        ):
            assert torch.equal(v, w)
    # the option changes training (same seed, same draws, a different loss)
    assert not all(
        torch.equal(v, w)
        for v, w in zip(
            full.all_models["student"].state_dict().values(),
            plain.all_models["student"].state_dict().values(),
        )
    )
