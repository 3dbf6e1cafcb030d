"""Draw weights as functions of ranks: the sampling schemes of BD, DCD, CD, RD and RRD.

A weight function maps a :class:`RankChunk` (the ranks of a block of rows under the teacher and,
if given, the student; 1 = top, 0 = observed) to non-negative float32 weights (B, m). Only ratios
within a row matter (draws are per row), so functions may rescale a row (the ``exp`` ones subtract
the row maximum of the exponent, as a softmax does, so they never overflow). The engine zeroes
observed entries afterwards anyway; a row whose weights are all zero is drawn uniformly over its
unobserved entries (see :mod:`recdistill.ranking.sampling`).

Factories are registered in :data:`WEIGHTS` by name; ``make_weight("bd_t2s", eps=1e-4)`` builds
one. ``d = "s-t"`` means the difference ``rank_S - rank_T`` (the student ranks the entry lower
than the teacher), ``"t-s"`` the opposite.

==================  =====================================================  ==================
name                weight of an unobserved entry                          source
==================  =====================================================  ==================
``tanh_disc``       ``tanh(max(d · eps, 0))``                              BD Eq. 4, DCD
``exp_disc``        ``exp(d · eps)``                                       BD Eq. 5
``bd_t2s``          ``tanh(max((rank_S - rank_T) · eps, 0))``              BD Eq. 4 (T→S)
``bd_s2t``          ``exp((rank_T - rank_S) · eps)``                       BD Eq. 5 (S→T)
``bd_t2s_swapped``  ``exp((rank_S - rank_T) · eps)``                       BD Table 5, swapped
``bd_s2t_swapped``  ``tanh(max((rank_T - rank_S) · eps, 0))``              BD Table 5, swapped
``dcd_under``       ``tanh(max(mu (rank_S - rank_T), 0))``  (D(S,T))       DCD Sec. 2.3
``dcd_over``        ``tanh(max(mu (rank_T - rank_S), 0))``  (D(T,S))       DCD Sec. 2.3
``rank_aware``      ``exp(-rank_X / temperature)``                         CD; RRD (in top-N)
``top_n``           ``1`` if ``rank_X <= n`` (``invert``: if ``> n``)      RD; RRD's rest
``uniform``         ``1``                                                  BD Table 5
==================  =====================================================  ==================

``by`` picks X: ``"t"`` (teacher, default) or ``"s"`` (student), e.g. BD's rank-aware scheme for
the teacher-as-learner follows the student's list. :func:`product` multiplies weight functions
(RRD's interesting items: ``product(rank_aware(10), top_n(500))``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from recdistill.errors import RecdistillError
from recdistill.registry import Registry


@dataclass
class RankChunk:
    """Ranks of a block of rows: int32 (B, m), 1 = top, 0 = observed.

    rows: int64 (B,) user ids (side "user") or item ids (side "item").
    rank_t: the teacher's (first model's) ranks. rank_s: the student's, or None.
    """

    rows: torch.Tensor
    rank_t: torch.Tensor
    rank_s: torch.Tensor | None = None
    side: str = "user"
    _unobserved: torch.Tensor | None = field(default=None, repr=False)

    @property
    def unobserved(self) -> torch.Tensor:
        """bool (B, m): True where the row did not observe the entry."""
        if self._unobserved is None:
            self._unobserved = self.rank_t > 0  # (B, m)
        return self._unobserved

    def ranks(self, by: str) -> torch.Tensor:
        """The ranks of ``by`` = "t" (teacher) or "s" (student)."""
        if by == "t":
            return self.rank_t
        if by == "s":
            if self.rank_s is None:
                raise RecdistillError(
                    "this weight function needs the student's ranks; refresh with a student"
                )
            return self.rank_s
        raise RecdistillError(f"by={by!r}: expected 't' (teacher) or 's' (student)")

    def diff(self, d: str) -> torch.Tensor:
        """float32 (B, m) rank difference ``"s-t"`` = rank_S - rank_T or ``"t-s"``."""
        if d in ("s-t", "t-s"):  # one pass into float32: exact below 2**24
            a, b = (self.ranks("s"), self.rank_t) if d == "s-t" else (self.rank_t, self.ranks("s"))
            return torch.sub(a, b, out=torch.empty(a.shape, dtype=torch.float32, device=a.device))  # (B, m)
        raise RecdistillError(f"d={d!r}: expected 's-t' (rank_S - rank_T) or 't-s'")


WeightFn = Callable[[RankChunk], torch.Tensor]
"""``fn(chunk) -> float32 (B, m)`` non-negative draw weights."""

#: the attribute a weight function carries (True) when its weights are 0 on every observed entry
ZERO_ON_OBSERVED = "zero_on_observed"

WEIGHTS: Registry[Callable[..., WeightFn]] = Registry("weight function")


def make_weight(name: str, **params: float | int | str | bool) -> WeightFn:
    """The weight function ``name`` of :data:`WEIGHTS` with its hyperparameters."""
    return WEIGHTS.get(name)(**params)


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise RecdistillError(f"{name}={value!r}: expected a number > 0")
    return float(value)


@WEIGHTS.register("tanh_disc")
def tanh_disc(eps: float, d: str = "s-t") -> WeightFn:
    """``tanh(max(d · eps, 0))``: saturating rank discrepancy (BD Eq. 4, DCD's D)."""
    eps = _positive("eps", eps)

    def fn(c: RankChunk) -> torch.Tensor:
        return c.diff(d).mul_(eps).clamp_min_(0.0).tanh_()  # (B, m), in place on a fresh tensor

    # both ranks are 0 on observed entries, so is the difference, so is the weight: the engine
    # may skip masking them (``sampling.row_cdf(masked=True)``; tests/test_ranking_weights.py)
    setattr(fn, ZERO_ON_OBSERVED, True)
    return fn


@WEIGHTS.register("exp_disc")
def exp_disc(eps: float, d: str = "t-s") -> WeightFn:
    """``exp(d · eps)`` (BD Eq. 5), computed as ``exp(d · eps - max_row)`` over unobserved entries."""
    eps = _positive("eps", eps)

    def fn(c: RankChunk) -> torch.Tensor:
        x = c.diff(d).mul_(eps).masked_fill_(~c.unobserved, float("-inf"))  # (B, m)
        top = x.amax(dim=1, keepdim=True).clamp_min(-3e38)  # (B, 1) finite even for empty rows
        return x.sub_(top).exp_()  # (B, m) in [0, 1], 0 on observed entries

    return fn


@WEIGHTS.register("bd_t2s")
def bd_t2s(eps: float = 1e-4) -> WeightFn:
    """BD Eq. 4, the student learns: ``tanh(max((rank_S - rank_T) · ε_t, 0))``."""
    return tanh_disc(eps, "s-t")


@WEIGHTS.register("bd_s2t")
def bd_s2t(eps: float = 1e-4) -> WeightFn:
    """BD Eq. 5, the teacher learns: ``exp((rank_T - rank_S) · ε_e)``."""
    return exp_disc(eps, "t-s")


@WEIGHTS.register("bd_t2s_swapped")
def bd_t2s_swapped(eps: float = 1e-4) -> WeightFn:
    """BD Table 5 "swapped", the student learns with exp: ``exp((rank_S - rank_T) · ε)``."""
    return exp_disc(eps, "s-t")


@WEIGHTS.register("bd_s2t_swapped")
def bd_s2t_swapped(eps: float = 1e-4) -> WeightFn:
    """BD Table 5 "swapped", the teacher learns with tanh: ``tanh(max((rank_T - rank_S) · ε, 0))``."""
    return tanh_disc(eps, "t-s")


@WEIGHTS.register("dcd_under")
def dcd_under(mu: float = 1e-3) -> WeightFn:
    """DCD underestimation ``D(S,T) = tanh(max(μ(rank_S - rank_T), 0))``."""
    return tanh_disc(mu, "s-t")


@WEIGHTS.register("dcd_over")
def dcd_over(mu: float = 1e-3) -> WeightFn:
    """DCD overestimation ``D(T,S) = tanh(max(μ(rank_T - rank_S), 0))``."""
    return tanh_disc(mu, "t-s")


@WEIGHTS.register("rank_aware")
def rank_aware(temperature: float, by: str = "t") -> WeightFn:
    """CD's rank-aware weights ``exp(-rank_X / T)``, as ``exp(-(rank_X - 1) / T)`` (same ratios)."""
    t = _positive("temperature", temperature)

    def fn(c: RankChunk) -> torch.Tensor:
        r = c.ranks(by)  # (B, m)
        w = torch.exp((r - 1).float() * (-1.0 / t))  # (B, m)
        return w.masked_fill_(r == 0, 0.0)

    return fn


@WEIGHTS.register("top_n")
def top_n(n: int, by: str = "t", invert: bool = False) -> WeightFn:
    """1 on the entries ranked ``<= n`` by X (RD's top-N selection); ``invert``: ranked ``> n``."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise RecdistillError(f"n={n!r}: expected an integer >= 1")

    def fn(c: RankChunk) -> torch.Tensor:
        r = c.ranks(by)  # (B, m)
        keep = (r > n) if invert else (r <= n)  # (B, m)
        return (keep & (r > 0)).float()

    return fn


@WEIGHTS.register("uniform")
def uniform() -> WeightFn:
    """1 on every unobserved entry."""

    def fn(c: RankChunk) -> torch.Tensor:
        return c.unobserved.float()  # (B, m)

    return fn


def product(*fns: WeightFn) -> WeightFn:
    """The entry-wise product of weight functions."""
    if not fns:
        raise RecdistillError("product() needs at least one weight function")

    def fn(c: RankChunk) -> torch.Tensor:
        w = fns[0](c)
        for f in fns[1:]:
            w = w * f(c)  # (B, m)
        return w

    return fn
