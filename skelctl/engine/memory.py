"""CPU memory of a training process: give freed pages back to the OS only above a budget.

glibc's malloc keeps freed heap chunks for reuse; a training step frees gigabytes of activations
of many sizes, so the resident size climbs above the live tensors. `malloc_trim(0)` gives the
free pages back, but every page given back is faulted in again (and zeroed by the kernel) when
the next loss term allocates: skelctl used to trim after each loss term whenever the heap held
more than 512 MiB free, which on a 2-core machine raised a SkeleMixCLR+ step (batch 64, fp32)
from ~3.0 to ~5.0 million page faults and its kernel time from ~6 to ~9.7 s (docs/perf-memory.md).

`ResidentBudget` reads the resident size after each loss term (/proc/self/statm: microseconds)
and trims only when it is above the budget (`train.release_memory_above_mib`, by default
`train.memory_budget_mib`). A trim is useful only when the next check finds the resident size
within the budget; when it does not (the memory was needed again, only faulted back in), the
next tries get exponentially rarer. So a run under its budget, or one whose live memory is
above it, pays one /proc read per loss term, not a trim.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

MIB = 2**20


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 (glibc only)
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def _page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int | None:
    """The process's resident set size now; None where /proc is missing."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _page_size()
    except (OSError, ValueError, IndexError):
        return None


def trim_heap() -> bool:
    """Give the C heap's free pages back to the OS (glibc's `malloc_trim(0)`); False without glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


class ResidentBudget:
    """Called after each loss term: trims the heap when the resident size is above `budget`
    bytes. Freed pages stay resident until trimmed, so the resident size after a term is about
    that term's peak, and the next check tells whether the trim kept the run within the budget;
    when it did not (the live memory is above the budget, and what was given back was only
    faulted in again), the number of checks skipped before the next try doubles (up to
    `max_skip`); a trim that did resets it."""

    def __init__(self, budget: int, max_skip: int = 64):
        self.budget, self.max_skip = budget, max_skip
        self.skip = self.backoff = 0
        self.trimmed_at: int | None = None  # the resident size the last trim started from
        self.trims = 0

    def __call__(self) -> bool:
        """True when it trimmed."""
        if self.skip:
            self.skip -= 1
            return False
        resident = resident_bytes()
        if resident is None:
            return False
        if self.trimmed_at is not None:
            useful = resident <= self.budget
            self.backoff = 0 if useful else min(max(2 * self.backoff, 1), self.max_skip)
            self.trimmed_at = None
            if self.backoff:
                self.skip = self.backoff - 1  # this check counts as the first skipped
                return False
        if resident <= self.budget or not trim_heap():
            return False
        self.trims += 1
        self.trimmed_at = resident
        return True


def available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo: what can be allocated without swapping; None without it."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_budget(mib: int | None) -> int:
    """`train.memory_budget_mib` in bytes; None: what the process holds now plus half of the
    memory available (8 GiB where neither can be read)."""
    if mib is not None:
        return mib * MIB
    resident, available = resident_bytes(), available_bytes()
    if resident is None or available is None:
        return 8 * 2**30
    return resident + available // 2
