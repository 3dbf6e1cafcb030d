"""The trainer every base model and every distiller runs on.

Contract (what a distiller codes against)
-----------------------------------------
``Trainer(models, objective, dataset, config, out_dir=None, primary=None, stop_on=None)``

- ``models``: ``{name: Recommender}``, the *trained* models, in update order (teacher before
  student, as BD's Algorithm 1). One Adam optimizer with L2 ``weight_decay`` per model. A frozen
  model (a distiller's pre-trained teacher) is not in ``models``: the objective holds it.
- ``primary``: the run's main model, whose validation ``monitor`` drives early stopping unless
  ``stop_on`` says otherwise (default "student" if present, else the only model). Every model
  is validated and logged, and every model's own best state (by its own ``monitor``) is kept,
  checkpointed and saved.
- ``stop_on``: the models whose validation drives early stopping instead (default
  ``(primary,)``): the run stops after ``patience`` validations in a row that improved none of
  them (e.g. ``("teacher", "student")``: stop when neither improved). BD sets it from
  ``BDConfig.monitor_model``.
- ``objective`` (:class:`Objective`):

  - ``on_epoch_start(epoch)``: called before each epoch (0-based): rank refresh, resampling.
  - ``loss(name, batch, epoch) -> (scalar loss, {part: value})`` for model ``name``; the parts
    (e.g. ``{"base": .., "kd": ..}``, floats or 0-d tensors) are averaged per epoch into the log.
  - optional ``batches(epoch, generator) -> Iterator[Batch] | None``: own batches (None: the
    default ones below). Draw all randomness from ``generator`` to keep runs reproducible.
  - optional ``state_dict()`` / ``load_state_dict(state)``: saved in every checkpoint.

  Per batch, for each model in order: ``loss(name, ...)``, ``zero_grad``, ``backward``, ``step``.
  :class:`BaseObjective` returns ``model.base_loss(batch)``.
- Default batches (``Trainer.default_batches``): for ``batch_unit == "interaction"`` the training
  pairs (CSR order) shuffled each epoch, ``Batch(users, pos, neg (B, n_neg), idx)`` with ``idx``
  the pairs' CSR positions; for ``"user"`` (CDAE) the users with training items shuffled,
  ``Batch(users, neg (N,), neg_row (N,), idx=users)`` with ``n_neg x |I_u^+|`` negatives per
  user. Negatives are uniform over ``I_u^-`` (``NegativeSampler``), never a training positive.
- Randomness: ``torch.manual_seed(seed)`` at construction (dropout) and one CPU
  ``torch.Generator`` (``trainer.generator``) for batch order and sampling; both are
  checkpointed, so ``fit(resume=True)`` continues bitwise-identically on CPU.
- Several processes (``torchrun``; :mod:`recdistill.parallel`): every process builds the same
  batches, trains on its contiguous block of each batch's rows with its loss scaled by its share
  of the rows (a batch with fewer rows than processes: each process the whole batch, a 1/N share),
  and the gradients are summed over processes before each step, so every process
  holds the same model; dropout streams are per process and per epoch. Validation and the final
  metrics are computed split by users and gathered (identical to one process). Only rank 0 writes
  files and prints. A checkpoint records the number of processes and resumes only with it.
- Files in ``out_dir``: ``checkpoint.pt`` (every ``checkpoint_every`` epochs, atomic),
  ``log.jsonl`` (one line per epoch: losses, validation metrics, times), and at the end
  ``<name>.pt`` (best state, with the registry name and constructor kwargs, see
  ``recdistill.models.store``) and ``metrics.json`` (valid and test metrics, full and sampled
  protocols, of every model's best state).
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from tqdm import tqdm

from recdistill.config import Config
from recdistill.data.dataset import Dataset
from recdistill.data.pairs import csr_pairs
from recdistill.errors import RecdistillError, RunInterrupted
from recdistill.models.base import Batch, Recommender
from recdistill.parallel import (
    all_sum_,
    average_gradients,
    block,
    broadcast_parameters,
    is_main,
    rank_seed,
    world,
)
from recdistill.ranking.negatives import NegativeSampler
from recdistill.train.optim import make_optimizer
from recdistill.train.progress import EpochProgress
from recdistill.train.writer import RunWriter

PROTOCOLS = ("full", "sampled")


@runtime_checkable
class Objective(Protocol):
    """What the trainer minimises; see the module docstring."""

    def on_epoch_start(self, epoch: int) -> None: ...

    def loss(self, name: str, batch: Batch, epoch: int) -> tuple[torch.Tensor, dict[str, Any]]: ...


class BaseObjective:
    """Each model's own collaborative-filtering loss, ``model.base_loss(batch)``."""

    def __init__(self, models: dict[str, Recommender]) -> None:
        self.models = models

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def loss(self, name: str, batch: Batch, epoch: int) -> tuple[torch.Tensor, dict[str, Any]]:
        loss = self.models[name].base_loss(batch)
        return loss, {"base": loss.detach()}


