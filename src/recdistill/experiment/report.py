"""An experiment's report from its finished runs: each table in the paper's layout (mean ± std
over seeds, the paper's numbers alongside, each row's improvement over its ``vs`` row with a
paired t-test over the seeds both have), the searches (every trial's validation score and the
choice), the findings' verdicts, heat maps, and the commit, command and configs.

Written as ``<out>/<name>.md``, ``.csv`` and ``.json`` (and ``<name>_<figure>.png``); nothing in
it is typed by hand. :func:`write_index` gathers the verdicts of several reports into one page.
"""

from __future__ import annotations

import csv
import io
import math
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recdistill.atomic import atomic_json, atomic_text, read_json
from recdistill.errors import RecdistillError
from recdistill.experiment.plan import Planner
from recdistill.experiment.search import search_state
from recdistill.experiment.spec import TableSpec

__all__ = [
    "VERDICTS",
    "build_report",
    "table_markdown",
    "commit_id",
    "paired_test",
    "verdict",
    "adjust_findings",
    "write_index",
    "write_report",
]

VERDICTS = (
    "reproduced",
    "same direction, not significant",
    "not reproduced",
    "contradicted",
    "incomplete (1 seed)",
    "not run yet",
    "flagged",
)


def _git(*args: str, cwd: Path | None = None) -> str:
    """``git args`` in ``cwd``, its stdout stripped; raises OSError / CalledProcessError."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def commit_id(cwd: Path | None = None) -> str:
    """The checkout's commit (short), with ``+dirty`` when the code, configs or specs (tracked
    files under ``src``, ``configs``, ``experiments``) differ from it; results may."""
    try:
        head = _git("rev-parse", "--short=12", "HEAD", cwd=cwd)
        paths = ("--", ":/src", ":/configs", ":/experiments")
        dirty = _git("status", "--porcelain", "--untracked-files=no", *paths, cwd=cwd)
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def code_version(commit: str, cwd: Path | None = None) -> str:
    """The git tree of ``src`` at ``commit`` (short): commits that changed only docs, configs or
    results share it. ``commit`` itself when it has ``+dirty`` (uncommitted code) or git cannot
    resolve it."""
    if commit.endswith("+dirty") or commit == "unknown":
        return commit
    try:
        return _git("rev-parse", "--short=12", f"{commit}:src", cwd=cwd)
    except (OSError, subprocess.CalledProcessError):
        return commit


def paired_test(a: dict[int, float], b: dict[int, float]) -> tuple[float | None, int]:
    """Two-sided paired t-test (scipy ``ttest_rel``) of ``a`` against ``b`` over the seeds both
    have; returns (p-value or None with fewer than 2 pairs or no variance, number of pairs)."""
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None, len(seeds)
    x, y = np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds])
    if np.allclose(x - y, (x - y)[0], rtol=0, atol=1e-15):  # no variance: t undefined
        return None, len(seeds)
    return float(stats.ttest_rel(x, y).pvalue), len(seeds)


def finding(
    claim: str,
    table: str,
    row: str,
    than: str,
    metric: str,
    a: dict[int, float],
    b: dict[int, float],
    alpha: float = 0.05,
    flag: str | None = None,
) -> dict[str, Any]:
    """A finding "``row`` (per-seed values ``a``) beats ``than`` (``b``)" as reports and the index
    list it: both means over the seeds both have, the :func:`verdict` and its paired p; a
    ``flag`` (why the comparison is not fair) makes the verdict ``flagged: <flag>``."""
    common = sorted(set(a) & set(b))
    v, p = verdict(a, b, alpha)
    if flag and v != "not run yet":
        v = f"flagged: {flag}"
    return {
        "row_mean": float(np.mean([a[s] for s in common])) if common else None,
        "than_mean": float(np.mean([b[s] for s in common])) if common else None,
        "seeds": len(common),
        "claim": claim,
        "table": table,
        "row": row,
        "than": than,
        "metric": metric,
        "verdict": v,
        "p": p,
        "alpha": alpha,
        "flag": flag,
    }


def verdict(row: dict[int, float], than: dict[int, float], alpha: float = 0.05) -> tuple[str, float | None]:
    """``reproduced`` (row's mean above, paired p < alpha), ``same direction, not significant``,
    ``contradicted`` (row's mean below, p < alpha), ``not reproduced`` (mean not above, not
    significant), ``incomplete (1 seed)`` or ``not run yet`` (no common seed)."""
    seeds = set(row) & set(than)
    if not seeds:
        return "not run yet", None
    if len(seeds) < 2:
        return "incomplete (1 seed)", None
    diff = float(np.mean([row[s] for s in seeds]) - np.mean([than[s] for s in seeds]))
    p, _ = paired_test(row, than)
    return _direction_verdict(diff, p, alpha), p


def _direction_verdict(diff: float, p: float | None, alpha: float) -> str:
    significant = p is not None and p < alpha
    if diff > 0:
        return "reproduced" if significant else "same direction, not significant"
    return "contradicted" if significant and diff < 0 else "not reproduced"


def adjust_findings(findings: Sequence[dict[str, Any]], alpha: float = 0.05) -> list[dict[str, Any]]:
    """The findings with Benjamini-Hochberg q-values over the family of those that have a paired
    p (scipy ``false_discovery_control``), and verdicts read from q instead of p
    (``reproduced``: the claimed direction with q < alpha; ``contradicted``: the opposite with
    q < alpha; each finding's own ``alpha`` where it has one). Flagged findings (an unfair
    comparator) and findings without p keep their verdict, get no q, and are not counted in the
    family."""
    from scipy import stats

    out = [dict(f, q=None) for f in findings]
    family = [
        f
        for f in out
        if f.get("p") is not None and not f.get("flag") and f.get("row_mean") is not None and f["seeds"] >= 2
    ]
    if family:
        qs = stats.false_discovery_control([f["p"] for f in family], method="bh")
        for f, q in zip(family, np.atleast_1d(qs)):
            f["q"] = float(q)
            f["verdict"] = _direction_verdict(f["row_mean"] - f["than_mean"], f["q"], f.get("alpha") or alpha)
    return out


def _model_name(metrics: dict[str, Any], model: str | None) -> str:
    return model or metrics.get("primary", "model")


def _row_values(
    planner: Planner, table: TableSpec, run: str, model: str | None, at: str = "best"
) -> dict[str, Any]:
    """Per seed: the row's metrics on the table's split and protocol, its size and time."""
    values: dict[str, dict[int, float]] = {m: {} for m in table.metrics}
    times: list[float] = []
    keys: dict[int, str] = {}
    commits: dict[int, list[str]] = {}
    devices: dict[int, str] = {}
    n_params = None
    protocol = table.protocol
    proto = protocol
    for seed in planner.seeds_of(run):
        task = planner.task(run, seed)
        if task is None:
            continue
        keys[seed] = task.key
        metrics = planner.metrics(task)
        if metrics is None:
            continue
        m = metrics["models"][_model_name(metrics, model)]
        if at == "last":
            if "last" not in m:
                raise RecdistillError(
                    f"{task.directory(planner.root)}: no last-epoch metrics (the row has at: last; "
                    "give its run train.report_last: true)"
                )
            m = {**m, **m["last"]}
        proto = protocol or metrics["protocol"]
        for name in table.metrics:
            values[name][seed] = float(m[table.split][proto][name])
        times.append(float(metrics.get("train_time_s", math.nan)))
        commits[seed] = planner.trained_at(task)
        devices[seed] = planner.trained_on(task)
        n_params = m.get("n_parameters")
    return {
        "values": values,
        "times": times,
        "keys": keys,
        "commits": commits,
        "devices": devices,
        "n_parameters": n_params,
        "protocol": proto,
    }


def _stats(v: dict[int, float]) -> dict[str, Any]:
    xs = np.array(list(v.values()), dtype=np.float64)
    if xs.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(xs.mean()), "std": float(xs.std(ddof=1)) if xs.size > 1 else 0.0, "n": int(xs.size)}


def build_report(planner: Planner, command: str = "") -> dict[str, Any]:
    """Everything the report shows, as plain data (the JSON output)."""
    spec = planner.spec
    tables = []
    row_values: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    trained_at: dict[str, set[str]] = {}  # commit -> the keys of the runs it trained
    trained_on: dict[str, set[str]] = {}  # device -> the keys of the runs it trained
    for table in spec.tables:
        rows = []
        protocols = []
        for row in table.rows:
            rv = _row_values(planner, table, row.run, row.model, row.at)
            protocols.append(rv["protocol"])
            row_values[(table.name, row.label)] = rv["values"]
            for seed, commits in rv["commits"].items():
                for c in commits or ["unknown"]:
                    trained_at.setdefault(c, set()).add(rv["keys"][seed])
            for seed, device in rv["devices"].items():
                trained_on.setdefault(device, set()).add(rv["keys"][seed])
            entry: dict[str, Any] = {
                "label": row.label,
                "run": row.run,
                "model": row.model,
                "at": row.at,
                "n_parameters": rv["n_parameters"],
                "seeds": {str(s): k for s, k in rv["keys"].items()},
                "trained_at": {str(s): c for s, c in rv["commits"].items()},
                "train_time_s": float(np.mean(rv["times"])) if rv["times"] else None,
                "metrics": {
                    m: {**_stats(v), "per_seed": {str(s): x for s, x in v.items()}}
                    for m, v in rv["values"].items()
                },
                "paper": table.paper.get(row.label, {}),
                "vs": row.vs,
            }
            rows.append(entry)
        for entry in rows:
            if entry["vs"] is None:
                continue
            base = row_values[(table.name, entry["vs"])]
            mine = row_values[(table.name, entry["label"])]
            cmp = {}
            for m in table.metrics:
                a, b = mine[m], base[m]
                seeds = sorted(set(a) & set(b))
                p, n = paired_test(a, b)
                ma = float(np.mean([a[s] for s in seeds])) if seeds else None
                mb = float(np.mean([b[s] for s in seeds])) if seeds else None
                imp = (ma / mb - 1) * 100 if ma is not None and mb else None
                cmp[m] = {"improvement_pct": imp, "p": p, "pairs": n}
            entry["vs_stats"] = cmp
        improvements = []
        for ispec in table.improvements:
            per_metric: dict[str, dict[str, Any]] = {}
            for m in table.metrics:
                a = row_values[(table.name, ispec.row)][m]
                cands = [(row_values[(table.name, o)][m], o) for o in ispec.over]
                cands = [(v, o) for v, o in cands if v]
                if not a or not cands:
                    per_metric[m] = {"over": None, "improvement_pct": None, "p": None, "pairs": 0}
                    continue
                b, over = max(cands, key=lambda c: float(np.mean(list(c[0].values()))))
                seeds = sorted(set(a) & set(b))
                p, n = paired_test(a, b)
                ma = float(np.mean([a[s] for s in seeds])) if seeds else None
                mb = float(np.mean([b[s] for s in seeds])) if seeds else None
                pct = (ma / mb - 1) * 100 if ma is not None and mb else None
                per_metric[m] = {"over": over, "improvement_pct": pct, "p": p, "pairs": n}
            improvements.append(
                {"label": ispec.label, "row": ispec.row, "over": list(ispec.over), "metrics": per_metric}
            )
        protocol = table.protocol or next((p for p in protocols if p), None)
        tables.append(
            {
                "name": table.name,
                "title": table.title,
                "split": table.split,
                "protocol": protocol,
                "metrics": list(table.metrics),
                "rows": rows,
                "improvements": improvements,
            }
        )
    findings = []
    for f in spec.findings:
        assert f.table is not None
        a, b = row_values[(f.table, f.row)][f.metric], row_values[(f.table, f.than)][f.metric]
        findings.append(finding(f.claim, f.table, f.row, f.than, f.metric, a, b, f.alpha, f.flag))
    searches = []
    for name, run in spec.runs.items():
        if run.search is not None:
            searches.append(search_state(planner, name).to_dict())
    configs = {}
    for name in spec.runs:
        task = planner.task(name, planner.seeds_of(name)[0])
        if task is not None:
            configs[name] = {"key": task.key, "config": task.config}
    return {
        "name": spec.name,
        "title": spec.title,
        "description": spec.description,
        "spec": str(spec.path) if spec.path else None,
        "protocol": spec.protocol,
        "seeds": list(planner.seeds),
        "commit": commit_id(spec.path.parent if spec.path else None),
        "command": command,
        "trained_at": {c: len(keys) for c, keys in sorted(trained_at.items())},
        "trained_on": {d: len(keys) for d, keys in sorted(trained_on.items())},
        "code_versions": len({code_version(c, spec.path.parent if spec.path else None) for c in trained_at}),
        "tables": tables,
        "findings": findings,
        "searches": searches,
        "configs": configs,
    }


def _size(n: int | None) -> str:
    if not n:
        return "—"
    return f"{n / 1e6:.2f}M" if n >= 10_000 else f"{n:,}"


def _num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def table_markdown(t: dict[str, Any]) -> list[str]:
    """One table of :func:`build_report`'s data as markdown lines."""
    metrics = t["metrics"]
    has_paper = any(r["paper"] for r in t["rows"])
    has_vs = any(r.get("vs") for r in t["rows"])
    head = ["model", "#params", "seeds"]
    for m in metrics:
        head.append(m)
        if has_paper:
            head.append(f"paper {m}")
    if has_vs:
        head.append("vs")
        head += [f"Δ{m} (p)" for m in metrics]
    head.append("s/run")
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|" + "---:|" * (len(head) - 3)]
    for r in t["rows"]:
        n = max(r["metrics"][m]["n"] for m in metrics)
        cells = [r["label"], _size(r["n_parameters"]), str(n)]
        for m in metrics:
            s = r["metrics"][m]
            cells.append(
                "—"
                if s["mean"] is None
                else (f"{s['mean']:.4f} ± {s['std']:.4f}" if s["n"] > 1 else f"{s['mean']:.4f}")
            )
            if has_paper:
                cells.append(_num(r["paper"].get(m)))
        if has_vs:
            cells.append(r.get("vs") or "")
            for m in metrics:
                vs = (r.get("vs_stats") or {}).get(m)
                if not vs or vs["improvement_pct"] is None:
                    cells.append("")
                else:
                    cells.append(f"{vs['improvement_pct']:+.1f}% ({_p(vs['p'])})")
        cells.append("—" if r["train_time_s"] is None else f"{r['train_time_s']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    for imp in t.get("improvements", []):
        over = " / ".join(imp["over"])
        cells = [f"*{imp['label']}* ({imp['row']} over {over})", "", ""]
        for m in metrics:
            v = imp["metrics"][m]
            best = f" vs {v['over']}" if len(imp["over"]) > 1 and v["over"] else ""
            cells.append(
                "" if v["improvement_pct"] is None else f"{v['improvement_pct']:+.2f}% ({_p(v['p'])}){best}"
            )
            if has_paper:
                cells.append("")
        cells += [""] * (len(head) - len(cells))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report_markdown(rep: dict[str, Any]) -> str:
    out = [f"# {rep['title'] or rep['name']}", ""]
    if rep["description"]:
        out += [rep["description"].strip(), ""]
    out += [
        f"Generated from `{Path(rep['spec']).name if rep['spec'] else 'spec'}` by `{rep['command']}` "
        f"at commit `{rep['commit']}`; seeds {', '.join(map(str, rep['seeds']))}. "
        "Mean ± std over seeds (sample std); "
        "Δ: the row's mean over its `vs` row's on the seeds both have, with the two-sided paired t-test's p "
        "over those seeds; s/run: mean training seconds of one run.",
        "",
    ]
    trained = rep.get("trained_at") or {}
    if trained:
        listed = ", ".join(f"`{c}` ({n})" for c, n in trained.items())
        out += [f"Runs trained at commit (runs): {listed}.", ""]
        devices = rep.get("trained_on") or {}
        if devices:
            on = ", ".join(f"`{d}` ({n})" for d, n in devices.items())
            out += [f"Runs trained on (runs): {on}.", ""]
        if rep.get("code_versions", len(trained)) > 1:
            out += [
                f"These runs were trained by {rep.get('code_versions', len(trained))} versions of the "
                "code (`src`); a run is trained again only when its config changes, so rows may "
                "differ in code version (compare the commits in the JSON report's `trained_at`).",
                "",
            ]
    for t in rep["tables"]:
        proto = {"full": "full ranking", "sampled": "sampled candidates"}.get(t["protocol"], "no results yet")
        out += [f"## {t['title'] or t['name']}", "", f"{t['split']} split, {proto}.", ""]
        out += table_markdown(t) + [""]
    if rep["findings"]:
        out += ["## Findings", "", "| claim | metric | verdict | p |", "|---|---|---|---:|"]
        for f in rep["findings"]:
            claim = f"{f['claim']} ({f['row']} vs {f['than']})"
            out.append(f"| {claim} | {f['metric']} | {f['verdict']} | {_p(f['p'])} |")
        out.append("")
    for s in rep["searches"]:
        pruner = s.get("pruner")
        pruning = ""
        if pruner:
            settings = ", ".join(f"{k}={v}" for k, v in pruner.items() if k != "name")
            pruning = (
                f" Optuna {pruner['name']} pruner ({settings or 'defaults'}): trials one at a time, each "
                "compared after every validation with the earlier ones; a pruned trial is never chosen."
            )
        secs = [t.get("seconds") for t in s["trials"]]
        eps = [t.get("epochs") for t in s["trials"]]
        cost = ""
        if secs and all(x is not None for x in secs) and all(e is not None for e in eps):
            cost = f" The trials trained {sum(eps)} epochs in {sum(secs):.0f} s in all."
        best = s["best_trial"] if s["best_trial"] is not None else "not finished"
        out += [
            f"## Search: {s['run']}",
            "",
            f"Optuna {s['sampler']} sampler, budget {s['budget']} trials, chosen on {s['metric']} "
            f"(best trial: {best}).{pruning}{cost}",
            "",
            "| trial | params | valid | epochs | s |",
            "|---:|---|---:|---:|---:|",
        ]
        for tr in s["trials"]:
            params = ", ".join(
                f"{k.split('.')[-1]}={v:g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                for k, v in tr["params"].items()
            )
            mark = " **chosen**" if tr["trial"] == s["best_trial"] else ""
            if tr.get("pruned_at") is not None:
                mark = f" (pruned at epoch {tr['pruned_at']})"
            sec = tr.get("seconds")
            sec_txt = f"{sec:.0f}" if sec is not None else "—"
            epochs = tr.get("epochs") or "—"
            out.append(f"| {tr['trial']} | {params}{mark} | {_num(tr['valid'])} | {epochs} | {sec_txt} |")
        out.append("")
    out += [
        "## Runs",
        "",
        "Each run's content address (its folder under the runs directory) and config is in the JSON report.",
        "",
    ]
    return "\n".join(out)


def report_csv(rep: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["table", "row", "metric", "mean", "std", "n", "paper", "vs", "improvement_pct", "p"])
    for t in rep["tables"]:
        for r in t["rows"]:
            for m in t["metrics"]:
                s = r["metrics"][m]
                vs = (r.get("vs_stats") or {}).get(m) or {}
                w.writerow(
                    [
                        t["name"],
                        r["label"],
                        m,
                        s["mean"],
                        s["std"],
                        s["n"],
                        r["paper"].get(m),
                        r.get("vs") or "",
                        vs.get("improvement_pct"),
                        vs.get("p"),
                    ]
                )
    return buf.getvalue()


def write_report(planner: Planner, out_dir: str | Path, command: str = "") -> dict[str, Any]:
    """Write ``<out_dir>/<name>.md``, ``.csv``, ``.json`` and the spec's figures; returns the
    report's data."""
    out = Path(out_dir)
    rep = build_report(planner, command)
    figures = []
    for fig in planner.spec.figures:
        path = out / (fig.file or f"{planner.spec.name}_{fig.run}_{fig.kind}.png")
        draw = {"heatmap": _heatmap, "discrepancy": _discrepancy, "rank-difference": _rank_difference}
        made = draw[fig.kind](planner, fig, path, rep)
        if made:
            figures.append(str(path.name))
    rep["figures"] = figures
    md = report_markdown(rep)
    for name, d in rep.get("discrepancy", {}).items():
        md += (
            f"\n## Rank discrepancy (DCD Fig. 1a), table {name}\n\nMean |rank_S - rank_T| over the "
            f"teacher's top-{d['n']} (ranks among unobserved entries), mean over the finished seeds.\n\n"
            "| model | seeds | user side | item side |\n|---|---:|---:|---:|\n"
        )
        for label, v in d["mean"].items():
            md += f"| {label} | {len(d['per_seed'][label]['user'])} | {v['user']:.1f} | {v['item']:.1f} |\n"
    for name, d in rep.get("rank_difference", {}).items():
        md += rank_difference_markdown(name, d)
    if figures:
        md += "\n" + "\n".join(f"![{f}]({f})" for f in figures) + "\n"
    atomic_text(md, out / f"{planner.spec.name}.md")
    atomic_text(report_csv(rep), out / f"{planner.spec.name}.csv")
    atomic_json(rep, out / f"{planner.spec.name}.json")
    return rep


def discrepancy_file(teacher_task: Any, model: str | None, n: int) -> str:
    return f"discrepancy_{teacher_task.key[:16]}_{model or 'primary'}_n{n}.json"


def discrepancy_of(
    planner: Planner, teacher_task: Any, student_task: Any, model: str | None, n: int
) -> dict[str, float]:
    """DCD Fig. 1a's values for one student run against its teacher run, cached in the student's
    folder (``discrepancy_<teacher key>_<model>_n<n>.json``) since they need every rank."""
    from recdistill.analysis.discrepancy import top_discrepancy
    from recdistill.runs import load_run

    d = student_task.directory(planner.root)
    name = discrepancy_file(teacher_task, model, n)
    cached = planner.result_file(student_task, name)  # here, or in the run's record
    if cached is not None:
        return read_json(cached)
    cache = d / name
    student_run = load_run(d)
    teacher_run = load_run(teacher_task.directory(planner.root), dataset=student_run.dataset)
    metrics = planner.metrics(student_task) or {}
    s_model = student_run.models[model or metrics.get("primary", "model")]
    t_model = teacher_run.models.get("model", next(iter(teacher_run.models.values())))
    values = {
        side: top_discrepancy(t_model, s_model, student_run.dataset, n, side) for side in ("user", "item")
    }
    atomic_json(values, cache)
    return values


def _discrepancy(planner: Planner, fig: Any, path: Path, rep: dict[str, Any]) -> bool:
    """DCD Fig. 1a for a table's rows (every finished seed; the mean over seeds), into the
    report's data (``rep["discrepancy"]``) and a PNG."""
    from recdistill.analysis.plots import plot_discrepancy

    table = next(t for t in planner.spec.tables if t.name == fig.table)
    values: dict[str, dict[str, float]] = {}
    per_seed: dict[str, dict[str, list[float]]] = {}
    for row in table.rows:
        if row.run == fig.run:
            continue
        sides: dict[str, list[float]] = {"user": [], "item": []}
        for seed in planner.seeds_of(row.run):
            st = planner.task(row.run, seed)
            tt = planner.task(fig.run, planner.dep_seed(fig.run, seed))
            if st is None or tt is None:
                continue
            local = planner.status(st) == "done" and planner.status(tt) == "done"
            if not local and planner.result_file(st, discrepancy_file(tt, row.model, fig.n)) is None:
                continue  # neither the models nor a recorded value here
            v = discrepancy_of(planner, tt, st, row.model, fig.n)
            for side in sides:
                sides[side].append(v[side])
        if sides["user"]:
            values[row.label] = {side: float(np.mean(v)) for side, v in sides.items()}
            per_seed[row.label] = sides
    rep.setdefault("discrepancy", {})[fig.table] = {"n": fig.n, "mean": values, "per_seed": per_seed}
    if not values:
        return False
    plot_discrepancy(values, path, fig.n)
    return True


RANK_DIFFERENCE_FILE = "rank_difference_test.json"


def rank_difference_of(planner: Planner, task: Any) -> dict[str, Any] | None:
    """BD Table 4 for one run that starts from a teacher and a student run: ``before`` (those two
    runs' models) and ``after`` (its own ``teacher`` and ``student``), each
    :func:`recdistill.analysis.rank_diff.rank_difference_summary` on the test split; cached in the
    run's folder (``rank_difference_test.json``, kept in its record). None when neither the cache
    nor the three runs' models are here."""
    from recdistill.analysis.rank_diff import rank_difference_summary
    from recdistill.experiment.plan import Task
    from recdistill.runs import load_run

    cached = planner.result_file(task, RANK_DIFFERENCE_FILE)
    if cached is not None:
        return dict(read_json(cached))
    deps = [task.deps.get("teacher"), task.deps.get("student")]
    if not all(isinstance(d, Task) and planner.status(d) == "done" for d in deps):
        return None
    if planner.status(task) != "done":
        return None
    run = load_run(task.directory(planner.root))
    before = [load_run(d.directory(planner.root), dataset=run.dataset) for d in deps]
    t0, s0 = (r.models.get("model", next(iter(r.models.values()))) for r in before)
    values = {
        "before": rank_difference_summary(t0, s0, run.dataset),
        "after": rank_difference_summary(run.models["teacher"], run.models["student"], run.dataset),
    }
    atomic_json(values, task.directory(planner.root) / RANK_DIFFERENCE_FILE)
    return values


def _rank_difference(planner: Planner, fig: Any, path: Path, rep: dict[str, Any]) -> bool:
    """BD Table 4 (Eq. 6 before and after ``fig.run``, every finished seed, paired t-tests of
    after against before and, with ``fig.vs``, against ``vs``'s after) into
    ``rep["rank_difference"][run]`` and two findings, and Figs. 1a / 4 (the sorted Eq. 1
    differences before and after, the first finished seed) as a PNG."""
    from recdistill.analysis.plots import plot_rank_difference_curves

    per_seed: dict[str, dict[int, dict[str, Any]]] = {"before": {}, "after": {}}
    if fig.vs:
        per_seed["vs"] = {}
    for seed in planner.seeds_of(fig.run):
        for run in (fig.run, fig.vs) if fig.vs else (fig.run,):
            task = planner.task(run, seed)
            v = None if task is None else rank_difference_of(planner, task)
            if v is None:
                continue
            if run == fig.run:
                per_seed["before"][seed], per_seed["after"][seed] = v["before"], v["after"]
            else:
                per_seed["vs"][seed] = v["after"]
    eq6 = {when: {s: v["eq6"] for s, v in d.items()} for when, d in per_seed.items()}
    table = f"rank difference, run {fig.run}"
    findings = [
        finding(  # "before above after": BD lowers it
            f"{fig.run} lowers the teacher-student average rank difference (BD Table 4)",
            table,
            f"before {fig.run}",
            f"after {fig.run}",
            "Eq. 6",
            eq6["before"],
            eq6["after"],
        )
    ]
    if fig.vs:
        findings.append(
            finding(
                f"{fig.run} leaves a lower average rank difference than {fig.vs} (BD Table 4)",
                table,
                f"after {fig.vs}",
                f"after {fig.run}",
                "Eq. 6",
                eq6["vs"],
                eq6["after"],
            )
        )
    rep["findings"].extend(findings)
    rep.setdefault("rank_difference", {})[fig.run] = {
        "vs": fig.vs,
        "seeds": sorted(eq6["after"]),
        "eq6": {when: {str(s): x for s, x in d.items()} for when, d in eq6.items()},
        "student_better": {
            when: {str(s): v["student_better"] for s, v in d.items()} for when, d in per_seed.items()
        },
        "p": {"before": findings[0]["p"], **({"vs": findings[1]["p"]} if fig.vs else {})},
        "verdict": {"before": findings[0]["verdict"], **({"vs": findings[1]["verdict"]} if fig.vs else {})},
        "paper": fig.paper or {},
    }
    if not eq6["after"]:
        return False
    first = min(eq6["after"])
    curves = {f"before {fig.run}, seed {first}": per_seed["before"][first]}
    curves[f"after {fig.run}, seed {first}"] = per_seed["after"][first]
    if fig.vs and first in per_seed["vs"]:
        curves[f"after {fig.vs}, seed {first}"] = per_seed["vs"][first]
    plot_rank_difference_curves(curves, path)
    return True


def rank_difference_markdown(run: str, d: dict[str, Any]) -> str:
    """The report's BD Table 4 section for ``run`` (``rep["rank_difference"][run]``)."""

    def cell(values: dict[str, float], fmt: str) -> str:
        x = np.array(list(values.values()), dtype=np.float64)
        if len(x) == 0:
            return "—"
        return fmt.format(x.mean()) + (" ± " + fmt.format(x.std(ddof=1)) if len(x) > 1 else "")

    def change(of: dict[str, float], over: dict[str, float], p: float | None) -> str:
        common = sorted(set(of) & set(over))
        if not common:
            return "—"
        r = np.mean([of[s] for s in common]) / np.mean([over[s] for s in common]) - 1
        return f"{100 * r:+.1f}%" + (f" (p {_p(p)})" if p is not None else "")

    eq6, better, paper, vs = d["eq6"], d["student_better"], d.get("paper", {}), d.get("vs", "")
    head = ["", "seeds", "before", "after", "after / before"]
    row_eq6 = [
        "Eq. 6 average rank difference",
        str(len(d["seeds"])),
        cell(eq6["before"], "{:.4f}"),
        cell(eq6["after"], "{:.4f}"),
        change(eq6["after"], eq6["before"], d["p"]["before"]),
    ]
    row_share = [
        "share of held-out items the student ranks better",
        str(len(d["seeds"])),
        cell(better["before"], "{:.3f}"),
        cell(better["after"], "{:.3f}"),
        "",
    ]
    if vs:
        head += [f"after {vs}", f"after / after {vs}"]
        row_eq6 += [cell(eq6["vs"], "{:.4f}"), change(eq6["after"], eq6["vs"], d["p"]["vs"])]
        row_share += [cell(better["vs"], "{:.3f}"), ""]
    head += ["paper before", "paper after"]
    row_eq6 += [f"{paper[k]:.4f}" if k in paper else "—" for k in ("before", "after")]
    row_share += ["", ""]
    verdicts = f"{run} lowers it: **{d['verdict']['before']}**" + (
        f"; lower than after {vs}: **{d['verdict']['vs']}**" if vs else ""
    )
    return (
        f"\n## Average rank difference (BD Table 4, Eq. 6), before and after run {run}\n\n"
        "Eq. 6: (1 / (n·m)) Σ over test interactions of |rank_T - rank_S| (full ranking, held-out "
        "item among the user's unobserved items), between the teacher and the student it starts "
        "from (before) and its own two models (after)"
        + (f", and after run {vs} (from the same two runs)" if vs else "")
        + f"; mean ± std over seeds, ratios of means with the paired t-test's p. {verdicts}.\n\n"
        + "| "
        + " | ".join(head)
        + " |\n|---|"
        + "---:|" * (len(head) - 1)
        + "\n"
        + "".join("| " + " | ".join(r) + " |\n" for r in (row_eq6, row_share))
    )


def _heatmap(planner: Planner, fig: Any, path: Path, rep: dict[str, Any]) -> bool:
    """A search's validation scores over two of its keys (other keys: the best score), into the
    report's data (``rep["heatmaps"][<file>]``: x and y values, grid[y][x], None where not run)
    and a PNG."""
    from recdistill.analysis.plots import plot_heatmap

    state = search_state(planner, fig.run)
    cells: dict[tuple[Any, Any], float] = {}
    for task, score in zip(state.tasks, state.scores):
        if score is None:
            continue
        k = (task.params[fig.x], task.params[fig.y])
        cells[k] = max(cells.get(k, -math.inf), score)
    if not cells:
        return False
    xs = sorted({k[0] for k in cells})
    ys = sorted({k[1] for k in cells})
    grid = np.full((len(ys), len(xs)), np.nan)
    for (x, y), v in cells.items():
        grid[ys.index(y), xs.index(x)] = v
    title = fig.title or f"{planner.spec.name}: valid {state.metric}"
    rep.setdefault("heatmaps", {})[path.name] = {
        "run": fig.run,
        "x": fig.x,
        "y": fig.y,
        "xs": xs,
        "ys": ys,
        "grid": [[None if np.isnan(v) else float(v) for v in row] for row in grid],
    }
    plot_heatmap(grid, xs, ys, fig.x.split(".")[-1], fig.y.split(".")[-1], title, path)
    return True


def combined_verdicts(reports: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Claims (same text and metric) found in a ``paper``-protocol report and a ``tuned`` one:
    reproduced under both, only under the paper protocol, only under the tuned one, or neither."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for rep in reports:
        if rep.get("protocol") not in ("paper", "tuned"):
            continue
        for f in rep["findings"]:
            found.setdefault((f["claim"], f["metric"]), {})[rep["protocol"]] = f["verdict"]
    out = []
    for (claim, metric), v in found.items():
        if set(v) != {"paper", "tuned"}:
            continue
        if "not run yet" in v.values() or any(x.startswith("incomplete") for x in v.values()):
            verdict = "not run yet"
        elif any(x.startswith("flagged") for x in v.values()):
            verdict = "flagged"
        elif "contradicted" in v.values() and "reproduced" not in v.values():
            verdict = "contradicted"
        else:
            p, t = v["paper"] == "reproduced", v["tuned"] == "reproduced"
            verdict = {
                (True, True): "reproduced",
                (True, False): "reproduced only under the paper protocol",
                (False, True): "reproduced only under the tuned protocol",
                (False, False): "not reproduced",
            }[(p, t)]
        out.append(
            {"claim": claim, "metric": metric, "paper": v["paper"], "tuned": v["tuned"], "verdict": verdict}
        )
    return out


def write_index(
    reports: Sequence[dict[str, Any]], path: str | Path, command: str = "", archive: str | Path | None = None
) -> None:
    """One page of every finding's verdict across ``reports`` (their JSON data), grouped by
    claim; a claim checked under both protocols (a spec's ``protocol`` tag in its name, e.g.
    ``-paper`` / ``-tuned``) shows both verdicts. Lists the ``*_notes.md`` next to ``path`` and
    the markdown files in ``archive``."""
    flat = [f for rep in reports for f in rep["findings"]]
    adjusted = iter(adjust_findings(flat))
    reports = [dict(rep, findings=[next(adjusted) for _ in rep["findings"]]) for rep in reports]
    n_family = sum(f.get("q") is not None for rep in reports for f in rep["findings"])
    lines = [
        "# Reproduction report",
        "",
        f"Generated by `{command}` from the experiment reports below; every number links back to "
        "its report, which names its spec, commit and runs. p: two-sided paired t-test over the "
        f"seeds both rows have; q: Benjamini-Hochberg adjusted over the {n_family} findings of this "
        "page that have a p (the others: fewer than 2 seeds, or flagged). Verdicts, read from q: "
        "reproduced (the paper's direction, q < 0.05), contradicted (the opposite direction, "
        "q < 0.05), same direction but not significant, not reproduced (the opposite direction or "
        "equal, not significant), not run yet, and flagged (the comparator collapsed or was not "
        "tuned: listed, not counted). A report's own verdicts use its unadjusted p.",
        "",
        "| claim | metric | report | row vs other (seeds) | verdict | p | q |",
        "|---|---|---|---|---|---:|---:|",
    ]
    for rep in reports:
        for f in rep["findings"]:
            nums = (
                f"{f['row_mean']:.4f} vs {f['than_mean']:.4f} ({f['seeds']})"
                if f.get("row_mean") is not None
                else "—"
            )
            lines.append(
                f"| {f['claim']} ({f['row']} vs {f['than']}) | {f['metric']} | "
                f"[{rep['name']}]({rep['name']}.md) | {nums} | {f['verdict']} | {_p(f['p'])} | "
                f"{_p(f.get('q'))} |"
            )
    both = combined_verdicts(reports)
    if both:
        lines += [
            "",
            "## Under both protocols",
            "",
            "A claim checked under the paper protocol (the baselines as the paper trained them) and the "
            "tuned protocol (every row tuned on validation with the same budget).",
            "",
            "| claim | metric | paper protocol | tuned protocol | verdict |",
            "|---|---|---|---|---|",
        ]
        for c in both:
            lines.append(f"| {c['claim']} | {c['metric']} | {c['paper']} | {c['tuned']} | {c['verdict']} |")
    notes = sorted(Path(path).parent.glob("*_notes.md"))
    if notes:
        lines += ["", "## Notes", "", "Summaries written from these reports (each cites its reports):", ""]
        lines += [f"- [{md.name}]({md.name}): {_title(md)}" for md in notes]
    lines += ["", "## Reports", ""]
    for rep in reports:
        n_done = sum(
            max(r["metrics"][m]["n"] for m in t["metrics"]) > 0 for t in rep["tables"] for r in t["rows"]
        )
        n_rows = sum(len(t["rows"]) for t in rep["tables"])
        lines.append(
            f"- [{rep['name']}]({rep['name']}.md): {rep['title']} ({n_done}/{n_rows} rows with "
            f"results, commit `{rep['commit']}`)"
        )
    if archive is not None and Path(archive).is_dir():
        lines += [
            "",
            "## Archive",
            "",
            "Tables made before the experiment runner, by scripts since removed (their code is in the "
            "git history of `scripts/`); each names its command and commit. The specs above supersede "
            "them; they stay as the evidence of the earlier findings until their specs have run.",
            "",
        ]
        for md in sorted(Path(archive).glob("*.md")):
            rel = md.relative_to(Path(path).parent) if md.is_relative_to(Path(path).parent) else md
            lines.append(f"- [{md.name}]({rel.as_posix()}): {_title(md)}")
    atomic_text("\n".join(lines) + "\n", Path(path))


def _title(md: Path) -> str:
    """A markdown file's first line without its ``#`` (its name if empty)."""
    first = md.read_text().splitlines()[:1]
    return first[0].lstrip("# ").strip() if first else md.stem
