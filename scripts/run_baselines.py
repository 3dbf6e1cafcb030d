"""Issue #5's comparisons: frozen-teacher baselines vs the plain student, one seed.

1. ``dcd``: citeulike-dcd, sampled protocol (H@5, M@5), BPR teacher dim 200 -> student dim 20:
   Student, RRD, RRD + IR-RRD.
2. ``bd``: citeulike-bd, full ranking (H@50, N@50), BPR teacher dim 50 -> student dim 5:
   Student, RD, CD.

Teacher and Student are the base-model runs of ``scripts/run_base_models.py``
(``runs/base/<name>``, reused when finished; with ``--train-missing`` an unfinished one is
trained here with the same config file). Every distilled student uses the same config file
(``configs/bpr-citeulike-*.yaml``, size ``student``: same optimiser, epochs, early stopping) plus
its method's ``distill`` section. A method may list several hyperparameter candidates: all are
run and the one with the best VALIDATION score of the config's monitor is reported (test numbers
of the others are never shown). Runs go to ``runs/baselines/<dataset>/<name>`` (finished ones are
reused, interrupted ones resume from their checkpoint); the table goes to
``results/baselines_<dataset>.md`` (+ ``.json``) with the seed, configs and commit. Usage:

    python scripts/run_baselines.py --only bd|dcd [--seed S] [--threads T] [--set a.b=v ...]

An unfinished base teacher: ``--teacher-snapshot`` saves its best-on-validation checkpoint so far
as ``runs/baselines/<dataset>/teacher-snapshot-e<epoch>`` (with its metrics); ``--teacher-run DIR``
pins the teacher folder (so later invocations keep using the same snapshot). ``--labels L ...``
runs only those methods (several processes can run different methods; the last invocation,
without ``--labels``, writes the full table from the finished runs).

The committed tables (each records its exact command): ``--only bd``; ``--only dcd --set
train.epochs=100 --train-missing --teacher-run <snapshot>`` (equal 100-epoch budget for every
student); and the same with ``--set train.epochs=400 --tag _400epochs --out runs/baselines-e400``
(the config's longer budget; its KD runs continued the 100-epoch runs' checkpoints, which is the
same as training them for 400 epochs from the start: resume restores every RNG and optimiser).
For ``bd``, seeds 1-9: ``--only bd --seed S --train-missing --tag _seedS --out runs/baselines-sS``;
``scripts/run_baselines_seeds.py`` summarises the 10 seeds (paired t-tests vs the Student).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recdistill.atomic import atomic_json, atomic_text
from recdistill.config import make_config
from recdistill.runs import distill_run, load_dataset_for, train_run

ROOT = Path(__file__).resolve().parents[1]

# label -> list of candidates (run name, method, params); the best on validation is reported.
EXPERIMENTS: dict[str, dict[str, Any]] = {
    "dcd": {
        "dataset": "citeulike-dcd",
        "config": "bpr-citeulike-dcd.yaml",
        "teacher": "bpr-dcd-teacher",
        "student": "bpr-dcd-student",
        "metrics": ["H@5", "M@5", "H@10", "M@10"],
        # DCD Table 2 (Student, RRD); RRD authors' logs on this split (RRD + IR-RRD)
        "paper": {
            "Teacher": [0.5282, 0.3704, 0.6328, 0.3844],
            "Student": [0.4570, 0.3061, 0.5673, 0.3214],
            "RRD": [0.4735, 0.3200, 0.5800, 0.3343],
            "RRD + IR-RRD": [0.4947, 0.3349, None, None],
        },
        "methods": {
            "RRD": [("rrd", "rrd", {})],
            "RRD + IR-RRD": [("rrd+ir-rrd", "rrd+ir-rrd", {})],
        },
    },
    "bd": {
        "dataset": "citeulike-bd",
        "config": "bpr-citeulike-bd.yaml",
        "teacher": "bpr-bd-teacher",
        "student": "bpr-bd-student",
        "metrics": ["H@50", "N@50", "H@100", "N@100"],
        # BD Table 2, CiteULike, BPR
        "paper": {
            "Teacher": [0.1224, 0.0328, 0.1892, 0.0415],
            "Student": [0.0717, 0.0171, 0.1217, 0.0251],
            "RD": [0.0782, 0.0185, 0.1234, 0.0259],
            "CD": [0.0803, 0.0201, 0.1271, 0.0277],
        },
        # defaults first; the others were added after the defaults did not beat the Student on
        # test (RD α, CD λ_KD from BD Sec. 5.1.5's grid; then, after 5 seeds, CD's number of
        # sampled items and temperature from the same grid), selection on validation only
        "methods": {
            "RD": [("rd", "rd", {}), ("rd-a0.2", "rd", {"alpha": 0.2}), ("rd-a0.8", "rd", {"alpha": 0.8})],
            "CD": [
                ("cd", "cd", {}),
                ("cd-l0.5", "cd", {"lambda_kd": 0.5}),
                ("cd-l1", "cd", {"lambda_kd": 1.0}),
                ("cd-n20", "cd", {"n_samples": 20}),
                ("cd-n50", "cd", {"n_samples": 50}),
                ("cd-t2", "cd", {"tau": 2.0}),
            ],
        },
    },
}


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _metrics(run_dir: Path) -> dict | None:
    p = run_dir / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _same_config(d: Path, cfg: Any, strict: bool) -> None:
    """A run folder reused or resumed must hold the config we would run (else stale results)."""
    p = d / "config.yaml"
    if not p.is_file():
        return
    have, want = make_config(p).to_dict(), cfg.to_dict()
    if have != want:
        diff = sorted(
            f"{sec}.{k}"
            for sec in want
            for k in set(want[sec]) | set(have.get(sec, {}))
            if have.get(sec, {}).get(k) != want[sec].get(k)
        )
        msg = f"{d}: its config.yaml differs from this experiment's config in {', '.join(diff)}"
        if strict:
            sys.exit(msg + "; move the folder away or use another --out")
        print("warning: " + msg, flush=True)


def _base_run(ex: dict, role: str, size: str, args: argparse.Namespace, over: dict, dataset: Any) -> Path:
    """The finished base-model run of ``role`` (teacher/student): reused, or trained here."""
    if role == "teacher" and args.teacher_run:
        return Path(args.teacher_run).resolve()
    d = Path(args.base_runs) / ex[role]
    cfg = make_config(ROOT / "configs" / ex["config"], {**over, "model": {"size": size}}, args.set)
    if _metrics(d) is not None:
        if not args.train_missing:
            _same_config(d, cfg, strict=False)
            return d
        if make_config(d / "config.yaml").to_dict() == cfg.to_dict():
            return d
        print(f"{d}: config differs from this experiment's; using/training our own run", flush=True)
    if role == "teacher" and args.teacher_snapshot and (d / "checkpoint.pt").is_file():
        _same_config(d, cfg, strict=False)
        return _snapshot(d, Path(args.out) / ex["dataset"], cfg, dataset)
    if not args.train_missing:
        sys.exit(
            f"{d}: base run not finished (no metrics.json; another process may be training it). "
            "Rerun later, or pass --train-missing to train it here."
        )
    d = Path(args.out) / ex["dataset"] / role
    _same_config(d, cfg, strict=True)
    if _metrics(d) is None:
        print(f"[{role}] training into {d} ...", flush=True)
        train_run(cfg, d, dataset=dataset, resume=True)
    return d


def _snapshot(base: Path, out: Path, cfg: Any, dataset: Any) -> Path:
    """The best-on-validation model so far of an unfinished run (its ``checkpoint.pt``), saved as
    a run folder ``out/teacher-snapshot-e<epoch>`` with its valid/test metrics."""
    from recdistill.eval import evaluate_model
    from recdistill.models import build_model
    from recdistill.models.store import save_model
    from recdistill.runs import write_config

    ck = torch.load(base / "checkpoint.pt", map_location="cpu", weights_only=False)
    best = ck["best"]["model"]
    d = out / f"teacher-snapshot-e{best['epoch']}"
    if _metrics(d) is not None:
        return d
    mc = cfg.model
    model = build_model(mc.name, dataset, size=mc.size, dim=mc.dim, **mc.params)
    model.load_state_dict(ck["best_states"]["model"])
    save_model(model, d / "model.pt")
    write_config(cfg, d)
    proto, ks = cfg.resolved_protocol(), cfg.train.ks
    res = {"model": mc.name, "n_parameters": model.n_parameters, "best_epoch": best["epoch"]}
    for split in ("valid", "test"):
        res[split] = {proto: evaluate_model(model, dataset, proto, split, ks)}
    atomic_json(
        {
            "dataset": dataset.name,
            "snapshot_of": str(base),
            "checkpoint_epoch": ck["epoch"],
            "epochs_run": ck["epoch"],
            "train_time_s": ck["train_time"],
            "seed": cfg.train.seed,
            "models": {"model": res},
        },
        d / "metrics.json",
    )
    print(
        f"[teacher] snapshot of {base} (checkpoint epoch {ck['epoch']}, best epoch {best['epoch']}) -> {d}",
        flush=True,
    )
    return d


def run_experiment(key: str, args: argparse.Namespace) -> Path:
    ex = EXPERIMENTS[key]
    over: dict[str, Any] = {"train": {"seed": args.seed, "progress": False}}
    if args.data_dir:
        over["data"] = {"data_dir": args.data_dir}
    cfg_file = ROOT / "configs" / ex["config"]
    cfg_s = make_config(cfg_file, {**over, "model": {"size": "student"}}, args.set)
    proto, monitor = cfg_s.resolved_protocol(), cfg_s.resolved_monitor()
    dataset = load_dataset_for(cfg_s)
    t_dir = _base_run(ex, "teacher", "teacher", args, over, dataset)
    s_dir = _base_run(ex, "student", "student", args, over, dataset)
    rows: dict[str, dict[str, Any]] = {}
    for label, d in (("Teacher", t_dir), ("Student", s_dir)):
        m = _metrics(d)
        rows[label] = {
            "run": str(d.relative_to(ROOT) if d.is_relative_to(ROOT) else d),
            "config": json.loads(json.dumps(make_config(d / "config.yaml").to_dict())),
            **_row(m, "model", proto, monitor),
        }
    tried: list[dict[str, Any]] = []
    for label, cands in ex["methods"].items():
        best = None
        for name, method, params in cands:
            d = Path(args.out) / ex["dataset"] / name
            distill = {"method": method, "teacher": str(t_dir), "params": params}
            cfg = make_config(cfg_file, {**over, "model": {"size": "student"}, "distill": distill}, args.set)
            _same_config(d, cfg, strict=True)
            if args.candidates and name not in args.candidates:
                continue  # not asked for (e.g. only the defaults under another optimiser)
            if _metrics(d) is None and args.labels and label not in args.labels:
                continue  # another process runs it; the table lists finished runs only
            if _metrics(d) is None:
                print(f"[{name}] distilling ({method}, {params}) into {d} ...", flush=True)
                t0 = time.perf_counter()
                distill_run(cfg, d, dataset=dataset, teacher=str(t_dir), resume=True)
                print(f"[{name}] done in {time.perf_counter() - t0:.0f} s", flush=True)
            r = {
                "run": str(d.relative_to(ROOT) if d.is_relative_to(ROOT) else d),
                "method": method,
                "params": params,
                "config": cfg.to_dict(),
                **_row(_metrics(d), "student", proto, monitor),
            }
            tried.append(
                {
                    "label": label,
                    **{k: r[k] for k in ("run", "method", "params", "valid_monitor", "best_epoch")},
                }
            )
            if best is None or r["valid_monitor"] > best["valid_monitor"]:
                best = r
        if best is not None:
            rows[label] = best
    hit = next(m for m in ex["metrics"] if m.startswith("H@"))
    paired = _paired(rows, dataset, proto, hit)
    return _write(key, ex, rows, tried, proto, monitor, args, (hit, paired))


def _row(m: dict | None, model: str, proto: str, monitor: str) -> dict[str, Any]:
    assert m is not None
    mm = m["models"][model]
    return {
        "n_parameters": mm["n_parameters"],
        "best_epoch": mm["best_epoch"],
        "epochs_run": m["epochs_run"],
        "train_time_s": m["train_time_s"],
        "valid_monitor": mm["valid"][proto][monitor],
        "test": mm["test"][proto],
    }


def _test_hits(run: str, model: str, dataset: Any, proto: str, k: int) -> np.ndarray:
    """Per-user test hits at ``k`` (1/0; NaN for users without a test item) of a saved model."""
    from recdistill.eval import heldout_ranks
    from recdistill.runs import load_run

    m = load_run(ROOT / run if not Path(run).is_absolute() else run, dataset=dataset).models[model]
    ranks = heldout_ranks(
        m.score_all,
        dataset,
        proto,
        "test",
        device=m.device,
        score_items_fn=m.score if proto == "sampled" else None,
    )  # (n_users,)
    return np.where(ranks > 0, (ranks <= k).astype(np.float64), np.nan)


def _paired(rows: dict, dataset: Any, proto: str, metric: str) -> dict[str, tuple[float, float]]:
    """Δ of H@K vs the Student and its paired standard error ``std(h_A - h_S) / sqrt(n)`` over
    the test users (one seed: the split's sampling noise only, not the training noise)."""
    k = int(metric.split("@")[1])
    hits = {
        label: _test_hits(
            r["run"], "model" if label in ("Teacher", "Student") else "student", dataset, proto, k
        )
        for label, r in rows.items()
    }
    out = {}
    for label, h in hits.items():
        d = h - hits["Student"]  # (n_users,)
        d = d[~np.isnan(d)]
        out[label] = (float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size)))
    return out


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def _write(
    key: str,
    ex: dict,
    rows: dict,
    tried: list,
    proto: str,
    monitor: str,
    args: argparse.Namespace,
    paired: tuple[str, dict],
) -> Path:
    metrics = ex["metrics"]
    commit = _commit()
    cmd = f"python scripts/run_baselines.py --only {key} --seed {args.seed}" + "".join(
        f" --set {s}" for s in args.set
    )
    if args.train_missing:
        cmd += " --train-missing"
    if args.teacher_run:
        cmd += f" --teacher-run {args.teacher_run}"
    if getattr(args, "candidates", None):
        cmd += " --candidates " + " ".join(args.candidates)
    if args.tag:
        cmd += f" --tag {args.tag} --out {Path(args.out).resolve().relative_to(ROOT)}"
    lines = [
        f"# Frozen-teacher baselines on {ex['dataset']} ({proto} protocol, test split)",
        "",
        f"BPR teacher -> student, config `configs/{ex['config']}` (sizes teacher/student); one seed "
        f"({args.seed}); commit `{commit}`; generated by `{cmd}`. Best epoch chosen on the "
        f"validation {monitor}; paper values in parentheses.",
        "",
        "| model | #params | best epoch | train s | valid " + monitor + " | " + " | ".join(metrics) + " |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(metrics),
    ]
    for label, r in rows.items():
        paper = ex["paper"].get(label, [None] * len(metrics))
        cells = [f"{r['test'][k]:.4f} ({_fmt(p)})" for k, p in zip(metrics, paper, strict=True)]
        lines.append(
            f"| {label} | {r['n_parameters']:,} | {r['best_epoch']} | {r['train_time_s']:.0f} | "
            f"{r['valid_monitor']:.4f} | " + " | ".join(cells) + " |"
        )
    snap = (
        _metrics(
            Path(rows["Teacher"]["run"])
            if Path(rows["Teacher"]["run"]).is_absolute()
            else ROOT / rows["Teacher"]["run"]
        )
        or {}
    ).get("snapshot_of")
    if snap:
        lines += [
            "",
            f"Teacher: a snapshot (best-on-validation checkpoint at epoch "
            f"{rows['Teacher']['best_epoch']}) of the unfinished run `{snap}`, not a converged model.",
        ]
    s = rows["Student"]["test"][metrics[0]]
    lines += [
        "",
        f"Relative to the Student ({metrics[0]}): "
        + ", ".join(
            f"{label} {100 * (r['test'][metrics[0]] / s - 1):+.1f}%"
            for label, r in rows.items()
            if label not in ("Teacher", "Student")
        )
        + ".",
    ]
    hit, pd_ = paired
    lines += [
        "",
        f"Paired test difference in {hit} vs the Student, ± its standard error over users "
        "(split noise only; one training seed): "
        + ", ".join(
            f"{label} {d:+.4f} ± {se:.4f} (z = {d / se:+.1f})"
            for label, (d, se) in pd_.items()
            if label != "Student" and se > 0
        )
        + ".",
    ]
    lines += [
        "",
        f"Candidates tried (selection on validation {monitor} only):",
        "",
        "| method | run | params | valid " + monitor + " | best epoch |",
        "|---|---|---|---:|---:|",
    ]
    for t in tried:
        lines.append(
            f"| {t['label']} | `{t['run']}` | `{json.dumps(t['params'])}` | "
            f"{t['valid_monitor']:.4f} | {t['best_epoch']} |"
        )
    lines += ["", "Runs and resolved configs: `" + f"baselines_{ex['dataset']}{args.tag}.json" + "`.", ""]
    out = ROOT / "results"
    path = out / f"baselines_{ex['dataset']}{args.tag}.md"
    atomic_text("\n".join(lines), path)
    atomic_json(
        {
            "dataset": ex["dataset"],
            "protocol": proto,
            "monitor": monitor,
            "seed": args.seed,
            "commit": commit,
            "command": cmd,
            "rows": rows,
            "tried": tried,
            "paper": ex["paper"],
            "paired_vs_student": {"metric": hit, "delta_se": pd_},
        },
        out / f"baselines_{ex['dataset']}{args.tag}.json",
    )
    print("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=sorted(EXPERIMENTS), default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base-runs", default=str(ROOT / "runs" / "base"))
    p.add_argument("--out", default=str(ROOT / "runs" / "baselines"))
    p.add_argument("--set", action="append", default=[], help="config override a.b=v for every run")
    p.add_argument("--train-missing", action="store_true", help="train unfinished base runs here")
    p.add_argument("--tag", default="", help="suffix of the results files (baselines_<dataset><tag>.md)")
    p.add_argument(
        "--labels",
        nargs="*",
        default=None,
        help="run only these methods' candidates (e.g. to run methods in parallel)",
    )
    p.add_argument(
        "--candidates",
        nargs="*",
        default=None,
        help="run only these candidates by run name (e.g. rd cd: the defaults)",
    )
    p.add_argument("--teacher-run", default=None, help="use this finished run folder as the teacher")
    p.add_argument(
        "--teacher-snapshot",
        action="store_true",
        help="unfinished base teacher: use its best-on-validation checkpoint so far",
    )
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    for key in [a.only] if a.only else sorted(EXPERIMENTS, reverse=True):
        run_experiment(key, a)


if __name__ == "__main__":
    main()
