"""An exclusive lock on a folder being written (a run directory, an index being built).

The lock is `fcntl.flock` on a small file holding the holder's pid. The kernel drops a flock
when its holder dies, so a lock file left by a killed process is simply taken over; a live
holder makes the second writer fail at once (exit 2) naming the holder's pid, instead of two
runs interleaving their metrics and checkpoints in one folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from skelctl.errors import SkelctlError


def _holder(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip() or "x")
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _acquire(lock_file: Path, folder: Path) -> int | None:
    """The locked file's descriptor (our pid written in it); None where the file system has
    no flock (then the folder is written unlocked, as before)."""
    for _ in range(100):
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise SkelctlError(f"cannot create the lock file {lock_file.name} ({exc.strerror or exc})", folder) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            if pid is None:
                holder = "another process"
            elif _alive(pid):
                holder = f"process {pid}"
            else:  # the pid died but a process it started inherited the lock
                holder = f"a child of process {pid} (which has ended)"
            raise SkelctlError(f"in use by {holder} (lock file {lock_file.name}): wait for it to "
                               "finish or stop it, or choose another folder", folder) from None
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                return None
            raise
        # The previous holder may have unlinked the file between our open and flock: then
        # we locked a dead inode and must start over on the current one.
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_file).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)
    raise SkelctlError(f"cannot take the lock file {lock_file.name} (it keeps being replaced)", folder)


class FolderLock:
    """An exclusive lock on `folder` (named in messages) through `lock_file`, held from
    construction until `release()`, which also removes the lock file."""

    def __init__(self, lock_file: str | Path, folder: str | Path | None = None):
        self.lock_file = Path(lock_file)
        self._fd = _acquire(self.lock_file, Path(folder) if folder is not None else self.lock_file.parent)
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.lock_file.unlink()  # before closing: a newcomer then finds no file or a new one
            os.close(self._fd)


@contextlib.contextmanager
def folder_lock(lock_file: str | Path, folder: str | Path | None = None) -> Iterator[None]:
    lock = FolderLock(lock_file, folder)
    try:
        yield
    finally:
        lock.release()
