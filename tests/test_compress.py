"""``recdistill compress``: the generated spec (same budget for every row), a run on a toy log
through the CLI, its verdict, its report, and a second call that trains nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import write_log_csv
from recdistill.cli import main
from recdistill.experiment.compress import compress_spec


@pytest.fixture
def log_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECDISTILL_CACHE", str(tmp_path / "cache"))
    return write_log_csv(tmp_path / "log.csv", 40, 60, 10)


def test_every_row_gets_the_same_budget(log_csv) -> None:
    spec = compress_spec({"name": str(log_csv)}, teacher_dim=40, ratio=10, methods=("rrd", "dcd"), trials=3)
    runs = spec["runs"]
    assert runs["teacher"]["set"]["model.dim"] == 40 and runs["student"]["set"]["model.dim"] == 4
    searched = {n: r["search"] for n, r in runs.items() if "search" in r}
    assert set(searched) == {"student", "rrd", "dcd"}
    assert {s["trials"] for s in searched.values()} == {3}
    assert all("train.weight_decay" in s["space"] for s in searched.values())  # the student's knob too
    assert spec["base"]["data"]["name"] == str(log_csv.resolve())
    with pytest.raises(ValueError, match="--methods: 'bd' is not one of"):
        compress_spec({"name": str(log_csv)}, methods=("bd",))
    with pytest.raises(ValueError, match="must be smaller than the teacher"):
        compress_spec({"name": str(log_csv)}, teacher_dim=4, student_dim=4)


def test_compress_cli_runs_reports_and_resumes(log_csv, tmp_path, capsys) -> None:
    out = tmp_path / "c"
    args = ["compress", str(log_csv), "--teacher-dim", "16", "--ratio", "4", "--methods", "rrd"]
    args += ["--trials", "2", "--epochs", "3", "--n-candidates", "10", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "| Teacher (dim 16) |" in text and "| RRD |" in text
    assert ("Chosen on validation: RRD" in text) != ("No distiller beat the tuned student" in text)
    assert "x smaller" in text and (out / "compress.md").is_file()
    spec = yaml.safe_load((out / "compress.yaml").read_text())
    assert spec["runs"]["rrd"]["search"]["trials"] == 2
    assert main(args) == 0  # again: every run is reused
    assert "[starting]" not in capsys.readouterr().out
