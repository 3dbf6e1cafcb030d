"""Evaluation and rank-refresh seconds, and peak memory per process, for 1 and N processes
(``torchrun``, gloo on CPU), and the projected cost of larger catalogues from the measured
per-entry costs.

    python benchmarks/bench_parallel.py [--data-dir ../shared/data] [--nprocs 1,2] [--device cpu]
        [--synthetic-users 1000000] [--synthetic-items 1000000] [--eval-users 2048]

The driver runs itself once per process count under ``python -m torch.distributed.run
--standalone --nproc-per-node N`` (N = 1 runs without a process group) and prints one table.
Tasks, each between two barriers, timed on rank 0 (models are random: speed only):

- ``amazon-cds eval``: full-protocol test ranks of a BPR (d = 50) over every user;
- ``amazon-cds refresh``: one DCD user-side refresh (teacher BPR d = 50, student d = 5, both
  models ranked over every unobserved entry, 40 + 40 draws per user);
- ``synthetic eval``: a log of ``--synthetic-users`` x ``--synthetic-items`` with a Zipf(0.8)
  item popularity and 10 interactions per user on average; full-protocol ranks of the first
  ``--eval-users`` users (the others have no held-out item) over all items.

Peak memory: each process's peak resident set (``ru_maxrss``) at the end, and before the tasks.
Last line: ``eval_speedup=<1-process / N-process seconds, amazon-cds> refresh_speedup=<...>``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recdistill.data import load_dataset
from recdistill.data.dataset import Dataset
from recdistill.eval.ranks import heldout_ranks
from recdistill.models import build_model
from recdistill.parallel import all_sum_, init_from_env, world
from recdistill.ranking import DrawSpec, RankEngine, make_weight


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def synthetic(n_users: int, n_items: int, eval_users: int, seed: int = 0) -> Dataset:
    """A log with Zipf(0.8) item popularity, 10 interactions per user on average (at least 2);
    the first ``eval_users`` users get a valid and a test item outside their training items."""
    rng = np.random.default_rng(seed)
    deg = np.maximum(2, rng.poisson(10, n_users))  # (n_users,)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    cdf = np.cumsum(pop / pop.sum())
    cols = np.minimum(np.searchsorted(cdf, rng.random(int(deg.sum()))), n_items - 1)  # (nnz,)
    rows = np.repeat(np.arange(n_users), deg)
    train = sp.csr_matrix((np.ones(cols.size, np.float32), (rows, cols)), shape=(n_users, n_items))
    train.sum_duplicates()
    train.data[:] = 1.0
    valid = np.full(n_users, -1, np.int64)
    test = np.full(n_users, -1, np.int64)
    u = np.arange(eval_users)
    held = rng.integers(0, n_items, (eval_users, 2))
    held[:, 1] = np.where(held[:, 1] == held[:, 0], (held[:, 0] + 1) % n_items, held[:, 1])
    drop = sp.csr_matrix(
        (np.ones(2 * eval_users, np.float32), (np.repeat(u, 2), held.reshape(-1))), shape=train.shape
    )
    train = train - train.multiply(drop)  # the held-out items leave the training rows
    train.eliminate_zeros()
    valid[u], test[u] = held[:, 0], held[:, 1]
    cands = np.zeros((n_users, 1), np.int32)  # the sampled protocol is not benchmarked here
    return Dataset(
        name=f"synthetic-{n_users}x{n_items}",
        n_users=n_users,
        n_items=n_items,
        train=train.tocsr(),
        valid_items=valid,
        test_items=test,
        candidates=cands,
        user_ids=np.arange(n_users),
        item_ids=np.arange(n_items),
    )


def timed(fn: Any) -> float:
    if world()[1] > 1:
        torch.distributed.barrier()
    t0 = time.perf_counter()
    fn()
    if world()[1] > 1:
        torch.distributed.barrier()
    return time.perf_counter() - t0


def worker(a: argparse.Namespace) -> None:
    init_from_env()
    rank, size = world()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    res: dict[str, Any] = {"nprocs": size, "tasks": {}}
    ds = load_dataset(a.dataset, data_dir=a.data_dir)
    torch.manual_seed(0)
    t, s = build_model("bpr", ds, dim=50).to(dev), build_model("bpr", ds, dim=5).to(dev)
    syn = synthetic(a.synthetic_users, a.synthetic_items, a.eval_users)
    torch.manual_seed(0)
    t_syn = build_model("bpr", syn, dim=50).to(dev)
    base = peak_gb()
    entries = ds.n_users * ds.n_items
    with torch.no_grad():
        sec = timed(lambda: heldout_ranks(t.score_all, ds, "full", "test", device=dev))
        res["tasks"][f"{a.dataset} eval"] = {"s": sec, "entries": entries}
        specs = {
            "under": DrawSpec(make_weight("dcd_under", mu=1e-3), k=40, order="teacher", keep_ranks=False),
            "over": DrawSpec(make_weight("dcd_over", mu=1e-3), k=40, keep_ranks=False),
        }
        eng = RankEngine(ds.train, dev)
        sec = timed(lambda: eng.refresh(t, s, "user", specs, generator=0))
        res["tasks"][f"{a.dataset} refresh"] = {"s": sec, "entries": entries}
        sec = timed(lambda: heldout_ranks(t_syn.score_all, syn, "full", "test", device=dev))
        res["tasks"]["synthetic eval"] = {"s": sec, "entries": a.eval_users * syn.n_items}
    mem = torch.zeros(2, size, dtype=torch.float64)
    mem[0, rank], mem[1, rank] = base, peak_gb()
    all_sum_(mem)
    res["base_gb"], res["peak_gb"] = mem[0].tolist(), mem[1].tolist()
    res["synthetic"] = {"n_users": syn.n_users, "n_items": syn.n_items, "nnz": int(syn.train.nnz)}
    if rank == 0:
        Path(a.out).write_text(json.dumps(res))
    if size > 1:
        torch.distributed.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--nprocs", default="1,2")
    p.add_argument("--dataset", default="amazon-cds", help="the real dataset (amazon-cds)")
    p.add_argument("--threads", type=int, default=1, help="threads per process")
    p.add_argument("--device", default="cpu")
    p.add_argument("--synthetic-users", type=int, default=1_000_000)
    p.add_argument("--synthetic-items", type=int, default=1_000_000)
    p.add_argument("--eval-users", type=int, default=2048)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a)
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    args = [
        __file__, "--worker", "--threads", str(a.threads), "--device", a.device,
        "--synthetic-users", str(a.synthetic_users), "--synthetic-items", str(a.synthetic_items),
        "--eval-users", str(a.eval_users), "--dataset", a.dataset,
    ] + (["--data-dir", a.data_dir] if a.data_dir else [])  # fmt: skip
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(x) for x in a.nprocs.split(",")]:
            out = Path(tmp) / f"n{n}.json"
            launch = [sys.executable] if n == 1 else [
                sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n)
            ]  # fmt: skip
            subprocess.run(launch + args + ["--out", str(out)], check=True, env=env)
            runs.append(json.loads(out.read_text()))
    load = os.getloadavg()[0]
    print(f"device={a.device} threads/process={a.threads} cpus={os.cpu_count()} load={load:.1f}")
    syn = runs[0]["synthetic"]
    print(f"synthetic log: {syn['n_users']:,} users x {syn['n_items']:,} items, {syn['nnz']:,} interactions")
    print("| task | processes | s | vs 1 process | ns per entry per process | peak GB per process |")
    print("|---|---:|---:|---:|---:|---:|")
    one = runs[0]["tasks"]
    for r in runs:
        for name, t in r["tasks"].items():
            ns = t["s"] * r["nprocs"] / t["entries"] * 1e9
            peak = max(r["peak_gb"])
            ratio = one[name]["s"] / t["s"]
            print(f"| {name} | {r['nprocs']} | {t['s']:.2f} | {ratio:.2f}x | {ns:.2f} | {peak:.2f} |")
    print(
        "peak GB per process before the tasks (data and models): "
        + "; ".join(f"{r['nprocs']} proc: {max(r['base_gb']):.2f}" for r in runs)
    )
    last = runs[-1]
    # projection: a catalogue of 10M items for 1M users, from the largest run's per-entry costs
    for name in ("synthetic eval", f"{a.dataset} refresh"):
        t = last["tasks"][name]
        per = t["s"] * last["nprocs"] / t["entries"]  # process-seconds per entry
        total = 1e6 * 1e7 * per
        print(
            f"projected {name.split()[-1]} of 1M users x 10M items on this CPU: {total / 3600:.1f} h with 1 "
            f"process, {total / 8 / 3600:.1f} h with 8 (from {per * 1e9:.2f} ns per entry per process)"
        )
    n, ev, rf = last["nprocs"], f"{a.dataset} eval", f"{a.dataset} refresh"
    print(
        f"eval_speedup={one[ev]['s'] / last['tasks'][ev]['s']:.2f} "
        f"refresh_speedup={one[rf]['s'] / last['tasks'][rf]['s']:.2f} "
        f"(N={n})"
    )


if __name__ == "__main__":
    main()
