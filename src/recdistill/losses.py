"""Stateless distillation losses for every method (RD, CD, BD, RRD / IR-RRD, DCD's UCD / ICD).

Each function takes logits already gathered for the chosen targets (a distiller chooses the
items/users and weights; these functions only compute), is batched over rows (users, or items
for the item-side losses), has no Python loop over rows or targets, and is checked in the tests
with ``torch.autograd.gradcheck`` (float64) and against a loop transcription of its equation.

``reduction`` (every loss): ``"none"`` -> (B,) per-row loss (already summed over the row's
targets), ``"sum"`` -> scalar sum over rows, ``"mean"`` -> scalar mean over rows.
Rows with ``row_weight`` (B,) are weighted before the reduction (e.g. to drop padded rows).

Notation follows ``METHODS.md``: ``z^X(u, i)`` a logit of model X, ``σ`` the sigmoid, ``τ`` a
temperature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recdistill.errors import RecdistillError

__all__ = [
    "REDUCTIONS",
    "bd_loss",
    "cd_loss",
    "rd_loss",
    "relaxed_permutation_loss",
    "rrd_loss",
    "soft_label_bce",
    "ucd_loss",
    "icd_loss",
]

REDUCTIONS = ("none", "sum", "mean")


def _reduce(per_row: torch.Tensor, reduction: str, row_weight: torch.Tensor | None) -> torch.Tensor:
    if row_weight is not None:
        per_row = per_row * row_weight.to(per_row.dtype)  # (B,)
    if reduction == "none":
        return per_row
    if reduction == "sum":
        return per_row.sum()
    if reduction == "mean":
        return per_row.mean() if per_row.numel() else per_row.sum()
    raise RecdistillError(f"unknown reduction {reduction!r}; expected one of {', '.join(REDUCTIONS)}")


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape != b.shape:
        raise RecdistillError(f"{names}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")


# --------------------------------------------------------------------------------------------- RD
def rd_loss(
    student_logits: torch.Tensor,
    weights: torch.Tensor,
    reduction: str = "mean",
    row_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """RD (Tang & Wang, KDD 2018, Eq. 4): ``L_RD(u) = -Σ_r w_r log σ(z^S(u, π_r))``.

    student_logits: (B, K) the student's logits on the teacher's top-K items ``π_1..π_K``.
    weights: (B, K) or (K,) the (hybrid) weights ``w_r``; treated as constants (no gradient).
    """
    w = weights.detach().to(student_logits.dtype).expand_as(student_logits)  # (B, K)
    per_row = -(w * F.logsigmoid(student_logits)).sum(dim=-1)  # (B,)
    return _reduce(per_row, reduction, row_weight)


# ------------------------------------------------------------------------------------- CD and BD
def soft_label_bce(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    tau: float = 1.0,
    label_only: bool = False,
    reduction: str = "mean",
    row_weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Σ_j BCE(σ(z^X(u,j)/τ), σ(z^Y(u,j)/τ))`` over the sampled items j of each row.

    BCE(p, q) = -(q log p + (1-q) log(1-p)), with the label ``q = σ(z^Y/τ)`` detached (no
    gradient into the other model). This is BD's Eq. 3 (paper 001) and CD's soft-label loss.
    ``label_only=True`` is the official BD notebook's variant ``BCE(σ(z^X), σ(z^Y/τ))`` (only the
    label's logit is divided by τ).

    student_logits, teacher_logits: (B, J). mask: (B, J) bool, False entries are left out
    (padding). Computed as ``softplus(x) - q·x`` (stable for any logit).
    """
    _check_same_shape(student_logits, teacher_logits, "student_logits/teacher_logits")
    if not tau > 0:
        raise RecdistillError(f"temperature tau must be > 0, got {tau}")
    q = torch.sigmoid(teacher_logits.detach() / tau).to(student_logits.dtype)  # (B, J)
    x = student_logits if label_only else student_logits / tau  # (B, J)
    bce = F.binary_cross_entropy_with_logits(x, q, reduction="none")  # (B, J)
    if mask is not None:
        bce = bce.masked_fill(~mask, 0.0)
    return _reduce(bce.sum(dim=-1), reduction, row_weight)


def bd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    tau: float,
    label_only: bool = False,
    reduction: str = "mean",
    row_weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """BD's distillation loss ``L_BD(X; Y)`` (paper 001, Eq. 3), X learns from Y's soft labels.

    ``student_logits`` are the learner X's logits and ``teacher_logits`` the other model Y's, on
    the items drawn by rank-discrepancy-aware sampling, (B, J). Summed over the J items of a
    row, then reduced over rows (default: mean). See :func:`soft_label_bce`.
    """
    return soft_label_bce(student_logits, teacher_logits, tau, label_only, reduction, row_weight, mask)


def cd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    tau: float = 1.0,
    reduction: str = "mean",
    row_weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """CD (Lee et al., ICDM 2019): ``Σ_j BCE(σ(z^S(u,j)/τ), σ(z^T(u,j)/τ))`` over items drawn
    with rank-aware probability ``p(j) ∝ exp(-rank^u_T(j)/T_r)``. See :func:`soft_label_bce`."""
    return soft_label_bce(student_logits, teacher_logits, tau, False, reduction, row_weight, mask)


# ------------------------------------------------------------------------------ RRD / UCD / ICD
# A shifted entry below this (exp of it is ~1e-26 of the row's largest) might underflow in the
# cumulative sum; such rows go through ``torch.logcumsumexp`` instead.
_SHIFT_FLOOR = -60.0


