"""Full ranking with several held-out items per user (the ratio splits of the 2022-26 papers):
Recall@K, NDCG@K, Precision@K, and H@K / M@K.

Each user ranks every item outside the training row (and, on the test split, outside the
validation items); the held-out items of the split compete with each other and with every other
unobserved item. The rank of a held-out item is ``1 + #higher + #equal others`` (pessimistic,
default) or ``1 + #higher + #equal held-out items of lower id`` (optimistic: tied held-out items
take distinct ranks, so at most K of them lie within K). With ``T_u`` the user's held-out items and
``hit_u(K)`` those ranked within ``K``:

- R@K (recall): ``|hit_u(K)| / |T_u|``;
- P@K (precision): ``|hit_u(K)| / K``;
- N@K (NDCG, binary gains): ``Σ_{i ∈ hit_u(K)} 1/log2(rank_i + 1) / IDCG``, with the ideal DCG over
  ``min(K, |T_u|)`` items, ``IDCG = Σ_{j=1..min(K,|T_u|)} 1/log2(j + 1)`` (the convention of
  RecBole, RCE-KD and LightGCN's code: a perfect list of K scores 1 even when ``|T_u| > K``);
- H@K: ``1[hit_u(K) non-empty]``; M@K: ``1 / min rank`` if within ``K``.

Each is averaged over the users with at least one held-out item. With one held-out item per
user they equal the leave-one-out metrics (R = H, N the same, P = H / K). Computed in chunks of
users (no users x items matrix), split by blocks of chunks across ``torchrun`` processes and
summed: exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from recdistill.data.dataset import Dataset
from recdistill.errors import RecdistillError
from recdistill.eval.metrics import check_ks
from recdistill.parallel import all_sum_numpy, block, is_main, world

__all__ = ["SET_METRICS", "heldout_set_ranks", "metrics_from_set_ranks"]

SET_METRICS = ("R", "N", "P", "H", "M")
ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def _excluded(dataset: Dataset, split: str, exclude_valid: bool = True) -> sp.csr_matrix:
    """Per user, the items left out of the ranking: the training row, plus (``exclude_valid``)
    the validation items when testing."""
    mask = (dataset.train != 0).astype(np.float32)
    if split == "test" and exclude_valid:
        mask = mask + (dataset.heldout_sets("valid") != 0).astype(np.float32)
    mask = sp.csr_matrix(mask)
    mask.sum_duplicates()
    mask.eliminate_zeros()
    return mask


def heldout_set_ranks(
    score_fn: ScoreFn,
    dataset: Dataset,
    split: str = "test",
    *,
    ties: str = "pessimistic",
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: bool = False,
    exclude_valid: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The rank of every held-out item of ``split``: ``(indptr (n_users + 1,), ranks (nnz,))`` in
    the order of ``dataset.heldout_sets(split)`` (int64, counted from 1).

    score_fn: ``users (B,) -> (B, n_items)``; ties: ``"pessimistic"`` or ``"optimistic"``;
    batch_size: users per chunk; device: of the user ids passed to ``score_fn``; exclude_valid:
    leave the validation items out when testing (False: they compete, as RCE-KD's code ranks).
    """
    if ties not in ("pessimistic", "optimistic"):
        raise RecdistillError(f"unknown ties {ties!r}; expected pessimistic or optimistic")
    target = dataset.heldout_sets(split).tocsr()
    target.sort_indices()
    excluded = _excluded(dataset, split, exclude_valid)
    if excluded.multiply(target).nnz:
        u = int(excluded.multiply(target).tocoo().row[0])
        raise RecdistillError(
            f"dataset {dataset.name!r}: a {split} item of user {u} is also excluded from its ranking"
        )
    indptr = target.indptr.astype(np.int64)
    ranks = np.zeros(target.nnz, dtype=np.int64)
    users = np.flatnonzero(np.diff(indptr) > 0)  # (n_sel,) users with held-out items
    user_device = torch.device(device) if device is not None else torch.device("cpu")
    lo, hi = block(users.size, align=int(batch_size))
    chunks = range(lo, hi, int(batch_size))
    if progress and is_main():
        from tqdm import tqdm

        chunks = tqdm(chunks, desc=f"eval full/{split}", unit="chunk")
    for c0 in chunks:
        u_np = users[c0 : min(c0 + int(batch_size), hi)]  # (B,)
        scores = score_fn(torch.from_numpy(u_np).to(user_device)).detach()  # (B, n_items)
        if scores.shape != (u_np.size, dataset.n_items):
            raise RecdistillError(
                f"score_fn returned shape {tuple(scores.shape)} for {u_np.size} users, "
                f"expected ({u_np.size}, {dataset.n_items})"
            )
        scores = scores.float().clone()
        if torch.isnan(scores).any():
            raise RecdistillError(
                f"score_fn returned NaN for user(s) {u_np[torch.isnan(scores).any(1).cpu().numpy()][:5]}"
            )
        ex = excluded[u_np]  # (B, n_items) CSR
        ex_rows = torch.from_numpy(np.repeat(np.arange(u_np.size), np.diff(ex.indptr))).to(scores.device)
        scores[ex_rows, torch.from_numpy(ex.indices.astype(np.int64)).to(scores.device)] = -torch.inf
        t = target[u_np]  # (B, n_items) CSR, the held-out items
        t_rows = torch.from_numpy(np.repeat(np.arange(u_np.size), np.diff(t.indptr))).to(scores.device)
        t_items = torch.from_numpy(t.indices.astype(np.int64)).to(scores.device)
        s_t = scores[t_rows, t_items]  # (H,) the held-out items' scores
        out = torch.empty(t_rows.numel(), dtype=torch.int64, device=scores.device)
        step = max(1, (1 << 22) // max(1, dataset.n_items))  # held-out items per comparison block
        idx = torch.arange(t_rows.numel(), device=scores.device)
        for h0 in range(0, t_rows.numel(), step):
            rows, s = t_rows[h0 : h0 + step], s_t[h0 : h0 + step, None]  # (h,), (h, 1)
            if ties == "pessimistic":
                out[h0 : h0 + step] = (scores[rows] >= s).sum(1)  # itself included: 1 + higher + equal
            else:
                # 1 + higher, and held-out items tied with it that come before it (lower item id):
                # tied held-out items take distinct ranks, so no more than K count within K
                before = (
                    (t_rows[None, :] == rows[:, None])
                    & (s_t[None, :] == s)
                    & (idx[None, :] < idx[h0 : h0 + step, None])
                )
                out[h0 : h0 + step] = (scores[rows] > s).sum(1) + 1 + before.sum(1)
        a, b = int(indptr[u_np[0]]), int(indptr[u_np[-1] + 1])
        # the chunk's users are increasing and contiguous in ``users``: their entries are one run
        # of ``target`` except for users in between without held-out items (none: they hold none)
        ranks[a:b] = out.cpu().numpy()
    if world()[1] > 1:
        all_sum_numpy(ranks)
    return indptr, ranks


def metrics_from_set_ranks(
    indptr: np.ndarray, ranks: np.ndarray, ks: Sequence[int], metrics: Sequence[str] = SET_METRICS
) -> dict[str, float]:
    """R@K, N@K, P@K, H@K, M@K (see the module docstring) averaged over the users with at least
    one held-out item. ``indptr`` (n_users + 1,), ``ranks`` (nnz,) from :func:`heldout_set_ranks`.
    Returns ``{"R@5": ..., ..., "n_users": n}``."""
    ks = check_ks(ks)
    unknown = [m for m in metrics if m not in SET_METRICS]
    if unknown:
        raise RecdistillError(f"unknown metric(s) {unknown}; known: {', '.join(SET_METRICS)}")
    indptr = np.asarray(indptr, dtype=np.int64)
    r = np.asarray(ranks, dtype=np.float64)  # (nnz,)
    n_per = np.diff(indptr)  # (n_users,)
    if r.shape != (int(indptr[-1]),) or (r < 1).any():
        raise RecdistillError("ranks must hold one rank >= 1 per held-out item (indptr[-1] of them)")
    has = n_per > 0
    if not has.any():
        raise RecdistillError("no user has a held-out item; nothing to average")
    owner = np.repeat(np.arange(len(n_per)), n_per)  # (nnz,) user of each entry
    n_users = len(n_per)
    disc = np.cumsum(1.0 / np.log2(np.arange(1, max(ks) + 1) + 1.0))  # (max K,) ideal DCG prefix
    first = np.full(n_users, np.inf)
    np.minimum.at(first, owner, r)  # (n_users,) best rank per user
    out: dict[str, float] = {}
    for k in ks:
        hit = r <= k  # (nnz,)
        hits = np.bincount(owner, weights=hit.astype(np.float64), minlength=n_users)  # (n_users,)
        dcg = np.bincount(owner, weights=np.where(hit, 1.0 / np.log2(r + 1.0), 0.0), minlength=n_users)
        idcg = disc[np.minimum(n_per, k) - 1]  # (n_users,), used where n_per > 0
        vals = {
            "R": hits[has] / n_per[has],
            "P": hits[has] / k,
            "N": dcg[has] / idcg[has],
            "H": (hits[has] > 0).astype(np.float64),
            "M": np.where(first[has] <= k, 1.0 / first[has], 0.0),
        }
        for m in metrics:
            out[f"{m}@{k}"] = float(vals[m].mean())
    out["n_users"] = int(has.sum())
    return out
