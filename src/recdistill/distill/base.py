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
``L_student = L_base + 0.001·L_RRD``. Frozen-teacher baselines (RD, CD, RRD, IR-RRD) derive from
:class:`FrozenTeacherDistiller`; BD trains both models and derives from :class:`Distiller`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

from recdistill.data.dataset import Dataset
from recdistill.models.base import Batch, Recommender

__all__ = [
    "Distiller",
    "FrozenTeacherDistiller",
    "PairSet",
    "draw_uniform_excluding",
    "demo_runner",
    "draw_without_replacement",
    "format_formula",
    "make_config",
]


# ------------------------------------------------------------------------------ config helpers
def make_config(cls: type, overrides: Mapping[str, Any] | None = None, where: str = "distill.params") -> Any:
    """Build the method's dataclass ``cls`` from its defaults plus ``overrides``.

    Delegates to :func:`recdistill.config.parse_dataclass`: unknown keys and values of the wrong
    type raise ``ValueError`` naming the key (a misspelt key never falls back to a default).
    """
    from recdistill.config import parse_dataclass

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

    @classmethod
    def build_config(cls, params: Mapping[str, Any] | None = None) -> Any:
        """The method's config: ``Config`` defaults <- ``config_defaults`` <- ``params``."""
        return make_config(cls.Config, {**cls.config_defaults, **dict(params or {})})

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

    def formula(self, name: str = "student", epoch: int | None = None) -> str:
        """The objective as a formula, e.g. ``L_student = L_base + 0.001·L_RRD``."""
        base_w, lams = self.weights(name, self.epoch if epoch is None else epoch)
        return format_formula(name, base_w, lams)

    @classmethod
    def run(cls, config: Any, **kwargs: Any) -> tuple[Any, Distiller, dict[str, Any]]:
        """Build the models and this distiller from a run ``config`` and train them; returns
        (trainer, distiller, metrics). The CLI calls this for every method, with keyword
        arguments ``out_dir``, ``teacher``, ``student``, ``resume``, ``cache_dir`` (a method
        ignores those it does not use). Frozen-teacher methods: :func:`frozen_teacher_run`."""
        raise NotImplementedError(f"distiller {cls.name!r} does not implement run()")

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
            raise ValueError(
                f"{self.name or type(self).__name__} needs teacher scores, but teacher "
                f"{teacher.source!r} only gives ranked lists; give a trained run or a score file"
            )
        if (teacher.n_users, teacher.n_items) != (dataset.n_users, dataset.n_items):
            raise ValueError(
                f"teacher {teacher.source!r} is for {teacher.n_users} users x {teacher.n_items} items, "
                f"dataset {dataset.name!r} has {dataset.n_users} x {dataset.n_items}"
            )
        self.teacher = teacher

    @property
    def student(self) -> Recommender:
        return self.models["student"]

    @classmethod
    def run(cls, config: Any, **kwargs: Any) -> tuple[Any, FrozenTeacherDistiller, dict[str, Any]]:
        """Train a student from a frozen teacher; see :func:`frozen_teacher_run`."""
        return frozen_teacher_run(cls, config, **kwargs)


