"""Choosing a run's settings on the validation split with Optuna.

A search is an Optuna study (``GridSampler``, ``TPESampler`` or ``RandomSampler``, seeded) driven
through ``ask`` / ``tell``; each trial is an ordinary content-addressed run at the search seed, so
the run folders are the study's storage: replaying the study from the start proposes the same
parameters (same seed, same earlier values) and finds the finished trials. Grid and random
trials are all proposed at once (their values do not steer the sampler) and may run in parallel;
TPE proposes one trial at a time, after the earlier ones have finished and been told to it
(grid and random trials are never told: they do not need it). With a ``pruner``
(:mod:`.pruning`) every sampler runs one trial at a time, and each trial may be stopped early
against the earlier ones (TPE is told it was pruned). The best unpruned trial's validation
score (the spec's ``metric`` of the run's primary model, on the run's protocol) chooses the
parameters every seed then runs with; ties go to the earlier trial.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from recdistill.errors import RecdistillError
from recdistill.experiment.pruning import CURVE_FILE, read_curve

__all__ = ["SearchState", "search_state", "validation_score"]


@dataclass
class SearchState:
    """The trials proposed so far (tasks, their params and validation scores, None if not
    finished), and the chosen params once every trial has a score."""

    run: str
    sampler: str
    budget: int
    metric: str
    tasks: list[Any] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    chosen: dict[str, Any] | None = None
    best_trial: int | None = None
    pruner: dict[str, Any] | None = None
    #: per trial: the epoch its pruner stopped it at (None: not pruned or not finished)
    pruned_at: list[int | None] = field(default_factory=list)
    #: per trial: its training seconds and epochs (None: not finished)
    seconds: list[float | None] = field(default_factory=list)
    epochs: list[int | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "sampler": self.sampler,
            "budget": self.budget,
            "metric": f"valid {self.metric}",
            "pruner": self.pruner,
            "trials": [
                {
                    "trial": t.trial,
                    "params": t.params,
                    "valid": s,
                    "key": t.key,
                    "pruned_at": p,
                    "epochs": ep,
                    "seconds": sec,
                }
                for t, s, p, ep, sec in zip(
                    self.tasks, self.scores, self.pruned_at, self.epochs, self.seconds
                )
            ],
            "chosen": self.chosen,
            "best_trial": self.best_trial,
        }


def validation_score(metrics: dict[str, Any], metric: str | None) -> float:
    """The validation ``metric`` (default: the run's monitor) of the run's primary model on the
    run's protocol, from its ``metrics.json``."""
    model = metrics["models"][metrics.get("primary", "model")]
    name = metric or metrics["monitor"]
    valid = model["valid"][metrics["protocol"]]
    if name not in valid:
        raise RecdistillError(
            f"search metric {name!r} not in the run's validation metrics: {', '.join(valid)}"
        )
    return float(valid[name])


def _curve(planner: Any, task: Any) -> list[list[float]]:
    """A finished trial's validation curve (its ``curve.json``, in its run folder or record)."""
    curve = read_curve(planner.result_file(task, CURVE_FILE))
    if curve is None:
        raise RecdistillError(
            f"{task.label} ({task.key[:16]}) finished without {CURVE_FILE}: the later trials of its "
            "pruned search cannot be compared with it; train it again (delete its run folder)"
        )
    return curve


def _distributions(space: dict[str, Any]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    out: dict[str, Any] = {}
    for key, values in space.items():
        if isinstance(values, list):
            out[key] = CategoricalDistribution(values)
        else:
            out[key] = FloatDistribution(
                float(values["low"]), float(values["high"]), log=bool(values.get("log"))
            )
    return out


def search_state(planner: Any, run_name: str) -> SearchState:
    """Replay the search of ``run_name`` against the finished runs (see the module doc).
    ``planner``: the experiment's :class:`recdistill.experiment.plan.Planner` (which calls this
    module, so it is not imported here); its ``tasks`` are its ``Task`` objects."""
    import optuna

    cache = planner.search_cache
    if run_name in cache:
        return cache[run_name]
    optuna.logging.set_verbosity(logging.WARNING)
    search = planner.spec.runs[run_name].search
    assert search is not None
    seed = planner.search_seed(run_name)
    sampler: Any
    if search.sampler == "grid":
        sampler = optuna.samplers.GridSampler(search.space, seed=seed)
    elif search.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize" if search.mode == "max" else "minimize", sampler=sampler)
    dists = _distributions(search.space)
    run = planner.spec.runs[run_name]
    metric = search.metric or planner.config(run, seed, {}).resolved_monitor()
    state = SearchState(run_name, search.sampler, search.trials, metric, pruner=search.pruner)
    sequential = search.sampler == "tpe" or search.pruner is not None
    history: list[dict[str, Any]] = []  # a pruned search: the finished trials' curves
    for i in range(search.trials):
        trial = study.ask(dists)
        prune = None
        if search.pruner is not None:
            prune = {
                "pruner": search.pruner,
                "mode": search.mode,
                "metric": metric,
                "after": [t.key for t in state.tasks],
                "history": list(history),
            }
        task = planner.make_task(run_name, seed, dict(trial.params), trial=i, prune=prune)
        if task is None:  # a run it starts from is itself pending
            break
        metrics = planner.metrics(task)
        score = validation_score(metrics, metric) if metrics is not None else None
        pruned_at = metrics.get("pruned_at") if metrics is not None else None
        state.tasks.append(task)
        state.scores.append(score)
        state.pruned_at.append(pruned_at)
        state.seconds.append(float(metrics["train_time_s"]) if metrics is not None else None)
        state.epochs.append(int(metrics["epochs_run"]) if metrics is not None else None)
        if sequential:
            if score is None:
                break
            curve = _curve(planner, task) if search.pruner is not None else []
            if search.sampler == "tpe":
                if pruned_at is None:
                    study.tell(trial, score)
                else:  # TPE weighs a pruned trial by its intermediate values
                    for e, v in curve:
                        trial.report(float(v), int(e))
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            if search.pruner is not None:
                history.append({"values": curve, "value": score, "pruned": pruned_at is not None})
    done = len(state.scores) == search.trials and all(s is not None for s in state.scores)
    kept = [i for i in range(len(state.scores)) if state.pruned_at[i] is None]
    if done and kept:
        scores = {i: float(state.scores[i]) for i in kept}  # type: ignore[arg-type]
        best = max(kept, key=lambda i: (scores[i] if search.mode == "max" else -scores[i], -i))
        state.best_trial = best
        state.chosen = dict(state.tasks[best].params)
    cache[run_name] = state
    return state
