"""The trainer every base model and every distiller runs on (epochs, early stopping,
checkpoints, resume). Building runs from configs is the run layer's job (:mod:`recdistill.runs`)."""

from recdistill.train.trainer import BaseObjective, Objective, Trainer

__all__ = ["BaseObjective", "Objective", "Trainer"]
