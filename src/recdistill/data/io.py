"""Low-level file helpers: transparent .gz/.xz reading, hashing, atomic writes, and the
line-numbered error every reader raises for malformed input."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from recdistill.errors import MissingFileError, RecdistillError

GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"
COMPRESSED_SUFFIXES = (".gz", ".xz")


class DataFormatError(RecdistillError):
    """A malformed input file: names the file, the 1-based line number and the offending text."""

    def __init__(self, path: str | os.PathLike, line: int | None, text: str | None, problem: str) -> None:
        self.path, self.line, self.text, self.problem = str(path), line, text, problem
        where = f"{path}, line {line}" if line is not None else f"{path}"
        shown = "" if text is None else f": {text[:200]!r}"
        super().__init__(f"{where}: {problem}{shown}")


def read_bytes(path: str | os.PathLike) -> bytes:
    """The decompressed content of ``path``; gzip and xz are recognised by their magic bytes."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"data file not found: {path}")
    raw = path.read_bytes()
    try:
        if raw.startswith(GZIP_MAGIC):
            return gzip.decompress(raw)
        if raw.startswith(XZ_MAGIC):
            return lzma.decompress(raw)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise DataFormatError(path, None, None, f"corrupt compressed file ({exc})") from None
    return raw


def first_line(path: str | os.PathLike, limit: int = 1 << 16) -> str:
    """The first line of ``path`` (decompressing only what is needed), without its line end."""
    with open(path, "rb") as f:
        magic = f.read(6)
    opener = gzip.open if magic.startswith(GZIP_MAGIC) else lzma.open if magic.startswith(XZ_MAGIC) else open
    with opener(path, "rb") as f:
        return f.readline(limit).decode("utf-8", "replace").rstrip("\r\n")


def strip_compression(name: str) -> str:
    """``'u.data.gz' -> 'u.data'``."""
    for suf in COMPRESSED_SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the bytes of ``path`` as stored on disk."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def first_bad_line(
    path: str | os.PathLike,
    lines: Iterable[str],
    check: Callable[[str], str | None],
    first_line_no: int = 1,
) -> DataFormatError | None:
    """Scan ``lines`` (slow path, only after a fast parse failed) for the first line where
    ``check`` returns a problem description; return the error to raise, or None."""
    for i, line in enumerate(lines, start=first_line_no):
        problem = check(line)
        if problem is not None:
            return DataFormatError(path, i, line, problem)
    return None
