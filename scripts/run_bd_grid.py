"""Issue #6: BD's hyperparameter grids (paper Figs. 5-7) and fixed T / fixed S (Fig. 3) on citeulike-bd.

One factor at a time around the defaults of ``scripts/run_bd.py`` (λ 0.5 / 0.5, ε_t = ε_e = 1e-4,
p = 10, 5 draws, the paper's τ = 2, rank-discrepancy sampling, 30 BD epochs from the pre-trained
BPR teacher (dim 50) and student (dim 5)). Runs go to ``runs/bd/<dataset>/<name>`` next to
run_bd.py's (same :func:`run_bd.bd_run`; finished runs are reused). The defaults run is run_bd.py's
``bd-rd-labelonly0`` and the control its ``bd-lambda0``; the existing ``bd-lst0.1`` (λ_{S→T} 0.1),
``bd-ee1e-3`` / ``bd-ee1e-2`` (ε_e) are reused as grid points. "Fixed T": the teacher frozen, the
student learns; "fixed S": the student frozen, the teacher learns (the frozen model's figures are
its pre-trained ones).

Outputs: ``results/bd_grid_<dataset>.md`` / ``.json`` (valid and test H@50 of both models per run,
seed, commit, command, settings) and PNGs in ``results/bd_grid_<dataset>/``.

    python scripts/run_bd_grid.py [--data-dir DIR] [--seed 0] [--threads 1] [--only RUN ...] [--table-only]
    python scripts/run_bd_grid.py --summary 0 1 2   # mean ± std over the seeds' tables, paired t-tests

Seeds other than 0: ``--seed S --runs runs/bd/citeulike-bd-seedS`` (run_bd.py's layout; tables get
the suffix ``_seedS``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch

from recdistill.atomic import atomic_json, atomic_text

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("run_bd", Path(__file__).with_name("run_bd.py"))
rb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rb)

DEFAULT_RUN = "bd-rd-labelonly0"
CONTROL_RUN = "bd-lambda0"
#: the defaults' value of each factor (BDConfig fields over run_bd.BD_BASE)
DEFAULTS = {"lambda_t2s": 0.5, "lambda_s2t": 0.5, "eps_t": 1e-4, "eps_e": 1e-4, "period": 10}
#: new runs: name -> BDConfig fields over run_bd.BD_BASE
GRID_RUNS = {
    "bd-lts0.1": {"lambda_t2s": 0.1},
    "bd-lts1": {"lambda_t2s": 1.0},
    "bd-lst1": {"lambda_s2t": 1.0},
    # below the paper's grid: does the teacher's loss shrink towards the λ = 0 control?
    "bd-lst0.01": {"lambda_s2t": 0.01},
    "bd-et1e-3": {"eps_t": 1e-3},
    "bd-et1e-5": {"eps_t": 1e-5},
    "bd-ee1e-5": {"eps_e": 1e-5},
    "bd-p5": {"period": 5},
    "bd-p20": {"period": 20},
    "bd-fixed-t": {"fixed": "teacher"},
    "bd-fixed-s": {"fixed": "student"},
    # opt-in, not the paper's: each model's logits standardised per user before Eq. 3
    # (BDConfig.standardize; the logit-scale analysis is scripts/run_bd_logits.py)
    "bd-std": {"standardize": True},
}
#: factor -> (label, {value: run}); the defaults run fills the default value
FACTORS = {
    "lambda_t2s": ("λ_{T→S} (Fig. 5)", {0.1: "bd-lts0.1", 1.0: "bd-lts1"}),
    "lambda_s2t": ("λ_{S→T} (Fig. 5)", {0.01: "bd-lst0.01", 0.1: "bd-lst0.1", 1.0: "bd-lst1"}),
    "eps_t": ("ε_t (Fig. 6)", {1e-3: "bd-et1e-3", 1e-5: "bd-et1e-5"}),
    "eps_e": ("ε_e (Fig. 6)", {1e-5: "bd-ee1e-5", 1e-3: "bd-ee1e-3", 1e-2: "bd-ee1e-2"}),
    "period": ("p, epochs between refreshes (Fig. 7)", {5: "bd-p5", 20: "bd-p20"}),
}
MODELS = ("teacher", "student")


def h50(run: Path, model: str, split: str, base: dict[str, Path]) -> tuple[float, int, bool]:
    """(H@50, best epoch, frozen) of ``model`` in ``run``; a frozen model's are its pre-trained ones."""
    m = rb.metrics_of(run)
    frozen = model not in m["models"]
    r = rb.metrics_of(base[model])["models"]["model"] if frozen else m["models"][model]
    return r[split]["full"]["H@50"], r["best_epoch"], frozen


