"""Optuna pruning of a search's trials (``search.pruner`` in a spec, ``recdistill tune --pruner``).

A trial reports its validation ``metric`` (the search's) after every validation of its run, as
Optuna's intermediate value at step = epoch; Optuna's pruner (``median``: ``MedianPruner``,
``percentile``: ``PercentilePruner``, with their keyword arguments) compares it with the earlier
trials' values at the same step and may stop the run there (``Trainer(prune=...)``): it then
finishes as an early-stopped run (best state so far, test metrics) whose ``metrics.json`` says
``pruned_at``, and is never chosen.

Reproducible by construction: a search with a pruner runs its trials one at a time (as TPE does),
and trial i is pruned against trials 0..i-1 only, whose validation curves (``curve.json`` in each
run folder and its record) are finished and fixed. Those trials' keys are part of trial i's key
(:meth:`recdistill.experiment.plan.Planner.make_task`), so the same search replays to the same
trials, pruned at the same epochs; a run resumed from its checkpoint first reports the values it
had logged before the interruption.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recdistill.errors import RecdistillError

#: spec name -> Optuna pruner class name (pruners that compare a trial with completed ones)
PRUNERS = {"median": "MedianPruner", "percentile": "PercentilePruner"}
CURVE_FILE = "curve.json"


def _pruner_class(name: str) -> Any:
    import optuna

    return getattr(optuna.pruners, PRUNERS[name])


def check_pruner(value: Any, where: str) -> dict[str, Any] | None:
    """A spec's ``pruner`` (a name, or ``{name, <the Optuna pruner's keyword arguments>}``) ->
    ``{"name": ..., **kwargs}``, checked by building the pruner; one-line errors naming ``where``."""
    if value is None:
        return None
    spec = {"name": value} if isinstance(value, str) else value
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise RecdistillError(
            f"{where}: expected a pruner name or {{name: ..., <its settings>}}, got {value!r}"
        )
    name = spec["name"]
    if name not in PRUNERS:
        raise RecdistillError(f"{where}.name: expected {' | '.join(PRUNERS)}, got {name!r}")
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    allowed = set(inspect.signature(_pruner_class(name)).parameters)
    for k, v in kwargs.items():
        if k not in allowed:
            raise RecdistillError(
                f"{where}.{k}: not a setting of {PRUNERS[name]} ({', '.join(sorted(allowed))})"
            )
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise RecdistillError(f"{where}.{k}: expected a number, got {v!r}")
    try:
        make_pruner({"name": name, **kwargs})
    except (ValueError, TypeError) as exc:
        raise RecdistillError(f"{where}: {exc}") from None
    return {"name": name, **kwargs}


def make_pruner(spec: dict[str, Any]) -> Any:
    """The Optuna pruner of a checked spec (:func:`check_pruner`)."""
    return _pruner_class(spec["name"])(**{k: v for k, v in spec.items() if k != "name"})


def curve_from_log(log_path: Path, model: str, metric: str) -> list[list[float]]:
    """``[[epoch, value], ...]``: ``metric`` of ``model`` at every validation in a run's log."""
    out: list[list[float]] = []
    if not log_path.is_file():
        return out
    for line in log_path.read_text().splitlines():
        rec = json.loads(line)
        valid = rec.get("valid", {}).get(model)
        if valid is not None and metric in valid:
            out.append([int(rec["epoch"]), float(valid[metric])])
    return out


def write_curve(run_dir: Path, metric: str) -> None:
    """``curve.json`` of a finished run: its primary model's validation ``metric`` per epoch."""
    from recdistill.atomic import atomic_json

    metrics = json.loads((run_dir / "metrics.json").read_text())
    values = curve_from_log(run_dir / "log.jsonl", metrics["primary"], metric)
    atomic_json({"metric": metric, "values": values}, run_dir / CURVE_FILE)


def read_curve(path: Path | None) -> list[list[float]] | None:
    if path is None:
        return None
    try:
        return list(json.loads(path.read_text())["values"])
    except (OSError, KeyError, json.JSONDecodeError):
        return None


def trial_pruner(prune: dict[str, Any], log_path: Path) -> Callable[[int, str, dict[str, float]], bool]:
    """The ``Trainer(prune=...)`` callback of one trial.

    ``prune``: ``{"pruner": checked spec, "mode": "max"|"min", "metric": name, "history":
    [{"values": [[epoch, value], ...], "value": the trial's validation score, "pruned": bool},
    ...]}`` (the earlier trials, in order). ``log_path``: this run's log, read at the first call
    for the values logged before a resume.
    """
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(
        direction="maximize" if prune["mode"] == "max" else "minimize",
        pruner=make_pruner(prune["pruner"]),
        sampler=optuna.samplers.RandomSampler(seed=0),  # no parameter is sampled here
    )
    for h in prune["history"]:
        inter = {int(e): float(v) for e, v in h["values"]}
        if h["pruned"]:
            study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values=inter))
        else:
            study.add_trial(
                create_trial(state=TrialState.COMPLETE, value=float(h["value"]), intermediate_values=inter)
            )
    trial = study.ask()
    metric = str(prune["metric"])
    started = False

    def should_prune(epoch: int, model: str, valid: dict[str, float]) -> bool:
        nonlocal started
        if not started:  # a resumed run: what it reported before the interruption
            for e, v in curve_from_log(log_path, model, metric):
                if e < epoch:
                    trial.report(v, int(e))
            started = True
        if metric not in valid:
            raise RecdistillError(
                f"search metric {metric!r} not in the run's validation metrics: {', '.join(valid)}"
            )
        trial.report(float(valid[metric]), int(epoch))
        return bool(trial.should_prune())

    return should_prune
