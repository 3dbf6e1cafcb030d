"""Top-k recommendations: each user's k best items by a model's scores, in chunks of users (never
a users x items matrix), excluding the user's training items unless asked to keep them.

Order: scores descending, **ties to the lower item index** (the rule of :mod:`.order`): each score
becomes the unique int64 key ``(descending_key << 32) | item`` and the k smallest keys are the
k best items, so the lists are the same on every device and for every chunk size. A user with
fewer than k items left gets ``-1`` (score ``-inf``) in the missing places.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recdistill.errors import RecdistillError
from recdistill.ranking.engine import CHUNK_ENTRIES, SideMatrix, canonical_csr
from recdistill.ranking.order import INT32_MAX, descending_keys

__all__ = ["exclusion", "top_k"]


def exclusion(train: Any, device: torch.device | str = "cpu") -> SideMatrix:
    """The entries :func:`top_k` excludes (a scipy matrix or a ``Dataset``'s training items), as
    CSR tensors on ``device``: build it once to serve many calls."""
    return SideMatrix(canonical_csr(train), torch.device(device))


@torch.no_grad()
def top_k(
    score_all: Any,
    n_items: int,
    users: torch.Tensor | np.ndarray,
    k: int,
    train: Any = None,
    chunk: int | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best items of each of ``users`` (int, (n,)).

    score_all: ``users (B,) -> scores (B, n_items)`` (a model's ``score_all``).
    train: a scipy sparse (n_users, n_items) matrix (or a ``Dataset``) whose entries are excluded
        (the training items), or its :class:`~recdistill.ranking.engine.SideMatrix` built once
        for many calls (:func:`exclusion`); None keeps every item.
    chunk: users per chunk (default about 2**22 / n_items).
    Returns ``(items int64 (n, k), scores float32 (n, k))`` on the CPU, best first.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise RecdistillError(f"k={k!r}: expected an integer >= 1")
    if k > n_items:
        raise RecdistillError(f"k={k} is larger than the catalogue ({n_items:,} items)")
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        raise RecdistillError(f"chunk={chunk!r}: expected an integer >= 1 or None")
    dev = torch.device(device)
    u = torch.as_tensor(np.asarray(users) if not isinstance(users, torch.Tensor) else users)
    u = u.reshape(-1).to(torch.int64)
    side = train if isinstance(train, SideMatrix) or train is None else exclusion(train, dev)
    if side is not None:
        if side.n_cols != n_items:
            raise RecdistillError(f"train has {side.n_cols:,} items, the scores {n_items:,}")
        if u.numel() and (int(u.min()) < 0 or int(u.max()) >= side.n_rows):
            raise RecdistillError(f"user index out of range [0, {side.n_rows:,})")
    step = chunk or max(1, CHUNK_ENTRIES // max(n_items, 1))
    items_out = torch.full((u.numel(), k), -1, dtype=torch.int64)
    scores_out = torch.full((u.numel(), k), float("-inf"), dtype=torch.float32)
    col = torch.arange(n_items, dtype=torch.int64, device=dev)  # (m,)
    for s in range(0, u.numel(), step):
        rows = u[s : s + step].to(dev)  # (B,)
        scores = score_all(rows).float()  # (B, m)
        if scores.shape != (rows.numel(), n_items):
            want = (rows.numel(), n_items)
            raise RecdistillError(f"score_all returned {tuple(scores.shape)}, expected {want}")
        desc = descending_keys(scores).to(torch.int64)  # (B, m)
        if side is not None:
            r, c = side.observed(rows)
            desc[r, c] = INT32_MAX  # after every unobserved item
        keys = (desc << 32) | col  # (B, m) unique per row
        best = torch.topk(keys, k, dim=1, largest=False, sorted=True).values  # (B, k)
        idx = best & 0xFFFFFFFF  # (B, k) item ids
        valid = (best >> 32) != INT32_MAX  # (B, k)
        got = scores.gather(1, idx)  # (B, k)
        e = s + rows.numel()
        items_out[s:e] = torch.where(valid, idx, torch.full_like(idx, -1)).cpu()
        scores_out[s:e] = torch.where(valid, got, torch.full_like(got, float("-inf"))).cpu()
    return items_out, scores_out
