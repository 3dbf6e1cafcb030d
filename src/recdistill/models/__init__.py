"""Base recommenders behind one contract, a registry, and size presets.

Size presets (``size`` -> embedding/hidden ``dim``), so that the student has about 1/10 of the
teacher's parameters:

The family comes from the dataset's description (``DatasetSpec.sizes``; files: ``bd``):

- ``bd`` (BD, WWW 2021, Table 3; every dataset except the DCD split): teacher 50, student 5.
  On CiteULike (5,219 users, 25,187 items) this gives BPR 1.52M / 0.15M, NeuMF 3.05M / 0.30M,
  CDAE 2.81M / 0.30M parameters, matching Table 3 (1.52M/0.15M, 3.05M/0.30M, 2.80M/0.30M).
- ``dcd`` (DCD, CIKM 2021, Sec. 3.1; ``citeulike-dcd``): teacher 200, student 20
  (BPR on CiteULike: 6.08M / 0.61M, DCD Table 1).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

from recdistill.data.dataset import Dataset
from recdistill.errors import RecdistillError
from recdistill.models.base import MODELS, Batch, Recommender, register_model

#: modules of this package that hold no model
_SUPPORT_MODULES = frozenset({"base", "store"})
# every model file registers itself (``@register_model``): adding a model is adding a file
for _mod in pkgutil.iter_modules(__path__):
    if _mod.name not in _SUPPORT_MODULES and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")

from recdistill.models.bpr import BPR  # noqa: E402  (imported above; named for the API)
from recdistill.models.cdae import CDAE  # noqa: E402
from recdistill.models.neumf import NeuMF  # noqa: E402

PRESETS: dict[str, dict[str, int]] = {
    "bd": {"teacher": 50, "student": 5},
    "dcd": {"teacher": 200, "student": 20},
}


def preset_family(dataset_name: str) -> str:
    """The size-preset family of the dataset (``DatasetSpec.sizes``: ``dcd`` for the DCD split,
    else ``bd``)."""
    from recdistill.data.catalog import dataset_sizes

    return dataset_sizes(str(dataset_name))


def resolve_dim(dataset_name: str, size: str | None = None, dim: int | None = None) -> int:
    """The model dimension: an explicit ``dim`` wins, else the ``size`` preset for the dataset."""
    if dim is not None:
        if int(dim) < 1:
            raise RecdistillError(f"dim must be a positive integer, got {dim}")
        return int(dim)
    if size is None:
        raise RecdistillError("give a size (teacher|student) or an explicit dim")
    family = PRESETS[preset_family(dataset_name)]
    if size not in family:
        raise RecdistillError(f"unknown size {size!r}; expected one of {sorted(family)}")
    return family[size]


def build_model(
    name: str,
    dataset: Dataset,
    size: str | None = None,
    dim: int | None = None,
    **kwargs: Any,
) -> Recommender:
    """Build model ``name`` for ``dataset`` with the size preset or an explicit ``dim``.

    Extra ``kwargs`` go to the constructor (e.g. ``dropout=0.5`` for CDAE); a model that reads
    the training matrix (CDAE) gets ``dataset.train``. Seed torch before calling for a
    reproducible initialisation.
    """
    cls = MODELS.get(name)
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise RecdistillError(f"model {name!r} has no parameter(s) {unknown}; known: {sorted(params)[1:]}")
    args: dict[str, Any] = dict(kwargs, dim=resolve_dim(dataset.name, size, dim))
    if "train" in params:
        args["train"] = dataset.train
    return cls(dataset.n_users, dataset.n_items, **args)


def model_from_spec(spec: dict[str, Any], dataset: Dataset) -> Recommender:
    """Rebuild an (untrained) model from ``{"model": name, "kwargs": init_kwargs}``."""
    cls = MODELS.get(spec["model"])
    kwargs = dict(spec["kwargs"])
    if (kwargs.get("n_users"), kwargs.get("n_items")) != (dataset.n_users, dataset.n_items):
        raise RecdistillError(
            f"saved {spec['model']} is for {kwargs.get('n_users')} users x {kwargs.get('n_items')} "
            f"items, dataset {dataset.name!r} has {dataset.n_users} x {dataset.n_items}"
        )
    if "train" in inspect.signature(cls.__init__).parameters:
        kwargs["train"] = dataset.train
    return cls(**kwargs)


__all__ = [
    "BPR",
    "CDAE",
    "MODELS",
    "PRESETS",
    "Batch",
    "NeuMF",
    "Recommender",
    "build_model",
    "model_from_spec",
    "preset_family",
    "register_model",
    "resolve_dim",
]
