"""An experiment spec: a YAML file that declares runs, seeds, searches, tables and findings.

Every key is checked when the file is read; a mistake is one line naming the file, the key, the
value and what was expected. The format (``experiments/README.md`` has a full example)::

    name: dcd-table2                      # outputs: <out>/<name>.md, .csv, .json
    title: DCD Table 2, BPR 200 -> 20 on citeulike-dcd
    protocol: tuned                       # paper | tuned: how the baselines were trained
    config: ../configs/bpr-citeulike-dcd.yaml   # base config, relative to this file (optional)
    base: {train: {epochs: 400}}          # nested overrides of the base config (optional)
    set: {train.progress: false}          # dotted overrides for every run (optional)
    seeds: [0, 1, 2, 3, 4]                # train.seed of every run, unless the run pins its own
    runs:
      teacher: {set: {model.size: teacher}, seeds: [0]}   # one teacher for every seed
      student: {set: {model.size: student}}
      cdae:    {config: ../configs/cdae-citeulike-bd.yaml}   # this run's own base config
      rrd:     {method: rrd, teacher: teacher, set: {model.size: student}}
      dcd:
        method: dcd
        teacher: teacher
        inherit: student                   # starts from the student's chosen settings
        set: {model.size: student}
        search:                            # chosen on validation at one seed, then run on all
          sampler: grid                    # grid | tpe (Optuna's samplers)
          space: {distill.params.lambda_ucd: [1.0e-3, 1.0e-4]}   # "a.x,a.y": one value for both
          metric: H@5                      # validation metric (default: the config's monitor)
          pruner: {name: median, n_startup_trials: 2}   # optional: Optuna's median | percentile
    tables:
      - name: main
        metrics: [H@5, M@5]
        rows:
          - {label: Student, run: student}
          - {label: RRD, run: rrd, vs: Student}
          - {label: DCD, run: dcd, vs: RRD}
        paper: {Student: {H@5: 0.4570}, DCD: {H@5: 0.4989}}
        improvements:                     # the paper's improvement rows (improve.r, Improv.B ...)
          - {label: improve.r, row: DCD, over: RRD}        # over: [RD, CD]: the best of them
    findings:
      - {claim: DCD beats RRD, row: DCD, than: RRD, metric: H@5}
    figures:
      - {kind: heatmap, run: dcd, x: distill.params.lambda_ucd, y: distill.params.lambda_icd}
      - {kind: discrepancy, run: teacher, table: main}   # DCD Fig. 1a for the table's rows
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recdistill.config import deep_merge, load_yaml, parse_set
from recdistill.errors import MissingFileError, RecdistillError, UnknownNameError
from recdistill.experiment.pruning import check_pruner

__all__ = [
    "ExperimentSpec",
    "FigureSpec",
    "FindingSpec",
    "ImprovementSpec",
    "RowSpec",
    "RunSpec",
    "SearchSpec",
    "TableSpec",
    "load_spec",
    "nested",
]

SAMPLERS = ("grid", "tpe", "random")


@dataclass(frozen=True)
class SearchSpec:
    """A search over ``space`` (dotted config key -> list of values, or ``{low, high, log}`` for
    a continuous range with ``tpe`` / ``random``), scored by ``metric`` on the validation split
    of the run at ``seed``; ``trials`` (grid: the grid's size). ``pruner``: an Optuna pruner
    (``{"name": "median" | "percentile", **its settings}``, :mod:`.pruning`) that may stop a
    trial after a validation; the trials then run one at a time."""

    sampler: str
    space: dict[str, Any]
    trials: int
    metric: str | None = None
    seed: int | None = None
    mode: str = "max"
    pruner: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunSpec:
    """One run of the experiment: a base-model run (no ``method``) or a distillation run from
    ``teacher`` (and ``student``, for methods that train both), each the name of another run or
    a path; for a method with several roles, ``teacher`` maps role -> run or path. ``set``:
    dotted overrides. ``seeds``: pins the run's seeds (else the experiment's)."""

    name: str
    method: str = ""
    teacher: str | dict[str, str] | None = None
    student: str | None = None
    set: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None
    search: SearchSpec | None = None
    config_file: Path | None = None  # instead of the spec's base config file
    inherit: str | None = None  # a searched run whose chosen settings this run starts from
    seed_offset: int = (
        0  # train.seed = the seed + this (a second model of one config, e.g. a same-size partner)
    )

    @property
    def sources(self) -> dict[str, str]:
        """Role -> the run (or path) it is built from: ``teacher`` (a single one is the role
        ``teacher``) and ``student``."""
        out = {"teacher": self.teacher} if isinstance(self.teacher, str) else dict(self.teacher or {})
        if self.student is not None:
            out["student"] = self.student
        return out

    def refs(self) -> tuple[str, ...]:
        """The names this run refers to (its sources and the run it inherits from)."""
        return (*self.sources.values(), *([self.inherit] if self.inherit else []))


@dataclass(frozen=True)
class RowSpec:
    label: str
    run: str
    model: str | None = None  # which model of the run (default: the run's primary)
    vs: str | None = None  # the label of the row this one is compared with
    at: str = "best"  # best: the best-on-validation state; last: the last epoch's (train.report_last)


@dataclass(frozen=True)
class TableSpec:
    name: str
    rows: tuple[RowSpec, ...]
    metrics: tuple[str, ...]
    title: str = ""
    protocol: str | None = None  # default: the first row's resolved protocol
    split: str = "test"
    paper: dict[str, dict[str, float]] = field(default_factory=dict)
    improvements: tuple[ImprovementSpec, ...] = ()


@dataclass(frozen=True)
class ImprovementSpec:
    """A paper's improvement row (Improv.T, improve.r, ...): ``row`` over ``over`` per metric;
    several ``over`` rows: the best of them by mean, per metric (BD's "best competitor")."""

    label: str
    row: str
    over: tuple[str, ...]


@dataclass(frozen=True)
class FindingSpec:
    """A paper's claim "``row`` beats ``than`` on ``metric``" in table ``table``."""

    claim: str
    row: str
    than: str
    metric: str
    table: str | None = None
    alpha: float = 0.05
    #: why the comparison is not a fair test (e.g. "comparator collapsed", "comparator untuned"):
    #: the finding is listed with this flag and left out of the verdicts and the q-values
    flag: str | None = None


@dataclass(frozen=True)
class FigureSpec:
    """heatmap: a search's validation metric over two of its keys (``run``, ``x``, ``y``).
    discrepancy (DCD Fig. 1a): the mean ``|rank_S - rank_T|`` over the teacher's top-``n``, user
    and item side, for the rows of ``table`` (all but ``teacher``'s), averaged over seeds.
    rank-difference (BD Table 4 and Figs. 1a / 4): Eq. 6 on the test split before ``run`` (a run
    with a ``teacher`` and a ``student``: the two runs it starts from) and after it (its own
    ``teacher`` and ``student`` models), per seed; ``vs``: another such run (e.g. BD's λ = 0
    control) whose after is compared with ``run``'s; ``paper``: the paper's ``before`` / ``after``."""

    kind: str
    run: str = ""
    x: str = ""
    y: str = ""
    file: str | None = None
    title: str = ""
    table: str = ""
    n: int = 50
    paper: dict[str, float] | None = None
    vs: str = ""


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    path: Path | None
    base: dict[str, Any]
    config_file: Path | None
    seeds: tuple[int, ...]
    runs: dict[str, RunSpec]
    tables: tuple[TableSpec, ...] = ()
    findings: tuple[FindingSpec, ...] = ()
    figures: tuple[FigureSpec, ...] = ()
    title: str = ""
    description: str = ""
    protocol: str | None = None  # paper (the baselines as the paper trained them) | tuned


def nested(dotted: dict[str, Any], where: str = "set") -> dict[str, Any]:
    """``{"train.lr": 1e-3}`` -> ``{"train": {"lr": 1e-3}}`` (values kept as given)."""
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        parts = str(key).split(".")
        if len(parts) < 2 or not all(parts):
            raise RecdistillError(f"{where}: bad key {key!r}; expected section.key, e.g. train.lr")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise RecdistillError(f"{where}: key {key!r} conflicts with another key")
        node[parts[-1]] = value
    return out


class _Reader:
    """Typed access to one mapping of the spec, with one-line errors naming file and key."""

    def __init__(self, data: Any, where: str, known: tuple[str, ...]):
        if not isinstance(data, dict):
            raise RecdistillError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
        unknown = sorted(set(map(str, data)) - set(known))
        if unknown:
            raise RecdistillError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(known)}")
        self.data, self.where = data, where

    def get(
        self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False
    ) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                raise RecdistillError(f"{self.where}: missing key {key!r}")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise RecdistillError(f"{self.where}.{key}: expected {names}, got {value!r}")
        return value

    def ints(self, key: str) -> tuple[int, ...] | None:
        value = self.get(key, (list, int))
        if value is None:
            return None
        values = [value] if isinstance(value, int) else value
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise RecdistillError(f"{self.where}.{key}: expected a list of integers, got {value!r}")
        return tuple(values)


