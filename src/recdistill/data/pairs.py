"""Membership of (row, column) pairs: one sorted-key lookup for negatives, masks and draws.

A :class:`PairSet` encodes each pair as the int64 key ``row * n_cols + col``, keeps the keys
sorted and unique, and answers membership from an open-addressing hash table of the keys
(:class:`KeyTable`: a multiplicative hash, linear probing, load at most 1/2; vectorised over
the queries, the loop runs over probe rounds, never over rows): about 1.5 probes per query
where a ``searchsorted`` over the sorted keys takes ~log2(P) dependent steps. The
training interactions (:meth:`PairSet.from_csr`) serve the uniform negatives of the base losses,
the evaluator's check of held-out items and sampled candidates, and RRD's "uninteresting" draws
(observed pairs plus the teacher's top-N lists).
"""

from __future__ import annotations

from typing import overload

import numpy as np
import scipy.sparse as sp
import torch

from recdistill.errors import RecdistillError

__all__ = ["KeyTable", "PairSet", "csr_pairs", "csr_positions"]


def csr_pairs(m: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """The stored entries of a CSR matrix in CSR order -> (rows, cols), int64 (nnz,) each."""
    csr = sp.csr_matrix(m)
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))  # (nnz,)
    return rows, csr.indices.astype(np.int64)  # (nnz,)


def csr_positions(indptr: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The stored entries of ``rows`` (B,) of a CSR matrix with row pointer ``indptr`` (n+1,),
    row by row in CSR order -> ``(local_row (nnz_B,) into rows, position (nnz_B,) into the
    matrix's indices / values)``, int64, on ``indptr``'s device; no loop over rows."""
    start = indptr[rows]  # (B,)
    deg = indptr[rows + 1] - start  # (B,)
    local = torch.repeat_interleave(torch.arange(rows.numel(), device=indptr.device), deg)  # (nnz_B,)
    first = torch.cumsum(deg, 0) - deg  # (B,) each row's first entry among the nnz_B
    return local, torch.arange(local.numel(), device=indptr.device) - first[local] + start[local]


_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 (2^64 / golden ratio) as a signed int64


class KeyTable:
    """An open-addressing hash set of non-negative int64 keys, for vectorised membership.

    ``2^bits >= 2 len(keys)`` slots hold the keys or -1 (empty). A key's first slot is the top
    ``bits`` bits of ``key * 0x9E3779B97F4A7C15`` (mod 2^64, Fibonacci hashing); a taken slot
    sends it to the next (linear probing). Insertion and lookup both run in probe rounds over
    the keys still unplaced / unresolved, so the work is one gather per key per probe (about
    1.5 probes at load 1/2) and there is no loop over keys.
    """

    def __init__(self, keys: torch.Tensor) -> None:
        n = int(keys.numel())
        self.bits = max((2 * n - 1).bit_length(), 4)
        self.mask = (1 << self.bits) - 1
        self.table = torch.full((1 << self.bits,), -1, dtype=torch.int64)  # (2^bits,)
        k = keys.to("cpu", torch.int64).reshape(-1)
        pos = self._slot(k)
        while k.numel():  # each round: keys whose slot is empty claim it (one winner per slot)
            empty = self.table[pos] == -1
            self.table[pos[empty]] = k[empty]
            left = self.table[pos] != k
            k, pos = k[left], (pos[left] + 1) & self.mask

    def _slot(self, k: torch.Tensor) -> torch.Tensor:
        return ((k * _GOLDEN) >> (64 - self.bits)) & self.mask  # int64 wraps: the product mod 2^64

    def contains(self, q: torch.Tensor) -> torch.Tensor:
        """Bool (Q,): whether each of the int64 keys ``q`` (Q,) is in the table."""
        pos = self._slot(q)  # (Q,)
        s = self.table[pos]
        hit = s == q  # (Q,)
        act = ((s != -1) & ~hit).nonzero().squeeze(1)  # queries still probing
        while act.numel():
            pos_a = (pos[act] + 1) & self.mask
            pos[act] = pos_a
            s = self.table[pos_a]
            found = s == q[act]
            hit[act[found]] = True
            act = act[(s != -1) & ~found]
        return hit


class PairSet:
    """A set of (row, col) pairs with ``0 <= col < n_cols``; vectorised membership on CPU.

    rows, cols: integer tensors or arrays of equal shape (duplicates allowed).
    """

    def __init__(self, rows: torch.Tensor | np.ndarray, cols: torch.Tensor | np.ndarray, n_cols: int) -> None:
        self.n_cols = int(n_cols)
        r = torch.as_tensor(rows).to("cpu", torch.int64).reshape(-1)
        c = torch.as_tensor(cols).to("cpu", torch.int64).reshape(-1)
        if r.shape != c.shape:
            raise RecdistillError(f"rows {tuple(r.shape)} and cols {tuple(c.shape)} differ in size")
        self.keys = torch.unique(r * self.n_cols + c)  # (P,) sorted, unique
        self._table: KeyTable | None = None  # built on the first query

    @classmethod
    def from_csr(cls, m: sp.spmatrix) -> PairSet:
        """The stored (explicit zeros dropped) entries of a sparse matrix."""
        csr = sp.csr_matrix(m, copy=True)
        csr.eliminate_zeros()
        rows, cols = csr_pairs(csr)
        return cls(rows, cols, csr.shape[1])

    def __len__(self) -> int:
        return int(self.keys.numel())

    @overload
    def contains(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor: ...

    @overload
    def contains(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray: ...

    def contains(
        self, rows: torch.Tensor | np.ndarray, cols: torch.Tensor | np.ndarray
    ) -> torch.Tensor | np.ndarray:
        """Bool, the broadcast shape of ``rows`` and ``cols``: True where the pair is in the set.
        Tensors in -> a tensor on their device; arrays in -> an array."""
        as_numpy = isinstance(rows, np.ndarray) and isinstance(cols, np.ndarray)
        r, c = torch.as_tensor(rows), torch.as_tensor(cols)
        device = r.device
        q = r.to("cpu", torch.int64) * self.n_cols + c.to("cpu", torch.int64)  # (...) broadcast
        if self.keys.numel() == 0:
            hit = torch.zeros(q.shape, dtype=torch.bool)
        else:
            if self._table is None:
                self._table = KeyTable(self.keys)
            hit = self._table.contains(q.reshape(-1)).reshape(q.shape)
        return hit.numpy() if as_numpy else hit.to(device)
