"""Readers, preprocessing, leave-one-out splits and cached datasets."""

from recdistill.data.catalog import DATASETS, dataset_stats, load_dataset
from recdistill.data.dataset import N_CANDIDATES, Dataset
from recdistill.data.io import DataFormatError
from recdistill.data.preprocess import from_interactions
from recdistill.data.readers import Interactions, read_interactions

__all__ = [
    "DATASETS",
    "DataFormatError",
    "Dataset",
    "Interactions",
    "N_CANDIDATES",
    "dataset_stats",
    "from_interactions",
    "load_dataset",
    "read_interactions",
]
