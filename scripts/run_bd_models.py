"""BD with other base models (issue #6: "the same for NeuMF and CDAE when time allows").

For each model, BD starts from the base-model runs of ``scripts/run_base_models.py``
(``runs/base/<model>-bd-{teacher,student}``, config ``configs/<model>-citeulike-bd.yaml``) through
the CLI, next to its control with the same schedule and λ = 0 both ways (extra ``L_CF`` epochs
only)::

    recdistill distill --method bd --teacher runs/base/<m>-bd-teacher --student runs/base/<m>-bd-student \\
        --config configs/<m>-citeulike-bd.yaml --epochs 30 --no-progress \\
        --set train.eval_every=2 --set train.patience=5 [--set distill.params.lambda_t2s=0 ...] \\
        --out runs/bd/<m>-citeulike-bd/{bd,lambda0}

The BD settings are ``BDConfig``'s defaults (the paper's; 10 warm-up epochs with ``L_CF`` are
part of the 30). Finished runs are reused. Table: ``results/bd_models_citeulike-bd.md`` / ``.json``
(test and validation H@50 / N@50, one seed).

    python scripts/run_bd_models.py [--models cdae] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from recdistill.atomic import atomic_json, atomic_text

ROOT = Path(__file__).resolve().parents[1]
DATASET = "citeulike-bd"
RUNS = {"bd": [], "lambda0": ["--set", "distill.params.lambda_t2s=0", "--set", "distill.params.lambda_s2t=0"]}


def metrics_of(run: Path) -> dict | None:
    p = run / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else None


def command(model: str, name: str, seed: int) -> list[str]:
    base = ROOT / "runs" / "base"
    return [
        "recdistill",
        "distill",
        "--method",
        "bd",
        "--teacher",
        str(base / f"{model}-bd-teacher"),
        "--student",
        str(base / f"{model}-bd-student"),
        "--config",
        str(ROOT / "configs" / f"{model}-{DATASET}.yaml"),
        "--epochs",
        "30",
        "--seed",
        str(seed),
        "--no-progress",
        "--set",
        "train.eval_every=2",
        "--set",
        "train.patience=5",
        *RUNS[name],
        "--out",
        str(ROOT / "runs" / "bd" / f"{model}-{DATASET}" / name),
    ]


def cells(m: dict, model: str) -> dict[str, float]:
    r = m["models"][model]
    return {
        "valid H@50": r["valid"]["full"]["H@50"],
        "test H@50": r["test"]["full"]["H@50"],
        "test N@50": r["test"]["full"]["N@50"],
        "best epoch": r["best_epoch"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["cdae"], choices=["bpr", "neumf", "cdae"])
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rows: dict[str, dict[str, dict[str, float]]] = {}
    cmds: dict[str, str] = {}
    for model in a.models:
        for role in ("teacher", "student"):
            m = metrics_of(ROOT / "runs" / "base" / f"{model}-bd-{role}")
            if m is None:
                sys.exit(f"runs/base/{model}-bd-{role} is not finished: run scripts/run_base_models.py first")
            rows[f"{model} {role.capitalize()}"] = cells(m, "model")
        for name in RUNS:
            cmd = command(model, name, a.seed)
            cmds[f"{model} {name}"] = " ".join(
                Path(c).relative_to(ROOT).as_posix() if c.startswith(str(ROOT)) else c for c in cmd
            )
            run = Path(cmd[-1])
            if metrics_of(run) is None:
                t0 = time.time()
                subprocess.run(cmd, check=True, env=os.environ.copy())
                print(f"{model} {name}: {time.time() - t0:.0f}s", flush=True)
            m = metrics_of(run)
            label = "BD" if name == "bd" else "control λ=0"
            for role in ("teacher", "student"):
                rows[f"{model} {label}: {role}"] = cells(m, role)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        f"# BD with other base models on {DATASET} (full ranking, one seed)",
        "",
        f"seed {a.seed}; commit {commit}; "
        f"`python scripts/run_bd_models.py --models {' '.join(a.models)}`. "
        "Runs (each with its config.yaml and distill.json):",
        "",
    ]
    lines += [f"- {k}: `{v}`" for k, v in cmds.items()]
    lines += ["", "| row | best epoch | valid H@50 | test H@50 | test N@50 |", "|---|---|---|---|---|"]
    for k, r in rows.items():
        lines.append(
            f"| {k} | {r['best epoch']} | {r['valid H@50']:.4f} | {r['test H@50']:.4f} | "
            f"{r['test N@50']:.4f} |"
        )
    out = {"dataset": DATASET, "seed": a.seed, "commit": commit, "commands": cmds, "rows": rows}
    atomic_json(out, ROOT / "results" / f"bd_models_{DATASET}.json")
    atomic_text("\n".join(lines) + "\n", ROOT / "results" / f"bd_models_{DATASET}.md")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
