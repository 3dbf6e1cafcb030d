"""Model size and the wall time to produce every user's top-K list (BD Table 3, DCD Table 1)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from recdistill.data.dataset import Dataset
from recdistill.errors import RecdistillError
from recdistill.models.base import Recommender


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def topk_lists(model: Recommender, dataset: Dataset, k: int = 50, batch_size: int = 1024) -> torch.Tensor:
    """Every user's top-``k`` unobserved items -> (n_users, k) int32 on the model's device.

    Training items are masked with -inf from the CSR rows of each chunk of users.
    """
    if not 1 <= k <= dataset.n_items:
        raise RecdistillError(f"k must be in 1..{dataset.n_items}, got {k}")
    device = model.device
    model.eval()
    train = dataset.train
    indptr = torch.from_numpy(train.indptr.astype(np.int64))  # (n_users + 1,)
    indices = torch.from_numpy(train.indices.astype(np.int64)).to(device)  # (nnz,)
    out = torch.empty(dataset.n_users, k, dtype=torch.int32, device=device)  # (n_users, k)
    with model.scoring():  # one ranking pass (LightGCN: one propagation)
        _topk_chunks(model, dataset, k, batch_size, indptr, indices, out)
    return out


def _topk_chunks(
    model: Recommender,
    dataset: Dataset,
    k: int,
    batch_size: int,
    indptr: torch.Tensor,
    indices: torch.Tensor,
    out: torch.Tensor,
) -> None:
    device = model.device
    for s in range(0, dataset.n_users, batch_size):
        e = min(s + batch_size, dataset.n_users)
        users = torch.arange(s, e, device=device)  # (B,)
        scores = model.score_all(users)  # (B, n_items)
        lo, hi = int(indptr[s]), int(indptr[e])
        rows = torch.repeat_interleave(
            torch.arange(e - s, device=device), (indptr[s + 1 : e + 1] - indptr[s:e]).to(device)
        )  # (nnz_B,)
        scores[rows, indices[lo:hi]] = -torch.inf
        out[s:e] = scores.topk(k, dim=1).indices.to(torch.int32)  # (B, k)


def profile_model(
    model: Recommender, dataset: Dataset, k: int = 50, batch_size: int = 1024, repeats: int = 3
) -> dict[str, Any]:
    """Parameters and the best-of-``repeats`` wall time of :func:`topk_lists` for every user."""
    device = model.device
    topk_lists(model, dataset, k, batch_size)  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        topk_lists(model, dataset, k, batch_size)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return {
        "model": model.name,
        "n_parameters": model.n_parameters,
        "topk_time_s": min(times),
        "k": k,
        "n_users": dataset.n_users,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
