"""BD with long schedules and early stopping on the teacher (issue #6, "Left open").

The earlier BD runs stopped on the student's validation (``BDConfig.monitor_model="auto"``); the
student peaks at BD epoch 2, so the teacher never got more than about 12 BD epochs. Here:

- start: the paper-level teacher of issue #5 (``runs/base/bpr-bd-teacher`` for seed 0, else
  ``runs/baselines-sS/citeulike-bd/teacher``) and the student trained with the paper's optimiser
  (``runs/baselines-paperopt-sS/citeulike-bd/student``), as ``run_bd_seeds.py --paper-opt``;
- BD with the paper's optimiser (Adam, batch 128, lr 1e-3), validation every 2 epochs, up to
  ``--epochs`` BD epochs, early stopping on ``--monitor`` (default: the teacher) after ``--patience``
  validations without improvement; each model keeps its own best-validation state;
- per seed, BD and its control (λ = 0 both ways, the same schedule and draws: extra L_CF epochs);
- ``--grid``: on ``--grid-seed`` (0), τ ∈ {2, 5, 10} x ε_e ∈ {1e-3, 1e-4, 1e-5} at 5 draws per
  interaction (the paper's Sec. 5.1.5 grid, other settings at ``run_bd.BD_BASE``), then the draws
  per interaction ``--draws`` (paper {1, 5, 10}) at the best (τ, ε_e); the teacher's validation
  H@50 (best state) over all these runs picks the setting, which is then run on every seed. Test
  metrics never select anything.

Runs go to ``<runs>/seedS/<name>`` (``bd-tau{τ}-ee{ε_e}[-s{draws}]``, ``-s`` only when not 5;
``lambda0``). A finished run (one with
``metrics.json``) is reused after checking that its settings are the ones asked for; an
interrupted one resumes from its checkpoint. After every run the tables are rewritten:
``results/bd_long_citeulike-bd.md`` / ``.json`` (per-run epochs, test H@50 / N@50, paired t-tests
over seeds with ``scipy.stats.ttest_rel``). ``--summary`` only rewrites them.

    nohup python scripts/run_bd_long.py --data-dir ../shared/data --seeds 0 1 2 3 4 --grid \\
        > runs/bd/long/log.txt 2>&1 &
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from scipy import stats

from recdistill.atomic import atomic_json, atomic_text
from recdistill.config import make_config
from recdistill.distill.bd import BD
from recdistill.runs import distill_run, load_dataset_for

ROOT = Path(__file__).resolve().parents[1]
DATASET = "citeulike-bd"
DIMS = {"teacher": 50, "student": 5}
#: the paper's optimiser (BD Sec. 5.1.5), as run_bd_seeds.py --paper-opt
TRAIN = {
    "batch_size": 128,
    "lr": 1e-3,
    "eval_every": 2,
    "progress": False,
    "eval_protocol": "full",
    "monitor": "H@50",
}
#: run_bd.BD_BASE (pre-trained models: no warm-up; p = 10, 5 draws, ε_t = ε_e = 1e-4, τ = 2, paper τ)
BD_BASE = {
    "warmup_epochs": 0,
    "period": 10,
    "n_samples": 5,
    "eps_t": 1e-4,
    "eps_e": 1e-4,
    "tau": 2.0,
    "label_only_tau": False,
}
TAUS = (2.0, 5.0, 10.0)
EPS_E = (1e-3, 1e-4, 1e-5)
DRAWS = 5  # BD_BASE's n_samples
DEFAULT = (2.0, 1e-4, DRAWS)
OUT = ROOT / "results" / f"bd_long_{DATASET}"


def git_commit() -> str:
    r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def base_run(seed: int, model: str) -> Path:
    """Issue #5's paper-level teacher; the student trained with the paper's optimiser."""
    if model == "student":
        return ROOT / "runs" / f"baselines-paperopt-s{seed}" / DATASET / "student"
    if seed == 0:
        return ROOT / "runs" / "base" / "bpr-bd-teacher"
    return ROOT / "runs" / f"baselines-s{seed}" / DATASET / "teacher"


