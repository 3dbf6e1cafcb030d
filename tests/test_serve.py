"""Using a model: top-k recommendations against a brute-force reference (ties, training items,
chunks), ``recdistill recommend`` with raw ids, and ``recdistill export`` loaded in a fresh process
(plain NumPy for BPR, TorchScript alone for NeuMF) giving the same top-10 lists."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from conftest import write_log_csv
from recdistill.cli import main
from recdistill.ranking.recommend import top_k
from recdistill.runs import load_run


def _brute(
    scores: np.ndarray, train: sp.csr_matrix | None, k: int
) -> tuple[list[list[int]], list[list[float]]]:
    """Each row's k best columns: scores descending, ties to the lower index, training entries out."""
    items, vals = [], []
    dense = train.toarray() > 0 if train is not None else np.zeros(scores.shape, dtype=bool)
    for u in range(scores.shape[0]):
        order = sorted(
            (j for j in range(scores.shape[1]) if not dense[u, j]), key=lambda j: (-scores[u, j], j)
        )
        items.append(order[:k])
        vals.append([float(scores[u, j]) for j in order[:k]])
    return items, vals


@pytest.mark.parametrize("chunk", [1, 3, 4, None])
def test_top_k_against_brute_force(chunk) -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.standard_normal((9, 13)), 1).astype(np.float32)  # many ties
    scores[2] = 0.0  # a row of ties
    train = sp.random(9, 13, density=0.3, random_state=1, format="lil")
    train[4, :] = 1.0  # a user who saw everything: no item left
    train = train.tocsr()
    dense = torch.from_numpy(scores)
    for keep_train in (False, True):
        items, vals = top_k(
            lambda u: dense[u], 13, torch.arange(9), 5, None if keep_train else train, chunk=chunk
        )
        want_i, want_v = _brute(scores, None if keep_train else train, 5)
        for u in range(9):
            got = [int(x) for x in items[u] if x >= 0]
            assert got == want_i[u], (u, keep_train)
            assert vals[u, : len(got)].tolist() == pytest.approx(want_v[u])
            assert bool((items[u, len(got) :] == -1).all()) and bool(torch.isinf(vals[u, len(got) :]).all())
        assert bool((items[4] == -1).all()) == (not keep_train)  # the user who saw everything
    with pytest.raises(ValueError, match="k=14 is larger than the catalogue"):
        top_k(lambda u: dense[u], 13, torch.arange(2), 14)
    with pytest.raises(ValueError, match="k=0"):
        top_k(lambda u: dense[u], 13, torch.arange(2), 0)
    with pytest.raises(ValueError, match="chunk=-1"):
        top_k(lambda u: dense[u], 13, torch.arange(2), 3, train, chunk=-1)
    with pytest.raises(ValueError, match="user index out of range"):
        top_k(lambda u: dense[u], 13, torch.tensor([9]), 3, train)
    with pytest.raises(ValueError, match="train has 12 items, the scores 13"):
        top_k(lambda u: dense[u], 13, torch.arange(2), 3, train[:, :12])


@pytest.fixture
def log_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECDISTILL_CACHE", str(tmp_path / "cache"))
    return write_log_csv(tmp_path / "log.csv", 30, 50, 8)


