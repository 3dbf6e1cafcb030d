"""PNG figures of the BD paper's analyses (matplotlib, Agg backend, atomic writes)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from recdistill.analysis.rank_diff import RankPairs, student_better_share  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` atomically (temp file in the same folder, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def plot_rank_difference(diff: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Figs. 1a and 4: Eq. 1 rank differences on test interactions sorted increasingly, as bars.

    Bars above zero are interactions the student ranks better than the teacher.
    """
    d = np.sort(np.asarray(diff, dtype=np.float64))
    x = np.arange(len(d))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.fill_between(x, 0, d, where=d <= 0, color="tab:blue", step="mid", linewidth=0)
    ax.fill_between(x, 0, d, where=d > 0, color="tab:red", step="mid", linewidth=0)
    ax.axhline(0, color="black", linewidth=0.5)
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
