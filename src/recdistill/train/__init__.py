"""Trainer (epochs, early stopping, checkpoints, resume), saved runs, and the high-level API."""

from recdistill.train.io import Run, load_config, load_model, load_run, save_model
from recdistill.train.run import load_dataset_for, train_run
from recdistill.train.trainer import BaseObjective, Objective, Trainer

__all__ = [
    "BaseObjective",
    "Objective",
    "Run",
    "Trainer",
    "load_config",
    "load_dataset_for",
    "load_model",
    "load_run",
    "save_model",
    "train_run",
]
