"""Named datasets with the papers' defaults, ``load_dataset`` (the stable entry point) and
``dataset_stats``. A name not in the registry is read as a path (format sniffed)."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recdistill.data import download as dl
from recdistill.data.cache import cache_key, cache_path, default_cache_dir, load_cached, save_dataset
from recdistill.data.dataset import N_CANDIDATES, Dataset
from recdistill.data.io import COMPRESSED_SUFFIXES, sha256_file
from recdistill.data.preprocess import from_log
from recdistill.data.published import is_split_table, load_published_split
from recdistill.data.readers import read_interactions, sniff_format
from recdistill.errors import MissingFileError, RecdistillError, UnknownNameError
from recdistill.registry import Registry


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: its raw file (relative to the data directory, compression suffix
    optional), how to read it, and the papers' default settings.

    protocol: the evaluation protocol of the paper that uses it, "full" (BD: every unobserved
    item) or "sampled" (DCD: 499 sampled candidates); ``train.eval_protocol: auto`` picks it.
    sizes: the size presets of that paper (``recdistill.models.PRESETS``): "bd" (teacher 50,
    student 5) or "dcd" (200, 20).
    """

    name: str
    file: str
    kind: str  # "log" (reader + preprocessing + LOO) or "published" (split used as published)
    description: str
    format: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    protocol: str = "full"
    sizes: str = "bd"

    def __post_init__(self) -> None:
        if self.protocol not in ("full", "sampled"):
            raise RecdistillError(f"dataset {self.name!r}: protocol={self.protocol!r}, expected full|sampled")
        if self.sizes not in ("bd", "dcd"):
            raise RecdistillError(f"dataset {self.name!r}: sizes={self.sizes!r}, expected bd|dcd")


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def _add(spec: DatasetSpec) -> None:
    DATASETS.register(spec.name)(spec)


def dataset_protocol(name: str) -> str:
    """The evaluation protocol of a named dataset's paper ("full" for files and unknown names)."""
    return DATASETS.get(name).protocol if name in DATASETS else "full"


def dataset_split(name: str) -> str:
    """The split of a named dataset ("loo", or "ratio" for a ratio preset; "loo" for files)."""
    return str(DATASETS.get(name).defaults.get("split", "loo")) if name in DATASETS else "loo"


def dataset_sizes(name: str) -> str:
    """The size-preset family of a named dataset ("bd" for files and unknown names)."""
    return DATASETS.get(name).sizes if name in DATASETS else "bd"


_add(
    DatasetSpec(
        "citeulike",
        "citeulike-t/users.dat",
        "log",
        "CiteULike-t, users with >= 5 items (count field not an item), random LOO",
        format="citeulike-users",
        defaults={"min_user_interactions": 5},
    )
)
_add(
    DatasetSpec(
        "citeulike-rou",
        "citeulike-t/users.dat",
        "log",
        "CiteULike-t as RCE-KD's code (woriazzc/RCEKD preprocess_citeulike.py) prepares it: users with "
        ">= 5 items, no item filter, 8:1:1 per user in the file's order, which lists each user's items "
        "by ascending id, so every user's highest item ids are held out (their README says 'ROU'; "
        "data.order: random gives that); RCE-KD's counts 5,219 / 25,181 / 125,580; 98,405 / 12,451 / "
        "14,724; full ranking with R@K / N@K",
        format="citeulike-users",
        defaults={"min_user_interactions": 5, "split": "ratio", "ratios": (8, 1, 1), "order": "file"},
        sizes="dcd",
    )
)
_add(
    DatasetSpec(
        "citeulike-bd",
        "citeulike-t/bd_loo_split.tsv",
        "published",
        "CiteULike-t, BD's published LOO split (WWW 2021 Table 1: 5,219 / 25,187 / 130,788)",
    )
)
_add(
    DatasetSpec(
        "citeulike-dcd",
        "citeulike-t/derrd_loo_split.tsv",
        "published",
        "CiteULike-t, DE-RRD/DCD's published LOO split (5,219 / 25,181 / 115,142 train)",
        protocol="sampled",
        sizes="dcd",
    )
)
_add(
    DatasetSpec(
        "ml-100k",
        "ml-100k/u.data",
        "log",
        "MovieLens 100K, every rating as an interaction, LOO by time",
        format="movielens",
    )
)
_add(
    DatasetSpec(
        "amazon-cds",
        "amazon-cds/amazon-cds.inter",
        "log",
        "Amazon CDs & Vinyl (FPSR's filtered RecBole file), random LOO",
        format="recbole-inter",
    )
)

