"""CDAE's sparse training path against the dense one it replaced, in the same run: seconds per
training epoch on citeulike-bd (the BD notebook's CDAE: one layer each side, sigmoid, batch 128
users, 5 x |I_u^+| negatives) at the BD preset sizes (teacher dim 50, student dim 5), and one BD
epoch (CDAE 50 <-> 5, the notebook's settings, 5 fresh draws per observed item each epoch; the
refresh falls in the untimed epoch).

Dense: the input rows as (B, n_items) matrices through ``nn.Linear`` and every logit of the batch
computed (the loss weighted to the observed and sampled items); sparse: ``CDAE.encode`` over the
observed entries and logits of the weighted items only. Each figure: the median of ``--epochs``
timed epochs after one untimed. The last line is for scripts:
``cdae50_sparse_vs_dense=<x> cdae5_sparse_vs_dense=<x> bd_epoch_sparse_vs_dense=<x>`` (dense
seconds over sparse seconds: the speed-up).

    python benchmarks/bench_cdae.py [--data-dir ../shared/data] [--threads 1] [--epochs 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from recdistill.data import load_dataset
from recdistill.distill import load_distillers
from recdistill.models.base import Batch
from recdistill.models.cdae import CDAE
from recdistill.train import BaseObjective

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_optim  # noqa: E402


class DenseCDAE(CDAE):
    """The dense computation: full rows in, every logit out (the same loss)."""

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.forward_rows(users, self.rows(users))

    def score_pairs(self, users: torch.Tensor, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.score_all(users)[rows, items]

    def base_loss(self, batch: Batch) -> torch.Tensor:
        assert batch.neg is not None and batch.neg_row is not None
        y = self.rows(batch.users)  # (B, n_items)
        z = self.forward_rows(batch.users, y)  # (B, n_items)
        weight = y.clone()
        ones = torch.ones_like(batch.neg, dtype=z.dtype)
        weight.index_put_((batch.neg_row, batch.neg), ones, accumulate=True)
        return F.binary_cross_entropy_with_logits(z, y, weight=weight, reduction="sum") / batch.users.numel()


def cdae(ds: Any, dim: int, dense: bool) -> CDAE:
    """The notebook's CDAE, the same initialisation either way."""
    torch.manual_seed(0)
    cls = DenseCDAE if dense else CDAE
    return cls(ds.n_users, ds.n_items, ds.train, dim=dim, n_layers=1, activation="sigmoid", user_init_std=1.0)


def timed(models: dict, objective: Any, ds: Any, epochs: int) -> float:
    """Median seconds of ``epochs`` training epochs after one untimed (``bench_optim.timed``,
    dense Adam, with the notebook's lr, batch and negatives)."""
    sets = ("train.lr=2e-3", "train.batch_size=128", "train.n_neg=5")
    return bench_optim.timed(lambda: (models, objective), ds, "adam", epochs, sets=sets)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset("citeulike-bd", data_dir=a.data_dir)
    reg = load_distillers()
    bd_cls = reg.get("bd")
    bd_cfg = bd_cls.build_config(
        {
            "sampling": "reversed",
            "n_samples": 5,
            "tau": 2.0,
            "label_only_tau": True,
            "eps_t": 1e-4,
            "eps_e": 1e-4,
            "warmup_epochs": 0,
            "period": a.epochs + 1,  # the refresh falls in the untimed first epoch
        }
    )
    print(f"threads={a.threads}, batch 128 users, median of {a.epochs} epochs after one untimed")
    print("| run | dense s/epoch | sparse s/epoch | speed-up |")
    print("|---|---:|---:|---:|", flush=True)
    ratios = []

    def row(label: str, t: dict[str, float]) -> None:
        ratios.append(t["dense"] / t["sparse"])
        print(f"| {label} | {t['dense']:.3f} | {t['sparse']:.3f} | {ratios[-1]:.2f}x |", flush=True)

    for label, dim in (("CDAE dim 50 (teacher)", 50), ("CDAE dim 5 (student)", 5)):
        t = {}
        for kind in ("dense", "sparse"):
            m = cdae(ds, dim, kind == "dense")
            t[kind] = timed({"m": m}, BaseObjective({"m": m}), ds, a.epochs)
        row(label, t)
    t = {}
    for kind in ("dense", "sparse"):
        d = bd_cls(cdae(ds, 50, kind == "dense"), cdae(ds, 5, kind == "dense"), ds, bd_cfg, seed=0)
        t[kind] = timed(d.models, d, ds, a.epochs)
    row("BD epoch, CDAE 50 <-> 5", t)
    print(
        f"cdae50_sparse_vs_dense={ratios[0]:.2f} cdae5_sparse_vs_dense={ratios[1]:.2f} "
        f"bd_epoch_sparse_vs_dense={ratios[2]:.2f}"
    )


if __name__ == "__main__":
    main()
