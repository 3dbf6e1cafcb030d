"""Rank of every user's held-out item among its candidates, by counting (never by sorting).

Protocols (METHODS.md, "Evaluation protocols"):

- ``full`` (BD): the candidates are every item the user has not interacted with in training,
  minus the user's *other* held-out item (the valid item when ranking the test item and vice versa).
- ``sampled`` (DCD/RRD): the candidates are the user's 499 sampled items ``dataset.candidates[u]``.

With ``g`` = candidates scoring strictly higher than the held-out item and ``e`` = candidates scoring
equal, the rank (counted from 1) is, by ``ties``:

- ``"pessimistic"`` (default, the issue's rule): ``1 + g + e``; a constant model gets the worst rank.
- ``"optimistic"``: ``1 + g``.
- ``"average"``: ``1 + g + e/2`` (METHODS.md's "half of the equal ones"; a float).

Full protocol without touching the scores: ``count(scores >= s) over all items`` minus the same
count over the user's masked items (training row + other held-out item, gathered from CSR slices),
which equals ``1 + g + e`` (the held-out item counts itself). The scores returned by ``score_fn``
are only read, never modified. Per chunk of users: one comparison pass into a reused float32
buffer and one gemv for the row counts (exact below 2**24 items), plus one gemv whose NaN flags a
NaN score (an error naming the user and item). Memory: the chunk's score matrix and the buffer
(about 32 MiB each by default) and the CSR of excluded items; never users x items.

The sampled protocol checks each chunk's candidates: distinct, not in the training row and not
a held-out item (an error otherwise).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from recdistill.data.dataset import N_CANDIDATES, Dataset
from recdistill.data.pairs import PairSet
from recdistill.errors import RecdistillError
from recdistill.parallel import all_sum_numpy, block, is_main, world

PROTOCOLS = ("full", "sampled")
SPLITS = ("valid", "test")
TIES = ("pessimistic", "average", "optimistic")

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
"""``score_fn(users (B,) int64) -> (B, n_items)`` scores of users against every item."""
ScoreItemsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``score_items_fn(users (B,), items (B, k)) -> (B, k)`` scores of given items."""

#: default chunk: about 2**23 scores (32 MiB in float32) per score matrix
_SCORES_PER_CHUNK = 1 << 23
#: default chunk for ``score_items_fn``: about 2**18 (user, item) pairs per call
_PAIRS_PER_CHUNK = 1 << 18


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RecdistillError(f"unknown {name} {value!r}; expected one of {', '.join(choices)}")


def _other_split(split: str) -> str:
    return "valid" if split == "test" else "test"


def _check_heldout(
    dataset: Dataset, seen: PairSet, target: np.ndarray, other: np.ndarray, split: str
) -> None:
    """Held-out items must be in range, outside the training row and distinct from each other."""
    n_users, n_items = dataset.n_users, dataset.n_items
    for name, items in ((split, target), (_other_split(split), other)):
        if items.shape != (n_users,):
            raise RecdistillError(
                f"dataset {dataset.name!r}: {name} items have shape {items.shape}, expected ({n_users},)"
            )
        bad = np.flatnonzero((items < -1) | (items >= n_items))
        if bad.size:
            u = int(bad[0])
            raise RecdistillError(
                f"dataset {dataset.name!r}: {name} item of user {u} is {int(items[u])}, "
                f"expected -1 (absent) or an item id in [0, {n_items})"
            )
        users = np.flatnonzero(items >= 0)
        in_train = seen.contains(users, items[users])  # (n,)
        if in_train.any():
            u = int(users[np.flatnonzero(in_train)[0]])
            raise RecdistillError(
                f"dataset {dataset.name!r}: {name} item {int(items[u])} of user {u} is also in the "
                "user's training row; held-out items must be disjoint from training"
            )
    same = np.flatnonzero((target >= 0) & (target == other))
    if same.size:
        u = int(same[0])
        raise RecdistillError(
            f"dataset {dataset.name!r}: user {u} has the same valid and test item {int(target[u])}"
        )


def _mask_csr(dataset: Dataset, users: np.ndarray, other: np.ndarray) -> sp.csr_matrix:
    """Rows ``users`` of the items excluded from the full ranking: training row + other held-out."""
    train = dataset.train[users].tocsr()  # (n_sel, n_items)
    sel = np.flatnonzero(other[users] >= 0)
    extra = sp.csr_matrix((np.ones(sel.size, dtype=np.float32), (sel, other[users][sel])), shape=train.shape)
    mask = (train != 0).astype(np.float32) + extra  # disjoint (checked), so entries stay 1
    mask = mask.tocsr()
    mask.sum_duplicates()
    mask.eliminate_zeros()
    return mask


