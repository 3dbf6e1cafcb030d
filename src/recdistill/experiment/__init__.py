"""Experiments as specs: one YAML file per paper table (runs, seeds, searches, tables, findings),
run, resumed and reported by one runner.

    from recdistill.experiment import Experiment

    exp = Experiment.load("experiments/dcd-table2.yaml", runs_dir="runs/exp")
    exp.run(jobs=2)              # trains what is missing, resumes what was interrupted
    print(exp.status_text())     # done / partial / todo per run and seed
    exp.report("results")        # results/dcd-table2.{md,csv,json} (+ PNGs)

The command line (``recdistill experiment run|status|report SPEC``) calls the same methods.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from recdistill.errors import RecdistillError
from recdistill.experiment.execute import RunSummary, run_tasks
from recdistill.experiment.plan import Planner, Task, run_key
from recdistill.experiment.report import build_report, write_index, write_report
from recdistill.experiment.spec import ExperimentSpec, load_spec, parse_spec

__all__ = [
    "DEFAULT_RECORDS_DIR",
    "DEFAULT_RUNS_DIR",
    "Experiment",
    "ExperimentSpec",
    "RunSummary",
    "Task",
    "load_spec",
    "parse_spec",
    "run_key",
    "write_index",
]

#: where runs are stored by their content address, shared by every experiment
DEFAULT_RUNS_DIR = Path("runs") / "exp"
#: finished runs' records (small files, committed with the results; see ``Planner.write_record``)
DEFAULT_RECORDS_DIR = Path("results") / "runs"


class Experiment:
    """A checked spec bound to a runs directory (see the module doc)."""

    def __init__(
        self,
        spec: ExperimentSpec,
        runs_dir: str | Path = DEFAULT_RUNS_DIR,
        seeds: tuple[int, ...] | None = None,
        overrides: dict[str, Any] | None = None,
        records_dir: str | Path | None = DEFAULT_RECORDS_DIR,
    ):
        """``overrides``: nested settings over every run's (e.g. ``{"train": {"device": "cuda"}}``).
        ``records_dir``: finished runs' records that count as finished where their folder is
        missing (None: none)."""
        self.spec = spec
        records = Path(records_dir) if records_dir else None
        self.planner = Planner(spec, Path(runs_dir), seeds, overrides, records)
        self.planner.check()

    @classmethod
    def load(
        cls,
        path: str | Path,
        runs_dir: str | Path = DEFAULT_RUNS_DIR,
        seeds: tuple[int, ...] | None = None,
        records_dir: str | Path | None = DEFAULT_RECORDS_DIR,
        overrides: dict[str, Any] | None = None,
    ) -> Experiment:
        return cls(load_spec(path), runs_dir, seeds, overrides, records_dir=records_dir)

    def record(self, only: tuple[str, ...] | None = None) -> int:
        """Write the record of every finished run (:meth:`Planner.write_record`); returns how many."""
        if self.planner.records is None:
            raise RecdistillError("no records folder to write into")
        tasks, _ = self.tasks(only)
        return sum(self.planner.write_record(t) for t in tasks)

    def tasks(self, only: tuple[str, ...] | None = None) -> tuple[list[Task], list[str]]:
        """The tasks known now and the runs still pending on a search."""
        self.planner.refresh()
        return self.planner.tasks(only)

    def status(self, only: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """One entry per known task: run, seed, trial, key, folder, state."""
        tasks, pending = self.tasks(only)
        out = []
        for t in tasks:
            state = self.planner.status(t)
            entry = {
                "run": t.run,
                "seed": t.seed,
                "trial": t.trial,
                "key": t.key,
                "dir": str(t.directory(self.planner.root)),
                "state": state,
                "epoch": None,
                "epochs": t.config["train"]["epochs"],
            }
            if state in ("running", "partial"):
                entry["epoch"] = _last_epoch(t.directory(self.planner.root) / "log.jsonl")
            out.append(entry)
        out += [
            {"run": n, "seed": None, "trial": None, "key": None, "dir": None, "state": "pending search"}
            for n in pending
        ]
        return out

    def status_text(self, only: tuple[str, ...] | None = None) -> str:
        rows = self.status(only)
        counts: dict[str, int] = {}
        lines = []
        for r in rows:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
            if r["key"] is None:
                lines.append(f"  {r['run']:<24} (its search has not finished)  {r['state']}")
                continue
            what = f"{r['run']} seed {r['seed']}" + (f" trial {r['trial']}" if r["trial"] is not None else "")
            at = f" (epoch {r['epoch']} of at most {r['epochs']})" if r.get("epoch") else ""
            lines.append(f"  {what:<32} {r['dir']}  {r['state']}{at}")
        head = f"{self.spec.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return "\n".join([head, *lines])

    def run(
        self,
        jobs: int = 1,
        only: tuple[str, ...] | None = None,
        threads: int | None = None,
        log: Callable[[str], Any] = print,
        fresh: bool = False,
    ) -> RunSummary:
        """Train every missing run (``fresh``: every run, again; see
        :mod:`recdistill.experiment.execute`)."""
        return run_tasks(self.planner, only, jobs, threads, log, fresh=fresh)

    def report(self, out_dir: str | Path = "results", command: str = "") -> dict[str, Any]:
        """Write the report (:func:`recdistill.experiment.report.write_report`); returns its data."""
        self.planner.refresh()
        return write_report(
            self.planner, out_dir, command or f"recdistill experiment report {self.spec.path}"
        )

    def report_data(self) -> dict[str, Any]:
        self.planner.refresh()
        return build_report(self.planner)


def _last_epoch(log: Path) -> int | None:
    """The last epoch a run's ``log.jsonl`` records (None without one)."""
    import json

    try:
        lines = log.read_text().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return int(json.loads(line)["epoch"])
        except (ValueError, KeyError, TypeError):
            continue
    return None
