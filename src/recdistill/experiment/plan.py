"""From a spec to tasks: one task per (run, seed) or per search trial, each with its resolved
config and a content address.

A task's key is the SHA-256 of its resolved config (minus settings that cannot change a result:
``data.data_dir``, ``train.progress``, ``train.checkpoint_every``, ``train.eval_batch_size``) and
of the keys of the runs it starts from. The same config is the same run, whichever table asks for
it; a changed config is a new run. A task's folder is ``<root>/<key[:16]>``.

A searched run is first run at its search seed with the parameters Optuna proposes
(:mod:`recdistill.experiment.search`); once every trial has finished, the best on validation is
its config for every seed. Until then its tasks (and those that start from it) are *pending*.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recdistill.atomic import read_json
from recdistill.config import Config, deep_merge, make_config
from recdistill.errors import RecdistillError
from recdistill.experiment.spec import ExperimentSpec, RunSpec, nested

__all__ = ["Planner", "RunBusy", "Task", "VOLATILE_KEYS", "is_locked", "run_key", "run_lock"]

#: settings left out of a run's key: they cannot change its results
VOLATILE_KEYS = (
    ("data", "data_dir"),
    ("train", "progress"),
    ("train", "checkpoint_every"),
    ("train", "eval_batch_size"),
)
#: settings added after runs were first stored, left out of a key at their default value (which
#: is what earlier runs did), so that adding a setting does not make every stored run a new one
NEUTRAL_DEFAULTS: dict[tuple[str, str], Any] = {
    ("train", "report_last"): False,
    ("train", "eval_exclude_valid"): True,
    ("train", "compile"): False,
    ("data", "split"): None,
    ("data", "ratios"): None,
    ("data", "order"): None,
}
#: the device a run trains on: the same experiment on any device (``experiment run --device``),
#: so it reads as this value in every key (the value every key held before this rule: old keys stay)
KEY_DEVICE = "cpu"
#: method parameters added after runs were stored, left out of a key at the value that gives
#: what earlier runs did (issue #33: DCD's candidates, IR-RRD's rows), so those runs keep their keys
NEUTRAL_METHOD_PARAMS: dict[str, Any] = {"candidates": "all", "n_candidates": 500, "item_rows": "positives"}
KEY_VERSION = 1
#: the small files of a finished run that its record keeps (no model files, no checkpoint)
RECORD_FILES = ("metrics.json", "config.yaml", "task.json", "distill.json", "curve.json")
RECORD_GLOBS = ("discrepancy_*.json", "rank_difference_*.json")


def run_key(config: dict[str, Any], deps: dict[str, str], method_params: dict[str, Any] | None = None) -> str:
    """The content address of a run: its config without :data:`VOLATILE_KEYS` and with
    ``train.device`` read as :data:`KEY_DEVICE` (a run trained on a GPU is the run of the same
    config on the CPU: its ``config.yaml`` says where it ran), ``deps`` (role -> the key of the run
    it starts from, or ``path:<file>``) and the method's parameters with their defaults filled in
    (``method_params``, so that a changed default is a new run)."""
    cfg = json.loads(json.dumps(config))
    for section, key in VOLATILE_KEYS:
        cfg.get(section, {}).pop(key, None)
    if "device" in cfg.get("train", {}):
        cfg["train"]["device"] = KEY_DEVICE
    for (section, key), neutral in NEUTRAL_DEFAULTS.items():
        if cfg.get(section, {}).get(key, neutral) == neutral:
            cfg.get(section, {}).pop(key, None)
    cfg.get("distill", {}).pop("teacher", None)  # a dependency: stands in ``deps``
    if method_params is not None:
        params = {
            k: v
            for k, v in method_params.items()
            if not (k in NEUTRAL_METHOD_PARAMS and v == NEUTRAL_METHOD_PARAMS[k])
        }
        cfg["distill"]["params"] = json.loads(json.dumps(params))
    blob = json.dumps({"v": KEY_VERSION, "config": cfg, "deps": deps}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class RunBusy(RecdistillError):
    """The run is being trained by another process (its lock is held)."""


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.lock`` (an exclusive ``flock``) while a run trains, so that two
    commands never train the same run; the lock goes with the process that held it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(f"{run_dir} is being trained by another process") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_locked(run_dir: Path) -> bool:
    """Whether another process holds ``run_dir``'s lock (:func:`run_lock`)."""
    path = run_dir / ".lock"
    if not path.is_file():
        return False
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def untie(params: dict[str, Any]) -> dict[str, Any]:
    """Search params with tied keys (``"a.x,a.y": v``: one value for both) spelled out."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        for k in str(key).split(","):
            out[k.strip()] = value
    return out


@dataclass(frozen=True)
class Task:
    """One run to train: spec run ``run`` at ``seed``; ``trial`` (a search trial number) with its
    ``params`` (dotted keys); ``deps``: role ("teacher"/"student") -> Task or a path; ``prune``:
    a pruned search's context for this trial (:func:`recdistill.experiment.pruning.trial_pruner`)."""

    run: str
    seed: int
    config: dict[str, Any]
    key: str
    method: str = ""
    deps: dict[str, Any] = field(default_factory=dict)
    trial: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    prune: dict[str, Any] | None = None

    def directory(self, root: Path) -> Path:
        return root / self.key[:16]

    @property
    def label(self) -> str:
        trial = f" trial {self.trial}" if self.trial is not None else ""
        return f"{self.run} seed {self.seed}{trial}"

    def dependencies(self) -> list[Task]:
        return [d for d in self.deps.values() if isinstance(d, Task)]


