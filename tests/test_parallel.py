"""Several processes (torch.distributed, 2 gloo processes on CPU) against one process:
evaluation identical to the last digit, a refresh's ranks and deterministic draws identical and
its random draws from the same distributions (chi-square), a short training run equal to one
process up to float rounding, files written once, resume only with the same number of processes,
and ``torchrun ... evaluate --json`` printing what one process prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scipy import stats

from conftest import make_toy_dataset
from recdistill.config import make_config
from recdistill.distill.teacher import ScoreTeacher
from recdistill.errors import RecdistillError
from recdistill.eval.ranks import heldout_ranks
from recdistill.models import build_model
from recdistill.parallel import block, rank_seed, world
from recdistill.ranking import DrawSpec, RankEngine, TeacherRanks, make_weight
from recdistill.ranking.weights import RankChunk
from recdistill.runs import distill_run, train_run
from test_train import cfg  # the small training config of the single-process tests

RRD_PARAMS = {
    "n_top": 10,
    "n_interesting": 4,
    "n_uninteresting": 4,
    "item_n_top": 5,
    "item_n_interesting": 2,
    "item_n_uninteresting": 3,
}
# item_side: the objective with IR-RRD's term too, so that every list loss runs under torchrun
DCD_PARAMS = {
    **RRD_PARAMS,
    "chunk": 7,
    "n_under": 3,
    "n_over": 3,
    "item_n_under": 2,
    "item_n_over": 2,
    "item_side": True,
}
WORLD = 2
ROUNDS = 300  # draws per interaction slot for the chi-square test


def _models(ds):  # the same teacher and student in every process
    torch.manual_seed(0)
    return build_model("bpr", ds, dim=8), build_model("bpr", ds, dim=4)


def _specs() -> dict[str, DrawSpec]:
    return {
        "top": DrawSpec(make_weight("rank_aware", temperature=3.0), k=3, deterministic=True),
        "wor": DrawSpec(make_weight("dcd_under", mu=0.1), k=3, order="teacher"),
        "wr": DrawSpec(
            make_weight("rank_aware", temperature=3.0),
            k=2,
            replacement=True,
            per_interaction=True,
            rounds=ROUNDS,
        ),
    }


def _work(ds, tmp: Path) -> dict[str, object]:
    """What every process computes; with one process, the reference."""
    torch.set_num_threads(1)
    out: dict[str, object] = {}
    teacher, student = _models(ds)
    for protocol in ("full", "sampled"):
        out[f"ranks_{protocol}"] = torch.from_numpy(
            heldout_ranks(
                teacher.score_all,
                ds,
                protocol,
                "test",
                batch_size=7,
                score_items_fn=teacher.score if protocol == "sampled" else None,
            )
        )
    eng = RankEngine(ds.train, chunk_size=7)
    for side in ("user", "item"):
        r = eng.refresh(teacher, student, side, _specs(), top_n=5, generator=3, score_stats=True)
        out[f"{side}.top_t"], out[f"{side}.top_s"] = r.top_t, r.top_s
        out[f"{side}.stats_t"] = r.stats_t
        for name, d in r.draws.items():
            out[f"{side}.{name}"] = d.index
    cache = TeacherRanks()  # DCD's frozen-teacher cache: each process keeps its block's ranks
    for call in range(2):
        for side in ("user", "item"):
            r = eng.refresh(teacher, student, side, _specs(), generator=4 + call, teacher_ranks=cache)
            for name, d in r.draws.items():
                out[f"cached{call}.{side}.{name}"] = d.index
    tag = f"w{world()[1]}"
    _, met = train_run(cfg("bpr", epochs=4), tmp / f"bpr-{tag}", dataset=ds)
    out["bpr_metrics"] = met["models"]["model"]
    out["bpr_log"] = (tmp / f"bpr-{tag}" / "log.jsonl").read_text() if (tmp / f"bpr-{tag}").exists() else ""
    _, met = train_run(cfg("cdae", epochs=4), tmp / f"cdae-{tag}", dataset=ds)
    out["cdae_metrics"] = met["models"]["model"]
    train_run(cfg("bpr", epochs=4), tmp / f"cut-{tag}", dataset=ds, stop_after=2)
    if world()[1] > 1:  # stopped and resumed with the same processes: the same run
        _, met = train_run(cfg("bpr", epochs=4), tmp / f"resumed-{tag}", dataset=ds, stop_after=2)
        _, met = train_run(cfg("bpr", epochs=4), tmp / f"resumed-{tag}", dataset=ds, resume=True)
        out["bpr_resumed"] = met["models"]["model"]
        from recdistill.cli import main  # commands that run many runs refuse a process group

        out["refused"] = [main(["experiment", "status", "x.yaml"]), main(["demo"])]
    for model in ("bpr", "cdae"):  # RRD + IR-RRD: each distinct row of a batch distilled once
        g = torch.Generator().manual_seed(0)
        t = ScoreTeacher(torch.randn(ds.n_users, ds.n_items, generator=g))
        kd_cfg = make_config(
            overrides={
                "data": {"name": "toy"},
                "model": {"name": model, "size": None, "dim": 4},
                # 45 CDAE users in batches of 22: the last one has fewer rows than processes
                "train": {"epochs": 3, "batch_size": 22, "progress": False, "ks": [5], "monitor": "H@5"},
                "distill": {"method": "rrd+ir-rrd", "params": RRD_PARAMS},
            }
        )
        _, d, _ = distill_run(kd_cfg, tmp / f"rrd-{model}-{tag}", dataset=ds, teacher=t, log=lambda s: None)
        out[f"rrd_{model}_stream"] = d.generator.get_state()  # in step across processes
        log = tmp / f"rrd-{model}-{tag}" / "log.jsonl"
        out[f"rrd_{model}_log"] = log.read_text() if world()[0] == 0 else ""
    # DCD: the M largest errors from one refresh before training (the one-process student), and
    # drawn corrections refreshed every 2 epochs
    for sampling in (False, True):
        g = torch.Generator().manual_seed(0)
        t = ScoreTeacher(torch.randn(ds.n_users, ds.n_items, generator=g))
        kd_cfg = make_config(
            overrides={
                "data": {"name": "toy"},
                "model": {"name": "bpr", "size": None, "dim": 4},
                "train": {"epochs": 3, "batch_size": 22, "progress": False, "ks": [5], "monitor": "H@5"},
                "distill": {
                    "method": "dcd",
                    "params": {**DCD_PARAMS, "correction_sampling": sampling, "period": 2 if sampling else 5},
                },
            }
        )
        name = f"dcd-{'sampled' if sampling else 'top'}"
        _, d, _ = distill_run(kd_cfg, tmp / f"{name}-{tag}", dataset=ds, teacher=t, log=lambda s: None)
        out[f"{name}_corr"] = dict(d.corr)
        out[f"{name}_refreshes"] = d.n_refresh
        out[f"{name}_stream"] = d.generator.get_state()
        log = tmp / f"{name}-{tag}" / "log.jsonl"
        out[f"{name}_log"] = log.read_text() if world()[0] == 0 else ""
    return out


def _worker(rank: int, tmp: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp}/pg", rank=rank, world_size=WORLD)
    try:
        ds = make_toy_dataset(n_users=45, n_items=50, seed=5)
        out = _work(ds, Path(tmp))
        torch.save(out, Path(tmp) / f"out{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parallel")
    mp.start_processes(_worker, args=(str(tmp),), nprocs=WORLD, start_method="spawn")
    ds = make_toy_dataset(n_users=45, n_items=50, seed=5)
    one = _work(ds, tmp)
    many = [torch.load(tmp / f"out{r}.pt", weights_only=True) for r in range(WORLD)]
    return ds, tmp, one, many


def test_block_covers_every_row_once_on_chunk_edges() -> None:
    for n, size, align in [(45, 2, 7), (10, 3, 1), (3, 4, 2), (0, 2, 5)]:
        edges = [block(n, r, size, align) for r in range(size)]
        assert edges[0][0] == 0 and edges[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(edges, edges[1:]))
        assert all(s % align == 0 or s == n for s, _ in edges)


def test_rank_seed_differs_by_rank_and_key() -> None:
    assert rank_seed(1, 0) != rank_seed(1, 1) != rank_seed(2, 1)
    assert rank_seed(1, 0) == rank_seed(1, 0)


def test_evaluation_identical_to_one_process(results) -> None:
    _, _, one, many = results
    for p in ("full", "sampled"):
        for m in many:
            assert torch.equal(m[f"ranks_{p}"], one[f"ranks_{p}"])  # hence the metrics, bit for bit


def test_refresh_ranks_and_deterministic_draws_identical(results) -> None:
    _, _, one, many = results
    for side in ("user", "item"):
        for key in ("top_t", "top_s", "stats_t", "top"):
            for m in many:
                assert torch.equal(m[f"{side}.{key}"], one[f"{side}.{key}"]), (side, key)
        for key in ("wor", "wr"):  # every process holds the whole, summed refresh
            assert torch.equal(many[0][f"{side}.{key}"], many[1][f"{side}.{key}"])
        for call in range(2):  # the teacher's ranks kept per block: the same as one process
            for m in many:
                assert torch.equal(m[f"cached{call}.{side}.top"], one[f"cached{call}.{side}.top"])
            for key in ("wor", "wr"):
                assert torch.equal(
                    many[0][f"cached{call}.{side}.{key}"], many[1][f"cached{call}.{side}.{key}"]
                )


def test_refresh_random_draws_follow_the_weights(results) -> None:
    ds, _, one, many = results
    teacher, student = _models(ds)
    eng = RankEngine(ds.train)
    (rows, (rt, rs), _), *_ = list(eng.iter_ranks([teacher, student], "user"))
    chunk = RankChunk(rows, rt, rs, "user")
    w = make_weight("rank_aware", temperature=3.0)(chunk).double() * chunk.unobserved  # (n_users, m)
    p = w / w.sum(1, keepdim=True)
    indptr = ds.train.indptr
    for draws in (one["user.wr"], many[0]["user.wr"]):
        chi, dof = 0.0, 0
        for u in range(ds.n_users):  # a test's reference loop
            got = draws[:, indptr[u] : indptr[u + 1]].reshape(-1).long()
            counts = torch.bincount(got, minlength=ds.n_items).double()
            keep = p[u] > 0
            exp = counts.sum() * p[u][keep]
            assert counts[~keep].sum() == 0  # never an observed item
            chi += float(((counts[keep] - exp) ** 2 / exp).sum())
            dof += int(keep.sum()) - 1
        assert stats.chi2.sf(chi, dof) > 1e-3
    # the two processes' blocks use their own streams: not a copy of the one-process draws
    lo = indptr[block(ds.n_users, 1, WORLD, 7)[0]]
    assert not torch.equal(many[0]["user.wr"][:, lo:], one["user.wr"][:, lo:])


def test_training_equals_one_process_up_to_rounding(results) -> None:
    _, tmp, one, many = results
    log1 = [json.loads(x) for x in one["bpr_log"].splitlines()]
    log2 = [json.loads(x) for x in (tmp / "bpr-w2" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log2] == [1, 2, 3, 4]  # written once, by rank 0
    for a, b in zip(log1, log2):
        assert b["loss"]["model"]["loss"] == pytest.approx(a["loss"]["model"]["loss"], rel=1e-4)
    h1 = one["bpr_metrics"]["test"]["full"]["H@10"]
    assert [m["bpr_metrics"]["test"]["full"]["H@10"] for m in many] == [pytest.approx(h1, abs=0.05)] * 2
    # CDAE: each process its own dropout stream; a short run stays within noise
    c1 = one["cdae_metrics"]["test"]["full"]["H@10"]
    assert abs(many[0]["cdae_metrics"]["test"]["full"]["H@10"] - c1) < 0.2
    assert many[0]["cdae_metrics"] == many[1]["cdae_metrics"]


@pytest.mark.parametrize("model", ["bpr", "cdae"])
def test_rrd_distillation_equals_one_process_up_to_rounding(results, model) -> None:
    # The distinct users and items of a batch are split over the processes, not the
    # interactions: the RRD and IR-RRD terms keep their one-process scale.
    _, _, one, many = results
    log1 = [json.loads(x) for x in one[f"rrd_{model}_log"].splitlines()]
    log2 = [json.loads(x) for x in many[0][f"rrd_{model}_log"].splitlines()]
    assert len(log1) == len(log2) == 3
    assert torch.equal(many[0][f"rrd_{model}_stream"], many[1][f"rrd_{model}_stream"])
    tol = 1e-4 if model == "bpr" else 0.05  # CDAE: its dropout streams differ per process
    for a, b in zip(log1, log2):
        for part in ("RRD", "IR", "base"):
            assert b["loss"]["student"][part] == pytest.approx(a["loss"]["student"][part], rel=tol), part


def test_dcd_distillation_under_several_processes(results) -> None:
    # Every process holds the whole, summed refresh of the corrections and draws in step. Without
    # sampling (the M largest errors), refreshed once before training, the corrections are the
    # one-process ones, so the run equals one process up to rounding; with sampling each block
    # draws from its own stream.
    ds, _, one, many = results
    for name, refreshes in (("dcd-top", 1), ("dcd-sampled", 2)):  # sampled: epochs 1 and 2
        assert many[0][f"{name}_refreshes"] == many[1][f"{name}_refreshes"] == refreshes
        assert torch.equal(many[0][f"{name}_stream"], many[1][f"{name}_stream"])
        c0, c1 = many[0][f"{name}_corr"], many[1][f"{name}_corr"]
        assert sorted(c0) == ["item.over", "item.under", "user.over", "user.under"]
        for key in c0:
            assert torch.equal(c0[key], c1[key]), (name, key)
            n_rows = ds.n_users if key.startswith("user") else ds.n_items
            assert c0[key].shape[0] == n_rows
    for key, want in one["dcd-top_corr"].items():
        assert torch.equal(many[0]["dcd-top_corr"][key], want), key
    log1 = [json.loads(x) for x in one["dcd-top_log"].splitlines()]
    log2 = [json.loads(x) for x in many[0]["dcd-top_log"].splitlines()]
    assert len(log1) == len(log2) == 3
    for a, b in zip(log1, log2):
        for part in ("RRD", "IR", "UCD", "ICD", "base"):
            assert b["loss"]["student"][part] == pytest.approx(a["loss"]["student"][part], rel=1e-4), part
    # sampled corrections: observed entries are never drawn, in either process's blocks
    train = ds.train.tocoo() if hasattr(ds.train, "tocoo") else ds.train
    observed = set(zip(train.row.tolist(), train.col.tolist()))
    user_draws = many[0]["dcd-sampled_corr"]["user.under"]
    assert not any((u, int(i)) in observed for u in range(ds.n_users) for i in user_draws[u])
    lo = block(ds.n_users, 1, WORLD, 7)[0]  # the second process's rows: its own stream
    assert not torch.equal(user_draws[lo:], one["dcd-sampled_corr"]["user.under"][lo:])


def test_resume_needs_the_same_number_of_processes(results) -> None:
    ds, tmp, _, many = results
    assert [m["refused"] for m in many] == [[2, 2]] * WORLD
    for m in many:  # deterministic for a given number of processes, across a resume
        assert m["bpr_resumed"] == m["bpr_metrics"]
    log = [json.loads(x) for x in (tmp / "resumed-w2" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]
    with pytest.raises(RecdistillError, match="written by 2 process"):
        train_run(cfg("bpr", epochs=4), tmp / "cut-w2", dataset=ds, resume=True)


@pytest.mark.slow
def test_torchrun_evaluate_prints_what_one_process_prints(tmp_path, data_dir) -> None:
    env = {**os.environ, "RECDISTILL_DATA": str(data_dir), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    train = [
        sys.executable,
        "-m",
        "recdistill",
        "train",
        "--dataset",
        "ml-100k",
        "--model",
        "bpr",
        "--dim",
        "4",
        "--epochs",
        "1",
        "--no-progress",
        "--out",
        str(run),
    ]
    subprocess.run(train, check=True, env=env, capture_output=True)
    ev = ["-m", "recdistill", "evaluate", str(run), "--json"]
    single = subprocess.run([sys.executable, *ev], check=True, env=env, capture_output=True, text=True)
    multi = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *ev],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    assert multi.stdout == single.stdout  # the same metrics, printed once
    assert np.isfinite(json.loads(single.stdout[single.stdout.index("{") :])["model"]["H@10"])