def _suffix_logsumexp(z: torch.Tensor, rest: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
    """``log(Σ_{l>=k} exp z_l + exp rest)`` per row, (B, K), from one row-wise shift and a
    reversed ``cumsum`` of ``exp`` (ten times faster than ``torch.logcumsumexp`` on CPU); rows
    whose valid entries span more than ``-_SHIFT_FLOOR`` below the row's maximum (where ``exp``
    could underflow) fall back to the exact ``logcumsumexp``. ``rest``: (B, 1) log-sum-exp of
    the unordered set, or None. The shift is detached: the value does not depend on it."""
    m = z.amax(dim=-1, keepdim=True)  # (B, 1)
    if rest is not None:
        m = torch.maximum(m, rest)
    m = m.detach()
    low = z - m < _SHIFT_FLOOR  # (B, K)
    if mask is not None:
        low &= mask
    if bool(low.any()):
        tail = torch.logcumsumexp(z.flip(-1), dim=-1).flip(-1)  # (B, K): log Σ_{l>=k} exp z_l
        return tail if rest is None else torch.logaddexp(tail, rest)
    s = torch.exp(z - m).flip(-1).cumsum(dim=-1).flip(-1)  # (B, K) Σ_{l>=k} exp(z_l - m)
    if rest is not None:
        s = s + torch.exp(rest - m)
    # Padding alone (a fully masked suffix) can sum to 0; its terms are masked out, and the
    # clamp keeps log's gradient there finite (0 / tiny, not 0 / 0).
    return torch.log(s.clamp_min(torch.finfo(s.dtype).tiny)) + m


def relaxed_permutation_loss(
    ordered_logits: torch.Tensor,
    rest_logits: torch.Tensor,
    ordered_mask: torch.Tensor | None = None,
    rest_mask: torch.Tensor | None = None,
    reduction: str = "mean",
    row_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Negative log relaxed permutation probability (RRD, Kang et al. CIKM 2020; DCD Eq. 1):

    ``-log Π_{k=1..K} exp z(π_k) / (Σ_{l=k..K} exp z(π_l) + Σ_{j∈π'} exp z(j))``

    ordered_logits: (B, K) the model's logits on the ordered list ``π`` (teacher order, best
    first). rest_logits: (B, L) its logits on the unordered set ``π'``. Optional boolean masks of
    the same shapes mark valid entries (False = padding; padding in ``π`` may be anywhere, the
    remaining entries keep their relative order). Vectorised: a reversed ``logcumsumexp`` over
    ``π`` plus a ``logsumexp`` over ``π'``.
    """
    if ordered_logits.dim() != 2 or rest_logits.dim() != 2:
        raise RecdistillError(
            f"expected 2-D logits (B, K) and (B, L), got {tuple(ordered_logits.shape)} and "
            f"{tuple(rest_logits.shape)}"
        )
    if ordered_logits.shape[0] != rest_logits.shape[0]:
        raise RecdistillError(
            f"ordered_logits and rest_logits have different numbers of rows: "
            f"{ordered_logits.shape[0]} vs {rest_logits.shape[0]}"
        )
    # A finite stand-in for -inf keeps every backward pass free of inf - inf.
    neg = torch.finfo(ordered_logits.dtype).min / 4
    z = ordered_logits  # (B, K)
    r = rest_logits  # (B, L)
    if ordered_mask is not None:
        _check_same_shape(z, ordered_mask, "ordered_logits/ordered_mask")
        z = z.masked_fill(~ordered_mask, neg)
    if rest_mask is not None:
        _check_same_shape(r, rest_mask, "rest_logits/rest_mask")
        r = r.masked_fill(~rest_mask, neg)
    rest = torch.logsumexp(r, dim=-1, keepdim=True) if r.shape[-1] > 0 else None  # (B, 1)
    terms = _suffix_logsumexp(z, rest, ordered_mask) - z  # (B, K)
    if ordered_mask is not None:
        terms = terms.masked_fill(~ordered_mask, 0.0)
    return _reduce(terms.sum(dim=-1), reduction, row_weight)


def rrd_loss(
    interesting_logits: torch.Tensor,
    uninteresting_logits: torch.Tensor,
    reduction: str = "sum",
    row_weight: torch.Tensor | None = None,
    interesting_mask: torch.Tensor | None = None,
    uninteresting_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """RRD / IR-RRD: :func:`relaxed_permutation_loss` of the student on the K interesting
    targets (in teacher order) against the L uninteresting ones. The official RRD code sums over
    the rows of a batch (default ``reduction="sum"``, with ``λ_RRD = 1e-3``); DCD's Eq. 2 averages."""
    return relaxed_permutation_loss(
        interesting_logits, uninteresting_logits, interesting_mask, uninteresting_mask, reduction, row_weight
    )


def ucd_loss(
    under_logits: torch.Tensor,
    over_logits: torch.Tensor,
    reduction: str = "mean",
    row_weight: torch.Tensor | None = None,
    under_mask: torch.Tensor | None = None,
    over_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """DCD's UCD (paper 000, Eq. 7): relaxed permutation loss of the underestimated items ``ρ^u``
    sorted by the teacher's order, (B, M+), against the overestimated items ``M_u^-``, (B, M-);
    averaged over the users of the batch (``L_UCD = -1/|B| Σ_u log p(ρ^u|S)``)."""
    return relaxed_permutation_loss(under_logits, over_logits, under_mask, over_mask, reduction, row_weight)


def icd_loss(
    under_logits: torch.Tensor,
    over_logits: torch.Tensor,
    reduction: str = "mean",
    row_weight: torch.Tensor | None = None,
    under_mask: torch.Tensor | None = None,
    over_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """DCD's ICD (paper 000, Eq. 8): :func:`ucd_loss` on the item side; rows are items, targets
    are users (underestimated users in teacher order vs overestimated users)."""
    return relaxed_permutation_loss(under_logits, over_logits, under_mask, over_mask, reduction, row_weight)
