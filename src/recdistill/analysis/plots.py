"""PNG figures of the BD paper's analyses (matplotlib, Agg backend, atomic writes)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from recdistill.analysis.rank_diff import RankPairs, student_better_share  # noqa: E402
from recdistill.atomic import atomic_write  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` as PNG, atomically (:func:`recdistill.atomic.atomic_write`)."""
    try:
        atomic_write(path, lambda f: fig.savefig(f, dpi=120, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)
    return Path(path)


def plot_discrepancy(values: dict[str, dict[str, float]], path: str | Path, n: int = 50) -> Path:
    """DCD Fig. 1a: grouped bars of the average rank discrepancy per model, user and item side."""
    labels = list(values)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(labels), 3.2))
    x = np.arange(len(labels))
    for k, side in enumerate(("user", "item")):
        ax.bar(
            x + (k - 0.5) * 0.38, [values[m].get(side, np.nan) for m in labels], 0.38, label=f"{side} side"
        )
    ax.set_xticks(x, labels, rotation=25, ha="right", rotation_mode="anchor")
    ax.set_ylabel(f"mean |rank_S - rank_T|, teacher top-{n}")
    ax.legend()
    return _save(fig, path)


def _sorted_differences(ax: plt.Axes, x: np.ndarray, d: np.ndarray) -> None:
    """Sorted Eq. 1 differences ``d`` at ``x``: blue where the teacher ranks better, red where the
    student does, and the zero line."""
    ax.fill_between(x, 0, d, where=d <= 0, color="tab:blue", step="mid", linewidth=0)
    ax.fill_between(x, 0, d, where=d > 0, color="tab:red", step="mid", linewidth=0)
    ax.axhline(0, color="black", linewidth=0.5)


def plot_rank_difference(diff: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Figs. 1a and 4: Eq. 1 rank differences on test interactions sorted increasingly, as bars.

    Bars above zero are interactions the student ranks better than the teacher.
    """
    d = np.sort(np.asarray(diff, dtype=np.float64))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    _sorted_differences(ax, np.arange(len(d)), d)
    ax.set_xlabel("test interactions (sorted)")
    ax.set_ylabel("rank_T - rank_S")
    share = student_better_share(d)
    ax.set_title(f"{title} student better on {100 * share:.1f}%".strip())
    return _save(fig, path)


def plot_rank_scatter(pairs: RankPairs, path: str | Path, title: str = "") -> Path:
    """Fig. 1b: each drawn high-ranked unobserved item at (rank_S, rank_T)."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for name, color in (("teacher", "tab:blue"), ("student", "tab:orange")):
        m = pairs.source == name
        ax.scatter(pairs.rank_s[m], pairs.rank_t[m], s=2, alpha=0.3, color=color, label=f"from {name}'s list")
    ax.set_xlabel("rank by student")
    ax.set_ylabel("rank by teacher")
    ax.legend(markerscale=5, loc="upper right")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_heatmap(
    grid: np.ndarray, xs: list, ys: list, x_label: str, y_label: str, title: str, path: str | Path
) -> Path:
    """A heat map of ``grid[i, j]`` (row i: ``ys[i]``, column j: ``xs[j]``) with each cell's value
    printed, e.g. DCD Fig. 1b (validation H@5 over λ_UCD x λ_ICD); NaN cells stay blank."""
    fig, ax = plt.subplots(figsize=(1.6 + 0.9 * len(xs), 1.2 + 0.7 * len(ys)))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", origin="lower", aspect="auto")
    ax.set_xticks(range(len(xs)), [f"{x:g}" if isinstance(x, float) else str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [f"{y:g}" if isinstance(y, float) else str(y) for y in ys])
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.4f}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(im, ax=ax)
    return _save(fig, path)


def plot_rank_difference_curves(curves: dict[str, dict], path: str | Path) -> Path:
    """BD Figs. 1a and 4 side by side: per panel (title -> a
    :func:`recdistill.analysis.rank_diff.rank_difference_summary`), the sorted Eq. 1 differences
    (its quantile curve) as in :func:`plot_rank_difference`, with Eq. 6 and the share of held-out
    items the student ranks better in the title."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.4), sharey=True, squeeze=False)
    for ax, (title, summary) in zip(axes[0], curves.items()):
        d = np.asarray(summary["curve"], dtype=np.float64)
        _sorted_differences(ax, np.linspace(0.0, 1.0, len(d)), d)
        ax.set_xlabel("test interactions (sorted, share)")
        ax.set_title(
            f"{title}\nEq. 6 {summary['eq6']:.4f}, student better on {100 * summary['student_better']:.1f}%",
            fontsize=9,
        )
    axes[0][0].set_ylabel("rank_T - rank_S")
    return _save(fig, path)