def _train(log_csv: Path, out: Path, model: str) -> Path:
    args = ["train", "--dataset", str(log_csv), "--n-candidates", "5", "--model", model, "--dim", "4"]
    args += ["--epochs", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    return out


def test_recommend_api_and_cli(log_csv, tmp_path, capsys) -> None:
    run_dir = _train(log_csv, tmp_path / "bpr", "bpr")
    run = load_run(run_dir)
    frame = run.recommend(["u3", "u7"], k=4)
    assert list(frame.columns) == ["user", "rank", "item", "score"]
    ds = run.dataset
    scores = run.model.score_all(torch.arange(ds.n_users)).detach().numpy()
    want, _ = _brute(scores, ds.train, 4)
    uid = {str(u): i for i, u in enumerate(ds.user_ids.tolist())}
    for user in ("u3", "u7"):
        got = frame[frame.user == user].sort_values("rank")
        assert got["item"].tolist() == [ds.item_ids[j] for j in want[uid[user]]]
    with pytest.raises(ValueError, match="expected a list of ids, got the string 'u3'"):
        run.recommend("u3", k=4)
    kept = run.recommend(["u3"], k=4, exclude_train=False)
    want_keep, _ = _brute(scores, None, 4)
    assert kept["item"].tolist() == [ds.item_ids[j] for j in want_keep[uid["u3"]]]
    # the CLI: --user, --users FILE, --all, --out csv, unknown ids
    capsys.readouterr()
    assert main(["recommend", str(run_dir), "--user", "u3", "--user", "u7", "--k", "4"]) == 0
    printed = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert printed["item"].astype(str).tolist() == frame["item"].astype(str).tolist()
    (tmp_path / "users.txt").write_text("u3\nnobody\nu7\n")
    rc = main(["recommend", str(run_dir), "--users", str(tmp_path / "users.txt")])
    err = capsys.readouterr().err
    assert (
        rc == 2
        and "1 unknown user id(s) not in the run's dataset ('nobody')" in err
        and "Traceback" not in err
    )
    out = tmp_path / "recs.csv"
    args = [
        "recommend",
        str(run_dir),
        "--users",
        str(tmp_path / "users.txt"),
        "--skip-unknown",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert "skipped 1 unknown user id(s)" in capsys.readouterr().err
    assert pd.read_csv(out)["user"].tolist() == ["u3"] * 10 + ["u7"] * 10
    assert main(["recommend", str(run_dir), "--all", "--k", "3", "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 3 * ds.n_users
    assert main(["recommend", str(run_dir), "--all", "--k", str(ds.n_items + 1)]) == 2
    assert "larger than the catalogue" in capsys.readouterr().err


_NUMPY_CONSUMER = """
import json, sys
import numpy as np
d = sys.argv[1]
assert "recdistill" not in sys.modules
m = json.load(open(d + "/manifest.json"))
U, I = np.load(d + "/user_factors.npy"), np.load(d + "/item_factors.npy")
indptr, indices = np.load(d + "/train_indptr.npy"), np.load(d + "/train_indices.npy")
users = [line.split(",", 1)[1] for line in open(d + "/users.csv").read().splitlines()[1:]]
items = [line.split(",", 1)[1] for line in open(d + "/items.csv").read().splitlines()[1:]]
out = {}
for u, raw in enumerate(users):
    s = (U[u] @ I.T).astype(np.float32)
    s[indices[indptr[u]:indptr[u + 1]]] = -np.inf
    order = np.lexsort((np.arange(len(s)), -s))[:10]
    out[raw] = [items[j] for j in order]
print(json.dumps({"n_items": m["n_items"], "lists": out}))
assert "recdistill" not in sys.modules and "torch" not in sys.modules
"""

_TORCHSCRIPT_CONSUMER = """
import json, sys
import numpy as np
import torch
d = sys.argv[1]
f = torch.jit.load(d + "/model.ts")
indptr, indices = np.load(d + "/train_indptr.npy"), np.load(d + "/train_indices.npy")
users = [line.split(",", 1)[1] for line in open(d + "/users.csv").read().splitlines()[1:]]
items = [line.split(",", 1)[1] for line in open(d + "/items.csv").read().splitlines()[1:]]
S = f(torch.arange(len(users))).detach().numpy()
out = {}
for u, raw in enumerate(users):
    s = S[u].astype(np.float32)
    s[indices[indptr[u]:indptr[u + 1]]] = -np.inf
    out[raw] = [items[j] for j in np.lexsort((np.arange(len(s)), -s))[:10]]
print(json.dumps({"lists": out}))
assert "recdistill" not in sys.modules
"""


@pytest.mark.parametrize(
    "model,consumer",
    [("bpr", _NUMPY_CONSUMER), ("neumf", _TORCHSCRIPT_CONSUMER), ("cdae", _TORCHSCRIPT_CONSUMER)],
    ids=["bpr", "neumf", "cdae"],
)
def test_export_round_trip_in_a_fresh_process(log_csv, tmp_path, capsys, model, consumer) -> None:
    run_dir = _train(log_csv, tmp_path / model, model)
    out = tmp_path / "export"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == ("factors" if model == "bpr" else "torchscript")
    assert (
        manifest["model"] == model
        and manifest["dataset"]["fingerprint"] == load_run(run_dir).dataset.fingerprint
    )
    import hashlib

    for name, digest in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    proc = subprocess.run(
        [sys.executable, "-c", consumer, str(out)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    lists = json.loads(proc.stdout)["lists"]
    frame = load_run(run_dir).recommend(None, k=10)
    for user, got in lists.items():
        want = frame[frame.user.astype(str) == user].sort_values("rank")["item"].astype(str).tolist()
        assert got == want, user
    # an existing folder is refused without --fresh; --fresh replaces it whole
    capsys.readouterr()
    assert main(["export", str(run_dir), "--out", str(out)]) == 2
    assert "exists: choose another --out, or --fresh" in capsys.readouterr().err
    (out / "stale.txt").write_text("x")
    assert main(["export", str(run_dir), "--out", str(out), "--fresh"]) == 0
    assert not (out / "stale.txt").exists() and (out / "manifest.json").is_file()


def test_export_and_recommend_need_a_model_file(log_csv, tmp_path, capsys) -> None:
    run_dir = _train(log_csv, tmp_path / "bpr", "bpr")
    (run_dir / "model.pt").unlink()
    capsys.readouterr()
    assert main(["export", str(run_dir), "--out", str(tmp_path / "e")]) == 2
    assert "no saved model" in capsys.readouterr().err
    assert main(["recommend", str(run_dir), "--all"]) == 2
    assert "no saved model" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_export_fresh_replaces_only_an_export(log_csv, tmp_path, capsys) -> None:
    """--fresh never deletes a folder that is not an earlier export, nor the run itself."""
    run_dir = _train(log_csv, tmp_path / "bpr", "bpr")
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    capsys.readouterr()
    assert main(["export", str(run_dir), "--out", str(other), "--fresh"]) == 2
    assert "not an earlier export" in capsys.readouterr().err and (other / "keep.txt").read_text() == "mine"
    for target in (run_dir, run_dir / "sub", tmp_path):
        rc = main(["export", str(run_dir), "--out", str(target), "--fresh"])
        err = capsys.readouterr().err
        assert rc == 2 and ("inside the run" in err or "not an earlier export" in err), err
    assert (run_dir / "model.pt").is_file() and (run_dir / "metrics.json").is_file()