def _check_dotted(mapping: dict[str, Any], where: str, tied: bool = False) -> dict[str, Any]:
    """Check dotted keys; with ``tied``, a key may name several (``a.x,a.y``: one value for all)."""
    for key in mapping:
        for part in str(key).split(",") if tied else [str(key)]:
            parse_set(f"{part.strip()}=0")  # a bad key is one line
            if len(part.strip().split(".")) < 2:
                raise RecdistillError(f"{where}: bad key {key!r}; expected section.key, e.g. train.lr")
    return dict(mapping)


def _search(data: Any, where: str) -> SearchSpec:
    r = _Reader(data, where, ("sampler", "space", "trials", "metric", "seed", "mode", "pruner"))
    sampler = r.get("sampler", str, "grid")
    if sampler not in SAMPLERS:
        raise RecdistillError(f"{where}.sampler: expected {' | '.join(SAMPLERS)}, got {sampler!r}")
    space = _check_dotted(r.get("space", dict, required=True), f"{where}.space", tied=True)
    if not space:
        raise RecdistillError(f"{where}.space: empty")
    size = 1
    for key, values in space.items():
        if isinstance(values, list):
            if not values:
                raise RecdistillError(f"{where}.space.{key}: empty list")
            size *= len(values)
        elif isinstance(values, dict) and sampler != "grid":
            rr = _Reader(values, f"{where}.space.{key}", ("low", "high", "log"))
            low, high = rr.get("low", float, required=True), rr.get("high", float, required=True)
            if not low < high or (rr.get("log", bool, False) and low <= 0):
                raise RecdistillError(f"{where}.space.{key}: expected 0 < low < high (log) or low < high")
        else:
            expected = "a list of values" if sampler == "grid" else "a list of values or {low, high, log}"
            raise RecdistillError(f"{where}.space.{key}: expected {expected}, got {values!r}")
    trials = r.get("trials", int, size if sampler == "grid" else None)
    if trials is None:
        raise RecdistillError(f"{where}: missing key 'trials' (the search's budget)")
    if sampler == "grid" and trials != size:
        raise RecdistillError(f"{where}.trials: a grid of {size} points runs {size} trials, got {trials}")
    if trials < 1:
        raise RecdistillError(f"{where}.trials: expected a positive integer, got {trials}")
    mode = r.get("mode", str, "max")
    if mode not in ("max", "min"):
        raise RecdistillError(f"{where}.mode: expected max | min, got {mode!r}")
    pruner = check_pruner(r.get("pruner", object), f"{where}.pruner")
    return SearchSpec(sampler, space, trials, r.get("metric", str), r.get("seed", int), mode, pruner)


