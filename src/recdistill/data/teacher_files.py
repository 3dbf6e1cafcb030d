"""Teacher files from other libraries, parsed into arrays in the dataset's internal ids: dense
scores (``.npy``; ``.npz`` with raw id maps; a ``user item score`` TSV) and ranked lists (a
``user item rank`` TSV; ``user<TAB>item1 item2 ...`` lines). The formats are documented in
:mod:`recdistill.distill.teacher`, which wraps these arrays as teachers. Nothing here runs code
from a file (``allow_pickle=False``); every problem is one line naming the file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recdistill.data.dataset import Dataset
from recdistill.errors import RecdistillError, UnsafeFileError

__all__ = ["PAD", "read_teacher_file"]

PAD = -1  # padding id in list arrays


def _id_map(raw_ids: np.ndarray) -> dict[str, int]:
    return {str(r): i for i, r in enumerate(raw_ids.tolist())}


def _map_ids(col: pd.Series, mapping: dict[str, int], what: str, path: Path, first_line: int) -> np.ndarray:
    """Raw id strings -> internal ids; unknown ids raise naming the first few with line numbers."""
    mapped = col.map(mapping)
    bad = mapped.isna().to_numpy()
    if bad.any():
        idx = np.flatnonzero(bad)[:5]
        shown = ", ".join(f"line {first_line + int(i)}: {col.iloc[int(i)]!r}" for i in idx)
        raise RecdistillError(f"{path}: {int(bad.sum())} unknown {what} id(s) not in the dataset ({shown})")
    return mapped.to_numpy(dtype=np.int64)


def _read_table(path: Path, names: list[str]) -> tuple[pd.DataFrame, int]:
    """TSV with a header equal to ``names`` -> (frame of strings, line number of the first row)."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
    if [h.strip().lower() for h in header] != names:
        raise RecdistillError(f"{path}: line 1: expected the header {'<TAB>'.join(names)!r}, got {header!r}")
    df = pd.read_csv(path, sep="\t", dtype=str, skiprows=1, header=None, keep_default_na=False)
    if df.shape[1] != len(names):
        raise RecdistillError(f"{path}: expected {len(names)} tab-separated columns, got {df.shape[1]}")
    df.columns = names
    return df, 2


def _parse_float(col: pd.Series, path: Path, first_line: int, what: str) -> np.ndarray:
    vals = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(vals)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise RecdistillError(
            f"{path}: line {first_line + i}: {what} {col.iloc[i]!r} is not a finite number "
            f"({int(bad.sum())} such value(s))"
        )
    return vals


def _check_dup(keys: np.ndarray, path: Path, first_line: int, what: str, show: Any) -> None:
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if (counts > 1).any():
        # the line of the second occurrence of the first duplicated key
        dup_key = keys[first[counts > 1][0]]
        lines = np.flatnonzero(keys == dup_key)
        raise RecdistillError(
            f"{path}: line {first_line + int(lines[1])}: duplicate {what} {show(int(lines[1]))}"
        )


def _load_scores_npy(path: Path, dataset: Dataset) -> np.ndarray:
    return _dense_teacher(_no_pickle(lambda: np.load(path, allow_pickle=False), path), path, dataset)


def _no_pickle(load: Any, path: Path) -> Any:
    """``load()``, with NumPy's refusal of object (pickled) arrays as one line."""
    try:
        return load()
    except ValueError as exc:
        if isinstance(exc, RecdistillError) or "allow_pickle" not in str(exc):
            raise
        raise UnsafeFileError(
            f"{path}: holds Python objects (pickled arrays); refused, as loading could run code"
        ) from None


