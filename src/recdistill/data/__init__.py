"""Readers, preprocessing, leave-one-out splits and cached datasets."""

from recdistill.data.dataset import N_CANDIDATES, Dataset

__all__ = ["Dataset", "N_CANDIDATES"]