def _config_file(value: str | None, path: Path | None, where: str) -> Path | None:
    if value is None:
        return None
    config_file = (path.parent / value if path is not None else Path(value)).resolve()
    if not config_file.is_file():
        raise MissingFileError(f"{where}: {config_file} not found")
    return config_file


#: a name that becomes part of a file name (a spec's, a run's, a table's, a figure's file)
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def plain_name(value: str, where: str) -> str:
    """``value`` if it is a plain file name (letters, digits, ``._+-``, no leading dot, no path
    separator), else a one-line error: such names become files under the chosen folder only."""
    if not PLAIN_NAME.fullmatch(value) or ".." in value:
        raise RecdistillError(
            f"{where}: {value!r} is not a plain name (letters, digits and . _ + -, not starting with a "
            "dot, no '..' or '/'): it names files in the output folder"
        )
    return value


def _run(name: str, data: Any, where: str, path: Path | None) -> RunSpec:
    keys = ("method", "teacher", "student", "set", "seeds", "search", "config", "inherit", "seed_offset")
    r = _Reader(data or {}, where, keys)
    search = r.get("search", dict)
    return RunSpec(
        name=name,
        method=r.get("method", str, ""),
        teacher=_teacher(r.get("teacher", (str, dict)), f"{where}.teacher"),
        student=r.get("student", str),
        set=_check_dotted(r.get("set", dict, {}), f"{where}.set"),
        seeds=r.ints("seeds"),
        search=_search(search, f"{where}.search") if search is not None else None,
        config_file=_config_file(r.get("config", str), path, f"{where}.config"),
        inherit=r.get("inherit", str),
        seed_offset=r.get("seed_offset", int, 0),
    )


