"""Entry points: ``evaluate`` (any score function) and ``evaluate_model`` (a ``Recommender``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from recdistill.data.dataset import Dataset
from recdistill.errors import RecdistillError
from recdistill.eval.metrics import check_ks, metrics_from_ranks
from recdistill.eval.ranks import ScoreFn, ScoreItemsFn, heldout_ranks
from recdistill.eval.sets import heldout_set_ranks, metrics_from_set_ranks
from recdistill.models.base import Recommender

DEFAULT_KS = (5, 10, 20, 50, 100)


def evaluate(
    score_fn: ScoreFn | None,
    dataset: Dataset,
    protocol: str = "full",
    split: str = "test",
    ks: Sequence[int] = DEFAULT_KS,
    *,
    ties: str = "pessimistic",
    batch_size: int | None = None,
    score_items_fn: ScoreItemsFn | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    exclude_valid: bool = True,
) -> dict[str, float]:
    """H@K, N@K, M@K of the held-out items of ``split`` under ``protocol``, averaged over users;
    on a ratio split (several held-out items per user; full protocol only) R@K, N@K, P@K, H@K,
    M@K (:mod:`recdistill.eval.sets`).

    ``score_fn(users: LongTensor (B,)) -> (B, n_items)``; see ``heldout_ranks`` for the protocols,
    tie rules (default pessimistic: 1 + higher + equal) and the other arguments. Users whose
    held-out item is -1 are skipped. Returns ``{"H@5": ..., "N@5": ..., "M@5": ..., ...,
    "n_users": n}``.
    """
    ks = check_ks(ks)
    if dataset.multi_heldout:  # a ratio split: several held-out items per user
        if protocol != "full" or score_fn is None:
            dataset.heldout(split)  # the one-line error: no sampled protocol on a ratio split
        assert score_fn is not None
        indptr, set_ranks = heldout_set_ranks(
            score_fn,
            dataset,
            split,
            ties=ties,
            batch_size=batch_size or 256,
            device=device,
            progress=progress,
            exclude_valid=exclude_valid,
        )
        return metrics_from_set_ranks(indptr, set_ranks, ks)
    ranks = heldout_ranks(
        score_fn,
        dataset,
        protocol,
        split,
        ties=ties,
        batch_size=batch_size,
        score_items_fn=score_items_fn,
        device=device,
        progress=progress,
    )  # (n_users,)
    if not (ranks > 0).any():
        raise RecdistillError(
            f"dataset {dataset.name!r} has no user with a {split} item; nothing to evaluate"
        )
    return metrics_from_ranks(ranks, ks)


def evaluate_model(
    model: Recommender,
    dataset: Dataset,
    protocol: str = "full",
    split: str = "test",
    ks: Sequence[int] = DEFAULT_KS,
    *,
    ties: str = "pessimistic",
    batch_size: int | None = None,
    progress: bool = False,
    exclude_valid: bool = True,
) -> dict[str, float]:
    """``evaluate`` with ``model.score_all`` (and ``model.score`` for the sampled protocol).

    The model is put in eval mode for the evaluation (one ranking pass,
    :meth:`Recommender.scoring`) and its previous mode is restored. User ids are created on the
    model's device.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), model.scoring():
            return evaluate(
                model.score_all,
                dataset,
                protocol,
                split,
                ks,
                ties=ties,
                batch_size=batch_size,
                score_items_fn=model.score if protocol == "sampled" else None,
                device=model.device,
                progress=progress,
                exclude_valid=exclude_valid,
            )
    finally:
        model.train(was_training)
