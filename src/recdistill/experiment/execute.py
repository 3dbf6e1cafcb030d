"""Running an experiment's tasks: in this process (``jobs=1``) or in ``jobs`` worker processes
with ``threads`` threads each, dependencies first.

A finished task (its ``metrics.json``) is never run again; an interrupted one resumes from its
checkpoint, which is the same run as one never stopped. A task that fails writes ``error.txt`` in
its folder; the tasks that start from it are skipped, the others go on, and the command exits
non-zero at the end. After every finished task the plan is rebuilt, so that a search's next
trials and its chosen runs start as soon as they are known.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import multiprocessing
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recdistill.atomic import atomic_json, atomic_text, read_json
from recdistill.errors import RunInterrupted
from recdistill.experiment.plan import Planner, RunBusy, Task, run_lock
from recdistill.experiment.pruning import trial_pruner, write_curve

__all__ = ["RunSummary", "execute_task", "run_tasks"]


@dataclass
class RunSummary:
    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


def _task_record(task: Task, root: Path) -> dict[str, Any]:
    deps = {r: (str(d.directory(root)) if isinstance(d, Task) else d) for r, d in task.deps.items()}
    return {
        "run": task.run,
        "seed": task.seed,
        "trial": task.trial,
        "params": task.params,
        "key": task.key,
        "deps": deps,
        "config": task.config,
        **({"prune": task.prune} if task.prune is not None else {}),
    }


def execute_task(
    record: dict[str, Any], root: str, threads: int | None = None, quiet: bool = False, fresh: bool = False
) -> float:
    """Train one task (a record of :func:`_task_record`) into its folder; returns seconds.
    ``quiet``: the run's output goes to ``output.log`` in its folder (worker processes).
    ``fresh``: train a finished run again (staged: the old one stays until the new one is done)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    out = Path(root) / record["key"][:16]
    with run_lock(out):
        return _execute_locked(record, out, quiet, fresh)


@functools.cache
def process_commit() -> str:
    """The commit of the code this process runs: the checkout's when the process first trains
    a run (its code is loaded then), kept for its later runs. A commit made while a command runs
    its runs in-process (``--jobs 1``) does not change what that process stamps, because it does
    not change the code it has loaded (``task.json``'s ``commits``)."""
    from recdistill.experiment.report import commit_id

    return commit_id(Path(__file__).resolve().parent)


def _execute_locked(record: dict[str, Any], out: Path, quiet: bool, fresh: bool) -> float:
    from recdistill.config import make_config
    from recdistill.runs import distill_run, train_run

    if (out / "metrics.json").is_file() and not fresh:  # finished by another command meanwhile
        return 0.0
    (out / "error.txt").unlink(missing_ok=True)
    # the code that trains it (a resumed run may list several)
    previous = read_json(out / "task.json").get("commits", []) if (out / "task.json").is_file() else []
    commit = process_commit()
    record = {**record, "commits": previous + ([commit] if commit not in previous else [])}
    atomic_json(record, out / "task.json")
    cfg_dict = dict(record["config"])
    sources = dict(record["deps"])
    teachers = {role: src for role, src in sources.items() if role != "student"}
    if teachers:  # the run's config.yaml says what it was built from
        teacher = teachers["teacher"] if list(teachers) == ["teacher"] else teachers
        cfg_dict["distill"] = {**cfg_dict["distill"], "teacher": teacher}
    if quiet:
        cfg_dict["train"] = {**cfg_dict["train"], "progress": False}
    cfg = make_config(overrides=cfg_dict)
    resume = (out / "checkpoint.pt").is_file() and not fresh
    prune = record.get("prune")
    pruner = trial_pruner(prune) if prune is not None else None
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if quiet:
            fh = stack.enter_context(open(out / "output.log", "a", buffering=1))
            stack.enter_context(contextlib.redirect_stdout(fh))
            stack.enter_context(contextlib.redirect_stderr(fh))
        try:
            fresh = fresh and (out / "metrics.json").is_file()
            if cfg.distill.method:
                trainer = distill_run(cfg, out, sources=sources, resume=resume, fresh=fresh, prune=pruner)[0]
            else:
                trainer = train_run(cfg, out, resume=resume, log=print, fresh=fresh, prune=pruner)[0]
        except BaseException as exc:
            if not isinstance(exc, (KeyboardInterrupt, RunInterrupted)):
                atomic_text(traceback.format_exc(), out / "error.txt")
            raise
    if prune is not None:  # what later trials of its search are pruned against
        write_curve(out, str(prune["metric"]), trainer.valid_history)
    return time.perf_counter() - t0


