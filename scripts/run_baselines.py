"""Issue #5's comparisons: frozen-teacher baselines vs the plain student, one seed.

1. citeulike-dcd, sampled protocol (H@5, M@5), BPR teacher dim 200 -> student dim 20:
   Student, RRD, RRD + IR-RRD.
2. citeulike-bd, full ranking (H@50, N@50), BPR teacher -> student (BD size presets):
   Student, RD, CD.

Each run goes to ``runs/baselines/<dataset>/<name>`` (finished runs are reused); the tables go
to ``results/baselines_<dataset>.md`` with the seed, configs and commit. Usage:

    python scripts/run_baselines.py [--data-dir DIR] [--epochs N] [--seed S] [--only dcd|bd]
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import torch

from recdistill.config import make_config
from recdistill.distill import load_distillers
from recdistill.train import train_run
from recdistill.train.io import atomic_text
from recdistill.train.run import load_dataset_for

ROOT = Path(__file__).resolve().parents[1]

EXPERIMENTS = {
    "dcd": {
        "dataset": "citeulike-dcd",
        "protocol": "sampled",
        "metrics": ["H@5", "M@5", "H@10", "M@10"],
        "teacher_dim": 200,
        "student_dim": 20,
        "methods": {"RRD": ("rrd", {}), "RRD + IR-RRD": ("rrd+ir-rrd", {})},
    },
    "bd": {
        "dataset": "citeulike-bd",
        "protocol": "full",
        "metrics": ["H@50", "N@50", "H@100", "N@100"],
        "teacher_dim": 50,
        "student_dim": 5,
        "methods": {"RD": ("rd", {}), "CD": ("cd", {})},
    },
}


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cfg(dataset: str, data_dir: str | None, dim: int, train: dict, distill: dict | None = None):
    over = {
        "data": {"name": dataset, "data_dir": data_dir},
        "model": {"name": "bpr", "size": None, "dim": dim},
        "train": train,
    }
    if distill:
        over["distill"] = distill
    return make_config(overrides=over)


def _metrics(run_dir: Path) -> dict | None:
    p = run_dir / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else None


def run_experiment(key: str, data_dir: str | None, epochs: int, seed: int, out: Path) -> Path:
    ex = EXPERIMENTS[key]
    train = {
        "epochs": epochs,
        "batch_size": 1024,
        "lr": 5e-3,
        "seed": seed,
        "eval_every": 2,
        "patience": 3,
        "progress": False,
        "eval_protocol": ex["protocol"],
    }
    base = out / ex["dataset"]
    cfg_t = _cfg(ex["dataset"], data_dir, ex["teacher_dim"], train)
    dataset = load_dataset_for(cfg_t)
    rows: dict[str, dict] = {}
    configs: dict[str, dict] = {}
    for name, dim in (("Teacher", ex["teacher_dim"]), ("Student", ex["student_dim"])):
        d = base / name.lower()
        cfg = _cfg(ex["dataset"], data_dir, dim, train)
        if _metrics(d) is None:
            train_run(cfg, d, dataset=dataset)
        rows[name] = _metrics(d)["models"]["model"]
        configs[name] = cfg.to_dict()
    reg = load_distillers()
    for label, (method, params) in ex["methods"].items():
        d = base / method
        cfg = _cfg(
            ex["dataset"],
            data_dir,
            ex["student_dim"],
            train,
            {"method": method, "teacher": str(base / "teacher"), "params": params},
        )
        if _metrics(d) is None:
            reg.get(method).run(cfg, out_dir=d, dataset=dataset, teacher=str(base / "teacher"))
        rows[label] = _metrics(d)["models"]["student"]
        configs[label] = cfg.to_dict()
    lines = [
        f"# Baselines on {ex['dataset']} ({ex['protocol']} protocol, test split)",
        "",
        f"BPR, teacher dim {ex['teacher_dim']} -> student dim {ex['student_dim']}; seed {seed}; "
        f"commit {_commit()}; `python scripts/run_baselines.py --only {key} --epochs {epochs}`.",
        "",
        "| model | params | best epoch | " + " | ".join(ex["metrics"]) + " |",
        "|---|---|---|" + "---|" * len(ex["metrics"]),
    ]
    for label, m in rows.items():
        test = m["test"][ex["protocol"]]
        lines.append(
            f"| {label} | {m['n_parameters']:,} | {m['best_epoch']} | "
            + " | ".join(f"{test[k]:.4f}" for k in ex["metrics"])
            + " |"
        )
    lines += ["", "Configs (resolved):", "", "```json", json.dumps(configs, indent=1), "```", ""]
    path = ROOT / "results" / f"baselines_{ex['dataset']}.md"
    atomic_text("\n".join(lines), path)
    print("\n".join(lines[: 6 + len(rows)]))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=sorted(EXPERIMENTS), default=None)
    p.add_argument("--out", default=str(ROOT / "runs" / "baselines"))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    for key in [a.only] if a.only else sorted(EXPERIMENTS, reverse=True):
        run_experiment(key, a.data_dir, a.epochs, a.seed, Path(a.out))


if __name__ == "__main__":
    main()
