"""Model files: ``<name>.pt`` holds the registry name, the constructor kwargs and the weights,
so a model can be rebuilt for a dataset with :func:`load_model`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from recdistill.atomic import atomic_torch_save, safe_torch_load
from recdistill.data.dataset import Dataset
from recdistill.errors import RecdistillError
from recdistill.models import model_from_spec
from recdistill.models.base import Recommender

__all__ = ["load_model", "save_model"]


def save_model(model: Recommender, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Save ``{"model": name, "kwargs": init_kwargs, "state_dict": ..., **extra}`` atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save(
        {"model": model.name, "kwargs": model.init_kwargs, "state_dict": state, **(extra or {})}, path
    )


def load_model(path: str | Path, dataset: Dataset, device: str | torch.device = "cpu") -> Recommender:
    """Rebuild a model saved by ``save_model`` for ``dataset`` (in eval mode, on ``device``)."""
    path = Path(path)
    blob = safe_torch_load(path, "model file")
    if not isinstance(blob, dict) or "model" not in blob or "kwargs" not in blob:
        raise RecdistillError(
            f"{path}: not a recdistill model file (expected keys model, kwargs, state_dict)"
        )
    saved = blob.get("dataset_fingerprint")
    if saved is not None and saved != dataset.fingerprint:
        raise RecdistillError(
            f"{path} was trained on dataset {blob.get('dataset')!r} (fingerprint {str(saved)[:12]}), "
            f"not on {dataset.name!r} (fingerprint {dataset.fingerprint[:12]}); give the dataset it was "
            "trained on"
        )
    model = model_from_spec(blob, dataset)
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()
