"""Base recommenders behind one contract."""

from recdistill.models.base import Batch, Recommender

__all__ = ["Batch", "Recommender"]
