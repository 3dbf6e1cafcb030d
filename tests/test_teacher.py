"""Teacher sources: top-N lists vs brute force, the cache, file formats and their validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import make_toy_dataset

from recdistill.distill.teacher import (
    ListTeacher,
    ModelTeacher,
    ScoreTeacher,
    load_teacher,
    topn_from_scores,
)
from recdistill.models import BPR


@pytest.fixture
def ds():
    d = make_toy_dataset(n_users=12, n_items=15, density=0.3, n_candidates=3, seed=3)
    d.user_ids = np.array([f"u{k}" for k in range(d.n_users)])
    d.item_ids = np.array([100 + k for k in range(d.n_items)])
    return d


def _scores(ds, seed=0) -> np.ndarray:
    # distinct values, so the order is unique
    rng = np.random.default_rng(seed)
    return rng.permutation(ds.n_users * ds.n_items).reshape(ds.n_users, ds.n_items).astype(np.float32)


def brute_user_topn(scores: np.ndarray, train, n: int) -> np.ndarray:
    out = np.full((scores.shape[0], n), -1, dtype=np.int32)
    dense = train.toarray() > 0
    for u in range(scores.shape[0]):
        cand = [i for i in np.argsort(-scores[u], kind="stable") if not dense[u, i]][:n]
        out[u, : len(cand)] = cand
    return out


def test_user_and_item_topn_match_brute_force(ds) -> None:
    s = _scores(ds)
    t = ScoreTeacher(torch.from_numpy(s))
    for n in (4, 20):  # 20 > number of unobserved items: padded with -1
        got = topn_from_scores(t.score_all, ds, n, "user", chunk=5)
        np.testing.assert_array_equal(got, brute_user_topn(s, ds.train, n))
        got_i = topn_from_scores(t.score_all, ds, n, "item", chunk=5)  # running top-N over chunks
        np.testing.assert_array_equal(got_i, brute_user_topn(s.T, ds.train.T.tocsr(), n))


def test_topn_ties_go_to_the_lower_id_and_unscored_pairs_are_never_listed(ds) -> None:
    s = np.random.default_rng(5).integers(0, 3, size=(ds.n_users, ds.n_items)).astype(np.float32)
    s[np.random.default_rng(6).random(s.shape) < 0.2] = -np.inf  # not scored (a sparse .tsv)
    t = ScoreTeacher(torch.from_numpy(s))
    dense = ds.train.toarray() > 0
    for side, sc, obs in (("user", s, dense), ("item", s.T, dense.T)):
        got = t.topn(ds, 9, side)
        for r in range(sc.shape[0]):  # loop reference: stable sort = ties to the lower id
            cand = [j for j in np.argsort(-sc[r], kind="stable") if not obs[r, j] and np.isfinite(sc[r, j])]
            want = np.full(9, -1)
            want[: min(9, len(cand))] = cand[:9]
            np.testing.assert_array_equal(got[r], want, err_msg=f"{side} {r}")


def test_topn_cache_is_reused_and_keyed(ds, tmp_path: Path, monkeypatch) -> None:
    t = ScoreTeacher(torch.from_numpy(_scores(ds)))
    t.cache_dir = tmp_path  # the teacher owns its cache (the run layer sets it)
    a = t.topn(ds, 5, "user")
    files = list((tmp_path / "teacher_topn").glob("*.npy"))
    assert len(files) == 1 and "user-N5-" in files[0].name
    monkeypatch.setattr(ScoreTeacher, "_topn", lambda *a, **k: pytest.fail("cache not used"))
    np.testing.assert_array_equal(t.topn(ds, 5, "user"), a)
    # a different teacher gets a different key
    t2 = ScoreTeacher(torch.from_numpy(_scores(ds, seed=1)))
    assert t2.fingerprint != t.fingerprint
    monkeypatch.undo()
    t2.cache_dir = tmp_path
    t2.topn(ds, 5, "user")
    assert len(list((tmp_path / "teacher_topn").glob("*.npy"))) == 2
    assert not list((tmp_path / "teacher_topn").glob("*.tmp"))


def test_model_teacher_is_frozen_and_matches_scores(ds) -> None:
    torch.manual_seed(0)
    m = BPR(ds.n_users, ds.n_items, dim=4)
    t = load_teacher(m, ds)
    assert isinstance(t, ModelTeacher) and not any(p.requires_grad for p in m.parameters())
    users = torch.arange(ds.n_users)
    full = t.score_all(users)
    items = torch.tensor([[0, 3], [1, 2]])
    torch.testing.assert_close(t.score(users[:2], items), full[users[:2, None], items])
    np.testing.assert_array_equal(t.topn(ds, 6), brute_user_topn(full.numpy(), ds.train, 6))


# ---------------------------------------------------------------------------------- file formats
def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_score_files_agree(ds, tmp_path: Path) -> None:
    s = _scores(ds)
    np.save(tmp_path / "s.npy", s)
    perm_u, perm_i = (
        np.random.default_rng(1).permutation(ds.n_users),
        np.random.default_rng(2).permutation(ds.n_items),
    )
    np.savez(
        tmp_path / "s.npz",
        scores=s[perm_u][:, perm_i],
        user_ids=ds.user_ids[perm_u],
        item_ids=ds.item_ids[perm_i],
    )
    lines = ["user\titem\tscore"] + [
        f"{ds.user_ids[u]}\t{ds.item_ids[i]}\t{s[u, i]}" for u in range(ds.n_users) for i in range(ds.n_items)
    ]
    _write(tmp_path / "s.tsv", "\n".join(lines) + "\n")
    want = brute_user_topn(s, ds.train, 5)
    for name in ("s.npy", "s.npz", "s.tsv"):
        t = load_teacher(tmp_path / name, ds)
        assert t.has_scores
        np.testing.assert_array_equal(t.topn(ds, 5), want, err_msg=name)
        torch.testing.assert_close(t.score_all(torch.arange(ds.n_users)), torch.from_numpy(s))


def test_list_files_agree_and_drop_observed(ds, tmp_path: Path) -> None:
    s = _scores(ds)
    order = np.argsort(-s, axis=1)[:, :8]  # includes observed items: they must be dropped
    lines = [
        f"{ds.user_ids[u]}\t" + " ".join(str(ds.item_ids[i]) for i in order[u]) for u in range(ds.n_users)
    ]
    _write(tmp_path / "l.txt", "user\titems\n" + "\n".join(lines) + "\n")
    rows = ["user\titem\trank"] + [
        f"{ds.user_ids[u]}\t{ds.item_ids[order[u, r]]}\t{r + 1}" for u in range(ds.n_users) for r in range(8)
    ][::-1]  # any row order
    _write(tmp_path / "r.tsv", "\n".join(rows) + "\n")
    full = brute_user_topn(s, ds.train, 20)
    for name in ("l.txt", "r.tsv"):
        t = load_teacher(tmp_path / name, ds)
        assert isinstance(t, ListTeacher) and not t.has_scores
        got = t.topn(ds, 6)
        for u in range(ds.n_users):
            n_keep = sum(1 for i in order[u] if ds.train[u, i] == 0)
            want = [i for i in full[u] if i in set(order[u])][:6]
            assert got[u, : min(n_keep, 6)].tolist() == want, name
            assert (got[u, min(n_keep, 6) :] == -1).all()
        with pytest.raises(ValueError, match="item-side lists need scores"):
            t.topn(ds, 6, side="item")


@pytest.mark.parametrize(
    "name,text,msg",
    [
        ("a.tsv", "user\titem\tscore\nu0\t100\t1.0\nu0\t999\t2.0\n", r"unknown item id.*line 3: '999'"),
        ("b.tsv", "user\titem\tscore\nu0\t100\t1.0\nzz\t101\t2.0\n", r"unknown user id.*line 3: 'zz'"),
        ("c.tsv", "user\titem\tscore\nu0\t100\tnan\n", r"line 2: score 'nan' is not a finite number"),
        (
            "d.tsv",
            "user\titem\tscore\nu0\t100\t1\nu1\t100\t2\nu0\t100\t3\n",
            r"line 4: duplicate pair \(u0, 100\)",
        ),
        ("e.tsv", "user\titem\trank\nu0\t100\t1\nu0\t101\t1\n", r"line 3: duplicate rank for a user '1'"),
        ("f.tsv", "user\titem\trank\nu0\t100\t1.5\n", r"line 2: rank '1.5' is not an integer >= 1"),
        (
            "g.tsv",
            "user\titem\trank\nu0\t100\t1\nu0\t100\t2\n",
            r"line 3: duplicate item in a user's list '100'",
        ),
        ("h.txt", "u0\t100 101\nu1\t102 103 102\n", r"line 2: duplicate item '102' in the list"),
        ("i.txt", "u0\t100 101\nu1\t102 5\n", r"unknown item id.*line 2: '5'"),
        ("j.txt", "u0\t100\nu0\t101\n", r"line 2: duplicate user 'u0'"),
        # a 4-column file without a header (was a TypeError traceback)
        ("k.tsv", "u0\t100\t1.0\tx\nu1\t101\t2.0\ty\n", r"line 1: 4 tab-separated fields; expected 2"),
        ("l.tsv", "u0\t100 101\nu1\t101\t2.0\n", r"line 2: 3 tab-separated fields; expected 2"),
    ],
)
def test_file_validation_errors(ds, tmp_path: Path, name: str, text: str, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        load_teacher(_write(tmp_path / name, text), ds)


def test_dense_validation_errors(ds, tmp_path: Path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((ds.n_users, ds.n_items + 1), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(12, 16\), expected \(12, 15\)"):
        load_teacher(tmp_path / "bad.npy", ds)
    a = np.zeros((ds.n_users, ds.n_items), dtype=np.float32)
    a[2, 3] = np.inf
    np.save(tmp_path / "inf.npy", a)
    with pytest.raises(ValueError, match="1 non-finite score.*user 2, item 3: inf"):
        load_teacher(tmp_path / "inf.npy", ds)
    np.savez(tmp_path / "m.npz", scores=a[:-1], user_ids=ds.user_ids[:-1])
    with pytest.raises(
        ValueError, match=r"user_ids covers 11 of the dataset's 12 users; missing e.g. \['u11'\]"
    ):
        load_teacher(tmp_path / "m.npz", ds)
    np.savez(tmp_path / "n.npz", scores=a, item_ids=np.arange(ds.n_items))
    with pytest.raises(ValueError, match="unknown item id"):
        load_teacher(tmp_path / "n.npz", ds)
    with pytest.raises(FileNotFoundError, match="teacher not found"):
        load_teacher(tmp_path / "nope.npy", ds)


def test_teacher_from_a_trained_run(ds, tmp_path: Path) -> None:
    from recdistill.config import make_config
    from recdistill.runs import load_teacher as load_run_teacher
    from recdistill.runs import train_run

    cfg = make_config(
        overrides={
            "data": {"name": "toy"},
            "model": {"name": "bpr", "size": None, "dim": 3},
            "train": {"epochs": 1, "progress": False, "ks": [5], "monitor": "H@5"},
        }
    )
    trainer, _ = train_run(cfg, tmp_path / "run", dataset=ds)
    with pytest.raises(ValueError, match="run directory"):  # the data layer never loads runs
        load_teacher(tmp_path / "run", ds)
    t = load_run_teacher(tmp_path / "run", ds)
    assert isinstance(t, ModelTeacher) and t.source == str(tmp_path / "run")
    users = torch.arange(ds.n_users)
    torch.testing.assert_close(t.score_all(users), trainer.models["model"].score_all(users).detach())
