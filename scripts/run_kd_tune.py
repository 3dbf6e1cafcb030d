"""Issue #5 with BD's own tuning protocol (BD Sec. 5.1.5) on citeulike-bd: Student, RD, CD.

BPR teacher dim 50 -> BPR student dim 5, full ranking, leave-one-out, batch 128 (the paper's).
Every choice is made on the VALIDATION H@50; test numbers are shown only for the chosen configs.

1. Stage 1, the student: lr x per-sample L2 ``model.params.reg`` (BPR's ``reg``), seeds
   ``--tune-seeds``; the (lr, reg) with the best mean validation H@50 is the student of every later
   run (distilled students included). The paper's lr 1e-5 is left out (at batch 128 it cannot
   reach the other lrs' level within any affordable epoch budget).
2. Stage 2, KD: with the chosen (lr, reg), RD over α x k (α = λ_KD/(1+λ_KD): RD's
   ``(1-α)·L_base + α·L_RD`` is ``L_base + λ_KD·L_RD`` scaled by 1/(1+λ_KD), which Adam's
   step is almost invariant to), CD over λ_KD x n_samples x τ, on the first tune seed
   (``--search full``: the whole grid; ``coord``: coordinate search inside the grid, one axis at
   a time from the methods' defaults, the axes in the order given below); then the ``--top`` best
   per method also on the other tune seeds; the choice is the best mean validation over the tune
   seeds among those.
3. Stage 3, test: the tuned Student and the chosen RD and CD on ``--test-seeds``. A run's folder is
   named by its config, so a test run whose config equals a tuning run's (same seed) IS that run
   (reused, not trained twice: training is deterministic for a given config). Paired t-tests over
   seeds (``scipy.stats.ttest_rel``) of RD and CD vs the Student, and per seed a paired comparison
   over the test users (per-user hits@50 from the saved models).

Teachers: each seed's BPR dim-50 teacher of the paperopt baseline runs (the ``distill.teacher`` of
``runs/baselines-paperopt-sS/citeulike-bd/rd/config.yaml``); never retrained. Runs go to
``runs/kd_tune/sS/<name>`` (finished ones reused, interrupted ones resumed from their checkpoint; a
folder whose config differs stops the script). The report ``results/kd_tune_citeulike-bd.md``
(+ ``.json``) is generated from the finished runs::

    python scripts/run_kd_tune.py --data-dir ../shared/data --threads 1 [--stage 1|2|3|report|all]

The committed results were made, for time (2 h, one CPU core shared), with a reduced protocol::

    python scripts/run_kd_tune.py --data-dir ../shared/data --threads 1 --lrs 1e-3 2e-3 \
        --extra 1e-4:0 --search coord

(lr 1e-4 with reg 0 only; coordinate search instead of the full KD grid). Earlier invocations
with ``--methods rd``, then ``--top 2 --top-cd 1 --axes alpha k lambda_kd``, ran parts of it first
(RD's test before CD's tuning), all reused by the final one.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from run_baselines_seeds import paired_stats  # the tested one (scripts/ is on sys.path)

from recdistill.atomic import atomic_json, atomic_text
from recdistill.config import make_config
from recdistill.runs import distill_run, load_dataset_for, train_run

ROOT = Path(__file__).resolve().parents[1]
DATASET = "citeulike-bd"
CONFIG = ROOT / "configs" / "bpr-citeulike-bd.yaml"
MONITOR, PROTO = "H@50", "full"
METRICS = ("H@50", "N@50")
PAPER = {"Student": (0.0717, 0.0171), "RD": (0.0782, 0.0185), "CD": (0.0803, 0.0201)}  # BD Table 2
# the brief's grids (BD Sec. 5.1.5; λ_KD 0.01, 0.1, 0.5, 1 -> α = λ/(1+λ) rounded)
RD_AXES = {"alpha": [0.01, 0.1, 0.33, 0.5], "k": [10, 20, 30, 50]}
CD_AXES = {"lambda_kd": [0.01, 0.1, 0.5, 1.0], "n_samples": [10, 20, 50], "tau": [1.0, 2.0]}
RD_START = {"alpha": 0.5, "k": 10}  # RD's defaults (coordinate search starts here)
CD_START = {"lambda_kd": 0.1, "n_samples": 10, "tau": 1.0}
SHORT = {"alpha": "a", "k": "k", "lambda_kd": "l", "n_samples": "n", "tau": "t"}


def _commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def _rel(p: Path) -> str:
    p = Path(p).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def _metrics(d: Path) -> dict | None:
    p = d / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else None


def teacher_of(seed: int) -> Path:
    """The seed's teacher: the one the paperopt baseline runs distilled from."""
    f = ROOT / f"runs/baselines-paperopt-s{seed}/{DATASET}/rd/config.yaml"
    if not f.is_file():
        sys.exit(f"{f}: missing; the teacher of seed {seed} is taken from the paperopt baseline runs")
    t = Path(yaml.safe_load(f.read_text())["distill"]["teacher"])
    t = t if t.is_absolute() else ROOT / t
    if _metrics(t) is None:
        sys.exit(f"{t}: teacher of seed {seed} has no metrics.json")
    return t


