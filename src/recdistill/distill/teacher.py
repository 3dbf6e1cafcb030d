"""Teacher sources for the frozen-teacher baselines, and their cached top-N lists.

A teacher is one of:

1. **a trained model** (:class:`ModelTeacher`, frozen; a run directory written by
   ``recdistill train`` is loaded into one by ``recdistill.runs.load_teacher``);
2. **a score file** (:class:`ScoreTeacher`), e.g. produced by another library:
   - ``.npy``: a dense float array (n_users, n_items) in the dataset's internal ids;
   - ``.npz``: key ``scores`` (rows, cols), with optional ``user_ids`` (rows,) and ``item_ids``
     (cols,) giving the *raw* id of each row/column (then rows/cols may come in any order, but
     every dataset user and item must be present);
   - ``.tsv``: header ``user<TAB>item<TAB>score``, then one line per scored pair in raw ids;
     pairs not listed score ``-inf`` (never ranked, never a target);
3. **a ranked-list file** (:class:`ListTeacher`), raw ids, either
   - ``.tsv`` with header ``user<TAB>item<TAB>rank`` (rank 1 = best; distinct per user), or
   - one line per user ``user<TAB>item1 item2 ...`` (best first; an optional header
     ``user<TAB>items``); any extension other than ``.npy``/``.npz``.
   A list-only teacher serves the methods that need only the teacher's order of items per user
   (RD, RRD, and DCD's user side, where items outside a user's list share one midrank:
   ``recdistill.ranking.listranks``); CD, IR-RRD and DCD's item side need scores.

Validation (``ValueError`` with file, line and value): unknown raw ids, wrong shapes, non-finite
scores, duplicate pairs or ranks, duplicate items in a list. Observed (training) items in a list
are dropped (they are never targets); users without a list get none (their KD term is skipped).

Top-N lists (user side: the N best unobserved items per user; item side: the N best users per
item among those who did not observe it) come from the rank engine (``recdistill.ranking``: exact
order, ties to the lower id), are computed once per teacher, chunked, and cached
on disk under ``cache_dir`` with key (teacher fingerprint, dataset fingerprint, side, N);
files are written atomically (temp file + ``os.replace``).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from recdistill.atomic import atomic_npy
from recdistill.data.dataset import Dataset
from recdistill.errors import MissingFileError, RecdistillError, UnsafeFileError
from recdistill.models.base import Recommender

__all__ = [
    "ListTeacher",
    "ModelTeacher",
    "ScoreTeacher",
    "Teacher",
    "dataset_fingerprint",
    "load_teacher",
    "topn_from_scores",
]

PAD = -1  # padding id in top-N arrays


# ---------------------------------------------------------------------------------- utilities
def dataset_fingerprint(dataset: Dataset) -> str:
    """The dataset's :attr:`~recdistill.data.dataset.Dataset.fingerprint` (sizes and training matrix)."""
    return dataset.fingerprint


