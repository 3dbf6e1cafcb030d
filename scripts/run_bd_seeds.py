"""Summarise BD runs over seeds (runs of ``scripts/run_bd.py --seed S --runs runs/bd/citeulike-bd-seedS``;
seed 0 lives in ``runs/bd/citeulike-bd``) into ``results/bd_seeds.md`` / ``.json``: test H@50 and N@50
per seed, mean ± std, and a paired t-test over seeds of each BD run against its reference.

    python scripts/run_bd_seeds.py [--seeds 0 1 2]

``--paper-teacher``: BD started from issue #5's base models instead (the config
``configs/bpr-citeulike-bd.yaml``, a teacher at the paper's level, H@50 about 0.12, 1.8x the
student, as in BD Table 2): runs of ``scripts/run_bd.py --seed S --teacher-run T --student-run S
--runs runs/bd/citeulike-bd-paperteacher-seedS --only bd-rd-labelonly0 bd-lambda0`` with T, S =
``runs/base/bpr-bd-{teacher,student}`` (seed 0) or ``runs/baselines-sS/citeulike-bd/{teacher,student}``;
written to ``results/bd_seeds_paperteacher.md`` / ``.json``.

    python scripts/run_bd_seeds.py --paper-teacher --seeds 0 1 2 3 4

``--paper-opt``: the same with the paper's optimiser (BD Sec. 5.1.5: Adam, batch 128, lr 1e-3) for
the student and BD: the student of ``scripts/run_baselines.py ... --set train.batch_size=128 --set
train.lr=0.001 --out runs/baselines-paperopt-sS``, BD by ``scripts/run_bd.py --batch-size 128 --lr
1e-3 --teacher-run T --student-run runs/baselines-paperopt-sS/citeulike-bd/student --runs
runs/bd/citeulike-bd-paperopt-seedS --only bd-rd-labelonly0 bd-lambda0``; written to
``results/bd_seeds_paperopt.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np
from scipy import stats

from recdistill.atomic import atomic_json, atomic_text

ROOT = Path(__file__).resolve().parents[1]
# (label, run, model, reference label)
ROWS = [
    ("Teacher", "teacher", "model", None),
    ("Student", "student", "model", None),
    ("control λ=0: teacher", "bd-lambda0", "teacher", "Teacher"),
    ("control λ=0: student", "bd-lambda0", "student", "Student"),
    ("BD-Teacher (notebook τ)", "bd-rd-labelonly1", "teacher", "control λ=0: teacher"),
    ("BD-Student (notebook τ)", "bd-rd-labelonly1", "student", "control λ=0: student"),
    ("BD-Student (paper τ)", "bd-rd-labelonly0", "student", "control λ=0: student"),
    ("BD-Student (uniform sampling, paper τ)", "bd-uniform", "student", "BD-Student (paper τ)"),
    ("BD-Student (rank-aware sampling, paper τ)", "bd-rank-aware", "student", "BD-Student (paper τ)"),
    ("CD (same teacher)", "cd", "student", "Student"),
    ("from scratch, λ=0: student", "bd-scratch-lambda0", "student", None),
    ("from scratch, BD-Student", "bd-scratch", "student", "from scratch, λ=0: student"),
    ("from scratch, λ=0: teacher", "bd-scratch-lambda0", "teacher", None),
    ("from scratch, BD-Teacher", "bd-scratch", "teacher", "from scratch, λ=0: teacher"),
]


#: the --paper-teacher rows: BD and its λ = 0 control from issue #5's base models
PAPER_TEACHER_ROWS = [
    ("Teacher", "teacher", "model", None),
    ("Student", "student", "model", None),
    ("control λ=0: teacher", "bd-lambda0", "teacher", "Teacher"),
    ("BD-Teacher (paper τ)", "bd-rd-labelonly0", "teacher", "control λ=0: teacher"),
    ("BD-Teacher (paper τ) vs Teacher", "bd-rd-labelonly0", "teacher", "Teacher"),
    ("control λ=0: student", "bd-lambda0", "student", "Student"),
    ("BD-Student (paper τ)", "bd-rd-labelonly0", "student", "control λ=0: student"),
    ("BD-Student (paper τ) vs Student", "bd-rd-labelonly0", "student", "Student"),
]


def run_dir(seed: int, dataset: str = "citeulike-bd") -> Path:
    if dataset != "citeulike-bd":  # run_bd.py --dataset D --runs runs/bd/D-seedS
        return ROOT / "runs" / "bd" / f"{dataset}-seed{seed}"
    return ROOT / "runs" / "bd" / ("citeulike-bd" if seed == 0 else f"citeulike-bd-seed{seed}")


def paper_teacher_file(seed: int, run: str, paper_opt: bool = False) -> Path:
    """metrics.json of a --paper-teacher row: the base runs of issue #5, or the BD runs. With
    ``paper_opt`` (--paper-opt) the student is issue #5's student trained with the paper's
    optimiser (``runs/baselines-paperopt-sS``) and the BD runs are ``citeulike-bd-paperopt-seedS``."""
    if run == "student" and paper_opt:
        return ROOT / "runs" / f"baselines-paperopt-s{seed}" / "citeulike-bd" / run / "metrics.json"
    if run in ("teacher", "student"):
        base = (
            ROOT / "runs" / "base" / f"bpr-bd-{run}"
            if seed == 0
            else ROOT / "runs" / f"baselines-s{seed}" / "citeulike-bd" / run
        )
        return base / "metrics.json"
    variant = "paperopt" if paper_opt else "paperteacher"
    return ROOT / "runs" / "bd" / f"citeulike-bd-{variant}-seed{seed}" / run / "metrics.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--paper-teacher", action="store_true", help="BD from issue #5's base models")
    p.add_argument(
        "--paper-opt",
        action="store_true",
        help="with --paper-teacher: BD and the student with the paper's optimiser "
        "(run_bd.py --batch-size 128 --lr 1e-3)",
    )
    p.add_argument(
        "--dataset",
        default="citeulike-bd",
        help="runs of `run_bd.py --dataset D --seed S --runs runs/bd/D-seedS` (e.g. ml-100k)",
    )
    a = p.parse_args()
    if a.dataset != "citeulike-bd" and (a.paper_teacher or a.paper_opt):
        p.error("--dataset: citeulike-bd only with --paper-teacher / --paper-opt")
    if a.paper_opt:
        a.paper_teacher = True
    rows = PAPER_TEACHER_ROWS if a.paper_teacher else ROWS
    tag = "_paperopt" if a.paper_opt else "_paperteacher" if a.paper_teacher else ""
    if a.dataset != "citeulike-bd":
        tag = f"_{a.dataset}"
    table: dict[str, dict[int, dict[str, float]]] = {}
    for label, run, model, _ in rows:
        for s in a.seeds:
            f = (
                paper_teacher_file(s, run, a.paper_opt)
                if a.paper_teacher
                else run_dir(s, a.dataset) / run / "metrics.json"
            )
            if f.is_file():
                m = json.loads(f.read_text())["models"][model]["test"]["full"]
                table.setdefault(label, {})[s] = {"H@50": m["H@50"], "N@50": m["N@50"]}
    git = ["git", "rev-parse", "HEAD"]
    commit = subprocess.run(git, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    flag = "--paper-opt " if a.paper_opt else "--paper-teacher " if a.paper_teacher else ""
    if a.dataset != "citeulike-bd":
        flag = f"--dataset {a.dataset} "
    origin = (
        "BD from issue #5's base models (`configs/bpr-citeulike-bd.yaml`; see the script's doc)"
        if a.paper_teacher
        else "runs from `scripts/run_bd.py --epochs 30 --seed S`"
    )
    if a.dataset != "citeulike-bd":
        origin = (
            f"runs from `scripts/run_bd.py --dataset {a.dataset} --seed S --runs runs/bd/"
            f"{a.dataset}-seedS --only bd-scratch bd-scratch-lambda0`"
        )
    title = f"# BD over seeds: {a.dataset}, BPR 50 / 5, full ranking, test split"
    seeds_arg = " ".join(map(str, a.seeds))
    lines = [
        title + (" (paper-level teacher)" if a.paper_teacher else ""),
        "",
        f"commit {commit}; `python scripts/run_bd_seeds.py {flag}--seeds {seeds_arg}`; "
        f"{origin} (BD settings in results/bd_citeulike-bd.md).",
        "p: paired t-test over the seeds both rows have (two-sided), H@50.",
        "",
        "| row | seeds | H@50 per seed | H@50 mean ± std | N@50 mean | vs | Δ H@50 | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    out = {"seeds": a.seeds, "commit": commit, "rows": {}}
    for label, _, _, ref in rows:
        if label not in table:
            continue
        seeds = sorted(table[label])
        h = np.array([table[label][s]["H@50"] for s in seeds])
        n = np.array([table[label][s]["N@50"] for s in seeds])
        vs, delta, pval = "", "", ""
        if ref is not None and ref in table:
            common = [s for s in seeds if s in table[ref]]
            if common:
                x = np.array([table[label][s]["H@50"] for s in common])
                y = np.array([table[ref][s]["H@50"] for s in common])
                vs, delta = ref, f"{(x - y).mean():+.4f}"
                if len(common) >= 2:
                    pval = f"{stats.ttest_rel(x, y).pvalue:.3f}"
        out["rows"][label] = {
            "seeds": seeds,
            "H@50": h.tolist(),
            "N@50": n.tolist(),
            "vs": vs,
            "delta": delta,
            "p": pval,
        }
        lines.append(
            f"| {label} | {','.join(map(str, seeds))} | {' '.join(f'{v:.4f}' for v in h)} | "
            f"{h.mean():.4f} ± {h.std(ddof=1) if len(h) > 1 else 0:.4f} | {n.mean():.4f} | {vs} | "
            f"{delta} | {pval} |"
        )
    atomic_json(out, ROOT / "results" / f"bd_seeds{tag}.json")
    atomic_text("\n".join(lines) + "\n", ROOT / "results" / f"bd_seeds{tag}.md")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
