"""A BD and a DCD refresh split into ranks and draws: the draws are the rank engine's
``_draw`` calls (weights, their CDFs, the draws and their order), timed from outside; the rest of
``Refresh.seconds`` is the ranks. The goal (issue #37): draws that cost no more than the ranks.

Models: a random BPR teacher (dim 200) and student (dim 20), seed 0, on ``--dataset``
(default ``citeulike-dcd``). DCD: the first refresh (both models ranked, the teacher's ranks
kept), then ``--repeats`` later refreshes (the student ranked); BD: ``--repeats`` refreshes (both
models ranked every time: both train), with its default 40 draws per interaction and side.
Each figure is the median over the repeats, both sides summed.

    python benchmarks/bench_refresh.py [--data-dir ../shared/data] [--dataset citeulike-dcd]
        [--threads 1] [--repeats 2] [--methods bd,dcd]

Last line (for scripts): ``<method>_draws_vs_ranks=<draw seconds / rank seconds>`` per method.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from typing import Any

import torch

from recdistill.data import load_dataset
from recdistill.distill import load_distillers
from recdistill.distill.teacher import ModelTeacher
from recdistill.models import build_model


def recorded(engine: Any) -> list[list[float]]:
    """Wrap the engine's ``refresh`` and ``_draw``: each refresh appends [total seconds, draw
    seconds] (works on any version of the engine with those two methods)."""
    outs: list[list[float]] = []
    refresh, draw = engine.refresh, engine._draw

    def timed_refresh(*a: Any, **k: Any) -> Any:
        outs.append([0.0, 0.0])
        t0 = time.perf_counter()
        out = refresh(*a, **k)
        outs[-1][0] = time.perf_counter() - t0
        return out

    def timed_draw(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        out = draw(*a, **k)
        outs[-1][1] += time.perf_counter() - t0
        return out

    engine.refresh, engine._draw = timed_refresh, timed_draw
    return outs


def split(outs: list[list[float]]) -> tuple[float, float]:
    """(rank seconds, draw seconds) of a refresh's sides."""
    total = sum(o[0] for o in outs)
    draws = sum(o[1] for o in outs)
    return total - draws, draws


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dataset", default="citeulike-dcd")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--methods", default="bd,dcd")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset(a.dataset, data_dir=a.data_dir)
    reg = load_distillers()
    print(f"# {a.dataset}: {ds.n_users:,} users x {ds.n_items:,} items; threads={a.threads}; BPR 200 -> 20")
    print("| refresh | ranks (s) | draws (s) | total (s) | draws / ranks |")
    print("|---|---:|---:|---:|---:|")
    last = []
    for method in a.methods.split(","):
        torch.manual_seed(0)
        teacher, student = build_model("bpr", ds, dim=200), build_model("bpr", ds, dim=20)
        cls = reg.get(method)
        rows: list[tuple[str, list[tuple[float, float]]]] = []
        if method == "dcd":
            d = cls(student, ModelTeacher(teacher), ds, cls.build_config({}), seed=0)
            outs = recorded(d.engine)
            d.refresh()
            rows.append(("DCD, first (teacher and student ranked)", [split(outs)]))
            later = []
            for _ in range(a.repeats):
                outs.clear()
                d.refresh()
                later.append(split(outs))
            rows.append(("DCD, later (teacher's ranks kept)", later))
        elif method == "bd":
            d = cls(teacher, student, ds, cls.build_config({"warmup_epochs": 0, "period": 1}), seed=0)
            outs = recorded(d.engine)
            times = []
            for e in range(a.repeats):
                outs.clear()
                d.on_epoch_start(e)
                assert outs, "BD did not refresh"
                times.append(split(outs))
            rows.append(("BD (both models ranked)", times))
        else:
            raise SystemExit(f"--methods: bd or dcd, got {method!r}")
        for label, ts in rows:
            r = statistics.median(x[0] for x in ts)
            dr = statistics.median(x[1] for x in ts)
            print(f"| {label} | {r:.2f} | {dr:.2f} | {r + dr:.2f} | {dr / r:.2f}x |", flush=True)
        last.append(f"{method}_draws_vs_ranks={dr / r:.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# peak RSS {peak:,.0f} MB")
    print(" ".join(last))


if __name__ == "__main__":
    main()
