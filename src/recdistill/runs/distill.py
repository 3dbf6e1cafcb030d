"""``recdistill distill``: one entry point for every registered distiller.

:func:`distill_run` validates the method's parameters first (before the dataset or a teacher is
loaded), then builds what the method trains:

- a frozen-teacher method (RD, CD, RRD, IR-RRD, ...): the teacher from ``distill.teacher`` (a run
  directory, a score or list file, a model) and a student from ``config.model``;
- a method that trains both models (``trains_teacher``, BD): teacher and student from run
  directories or from scratch (sizes from the presets or the method's ``teacher_dim`` /
  ``student_dim``), the fixed one if any left out of training;

writes ``config.yaml`` and ``distill.json`` (method, formulas, parameters, starting points) and
trains with :class:`recdistill.train.Trainer`; the method's :meth:`run_metrics` go into
``metrics.json``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from recdistill.atomic import atomic_json
from recdistill.config import Config
from recdistill.data.catalog import dataset_summary
from recdistill.data.dataset import Dataset
from recdistill.distill import load_distillers
from recdistill.distill.base import Distiller
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
) -> tuple[Trainer, Distiller, dict[str, Any]]:
    """Train with ``config.distill.method``; returns (trainer, distiller, metrics).

    teacher: overrides ``distill.teacher`` (a run directory, a score/list file, a Recommender or a
    Teacher). student: a pre-trained student run directory (methods that train both models).
    cache_dir: where a frozen teacher's top-N lists are cached (default ``<teacher run>/cache``
    for a run directory) unless the method's ``cache_dir`` parameter is set. stop_after: return
    after this many epochs without finishing (an interruption; ``{}`` metrics). fresh: replace a
    finished run in ``out_dir`` (staged; :func:`recdistill.runs.store.run_directory`). prune:
    stops the run after a validation (a search's pruner; see ``Trainer``).
    """
    cls, params = method_config(config)  # checked before anything is loaded
    source = teacher if teacher is not None else config.distill.teacher
    run: Callable[..., tuple[Distiller, dict[str, Any]]]
    if cls.trains_teacher:
        run = _two_model_setup
    else:
        if student is not None:
            raise RecdistillError(
                f"{cls.name}: the student starts from scratch; --student is for methods "
                "that train both models (bd)"
            )
        if source is None:
            raise RecdistillError(f"{cls.name}: give a teacher (--teacher RUN_DIR or a score/list file)")
        run = _frozen_teacher_setup
    kd_start = int(getattr(params, "warmup_epochs", 0))
    if config.train.epochs <= kd_start:
        raise RecdistillError(
            f"train.epochs={config.train.epochs} <= warmup_epochs={kd_start}: {cls.name} would apply no "
            "distillation; give more epochs or a shorter warm-up"
        )
    check_device(config.train.device)
    with run_directory(out_dir, resume, fresh) as out:
        if dataset is None:
            dataset = load_dataset_for(config)
            log(dataset_summary(dataset))
        distiller, info = run(cls, params, config, dataset, source, student, cache_dir)
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
        stop_on = getattr(params, "stop_on", None)
        primary = "student" if "student" in distiller.models else "teacher"
        trainer = Trainer(
            distiller.models, distiller, dataset, config, out, primary=primary, stop_on=stop_on, prune=prune
        )
        metrics = trainer.fit(resume=resume, stop_after=stop_after)
        if metrics:
            # epochs with distillation terms (BD: after its warm-up), and the method's own figures
            metrics["distilled_epochs"] = max(0, int(metrics["epochs_run"]) - distiller.kd_start_epoch())
            metrics.update(distiller.run_metrics())
            if out is not None:
                atomic_json(metrics, out / "metrics.json")
    return trainer, distiller, metrics


def _frozen_teacher_setup(
    cls: type[Distiller],
    params: Any,
    config: Config,
    dataset: Dataset,
    source: Any,
    student: Any,
    cache_dir: str | Path | None,
) -> tuple[Distiller, dict[str, Any]]:
    device = config.train.device
    if cache_dir is None and isinstance(source, (str, Path)) and Path(source).is_dir():
        cache_dir = Path(source) / "cache"
    if cache_dir is not None and getattr(params, "cache_dir", "absent") is None:
        params = dataclasses.replace(params, cache_dir=str(cache_dir))
    teacher = load_teacher(source, dataset, device)
    torch.manual_seed(config.train.seed)
    mc = config.model
    model = build_model(mc.name, dataset, size=mc.size, dim=mc.dim, **mc.params).to(device)
    factory: Any = cls  # a FrozenTeacherDistiller: (student, teacher, dataset, config, device, seed)
    distiller = factory(model, teacher, dataset, params, device=device, seed=config.train.seed)
    info = {
        "teacher": teacher.source,
        "teacher_fingerprint": teacher.fingerprint,
        "student_parameters": model.n_parameters,
    }
    return distiller, info


def _two_model_setup(
    cls: type[Distiller],
    params: Any,
    config: Config,
    dataset: Dataset,
    teacher_run: Any,
    student_run: Any,
    cache_dir: str | Path | None,
) -> tuple[Distiller, dict[str, Any]]:
    for role, run in (("teacher", teacher_run), ("student", student_run)):
        if params.fixed == role and run is None:
            raise RecdistillError(
                f"{cls.name} with fixed={role!r} needs a pre-trained {role} run (--{role} RUN)"
            )
    torch.manual_seed(config.train.seed)
    teacher = _init_model(config, dataset, "teacher", teacher_run, params.teacher_dim)
    student_dim = params.student_dim if params.student_dim is not None else config.model.dim
    student = _init_model(config, dataset, "student", student_run, student_dim)
    device = torch.device(config.train.device)
    teacher.to(device)
    student.to(device)
    factory: Any = cls  # trains_teacher: (teacher, student, dataset, config, device, seed)
    distiller = factory(teacher, student, dataset, params, device=device, seed=config.train.seed)
    info = {
        "teacher_run": None if teacher_run is None else str(teacher_run),
        "student_run": None if student_run is None else str(student_run),
        "teacher_parameters": teacher.n_parameters,
        "student_parameters": student.n_parameters,
    }
    return distiller, info


def _init_model(
    config: Config, dataset: Dataset, role: str, run: str | Path | None, dim: int | None
) -> Recommender:
    """A pre-trained model from a run directory (its ``role`` model, e.g. a BD run's teacher, or
    its only one), or a fresh one of the ``role`` preset / ``dim``."""
    if run is not None:
        model = run_model(run, dataset, role)
        if model.name != config.model.name:
            raise RecdistillError(
                f"{run}: holds a {model.name!r} model, but model.name is {config.model.name!r}"
            )
        return model.train()
    mc = config.model
    return build_model(mc.name, dataset, size=None if dim is not None else role, dim=dim, **mc.params)
