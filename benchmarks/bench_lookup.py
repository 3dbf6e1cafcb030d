"""Embedding lookups: ``nn.Embedding`` against ``recdistill.models.base.lookup`` (index_select,
whose backward is index_add_), forward + backward on the shape of one DCD batch (1024 rows x 160
gathered items, dim 20, a 16,980-item table: citeulike-dcd).

    python benchmarks/bench_lookup.py [--threads 1] [--repeats 20]

Last line: ``lookup_vs_embedding=<lookup seconds / nn.Embedding seconds>``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from recdistill.models.base import lookup


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    emb = nn.Embedding(16980, 20)
    idx = torch.randint(0, 16980, (1024, 160))

    def timed(f) -> float:
        for _ in range(3):
            f()
        t0 = time.perf_counter()
        for _ in range(a.repeats):
            f()
        return (time.perf_counter() - t0) / a.repeats

    def run(fn) -> None:
        fn(emb, idx).sum().backward()
        emb.weight.grad = None

    t_emb = timed(lambda: run(lambda e, i: e(i)))
    t_lookup = timed(lambda: run(lookup))
    print(
        f"threads={a.threads}: nn.Embedding {t_emb * 1e3:.1f} ms, lookup {t_lookup * 1e3:.1f} ms per fwd+bwd"
    )
    print(f"lookup_vs_embedding={t_lookup / t_emb:.2f}")


if __name__ == "__main__":
    main()
