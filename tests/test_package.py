import subprocess
import sys

import pytest

from recdistill.cli import build_parser
from recdistill.registry import Registry


def test_cli_help_runs():
    out = subprocess.run([sys.executable, "-m", "recdistill", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "recdistill" in out.stdout
    build_parser()


def test_registry_unknown_name_lists_known():
    reg: Registry[int] = Registry("model")
    reg.register("bpr")(1)
    reg.register("cdae")(2)
    assert reg.get("bpr") == 1
    with pytest.raises(KeyError, match="unknown model 'bpx'; known: bpr, cdae"):
        reg.get("bpx")


def test_readme_import_graph_is_current():
    """The README's architecture picture is generated from the code (scripts/import_graph.py)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [sys.executable, str(root / "scripts" / "import_graph.py"), "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def test_the_independence_contract_lists_every_model_file():
    """Each model file registers itself; the import-linter contract that keeps them independent
    names every one (a model added later is added there too)."""
    from pathlib import Path

    from recdistill.models import MODELS

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).resolve().parents[1]
    contracts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    listed = next(c["modules"] for c in contracts if c["name"].startswith("Base models are independent"))
    files = {MODELS.get(n).__module__ for n in MODELS.names()}
    assert files == set(listed)
