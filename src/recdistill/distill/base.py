"""The shape every distiller shares: choose targets, then add weighted losses to the base loss.

A distiller is an ``Objective`` for the trainer (issue #3):

- ``on_epoch_start(epoch)``: refresh whatever it samples per epoch (targets from the rank engine),
- ``loss(name, batch, epoch) -> (scalar, parts)``: for the trainable model ``name``,
  ``w_base·L_base + Σ_t λ_t·L_t`` with ``parts = {"base": ..., "<term>": ...}`` (detached 0-d
  tensors, so no device sync per batch),
- ``state_dict()`` / ``load_state_dict()``: the generator of its draws (checkpoint and resume).

Subclasses implement :meth:`Distiller.kd_terms` (the unweighted KD terms of one batch) and
:meth:`Distiller.weights` (base weight and λ per term, possibly epoch dependent), and hold their
hyperparameters in a frozen dataclass (``Config``) whose defaults are documented and come from
METHODS.md / the papers. :meth:`Distiller.formula` prints the objective, e.g.
``L_student = L_base + 0.001·L_RRD``. The method protocol: a method declares its
:class:`Roles` (its frozen teachers, zero, one or several, and the models it trains) and builds
itself from them (:meth:`Distiller.build`); the run layer, the spec reader and the CLI name no
method. Frozen-teacher baselines (RD, CD, RRD, IR-RRD, DCD) derive from
:class:`FrozenTeacherDistiller` (one frozen ``teacher``, a trained ``student``); BD trains both
models and derives from :class:`Distiller`. Distillers draw only through
:mod:`recdistill.ranking` and never build models, load runs or write files: the run layer
(:mod:`recdistill.runs`) does that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from recdistill.config import parse_dataclass
from recdistill.data.dataset import Dataset
from recdistill.errors import RecdistillError
from recdistill.models.base import Batch, Recommender
from recdistill.registry import Registry

__all__ = [
    "DISTILLERS",
    "Distiller",
    "FrozenTeacherDistiller",
    "Parts",
    "Roles",
    "format_formula",
    "make_config",
]


@dataclass(frozen=True)
class Roles:
    """The models a method works with, by role (the method protocol).

    teachers: roles given as frozen teachers (a run directory, a score or list file, a model):
    the run layer loads each into a :class:`recdistill.distill.teacher.Teacher`; none trains.
    models: roles the run layer builds as models and hands to :meth:`Distiller.build` (the
    method trains them, or holds one fixed: BD's ``fixed``). Each is built from ``config.model``
    (its architecture), unless a run is given for the role to start from, at ``dims[role]`` for
    a role in ``dims`` (None: the size preset named like the role, ``teacher`` / ``student``),
    else at ``model.dim`` if set, else at that preset. need_start: model roles that must start
    from a given run (BD's fixed model).
    primary: the model a run reports first; stop_on: the models whose validation stops it
    (None: the primary).
    """

    teachers: tuple[str, ...] = ("teacher",)
    models: tuple[str, ...] = ("student",)
    dims: Mapping[str, int | None] = field(default_factory=dict)
    need_start: tuple[str, ...] = ()
    may_start: tuple[str, ...] = ()
    primary: str = "student"
    stop_on: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Parts:
    """What :meth:`Distiller.build` builds a distiller from: ``models``, a model per
    ``roles(config).models`` role; ``teachers``, a :class:`~recdistill.distill.teacher.Teacher`
    per ``teachers`` role; the training data, the method's config, the device, the seed."""

    models: Mapping[str, Recommender]
    teachers: Mapping[str, Any]
    dataset: Dataset
    config: Any
    device: torch.device | str = "cpu"
    seed: int = 0


# ------------------------------------------------------------------------------ config helpers
def make_config(cls: type, overrides: Mapping[str, Any] | None = None, where: str = "distill.params") -> Any:
    """Build the method's dataclass ``cls`` from its defaults plus ``overrides``.

    Delegates to :func:`recdistill.config.parse_dataclass`: unknown keys and values of the wrong
    type raise ``ValueError`` naming the key (a misspelt key never falls back to a default).
    """
    return parse_dataclass(cls, dict(overrides or {}), where=where)


def format_formula(model: str, base_weight: float, terms: Mapping[str, float]) -> str:
    """``L_student = 0.5·L_base + 0.5·L_RD`` (weights printed with ``:g``; a weight 1 is omitted)."""

    def w(x: float) -> str:
        return "" if x == 1 else f"{x:g}·"

    parts = [f"{w(base_weight)}L_base"] + [f"{w(lam)}L_{name}" for name, lam in terms.items()]
    return f"L_{model} = " + " + ".join(parts)


# ----------------------------------------------------------------------------------- distillers
class Distiller:
    """Base objective: ``loss(name) = w_base·L_base(name) + Σ_t λ_t·L_t(name)``.

    models: the trainable models by name (the trainer optimises exactly these).
    dataset: the training data. config: the method's hyperparameter dataclass.
    device: where targets and losses live. seed: fixes every draw the distiller makes.
    """

    #: registry name, set by subclasses (``"rd"``, ``"rrd"``, ...)
    name: ClassVar[str] = ""
    #: the hyperparameter dataclass of the method
    Config: ClassVar[type] = type(None)
    #: defaults of this registered variant that differ from ``Config``'s (e.g. IR-RRD's sides)
    config_defaults: ClassVar[dict[str, Any]] = {}
    #: parameters that change how fast the method runs, never what it computes (a test draws
    #: with other values and compares): a run's key reads them at their default
    #: (:meth:`key_params`). BD's and DCD's ``chunk`` is not one: their draws go chunk by chunk.
    speed_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def build_config(cls, params: Mapping[str, Any] | None = None) -> Any:
        """The method's config: ``Config`` defaults <- ``config_defaults`` <- ``params``."""
        return make_config(cls.Config, {**cls.config_defaults, **dict(params or {})})

    # -- the method protocol: what the run layer asks a method (it names none) -------------
    @classmethod
    def roles(cls, config: Any) -> Roles:
        """The roles of the method with ``config`` (:class:`Roles`); subclasses override."""
        raise NotImplementedError

    @classmethod
    def build(cls, parts: Parts) -> Distiller:
        """The distiller from ``parts`` (its models and teachers by role, the data, its config)."""
        raise NotImplementedError

    @classmethod
    def kd_start(cls, config: Any) -> int:
        """The first epoch (0-based) with distillation terms under ``config`` (BD: its warm-up)."""
        return 0

    @classmethod
    def key_params(cls, config: Any) -> dict[str, Any]:
        """``config`` as a run's key holds it: :attr:`speed_params` at the method's default."""
        out = dataclasses.asdict(config)
        default = cls.build_config({})
        for name in cls.speed_params:
            out[name] = getattr(default, name)
        return out

    def __init__(
        self,
        models: Mapping[str, Recommender],
        dataset: Dataset,
        config: Any,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        self.models = dict(models)
        self.dataset = dataset
        self.config = config
        self.device = torch.device(device)
        self.seed = int(seed)
        # One generator for every draw the distiller makes (CPU: identical draws on any device).
        self.generator = torch.Generator().manual_seed(self.seed)
        self.epoch = -1

    # -- to implement ----------------------------------------------------------------------
    def weights(self, name: str, epoch: int) -> tuple[float, dict[str, float]]:
        """(weight of L_base, {term: λ}) for model ``name`` at ``epoch``."""
        raise NotImplementedError

    def kd_terms(self, name: str, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        """The unweighted KD terms (scalars) of model ``name`` on ``batch``."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int) -> None:
        """Called by the trainer before each epoch (0-based); default: remember it."""
        self.epoch = epoch

    def loss(self, name: str, batch: Batch, epoch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective of model ``name`` on ``batch`` -> (scalar to minimise, detached 0-d parts)."""
        model = self.models[name]
        base_w, lams = self.weights(name, epoch)
        base = model.base_loss(batch)
        total = base * base_w if base_w != 1 else base
        parts: dict[str, torch.Tensor] = {"base": base.detach()}
        active = {t: lam for t, lam in lams.items() if lam != 0}
        if active:
            terms = self.kd_terms(name, batch, epoch)
            for t, lam in active.items():
                total = total + lam * terms[t]
                parts[t] = terms[t].detach()
        return total, parts

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])

    def kd_start_epoch(self) -> int:
        """The first epoch (0-based) with distillation terms (BD: after its warm-up)."""
        return type(self).kd_start(self.config)

    def formula(self, name: str = "student", epoch: int | None = None) -> str:
        """The objective as a formula, e.g. ``L_student = L_base + 0.001·L_RRD``, at ``epoch``
        (default: the current epoch, or the first distilling one before training)."""
        if epoch is None:
            epoch = self.epoch if self.epoch >= 0 else self.kd_start_epoch()
        base_w, lams = self.weights(name, epoch)
        return format_formula(name, base_w, lams)

    def targets(self) -> dict[str, torch.Tensor]:
        """The current draws (and fixed targets) by name, e.g. ``{"interesting": (n_users, K)}``:
        what the distiller trains on this epoch (inspection, golden tests). Default none."""
        return {}

    def run_metrics(self) -> dict[str, Any]:
        """Extra figures for the run's ``metrics.json`` (e.g. refresh times); default none."""
        return {}

    def describe(self) -> str:
        """Formula(s) plus the hyperparameters, for the start of a run's log."""
        lines = [self.formula(n) for n in self.models]
        lines.append(f"{type(self).__name__}: {self.config}")
        return "\n".join(lines)


class FrozenTeacherDistiller(Distiller):
    """A distiller whose teacher is fixed (RD, CD, RRD, IR-RRD): only the student trains.

    teacher: a :class:`recdistill.distill.teacher.Teacher` (a trained run, a score file or a
    ranked-list file). It is never put in ``models`` and never receives gradients.
    """

    #: what the method needs from the teacher: "lists" (top-N lists only) or "scores"
    needs: ClassVar[str] = "lists"

    def __init__(
        self,
        student: Recommender,
        teacher: Any,
        dataset: Dataset,
        config: Any,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__({"student": student}, dataset, config, device, seed)
        if self.needs == "scores" and not teacher.has_scores:
            raise RecdistillError(
                f"{self.name or type(self).__name__} needs teacher scores, but teacher "
                f"{teacher.source!r} only gives ranked lists; give a trained run or a score file"
            )
        if (teacher.n_users, teacher.n_items) != (dataset.n_users, dataset.n_items):
            raise RecdistillError(
                f"teacher {teacher.source!r} is for {teacher.n_users} users x {teacher.n_items} items, "
                f"dataset {dataset.name!r} has {dataset.n_users} x {dataset.n_items}"
            )
        self.teacher = teacher

    @classmethod
    def roles(cls, config: Any) -> Roles:
        return Roles()

    @classmethod
    def build(cls, parts: Parts) -> Distiller:
        p = parts
        return cls(p.models["student"], p.teachers["teacher"], p.dataset, p.config, p.device, p.seed)

    @property
    def student(self) -> Recommender:
        return self.models["student"]


DISTILLERS: Registry[type[Distiller]] = Registry("distiller")
