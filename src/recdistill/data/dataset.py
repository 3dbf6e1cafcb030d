"""The prepared dataset every other module consumes (the stable contract of issue #2)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recdistill.errors import RecdistillError

N_CANDIDATES = 499  # sampled protocol of RRD/DE-RRD/DCD


@dataclass
class Dataset:
    """A split of an implicit-feedback log: leave-one-out, or by ratio (several held-out items
    per user, ``valid_sets`` / ``test_sets``).

    Attributes:
        name: dataset name or path it was loaded from.
        n_users, n_items: sizes after filtering; ids are 0..n-1.
        train: CSR (n_users x n_items) float32 with 1.0 for every training interaction.
        valid_items, test_items: int64 (n_users,), the held-out item per user, -1 where absent.
        candidates: int32 (n_users, 499), items the user never interacted with (train, valid or
            test), drawn with the seed, for the sampled protocol.
        user_ids, item_ids: raw ids, indexed by the internal id.
        info: preprocessing report (duplicates dropped, users dropped by each filter, settings).
        valid_sets, test_sets: for a ratio split, CSR (n_users x n_items) of each user's held-out
            items (``valid_items`` / ``test_items`` are then -1 and ``candidates`` empty); None
            for leave-one-out.
    """

    name: str
    n_users: int
    n_items: int
    train: sp.csr_matrix
    valid_items: np.ndarray
    test_items: np.ndarray
    candidates: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    valid_sets: sp.csr_matrix | None = None
    test_sets: sp.csr_matrix | None = None

    @property
    def multi_heldout(self) -> bool:
        """Whether the split holds several items per user out (a ratio split)."""
        return self.test_sets is not None

    def heldout(self, split: str) -> np.ndarray:
        """The held-out item per user for ``split`` in {"valid", "test"} (-1 where absent); a
        ratio split has none (:meth:`heldout_sets`)."""
        if self.multi_heldout:
            raise RecdistillError(
                f"dataset {self.name!r} is a ratio split (several held-out items per user): it has no "
                "single held-out item, so no leave-one-out metric or sampled protocol; use the full "
                "protocol (R@K, N@K, P@K)"
            )
        if split == "valid":
            return self.valid_items
        if split == "test":
            return self.test_items
        raise RecdistillError(f"unknown split {split!r}; expected 'valid' or 'test'")

    def heldout_sets(self, split: str) -> sp.csr_matrix:
        """The held-out items of ``split`` as a CSR (n_users x n_items), sorted; for a
        leave-one-out split, the one item per user."""
        if split not in ("valid", "test"):
            raise RecdistillError(f"unknown split {split!r}; expected 'valid' or 'test'")
        sets = self.valid_sets if split == "valid" else self.test_sets
        if sets is not None:
            return sets
        items = self.valid_items if split == "valid" else self.test_items
        users = np.flatnonzero(items >= 0)
        m = sp.csr_matrix(
            (np.ones(users.size, dtype=np.float32), (users, items[users])), shape=(self.n_users, self.n_items)
        )
        m.sort_indices()
        return m

    @property
    def n_train(self) -> int:
        return int(self.train.nnz)

    @property
    def fingerprint(self) -> str:
        """sha256 of the sizes and the training matrix's structure: what a model trained on this
        split (and a teacher's top-N lists) depends on. Stored in every saved model."""
        if "_fingerprint" not in self.__dict__:
            h = hashlib.sha256()
            h.update(f"{self.n_users}x{self.n_items}".encode())
            h.update(np.ascontiguousarray(self.train.indptr, dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(self.train.indices, dtype=np.int64).tobytes())
            self.__dict__["_fingerprint"] = h.hexdigest()
        return str(self.__dict__["_fingerprint"])
