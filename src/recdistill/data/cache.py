"""Cache of prepared splits: one ``.npz`` per key, the key being the sha256 of the raw file(s),
every setting and a format version. Written atomically; a changed file or setting is a new key,
so a stale cache is never reused."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recdistill.atomic import atomic_write
from recdistill.data.dataset import Dataset

CACHE_VERSION = 1  # bump when the pipeline's output changes for the same input and settings


def default_cache_dir() -> Path:
    """``RECDISTILL_CACHE`` or ``~/.cache/recdistill``."""
    env = os.environ.get("RECDISTILL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "recdistill"


def cache_key(kind: str, file_hashes: list[str], settings: dict[str, Any]) -> str:
    """sha256 over the pipeline version, the dataset kind, the raw files' hashes and the settings."""
    blob = json.dumps(
        {"version": CACHE_VERSION, "kind": kind, "files": file_hashes, "settings": settings},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_path(cache_dir: Path, name: str, key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
    return cache_dir / "datasets" / f"{safe}-{key[:24]}.npz"


def _ids_array(a: np.ndarray) -> np.ndarray:
    return a.astype(str) if a.dtype == object else a


def save_dataset(ds: Dataset, path: Path) -> None:
    """Write ``ds`` to ``path`` (npz, no pickles) atomically."""
    arrays = dict(
        name=np.array(ds.name),
        shape=np.array([ds.n_users, ds.n_items], dtype=np.int64),
        indptr=ds.train.indptr.astype(np.int64),
        indices=ds.train.indices.astype(np.int32),
        valid_items=ds.valid_items,
        test_items=ds.test_items,
        candidates=ds.candidates,
        user_ids=_ids_array(ds.user_ids),
        item_ids=_ids_array(ds.item_ids),
        info=np.array(json.dumps(ds.info, default=str)),
    )
    for split in ("valid", "test"):  # a ratio split's held-out sets
        sets = ds.valid_sets if split == "valid" else ds.test_sets
        if sets is not None:
            arrays[f"{split}_sets_indptr"] = sets.indptr.astype(np.int64)
            arrays[f"{split}_sets_indices"] = sets.indices.astype(np.int32)

    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_cached(path: Path) -> Dataset | None:
    """The dataset stored at ``path``, or None if absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            n_users, n_items = (int(x) for x in z["shape"])
            indices = z["indices"]
            train = sp.csr_matrix(
                (np.ones(len(indices), dtype=np.float32), indices, z["indptr"]), shape=(n_users, n_items)
            )
            info = json.loads(str(z["info"]))
            info["cache"] = str(path)
            sets = {}
            for split in ("valid", "test"):
                if f"{split}_sets_indptr" in z:
                    idx = z[f"{split}_sets_indices"]
                    sets[f"{split}_sets"] = sp.csr_matrix(
                        (np.ones(len(idx), dtype=np.float32), idx, z[f"{split}_sets_indptr"]),
                        shape=(n_users, n_items),
                    )
            return Dataset(
                name=str(z["name"]),
                n_users=n_users,
                n_items=n_items,
                train=train,
                valid_items=z["valid_items"],
                test_items=z["test_items"],
                candidates=z["candidates"],
                user_ids=z["user_ids"],
                item_ids=z["item_ids"],
                info=info,
                **sets,
            )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError):
        return None
