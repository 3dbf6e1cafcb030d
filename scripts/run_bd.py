"""Issue #6's experiments: BD on citeulike-bd (full ranking), BPR teacher (dim 50) and student (dim 5).

Stages (each run goes to ``runs/bd/<dataset>/<name>``; a finished run, one with ``metrics.json``,
is reused; an interrupted one resumes from its checkpoint):

1. ``teacher``, ``student``: the base models alone (the settings of ``scripts/run_baselines.py``;
   ``--shared-base`` reuses that script's runs in ``runs/baselines/<dataset>/{teacher,student}``).
   RD and CD (issue #5's distillers) are run here too, from the same teacher as BD.
2. ``bd-*``: BD from the pre-trained teacher and student (the official notebook's start; the
   paper's Algorithm 1 warms both up with ``L_CF``, which pre-training is), one run per variant:
   the paper's temperature vs the notebook's (``label_only_tau``), then the sampling schemes of
   Table 5 (and the notebook's ``reversed`` directions) with the default chosen on validation.
3. Tables to ``results/bd_<dataset>.md`` / ``.json`` (seed, configs, commit), analyses (Eq. 1,
   Eq. 6, Figs. 1/4 PNGs) to ``results/bd_<dataset>_analysis/``.

    python scripts/run_bd.py [--data-dir DIR] [--epochs 30] [--seed 0] [--threads 1] [--only RUN ...]
        [--teacher-run DIR --student-run DIR]   # start BD from given finished base runs
        [--fresh-draws]   # new BD draws every epoch (default: one per refresh, as the tables)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import time
from pathlib import Path

import torch

from recdistill.atomic import atomic_json, atomic_text
from recdistill.config import make_config
from recdistill.distill.bd import BD
from recdistill.runs import distill_run, load_dataset_for, load_run, train_run

ROOT = Path(__file__).resolve().parents[1]
DATASET = "citeulike-bd"
DIMS = {"teacher": 50, "student": 5}
METRICS = ["H@50", "N@50", "H@100", "N@100"]
#: the base-model training settings of scripts/run_baselines.py (issue #5), shared by every run
BASE_TRAIN = {
    "batch_size": 1024,
    "lr": 5e-3,
    "eval_every": 2,
    "patience": 3,
    "progress": False,
    "eval_protocol": "full",
}
#: BD's settings (paper defaults; the notebook's τ = 2, ε = 1e-4, 5 samples); warm-up = pre-training
BD_BASE = {
    "warmup_epochs": 0,
    "period": 10,
    "n_samples": 5,
    "eps_t": 1e-4,
    "eps_e": 1e-4,
    "tau": 2.0,
    "label_only_tau": False,
}
#: paper Table 2 / Table 5 (BPR, CiteULike, H@50)
PAPER = {
    "Teacher": 0.1224,
    "Student": 0.0717,
    "BD-Teacher": 0.1479,
    "BD-Student": 0.0853,
    "CD": 0.0803,
    "RD": 0.0782,
}


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cfg_for(data_dir: str | None, dim: int, epochs: int, seed: int, patience: int | None = None):
    train = dict(BASE_TRAIN, epochs=epochs, seed=seed)
    if patience is not None:
        train["patience"] = patience
    return make_config(
        overrides={
            "data": {"name": DATASET, "data_dir": data_dir},
            "model": {"name": "bpr", "size": None, "dim": dim},
            "train": train,
        }
    )


def metrics_of(run: Path) -> dict | None:
    p = run / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else None


def bd_params_of(run: Path) -> dict:
    """The BDConfig fields a BD run was trained with: ``distill.json``'s ``params``, or for a run
    made before ``distill.json`` its ``bd.json`` (one draw per refresh: ``fresh_draws`` False)."""
    if (run / "distill.json").is_file():
        return json.loads((run / "distill.json").read_text())["params"]
    return {"fresh_draws": False, **json.loads((run / "bd.json").read_text())["bd"]}


def base_models(a, dataset) -> dict[str, Path]:
    """Pre-trained Teacher and Student: the issue-#5 runs if finished, else our own."""
    out = {}
    for name, dim in DIMS.items():
        given = getattr(a, f"{name}_run", None)
        if given:  # a finished run named on the command line (e.g. issue #5's base models)
            if metrics_of(Path(given)) is None:
                raise SystemExit(f"--{name}-run {given}: no metrics.json (not a finished run)")
            out[name] = Path(given).resolve()
            continue
        shared = ROOT / "runs" / "baselines" / DATASET / name
        own = Path(a.runs) / name
        if metrics_of(shared) is not None and a.shared_base:
            out[name] = shared
            continue
        if metrics_of(own) is None:
            t0 = time.time()
            train_run(
                cfg_for(a.data_dir, dim, a.base_epochs, a.seed),
                own,
                dataset=dataset,
                resume=(own / "checkpoint.pt").exists(),
            )
            print(f"trained {name} in {time.time() - t0:.0f}s", flush=True)
        out[name] = own
    return out


