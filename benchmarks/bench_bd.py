"""BD's cost on CiteULike (citeulike-bd), BPR teacher (dim 50) and student (dim 5), CPU.

Measures, each configuration in a fresh child process (so peak RSS is its own):
- seconds per warm-up epoch (``L_CF`` only, teacher and student each),
- seconds per rank refresh (both models' exact ranks of every user's unobserved items and the
  draws of both directions for the whole period),
- seconds per BD epoch (both models updated per batch with ``L_CF + λ·L_BD``),
- the whole schedule: ``warmup`` warm-up epochs + ``epochs`` BD epochs with a refresh every ``p``,
  evaluation excluded,
- peak RSS of the process,
at the paper's batch size 128 (``--max-batches`` batches timed and extrapolated to the epoch) and at
our default 1024. The baseline measured in the same run is the official notebook's refresh
(per-user loop: score, ascending argsort, scatter of ranks, one ``multinomial`` per user),
timed on ``--baseline-users`` users and extrapolated to all users.

    python benchmarks/bench_bd.py [--threads 2] [--max-batches 300] [--json out.json] [--fresh-draws]

Reference (issue #6, the papers' notebook on this data): 8.8 s per teacher warm-up epoch,
46-136 s per refresh, 125-139 s per BD epoch, 7-13 hours in all, 17.5 GB.
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
import torch

NOTEBOOK = {
    "warmup_epoch_teacher_s": 8.8,
    "refresh_s": (46, 136),
    "bd_epoch_s": (125, 139),
    "total_h": (7, 13),
    "peak_gb": 17.5,
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _timed_epoch(trainer, objective, epoch: int, max_batches: int | None) -> tuple[float, int, int]:
    """(seconds, batches timed, batches in the epoch) of one epoch, stopped after max_batches."""
    n_total = -(-trainer.train_users.numel() // trainer.tc.batch_size)
    for m in trainer.models.values():
        m.train()
    t0 = time.perf_counter()
    n = 0
    for batch in trainer.default_batches(epoch, trainer.generator):
        for name in trainer.models:
            loss, _ = objective.loss(name, batch, epoch)
            opt = trainer.optimizers[name]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        n += 1
        if max_batches is not None and n >= max_batches:
            break
    return time.perf_counter() - t0, n, n_total


def _dataset(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from recdistill.data import load_dataset

    if args.data_dir:
        return load_dataset("citeulike-bd", data_dir=args.data_dir)
    return load_dataset("citeulike-bd")


def child(args: argparse.Namespace) -> dict:
    from recdistill.config import make_config
    from recdistill.distill.bd import BD, BDConfig
    from recdistill.models import build_model
    from recdistill.train.trainer import BaseObjective, Trainer

    torch.set_num_threads(args.threads)
    ds = _dataset(args)
    cfg = make_config(
        overrides={
            "data": {"name": "citeulike-bd"},
            "model": {"name": "bpr"},
            "train": {"batch_size": args.batch_size, "progress": False},
        }
    )
    torch.manual_seed(0)
    t = build_model("bpr", ds, size="teacher")
    s = build_model("bpr", ds, size="student")
    out: dict = {"batch_size": args.batch_size, "threads": args.threads, "n_train": ds.n_train}
    mb = args.max_batches if args.batch_size < 512 else None
    # warm-up epochs: each model alone with its base loss
    for name, model in (("teacher", t), ("student", s)):
        models = {name: model}
        tr = Trainer(models, BaseObjective(models), ds, cfg)
        sec, n, total = _timed_epoch(tr, tr.objective, 0, mb)
        out[f"warmup_epoch_{name}_s"] = sec * total / n
    # fresh_draws off (one draw per refresh, as results/bd_bench.md) unless --fresh-draws
    bd = BD(t, s, ds, BDConfig(warmup_epochs=0, fresh_draws=args.fresh_draws), seed=0)
    tr = Trainer(bd.models, bd, ds, cfg)
    t0 = time.perf_counter()
    bd.on_epoch_start(0)  # the refresh
    out["refresh_s"] = time.perf_counter() - t0
    sec, n, total = _timed_epoch(tr, bd, 0, mb)
    out["bd_epoch_s"] = sec * total / n
    out["batches_timed"] = n
    out["batches_per_epoch"] = total
    w, e, p = args.warmup, args.epochs, 10
    out["schedule"] = {"warmup_epochs": w, "bd_epochs": e, "period": p}
    out["schedule_s"] = (
        w * (out["warmup_epoch_teacher_s"] + out["warmup_epoch_student_s"])
        + e * out["bd_epoch_s"]
        + -(-e // p) * out["refresh_s"]
    )
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def baseline_child(args: argparse.Namespace) -> dict:
    """The notebook's refresh, transcribed: a Python loop over users."""
    from recdistill.models import build_model

    torch.set_num_threads(args.threads)
    ds = _dataset(args)
    torch.manual_seed(0)
    t = build_model("bpr", ds, size="teacher").eval()
    s = build_model("bpr", ds, size="student").eval()
    dense = torch.from_numpy(ds.train[: args.baseline_users].toarray())  # (U, m)
    deg = np.diff(ds.train.indptr)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    with torch.no_grad():
        for u in range(args.baseline_users):  # the notebook's loop (what we replace)
            uu = torch.tensor([u])
            mask = 1 - dense[u]
            rt = torch.argsort(torch.sigmoid(t.score_all(uu))[0] * mask)
            rs = torch.argsort(torch.sigmoid(s.score_all(uu))[0] * mask)
            rank_t = torch.empty_like(rt)
            rank_t[rt] = torch.arange(len(rt)) + 1
            rank_s = torch.empty_like(rs)
            rank_s[rs] = torch.arange(len(rs)) + 1
            w_t = torch.exp((rank_t - rank_s).float() * 1e-4)
            w_s = torch.tanh(torch.clamp((rank_s - rank_t).float() * 1e-4, min=0))
            torch.multinomial(w_t, int(deg[u]) * 5, replacement=True, generator=g)
            if w_s.sum() > 0:
                torch.multinomial(w_s, int(deg[u]) * 5, replacement=True, generator=g)
    sec = time.perf_counter() - t0
    return {
        "baseline_refresh_s": sec * ds.n_users / args.baseline_users,
        "baseline_users": args.baseline_users,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-batches", type=int, default=300, help="batches timed at batch size < 512")
    p.add_argument("--batch-sizes", default="128,1024")
    p.add_argument("--warmup", type=int, default=30, help="warm-up epochs in the schedule")
    p.add_argument("--epochs", type=int, default=30, help="BD epochs in the schedule")
    p.add_argument("--baseline-users", type=int, default=300)
    p.add_argument("--data-dir", default=os.environ.get("RECDISTILL_DATA"))
    p.add_argument("--json", default=None)
    p.add_argument(
        "--fresh-draws",
        action="store_true",
        help="BD draws anew every epoch (a refresh draws the whole period; BDConfig.fresh_draws)",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=1024, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        res = baseline_child(a) if a.child == "baseline" else child(a)
        print(json.dumps(res))
        return
    base = [
        sys.executable,
        __file__,
        "--threads",
        str(a.threads),
        "--max-batches",
        str(a.max_batches),
        "--warmup",
        str(a.warmup),
        "--epochs",
        str(a.epochs),
        "--baseline-users",
        str(a.baseline_users),
    ]
    if a.fresh_draws:
        base.append("--fresh-draws")
    if a.data_dir:
        base += ["--data-dir", a.data_dir]

    def run(extra: list[str]) -> dict:
        out = subprocess.run(base + extra, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    results = {"baseline": run(["--child", "baseline"]), "ours": []}
    for bs in (int(x) for x in a.batch_sizes.split(",")):
        results["ours"].append(run(["--child", "ours", "--batch-size", str(bs)]))
    b = results["baseline"]["baseline_refresh_s"]
    print(f"threads={a.threads}; notebook (paper's code, GPU, its figures): {NOTEBOOK}")
    print(f"baseline refresh (notebook's per-user loop, {a.baseline_users} users extrapolated): {b:.1f} s")
    print(
        "| batch | warm-up epoch T (s) | warm-up epoch S (s) | refresh (s) | BD epoch (s) | "
        "schedule (min) | peak RSS (MB) | refresh speed-up vs loop |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results["ours"]:
        print(
            f"| {r['batch_size']} | {r['warmup_epoch_teacher_s']:.2f} | "
            f"{r['warmup_epoch_student_s']:.2f} | {r['refresh_s']:.1f} | {r['bd_epoch_s']:.2f} | "
            f"{r['schedule_s'] / 60:.1f} | "
            f"{r['peak_rss_mb']:.0f} | {b / r['refresh_s']:.1f}x |"
        )
    print(
        f"schedule = {a.warmup} warm-up epochs (T and S) + {a.epochs} BD epochs + a refresh every 10; "
        f"batch < 512: {a.max_batches} batches timed per epoch, extrapolated"
    )
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
