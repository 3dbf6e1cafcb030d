"""Readers on tiny temporary files: each format plain/.gz/.xz, and malformed lines named by
file, line number and text."""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recdistill.data.io import DataFormatError, read_bytes
from recdistill.data.readers import (
    read_citeulike_users,
    read_interactions,
    read_movielens,
    read_ncf_rating,
    read_recbole_inter,
    read_table,
    read_tsmc2014,
    sniff_format,
)

COMPRESSIONS = ["plain", "gz", "xz"]


def write(tmp_path: Path, name: str, text: str | bytes, comp: str = "plain") -> Path:
    data = text.encode() if isinstance(text, str) else text
    if comp == "gz":
        path, data = tmp_path / f"{name}.gz", gzip.compress(data)
    elif comp == "xz":
        path, data = tmp_path / f"{name}.xz", lzma.compress(data)
    else:
        path = tmp_path / name
    path.write_bytes(data)
    return path


def check_error(exc: pytest.ExceptionInfo, path: Path, line: int, text: str) -> None:
    """The message names the file, the line number and the line's text (exactly)."""
    msg = str(exc.value)
    assert str(path) in msg and f"line {line}:" in msg, msg
    assert exc.value.line == line
    assert exc.value.text is not None and text in exc.value.text and repr(exc.value.text) in msg, msg


@pytest.mark.parametrize("comp", COMPRESSIONS)
def test_read_bytes_any_compression(tmp_path: Path, comp: str) -> None:
    path = write(tmp_path, "x.txt", "hello\n", comp)
    assert read_bytes(path) == b"hello\n"


def test_read_bytes_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        read_bytes(tmp_path / "nope")
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"0123456789" * 10)[:20])
    with pytest.raises(DataFormatError, match="corrupt"):
        read_bytes(bad)


# ---------------------------------------------------------------- CiteULike users.dat

USERS_DAT = "3 10 11 12\n1 7\n2 12 3"  # no newline after the last line, like the real file


@pytest.mark.parametrize("comp", COMPRESSIONS)
def test_citeulike_users_count_field_is_not_an_item(tmp_path: Path, comp: str) -> None:
    log = read_citeulike_users(write(tmp_path, "users.dat", USERS_DAT, comp))
    pairs = list(zip(log.users.tolist(), log.items.tolist()))
    assert pairs == [(0, 10), (0, 11), (0, 12), (1, 7), (2, 12), (2, 3)]
    assert log.timestamps is None


def test_citeulike_users_trailing_newline_and_crlf(tmp_path: Path) -> None:
    log = read_citeulike_users(write(tmp_path, "users.dat", "2 5 6\r\n1 4\r\n"))
    assert log.users.tolist() == [0, 0, 1] and log.items.tolist() == [5, 6, 4]


@pytest.mark.parametrize(
    "text, line, shown, problem",
    [
        ("2 1 2\n3 4 5\n1 9", 2, "3 4 5", "count field 3 != 2"),
        ("2 1 2\n1 x9\n", 2, "1 x9", "not an integer"),
        ("2 1 2\n\n1 9", 2, "", "empty line"),
        ("1 -4\n", 1, "1 -4", "negative item id"),
    ],
)
def test_citeulike_users_malformed(tmp_path: Path, text: str, line: int, shown: str, problem: str) -> None:
    path = write(tmp_path, "users.dat", text, "gz")
    with pytest.raises(DataFormatError, match=problem) as exc:
        read_citeulike_users(path)
    check_error(exc, path, line, shown)


@pytest.mark.parametrize("comp", COMPRESSIONS)
def test_adjacency_lists(tmp_path: Path, comp: str) -> None:
    log = read_interactions(write(tmp_path, "train.txt", "0 5 6\n7\n3 5\n", comp))
    assert log.fmt == "adjacency"
    assert list(zip(log.users.tolist(), log.items.tolist())) == [(0, 5), (0, 6), (3, 5)]
    path = write(tmp_path, "x.adj", "0 5 6\n1 2 b\n")
    with pytest.raises(DataFormatError, match="not an integer: 'b'") as exc:
        read_interactions(path)
    check_error(exc, path, 2, "1 2 b")


# ---------------------------------------------------------------- MovieLens u.data

UDATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"


