"""Readers: raw interaction files -> :class:`Interactions` (raw user/item ids, optional time).

Every reader accepts plain, ``.gz`` or ``.xz`` files (recognised by content) and is strict: a
line with the wrong number of fields or an unparsable value raises :class:`DataFormatError`
naming the file, the 1-based line number and the line's text. The fast path is pandas (or
numpy on the byte buffer); the slow line-by-line scan runs only to locate an error.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recdistill.data.io import DataFormatError, first_bad_line, read_bytes, strip_compression
from recdistill.errors import RecdistillError

# Column names tried, in order, when a table's user/item/time columns are not given.
USER_COLUMNS = ("user", "user_id", "userId", "userid", "uid", "u")
ITEM_COLUMNS = ("item", "item_id", "itemId", "itemid", "iid", "movieId", "venueId", "business_id", "i")
TIME_COLUMNS = ("timestamp", "time", "ts", "datetime", "date", "utcTimestamp")

TSMC_TIME_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # 'Tue Apr 03 18:00:09 +0000 2012'


@dataclass
class Interactions:
    """A raw interaction log, one row per event, in file order.

    ``users``/``items`` hold raw ids (int64 or str), ``timestamps`` is int64/float64 or None,
    ``ratings`` float64 or None (only for optional rating thresholds). ``source`` lists the files.
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray | None = None
    ratings: np.ndarray | None = None
    source: list[str] = field(default_factory=list)
    fmt: str = "arrays"

    def __len__(self) -> int:
        return len(self.users)


# --------------------------------------------------------------------------- strict parsing


def _decode(data: bytes, path: Path, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        end = data.find(b"\n", exc.start)
        text = data[start : end if end >= 0 else len(data)].decode(encoding, errors="replace")
        raise DataFormatError(path, line, text, f"not valid {encoding} text") from None


def _line_text(data: bytes, line_no: int, encoding: str = "utf-8") -> str:
    """The text of 1-based line ``line_no`` (slow path, errors only)."""
    lines = data.split(b"\n")
    return lines[line_no - 1].rstrip(b"\r").decode(encoding, errors="replace")


def _check_field_counts(
    path: Path, data: bytes, sep: str, allowed: Sequence[int], skip_lines: int = 0, encoding: str = "utf-8"
) -> int:
    """Vectorised check that every line after ``skip_lines`` has a field count in ``allowed``
    and is not empty. Returns the field count of the first data line."""
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)  # (n_newlines,)
    n_lines = len(newlines) + (1 if len(buf) and buf[-1] != 10 else 0)
    if n_lines <= skip_lines:
        raise DataFormatError(path, None, None, "no data lines")
    starts = np.concatenate([[0], newlines + 1])[:n_lines]  # (n_lines,)
    ends = np.concatenate([newlines, [len(buf)]])[:n_lines]
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
    lengths = ends - starts - has_cr  # (n_lines,)
    sep_pos = np.flatnonzero(buf == ord(sep))  # (n_seps,)
    fields = np.bincount(np.searchsorted(newlines, sep_pos), minlength=n_lines)[:n_lines] + 1
    bad = ~np.isin(fields, np.asarray(allowed)) | (lengths == 0)
    bad[:skip_lines] = False
    if bad.any():
        i = int(np.argmax(bad))
        text = _line_text(data, i + 1, encoding)
        if lengths[i] == 0:
            raise DataFormatError(path, i + 1, text, "empty line")
        want = " or ".join(str(a) for a in allowed)
        raise DataFormatError(path, i + 1, text, f"expected {want} {sep!r}-separated fields, got {fields[i]}")
    return int(fields[skip_lines])


def _parse_checker(sep: str, kinds: Sequence[str]):
    """Line check for the slow scan: each field must parse as its kind ('int', 'float'; 'str' and
    'auto' accept anything)."""

    def check(line: str) -> str | None:
        parts = line.rstrip("\r\n").split(sep)
        if len(parts) < len(kinds):
            return f"expected {len(kinds)} fields, got {len(parts)}"
        for j, (kind, value) in enumerate(zip(kinds, parts)):
            try:
                if kind == "int":
                    int(value)
                elif kind == "float":
                    float(value)
            except ValueError:
                return f"field {j + 1} is not a valid {kind}: {value!r}"
        return None

    return check


