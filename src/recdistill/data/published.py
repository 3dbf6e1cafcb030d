"""Published leave-one-out splits, used exactly as published (ids and held-out items kept).

File format (``shared/data/citeulike-t/*_loo_split.tsv.gz``): a TSV with header; columns
``user``, ``item`` (0-based ids of the split), ``split`` in {train, valid, test}, optional
``raw_user`` and ``raw_item``/``raw_token`` (ids in the raw data), optional ``count_token``
(BD: 1 where the 'item' is the users.dat count field). Duplicate training rows are dropped and
counted; candidates are still sampled with the seed from items the user never interacted with.
"""

from __future__ import annotations

import lzma
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recdistill.data.dataset import N_CANDIDATES, Dataset
from recdistill.data.io import DataFormatError, first_line, read_bytes
from recdistill.data.readers import _check_field_counts, _line_text, _read_typed
from recdistill.data.split import positives_csr, sample_candidates

SPLITS = ("train", "valid", "test")


def read_split_table(path: str | os.PathLike) -> pd.DataFrame:
    """The split TSV as a DataFrame (strict: field counts, integer ids, known split names)."""
    path = Path(path)
    data = read_bytes(path)
    header_end = data.find(b"\n")
    header = data[: header_end if header_end >= 0 else len(data)].decode("utf-8", "replace").rstrip("\r")
    cols = header.split("\t")
    for c in ("user", "item", "split"):
        if c not in cols:
            raise DataFormatError(
                path, 1, header, f"missing column {c!r}; a published split needs user, item, split"
            )
    _check_field_counts(path, data, "\t", [len(cols)], skip_lines=1)
    kinds = ["str" if c == "split" else "int" for c in cols]
    df = _read_typed(path, data, sep="\t", names=cols, kinds=kinds, skip_lines=1)
    bad = ~df["split"].isin(SPLITS).to_numpy()
    if bad.any():
        line = int(np.argmax(bad)) + 2
        raise DataFormatError(path, line, _line_text(data, line), f"split must be one of {', '.join(SPLITS)}")
    for c in ("user", "item"):
        neg = df[c].to_numpy() < 0
        if neg.any():
            line = int(np.argmax(neg)) + 2
            raise DataFormatError(path, line, _line_text(data, line), f"negative {c} id")
    return df


def _raw_map(ids: np.ndarray, raw: np.ndarray | None, n: int, path: Path, what: str) -> np.ndarray:
    """Raw id per internal id (-1 where an id never occurs); the file must map each id to one raw id."""
    if raw is None:
        return np.arange(n, dtype=np.int64)
    out = np.full(n, -1, dtype=np.int64)
    out[ids] = raw
    if not np.array_equal(out[ids], raw):
        j = int(np.argmax(out[ids] != raw))
        raise DataFormatError(path, j + 2, None, f"{what} id {ids[j]} maps to two raw ids")
    return out


def load_published_split(
    path: str | os.PathLike,
    *,
    seed: int = 0,
    n_candidates: int = N_CANDIDATES,
    name: str | None = None,
    info: dict[str, Any] | None = None,
) -> Dataset:
    """A :class:`Dataset` from a published split file (ids, train, valid and test as given)."""
    path = Path(path)
    df = read_split_table(path)
    users = df["user"].to_numpy(np.int64)
    items = df["item"].to_numpy(np.int64)
    split = df["split"].to_numpy()
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    rep: dict[str, Any] = dict(info or {})
    rep.update(
        name=name or str(path),
        source=[str(path)],
        format="published-split",
        split="published",
        raw_rows=len(df),
        seed=int(seed),
    )
    rep["settings"] = dict(n_candidates=int(n_candidates), seed=int(seed))

    held: dict[str, np.ndarray] = {}
    for s in ("valid", "test"):
        m = split == s
        per_user = np.bincount(users[m], minlength=n_users)
        if (per_user > 1).any():
            u = int(np.argmax(per_user > 1))
            line = int(np.flatnonzero(m & (users == u))[1]) + 2
            raise DataFormatError(path, line, None, f"user {u} has more than one {s} item")
        h = np.full(n_users, -1, dtype=np.int64)
        h[users[m]] = items[m]
        held[s] = h
    tr = split == "train"
    train = sp.csr_matrix(
        (np.ones(int(tr.sum()), dtype=np.float32), (users[tr], items[tr])), shape=(n_users, n_items)
    )
    n_rows = int(tr.sum())  # rows; the CSR constructor already summed duplicate pairs
    train.sum_duplicates()
    train.data[:] = 1.0
    train.sort_indices()
    rep["duplicates_dropped"] = int(n_rows - train.nnz)
    overlap = 0
    for s in ("valid", "test"):
        has = np.flatnonzero(held[s] >= 0)
        overlap += int(np.asarray(train[has, held[s][has]]).sum())
    rep["heldout_in_train"] = overlap
    if "count_token" in df:
        rep["count_token_rows"] = int(df["count_token"].sum())
    raw_item_col = "raw_item" if "raw_item" in df else ("raw_token" if "raw_token" in df else None)
    user_ids = _raw_map(
        users, df["raw_user"].to_numpy(np.int64) if "raw_user" in df else None, n_users, path, "user"
    )
    item_ids = _raw_map(
        items, df[raw_item_col].to_numpy(np.int64) if raw_item_col else None, n_items, path, "item"
    )
    rep["users_without_rows"] = int((np.bincount(users, minlength=n_users) == 0).sum())
    rep["items_without_rows"] = int((np.bincount(items, minlength=n_items) == 0).sum())
    pos = positives_csr(train, held["valid"], held["test"])
    candidates = sample_candidates(pos, n_candidates, seed, user_ids)
    return Dataset(
        name=name or str(path),
        n_users=n_users,
        n_items=n_items,
        train=train,
        valid_items=held["valid"],
        test_items=held["test"],
        candidates=candidates,
        user_ids=user_ids,
        item_ids=item_ids,
        info=rep,
    )


def is_split_table(path: str | os.PathLike) -> bool:
    """True when a TSV header names ``user``, ``item`` and ``split`` (a published split)."""
    try:
        first = first_line(path)
    except (OSError, EOFError, lzma.LZMAError):
        return False
    return {"user", "item", "split"} <= set(first.split("\t"))