def _numpy_state() -> dict[str, Any]:
    """NumPy's global RNG state as plain values and a tensor (loadable with weights_only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _set_numpy_state(st: dict[str, Any]) -> None:
    keys = st["keys"].numpy().astype(np.uint32)
    np.random.set_state((st["name"], keys, st["pos"], st["has_gauss"], st["cached_gaussian"]))


@contextlib.contextmanager
def compiled_determinism(compiled_on_cpu: bool) -> Iterator[None]:
    """Bitwise-reproducible compiled training on a CPU with several threads: a compiled
    backward's scatter-adds (the gathers' gradients) run in parallel with atomic float adds,
    whose order varies; with ``torch.use_deterministic_algorithms`` they fall back to the eager,
    ordered kernels. On one thread the compiled kernels are sequential (deterministic already,
    and faster), so the mode is only set with several; the previous mode is restored after."""
    if not compiled_on_cpu or torch.get_num_threads() <= 1:
        yield
        return
    prev, prev_warn = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


def _default_primary(models: dict[str, Recommender]) -> str:
    if "student" in models:
        return "student"
    if len(models) == 1:
        return next(iter(models))
    raise RecdistillError(f"several models {sorted(models)}; name the primary one (primary=...)")


class Trainer:
    """Adam + L2, validation every ``eval_every`` epochs, early stopping, atomic checkpoints.

    ``primary``: the model reported as the run's (``best_epoch`` in the log, ``metrics["primary"]``).
    ``stop_on``: the models whose validation drives early stopping (default: ``(primary,)``). The
    run stops once ``patience`` validations in a row improved none of them; every model keeps its
    own best-validation state either way.
    ``prune``: called after every validation with the primary model's validation history so
    far, ``[(epoch, metrics), ...]`` (checkpointed: a resumed run passes the epochs before the
    interruption too); True stops the run there (a search's pruner,
    ``recdistill.experiment.pruning``). The run then finishes as an early-stopped one (best
    state, test metrics) and its metrics say ``pruned_at``.
    ``extra_metrics``: called with the final metrics, returns figures to add to them (a
    distiller's refresh times, its distilled epochs) before ``metrics.json`` is written, once.
    """

    def __init__(
        self,
        models: dict[str, Recommender],
        objective: Objective,
        dataset: Dataset,
        config: Config,
        out_dir: str | Path | None = None,
        primary: str | None = None,
        stop_on: Sequence[str] | None = None,
        prune: Callable[[list[tuple[int, dict[str, float]]]], bool] | None = None,
        extra_metrics: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if not models:
            raise RecdistillError("Trainer needs at least one model to train")
        self.models = models
        self.objective = objective
        self.dataset = dataset
        self.config = config
        self.tc = config.train
        self.extra_metrics = extra_metrics
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.writer = RunWriter(self.out_dir)
        self.primary = primary or _default_primary(models)
        if self.primary not in models:
            raise RecdistillError(f"primary model {self.primary!r} not in {sorted(models)}")
        self.stop_on: tuple[str, ...] = tuple(stop_on) if stop_on else (self.primary,)
        unknown = [n for n in self.stop_on if n not in models]
        if unknown:
            raise RecdistillError(f"stop_on model(s) {unknown} not in {sorted(models)}")
        units = {m.batch_unit for m in models.values()}
        if len(units) != 1:
            raise RecdistillError(f"models mix batch units {sorted(units)}; the default batches need one")
        self.batch_unit = units.pop()
        self.device = torch.device(self.tc.device)
        self.protocol = config.resolved_protocol()
        self.monitor = config.resolved_monitor()
        #: the protocols of the final metrics (a ratio split: full ranking only)
        self.protocols = ("full",) if dataset.multi_heldout else PROTOCOLS
        torch.manual_seed(self.tc.seed)
        self.generator = torch.Generator().manual_seed(self.tc.seed)
        self.world_size = world()[1]
        for m in models.values():
            m.to(self.device)
            broadcast_parameters(m)  # the same start in every process
            if self.tc.compile:
                m.compile_base_loss()
        self.optimizers = {n: self.make_optimizer(m) for n, m in models.items()}
        self.sampler = NegativeSampler(dataset.train)
        users, items = csr_pairs(dataset.train)
        self.train_users = torch.from_numpy(users)  # (nnz,)
        self.train_items = torch.from_numpy(items)  # (nnz,)
        self.train_deg = torch.from_numpy(np.diff(dataset.train.indptr).astype(np.int64))  # (n_users,)
        first = models[self.primary]
        self.n_neg = self.tc.n_neg if self.tc.n_neg is not None else first.default_n_neg
        # state that is checkpointed
        self.epoch = 0  # epochs completed
        self.best: dict[str, dict[str, Any]] = {
            n: {"score": -math.inf, "epoch": -1, "valid": None} for n in models
        }
        self.best_states: dict[str, dict[str, torch.Tensor]] = {}
        self.bad_evals = 0
        self.stopped = False
        self.train_time = 0.0
        self.prune = prune
        self.pruned_at: int | None = None  # the epoch ``prune`` stopped the run at
        #: the primary model's validation metrics at every validation, [(epoch, metrics), ...]
        self.valid_history: list[tuple[int, dict[str, float]]] = []

    def make_optimizer(self, model: Recommender) -> Any:
        """``train.optimizer`` for ``model`` (:mod:`recdistill.train.optim`)."""
        return make_optimizer(self.tc.optimizer, model, self.tc.lr, self.tc.weight_decay)

    # ---------------------------------------------------------------- batches
    def default_batches(self, epoch: int, generator: torch.Generator) -> Iterator[Batch]:
        bs = self.tc.batch_size
        if self.batch_unit == "interaction":
            n = self.train_users.numel()
            perm = torch.randperm(n, generator=generator)  # (nnz,)
            users = self.train_users[perm]  # (nnz,)
            neg = self.sampler.sample(users, self.n_neg, generator)  # (nnz, n_neg)
            pos = self.train_items[perm]  # (nnz,)
            for s in range(0, n, bs):
                yield Batch(users[s : s + bs], pos[s : s + bs], neg[s : s + bs], perm[s : s + bs])
        elif self.batch_unit == "user":
            active = torch.nonzero(self.train_deg > 0).squeeze(1)  # (n_active,)
            order = active[torch.randperm(active.numel(), generator=generator)]  # (n_active,)
            for s in range(0, order.numel(), bs):
                u = order[s : s + bs]  # (B,)
                counts = self.train_deg[u] * self.n_neg  # (B,)
                neg_row = torch.repeat_interleave(torch.arange(u.numel()), counts)  # (N,)
                neg = self.sampler.sample(u[neg_row], 1, generator).squeeze(1)  # (N,)
                yield Batch(u, None, neg, u, neg_row)
        else:
            raise RecdistillError(f"unknown batch_unit {self.batch_unit!r}")

    def _batches(self, epoch: int) -> Iterator[Batch]:
        custom = getattr(self.objective, "batches", None)
        it = custom(epoch, self.generator) if custom is not None else None
        return it if it is not None else self.default_batches(epoch, self.generator)

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, model: Recommender, split: str, protocol: str | None = None) -> dict[str, float]:
        from recdistill.eval import evaluate_model

        return evaluate_model(
            model,
            self.dataset,
            protocol or self.protocol,
            split,
            self.tc.ks,
            batch_size=self.tc.eval_batch_size,
            exclude_valid=self.tc.eval_exclude_valid,
        )

    def _monitor_value(self, metrics: dict[str, float]) -> float:
        if self.monitor not in metrics:
            raise RecdistillError(
                f"train.monitor {self.monitor!r} is not a reported metric; "
                f"known: {', '.join(k for k in metrics if '@' in k)}"
            )
        return float(metrics[self.monitor])

    # ---------------------------------------------------------------- one epoch
    def train_epoch(self, epoch: int) -> dict[str, dict[str, float]]:
        """One pass over the batches; returns ``{model: {part: mean over batches}}``."""
        with compiled_determinism(self.tc.compile and self.device.type == "cpu"):
            return self._train_epoch(epoch)

    def _train_epoch(self, epoch: int) -> dict[str, dict[str, float]]:
        parallel = self.world_size > 1
        if parallel:  # each process its own dropout stream, reproducible per epoch
            torch.manual_seed(rank_seed(self.tc.seed, epoch))
        self.objective.on_epoch_start(epoch)
        for m in self.models.values():
            m.train()
        sums: dict[str, dict[str, Any]] = {n: {} for n in self.models}
        n_batches = 0
        show = self.tc.progress and sys.stderr.isatty() and is_main()
        bar = tqdm(
            self._batches(epoch), desc=f"epoch {epoch + 1}", disable=not show, leave=False, unit="batch"
        )
        for batch in bar:
            share = 1.0
            if parallel and batch.n_rows >= self.world_size:  # this process's block of the rows
                lo, hi = block(batch.n_rows)
                share = (hi - lo) / batch.n_rows
                batch = batch.rows(lo, hi)
            elif parallel:  # fewer rows than processes: each the whole batch, a 1/N share, so
                share = 1.0 / self.world_size  # every process calls the objective (its streams)
            batch = batch.to(self.device)
            for name, model in self.models.items():
                opt = self.optimizers[name]
                opt.zero_grad(set_to_none=True)
                if batch.n_rows:
                    loss, parts = self.objective.loss(name, batch, epoch)
                    (loss * share if parallel else loss).backward()
                    acc = sums[name]
                    acc["loss"] = acc.get("loss", 0.0) + loss.detach() * share
                    for k, v in parts.items():
                        acc[k] = acc.get(k, 0.0) + (v.detach() if isinstance(v, torch.Tensor) else v) * share
                average_gradients(model.parameters())  # no-op in one process
                opt.step()
            n_batches += 1
        if parallel:  # the global batches' averages
            for acc in sums.values():
                keys = sorted(acc)
                vals = all_sum_(torch.tensor([float(acc[k]) for k in keys], dtype=torch.float64))
                acc.update({k: float(v) for k, v in zip(keys, vals.tolist())})
        out = {n: {k: float(v) / max(n_batches, 1) for k, v in acc.items()} for n, acc in sums.items()}
        for n, parts in out.items():
            if not math.isfinite(parts.get("loss", 0.0)):
                where = f"; the last checkpoint is in {self.out_dir}" if self.out_dir is not None else ""
                raise RecdistillError(
                    f"epoch {epoch + 1}: the loss of {n!r} is {parts['loss']} (train.lr={self.tc.lr:g} too "
                    f"large, or a diverging distillation weight?); training stopped{where}"
                )
        return out

    def validate(self) -> dict[str, dict[str, float]]:
        """Validation metrics of every model; updates best states and the stopping counter."""
        valid = {n: self.evaluate(m, "valid") for n, m in self.models.items()}
        improved = False
        for n, m in self.models.items():
            score = self._monitor_value(valid[n])
            if score > self.best[n]["score"]:
                self.best[n] = {"score": score, "epoch": self.epoch, "valid": valid[n]}
                self.best_states[n] = copy.deepcopy({k: v.detach().cpu() for k, v in m.state_dict().items()})
                improved = improved or n in self.stop_on
        self.bad_evals = 0 if improved else self.bad_evals + 1
        if self.bad_evals >= self.tc.patience:
            self.stopped = True
        self.valid_history.append((self.epoch, dict(valid[self.primary])))
        if self.prune is not None and not self.stopped and self.prune(self.valid_history):
            self.stopped, self.pruned_at = True, self.epoch
        return valid

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "models": {n: m.state_dict() for n, m in self.models.items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": _numpy_state(),
            "best": self.best,
            "best_states": self.best_states,
            "bad_evals": self.bad_evals,
            "stopped": self.stopped,
            "pruned_at": self.pruned_at,
            "valid_history": [[e, dict(m)] for e, m in self.valid_history],
            "train_time": self.train_time,
            "world_size": self.world_size,
            "dataset_fingerprint": self.dataset.fingerprint,
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if hasattr(self.objective, "state_dict"):
            state["objective"] = self.objective.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "config" in state:
            self._check_same_run(state["config"])
        saved_data = state.get("dataset_fingerprint")
        if saved_data is not None and saved_data != self.dataset.fingerprint:
            raise RecdistillError(
                f"{self.checkpoint_path or 'the checkpoint'} was written on another split of "
                f"{self.dataset.name!r} (its training matrix differs, e.g. a changed preset or seed): "
                "train without --resume"
            )
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.world_size:
            raise RecdistillError(
                f"{self.checkpoint_path or 'the checkpoint'} was written by {saved_world} process(es), "
                f"this run has {self.world_size}: resume with the same number of processes"
            )
        if sorted(state["models"]) != sorted(self.models):
            raise RecdistillError(
                f"checkpoint has models {sorted(state['models'])}, run has {sorted(self.models)}"
            )
        for n, m in self.models.items():
            m.load_state_dict(state["models"][n])
            self.optimizers[n].load_state_dict(state["optimizers"][n])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        _set_numpy_state(state["numpy_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.epoch = state["epoch"]
        self.best = state["best"]
        self.best_states = state["best_states"]
        self.bad_evals = state["bad_evals"]
        self.stopped = state["stopped"]
        self.pruned_at = state.get("pruned_at")
        self.valid_history = [(int(e), dict(m)) for e, m in state.get("valid_history", [])]
        self.train_time = state["train_time"]
        if "objective" in state and hasattr(self.objective, "load_state_dict"):
            self.objective.load_state_dict(state["objective"])

    #: settings a resumed run may change (they do not change what is computed so far)
    RESUMABLE_CHANGES = frozenset(
        {
            "train.epochs",
            "train.patience",
            "train.progress",
            "train.device",
            "train.eval_batch_size",
            "train.checkpoint_every",
            "data.data_dir",
        }
    )

    def _check_same_run(self, saved: dict[str, Any]) -> None:
        """A checkpoint continues only the run it was written by (same config but the keys of
        :attr:`RESUMABLE_CHANGES`)."""
        now = self.config.to_dict()
        defaults = type(self.config)().to_dict()  # a setting newer than the checkpoint: its default
        for sec in sorted(set(saved) | set(now)):
            a, b = saved.get(sec) or {}, now.get(sec) or {}
            for key in sorted(set(a) | set(b)):
                name = f"{sec}.{key}"
                was = a.get(key, (defaults.get(sec) or {}).get(key))
                if name not in self.RESUMABLE_CHANGES and was != b.get(key):
                    where = self.checkpoint_path or "the checkpoint"
                    raise RecdistillError(
                        f"{where} was written by a run with {name}={was!r}, this run has "
                        f"{name}={b.get(key)!r}: resume with the same settings, or train without --resume"
                    )

    @property
    def checkpoint_path(self) -> Path | None:
        return self.writer.checkpoint_path

    # ---------------------------------------------------------------- main loop
    def fit(self, resume: bool = False, stop_after: int | None = None) -> dict[str, Any]:
        """Train until ``epochs`` or early stopping; then save the best states and metrics.

        ``resume``: continue from ``out_dir/checkpoint.pt`` if it exists. ``stop_after``: return
        after this many epochs in total without finishing (simulates an interruption; used in
        tests). Returns the final metrics (see :meth:`final_metrics`), or ``{}`` if stopped early.
        """
        state = self.writer.start(resume)
        if state is not None:
            self.load_state_dict(state)
            self.writer.trim_log(self.epoch)
        bar = EpochProgress(self.tc.progress, self.tc.epochs, self.epoch, self.primary, self.monitor)
        try:
            while self.epoch < self.tc.epochs and not self.stopped:
                if stop_after is not None and self.epoch >= stop_after:
                    return {}
                self._one_epoch(bar)
        except KeyboardInterrupt:
            raise RunInterrupted(self._interrupted_message()) from None
        finally:
            bar.close()
        return self.finish()

    def _interrupted_message(self) -> str:
        done = self.writer.checkpoint_epoch()
        if done is None:
            return f"interrupted in epoch {self.epoch + 1}; no checkpoint was written (no run directory)"
        return (
            f"interrupted in epoch {self.epoch + 1}; the checkpoint of epoch {done} is in {self.out_dir}: "
            "run the same command with --resume to continue"
        )

    def _one_epoch(self, bar: EpochProgress) -> None:
        """Train one epoch, validate when due, checkpoint, log."""
        t0 = time.perf_counter()
        losses = self.train_epoch(self.epoch)
        t_train = time.perf_counter() - t0
        self.train_time += t_train
        self.epoch += 1
        record: dict[str, Any] = {"epoch": self.epoch, "loss": losses, "time_train_s": round(t_train, 4)}
        if self.epoch % self.tc.eval_every == 0 or self.epoch == self.tc.epochs:
            t1 = time.perf_counter()
            record["valid"] = self.validate()
            record["time_eval_s"] = round(time.perf_counter() - t1, 4)
            record["best_epoch"] = self.best[self.primary]["epoch"]
        last = self.epoch >= self.tc.epochs or self.stopped
        if self.checkpoint_path is not None and (self.epoch % self.tc.checkpoint_every == 0 or last):
            self.writer.checkpoint(self.state_dict())
        self.writer.log(record)
        bar.update(self.epoch, record, self.best[self.primary], time.perf_counter() - t0)

    def finish(self) -> dict[str, Any]:
        """Load every model's best state, write ``<name>.pt`` and ``metrics.json``."""
        if self.best[self.primary]["epoch"] < 0:  # never validated (e.g. epochs=0)
            self.validate()
        last: dict[str, Any] = {}
        if self.tc.report_last:  # the last epoch's state, before the best ones are loaded
            for n, m in self.models.items():
                last[n] = {"epoch": self.epoch}
                for split in ("valid", "test"):
                    last[n][split] = {p: self.evaluate(m, split, p) for p in self.protocols}
        for n, m in self.models.items():
            if n in self.best_states:
                m.load_state_dict(self.best_states[n])
        metrics = self.final_metrics()
        for n, res in last.items():
            metrics["models"][n]["last"] = res
        if self.extra_metrics is not None:
            metrics.update(self.extra_metrics(metrics))
        data = {"dataset": self.dataset.name, "dataset_fingerprint": self.dataset.fingerprint}
        self.writer.models(
            self.models, {n: {"best_epoch": self.best[n]["epoch"], **data} for n in self.models}
        )
        self.writer.metrics(metrics)
        return metrics

    def final_metrics(self) -> dict[str, Any]:
        """``{"models": {name: {"valid"|"test": {"full"|"sampled": metrics}, ...}}, ...}``."""
        out: dict[str, Any] = {
            "dataset": self.dataset.name,
            "dataset_fingerprint": self.dataset.fingerprint,
            "primary": self.primary,
            "stop_on": list(self.stop_on),
            "monitor": self.monitor,
            "protocol": self.protocol,
            "epochs_run": self.epoch,
            "early_stopped": self.stopped,
            "train_time_s": round(self.train_time, 3),
            "seed": self.tc.seed,
            "models": {},
        }
        if self.pruned_at is not None:
            out["pruned_at"] = self.pruned_at
        for n, m in self.models.items():
            res: dict[str, Any] = {
                "model": m.name,
                "n_parameters": m.n_parameters,
                "best_epoch": self.best[n]["epoch"],
            }
            for split in ("valid", "test"):
                res[split] = {p: self.evaluate(m, split, p) for p in self.protocols}
            out["models"][n] = res
        return out
