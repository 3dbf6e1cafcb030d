"""Regenerate ``tests/golden/distillers.json`` (every registered distiller's first targets and
loss terms on tiny data). A deliberate step: run it only when a change is meant to alter what a
method computes, and review the diff before committing::

    python tests/make_golden.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from contract import golden_names, golden_record  # noqa: E402
from recdistill.atomic import atomic_json  # noqa: E402

if __name__ == "__main__":
    out = {m: golden_record(m) for m in golden_names()}
    path = Path(__file__).resolve().parent / "golden" / "distillers.json"
    atomic_json(out, path)
    print(f"wrote {path} ({', '.join(out)})")