@pytest.mark.parametrize("comp", COMPRESSIONS)
def test_movielens(tmp_path: Path, comp: str) -> None:
    log = read_movielens(write(tmp_path, "u.data", UDATA, comp))
    assert log.users.tolist() == [196, 186, 22]
    assert log.items.tolist() == [242, 302, 377]
    assert log.timestamps.tolist() == [881250949, 891717742, 878887116]
    assert log.ratings.tolist() == [3.0, 3.0, 1.0]


@pytest.mark.parametrize(
    "bad, problem",
    [
        ("5\t6\t7\n", "expected 4"),
        ("5\t6\t7\t8\t9\n", "expected 4"),
        ("5\tsix\t7\t8\n", "field 2"),
        ("\n", "empty"),
    ],
)
def test_movielens_malformed(tmp_path: Path, bad: str, problem: str) -> None:
    path = write(tmp_path, "u.data", UDATA + bad + UDATA, "xz")
    with pytest.raises(DataFormatError, match=problem) as exc:
        read_movielens(path)
    check_error(exc, path, 4, bad.strip("\n"))


# ---------------------------------------------------------------- NCF .rating


@pytest.mark.parametrize("comp", COMPRESSIONS)
def test_ncf_rating_with_time(tmp_path: Path, comp: str) -> None:
    log = read_ncf_rating(write(tmp_path, "yelp.rating", "0\t5\t4.0\t100\n1\t6\t5\t90\n", comp))
    assert log.users.tolist() == [0, 1] and log.items.tolist() == [5, 6]
    assert log.timestamps.tolist() == [100, 90] and log.timestamps.dtype == np.int64


def test_ncf_rating_two_columns_and_mixed_columns(tmp_path: Path) -> None:
    log = read_ncf_rating(write(tmp_path, "a.rating", "0\t5\n1\t6\n"))
    assert log.timestamps is None and log.items.tolist() == [5, 6]
    path = write(tmp_path, "b.rating", "0\t5\t1\t9\n1\t6\n")
    with pytest.raises(DataFormatError, match="expected 4") as exc:
        read_ncf_rating(path)
    check_error(exc, path, 2, "1\t6")


# ---------------------------------------------------------------- Foursquare TSMC2014

TSMC = (
    "470\t49bbd6c0f964a520f4531fe3\t4bf58dd8d48988d127951735\tArts & Crafts Store\t40.71\t-74.00\t-240\t"
    "Tue Apr 03 18:00:09 +0000 2012\n"
    "979\t4a43c0aef964a520c6a61fe3\t4bf58dd8d48988d1df941735\tCaf\xe9\t40.60\t-73.99\t-240\t"
    "Tue Apr 03 18:00:25 +0000 2012\n"
)


@pytest.mark.parametrize("comp", COMPRESSIONS)
def test_tsmc2014_latin1(tmp_path: Path, comp: str) -> None:
    log = read_tsmc2014(write(tmp_path, "dataset_TSMC2014_TKY.txt", TSMC.encode("ISO-8859-1"), comp))
    assert log.users.tolist() == [470, 979]
    assert log.items.tolist() == ["49bbd6c0f964a520f4531fe3", "4a43c0aef964a520c6a61fe3"]
    expected = pd.Timestamp("2012-04-03 18:00:09", tz="UTC").value // 10**9
    assert log.timestamps.tolist() == [expected, expected + 16]


def test_tsmc2014_bad_time(tmp_path: Path) -> None:
    bad = TSMC.replace("Tue Apr 03 18:00:25", "Tue Apx 03 18:00:25")
    path = write(tmp_path, "dataset_TSMC2014_TKY.txt", bad.encode("ISO-8859-1"))
    with pytest.raises(DataFormatError, match="UTC time") as exc:
        read_tsmc2014(path)
    check_error(exc, path, 2, "Apx")


# ---------------------------------------------------------------- RecBole .inter

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "u1\ti1\t5\t30\nu2\ti1\t3\t10\nu1\ti2\t4\t20\n"
)


@pytest.mark.parametrize("comp", COMPRESSIONS)
def test_recbole_inter(tmp_path: Path, comp: str) -> None:
    log = read_recbole_inter(write(tmp_path, "x.inter", INTER, comp))
    assert log.users.tolist() == ["u1", "u2", "u1"] and log.items.tolist() == ["i1", "i1", "i2"]
    assert log.timestamps.tolist() == [30, 10, 20]


