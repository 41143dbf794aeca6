"""The HDF5 dataset file: every clip of a dataset in one array, plus what is needed to use it.

```
/joints       float32 (F, M, V, C)  all frames of all samples, chunked along F, compressed
/offsets      int64 (N+1)           sample i = joints[offsets[i]:offsets[i+1]]
/length       int32 (N)
/name         utf-8 str (N)
/label        int16 (N)             dense 0-based class index
/subject /camera /setup /replication   int16 (N), -1 when unknown
/split/<benchmark>/train, /split/<benchmark>/test   int64 sample indices
/rejected/path (str), /rejected/line (int32, -1 unknown), /rejected/reason (str)
attrs: format, kind, layout (JSON), class_names (JSON list), label_map (JSON list: dense index
       -> raw id), options (JSON), skelctl_version, created
```
Clips are stored at native length, so one file serves every preset (resizing happens at load).
Frames live in one flat array so a reader can load a whole split with a few large reads.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from skelctl import __version__
from skelctl.atomic import atomic_path
from skelctl.data.clipfile import NUM_BODIES
from skelctl.data.layout import Layout
from skelctl.errors import Rejection, RuntimeFailure, SkelctlError

try:  # optional C speedups: chunks compressed here, not by HDF5 (same format, faster)
    from skelctl.data import _speedups
except ImportError:  # pragma: no cover - depends on the build
    _speedups = None

FORMAT = "skelctl-skeletons/1"
META_COLUMNS = ("subject", "camera", "setup", "replication")
SPLIT_PARTS = ("train", "test")
# 256 frames x 2 bodies x 25 joints x 3 = 150 KiB per chunk: a typical clip touches one or two
# chunks, and whole-split reads stay sequential. Byte-shuffle + LZF (why: docs/storage.md). With
# the C speedups the writer shuffles and compresses whole chunks itself (`_speedups.shuffle_lzf`)
# and stores them with `write_direct_chunk`: the same filters, so any h5py reads them; without
# the extension HDF5 applies the filters.
CHUNK_FRAMES = 256
COMPRESSION = "lzf"
_BUFFER_CHUNKS = 16  # frames are appended in whole chunks; at most this many wait in memory
_READ_BLOCK_FRAMES = CHUNK_FRAMES * 64
_CHECK_FRAMES = 8192  # frames per finiteness check (a bool temp of at most 1.2 MB for NTU)
# what h5py raises on a damaged file, depending on which structure the damage hit
_H5PY_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError)
_REQUIRED_KEYS = ("joints", "offsets", "length", "name", "label", *META_COLUMNS)
_REQUIRED_ATTRS = ("kind", "layout", "class_names", "label_map", "options", "skelctl_version")


class DatasetWriter:
    """Write a dataset file clip by clip; OUT appears only when the `with` block succeeds.

    Frames are appended to `/joints` in whole chunks, so memory stays bounded by a few chunks
    whatever the number of clips; the per-sample columns (a few bytes each) are kept until close.
    """

    def __init__(
        self,
        out: str | Path,
        kind: str,
        layout: Layout,
        class_names: Sequence[str],
        label_map: Sequence[int],
        options: dict[str, Any],
        channels: int = 3,
        force: bool = False,
    ):
        if len(class_names) != len(label_map):
            raise ValueError("class_names and label_map must have one entry per class")
        self.out = Path(out)
        self.kind = kind
        self.layout = layout
        self.class_names = list(class_names)
        self.label_map = [int(raw) for raw in label_map]
        self.options = options
        self.force = force  # replace an existing OUT even if it is not a skelctl dataset
        self.frame_shape = (NUM_BODIES, layout.num_joints, channels)
        self._buffer = np.zeros((CHUNK_FRAMES * _BUFFER_CHUNKS, *self.frame_shape), np.float32)
        self._buffered = 0
        self._frames = 0
        self._offsets = [0]
        self._names: list[str] = []
        self._columns: dict[str, list[int]] = {key: [] for key in ("label", *META_COLUMNS)}
        self._splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._rejected: list[Rejection] = []
        self._stack: contextlib.ExitStack | None = None
        self._file: h5py.File | None = None
        self._skip_lzf = 0  # the chunk filter mask that marks lzf as not applied

    def __enter__(self) -> DatasetWriter:
        if self.out.is_dir():
            raise SkelctlError("output is a directory, expected a .h5 file path", self.out)
        if not self.force and (problem := foreign_file(self.out)):
            raise SkelctlError(f"exists and {problem}: pass --force to replace it", self.out)
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.out))
            try:
                self._file = stack.enter_context(h5py.File(tmp, "w"))
            except OSError as exc:
                raise SkelctlError(f"cannot write the dataset ({exc})", self.out) from exc
            joints = self._file.create_dataset(
                "joints",
                shape=(0, *self.frame_shape),
                maxshape=(None, *self.frame_shape),
                dtype=np.float32,
                chunks=(CHUNK_FRAMES, *self.frame_shape),
                compression=COMPRESSION,
                shuffle=True,
            )
            pipeline = joints.id.get_create_plist()
            filters = [pipeline.get_filter(k)[0] for k in range(pipeline.get_nfilters())]
            self._skip_lzf = 1 << filters.index(h5py.h5z.FILTER_LZF)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self._stack is not None, "DatasetWriter used outside its with-block"
        stack, self._stack = self._stack, None
        if exc_type is not None:  # unwind atomic_path with the error: the temp file goes away
            return stack.__exit__(exc_type, exc, tb)
        try:
            with stack:  # on success: close the HDF5 file, then rename the temp file onto OUT
                self._finish()
        except OSError as failure:
            raise RuntimeFailure(f"cannot write the dataset ({failure})", self.out) from failure
        return False

    @property
    def num_samples(self) -> int:
        return len(self._names)

    def add(
        self,
        name: str,
        joints: np.ndarray,
        label: int,
        subject: int = -1,
        camera: int = -1,
        setup: int = -1,
        replication: int = -1,
    ) -> int:
        """Append one clip (T, M, V, C); returns its sample index."""
        joints = np.asarray(joints, dtype=np.float32)
        if joints.ndim != 4 or joints.shape[1:] != self.frame_shape or len(joints) == 0:
            raise ValueError(f"{name}: expected (T>0, *{self.frame_shape}), got {joints.shape}")
        if not 0 <= label < len(self.class_names):
            raise ValueError(f"{name}: label {label} outside 0..{len(self.class_names) - 1}")
        start = 0
        while start < len(joints):
            take = min(len(joints) - start, len(self._buffer) - self._buffered)
            self._buffer[self._buffered : self._buffered + take] = joints[start : start + take]
            self._buffered += take
            start += take
            if self._buffered == len(self._buffer):
                self._flush()
        self._offsets.append(self._offsets[-1] + len(joints))
        self._names.append(name)
        for key, value in zip(
            ("label", *META_COLUMNS), (label, subject, camera, setup, replication), strict=True
        ):
            self._columns[key].append(int(value))
        return len(self._names) - 1

    def reject(self, path: str | Path, line: int | None, reason: str) -> None:
        self._rejected.append(Rejection(str(path), -1 if line is None else int(line), reason))

    def set_split(self, benchmark: str, train: Sequence[int], test: Sequence[int]) -> None:
        self._splits[benchmark] = (np.asarray(train, np.int64), np.asarray(test, np.int64))

    def _flush(self) -> None:
        if self._buffered == 0:
            return
        joints = self._file["joints"]
        try:
            joints.resize(self._frames + self._buffered, axis=0)
            if _speedups is None:
                joints[self._frames :] = self._buffer[: self._buffered]
            else:
                self._write_chunks(joints)
        except OSError as exc:  # disk full, quota: a failed job, not bad input
            raise RuntimeFailure(f"cannot write the dataset ({exc})", self.out) from exc
        self._frames += self._buffered
        self._buffered = 0

    def _write_chunks(self, joints: h5py.Dataset) -> None:
        """Store the buffered frames as whole chunks, shuffled and LZF-compressed here.

        The buffer starts on a chunk boundary (it is flushed only when full, or last); the last
        chunk's frames beyond the data are zeros, outside the dataset's shape.
        """
        assert self._frames % CHUNK_FRAMES == 0, "chunks are written whole"
        end = -(-self._buffered // CHUNK_FRAMES) * CHUNK_FRAMES
        self._buffer[self._buffered : end] = 0
        channels = self.frame_shape[-1]
        # Where values repeat in a shuffled plane: the previous value, the same coordinate of
        # the previous joint, the same value one frame earlier (LZF reaches 8192 bytes back).
        distances = tuple(d for d in (1, channels, math.prod(self.frame_shape)) if d <= 8192)
        for start in range(0, end, CHUNK_FRAMES):
            chunk = self._buffer[start : start + CHUNK_FRAMES]
            payload, compressed = _speedups.shuffle_lzf(chunk, chunk.itemsize, distances)
            where = (self._frames + start, *(0 for _ in self.frame_shape))
            joints.id.write_direct_chunk(where, payload, 0 if compressed else self._skip_lzf)

    def _finish(self) -> None:
        self._flush()
        f = self._file
        n = self.num_samples
        f.create_dataset("offsets", data=np.asarray(self._offsets, np.int64))
        f.create_dataset("length", data=np.diff(self._offsets).astype(np.int32))
        f.create_dataset("name", data=_strings(self._names))
        for key, values in self._columns.items():
            f.create_dataset(key, data=np.asarray(values, np.int16).reshape(n))
        for benchmark, parts in self._splits.items():
            for part, indices in zip(SPLIT_PARTS, parts, strict=True):
                if len(indices) and (indices.min() < 0 or indices.max() >= n):
                    raise ValueError(f"split {benchmark}/{part}: index outside 0..{n - 1}")
                f.create_dataset(f"split/{benchmark}/{part}", data=indices)
        rejected = f.create_group("rejected")
        rejected.create_dataset("path", data=_strings([r.path for r in self._rejected]))
        rejected.create_dataset("line", data=np.asarray([r.line for r in self._rejected], np.int32))
        rejected.create_dataset("reason", data=_strings([r.reason for r in self._rejected]))
        f.attrs.update(
            {
                "format": FORMAT,
                "kind": self.kind,
                "layout": self.layout.to_json(),
                "class_names": json.dumps(self.class_names),
                "label_map": json.dumps(self.label_map),
                "options": json.dumps(self.options, sort_keys=True),
                "skelctl_version": __version__,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        )


def foreign_file(path: Path) -> str:
    """Why an existing `path` is not a skelctl dataset file ('' if it is one or is absent)."""
    if not os.path.lexists(path):
        return ""
    try:
        if not h5py.is_hdf5(path):
            return "is not an HDF5 file"
        with h5py.File(path, "r") as f:
            found = f.attrs.get("format")
    except Exception as exc:  # noqa: BLE001 - any failure means "not ours"
        return f"cannot be read as a skelctl dataset ({type(exc).__name__})"
    return "" if found == FORMAT else "is not a skelctl dataset"


class SkeletonDataset:
    """A dataset file opened for reading: small columns in RAM, frames read lazily or loaded.

    Use `load()` to pull every frame into RAM when it fits; otherwise `clip` and `frames_for`
    read from the file with a large chunk cache.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise SkelctlError("dataset file not found", self.path)
        try:
            self._file = h5py.File(self.path, "r", rdcc_nbytes=64 * 2**20)
        except _H5PY_ERRORS as exc:
            detail = " ".join(str(exc).split())
            raise SkelctlError(f"not a readable HDF5 file ({detail})", self.path) from exc
        try:
            with self._damaged("index"):
                self._read_index()
        except BaseException:
            self._file.close()
            raise
        self._frames: np.ndarray | None = None

    def _fail(self, key: str, what: str) -> SkelctlError:
        return SkelctlError(f"key '{key}': {what}", self.path)

    @contextlib.contextmanager
    def _damaged(self, what: str) -> Iterator[None]:
        """h5py's errors on a damaged file (any of these types) as one line naming the file."""
        try:
            yield
        except SkelctlError:
            raise
        except _H5PY_ERRORS as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise SkelctlError(f"damaged file: cannot read its {what} ({detail})", self.path) from exc

    def _read_index(self) -> None:
        f = self._file
        if f.attrs.get("format") != FORMAT:
            found = f.attrs.get("format")
            what = "missing" if found is None else f"is {found!r}, this skelctl reads {FORMAT!r}"
            raise SkelctlError(f"not a skelctl dataset (attribute 'format' {what})", self.path)
        for key in _REQUIRED_ATTRS:
            if key not in f.attrs:
                raise self._fail(f"@{key}", "missing attribute")
        self.kind: str = self._text_attr("kind")
        self.version: str = self._text_attr("skelctl_version")
        self.created: str = self._text_attr("created") if "created" in f.attrs else ""
        self.layout = self._json_attr("layout", Layout.from_dict)
        self.class_names: list[str] = self._json_attr("class_names")
        self.label_map: list[int] = self._json_attr("label_map")
        self.options: dict[str, Any] = self._json_attr("options")
        if not (isinstance(self.class_names, list) and all(isinstance(c, str) for c in self.class_names)):
            raise self._fail("@class_names", "expected a JSON list of class names")
        if not (isinstance(self.label_map, list) and len(self.label_map) == len(self.class_names)
                and all(type(k) is int for k in self.label_map)):
            raise self._fail("@label_map", "expected a JSON list of integers, one per class")
        if not isinstance(self.options, dict):
            raise self._fail("@options", "expected a JSON object")

        for key in _REQUIRED_KEYS:
            if key not in f:
                raise self._fail(f"/{key}", "missing")
        self.offsets = self._column("offsets")
        n = len(self.offsets) - 1
        if n < 0 or self.offsets[0] != 0 or np.any(np.diff(self.offsets) <= 0):
            raise self._fail("/offsets", "expected 0 then strictly increasing frame offsets")
        joints = f["joints"]
        if joints.ndim != 4 or joints.shape[0] != self.offsets[-1]:
            raise self._fail(
                "/joints", f"expected ({self.offsets[-1]}, M, V, C), got {joints.shape}"
            )
        if joints.shape[2] != self.layout.num_joints:
            raise self._fail(
                "/joints",
                f"{joints.shape[2]} joints but layout '{self.layout.name}' has {self.layout.num_joints}",
            )
        self.names: list[str] = list(f["name"].asstr()[...])
        self.labels = self._column("label", n)
        self.lengths = self._column("length", n)
        if not np.array_equal(self.lengths, np.diff(self.offsets)):
            raise self._fail("/length", "does not match /offsets")
        if len(self.names) != n:
            raise self._fail("/name", f"expected {n} entries, got {len(self.names)}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise self._fail("/label", f"expected class indices in 0..{len(self.class_names) - 1}")
        self._meta = {key: self._column(key, n) for key in META_COLUMNS}

    def _text_attr(self, key: str) -> str:
        """A string attribute; invalid UTF-8 (h5py keeps it as surrogates) is a damaged file."""
        value = self._file.attrs[key]
        try:
            text = value.decode() if isinstance(value, bytes) else value
            if not isinstance(text, str):
                raise TypeError(type(value).__name__)
            text.encode()
        except (UnicodeError, TypeError) as exc:
            raise self._fail(f"@{key}", f"expected UTF-8 text ({type(exc).__name__})") from exc
        return text

    def _json_attr(self, key: str, build: Any = None) -> Any:
        text = self._text_attr(key)
        try:
            value = json.loads(text)
            return build(value, f"{self.path}:@{key}") if build else value
        except (json.JSONDecodeError, TypeError) as exc:
            raise self._fail(f"@{key}", f"not valid JSON ({exc})") from exc

    def _column(self, key: str, expected: int | None = None) -> np.ndarray:
        data = self._file[key]
        if not isinstance(data, h5py.Dataset) or data.ndim != 1:
            raise self._fail(f"/{key}", "expected a 1-D array")
        if expected is not None and len(data) != expected:
            raise self._fail(f"/{key}", f"expected {expected} entries, got {len(data)}")
        return data[...].astype(np.int64)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_samples(self) -> int:
        return len(self.names)

    def meta(self, column: str) -> np.ndarray:
        """`subject`, `camera`, `setup` or `replication` per sample (-1 unknown)."""
        if column not in self._meta:
            raise SkelctlError(
                f"unknown metadata column '{column}' (expected one of {', '.join(META_COLUMNS)})",
                self.path,
            )
        return self._meta[column]

    @property
    def benchmarks(self) -> list[str]:
        with self._damaged("splits"):
            return sorted(self._file["split"]) if "split" in self._file else []

    def split(self, benchmark: str, part: str) -> np.ndarray:
        if part not in SPLIT_PARTS:
            raise SkelctlError(f"unknown split part '{part}' (expected train or test)", self.path)
        key = f"split/{benchmark}/{part}"
        with self._damaged(f"/{key}"):
            if key not in self._file:
                have = ", ".join(self.benchmarks) or "none"
                raise self._fail(f"/{key}", f"missing (benchmarks in this file: {have})")
            data = self._file[key]
            if not isinstance(data, h5py.Dataset) or data.ndim != 1 or data.dtype.kind not in "iu":
                raise self._fail(f"/{key}", "expected a 1-D array of sample indices")
            indices = data[...].astype(np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise self._fail(f"/{key}", f"expected sample indices in 0..{len(self) - 1}")
        return indices

    @property
    def rejected(self) -> list[Rejection]:
        with self._damaged("/rejected"):
            return self._read_rejected()

    def _read_rejected(self) -> list[Rejection]:
        if "rejected" not in self._file:
            return []
        group = self._file["rejected"]
        try:
            rows = zip(
                group["path"].asstr()[...],
                group["line"][...],
                group["reason"].asstr()[...],
                strict=True,
            )
            return [Rejection(str(p), int(line), str(r)) for p, line, r in rows]
        except (KeyError, ValueError) as exc:
            raise self._fail(
                "/rejected", f"expected path, line and reason of equal length ({exc})"
            ) from exc

    @property
    def channels(self) -> int:
        """Coordinates per joint (3, or 2 for 2-D pose)."""
        with self._damaged("/joints"):
            return int(self._file["joints"].shape[-1])

    def load(self) -> SkeletonDataset:
        """Read every frame into RAM (NTU120 at native length: a few GB); returns self."""
        if self._frames is None:
            frames = self._read_joints(slice(None))
            self._refuse_non_finite(frames, self.offsets, np.arange(len(self)))
            self._frames = frames
        return self

    def clip(self, i: int) -> np.ndarray:
        """Sample i as (T, M, V, C) float32."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} outside 0..{len(self) - 1}")
        i %= len(self)
        start, stop = self.offsets[i], self.offsets[i + 1]
        if self._frames is not None:  # checked by load()
            return self._frames[start:stop].copy()
        frames = self._read_joints(slice(start, stop))
        self._refuse_non_finite(frames, np.array([0, stop - start]), np.array([i]))
        return frames

    def non_finite_samples(self) -> np.ndarray:
        """Indices of the samples holding NaN or infinite values (reads every frame, in blocks)."""
        bad: list[np.ndarray] = []
        total = int(self.offsets[-1])
        for start in range(0, total, _READ_BLOCK_FRAMES):
            where = slice(start, min(start + _READ_BLOCK_FRAMES, total))
            block = self._frames[where] if self._frames is not None else self._read_joints(where)
            bad.append(start + _non_finite_frames(block))
        frames = np.concatenate(bad) if bad else np.zeros(0, np.int64)
        return np.unique(np.searchsorted(self.offsets, frames, side="right") - 1)

    def _refuse_non_finite(self, frames: np.ndarray, offsets: np.ndarray, samples: np.ndarray) -> None:
        """Raise naming the first sample of `frames` (laid out by `offsets`) with NaN or inf."""
        bad = _non_finite_frames(frames)
        if len(bad) == 0:
            return
        k = int(np.searchsorted(offsets, bad[0], side="right") - 1)
        i = int(samples[k])
        raise self._fail("/joints", f"sample {i} ({self.names[i]}) holds NaN or infinite values "
                         f"(first in its frame {int(bad[0] - offsets[k]) + 1}); the file is damaged")

    def frames_for(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The frames of `indices` back to back, in the order given, and their offsets (len+1).

        Lazily, the file is read in large sequential blocks and only blocks holding a requested
        clip are decompressed, so a whole split costs a few reads instead of one per clip.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"sample indices must lie in 0..{len(self) - 1}")
        starts, stops = self.offsets[indices], self.offsets[indices + 1]
        out_offsets = np.concatenate([[0], np.cumsum(stops - starts)]).astype(np.int64)
        if self._frames is not None:  # checked by load()
            frames = self._frames[_ranges(starts, stops)]
            return frames, out_offsets
        with self._damaged("/joints"):
            shape = self._file["joints"].shape
        frames = np.empty((out_offsets[-1], *shape[1:]), np.float32)
        order = np.argsort(starts, kind="stable")
        for block_start, block_stop, members in _blocks(starts, stops, order):
            block = self._read_joints(slice(block_start, block_stop))
            for k in members:
                frames[out_offsets[k] : out_offsets[k + 1]] = block[
                    starts[k] - block_start : stops[k] - block_start
                ]
        self._refuse_non_finite(frames, out_offsets, indices)
        return frames, out_offsets

    def _read_joints(self, where: slice) -> np.ndarray:
        try:
            return self._file["joints"][where]
        except _H5PY_ERRORS as exc:
            raise self._fail("/joints", f"unreadable data ({' '.join(str(exc).split())})") from exc

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SkeletonDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _non_finite_frames(frames: np.ndarray) -> np.ndarray:
    """Indices of the frames holding NaN or inf; checked in slabs, so memory stays bounded."""
    bad = []
    for start in range(0, len(frames), _CHECK_FRAMES):
        slab = frames[start : start + _CHECK_FRAMES]
        if not np.isfinite(slab).all():  # the rare case pays for the per-frame search
            bad.append(start + np.flatnonzero(~np.isfinite(slab).reshape(len(slab), -1).all(1)))
    return np.concatenate(bad) if bad else np.zeros(0, np.int64)


def _strings(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=h5py.string_dtype())


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenated arange(start, stop) for every pair, without a Python loop."""
    lengths = stops - starts
    if len(lengths) == 0:
        return np.zeros(0, np.int64)
    base = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return base + np.arange(lengths.sum())


def _blocks(
    starts: np.ndarray, stops: np.ndarray, order: np.ndarray
) -> Iterator[tuple[int, int, list[int]]]:
    """Group clips (visited by start) into reads of about `_READ_BLOCK_FRAMES` frames each."""
    members: list[int] = []
    block_start = block_stop = 0
    for k in order:
        if members and stops[k] - block_start > _READ_BLOCK_FRAMES:
            yield block_start, block_stop, members
            members = []
        if not members:
            block_start = block_stop = int(starts[k])
        members.append(int(k))
        block_stop = max(block_stop, int(stops[k]))
    if members:
        yield block_start, block_stop, members


def open_dataset(path: str | Path) -> SkeletonDataset:
    """Open a skelctl dataset file; anything that is not one raises `SkelctlError`."""
    return SkeletonDataset(path)
