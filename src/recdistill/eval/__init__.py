"""Evaluation: full-ranking and sampled leave-one-out protocols; H@K, N@K, M@K from integer ranks."""

from recdistill.eval.evaluator import DEFAULT_KS, evaluate, evaluate_model
from recdistill.eval.metrics import METRICS, metrics_from_ranks
from recdistill.eval.ranks import PROTOCOLS, SPLITS, TIES, default_batch_size, heldout_ranks

__all__ = [
    "DEFAULT_KS",
    "METRICS",
    "PROTOCOLS",
    "SPLITS",
    "TIES",
    "default_batch_size",
    "evaluate",
    "evaluate_model",
    "heldout_ranks",
    "metrics_from_ranks",
]
