"""Write-to-temp-then-rename, so an interrupted job never leaves a half-written output.

Temp files are named `.OUT.<host>.<pid>.<random>[suffix].tmp`: a later writer of OUT on the
same host removes those whose process is gone (a `kill -9` leaves its temp file behind).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from skelctl.errors import SkelctlError


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "localhost"


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_mode(directory: bool = False) -> int:
    """The mode a plain `open()` (or `mkdir`) gives a new file under the current umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def temp_prefix(out: Path) -> str:
    """Prefix of this process's temp names for OUT (`tempfile` appends random characters)."""
    return f".{out.name}.{_host()}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except (OverflowError, ValueError):  # not a pid: not ours to judge
        return True
    return True


def remove_stale_temps(out: Path) -> list[Path]:
    """Remove temp files and folders of OUT left by dead writers on this host; returns them.

    Names without this host or pid (older skelctl, other machines on a shared disk) are kept.
    """
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    pattern = re.compile(
        rf"\.{re.escape(out.name)}\.{re.escape(_host())}\.(\d+)\.[A-Za-z0-9_]+(\.[A-Za-z0-9]+)?\.(tmp|old)"
    )
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or int(match[1]) == os.getpid() or _pid_alive(int(match[1])):
            continue
        if match[3] == "old" and not out.exists():  # a swap cut short: it holds the only copy
            continue
        path = parent / name
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(out: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `out`; rename it onto `out` only if the block succeeds.

    An existing `out` is untouched until the final `os.replace`, which is atomic on POSIX. The
    result has the mode a plain `open()` would give it (mkstemp's own is 0600).
    """
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(out), suffix=f"{suffix}.tmp", dir=parent)
    except OSError as exc:
        raise SkelctlError(f"cannot write here ({exc.strerror or exc})", out) from exc
    try:
        os.fchmod(fd, plain_mode())
    finally:
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
