"""Trainer: determinism, resume after an interruption (bitwise on CPU), files, early stopping,
the objective contract with two models, and the train/evaluate/profile commands on toy data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from recdistill.analysis.profile import profile_model, topk_lists
from recdistill.cli import main
from recdistill.config import make_config
from recdistill.models import build_model
from recdistill.models.base import Batch
from recdistill.runs import load_run, train_run
from recdistill.train import BaseObjective, Trainer


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def cfg(model="bpr", **train):
    sets = [f"train.{k}={v}" for k, v in train.items()]
    base = [
        "train.progress=false",
        "train.ks=[5,10]",
        "train.monitor=H@10",
        "model.dim=8",
        "train.batch_size=64",
        "train.lr=0.01",
        f"model.name={model}",
    ]
    return make_config(sets=base + sets)


@pytest.mark.parametrize("model", ["bpr", "cdae"])
def test_same_seed_same_metrics_other_seed_differs(model, toy_dataset):
    a = train_run(cfg(model, epochs=3), dataset=toy_dataset)[1]
    b = train_run(cfg(model, epochs=3), dataset=toy_dataset)[1]
    c = train_run(cfg(model, epochs=3, seed=1), dataset=toy_dataset)[1]
    assert a["models"] == b["models"]
    assert a["models"] != c["models"]


@pytest.mark.parametrize("model", ["bpr", "cdae"])
def test_resume_after_interruption_is_bitwise_identical(model, toy_dataset, tmp_path):
    c = cfg(model, epochs=5, eval_every=2, patience=50)
    full_tr, full = train_run(c, tmp_path / "full", dataset=toy_dataset)
    part_tr, part = train_run(c, tmp_path / "cut", dataset=toy_dataset, stop_after=3)
    assert part == {} and part_tr.epoch == 3 and not (tmp_path / "cut" / "metrics.json").exists()
    res_tr, resumed = train_run(c, tmp_path / "cut", dataset=toy_dataset, resume=True)
    assert resumed["models"] == full["models"]
    for (k, v), (k2, v2) in zip(
        full_tr.models["model"].state_dict().items(), res_tr.models["model"].state_dict().items()
    ):
        assert k == k2 and torch.equal(v, v2)
    log = [json.loads(line) for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4, 5]
    full_log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log] == [r["loss"] for r in full_log]


def test_run_directory_files_and_load_run(toy_dataset, tmp_path):
    tr, met = train_run(cfg(epochs=4, eval_every=2), tmp_path, dataset=toy_dataset)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint.pt", "config.yaml", "log.jsonl", "metrics.json", "model.pt"]
    m = json.loads((tmp_path / "metrics.json").read_text())["models"]["model"]
    for split in ("valid", "test"):
        for proto in ("full", "sampled"):
            assert set(m[split][proto]) >= {"H@5", "N@10", "M@10"}
    log = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(log) == 4 and "valid" in log[1] and "valid" not in log[0]
    run = load_run(tmp_path, dataset=toy_dataset)
    assert run.config == tr.config
    u = torch.arange(toy_dataset.n_users)
    torch.testing.assert_close(run.model.score_all(u), tr.models["model"].eval().score_all(u))


def test_early_stopping_and_best_state(toy_dataset):
    c = cfg(epochs=200, lr=0.5, patience=2, eval_every=1)  # a huge lr: validation stops improving
    tr, met = train_run(c, dataset=toy_dataset)
    assert tr.stopped and tr.epoch < 200
    best = tr.best["model"]
    assert tr.epoch == best["epoch"] + 2  # stopped after `patience` validations without gain
    assert met["models"]["model"]["valid"]["full"]["H@10"] == pytest.approx(best["valid"]["H@10"])


def test_prune_stops_after_a_validation_and_says_so(toy_dataset):
    """``prune`` sees every validation (epoch, primary, its metrics); True ends the run there as
    an early-stopped one; the mark is part of the checkpointed state."""
    seen = []

    def prune(history):
        seen.append([(e, m["H@10"]) for e, m in history])
        return history[-1][0] == 4

    c = cfg(epochs=20, eval_every=2, patience=50)
    tr, met = train_run(c, dataset=toy_dataset, prune=prune)
    assert [[e for e, _ in h] for h in seen] == [[2], [2, 4]]  # the whole history at each call
    assert tr.epoch == 4 and met["pruned_at"] == 4 and met["early_stopped"]
    assert max(v for _, v in seen[-1]) == pytest.approx(met["models"]["model"]["valid"]["full"]["H@10"])
    _, plain = train_run(c, dataset=toy_dataset)
    assert "pruned_at" not in plain and plain["epochs_run"] == 20
    again = Trainer(dict(tr.models), BaseObjective(dict(tr.models)), toy_dataset, c)
    again.load_state_dict(tr.state_dict())
    assert again.pruned_at == 4 and again.stopped and again.valid_history == tr.valid_history


class TwoModelObjective:
    """A toy distiller: the student also pulls its scores toward the (live) teacher's."""

    def __init__(self, models):
        self.models = models
        self.calls: list[tuple[int, str]] = []
        self.epochs_started: list[int] = []

    def on_epoch_start(self, epoch):
        self.epochs_started.append(epoch)

    def loss(self, name, batch, epoch):
        self.calls.append((epoch, name))
        base = self.models[name].base_loss(batch)
        if name == "teacher":
            return base, {"base": base.detach()}
        items = torch.cat([batch.pos[:, None], batch.neg], 1)
        with torch.no_grad():
            t = self.models["teacher"].score(batch.users, items)
        kd = (self.models["student"].score(batch.users, items) - t).pow(2).mean()
        return base + 0.1 * kd, {"base": base.detach(), "kd": kd.detach()}

    def state_dict(self):
        return {"started": list(self.epochs_started)}

    def load_state_dict(self, state):
        self.epochs_started = list(state["started"])


