"""Full-ranking evaluation of every user vs the bare ``U @ V.T`` matmul, in the same run.

Model: random matrix factorisation, dimension 200 (float32). Baseline: the same chunk loop as the
evaluator (same users, same chunk size), computing only ``U[users] @ V.T``. Evaluation:
``heldout_ranks(score_fn, ds, "full", "test")`` with ``score_fn = lambda u: U[u] @ V.T``, i.e. the
matmul plus masking/counting. Each is timed ``--repeat`` times, interleaved; the minimum is
reported, as wall-clock time and as process CPU time (all threads; less sensitive to other
processes on a shared machine). Target: eval / matmul <= 1.5 (wall-clock).

    python benchmarks/bench_eval.py                    # citeulike and amazon-cds
    python benchmarks/bench_eval.py --synthetic        # random data of the same sizes (no loader)

The last line reads ``eval_vs_matmul=<ratio> peak_rss_gb=<GB>`` for the larger dataset.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import scipy.sparse as sp
import torch

from recdistill.data.dataset import N_CANDIDATES, Dataset
from recdistill.eval import default_batch_size, evaluate, heldout_ranks

SIZES = {"citeulike": (5219, 25181, 115142), "amazon-cds": (43169, 35648, 690000)}


def synthetic(name: str, seed: int = 0) -> Dataset:
    """Random data with the dataset's sizes (for running the benchmark without the loader)."""
    n_users, n_items, nnz = SIZES[name]
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n_users), nnz // n_users)
    cols = rng.integers(0, n_items, rows.size)
    train = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_users, n_items))
    train.sum_duplicates()
    train.data[:] = 1.0
    # held-out items and candidates: draws without the row's positives or repeats (vectorised)
    draws = rng.integers(0, n_items, (n_users, N_CANDIDATES + 200))  # (n_users, k)
    tr = train.tocoo()
    seen = np.sort(tr.row.astype(np.int64) * n_items + tr.col)  # (nnz,) sorted pair keys
    q = np.arange(n_users, dtype=np.int64)[:, None] * n_items + draws  # (n_users, k)
    idx = np.minimum(np.searchsorted(seen, q), seen.size - 1)
    bad = seen[idx] == q  # (n_users, k) positives
    order = np.argsort(draws, axis=1, kind="stable")  # (n_users, k)
    srt = np.take_along_axis(draws, order, 1)
    dup = np.zeros_like(bad)
    dup[:, 1:] = srt[:, 1:] == srt[:, :-1]  # later repeats, in sorted order
    np.put_along_axis(bad, order, np.take_along_axis(bad, order, 1) | dup, 1)
    keep = np.argsort(bad, axis=1, kind="stable")[:, : N_CANDIDATES + 2]  # good draws first
    assert not np.take_along_axis(bad, keep, 1).any(), "too few distinct unobserved draws"
    out = np.take_along_axis(draws, keep, 1)  # (n_users, 2 + 499)
    return Dataset(
        name,
        n_users,
        n_items,
        train,
        out[:, 0].copy(),
        out[:, 1].copy(),
        out[:, 2:].astype(np.int32),
        np.arange(n_users),
        np.arange(n_items),
    )


def load(name: str, use_synthetic: bool, data_dir: str | None) -> Dataset:
    if use_synthetic:
        return synthetic(name)
    from recdistill.data import load_dataset  # the loader of issue #2 (data half)

    return load_dataset(name, data_dir)


def bench(ds: Dataset, dim: int, repeat: int, seed: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(ds.n_users, dim, generator=g) / dim**0.5  # (n_users, dim)
    V = torch.randn(ds.n_items, dim, generator=g)  # (n_items, dim)
    Vt = V.T.contiguous()  # (dim, n_items), shared by both loops

    def score_fn(users: torch.Tensor) -> torch.Tensor:
        return U[users] @ Vt  # (B, n_items)

    users = torch.from_numpy(np.flatnonzero(ds.test_items >= 0))  # the users the evaluator ranks
    bs = default_batch_size(ds.n_items)

    def matmul_loop() -> None:
        with torch.no_grad():
            for c0 in range(0, users.numel(), bs):
                score_fn(users[c0 : c0 + bs])  # (B, n_items), discarded

    def eval_full() -> None:
        heldout_ranks(score_fn, ds, "full", "test")

    def eval_sampled() -> None:
        heldout_ranks(score_fn, ds, "sampled", "test")

    times: dict[str, list[float]] = {}
    matmul_loop(), eval_full()  # warm-up
    for _ in range(repeat):
        for key, fn in (("matmul", matmul_loop), ("eval", eval_full), ("sampled", eval_sampled)):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times.setdefault(key, []).append(time.perf_counter() - t0)
            times.setdefault(key + "_cpu", []).append(time.process_time() - c0)  # all threads
    m = evaluate(score_fn, ds, "full", "test", ks=(10, 50))
    best = {k: min(v) for k, v in times.items()}
    return {"users": float(users.numel()), "batch_size": float(bs), "H@50": m["H@50"], **best}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["citeulike", "amazon-cds"])
    p.add_argument("--dim", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--data-dir", default=None, help="raw data (default: RECDISTILL_DATA or the loader's)")
    p.add_argument("--synthetic", action="store_true", help="random data of the same sizes")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, threads={torch.get_num_threads()}, dim={args.dim}, "
        f"repeat={args.repeat} (min reported), device=cpu"
    )
    ratio = float("nan")
    for name in args.datasets:
        ds = load(name, args.synthetic, args.data_dir)
        r = bench(ds, args.dim, args.repeat, args.seed)
        ratio = r["eval"] / r["matmul"]
        print(
            f"{name}{' (synthetic)' if args.synthetic else ''}: users={ds.n_users} items={ds.n_items} "
            f"train={ds.n_train} ranked={int(r['users'])} chunk={int(r['batch_size'])} users | "
            f"wall: matmul {r['matmul']:.3f}s  full eval {r['eval']:.3f}s  ratio {ratio:.2f}  "
            f"sampled eval (gather from score_fn) {r['sampled']:.3f}s | "
            f"cpu: matmul {r['matmul_cpu']:.3f}s  full eval {r['eval_cpu']:.3f}s  "
            f"ratio {r['eval_cpu'] / r['matmul_cpu']:.2f} | random-model H@50={r['H@50']:.4f}",
            flush=True,
        )
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux
    print(f"eval_vs_matmul={ratio:.3f} peak_rss_gb={peak_gb:.3f}")


if __name__ == "__main__":
    main()
