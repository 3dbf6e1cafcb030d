"""An experiment's report from its finished runs: each table in the paper's layout (mean ± std
over seeds, the paper's numbers alongside, each row's improvement over its ``vs`` row with a
paired t-test over the seeds both have), the searches (every trial's validation score and the
choice), the findings' verdicts, heat maps, and the commit, command and configs.

Written as ``<out>/<name>.md``, ``.csv`` and ``.json`` (and ``<name>_<figure>.png``); nothing in
it is typed by hand. :func:`write_index` gathers the verdicts of several reports into one page.
The statistics are :mod:`.stats`, the text :mod:`.render`, the figures and their analyses
:mod:`.figures`; this module gathers the runs' values and writes the files.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recdistill.atomic import atomic_json, atomic_text
from recdistill.errors import RecdistillError
from recdistill.experiment.figures import DRAW
from recdistill.experiment.plan import Planner
from recdistill.experiment.render import p_text, rank_difference_markdown, report_csv, report_markdown
from recdistill.experiment.search import search_state
from recdistill.experiment.spec import TableSpec
from recdistill.experiment.stats import adjust_findings, combined_verdicts, finding, paired_test

__all__ = ["build_report", "code_version", "commit_id", "write_index", "write_report"]


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


def write_report(planner: Planner, out_dir: str | Path, command: str = "") -> dict[str, Any]:
    """Write ``<out_dir>/<name>.md``, ``.csv``, ``.json`` and the spec's figures; returns the
    report's data."""
    out = Path(out_dir)
    rep = build_report(planner, command)
    figures = []
    for fig in planner.spec.figures:
        path = out / (fig.file or f"{planner.spec.name}_{fig.run}_{fig.kind}.png")
        made = DRAW[fig.kind](planner, fig, path, rep)
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
                f"[{rep['name']}]({rep['name']}.md) | {nums} | {f['verdict']} | {p_text(f['p'])} | "
                f"{p_text(f.get('q'))} |"
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