def _teacher(value: str | dict[str, Any] | None, where: str) -> str | dict[str, str] | None:
    """``teacher``: a run (or path), or role -> run for a method with several teachers."""
    if not isinstance(value, dict):
        return value
    for role, ref in value.items():
        if not isinstance(ref, str) or not PLAIN_NAME.fullmatch(str(role)):
            raise RecdistillError(
                f"{where}.{role}: expected role: run (a run of this spec or a path), got {ref!r}"
            )
    return {str(k): v for k, v in value.items()}


def _table(data: Any, where: str, runs: dict[str, RunSpec]) -> TableSpec:
    keys = ("name", "title", "rows", "metrics", "protocol", "split", "paper", "improvements")
    r = _Reader(data, where, keys)
    rows = []
    for i, row in enumerate(r.get("rows", list, required=True)):
        rr = _Reader(row, f"{where}.rows[{i}]", ("label", "run", "model", "vs", "at"))
        at = rr.get("at", str, "best")
        if at not in ("best", "last"):
            raise RecdistillError(f"{where}.rows[{i}].at: expected best | last, got {at!r}")
        label, run = rr.get("label", str, required=True), rr.get("run", str, required=True)
        rs = RowSpec(label, run, rr.get("model", str), rr.get("vs", str), at)
        if rs.run not in runs:
            raise RecdistillError(f"{where}.rows[{i}].run: no run named {rs.run!r}; runs: {', '.join(runs)}")
        rows.append(rs)
    labels = [row.label for row in rows]
    if len(set(labels)) != len(labels):
        raise RecdistillError(f"{where}.rows: labels must be unique, got {labels}")
    for i, row in enumerate(rows):
        if row.vs is not None and row.vs not in labels:
            raise RecdistillError(f"{where}.rows[{i}].vs: no row labelled {row.vs!r}")
    metrics = r.get("metrics", list, required=True)
    if not metrics or not all(isinstance(m, str) and "@" in m for m in metrics):
        raise RecdistillError(f"{where}.metrics: expected metric names like H@5, got {metrics!r}")
    paper = r.get("paper", dict, {})
    for label, values in paper.items():
        if label not in labels or not isinstance(values, dict):
            raise RecdistillError(f"{where}.paper.{label}: expected a row label mapped to {{metric: value}}")
    split = r.get("split", str, "test")
    if split not in ("valid", "test"):
        raise RecdistillError(f"{where}.split: expected valid | test, got {split!r}")
    protocol = r.get("protocol", str)
    if protocol not in (None, "full", "sampled"):
        raise RecdistillError(f"{where}.protocol: expected full | sampled, got {protocol!r}")
    improvements = []
    for i, imp in enumerate(r.get("improvements", list, [])):
        ir = _Reader(imp, f"{where}.improvements[{i}]", ("label", "row", "over"))
        over = ir.get("over", (str, list), required=True)
        over = (over,) if isinstance(over, str) else tuple(over)
        ispec = ImprovementSpec(ir.get("label", str, required=True), ir.get("row", str, required=True), over)
        for name in (ispec.row, *ispec.over):
            if name not in labels:
                raise RecdistillError(f"{where}.improvements[{i}]: no row labelled {name!r}")
        improvements.append(ispec)
    return TableSpec(
        improvements=tuple(improvements),
        name=plain_name(r.get("name", str, required=True), f"{where}.name"),
        rows=tuple(rows),
        metrics=tuple(metrics),
        title=r.get("title", str, ""),
        protocol=protocol,
        split=split,
        paper={k: {m: float(v) for m, v in vals.items()} for k, vals in paper.items()},
    )


