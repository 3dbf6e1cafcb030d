"""Issue #5: the BPR student's per-sample L2 (``model.params.reg``), then RD and CD on top of it.

BD Sec. 5.1.5 trains every model with "Adam with L2 regularization" (batch 128, lr up to 0.002)
but gives no L2 weight. ``BPR.reg`` is the usual per-sample L2 on the batch's rows
(``reg * mean(||p_u||^2 + ||q_i||^2 + ||q_j||^2)``, ``recdistill.models.bpr``); it was never
tuned before this script.

1. Grid (validation only): BPR dim 5 on citeulike-bd, batch 128, lr 0.002, reg in ``--regs``,
   seeds ``--grid-seeds``; runs in ``runs/student-reg/s<S>/reg<r>``. The reg with the best mean
   validation H@50 is chosen.
2. KD on the chosen reg, seeds ``--seeds``: ``scripts/run_baselines.py --only bd`` with the same
   overrides and the default RD and CD (``--candidates rd cd``), each seed's existing teacher
   (seed 0: ``runs/base/bpr-bd-teacher``; others: ``runs/baselines-s<S>/citeulike-bd/teacher``),
   tag ``_reg_seed<S>``; then ``scripts/run_baselines_seeds.py --variant reg`` (paired t-tests).
   ``--extra-kd rd:alpha=0.01 ...``: further RD/CD settings on the same student (``recdistill
   distill``, same overrides), e.g. the choices of ``scripts/run_kd_tune.py``'s grid, in
   ``runs/baselines-reg-s<S>/citeulike-bd/<method>-<key><value>``.
3. BD on the chosen student, seeds ``--bd-seeds``: ``scripts/run_bd.py`` with the same optimiser
   (batch 128, lr 0.002, both models), the seed's teacher and the step-2 student, BD (paper τ)
   and its λ = 0 control (``--only bd-rd-labelonly0 bd-lambda0``), early stopping on the student
   (the default), in ``runs/bd/citeulike-bd-reg-seed<S>``. ``--bd-converged-seeds``: the same from a
   converged teacher (the λ = 0 control of ``scripts/run_bd_long.py``, ``runs/bd/long/seed<S>/lambda0``)
   in ``runs/bd/citeulike-bd-regconv-seed<S>`` (rows "conv.: ...").

Writes ``results/student_reg_citeulike-bd.md`` (+ ``.json``): the grid's validation table, the
choice, the test table of step 3 against step 2's rows (paired t-tests over seeds), and the
commands. Resumable: finished runs are reused. Usage::

    python scripts/run_student_reg.py --data-dir ../shared/data [--stage grid|kd|all]

The committed table: ``--extra-kd rd:alpha=0.01 cd:lambda_kd=0.01 cd:lambda_kd=0.01,tau=2
--bd-seeds 0 1 2 3 4 --bd-converged-seeds 0 1 2 3 4`` (the KD extras are the choices of
``scripts/run_kd_tune.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from recdistill.atomic import atomic_json, atomic_text
from recdistill.config import make_config
from recdistill.runs import train_run

ROOT = Path(__file__).resolve().parents[1]
DATASET = "citeulike-bd"
CONFIG = ROOT / "configs" / "bpr-citeulike-bd.yaml"
OPT = ["train.batch_size=128", "train.lr=0.002", "train.epochs=300", "train.patience=6"]


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def grid_run(seed: int, reg: float, data_dir: str | None) -> dict:
    """Train (or reuse) the student with this reg and seed; its metrics.json."""
    out = ROOT / "runs" / "student-reg" / f"s{seed}" / f"reg{reg:g}"
    m = out / "metrics.json"
    if m.is_file():
        return json.loads(m.read_text())
    sets = ["model.size=student", *OPT, f"model.params.reg={reg!r}", f"train.seed={seed}"]
    if data_dir:
        sets.append(f"data.data_dir={data_dir}")
    cfg = make_config(CONFIG, sets=sets)
    t0 = time.time()
    print(f"[grid] seed {seed} reg {reg:g}: training into {out.relative_to(ROOT)} ...", flush=True)
    train_run(cfg, out, resume=(out / "checkpoint.pt").is_file())
    print(f"[grid] seed {seed} reg {reg:g}: done in {time.time() - t0:.0f} s", flush=True)
    return json.loads(m.read_text())


def teacher_run(seed: int) -> str:
    return "runs/base/bpr-bd-teacher" if seed == 0 else f"runs/baselines-s{seed}/citeulike-bd/teacher"


def kd_command(seed: int, reg: float, data_dir: str | None) -> list[str]:
    cmd = [sys.executable, "scripts/run_baselines.py", "--only", "bd", "--seed", str(seed)]
    for s in [*OPT, f"model.params.reg={reg:g}"]:
        cmd += ["--set", s]
    cmd += [
        "--train-missing",
        "--teacher-run",
        teacher_run(seed),
        "--candidates",
        "rd",
        "cd",
        "--tag",
        f"_reg_seed{seed}",
        "--out",
        f"runs/baselines-reg-s{seed}",
        "--threads",
        "1",
    ]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    return cmd


def converged_teacher(seed: int) -> str:
    """The teacher of ``scripts/run_bd_long.py``'s λ = 0 control (issue #5's teacher after up to
    100 more L_CF epochs at batch 128, lr 1e-3, best validation state): a converged teacher."""
    return f"runs/bd/long/seed{seed}/lambda0"


def bd_command(seed: int, data_dir: str | None, converged: bool = False) -> list[str]:
    student = str(reg_run(seed, "student").relative_to(ROOT))
    teacher = converged_teacher(seed) if converged else teacher_run(seed)
    runs = f"runs/bd/{DATASET}-reg{'conv' if converged else ''}-seed{seed}"
    cmd = [
        sys.executable,
        "scripts/run_bd.py",
        "--seed",
        str(seed),
        "--batch-size",
        "128",
        "--lr",
        "0.002",
        "--teacher-run",
        teacher,
        "--student-run",
        student,
        "--runs",
        runs,
        "--only",
        "bd-rd-labelonly0",
        "bd-lambda0",
        "--threads",
        "1",
    ]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    return cmd


def extra_name(spec: str) -> str:
    """``rd:alpha=0.01,k=20`` -> ``rd-alpha0.01-k20`` (the run's folder name)."""
    method, _, params = spec.partition(":")
    return "-".join([method, *(kv.replace("=", "") for kv in params.split(",") if kv)])


def extra_command(spec: str, seed: int, reg: float, data_dir: str | None) -> list[str]:
    method, _, params = spec.partition(":")
    cmd = [
        "recdistill",
        "distill",
        "--method",
        method,
        "--teacher",
        teacher_run(seed),
        "--dataset",
        DATASET,
        "--config",
        str(CONFIG.relative_to(ROOT)),
        "--size",
        "student",
        "--seed",
        str(seed),
        "--out",
        str(reg_run(seed, extra_name(spec)).relative_to(ROOT)),
        "--no-progress",
    ]
    for s in [*OPT, f"model.params.reg={reg:g}", *(f"distill.params.{kv}" for kv in params.split(",") if kv)]:
        cmd += ["--set", s]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    return cmd


def reg_run(seed: int, run: str) -> Path:
    """A run folder of step 2 (``student``, ``rd``, ``cd``) or step 3 (``bd-...``)."""
    if run.startswith("conv:"):  # BD from the converged teacher
        return ROOT / "runs" / "bd" / f"{DATASET}-regconv-seed{seed}" / run[5:]
    if run.startswith("bd-"):
        return ROOT / "runs" / "bd" / f"{DATASET}-reg-seed{seed}" / run
    return ROOT / "runs" / f"baselines-reg-s{seed}" / DATASET / run


# (label, run, model in metrics.json, reference label)
BD_ROWS = [
    ("Teacher", "teacher", "model", None),
    ("Student (reg)", "student", "model", None),
    ("RD (reg)", "rd", "student", "Student (reg)"),
    ("CD (reg)", "cd", "student", "Student (reg)"),
    ("control λ=0: student", "bd-lambda0", "student", "Student (reg)"),
    ("BD-Student", "bd-rd-labelonly0", "student", "control λ=0: student"),
    ("BD-Student vs Student (reg)", "bd-rd-labelonly0", "student", "Student (reg)"),
    ("control λ=0: teacher", "bd-lambda0", "teacher", "Teacher"),
    ("BD-Teacher", "bd-rd-labelonly0", "teacher", "control λ=0: teacher"),
    ("BD-Teacher vs Teacher", "bd-rd-labelonly0", "teacher", "Teacher"),
    ("converged teacher", "converged", "teacher", None),
    ("conv.: control λ=0: teacher", "conv:bd-lambda0", "teacher", "converged teacher"),
    ("conv.: BD-Teacher", "conv:bd-rd-labelonly0", "teacher", "conv.: control λ=0: teacher"),
    ("conv.: control λ=0: student", "conv:bd-lambda0", "student", "Student (reg)"),
    ("conv.: BD-Student", "conv:bd-rd-labelonly0", "student", "conv.: control λ=0: student"),
]


def bd_table(seeds: list[int], extra: list[str] = ()) -> tuple[list[str], dict]:
    """Test H@50 rows of steps 2-3 over ``seeds`` with paired t-tests (``scipy.stats.ttest_rel``)."""
    from run_baselines_seeds import paired_stats  # scripts/ is on sys.path

    rows = (
        BD_ROWS[:4]
        + [(f"{extra_name(e)} (reg)", extra_name(e), "student", "Student (reg)") for e in extra]
        + BD_ROWS[4:]
    )
    vals: dict[str, dict[int, float]] = {}
    for label, run, model, _ in rows:
        for s in seeds:
            d = {"teacher": ROOT / teacher_run(s), "converged": ROOT / converged_teacher(s)}.get(run)
            f = (d if d is not None else reg_run(s, run)) / "metrics.json"
            if f.is_file():
                m = json.loads(f.read_text())["models"][model]
                vals.setdefault(label, {})[s] = m["test"]["full"]["H@50"]
    lines = [
        "| row | H@50 per seed | mean ± std | vs | Δ | p | seeds above |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    out = {}
    for label, _, _, ref in rows:
        if label not in vals:
            continue
        ss = sorted(vals[label])
        h = np.array([vals[label][s] for s in ss])
        sd = h.std(ddof=1) if len(h) > 1 else 0.0
        cells = [" ".join(f"{v:.4f}" for v in h), f"{h.mean():.4f} ± {sd:.4f}"]
        vs = delta = pval = above = ""
        common = [s for s in ss if ref in vals and s in vals[ref]]
        if len(common) >= 2:
            x, y = (np.array([vals[r][s] for s in common]) for r in (label, ref))
            st = paired_stats(x, y)
            vs, delta = ref, f"{st['mean_diff']:+.4f}"
            pval, above = f"{st['p']:.3f}", f"{st['n_above']}/{st['n']}"
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {vs} | {delta} | {pval} | {above} |")
        out[label] = {"seeds": ss, "H@50": h.tolist(), "vs": vs, "delta": delta, "p": pval}
    return lines, out


def render(
    grid: dict, regs: list[float], seeds: list[int], chosen: float, cmds: list[str], commit: str
) -> str:
    lines = [
        "# The BPR student's per-sample L2 on citeulike-bd (issue #5)",
        "",
        f"BPR dim 5, `configs/bpr-citeulike-bd.yaml` with {', '.join(f'`{s}`' for s in OPT)} and "
        f"`model.params.reg` = r; seeds {', '.join(map(str, seeds))}; commit `{commit}`; generated by "
        f"`{cmds[0]}`.",
        "",
        "Validation H@50 (full ranking) at each run's best epoch (best epoch / epochs run). The reg "
        "with the best mean is chosen; test scores are not looked at here.",
        "",
        "| reg | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
        "|---:|" + "---:|" * (len(seeds) + 1),
    ]
    for r in regs:
        cells, vals = [], []
        for s in seeds:
            m = grid[(s, r)]["models"]["model"]
            v = m["valid"]["full"]["H@50"]
            vals.append(v)
            cells.append(f"{v:.4f} ({m['best_epoch']}/{grid[(s, r)]['epochs_run']})")
        mark = " **chosen**" if r == chosen else ""
        lines.append(f"| {r:g}{mark} | " + " | ".join(cells) + f" | {np.mean(vals):.4f} |")
    lines += ["", f"Chosen: reg = {chosen:g}.", ""]
    if len(cmds) > 1:
        lines += ["RD and CD (their defaults) on the chosen student, per seed, then the summary:", ""]
        lines += [f"    {c}" for c in cmds[1:]]
        lines += ["", "The table with paired t-tests: `results/baselines_citeulike-bd_reg_seeds.md`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--regs", type=float, nargs="+", default=[0.0, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1])
    p.add_argument("--grid-seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument(
        "--extra-kd",
        nargs="*",
        default=[],
        metavar="METHOD:K=V[,K=V]",
        help="more RD/CD settings on the chosen student, e.g. rd:alpha=0.01",
    )
    p.add_argument("--bd-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--bd-converged-seeds",
        type=int,
        nargs="*",
        default=[],
        help="also BD from the converged teacher of run_bd_long.py's λ = 0 control",
    )
    p.add_argument("--stage", choices=["grid", "kd", "all"], default="all")
    a = p.parse_args()
    torch.set_num_threads(1)
    grid = {(s, r): grid_run(s, r, a.data_dir) for s in a.grid_seeds for r in a.regs}
    valid = {k: v["models"]["model"]["valid"]["full"]["H@50"] for k, v in grid.items()}
    mean = {r: float(np.mean([valid[(s, r)] for s in a.grid_seeds])) for r in a.regs}
    chosen = max(a.regs, key=lambda r: mean[r])
    print(f"chosen reg {chosen:g} (mean valid H@50 {mean[chosen]:.4f})", flush=True)
    argv = " ".join(["python", "scripts/run_student_reg.py", *sys.argv[1:]])
    cmds = [argv]
    if a.stage in ("kd", "all"):
        for s in a.seeds:
            cmd = kd_command(s, chosen, a.data_dir)
            cmds.append(" ".join(["python", *cmd[1:]]))
            print(f"[kd] seed {s}: {cmds[-1]}", flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True)
        summ = [
            sys.executable,
            "scripts/run_baselines_seeds.py",
            "--seeds",
            *map(str, a.seeds),
            "--variant",
            "reg",
        ]
        cmds.append(" ".join(["python", *summ[1:]]))
        subprocess.run(summ, cwd=ROOT, check=True)
        for spec in a.extra_kd:
            for s in a.seeds:
                cmd = extra_command(spec, s, chosen, a.data_dir)
                cmds.append(" ".join(cmd))
                if (reg_run(s, extra_name(spec)) / "metrics.json").is_file():
                    continue
                if (reg_run(s, extra_name(spec)) / "checkpoint.pt").is_file():
                    cmd.append("--resume")
                print(f"[kd+] seed {s}: {cmds[-1]}", flush=True)
                subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if a.stage == "all":
        for s in a.bd_seeds:
            cmd = bd_command(s, a.data_dir)
            cmds.append(" ".join(["python", *cmd[1:]]))
            print(f"[bd] seed {s}: {cmds[-1]}", flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True)
        for s in a.bd_converged_seeds:
            cmd = bd_command(s, a.data_dir, converged=True)
            cmds.append(" ".join(["python", *cmd[1:]]))
            print(f"[bd, converged teacher] seed {s}: {cmds[-1]}", flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True)
    table, rows = bd_table(sorted(set(a.seeds) | set(a.bd_seeds)), a.extra_kd)
    commit = _commit()
    out = ROOT / "results" / f"student_reg_{DATASET}"
    text = render(grid, a.regs, a.grid_seeds, chosen, cmds, commit)
    text += (
        "\n## Test H@50 on the chosen student (full ranking)\n\nTeacher: each seed's BPR dim 50 "
        "(`--teacher-run` above). Δ = row − vs, paired over the seeds both have; p: two-sided "
        "`scipy.stats.ttest_rel`.\n\n" + "\n".join(table) + "\n"
    )
    atomic_text(text, out.with_suffix(".md"))
    atomic_json(
        {
            "commit": commit,
            "commands": cmds,
            "test_H@50": rows,
            "overrides": OPT,
            "chosen_reg": chosen,
            "mean_valid_H@50": mean,
            "grid": [
                {
                    "seed": s,
                    "reg": r,
                    "best_epoch": grid[(s, r)]["models"]["model"]["best_epoch"],
                    "epochs_run": grid[(s, r)]["epochs_run"],
                    "valid_H@50": grid[(s, r)]["models"]["model"]["valid"]["full"]["H@50"],
                }
                for s in a.grid_seeds
                for r in a.regs
            ],
        },
        out.with_suffix(".json"),
    )
    print(f"wrote {out.with_suffix('.md').relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
