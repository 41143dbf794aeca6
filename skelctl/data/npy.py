"""The one reader of untrusted `.npy` files: the header is checked before anything is allocated.

`np.load` trusts the header: a 192-byte file claiming 186 TiB dies with a MemoryError, a
complex array is silently cast. Here the dtype must be real numbers, the claimed data must fit a
clip (`MAX_BYTES`) and must be in the file, and only then is the array read.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from skelctl.errors import SkelctlError

# A (T, 2, 25, 3) float64 clip of 1 GiB has 900,000 frames (8 hours at 30 fps): nothing real.
MAX_BYTES = 1 << 30
NUMBER_KINDS = "fiu"  # float, signed and unsigned integers (not bool, complex, strings, records)
_MAX_HEADER = 10_000  # numpy's own default limit on the header's length


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int  # where the data starts

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def read_header(f: IO[bytes], size: int, max_bytes: int = MAX_BYTES) -> NpyHeader:
    """The validated header of the .npy stream `f` (at its start) of `size` bytes in all.

    Raises `SkelctlError(reason)` without a path: callers know where the bytes came from.
    """
    try:
        version = np.lib.format.read_magic(f)
        reader = {(1, 0): np.lib.format.read_array_header_1_0,
                  (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if reader is None:  # 3.0 only adds utf-8 field names: records are refused anyway
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        shape, fortran_order, dtype = reader(f, max_header_size=_MAX_HEADER)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise SkelctlError(f"not a readable .npy array ({exc})") from exc
    header = NpyHeader(tuple(int(n) for n in shape), np.dtype(dtype), bool(fortran_order), f.tell())
    if header.dtype.kind not in NUMBER_KINDS or header.dtype.fields is not None:
        raise SkelctlError(f"dtype {header.dtype}, expected numbers (real: float or integer)")
    if any(n < 0 for n in header.shape):
        raise SkelctlError(f"shape {header.shape} has a negative size")
    claimed, held = header.nbytes, size - header.offset
    if claimed > held:
        raise SkelctlError(f"header claims shape {header.shape} of {header.dtype}, "
                           f"{_size(claimed)}, but the file holds {_size(max(held, 0))} of data")
    if claimed > max_bytes:
        raise SkelctlError(f"header claims shape {header.shape} of {header.dtype}, "
                           f"{_size(claimed)}: more than the {_size(max_bytes)} a clip may take")
    return header


def read_npy(source: str | Path | bytes, where: str | Path | None = None,
             max_bytes: int = MAX_BYTES) -> np.ndarray:
    """A .npy file (path or bytes) as an array, header checked first (see `read_header`).

    Errors are `SkelctlError` naming `where` (default: the path).
    """
    where = where if where is not None or isinstance(source, bytes) else source
    try:
        if isinstance(source, bytes):
            return _read(io.BytesIO(source), len(source), max_bytes)
        with open(source, "rb") as f:
            return _read(f, os.fstat(f.fileno()).st_size, max_bytes)
    except SkelctlError as exc:
        raise SkelctlError(exc.reason, where) from None
    except OSError as exc:
        raise SkelctlError(f"cannot read ({exc.strerror or exc})", where) from exc


def _read(f: IO[bytes], size: int, max_bytes: int) -> np.ndarray:
    header = read_header(f, size, max_bytes)
    data = np.empty(header.nbytes, np.uint8)
    got = f.readinto(memoryview(data)) if header.nbytes else 0
    if got != header.nbytes:
        raise SkelctlError(f"truncated: {got} of {header.nbytes} data bytes")
    order = "F" if header.fortran_order else "C"
    return data.view(header.dtype).reshape(header.shape, order=order)
