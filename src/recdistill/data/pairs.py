"""Membership of (row, column) pairs: one sorted-key lookup for negatives, masks and draws.

A :class:`PairSet` encodes each pair as the int64 key ``row * n_cols + col``, keeps the keys
sorted and unique, and answers membership with one ``searchsorted`` (no loop over rows). The
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

__all__ = ["PairSet", "csr_pairs", "csr_positions"]


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
            flat = q.reshape(-1)
            pos = torch.searchsorted(self.keys, flat).clamp_(max=self.keys.numel() - 1)
            hit = (self.keys[pos] == flat).reshape(q.shape)
        return hit.numpy() if as_numpy else hit.to(device)
