"""Errors are values with a message a user can act on; the CLI prints them once.

`SkelctlError` is bad input or usage (exit 2); `RuntimeFailure` is a job that started
and could not finish (exit 1); `Rejection` is a bad input file that a run records and skips
(preprocessing's report and the dataset's `/rejected`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class SkelctlError(Exception):
    """Bad input or usage: one line `path:line: reason`, exit code 2."""

    exit_code = 2

    def __init__(self, reason: str, path: str | Path | None = None, line: int | None = None):
        self.reason = reason
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = self.path or ""
        if self.path is not None and self.line is not None:
            where = f"{self.path}:{self.line}"
        return f"{where}: {self.reason}" if where else self.reason


class RuntimeFailure(SkelctlError):
    """A job that started but could not finish (diverged, interrupted, I/O failure): exit 1."""

    exit_code = 1


@dataclass(frozen=True)
class Rejection:
    """A raw input that was not turned into samples, and why (line -1 when not known)."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line >= 0 else self.path
        return f"{where}: {self.reason}"
