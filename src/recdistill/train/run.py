"""High-level API behind ``recdistill train``: build the dataset and model from a ``Config``,
train with the base objective, write the run directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import yaml

from recdistill.config import Config
from recdistill.data.dataset import Dataset
from recdistill.models import build_model
from recdistill.train.io import atomic_text
from recdistill.train.trainer import BaseObjective, Trainer


def data_dir_for(config: Config) -> str | None:
    """``data.data_dir``, else ``$RECDISTILL_DATA``, else None (the loader's default)."""
    return config.data.data_dir or os.environ.get("RECDISTILL_DATA") or None


def load_dataset_for(config: Config) -> Dataset:
    """The dataset named by ``config.data`` (via ``recdistill.data.load_dataset``)."""
    from recdistill.data import load_dataset  # type: ignore[attr-defined]

    data_dir = data_dir_for(config)
    if data_dir is None:
        return load_dataset(config.data.name)
    return load_dataset(config.data.name, data_dir=data_dir)


def write_config(config: Config, out_dir: str | Path) -> None:
    """The resolved config as ``out_dir/config.yaml`` (atomic)."""
    atomic_text(yaml.safe_dump(config.to_dict(), sort_keys=False), Path(out_dir) / "config.yaml")


def train_run(
    config: Config,
    out_dir: str | Path | None = None,
    dataset: Dataset | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    name: str = "model",
) -> tuple[Trainer, dict[str, Any]]:
    """Train ``config.model`` on ``config.data`` with its base loss; returns (trainer, metrics).

    The model is saved as ``out_dir/<name>.pt``. One seed (``train.seed``) fixes the
    initialisation, sampling and batch order.
    """
    if dataset is None:
        dataset = load_dataset_for(config)
    if out_dir is not None:
        write_config(config, out_dir)
    torch.manual_seed(config.train.seed)
    mc = config.model
    model = build_model(mc.name, dataset, size=mc.size, dim=mc.dim, **mc.params)
    models = {name: model}
    trainer = Trainer(models, BaseObjective(models), dataset, config, out_dir)
    metrics = trainer.fit(resume=resume, stop_after=stop_after)
    return trainer, metrics