def topn_from_scores(
    scores: Any,
    dataset: Dataset,
    n: int,
    side: str = "user",
    chunk: int | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Teacher top-N lists, observed pairs excluded, best first, padded with -1, from the rank
    engine (:meth:`recdistill.ranking.RankEngine.refresh`: exact order, ties to the lower id).

    scores: a rank-engine score source (a ``Recommender``, a callable ``users (B,) -> (B, n_items)``
    or a dense (n_users, n_items) tensor). side="user": (n_users, n) items per user; side="item":
    (n_items, n) users per item (among those who did not observe it). chunk: rows per chunk
    (None: the engine's memory-bounded default). Returns int32.
    """
    from recdistill.ranking import RankEngine

    if side not in ("user", "item"):
        raise RecdistillError(f"side must be 'user' or 'item', got {side!r}")
    engine = RankEngine(dataset.train, device, chunk_size=chunk)
    top = engine.refresh(scores, side=side, top_n=n).top_t  # split by rows under torchrun
    assert top is not None
    return top.cpu().numpy()  # (n_rows, n), PAD (-1) past the unobserved entries


def _everywhere(flag: bool) -> bool:
    """Whether ``flag`` holds in every process (itself without a process group), so that every
    process takes the same branch before a collective."""
    from recdistill.parallel import all_sum_, world

    size = world()[1]
    if size == 1:
        return flag
    return int(all_sum_(torch.tensor([int(flag)]))) == size


# ------------------------------------------------------------------------------------ teachers
class Teacher:
    """A frozen teacher. ``has_scores``: whether :meth:`score`/:meth:`score_all` exist (score
    and model teachers) or only ranked lists (list teachers)."""

    has_scores: bool = True

    def __init__(self, source: str, n_users: int, n_items: int) -> None:
        self.source = source
        self.n_users = n_users
        self.n_items = n_items
        self._fingerprint: str | None = None

    # -- to implement
    def _compute_fingerprint(self) -> str:
        raise NotImplementedError

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Teacher logits of ``users`` (B,) against every item -> (B, n_items)."""
        raise NotImplementedError(f"teacher {self.source!r} has no scores (ranked lists only)")

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Teacher logits for users (B,) and items (B, k) -> (B, k)."""
        raise NotImplementedError(f"teacher {self.source!r} has no scores (ranked lists only)")

    # -- shared
    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = self._compute_fingerprint()
        return self._fingerprint

    def _score_source(self) -> Any:
        """What the rank engine scores (default: :meth:`score_all`)."""
        return self.score_all

    @property
    def score_source(self) -> Any:
        """What the rank engine ranks for this teacher (a model, a score tensor or a callable);
        only for teachers with scores."""
        if not self.has_scores:
            raise RecdistillError(f"teacher {self.source!r} gives ranked lists only; this needs its scores")
        return self._score_source()

    def rank_source(self, dataset: Dataset, side: str = "user") -> Any:
        """What the rank engine ranks for this teacher on ``side``: its scores (a model, a score
        tensor or a callable), or for a list teacher its lists (user side only)."""
        return self.score_source

    def _topn(self, dataset: Dataset, n: int, side: str, chunk: int | None, device: Any) -> np.ndarray:
        return topn_from_scores(self._score_source(), dataset, n, side, chunk, device)

    def topn(
        self,
        dataset: Dataset,
        n: int,
        side: str = "user",
        cache_dir: str | Path | None = None,
        chunk: int | None = None,
        device: torch.device | str = "cpu",
    ) -> np.ndarray:
        """The teacher's top-``n`` lists, (n_users, n) items or (n_items, n) users (side="item"),
        int32, best first, observed pairs excluded, padded with -1; cached under ``cache_dir``."""
        path = None
        if cache_dir is not None:
            key = f"{self.fingerprint[:16]}-{dataset_fingerprint(dataset)[:16]}"
            # "-e": lists from the rank engine (exact order, ties to the lower id)
            path = Path(cache_dir) / "teacher_topn" / f"{side}-N{n}-{key}-e.npy"
            arr = None
            if path.is_file():
                arr = np.load(path, allow_pickle=False)
                rows = dataset.n_users if side == "user" else dataset.n_items
                if not (arr.shape == (rows, n) and arr.dtype == np.int32):
                    arr = None
            if _everywhere(arr is not None):  # under torchrun: all read the cache, or all rank
                assert arr is not None
                return arr
        arr = self._topn(dataset, n, side, chunk, device)
        if path is not None:
            try:
                atomic_npy(arr, path)
            except OSError as exc:  # e.g. a read-only teacher run: the lists are just not cached
                print(
                    f"recdistill: note: could not cache the teacher's lists in {path.parent} "
                    f"({exc.strerror or exc}); continuing without the cache",
                    file=sys.stderr,
                )
        return arr


class ModelTeacher(Teacher):
    """A trained :class:`Recommender`, frozen (eval mode, no gradients)."""

    def __init__(self, model: Recommender, source: str = "model") -> None:
        super().__init__(source, model.n_users, model.n_items)
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def _compute_fingerprint(self) -> str:
        h = hashlib.sha256(type(self.model).__name__.encode())
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def _score_source(self) -> Any:
        return self.model

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.score_all(users.to(self.model.device))

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.score(users.to(self.model.device), items.to(self.model.device))


class ScoreTeacher(Teacher):
    """Dense teacher scores (n_users, n_items) float32, internal ids (-inf = not scored)."""

    def __init__(self, scores: torch.Tensor, source: str = "scores") -> None:
        if scores.dim() != 2:
            raise RecdistillError(
                f"{source}: teacher scores must be 2-D (n_users, n_items), got {tuple(scores.shape)}"
            )
        super().__init__(source, scores.shape[0], scores.shape[1])
        self.scores = scores.float()

    def to(self, device: torch.device | str) -> ScoreTeacher:
        self.scores = self.scores.to(device)
        return self

    def _compute_fingerprint(self) -> str:
        return hashlib.sha256(self.scores.cpu().contiguous().numpy().tobytes()).hexdigest()

    def _score_source(self) -> Any:
        return self.scores

    def _topn(self, dataset: Dataset, n: int, side: str, chunk: int | None, device: Any) -> np.ndarray:
        arr = super()._topn(dataset, n, side, chunk, device)  # (R, n)
        if bool(torch.isinf(self.scores).any()):  # -inf = not scored: never a target
            ids = torch.from_numpy(arr.astype(np.int64)).to(self.scores.device)  # (R, n)
            rows = torch.arange(arr.shape[0], device=ids.device)[:, None].expand_as(ids)  # (R, n)
            u, i = (rows, ids.clamp_min(0)) if side == "user" else (ids.clamp_min(0), rows)
            unscored = torch.isneginf(self.scores[u, i]) & (ids >= 0)  # (R, n) a suffix of each row
            arr[unscored.cpu().numpy()] = PAD
        return arr

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.scores[users.to(self.scores.device)]  # (B, n_items)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        u = users.to(self.scores.device)
        return self.scores[u[:, None], items.to(self.scores.device)]  # (B, k)


class ListTeacher(Teacher):
    """Ranked lists only: ``lists`` (n_users, N) int32 item ids, best first, padded with -1."""

    has_scores = False

    def __init__(self, lists: np.ndarray, n_items: int, source: str = "lists") -> None:
        if lists.ndim != 2:
            raise RecdistillError(f"{source}: ranked lists must be 2-D (n_users, N), got shape {lists.shape}")
        super().__init__(source, lists.shape[0], n_items)
        self.lists = lists.astype(np.int32)

    def _compute_fingerprint(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.lists).tobytes()).hexdigest()

    def rank_source(self, dataset: Dataset, side: str = "user") -> Any:
        """The lists as a :class:`~recdistill.ranking.ListRanks` (observed items dropped): listed
        items ranked 1..L per user, the rest of the user's unobserved items tied at the midrank.
        User side only."""
        from recdistill.ranking import ListRanks

        if side != "user":
            raise RecdistillError(
                f"teacher {self.source!r} gives user-side ranked lists only; item-side ranks need "
                "scores (a trained run or a score file)"
            )
        return ListRanks(self._topn(dataset, self.lists.shape[1], "user", None, None), side="user")

    def _topn(self, dataset: Dataset, n: int, side: str, chunk: int | None, device: Any) -> np.ndarray:
        if side != "user":
            raise RecdistillError(
                f"teacher {self.source!r} gives user-side ranked lists only; item-side lists need "
                "scores (a trained run or a score file)"
            )
        lists = self.lists.astype(np.int64)  # (n_users, N)
        valid = lists >= 0
        u = np.broadcast_to(np.arange(lists.shape[0])[:, None], lists.shape)
        observed = np.zeros_like(valid)
        observed[valid] = np.asarray(dataset.train[u[valid], lists[valid]]).ravel() > 0
        keep = valid & ~observed  # (n_users, N)
        # Stable compaction: kept entries first, in their order.
        order = np.argsort(~keep, axis=1, kind="stable")  # (n_users, N)
        compact = np.take_along_axis(np.where(keep, lists, PAD), order, axis=1)
        out = np.full((lists.shape[0], n), PAD, dtype=np.int32)
        m = min(n, compact.shape[1])
        out[:, :m] = compact[:, :m]
        return out


# ------------------------------------------------------------------------------------- loading
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


def _load_scores_npy(path: Path, dataset: Dataset) -> ScoreTeacher:
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


def _dense_teacher(arr: np.ndarray, path: Path, dataset: Dataset) -> ScoreTeacher:
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
    return ScoreTeacher(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)), str(path))


def _load_scores_npz(path: Path, dataset: Dataset) -> ScoreTeacher:
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


def _load_scores_tsv(path: Path, dataset: Dataset) -> ScoreTeacher:
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
    scores = torch.full((dataset.n_users, dataset.n_items), float("-inf"))
    scores[torch.as_tensor(np.array(u)), torch.as_tensor(np.array(i))] = torch.tensor(s, dtype=torch.float32)
    return ScoreTeacher(scores, str(path))


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


def _load_ranks_tsv(path: Path, dataset: Dataset) -> ListTeacher:
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
    return ListTeacher(_lists_from_pairs(u, i, r, dataset.n_users), dataset.n_items, str(path))


def _load_lists_lines(path: Path, dataset: Dataset) -> ListTeacher:
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
    return ListTeacher(_lists_from_pairs(u, i, rank, dataset.n_users), dataset.n_items, str(path))


def load_teacher(
    source: str | Path | Recommender, dataset: Dataset, device: torch.device | str = "cpu"
) -> Teacher:
    """A :class:`Teacher` from a trained model, a score file or a list file (formats in the module
    docstring). A run directory is resolved by the run layer (``recdistill.runs.load_teacher``)."""
    if isinstance(source, Recommender):
        return ModelTeacher(source.to(device), source=type(source).__name__)
    path = Path(source)
    if path.is_dir():
        raise RecdistillError(f"teacher {path} is a run directory: load it with recdistill.runs.load_teacher")
    if not path.is_file():
        raise MissingFileError(f"teacher not found: {path} (a run directory, .npy/.npz/.tsv scores or lists)")
    try:
        if path.suffix == ".npy":
            return _load_scores_npy(path, dataset).to(device)
        if path.suffix == ".npz":
            return _no_pickle(lambda: _load_scores_npz(path, dataset), path).to(device)
        with open(path, encoding="utf-8") as f:
            header = [h.strip().lower() for h in f.readline().rstrip("\n").split("\t")]
        if header == ["user", "item", "score"]:
            return _load_scores_tsv(path, dataset).to(device)
        if header == ["user", "item", "rank"]:
            return _load_ranks_tsv(path, dataset)
        if header[:2] == ["user", "item"]:
            raise RecdistillError(
                f"{path}: line 1: a header of {len(header)} columns {header}; expected "
                "user<TAB>item<TAB>score or user<TAB>item<TAB>rank"
            )
        teacher = _load_lists_lines(path, dataset)
    except UnicodeDecodeError as exc:
        raise RecdistillError(
            f"{path}: not a UTF-8 text file (byte {exc.start}); a teacher is .npy/.npz scores or a TSV of "
            "scores, ranks or lists"
        ) from None
    except pd.errors.EmptyDataError:
        raise RecdistillError(f"{path}: no data (an empty or header-only file)") from None
    if not (teacher.lists >= 0).any():
        raise RecdistillError(f"{path}: no ranked list (an empty file?)")
    return teacher
