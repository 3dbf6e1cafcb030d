"""Teacher-vs-student rank analyses of the BD paper (Kweon et al., WWW 2021, Sections 2 and 5.4).

- Eq. 1: ``Rank diff.^u(i) = rank_T^u(i) - rank_S^u(i)`` on each test interaction (u, i); a
  positive value means the student ranks the held-out item higher (better) than the teacher.
- Eq. 6: normalised average rank difference ``(1 / (n m)) sum_{D_test} |Rank diff.^u(i)|``.
- Fig. 1b: ``(rank_S^u(i), rank_T^u(i))`` of high-ranked unobserved items, drawn per user with CD's
  rank-aware probability ``p(i) ∝ exp(-rank(i) / t_r)`` from each model's list (footnote 3).

Ranks are user-side ranks among the unobserved items ``I_u^-`` (the items not in the user's
training row), 1 = top. Held-out ranks are the evaluator's (full protocol: the other held-out item
is not a candidate) and count the items scoring strictly higher plus half of the equal ones
(METHODS.md tie rule), so they may end in .5.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recdistill.data.dataset import Dataset
from recdistill.errors import RecdistillError
from recdistill.ranking import RankEngine

ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # users (B,) -> logits (B, n_items)


@torch.no_grad()
def _as_float(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda users: fn(users).float()


def heldout_ranks(
    score_fn: ScoreFn,
    dataset: Dataset,
    split: str = "test",
    device: str | torch.device = "cpu",
    chunk: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Full-ranking rank of each user's held-out item (1 = top), as the evaluator counts it.

    Candidates are ``I_u^-`` minus the user's other held-out item (``recdistill.eval``'s full
    protocol); ties count half (``1 + #higher + #equal / 2``). Returns ``(users, ranks)``: the
    int64 users that have a held-out item and their float64 ranks.
    """
    from recdistill.eval import heldout_ranks as eval_ranks

    ranks = eval_ranks(score_fn, dataset, "full", split, ties="average", batch_size=chunk, device=device)
    users = np.flatnonzero(dataset.heldout(split) >= 0)
    return users, ranks[users].astype(np.float64)


def rank_difference(rank_t: np.ndarray, rank_s: np.ndarray) -> np.ndarray:
    """Eq. 1: ``rank_T - rank_S`` per test interaction (> 0: the student ranks it better)."""
    rank_t = np.asarray(rank_t, dtype=np.float64)
    rank_s = np.asarray(rank_s, dtype=np.float64)
    if rank_t.shape != rank_s.shape or rank_t.ndim != 1:
        raise RecdistillError(
            f"rank arrays must be 1-D of equal length; got {rank_t.shape} and {rank_s.shape}"
        )
    if len(rank_t) and (rank_t.min() < 1 or rank_s.min() < 1):
        raise RecdistillError("ranks start at 1 (1 = top)")
    return rank_t - rank_s


def student_better_share(diff: np.ndarray) -> float:
    """Share of test interactions the student ranks strictly better than the teacher (Sec. 2: 36%)."""
    diff = np.asarray(diff)
    if len(diff) == 0:
        raise RecdistillError("no test interactions")
    return float((diff > 0).mean())


def average_rank_difference(diff: np.ndarray, n_users: int, n_items: int) -> float:
    """Eq. 6: ``(1 / (n m)) sum_{D_test} |Rank diff.^u(i)|`` (Table 4)."""
    if n_users <= 0 or n_items <= 0:
        raise RecdistillError(f"n_users and n_items must be positive; got {n_users}, {n_items}")
    return float(np.abs(np.asarray(diff, dtype=np.float64)).sum() / (n_users * n_items))


@dataclass
class RankPairs:
    """Fig. 1b points: the drawn (user, item) pairs, their ranks by the student and by the teacher,
    and which list (``"teacher"`` or ``"student"``) each item was drawn from."""

    users: np.ndarray
    items: np.ndarray
    rank_s: np.ndarray
    rank_t: np.ndarray
    source: np.ndarray


