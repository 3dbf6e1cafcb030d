"""An experiment's report as text: its tables in Markdown (the paper's layout, mean ± std, the
paper's numbers, improvements with p-values), the whole report in Markdown and CSV, BD's
rank-difference section."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["p_text", "rank_difference_markdown", "report_csv", "report_markdown", "table_markdown"]


def _size(n: int | None) -> str:
    if not n:
        return "—"
    return f"{n / 1e6:.2f}M" if n >= 10_000 else f"{n:,}"


def _num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def p_text(p: float | None) -> str:
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
                    cells.append(f"{vs['improvement_pct']:+.1f}% ({p_text(vs['p'])})")
        cells.append("—" if r["train_time_s"] is None else f"{r['train_time_s']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    for imp in t.get("improvements", []):
        over = " / ".join(imp["over"])
        cells = [f"*{imp['label']}* ({imp['row']} over {over})", "", ""]
        for m in metrics:
            v = imp["metrics"][m]
            best = f" vs {v['over']}" if len(imp["over"]) > 1 and v["over"] else ""
            cells.append(
                ""
                if v["improvement_pct"] is None
                else f"{v['improvement_pct']:+.2f}% ({p_text(v['p'])}){best}"
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
            out.append(f"| {claim} | {f['metric']} | {f['verdict']} | {p_text(f['p'])} |")
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
        return f"{100 * r:+.1f}%" + (f" (p {p_text(p)})" if p is not None else "")

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
