"""Benchmark: one rank refresh of a dim-200 teacher and a dim-20 student (issue #4).

Each configuration runs in its own subprocess (so peak RSS, from ``getrusage``, is not mixed):

- ``engine-user``: ``RankEngine.refresh`` on the user side: exact ranks of both models and BD's
  draws (Eq. 4 and Eq. 5, 5 items per training interaction, with replacement), teacher top-50.
- ``engine-item``: the item side: ranks of users per item and DCD's draws (40 under-, 40
  over-estimated users per item, without replacement, teacher order), teacher top-50.
- ``engine-item-fallback``: the same through ``score_all`` only (no ``score_items``).
- ``floor-user`` / ``floor-item``: two ``torch.argsort`` calls (teacher, student) of the full score
  matrix (the scores are computed before the clock starts).
- ``loop-user``: the papers' reference code re-implemented: a Python loop over users, scores
  masked by multiplying with 0, ``argsort`` per row into dense int64 users x items matrices, a
  second loop for the inverse permutation, dense rank differences and weights, then a loop over
  users drawing 5 items per training interaction and direction (``torch.multinomial``), the
  same draws as ``engine-user``. Its time without the draws is reported too
  (``seconds_ranks_only``). It is timed on
  ``--loop-users`` users and extrapolated linearly; its memory is projected from the dense
  matrices it allocates for all users.

Models: random MF embeddings (N(0, 1)); the ranks of random models cost the same to compute as
trained ones. Data: ``load_dataset(name)``; if that fails (no data here), a random CSR of the
dataset's shape and density. The last line, for the first dataset (citeulike):
``refresh_vs_floor=<ratio> vs_loop=<speedup> peak_rss_gb=<GB>``.

    python benchmarks/bench_ranks.py                       # citeulike and amazon-cds, CPU
    python benchmarks/bench_ranks.py --datasets citeulike --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

SHAPES = {  # fallback when the data is not available: (users, items, training interactions)
    "citeulike": (5219, 25181, 115142),
    "amazon-cds": (43169, 35648, 691088),
}
FULL_FLOOR_MAX_ENTRIES = 2**27  # larger score matrices: floor timed on a subset of rows


class BenchMF(nn.Module):
    """MF with random embeddings; ``score_items`` optional (the item side's fast path)."""

    def __init__(self, n: int, m: int, dim: int, seed: int, items_side: bool = True) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.p = nn.Parameter(torch.randn(n, dim, generator=g))
        self.q = nn.Parameter(torch.randn(m, dim, generator=g))
        self.has_items = items_side

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.p[users] @ self.q.T  # (B, m)

    def __getattr__(self, name: str):  # score_items only when enabled
        if name == "score_items" and self.__dict__.get("has_items", False):
            return lambda items: self.q[items] @ self.p.T  # (C, n)
        return super().__getattr__(name)


def load_train(name: str) -> tuple[sp.csr_matrix, str]:
    try:
        from recdistill.data import load_dataset

        return sp.csr_matrix(load_dataset(name).train), "real"
    except Exception as exc:  # no data on this machine: same shape and density
        n, m, nnz = SHAPES[name]
        print(f"# {name}: load_dataset failed ({type(exc).__name__}: {exc}); random CSR", file=sys.stderr)
        rng = np.random.default_rng(0)
        flat = np.unique(rng.integers(0, n * m, size=int(nnz * 1.02)))[:nnz]
        data = np.ones(len(flat), dtype=np.float32)
        return sp.csr_matrix((data, (flat // m, flat % m)), shape=(n, m)), "random"


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def child(cfg: dict) -> dict:
    """Run one configuration; return its figures."""
    from recdistill.ranking import DrawSpec, RankEngine, make_weight

    device = torch.device(cfg["device"])
    train, kind = load_train(cfg["dataset"])
    n, m = train.shape
    fallback = cfg["name"] == "engine-item-fallback"
    teacher = BenchMF(n, m, 200, seed=1, items_side=not fallback).to(device)
    student = BenchMF(n, m, 20, seed=2, items_side=not fallback).to(device)
    base_rss = peak_rss_gb()
    cpu0 = cpu_seconds()
    out: dict = {"data": kind, "users": n, "items": m, "nnz": int(train.nnz)}
    name = cfg["name"]
    if name.startswith("engine"):
        side = "user" if name == "engine-user" else "item"
        if side == "user":  # BD: Eq. 4 and Eq. 5, 5 draws per interaction
            specs = {
                "t2s": DrawSpec(make_weight("bd_t2s", eps=1e-4), k=5, replacement=True, per_interaction=True),
                "s2t": DrawSpec(make_weight("bd_s2t", eps=1e-4), k=5, replacement=True, per_interaction=True),
            }
        else:  # DCD's item side: 40 + 40 users per item
            specs = {
                "under": DrawSpec(make_weight("dcd_under", mu=1e-3), k=40, order="teacher"),
                "over": DrawSpec(make_weight("dcd_over", mu=1e-3), k=40),
            }
        eng = RankEngine(train, device=device)
        gen = torch.Generator(device).manual_seed(0)
        eng.side(side)  # CSR tensors built outside the clock (once per training run)
        sync(device)
        t0 = time.perf_counter()
        res = eng.refresh(teacher, student, side, specs, top_n=50, generator=gen)
        sync(device)
        out["seconds"] = time.perf_counter() - t0
        out["kept_mb"] = (
            sum(
                t.numel() * t.element_size()
                for d in res.draws.values()
                for t in (d.index, d.rank_t, d.rank_s)
                if t is not None
            )
            / 2**20
        )
    elif name.startswith("floor"):
        rows = n if name == "floor-user" else m
        cols = m if name == "floor-user" else n
        sub = min(rows, max(1, FULL_FLOOR_MAX_ENTRIES // cols))
        total = cpu = 0.0
        with torch.no_grad():
            for model in (teacher, student):
                if name == "floor-user":
                    s = model.score_all(torch.arange(sub, device=device))  # (sub, m)
                else:
                    s = model.score_items(torch.arange(sub, device=device))  # (sub, n)
                sync(device)
                t0, c0 = time.perf_counter(), cpu_seconds()
                order = torch.argsort(s, dim=1, descending=True)  # (sub, cols)
                sync(device)
                total += time.perf_counter() - t0
                cpu += cpu_seconds() - c0
                del s, order
        out["seconds"] = total * rows / sub
        out["cpu_s_all"] = cpu * rows / sub
        out["rows_timed"] = sub
    elif name == "loop-user":
        out.update(loop_reference(teacher, student, train, cfg["loop_users"], device))
    out["cpu_s"] = cpu_seconds() - cpu0  # whole measured step (the loop reference: its subset)
    out["peak_rss_gb"] = peak_rss_gb()
    out["base_rss_gb"] = base_rss
    if device.type == "cuda":
        out["cuda_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return out


@torch.no_grad()
def loop_reference(
    teacher: BenchMF, student: BenchMF, train: sp.csr_matrix, n_sub: int, device: torch.device
) -> dict:
    """The papers' refresh (a loop over users, dense int64 matrices), on the first n_sub users."""
    n, m = train.shape
    n_sub = min(n, n_sub)
    eps = 1e-4
    mask = 1 - torch.from_numpy(train[:n_sub].toarray()).to(device)  # (n_sub, m) dense float
    t0, c0 = time.perf_counter(), cpu_seconds()
    rank_matrix_t = torch.zeros((n_sub, m), dtype=torch.int64)
    rank_matrix_s = torch.zeros((n_sub, m), dtype=torch.int64)
    for u in range(n_sub):  # the reference's loop over users (deliberately slow)
        idx = torch.tensor([u], device=device)
        st = teacher.score_all(idx)[0] * mask[u]  # masked by multiplying by 0
        ss = student.score_all(idx)[0] * mask[u]
        rank_matrix_t[u] = torch.argsort(st).cpu()
        rank_matrix_s[u] = torch.argsort(ss).cpu()
    ranklist_t = torch.zeros_like(rank_matrix_t)
    for i in range(n_sub):
        ranklist_t[i][rank_matrix_t[i]] = torch.arange(m) + 1
    ranklist_s = torch.zeros_like(rank_matrix_s)
    for i in range(n_sub):
        ranklist_s[i][rank_matrix_s[i]] = torch.arange(m) + 1
    dif_t = ranklist_t - ranklist_s
    dif_s = ranklist_s - ranklist_t
    w_t = torch.exp(dif_t.float() * eps).to(device)
    w_s = torch.tanh(torch.clamp_min(dif_s.float() * eps, 0)).to(device)
    sync(device)
    sec_ranks, cpu_ranks = time.perf_counter() - t0, cpu_seconds() - c0
    # the draws of Algorithm 1 (the engine makes them too): per user, 5 items per training
    # interaction and direction, with replacement, observed items masked by multiplying by 0
    gen = torch.Generator(device).manual_seed(0)
    deg = np.diff(train.indptr)[:n_sub]
    for u in range(n_sub):  # the reference's second loop over users
        k = 5 * int(deg[u])
        if k:
            torch.multinomial(w_t[u] * mask[u], k, replacement=True, generator=gen)
            torch.multinomial(w_s[u] * mask[u] + 1e-12 * mask[u], k, replacement=True, generator=gen)
    sync(device)
    sec, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    del w_t, w_s
    # dense matrices alive at the end of the reference refresh, for all users: 6 int64
    # (rank matrices, rank lists, differences), 2 float32 weights, 1 float32 mask
    dense_gb = n * m * (6 * 8 + 2 * 4 + 4) / 2**30
    return {
        "seconds": sec * n / n_sub,
        "cpu_s_all": cpu * n / n_sub,
        "users_timed": n_sub,
        "seconds_ranks_only": sec_ranks * n / n_sub,
        "cpu_s_ranks_only": cpu_ranks * n / n_sub,
        "projected_dense_gb": dense_gb,
    }


def run_child(cfg: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{cfg['name']} failed:\n{proc.stderr[-3000:]}")
    for line in proc.stderr.splitlines():
        if line.startswith("#"):
            print(line)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["citeulike", "amazon-cds"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--loop-users", type=int, default=300, help="users timed by the loop reference")
    ap.add_argument("--configs", nargs="+", default=None, help="subset of configurations to run")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    print(
        f"# device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}"
    )
    last = None
    for ds in args.datasets:
        names = [
            "floor-user",
            "engine-user",
            "floor-item",
            "engine-item",
            "engine-item-fallback",
            "loop-user",
        ]
        if args.configs:
            names = [c for c in names if c in args.configs]
        elif ds != args.datasets[0]:  # the score_all-only item side: several full passes
            names.remove("engine-item-fallback")
        res = {}
        for name in names:
            res[name] = r = run_child(
                {"name": name, "dataset": ds, "device": args.device, "loop_users": args.loop_users}
            )
            extra = {
                k: v for k, v in r.items() if k not in ("seconds", "peak_rss_gb", "users", "items", "nnz")
            }
            print(
                f"{ds:11s} {name:21s} {r['seconds']:9.2f} s  peak_rss={r['peak_rss_gb']:.2f} GB  "
                f"{json.dumps(extra, default=lambda x: round(x, 3))}",
                flush=True,
            )
        # wall-clock ratios, and CPU-second ratios (steadier on a shared, loaded machine)
        for side in ("user", "item"):
            e, f = res.get(f"engine-{side}"), res.get(f"floor-{side}")
            if e and f:
                print(
                    f"{ds:11s} {side}-side refresh / floor = {e['seconds'] / f['seconds']:.2f} wall, "
                    f"{e['cpu_s'] / f['cpu_s_all']:.2f} cpu"
                )
        if "engine-user" in res and "loop-user" in res:
            e, lp = res["engine-user"], res["loop-user"]
            print(
                f"{ds:11s} loop / user-side refresh = {lp['seconds'] / e['seconds']:.1f}x wall, "
                f"{lp['cpu_s_all'] / e['cpu_s']:.1f}x cpu (loop without its draws: "
                f"{lp['seconds_ranks_only'] / e['seconds']:.1f}x wall, "
                f"{lp['cpu_s_ranks_only'] / e['cpu_s']:.1f}x cpu)"
            )
        if last is None and "engine-user" in res and "floor-user" in res and "loop-user" in res:
            peak = max(res[k]["peak_rss_gb"] for k in res if k.startswith("engine"))
            last = (
                res["engine-user"]["seconds"] / res["floor-user"]["seconds"],
                res["loop-user"]["seconds"] / res["engine-user"]["seconds"],
                peak,
            )
    if last is not None:
        print(f"refresh_vs_floor={last[0]:.2f} vs_loop={last[1]:.1f} peak_rss_gb={last[2]:.2f}")


if __name__ == "__main__":
    main()