class Runner:
    """Builds configs, names run folders by their config, trains/reuses runs."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.out = Path(a.out)
        over: dict[str, Any] = {
            "train": {
                "batch_size": a.batch_size,
                "epochs": a.epochs,
                "eval_every": a.eval_every,
                "patience": a.patience,
                "progress": False,
            }
        }
        if a.data_dir:
            over["data"] = {"data_dir": a.data_dir}
        self.over = over
        self.dataset = load_dataset_for(make_config(CONFIG, {**over, "model": {"size": "student"}}))
        self.n_trained = 0

    def config(
        self, seed: int, lr: float, reg: float, method: str | None = None, params: dict | None = None
    ) -> Any:
        o = json.loads(json.dumps(self.over))
        o["train"].update(seed=seed, lr=lr)
        o["model"] = {"size": "student", "params": {"reg": reg}}
        if method:
            o["distill"] = {"method": method, "teacher": str(teacher_of(seed)), "params": params or {}}
        return make_config(CONFIG, o)

    @staticmethod
    def name(lr: float, reg: float, method: str | None = None, params: dict | None = None) -> str:
        n = f"lr{lr:g}-reg{reg:g}"
        if method:
            n = f"{method}-{n}-" + "-".join(f"{SHORT[k]}{v:g}" for k, v in sorted((params or {}).items()))
        else:
            n = f"student-{n}"
        return n

    def run(
        self,
        seed: int,
        lr: float,
        reg: float,
        method: str | None = None,
        params: dict | None = None,
        train: bool = True,
    ) -> dict | None:
        """The run's summary (None if unfinished and ``train`` is False)."""
        d = self.out / f"s{seed}" / self.name(lr, reg, method, params)
        cfg = self.config(seed, lr, reg, method, params)
        if (d / "config.yaml").is_file() and make_config(d / "config.yaml").to_dict() != cfg.to_dict():
            sys.exit(f"{d}: its config.yaml differs from this experiment's; move it away or use --out")
        if _metrics(d) is None:
            if not train:
                return None
            t0 = time.perf_counter()
            print(f"[{time.strftime('%H:%M:%S')}] s{seed} {d.name}: training ...", flush=True)
            if method:
                distill_run(cfg, d, dataset=self.dataset, teacher=str(teacher_of(seed)), resume=True)
            else:
                train_run(cfg, d, dataset=self.dataset, resume=True)
            self.n_trained += 1
            print(
                f"[{time.strftime('%H:%M:%S')}] s{seed} {d.name}: done in {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
        m = _metrics(d)
        assert m is not None
        mm = m["models"]["student" if method else "model"]
        r = {
            "run": _rel(d),
            "seed": seed,
            "lr": lr,
            "reg": reg,
            "method": method or "student",
            "params": params or {},
            "best_epoch": mm["best_epoch"],
            "epochs_run": m["epochs_run"],
            "early_stopped": bool(m.get("early_stopped")),
            "train_time_s": m["train_time_s"],
            "valid": mm["valid"][PROTO][MONITOR],
            # the validation hit rates at every cutoff and the best epoch: equal ones = the same model
            "valid_hits": [round(v, 10) for k, v in sorted(mm["valid"][PROTO].items()) if k.startswith("H@")]
            + [mm["best_epoch"]],
            "test": {k: mm["test"][PROTO][k] for k in METRICS},
        }
        # best epoch at the budget's end: the run did not stop early and its best validation is in
        # the last patience window (it might still have been improving)
        r["best_at_budget_end"] = (not r["early_stopped"]) and (
            r["best_epoch"] > self.a.epochs - self.a.patience * self.a.eval_every
        )
        return r


# ----------------------------------------------------------------------------------- stages
def stage1(R: Runner, train: bool = True) -> dict[str, Any]:
    a = R.a
    grid = []
    extra = [tuple(float(x) for x in e.split(":")) for e in a.extra]
    for lr, reg in [(lr, reg) for lr in a.lrs for reg in a.regs] + extra:
        runs = [R.run(s, lr, reg, train=train) for s in a.tune_seeds]
        done = [r for r in runs if r is not None]
        grid.append(
            {
                "lr": lr,
                "reg": reg,
                "runs": done,
                "mean_valid": float(np.mean([r["valid"] for r in done])) if len(done) == len(runs) else None,
            }
        )
    full = [g for g in grid if g["mean_valid"] is not None]
    chosen = max(full, key=lambda g: g["mean_valid"]) if full else None  # first of ties (grid order)
    return {"grid": grid, "chosen": None if chosen is None else {"lr": chosen["lr"], "reg": chosen["reg"]}}


def _points(axes: dict[str, list], start: dict[str, Any], search: str, score: Any) -> list[dict]:
    """Grid points to run: the full product, or coordinate search (``score(params)``: the finished
    run's validation, or None when not run yet: the search stops there)."""
    if search == "full":
        pts: list[dict] = [{}]
        for k, vs in axes.items():
            pts = [{**p, k: v} for p in pts for v in vs]
        return pts
    cur, pts = dict(start), []
    for k, vs in axes.items():
        best, best_v = None, -math.inf
        for v in vs:
            p = {**cur, k: v}
            if p not in pts:
                pts.append(p)
            s = score(p)
            if s is None:
                return pts
            if s > best_v:
                best, best_v = v, s
        cur[k] = best
    return pts


def stage2(R: Runner, s1: dict, train: bool = True) -> dict[str, Any]:
    a = R.a
    if s1["chosen"] is None:
        return {}
    lr, reg = s1["chosen"]["lr"], s1["chosen"]["reg"]
    first, others = a.tune_seeds[0], a.tune_seeds[1:]
    out: dict[str, Any] = {}
    specs = {"rd": (RD_AXES, RD_START), "cd": (CD_AXES, CD_START)}
    for method in a.methods:
        axes, start = specs[method]

        def score(p: dict, method: str = method) -> float | None:
            r = R.run(first, lr, reg, method, p, train=train)
            return None if r is None else r["valid"]

        axes = {k: v for k, v in axes.items() if a.axes is None or k in a.axes}  # the rest: at start
        pts = _points(axes, start, a.search, score)
        rows = []
        for p in pts:
            r = R.run(first, lr, reg, method, p, train=train)
            rows.append({"params": p, "runs": [r] if r else []})
        done = sorted((x for x in rows if x["runs"]), key=lambda x: -x["runs"][0]["valid"])
        # the top ``a.top``, a point that ties an earlier one (in search order) on every validation
        # hit rate and the best epoch counting as that point (e.g. RD's k: see the report's note)
        top, seen = [], []
        for x in done:
            if x["runs"][0]["valid_hits"] in seen:
                x["same_as"] = next(
                    y["params"] for y in top if y["runs"][0]["valid_hits"] == x["runs"][0]["valid_hits"]
                )
                continue
            seen.append(x["runs"][0]["valid_hits"])
            top.append(x)
        top = top[: a.top_cd if method == "cd" and a.top_cd is not None else a.top]
        for x in top:
            for s in others:
                r = R.run(s, lr, reg, method, x["params"], train=train)
                if r:
                    x["runs"].append(r)
        for x in rows:
            x["mean_valid"] = float(np.mean([r["valid"] for r in x["runs"]])) if x["runs"] else None
        eligible = [x for x in top if len(x["runs"]) == len(a.tune_seeds)]
        chosen = max(eligible, key=lambda x: x["mean_valid"]) if eligible else None
        out[method] = {
            "points": rows,
            "top": [x["params"] for x in top],
            "chosen": None if chosen is None else chosen["params"],
            "complete": len(done) == len(rows) and len(eligible) == len(top),
        }
    return out


def _user_hits(run: str, model: str, dataset: Any, k: int) -> np.ndarray:
    """Per-user test hits at ``k`` (1/0; NaN for users without a test item) of a saved model."""
    from recdistill.eval import heldout_ranks
    from recdistill.runs import load_run

    m = load_run(ROOT / run, dataset=dataset).models[model]
    ranks = heldout_ranks(m.score_all, dataset, PROTO, "test", device=m.device)  # (n_users,)
    return np.where(ranks > 0, (ranks <= k).astype(np.float64), np.nan)


def stage3(R: Runner, s1: dict, s2: dict, train: bool = True, students_only: bool = False) -> dict[str, Any]:
    a = R.a
    if s1["chosen"] is None:
        return {}
    lr, reg = s1["chosen"]["lr"], s1["chosen"]["reg"]
    rows: dict[str, dict[int, dict]] = {"Student": {}}
    for s in a.test_seeds:
        r = R.run(s, lr, reg, train=train)
        if r:
            rows["Student"][s] = r
    if students_only:
        return {"rows": rows}
    for method, label in (("rd", "RD"), ("cd", "CD")):
        ch = s2.get(method, {}).get("chosen")
        if ch is None:
            continue
        rows[label] = {}
        for s in a.test_seeds:
            r = R.run(s, lr, reg, method, ch, train=train)
            if r:
                rows[label][s] = r
    out: dict[str, Any] = {"rows": rows, "over_seeds": {}, "over_users": {}}
    for label in ("RD", "CD"):
        seeds = [s for s in a.test_seeds if s in rows.get(label, {}) and s in rows["Student"]]
        if len(seeds) >= 2:
            out["over_seeds"][label] = {
                m: paired_stats(
                    np.array([rows[label][s]["test"][m] for s in seeds]),
                    np.array([rows["Student"][s]["test"][m] for s in seeds]),
                )
                for m in METRICS
            }
            out["over_seeds"][label]["seeds"] = seeds
        if a.per_user:
            k = int(MONITOR.split("@")[1])
            for s in seeds:
                hs = _user_hits(rows["Student"][s]["run"], "model", R.dataset, k)
                hk = _user_hits(rows[label][s]["run"], "student", R.dataset, k)
                ok = ~(np.isnan(hs) | np.isnan(hk))
                st = paired_stats(hk[ok], hs[ok])
                st.pop("n_above")
                st["users_kd_only"] = int(((hk == 1) & (hs == 0)).sum())
                st["users_student_only"] = int(((hk == 0) & (hs == 1)).sum())
                out["over_users"].setdefault(label, {})[str(s)] = st
    return out


# ----------------------------------------------------------------------------------- report
def _f(x: float | None, nd: int = 4) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _pv(p: float) -> str:
    return "—" if math.isnan(p) else (f"{p:.3f}" if p >= 1e-3 else f"{p:.1e}")


def _params(p: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in p.items())


def _edges(chosen: dict, axes: dict[str, list]) -> str:
    """Which chosen values lie on the edge (smallest/largest value) of their searched axis."""
    e = [
        f"{k} = {chosen[k]:g} is the {'smallest' if chosen[k] == min(vs) else 'largest'} value tried"
        for k, vs in axes.items()
        if len(vs) > 1 and chosen[k] in (min(vs), max(vs))
    ]
    return (
        ("At the grid's edge: " + "; ".join(e) + " (a value beyond it might do better).")
        if e
        else ("Every chosen value is inside its grid.")
    )


def report(R: Runner, s1: dict, s2: dict, s3: dict, cmd: str, t_total: float) -> str:
    a = R.a
    commit = _commit()
    seeds_t = ", ".join(map(str, a.tune_seeds))
    L = [
        f"# BD's tuning protocol on {DATASET}: Student, RD, CD (full ranking, issue #5)",
        "",
        f"BPR teacher dim 50 -> student dim 5, `configs/{CONFIG.name}` with batch {a.batch_size}, "
        f"at most {a.epochs} epochs, validation every {a.eval_every} epochs, early stop after "
        f"{a.patience} validations without improvement, best-on-validation model. Every choice on "
        f"the validation {MONITOR} (5,219 users; one hit = 0.00019); test shown only for the chosen "
        f"configs. Commit `{commit}`; generated by `{cmd}`. Teachers (never retrained): "
        + ", ".join(
            f"seed {s} `{_rel(teacher_of(s))}`" for s in sorted(set(a.tune_seeds) | set(a.test_seeds))
        )
        + ".",
        "",
    ]
    # stage 1
    L += [
        f"## Stage 1: the student (lr x per-sample L2 `reg`), seeds {seeds_t}",
        "",
        "lr 1e-5 of the paper's grid is left out: at batch 128 it cannot converge in any affordable "
        "budget (1e-4 is already the slowest)."
        + (
            f" Points beyond lr {a.lrs} x reg {a.regs}: {', '.join(a.extra)} (lr 1e-4 with reg 0 "
            "only: it is by far the slowest, see its best epochs; its other regs were not "
            "affordable in this session)."
            if a.extra
            else ""
        ),
        "",
        "| lr | reg | " + " | ".join(f"valid s{s}" for s in a.tune_seeds) + " | mean valid | "
        "best epochs | epochs run | best at budget end |",
        "|---:|---:|" + "---:|" * len(a.tune_seeds) + "---:|---:|---:|---|",
    ]
    for g in s1["grid"]:
        rs = {r["seed"]: r for r in g["runs"]}
        mark = " **(chosen)**" if s1["chosen"] == {"lr": g["lr"], "reg": g["reg"]} else ""
        L.append(
            f"| {g['lr']:g} | {g['reg']:g}{mark} | "
            + " | ".join(_f(rs[s]["valid"]) if s in rs else "not run" for s in a.tune_seeds)
            + f" | {_f(g['mean_valid'])} | "
            + ", ".join(str(r["best_epoch"]) for r in g["runs"])
            + " | "
            + ", ".join(str(r["epochs_run"]) for r in g["runs"])
            + " | "
            + ("yes" if any(r["best_at_budget_end"] for r in g["runs"]) else "no")
            + " |"
        )
    ch = s1["chosen"]
    L += ["", f"Chosen: lr {ch['lr']:g}, reg {ch['reg']:g}." if ch else "Chosen: — (stage 1 unfinished).", ""]
    if ch:
        L += [
            _edges(
                {"lr": ch["lr"], "reg": ch["reg"]},
                {k: sorted({g[k] for g in s1["grid"]}) for k in ("lr", "reg")},
            ),
            "",
        ]
    # stage 2
    L += [
        f"## Stage 2: KD on validation (student lr/reg from stage 1), search `{a.search}`",
        "",
        f"RD: α ∈ {RD_AXES['alpha']} (λ_KD 0.01, 0.1, 0.5, 1 as α = λ/(1+λ)) x k ∈ {RD_AXES['k']}; "
        f"CD: λ_KD ∈ {CD_AXES['lambda_kd']} x n_samples ∈ {CD_AXES['n_samples']} x τ ∈ "
        f"{CD_AXES['tau']}. "
        + (
            "Full grid on seed "
            if a.search == "full"
            else "Coordinate search inside that grid (one axis at a time, in the order listed, from the "
            "methods' defaults RD α 0.5 k 10, CD λ 0.1 n 10 τ 1; each axis fixed at its best before "
            "the next) on seed "
        )
        + f"{a.tune_seeds[0]}; the top {a.top} (RD) / {a.top if a.top_cd is None else a.top_cd} (CD) "
        "also on seeds "
        f"{', '.join(map(str, a.tune_seeds[1:])) or '—'}; choice: best mean validation over seeds "
        f"{seeds_t} among those"
        + (f"; only the axes {a.axes} were searched (the others at the defaults)" if a.axes else "")
        + f". For the top N, a point with the same seed-{a.tune_seeds[0]} "
        "validation H@5..H@100 and best epoch as a better-or-equal earlier one (in search order) counts as "
        "that one (the same model in effect; not run on the other seeds).",
        "",
    ]
    r = np.arange(1, max(RD_AXES["k"]) + 1)
    w = np.exp(-r / 1.0)  # RD's position weight with its default λ = 1 (lambda_position)
    L += [
        f"Note on RD's k: its position weight exp(-r/λ), λ = 1 (RD's default, not tuned here), puts "
        f"{w[10:].sum() / w.sum():.1e} of a {len(w)}-item list's weight beyond rank 10; the hybrid "
        "weight multiplies it by tanh(μ·(rank_S − r)) <= 1, near 1 when the student ranks the item far "
        "below the teacher, so k ∈ {10..50} should barely change RD's loss (see the k rows below).",
        "",
    ]
    for method in a.methods:
        m2 = s2.get(method)
        if not m2:
            continue
        L += [
            f"{method.upper()}:",
            "",
            "| params | "
            + " | ".join(f"valid s{s}" for s in a.tune_seeds)
            + " | mean valid | best epoch(s) | top | chosen |",
            "|---|" + "---:|" * len(a.tune_seeds) + "---:|---:|---|---|",
        ]
        for x in m2["points"]:
            rs = {r["seed"]: r for r in x["runs"]}
            tp = "yes" if x["params"] in m2["top"] else ""
            if x.get("same_as") and not tp:
                tp = f"same as `{_params(x['same_as'])}`"
            mv = _f(x["mean_valid"]) if len(rs) == len(a.tune_seeds) else f"({_f(x['mean_valid'])})"
            L.append(
                f"| `{_params(x['params'])}` | "
                + " | ".join(_f(rs[s]["valid"]) if s in rs else "—" for s in a.tune_seeds)
                + f" | {mv} | {', '.join(str(r['best_epoch']) for r in x['runs'])} | "
                f"{tp} | "
                f"{'**chosen**' if x['params'] == m2['chosen'] else ''} |"
            )
        if not m2["complete"]:
            L.append("")
            L.append("(unfinished: some points of this search were not run.)")
        ends = [r for x in m2["points"] for r in x["runs"] if r["best_at_budget_end"]]
        if m2["chosen"] is not None:
            searched = {
                k: v
                for k, v in (RD_AXES if method == "rd" else CD_AXES).items()
                if a.axes is None or k in a.axes
            }
            L += ["", _edges(m2["chosen"], searched)]
        L += [
            "",
            f"Runs with the best epoch at the budget's end: {len(ends)}."
            + (" " + ", ".join(f"`{r['run']}`" for r in ends) if ends else ""),
            "",
        ]
    # stage 3
    rows = s3.get("rows", {})
    if rows:
        L += [
            f"## Stage 3: test, seeds {', '.join(map(str, a.test_seeds))}",
            "",
            "Configs: Student "
            + (f"lr {ch['lr']:g} reg {ch['reg']:g}" if ch else "—")
            + "; "
            + "; ".join(
                f"{lb} `{_params(s2[m]['chosen'])}`"
                for m, lb in (("rd", "RD"), ("cd", "CD"))
                if s2.get(m, {}).get("chosen") is not None
            )
            + f". Runs of seeds {seeds_t} are the tuning runs of the same config (same folder).",
            "",
        ]
        for m in METRICS:
            pidx = METRICS.index(m)
            L += [
                f"Test {m}:",
                "",
                "| model | " + " | ".join(f"seed {s}" for s in a.test_seeds) + " | mean ± std | paper |",
                "|---|" + "---:|" * (len(a.test_seeds) + 2),
            ]
            for lb, rr in rows.items():
                v = [rr[s]["test"][m] for s in a.test_seeds if s in rr]
                ms = f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}" if len(v) >= 2 else "—"
                L.append(
                    f"| {lb} | "
                    + " | ".join(_f(rr[s]["test"][m]) if s in rr else "—" for s in a.test_seeds)
                    + f" | {ms} | {PAPER[lb][pidx]:.4f} |"
                )
            L.append("")
        L += [
            "Best epoch / epochs run per seed: "
            + "; ".join(
                f"{lb} "
                + ", ".join(f"{rr[s]['best_epoch']}/{rr[s]['epochs_run']}" for s in a.test_seeds if s in rr)
                for lb, rr in rows.items()
            )
            + ".",
            "",
        ]
        if s3.get("over_seeds"):
            L += [
                "Paired over seeds (Δ = KD − Student; 95% CI of the mean Δ from the t distribution; p: "
                "two-sided `scipy.stats.ttest_rel`; above: seeds where KD is higher; paper Δ: BD Table 2):",
                "",
                "| A vs Student | metric | mean Δ | std Δ | relative | 95% CI | t | p | seeds above "
                "| paper Δ |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for lb, st in s3["over_seeds"].items():
                for m in METRICS:
                    c = st[m]
                    base = np.mean([rows["Student"][s]["test"][m] for s in st["seeds"]])
                    pd_ = PAPER[lb][METRICS.index(m)] - PAPER["Student"][METRICS.index(m)]
                    L.append(
                        f"| {lb} | {m} | {c['mean_diff']:+.4f} | {c['std_diff']:.4f} | "
                        f"{100 * c['mean_diff'] / base:+.1f}% | [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}] | "
                        f"{_f(c['t'], 2)} | {_pv(c['p'])} | {c['n_above']}/{c['n']} | {pd_:+.4f} |"
                    )
            L.append("")
        if s3.get("over_users"):
            L += [
                "Paired over test users within each seed (per-user hit@50 of the KD student minus the "
                "Student's; split noise of one training run; t-test `ttest_rel` over users):",
                "",
                "| A vs Student | seed | Δ H@50 | 95% CI | t | p | users hit by A only | by Student only |",
                "|---|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for lb, per in s3["over_users"].items():
                for s, c in per.items():
                    L.append(
                        f"| {lb} | {s} | {c['mean_diff']:+.4f} | "
                        f"[{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}] | {_f(c['t'], 2)} | {_pv(c['p'])} | "
                        f"{c['users_kd_only']} | {c['users_student_only']} |"
                    )
            L.append("")
    L += [
        f"Runs trained by this invocation: {R.n_trained}; its wall time {t_total / 60:.1f} min (runs are "
        "reused: earlier invocations with subsets of the options trained most of them, see the script's "
        "docstring). "
        f"Runs: `{_rel(R.out)}/s<seed>/<name>`; all values and configs in `kd_tune_{DATASET}.json`.",
        "",
    ]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage", choices=["1", "2", "3", "report", "all"], default="all")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "runs" / "kd_tune"))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 2e-3, 1e-4])
    p.add_argument("--regs", type=float, nargs="+", default=[0.0, 1e-5, 1e-4, 1e-3])
    p.add_argument(
        "--extra",
        nargs="*",
        default=[],
        metavar="LR:REG",
        help="stage 1 points beyond --lrs x --regs (e.g. a slow lr with one reg only)",
    )
    p.add_argument("--tune-seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--test-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--methods", nargs="+", choices=["rd", "cd"], default=["rd", "cd"])
    p.add_argument("--search", choices=["full", "coord"], default="full")
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--top-cd", type=int, default=None, help="CD's top-N on the other seeds (default --top)")
    p.add_argument("--axes", nargs="+", default=None, help="search only these axes (others at the defaults)")
    p.add_argument("--no-per-user", dest="per_user", action="store_false")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    R = Runner(a)
    st = a.stage
    s1 = stage1(R, train=st in ("1", "all"))
    print(f"stage 1 chosen: {s1['chosen']}", flush=True)
    if st == "all":  # the tuned Student's test seeds are cheap: train them before the KD grid
        stage3(R, s1, {}, train=True, students_only=True)
    s2 = stage2(R, s1, train=st in ("2", "all"))
    print("stage 2 chosen: " + ", ".join(f"{m} {v.get('chosen')}" for m, v in s2.items()), flush=True)
    s3 = stage3(R, s1, s2, train=st in ("3", "all"))
    argv_ = list(argv if argv is not None else sys.argv[1:])
    if "--stage" in argv_:  # the command that makes the runs: every stage
        i = argv_.index("--stage")
        del argv_[i : i + 2]
    cmd = " ".join(["python scripts/run_kd_tune.py", *argv_])
    text = report(R, s1, s2, s3, cmd.strip(), time.perf_counter() - t0)
    res = ROOT / "results"
    atomic_text(text, res / f"kd_tune_{DATASET}.md")
    atomic_json(
        {
            "dataset": DATASET,
            "commit": _commit(),
            "command": cmd.strip(),
            "args": vars(a),
            "teachers": {str(s): _rel(teacher_of(s)) for s in sorted(set(a.tune_seeds) | set(a.test_seeds))},
            "stage1": s1,
            "stage2": s2,
            "stage3": {
                "rows": {lb: {str(s): r for s, r in rr.items()} for lb, rr in s3.get("rows", {}).items()},
                "over_seeds": s3.get("over_seeds", {}),
                "over_users": s3.get("over_users", {}),
            },
        },
        res / f"kd_tune_{DATASET}.json",
    )
    print(text, flush=True)


if __name__ == "__main__":
    main()