def bd_name(tau: float, eps_e: float, n_samples: int = DRAWS) -> str:
    return f"bd-tau{tau:g}-ee{eps_e:g}" + (f"-s{n_samples}" if n_samples != DRAWS else "")


def bd_params(name: str) -> dict:
    if name == "lambda0":
        return dict(BD_BASE, lambda_t2s=0.0, lambda_s2t=0.0)
    tau, rest = name.removeprefix("bd-tau").split("-ee")
    ee, _, n = rest.partition("-s")
    return dict(BD_BASE, tau=float(tau), eps_e=float(ee), n_samples=int(n) if n else DRAWS)


def metrics_of(run: Path) -> dict | None:
    p = run / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else None


def train_config(a, seed: int):
    return make_config(
        overrides={
            "data": {"name": DATASET, "data_dir": a.data_dir},
            "model": {"name": "bpr", "size": None, "dim": DIMS["student"]},
            "train": dict(TRAIN, epochs=a.epochs, patience=a.patience, seed=seed),
        }
    )


def one_run(a, dataset, seed: int, name: str) -> dict:
    """Train (or reuse / resume) one BD run; returns its metrics."""
    run = Path(a.runs) / f"seed{seed}" / name
    # the explicit model sizes win over BDConfig's; one draw per refresh unless --fresh-draws
    bd = BD.build_config(
        dict(
            bd_params(name),
            monitor_model=a.monitor,
            teacher_dim=DIMS["teacher"],
            student_dim=DIMS["student"],
            fresh_draws=a.fresh_draws,
        )
    )
    cfg = train_config(a, seed)
    cfg = dataclasses.replace(
        cfg, distill=dataclasses.replace(cfg.distill, method="bd", params=dataclasses.asdict(bd))
    )
    have = None  # never mix settings: a run dir holds one configuration
    if (run / "distill.json").is_file():
        have = json.loads((run / "distill.json").read_text())["params"]
    elif (run / "bd.json").is_file():  # a run made before distill.json: one draw per refresh
        have = {"fresh_draws": False, **json.loads((run / "bd.json").read_text())["bd"]}
        # its sizes came from run_bd's arguments, not its BDConfig
        have.update(teacher_dim=DIMS["teacher"], student_dim=DIMS["student"])
    if have is not None:
        want_train = cfg.to_dict()["train"]
        have_train = yaml.safe_load((run / "config.yaml").read_text())["train"]
        if have != dataclasses.asdict(bd) or have_train != want_train:
            raise SystemExit(
                f"{run}: trained with other settings ({have}, {have_train}); "
                "move it away or pick another --runs"
            )
    m = metrics_of(run)
    if m is not None:
        print(f"[{time.strftime('%H:%M:%S')}] seed {seed} {name}: reused", flush=True)
        return m
    teacher, student = base_run(seed, "teacher"), base_run(seed, "student")
    for p in (teacher, student):
        if metrics_of(p) is None:
            raise SystemExit(f"{p}: no metrics.json (base run missing)")
    print(f"[{time.strftime('%H:%M:%S')}] seed {seed} {name}: start", flush=True)
    t0 = time.time()
    _, _, m = distill_run(
        cfg, run, dataset=dataset, teacher=teacher, student=student, resume=(run / "checkpoint.pt").exists()
    )
    print(
        f"[{time.strftime('%H:%M:%S')}] seed {seed} {name}: {time.time() - t0:.0f}s, "
        f"{m['epochs_run']} BD epochs, best T/S {m['models']['teacher']['best_epoch']}/"
        f"{m['models']['student']['best_epoch']}, valid H@50 T/S "
        f"{m['models']['teacher']['valid']['full']['H@50']:.4f}/"
        f"{m['models']['student']['valid']['full']['H@50']:.4f}",
        flush=True,
    )
    return m


