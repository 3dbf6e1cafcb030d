"""DCD (paper 000, Sec. 2.3): the correction draws against brute-force ranks and discrepancies
(chi-square), their order and sides, the deterministic ablation, the UCD/ICD losses against the
relaxed permutation loss, the period, the ablation formulas and the teacher requirement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from conftest import make_toy_dataset
from recdistill.distill import load_distillers
from recdistill.distill.teacher import ListTeacher, ScoreTeacher
from recdistill.losses import relaxed_permutation_loss
from recdistill.models import BPR
from recdistill.models.base import Batch
from recdistill.ranking import TeacherRanks

REG = load_distillers()
MU = 0.05  # large enough that tanh does not saturate on 40 items


def _setup(lists: np.ndarray | None = None, **params):  # type: ignore[no-untyped-def]
    """Toy data, a random score teacher (or ``lists`` as a ranked-list teacher), a BPR student."""
    ds = make_toy_dataset(n_users=12, n_items=40, density=0.2, n_candidates=2, seed=4)
    rng = np.random.default_rng(1)
    t = torch.from_numpy(rng.standard_normal((ds.n_users, ds.n_items)).astype(np.float32))
    torch.manual_seed(0)
    s = BPR(ds.n_users, ds.n_items, dim=3)
    with torch.no_grad():
        s.user_emb.weight.normal_(0, 1)
        s.item_emb.weight.normal_(0, 1)
    cls = REG.get("dcd")
    base = {
        "mu": MU,
        "n_under": 3,
        "n_over": 3,
        "item_n_under": 2,
        "item_n_over": 2,
        "n_top": 20,
        "n_interesting": 4,
        "n_uninteresting": 4,
        "item_n_top": 8,
        "item_n_interesting": 3,
        "item_n_uninteresting": 3,
    }
    teacher = ScoreTeacher(t) if lists is None else ListTeacher(lists, ds.n_items)
    d = cls(s, teacher, ds, cls.build_config({**base, **params}), seed=0)
    return ds, t.numpy(), s, d


def _ranks(scores: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Brute force: 1 + the unobserved entries scoring higher (ties to the lower id); 0 observed."""
    out = np.zeros(scores.shape, dtype=np.int64)
    for r in range(scores.shape[0]):
        cand = [j for j in range(scores.shape[1]) if not observed[r, j]]
        for j in cand:
            out[r, j] = 1 + sum(
                scores[r, k] > scores[r, j] or (scores[r, k] == scores[r, j] and k < j) for k in cand
            )
    return out


def _assert_first_under_draw_follows(d, u: int, w: np.ndarray, n: int = 3000) -> None:  # type: ignore[no-untyped-def]
    """User ``u``'s first underestimation draw over ``n`` refreshes has law ``w / w.sum()``
    (chi-square), and never an entry of weight 0."""
    p = w / w.sum()
    counts = np.zeros(len(w))
    for _ in range(n):
        d.refresh()
        counts[int(d.corr["user.under"][u, 0])] += 1
    assert counts[p == 0].sum() == 0
    keep = p > 0
    assert chisquare(counts[keep], n * p[keep]).pvalue > 1e-3


def _student_scores(s: BPR) -> np.ndarray:
    return (s.user_emb.weight @ s.item_emb.weight.T).detach().numpy()


@pytest.mark.parametrize("which", ["under", "over"])
def test_first_correction_draw_follows_the_discrepancy(which: str) -> None:
    ds, t, s, d = _setup(n_under=1, n_over=1, item_correction=False)
    obs = ds.train.toarray() > 0
    rt, rs = _ranks(t, obs), _ranks(_student_scores(s), obs)
    diff = (rs - rt) if which == "under" else (rt - rs)  # D(S,T) underestimation, D(T,S) over
    u = 0
    w = np.where(~obs[u], np.tanh(np.maximum(MU * diff[u], 0)), 0.0)
    p = w / w.sum()
    counts = np.zeros(ds.n_items)
    n = 3000
    for _ in range(n):
        d.refresh()
        counts[int(d.corr[f"user.{which}"][u, 0])] += 1
    assert counts[obs[u]].sum() == 0 and counts[p == 0].sum() == 0
    keep = p > 0
    assert chisquare(counts[keep], n * p[keep]).pvalue > 1e-3