def collect(a, base: dict[str, Path]) -> dict:
    runs = Path(a.runs)
    names = [DEFAULT_RUN, CONTROL_RUN] + sorted(
        {r for _, v in FACTORS.values() for r in v.values()} | set(GRID_RUNS)
    )
    rows: dict[str, dict] = {}
    for n in dict.fromkeys(names):
        if rb.metrics_of(runs / n) is None:
            continue
        bd = rb.bd_params_of(runs / n)
        rows[n] = {
            "bd": {
                k: bd[k]
                for k in (
                    "lambda_t2s",
                    "lambda_s2t",
                    "eps_t",
                    "eps_e",
                    "period",
                    "n_samples",
                    "tau",
                    "label_only_tau",
                    "sampling",
                    "fixed",
                )
            }
        }
        rows[n]["bd"]["standardize"] = bd.get("standardize", False)
        for model in MODELS:
            for split in ("valid", "test"):
                v, ep, frozen = h50(runs / n, model, split, base)
                rows[n][f"{split}_{model}"] = v
                rows[n][f"best_epoch_{model}"] = ep
                rows[n][f"frozen_{model}"] = frozen
    basemods = {}
    for model in MODELS:
        r = rb.metrics_of(base[model])["models"]["model"]
        basemods[model] = {s: r[s]["full"]["H@50"] for s in ("valid", "test")}
    return {
        "dataset": rb.DATASET,
        "seed": a.seed,
        "commit": rb.commit(),
        "command": "python " + " ".join(["scripts/run_bd_grid.py"] + sys.argv[1:]),
        "bd_base": rb.BD_BASE,
        "base_train": rb.BASE_TRAIN,
        "bd_epochs": a.epochs,
        "patience": a.patience,
        "base_runs": {k: str(v) for k, v in base.items()},
        "defaults": DEFAULTS,
        "default_run": DEFAULT_RUN,
        "control_run": CONTROL_RUN,
        "pretrained": basemods,
        "runs": rows,
    }


def render(o: dict) -> str:
    rows, b = o["runs"], o["pretrained"]
    out = [
        f"# BD grids on {o['dataset']} (Figs. 5-7) and fixed T / fixed S (Fig. 3): H@50, full ranking",
        "",
        f"seed {o['seed']}; commit {o['commit']}; `{o['command']}`. Every run: 30 BD epochs "
        f"from the pre-trained BPR teacher (dim 50) and student (dim 5) ({o['base_runs']}), BD "
        f"settings {json.dumps(o['bd_base'])} with one factor changed; base training "
        f"{json.dumps(o['base_train'])}; early stopping on the student (patience {o['patience']}), "
        "each model keeps its best validation state. Defaults run = "
        f"`{o['default_run']}`, control (λ = 0 both ways, same schedule) = `{o['control_run']}`.",
        "",
        f"Pre-trained models: Teacher valid {b['teacher']['valid']:.4f} / test "
        f"{b['teacher']['test']:.4f}; Student valid {b['student']['valid']:.4f} / test "
        f"{b['student']['test']:.4f}.",
        "",
        "With 5,219 test users, one H@50 near 0.07 has a standard error of about 0.0036 (0.005 "
        "near 0.15); one seed.",
        "",
    ]
    head = ["| value | run | valid T | valid S | test T | test S |", "|---|---|---|---|---|---|"]

    def line(label: str, n: str) -> str:
        r = rows[n]
        cells = []
        for split in ("valid", "test"):
            for model in MODELS:
                s = f"{r[f'{split}_{model}']:.4f}"
                cells.append(s + " (frozen)" if r[f"frozen_{model}"] else s)
        return f"| {label} | `{n}` | " + " | ".join(cells) + " |"

    for factor, (label, pts) in FACTORS.items():
        out += [f"## {label}", ""] + head
        points = dict(pts)
        points[DEFAULTS[factor]] = DEFAULT_RUN
        for v in sorted(points):
            n = points[v]
            if n in rows:
                out.append(line(f"{v:g}" + (" (default)" if n == DEFAULT_RUN else ""), n))
        if CONTROL_RUN in rows:
            out.append(line("control λ = 0", CONTROL_RUN))
        out.append("")
    out += ["## Fig. 3: bidirectional vs fixed (unidirectional)", ""] + head
    for label, n in (
        ("bidirectional (default)", DEFAULT_RUN),
        ("fixed T: teacher frozen, student learns", "bd-fixed-t"),
        ("fixed S: student frozen, teacher learns", "bd-fixed-s"),
        ("control λ = 0", CONTROL_RUN),
    ):
        if n in rows:
            out.append(line(label, n))
    out += [
        "",
        "## Opt-in: per-user standardised logits in Eq. 3 (`BDConfig.standardize`, not the paper's)",
        "",
    ] + head
    for label, n in (
        ("paper's Eq. 3 (default)", DEFAULT_RUN),
        ("standardised", "bd-std"),
        ("control λ = 0", CONTROL_RUN),
    ):
        if n in rows:
            out.append(line(label, n))
    out.append("")
    return "\n".join(out) + "\n"


