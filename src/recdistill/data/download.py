"""Optional downloads of raw files from their public sources, checked by sha256, written
atomically. Only on request (``load_dataset(..., download=True)`` or ``recdistill data download``)."""

from __future__ import annotations

import io
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from recdistill.atomic import atomic_bytes
from recdistill.data.io import sha256_bytes
from recdistill.errors import RecdistillError, UnknownNameError


@dataclass(frozen=True)
class Source:
    """Where a raw file comes from. ``sha256`` checks the downloaded bytes; ``member`` names the
    file inside a zip archive (matched by path or base name) whose content must hash to
    ``content_sha256``. ``target`` is the path written under the data directory."""

    url: str
    target: str
    sha256: str | None = None
    member: str | None = None
    content_sha256: str | None = None


# Sources and hashes from shared/data/README.md.
SOURCES: dict[str, list[Source]] = {
    "citeulike": [
        Source(
            url="https://raw.githubusercontent.com/changun/CollMetric/"
            "5e0604d50ddaf2f0f338bde1ce5e4cade51ac144/citeulike-t/users.dat",
            target="citeulike-t/users.dat",
            sha256="02d5d429b2c0362e0ed79f6ef204666b4092563d21493abf4dfb521e8a7078bf",
        )
    ],
    "ml-100k": [
        Source(
            url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
            target="ml-100k/u.data",
            member="ml-100k/u.data",
            content_sha256="06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        )
    ],
    "amazon-cds": [
        Source(
            url="https://raw.githubusercontent.com/Joinn99/FPSR/"
            "c7eb7884bf015d6f017658373a7b7f1675343404/Data/amazon-cds.zip",
            target="amazon-cds/amazon-cds.inter",
            sha256="7ccc7edc8b818d9ad05cde6431476dca9f4dc5b68ea8ad7cf9438d3a19a1c467",
            member="amazon-cds/amazon-cds.inter",
            content_sha256="35e1d4e0e1d51d8f5957d80908fc513103cb6926b889a0ee5742f4afacb0cb28",
        )
    ],
}

NO_SOURCE = {
    "citeulike-bd": "converted from WonbinKweon/BD_WWW2021 data/cul/{train,val,test}_5.pt",
    "citeulike-dcd": "converted from SeongKu-Kang/DE-RRD_CIKM20 citeULike/LOO pickles",
}


def _check(what: str, data: bytes, expected: str | None) -> None:
    if expected is not None:
        got = sha256_bytes(data)
        if got != expected:
            raise RecdistillError(f"sha256 mismatch for {what}: expected {expected}, got {got}")


def _member(url: str, archive: bytes, member: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as z:
            names = z.namelist()
            base = member.rsplit("/", 1)[-1]
            match = [n for n in names if n == member] or [n for n in names if n.rsplit("/", 1)[-1] == base]
            if not match:
                raise RecdistillError(f"{url}: no {member!r} in the archive (has {', '.join(names[:10])})")
            return z.read(match[0])
    except zipfile.BadZipFile as exc:
        raise RecdistillError(f"{url}: not a zip archive ({exc})") from None


def fetch(source: Source, data_dir: str | Path, timeout: float = 60.0) -> Path:
    """Download ``source`` into ``data_dir`` (verified, atomic); returns the written path."""
    try:
        with urllib.request.urlopen(source.url, timeout=timeout) as resp:
            data = resp.read()
    except OSError as exc:
        raise RecdistillError(f"download of {source.url} failed: {exc}") from None
    _check(source.url, data, source.sha256)
    if source.member is not None:
        data = _member(source.url, data, source.member)
        _check(f"{source.url}!{source.member}", data, source.content_sha256)
    out = Path(data_dir) / source.target
    atomic_bytes(data, out)
    return out


def download(name: str, data_dir: str | Path, timeout: float = 60.0) -> list[Path]:
    """Fetch every raw file of the named dataset into ``data_dir``."""
    if name in NO_SOURCE:
        raise RecdistillError(f"{name}: no public source for this file; it was {NO_SOURCE[name]}")
    if name not in SOURCES:
        known = ", ".join(sorted(SOURCES))
        raise UnknownNameError(f"no download source for {name!r}; downloadable: {known}")
    return [fetch(s, data_dir, timeout) for s in SOURCES[name]]