def test_under_draws_are_sorted_by_the_teacher_and_sides_use_their_own_ranks() -> None:
    ds, t, s, d = _setup()
    d.on_epoch_start(0)
    obs = ds.train.toarray() > 0
    rt = _ranks(t, obs)
    rt_item = _ranks(t.T.copy(), obs.T.copy())
    for u in range(ds.n_users):
        rho = d.corr["user.under"][u].tolist()
        assert len(set(rho)) == 3 and not obs[u, rho].any()
        assert [rt[u, j] for j in rho] == sorted(rt[u, j] for j in rho)  # ρ^u: the teacher's order
        assert not obs[u, d.corr["user.over"][u].tolist()].any()
    for i in range(ds.n_items):
        rho = d.corr["item.under"][i].tolist()  # users, by the item-side teacher ranks
        assert not obs[rho, i].any()
        assert [rt_item[i, v] for v in rho] == sorted(rt_item[i, v] for v in rho)


def test_without_sampling_takes_the_largest_errors() -> None:
    ds, t, s, d = _setup(correction_sampling=False, item_correction=False)
    d.on_epoch_start(0)
    obs = ds.train.toarray() > 0
    rt, rs = _ranks(t, obs), _ranks(_student_scores(s), obs)
    for u in range(ds.n_users):
        w = np.where(~obs[u], np.tanh(np.maximum(MU * (rs[u] - rt[u]), 0)), -1.0)
        top = sorted(np.argsort(-w, kind="stable")[:3].tolist(), key=lambda j: rt[u, j])
        assert d.corr["user.under"][u].tolist() == top


def test_ucd_and_icd_are_relaxed_permutation_losses_of_the_corrections() -> None:
    ds, t, s, d = _setup()
    d.on_epoch_start(0)
    batch = Batch(torch.tensor([1, 1, 4]), torch.tensor([5, 9, 5]), torch.tensor([[0], [0], [0]]))
    terms = d.kd_terms("student", batch, 0)
    users = torch.tensor([1, 4])
    rho, over = d.corr["user.under"][users].long(), d.corr["user.over"][users].long()
    want = relaxed_permutation_loss(s.score(users, rho), s.score(users, over), reduction="sum") / 3
    torch.testing.assert_close(terms["UCD"], want)
    items = torch.tensor([5, 9])
    loop = 0.0
    for i in items.tolist():  # one item at a time, users as the list
        r, o = d.corr["item.under"][i].long(), d.corr["item.over"][i].long()
        zr = s.score(r, torch.full((len(r), 1), i)).squeeze(1)
        zo = s.score(o, torch.full((len(o), 1), i)).squeeze(1)
        loop += float(relaxed_permutation_loss(zr[None], zo[None], reduction="sum").detach())
    assert float(terms["ICD"].detach()) == pytest.approx(loop / 3, rel=1e-6)
    assert set(terms) == {"RRD", "UCD", "ICD"}  # Eq. 9: no IR-RRD term
    assert d.formula() == "L_student = L_base + 0.001·L_RRD + 0.001·L_UCD + 0.001·L_ICD"
    _, _, _, with_ir = _setup(item_side=True)  # the objective recorded before issue #33
    assert set(with_ir.kd_terms("student", batch, 0)) == {"RRD", "IR", "UCD", "ICD"}
    assert with_ir.formula() == "L_student = L_base + 0.001·L_RRD + 0.001·L_IR + 0.001·L_UCD + 0.001·L_ICD"


def test_corrections_refresh_every_period_only() -> None:
    ds, t, s, d = _setup(period=3)
    d.on_epoch_start(0)
    first = d.corr["user.under"].clone()
    d.on_epoch_start(1)
    d.on_epoch_start(2)
    assert d.n_refresh == 1 and torch.equal(d.corr["user.under"], first)
    d.on_epoch_start(3)
    assert d.n_refresh == 2


