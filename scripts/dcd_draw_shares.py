"""Where DCD's corrections draw (issue #33): one refresh (Eqs. 3-6) with a trained teacher and a
trained student, under ``candidates=all`` and ``candidates=teacher_top``, and the share of the
drawn items (users on the item side) inside the teacher's top 50 / 500 with their median teacher
rank, per side and list. Writes a markdown table (stdout) and, with ``--json``, the numbers.

    python scripts/dcd_draw_shares.py runs/exp/<teacher> runs/exp/<student> [--mu 1e-3] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch

from recdistill.distill.dcd import DCD
from recdistill.distill.teacher import ModelTeacher
from recdistill.runs import load_run


def shares(teacher_dir: str, student_dir: str, mu: float, seed: int) -> list[dict[str, Any]]:
    """One DCD refresh per candidates setting; the rows of ``DCD.draw_shares`` with the setting."""
    teacher = load_run(teacher_dir)
    student = load_run(student_dir, dataset=teacher.dataset)
    rows: list[dict[str, Any]] = []
    for cand in ("all", "teacher_top"):
        cfg = DCD.build_config({"mu": mu, "candidates": cand})
        d = DCD(student.model, ModelTeacher(teacher.model), teacher.dataset, cfg, seed=seed)
        d.refresh()
        rows += [{"candidates": cand, **r} for r in d.draw_shares]
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("teacher")
    ap.add_argument("student")
    ap.add_argument("--mu", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = shares(a.teacher, a.student, a.mu, a.seed)
    print("| candidates | side | list | in teacher top 50 | in top 500 | median teacher rank |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['candidates']} | {r['side']} | {r['list']} | {float(r['top50']):.1%} | "
            f"{float(r['top500']):.1%} | {float(r['median_rank']):.0f} |"
        )
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"teacher": a.teacher, "student": a.student, "mu": a.mu, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
