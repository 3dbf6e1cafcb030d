"""Issue #6, BD Fig. 3: the effect of the partner's size (S = dim 5, M = dim 25, T = dim 50).

Fig. 3a: the teacher (T, dim 50) trained by BD with a student of size S, M or T, or with the
pre-trained S frozen ("fixed S"). Fig. 3b: the student (S, dim 5) with a teacher of size S, M or T,
or with the pre-trained T frozen ("fixed T"). The S-with-T pair is run_bd.py's ``bd-rd-labelonly0``;
the fixed ones are run_bd_grid.py's ``bd-fixed-s`` / ``bd-fixed-t``; the references are the λ = 0
control ``bd-lambda0`` (the same model, the same schedule, no distillation). New partners are
pre-trained here like run_bd.py's base models (same settings; a second model of the learner's own
size gets seed + 1000 so that it differs), into ``<runs>/base-d<dim>-s<seed>``; then BD runs with
run_bd.py's defaults from the two pre-trained models. Finished runs are reused.

    python scripts/run_bd_sizes.py [--seeds 0 1 2] [--threads 1] [--table-only]

Outputs ``results/bd_sizes_citeulike-bd.md`` / ``.json`` (test H@50 per seed, mean, paired t-test
against the control over seeds) and ``results/bd_sizes_citeulike-bd.png`` (Fig. 3 as bars).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from recdistill.atomic import atomic_json, atomic_text
from recdistill.runs import train_run

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("run_bd", Path(__file__).with_name("run_bd.py"))
rb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rb)

SIZES = {"S": 5, "M": 25, "T": 50}
#: (figure, learner, partner label) -> existing run name, or (teacher dim, student dim) of a new run
CELLS: dict[tuple[str, str], str | tuple[int, int]] = {
    ("3a", "S"): "bd-rd-labelonly0",
    ("3a", "M"): (50, 25),
    ("3a", "T"): (50, 50),
    ("3a", "fixed S"): "bd-fixed-s",
    ("3b", "S"): (5, 5),
    ("3b", "M"): (25, 5),
    ("3b", "T"): "bd-rd-labelonly0",
    ("3b", "fixed T"): "bd-fixed-t",
}
LEARNER = {"3a": "teacher", "3b": "student"}


def runs_dir(seed: int) -> Path:
    return ROOT / "runs" / "bd" / ("citeulike-bd" if seed == 0 else f"citeulike-bd-seed{seed}")


def pretrained(a: argparse.Namespace, dataset, dim: int, seed: int) -> Path:
    """A base model of ``dim`` trained alone with run_bd.py's base settings and ``seed``."""
    d = Path(a.runs) / f"base-d{dim}-s{seed}"
    if rb.metrics_of(d) is None:
        t0 = time.time()
        train_run(
            rb.cfg_for(a.data_dir, dim, a.base_epochs, seed),
            d,
            dataset=dataset,
            resume=(d / "checkpoint.pt").exists(),
        )
        print(f"pre-trained dim {dim} seed {seed} in {time.time() - t0:.0f}s", flush=True)
    return d


def new_run(a: argparse.Namespace, dataset, base: dict[str, Path], t_dim: int, s_dim: int) -> str:
    """BD with run_bd.py's defaults between a dim-``t_dim`` teacher and a dim-``s_dim`` student."""
    own = {50: base["teacher"], 5: base["student"]}
    # a partner of the learner's own size is a second model (seed + 1000), not the learner's copy
    t_seed = a.seed + 1000 if t_dim == 5 else a.seed
    s_seed = a.seed + 1000 if s_dim == 50 else a.seed
    teacher = own[t_dim] if t_dim == 50 else pretrained(a, dataset, t_dim, t_seed)
    student = own[s_dim] if s_dim == 5 else pretrained(a, dataset, s_dim, s_seed)
    name = f"bd-size-t{t_dim}-s{s_dim}"
    rb.bd_run(a, dataset, {"teacher": teacher, "student": student}, name, **rb.RUNS["bd-rd-labelonly0"])
    return name


def cell_run(cell: str | tuple[int, int]) -> str:
    return cell if isinstance(cell, str) else f"bd-size-t{cell[0]}-s{cell[1]}"


