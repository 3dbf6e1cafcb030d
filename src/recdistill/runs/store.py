"""A run directory: its resolved config, its datasets, its saved models and metrics.

Layout (written by :class:`recdistill.train.Trainer` and :mod:`recdistill.runs`): ``config.yaml``
(the resolved config), ``<name>.pt`` per trained model (best validation state; see
:mod:`recdistill.models.store`), ``checkpoint.pt``, ``log.jsonl`` (one line per epoch),
``metrics.json`` and, for distillation runs, ``distill.json`` (method, formulas, parameters).
All files are written atomically (:mod:`recdistill.atomic`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from recdistill.atomic import atomic_text, read_json
from recdistill.config import Config, load_yaml, parse_dataclass
from recdistill.data.dataset import Dataset
from recdistill.distill.teacher import ModelTeacher, Teacher
from recdistill.distill.teacher import load_teacher as load_teacher_file
from recdistill.errors import MissingFileError, RecdistillError
from recdistill.models.base import Recommender
from recdistill.models.store import load_model
from recdistill.parallel import is_main

__all__ = [
    "Run",
    "check_device",
    "data_dir_for",
    "is_finished",
    "load_config",
    "load_dataset_for",
    "load_run",
    "load_teacher",
    "run_directory",
    "run_model",
    "write_config",
]


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine (one-line error otherwise)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise RecdistillError(f"device {device!r}: expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RecdistillError(
                f"device {device!r}: CUDA is not available here (this PyTorch {torch.__version__} has "
                f"{'no CUDA build' if torch.version.cuda is None else 'no visible GPU'}); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RecdistillError(f"device {device!r}: only {torch.cuda.device_count()} GPU(s) visible")
    elif dev.type != "cpu":
        raise RecdistillError(f"device {device!r}: expected cpu, cuda or cuda:N")
    return dev


def _check_writable(out: Path) -> None:
    for parent in [out, *out.parents]:
        if parent.exists():
            if not parent.is_dir():
                what = "is a file" if parent == out else f"is under a file ({parent})"
                raise RecdistillError(f"--out {out} {what}: give a directory for the run")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise RecdistillError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


def is_finished(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a finished run (its ``metrics.json``)."""
    return (Path(run_dir) / "metrics.json").is_file()


@contextlib.contextmanager
def run_directory(
    out_dir: str | Path | None, resume: bool = False, fresh: bool = False
) -> Iterator[Path | None]:
    """The folder a run writes into, such that a failed command never damages a finished run.

    - ``out_dir`` a file, under a file or not writable: a one-line error before anything runs;
    - a finished run (``metrics.json``) is continued only with ``resume`` (which rewrites the same
      results) and replaced only with ``fresh``: the new run is staged in a hidden sibling folder
      and swapped in when it has finished; on any failure the stage is removed and the finished
      run is left exactly as it was. Without either: an error.
    Yields the folder to write into (None without ``out_dir``).
    """
    if out_dir is None:
        yield None
        return
    out = Path(out_dir)
    _check_writable(out)
    if not (is_finished(out) and fresh and not resume):
        if is_finished(out) and not resume:
            raise RecdistillError(
                f"{out} holds a finished run: pass --fresh to replace it (or --resume, or another --out)"
            )
        yield out
        return
    stage = out.parent / f".{out.name}.staging"
    main = is_main()  # under torchrun only rank 0 touches the folders
    if stage.exists() and main:
        shutil.rmtree(stage)
    try:
        yield stage
    except BaseException:
        if main:
            shutil.rmtree(stage, ignore_errors=True)
        raise
    if not main:
        return
    old = out.parent / f".{out.name}.replaced"
    if old.exists():
        shutil.rmtree(old)
    os.replace(out, old)
    os.replace(stage, out)
    shutil.rmtree(old, ignore_errors=True)


def data_dir_for(config: Config) -> str | None:
    """``data.data_dir``, else ``$RECDISTILL_DATA``, else None (the loader's default)."""
    return config.data.data_dir or os.environ.get("RECDISTILL_DATA") or None


def load_dataset_for(config: Config) -> Dataset:
    """The dataset named by ``config.data`` (via ``recdistill.data.load_dataset``)."""
    from recdistill.data import load_dataset

    data_dir = data_dir_for(config)
    options = config.data.loader_options()
    if data_dir is None:
        return load_dataset(config.data.name, **options)
    return load_dataset(config.data.name, data_dir=data_dir, **options)


def write_config(config: Config, out_dir: str | Path) -> None:
    """The resolved config as ``out_dir/config.yaml`` (atomic). A dataset given as a relative
    file path, and a relative data directory, are stored absolute, so that the run can be
    evaluated from any folder."""
    d = config.to_dict()
    name = d["data"]["name"]
    from recdistill.data import DATASETS

    if name not in DATASETS and Path(name).is_file():
        d["data"]["name"] = str(Path(name).resolve())
    if d["data"].get("data_dir"):
        d["data"]["data_dir"] = str(Path(d["data"]["data_dir"]).resolve())
    atomic_text(yaml.safe_dump(d, sort_keys=False), Path(out_dir) / "config.yaml")


