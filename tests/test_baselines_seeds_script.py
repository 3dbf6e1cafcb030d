"""scripts/run_baselines_seeds.py: its paired statistics against a direct transcription of the
paired t-test, and its checks of the per-seed tables."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "run_baselines_seeds.py"
_spec = importlib.util.spec_from_file_location("run_baselines_seeds", _PATH)
rbs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rbs)


def _t_two_sided_p(t: float, df: int, steps: int = 200_000) -> float:
    """2 * P(T > |t|) for Student's t with ``df`` degrees of freedom, by the trapezoid rule on its
    density over [|t|, |t| + 2000] (the tail beyond is < 1e-6 for df >= 2)."""
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    x = np.linspace(abs(t), abs(t) + 2000.0, steps)
    f = c * (1 + x**2 / df) ** (-(df + 1) / 2)
    return float(2 * np.sum((f[1:] + f[:-1]) / 2 * np.diff(x)))


def test_paired_stats_matches_the_paired_t_test_by_hand() -> None:
    x = [0.0700, 0.0776, 0.0705, 0.0661, 0.0730]
    y = [0.0692, 0.0665, 0.0720, 0.0650, 0.0700]
    d = [a - b for a, b in zip(x, y)]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    t = mean / (sd / math.sqrt(n))
    r = rbs.paired_stats(np.array(x), np.array(y))
    assert r["n"] == 5 and r["n_above"] == 4  # seed 2 is below
    assert r["mean_diff"] == pytest.approx(mean, abs=1e-12)
    assert r["std_diff"] == pytest.approx(sd, abs=1e-12)
    assert r["t"] == pytest.approx(t, rel=1e-9)
    assert r["p"] == pytest.approx(_t_two_sided_p(t, n - 1), abs=2e-5)
    half = 2.7764451051977987 * sd / math.sqrt(n)  # t_{0.975, 4} from a printed table
    assert r["ci95"] == pytest.approx([mean - half, mean + half], abs=1e-12)
    assert _t_two_sided_p(2.7764451051977987, n - 1) == pytest.approx(0.05, abs=1e-5)  # the constant
    flipped = rbs.paired_stats(np.array(y), np.array(x))  # symmetric p, opposite sign, complement above
    assert flipped["t"] == pytest.approx(-t) and flipped["p"] == pytest.approx(r["p"])
    assert flipped["n_above"] == 1


def test_paired_stats_degenerate_and_bad_input() -> None:
    r = rbs.paired_stats(np.array([0.2, 0.3, 0.4]), np.array([0.1, 0.2, 0.3]))  # equal differences
    assert math.isnan(r["t"]) and math.isnan(r["p"]) and r["n_above"] == 3
    assert r["mean_diff"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="at least 2"):
        rbs.paired_stats(np.array([0.1]), np.array([0.2]))
    with pytest.raises(ValueError, match="one shape"):
        rbs.paired_stats(np.array([0.1, 0.2]), np.array([0.2, 0.3, 0.4]))


def _table(seed: int, h: dict[str, float], cands: dict[str, list[str]], chosen: dict[str, str]) -> dict:
    rows = {}
    for lb, v in h.items():
        run = f"runs/x/{chosen.get(lb, lb.lower())}"
        rows[lb] = {"run": run, "test": {"H@50": v, "N@50": v / 4}}
    tried = [
        {
            "label": lb,
            "run": f"runs/x/{n}",
            "params": {"i": i},
            "valid_monitor": 0.01 * i + 0.001 * seed,
            "best_epoch": 1,
        }
        for lb, ns in cands.items()
        for i, n in enumerate(ns)
    ]
    return {
        "dataset": "citeulike-bd",
        "seed": seed,
        "commit": "abc",
        "command": f"cmd {seed}",
        "monitor": "H@50",
        "rows": rows,
        "tried": tried,
        "paper": {"Student": [0.07, 0.02, 0.1, 0.03]},
    }


def test_load_and_summarise_seed_tables(tmp_path: Path) -> None:
    cands = {"RD": ["rd", "rd-a0.2"], "CD": ["cd", "cd-l1"]}
    hs = {
        0: {"Teacher": 0.12, "Student": 0.070, "RD": 0.069, "CD": 0.072},
        1: {"Teacher": 0.12, "Student": 0.066, "RD": 0.070, "CD": 0.078},
        2: {"Teacher": 0.12, "Student": 0.072, "RD": 0.063, "CD": 0.071},
    }
    picks = {0: {"RD": "rd-a0.2", "CD": "cd"}, 1: {"RD": "rd", "CD": "cd"}, 2: {"RD": "rd", "CD": "cd-l1"}}
    for s in hs:
        rbs.seed_file(s, tmp_path).write_text(json.dumps(_table(s, hs[s], cands, picks[s])))
    tabs = rbs.load_seeds([0, 1, 2], tmp_path)
    summ = rbs.summarise(tabs)
    assert summ["rows"]["CD"]["chosen"] == ["cd", "cd", "cd-l1"]
    assert summ["rows"]["CD"]["chosen_counts"] == {"cd": 2, "cd-l1": 1}
    assert summ["rows"]["RD"]["H@50"]["per_seed"] == [0.069, 0.070, 0.063]
    assert summ["rows"]["Student"]["H@50"]["mean"] == pytest.approx((0.070 + 0.066 + 0.072) / 3)
    cd = summ["paired"]["CD vs Student"]["H@50"]
    assert cd["n_above"] == 2 and cd["mean_diff"] == pytest.approx((0.002 + 0.012 - 0.001) / 3)
    cd_rd = summ["paired"]["CD vs RD"]["H@50"]
    assert cd_rd["n_above"] == 3 and cd_rd["mean_diff"] == pytest.approx((0.003 + 0.008 + 0.008) / 3)
    assert summ["valid_by_candidate"]["RD"] == {
        "rd": [0.0, 0.001, 0.002],
        "rd-a0.2": pytest.approx([0.01, 0.011, 0.012]),
    }
    text = rbs.render(summ, tabs, "cmd", "abc")
    assert "| CD vs Student | H@50 | +0.0043 |" in text
    assert '| CD | `cd-l1` | `{"i": 1}` | 0.0110 | 1/3 |' in text  # mean valid, times chosen

    # a seed that tried other candidates would make the selection incomparable: refused
    rbs.seed_file(2, tmp_path).write_text(json.dumps(_table(2, hs[2], {**cands, "CD": ["cd"]}, picks[2])))
    with pytest.raises(SystemExit, match="other candidates"):
        rbs.load_seeds([0, 1, 2], tmp_path)
    # a table of the wrong seed (e.g. a copied file) is refused too
    rbs.seed_file(2, tmp_path).write_text(json.dumps(_table(1, hs[2], cands, picks[2])))
    with pytest.raises(SystemExit, match="seed 2"):
        rbs.load_seeds([0, 1, 2], tmp_path)
    with pytest.raises(SystemExit, match="missing"):
        rbs.load_seeds([0, 3], tmp_path)