_add(
    DatasetSpec(
        "foursquare-tky",
        "foursquare/dataset_TSMC2014_TKY.txt",
        "log",
        "Foursquare Tokyo (TSMC2014), LOO by time; BD keeps users with > 5 check-ins (here: distinct "
        "venues). Not in shared/data (README section 3)",
        format="tsmc2014",
        defaults={"min_user_interactions": 6},
    )
)
_add(
    DatasetSpec(
        "yelp",
        "yelp/yelp.rating",
        "log",
        "Yelp (sigir16-eals yelp.rating), LOO by time; BD's notebook keeps users with > 10 ratings. "
        "Not in shared/data (README section 4)",
        format="ncf-rating",
        defaults={"min_user_interactions": 11},
    )
)

#: datasets shipped with the package (``recdistill/data/files``, see its README): name ->
#: (file under that folder, sha256 of its bytes). Read when the data directory lacks the file.
PACKAGED: dict[str, tuple[str, str]] = {
    "citeulike-dcd": (
        "citeulike-t/derrd_loo_split.tsv.gz",
        "b5ade64277fe9c9fa30324fcc55a42725fab9575a4bde7be6ddafea2d2d9baca",
    ),
}
PACKAGED_DIR = Path(__file__).resolve().parent / "files"


def packaged_file(name: str) -> Path | None:
    """The packaged copy of dataset ``name``'s file, or None if the package ships none."""
    if name not in PACKAGED:
        return None
    path = PACKAGED_DIR / PACKAGED[name][0]
    return path if path.is_file() else None


def _missing_hint(name: str) -> str:
    if name in dl.SOURCES:
        return f"run `recdistill data download {name}`"
    if name in dl.NO_SOURCE:
        return f"it has no public download: it was {dl.NO_SOURCE[name]}; put that file there"
    return "put the file there"


