"""The run layer: run directories (config, models, checkpoint, log, metrics) and the commands'
Python API — train a base model, distil with any registered method."""

from recdistill.runs.distill import distill_run, method_config
from recdistill.runs.store import (
    Run,
    check_device,
    data_dir_for,
    is_finished,
    load_config,
    load_dataset_for,
    load_run,
    load_teacher,
    run_directory,
    run_model,
    write_config,
)
from recdistill.runs.train import train_run

__all__ = [
    "Run",
    "check_device",
    "data_dir_for",
    "distill_run",
    "is_finished",
    "load_config",
    "load_dataset_for",
    "load_run",
    "load_teacher",
    "method_config",
    "run_directory",
    "run_model",
    "train_run",
    "write_config",
]
