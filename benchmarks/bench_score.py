"""A/B of BPR's gathered scores (``BPR.score`` / ``score_users``, the distillation terms' hot
path): the batched matmul it used before against the product and sum it uses now, timed as RRD
and DCD training epochs on citeulike-dcd (BPR 200 -> 20, batch 1024) in one process, the two
variants alternating, so both see the same machine load.

    python benchmarks/bench_score.py [--data-dir ../shared/data] [--threads 1] [--rounds 3]

Last line: ``rrd_speedup=<bmm epoch / product-sum epoch> dcd_speedup=<same for DCD>`` (medians).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_optim import make_config  # noqa: E402
from recdistill.data import load_dataset  # noqa: E402
from recdistill.distill import load_distillers  # noqa: E402
from recdistill.distill.teacher import ModelTeacher  # noqa: E402
from recdistill.models import build_model  # noqa: E402
from recdistill.models.base import lookup  # noqa: E402
from recdistill.models.bpr import BPR  # noqa: E402
from recdistill.train import Trainer  # noqa: E402


def score_bmm(self: BPR, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    p = lookup(self.user_emb, users)
    q = lookup(self.item_emb, items)
    return (q @ p.unsqueeze(-1)).squeeze(-1)


def score_users_bmm(self: BPR, items: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
    q = lookup(self.item_emb, items)
    p = lookup(self.user_emb, users)
    return (p @ q.unsqueeze(-1)).squeeze(-1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset("citeulike-dcd", data_dir=a.data_dir)
    reg = load_distillers()
    torch.manual_seed(1)
    teacher = ModelTeacher(build_model("bpr", ds, dim=200))
    cfg = make_config(sets=["train.progress=false", "train.lr=1e-3", "train.optimizer=adam"])
    trainers: dict[str, Any] = {}
    for name, params in (("rrd", {}), ("dcd", {"period": 1000})):  # no refresh inside the timing
        torch.manual_seed(0)
        d = reg.get(name)(
            build_model("bpr", ds, dim=20), teacher, ds, reg.get(name).build_config(params), seed=0
        )
        trainers[name] = Trainer(d.models, d, ds, cfg, primary=next(reversed(d.models)))
        trainers[name].train_epoch(0)  # untimed: first-epoch allocations
    new = (BPR.score, BPR.score_users)
    old = (score_bmm, score_users_bmm)
    times: dict[tuple[str, str], list[float]] = {}
    epoch = 1
    for _ in range(a.rounds):
        for variant, (s, su) in (("bmm", old), ("product-sum", new)):
            BPR.score, BPR.score_users = s, su  # type: ignore[method-assign]
            for name, tr in trainers.items():
                t0 = time.perf_counter()
                tr.train_epoch(epoch)
                times.setdefault((name, variant), []).append(time.perf_counter() - t0)
            epoch += 1
    BPR.score, BPR.score_users = new  # type: ignore[method-assign]
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"threads={a.threads}, batch 1024, median of {a.rounds} alternating epochs per cell")
    print("| run | bmm s/epoch | product-sum s/epoch | speed-up |")
    print("|---|---:|---:|---:|")
    for name in trainers:
        b, n = med[(name, "bmm")], med[(name, "product-sum")]
        print(f"| {name.upper()} | {b:.3f} | {n:.3f} | {b / n:.2f}x |")
    rrd_x, dcd_x = (med[(n, "bmm")] / med[(n, "product-sum")] for n in ("rrd", "dcd"))
    print(f"rrd_speedup={rrd_x:.2f} dcd_speedup={dcd_x:.2f}")


if __name__ == "__main__":
    main()
