"""Safe to load, clean to fail (issue #12): every case is one line on stderr and a non-zero exit,
nothing we load runs code, and a failed command leaves a finished run exactly as it was.

The runs here go through the CLI on a small CSV log (the real reader, split and cache).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from recdistill.cli import main


class Payload:
    """Unpickling this writes a marker file: proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.fixture
def log_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CSV log (BOM, quoted header, trailing blank line) of 40 users x 60 items."""
    monkeypatch.setenv("RECDISTILL_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        items = rng.choice(60, size=8, replace=False)
        rows += [f"u{u},i{i},{t}" for t, i in enumerate(items)]
    rows += ["u40,i1,0", "u40,i2,1"]  # a user with 2 interactions: dropped by --min-user-interactions 3
    path = tmp_path / "log.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ('"user","item","ts"\n' + "\n".join(rows) + "\n\n").encode())
    return path


def _train(log_csv: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "train",
            "--dataset",
            str(log_csv),
            "--n-candidates",
            "5",
            "--min-user-interactions",
            "3",
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
            "train.ks=[5]",
            "--set",
            "train.monitor=H@5",
            *extra,
        ]
    )


def _distill_rd(teacher: object, dataset: str, out: Path, *extra: str) -> int:
    """``recdistill distill --method rd`` from ``teacher`` on the test log, one epoch."""
    return main(
        [
            "distill",
            "--method",
            "rd",
            "--teacher",
            str(teacher),
            "--dataset",
            dataset,
            "--n-candidates",
            "5",
            "--min-user-interactions",
            "3",
            "--dim",
            "2",
            "--epochs",
            "1",
            "--out",
            str(out),
            *extra,
        ]
    )


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("recdistill: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture
def run(log_csv: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert _train(log_csv, out) == 0
    return out


# ---------------------------------------------------------------------------------- security
@pytest.mark.parametrize("name", ["model.pt", "checkpoint.pt"])
def test_a_pickle_payload_in_a_run_file_is_refused_and_runs_nothing(run, log_csv, tmp_path, capsys, name):
    marker = tmp_path / "pwned"
    torch.save({"model": Payload(marker)}, run / name)
    capsys.readouterr()
    if name == "model.pt":
        rc = main(["evaluate", str(run)])
    else:
        os.unlink(run / "metrics.json")  # an unfinished run, resumed
        rc = _train(log_csv, run, "--resume")
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and "refused" in line and name in line
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_a_pickled_teacher_file_is_refused_and_runs_nothing(run, log_csv, tmp_path, capsys, suffix):
    marker = tmp_path / "pwned"
    f = tmp_path / f"teacher{suffix}"
    arr = np.array([Payload(marker)], dtype=object)
    if suffix == ".npy":
        np.save(f, arr, allow_pickle=True)
    else:
        np.savez(f, scores=arr)
    rc = _distill_rd(str(f), str(log_csv), tmp_path / "kd")
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and "refused" in line and f.name in line and not marker.exists()


def test_a_run_used_with_another_dataset_is_an_error_naming_both(run, log_csv, tmp_path, capsys):
    other = tmp_path / "other.csv"  # the same users and items, other interactions: the shapes agree
    lines = log_csv.read_bytes().decode("utf-8-sig").strip().splitlines()
    shifted = []
    for ln in lines[1:]:
        u, i, t = ln.split(",")
        shifted.append(f"{u},i{(int(i[1:]) + 1) % 60},{t}")
    other.write_text("\n".join(lines[:1] + shifted) + "\n")
    rc = _distill_rd(str(run), str(other), tmp_path / "kd")
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and "trained on dataset" in line and str(log_csv) in line and str(other) in line


# ------------------------------------------------------------------------- one-line failures
@pytest.mark.parametrize(
    ("flags", "expect"),
    [
        (["--device", "foo"], "device 'foo'"),
        (["--set", "train.lr=1e30"], "the loss of 'model' is"),
        (["--set", "train.n_neg=0"], "train.n_neg"),
    ],
)
def test_bad_settings_fail_in_one_line(log_csv, tmp_path, capsys, flags, expect):
    assert _train(log_csv, tmp_path / "r", *flags) == 2
    assert expect in _one_line(capsys.readouterr().err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_fails_in_one_line(log_csv, tmp_path, capsys):
    assert _train(log_csv, tmp_path / "r", "--device", "cuda") == 2
    assert "CUDA is not available" in _one_line(capsys.readouterr().err)


def test_out_that_is_a_file_or_under_a_file(log_csv, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert _train(log_csv, f) == 2
    assert "is a file" in _one_line(capsys.readouterr().err)
    assert _train(log_csv, f / "run") == 2
    assert "under a file" in _one_line(capsys.readouterr().err)
    assert f.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_out_not_writable(log_csv, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert _train(log_csv, ro / "run") == 2
        assert "cannot write" in _one_line(capsys.readouterr().err)
    finally:
        ro.chmod(0o700)


def test_read_only_teacher_run_is_used_without_its_cache(run, log_csv, tmp_path, capsys, monkeypatch):
    import recdistill.distill.teacher as teacher_mod

    def refuse(arr, path):  # what a read-only folder does (root would not be refused by chmod)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(teacher_mod, "atomic_npy", refuse)
    rc = _distill_rd(
        str(run),
        str(log_csv),
        tmp_path / "kd",
        "--no-progress",
        "--set",
        "train.ks=[5]",
        "--set",
        "train.monitor=H@5",
    )
    assert rc == 0 and "could not cache" in capsys.readouterr().err


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch, capsys):
    import pandas as pd

    def missing(*a, **k):
        raise ImportError("no pyarrow")

    monkeypatch.setattr(pd, "read_parquet", missing)
    f = tmp_path / "log.parquet"
    f.write_bytes(b"PAR1")
    assert main(["data", "stats", str(f)]) == 2
    assert "recdistill[parquet]" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("name", "content", "expect"),
    [
        ("empty.npy", None, "shape (0,)"),
        ("empty.tsv", "", "no ranked list"),
        ("header.tsv", "user\titem\tscore\n", "no data"),
        ("four.tsv", "user\titem\tscore\textra\nu0\ti1\t0.5\t1\n", "4 columns"),
        ("binary.dat", bytes(range(256)) * 4, "not a UTF-8 text file"),
    ],
)
def test_bad_teacher_files_fail_in_one_line_naming_the_file(log_csv, tmp_path, capsys, name, content, expect):
    f = tmp_path / name
    if content is None:
        np.save(f, np.zeros(0))
    elif isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content)
    rc = _distill_rd(str(f), str(log_csv), tmp_path / "kd")
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and expect in line and name in line


def test_resume_with_another_config_and_a_torn_log_line(log_csv, tmp_path, capsys):
    out = tmp_path / "r"
    assert _train(log_csv, out, "--set", "train.epochs=4", "--set", "train.checkpoint_every=1") == 0
    os.unlink(out / "metrics.json")
    assert _train(log_csv, out, "--resume", "--dim", "6", "--set", "train.epochs=4") == 2
    assert "model.dim=4" in _one_line(capsys.readouterr().err)
    # a torn last line (a crash while writing) is dropped; the run resumes
    with open(out / "log.jsonl", "a") as f:
        f.write('{"epoch": 5, "lo')
    assert _train(log_csv, out, "--resume", "--set", "train.epochs=4") == 0
    assert "torn last line" in capsys.readouterr().err
    assert [json.loads(x)["epoch"] for x in (out / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_resume_without_a_checkpoint_says_so(log_csv, tmp_path, capsys):
    assert _train(log_csv, tmp_path / "new", "--resume") == 2
    assert "no checkpoint.pt" in _one_line(capsys.readouterr().err)


def test_ctrl_c_says_where_the_run_stopped_and_how_to_resume(log_csv, tmp_path, capsys, monkeypatch):
    from recdistill.train import trainer as trainer_mod

    real = trainer_mod.Trainer.train_epoch

    def interrupted(self, epoch):  # type: ignore[no-untyped-def]
        if epoch == 1:
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(trainer_mod.Trainer, "train_epoch", interrupted)
    assert _train(log_csv, tmp_path / "r") == 130
    err = capsys.readouterr().err
    assert "interrupted in epoch 2" in err and "checkpoint of epoch 1" in err and "--resume" in err
    assert "Traceback" not in err


def test_a_bug_is_not_hidden_by_the_cli(monkeypatch):
    import recdistill.commands.data as data_cmd

    def bug(args):  # type: ignore[no-untyped-def]
        return 1 // 0

    monkeypatch.setattr(data_cmd, "_stats", bug)
    with pytest.raises(ZeroDivisionError):
        main(["data", "stats", "x"])


# ---------------------------------------------------------------- a finished run stays intact
def test_a_failing_command_never_damages_a_finished_run(run, log_csv, capsys):
    before = _digest(run)
    assert _train(log_csv, run) == 2  # no --fresh: refused
    assert "finished run" in _one_line(capsys.readouterr().err)
    assert _train(log_csv, run, "--fresh", "--set", "train.lr=1e30") == 2  # fails while training
    capsys.readouterr()
    assert _digest(run) == before
    assert not [p for p in run.parent.iterdir() if p.name.startswith(".run")]  # no stage left behind
    assert _train(log_csv, run, "--fresh", "--dim", "3") == 0  # replaced on success
    assert json.loads((run / "metrics.json").read_text())["models"]["model"]["n_parameters"] != 4 * (41 + 60)


def test_bd_without_distilling_epochs_is_refused(log_csv, tmp_path, capsys):
    rc = main(
        [
            "distill",
            "--method",
            "bd",
            "--dataset",
            str(log_csv),
            "--n-candidates",
            "5",
            "--epochs",
            "3",
            "--out",
            str(tmp_path / "bd"),
            "--set",
            "distill.params.warmup_epochs=3",
        ]
    )
    assert rc == 2 and "no distillation" in _one_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- your own data
def test_own_csv_from_the_cli_from_any_folder(run, log_csv, tmp_path, capsys, monkeypatch):
    capsys.readouterr()
    cfg = (run / "config.yaml").read_text()
    assert f"name: {log_csv}" in cfg and "n_candidates: 5" in cfg
    monkeypatch.chdir(tmp_path.parent)  # the run's dataset path is absolute
    assert main(["evaluate", str(run), "--protocol", "sampled"]) == 0
    assert main(["data", "stats", str(log_csv), "--min-user-interactions", "3", "--n-candidates", "5"]) == 0
    assert "1 user with fewer than 3 interactions dropped" in capsys.readouterr().out


def test_relative_dataset_paths_are_stored_absolute(log_csv, tmp_path, monkeypatch):
    monkeypatch.chdir(log_csv.parent)
    assert _train(Path(log_csv.name), tmp_path / "rel") == 0
    assert f"name: {log_csv}" in (tmp_path / "rel" / "config.yaml").read_text()


def test_progress_lines_off_a_terminal_and_version(log_csv, tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--dataset",
                str(log_csv),
                "--n-candidates",
                "5",
                "--dim",
                "2",
                "--epochs",
                "2",
                "--out",
                str(tmp_path / "p"),
                "--set",
                "train.ks=[5]",
                "--set",
                "train.monitor=H@5",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "epoch 1/2: valid H@5" in err and "epoch 2/2: valid H@5" in err
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("recdistill ")


def test_a_torn_metrics_file_is_one_line(run, capsys):
    """``recdistill evaluate`` on a run whose metrics.json is torn: one line naming the file, line
    and column (was a JSONDecodeError traceback); the file is left as it was."""
    torn = (run / "metrics.json").read_text()[:40]
    (run / "metrics.json").write_text(torn)
    capsys.readouterr()
    rc = main(["evaluate", str(run)])
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and "metrics.json: line 2, column 14" in line and "not valid JSON" in line
    assert (run / "metrics.json").read_text() == torn
