"""The contract every recommender follows (RecBole's two-method shape, plus pair scores), and
the registry every model file registers itself in (``@register_model("name")``).

Distillation methods are model-agnostic: they only call ``score_all`` and ``score``. A model
whose scores need a preparation step (LightGCN's graph propagation) does it in
:meth:`Recommender.scoring`, which every ranking pass enters once (the rank engine, the
evaluator, a frozen teacher).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from recdistill.errors import RecdistillError
from recdistill.registry import Registry


def lookup(emb: nn.Embedding, index: torch.Tensor) -> torch.Tensor:
    """``emb(index)`` computed as ``index_select`` on the weight: the same values, and a backward
    that is ``index_add_`` (forward + backward in about half of ``nn.Embedding``'s time on the CPU
    for the ~10^5 rows a distillation batch gathers: ``benchmarks/bench_lookup.py``). A table
    switched to sparse gradients (``train.optimizer=sparse_adam``) keeps ``nn.Embedding``.
    index (...,) -> (..., dim)."""
    if emb.sparse:  # row-sparse gradients (train.optimizer=sparse_adam) come from the module
        return emb(index)
    return emb.weight.index_select(0, index.reshape(-1)).view(*index.shape, emb.embedding_dim)


@dataclass
class Batch:
    """One training batch.

    users: (B,) user ids. pos: (B,) a positive item per row, or None for user-batched models
    (CDAE). neg: (B, n_neg) sampled unobserved items, or None; for user-batched models with a
    different number of negatives per user, ``neg`` is flat (N,) and ``neg_row`` (N,) gives the
    row of ``users`` each negative belongs to. idx: (B,) for interaction batches, the row's
    index into the training interactions in CSR order (``dataset.train`` ``indices``), so a
    distiller can look up per-interaction samples it drew at ``on_epoch_start``; for user
    batches, equal to ``users``. whole: for one process's share of a batch under ``torchrun``
    (:meth:`rows`), the whole batch, so a loss defined on the batch's distinct rows (RRD, DCD)
    can split those rows instead of the process's share of the interactions; else None.
    """

    users: torch.Tensor
    pos: torch.Tensor | None = None
    neg: torch.Tensor | None = None
    idx: torch.Tensor | None = None
    neg_row: torch.Tensor | None = None
    whole: Batch | None = None

    @property
    def n_rows(self) -> int:
        return int(self.users.numel())

    def rows(self, start: int, end: int) -> Batch:
        """Rows ``[start, end)`` of the batch (one process's share under ``torchrun``); a user
        batch keeps the negatives of those rows, renumbered."""
        neg, neg_row = self.neg, self.neg_row
        if neg_row is not None and neg is not None:
            keep = (neg_row >= start) & (neg_row < end)  # (N,)
            neg, neg_row = neg[keep], neg_row[keep] - start
        elif neg is not None:
            neg = neg[start:end]
        return Batch(
            self.users[start:end],
            None if self.pos is None else self.pos[start:end],
            neg,
            None if self.idx is None else self.idx[start:end],
            neg_row,
            self,
        )

    def to(self, device: torch.device | str) -> Batch:
        def mv(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(
            self.users.to(device, non_blocking=True),
            mv(self.pos),
            mv(self.neg),
            mv(self.idx),
            mv(self.neg_row),
            None if self.whole is None else self.whole.to(device),
        )


class Recommender(nn.Module):
    """Base class: logits for users against all items or against given items.

    Subclasses set ``init_kwargs`` (the constructor's keyword arguments other than data
    matrices) so a saved model can be rebuilt with ``MODELS.get(name)(**init_kwargs)``.
    """

    #: "interaction" (batches of (u, i) training pairs, e.g. BPR, NeuMF) or "user" (batches of
    #: users with their whole training row, e.g. CDAE).
    batch_unit: str = "interaction"
    #: negatives per training row the trainer samples by default ("interaction": per (u, i)
    #: pair; "user": per observed item of the user, e.g. CDAE's 5 x |I_u^+|).
    default_n_neg: int = 1
    #: registry name (set by ``MODELS`` registration helpers)
    name: str = ""

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.init_kwargs: dict[str, Any] = {"n_users": n_users, "n_items": n_items}

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Logits of ``users`` (B,) against every item -> (B, n_items)."""
        raise NotImplementedError

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits for given items per user: users (B,), items (B, k) -> (B, k)."""
        raise NotImplementedError

    def score_users(self, items: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Logits for given users per item (the item side of IR-RRD and DCD): items (I,), users
        (I, k) -> (I, k). Default: :meth:`score` on the expanded pairs; models override it to
        look each item up once."""
        r, k = users.shape
        it = items[:, None].expand(r, k)  # (I, k)
        return self.score(users.reshape(-1), it.reshape(-1, 1)).reshape(r, k)

    def score_pairs(self, users: torch.Tensor, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of the pairs ``(users[rows], items)``: users (B,), rows (N,) into ``users``,
        items (N,) -> (N,), computed as one batch of ``users`` (a model with a stochastic
        forward, e.g. CDAE's dropout, draws it once per user). Default: :meth:`score_all`."""
        return self.score_all(users)[rows, items]

    def base_loss(self, batch: Batch) -> torch.Tensor:
        """The model's own collaborative-filtering loss on a batch (a scalar)."""
        raise NotImplementedError

    def compile_base_loss(self) -> None:
        """Replace this model's :meth:`base_loss` by its ``torch.compile`` (``train.compile``):
        dynamic shapes, so the last, smaller batch of an epoch reuses the compilation. A model
        with a hand-written gradient keeps its autograd form under compilation (BPR checks
        ``torch.compiler.is_compiling()``), which the compiler differentiates and fuses."""
        compiled = torch.compile(type(self).base_loss, dynamic=True)

        def base_loss(batch: Batch) -> torch.Tensor:
            try:
                return compiled(self, batch)
            except torch._dynamo.exc.TorchDynamoException as e:  # the compiler's (no C++ compiler, ...)
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise RecdistillError(
                    f"train.compile=true: torch.compile failed for {type(self).__name__} ({first[:200]}); "
                    "set train.compile=false"
                ) from e

        self.base_loss = base_loss  # type: ignore[method-assign]

    @contextlib.contextmanager
    def scoring(self) -> Iterator[None]:
        """A ranking pass: inside, the parameters do not change and no gradient flows, so a
        model may prepare what its scores share once (LightGCN: the propagated embeddings)
        instead of once per chunk. Default: nothing to prepare."""
        yield

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


M = TypeVar("M", bound=type[Recommender])

MODELS: Registry[type[Recommender]] = Registry("model")
"""Recommenders by name, one file per model (``recdistill.models`` imports every file)."""


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator: register the model under ``name`` (and set its ``name``)."""

    def deco(cls: M) -> M:
        cls.name = name
        MODELS.register(name)(cls)
        return cls

    return deco