def parse_spec(data: Any, path: Path | None = None) -> ExperimentSpec:
    """Check and build an :class:`ExperimentSpec` from the YAML mapping ``data``."""
    where = str(path) if path is not None else "spec"
    keys = ("name", "title", "description", "protocol", "config", "base", "set", "seeds", "runs", "tables")
    r = _Reader(data, where, (*keys, "findings", "figures"))
    runs_data = r.get("runs", dict, required=True)
    if not runs_data:
        raise RecdistillError(f"{where}.runs: empty")
    runs = {
        plain_name(str(n), f"{where}.runs"): _run(str(n), v, f"{where}.runs.{n}", path)
        for n, v in runs_data.items()
    }
    for run in runs.values():
        for role, ref in run.sources.items():
            if ref not in runs and not Path(ref).exists():
                raise RecdistillError(
                    f"{where}.runs.{run.name}.{role}: {ref!r} is neither a run of this spec nor a path"
                )
        if run.method:
            _check_roles(run, f"{where}.runs.{run.name}")
        elif run.teacher or run.student:
            raise RecdistillError(f"{where}.runs.{run.name}: teacher/student need a method")
    for run in runs.values():
        if run.inherit is not None and (run.inherit not in runs or runs[run.inherit].search is None):
            raise RecdistillError(f"{where}.runs.{run.name}.inherit: {run.inherit!r} is not a searched run")
    _check_acyclic(runs, where)
    tables = tuple(_table(t, f"{where}.tables[{i}]", runs) for i, t in enumerate(r.get("tables", list, [])))
    findings = []
    for i, f in enumerate(r.get("findings", list, [])):
        finding_keys = ("claim", "row", "than", "metric", "table", "alpha", "flag")
        fr = _Reader(f, f"{where}.findings[{i}]", finding_keys)
        fs = FindingSpec(
            claim=fr.get("claim", str, required=True),
            row=fr.get("row", str, required=True),
            than=fr.get("than", str, required=True),
            metric=fr.get("metric", str, required=True),
            table=fr.get("table", str),
            alpha=fr.get("alpha", float, 0.05),
            flag=fr.get("flag", str),
        )
        table = next((t for t in tables if fs.table in (None, t.name)), None)
        if table is None or not {fs.row, fs.than} <= {row.label for row in table.rows}:
            raise RecdistillError(
                f"{where}.findings[{i}]: rows {fs.row!r} and {fs.than!r} must be in one table"
            )
        if fs.metric not in table.metrics:
            raise RecdistillError(
                f"{where}.findings[{i}].metric: {fs.metric!r} is not a column of {table.name}"
            )
        findings.append(FindingSpec(fs.claim, fs.row, fs.than, fs.metric, table.name, fs.alpha, fs.flag))
    figures = []
    for i, f in enumerate(r.get("figures", list, [])):
        at = f"{where}.figures[{i}]"
        fr = _Reader(f, at, ("kind", "run", "x", "y", "file", "title", "table", "n", "paper", "vs"))
        kind = fr.get("kind", str, required=True)
        fig = FigureSpec(
            kind=kind,
            run=fr.get("run", str, required=True),
            x=fr.get("x", str, required=kind == "heatmap") or "",
            y=fr.get("y", str, required=kind == "heatmap") or "",
            file=None if fr.get("file", str) is None else plain_name(fr.get("file", str), f"{at}.file"),
            title=fr.get("title", str, ""),
            table=fr.get("table", str, required=kind == "discrepancy") or "",
            n=fr.get("n", int, 50),
            paper=fr.get("paper", dict),
            vs=fr.get("vs", str, "") or "",
        )
        if kind == "heatmap":
            search = runs[fig.run].search if fig.run in runs else None
            if search is None or not {fig.x, fig.y} <= set(search.space):
                raise RecdistillError(f"{at}: a heatmap is over two keys of a run's search.space")
        elif kind == "discrepancy":
            if fig.run not in runs:
                raise RecdistillError(f"{at}.run: the teacher run; no run named {fig.run!r}")
            if fig.table not in {t.name for t in tables}:
                raise RecdistillError(f"{at}.table: no table named {fig.table!r}")
        elif kind == "rank-difference":
            for key, name in (("run", fig.run), ("vs", fig.vs)):
                bd = runs.get(name)
                srcs = bd.sources if bd is not None else {}
                starts_from_two = srcs.get("teacher") in runs and srcs.get("student") in runs
                if (key == "run" or name) and not starts_from_two:
                    raise RecdistillError(
                        f"{at}.{key}: expected a run that starts from a teacher run and a student run "
                        f"of this spec (e.g. BD's), got {name!r}"
                    )
            for k, v in (fig.paper or {}).items():
                if k not in ("before", "after") or not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise RecdistillError(f"{at}.paper.{k}: expected before / after: a number, got {v!r}")
        else:
            raise RecdistillError(
                f"{at}.kind: expected heatmap | discrepancy | rank-difference, got {kind!r}"
            )
        if kind != "rank-difference" and (fig.paper is not None or fig.vs):
            raise RecdistillError(f"{at}: paper and vs belong to a rank-difference figure")
        figures.append(fig)
    config_file = _config_file(r.get("config", str), path, f"{where}.config")
    base = r.get("base", dict, {})
    base = deep_merge(base, nested(_check_dotted(r.get("set", dict, {}), f"{where}.set")))
    seeds = r.ints("seeds") or (0,)
    name = r.get("name", str, path.stem if path is not None else None)
    if not name:
        raise RecdistillError(f"{where}: missing key 'name'")
    plain_name(name, f"{where}.name")
    protocol = r.get("protocol", str)
    if protocol not in (None, "paper", "tuned"):
        raise RecdistillError(f"{where}.protocol: expected paper | tuned, got {protocol!r}")
    return ExperimentSpec(
        protocol=protocol,
        name=name,
        path=path,
        base=base,
        config_file=config_file,
        seeds=seeds,
        runs=runs,
        tables=tables,
        findings=tuple(findings),
        figures=tuple(figures),
        title=r.get("title", str, ""),
        description=r.get("description", str, ""),
    )