def _read_typed(
    path: Path,
    data: bytes,
    *,
    sep: str,
    names: list[str],
    kinds: list[str],
    usecols: list[int] | None = None,
    skip_lines: int = 0,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """pandas parse of a field-count-checked file with per-column kinds; locates bad values."""
    dtype_of = {"int": np.int64, "float": np.float64, "str": str}
    cols = list(range(len(names))) if usecols is None else usecols
    dtypes = {names[c]: dtype_of[kinds[c]] for c in cols if kinds[c] != "auto"}  # 'auto': int64 or str
    try:
        return pd.read_csv(
            io.BytesIO(data),
            sep=sep,
            header=None,
            names=names,
            usecols=[names[c] for c in cols],
            dtype=dtypes,
            skiprows=skip_lines,
            skip_blank_lines=False,
            na_filter=False,
            quoting=csv.QUOTE_NONE,
            encoding=encoding,
            engine="c",
        )
    except (ValueError, OverflowError) as exc:
        text = _decode(data, path, encoding)
        lines = text.split("\n")[skip_lines:]
        err = first_bad_line(path, lines, _parse_checker(sep, kinds), first_line_no=skip_lines + 1)
        if err is not None:
            raise err from None
        raise DataFormatError(path, None, None, f"could not parse ({exc})") from None


# --------------------------------------------------------------------------- readers


def _token_lines(path: Path, expected: str) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Whitespace-separated integer tokens of a file of non-empty lines, vectorised over bytes.

    Returns ``(data, tokens, per_line)``: the raw bytes, all tokens (int64) in file order and
    the number of tokens on each line. ``expected`` describes a line for error messages.
    """
    data = read_bytes(path)
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(buf) == 0:
        raise DataFormatError(path, None, None, "empty file")
    is_space = np.isin(buf, np.frombuffer(b" \t\r\n", dtype=np.uint8))  # (n_bytes,)
    newlines = np.flatnonzero(buf == 10)
    n_lines = len(newlines) + (1 if buf[-1] != 10 else 0)
    tok_start = np.flatnonzero(~is_space & np.concatenate([[True], is_space[:-1]]))  # (n_tokens,)
    tok_line = np.searchsorted(newlines, tok_start)  # (n_tokens,) 0-based line of each token
    per_line = np.bincount(tok_line, minlength=n_lines)  # (n_lines,) tokens per line
    if (per_line == 0).any():
        i = int(np.argmax(per_line == 0))
        raise DataFormatError(path, i + 1, _line_text(data, i + 1), f"empty line: expected {expected!r}")
    try:
        tokens = np.array(data.split()).astype(np.int64)  # (n_tokens,)
    except ValueError:

        def check(line: str) -> str | None:
            bad = [t for t in line.split() if not t.lstrip("-").isdigit()]
            return f"not an integer: {bad[0]!r}" if bad else None

        err = first_bad_line(path, _decode(data, path, "utf-8").split("\n"), check)
        raise (err or DataFormatError(path, None, None, "unparsable tokens")) from None
    return data, tokens, per_line


def _lines_to_pairs(
    path: Path, data: bytes, tokens: np.ndarray, per_line: np.ndarray, users: np.ndarray, n_head: int
) -> tuple[np.ndarray, np.ndarray]:
    """Drop the ``n_head`` leading tokens of each line; pair the rest with the line's user."""
    first = np.concatenate([[0], np.cumsum(per_line)[:-1]])  # (n_lines,) index of each line's first token
    is_item = np.ones(len(tokens), dtype=bool)
    for h in range(n_head):
        is_item[first + h] = False
    line_of = np.repeat(np.arange(len(per_line)), per_line - n_head)  # (n_pairs,)
    items = tokens[is_item]
    if (items < 0).any():
        j = int(line_of[np.argmax(items < 0)])
        raise DataFormatError(path, j + 1, _line_text(data, j + 1), "negative item id")
    return users[line_of], items


def read_citeulike_users(path: str | os.PathLike) -> Interactions:
    """CiteULike-t ``users.dat``: line k is user k; ``count item item ...``.

    The leading count is *not* an item (BD's notebook took it as one; see data README);
    it must equal the number of ids that follow.
    """
    path = Path(path)
    data, tokens, per_line = _token_lines(path, "count item ...")
    first = np.concatenate([[0], np.cumsum(per_line)[:-1]])  # (n_lines,) index of each count token
    counts = tokens[first]
    mismatch = counts != per_line - 1
    if mismatch.any():
        i = int(np.argmax(mismatch))
        raise DataFormatError(
            path, i + 1, _line_text(data, i + 1), f"count field {counts[i]} != {per_line[i] - 1} item ids"
        )
    users, items = _lines_to_pairs(path, data, tokens, per_line, np.arange(len(per_line), dtype=np.int64), 1)
    return Interactions(users, items, None, None, [str(path)], "citeulike-users")


def read_adjacency(path: str | os.PathLike) -> Interactions:
    """Adjacency lists (LightGCN's ``train.txt``/``test.txt``): ``user item item ...`` per line,
    whitespace-separated integers; a line with only a user id has no interactions."""
    path = Path(path)
    data, tokens, per_line = _token_lines(path, "user item ...")
    first = np.concatenate([[0], np.cumsum(per_line)[:-1]])  # (n_lines,)
    users, items = _lines_to_pairs(path, data, tokens, per_line, tokens[first], 1)
    return Interactions(users, items, None, None, [str(path)], "adjacency")


def read_movielens(path: str | os.PathLike) -> Interactions:
    """MovieLens ``u.data``: ``user \\t item \\t rating \\t unix_time``."""
    path = Path(path)
    data = read_bytes(path)
    _check_field_counts(path, data, "\t", [4])
    df = _read_typed(path, data, sep="\t", names=["user", "item", "rating", "time"], kinds=["int"] * 4)
    return Interactions(
        df["user"].to_numpy(),
        df["item"].to_numpy(),
        df["time"].to_numpy(),
        df["rating"].to_numpy(np.float64),
        [str(path)],
        "movielens",
    )


def read_ncf_rating(path: str | os.PathLike) -> Interactions:
    """NCF-style ``.rating`` (e.g. Yelp of sigir16-eals): ``user \\t item [\\t rating [\\t time]]``."""
    path = Path(path)
    data = read_bytes(path)
    n = _check_field_counts(path, data, "\t", [2, 3, 4])
    fields = _check_field_counts(path, data, "\t", [n])  # all lines alike
    names = ["user", "item", "rating", "time"][:fields]
    kinds = ["int", "int", "float", "float"][:fields]
    df = _read_typed(path, data, sep="\t", names=names, kinds=kinds)
    t = df["time"].to_numpy() if "time" in df else None
    if t is not None and np.all(t == np.round(t)):
        t = t.astype(np.int64)
    r = df["rating"].to_numpy() if "rating" in df else None
    return Interactions(df["user"].to_numpy(), df["item"].to_numpy(), t, r, [str(path)], "ncf-rating")


def read_tsmc2014(path: str | os.PathLike) -> Interactions:
    """Foursquare TSMC2014 (``dataset_TSMC2014_TKY.txt``): 8 tab-separated fields, ISO-8859-1;
    user, venue, category id, category, lat, lon, tz offset, UTC time ('Tue Apr 03 18:00:09 +0000 2012').
    """
    path = Path(path)
    data = read_bytes(path)
    enc = "ISO-8859-1"
    _check_field_counts(path, data, "\t", [8], encoding=enc)
    names = ["user", "venue", "cat_id", "cat", "lat", "lon", "tz", "utc"]
    kinds = ["int", "str", "str", "str", "float", "float", "int", "str"]
    df = _read_typed(path, data, sep="\t", names=names, kinds=kinds, usecols=[0, 1, 7], encoding=enc)
    time = pd.to_datetime(df["utc"], format=TSMC_TIME_FORMAT, errors="coerce", utc=True)
    if time.isna().any():
        i = int(np.argmax(time.isna().to_numpy()))
        raise DataFormatError(
            path, i + 1, _line_text(data, i + 1, enc), f"UTC time not in {TSMC_TIME_FORMAT!r}"
        )
    seconds = _epoch_seconds(time)
    return Interactions(
        df["user"].to_numpy(), df["venue"].to_numpy(dtype=str), seconds, None, [str(path)], "tsmc2014"
    )


def _require_values(
    path: Path, df: pd.DataFrame, cols: Sequence[str], header_lines: int, data: bytes
) -> None:
    """Empty user/item fields are malformed lines."""
    for c in cols:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col) and not col.isna().any():
            continue
        empty = col.isna().to_numpy() | (col.astype(str).str.strip() == "").to_numpy()
        if empty.any():
            line = int(np.argmax(empty)) + 1 + header_lines
            raise DataFormatError(path, line, _line_text(data, line), f"empty {c!r} field")