def test_recbole_inter_integer_tokens_and_no_time(tmp_path: Path) -> None:
    log = read_recbole_inter(write(tmp_path, "x.inter", "user_id:token\titem_id:token\n0\t3443\n0\t4125\n"))
    assert log.users.dtype == np.int64 and log.items.tolist() == [3443, 4125] and log.timestamps is None


@pytest.mark.parametrize(
    "text, line, shown, problem",
    [
        ("user_id\titem_id\n1\t2\n", 1, "user_id\titem_id", "not 'name:type'"),
        ("uid:token\titem_id:token\n1\t2\n", 1, "uid:token", "no user column 'user_id'"),
        ("user_id:token\titem_id:token\n1\t2\n3\n", 3, "3", "expected 2"),
        ("user_id:token\titem_id:token\ttimestamp:float\n1\t2\t5\n1\t3\tlate\n", 3, "late", "field 3"),
        ("user_id:token\titem_id:token\n1\t2\n\t3\n", 3, "\t3", "empty 'user_id'"),
    ],
)
def test_recbole_inter_malformed(tmp_path: Path, text: str, line: int, shown: str, problem: str) -> None:
    path = write(tmp_path, "x.inter", text, "gz")
    with pytest.raises(DataFormatError, match=problem) as exc:
        read_recbole_inter(path)
    check_error(exc, path, line, shown)


# ---------------------------------------------------------------- CSV / TSV / Parquet


@pytest.mark.parametrize("comp", COMPRESSIONS)
def test_csv_named_columns(tmp_path: Path, comp: str) -> None:
    path = write(tmp_path, "log.csv", "who,what,when\na,x,2021-01-02\nb,y,2021-01-01T10:00:00\n", comp)
    log = read_table(path, user_col="who", item_col="what", time_col="when")
    assert log.users.tolist() == ["a", "b"] and log.items.tolist() == ["x", "y"]
    assert log.timestamps[0] - log.timestamps[1] == 14 * 3600


def test_tsv_default_columns_numeric_time(tmp_path: Path) -> None:
    log = read_table(write(tmp_path, "log.tsv", "user_id\titem_id\ttimestamp\n1\t2\t5\n3\t4\t6\n"))
    assert log.users.tolist() == [1, 3] and log.timestamps.tolist() == [5, 6]


def test_table_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "a,b\n1,2\n")
    with pytest.raises(DataFormatError, match="user_col"):
        read_table(path)
    with pytest.raises(DataFormatError, match="no item column 'zz'"):
        read_table(path, user_col="a", item_col="zz")
    path = write(tmp_path, "log2.csv", "user,item\n1,2\n1,2,3\n")
    with pytest.raises(DataFormatError, match="expected 2") as exc:
        read_table(path)
    check_error(exc, path, 3, "1,2,3")
    path = write(tmp_path, "log3.csv", "user,item,time\n1,2,3\n1,2,yesterday-ish\n")
    with pytest.raises(DataFormatError, match="invalid time") as exc:
        read_table(path)
    check_error(exc, path, 3, "yesterday-ish")


def test_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "log.parquet"
    pd.DataFrame({"uid": [1, 2], "movieId": [10, 20], "ts": [3, 4]}).to_parquet(path)
    log = read_table(path)
    assert (
        log.users.tolist() == [1, 2] and log.items.tolist() == [10, 20] and log.timestamps.tolist() == [3, 4]
    )


def test_sniff_and_dispatch(tmp_path: Path) -> None:
    assert sniff_format("a/u.data.gz") == "movielens"
    assert sniff_format("a/yelp.rating.xz") == "ncf-rating"
    assert sniff_format("amazon-cds.inter.gz") == "recbole-inter"
    assert sniff_format("users.dat") == "citeulike-users"
    assert sniff_format("dataset_TSMC2014_TKY.txt") == "tsmc2014"
    assert sniff_format("x.parquet") == "table" and sniff_format("x.csv") == "table"
    log = read_interactions(write(tmp_path, "u.data", UDATA, "gz"))
    assert log.fmt == "movielens"
    with pytest.raises(ValueError, match="unknown format 'nope'; known: "):
        read_interactions(tmp_path / "u.data.gz", format="nope")
    with pytest.raises(ValueError, match="user_col"):
        read_interactions(tmp_path / "u.data.gz", user_col="x")
