"""The project's exception types. A :class:`RecdistillError` is a user error (bad input data,
config value, file or command): the CLI prints its message as one line and exits with status 2.
Anything else that escapes is a bug and keeps its traceback."""

from __future__ import annotations

__all__ = ["MissingFileError", "RecdistillError", "RunInterrupted", "UnknownNameError", "UnsafeFileError"]


class RecdistillError(ValueError):
    """A user error; the message names the file, line, key or value and what was expected."""


class UnknownNameError(RecdistillError, KeyError):
    """An unknown registry name (model, distiller, dataset, weight function)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingFileError(RecdistillError, FileNotFoundError):
    """A file or run directory that does not exist."""


class UnsafeFileError(RecdistillError):
    """A file that cannot be loaded without running code (a pickle payload), or is not ours."""


class RunInterrupted(RecdistillError):
    """Ctrl-C during training: the message says where the run stopped and how to resume."""
