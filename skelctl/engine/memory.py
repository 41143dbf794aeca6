"""Give freed CPU memory back to the OS between loss terms.

glibc's malloc keeps freed heap chunks for reuse. A training step allocates and frees gigabytes
of activations of many sizes, so the heap fragments and the resident size climbs well above the
live tensors (SkeleMixCLR+, batch 64, bf16: 2.25 GiB RSS for 1.4 GiB live). `malloc_trim(0)`
returns the free pages; called once per loss term it costs about a tenth of a CPU step and keeps
RSS near the live peak (1.65 GiB). A no-op where the C library has no `malloc_trim`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS; False where that is not possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
