"""Serving speed of a student against its teacher: top-10 for one user (p50 / p99 latency over
``--requests`` single-user calls) and for every user (users per second), through the path
``recdistill recommend`` uses (:func:`recdistill.ranking.recommend.top_k`: the model's scores,
the user's training items excluded (their CSR built once), exact top-k), for BPR and NeuMF at the
dataset's size presets (citeulike-dcd: 200 -> 20), in one process. Latency does not depend on
training, so the models are freshly initialised.

    python benchmarks/bench_serve.py [--dataset citeulike-dcd] [--threads 1] [--requests 300]

Last line: ``<model>_one_user_speedup=<teacher p50 / student p50> <model>_all_users_speedup=...``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from recdistill.data import load_dataset
from recdistill.models import build_model
from recdistill.ranking.recommend import exclusion, top_k


def _one_user(model: torch.nn.Module, ds, ex, requests: int, seed: int = 0) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    users = rng.integers(0, ds.n_users, size=requests)
    times = []
    for u in users:
        t = time.perf_counter()
        top_k(model.score_all, ds.n_items, torch.tensor([int(u)]), 10, ex)
        times.append(time.perf_counter() - t)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def _all_users(model: torch.nn.Module, ds, ex) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    top_k(model.score_all, ds.n_items, torch.arange(ds.n_users), 10, ex)
    return ds.n_users / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="citeulike-dcd")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--requests", type=int, default=300)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset(a.dataset, a.data_dir)
    print(f"{ds.name}: {ds.n_users:,} users, {ds.n_items:,} items; {a.threads} thread(s)")
    print("| model | size | params | one user p50 (ms) | p99 (ms) | all users (users/s) |")
    print("|---|---|---:|---:|---:|---:|")
    ratios = []
    ex = exclusion(ds.train)  # built once, as a server would (Run.recommend keeps it)
    with torch.no_grad():
        for name in ("bpr", "neumf"):
            res = {}
            for size in ("teacher", "student"):
                torch.manual_seed(0)
                m = build_model(name, ds, size=size).eval()
                _one_user(m, ds, ex, 10)  # warm-up
                p50, p99 = _one_user(m, ds, ex, a.requests)
                ups = _all_users(m, ds, ex)
                n = sum(q.numel() for q in m.parameters())
                res[size] = (p50, ups)
                cells = f"{n / 1e6:.2f}M | {p50 * 1e3:.2f} | {p99 * 1e3:.2f} | {ups:,.0f}"
                print(f"| {name} | {size} | {cells} |")
            ratios.append(f"{name}_one_user_speedup={res['teacher'][0] / res['student'][0]:.2f}")
            ratios.append(f"{name}_all_users_speedup={res['student'][1] / res['teacher'][1]:.2f}")
    print(" ".join(ratios))


if __name__ == "__main__":
    main()