def test_kept_teacher_ranks_leave_the_corrections_unchanged() -> None:
    """The frozen teacher is ranked once per side; the student's later refreshes draw what a DCD
    that ranks the teacher every time draws."""
    _, _, s, kept = _setup()
    _, _, s2, every = _setup()
    every.teacher_ranks = TeacherRanks(max_bytes=0)
    for step in range(2):
        kept.refresh()
        every.refresh()
        for key in kept.corr:
            assert torch.equal(kept.corr[key], every.corr[key]), (step, key)
        with torch.no_grad():  # the student moves between refreshes
            for m in (s, s2):
                m.user_emb.weight.mul_(-1.0)
    assert set(kept.teacher_ranks.ranks) == {"user", "item"} and every.teacher_ranks.ranks == {}


def test_ablations_are_settings() -> None:
    for params, terms in (({"user_correction": False}, "ICD"), ({"item_correction": False}, "UCD")):
        _, _, _, d = _setup(**params)
        assert terms in d.formula() and ("UCD" if terms == "ICD" else "ICD") not in d.formula()
    _, _, _, plain = _setup(user_correction=False, item_correction=False)
    assert plain.formula() == "L_student = L_base + 0.001·L_RRD"  # λ's 0: "corresponds to RRD"
    _, _, _, plain = _setup(user_correction=False, item_correction=False, item_side=True)
    assert plain.formula() == "L_student = L_base + 0.001·L_RRD + 0.001·L_IR"  # = RRD + IR-RRD
    plain.on_epoch_start(0)
    assert plain.corr == {}
    _, _, _, top = _setup(sample_interesting=False)
    top.on_epoch_start(0)
    top.on_epoch_start(1)
    lists = top.teacher.topn(top.dataset, 20)
    assert top.user.interesting[0].tolist() == lists[0, :4].tolist()  # the teacher's top K, no draw


def test_a_list_teacher_needs_scores_for_the_item_side_only() -> None:
    ds = make_toy_dataset(n_users=12, n_items=40, density=0.2, n_candidates=2, seed=4)
    lists = np.tile(np.arange(10, dtype=np.int32), (ds.n_users, 1))
    for params in ({}, {"item_side": True}, {"item_side": True, "item_correction": False}):
        with pytest.raises(ValueError, match="item side needs teacher scores.*item_correction=false"):
            REG.get("dcd")(
                BPR(ds.n_users, ds.n_items, dim=3),
                ListTeacher(lists, ds.n_items),
                ds,
                REG.get("dcd").build_config(params),
            )


def test_a_list_teacher_with_complete_lists_corrects_as_its_scores_do() -> None:
    """Lists holding every item in the teacher's order: the same RRD and UCD draws as the score
    teacher, bitwise (the user side ranks the lists; observed items are dropped from them)."""
    user_only = {"item_side": False, "item_correction": False}
    ds, t, s, scored = _setup(**user_only)
    order = np.argsort(-t, axis=1, kind="stable").astype(np.int32)  # (n_users, n_items)
    _, _, _, listed = _setup(order, **user_only)
    for epoch in range(2):
        scored.on_epoch_start(epoch)
        listed.on_epoch_start(epoch)
        for key, v in scored.targets().items():
            assert torch.equal(v, listed.targets()[key]), (epoch, key)
    assert set(listed.corr) == {"user.under", "user.over"}
    assert listed.formula() == "L_student = L_base + 0.001·L_RRD + 0.001·L_UCD"


