"""``recdistill distill``: one entry point for every registered distiller.

:func:`distill_run` validates the method's parameters first (before the dataset or a teacher is
loaded), asks the method for its :class:`~recdistill.distill.base.Roles` (the method protocol;
this module names no method) and builds them:

- each frozen ``teachers`` role from its source (``distill.teacher``: a run directory, a score or
  list file, a model; a mapping role -> source for several), as a
  :class:`~recdistill.distill.teacher.Teacher` that caches its top-N lists;
- each ``models`` role from ``config.model`` (architecture; size: the method's ``dims``, else
  ``model.dim``, else the preset named like the role), or from a run given for the role;

then ``Distiller.build``; writes ``config.yaml`` and ``distill.json`` (method, formulas,
parameters, starting points) and trains with :class:`recdistill.train.Trainer`; the method's
:meth:`run_metrics` go into ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from recdistill.atomic import atomic_json
from recdistill.config import Config
from recdistill.data.catalog import dataset_summary
from recdistill.data.dataset import Dataset
from recdistill.distill import load_distillers
from recdistill.distill.base import Distiller, Parts, Roles
from recdistill.errors import RecdistillError
from recdistill.models import build_model
from recdistill.models.base import Recommender
from recdistill.runs.store import (
    check_device,
    load_dataset_for,
    load_teacher,
    run_directory,
    run_model,
    write_config,
)
from recdistill.train.trainer import Trainer

__all__ = ["distill_run", "method_config"]


def method_config(config: Config) -> tuple[type[Distiller], Any]:
    """The distiller class of ``config.distill.method`` and its validated parameters."""
    if not config.distill.method:
        names = ", ".join(load_distillers().names())
        raise RecdistillError(f"distill.method is empty; known: {names}")
    cls = load_distillers().get(config.distill.method)
    return cls, cls.build_config(config.distill.params)


def distill_run(
    config: Config,
    out_dir: str | Path | None = None,
    dataset: Dataset | None = None,
    teacher: Any = None,
    student: Any = None,
    resume: bool = False,
    cache_dir: str | Path | None = None,
    log: Callable[[str], Any] = print,
    stop_after: int | None = None,
    fresh: bool = False,
    prune: Callable[[list[tuple[int, dict[str, float]]]], bool] | None = None,
    sources: Mapping[str, Any] | None = None,
) -> tuple[Trainer, Distiller, dict[str, Any]]:
    """Train with ``config.distill.method``; returns (trainer, distiller, metrics).

    sources: role -> what the role is built from (a run directory, a score/list file, a
    Recommender or a Teacher), over ``distill.teacher``; ``teacher`` and ``student`` are the
    roles of those names. cache_dir: where the frozen teachers' top-N lists are cached
    (default: a teacher run's ``cache/``). stop_after: return after this many epochs without
    finishing (an interruption; ``{}`` metrics). fresh: replace a finished run in ``out_dir``
    (staged; :func:`recdistill.runs.store.run_directory`). prune: stops the run after a
    validation (a search's pruner; see ``Trainer``).
    """
    cls, params = method_config(config)  # checked before anything is loaded
    roles = cls.roles(params)
    given: dict[str, Any] = {**config.distill.sources(), **dict(sources or {})}
    for role, value in (("teacher", teacher), ("student", student)):
        if value is not None:
            given[role] = value
    check_sources(cls.name, roles, given)
    kd_start = cls.kd_start(params)
    if config.train.epochs <= kd_start:
        raise RecdistillError(
            f"train.epochs={config.train.epochs}: {cls.name} distils from epoch {kd_start + 1} (its "
            "warm-up), so it would apply no distillation; give more epochs or a shorter warm-up"
        )
    check_device(config.train.device)
    with run_directory(out_dir, resume, fresh) as out:
        if dataset is None:
            dataset = load_dataset_for(config)
            log(dataset_summary(dataset))
        distiller, info = _build(cls, roles, params, config, dataset, given, cache_dir)
        log(distiller.describe())
        if out is not None:
            write_config(config, out)
            formulas = {n: distiller.formula(n) for n in distiller.models}
            record = {
                "method": cls.name,
                "formulas": formulas,
                "params": dataclasses.asdict(distiller.config),
            }
            atomic_json({**record, **info}, out / "distill.json")
        primary = roles.primary if roles.primary in distiller.models else next(iter(distiller.models))

        def extra(metrics: dict[str, Any]) -> dict[str, Any]:
            # epochs with distillation terms (BD: after its warm-up), and the method's own figures
            done = max(0, int(metrics["epochs_run"]) - distiller.kd_start_epoch())
            return {"distilled_epochs": done, **distiller.run_metrics()}

        trainer = Trainer(
            distiller.models,
            distiller,
            dataset,
            config,
            out,
            primary=primary,
            stop_on=roles.stop_on,
            prune=prune,
            extra_metrics=extra,  # metrics.json written once, with them
        )
        metrics = trainer.fit(resume=resume, stop_after=stop_after)
    return trainer, distiller, metrics


def check_sources(method: str, roles: Roles, given: Mapping[str, Any]) -> None:
    """One line for a role the method lacks, does not know, or trains from scratch (before
    anything is loaded)."""
    for role in given:
        if role in roles.teachers or role in roles.may_start:
            continue
        what = "; ".join(
            [f"frozen: {', '.join(roles.teachers)}"] * bool(roles.teachers)
            + [f"trained from scratch: {', '.join(r for r in roles.models if r not in roles.may_start)}"]
            * any(r not in roles.may_start for r in roles.models)
            + [f"trained, from a run or scratch: {', '.join(roles.may_start)}"] * bool(roles.may_start)
        )
        raise RecdistillError(f"{method}: no run or file to give for role {role!r}; its roles: {what}")
    for role in roles.teachers:
        if given.get(role) is None:
            flag = (
                "--teacher RUN_DIR or a score/list file" if role == "teacher" else f"--teacher {role}=RUN_DIR"
            )
            raise RecdistillError(f"{method}: give a {role} ({flag})")
    for role in roles.need_start:
        if given.get(role) is None:
            raise RecdistillError(f"{method} needs a pre-trained {role} run (--{role} RUN)")


def _build(
    cls: type[Distiller],
    roles: Roles,
    params: Any,
    config: Config,
    dataset: Dataset,
    given: Mapping[str, Any],
    cache_dir: str | Path | None,
) -> tuple[Distiller, dict[str, Any]]:
    """The method's teachers and models (``roles``), then the distiller; with the record's facts."""
    device = torch.device(config.train.device)
    teachers = {r: load_teacher(given[r], dataset, device, cache_dir) for r in roles.teachers}
    torch.manual_seed(config.train.seed)
    models = {r: _init_model(config, dataset, r, given.get(r), roles.dims).to(device) for r in roles.models}
    distiller = cls.build(Parts(models, teachers, dataset, params, device, config.train.seed))
    info: dict[str, Any] = {}
    for r, t in teachers.items():
        info[r] = t.source
        info[f"{r}_fingerprint"] = t.fingerprint
    for r, m in models.items():
        if r in given:
            info[f"{r}_run"] = str(given[r])
        info[f"{r}_parameters"] = m.n_parameters
    return distiller, info


def _init_model(
    config: Config, dataset: Dataset, role: str, run: Any, dims: Mapping[str, int | None]
) -> Recommender:
    """A model of ``role``: from a run directory (its ``role`` model, e.g. a BD run's teacher, or
    its only one) or a given model, else fresh at ``dims[role]`` (None: the ``role`` preset) for
    a role in ``dims``, else at ``model.dim`` or the ``role`` preset (:class:`Roles`)."""
    if isinstance(run, Recommender):
        return run.train()
    if run is not None:
        model = run_model(run, dataset, role)
        if model.name != config.model.name:
            raise RecdistillError(
                f"{run}: holds a {model.name!r} model, but model.name is {config.model.name!r}"
            )
        return model.train()
    mc = config.model
    dim = dims[role] if role in dims else mc.dim
    return build_model(mc.name, dataset, size=None if dim is not None else role, dim=dim, **mc.params)