def _as_ids(values: pd.Series) -> np.ndarray:
    """Integer ids when every value is an integer, else strings."""
    if pd.api.types.is_integer_dtype(values):
        return values.to_numpy(np.int64)
    as_num = pd.to_numeric(values, errors="coerce")
    if not as_num.isna().any() and (as_num == np.round(as_num)).all():
        return as_num.to_numpy().astype(np.int64)
    return values.astype(str).to_numpy(dtype=str)


def _epoch_seconds(dt: pd.Series) -> np.ndarray:
    """int64 seconds since 1970 of a tz-aware datetime series (any pandas resolution)."""
    return ((dt - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "s")).to_numpy(np.int64)


def _as_time(path: Path, values: pd.Series, header_lines: int, data: bytes | None) -> np.ndarray:
    """Numeric times as they are (when the first value is a number, all must be); otherwise
    dates/times parsed to int64 seconds since 1970 (UTC)."""
    if pd.api.types.is_numeric_dtype(values):
        out = values.to_numpy()
        bad = np.isnan(out) if out.dtype.kind == "f" else np.zeros(len(out), dtype=bool)
    else:
        num = pd.to_numeric(values, errors="coerce")
        if len(num) and not np.isnan(num.iloc[0]):
            out, bad = num.to_numpy(), num.isna().to_numpy()
        else:
            dt = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
            bad = dt.isna().to_numpy()
            out = _epoch_seconds(dt.fillna(pd.Timestamp(0, tz="UTC")))
    if bad.any():
        i = int(np.argmax(bad))
        line = i + 1 + header_lines
        text = _line_text(data, line) if data is not None else None
        raise DataFormatError(
            path, line if data is not None else None, text, f"invalid time {values.iloc[i]!r}"
        )
    if out.dtype.kind == "f" and np.all(out == np.round(out)):
        out = out.astype(np.int64)
    return out


