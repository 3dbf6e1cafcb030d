"""Training speed of BPR on CiteULike (BD split): seconds per epoch at batch 128 (the papers'
reference setting) and at our default batch size, for dimension 50 (BD teacher) and 200 (DCD
teacher), against a baseline measured in the same run: the same model and optimiser with the
negatives drawn by a Python loop per interaction (how the papers' reference code samples).
Optionally (``--plateau``) the wall time for the dimension-50 teacher to reach its validation
plateau with ``configs/bpr-citeulike-bd.yaml``.

    python benchmarks/bench_train.py [--data-dir ../shared/data] [--threads 2] [--plateau]

Prints figures and ratios; nothing is asserted (targets live here, not in unit tests).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from recdistill.config import make_config
from recdistill.data import load_dataset
from recdistill.models import build_model
from recdistill.train import BaseObjective, Trainer

ROOT = Path(__file__).resolve().parents[1]


def epoch_seconds(ds, dim: int, batch_size: int, max_batches: int | None = None) -> float:
    """Wall seconds of one training epoch of our trainer (extrapolated if ``max_batches``)."""
    torch.manual_seed(0)
    m = build_model("bpr", ds, dim=dim)
    cfg = make_config(sets=[f"train.batch_size={batch_size}", "train.progress=false", "train.lr=1e-2"])
    tr = Trainer({"m": m}, BaseObjective({"m": m}), ds, cfg)
    n_batches = -(-ds.n_train // batch_size)
    it = tr._batches(0)
    t0 = time.perf_counter()
    done = 0
    for batch in it:
        loss = m.base_loss(batch)
        tr.optimizers["m"].zero_grad(set_to_none=True)
        loss.backward()
        tr.optimizers["m"].step()
        done += 1
        if max_batches is not None and done >= max_batches:
            break
    return (time.perf_counter() - t0) * n_batches / done


def baseline_epoch_seconds(ds, dim: int, batch_size: int, max_batches: int) -> float:
    """Same update, negatives drawn per interaction in Python (reference-code style)."""
    torch.manual_seed(0)
    m = build_model("bpr", ds, dim=dim)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    coo = ds.train.tocoo()
    users, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
    rows = [
        set(ds.train.indices[ds.train.indptr[u] : ds.train.indptr[u + 1]].tolist()) for u in range(ds.n_users)
    ]
    perm = rng.permutation(len(users))
    n_batches = -(-len(users) // batch_size)
    t0 = time.perf_counter()
    for b in range(max_batches):
        idx = perm[b * batch_size : (b + 1) * batch_size]
        neg = []
        for u in users[idx]:  # the loop the reference code runs
            j = int(rng.integers(ds.n_items))
            while j in rows[u]:
                j = int(rng.integers(ds.n_items))
            neg.append(j)
        from recdistill.models.base import Batch

        batch = Batch(torch.from_numpy(users[idx]), torch.from_numpy(items[idx]), torch.tensor(neg)[:, None])
        loss = m.base_loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) * n_batches / max_batches


def plateau(data_dir: str | None) -> None:
    sets = ["train.progress=false", "train.eval_every=1"]
    if data_dir:
        sets.append(f"data.data_dir={data_dir}")
    cfg = make_config(ROOT / "configs" / "bpr-citeulike-bd.yaml", {"model": {"size": "teacher"}}, sets)
    ds = load_dataset(cfg.data.name, data_dir=data_dir) if data_dir else load_dataset(cfg.data.name)
    torch.manual_seed(0)
    m = build_model("bpr", ds, size="teacher")
    tr = Trainer({"m": m}, BaseObjective({"m": m}), ds, cfg)
    t0 = time.perf_counter()
    curve = []
    while tr.epoch < cfg.train.epochs and not tr.stopped:
        tr.train_epoch(tr.epoch)
        tr.epoch += 1
        v = tr.validate()["m"][tr.monitor]
        curve.append((tr.epoch, time.perf_counter() - t0, tr.train_time + 0, v))
    best = max(v for *_, v in curve)
    first = next((e, t) for e, t, _, v in curve if v >= 0.99 * best)
    print(
        f"plateau: best valid {tr.monitor} {best:.4f}; within 1% of it at epoch {first[0]} after "
        f"{first[1]:.0f} s (training + validation every epoch); stopped at epoch {tr.epoch}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--dims", default="50,200")
    ap.add_argument("--plateau", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load_dataset("citeulike-bd", **({"data_dir": args.data_dir} if args.data_dir else {}))
    default_bs = make_config().train.batch_size
    print(f"citeulike-bd: {ds.n_train:,} training interactions; torch threads {torch.get_num_threads()}")
    print("| dim | batch | ours s/epoch | baseline s/epoch | speed-up | paper code s/epoch |")
    print("|---:|---:|---:|---:|---:|---:|")
    paper = {50: 9.0, 200: 29.0}
    for dim in (int(d) for d in args.dims.split(",")):
        for bs in (128, default_bs):
            ours = epoch_seconds(ds, dim, bs)
            base = baseline_epoch_seconds(ds, dim, bs, max_batches=max(20, 20000 // bs))
            ref = f"{paper[dim]:.0f}" if bs == 128 and dim in paper else "-"
            print(f"| {dim} | {bs} | {ours:.2f} | {base:.2f} | {base / ours:.1f}x | {ref} |", flush=True)
    if args.plateau:
        plateau(args.data_dir)


if __name__ == "__main__":
    main()
