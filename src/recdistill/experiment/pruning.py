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
trials, pruned at the same epochs; a run resumed from its checkpoint first reports the values of
its checkpointed validation history.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recdistill.atomic import read_json
from recdistill.errors import RecdistillError

#: spec name -> Optuna pruner class name (pruners that compare a trial with completed ones)
PRUNERS = {"median": "MedianPruner", "percentile": "PercentilePruner"}
CURVE_FILE = "curve.json"


def _pruner_class(name: str) -> Any:
    import optuna

    return getattr(optuna.pruners, PRUNERS[name])


def check_pruner(value: Any, where: str) -> dict[str, Any] | None:
    """A spec's ``pruner`` (a name, or ``{name, <the Optuna pruner's keyword arguments>}``) ->
    ``{"name": ..., **every setting}`` with Optuna's defaults filled in (so that one pruner is
    spelled one way in a run's key), checked by building the pruner; one-line errors naming
    ``where``."""
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
    params = inspect.signature(_pruner_class(name)).parameters
    out: dict[str, Any] = {"name": name}
    for k, v in spec.items():
        if k == "name":
            continue
        if k not in params:
            known = ", ".join(sorted(params))
            raise RecdistillError(f"{where}.{k}: not a setting of {PRUNERS[name]} ({known})")
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise RecdistillError(f"{where}.{k}: expected a number, got {v!r}")
        if isinstance(params[k].default, int) and not isinstance(params[k].default, bool):
            if float(v) != int(v):
                raise RecdistillError(f"{where}.{k}: expected an integer, got {v!r}")
            v = int(v)
        out[k] = v
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in out]
    if missing:
        raise RecdistillError(f"{where}: {PRUNERS[name]} needs {', '.join(missing)}")
    for k, p in params.items():  # Optuna's defaults, spelled out
        if k not in out and isinstance(p.default, (int, float)) and not isinstance(p.default, bool):
            out[k] = p.default
    try:
        make_pruner(out)
    except (ValueError, TypeError) as exc:
        raise RecdistillError(f"{where}: {exc}") from None
    return out


def make_pruner(spec: dict[str, Any]) -> Any:
    """The Optuna pruner of a checked spec (:func:`check_pruner`)."""
    return _pruner_class(spec["name"])(**{k: v for k, v in spec.items() if k != "name"})


def write_curve(run_dir: Path, metric: str, history: list[tuple[int, dict[str, float]]]) -> None:
    """``curve.json`` of a finished trial: its primary model's validation ``metric`` per epoch
    (``Trainer.valid_history``)."""
    from recdistill.atomic import atomic_json

    values = [[int(e), float(m[metric])] for e, m in history if metric in m]
    atomic_json({"metric": metric, "values": values}, run_dir / CURVE_FILE)


def read_curve(path: Path | None) -> list[list[float]] | None:
    """The ``values`` of a ``curve.json`` (None if there is none or it is unreadable)."""
    if path is None:
        return None
    try:
        return list(read_json(path)["values"])
    except (OSError, KeyError, RecdistillError):
        return None


def trial_pruner(prune: dict[str, Any]) -> Callable[[list[tuple[int, dict[str, float]]]], bool]:
    """The ``Trainer(prune=...)`` callback of one trial: reports the search's metric at every
    validation of the run's history not reported yet (a resumed run: the epochs before the
    interruption first) as Optuna intermediate values, then asks the pruner.

    ``prune``: ``{"pruner": checked spec, "mode": "max"|"min", "metric": name, "history":
    [{"values": [[epoch, value], ...], "value": the trial's validation score, "pruned": bool},
    ...]}`` (the earlier trials, in order).
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
            done = create_trial(state=TrialState.COMPLETE, value=float(h["value"]), intermediate_values=inter)
            study.add_trial(done)
    trial = study.ask()
    metric = str(prune["metric"])
    reported = -1  # the last epoch reported

    def should_prune(history: list[tuple[int, dict[str, float]]]) -> bool:
        nonlocal reported
        for epoch, valid in history:
            if epoch <= reported:
                continue
            if metric not in valid:
                names = ", ".join(valid)
                raise RecdistillError(
                    f"search metric {metric!r} not in the run's validation metrics: {names}"
                )
            trial.report(float(valid[metric]), int(epoch))
            reported = int(epoch)
        return bool(trial.should_prune())

    return should_prune
