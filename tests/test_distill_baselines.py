"""RD, CD, RRD, IR-RRD: target choice vs loop references, losses, end-to-end runs, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.conftest import make_toy_dataset

from recdistill.config import make_config as make_run_config
from recdistill.distill import load_distillers
from recdistill.distill.rd import rd_weights, student_ranks_of
from recdistill.distill.teacher import ScoreTeacher
from recdistill.losses import rd_loss, relaxed_permutation_loss
from recdistill.models import BPR
from recdistill.models.base import Batch
from recdistill.runs import distill_run

REG = load_distillers()


@pytest.fixture
def ds():
    return make_toy_dataset(n_users=20, n_items=60, density=0.1, n_candidates=5, seed=1)


def _teacher(ds, seed: int = 0) -> ScoreTeacher:
    g = torch.Generator().manual_seed(seed)
    return ScoreTeacher(torch.randn(ds.n_users, ds.n_items, generator=g))


def _student(ds, dim: int = 4) -> BPR:
    torch.manual_seed(0)
    return BPR(ds.n_users, ds.n_items, dim=dim)


# ---------------------------------------------------------------------------------------- RD
def test_rd_student_ranks_and_weights_vs_loops(ds) -> None:
    st = _student(ds)
    teacher = _teacher(ds)
    items = torch.from_numpy(teacher.topn(ds, 5).astype(np.int64))
    ranks = student_ranks_of(st, ds, items, chunk=7)
    s = st.score_all(torch.arange(ds.n_users)).detach()
    dense = ds.train.toarray() > 0
    for u in range(ds.n_users):
        for r in range(5):
            i = int(items[u, r])
            want = 1 + sum(1 for j in range(ds.n_items) if not dense[u, j] and s[u, j] > s[u, i])
            assert int(ranks[u, r]) == want
    w = rd_weights(ranks, 5, 2.0, 0.1, "hybrid")
    for u in range(3):
        raw = [
            math.exp(-(r + 1) / 2.0) * math.tanh(max(0.1 * (int(ranks[u, r]) - (r + 1)), 0)) for r in range(5)
        ]
        tot = sum(raw)
        want = [x / tot if tot > 0 else 0.0 for x in raw]
        np.testing.assert_allclose(w[u].numpy(), want, rtol=1e-12, atol=1e-15)
    pos = rd_weights(None, 5, 2.0, 0.1, "hybrid")
    np.testing.assert_allclose(pos.sum(1).numpy(), [1.0])


def _tie_rank(s_row, dense_row, i: int) -> int:
    """Loop reference of the rank rule: 1 + unobserved items scored higher, or equal with a lower
    id; 0 for an observed item."""
    if dense_row[i]:
        return 0
    above = [j for j in range(len(s_row)) if s_row[j] > s_row[i] or (s_row[j] == s_row[i] and j < i)]
    return 1 + sum(1 for j in above if not dense_row[j])


def test_rd_student_ranks_with_ties_and_observed_items(ds) -> None:
    st = _student(ds, dim=2)
    with torch.no_grad():  # integer embeddings: many tied scores
        st.user_emb.weight.copy_(torch.randint(-1, 2, st.user_emb.weight.shape).float())
        st.item_emb.weight.copy_(torch.randint(-1, 2, st.item_emb.weight.shape).float())
    items = torch.randint(ds.n_items, (ds.n_users, 8), generator=torch.Generator().manual_seed(0))
    s = st.score_all(torch.arange(ds.n_users)).detach().numpy()
    dense = ds.train.toarray() > 0
    want = np.array([[_tie_rank(s[u], dense[u], int(i)) for i in items[u]] for u in range(ds.n_users)])
    assert (want == 0).any() and len(np.unique(s)) < s.size // 4  # the case is exercised
    for chunk in (None, 3):
        np.testing.assert_array_equal(student_ranks_of(st, ds, items, chunk=chunk).numpy(), want)


def test_rd_objective_is_weighted_sum(ds) -> None:
    rd = REG.get("rd")(_student(ds), _teacher(ds), ds, REG.get("rd").build_config({"alpha": 0.3, "k": 4}))
    rd.on_epoch_start(0)
    batch = Batch(torch.tensor([0, 3, 3]), torch.tensor([1, 2, 3]), torch.tensor([[5], [6], [7]]))
    total, parts = rd.loss("student", batch, 0)
    items = rd.items[batch.users]
    ref_rd = rd_loss(rd.student.score(batch.users, items), rd.w[batch.users], "mean")
    torch.testing.assert_close(parts["RD"], ref_rd.detach())
    torch.testing.assert_close(total, 0.7 * parts["base"] + 0.3 * parts["RD"])
    assert rd.formula() == "L_student = 0.7·L_base + 0.3·L_RD"


# ---------------------------------------------------------------------------------------- CD
def test_cd_draws_from_teacher_top_and_matches_soft_labels(ds) -> None:
    teacher = _teacher(ds)
    cd = REG.get("cd")(
        _student(ds),
        teacher,
        ds,
        REG.get("cd").build_config({"n_samples": 3, "n_top": 40, "rank_temperature": 2.0}),
    )
    cd.on_epoch_start(0)
    top = teacher.topn(ds, 40)
    for u in range(ds.n_users):  # every draw is one of the user's unobserved top-40, distinct
        drawn = cd.samples[u].tolist()
        assert len(set(drawn)) == 3 and set(drawn) <= set(top[u].tolist())
        assert all(ds.train[u, i] == 0 for i in drawn)
    with pytest.raises(ValueError, match="truncates"):
        REG.get("cd").build_config({"n_top": 50, "rank_temperature": 10.0})


# ---------------------------------------------------------------------------------- RRD / IR
def test_rrd_targets_follow_the_definition(ds) -> None:
    teacher = _teacher(ds)
    cls = REG.get("rrd+ir-rrd")
    cfg = cls.build_config(
        {
            "n_top": 10,
            "n_interesting": 4,
            "n_uninteresting": 6,
            "item_n_top": 5,
            "item_n_interesting": 3,
            "item_n_uninteresting": 4,
        }
    )
    d = cls(_student(ds), teacher, ds, cfg)
    d.on_epoch_start(0)
    top_u, top_i = teacher.topn(ds, 10), teacher.topn(ds, 5, "item")
    dense = ds.train.toarray() > 0
    for u in range(ds.n_users):
        inter = d.user.interesting[u].tolist()
        assert set(inter) <= set(top_u[u].tolist())
        assert [top_u[u].tolist().index(i) for i in inter] == sorted(
            top_u[u].tolist().index(i) for i in inter
        )
        for j in d.user.uninteresting[u].tolist():  # from I_u^- minus the top-N
            assert not dense[u, j] and j not in set(top_u[u].tolist())
    for i in range(ds.n_items):
        inter = d.item.interesting[i][d.item.i_valid[i]].tolist()
        assert set(inter) <= set(top_i[i].tolist())
        for v in d.item.uninteresting[i][d.item.u_valid[i]].tolist():
            assert not dense[v, i] and v not in set(top_i[i].tolist())
    # the loss terms are the relaxed permutation losses of those targets
    batch = Batch(torch.tensor([2, 2, 5]), torch.tensor([7, 8, 7]), torch.tensor([[1], [1], [1]]))
    terms = d.kd_terms("student", batch, 0)
    users = torch.tensor([2, 5])
    s = d.student
    want_u = (
        relaxed_permutation_loss(
            s.score(users, d.user.interesting[users]),
            s.score(users, d.user.uninteresting[users]),
            d.user.i_valid[users],
            d.user.u_valid[users],
            "sum",
        )
        / 3
    )
    torch.testing.assert_close(terms["RRD"], want_u)
    items = torch.tensor([7, 8])
    zi = torch.stack([s.score(d.item.interesting[i], torch.full((3, 1), int(i))).squeeze(1) for i in items])
    zu = torch.stack([s.score(d.item.uninteresting[i], torch.full((4, 1), int(i))).squeeze(1) for i in items])
    want_i = relaxed_permutation_loss(zi, zu, d.item.i_valid[items], d.item.u_valid[items], "sum") / 3
    torch.testing.assert_close(terms["IR"], want_i)
    assert d.formula() == "L_student = L_base + 0.001·L_RRD + 0.001·L_IR"


def test_ir_rrd_item_rows_lists_are_the_batch_users_list_items(ds) -> None:
    """``item_rows=lists`` (the IR-RRD authors' rows): the item side distils every distinct item
    of the batch users' RRD lists (interesting and uninteresting), found here by a loop."""
    cls = REG.get("rrd+ir-rrd")
    params = {"n_top": 10, "n_interesting": 4, "n_uninteresting": 6, "item_n_top": 5}
    params |= {"item_n_interesting": 3, "item_n_uninteresting": 4}
    d = cls(_student(ds), _teacher(ds), ds, cls.build_config({**params, "item_rows": "lists"}))
    d.on_epoch_start(0)
    batch = Batch(torch.tensor([2, 2, 5]), torch.tensor([7, 8, 7]), torch.tensor([[1], [1], [1]]))
    users, items = d.batch_rows(batch)
    want: set[int] = set()
    for u in (2, 5):
        for lst, ok in (
            (d.user.interesting[u], d.user.i_valid[u]),
            (d.user.uninteresting[u], d.user.u_valid[u]),
        ):
            want |= {int(i) for i, v in zip(lst.tolist(), ok.tolist()) if v}
    assert users.tolist() == [2, 5] and items.tolist() == sorted(want)
    assert len(want) > 2  # more rows than the batch's positives {7, 8}
    terms = d.kd_terms("student", batch, 0)
    s = d.student
    zi = torch.stack([s.score(d.item.interesting[i], torch.full((3, 1), int(i))).squeeze(1) for i in items])
    zu = torch.stack([s.score(d.item.uninteresting[i], torch.full((4, 1), int(i))).squeeze(1) for i in items])
    want_i = relaxed_permutation_loss(zi, zu, d.item.i_valid[items], d.item.u_valid[items], "sum") / 3
    torch.testing.assert_close(terms["IR"], want_i)
    pos = cls(_student(ds), _teacher(ds), ds, cls.build_config(params))
    pos.on_epoch_start(0)
    assert pos.batch_rows(batch)[1].tolist() == [7, 8]  # the default: the batch's positives
    with pytest.raises(ValueError, match="item_rows: expected one of"):
        cls.build_config({"item_rows": "all"})
    with pytest.raises(ValueError, match="needs user_side=true"):
        REG.get("ir-rrd").build_config({"item_rows": "lists"})


def test_variants_and_teacher_requirements(ds) -> None:
    assert REG.get("ir-rrd").build_config().user_side is False
    assert REG.get("rrd").build_config().item_side is False
    from recdistill.distill.teacher import ListTeacher

    lists = ListTeacher(_teacher(ds).topn(ds, 12), ds.n_items)
    REG.get("rrd")(_student(ds), lists, ds, REG.get("rrd").build_config({"n_top": 12, "n_interesting": 4}))
    with pytest.raises(ValueError, match="needs teacher scores"):
        REG.get("cd")(_student(ds), lists, ds, REG.get("cd").build_config({"n_top": 200}))
    with pytest.raises(ValueError, match="unknown config key 'distill.params.K'"):
        REG.get("rrd").build_config({"K": 3})


# ------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("method", ["rd", "cd", "rrd", "ir-rrd", "rrd+ir-rrd"])
def test_end_to_end_runs_and_is_deterministic(ds, tmp_path, method: str) -> None:
    params = {
        "rd": {"k": 5, "dynamic_start_epoch": 1},
        "cd": {"n_samples": 3, "n_top": 40, "rank_temperature": 2.0},
        "rrd": {"n_top": 10, "n_interesting": 4, "n_uninteresting": 4},
        "ir-rrd": {"item_n_top": 5, "item_n_interesting": 2, "item_n_uninteresting": 3},
        "rrd+ir-rrd": {
            "n_top": 10,
            "n_interesting": 4,
            "n_uninteresting": 4,
            "item_n_top": 5,
            "item_n_interesting": 2,
            "item_n_uninteresting": 3,
        },
    }[method]
    cfg = make_run_config(
        overrides={
            "data": {"name": "toy"},
            "model": {"name": "bpr", "size": None, "dim": 4},
            "train": {
                "epochs": 2,
                "batch_size": 64,
                "progress": False,
                "ks": [5],
                "monitor": "H@5",
                "eval_protocol": "sampled",
            },
            "distill": {"method": method, "params": params},
        }
    )
    assert method in REG
    out = []
    for k in range(2):
        tr, d, metrics = distill_run(
            cfg,
            tmp_path / f"r{k}",
            dataset=ds,
            teacher=_teacher(ds),
            cache_dir=tmp_path / "cache",
            log=lambda s: None,
        )
        out.append({n: p.detach().clone() for n, p in d.student.state_dict().items()})
        assert (tmp_path / f"r{k}" / "student.pt").is_file() and (
            tmp_path / f"r{k}" / "distill.json"
        ).is_file()
    for n in out[0]:
        torch.testing.assert_close(out[0][n], out[1][n], rtol=0, atol=0)
    log = (tmp_path / "r0" / "log.jsonl").read_text()
    assert method.split("+")[0].upper().replace("IR-RRD", "IR") in log or '"IR"' in log