def bd_run(a, dataset, base: dict[str, Path], name: str, **params) -> dict:
    run = Path(a.runs) / name
    if metrics_of(run) is None:
        params = dict(params)
        scratch = params.pop("_scratch", False)
        patience = params.pop("_patience", a.patience)
        # the explicit model sizes win over BDConfig's; fresh_draws off (one draw per refresh, as
        # the committed tables) unless --fresh-draws (Algorithm 1: new draws every epoch)
        fresh = getattr(a, "fresh_draws", False)  # run_bd_grid.py / run_bd_sizes.py: off
        bd = BD.build_config(
            {
                **BD_BASE,
                **params,
                "teacher_dim": DIMS["teacher"],
                "student_dim": DIMS["student"],
                "fresh_draws": fresh,
            }
        )
        epochs = a.epochs + (a.base_epochs if scratch else 0)
        cfg = cfg_for(a.data_dir, DIMS["student"], epochs, a.seed, patience=patience)
        cfg = dataclasses.replace(
            cfg, distill=dataclasses.replace(cfg.distill, method="bd", params=dataclasses.asdict(bd))
        )
        t0 = time.time()
        init = {} if scratch else {"teacher": base["teacher"], "student": base["student"]}
        distill_run(cfg, run, dataset=dataset, **init, resume=(run / "checkpoint.pt").exists())
        print(f"{name}: {time.time() - t0:.0f}s", flush=True)
    return metrics_of(run)


#: every BD run: name -> BDConfig fields over BD_BASE. The schemes use the paper's τ (label_only_tau
#: False); "bd-lambda0" is the control: the same schedule with λ = 0 (more L_CF epochs only).
RUNS = {
    "bd-rd-labelonly0": {"label_only_tau": False},
    "bd-rd-labelonly1": {"label_only_tau": True},
    "bd-lambda0": {"lambda_t2s": 0.0, "lambda_s2t": 0.0},
    "bd-uniform": {"sampling": "uniform"},
    "bd-swapped": {"sampling": "swapped"},
    "bd-reversed": {"sampling": "reversed"},
    "bd-rank-aware": {"sampling": "rank-aware"},
    "bd-top-n": {"sampling": "top-n"},
    # fewer / lighter distillation terms (the paper picks n_samples in {1, 5, 10} on validation)
    "bd-s1": {"n_samples": 1},
    "bd-lst0.1": {"lambda_s2t": 0.1},
    # sharper S->T sampling (Eq. 5): with eps_e = 1e-4 and ranks up to ~25k, exp(.) spans only
    # about e^2.5, so the teacher follows the student on many items it already ranks well
    "bd-ee1e-3": {"eps_e": 1e-3},
    "bd-ee1e-2": {"eps_e": 1e-2},
    # Algorithm 1 from scratch: 10 warm-up epochs with L_CF only, then BD (no pre-trained models)
    "bd-scratch": {"warmup_epochs": 10, "_scratch": True, "_patience": 10},
    "bd-scratch-lambda0": {
        "warmup_epochs": 10,
        "lambda_t2s": 0.0,
        "lambda_s2t": 0.0,
        "_scratch": True,
        "_patience": 10,
    },
}


def kd_run(a, dataset, base: dict[str, Path], method: str) -> dict | None:
    """RD / CD (issue #5's distillers) from our pre-trained teacher, the student from scratch with
    the base settings: the frozen-teacher baselines of Table 2 on the same teacher as BD."""
    run = Path(a.runs) / method
    if metrics_of(run) is None:
        cfg = make_config(
            overrides={
                "data": {"name": DATASET, "data_dir": a.data_dir},
                "model": {"name": "bpr", "size": None, "dim": DIMS["student"]},
                "train": dict(BASE_TRAIN, epochs=a.base_epochs, seed=a.seed),
                "distill": {"method": method, "teacher": str(base["teacher"])},
            }
        )
        t0 = time.time()
        distill_run(
            cfg, run, dataset=dataset, teacher=str(base["teacher"]), resume=(run / "checkpoint.pt").exists()
        )
        print(f"{method}: {time.time() - t0:.0f}s", flush=True)
    return metrics_of(run)


def row(m: dict, model: str, split: str = "test") -> dict:
    r = m["models"][model]
    return {
        "best_epoch": r["best_epoch"],
        "n_parameters": r["n_parameters"],
        **{k: r[split]["full"][k] for k in METRICS},
    }