def _check_roles(run: RunSpec, where: str) -> None:
    """The run gives every frozen teacher its method needs and no role it does not know
    (the method's ``Roles`` with its default parameters)."""
    from recdistill.distill import load_distillers

    try:
        cls = load_distillers().get(run.method)
    except UnknownNameError as exc:
        raise RecdistillError(f"{where}: {exc}") from None
    roles = cls.roles(cls.build_config({}))
    for role in roles.teachers:
        if role not in run.sources:
            what = "a teacher" if role == "teacher" else f"teacher.{role}"
            raise RecdistillError(f"{where}: method {run.method!r} needs {what}")
    for role in run.sources:
        if role not in roles.teachers + roles.models:
            raise RecdistillError(
                f"{where}: method {run.method!r} has no role {role!r}; its roles: "
                f"{', '.join(roles.teachers + roles.models)}"
            )


def _check_acyclic(runs: dict[str, RunSpec], where: str) -> None:
    state: dict[str, int] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise RecdistillError(f"{where}.runs: circular dependency {' -> '.join([*chain, name])}")
        state[name] = 1
        run = runs[name]
        for ref in run.refs():
            if ref in runs:
                visit(ref, [*chain, name])
        state[name] = 2

    for name in runs:
        visit(name, [])


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and check the spec file ``path``."""
    return parse_spec(load_yaml(path, "experiment spec"), Path(path).resolve())