def read_recbole_inter(
    path: str | os.PathLike,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
) -> Interactions:
    """RecBole atomic ``.inter``: header ``name:type`` per field (token, float, token_seq, ...),
    then tab-separated rows. Defaults: ``user_id``, ``item_id``, ``timestamp`` (if present)."""
    path = Path(path)
    data = read_bytes(path)
    header_end = data.find(b"\n")
    header = _decode(data[: header_end if header_end >= 0 else len(data)], path, "utf-8").rstrip("\r")
    fields = header.split("\t")
    names, types = [], []
    for f in fields:
        name, colon, typ = f.rpartition(":")
        if not colon or typ not in ("token", "token_seq", "float", "float_seq"):
            raise DataFormatError(path, 1, header, f"header field {f!r} is not 'name:type' (token/float/...)")
        names.append(name)
        types.append(typ)
    user_col = user_col or "user_id"
    item_col = item_col or "item_id"
    for col, what in ((user_col, "user"), (item_col, "item")):
        if col not in names:
            raise DataFormatError(path, 1, header, f"no {what} column {col!r} (columns: {', '.join(names)})")
    if time_col is None and "timestamp" in names:
        time_col = "timestamp"
    if time_col is not None and time_col not in names:
        raise DataFormatError(path, 1, header, f"no time column {time_col!r} (columns: {', '.join(names)})")
    _check_field_counts(path, data, "\t", [len(names)], skip_lines=1)
    wanted = [user_col, item_col] + ([time_col] if time_col else [])
    idx = [names.index(c) for c in wanted]
    kinds = ["float" if t == "float" else "auto" for t in types]
    df = _read_typed(path, data, sep="\t", names=names, kinds=kinds, usecols=idx, skip_lines=1)
    _require_values(path, df, [user_col, item_col], 1, data)
    t = _as_time(path, df[time_col], 1, data) if time_col else None
    return Interactions(_as_ids(df[user_col]), _as_ids(df[item_col]), t, None, [str(path)], "recbole-inter")


def _pick(columns: Sequence[str], given: str | None, candidates: Sequence[str], what: str, path: Path) -> str:
    if given is not None:
        if given not in columns:
            raise DataFormatError(
                path, 1, None, f"no {what} column {given!r} (columns: {', '.join(columns)})"
            )
        return given
    for c in candidates:
        if c in columns:
            return c
    raise DataFormatError(
        path, 1, None, f"cannot tell the {what} column among {list(columns)}; pass {what}_col=NAME"
    )