def load_config(run_dir: str | Path) -> Config:
    """The resolved ``config.yaml`` of a run directory."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise MissingFileError(f"{run_dir}: not a run directory (no config.yaml)")
    return parse_dataclass(Config, load_yaml(path), "")


@dataclass
class Run:
    """A finished run: its models (best states), resolved config and dataset."""

    models: dict[str, Recommender]
    config: Config
    dataset: Dataset
    metrics: dict[str, Any] | None
    #: built on first use by :meth:`recommend`: the raw user ids as strings, the training items
    _users: pd.Index | None = field(default=None, init=False, repr=False)
    _exclude: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def model(self) -> Recommender:
        """The primary model (the only one, or "student")."""
        if len(self.models) == 1:
            return next(iter(self.models.values()))
        return self.models["student"]

    def user_index(self, user_ids: Any, skip_unknown: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
        """Raw user ids (compared as strings) -> (their internal ids, their raw ids as the dataset
        holds them, the number skipped). An unknown id is an error listing the first few, or with
        ``skip_unknown`` skipped."""
        if isinstance(user_ids, (str, bytes)):
            raise RecdistillError(f"user ids: expected a list of ids, got the string {user_ids!r}")
        if self._users is None:
            self._users = pd.Index([str(r) for r in self.dataset.user_ids.tolist()])
        raw = [str(x) for x in user_ids]
        pos = self._users.get_indexer(raw)  # (n,) -1 where unknown
        unknown = [r for r, p in zip(raw, pos) if p < 0]
        if unknown and not skip_unknown:
            shown = ", ".join(repr(x) for x in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise RecdistillError(
                f"{len(unknown):,} unknown user id(s) not in the run's dataset ({shown}); "
                "--skip-unknown skips them"
            )
        idx = pos[pos >= 0].astype(np.int64)
        return idx, np.asarray(self.dataset.user_ids, dtype=object)[idx], len(unknown)

    def recommend(
        self,
        user_ids: Any = None,
        k: int = 10,
        exclude_train: bool = True,
        skip_unknown: bool = False,
        device: str | torch.device = "cpu",
    ) -> pd.DataFrame:
        """The top-``k`` items of each user (raw ids; None: every user) by the primary model, with
        their scores: a frame ``user, rank, item, score`` (rank 1 = best), computed in chunks of
        users (:func:`recdistill.ranking.recommend.top_k`: ties to the lower item index). The
        user's training items are excluded unless ``exclude_train=False``; a user with fewer
        than k items left has fewer rows. ``frame.attrs["skipped"]``: unknown ids skipped."""
        from recdistill.ranking.recommend import exclusion, top_k

        skipped = 0
        if user_ids is None:
            idx, raw = np.arange(self.dataset.n_users), np.asarray(self.dataset.user_ids, dtype=object)
        else:
            idx, raw, skipped = self.user_index(user_ids, skip_unknown)
        exclude = None
        if exclude_train:
            key = str(torch.device(device))
            if key not in self._exclude:
                self._exclude[key] = exclusion(self.dataset.train, device)
            exclude = self._exclude[key]
        model = self.model.to(device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), model.scoring():  # one ranking pass (LightGCN: one propagation)
                items, scores = top_k(
                    model.score_all,
                    self.dataset.n_items,
                    torch.from_numpy(idx).to(device),
                    k,
                    exclude,
                    device=device,
                )
        finally:
            model.train(was_training)
        n = len(idx)
        it, sc = items.numpy(), scores.numpy()
        keep = (it >= 0).reshape(-1)
        frame = pd.DataFrame(
            {
                "user": np.repeat(raw, k)[keep],
                "rank": np.tile(np.arange(1, k + 1), n)[keep],
                "item": np.asarray(self.dataset.item_ids, dtype=object)[it.reshape(-1)[keep]],
                "score": sc.reshape(-1)[keep],
            }
        )
        frame.attrs["skipped"] = skipped
        return frame


def load_run(run_dir: str | Path, dataset: Dataset | None = None, device: str | torch.device = "cpu") -> Run:
    """Load every ``<name>.pt`` of a run directory with its config and dataset.

    ``dataset``: pass it to avoid reloading (it must be the run's dataset).
    """
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    if dataset is None:
        dataset = load_dataset_for(config)
    files = sorted(p for p in run_dir.glob("*.pt") if p.name != "checkpoint.pt")
    if not files:
        raise MissingFileError(f"{run_dir}: no saved model (<name>.pt); did the run finish?")
    models = {p.stem: load_model(p, dataset, device) for p in files}
    metrics_path = run_dir / "metrics.json"
    metrics = read_json(metrics_path, "run's metrics.json") if metrics_path.exists() else None
    return Run(models, config, dataset, metrics)


def run_model(
    run_dir: str | Path, dataset: Dataset, role: str, device: str | torch.device = "cpu"
) -> Recommender:
    """The ``role`` model ("teacher" / "student") of a run directory: its model of that name (e.g.
    a BD run's teacher), else its only model."""
    models = load_run(run_dir, dataset, device).models
    if role in models:
        return models[role]
    if len(models) == 1:
        return next(iter(models.values()))
    raise RecdistillError(f"{run_dir}: holds models {sorted(models)}; expected one model or a {role!r}")


def load_teacher(
    source: Any,
    dataset: Dataset,
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
) -> Teacher:
    """A frozen :class:`~recdistill.distill.teacher.Teacher` from a run directory (its teacher, or
    its only model), a trained :class:`Recommender`, a score file or a ranked-list file. Its
    top-N lists are cached in ``cache_dir``, by default a run directory's ``cache/`` folder."""
    if isinstance(source, Teacher):
        teacher = source
    elif isinstance(source, (str, Path)) and Path(source).is_dir():
        teacher = ModelTeacher(run_model(source, dataset, "teacher", device), source=str(source))
        cache_dir = cache_dir if cache_dir is not None else Path(source) / "cache"
    else:
        teacher = load_teacher_file(source, dataset, device)
    if cache_dir is not None:
        teacher.cache_dir = Path(cache_dir)
    return teacher
