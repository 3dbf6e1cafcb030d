"""The rank-difference report and the `recdistill analyze rank-diff` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import make_toy_dataset
from recdistill.analysis.report import rank_diff_report
from recdistill.cli import main
from recdistill.config import make_config
from recdistill.models import build_model
from recdistill.models.store import save_model
from recdistill.runs import load_dataset_for, write_config


def test_report_matches_its_parts(tmp_path):
    ds = make_toy_dataset(n_users=30, n_items=50, seed=2)
    torch.manual_seed(0)
    t, s = build_model("bpr", ds, dim=8), build_model("bpr", ds, dim=2)
    rep = rank_diff_report(t, s, ds, tmp_path, scatter_users=10)
    z = np.load(tmp_path / "rank_diff.npz")
    diff = z["rank_t"] - z["rank_s"]
    assert rep["student_better_share"] == pytest.approx((diff > 0).mean())
    assert rep["average_rank_difference_eq6"] == pytest.approx(np.abs(diff).sum() / (30 * 50))
    # the ranks are the evaluator's (full protocol, average ties): 1 + #higher candidates
    u = int(z["users"][3])
    with torch.no_grad():
        row = t.score_all(torch.tensor([u]))[0].numpy()
    cand = [j for j in range(50) if j not in set(ds.train[u].indices) and j != ds.valid_items[u]]
    item = ds.test_items[u]
    assert z["rank_t"][3] == 1 + sum(row[j] > row[item] for j in cand) + 0.5 * sum(
        row[j] == row[item] for j in cand if j != item
    )
    assert json.loads((tmp_path / "summary.json").read_text()) == rep
    for png in ("rank_diff.png", "rank_scatter.png"):
        assert (tmp_path / png).stat().st_size > 0


def test_cli_rank_diff_before_and_after(data_dir, tmp_path, capsys):
    common = {
        "data": {"name": "ml-100k", "data_dir": str(data_dir)},
        "train": {"epochs": 1, "progress": False, "ks": [10, 50], "monitor": "H@50"},
    }
    ds = None
    for name, dim in (("t", 16), ("s", 2)):  # untrained runs: a config and a saved model
        cfg = make_config(overrides={**common, "model": {"name": "bpr", "size": None, "dim": dim}})
        ds = ds or load_dataset_for(cfg)
        write_config(cfg, tmp_path / name)
        save_model(build_model("bpr", ds, dim=dim), tmp_path / name / "model.pt")
    rc = main(
        [
            "analyze",
            "rank-diff",
            "--teacher",
            str(tmp_path / "t"),
            "--student",
            str(tmp_path / "s:model"),
            "--out",
            str(tmp_path / "an"),
            "--scatter-users",
            "50",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 <= out["before"]["student_better_share"] <= 1
    assert (tmp_path / "an" / "rank_diff.png").exists()
    assert (
        main(
            [
                "analyze",
                "rank-diff",
                "--teacher",
                str(tmp_path / "t:nope"),
                "--student",
                str(tmp_path / "s"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "no model 'nope'" in capsys.readouterr().err
