"""The rank engine: chunked exact ranks of two models and draws from rank-based weights.

One refresh (BD Algorithm 1 lines 3-4; DCD's resampling every few epochs; CD/RRD's per-epoch
draws) goes through the rows (users, or items with ``side="item"``) in chunks: score the chunk with
the teacher and the student, rank every unobserved entry exactly (:mod:`.order`), evaluate each
requested weight function (:mod:`.weights`) and draw (:mod:`.sampling`). Only what later steps need
is kept: the drawn indices (and their ranks under both models), and the top-N lists. Between two
refreshes the weights are fixed, so a :class:`DrawSpec` may ask for ``rounds`` independent draws
(one per epoch of the period) at once.

Several processes (``torchrun``, :mod:`recdistill.parallel`): :meth:`RankEngine.refresh` ranks
and draws a contiguous block of whole chunks of rows per process (the same chunks, so the same
ranks, as one process), each with its own random stream, and sums the zero-filled outputs over
processes; every process gets the whole refresh.

Memory: a chunk holds a few (B, m) buffers (scores, ranks, weights, their CDF): ``chunk_size``
defaults to about 2**22 entries (16 MB per float32 buffer; about 7% faster than 2**23 on a 2-core
CPU, the passes over a chunk stay closer to cache). Nothing users x items is kept, except where a
caller asks for a frozen teacher's ranks to be kept between refreshes (:class:`TeacherRanks`).

Usage (BD, Algorithm 1: every p = 10 epochs, 5 items per training interaction and direction)::

    eng = RankEngine(dataset.train, device)
    bd = {"t2s": DrawSpec(make_weight("bd_t2s", eps=1e-4), k=5, replacement=True,
                          per_interaction=True, rounds=10),
          "s2t": DrawSpec(make_weight("bd_s2t", eps=1e-4), k=5, replacement=True,
                          per_interaction=True, rounds=10)}
    out = eng.refresh(teacher, student, "user", bd, generator=gen)
    items = out.draws["t2s"].index[epoch % 10, batch.idx]  # (B, 5): interaction j's draws

DCD (user side; the item side is the same with ``side="item"``)::

    dcd = {"under": DrawSpec(make_weight("dcd_under", mu=1e-3), k=40, order="teacher"),
           "over": DrawSpec(make_weight("dcd_over", mu=1e-3), k=40)}
    out = eng.refresh(teacher, student, "user", dcd, top_n=50, generator=gen)
    rho, neg = out.draws["under"].index[0], out.draws["over"].index[0]  # (n_users, 40) each
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import scipy.sparse as sp
import torch

from recdistill.data.pairs import csr_positions
from recdistill.errors import RecdistillError
from recdistill.parallel import all_sum_, block, rank_generator, world
from recdistill.ranking.listranks import ListRanks
from recdistill.ranking.order import rank_rows
from recdistill.ranking.sampling import draw_from_cdf, row_cdf, sample_without_replacement, top_m
from recdistill.ranking.scoring import ScoreSource, check_side, iter_scores, scoring_mode
from recdistill.ranking.weights import ZERO_ON_OBSERVED, RankChunk, WeightFn

#: what the engine ranks: a score source, or ranked lists without scores
RankSource = Union[ScoreSource, ListRanks]  # noqa: UP007

#: default entries per chunk (rows x columns)
CHUNK_ENTRIES = 2**22
ORDERS = (None, "teacher", "student")


def canonical_csr(train: Any) -> sp.csr_matrix:
    """A binary-pattern CSR copy of ``train`` (a scipy matrix or a ``Dataset``): explicit zeros
    dropped, duplicates summed, column indices sorted within rows (the order of interactions)."""
    m = getattr(train, "train", train)
    if not sp.issparse(m):
        raise RecdistillError(f"train must be a scipy sparse matrix or a Dataset, got {type(m).__name__}")
    csr = sp.csr_matrix(m, copy=True)
    csr.eliminate_zeros()
    csr.sum_duplicates()  # also sorts indices
    return csr


class SideMatrix:
    """The observed entries of one side as CSR tensors on a device (rows: users or items)."""

    def __init__(self, csr: sp.csr_matrix, device: torch.device) -> None:
        self.csr = csr
        self.n_rows, self.n_cols = csr.shape
        self.indptr = torch.from_numpy(csr.indptr.astype(np.int64)).to(device)  # (n+1,)
        self.indices = torch.from_numpy(csr.indices.astype(np.int64)).to(device)  # (nnz,)
        self.nnz = int(csr.nnz)

    def degrees(self, rows: torch.Tensor) -> torch.Tensor:
        """int64 (B,) observed entries per row."""
        return self.indptr[rows + 1] - self.indptr[rows]

    def observed(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates ``(local_row, col)`` int64 (nnz_B,) of the observed entries of ``rows`` (B,)."""
        local, pos = csr_positions(self.indptr, rows)  # (nnz_B,), (nnz_B,)
        return local, self.indices[pos]


