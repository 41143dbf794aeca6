"""SIGINT / SIGTERM as a clean stop: exit 1 with one line, never a bare 130 or 143.

`raise_on_signals()` (the CLI's default) raises `Interrupted` where the signal lands; it is a
BaseException so no library's `except Exception` swallows it. A loop that can stop at a clean
point (pretraining between steps) uses `deferred()` instead: the first signal only sets a flag
the loop checks, a second one interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A stop signal arrived; the CLI reports it as a runtime failure (exit 1)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def _install(handler: Any) -> dict[int, Any] | None:
    """Set `handler` for SIGINT and SIGTERM; the previous handlers, or None off the main thread
    (where Python cannot set handlers: the caller's ones stay)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return {sig: signal.signal(sig, handler) for sig in SIGNALS}


def _restore(previous: dict[int, Any] | None) -> None:
    for sig, handler in (previous or {}).items():
        signal.signal(sig, handler)


@contextlib.contextmanager
def raise_on_signals() -> Iterator[None]:
    previous = _install(_raise)
    try:
        yield
    finally:
        _restore(previous)


@contextlib.contextmanager
def deferred() -> Iterator[threading.Event]:
    """An event set by the first SIGINT/SIGTERM (check it at clean points); a second signal
    raises `Interrupted` wherever it lands."""
    stop = threading.Event()

    def request(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise Interrupted(signum)
        stop.signum = signum  # type: ignore[attr-defined]
        stop.set()

    previous = _install(request)
    try:
        yield stop
    finally:
        _restore(previous)
