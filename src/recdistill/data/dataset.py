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
    """A leave-one-out split of an implicit-feedback log.

    Attributes:
        name: dataset name or path it was loaded from.
        n_users, n_items: sizes after filtering; ids are 0..n-1.
        train: CSR (n_users x n_items) float32 with 1.0 for every training interaction.
        valid_items, test_items: int64 (n_users,), the held-out item per user, -1 where absent.
        candidates: int32 (n_users, 499), items the user never interacted with (train, valid or
            test), drawn with the seed, for the sampled protocol.
        user_ids, item_ids: raw ids, indexed by the internal id.
        info: preprocessing report (duplicates dropped, users dropped by each filter, settings).
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

    def heldout(self, split: str) -> np.ndarray:
        """The held-out item per user for ``split`` in {"valid", "test"} (-1 where absent)."""
        if split == "valid":
            return self.valid_items
        if split == "test":
            return self.test_items
        raise RecdistillError(f"unknown split {split!r}; expected 'valid' or 'test'")

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
