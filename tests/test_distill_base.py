"""The shared distiller shape: config parsing, formula, base + Σ λ·term."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from recdistill.distill import DISTILLERS, load_distillers
from recdistill.distill.base import Distiller, format_formula, make_config
from recdistill.models.base import Batch, Recommender


@dataclass(frozen=True)
class _Cfg:
    lam: float = 0.5
    K: int = 10
    on: bool = True
    scheme: str = "a"
    opt: int | None = None


def test_make_config_validates() -> None:
    cfg = make_config(_Cfg, {"lam": "1e-3", "K": 40, "on": False, "scheme": "b", "opt": 3})
    assert cfg == _Cfg(lam=1e-3, K=40, on=False, scheme="b", opt=3)
    assert make_config(_Cfg) == _Cfg()
    with pytest.raises(ValueError, match=r"unknown config key 'distill.params.k'; known: K, lam"):
        make_config(_Cfg, {"k": 3})
    with pytest.raises(ValueError, match="distill.params.K: expected int, got 'x'"):
        make_config(_Cfg, {"K": "x"})


def test_format_formula() -> None:
    assert format_formula("student", 1.0, {"RRD": 1e-3}) == "L_student = L_base + 0.001·L_RRD"
    assert format_formula("student", 0.5, {"RD": 0.5}) == "L_student = 0.5·L_base + 0.5·L_RD"
    assert format_formula("teacher", 1.0, {}) == "L_teacher = L_base"


class _Lin(Recommender):
    def __init__(self) -> None:
        super().__init__(3, 4)
        self.w = torch.nn.Parameter(torch.ones(3, 4))

    def base_loss(self, batch: Batch) -> torch.Tensor:
        return self.w[batch.users].sum()


class _Toy(Distiller):
    def weights(self, name: str, epoch: int) -> tuple[float, dict[str, float]]:
        return 0.5, {"A": 2.0, "B": 0.0 if epoch < 1 else 3.0}

    def kd_terms(self, name: str, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        w = self.models[name].w
        return {"A": (w**2).sum(), "B": w.sum() * 10}


def test_loss_combines_terms_and_skips_zero_weights(toy_dataset) -> None:
    d = _Toy({"student": _Lin()}, toy_dataset, _Cfg())
    batch = Batch(users=torch.tensor([0, 1]))
    total, parts = d.loss("student", batch, epoch=0)
    assert {k: float(v) for k, v in parts.items()} == {"base": 8.0, "A": 12.0}
    assert float(total.detach()) == 0.5 * 8 + 2 * 12
    total, parts = d.loss("student", batch, epoch=1)
    assert {k: float(v) for k, v in parts.items()} == {"base": 8.0, "A": 12.0, "B": 120.0}
    assert float(total.detach()) == 0.5 * 8 + 2 * 12 + 3 * 120
    assert d.formula("student", epoch=1) == "L_student = 0.5·L_base + 2·L_A + 3·L_B"


def test_registry_lists_methods() -> None:
    reg = load_distillers()
    assert reg is DISTILLERS
    with pytest.raises(KeyError, match="unknown distiller 'rdd'; known: "):
        reg.get("rdd")


def test_cli_lists_methods_and_rejects_unknown(capsys, tmp_path) -> None:
    from recdistill.cli import main

    assert main(["distill", "--list-methods"]) == 0
    out = capsys.readouterr().out
    for name in ("rd", "cd", "rrd", "ir-rrd", "rrd+ir-rrd"):
        assert f"\n{name} " in "\n" + out
    assert main(["distill", "--method", "rdd", "--out", str(tmp_path / "x")]) == 2
    assert "unknown distiller 'rdd'; known: " in capsys.readouterr().err
