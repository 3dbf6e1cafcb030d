"""Dense Adam vs row-sparse Adam (``train.optimizer``): seconds per training epoch on CiteULike,
both in the same run, as ratios.

Rows: BPR d = 20 / 50 / 200 and NeuMF, CDAE at their BD preset sizes (teacher, dim 50) at batch
1024; a BD epoch (BPR 50 / 5, both models, the refresh excluded) and an RRD epoch (BPR 20 student,
a fixed random BPR-200 teacher's lists computed before timing). Each figure: the median of
``--epochs`` timed epochs after one untimed epoch. The last line is for scripts:
``bpr200_sparse_vs_dense=<x> bd_epoch_sparse_vs_dense=<x> rrd_epoch_sparse_vs_dense=<x>``.

    python benchmarks/bench_optim.py [--data-dir ../shared/data] [--threads 1] [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from recdistill.config import make_config
from recdistill.data import load_dataset
from recdistill.distill import load_distillers
from recdistill.distill.teacher import ModelTeacher
from recdistill.models import build_model
from recdistill.train import BaseObjective, Trainer


def timed(
    make: Any, ds: Any, optimizer: str, epochs: int, first: int = 0, sets: tuple[str, ...] = ()
) -> float:
    """Median seconds of ``epochs`` epochs of ``make() -> (models, objective)`` after one more
    (lr 1e-3; ``sets``: further ``train.*`` overrides, e.g. the batch size)."""
    models, objective = make()
    cfg = make_config(sets=["train.progress=false", "train.lr=1e-3", f"train.optimizer={optimizer}", *sets])
    tr = Trainer(models, objective, ds, cfg, primary=next(reversed(models)))
    times = []
    for e in range(first, first + epochs + 1):
        t0 = time.perf_counter()
        tr.train_epoch(e)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    bd_ds = load_dataset("citeulike-bd", data_dir=a.data_dir)
    dcd_ds = load_dataset("citeulike-dcd", data_dir=a.data_dir)
    reg = load_distillers()

    def base(name: str, dim: int, ds: Any) -> Any:
        def make() -> Any:
            torch.manual_seed(0)
            m = build_model(name, ds, dim=dim)
            return {"m": m}, BaseObjective({"m": m})

        return make

    def bd() -> Any:
        torch.manual_seed(0)
        cls = reg.get("bd")
        t, s = build_model("bpr", bd_ds, dim=50), build_model("bpr", bd_ds, dim=5)
        d = cls(t, s, bd_ds, cls.build_config({"warmup_epochs": 0, "period": 100}), seed=0)
        d.on_epoch_start(0)  # the refresh, before timing (epochs 1.. reuse its period)
        return d.models, d

    teacher = ModelTeacher(build_model("bpr", dcd_ds, dim=200))

    def rrd() -> Any:
        torch.manual_seed(0)
        cls = reg.get("rrd")
        d = cls(build_model("bpr", dcd_ds, dim=20), teacher, dcd_ds, cls.build_config({}), seed=0)
        return d.models, d

    rows = [
        ("BPR d=20", base("bpr", 20, dcd_ds), dcd_ds, 0),
        ("BPR d=50", base("bpr", 50, bd_ds), bd_ds, 0),
        ("BPR d=200", base("bpr", 200, dcd_ds), dcd_ds, 0),
        ("NeuMF d=50", base("neumf", 50, bd_ds), bd_ds, 0),
        ("CDAE d=50", base("cdae", 50, bd_ds), bd_ds, 0),
        ("BD epoch (BPR 50/5)", bd, bd_ds, 1),
        ("RRD epoch (BPR 20)", rrd, dcd_ds, 0),
    ]
    print(f"threads={a.threads}, batch 1024, median of {a.epochs} epochs after one untimed")
    print("| run | dense Adam (s/epoch) | row-sparse Adam (s/epoch) | speed-up |")
    print("|---|---:|---:|---:|")
    ratio = {}
    for label, make, ds, first in rows:
        dense = timed(make, ds, "adam", a.epochs, first)
        sparse = timed(make, ds, "sparse_adam", a.epochs, first)
        ratio[label] = dense / sparse
        print(f"| {label} | {dense:.3f} | {sparse:.3f} | {dense / sparse:.2f}x |", flush=True)
    bpr, bd_r, rrd_r = ratio["BPR d=200"], ratio["BD epoch (BPR 50/5)"], ratio["RRD epoch (BPR 20)"]
    print(
        f"bpr200_sparse_vs_dense={bpr:.2f} bd_epoch_sparse_vs_dense={bd_r:.2f} "
        f"rrd_epoch_sparse_vs_dense={rrd_r:.2f}"
    )


if __name__ == "__main__":
    main()