# ------------------------------------------------------------------------------ shared drawing
def draw_without_replacement(
    weights: torch.Tensor, k: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``k`` columns per row without replacement with probability ∝ ``weights`` (successive
    sampling), via Gumbel-top-k: ``argtopk(log w + G)``, G ~ Gumbel(0, 1).

    weights: (R, N) >= 0 (0 = never drawn, e.g. padding). Returns (positions (R, k) int64 sorted
    ascending, i.e. kept in the list's order, valid (R, k) bool; False where a row has fewer than
    k drawable columns). The uniforms come from ``generator`` (CPU) and are moved to the weights'
    device, so draws are identical on any device.
    """
    R, N = weights.shape
    k_eff = min(k, N)
    u = torch.rand(R, N, generator=generator, dtype=torch.float64).to(weights.device)  # (R, N)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))  # (R, N)
    keys = torch.where(weights > 0, torch.log(weights.double()) + gumbel, float("-inf"))  # (R, N)
    vals, pos = torch.topk(keys, k_eff, dim=1)  # (R, k)
    valid = torch.isfinite(vals)  # (R, k)
    pos = torch.where(valid, pos, N).sort(dim=1).values  # (R, k) teacher order, invalid last
    valid = pos < N
    pos = pos.clamp_max(N - 1)
    if k_eff < k:  # pad to k columns
        pad = k - k_eff
        pos = torch.cat([pos, pos.new_zeros(R, pad)], dim=1)
        valid = torch.cat([valid, valid.new_zeros(R, pad)], dim=1)
    return pos, valid


class PairSet:
    """A set of (row, col) pairs as sorted int64 keys ``row * n_cols + col``; vectorised lookup."""

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, n_cols: int) -> None:
        self.n_cols = int(n_cols)
        keys = rows.to(torch.int64) * self.n_cols + cols.to(torch.int64)
        self.keys = torch.unique(keys)  # (P,) sorted

    def contains(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        q = rows.to(torch.int64) * self.n_cols + cols.to(torch.int64)  # (...)
        if self.keys.numel() == 0:
            return torch.zeros_like(q, dtype=torch.bool)
        flat = q.reshape(-1)
        pos = torch.searchsorted(self.keys, flat).clamp_(max=self.keys.numel() - 1)
        return (self.keys[pos] == flat).reshape(q.shape)


def draw_uniform_excluding(
    rows: torch.Tensor,
    n_cols: int,
    k: int,
    exclude: PairSet,
    generator: torch.Generator,
    max_rounds: int = 50,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` columns per row drawn uniformly (with replacement) from the columns not in ``exclude``,
    by rejection: only rejected draws are redrawn (loops over rounds, never over rows).

    rows: (R,) int64 (CPU). Returns (cols (R, k) int64, valid (R, k) bool); a draw still rejected
    after ``max_rounds`` (a row with almost every column excluded) is marked invalid.
    """
    r = rows.to("cpu", torch.int64)[:, None].expand(-1, k)  # (R, k)
    cols = torch.randint(n_cols, r.shape, generator=generator)  # (R, k)
    bad = exclude.contains(r, cols)  # (R, k)
    for _ in range(max_rounds):
        n_bad = int(bad.sum())
        if n_bad == 0:
            break
        redraw = torch.randint(n_cols, (n_bad,), generator=generator)  # (n_bad,)
        cols[bad] = redraw
        bad[bad.clone()] = exclude.contains(r[bad], redraw)
    return cols, ~bad


# ------------------------------------------------------------------------------------- running
def frozen_teacher_run(
    cls: type[FrozenTeacherDistiller],
    config: Any,
    out_dir: str | Path | None = None,
    dataset: Dataset | None = None,
    teacher: Any = None,
    resume: bool = False,
    cache_dir: str | Path | None = None,
    log: Any = print,
    student: Any = None,
) -> tuple[Any, FrozenTeacherDistiller, dict[str, Any]]:
    """Train a student with distiller ``cls`` from a frozen teacher; returns (trainer, distiller,
    metrics). The API behind ``recdistill distill --method rd|cd|rrd|ir-rrd|rrd+ir-rrd``.

    config: the run :class:`recdistill.config.Config` (``model`` = the student, ``distill.method``,
    ``distill.teacher``, ``distill.params``). teacher: a teacher source overriding
    ``distill.teacher`` (a run directory, a score/list file, a :class:`Recommender` or a
    :class:`recdistill.distill.teacher.Teacher`). cache_dir: where the teacher's top-N lists are
    cached (default: ``<teacher run>/cache`` for a run directory, else none) unless
    ``distill.params.cache_dir`` is set. ``out_dir`` gets ``student.pt``, ``config.yaml``,
    ``log.jsonl``, ``metrics.json`` and ``distill.json`` (method, formula, hyperparameters).
    """
    from recdistill.distill.teacher import Teacher, load_teacher
    from recdistill.models import build_model
    from recdistill.train import Trainer
    from recdistill.train.io import atomic_json
    from recdistill.train.run import load_dataset_for, write_config

    if student is not None:
        raise ValueError(f"{cls.name}: the student starts from scratch; --student is for BD only")
    if dataset is None:
        dataset = load_dataset_for(config)
    source = teacher if teacher is not None else config.distill.teacher
    if source is None:
        raise ValueError(f"{cls.name}: give a teacher (--teacher RUN_DIR or a score/list file)")
    device = config.train.device
    if not isinstance(source, Teacher):
        if cache_dir is None and isinstance(source, (str, Path)) and Path(source).is_dir():
            cache_dir = Path(source) / "cache"
        source = load_teacher(source, dataset, device)
    params = dict(config.distill.params)
    if cache_dir is not None and "cache_dir" in {f.name for f in dataclasses.fields(cls.Config)}:
        params.setdefault("cache_dir", str(cache_dir))
    params_cfg = cls.build_config(params)
    torch.manual_seed(config.train.seed)
    mc = config.model
    student = build_model(mc.name, dataset, size=mc.size, dim=mc.dim, **mc.params).to(device)
    distiller = cls(student, source, dataset, params_cfg, device=device, seed=config.train.seed)
    log(distiller.describe())
    if out_dir is not None:
        write_config(config, out_dir)
        atomic_json(
            {
                "method": cls.name,
                "formula": distiller.formula("student"),
                "params": dataclasses.asdict(params_cfg),
                "teacher": source.source,
                "teacher_fingerprint": source.fingerprint,
            },
            Path(out_dir) / "distill.json",
        )
    trainer = Trainer(distiller.models, distiller, dataset, config, out_dir)
    metrics = trainer.fit(resume=resume)
    return trainer, distiller, metrics


def demo_runner(method: str, teacher_row: str = "teacher") -> Any:
    """A row runner for ``recdistill demo`` (:class:`recdistill.train.demo.DemoRun`): distil the
    row's ``config.model`` with ``method`` from the run folder of the demo row ``teacher_row``
    (the row's ``distill.params`` apply). Returns the run's metrics (model ``"student"``)."""

    def runner(config: Any, out_dir: Path, runs: dict[str, Path], dataset: Dataset) -> dict[str, Any]:
        from recdistill.distill import load_distillers

        teacher = str(runs[teacher_row])
        cfg = dataclasses.replace(
            config, distill=dataclasses.replace(config.distill, method=method, teacher=teacher)
        )
        return load_distillers().get(method).run(cfg, out_dir=out_dir, dataset=dataset, teacher=teacher)[2]

    return runner
