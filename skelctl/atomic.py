"""Write-to-temp-then-rename, so an interrupted job never leaves a half-written output."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from skelctl.errors import SkelctlError


@contextlib.contextmanager
def atomic_path(out: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `out`; rename it onto `out` only if the block succeeds.

    An existing `out` is untouched until the final `os.replace`, which is atomic on POSIX.
    """
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=f"{suffix}.tmp", dir=parent)
    except OSError as exc:
        raise SkelctlError(f"cannot write here ({exc.strerror or exc})", out) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def write_text_atomic(out: str | Path, text: str) -> None:
    with atomic_path(out) as tmp:
        tmp.write_text(text)