@torch.no_grad()
def high_ranked_pairs(
    teacher_fn: ScoreFn,
    student_fn: ScoreFn,
    dataset: Dataset,
    per_user: int = 5,
    t_r: float = 10.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    chunk: int = 256,
    max_users: int | None = None,
) -> RankPairs:
    """Draw ``per_user`` items per user from each model's list with ``p(i) ∝ exp(-rank(i)/t_r)``
    over ``I_u^-`` (CD's rank-aware sampling, BD footnote 3) and return both models' ranks of them."""
    if per_user < 1 or t_r <= 0:
        raise RecdistillError(f"per_user must be >= 1 and t_r > 0; got {per_user}, {t_r}")
    gen = torch.Generator(device=device).manual_seed(seed)
    users = np.arange(dataset.n_users)
    if max_users is not None and max_users < len(users):
        users = np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))
    engine = RankEngine(dataset.train, device)
    us, its, rs, rt, src = [], [], [], [], []
    for start in range(0, len(users), chunk):
        u = users[start : start + chunk]
        ut = torch.from_numpy(u).to(device)
        # exact ranks from the rank engine (1 = top, 0 on observed items; ties to the lower id)
        ranks = {
            name: engine.ranks(_as_float(fn), "user", ut)
            for name, fn in (("teacher", teacher_fn), ("student", student_fn))
        }  # (B, m) int32 each
        for name in ("teacher", "student"):
            r = ranks[name].double()  # (B, m)
            w = torch.where(r > 0, torch.exp(-(r - 1) / t_r), 0.0)  # (B, m), observed items weight 0
            items = torch.multinomial(w, per_user, replacement=True, generator=gen)  # (B, k)
            us.append(np.repeat(u, per_user))
            its.append(items.flatten().cpu().numpy())
            rs.append(ranks["student"].gather(1, items).flatten().cpu().numpy())
            rt.append(ranks["teacher"].gather(1, items).flatten().cpu().numpy())
            src.append(np.full(items.numel(), name))
    cat = np.concatenate
    return RankPairs(cat(us), cat(its), cat(rs), cat(rt), cat(src))


def rank_difference_summary(
    teacher: Any,
    student: Any,
    dataset: Dataset,
    split: str = "test",
    n_quantiles: int = 501,
) -> dict[str, Any]:
    """BD Table 4 and Figs. 1a / 4 for one teacher-student pair, small enough to keep in a record:
    Eq. 6 (``eq6``), the share of held-out items the student ranks better (``student_better``),
    and the Eq. 1 differences as ``n_quantiles`` evenly spaced quantiles (``curve``: the sorted
    curve of Figs. 1a / 4, redrawn without the models). Both models are scored in eval mode."""
    with eval_mode(teacher, student):
        _, rank_t = heldout_ranks(model_scores(teacher), dataset, split, device=teacher.device)
        _, rank_s = heldout_ranks(model_scores(student), dataset, split, device=student.device)
    diff = rank_difference(rank_t, rank_s)  # (n_test,)
    return {
        "split": split,
        "eq6": average_rank_difference(diff, dataset.n_users, dataset.n_items),
        "student_better": student_better_share(diff),
        "n": int(len(diff)),
        "curve": [float(x) for x in np.quantile(diff, np.linspace(0.0, 1.0, n_quantiles))],
    }


@contextmanager
def eval_mode(*models: Any) -> Iterator[None]:
    """The models in eval mode (dropout off) and in one ranking pass each
    (``Recommender.scoring``) inside the block, each back in its mode after."""
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with ExitStack() as passes:
            for m in models:
                prepare = getattr(m, "scoring", None)
                if callable(prepare):
                    passes.enter_context(prepare())
            yield
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)


def model_scores(model: Any) -> ScoreFn:
    """``users (B,) -> model.score_all(users) (B, n_items)`` without gradients."""

    def fn(users: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.score_all(users)  # (B, n_items)

    return fn
