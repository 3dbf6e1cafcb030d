"""NeuMF ``score`` on (user, item) pairs: the split first MLP layer against the concatenated
forward (``MLP([p_u ; q_i])``, the obvious path and the one before the split), in one run,
alternating, on the two shapes that matter: the sampled protocol's evaluation (every user's 500
candidates, no gradient) and a training batch of DCD's list losses (1024 users x 80 items, forward
and backward).

    python benchmarks/bench_neumf.py [--data-dir ../shared/data] [--dim 200] [--threads 1] [--repeat 3]

Last line: ``eval_speedup=<concat / split> train_speedup=<concat / split>`` (medians).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from recdistill.data import load_dataset
from recdistill.models import build_model


def concat_score(model: Any, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """The concatenated forward: ``h^T [p^G_u * q^G_i ; MLP([p^M_u ; q^M_i])]``."""
    k = items.shape[1]
    x = torch.cat([model.user_mlp(users)[:, None, :].expand(-1, k, -1), model.item_mlp(items)], -1)
    gmf = model.user_gmf(users)[:, None, :] * model.item_gmf(items)
    return model.predict(torch.cat([gmf, model.mlp(x)], -1)).squeeze(-1)  # (B, k)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dim", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset("citeulike-dcd", data_dir=a.data_dir)
    torch.manual_seed(0)
    model = build_model("neumf", ds, dim=a.dim)
    cand = torch.cat(  # (n_users, 500): the held-out test item and its 499 sampled candidates
        [torch.from_numpy(ds.test_items).long()[:, None], torch.from_numpy(ds.candidates).long()], 1
    )
    users = torch.arange(ds.n_users)
    gen = torch.Generator().manual_seed(0)
    tu = torch.randint(0, ds.n_users, (1024,), generator=gen)
    ti = torch.randint(0, ds.n_items, (1024, 80), generator=gen)

    def evaluate(fn: Any) -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for s in range(0, ds.n_users, 256):
                fn(model, users[s : s + 256], cand[s : s + 256])
        return time.perf_counter() - t0

    def train_step(fn: Any) -> float:
        t0 = time.perf_counter()
        for _ in range(5):
            model.zero_grad()
            fn(model, tu, ti).sum().backward()
        return (time.perf_counter() - t0) / 5

    def split(m: Any, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return m.score(u, i)

    times: dict[str, list[float]] = {
        k: [] for k in ("eval concat", "eval split", "train concat", "train split")
    }
    for _ in range(a.repeat):  # alternating, so that a change of load hits both
        times["eval concat"].append(evaluate(concat_score))
        times["eval split"].append(evaluate(split))
        times["train concat"].append(train_step(concat_score))
        times["train split"].append(train_step(split))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"NeuMF dim {a.dim}, citeulike-dcd, threads={a.threads}, median of {a.repeat} alternating runs")
    print("| shape | concatenated s | split s | speed-up |")
    print("|---|---:|---:|---:|")
    print(
        f"| sampled evaluation, {ds.n_users} users x 500 | {med['eval concat']:.3f} | "
        f"{med['eval split']:.3f} | {med['eval concat'] / med['eval split']:.2f}x |"
    )
    print(
        f"| training step, 1024 x 80 pairs, forward + backward | {med['train concat']:.4f} | "
        f"{med['train split']:.4f} | {med['train concat'] / med['train split']:.2f}x |"
    )
    print(
        f"eval_speedup={med['eval concat'] / med['eval split']:.2f} "
        f"train_speedup={med['train concat'] / med['train split']:.2f}"
    )


if __name__ == "__main__":
    main()
