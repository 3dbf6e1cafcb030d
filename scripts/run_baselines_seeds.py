"""Summarise issue #5's citeulike-bd baselines (Student, RD, CD) over seeds.

Reads the per-seed tables of ``scripts/run_baselines.py --only bd`` (seed 0:
``results/baselines_citeulike-bd.json``; seed S > 0: ``results/baselines_citeulike-bd_seedS.json``,
made with ``--seed S --train-missing --tag _seedS --out runs/baselines-sS``) and writes
``results/baselines_citeulike-bd_seeds.md`` / ``.json``: per seed the test H@50 / N@50 of the
Student and of the RD and CD candidates that seed chose on VALIDATION, mean ± std over seeds, and
for RD and CD vs the Student (and CD vs RD) the mean difference, a two-sided paired t-test over
seeds (``scipy.stats.ttest_rel``) and how many seeds are above. Every seed must have tried the same
candidates (else the selection differs between seeds and the script stops).

    python scripts/run_baselines_seeds.py [--seeds 0 1 2 3 4 5 6 7 8 9]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from recdistill.atomic import atomic_json, atomic_text

ROOT = Path(__file__).resolve().parents[1]
DATASET = "citeulike-bd"
LABELS = ("Teacher", "Student", "RD", "CD")
COMPARED = ("RD", "CD")  # the distilled students (a candidate chosen per seed)
PAIRS = (("RD", "Student"), ("CD", "Student"), ("CD", "RD"))  # paired over seeds: first - second
METRICS = ("H@50", "N@50")


def seed_file(seed: int, results: Path = ROOT / "results", variant: str = "") -> Path:
    """The per-seed table of ``run_baselines.py`` (seed 0 has no tag); a ``variant`` (e.g.
    ``paperopt``) has the tag ``_<variant>_seedS`` for every seed."""
    if variant:
        return results / f"baselines_{DATASET}_{variant}_seed{seed}.json"
    return results / (f"baselines_{DATASET}.json" if seed == 0 else f"baselines_{DATASET}_seed{seed}.json")


def paired_stats(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Paired comparison of ``x`` and ``y`` (one value per seed, same seed order): mean and std
    (ddof 1) of ``x - y``, its 95% confidence interval ``mean ± t_{0.975, n-1}·std/√n``, the
    two-sided paired t-test (t, p; NaN when every difference is equal, up to rounding, and the test
    is undefined) and how many seeds have ``x > y``."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired_stats: expected two 1-d arrays of one shape, got {x.shape} and {y.shape}")
    if x.size < 2:
        raise ValueError(f"paired_stats: a paired t-test needs at least 2 seeds, got {x.size}")
    d = x - y  # (n_seeds,)
    t, p = (math.nan, math.nan)
    if np.ptp(d) > 1e-12 * max(1.0, float(np.abs(x).max()), float(np.abs(y).max())):
        res = stats.ttest_rel(x, y)
        t, p = float(res.statistic), float(res.pvalue)
    half = float(stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return {
        "n": int(d.size),
        "mean_diff": float(d.mean()),
        "std_diff": float(d.std(ddof=1)),
        "ci95": [float(d.mean()) - half, float(d.mean()) + half],
        "t": t,
        "p": p,
        "n_above": int((d > 0).sum()),
    }


def _candidates(tab: dict) -> dict[str, list[tuple[str, str]]]:
    """label -> [(run folder name, params as JSON)] of the candidates a seed tried."""
    out: dict[str, list[tuple[str, str]]] = {}
    for t in tab["tried"]:
        out.setdefault(t["label"], []).append((Path(t["run"]).name, json.dumps(t["params"], sort_keys=True)))
    return out


def load_seeds(seeds: list[int], results: Path = ROOT / "results", variant: str = "") -> dict[int, dict]:
    """The per-seed tables, checked: right dataset and seed, the same candidates everywhere."""
    tabs: dict[int, dict] = {}
    for s in seeds:
        f = seed_file(s, results, variant)
        if not f.is_file():
            raise SystemExit(
                f"{f}: missing; run `python scripts/run_baselines.py --only bd --seed {s} "
                f"--train-missing --tag _seed{s} --out runs/baselines-s{s}` first"
            )
        tab = json.loads(f.read_text())
        if tab.get("dataset") != DATASET or tab.get("seed") != s:
            raise SystemExit(
                f"{f}: expected dataset {DATASET} seed {s}, got {tab.get('dataset')} seed {tab.get('seed')}"
            )
        missing = [lb for lb in LABELS if lb not in tab["rows"]]
        if missing:
            raise SystemExit(f"{f}: rows {missing} missing (unfinished runs?)")
        tabs[s] = tab
    first = _candidates(tabs[seeds[0]])
    for s in seeds[1:]:
        if _candidates(tabs[s]) != first:
            raise SystemExit(
                f"seed {s} tried other candidates than seed {seeds[0]}: "
                f"{_candidates(tabs[s])} vs {first}; rerun run_baselines.py for every seed"
            )
    return tabs


def summarise(tabs: dict[int, dict]) -> dict[str, Any]:
    """Per-seed values, mean ± std, chosen candidates and the paired tests of ``PAIRS``."""
    seeds = sorted(tabs)
    per: dict[str, dict[str, list[float]]] = {
        lb: {m: [tabs[s]["rows"][lb]["test"][m] for s in seeds] for m in METRICS} for lb in LABELS
    }
    chosen = {lb: [Path(tabs[s]["rows"][lb]["run"]).name for s in seeds] for lb in COMPARED}
    out: dict[str, Any] = {"seeds": seeds, "metrics": list(METRICS), "rows": {}, "paired": {}}
    for lb in LABELS:
        out["rows"][lb] = {
            m: {
                "per_seed": per[lb][m],
                "mean": float(np.mean(per[lb][m])),
                "std": float(np.std(per[lb][m], ddof=1)),
            }
            for m in METRICS
        }
        if lb in COMPARED:
            out["rows"][lb]["chosen"] = chosen[lb]
            out["rows"][lb]["chosen_counts"] = dict(Counter(chosen[lb]).most_common())
    out["valid_by_candidate"] = {}  # label -> run name -> validation monitor per seed (test never shown)
    for s in seeds:
        for t in tabs[s]["tried"]:
            out["valid_by_candidate"].setdefault(t["label"], {}).setdefault(Path(t["run"]).name, []).append(
                t["valid_monitor"]
            )
    for a, b in PAIRS:
        out["paired"][f"{a} vs {b}"] = {
            m: paired_stats(np.array(per[a][m]), np.array(per[b][m])) for m in METRICS
        }
    return out


def _commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def _p(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.3f}"


def render(summ: dict[str, Any], tabs: dict[int, dict], cmd: str, commit: str, variant: str = "") -> str:
    seeds = summ["seeds"]
    lines = [
        f"# Frozen-teacher baselines on {DATASET} over seeds (full ranking, test split)",
        "",
        f"BPR teacher dim 50 -> student dim 5 (`configs/bpr-citeulike-bd.yaml`); seeds "
        f"{', '.join(map(str, seeds))}; commit `{commit}`; generated by `{cmd}` from the per-seed "
        "tables (their commands below). RD and CD: per seed the candidate with the best "
        "validation H@50 (selection never sees test); mean ± std (ddof 1) over seeds.",
        "",
    ]
    head = "| model | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std | paper |"
    sep = "|---|" + "---:|" * len(seeds) + "---:|---:|"
    paper = tabs[seeds[0]]["paper"]
    pidx = {"H@50": 0, "N@50": 1}  # position in run_baselines.py's paper rows (H@50, N@50, H@100, N@100)
    for m in METRICS:
        lines += [f"Test {m}:", "", head, sep]
        for lb in LABELS:
            r = summ["rows"][lb][m]
            pv = paper.get(lb, [None] * 2)[pidx[m]]
            lines.append(
                f"| {lb} | "
                + " | ".join(f"{v:.4f}" for v in r["per_seed"])
                + f" | {r['mean']:.4f} ± {r['std']:.4f} | {'—' if pv is None else f'{pv:.4f}'} |"
            )
        lines.append("")
    lines += [
        "Paired over seeds (Δ = A − B; relative to B's mean; 95% CI of the mean Δ from the t "
        "distribution; p: two-sided paired t-test, `scipy.stats.ttest_rel`; above: seeds where A "
        "is higher; paper Δ: the same difference in BD Table 2):",
        "",
        "| A vs B | metric | mean Δ | std Δ | relative | 95% CI | t | p | seeds above | paper Δ |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for a, b in PAIRS:
        for m in METRICS:
            c = summ["paired"][f"{a} vs {b}"][m]
            rel = 100 * c["mean_diff"] / summ["rows"][b][m]["mean"]
            t = "—" if math.isnan(c["t"]) else f"{c['t']:+.2f}"
            pa, pb = (paper.get(lb, [None] * 2)[pidx[m]] for lb in (a, b))
            pd_ = "—" if pa is None or pb is None else f"{pa - pb:+.4f}"
            lo, hi = c["ci95"]
            lines.append(
                f"| {a} vs {b} | {m} | {c['mean_diff']:+.4f} | {c['std_diff']:.4f} | {rel:+.1f}% | "
                f"[{lo:+.4f}, {hi:+.4f}] | {t} | {_p(c['p'])} | {c['n_above']}/{c['n']} | {pd_} |"
            )
    lines += [
        "",
        "Candidates chosen on validation, per seed:",
        "",
        "| method | " + " | ".join(f"seed {s}" for s in seeds) + " | counts |",
        "|---|" + "---|" * (len(seeds) + 1),
    ]
    for lb in COMPARED:
        r = summ["rows"][lb]
        lines.append(
            f"| {lb} | "
            + " | ".join(f"`{c}`" for c in r["chosen"])
            + " | "
            + ", ".join(f"`{k}` {v}" for k, v in r["chosen_counts"].items())
            + " |"
        )
    cands = _candidates(tabs[seeds[0]])
    lines += [
        "",
        f"Candidates every seed tried, with their mean validation {tabs[seeds[0]]['monitor']} over "
        "the seeds (their test metrics are not shown) and how often validation chose each:",
        "",
        "| method | run | params | mean valid | chosen |",
        "|---|---|---|---:|---:|",
    ]
    for lb, cs in cands.items():
        for n, prm in cs:
            v = summ["valid_by_candidate"][lb][n]
            lines.append(
                f"| {lb} | `{n}` | `{prm}` | {np.mean(v):.4f} | "
                f"{summ['rows'][lb]['chosen_counts'].get(n, 0)}/{len(seeds)} |"
            )
    lines += ["", "Per-seed tables and their commands:", ""]
    for s in seeds:
        f = seed_file(s, variant=variant).relative_to(ROOT)
        lines.append(f"- seed {s}: `{f}` (commit `{tabs[s]['commit']}`): `{tabs[s]['command']}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--variant", default="", help="per-seed tables tagged _<variant>_seedS (e.g. paperopt)")
    a = p.parse_args(argv)
    if len(set(a.seeds)) != len(a.seeds) or len(a.seeds) < 2:
        raise SystemExit("--seeds: expected at least 2 distinct seeds")
    tabs = load_seeds(sorted(a.seeds), variant=a.variant)
    summ = summarise(tabs)
    commit = _commit()
    cmd = "python scripts/run_baselines_seeds.py --seeds " + " ".join(map(str, sorted(a.seeds)))
    if a.variant:
        cmd += f" --variant {a.variant}"
    text = render(summ, tabs, cmd, commit, a.variant)
    tag = f"_{a.variant}" if a.variant else ""
    out = ROOT / "results"
    atomic_json(
        {
            "dataset": DATASET,
            "commit": commit,
            "command": cmd,
            "per_seed_tables": {
                str(s): {
                    "file": str(seed_file(s, ROOT / "results", a.variant).relative_to(ROOT)),
                    "commit": tabs[s]["commit"],
                    "command": tabs[s]["command"],
                }
                for s in summ["seeds"]
            },
            **summ,
        },
        out / f"baselines_{DATASET}{tag}_seeds.json",
    )
    atomic_text(text, out / f"baselines_{DATASET}{tag}_seeds.md")
    print(text)


if __name__ == "__main__":
    main()
