"""Atomic files and saved models: ``<name>.pt`` holds the registry name and constructor kwargs,
so a model can be rebuilt with ``load_model`` and a whole run with ``load_run``."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from recdistill.config import Config, load_yaml, parse_dataclass
from recdistill.data.dataset import Dataset
from recdistill.models import model_from_spec
from recdistill.models.base import Recommender


def _atomic(path: Path, write: Any, mode: str = "wb") -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace``."""
    _atomic(Path(path), lambda f: torch.save(obj, f))


def atomic_json(obj: Any, path: str | Path) -> None:
    _atomic(Path(path), lambda f: f.write(json.dumps(obj, indent=2) + "\n"), "w")


def atomic_text(text: str, path: str | Path) -> None:
    _atomic(Path(path), lambda f: f.write(text), "w")


def save_model(model: Recommender, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Save ``{"model": name, "kwargs": init_kwargs, "state_dict": ..., **extra}`` atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"model": model.name, "kwargs": model.init_kwargs, "state_dict": state,
                       **(extra or {})}, path)


def load_model(path: str | Path, dataset: Dataset, device: str | torch.device = "cpu") -> Recommender:
    """Rebuild a model saved by ``save_model`` for ``dataset`` (in eval mode, on ``device``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(blob, dict) or "model" not in blob or "kwargs" not in blob:
        raise ValueError(f"{path}: not a recdistill model file (expected keys model, kwargs, state_dict)")
    model = model_from_spec(blob, dataset)
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()


def load_config(run_dir: str | Path) -> Config:
    """The resolved ``config.yaml`` of a run directory."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.yaml)")
    return parse_dataclass(Config, load_yaml(path), "")


@dataclass
class Run:
    """A finished run: its models (best states), resolved config and dataset."""

    models: dict[str, Recommender]
    config: Config
    dataset: Dataset
    metrics: dict[str, Any] | None

    @property
    def model(self) -> Recommender:
        """The primary model (the only one, or "student")."""
        if len(self.models) == 1:
            return next(iter(self.models.values()))
        return self.models["student"]


def load_run(
    run_dir: str | Path, dataset: Dataset | None = None, device: str | torch.device = "cpu"
) -> Run:
    """Load every ``<name>.pt`` of a run directory with its config and dataset.

    ``dataset``: pass it to avoid reloading (it must be the run's dataset).
    """
    from recdistill.train.run import load_dataset_for

    run_dir = Path(run_dir)
    config = load_config(run_dir)
    if dataset is None:
        dataset = load_dataset_for(config)
    files = sorted(p for p in run_dir.glob("*.pt") if p.name != "checkpoint.pt")
    if not files:
        raise FileNotFoundError(f"{run_dir}: no saved model (<name>.pt); did the run finish?")
    models = {p.stem: load_model(p, dataset, device) for p in files}
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
    return Run(models, config, dataset, metrics)
