"""The shipped kit (``recdistill.testing``) on every registered model, on a method defined
outside the package (the toy two-teacher method), and that it catches a broken model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recdistill.models import MODELS
from recdistill.models.base import MODELS as REGISTRY
from recdistill.models.bpr import BPR
from recdistill.testing import check_distiller, check_model


@pytest.mark.parametrize("name", MODELS.names())
def test_every_registered_model_passes_the_kit(name: str) -> None:
    check_model(name)


def test_a_method_of_ones_own_passes_the_kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recdistill.distill import load_distillers
    from test_method_protocol import MeanOfTeachers

    registry = load_distillers()
    monkeypatch.setattr(registry, "_items", dict(registry._items))
    registry.register(MeanOfTeachers.name)(MeanOfTeachers)
    check_distiller(MeanOfTeachers.name, work_dir=tmp_path)


class _Broken(BPR):
    """``score`` disagrees with ``score_all`` (an off-by-one item index)."""

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return super().score(users, (items + 1) % self.n_items)


def test_the_kit_names_a_broken_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(REGISTRY, "_items", dict(REGISTRY._items))
    REGISTRY.register("broken")(_Broken)
    with pytest.raises(AssertionError, match="broken: score != score_all"):
        check_model("broken")