def _fmt_eta(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def run_tasks(
    planner: Planner,
    only: tuple[str, ...] | None = None,
    jobs: int = 1,
    threads: int | None = None,
    log: Callable[[str], Any] = print,
    poll_s: float = 30.0,
    fresh: bool = False,
) -> RunSummary:
    """Run every task of ``planner`` (restricted to ``only`` and what it needs) until all are
            finished, failed or skipped; see the module doc. A run that another command is training
        (its lock is held) is waited for, checking every ``poll_s`` seconds. ``fresh``: train every
    run again once, finished ones included (each replaced only when its new run has finished)."""
    root = planner.root
    summary = RunSummary()
    failed: set[str] = set()
    running: dict[cf.Future, tuple[Task, float]] = {}
    durations: list[float] = []
    t_start = time.perf_counter()
    waiting = False
    redone: set[str] = set()  # with fresh: the runs trained again by this command
    pool: cf.ProcessPoolExecutor | None = None
    if jobs > 1:
        pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        while True:
            planner.refresh()
            tasks, pending = planner.tasks(only)
            busy = {t.key for t, _ in running.values()}
            todo, blocked = [], []
            elsewhere = 0

            def done(t: Task) -> bool:
                return planner.status(t) == "done" and (not fresh or t.key in redone)

            def settled(t: Task) -> bool:  # for reports: here, or recorded elsewhere
                return done(t) or (planner.status(t) == "recorded" and not fresh)

            # a recorded run is trained here only when a run still to train starts from it (and
            # then so are the recorded runs that it starts from)
            needed: set[str] = set()
            grew = True
            while grew:
                before = len(needed)
                needed |= {
                    d.key
                    for t in tasks
                    if not settled(t) or t.key in needed
                    for d in t.dependencies()
                    if planner.status(d) == "recorded"
                }
                grew = len(needed) > before
            for t in tasks:
                if t.key in busy or t.key in failed or done(t) or (settled(t) and t.key not in needed):
                    continue
                if planner.status(t) == "running":  # another command trains it
                    elsewhere += 1
                    continue
                deps = t.dependencies()
                if any(d.key in failed for d in deps):
                    blocked.append(t)
                elif all(done(d) for d in deps):
                    todo.append(t)
            n_left = sum(t.key not in failed and (not settled(t) or t.key in needed) for t in tasks)
            if not todo and not running and elsewhere:
                if not waiting:
                    log(f"waiting for {elsewhere} run(s) that another command is training ...")
                waiting = True
                time.sleep(poll_s)
                continue
            waiting = False
            if not todo and not running:
                summary.skipped = sorted({t.label for t in blocked})
                summary.pending = sorted(set(pending))
                break
            slots = max(1, jobs) - len(running)
            for t in todo[:slots]:
                record = {**_task_record(t, root)}
                state = "resuming" if planner.status(t) == "partial" else "starting"
                log(f"[{state}] {t.label} -> {t.directory(root)}")
                if pool is None:  # in this process, its progress on the console
                    t0 = time.perf_counter()
                    try:
                        execute_task(record, str(root), threads, fresh=fresh)
                    except (KeyboardInterrupt, RunInterrupted):
                        raise
                    except RunBusy:  # another command took it first
                        continue
                    except Exception as exc:  # recorded in error.txt; the others go on
                        failed.add(t.key)
                        summary.failed.append(t.label)
                        log(f"[failed] {t.label}: {exc} (see {t.directory(root) / 'error.txt'})")
                        continue
                    durations.append(time.perf_counter() - t0)
                    redone.add(t.key)
                    summary.finished.append(t.label)
                    log(_done_line(t, durations, n_left - 1, jobs))
                    n_left -= 1
                    break  # re-plan: this run may unlock others
                fut = pool.submit(execute_task, record, str(root), threads or 1, True, fresh)
                running[fut] = (t, time.perf_counter())
            if pool is None or not running:
                continue
            finished, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                t, _t0 = running.pop(fut)
                try:
                    durations.append(fut.result())
                except RunBusy:
                    continue
                except Exception as exc:
                    failed.add(t.key)
                    summary.failed.append(t.label)
                    log(f"[failed] {t.label}: {exc} (see {t.directory(root) / 'error.txt'})")
                    continue
                redone.add(t.key)
                summary.finished.append(t.label)
                n_left -= 1
                log(_done_line(t, durations, n_left, jobs))
    except (KeyboardInterrupt, RunInterrupted):
        log("interrupted: run the same command again to continue (finished runs are kept)")
        if pool is not None:  # stop the workers now: their runs continue from their checkpoints
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
        raise
    finally:
        if pool is not None:
            for fut in running:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
    summary.seconds = time.perf_counter() - t_start
    return summary


def _done_line(task: Task, durations: list[float], left: int, jobs: int) -> str:
    mean = sum(durations) / len(durations)
    eta = f", about {_fmt_eta(mean * left / max(1, jobs))} for the {left} known left" if left > 0 else ""
    return f"[done] {task.label} in {_fmt_eta(durations[-1])}{eta}"