def default_batch_size(n_items: int, protocol: str = "full", items_fn: bool = False) -> int:
    """Users per chunk: about 2**23 scores per chunk, or 2**18 pairs per ``score_items_fn`` call."""
    if protocol == "sampled" and items_fn:
        return max(1, _PAIRS_PER_CHUNK // (N_CANDIDATES + 1))
    return max(1, _SCORES_PER_CHUNK // max(n_items, 1))


def _raise_nan(scores: torch.Tensor, users: np.ndarray, items: torch.Tensor | None = None) -> None:
    nan = torch.isnan(scores)  # (B, k)
    if not nan.any():
        return  # a +inf/-inf sum, not a NaN
    row, col = (int(x) for x in nan.nonzero()[0])
    item = col if items is None else int(items[row, col])
    raise RecdistillError(f"the model returned a NaN score for user {int(users[row])}, item {item}")


def _ranks_from_counts(ge: torch.Tensor | None, gt: torch.Tensor | None, ties: str) -> torch.Tensor:
    """``ge`` = 1 + g + e (the held-out item counts itself), ``gt`` = g; each only if needed."""
    if ties == "pessimistic":
        assert ge is not None
        return ge  # 1 + g + e
    assert gt is not None
    if ties == "optimistic":
        return gt + 1
    assert ge is not None
    return (ge + gt + 1).double() / 2  # 1 + g + e/2


@torch.no_grad()
def heldout_ranks(
    score_fn: ScoreFn | None,
    dataset: Dataset,
    protocol: str = "full",
    split: str = "test",
    *,
    ties: str = "pessimistic",
    batch_size: int | None = None,
    score_items_fn: ScoreItemsFn | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Rank (from 1) of each user's held-out item of ``split`` under ``protocol``.

    Args:
        score_fn: ``users (B,) -> (B, n_items)`` scores; the ranking runs on the device of the
            tensor it returns. May be None for ``protocol="sampled"`` with ``score_items_fn``.
        dataset: the leave-one-out split.
        protocol: ``"full"`` or ``"sampled"`` (see the module docstring).
        split: ``"valid"`` or ``"test"``.
        ties: ``"pessimistic"`` (1 + higher + equal), ``"optimistic"`` (1 + higher) or
            ``"average"`` (1 + higher + equal / 2).
        batch_size: users per chunk; default: about 2**23 scores per chunk (full), or 2**18
            (user, item) pairs per ``score_items_fn`` call.
        score_items_fn: for ``"sampled"`` only: ``(users (B,), items (B, 500)) -> (B, 500)``; if
            given, only the held-out item and the 499 candidates are scored, else they are
            gathered from ``score_fn``.
        device: device of the user-id tensors passed to the score functions (default CPU).
        progress: show a tqdm progress bar over chunks.

    Returns:
        (n_users,) ranks, 0 for users without a held-out item; int64, or float64 for
        ``ties="average"``.
    """
    _check_choice("protocol", protocol, PROTOCOLS)
    _check_choice("split", split, SPLITS)
    _check_choice("ties", ties, TIES)
    if score_fn is None and not (protocol == "sampled" and score_items_fn is not None):
        raise RecdistillError(
            "score_fn is required (it may be None only for protocol='sampled' with score_items_fn)"
        )
    if score_items_fn is not None and protocol != "sampled":
        raise RecdistillError("score_items_fn is only used by protocol='sampled'")
    if batch_size is None:
        batch_size = default_batch_size(dataset.n_items, protocol, score_items_fn is not None)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise RecdistillError(f"batch_size must be a positive integer, got {batch_size!r}")
    target = np.asarray(dataset.heldout(split), dtype=np.int64)  # (n_users,)
    other = np.asarray(dataset.heldout(_other_split(split)), dtype=np.int64)  # (n_users,)
    if dataset.train.shape != (dataset.n_users, dataset.n_items):
        raise RecdistillError(
            f"dataset {dataset.name!r}: train has shape {dataset.train.shape}, "
            f"expected (n_users, n_items) = ({dataset.n_users}, {dataset.n_items})"
        )
    seen = PairSet.from_csr(dataset.train)
    _check_heldout(dataset, seen, target, other, split)

    users = np.flatnonzero(target >= 0)  # (n_sel,) users that have a held-out item
    dtype = torch.float64 if ties == "average" else torch.int64
    out = np.zeros(dataset.n_users, dtype=np.float64 if ties == "average" else np.int64)
    if users.size == 0:
        return out

    user_device = torch.device(device) if device is not None else torch.device("cpu")
    # Under a process group each process ranks a contiguous block of whole chunks (the same
    # chunks as one process, so the same scores) and the zero-filled outputs are summed: exact.
    lo, hi = block(users.size, align=int(batch_size))
    chunks = range(lo, hi, int(batch_size))
    if progress and is_main():
        from tqdm import tqdm

        chunks = tqdm(chunks, desc=f"eval {protocol}/{split}", unit="chunk")
    full = _FullRanker(dataset, users, target, other, ties) if protocol == "full" else None
    sampled = _SampledRanker(dataset, seen, target, other, ties) if protocol != "full" else None
    for c0 in chunks:
        c1 = min(c0 + int(batch_size), hi)
        u_np = users[c0:c1]  # (B,)
        u = torch.from_numpy(u_np).to(user_device)  # (B,)
        if full is not None:
            assert score_fn is not None
            ranks = full(score_fn(u), u_np, c0, c1)  # (B,)
        else:
            assert sampled is not None
            ranks = sampled(score_fn, score_items_fn, u, u_np)  # (B,)
        # copied out at once: small tensors kept alive across chunks would pin holes in the
        # heap left by the freed (B, n_items) score matrices, and the RSS would grow per chunk
        out[u_np] = ranks.to("cpu", dtype).numpy()
    if world()[1] > 1:
        all_sum_numpy(out)
    return out


class _FullRanker:
    """Chunk step of the full protocol; keeps the mask CSR on the scores' device."""

    def __init__(
        self, dataset: Dataset, users: np.ndarray, target: np.ndarray, other: np.ndarray, ties: str
    ) -> None:
        self.n_items = dataset.n_items
        self.ties = ties
        mask = _mask_csr(dataset, users, other)  # (n_sel, n_items)
        self.indptr = mask.indptr.astype(np.int64)  # (n_sel + 1,) stays on the host
        self._indices = torch.from_numpy(mask.indices.astype(np.int64))  # (nnz,)
        self._rows = torch.repeat_interleave(
            torch.arange(users.size), torch.from_numpy(np.diff(self.indptr))
        )  # (nnz,) row of each mask entry in [0, n_sel)
        self._target = torch.from_numpy(target[users])  # (n_sel,)
        self._device: torch.device | None = None
        self._buf: torch.Tensor | None = None  # reused (B, n_items) 0/1 comparison results
        self._ones: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

    def _row_sums(self, m: torch.Tensor) -> torch.Tensor:
        """``m.sum(1)`` as a matrix-vector product (BLAS gemv: several times cheaper on CPU)."""
        key = (m.dtype, m.device)
        if key not in self._ones:
            self._ones[key] = torch.ones(self.n_items, dtype=m.dtype, device=m.device)
        return torch.mv(m, self._ones[key])  # (B,)

    def _cmp_buffer(self, b: int, device: torch.device) -> torch.Tensor:
        # float32 holds exact integer counts up to 2**24 items; float64 beyond
        dtype = torch.float32 if self.n_items < 2**24 else torch.float64
        if self._buf is None or self._buf.shape[0] < b or self._buf.device != device:
            self._buf = torch.empty(b, self.n_items, dtype=dtype, device=device)
        return self._buf[:b]  # (B, n_items), contiguous

    def _to(self, device: torch.device) -> None:
        if self._device != device:
            self._indices = self._indices.to(device)
            self._rows = self._rows.to(device)
            self._target = self._target.to(device)
            self._device = device

    def __call__(self, scores: torch.Tensor, u_np: np.ndarray, c0: int, c1: int) -> torch.Tensor:
        b = c1 - c0
        if scores.shape != (b, self.n_items):
            raise RecdistillError(
                f"score_fn returned shape {tuple(scores.shape)} for {b} users, expected ({b}, {self.n_items})"
            )
        if not scores.is_floating_point():
            scores = scores.float()
        scores = scores.detach()
        if not scores.is_contiguous():
            scores = scores.contiguous()
        self._to(scores.device)
        if torch.isnan(self._row_sums(scores)).any():  # (B,) a NaN anywhere in a row makes its sum NaN
            _raise_nan(scores, u_np)
        tgt = self._target[c0:c1]  # (B,)
        s_t = scores.gather(1, tgt[:, None])  # (B, 1) held-out item's score
        lo, hi = int(self.indptr[c0]), int(self.indptr[c1])
        rows = self._rows[lo:hi] - c0  # (nnz_c,) row in the chunk
        flat = rows * self.n_items + self._indices[lo:hi]  # (nnz_c,)
        masked = scores.view(-1).index_select(0, flat)  # (nnz_c,) scores of excluded items
        s_rep = s_t.view(-1).index_select(0, rows)  # (nnz_c,)

        buf = self._cmp_buffer(b, scores.device)  # (B, n_items)

        def count(op: Callable[..., torch.Tensor]) -> torch.Tensor:
            # comparing into a float buffer then summing is ~5x faster on CPU than summing bools
            total = self._row_sums(op(scores, s_t, out=buf)).long()  # (B,) over all items
            excluded = torch.zeros_like(total).index_add_(0, rows, op(masked, s_rep).long())  # (B,)
            return total - excluded

        ge = count(torch.ge) if self.ties != "optimistic" else None
        gt = count(torch.gt) if self.ties != "pessimistic" else None
        return _ranks_from_counts(ge, gt, self.ties)


class _SampledRanker:
    """Chunk step of the sampled protocol: the held-out item against its 499 candidates."""

    def __init__(
        self, dataset: Dataset, seen: PairSet, target: np.ndarray, other: np.ndarray, ties: str
    ) -> None:
        cands = np.asarray(dataset.candidates)
        if cands.ndim != 2 or cands.shape[0] != dataset.n_users:
            raise RecdistillError(
                f"dataset {dataset.name!r}: candidates have shape {cands.shape}, "
                f"expected ({dataset.n_users}, n_candidates)"
            )
        if cands.size and (cands.min() < 0 or cands.max() >= dataset.n_items):
            bad = np.argwhere((cands < 0) | (cands >= dataset.n_items))[0]
            raise RecdistillError(
                f"dataset {dataset.name!r}: candidate {int(cands[bad[0], bad[1]])} of user {int(bad[0])} "
                f"is not an item id in [0, {dataset.n_items})"
            )
        self.dataset = dataset
        self.seen = seen
        self.cands = cands
        self.target = target
        self.other = other
        self.ties = ties

    def _check(self, u_np: np.ndarray, items: np.ndarray) -> None:
        """Candidates must be distinct and unobserved: not in train, not a held-out item."""
        hits = self.seen.contains(u_np[:, None], items[:, 1:])  # (B, n_cand)
        hits |= items[:, 1:] == self.other[u_np][:, None]
        hits |= items[:, 1:] == items[:, :1]
        if hits.any():
            r, c = np.argwhere(hits)[0]
            raise RecdistillError(
                f"dataset {self.dataset.name!r}: sampled candidate {int(items[r, c + 1])} of user "
                f"{int(u_np[r])} is a positive (training or held-out item)"
            )
        srt = np.sort(items[:, 1:], axis=1)  # (B, n_cand)
        dup = srt[:, 1:] == srt[:, :-1]
        if dup.any():
            r, c = np.argwhere(dup)[0]
            raise RecdistillError(
                f"dataset {self.dataset.name!r}: user {int(u_np[r])} has candidate {int(srt[r, c])} twice"
            )

    def __call__(
        self, score_fn: ScoreFn | None, score_items_fn: ScoreItemsFn | None, u: torch.Tensor, u_np: np.ndarray
    ) -> torch.Tensor:
        items_np = np.concatenate(
            [self.target[u_np][:, None], self.cands[u_np].astype(np.int64)], axis=1
        )  # (B, 1 + n_cand), column 0 = held-out item
        self._check(u_np, items_np)
        items = torch.from_numpy(items_np).to(u.device)  # (B, 1 + n_cand)
        b, k = items.shape
        if score_items_fn is not None:
            s = score_items_fn(u, items)  # (B, 1 + n_cand)
            if s.shape != (b, k):
                raise RecdistillError(f"score_items_fn returned shape {tuple(s.shape)}, expected ({b}, {k})")
        else:
            assert score_fn is not None
            full = score_fn(u)  # (B, n_items)
            n = self.dataset.n_items
            if full.shape != (b, n):
                raise RecdistillError(
                    f"score_fn returned shape {tuple(full.shape)} for {b} users, expected ({b}, {n})"
                )
            s = full.gather(1, items.to(full.device))  # (B, 1 + n_cand)
        s = s.detach()
        if not s.is_floating_point():
            s = s.float()
        if torch.isnan(s).any():
            _raise_nan(s, u_np, items)
        s_t = s[:, :1]  # (B, 1)
        ge = (s >= s_t).sum(1) if self.ties != "optimistic" else None  # (B,) counts the item itself
        gt = (s > s_t).sum(1) if self.ties != "pessimistic" else None  # (B,)
        return _ranks_from_counts(ge, gt, self.ties)