def _dense_teacher(arr: np.ndarray, path: Path, dataset: Dataset) -> np.ndarray:
    want = (dataset.n_users, dataset.n_items)
    if arr.ndim != 2 or arr.shape != want:
        raise RecdistillError(
            f"{path}: teacher scores have shape {arr.shape}, expected {want} (n_users, n_items)"
        )
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise RecdistillError(f"{path}: teacher scores must be numbers, got dtype {arr.dtype}")
    bad = ~np.isfinite(arr)
    if bad.any():
        u, i = np.argwhere(bad)[0]
        raise RecdistillError(
            f"{path}: {int(bad.sum())} non-finite score(s), first at user {u}, item {i}: {arr[u, i]}"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def _load_scores_npz(path: Path, dataset: Dataset) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        if "scores" not in z:
            raise RecdistillError(f"{path}: expected an array named 'scores', found {sorted(z.files)}")
        arr = z["scores"]
        user_ids = z["user_ids"] if "user_ids" in z else None
        item_ids = z["item_ids"] if "item_ids" in z else None
    if arr.ndim != 2:
        raise RecdistillError(f"{path}: 'scores' must be 2-D, got shape {arr.shape}")
    for ids, axis, what, raw, n in (
        (user_ids, 0, "user", dataset.user_ids, dataset.n_users),
        (item_ids, 1, "item", dataset.item_ids, dataset.n_items),
    ):
        if ids is None:
            continue
        if ids.shape != (arr.shape[axis],):
            raise RecdistillError(f"{path}: {what}_ids has shape {ids.shape}, expected ({arr.shape[axis]},)")
        mapping = _id_map(raw)
        idx = pd.Series([str(x) for x in ids.tolist()]).map(mapping)
        if idx.isna().any():
            bad = [str(x) for x in ids[idx.isna().to_numpy()][:5].tolist()]
            raise RecdistillError(
                f"{path}: {int(idx.isna().sum())} unknown {what} id(s) in {what}_ids: {bad}"
            )
        idx = idx.to_numpy(dtype=np.int64)
        if len(np.unique(idx)) != len(idx):
            raise RecdistillError(f"{path}: duplicate ids in {what}_ids")
        if len(idx) != n:
            missing = np.setdiff1d(np.arange(n), idx)[:5]
            raise RecdistillError(
                f"{path}: {what}_ids covers {len(idx)} of the dataset's {n} {what}s; missing e.g. "
                f"{[str(raw[m]) for m in missing]}"
            )
        inv = np.empty(n, dtype=np.int64)
        inv[idx] = np.arange(n)
        arr = np.take(arr, inv, axis=axis)  # reorder rows/cols to internal ids
    return _dense_teacher(arr, path, dataset)


def _load_scores_tsv(path: Path, dataset: Dataset) -> np.ndarray:
    df, first = _read_table(path, ["user", "item", "score"])
    u = _map_ids(df["user"], _id_map(dataset.user_ids), "user", path, first)
    i = _map_ids(df["item"], _id_map(dataset.item_ids), "item", path, first)
    s = _parse_float(df["score"], path, first, "score")
    _check_dup(
        u * dataset.n_items + i,
        path,
        first,
        "pair",
        lambda r: f"({df['user'].iloc[r]}, {df['item'].iloc[r]})",
    )
    scores = np.full((dataset.n_users, dataset.n_items), -np.inf, dtype=np.float32)
    scores[u, i] = s.astype(np.float32)
    return scores


def _lists_from_pairs(u: np.ndarray, i: np.ndarray, rank: np.ndarray, n_users: int) -> np.ndarray:
    """(user, item, rank) triples -> (n_users, max_len) item lists sorted by rank, padded -1."""
    order = np.lexsort((rank, u))  # by user, then rank
    u, i = u[order], i[order]
    counts = np.bincount(u, minlength=n_users)
    width = int(counts.max()) if len(counts) else 0
    pos = np.arange(len(u)) - np.repeat(np.cumsum(counts) - counts, counts)  # position in the list
    out = np.full((n_users, max(width, 1)), PAD, dtype=np.int32)
    out[u, pos] = i
    return out


def _load_ranks_tsv(path: Path, dataset: Dataset) -> np.ndarray:
    df, first = _read_table(path, ["user", "item", "rank"])
    u = _map_ids(df["user"], _id_map(dataset.user_ids), "user", path, first)
    i = _map_ids(df["item"], _id_map(dataset.item_ids), "item", path, first)
    r = _parse_float(df["rank"], path, first, "rank")
    bad = (r != np.round(r)) | (r < 1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise RecdistillError(f"{path}: line {first + k}: rank {df['rank'].iloc[k]!r} is not an integer >= 1")
    r = r.astype(np.int64)
    _check_dup(
        u * dataset.n_items + i, path, first, "item in a user's list", lambda k: repr(df["item"].iloc[k])
    )
    _check_dup(u * (int(r.max()) + 1) + r, path, first, "rank for a user", lambda k: repr(df["rank"].iloc[k]))
    return _lists_from_pairs(u, i, r, dataset.n_users)


def _load_lists_lines(path: Path, dataset: Dataset) -> np.ndarray:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            fields = line.rstrip("\r\n").count("\t") + 1
            if fields != 2 and line.strip():
                raise RecdistillError(
                    f"{path}: line {n}: {fields} tab-separated fields; expected 2 "
                    "('user<TAB>item1 item2 ...'), or a header user<TAB>item<TAB>score | rank"
                )
    df = pd.read_csv(path, sep="\t", dtype=str, header=None, keep_default_na=False, names=["user", "items"])
    first = 1
    if len(df) and df["user"].iloc[0].strip().lower() == "user":
        df, first = df.iloc[1:].reset_index(drop=True), 2
    if df["items"].isna().any() if len(df) else False:
        raise RecdistillError(f"{path}: expected lines 'user<TAB>item1 item2 ...'")
    u_line = _map_ids(df["user"], _id_map(dataset.user_ids), "user", path, first)
    _check_dup(u_line, path, first, "user", lambda k: repr(df["user"].iloc[k]))
    tokens = df["items"].str.split().explode()  # index = row of the line
    tokens = tokens[tokens.notna()]
    rows = tokens.index.to_numpy(dtype=np.int64)
    line_of = first + rows
    mapping = _id_map(dataset.item_ids)
    mapped = tokens.map(mapping)
    if mapped.isna().any():
        bad = np.flatnonzero(mapped.isna().to_numpy())[:5]
        shown = ", ".join(f"line {int(line_of[b])}: {tokens.iloc[int(b)]!r}" for b in bad)
        raise RecdistillError(
            f"{path}: {int(mapped.isna().sum())} unknown item id(s) not in the dataset ({shown})"
        )
    i = mapped.to_numpy(dtype=np.int64)
    u = u_line[rows]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)  # position within its line
    keys = u * dataset.n_items + i
    _, first_idx, counts = np.unique(keys, return_index=True, return_counts=True)
    if (counts > 1).any():
        k = np.flatnonzero(keys == keys[first_idx[counts > 1][0]])[1]
        raise RecdistillError(
            f"{path}: line {int(line_of[k])}: duplicate item {tokens.iloc[int(k)]!r} in the list"
        )
    return _lists_from_pairs(u, i, rank, dataset.n_users)


def read_teacher_file(path: Path, dataset: Dataset) -> tuple[str, np.ndarray]:
    """A teacher file's content: ``("scores", float32 (n_users, n_items))`` (-inf: not scored)
    or ``("lists", int32 (n_users, L))`` (best first, padded with -1), in the dataset's internal
    ids; formats and checks in :mod:`recdistill.distill.teacher`. Every problem is one line
    naming the file (and line)."""
    try:
        if path.suffix == ".npy":
            return "scores", _load_scores_npy(path, dataset)
        if path.suffix == ".npz":
            return "scores", _no_pickle(lambda: _load_scores_npz(path, dataset), path)
        with open(path, encoding="utf-8") as f:
            header = [h.strip().lower() for h in f.readline().rstrip("\n").split("\t")]
        if header == ["user", "item", "score"]:
            return "scores", _load_scores_tsv(path, dataset)
        if header == ["user", "item", "rank"]:
            lists = _load_ranks_tsv(path, dataset)
        elif header[:2] == ["user", "item"]:
            raise RecdistillError(
                f"{path}: line 1: a header of {len(header)} columns {header}; expected "
                "user<TAB>item<TAB>score or user<TAB>item<TAB>rank"
            )
        else:
            lists = _load_lists_lines(path, dataset)
    except UnicodeDecodeError as exc:
        raise RecdistillError(
            f"{path}: not a UTF-8 text file (byte {exc.start}); a teacher is .npy/.npz scores or a TSV of "
            "scores, ranks or lists"
        ) from None
    except pd.errors.EmptyDataError:
        raise RecdistillError(f"{path}: no data (an empty or header-only file)") from None
    if not (lists >= 0).any():
        raise RecdistillError(f"{path}: no ranked list (an empty file?)")
    return "lists", lists