def read_table(
    path: str | os.PathLike,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    sep: str | None = None,
) -> Interactions:
    """Any CSV/TSV (header row; ``.csv`` -> ',', else tab unless ``sep``) or Parquet file with
    named user/item (and optional time) columns."""
    path = Path(path)
    base = strip_compression(path.name).lower()
    if base.endswith(".parquet") or base.endswith(".pq"):
        try:
            df = pd.read_parquet(path)
        except ImportError:
            raise RecdistillError(
                f"{path}: reading Parquet needs pyarrow: pip install 'recdistill[parquet]' (or pyarrow)"
            ) from None
        cols = [str(c) for c in df.columns]
        u = _pick(cols, user_col, USER_COLUMNS, "user", path)
        i = _pick(cols, item_col, ITEM_COLUMNS, "item", path)
        t = time_col if time_col is not None else next((c for c in TIME_COLUMNS if c in cols), None)
        if t is not None and t not in cols:
            _pick(cols, t, (), "time", path)
        for c in [u, i]:
            if df[c].isna().any():
                raise DataFormatError(
                    path, None, None, f"column {c!r} has missing values (row {int(np.argmax(df[c].isna()))})"
                )
        times = _as_time(path, df[t], 0, None) if t else None
        return Interactions(_as_ids(df[u]), _as_ids(df[i]), times, None, [str(path)], "parquet")
    data = read_bytes(path)
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (spreadsheet exports)
        data = data[3:]
    data = data.rstrip(b"\r\n") + b"\n"  # trailing blank lines are not records
    if sep is None:
        sep = "," if base.endswith(".csv") else "\t"
    header_end = data.find(b"\n")
    header = _decode(data[: header_end if header_end >= 0 else len(data)], path, "utf-8").rstrip("\r")
    cols = [_unquote(c) for c in header.split(sep)]
    u = _pick(cols, user_col, USER_COLUMNS, "user", path)
    i = _pick(cols, item_col, ITEM_COLUMNS, "item", path)
    t = time_col if time_col is not None else next((c for c in TIME_COLUMNS if c in cols), None)
    if t is not None:
        _pick(cols, t, (), "time", path)
    _check_field_counts(path, data, sep, [len(cols)], skip_lines=1)
    wanted = [u, i] + ([t] if t else [])
    idx = [cols.index(c) for c in wanted]
    df = _read_typed(path, data, sep=sep, names=cols, kinds=["auto"] * len(cols), usecols=idx, skip_lines=1)
    _require_values(path, df, [u, i], 1, data)
    times = _as_time(path, df[t], 1, data) if t else None
    return Interactions(_as_ids(df[u]), _as_ids(df[i]), times, None, [str(path)], "table")


def _unquote(name: str) -> str:
    """A header field without surrounding white space and quotes (``"user"`` -> ``user``)."""
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        return name[1:-1]
    return name


READERS = {
    "adjacency": read_adjacency,
    "citeulike-users": read_citeulike_users,
    "movielens": read_movielens,
    "ncf-rating": read_ncf_rating,
    "tsmc2014": read_tsmc2014,
    "recbole-inter": read_recbole_inter,
    "table": read_table,
}


def sniff_format(path: str | os.PathLike) -> str:
    """Reader name for ``path`` from its name: ``.inter``, ``.rating``, ``u.data``, ``users.dat``,
    ``*TSMC2014*``, ``train.txt``/``test.txt``/``.adj`` (adjacency lists), else a table (CSV/TSV
    with a header, or Parquet)."""
    base = strip_compression(Path(path).name)
    low = base.lower()
    if low.endswith(".inter"):
        return "recbole-inter"
    if low.endswith(".rating"):
        return "ncf-rating"
    if low == "u.data" or low.endswith(".u.data"):
        return "movielens"
    if low == "users.dat":
        return "citeulike-users"
    if "tsmc2014" in low:
        return "tsmc2014"
    if low in ("train.txt", "test.txt") or low.endswith(".adj"):
        return "adjacency"
    return "table"


def read_interactions(
    path: str | os.PathLike,
    format: str | None = None,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    sep: str | None = None,
) -> Interactions:
    """Read ``path`` with the reader named ``format`` (default: sniffed from the file name)."""
    fmt = format or sniff_format(path)
    if fmt not in READERS:
        raise RecdistillError(f"unknown format {fmt!r}; known: {', '.join(sorted(READERS))}")
    if fmt == "table":
        return read_table(path, user_col, item_col, time_col, sep)
    if fmt == "recbole-inter":
        return read_recbole_inter(path, user_col, item_col, time_col)
    if any(v is not None for v in (user_col, item_col, time_col, sep)):
        raise RecdistillError(f"user_col/item_col/time_col/sep apply to tables and .inter files, not {fmt!r}")
    return READERS[fmt](path)
