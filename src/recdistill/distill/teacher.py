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
on disk under the teacher's ``cache_dir`` with key (teacher fingerprint, dataset fingerprint, side, N);
files are written atomically (temp file + ``os.replace``).
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recdistill.atomic import atomic_npy
from recdistill.data.dataset import Dataset
from recdistill.data.teacher_files import PAD, read_teacher_file
from recdistill.errors import MissingFileError, RecdistillError
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
        #: where :meth:`topn` caches its lists (None: not cached); the run layer sets it (a
        #: teacher run's ``cache/`` folder, or ``recdistill distill --cache-dir``)
        self.cache_dir: Path | None = None

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
        chunk: int | None = None,
        device: torch.device | str = "cpu",
    ) -> np.ndarray:
        """The teacher's top-``n`` lists, (n_users, n) items or (n_items, n) users (side="item"),
        int32, best first, observed pairs excluded, padded with -1; cached under the teacher's
        ``cache_dir`` when it has one. ``chunk``: rows per ranking chunk (speed only)."""
        path = None
        cache_dir = self.cache_dir
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
    """A trained :class:`Recommender`, frozen (eval mode, no gradients). Frozen, it stays in its
    model's :meth:`~recdistill.models.base.Recommender.scoring` pass for as long as it lives
    (LightGCN: one propagation for the whole run)."""

    def __init__(self, model: Recommender, source: str = "model") -> None:
        super().__init__(source, model.n_users, model.n_items)
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._pass = contextlib.ExitStack()
        self._pass.enter_context(self.model.scoring())

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


def load_teacher(
    source: str | Path | Recommender, dataset: Dataset, device: torch.device | str = "cpu"
) -> Teacher:
    """A :class:`Teacher` from a trained model, a score file or a list file (formats in the module
    docstring; parsed by :func:`recdistill.data.teacher_files.read_teacher_file`). A run directory
    is resolved by the run layer (``recdistill.runs.load_teacher``)."""
    if isinstance(source, Recommender):
        return ModelTeacher(source.to(device), source=type(source).__name__)
    path = Path(source)
    if path.is_dir():
        raise RecdistillError(f"teacher {path} is a run directory: load it with recdistill.runs.load_teacher")
    if not path.is_file():
        raise MissingFileError(f"teacher not found: {path} (a run directory, .npy/.npz/.tsv scores or lists)")
    kind, arr = read_teacher_file(path, dataset)
    if kind == "scores":
        return ScoreTeacher(torch.from_numpy(arr), str(path)).to(device)
    return ListTeacher(arr, dataset.n_items, str(path))