LOG_OPTIONS = {
    "seed": 0,
    "min_user_interactions": 1,
    "k_core": None,
    "n_candidates": N_CANDIDATES,
    "min_rating": None,
    "split": "loo",
    "ratios": (8, 1, 1),
    "order": None,
}
PUBLISHED_OPTIONS = {"seed": 0, "n_candidates": N_CANDIDATES}
READ_OPTIONS = ("format", "user_col", "item_col", "time_col", "sep")
CONTROL_OPTIONS = ("cache", "cache_dir", "download")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` if given, else ``RECDISTILL_DATA``, else ``~/.cache/recdistill/data``."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("RECDISTILL_DATA")
    return Path(env) if env else Path.home() / ".cache" / "recdistill" / "data"


def find_file(data_dir: Path, rel: str) -> Path | None:
    """``data_dir/rel`` as stored: plain, ``.gz`` or ``.xz``."""
    for suffix in ("", *COMPRESSED_SUFFIXES):
        p = data_dir / (rel + suffix)
        if p.is_file():
            return p
    return None


def _settings(defaults: dict[str, Any], given: dict[str, Any], allowed_extra: tuple[str, ...], what: str):
    unknown = sorted(set(given) - set(defaults) - set(allowed_extra))
    if unknown:
        valid = ", ".join(sorted([*defaults, *allowed_extra, *CONTROL_OPTIONS]))
        raise RecdistillError(f"option(s) {', '.join(unknown)} do not apply to {what}; valid: {valid}")
    out = dict(defaults)
    out.update({k: v for k, v in given.items() if k in defaults})
    return out


def load_dataset(
    name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None, **options: Any
) -> Dataset:
    """Load a named dataset (see ``DATASETS.names()``) or a file, prepared and split.

    Options: ``seed`` (0), ``n_candidates`` (499), ``min_user_interactions``, ``k_core``,
    ``min_rating``, ``split`` (``loo`` | ``ratio``), ``ratios`` (8, 1, 1), ``order`` (``random`` |
    ``time`` | ``file``) (logs only; named datasets supply the papers' defaults), reader options
    ``format``, ``user_col``, ``item_col``, ``time_col``, ``sep`` (files only), ``cache`` (True),
    ``cache_dir`` (``RECDISTILL_CACHE`` or ``~/.cache/recdistill``), ``download`` (False).
    """
    use_cache = bool(options.pop("cache", True))
    cache_dir = Path(options.pop("cache_dir", None) or default_cache_dir())
    want_download = bool(options.pop("download", False))
    name = str(name_or_path)
    packaged = False  # read from the package's own copy (PACKAGED)
    if name in DATASETS:
        spec = DATASETS.get(name)
        ddir = resolve_data_dir(data_dir)
        path = find_file(ddir, spec.file)
        if path is None and want_download and name in dl.SOURCES:
            dl.download(name, ddir)
            path = find_file(ddir, spec.file)
        packaged = path is None and packaged_file(name) is not None
        if packaged:
            path = packaged_file(name)
        if path is None:
            raise MissingFileError(
                f"{name}: {ddir / spec.file}[.gz|.xz] not found (data dir from --data-dir, "
                f"RECDISTILL_DATA or the default); {_missing_hint(name)}"
            )
        if spec.kind == "published":
            settings = _settings(PUBLISHED_OPTIONS, options, (), f"the published split {name!r}")
        else:
            settings = _settings({**LOG_OPTIONS, **spec.defaults}, options, (), f"dataset {name!r}")
        kind, fmt, read_opts = f"named:{name}", spec.format, {}
    else:
        path = Path(name_or_path)
        if not path.is_file():
            known = ", ".join(DATASETS.names())
            raise UnknownNameError(
                f"unknown dataset {name!r} and no such file; known: {known} (or give a path)"
            )
        read_opts = {k: options[k] for k in READ_OPTIONS if options.get(k) is not None}
        fmt = read_opts.pop("format", None)
        published = fmt == "published" or (
            fmt is None and sniff_format(path) == "table" and is_split_table(path)
        )
        if published:
            settings = _settings(PUBLISHED_OPTIONS, options, READ_OPTIONS, "a published split file")
            spec, fmt = None, "published"
        else:
            settings = _settings(LOG_OPTIONS, options, READ_OPTIONS, f"file {path}")
            spec, fmt = None, fmt or sniff_format(path)
        kind = f"path:{fmt}"
        name = str(path)
    file_hash = sha256_file(path)
    if spec is not None and packaged and file_hash != PACKAGED[name][1]:
        raise RecdistillError(
            f"{name}: the packaged file {path} has sha256 {file_hash}, expected {PACKAGED[name][1]}: "
            "reinstall recdistill"
        )
    key = cache_key(kind, [file_hash], {**settings, **read_opts, "format": fmt})
    cpath = cache_path(cache_dir, Path(name).name, key)
    if use_cache:
        ds = load_cached(cpath)
        if ds is not None:  # the same content may have been cached from another path: say this one
            ds.name = name
            ds.info["source_sha256"] = {str(path): file_hash}
            return ds
    base_info = {"source_sha256": {str(path): file_hash}, "cache_key": key}
    if (spec is not None and spec.kind == "published") or fmt == "published":
        ds = load_published_split(path, name=name, info=base_info, **settings)
    else:
        log = read_interactions(path, format=fmt, **read_opts)
        ds = from_log(log, name=name, info=base_info, **settings)
    if use_cache:
        try:
            save_dataset(ds, cpath)
        except OSError as exc:
            warnings.warn(f"could not write the dataset cache {cpath}: {exc}", stacklevel=2)
    return ds


_DROP_REASONS = {
    "min_user_interactions": "with fewer than {n} interactions",
    "k_core": "outside the {n}-core",
    "no_train_item": "with no training interaction left after the split",
    "min_rating": "with no rating of at least {n}",
}


def dropped_in_words(ds: Dataset) -> str:
    """What preprocessing and the split dropped, in words, e.g. "2 users with fewer than 3
    interactions dropped"; "" when nothing was dropped."""
    info, settings = ds.info, ds.info.get("settings", {})
    parts = []
    for reason, count in (info.get("users_dropped") or {}).items():
        if count:
            what = _DROP_REASONS.get(reason, f"dropped by {reason}").format(n=settings.get(reason))
            parts.append(f"{count:,} user{'s' if count != 1 else ''} {what}")
    if info.get("duplicates_dropped"):
        parts.append(f"{info['duplicates_dropped']:,} duplicate interactions")
    return (", ".join(parts) + " dropped") if parts else ""


def dataset_summary(ds: Dataset) -> str:
    """One line: name, users, items, training interactions, and what was dropped."""
    line = (
        f"dataset {ds.name}: {ds.n_users:,} users, {ds.n_items:,} items, {ds.n_train:,} training interactions"
    )
    if ds.multi_heldout:
        n_valid, n_test = ds.heldout_sets("valid").nnz, ds.heldout_sets("test").nnz
        line += f", {n_valid:,} valid, {n_test:,} test ({ds.info.get('split', 'ratio split')})"
    dropped = dropped_in_words(ds)
    return f"{line}; {dropped}" if dropped else line


def dataset_stats(ds: Dataset) -> dict[str, Any]:
    """Users, items, interactions (distinct pairs: train + valid + test), split sizes, sparsity."""
    n_valid = int(ds.heldout_sets("valid").nnz)
    n_test = int(ds.heldout_sets("test").nnz)
    inter = ds.n_train + n_valid + n_test
    cells = ds.n_users * ds.n_items
    out: dict[str, Any] = {
        "name": ds.name,
        "users": ds.n_users,
        "items": ds.n_items,
        "interactions": inter,
        "train": ds.n_train,
        "valid": n_valid,
        "test": n_test,
        "sparsity": 1.0 - inter / cells if cells else 0.0,
        "candidates_per_user": int(ds.candidates.shape[1]),
    }
    for k in ("duplicates_dropped", "users_dropped", "items_dropped", "split", "seed"):
        if k in ds.info:
            out[k] = ds.info[k]
    return out