class Planner:
    """Resolves the spec's runs into tasks against the run folders under ``root``."""

    def __init__(
        self,
        spec: ExperimentSpec,
        root: Path,
        seeds: tuple[int, ...] | None = None,
        overrides: dict[str, Any] | None = None,
        records: Path | None = None,
    ):
        """``records``: a folder of finished runs' records (``<key16>/metrics.json`` ...,
        written by :meth:`write_record`, e.g. committed with the results) that count as finished
        where the run's own folder is missing (a run trained on another machine)."""
        self.spec, self.root = spec, Path(root)
        self.records = Path(records) if records is not None else None
        self.seeds = tuple(seeds) if seeds else spec.seeds
        self.overrides = overrides or {}  # nested, over every run's settings (e.g. the device)
        self.search_cache: dict[str, Any] = {}

    def refresh(self) -> None:
        """Forget the searches' states (after runs have finished)."""
        self.search_cache.clear()

    # ---- seeds ----
    def seeds_of(self, run: str) -> tuple[int, ...]:
        """The seeds a run is trained with: its own pinned ones, else the experiment's."""
        pinned = self.spec.runs[run].seeds
        return pinned if pinned else self.seeds

    def dep_seed(self, run: str, seed: int) -> int:
        """The seed of ``run`` that a dependent run at ``seed`` starts from."""
        seeds = self.seeds_of(run)
        return seed if seed in seeds else seeds[0]

    def search_seed(self, run: str) -> int:
        search = self.spec.runs[run].search
        assert search is not None
        if search.seed is not None:
            return search.seed
        # the spec's first seed, whatever --seeds selects: a search run with --seeds 3 reuses
        # the search, it does not start another at seed 3
        return (self.spec.runs[run].seeds or self.spec.seeds)[0]

    # ---- configs ----
    def config(self, run: RunSpec, seed: int, params: dict[str, Any]) -> Config:
        """The run's config at ``seed`` with search ``params``: the run's (or the spec's) config
        file <- base <- the run's ``set`` <- params <- the planner's overrides <- seed, method."""
        over = deep_merge(self.spec.base, nested(run.set, f"runs.{run.name}.set"))
        over = deep_merge(over, nested(untie(params), f"runs.{run.name}.search"))
        over = deep_merge(over, self.overrides)
        over = deep_merge(
            over, {"train": {"seed": seed + run.seed_offset}, "distill": {"method": run.method}}
        )
        try:
            return make_config(run.config_file or self.spec.config_file, over)
        except RecdistillError as exc:
            where = self.spec.path or "spec"
            raise RecdistillError(f"{where}: runs.{run.name}: {exc}") from None

    def check(self) -> None:
        """Build every run's config once (each search's first point), so that a bad key or value
        is reported before anything runs."""
        for run in self.spec.runs.values():
            params = {}
            for source in (self.spec.runs.get(run.inherit or ""), run):
                if source is not None and source.search is not None:
                    params.update(
                        {
                            k: (v[0] if isinstance(v, list) else v["low"])
                            for k, v in source.search.space.items()
                        }
                    )
            cfg = self.config(run, self.seeds_of(run.name)[0], params)
            if run.search is not None:  # what a trial reports after each validation, checked now
                metric = run.search.metric or cfg.resolved_monitor()
                names = [f"{m}@{k}" for k in cfg.train.ks for m in ("H", "N", "M")]
                if metric not in names:
                    raise RecdistillError(
                        f"{self.spec.path or 'spec'}: runs.{run.name}.search.metric: {metric!r} is not "
                        f"a validation metric of the run (train.ks {list(cfg.train.ks)}: {', '.join(names)})"
                    )
            if run.method:
                from recdistill.runs import method_config

                try:
                    method_config(cfg)
                except RecdistillError as exc:
                    raise RecdistillError(f"{self.spec.path or 'spec'}: runs.{run.name}: {exc}") from None

    # ---- tasks ----
    def make_task(
        self,
        run_name: str,
        seed: int,
        params: dict[str, Any],
        trial: int | None = None,
        prune: dict[str, Any] | None = None,
    ) -> Task | None:
        """The task of ``run_name`` at ``seed`` with ``params``; None while a run it starts from
        is still pending (an unfinished search). ``prune``: a pruned search's trial context
        (pruner, mode, metric, ``after``: the earlier trials' keys, ``history``: their curves);
        all but the curves (which those keys fix) are part of the key."""
        run = self.spec.runs[run_name]
        if run.inherit is not None:
            from recdistill.experiment.search import search_state

            inherited = search_state(self, run.inherit).chosen
            if inherited is None:
                return None
            params = {**inherited, **params}
        deps: dict[str, Any] = {}
        dep_keys: dict[str, str] = {}
        for role, ref in run.sources.items():
            if ref in self.spec.runs:
                dep = self.task(ref, self.dep_seed(ref, seed))
                if dep is None:
                    return None
                deps[role], dep_keys[role] = dep, dep.key
            else:
                path = str(Path(ref).resolve())
                deps[role], dep_keys[role] = path, f"path:{path}"
        config = self.config(run, seed, params)
        method_params = None
        if run.method:
            from recdistill.runs import method_config

            cls, method_conf = method_config(config)
            method_params = cls.key_params(method_conf)
        if prune is not None:
            fixed = {k: prune[k] for k in ("pruner", "mode", "metric", "after")}
            dep_keys["prune"] = json.dumps(fixed, sort_keys=True)
        cfg = config.to_dict()
        key = run_key(cfg, dep_keys, method_params)
        return Task(run_name, seed, cfg, key, run.method, deps, trial, dict(params), prune)

    def task(self, run_name: str, seed: int) -> Task | None:
        """The final task of ``run_name`` at ``seed`` (a searched run: with its chosen params;
        None until its search has finished)."""
        run = self.spec.runs[run_name]
        params: dict[str, Any] = {}
        if run.search is not None:
            from recdistill.experiment.search import search_state

            state = search_state(self, run_name)
            if state.chosen is None or state.best_trial is None:
                return None
            if state.pruner is not None and seed == self.search_seed(run_name):
                return state.tasks[state.best_trial]  # never pruned: the run itself
            params = state.chosen
        return self.make_task(run_name, seed, params)

    def wanted(self, only: tuple[str, ...] | None = None) -> list[str]:
        """The runs to train: ``only`` (and what they start from), else all."""
        if not only:
            return list(self.spec.runs)
        unknown = [n for n in only if n not in self.spec.runs]
        if unknown:
            raise RecdistillError(f"--only {unknown[0]!r}: no such run; runs: {', '.join(self.spec.runs)}")
        out: list[str] = []

        def add(name: str) -> None:
            if name in out:
                return
            run = self.spec.runs[name]
            for ref in run.refs():
                if ref in self.spec.runs:
                    add(ref)
            out.append(name)

        for n in only:
            add(n)
        return out

    def tasks(self, only: tuple[str, ...] | None = None) -> tuple[list[Task], list[str]]:
        """Every task known now (search trials included, dependencies first) and the names of
        the runs still pending on a search."""
        from recdistill.experiment.search import search_state

        out: dict[str, Task] = {}
        pending: list[str] = []

        def add(t: Task) -> None:
            for d in t.dependencies():
                add(d)
            out.setdefault(t.key, t)

        for name in self.wanted(only):
            inherit = self.spec.runs[name].inherit
            if inherit is not None and search_state(self, inherit).chosen is None:
                pending.append(name)
                continue
            if self.spec.runs[name].search is not None:
                state = search_state(self, name)
                for t in state.tasks:
                    add(t)
                if state.chosen is None:
                    pending.append(name)
                    continue
            for seed in self.seeds_of(name):
                t = self.task(name, seed)
                if t is None:
                    pending.append(name)
                    break
                add(t)
        return list(out.values()), pending

    # ---- results ----
    def record_dir(self, task: Task) -> Path | None:
        """The folder of the task's record (None without a records folder)."""
        return None if self.records is None else task.directory(self.records)

    def result_file(self, task: Task, name: str) -> Path | None:
        """``name`` from the task's run folder if the run finished here, else from its record;
        None if neither has it (a run finished here never mixes in its record's files)."""
        local = task.directory(self.root)
        if (local / "metrics.json").is_file():
            return local / name if (local / name).is_file() else None
        rec = self.record_dir(task)
        return rec / name if rec is not None and (rec / name).is_file() else None

    def write_record(self, task: Task) -> bool:
        """Copy the small files of a finished run into its record (atomic; False if the run
        is not finished here)."""
        src, dst = task.directory(self.root), self.record_dir(task)
        if dst is None or not (src / "metrics.json").is_file():
            return False
        from recdistill.atomic import atomic_bytes

        names = [n for n in RECORD_FILES if (src / n).is_file()]
        names += sorted({p.name for g in RECORD_GLOBS for p in src.glob(g)})
        for n in names:
            atomic_bytes((src / n).read_bytes(), dst / n)
        return True

    def metrics(self, task: Task) -> dict[str, Any] | None:
        p = self.result_file(task, "metrics.json")
        if p is None:
            return None
        try:
            return read_json(p)
        except (OSError, RecdistillError):
            return None

    def trained_on(self, task: Task) -> str:
        """The device that trained this run (its task.json's ``train.device``; "unknown" when
        not recorded): not part of the run's key (:func:`run_key`), so the report says it."""
        p = self.result_file(task, "task.json")
        try:
            device = read_json(p)["config"]["train"]["device"] if p is not None else None
        except (OSError, RecdistillError, KeyError, TypeError):
            device = None
        return str(device) if device else "unknown"

    def trained_at(self, task: Task) -> list[str]:
        """The commits of the code that trained this run (its task.json's ``commits``: more than
        one when it was resumed under another commit); empty when unknown."""
        p = self.result_file(task, "task.json")
        if p is None:
            return []
        try:
            commits = read_json(p).get("commits", [])
        except (OSError, RecdistillError):
            return []
        return [str(c) for c in commits] if isinstance(commits, list) else []

    def status(self, task: Task) -> str:
        """done (metrics.json) | running (another process holds its lock) | partial (a
        checkpoint to resume) | failed | recorded (finished elsewhere: only its record is here;
        trained again only if a run that starts from it needs its model) | todo."""
        d = task.directory(self.root)
        if (d / "metrics.json").is_file():
            return "done"
        if is_locked(d):
            return "running"
        rec = self.record_dir(task)
        if rec is not None and (rec / "metrics.json").is_file():  # finished elsewhere
            return "recorded"
        if (d / "checkpoint.pt").is_file():
            return "partial"
        if (d / "error.txt").is_file():
            return "failed"
        return "todo"
