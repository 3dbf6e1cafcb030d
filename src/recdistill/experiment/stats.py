"""The statistics of an experiment's report: paired t-tests over seeds, a finding's verdict,
Benjamini-Hochberg q-values over a family of findings, and the verdicts of several reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["VERDICTS", "adjust_findings", "combined_verdicts", "finding", "paired_test", "verdict"]

VERDICTS = (
    "reproduced",
    "same direction, not significant",
    "not reproduced",
    "contradicted",
    "incomplete (1 seed)",
    "not run yet",
    "flagged",
)


def paired_test(a: dict[int, float], b: dict[int, float]) -> tuple[float | None, int]:
    """Two-sided paired t-test (scipy ``ttest_rel``) of ``a`` against ``b`` over the seeds both
    have; returns (p-value or None with fewer than 2 pairs or no variance, number of pairs)."""
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None, len(seeds)
    x, y = np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds])
    if np.allclose(x - y, (x - y)[0], rtol=0, atol=1e-15):  # no variance: t undefined
        return None, len(seeds)
    return float(stats.ttest_rel(x, y).pvalue), len(seeds)


def finding(
    claim: str,
    table: str,
    row: str,
    than: str,
    metric: str,
    a: dict[int, float],
    b: dict[int, float],
    alpha: float = 0.05,
    flag: str | None = None,
) -> dict[str, Any]:
    """A finding "``row`` (per-seed values ``a``) beats ``than`` (``b``)" as reports and the index
    list it: both means over the seeds both have, the :func:`verdict` and its paired p; a
    ``flag`` (why the comparison is not fair) makes the verdict ``flagged: <flag>``."""
    common = sorted(set(a) & set(b))
    v, p = verdict(a, b, alpha)
    if flag and v != "not run yet":
        v = f"flagged: {flag}"
    return {
        "row_mean": float(np.mean([a[s] for s in common])) if common else None,
        "than_mean": float(np.mean([b[s] for s in common])) if common else None,
        "seeds": len(common),
        "claim": claim,
        "table": table,
        "row": row,
        "than": than,
        "metric": metric,
        "verdict": v,
        "p": p,
        "alpha": alpha,
        "flag": flag,
    }


def verdict(row: dict[int, float], than: dict[int, float], alpha: float = 0.05) -> tuple[str, float | None]:
    """``reproduced`` (row's mean above, paired p < alpha), ``same direction, not significant``,
    ``contradicted`` (row's mean below, p < alpha), ``not reproduced`` (mean not above, not
    significant), ``incomplete (1 seed)`` or ``not run yet`` (no common seed)."""
    seeds = set(row) & set(than)
    if not seeds:
        return "not run yet", None
    if len(seeds) < 2:
        return "incomplete (1 seed)", None
    diff = float(np.mean([row[s] for s in seeds]) - np.mean([than[s] for s in seeds]))
    p, _ = paired_test(row, than)
    return _direction_verdict(diff, p, alpha), p


def _direction_verdict(diff: float, p: float | None, alpha: float) -> str:
    significant = p is not None and p < alpha
    if diff > 0:
        return "reproduced" if significant else "same direction, not significant"
    return "contradicted" if significant and diff < 0 else "not reproduced"


def adjust_findings(findings: Sequence[dict[str, Any]], alpha: float = 0.05) -> list[dict[str, Any]]:
    """The findings with Benjamini-Hochberg q-values over the family of those that have a paired
    p (scipy ``false_discovery_control``), and verdicts read from q instead of p
    (``reproduced``: the claimed direction with q < alpha; ``contradicted``: the opposite with
    q < alpha; each finding's own ``alpha`` where it has one). Flagged findings (an unfair
    comparator) and findings without p keep their verdict, get no q, and are not counted in the
    family."""
    from scipy import stats

    out = [dict(f, q=None) for f in findings]
    family = [
        f
        for f in out
        if f.get("p") is not None and not f.get("flag") and f.get("row_mean") is not None and f["seeds"] >= 2
    ]
    if family:
        qs = stats.false_discovery_control([f["p"] for f in family], method="bh")
        for f, q in zip(family, np.atleast_1d(qs)):
            f["q"] = float(q)
            f["verdict"] = _direction_verdict(f["row_mean"] - f["than_mean"], f["q"], f.get("alpha") or alpha)
    return out


def combined_verdicts(reports: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Claims (same text and metric) found in a ``paper``-protocol report and a ``tuned`` one:
    reproduced under both, only under the paper protocol, only under the tuned one, or neither."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for rep in reports:
        if rep.get("protocol") not in ("paper", "tuned"):
            continue
        for f in rep["findings"]:
            found.setdefault((f["claim"], f["metric"]), {})[rep["protocol"]] = f["verdict"]
    out = []
    for (claim, metric), v in found.items():
        if set(v) != {"paper", "tuned"}:
            continue
        if "not run yet" in v.values() or any(x.startswith("incomplete") for x in v.values()):
            verdict = "not run yet"
        elif any(x.startswith("flagged") for x in v.values()):
            verdict = "flagged"
        elif "contradicted" in v.values() and "reproduced" not in v.values():
            verdict = "contradicted"
        else:
            p, t = v["paper"] == "reproduced", v["tuned"] == "reproduced"
            verdict = {
                (True, True): "reproduced",
                (True, False): "reproduced only under the paper protocol",
                (False, True): "reproduced only under the tuned protocol",
                (False, False): "not reproduced",
            }[(p, t)]
        out.append(
            {"claim": claim, "metric": metric, "paper": v["paper"], "tuned": v["tuned"], "verdict": verdict}
        )
    return out