def _best(a, points: list[tuple[float, float, int]]) -> tuple[float, float, int] | None:
    """The point with the best teacher validation H@50 on the grid seed (None: one is unfinished;
    ties: the first)."""
    runs = Path(a.runs) / f"seed{a.grid_seed}"
    best, best_v = None, -1.0
    for pt in points:
        m = metrics_of(runs / bd_name(*pt))
        if m is None:
            return None
        v = m["models"]["teacher"]["valid"]["full"]["H@50"]
        if v > best_v:
            best, best_v = pt, v
    return best


def grid_points(a, stage: int) -> list[tuple[float, float, int]] | None:
    """Stage 1: τ x ε_e at 5 draws; stage 2: the draws at stage 1's best (None: stage 1 unfinished).
    With ``--grid-points`` stage 1 is cut to the named points that are finished, plus those named."""
    first = [(tau, ee, DRAWS) for tau in TAUS for ee in EPS_E]
    if stage == 1:
        return first
    b = _best(a, _selectable(a, first))
    return None if b is None else [(b[0], b[1], n) for n in a.draws if n != DRAWS]


def _selectable(a, points: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """All points; with ``--grid-points`` (a cut grid, for time) the finished ones and the named."""
    if a.grid_points is None:
        return points
    runs = Path(a.runs) / f"seed{a.grid_seed}"
    return [
        pt for pt in points if bd_name(*pt) in a.grid_points or metrics_of(runs / bd_name(*pt)) is not None
    ]


def chosen_setting(a) -> tuple[float, float, int] | None:
    """The best of both stages by the teacher's validation H@50 (None: grid unfinished)."""
    second = grid_points(a, 2)
    return None if second is None else _best(a, _selectable(a, grid_points(a, 1)) + second)


# ---------------------------------------------------------------------------- tables
def _base_row(seed: int, model: str, split: str = "test") -> dict | None:
    m = metrics_of(base_run(seed, model))
    if m is None:
        return None
    r = m["models"]["model"]
    return {"H@50": r[split]["full"]["H@50"], "N@50": r[split]["full"]["N@50"], "best_epoch": r["best_epoch"]}


def _bd_row(a, seed: int, name: str, model: str, split: str = "test") -> dict | None:
    m = metrics_of(Path(a.runs) / f"seed{seed}" / name)
    if m is None:
        return None
    r = m["models"][model]
    return {
        "H@50": r[split]["full"]["H@50"],
        "N@50": r[split]["full"]["N@50"],
        "best_epoch": r["best_epoch"],
        "epochs_run": m["epochs_run"],
        "early_stopped": m["early_stopped"],
        "train_time_s": m["train_time_s"],
    }


def _per_epoch_seconds(a, seed: int, name: str) -> float | None:
    """Mean training seconds per BD epoch (log.jsonl, refresh included in the epoch that draws)."""
    p = Path(a.runs) / f"seed{seed}" / name / "log.jsonl"
    if not p.is_file():
        return None
    t = [json.loads(x)["time_train_s"] for x in p.read_text().splitlines() if x.strip()]
    return float(np.mean(t)) if t else None


def _teacher_trajectory(a, seed: int, name: str) -> list[tuple[int, float]]:
    """(BD epoch, the teacher's validation H@50) at every validation of the run."""
    p = Path(a.runs) / f"seed{seed}" / name / "log.jsonl"
    if not p.is_file():
        return []
    recs = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
    return [(r["epoch"], r["valid"]["teacher"]["H@50"]) for r in recs if "valid" in r]


def summarise(a) -> str:
    chosen = chosen_setting(a) if a.grid else None
    bd_runs = [("default", bd_name(*DEFAULT))]
    if chosen is not None and chosen != DEFAULT:
        bd_runs.append(("chosen", bd_name(*chosen)))
    # (label, getter, reference label)
    rows: list[tuple[str, object, str | None]] = [
        ("Teacher", lambda s: _base_row(s, "teacher"), None),
        ("control λ=0: teacher", lambda s: _bd_row(a, s, "lambda0", "teacher"), "Teacher"),
    ]
    for tag, n in bd_runs:
        lab = f"BD-Teacher ({tag}: {n})"
        rows += [
            (lab, lambda s, n=n: _bd_row(a, s, n, "teacher"), "control λ=0: teacher"),
            (lab + " vs Teacher", lambda s, n=n: _bd_row(a, s, n, "teacher"), "Teacher"),
        ]
    rows += [
        ("Student", lambda s: _base_row(s, "student"), None),
        ("control λ=0: student", lambda s: _bd_row(a, s, "lambda0", "student"), "Student"),
    ]
    for tag, n in bd_runs:
        lab = f"BD-Student ({tag}: {n})"
        rows += [
            (lab, lambda s, n=n: _bd_row(a, s, n, "student"), "control λ=0: student"),
            (lab + " vs Student", lambda s, n=n: _bd_row(a, s, n, "student"), "Student"),
        ]
    data: dict[str, dict[int, dict]] = {}
    for label, get, _ in rows:
        for s in a.seeds:
            r = get(s)
            if r is not None:
                data.setdefault(label, {})[s] = r
    commit = git_commit()
    cmd = "python scripts/run_bd_long.py " + " ".join(x for x in sys.argv[1:] if x != "--summary")
    note = (
        " Tables rewritten from the finished runs by the same command with `--summary`." if a.summary else ""
    )
    out: dict = {
        "command": cmd,
        "commit": commit,
        "seeds": a.seeds,
        "monitor_model": a.monitor,
        "epochs": a.epochs,
        "patience_validations": a.patience,
        "train": TRAIN,
        "bd_base": BD_BASE,
        "grid": None,
        "grid_points": a.grid_points,
        "draws": a.draws,
        "chosen": None if chosen is None else dict(zip(("tau", "eps_e", "n_samples"), chosen)),
        "rows": {},
        "runs": {},
    }
    lines = [
        f"# BD with long schedules, early stopping on the {a.monitor}: {DATASET}, BPR 50 / 5, "
        "full ranking, test split",
        "",
        f"commit {commit}; `{cmd}`.{note}",
        "",
        f"Paper-level teacher (issue #5) and the student trained with the paper's optimiser, as "
        f"`run_bd_seeds.py --paper-opt`; BD and the λ = 0 control with batch 128, lr 1e-3, up to "
        f"{a.epochs} BD epochs, validation every 2 epochs, early stopping when the "
        f"{a.monitor}'s validation H@50 did not improve for {a.patience} validations "
        f"(`BDConfig.monitor_model={a.monitor!r}`); each model keeps its own best-validation "
        f"state. BD settings {json.dumps(BD_BASE)} with τ, ε_e as named. "
        "p: two-sided paired t-test (scipy.stats.ttest_rel) over the seeds both rows have, H@50.",
        "",
        "| row | seeds | H@50 per seed | H@50 mean ± std | N@50 mean | vs | Δ H@50 | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, _, ref in rows:
        if label not in data:
            continue
        seeds = sorted(data[label])
        h = np.array([data[label][s]["H@50"] for s in seeds])
        nd = np.array([data[label][s]["N@50"] for s in seeds])
        vs, delta, pval, rel = "", "", "", ""
        if ref is not None and ref in data:
            common = [s for s in seeds if s in data[ref]]
            if common:
                x = np.array([data[label][s]["H@50"] for s in common])
                y = np.array([data[ref][s]["H@50"] for s in common])
                vs, delta, rel = ref, f"{(x - y).mean():+.4f}", f"{(x / y - 1).mean() * 100:+.1f}%"
                if len(common) >= 2:
                    pv = stats.ttest_rel(x, y).pvalue
                    pval = f"{pv:.3f}" if pv >= 0.001 else f"{pv:.1e}"
        out["rows"][label] = {
            "seeds": seeds,
            "H@50": h.tolist(),
            "N@50": nd.tolist(),
            "vs": vs,
            "delta_H@50": delta,
            "rel": rel,
            "p": pval,
        }
        sd = h.std(ddof=1) if len(h) > 1 else 0.0
        lines.append(
            f"| {label} | {','.join(map(str, seeds))} | {' '.join(f'{v:.4f}' for v in h)} | "
            f"{h.mean():.4f} ± {sd:.4f} | {nd.mean():.4f} | {vs} | "
            f"{delta}{f' ({rel})' if rel else ''} | {pval} |"
        )
    # per-run schedule
    lines += [
        "",
        "## Runs: BD epochs run and best epochs (teacher / student)",
        "",
        "| seed | run | BD epochs run | early stopped | best epoch T | best epoch S | s per BD epoch | "
        "test H@50 T | test H@50 S |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = ["lambda0"] + [n for _, n in bd_runs]
    for s in a.seeds:
        for n in names:
            t, st = _bd_row(a, s, n, "teacher"), _bd_row(a, s, n, "student")
            if t is None:
                continue
            sec = _per_epoch_seconds(a, s, n)
            out["runs"][f"seed{s}/{n}"] = {
                "epochs_run": t["epochs_run"],
                "early_stopped": t["early_stopped"],
                "best_epoch_teacher": t["best_epoch"],
                "best_epoch_student": st["best_epoch"],
                "train_time_s": t["train_time_s"],
                "s_per_epoch": sec,
                "test_teacher": {k: t[k] for k in ("H@50", "N@50")},
                "test_student": {k: st[k] for k in ("H@50", "N@50")},
            }
            lines.append(
                f"| {s} | `{n}` | {t['epochs_run']} | {t['early_stopped']} | {t['best_epoch']} | "
                f"{st['best_epoch']} | {sec:.1f} | {t['H@50']:.4f} | {st['H@50']:.4f} |"
            )
    lines += [
        "",
        "## The teacher's validation H@50 along the schedule (log.jsonl; BD epoch: value)",
        "",
        "Ranks and draws are refreshed at BD epochs 0, 10, 20, ... (p = 10).",
        "",
    ]
    for s in a.seeds:
        for n in names:
            traj = _teacher_trajectory(a, s, n)
            if traj and f"seed{s}/{n}" in out["runs"]:  # finished runs only
                out["runs"][f"seed{s}/{n}"]["valid_teacher_H@50"] = traj
                shown = [(e, v) for e, v in traj if e == 2 or e % 10 == 0 or e == traj[-1][0]]
                lines.append(f"- seed {s} `{n}`: " + ", ".join(f"{e}: {v:.4f}" for e, v in shown))
    lines.append("")
    lines.append(
        "Base models (epochs of their own training, not BD epochs): best epoch "
        + ", ".join(
            f"seed {s} T {r['best_epoch']}" for s in a.seeds if (r := _base_row(s, "teacher")) is not None
        )
        + "."
    )
    if a.grid:
        g = a.grid_seed
        lines += [
            "",
            f"## Grid on seed {g} (selection: the teacher's validation H@50 of its best state)",
            "",
            "τ x ε_e at 5 draws per interaction, then the draws at the best (τ, ε_e). Test "
            "columns are shown for reference only; they select nothing.",
            "",
            "| τ | ε_e | draws | valid H@50 T | valid H@50 S | BD epochs run | best epoch T | "
            "test H@50 T | test H@50 S |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        grid = {}
        c = _bd_row(a, g, "lambda0", "teacher", "valid")
        points = grid_points(a, 1) + (grid_points(a, 2) or [])
        for tau, ee, nd_ in points:
            n = bd_name(tau, ee, nd_)
            v, vs_ = _bd_row(a, g, n, "teacher", "valid"), _bd_row(a, g, n, "student", "valid")
            t, ts = _bd_row(a, g, n, "teacher"), _bd_row(a, g, n, "student")
            if v is None:
                lines.append(f"| {tau:g} | {ee:g} | {nd_} | (not run) | | | | | |")
                continue
            grid[n] = {
                "tau": tau,
                "eps_e": ee,
                "n_samples": nd_,
                "valid_teacher": v["H@50"],
                "valid_student": vs_["H@50"],
                "epochs_run": v["epochs_run"],
                "best_epoch_teacher": v["best_epoch"],
                "test_teacher": t["H@50"],
                "test_student": ts["H@50"],
            }
            mark = " **chosen**" if chosen == (tau, ee, nd_) else ""
            lines.append(
                f"| {tau:g} | {ee:g} | {nd_}{mark} | {v['H@50']:.4f} | {vs_['H@50']:.4f} | "
                f"{v['epochs_run']} | {v['best_epoch']} | {t['H@50']:.4f} | {ts['H@50']:.4f} |"
            )
        if c is not None:
            cs = _bd_row(a, g, "lambda0", "student", "valid")
            lines.append(
                f"| control λ = 0 | | | {c['H@50']:.4f} | {cs['H@50']:.4f} | {c['epochs_run']} | "
                f"{c['best_epoch']} | | |"
            )
        tv = _base_row(g, "teacher", "valid")
        if tv is not None:
            lines.append(f"\nTeacher before BD: valid H@50 {tv['H@50']:.4f}.")
        out["grid"] = grid
        if a.grid_points is not None:
            lines.append(
                "\nThe grid was cut for time (`--grid-points`): the setting is chosen among "
                "the points that were run; '(not run)' points took no part."
            )
        if chosen is None:
            lines.append(
                "\nGrid unfinished: no setting chosen; the BD rows above use the default "
                f"{bd_name(*DEFAULT)}."
            )
    text = "\n".join(lines) + "\n"
    atomic_json(out, OUT.with_suffix(".json"))
    atomic_text(text, OUT.with_suffix(".md"))
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=100, help="most BD epochs")
    p.add_argument(
        "--patience", type=int, default=10, help="validations (every 2 epochs) without improvement"
    )
    p.add_argument(
        "--monitor",
        default="teacher",
        choices=["teacher", "both", "student", "auto"],
        help="BDConfig.monitor_model",
    )
    p.add_argument(
        "--grid", action="store_true", help="τ x ε_e grid on --grid-seed, then the chosen on all seeds"
    )
    p.add_argument(
        "--draws",
        type=int,
        nargs="+",
        default=[1, 5, 10],
        help="with --grid: draws per interaction tried at the best (τ, ε_e)",
    )
    p.add_argument(
        "--grid-points",
        nargs="*",
        default=None,
        help="with --grid: cut the τ x ε_e grid (for time) to these runs (e.g. "
        "bd-tau10-ee0.0001) and the ones already finished; selection among those",
    )
    p.add_argument("--grid-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default=str(ROOT / "runs" / "bd" / "long"))
    p.add_argument("--summary", action="store_true", help="only rewrite the tables from finished runs")
    p.add_argument(
        "--fresh-draws",
        action="store_true",
        help="BD draws anew every epoch (Algorithm 1; BDConfig.fresh_draws); default: one "
        "draw per refresh, as the committed tables",
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.summary:
        print(summarise(a))
        return
    dataset = load_dataset_for(train_config(a, a.seeds[0]))
    # 1. the control and the defaults on every seed (the main comparison); when an earlier call
    # has already chosen a grid setting, each seed's control and chosen run go first (for time)
    known = chosen_setting(a) if a.grid else None
    if known is not None and known != DEFAULT:
        for s in a.seeds:
            for n in ("lambda0", bd_name(*known)):
                one_run(a, dataset, s, n)
                summarise(a)
    for s in a.seeds:
        for n in ("lambda0", bd_name(*DEFAULT)):
            one_run(a, dataset, s, n)
            summarise(a)
    if not a.grid:
        print(summarise(a))
        return
    # 2. the grid on one seed, selected on the teacher's validation H@50
    for stage in (1, 2):
        for pt in _selectable(a, grid_points(a, stage)) if stage == 1 else grid_points(a, stage):
            one_run(a, dataset, a.grid_seed, bd_name(*pt))
            summarise(a)
    chosen = chosen_setting(a)
    print(
        f"chosen on seed {a.grid_seed} (teacher valid H@50): tau={chosen[0]:g} eps_e={chosen[1]:g} "
        f"draws={chosen[2]}",
        flush=True,
    )
    # 3. the chosen setting on every seed
    if chosen != DEFAULT:
        for s in a.seeds:
            one_run(a, dataset, s, bd_name(*chosen))
            summarise(a)
    print(summarise(a))


if __name__ == "__main__":
    main()
