"""Named datasets, load_dataset on paths, published splits, the cache, downloads and the CLI."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from recdistill.cli import main
from recdistill.data import DataFormatError, dataset_stats, load_dataset
from recdistill.data import download as dl
from recdistill.data.split import positives_csr

# 8 users x 20 items; each user misses the 5 items with (7u + 3i) % 4 == 0.
UDATA_ROWS = [
    (u, i, 3, 1000 * u + 10 * i) for u in range(1, 9) for i in range(1, 21) if (7 * u + 3 * i) % 4 != 0
]
UDATA = "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in UDATA_ROWS)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def write_udata(d: Path, text: str = UDATA) -> Path:
    path = d / "ml-100k" / "u.data.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))
    return path


# ---------------------------------------------------------------- names, paths, options


def test_unknown_name_lists_known() -> None:
    with pytest.raises(
        KeyError, match="unknown dataset 'citeulik'.*known: amazon-cds, citeulike, citeulike-bd"
    ):
        load_dataset("citeulik")


def test_named_dataset_from_env_data_dir(tmp_path: Path, cache_dir: Path, monkeypatch) -> None:
    write_udata(tmp_path)
    monkeypatch.setenv("RECDISTILL_DATA", str(tmp_path))
    ds = load_dataset("ml-100k", cache_dir=cache_dir, n_candidates=3)
    assert ds.n_users == 8 and ds.name == "ml-100k" and ds.info["split"] == "leave-one-out by time"
    # Test item = the latest rating of each user (times are 1000u + 10i: the largest item).
    last = {u: max(i for v, i, _, _ in UDATA_ROWS if v == u) for u in range(1, 9)}
    assert {int(ds.user_ids[u]): int(ds.item_ids[t]) for u, t in enumerate(ds.test_items)} == last
    monkeypatch.setenv("RECDISTILL_DATA", str(tmp_path / "empty"))
    with pytest.raises(
        FileNotFoundError, match=r"ml-100k/u.data\[.gz|.xz\] not found.*data download ml-100k"
    ):
        load_dataset("ml-100k", cache=False)


def test_the_demo_dataset_ships_with_the_package(tmp_path: Path, cache_dir: Path, monkeypatch) -> None:
    """citeulike-dcd loads with an empty data directory (the packaged copy, its sha256 checked);
    a data directory holding the file takes precedence; a missing file without a packaged copy
    names the command that gets it, or says it has no public download, never ``shared/``."""
    import shutil

    from recdistill.data.catalog import PACKAGED, packaged_file
    from recdistill.data.io import sha256_file

    monkeypatch.setenv("RECDISTILL_DATA", str(tmp_path / "empty"))
    path = packaged_file("citeulike-dcd")
    assert path is not None and sha256_file(path) == PACKAGED["citeulike-dcd"][1]
    ds = load_dataset("citeulike-dcd", cache_dir=cache_dir)
    assert (ds.n_users, ds.n_items, ds.n_train) == (5219, 25181, 115142)
    assert ds.info["source_sha256"] == {str(path): PACKAGED["citeulike-dcd"][1]}
    own = tmp_path / "mine" / "citeulike-t"
    own.mkdir(parents=True)
    shutil.copy(path, own / "derrd_loo_split.tsv.gz")
    ds2 = load_dataset("citeulike-dcd", data_dir=tmp_path / "mine", cache_dir=cache_dir)
    assert list(ds2.info["source_sha256"]) == [str(own / "derrd_loo_split.tsv.gz")]
    with pytest.raises(FileNotFoundError, match="no public download: it was converted from") as exc:
        load_dataset("citeulike-bd", cache=False)
    assert "shared" not in str(exc.value)
    # a corrupted packaged copy is refused
    bad = tmp_path / "pkg"
    (bad / "citeulike-t").mkdir(parents=True)
    (bad / "citeulike-t" / "derrd_loo_split.tsv.gz").write_bytes(path.read_bytes()[:-10])
    monkeypatch.setattr("recdistill.data.catalog.PACKAGED_DIR", bad)
    with pytest.raises(ValueError, match="packaged file .* has sha256 .*reinstall"):
        load_dataset("citeulike-dcd", cache=False)


def test_options_are_checked(tmp_path: Path, cache_dir: Path) -> None:
    path = write_udata(tmp_path)
    with pytest.raises(ValueError, match="option.s. min_users do not apply.*valid: .*min_user_interactions"):
        load_dataset(path, cache_dir=cache_dir, min_users=3)
    split = write_split(tmp_path)
    with pytest.raises(ValueError, match="k_core do not apply to a published split"):
        load_dataset(split, cache_dir=cache_dir, k_core=3)


def test_path_with_reader_options(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "log.csv"
    rows = [f"u{u},i{i},{u * 100 + i}" for u in range(6) for i in range(u + 3)]
    path.write_text("who,what,when\n" + "\n".join(rows) + "\n")
    ds = load_dataset(
        path, cache_dir=cache_dir, user_col="who", item_col="what", time_col="when", n_candidates=0
    )
    assert ds.n_users == 6 and ds.n_items == 8
    assert {str(ds.item_ids[t]) for t in ds.test_items} == {f"i{u + 2}" for u in range(6)}
    ds2 = load_dataset(
        path,
        cache_dir=cache_dir,
        user_col="who",
        item_col="what",
        time_col="when",
        n_candidates=0,
        min_user_interactions=5,
    )
    assert ds2.n_users == 4 and ds2.info["users_dropped"]["min_user_interactions"] == 2


# ---------------------------------------------------------------- published splits

SPLIT_ROWS = [
    "user\titem\tsplit\traw_user\traw_item",
    "0\t0\ttrain\t10\t100",
    "0\t1\ttrain\t10\t101",
    "0\t1\ttrain\t10\t101",  # duplicate training row: dropped and counted
    "1\t2\ttrain\t11\t102",
    "1\t0\ttrain\t11\t100",
    "0\t2\tvalid\t10\t102",
    "1\t3\tvalid\t11\t103",
    "0\t3\ttest\t10\t103",
    "1\t4\ttest\t11\t104",
]


def write_split(d: Path, rows: list[str] = SPLIT_ROWS, name: str = "my_split.tsv") -> Path:
    path = d / name
    path.write_text("\n".join(rows) + "\n")
    return path


def test_published_split_used_as_given(tmp_path: Path, cache_dir: Path) -> None:
    ds = load_dataset(write_split(tmp_path), cache_dir=cache_dir, n_candidates=1, seed=5)
    assert (ds.n_users, ds.n_items) == (2, 5) and ds.info["split"] == "published"
    assert ds.train.toarray().tolist() == [[1, 1, 0, 0, 0], [1, 0, 1, 0, 0]]
    assert ds.valid_items.tolist() == [2, 3] and ds.test_items.tolist() == [3, 4]
    assert ds.user_ids.tolist() == [10, 11] and ds.item_ids.tolist() == [100, 101, 102, 103, 104]
    assert ds.info["duplicates_dropped"] == 1
    assert ds.candidates.tolist() == [[4], [1]]  # the only never-interacted item of each user


@pytest.mark.parametrize(
    "bad, problem",
    [
        ("1\t3\tvalidation\t11\t103", "split must be one of"),
        ("1\tx\ttrain\t11\t103", "field 2"),
        ("1\t3", "expected 5"),
    ],
)
def test_published_split_malformed(tmp_path: Path, bad: str, problem: str) -> None:
    path = write_split(tmp_path, SPLIT_ROWS[:3] + [bad] + SPLIT_ROWS[3:])
    with pytest.raises(DataFormatError, match=problem) as exc:
        load_dataset(path, cache=False)
    assert exc.value.line == 4 and str(path) in str(exc.value) and exc.value.text == bad


def test_published_split_two_valid_items(tmp_path: Path) -> None:
    path = write_split(tmp_path, SPLIT_ROWS + ["1\t1\tvalid\t11\t101"])
    with pytest.raises(DataFormatError, match="user 1 has more than one valid item") as exc:
        load_dataset(path, cache=False)
    assert exc.value.line == len(SPLIT_ROWS) + 1


# ---------------------------------------------------------------- cache


def same(a, b) -> bool:
    return (
        (a.n_users, a.n_items) == (b.n_users, b.n_items)
        and (a.train != b.train).nnz == 0
        and all(
            np.array_equal(getattr(a, k), getattr(b, k))
            for k in ("valid_items", "test_items", "candidates", "user_ids", "item_ids")
        )
    )


def test_cache_hit_miss_and_atomic(tmp_path: Path, cache_dir: Path) -> None:
    path = write_udata(tmp_path)
    first = load_dataset(path, cache_dir=cache_dir, n_candidates=4)
    assert "cache" not in first.info
    files = list((cache_dir / "datasets").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary file left behind
    hit = load_dataset(path, cache_dir=cache_dir, n_candidates=4)
    assert hit.info["cache"] == str(files[0]) and same(first, hit)
    assert hit.info["duplicates_dropped"] == first.info["duplicates_dropped"]
    assert hit.train.dtype == np.float32 and hit.candidates.dtype == np.int32
    # A changed setting misses.
    other = load_dataset(path, cache_dir=cache_dir, n_candidates=4, seed=1)
    assert "cache" not in other.info and not same(first, other)
    # A changed file (same name) misses: one more user appears.
    write_udata(tmp_path, UDATA + "99\t1\t5\t1\n99\t2\t5\t2\n99\t3\t5\t3\n")
    changed = load_dataset(path, cache_dir=cache_dir, n_candidates=4)
    assert "cache" not in changed.info and changed.n_users == first.n_users + 1
    assert len(list((cache_dir / "datasets").iterdir())) == 3


def test_corrupt_cache_is_rebuilt(tmp_path: Path, cache_dir: Path) -> None:
    path = write_udata(tmp_path)
    first = load_dataset(path, cache_dir=cache_dir, n_candidates=2)
    (cache_file,) = (cache_dir / "datasets").iterdir()
    cache_file.write_bytes(b"not an npz")
    again = load_dataset(path, cache_dir=cache_dir, n_candidates=2)
    assert "cache" not in again.info and same(first, again)
    assert "cache" in load_dataset(path, cache_dir=cache_dir, n_candidates=2).info


def test_unwritable_cache_warns(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.warns(UserWarning, match="could not write the dataset cache"):
        ds = load_dataset(write_udata(tmp_path), cache_dir=blocker, n_candidates=2)
    assert ds.n_users == 8


def test_cache_dir_from_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RECDISTILL_CACHE", str(tmp_path / "envcache"))
    load_dataset(write_udata(tmp_path), n_candidates=2)
    assert len(list((tmp_path / "envcache" / "datasets").glob("*.npz"))) == 1


def test_string_ids_survive_the_cache(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "x.inter"
    path.write_text(
        "user_id:token\titem_id:token\n" + "".join(f"u{u}\tit{i}\n" for u in range(4) for i in range(5))
    )
    a = load_dataset(path, cache_dir=cache_dir, n_candidates=0)
    b = load_dataset(path, cache_dir=cache_dir, n_candidates=0)
    assert "cache" in b.info and b.user_ids.tolist() == ["u0", "u1", "u2", "u3"] and same(a, b)


# ---------------------------------------------------------------- download


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_zip_member_then_load(http_root, tmp_path: Path, cache_dir: Path, monkeypatch) -> None:
    root, url = http_root
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ml-100k/README", "hi")
        z.writestr("ml-100k/u.data", UDATA)
    (root / "ml-100k.zip").write_bytes(buf.getvalue())
    src = dl.Source(
        url=f"{url}/ml-100k.zip",
        target="ml-100k/u.data",
        sha256=sha(buf.getvalue()),
        member="ml-100k/u.data",
        content_sha256=sha(UDATA.encode()),
    )
    monkeypatch.setitem(dl.SOURCES, "ml-100k", [src])
    data_dir = tmp_path / "data"
    ds = load_dataset("ml-100k", data_dir=data_dir, download=True, cache_dir=cache_dir, n_candidates=2)
    assert (data_dir / "ml-100k" / "u.data").read_text() == UDATA and ds.n_users == 8
    assert [p.name for p in (data_dir / "ml-100k").iterdir()] == ["u.data"]


def test_download_hash_mismatch(http_root, tmp_path: Path, monkeypatch) -> None:
    root, url = http_root
    (root / "users.dat").write_text("2 1 2\n")
    src = dl.Source(url=f"{url}/users.dat", target="citeulike-t/users.dat", sha256="0" * 64)
    monkeypatch.setitem(dl.SOURCES, "citeulike", [src])
    with pytest.raises(ValueError, match=f"sha256 mismatch for {url}/users.dat: expected 0000"):
        dl.download("citeulike", tmp_path / "data")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*"))
    # The CLI reports the same error as one line and exit status 2; a good hash downloads.
    assert main(["data", "download", "citeulike", "--data-dir", str(tmp_path / "data")]) == 2
    monkeypatch.setitem(dl.SOURCES, "citeulike", [dl.Source(src.url, src.target, sha(b"2 1 2\n"))])
    assert main(["data", "download", "citeulike", "--data-dir", str(tmp_path / "data")]) == 0
    assert (tmp_path / "data" / "citeulike-t" / "users.dat").read_text() == "2 1 2\n"


def test_download_errors(http_root, tmp_path: Path, monkeypatch) -> None:
    _, url = http_root
    monkeypatch.setitem(dl.SOURCES, "citeulike", [dl.Source(f"{url}/missing", "x", "0" * 64)])
    with pytest.raises(ValueError, match="download of .*/missing failed"):
        dl.download("citeulike", tmp_path)
    with pytest.raises(ValueError, match="citeulike-bd: no public source"):
        dl.download("citeulike-bd", tmp_path)
    with pytest.raises(KeyError, match="downloadable: amazon-cds, citeulike, ml-100k"):
        dl.download("nope", tmp_path)


# ---------------------------------------------------------------- CLI


def test_cli_stats(tmp_path: Path, cache_dir: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("RECDISTILL_CACHE", str(cache_dir))
    path = write_udata(tmp_path)
    assert main(["data", "stats", str(path), "--json", "--n-candidates", "2"]) == 0
    stats = json.loads(capsys.readouterr().out)
    ds = load_dataset(path, n_candidates=2)
    assert stats == json.loads(json.dumps(dataset_stats(ds)))
    assert stats["interactions"] == len(UDATA_ROWS) == stats["train"] + stats["valid"] + stats["test"]
    assert stats["sparsity"] == pytest.approx(1 - len(UDATA_ROWS) / (stats["users"] * stats["items"]))
    assert main(["data", "stats", "ml-100k", "--data-dir", str(tmp_path), "--n-candidates", "2"]) == 0
    out = capsys.readouterr().out
    assert "users" in out and "interactions" in out
    assert main(["data", "stats", "nope"]) == 2
    assert (
        "known: amazon-cds, citeulike, citeulike-bd, citeulike-dcd, citeulike-rou, foursquare-tky, "
        "ml-100k, yelp" in capsys.readouterr().err
    )


# ---------------------------------------------------------------- the real data


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real-cache")


def held_out_set(ds) -> set:
    return {(u, int(i)) for u, i in enumerate(ds.valid_items)} | {
        (u, int(i)) for u, i in enumerate(ds.test_items)
    }


def test_real_citeulike_bd(data_dir: Path, real_cache: Path) -> None:
    ds = load_dataset("citeulike-bd", data_dir=data_dir, cache_dir=real_cache)
    s = dataset_stats(ds)
    assert (s["users"], s["items"], s["interactions"]) == (5219, 25187, 130788)  # BD Table 1
    assert (s["train"], s["valid"], s["test"], s["duplicates_dropped"]) == (120350, 5219, 5219, 11)
    # As published: test = the line's second-to-last token, valid = the last token.
    from recdistill.data.readers import read_citeulike_users

    log = read_citeulike_users(next(data_dir.glob("citeulike-t/users.dat*")))
    ends = np.cumsum(np.bincount(log.users))
    line = ds.user_ids  # raw_user = line number
    np.testing.assert_array_equal(ds.item_ids[ds.valid_items], log.items[ends[line] - 1])
    np.testing.assert_array_equal(ds.item_ids[ds.test_items], log.items[ends[line] - 2])
    pos = positives_csr(ds.train, ds.valid_items, ds.test_items)
    keys = np.repeat(np.arange(ds.n_users), np.diff(pos.indptr)) * ds.n_items + pos.indices
    cand_keys = np.arange(ds.n_users)[:, None] * ds.n_items + ds.candidates
    assert not np.isin(cand_keys, keys).any()
    assert (np.diff(np.sort(ds.candidates, axis=1), axis=1) > 0).all()


def test_real_citeulike_dcd_and_citeulike(data_dir: Path, real_cache: Path) -> None:
    dcd = load_dataset("citeulike-dcd", data_dir=data_dir, cache_dir=real_cache)
    assert (dcd.n_users, dcd.n_items, dcd.n_train) == (5219, 25181, 115142)
    assert dataset_stats(dcd)["interactions"] == 125580
    ours = load_dataset("citeulike", data_dir=data_dir, cache_dir=real_cache)
    s = dataset_stats(ours)
    assert (s["users"], s["items"], s["interactions"], s["train"]) == (5219, 25181, 125580, 115142)
    assert ours.info["users_dropped"]["min_user_interactions"] == 7947 - 5219
    # The same users and items as DE-RRD's split (their ids in users.dat order).
    np.testing.assert_array_equal(ours.user_ids, dcd.user_ids)
    assert set(ours.item_ids.tolist()) == set(dcd.item_ids.tolist())


def test_real_ml100k_and_amazon(data_dir: Path, real_cache: Path) -> None:
    ml = dataset_stats(load_dataset("ml-100k", data_dir=data_dir, cache_dir=real_cache))
    assert (ml["users"], ml["items"], ml["interactions"], ml["train"]) == (943, 1682, 100000, 98114)
    amz = dataset_stats(load_dataset("amazon-cds", data_dir=data_dir, cache_dir=real_cache, n_candidates=0))
    assert (amz["users"], amz["items"], amz["interactions"]) == (43169, 35648, 777426)


def test_a_cache_hit_from_a_copy_names_the_file_given(tmp_path: Path, cache_dir: Path) -> None:
    """The same content under another folder shares the cached split, but the dataset is named
    (and its source recorded) by the path asked for."""
    a = write_udata(tmp_path / "a")
    b = write_udata(tmp_path / "b")
    assert a.name == b.name and a != b
    first = load_dataset(a, cache_dir=cache_dir, n_candidates=4)
    hit = load_dataset(b, cache_dir=cache_dir, n_candidates=4)
    assert "cache" in hit.info and same(first, hit)
    assert hit.name == str(b) and list(hit.info["source_sha256"]) == [str(b)]