def main() -> None:
    global DATASET
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=30, help="BD epochs (after pre-training)")
    p.add_argument("--base-epochs", type=int, default=30, help="epochs of the base models (as #5)")
    p.add_argument("--patience", type=int, default=5, help="BD early stopping (validations of the student)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default=str(ROOT / "runs" / "bd" / DATASET))
    p.add_argument("--own-base", action="store_true", help="(default) train our own teacher/student")
    p.add_argument("--shared-base", action="store_true", help="reuse runs/baselines' teacher/student")
    p.add_argument("--teacher-run", default=None, help="a finished teacher run to start BD from")
    p.add_argument("--student-run", default=None, help="a finished student run to start BD from")
    p.add_argument("--stage", choices=["base", "all"], default="all")
    p.add_argument(
        "--only", nargs="*", choices=sorted(RUNS) + ["cd", "rd"], default=None, help="run these runs only"
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="another dataset than citeulike-bd (with --only: runs only, no tables)",
    )
    p.add_argument("--batch-size", type=int, default=None, help="override BASE_TRAIN's batch size")
    p.add_argument("--lr", type=float, default=None, help="override BASE_TRAIN's learning rate")
    p.add_argument(
        "--fresh-draws",
        action="store_true",
        help="BD draws anew every epoch (Algorithm 1; BDConfig.fresh_draws); default: one "
        "draw per refresh, as the committed tables",
    )
    p.add_argument("--tag", default="", help="suffix of the results files (results/bd_<dataset><tag>.md)")
    a = p.parse_args()
    if a.dataset:
        if not a.only:
            p.error("--dataset needs --only (the tables and analyses are citeulike-bd's)")
        DATASET = a.dataset
    torch.set_num_threads(a.threads)
    for key in ("batch_size", "lr"):  # e.g. the paper's optimiser: --batch-size 128 --lr 1e-3
        if getattr(a, key) is not None:
            BASE_TRAIN[key] = getattr(a, key)
    cfg0 = cfg_for(a.data_dir, DIMS["teacher"], 1, a.seed)
    dataset = load_dataset_for(cfg0)
    base = base_models(a, dataset)

    def base_row(role: str, split: str = "test") -> dict:
        """A base run's row: its only model, or its ``role`` model (e.g. a BD run as the teacher)."""
        m = metrics_of(base[role])
        return row(m, "model" if "model" in m["models"] else role, split)

    results: dict[str, dict] = {"Teacher": base_row("teacher"), "Student": base_row("student")}
    base_valid = {"Teacher": base_row("teacher", "valid"), "Student": base_row("student", "valid")}
    valid: dict[str, dict] = {}
    if a.stage == "base":
        return
    names = a.only or list(RUNS) + ["rd", "cd"]
    for name in names:
        if name in ("rd", "cd"):
            m = kd_run(a, dataset, base, name)
            results[name.upper()] = row(m, "student")
            continue
        m = bd_run(a, dataset, base, name, **RUNS[name])
        valid[name] = {k: row(m, k, "valid") for k in ("teacher", "student")}
        results[name] = {k: row(m, k) for k in ("teacher", "student")}
    if a.only:
        return
    best = max(
        (0, 1),
        key=lambda x: (
            valid[f"bd-rd-labelonly{x}"]["student"]["H@50"] + valid[f"bd-rd-labelonly{x}"]["teacher"]["H@50"]
        ),
    )
    chosen = {"label_only_tau": bool(best)}
    baselines = {k: results.pop(k) for k in ("RD", "CD") if k in results}
    out = {
        "dataset": DATASET,
        "seed": a.seed,
        "commit": commit(),
        "bd_base": BD_BASE,
        "fresh_draws": a.fresh_draws,
        "base_train": BASE_TRAIN,
        "bd_epochs": a.epochs,
        "patience": a.patience,
        "base_runs": {k: str(v) for k, v in base.items()},
        "chosen": chosen,
        "test": results,
        "valid": valid,
        "base_valid": base_valid,
        "baselines": baselines,
        "paper_H@50": PAPER,
    }
    atomic_json(out, ROOT / "results" / f"bd_{DATASET}{a.tag}.json")
    atomic_text(render(out), ROOT / "results" / f"bd_{DATASET}{a.tag}.md")
    print(render(out))
    analyses(a, dataset, base)


def render(o: dict) -> str:
    t = o["test"]
    head = "| model | params | best epoch | " + " | ".join(METRICS) + " |"
    sep = "|---|---|---|" + "---|" * len(METRICS)

    def line(label, r):
        return (
            f"| {label} | {r['n_parameters']:,} | {r['best_epoch']} | "
            + " | ".join(f"{r[k]:.4f}" for k in METRICS)
            + " |"
        )

    rd = f"bd-rd-labelonly{int(o['chosen']['label_only_tau'])}"
    lines = [
        f"# BD on {o['dataset']} (full ranking, test split), BPR teacher dim 50 / student dim 5",
        "",
        f"seed {o['seed']}; commit {o['commit']}; `python scripts/run_bd.py`; BD settings "
        f"{json.dumps(o['bd_base'])} + {json.dumps(o['chosen'])}, {o['bd_epochs']} BD epochs from the "
        f"pre-trained models ({o['base_runs']}), base training {json.dumps(o['base_train'])}.",
        "",
        "## Table 2 (BPR, CiteULike)",
        "",
        head,
        sep,
        line("Teacher", t["Teacher"]),
        line("BD-Teacher", t[rd]["teacher"]),
        line("BD-Student", t[rd]["student"]),
    ]
    for k, r in o["baselines"].items():
        lines.append(line(k, r))
    lines += [
        line("Student", t["Student"]),
        "",
        f"Paper H@50: {json.dumps(o['paper_H@50'])}",
        "",
        "## τ variant (validation H@50 picks the default)",
        "",
        "| variant | valid H@50 T | valid H@50 S | test H@50 T | test H@50 S |",
        "|---|---|---|---|---|",
    ]
    for lo in (0, 1):
        n = f"bd-rd-labelonly{lo}"
        if n in o["valid"]:
            v, r = o["valid"][n], t[n]
            label = "label only / τ (notebook)" if lo else "σ(z/τ) both (paper)"
            lines.append(
                f"| {label} | {v['teacher']['H@50']:.4f} | {v['student']['H@50']:.4f} | "
                f"{r['teacher']['H@50']:.4f} | {r['student']['H@50']:.4f} |"
            )
    lines += [
        "",
        "## Table 5: sampling schemes (H@50; all with the paper's τ, label_only_tau = False)",
        "",
        "| scheme | valid T | valid S | test T | test S |",
        "|---|---|---|---|---|",
    ]

    def vt(n: str, label: str) -> str:
        v, r = o["valid"][n], t[n]
        return (
            f"| {label} | {v['teacher']['H@50']:.4f} | {v['student']['H@50']:.4f} | "
            f"{r['teacher']['H@50']:.4f} | {r['student']['H@50']:.4f} |"
        )

    for n, label in (
        ("bd-rd-labelonly0", "rank-discrepancy (paper)"),
        ("bd-rank-aware", "rank-aware (CD)"),
        ("bd-top-n", "top-N (RD)"),
        ("bd-uniform", "uniform"),
        ("bd-swapped", "swapped (Table 5)"),
        ("bd-reversed", "reversed (notebook)"),
        ("bd-lambda0", "control: λ = 0 (no distillation)"),
    ):
        if n in t:
            lines.append(vt(n, label))
    lines += [
        "",
        "## Other variants (H@50)",
        "",
        "| run | valid T | valid S | test T | test S |",
        "|---|---|---|---|---|",
    ]
    for n, label in (
        ("bd-s1", "1 sample per interaction"),
        ("bd-lst0.1", "λ_{S→T} = 0.1"),
        ("bd-ee1e-3", "ε_e = 1e-3"),
        ("bd-ee1e-2", "ε_e = 1e-2"),
        ("bd-scratch", "Algorithm 1 from scratch (10 warm-up epochs, then BD)"),
        ("bd-scratch-lambda0", "from scratch, λ = 0 (control)"),
    ):
        if n in t:
            lines.append(vt(n, label))
    lines.append("")
    bv = o["base_valid"]
    lines.append(
        f"Pre-trained base models, validation H@50: Teacher {bv['Teacher']['H@50']:.4f}, "
        f"Student {bv['Student']['H@50']:.4f}."
    )
    return "\n".join(lines) + "\n"


def analyses(a, dataset, base) -> None:
    from recdistill.analysis.report import rank_diff_report

    out = ROOT / "results" / f"bd_{DATASET}{getattr(a, 'tag', '')}_analysis"
    before = load_run(base["teacher"], dataset).model, load_run(base["student"], dataset).model
    res = {"before": rank_diff_report(*before, dataset, out / "before", title="before BD")}
    chosen = json.loads((ROOT / "results" / f"bd_{DATASET}{getattr(a, 'tag', '')}.json").read_text())[
        "chosen"
    ]
    run = Path(a.runs) / f"bd-rd-labelonly{int(chosen['label_only_tau'])}"
    after = load_run(run, dataset).models
    res["after"] = rank_diff_report(
        after["teacher"], after["student"], dataset, out / "after", title="after BD"
    )
    atomic_json(res, out / "summary.json")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