@dataclass(frozen=True)
class DrawSpec:
    """What to draw at a refresh from one weight function.

    weight: a :data:`~recdistill.ranking.weights.WeightFn` (e.g. ``make_weight("bd_t2s", eps=1e-4)``).
    k: draws per row (user or item), or per training interaction with ``per_interaction``.
    replacement: with replacement (BD) or without (DCD, RRD: k distinct entries per row).
    per_interaction: ``k`` draws for every observed entry of the row (BD: for each training
        interaction (u, i)); laid out in the side's CSR order (requires ``replacement``).
    deterministic: the k largest weights instead of a draw (DCD "w/o sampling"); ties to the
        lower index.
    rounds: independent draws to make now (e.g. one per epoch until the next refresh).
    order: None (draw order; Plackett-Luce order without replacement), or "teacher"/"student":
        each row's draws sorted by that model's rank, best first (DCD's ρ, RRD's lists).
    keep_ranks: also keep the ranks of the drawn entries under both models.
    candidates: 0 (every unobserved entry may be drawn) or n: only each row's n best unobserved
        entries under the teacher (DCD's ``candidates="teacher_top"``); the weights still see
        the ranks over every unobserved entry.
    """

    weight: WeightFn
    k: int
    replacement: bool = False
    per_interaction: bool = False
    deterministic: bool = False
    rounds: int = 1
    order: str | None = None
    keep_ranks: bool = True
    candidates: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.candidates, int) or isinstance(self.candidates, bool) or self.candidates < 0:
            raise RecdistillError(f"DrawSpec candidates={self.candidates!r}: expected an integer >= 0")
        for name in ("k", "rounds"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise RecdistillError(f"DrawSpec {name}={v!r}: expected an integer >= 1")
        if not callable(self.weight):
            raise RecdistillError(f"DrawSpec weight={self.weight!r}: expected a weight function")
        if self.per_interaction and not self.replacement:
            raise RecdistillError("DrawSpec per_interaction=True needs replacement=True")
        if self.deterministic and (self.replacement or self.per_interaction):
            raise RecdistillError("DrawSpec deterministic=True takes the top-k: no replacement, per row")
        if self.order not in ORDERS:
            raise RecdistillError(f"DrawSpec order={self.order!r}: expected None, 'teacher' or 'student'")
        if self.order is not None and self.per_interaction:
            raise RecdistillError("DrawSpec order applies to per-row draws, not per_interaction")


@dataclass
class Draws:
    """The draws of one :class:`DrawSpec` for every row of a side.

    index: int32 (rounds, n_rows, k), or with ``per_interaction`` (rounds, nnz, k) where slot j is
        the j-th observed entry in the side's CSR order (user side: ``engine.train.indices``).
    rank_t, rank_s: int32, same shape: ranks of the drawn entries under the teacher and the
        student (None if not kept or no student).
    """

    side: str
    per_interaction: bool
    index: torch.Tensor
    rank_t: torch.Tensor | None = None
    rank_s: torch.Tensor | None = None

    @property
    def rounds(self) -> int:
        return int(self.index.shape[0])


@dataclass
class Refresh:
    """Everything one refresh keeps: draws by name, top-N lists, timing.

    top_t, top_s: int32 (n_rows, N), the teacher's (student's) N best unobserved entries per row,
        best first, -1 where a row has fewer; top_t_rank_s: the student's ranks of ``top_t``
        (the teacher's are 1..N); top_s_rank_t likewise.
    stats_t, stats_s: float64 (n_rows, 2) per-row (mean, std) of each model's scores over the
        row's unobserved entries (``refresh(score_stats=True)``), else None.
    """

    side: str
    draws: dict[str, Draws] = field(default_factory=dict)
    top_t: torch.Tensor | None = None
    top_s: torch.Tensor | None = None
    top_t_rank_s: torch.Tensor | None = None
    top_s_rank_t: torch.Tensor | None = None
    stats_t: torch.Tensor | None = None
    stats_s: torch.Tensor | None = None
    seconds: float = 0.0


class TeacherRanks:
    """A frozen teacher's exact ranks, kept between refreshes (DCD: the teacher never changes, so
    only the student is scored and ranked again; the draws are the same as without the cache).

    One int32 (rows, n_cols) tensor per side for the rows this process refreshes, filled during
    the first refresh of that side and read by the later ones; a side whose tensor would take the
    total past ``max_bytes`` is not kept (its teacher is ranked again at every refresh).
    Only for a teacher that does not train between refreshes; refreshes that ask for top-N lists
    or score statistics rank the teacher as usual.
    """

    def __init__(self, max_bytes: int = 2**31) -> None:
        if not isinstance(max_bytes, int) or max_bytes < 0:
            raise RecdistillError(f"max_bytes={max_bytes!r}: expected an integer >= 0")
        self.max_bytes = max_bytes
        self.ranks: dict[str, torch.Tensor] = {}  # side -> int32 (hi - lo, n_cols), complete
        self.rows: dict[str, tuple[int, int]] = {}  # side -> (lo, hi)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.ranks.values())

    def fits(self, n_rows: int, n_cols: int) -> bool:
        return self.nbytes + 4 * n_rows * n_cols <= self.max_bytes


def row_stats(scores: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Per-row mean and population std (floored at 1e-12) of ``scores`` (B, m) over ``keep``
    (B, m) bool, float64 (B, 2)."""
    z = scores.double()  # (B, m)
    cnt = keep.sum(1).clamp_(min=1).double()  # (B,)
    mu = torch.where(keep, z, 0.0).sum(1) / cnt  # (B,)
    var = torch.where(keep, (z - mu[:, None]) ** 2, 0.0).sum(1) / cnt  # (B,)
    return torch.stack([mu, var.sqrt().clamp_(min=1e-12)], 1)  # (B, 2)


def _gather_ranks(rank: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return rank.gather(1, idx.clamp_min(0).long()).masked_fill_(idx < 0, 0)  # (B, k)


class RankEngine:
    """Exact user- and item-side ranks of unobserved entries, and draws, in memory-bounded chunks.

    train: the training matrix (scipy sparse users x items, or a ``Dataset``); its pattern is
        the observed set. ``engine.train`` is the canonical CSR (sorted indices) whose order
        ``per_interaction`` draws follow; ``engine.train_t`` the item-side (CSC order) one.
    device: where ranking and drawing run (scores are moved here).
    chunk_size: rows per chunk; default about 2**22 / n_cols (16 MB per float32 buffer).
    num_threads: CPU threads for sorting (default ``torch.get_num_threads()``).
    item_fallback_bytes: item side for a model without ``score_items``: size of the block of item
        columns computed per pass of ``score_all`` over all users (see :mod:`.scoring`).
    """

    def __init__(
        self,
        train: Any,
        device: torch.device | str = "cpu",
        chunk_size: int | None = None,
        num_threads: int | None = None,
        item_fallback_bytes: int = 2**28,
    ) -> None:
        self.train = canonical_csr(train)
        self.n_users, self.n_items = self.train.shape
        self.device = torch.device(device)
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise RecdistillError(f"chunk_size={chunk_size!r}: expected an integer >= 1 or None")
        self.chunk_size = chunk_size
        self.num_threads = num_threads or torch.get_num_threads()
        self.item_fallback_bytes = item_fallback_bytes
        self._sides: dict[str, SideMatrix] = {}

    @property
    def train_t(self) -> sp.csr_matrix:
        """The item-side CSR (items x users); its order is the item side's interaction order."""
        return self.side("item").csr

    def side(self, side: str) -> SideMatrix:
        check_side(side)
        if side not in self._sides:
            csr = self.train if side == "user" else canonical_csr(self.train.T)
            self._sides[side] = SideMatrix(csr, self.device)
        return self._sides[side]

    def _chunk(self, n_cols: int) -> int:
        return self.chunk_size or max(1, CHUNK_ENTRIES // max(n_cols, 1))

    def _rows(self, rows: Any, n_rows: int) -> torch.Tensor:
        if rows is None:
            return torch.arange(n_rows)
        r = torch.as_tensor(np.asarray(rows) if not isinstance(rows, torch.Tensor) else rows)
        r = r.reshape(-1).to("cpu", torch.int64)
        if r.numel() and (int(r.min()) < 0 or int(r.max()) >= n_rows):
            bad = int(r[(r < 0) | (r >= n_rows)][0])
            raise RecdistillError(f"row id {bad} out of range [0, {n_rows})")
        return r

    def _pool(self) -> ThreadPoolExecutor | None:
        if self.device.type == "cpu" and self.num_threads > 1:
            return ThreadPoolExecutor(max_workers=self.num_threads)
        return None

    def iter_ranks(
        self, models: list[RankSource], side: str = "user", rows: Any = None, top_n: int = 0
    ) -> Iterator[tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor | None]]]:
        """Yield ``(rows (B,), [ranks int32 (B, m) per model], [top (B, N) per model])`` chunk by
        chunk, on the engine's device (ranks: 1 = top, 0 = observed)."""
        for r, ranks, tops, _ in self._iter(models, side, rows, top_n, False):
            yield r, ranks, tops

    def _iter(
        self, models: list[RankSource], side: str, rows: Any, top_n: int, stats: bool
    ) -> Iterator[tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor | None], list[torch.Tensor]]]:
        """:meth:`iter_ranks` plus, with ``stats``, each model's per-row (mean, std) of its scores
        over the row's unobserved entries, float64 (B, 2) (empty list otherwise)."""
        sm = self.side(side)
        rows_t = self._rows(rows, sm.n_rows)
        chunk = self._chunk(sm.n_cols)
        for m in models:
            if isinstance(m, ListRanks):
                if m.side != side:
                    raise RecdistillError(f"ranked lists of the {m.side} side cannot rank the {side} side")
                if m.n_rows != sm.n_rows:
                    raise RecdistillError(
                        f"ranked lists hold {m.n_rows} rows, the {side} side has {sm.n_rows}"
                    )
                if stats:
                    raise RecdistillError("score statistics need scores; ranked lists have none")
        pool = self._pool()
        try:
            with scoring_mode(*models):
                its = [
                    None
                    if isinstance(m, ListRanks)
                    else iter_scores(
                        m,
                        side,
                        rows_t,
                        chunk,
                        self.n_users,
                        self.n_items,
                        self.device,
                        self.item_fallback_bytes,
                    )
                    for m in models
                ]
                for s in range(0, rows_t.numel(), chunk):
                    r = rows_t[s : s + chunk].to(self.device)  # (B,)
                    obs_r, obs_c = sm.observed(r)
                    ranks, tops, st = [], [], []
                    for m, it in zip(models, its):
                        if it is None:  # a ListRanks: ranks without scores
                            assert isinstance(m, ListRanks)
                            rk, top = m.rank_rows(r, obs_r, obs_c, sm.n_cols, top_n)
                        else:
                            scores = next(it)  # (B, m)
                            rk, top = rank_rows(scores, obs_r, obs_c, top_n, pool)
                            if stats:
                                st.append(row_stats(scores, rk > 0))
                        ranks.append(rk)
                        tops.append(top)
                    yield r, ranks, tops, st
        finally:
            if pool is not None:
                pool.shutdown()

    def ranks(self, model: RankSource, side: str = "user", rows: Any = None) -> torch.Tensor:
        """int32 (len(rows), m) ranks of every entry (1 = top, 0 = observed) for ``rows``."""
        sm = self.side(side)
        rows_t = self._rows(rows, sm.n_rows)
        out = torch.empty((rows_t.numel(), sm.n_cols), dtype=torch.int32, device=self.device)
        pos = 0
        for r, (rk,), _ in self.iter_ranks([model], side, rows_t):
            out[pos : pos + r.numel()] = rk
            pos += r.numel()
        return out

    def refresh(
        self,
        teacher: RankSource,
        student: ScoreSource | None = None,
        side: str = "user",
        specs: dict[str, DrawSpec] | None = None,
        top_n: int = 0,
        generator: torch.Generator | int | None = None,
        score_stats: bool = False,
        teacher_ranks: TeacherRanks | None = None,
    ) -> Refresh:
        """Rank every row of ``side`` under both models and draw each spec (see module doc).

        score_stats: also keep each model's per-row mean and population std of its scores over
            the row's unobserved entries (``Refresh.stats_t`` / ``stats_s``, float64 (n_rows, 2)).

        generator: a ``torch.Generator`` (on any device; one on the engine's device avoids
            copies) or an int seed (a generator on the engine's device); required when a spec
            draws at random. Same generator state, device and chunk size: same draws.
        teacher: a score source, or a :class:`~recdistill.ranking.listranks.ListRanks` (ranked
            lists, no scores: its ranks are given, see that module).
        teacher_ranks: a :class:`TeacherRanks` for a teacher that stays fixed between calls: the
            first call of a side stores the teacher's ranks there, later calls rank only the
            student (same draws; ignored with ``top_n`` or ``score_stats``).
        """
        t0 = time.perf_counter()
        specs = dict(specs or {})
        if isinstance(generator, int):
            generator = torch.Generator(self.device).manual_seed(generator)
        if generator is None and any(not s.deterministic for s in specs.values()):
            raise RecdistillError("refresh: random draws need a generator (torch.Generator or int seed)")
        if not isinstance(top_n, int) or top_n < 0:
            raise RecdistillError(f"top_n={top_n!r}: expected an integer >= 0")
        for name, sp_ in specs.items():
            if sp_.order == "student" and student is None:
                raise RecdistillError(f"spec {name!r}: order='student' needs a student")
        sm = self.side(side)
        n, dev = sm.n_rows, self.device
        parallel = world()[1] > 1
        alloc = torch.zeros if parallel else torch.empty  # zeros: the blocks are summed
        lo, hi = block(n, align=self._chunk(sm.n_cols))
        generator = rank_generator(generator)
        out = Refresh(side=side)
        for name, spec in specs.items():
            slots = sm.nnz if spec.per_interaction else n
            shape = (spec.rounds, slots, spec.k)
            keep_s = spec.keep_ranks and student is not None

            def buf(on: bool, shape: tuple[int, int, int] = shape) -> torch.Tensor | None:
                return alloc(shape, dtype=torch.int32, device=dev) if on else None

            index = alloc(shape, dtype=torch.int32, device=dev)
            out.draws[name] = Draws(side, spec.per_interaction, index, buf(spec.keep_ranks), buf(keep_s))
        tops_out: list[torch.Tensor] = []  # top_t, then with a student top_s, top_t_rank_s, top_s_rank_t
        if top_n:
            tops_out = [
                alloc((n, top_n), dtype=torch.int32, device=dev) for _ in range(1 if student is None else 4)
            ]
            out.top_t = tops_out[0]
            if student is not None:
                out.top_s, out.top_t_rank_s, out.top_s_rank_t = tops_out[1:]
        models = [teacher] if student is None else [teacher, student]
        if score_stats:
            out.stats_t = torch.zeros((n, 2), dtype=torch.float64, device=dev)
            if student is not None:
                out.stats_s = torch.zeros_like(out.stats_t)
        mine = None if not parallel else torch.arange(lo, hi)
        cache = teacher_ranks if student is not None and not top_n and not score_stats else None
        cached = cache.ranks.get(side) if cache is not None else None
        if cached is not None and cache is not None:
            held, want = (cache.rows[side], int(cached.shape[1])), ((lo, hi), sm.n_cols)
            if held != want:
                raise RecdistillError(
                    f"teacher_ranks hold rows {held[0]} x {held[1]} columns, this refresh rows "
                    f"{want[0]} x {want[1]}: kept by another engine or process layout"
                )
        fill = None
        if cache is not None and cached is None and cache.fits(hi - lo, sm.n_cols):
            fill = torch.empty((hi - lo, sm.n_cols), dtype=torch.int32, device=dev)
        scored = models if cached is None else models[1:]
        for rows, ranks, tops, stats in self._iter(scored, side, mine, top_n, score_stats):
            s, e = int(rows[0]), int(rows[-1]) + 1  # rows are a contiguous range here
            if cached is not None:
                ranks = [cached[s - lo : e - lo], *ranks]
            elif fill is not None:
                fill[s - lo : e - lo] = ranks[0]
            chunk = RankChunk(rows, ranks[0], ranks[1] if student is not None else None, side)
            for dst, st in zip((out.stats_t, out.stats_s), stats):
                if dst is not None:
                    dst[s:e] = st
            if tops_out:
                top_t = tops[0]
                assert top_t is not None
                tops_out[0][s:e] = top_t
                if chunk.rank_s is not None:
                    top_s = tops[1]
                    assert top_s is not None
                    tops_out[1][s:e] = top_s
                    tops_out[2][s:e] = _gather_ranks(chunk.rank_s, top_t)
                    tops_out[3][s:e] = _gather_ranks(chunk.rank_t, top_s)
            for name, spec in specs.items():
                self._draw(spec, chunk, out.draws[name], sm, s, e, generator, name)
        if fill is not None and cache is not None:  # complete: stored only after the last chunk
            cache.ranks[side], cache.rows[side] = fill, (lo, hi)
        if parallel:
            for t in _refresh_tensors(out):
                all_sum_(t)
        out.seconds = time.perf_counter() - t0
        return out

    def _draw(
        self,
        spec: DrawSpec,
        c: RankChunk,
        d: Draws,
        sm: SideMatrix,
        s: int,
        e: int,
        gen: torch.Generator | None,
        name: str,
    ) -> None:
        w = spec.weight(c)  # (B, m)
        if not isinstance(w, torch.Tensor) or w.shape != c.rank_t.shape:
            got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            want = tuple(c.rank_t.shape)
            raise RecdistillError(f"spec {name!r}: weight function returned {got}, expected {want}")
        avail = c.unobserved  # (B, m)
        # weights already 0 on every entry outside ``avail``: the CDF copies them, no masking pass
        masked = bool(getattr(spec.weight, ZERO_ON_OBSERVED, False))
        if spec.candidates:  # the teacher's best n unobserved entries only (ranks: 0 = observed)
            avail = avail & (c.rank_t <= spec.candidates)  # (B, m)
            masked = False
        try:
            if spec.replacement:  # one CDF for all rounds
                counts = sm.degrees(c.rows) if spec.per_interaction else torch.ones_like(c.rows)
                counts = counts * spec.k  # (B,)
                if bool(((counts > 0) & ~avail.any(1)).any()):
                    raise RecdistillError("a row with draws requested has no unobserved entry")
                cdf = row_cdf(w, avail, masked)  # (B, m)
                rows = torch.repeat_interleave(torch.arange(e - s, device=w.device), counts)  # (N,)
                sl = slice(int(sm.indptr[s]), int(sm.indptr[e])) if spec.per_interaction else slice(s, e)
                assert gen is not None  # checked by refresh
                for r in range(spec.rounds):
                    items = draw_from_cdf(cdf, counts, gen).view(-1, spec.k)  # (N / k, k)
                    if spec.order is not None:
                        items = self._sorted(spec, c, items)
                    d.index[r, sl] = items
                    self._keep(d, r, sl, c, rows.view(-1, spec.k), items)
                return
            fixed = top_m(w, spec.k, avail) if spec.deterministic else None  # (B, k) every round
            for r in range(spec.rounds):
                if fixed is not None:
                    idx = fixed
                else:
                    assert gen is not None  # checked by refresh
                    idx = sample_without_replacement(w, spec.k, gen, avail, masked)  # (B, k)
                if spec.order is not None:
                    idx = self._sorted(spec, c, idx)
                d.index[r, s:e] = idx
                self._keep(d, r, slice(s, e), c, None, idx)
        except ValueError as exc:
            raise RecdistillError(f"spec {name!r}, {c.side} rows {s}..{e - 1}: {exc}") from None

    @staticmethod
    def _sorted(spec: DrawSpec, c: RankChunk, idx: torch.Tensor) -> torch.Tensor:
        """Each row's draws (B, k) sorted by the teacher's (student's) rank, best first."""
        key = c.ranks("t" if spec.order == "teacher" else "s").gather(1, idx)  # (B, k)
        return idx.gather(1, key.argsort(dim=1, stable=True))  # (B, k)

    @staticmethod
    def _keep(
        d: Draws, r: int, sl: slice, c: RankChunk, rows: torch.Tensor | None, idx: torch.Tensor
    ) -> None:
        for buf, rank in ((d.rank_t, c.rank_t), (d.rank_s, c.rank_s)):
            if buf is None or rank is None:
                continue
            buf[r, sl] = rank.gather(1, idx) if rows is None else rank[rows, idx]


def _refresh_tensors(out: Refresh) -> list[torch.Tensor]:
    """Every tensor a refresh fills, in a fixed order (the same in every process)."""
    ts: list[torch.Tensor | None] = []
    for name in sorted(out.draws):
        d = out.draws[name]
        ts += [d.index, d.rank_t, d.rank_s]
    ts += [out.top_t, out.top_s, out.top_t_rank_s, out.top_s_rank_t, out.stats_t, out.stats_s]
    return [t for t in ts if t is not None]


def unobserved_ranks(
    model: ScoreSource,
    train: Any,
    users: Any = None,
    side: str = "user",
    device: torch.device | str = "cpu",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Exact ranks, int32 (len(users), m): 1 = top among the row's unobserved entries, 0 for
    observed ones; ties go to the lower index (see :mod:`recdistill.ranking.order`).

    model: a Recommender, a callable ``users -> (B, n_items)`` scores, or a (n_users, n_items)
        score tensor. train: scipy sparse (n_users, n_items) or a ``Dataset``.
    users: the rows to rank (user ids; item ids with ``side="item"``, then the items' users are
        ranked); None = all. Computed in memory-bounded chunks on ``device``.
    """
    return RankEngine(train, device, chunk_size).ranks(model, side, users)