def test_a_list_teacher_draws_against_the_midrank_of_its_unlisted_items() -> None:
    """Short lists: the first underestimation draw of a user follows D(S,T) with the listed items
    ranked 1..L and the rest at the midrank of L+1..n_u (chi-square)."""
    ds, t, s, _ = _setup()
    obs = ds.train.toarray() > 0
    order = np.argsort(-t, axis=1, kind="stable")
    lists = np.stack([[j for j in row if not o[j]][:6] for row, o in zip(order, obs)]).astype(np.int32)
    _, _, _, d = _setup(lists, n_under=1, n_over=1, item_side=False, item_correction=False)
    u = 0
    n_u = int((~obs[u]).sum())
    rt = np.full(ds.n_items, (6 + 1 + n_u) // 2)
    rt[lists[u]] = np.arange(1, 7)
    rs = _ranks(_student_scores(s), obs)[u]
    w = np.where(~obs[u], np.tanh(np.maximum(MU * (rs - rt), 0)), 0.0)
    _assert_first_under_draw_follows(d, u, w)


def test_bad_values_are_one_line() -> None:
    for bad, key in (({"mu": 0}, "mu"), ({"n_under": 0}, "n_under"), ({"lambda_ucd": -1}, "lambda_ucd")):
        with pytest.raises(ValueError, match=key):
            REG.get("dcd").build_config(bad)
    assert math.isclose(REG.get("dcd").build_config({}).mu, 1e-3)


@pytest.mark.parametrize("side", ["user", "item"])
def test_fig1a_discrepancy_against_brute_force(side: str) -> None:
    from recdistill.analysis.discrepancy import top_discrepancy

    ds, t, s, _ = _setup()
    obs = ds.train.toarray() > 0
    tt, ss = t, _student_scores(s)
    if side == "item":
        tt, ss, obs = tt.T.copy(), ss.T.copy(), obs.T.copy()
    rt, rs = _ranks(tt, obs), _ranks(ss, obs)
    n = 5
    per_row = []
    for r in range(rt.shape[0]):
        top = [j for j in range(rt.shape[1]) if 0 < rt[r, j] <= n]
        per_row.append(np.mean([abs(rs[r, j] - rt[r, j]) for j in top]))
    got = top_discrepancy(torch.from_numpy(t), s, ds, n, side)
    assert got == pytest.approx(float(np.mean(per_row)), rel=1e-12)


def test_fig1a_cli_writes_table_json_and_png(tmp_path) -> None:
    from recdistill.cli import main

    log = tmp_path / "log.csv"
    rng = np.random.default_rng(0)
    rows = [f"u{u},i{i},{k}" for u in range(30) for k, i in enumerate(rng.choice(50, 8, replace=False))]
    log.write_text("user,item,ts\n" + "\n".join(rows) + "\n")
    common = [
        "--dataset",
        str(log),
        "--n-candidates",
        "5",
        "--epochs",
        "2",
        "--no-progress",
        "--set",
        "train.ks=[5]",
        "--set",
        "train.monitor=H@5",
    ]
    assert main(["train", *common, "--dim", "6", "--out", str(tmp_path / "t")]) == 0
    assert main(["train", *common, "--dim", "2", "--out", str(tmp_path / "s")]) == 0
    assert (
        main(
            [
                "analyze",
                "discrepancy",
                "--teacher",
                str(tmp_path / "t"),
                "--student",
                f"S={tmp_path / 's'}",
                "--n",
                "10",
                "--out",
                str(tmp_path / "fig"),
            ]
        )
        == 0
    )
    assert (tmp_path / "fig" / "discrepancy.png").stat().st_size > 0
    assert "| S |" in (tmp_path / "fig" / "discrepancy.md").read_text()


def test_cli_dcd_from_a_ranked_list_file(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``recdistill distill --method dcd --teacher lists.txt``: user side only runs; the item side
    is refused in one line."""
    from recdistill.cli import main

    log = tmp_path / "log.csv"
    rng = np.random.default_rng(0)
    picks = [rng.choice(50, 8, replace=False) for _ in range(30)]
    log.write_text(
        "user,item,ts\n" + "".join(f"u{u},i{i},{k}\n" for u, p in enumerate(picks) for k, i in enumerate(p))
    )
    known = np.unique(np.concatenate(picks))
    lists = tmp_path / "lists.txt"  # another library's top-20 per user, raw ids, best first
    lists.write_text(
        "".join(f"u{u}\t{' '.join(f'i{i}' for i in rng.permutation(known)[:20])}\n" for u in range(30))
    )
    common = ["distill", "--method", "dcd", "--teacher", str(lists), "--dataset", str(log)]
    common += ["--n-candidates", "5", "--dim", "2", "--epochs", "2", "--no-progress"]
    common += ["--set", "train.ks=[5]", "--set", "train.monitor=H@5"]
    small = ["distill.params.n_top=10", "distill.params.n_interesting=3", "distill.params.n_uninteresting=3"]
    small += ["distill.params.n_under=3", "distill.params.n_over=3"]
    sets = [a for kv in small for a in ("--set", kv)]
    user_only = ["--set", "distill.params.item_side=false", "--set", "distill.params.item_correction=false"]
    assert main([*common, *sets, *user_only, "--out", str(tmp_path / "ok")]) == 0
    assert (tmp_path / "ok" / "metrics.json").exists()
    capsys.readouterr()
    assert main([*common, *sets, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "item side needs teacher scores" in err


def test_teacher_top_candidates_draw_inside_the_teachers_top_n() -> None:
    """``candidates=teacher_top``: every draw (both sides, both lists) lies in the row's
    teacher top-n unobserved entries, and the first draw follows D over those entries only, with
    D from the ranks over every unobserved entry (chi-square)."""
    n_cand = 10
    ds, t, s, d = _setup(candidates="teacher_top", n_candidates=n_cand, n_under=1, n_over=1)
    obs = ds.train.toarray() > 0
    rt, rs = _ranks(t, obs), _ranks(_student_scores(s), obs)
    rt_item = _ranks(t.T.copy(), obs.T.copy())
    d.refresh()
    for u in range(ds.n_users):
        for which in ("under", "over"):
            j = d.corr[f"user.{which}"][u].tolist()
            assert all(1 <= rt[u, x] <= n_cand for x in j)
    for i in range(ds.n_items):
        for which in ("under", "over"):
            v = d.corr[f"item.{which}"][i].tolist()
            assert all(1 <= rt_item[i, x] <= n_cand for x in v)
    u = 0
    cand = (rt[u] >= 1) & (rt[u] <= n_cand)
    w = np.where(cand, np.tanh(np.maximum(MU * (rs[u] - rt[u]), 0)), 0.0)
    assert (w > 0).sum() >= 2, "the test needs a row with several underestimated candidates"
    _assert_first_under_draw_follows(d, u, w)
    # the shares logged per refresh: every draw inside the top n_cand <= 50
    assert d.draw_shares and all(x["top50"] == 1.0 and x["top500"] == 1.0 for x in d.draw_shares)
    assert d.run_metrics()["draw_shares"] == d.draw_shares


def test_draw_shares_against_brute_force() -> None:
    from recdistill.distill.dcd import draw_shares

    r = torch.tensor([[1, 50, 51, 499], [500, 501, 7000, 2]], dtype=torch.int32)
    got = draw_shares(r)
    flat = sorted(r.reshape(-1).tolist())
    assert got["top50"] == pytest.approx(sum(x <= 50 for x in flat) / 8)
    assert got["top500"] == pytest.approx(sum(x <= 500 for x in flat) / 8)
    assert got["median_rank"] == flat[3]  # torch's median: the lower of the two middle values
    _, _, _, d = _setup()
    d.refresh()  # all unobserved entries: shares below 1 on 40 items with top-50 = everything
    assert {(x["side"], x["list"]) for x in d.draw_shares} == {
        ("user", "under"),
        ("user", "over"),
        ("item", "under"),
        ("item", "over"),
    }


def test_candidates_bad_values_are_one_line() -> None:
    with pytest.raises(ValueError, match="distill.params.candidates: expected one of"):
        _setup(candidates="top")
    with pytest.raises(ValueError, match="distill.params.n_candidates: expected an integer >= 1"):
        _setup(candidates="teacher_top", n_candidates=0)


def test_draw_sizes_beyond_the_catalogue_are_refused_and_clipped_ones_said() -> None:
    """``n_under`` larger than the catalogue (was: ran without a word, drawing fewer) is an error;
    larger than the sparsest row's unobserved entries is drawn as far as it goes, and said."""
    with pytest.raises(
        ValueError,
        match=r"distill.params.n_under: 100,000 distinct draws per user asked, but there are only 40 items",
    ):
        _setup(n_under=100000)
    with pytest.raises(
        ValueError, match=r"item_n_over: 50 distinct draws per item asked, but there are only 12 users"
    ):
        _setup(item_n_over=50)
    with pytest.raises(ValueError, match=r"n_over: 11 .* only n_candidates = 10"):
        _setup(candidates="teacher_top", n_candidates=10, n_over=11)
    ds, _, _, d = _setup(n_under=39, item_correction=False)
    room = int(ds.n_items - np.diff(ds.train.indptr).max())
    assert room < 39
    with pytest.warns(
        UserWarning, match=rf"user side: 39 draws per row asked, the sparsest row has {room} entries"
    ):
        d.refresh()
    assert d.corr["user.under"].shape == (ds.n_users, room)


def test_teacher_top_with_k_equal_to_n_draws_exactly_the_teachers_top_n() -> None:
    """With as many draws as candidates, each row's draws are exactly its teacher top n (so the
    cut-off is ``rank <= n``, not ``< n``), on both sides and both lists."""
    n = 6
    ds, t, s, d = _setup(
        candidates="teacher_top", n_candidates=n, n_under=n, n_over=n, item_n_under=n, item_n_over=n
    )
    obs = ds.train.toarray() > 0
    rt, rt_item = _ranks(t, obs), _ranks(t.T.copy(), obs.T.copy())
    d.refresh()
    for u in range(ds.n_users):
        want = set(np.flatnonzero((rt[u] >= 1) & (rt[u] <= n)).tolist())
        for which in ("under", "over"):
            assert set(d.corr[f"user.{which}"][u].tolist()) == want
    for i in range(ds.n_items):
        want = set(np.flatnonzero((rt_item[i] >= 1) & (rt_item[i] <= n)).tolist())
        assert set(d.corr["item.under"][i].tolist()) == want


def test_logged_draw_shares_are_those_of_the_drawn_entries() -> None:
    ds, t, s, d = _setup()
    obs = ds.train.toarray() > 0
    rt, rt_item = _ranks(t, obs), _ranks(t.T.copy(), obs.T.copy())
    d.refresh()
    for entry in d.draw_shares:
        drawn = d.corr[f"{entry['side']}.{entry['list']}"].numpy()
        ranks = np.array(
            [[(rt if entry["side"] == "user" else rt_item)[r, j] for j in row] for r, row in enumerate(drawn)]
        ).reshape(-1)
        assert entry["top50"] == pytest.approx((ranks <= 50).mean(), abs=1e-6)
        assert entry["top500"] == pytest.approx((ranks <= 500).mean(), abs=1e-6)
        assert entry["median_rank"] == float(np.sort(ranks)[(len(ranks) - 1) // 2])
    # part of the checkpoint: a resumed run keeps the shares of the refreshes before it
    _, _, _, resumed = _setup()
    resumed.load_state_dict(d.state_dict())
    assert resumed.draw_shares == d.draw_shares and resumed.run_metrics()["draw_shares"] == d.draw_shares


def test_teacher_top_needs_scores() -> None:
    ds = make_toy_dataset(n_users=12, n_items=40, density=0.2, n_candidates=2, seed=4)
    lists = np.tile(np.arange(10, dtype=np.int32), (ds.n_users, 1))
    params = {"item_side": False, "item_correction": False, "candidates": "teacher_top", "n_candidates": 20}
    with pytest.raises(ValueError, match="candidates=teacher_top needs the teacher's exact top 20"):
        REG.get("dcd")(
            BPR(ds.n_users, ds.n_items, dim=3),
            ListTeacher(lists, ds.n_items),
            ds,
            REG.get("dcd").build_config(params),
        )