def test_objective_contract_two_models(toy_dataset, tmp_path):
    torch.manual_seed(0)
    models = {
        "teacher": build_model("bpr", toy_dataset, dim=8),
        "student": build_model("bpr", toy_dataset, dim=2),
    }
    obj = TwoModelObjective(models)
    tr = Trainer(models, obj, toy_dataset, cfg(epochs=2, batch_size=256), tmp_path)
    assert tr.primary == "student"
    met = tr.fit()
    n_batches = math.ceil(toy_dataset.n_train / 256)
    assert obj.calls == [(e, n) for e in range(2) for _ in range(n_batches) for n in ("teacher", "student")]
    assert obj.epochs_started == [0, 1]
    assert set(met["models"]) == {"teacher", "student"}
    assert (tmp_path / "teacher.pt").exists() and (tmp_path / "student.pt").exists()
    log = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert set(log[0]["loss"]["student"]) == {"loss", "base", "kd"}
    assert set(log[0]["valid"]) == {"teacher", "student"}
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["objective"] == {"started": [0, 1]}


def test_default_batches_cover_every_interaction_once(toy_dataset):
    torch.manual_seed(0)
    m = build_model("bpr", toy_dataset, dim=4)
    tr = Trainer({"m": m}, BaseObjective({"m": m}), toy_dataset, cfg(batch_size=37, n_neg=3))
    batches = list(tr.default_batches(0, torch.Generator().manual_seed(0)))
    idx = torch.cat([b.idx for b in batches])
    assert sorted(idx.tolist()) == list(range(toy_dataset.n_train))
    users = torch.cat([b.users for b in batches])
    pos = torch.cat([b.pos for b in batches])
    coo = toy_dataset.train.tocoo()
    assert torch.equal(users, torch.from_numpy(coo.row.astype(np.int64))[idx])
    assert torch.equal(pos, torch.from_numpy(coo.col.astype(np.int64))[idx])
    neg = torch.cat([b.neg for b in batches])
    assert neg.shape == (toy_dataset.n_train, 3)
    assert not toy_dataset.train.toarray()[users[:, None].numpy(), neg.numpy()].any()


