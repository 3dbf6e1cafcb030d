"""Each method's training epoch as a ratio to RRD's, on citeulike-rou (BPR 400 -> 20, batch 2048,
RCE-KD's settings): the plain student, RRD, RCE-KD, UnKD, with a fixed random BPR-400 teacher
whose lists are built before timing (``bench_optim.timed``: the trainer's epoch, which calls
the objective's ``on_epoch_start`` once). An epoch includes the method's per-epoch refresh (RCE-KD:
the student's top-200 and its draw; UnKD: its pairs; RRD: its draws), since all three refresh
every epoch.

    python benchmarks/bench_methods.py [--data-dir ../shared/data] [--threads 1] [--epochs 3]

Last line (for scripts): ``rcekd_vs_rrd=<epoch ratio> unkd_vs_rrd=<epoch ratio>
plain_vs_rrd=<epoch ratio>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from recdistill.data import load_dataset
from recdistill.distill import load_distillers
from recdistill.distill.base import Parts
from recdistill.distill.teacher import ModelTeacher
from recdistill.models import build_model
from recdistill.train import BaseObjective

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_optim import timed  # noqa: E402

PARAMS: dict[str, dict[str, Any]] = {
    "rrd": {"lambda_rrd": 0.1, "n_top": 500, "n_interesting": 100, "n_uninteresting": 200},
    "rcekd": {},
    "unkd": {"lambda_unkd": 0.5, "n_groups": 2, "n_samples": 2},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset("citeulike-rou", data_dir=a.data_dir)
    torch.manual_seed(1)
    teacher = ModelTeacher(build_model("bpr", ds, dim=400))
    reg = load_distillers()
    out: dict[str, float] = {}
    torch.manual_seed(0)
    plain = build_model("bpr", ds, dim=20)
    sets = ("train.batch_size=2048",)
    out["plain"] = timed(
        lambda: ({"student": plain}, BaseObjective({"student": plain})), ds, "adam", a.epochs, sets=sets
    )
    for name, params in PARAMS.items():
        torch.manual_seed(0)
        student = build_model("bpr", ds, dim=20)
        cls = reg.get(name)
        t0 = time.perf_counter()
        d = cls.build(Parts({"student": student}, {"teacher": teacher}, ds, cls.build_config(params)))
        setup = time.perf_counter() - t0
        out[name] = timed(lambda: ({"student": student}, d), ds, "adam", a.epochs, sets=sets)  # noqa: B023
        print(f"{name:6s} setup {setup:6.2f} s (untimed below), epoch {out[name]:6.2f} s")
    print(f"plain  epoch {out['plain']:6.2f} s")
    r = out["rrd"]
    print(" ".join(f"{k}_vs_rrd={out[k] / r:.2f}" for k in ("rcekd", "unkd", "plain")))


if __name__ == "__main__":
    main()
