"""Typed run configuration: frozen dataclasses per section, merged as
defaults <- YAML file <- command-line flags <- ``--set section.key=value``.

Unknown keys and values of the wrong type raise ``ValueError`` naming the key. Other modules add
their own sections' fields without touching this file: a distiller reads ``config.distill.method``
and validates ``config.distill.params`` with its own dataclass via :func:`parse_dataclass`::

    @dataclass(frozen=True)
    class RRDParams:
        lambda_rrd: float = 1e-3
        n_interesting: int = 40

    params = parse_dataclass(RRDParams, config.distill.params, where="distill.params")
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from recdistill.errors import MissingFileError, RecdistillError

T = TypeVar("T")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass(frozen=True)
class DataConfig:
    """name: a dataset known to ``recdistill.data.load_dataset`` (e.g. citeulike-bd,
    citeulike-dcd, ml-100k) or a file (CSV/TSV/Parquet, MovieLens, RecBole ``.inter`` ...).
    data_dir: raw data folder (None: ``RECDISTILL_DATA``).

    Options of ``load_dataset`` (None: the loader's default, or the named dataset's):
    format, user_col, item_col, time_col, sep (files); min_user_interactions, k_core,
    min_rating (logs); n_candidates (the sampled protocol's candidates per user, 499; lower it for
    a catalogue under 500 items); seed (the split's and candidates' seed, 0); split (``loo`` or
    ``ratio``), ratios (train, valid, test per user, 8:1:1), order (``random``, ``time`` or
    ``file``) of a ratio split (logs).
    """

    name: str = "citeulike-bd"
    data_dir: str | None = None
    format: str | None = None
    user_col: str | None = None
    item_col: str | None = None
    time_col: str | None = None
    sep: str | None = None
    min_user_interactions: int | None = None
    k_core: int | None = None
    min_rating: float | None = None
    n_candidates: int | None = None
    seed: int | None = None
    split: str | None = None
    ratios: tuple[int, ...] | None = None
    order: str | None = None

    #: the fields passed to ``load_dataset`` when set
    LOADER_OPTIONS = (
        "format",
        "user_col",
        "item_col",
        "time_col",
        "sep",
        "min_user_interactions",
        "k_core",
        "min_rating",
        "n_candidates",
        "seed",
        "split",
        "ratios",
        "order",
    )

    def __post_init__(self) -> None:
        if self.split not in (None, "loo", "ratio"):
            raise RecdistillError(f"data.split: expected loo|ratio|null, got {self.split!r}")
        if self.order not in (None, "random", "time", "file"):
            raise RecdistillError(f"data.order: expected random|time|file|null, got {self.order!r}")
        if self.ratios is not None and len(self.ratios) == 3 and self.ratios[1] == 0:
            raise RecdistillError(
                f"data.ratios: {list(self.ratios)} holds no validation items; training selects its model "
                "on them: give the validation part a share (e.g. 8,1,1)"
            )
        if self.ratios is not None and (len(self.ratios) != 3 or self.ratios[0] < 1 or min(self.ratios) < 0):
            raise RecdistillError(
                f"data.ratios: expected three whole numbers (train >= 1), got {list(self.ratios)}"
            )
        for key in ("min_user_interactions", "k_core", "n_candidates"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise RecdistillError(f"data.{key}: expected a positive integer or null, got {v}")
        if self.sep is not None and len(self.sep) != 1:
            raise RecdistillError(f"data.sep: expected one character, got {self.sep!r}")

    def loader_options(self) -> dict[str, Any]:
        """The options set here, for ``recdistill.data.load_dataset``."""
        return {k: getattr(self, k) for k in self.LOADER_OPTIONS if getattr(self, k) is not None}


@dataclass(frozen=True)
class ModelConfig:
    """name: a registered model (bpr | neumf | cdae | lightgcn). size: teacher | student preset
    (see ``recdistill.models``); dim overrides it. params: extra constructor keywords (e.g.
    ``{dropout: 0.5}`` for CDAE)."""

    name: str = "bpr"
    size: str | None = "teacher"
    dim: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.size not in (None, "teacher", "student"):
            raise RecdistillError(f"model.size: expected teacher|student|null, got {self.size!r}")
        if self.dim is not None and self.dim < 1:
            raise RecdistillError(f"model.dim: expected a positive integer or null, got {self.dim}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and model selection.

    lr, weight_decay: Adam and its L2 term. optimizer: "adam" (dense, the papers') or
    "sparse_adam" (row-sparse embedding updates; see ``recdistill.train.optim``).
    n_neg: negatives per row (None: the model's default; CDAE: per observed item).
    eval_every: validate every N epochs; patience: stop after this many validations without
    improving ``monitor`` (a metric name like "H@50", on ``eval_protocol``; "auto": the dataset's
    protocol, sampled with H@5 or full with H@50).
    ks: cut-offs reported. seed: fixes initialisation, sampling and batch order.
    checkpoint_every: write ``checkpoint.pt`` every N epochs (and at the end).
    report_last: also evaluate every model's last-epoch state (``metrics.json``: ``models.<name>.
    last``), the BD notebook's protocol (a fixed schedule, the last epoch's test score), next to
    the default best-on-validation state.
    eval_exclude_valid: on a ratio split, leave the validation items out of the test ranking
    (False: they compete with the test items, as RCE-KD's code ranks).
    compile: compile each model's base loss (forward and backward) with ``torch.compile``
    (dynamic shapes, one compilation per model per process; cached on disk by PyTorch, so
    later processes reuse it): on a CPU about 1.5x the BPR triples per second at a batch of
    8192 and no gain at 1024, where dense Adam's step dominates (``results/bench_anchor.txt``),
    after a compilation (3-5 s from PyTorch's cache, longer with an empty one). Needs a C++
    compiler (CPU) or Triton (GPU). The same loss and gradient up to float rounding, so it is
    part of a run's identity; bitwise reproducible on a CPU with any number of threads
    (``train.trainer.compiled_determinism``).
    Values are checked here, so a config from any path (YAML, ``--set``, Python) is validated.
    """

    epochs: int = 200
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    n_neg: int | None = None
    eval_every: int = 1
    patience: int = 10
    monitor: str = "auto"
    eval_protocol: str = "auto"
    ks: tuple[int, ...] = (5, 10, 20, 50, 100)
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    eval_batch_size: int = 512
    checkpoint_every: int = 1
    report_last: bool = False
    eval_exclude_valid: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        if self.eval_protocol not in ("auto", "full", "sampled"):
            raise RecdistillError(
                f"train.eval_protocol: expected auto|full|sampled, got {self.eval_protocol!r}"
            )
        for key in ("epochs", "batch_size", "eval_every", "eval_batch_size", "checkpoint_every", "patience"):
            if getattr(self, key) < 1:
                raise RecdistillError(f"train.{key}: expected a positive integer, got {getattr(self, key)}")
        if self.n_neg is not None and self.n_neg < 1:
            raise RecdistillError(f"train.n_neg: expected a positive integer or null, got {self.n_neg}")
        if self.optimizer not in ("adam", "sparse_adam"):
            raise RecdistillError(f"train.optimizer: expected adam|sparse_adam, got {self.optimizer!r}")
        if not self.lr > 0:
            raise RecdistillError(f"train.lr: expected a number > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise RecdistillError(f"train.weight_decay: expected a number >= 0, got {self.weight_decay}")
        if not self.ks or any(k < 1 for k in self.ks):
            raise RecdistillError(f"train.ks: expected positive cut-offs, got {list(self.ks)}")


@dataclass(frozen=True)
class DistillConfig:
    """method: a registered distiller name ("" = none). params: its fields, validated by the
    method's own dataclass (``parse_dataclass``). teacher: the teacher (a run directory, a score
    or ranked-list file), or for a method with several roles a mapping role -> source (e.g.
    ``{teacher_a: runs/a, teacher_b: runs/b}``; a method that trains a model may start it from
    a run given for its role)."""

    method: str = ""
    teacher: str | dict[str, str] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.teacher, dict):
            for role, source in self.teacher.items():
                if not isinstance(role, str) or not isinstance(source, str) or not role or not source:
                    raise RecdistillError(
                        f"distill.teacher.{role}: expected role: source (a run directory or a file), "
                        f"got {role!r}: {source!r}"
                    )

    def sources(self) -> dict[str, str]:
        """``teacher`` as role -> source (a single source is the role ``teacher``)."""
        if self.teacher is None:
            return {}
        if isinstance(self.teacher, str):
            return {"teacher": self.teacher}
        return dict(self.teacher)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def resolved_protocol(self) -> str:
        """``train.eval_protocol``, or with "auto" the protocol of the dataset's description."""
        if self.train.eval_protocol != "auto":
            return self.train.eval_protocol
        from recdistill.data.catalog import dataset_protocol

        return dataset_protocol(self.data.name)

    def resolved_monitor(self) -> str:
        """``train.monitor``, or with "auto": H@5 (sampled), R@20 (a ratio split), else H@50."""
        if self.train.monitor != "auto":
            return self.train.monitor
        if self.resolved_protocol() == "sampled":
            return "H@5"
        from recdistill.data.catalog import dataset_split

        return "R@20" if (self.data.split or dataset_split(self.data.name)) == "ratio" else "H@50"


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the type hint ``tp`` (with int -> float widening)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ValueError:
                pass
        raise RecdistillError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise RecdistillError(f"{where}: expected a mapping, got {value!r}")
        return parse_dataclass(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise RecdistillError(f"{where}: expected a list, got {value!r}")
        (elem, _ell) = typing.get_args(tp)
        return tuple(_coerce(v, elem, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise RecdistillError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):  # YAML 1.1 reads 1e-3 as str
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"{where}: unsupported config type {tp!r}")
    raise RecdistillError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def parse_dataclass(cls: type[T], mapping: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``mapping``: unknown keys and wrong types -> ``ValueError``."""
    if not isinstance(mapping, dict):
        raise RecdistillError(f"{where or cls.__name__}: expected a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in mapping.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise RecdistillError(f"unknown config key {path!r}; known: {', '.join(sorted(names))}")
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base`` section by section (a ``params`` mapping: one level)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "params":
            out[k] = deep_merge(out[k], v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):  # params: merge one level
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def parse_set(item: str) -> dict[str, Any]:
    """``"train.lr=1e-3"`` -> ``{"train": {"lr": 0.001}}`` (value parsed as YAML)."""
    if "=" not in item:
        raise RecdistillError(f"--set {item!r}: expected key=value, e.g. train.lr=0.001")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise RecdistillError(f"--set {item!r}: bad key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise RecdistillError(f"--set {item!r}: cannot parse value {raw!r}: {exc}") from None
    if isinstance(value, str) and raw.strip().lower() in ("none", "null", "~"):
        value = None
    out: dict[str, Any] = {parts[-1]: value}
    for p in reversed(parts[:-1]):
        out = {p: out}
    return out


def load_yaml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A YAML file's mapping ({} if empty); a missing file, bad YAML (with its line) or a
    top level that is not a mapping is one line."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what} not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" line {line + 1}" if line is not None else ""
        raise RecdistillError(f"{path}{at}: invalid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecdistillError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def make_config(
    file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    sets: list[str] | tuple[str, ...] = (),
) -> Config:
    """defaults <- YAML ``file`` <- ``overrides`` (nested dict) <- ``sets`` ("a.b=value")."""
    merged: dict[str, Any] = {}
    if file is not None:
        merged = deep_merge(merged, load_yaml(file))
    if overrides:
        merged = deep_merge(merged, overrides)
    for item in sets:
        merged = deep_merge(merged, parse_set(item))
    return parse_dataclass(Config, merged)


# ---- command-line flags shared by every training command (train, distill ...) ----

#: flag dest -> (section, key)
FLAG_KEYS: dict[str, tuple[str, str]] = {
    "dataset": ("data", "name"),
    "data_dir": ("data", "data_dir"),
    "user_col": ("data", "user_col"),
    "item_col": ("data", "item_col"),
    "time_col": ("data", "time_col"),
    "sep": ("data", "sep"),
    "min_user_interactions": ("data", "min_user_interactions"),
    "k_core": ("data", "k_core"),
    "n_candidates": ("data", "n_candidates"),
    "model": ("model", "name"),
    "size": ("model", "size"),
    "dim": ("model", "dim"),
    "epochs": ("train", "epochs"),
    "batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"),
    "seed": ("train", "seed"),
    "device": ("train", "device"),
}


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """Add the flags shared by every training command; read them back with ``config_from_args``."""
    g = parser.add_argument_group("training")
    g.add_argument("--dataset", help="dataset name (default citeulike-bd)")
    g.add_argument("--data-dir", help="raw data folder (default: $RECDISTILL_DATA)")
    d = parser.add_argument_group("your own data (--dataset FILE; also data.* keys)")
    d.add_argument("--user-col", help="user column of a CSV/TSV/Parquet file")
    d.add_argument("--item-col", help="item column")
    d.add_argument("--time-col", help="time column (leave-one-out by time; else at random)")
    d.add_argument("--sep", help="field separator (default: ',' for .csv, else tab)")
    d.add_argument("--min-user-interactions", type=int, help="drop users with fewer interactions")
    d.add_argument("--k-core", type=int, help="k-core filter (users and items)")
    d.add_argument("--n-candidates", type=int, help="sampled-protocol candidates per user (default 499)")
    g.add_argument("--model", help="bpr | neumf | cdae | lightgcn")
    g.add_argument("--size", choices=["teacher", "student"], help="size preset")
    g.add_argument("--dim", type=int, help="explicit embedding/hidden size (overrides --size)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--seed", type=int)
    g.add_argument("--device", help="cpu | cuda | cuda:N")
    g.add_argument("--out", help="run directory for the model, config, log and metrics")
    g.add_argument("--config", help="YAML config file (sections data, model, train, distill)")
    g.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=1e-3"
    )
    g.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    g.add_argument(
        "--fresh", action="store_true", help="replace a finished run in --out (staged: swapped in on success)"
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_out_args(args: argparse.Namespace) -> str:
    """``--out`` (required) and ``--resume`` (needs the run's ``checkpoint.pt``) -> the out path."""
    if not getattr(args, "out", None):
        raise RecdistillError("--out is required: the run directory to write")
    if getattr(args, "resume", False) and not (Path(args.out) / "checkpoint.pt").is_file():
        raise RecdistillError(
            f"--resume: {args.out} has no checkpoint.pt (nothing to resume); run without --resume"
        )
    if getattr(args, "resume", False) and getattr(args, "fresh", False):
        raise RecdistillError("--resume and --fresh contradict each other: give one")
    return str(args.out)


def config_from_args(args: argparse.Namespace) -> Config:
    """The ``Config`` from ``--config``, the shared flags and ``--set`` (in that order)."""
    overrides: dict[str, Any] = {}
    for dest, (section, key) in FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    if getattr(args, "dim", None) is not None and getattr(args, "size", None) is None:
        overrides.setdefault("model", {})["size"] = None
    if getattr(args, "no_progress", False):
        overrides.setdefault("train", {})["progress"] = False
    return make_config(getattr(args, "config", None), overrides, getattr(args, "set", []) or [])
