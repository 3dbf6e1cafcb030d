"""``recdistill train``: build the dataset and model from a ``Config``, train with the base
objective, write the run directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from recdistill.config import Config
from recdistill.data.catalog import dataset_summary
from recdistill.data.dataset import Dataset
from recdistill.models import build_model
from recdistill.runs.store import check_device, load_dataset_for, run_directory, write_config
from recdistill.train.trainer import BaseObjective, Trainer


def train_run(
    config: Config,
    out_dir: str | Path | None = None,
    dataset: Dataset | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    name: str = "model",
    fresh: bool = False,
    log: Callable[[str], Any] | None = None,
    prune: Callable[[list[tuple[int, dict[str, float]]]], bool] | None = None,
) -> tuple[Trainer, dict[str, Any]]:
    """Train ``config.model`` on ``config.data`` with its base loss; returns (trainer, metrics).

    The model is saved as ``out_dir/<name>.pt``. One seed (``train.seed``) fixes the
    initialisation, sampling and batch order. A finished run in ``out_dir`` is replaced only with
    ``fresh`` (staged, swapped in on success; :func:`recdistill.runs.store.run_directory`).
    ``prune``: stops the run after a validation (a search's pruner; see ``Trainer``).
    """
    check_device(config.train.device)
    with run_directory(out_dir, resume, fresh) as out:
        if dataset is None:
            dataset = load_dataset_for(config)
            if log is not None:
                log(dataset_summary(dataset))
        if out is not None:
            write_config(config, out)
        torch.manual_seed(config.train.seed)
        mc = config.model
        model = build_model(mc.name, dataset, size=mc.size, dim=mc.dim, **mc.params)
        models = {name: model}
        trainer = Trainer(models, BaseObjective(models), dataset, config, out, prune=prune)
        metrics = trainer.fit(resume=resume, stop_after=stop_after)
    return trainer, metrics
