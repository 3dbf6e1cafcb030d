"""The committed multi-seed result that ``recdistill demo`` prints beside its own one-seed run:
the demo's distilled row and the equally tuned student from ``results/dcd-table2.json`` (the
tuned protocol, 5 seeds), written to ``src/recdistill/experiment/specs/demo-reference.json``
(package data: a pip-installed demo has no ``results/``). Generated, never typed; a test checks
that the file equals what this script makes from the committed report.

    python scripts/demo_reference.py          # rewrite the file
    python scripts/demo_reference.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "results" / "dcd-table2.json"
OUT = ROOT / "src" / "recdistill" / "experiment" / "specs" / "demo-reference.json"
#: the demo's distilled row and the row it is compared with, by their labels in the report
ROW, THAN = "RRD + IR-RRD", "Student"
METRICS = ("H@5", "M@5")


def reference(report: dict[str, Any]) -> dict[str, Any]:
    from recdistill.experiment.stats import paired_test

    table = report["tables"][0]
    rows = {r["label"]: r for r in table["rows"]}
    out: dict[str, Any] = {
        "source": f"results/{report['name']}.md",
        "commit": report["commit"],
        "protocol": report.get("protocol"),
        "row": ROW,
        "than": THAN,
        "metrics": {},
    }
    for m in METRICS:
        a = {int(s): v for s, v in rows[ROW]["metrics"][m]["per_seed"].items()}
        b = {int(s): v for s, v in rows[THAN]["metrics"][m]["per_seed"].items()}
        p, n = paired_test(a, b)
        ma, mb = rows[ROW]["metrics"][m]["mean"], rows[THAN]["metrics"][m]["mean"]
        out["metrics"][m] = {
            "row_mean": ma,
            "row_std": rows[ROW]["metrics"][m]["std"],
            "than_mean": mb,
            "than_std": rows[THAN]["metrics"][m]["std"],
            "seeds": n,
            "gain_pct": (ma / mb - 1) * 100,
            "p": p,
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    text = json.dumps(reference(json.loads(REPORT.read_text())), indent=1) + "\n"
    if a.check:
        return 0 if OUT.read_text() == text else 1
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