def plots(o: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, made = o["runs"], []
    out_dir.mkdir(parents=True, exist_ok=True)
    ctrl = rows.get(CONTROL_RUN)
    fig, axes = plt.subplots(2, len(FACTORS), figsize=(3.2 * len(FACTORS), 5.6), squeeze=False)
    for j, (factor, (label, pts)) in enumerate(FACTORS.items()):
        points = dict(pts)
        points[DEFAULTS[factor]] = DEFAULT_RUN
        xs = [v for v in sorted(points) if points[v] in rows]
        for i, model in enumerate(MODELS):
            ax = axes[i][j]
            ax2 = ax.twinx()  # valid on its own axis (test and valid H@50 differ about 2x)
            for a_, split, mk, c in ((ax, "test", "o-", "C0"), (ax2, "valid", "s--", "C1")):
                a_.plot(xs, [rows[points[v]][f"{split}_{model}"] for v in xs], mk, color=c, label=split)
                if ctrl is not None:
                    a_.axhline(ctrl[f"{split}_{model}"], color=c, lw=0.8, ls=":")
                a_.axhline(o["pretrained"][model][split], color=c, lw=0.8, ls="-.")
                a_.tick_params(labelsize=7, colors=c, axis="y")
            if factor != "period":
                ax.set_xscale("log")
            ax.set_title(
                f"{'BD-Teacher' if model == 'teacher' else 'BD-Student'} vs {label.split(' (')[0]}",
                fontsize=8,
            )
            ax.set_xlabel(label, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_ylabel("test H@50 (blue)", fontsize=7)
            ax2.set_ylabel("valid H@50 (orange)", fontsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=6, title="dotted: λ=0 control; dash-dot: pre-trained", title_fontsize=6)
    fig.suptitle(
        f"BD on {o['dataset']}, one factor at a time around the defaults (seed {o['seed']})", fontsize=9
    )
    fig.tight_layout()
    p = out_dir / "grids.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    made.append(str(p.relative_to(ROOT)))

    bars = [
        (lab, n)
        for lab, n in (
            ("bidirectional", DEFAULT_RUN),
            ("fixed T", "bd-fixed-t"),
            ("fixed S", "bd-fixed-s"),
            ("λ = 0", CONTROL_RUN),
            ("standardised\n(opt-in)", "bd-std"),
        )
        if n in rows
    ]
    if bars:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
        for ax, model in zip(axes, MODELS):
            vals = [rows[n][f"test_{model}"] for _, n in bars]
            colors = ["lightgrey" if rows[n][f"frozen_{model}"] else "C0" for _, n in bars]
            ax.bar(range(len(bars)), vals, color=colors)
            ax.axhline(o["pretrained"][model]["test"], color="red", lw=0.8, ls="-.")
            ax.set_xticks(range(len(bars)), [lab for lab, _ in bars], fontsize=8)
            ax.set_ylim(min(vals) * 0.9, max(vals) * 1.05)
            ax.set_title(f"{model}: test H@50 (grey = frozen; red = pre-trained)", fontsize=8)
        fig.tight_layout()
        p = out_dir / "fixed.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        made.append(str(p.relative_to(ROOT)))
    return made


def summary(seeds: list[int]) -> None:
    """``results/bd_grid_<dataset>_seeds.md`` / ``.json`` from the per-seed grid tables: test and
    valid H@50 of both models, mean ± std over the seeds that have the run, and the paired
    difference to the λ = 0 control with a two-sided paired t-test over the common seeds."""
    import numpy as np
    from scipy import stats

    per = {}
    for sd in seeds:
        f = ROOT / "results" / f"bd_grid_{rb.DATASET}{'' if sd == 0 else f'_seed{sd}'}.json"
        if f.is_file():
            per[sd] = json.loads(f.read_text())
    names = list(dict.fromkeys(n for o in per.values() for n in o["runs"]))
    out = {
        "dataset": rb.DATASET,
        "seeds": sorted(per),
        "commit": rb.commit(),
        "command": "python " + " ".join(["scripts/run_bd_grid.py"] + sys.argv[1:]),
        "per_seed_commits": {sd: o["commit"] for sd, o in per.items()},
        "runs": {},
    }
    lines = [
        f"# BD grids on {rb.DATASET} over seeds: H@50 mean ± std (full ranking)",
        "",
        f"commit {out['commit']}; `{out['command']}`; from the per-seed tables "
        f"`results/bd_grid_{rb.DATASET}[_seedS].json` (their commits: {out['per_seed_commits']}). "
        "Δ: paired difference to the λ = 0 control (`bd-lambda0`) on test, p: two-sided paired "
        "t-test over the seeds both have. A frozen model's figures are its pre-trained ones.",
        "",
        "| run | seeds | valid T | test T | Δ T vs control (p) | valid S | test S | Δ S vs control (p) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in names:
        have = [sd for sd in per if n in per[sd]["runs"]]
        r = {"seeds": have}
        cells = []
        for model in MODELS:
            for split in ("valid", "test"):
                x = np.array([per[sd]["runs"][n][f"{split}_{model}"] for sd in have])
                r[f"{split}_{model}"] = x.tolist()
                cells.append(f"{x.mean():.4f} ± {x.std(ddof=1):.4f}" if len(x) > 1 else f"{x.mean():.4f}")
            common = [sd for sd in have if CONTROL_RUN in per[sd]["runs"]]
            d = np.array(
                [
                    per[sd]["runs"][n][f"test_{model}"] - per[sd]["runs"][CONTROL_RUN][f"test_{model}"]
                    for sd in common
                ]
            )
            pv = float(stats.ttest_rel(d, np.zeros_like(d)).pvalue) if len(d) > 1 and d.any() else None
            r[f"delta_test_{model}"], r[f"p_{model}"] = d.tolist(), pv
            cells.append(f"{d.mean():+.4f}" + (f" ({pv:.2f})" if pv is not None else ""))
        out["runs"][n] = r
        lines.append(f"| `{n}` | {','.join(map(str, have))} | " + " | ".join(cells) + " |")
    atomic_json(out, ROOT / "results" / f"bd_grid_{rb.DATASET}_seeds.json")
    atomic_text("\n".join(lines) + "\n", ROOT / "results" / f"bd_grid_{rb.DATASET}_seeds.md")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=30, help="BD epochs (after pre-training)")
    p.add_argument("--base-epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default=str(ROOT / "runs" / "bd" / rb.DATASET))
    p.add_argument("--shared-base", action="store_true")
    p.add_argument("--only", nargs="*", choices=sorted(GRID_RUNS), default=None)
    p.add_argument("--table-only", action="store_true", help="only collect finished runs into the table")
    p.add_argument(
        "--summary",
        type=int,
        nargs="+",
        default=None,
        metavar="SEED",
        help="only summarise these seeds' tables over seeds",
    )
    a = p.parse_args()
    if a.summary:
        summary(a.summary)
        return
    torch.set_num_threads(a.threads)
    dataset = rb.load_dataset_for(rb.cfg_for(a.data_dir, rb.DIMS["teacher"], 1, a.seed))
    base = rb.base_models(a, dataset)
    if not a.table_only:
        for name in a.only or list(GRID_RUNS):
            rb.bd_run(a, dataset, base, name, **GRID_RUNS[name])
    o = collect(a, base)
    suffix = "" if a.seed == 0 else f"_seed{a.seed}"
    o["plots"] = plots(o, ROOT / "results" / f"bd_grid_{rb.DATASET}{suffix}")
    atomic_json(o, ROOT / "results" / f"bd_grid_{rb.DATASET}{suffix}.json")
    atomic_text(render(o), ROOT / "results" / f"bd_grid_{rb.DATASET}{suffix}.md")
    print(render(o))


if __name__ == "__main__":
    main()
