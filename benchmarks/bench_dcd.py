"""DCD's cost next to RRD and the plain student on citeulike-dcd (BPR 200 -> 20, batch 1024):
seconds per training epoch of each (the same run, a fixed random BPR-200 teacher whose lists are
computed before timing), and the cost of one correction refresh (both sides), as ratios: the
first (both models ranked) and a later one (the frozen teacher's ranks kept, the student ranked).

    python benchmarks/bench_dcd.py [--data-dir ../shared/data] [--threads 1] [--epochs 3]
        [--epochs-only | --profile-refresh]

It also counts the list targets each method scores per epoch (rows of its batches x targets
per row, from the timed epochs) and gives the epoch DCD would take if each of its list targets
cost what one of RRD's costs: ``plain + (RRD epoch - plain) x DCD's targets / RRD's``, the floor
the list losses set on ``dcd_vs_rrd`` at RRD's own speed per target.

Last line (for scripts): ``dcd_vs_rrd=<DCD epoch with a later refresh amortised over its period /
RRD epoch> refresh_vs_rrd_epoch=<one later refresh / RRD epoch>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_optim import timed  # noqa: E402
from recdistill.data import load_dataset  # noqa: E402
from recdistill.distill import load_distillers  # noqa: E402
from recdistill.distill.teacher import ModelTeacher  # noqa: E402
from recdistill.models import build_model  # noqa: E402
from recdistill.ranking import TeacherRanks  # noqa: E402
from recdistill.train import BaseObjective  # noqa: E402


def epochs(models: dict, objective: Any, ds: Any, n: int) -> float:
    """Median seconds of ``n`` training epochs after one untimed (``bench_optim.timed``, dense
    Adam; refreshes excluded: the DCD period is longer than the timed epochs)."""
    return timed(lambda: (models, objective), ds, "adam", n)


class TargetCount:
    """Counts the rows a distiller's batches distil (``batch_rows``) and so the list targets it
    scores: per user row ``K + L`` (RRD) and ``M+ + M-`` (UCD), per item row the item-side
    lengths (IR-RRD, ICD)."""

    def __init__(self, distiller: Any) -> None:
        self.users = self.items = self.batches = 0
        self.d = distiller
        inner = distiller.batch_rows

        def counting(batch: Any) -> Any:
            users, items = inner(batch)
            self.users += users.numel()
            self.items += 0 if items is None else items.numel()
            self.batches += 1
            return users, items

        distiller.batch_rows = counting

    def targets(self) -> int:
        """List targets scored per batch, on average."""
        c = self.d.cfg if hasattr(self.d, "cfg") else self.d.config
        per_user = (c.n_interesting + c.n_uninteresting) * bool(c.user_side)
        per_item = (c.item_n_interesting + c.item_n_uninteresting) * bool(c.item_side)
        if getattr(c, "user_correction", False):
            per_user += c.n_under + c.n_over
        if getattr(c, "item_correction", False):
            per_item += c.item_n_under + c.item_n_over
        return round((per_user * self.users + per_item * self.items) / max(1, self.batches))


def profile_refresh(reg: Any, teacher: Any, student: Any, ds: Any, top: int = 16) -> None:
    """The ops of one later DCD refresh (both sides, the teacher's ranks kept), by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    dcd = reg.get("dcd")(student, teacher, ds, reg.get("dcd").build_config({}), seed=0)
    dcd.refresh()  # the first: ranks the teacher and keeps its ranks
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        dcd.refresh()
        seconds = time.perf_counter() - t0
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    print(f"one later refresh (both sides, teacher's ranks kept): {seconds:.2f} s under the profiler")
    print("| op | share of self CPU time | calls |")
    print("|---|---:|---:|")
    for e in ops[:top]:
        print(f"| {e.key} | {100 * e.self_cpu_time_total / total:.1f}% | {e.count} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument(
        "--epochs-only", action="store_true", help="print RRD's and DCD's epochs only (no refresh)"
    )
    p.add_argument(
        "--profile-refresh",
        action="store_true",
        help="profile one later refresh (torch.profiler): each op's share of its CPU time, then stop",
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset("citeulike-dcd", data_dir=a.data_dir)
    reg = load_distillers()
    torch.manual_seed(1)
    teacher = ModelTeacher(build_model("bpr", ds, dim=200))

    def student() -> Any:
        torch.manual_seed(0)
        return build_model("bpr", ds, dim=20)

    if a.profile_refresh:
        profile_refresh(reg, teacher, student(), ds)
        return
    s = student()
    plain = epochs({"student": s}, BaseObjective({"student": s}), ds, a.epochs)
    rrd = reg.get("rrd")(student(), teacher, ds, reg.get("rrd").build_config({}), seed=0)
    n_rrd = TargetCount(rrd)
    t_rrd = epochs(rrd.models, rrd, ds, a.epochs)
    cfg = reg.get("dcd").build_config({"period": 1000})  # no refresh inside the timed epochs
    dcd = reg.get("dcd")(student(), teacher, ds, cfg, seed=0)
    n_dcd = TargetCount(dcd)
    t_dcd = epochs(dcd.models, dcd, ds, a.epochs)
    if a.epochs_only:  # e.g. to compare two commits' training code (PYTHONPATH=<checkout>/src)
        print(f"rrd_epoch_s={t_rrd:.3f} dcd_epoch_s={t_dcd:.3f} (no refresh)")
        return
    rrd_ir = reg.get("rrd+ir-rrd")(student(), teacher, ds, reg.get("rrd+ir-rrd").build_config({}), seed=0)
    n_rrd_ir = TargetCount(rrd_ir)
    t_rrd_ir = epochs(rrd_ir.models, rrd_ir, ds, a.epochs)
    dcd.teacher_ranks = TeacherRanks()  # the timed epochs' first refresh filled one: start anew
    t0 = time.perf_counter()
    dcd.refresh()  # the first: ranks the teacher too, and keeps its ranks
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    dcd.refresh()  # every later one: the student only (DCD's frozen teacher)
    t_refresh = time.perf_counter() - t0
    period = reg.get("dcd").build_config({}).period
    amortised = t_dcd + t_refresh / period
    floor = plain + (t_rrd - plain) * n_dcd.targets() / n_rrd.targets()
    print(f"threads={a.threads}, batch 1024, median of {a.epochs} epochs after one untimed")
    print("| run | list targets per batch | s/epoch | vs RRD |")
    print("|---|---:|---:|---:|")
    for label, n, t in (
        ("plain student", 0, plain),
        ("RRD", n_rrd.targets(), t_rrd),
        ("RRD + IR-RRD (DCD w/o Correction)", n_rrd_ir.targets(), t_rrd_ir),
        ("DCD (no refresh)", n_dcd.targets(), t_dcd),
        ("DCD's floor at RRD's cost per list target (no refresh)", n_dcd.targets(), floor),
        (f"DCD, refresh amortised over {period} epochs", n_dcd.targets(), amortised),
        ("first correction refresh (both sides, ranks the teacher)", None, t_first),
        ("one later correction refresh (both sides, teacher's ranks kept)", None, t_refresh),
    ):
        print(f"| {label} | {'' if n is None else n} | {t:.3f} | {t / t_rrd:.2f}x |")
    print(
        f"dcd_vs_rrd={amortised / t_rrd:.2f} dcd_vs_rrd_ir={amortised / t_rrd_ir:.2f} "
        f"refresh_vs_rrd_epoch={t_refresh / t_rrd:.2f}"
    )


if __name__ == "__main__":
    main()