def collect(seeds: list[int]) -> dict:
    """Test H@50 of the learner in every cell and its control, per seed."""
    out: dict = {"cells": {}, "control": {}}
    for fig, learner in LEARNER.items():
        ctrl = {}
        for s in seeds:
            m = rb.metrics_of(runs_dir(s) / "bd-lambda0")
            if m is not None:
                ctrl[s] = m["models"][learner]["test"]["full"]["H@50"]
        out["control"][fig] = ctrl
        for (f, partner), cell in CELLS.items():
            if f != fig:
                continue
            vals = {}
            for s in seeds:
                m = rb.metrics_of(runs_dir(s) / cell_run(cell))
                if m is not None and learner in m["models"]:
                    vals[s] = m["models"][learner]["test"]["full"]["H@50"]
            out["cells"][f"{fig} {partner}"] = vals
    return out


def render(res: dict, seeds: list[int], commit: str) -> str:
    lines = [
        "# BD Fig. 3 on citeulike-bd: the partner's size (test H@50, full ranking)",
        "",
        f"commit {commit}; `python scripts/run_bd_sizes.py --seeds {' '.join(map(str, seeds))}`. "
        "S = BPR dim 5, M = dim 25, T = dim 50; BD settings of run_bd.py (30 BD epochs from "
        "pre-trained models, early stopping on the student). Control: the same learner with "
        "λ = 0 (`bd-lambda0`). p: paired t-test over seeds against the control.",
        "",
        "| figure | learner | partner | H@50 per seed | mean | Δ vs control | p |",
        "|---|---|---|---|---|---|---|",
    ]
    for fig, learner in LEARNER.items():
        ctrl = res["control"][fig]
        c = np.array([ctrl[s] for s in seeds if s in ctrl])
        lines.append(
            f"| {fig} | {learner} | control λ = 0 | {' '.join(f'{v:.4f}' for v in c)} | {c.mean():.4f} | | |"
        )
        for key, vals in res["cells"].items():
            if not key.startswith(fig):
                continue
            common = [s for s in seeds if s in vals and s in ctrl]
            x = np.array([vals[s] for s in common])
            y = np.array([ctrl[s] for s in common])
            p = f"{stats.ttest_rel(x, y).pvalue:.3f}" if len(common) >= 2 else ""
            per_seed = " ".join(f"{v:.4f}" for v in x)
            lines.append(
                f"| {fig} | {learner} | {key.split(' ', 1)[1]} | {per_seed} | "
                f"{x.mean():.4f} | {(x - y).mean():+.4f} | {p} |"
            )
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, (f, learner) in zip(axes, LEARNER.items()):
        keys = [k for k in res["cells"] if k.startswith(f)]
        means = [np.mean(list(res["cells"][k].values())) for k in keys]
        ax.bar([k.split(" ", 1)[1] for k in keys], means, color="tab:orange")
        ax.axhline(
            np.mean(list(res["control"][f].values())),
            ls="--",
            color="tab:blue",
            label="trained alone (λ = 0)",
        )
        lo = min(means + [np.mean(list(res["control"][f].values()))])
        ax.set_ylim(lo * 0.9, None)
        ax.set_title(f"Fig. {f}: the {learner}, by partner")
        ax.set_ylabel("test H@50")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--table-only", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if not a.table_only:
        for seed in a.seeds:
            ns = argparse.Namespace(
                data_dir=a.data_dir,
                epochs=30,
                base_epochs=30,
                patience=5,
                seed=seed,
                runs=str(runs_dir(seed)),
                shared_base=False,
                teacher_run=None,
                student_run=None,
            )
            dataset = rb.load_dataset_for(rb.cfg_for(a.data_dir, 50, 1, seed))
            base = rb.base_models(ns, dataset)
            for cell in CELLS.values():
                if not isinstance(cell, str):
                    new_run(ns, dataset, base, *cell)
    res = collect(a.seeds)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    text = render(res, a.seeds, commit)
    out = ROOT / "results" / "bd_sizes_citeulike-bd.json"
    atomic_json({"seeds": a.seeds, "commit": commit, **res}, out)
    atomic_text(text, ROOT / "results" / "bd_sizes_citeulike-bd.md")
    plot(res, ROOT / "results" / "bd_sizes_citeulike-bd.png")
    print(text)


if __name__ == "__main__":
    main()