def test_user_batches_for_cdae(toy_dataset):
    torch.manual_seed(0)
    m = build_model("cdae", toy_dataset, dim=4)
    tr = Trainer({"m": m}, BaseObjective({"m": m}), toy_dataset, cfg("cdae", batch_size=7))
    batches = list(tr.default_batches(0, torch.Generator().manual_seed(0)))
    users = torch.cat([b.users for b in batches])
    assert sorted(users.tolist()) == list(range(toy_dataset.n_users))
    b: Batch = batches[0]
    deg = np.diff(toy_dataset.train.indptr)[b.users.numpy()]
    assert torch.equal(torch.bincount(b.neg_row, minlength=len(b.users)), torch.from_numpy(deg * 5))
    assert not toy_dataset.train.toarray()[b.users[b.neg_row].numpy(), b.neg.numpy()].any()


def test_topk_lists_match_bruteforce(toy_dataset):
    torch.manual_seed(0)
    m = build_model("bpr", toy_dataset, dim=4).eval()
    top = topk_lists(m, toy_dataset, k=5, batch_size=7)
    scores = m.score_all(torch.arange(toy_dataset.n_users)).detach().double().numpy()
    dense = toy_dataset.train.toarray() > 0
    for u in range(toy_dataset.n_users):  # tiny data: obvious reference
        cand = [i for i in np.argsort(-scores[u], kind="stable") if not dense[u, i]][:5]
        assert top[u].tolist() == cand
    p = profile_model(m, toy_dataset, k=5, repeats=1)
    assert p["n_parameters"] == m.n_parameters and p["topk_time_s"] > 0


def test_cli_train_evaluate_profile(toy_dataset, tmp_path, monkeypatch, capsys):
    import recdistill.runs as runs_pkg
    import recdistill.runs.train as run_mod

    monkeypatch.setattr(run_mod, "load_dataset_for", lambda config: toy_dataset)
    monkeypatch.setattr(runs_pkg, "load_dataset_for", lambda config: toy_dataset)
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--model",
            "bpr",
            "--dim",
            "4",
            "--epochs",
            "2",
            "--out",
            str(out),
            "--no-progress",
            "--set",
            "train.ks=[5,10]",
            "--set",
            "train.monitor=H@10",
        ]
    )
    assert rc == 0 and (out / "metrics.json").exists()
    assert "test:" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--protocol", "sampled", "--json"]) == 0
    printed = capsys.readouterr().out
    stored = json.loads((out / "metrics.json").read_text())["models"]["model"]["test"]["sampled"]
    assert json.loads(printed[printed.index("{") :])["model"]["H@10"] == pytest.approx(stored["H@10"])
    assert main(["profile", str(out), "-k", "5"]) == 0
    assert "parameters" in capsys.readouterr().out
    assert main(["train", "--set", "train.lrr=1", "--out", str(out)]) == 2
    assert "unknown config key 'train.lrr'" in capsys.readouterr().err


def test_resume_with_sparse_checkpoints(toy_dataset, tmp_path):
    c = cfg(epochs=5, eval_every=1, patience=50, checkpoint_every=2)
    _, full = train_run(c, tmp_path / "full", dataset=toy_dataset)
    train_run(c, tmp_path / "cut", dataset=toy_dataset, stop_after=3)  # checkpoint at epoch 2 only
    state = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2
    _, resumed = train_run(c, tmp_path / "cut", dataset=toy_dataset, resume=True)
    assert resumed["models"] == full["models"]
    log = [json.loads(line) for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4, 5]


def test_resume_refuses_a_checkpoint_of_another_split(toy_dataset, tmp_path):
    """A run's checkpoint continues only on the split it was written on (a preset whose split
    changed keeps its run key: the fingerprint of the training matrix catches it)."""
    from conftest import make_toy_dataset
    from recdistill.errors import RecdistillError

    c = cfg("bpr", epochs=4, eval_every=2, patience=50)
    train_run(c, tmp_path / "cut", dataset=toy_dataset, stop_after=2)
    other = make_toy_dataset(seed=9)
    with pytest.raises(RecdistillError, match="was written on another split"):
        train_run(c, tmp_path / "cut", dataset=other, resume=True)
