"""One clip from a user's file or array: what `preprocess`, `retrieve --query` and `show` read.

`read_clip(path, layout, options)` reads an NTU `.skeleton` (bodies selected as `preprocess
--bodies` does), a PKU-MMD skeleton `.txt` (the whole video) or a `.npy` array in one of the
documented layouts: `(T, V, C)` one body, `(T, M, V, C)` as datasets store clips, `(C, T, V, M)`
as models read them. The clip comes back as `(T, M, V, C)` float32, preprocessed as `options`
(a dataset's recorded preprocessing options) say: without `center`/`align` it stays in camera
space, as recorded. Centring and alignment are idempotent, so a clip read back from a dataset
is unchanged by them.

`to_clip` is the stricter rule dataset sources apply to the arrays they store.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from skelctl.data.layout import Layout
from skelctl.errors import SkelctlError

NUM_BODIES = 2  # bodies per stored clip; an absent one is zeros
CLIP_SUFFIXES = (".skeleton", ".txt", ".npy")
CHANNELS = (3, 2)  # x y z, or x y for 2-D pose
MIN_FRAMES = 5  # shorter clips carry too little motion for a temporal crop; sources reject them
NTU_JOINTS = 25


def read_clip(path: str | Path, layout: Layout, options: Mapping[str, Any] | None = None, *,
              data: bytes | None = None, persons: int = NUM_BODIES,
              channels: int | None = None) -> np.ndarray:
    """The clip in the file `path` (its bytes `data` when given, e.g. a zip member) as
    `(T, persons, V, C)` float32, preprocessed as the dataset options `options` say (`bodies`,
    default denoise; `center`, `align`, default off). `channels` None: a `.npy` array may hold 3
    or 2 coordinates per joint. Any defect: one `SkelctlError` naming `path`."""
    options = options or {}
    suffix = posixpath.splitext(str(path))[1].lower()
    if suffix == ".skeleton":
        clip = _ntu_clip(path, layout, options.get("bodies", "denoise"), data)
    elif suffix == ".txt":
        clip = _pku_clip(path, layout, data)
    elif suffix == ".npy":
        from skelctl.data.npy import read_npy

        clip = _array_clip(read_npy(path if data is None else data, str(path)), layout, persons,
                           channels, path)
    else:
        raise SkelctlError(f"unsupported clip file (expected {', '.join(CLIP_SUFFIXES)})", path)
    if clip.shape[1] > persons:
        raise SkelctlError(f"clip has {clip.shape[1]} bodies, the dataset at most {persons}", path)
    if channels is not None and clip.shape[-1] != channels:
        raise SkelctlError(f"clip has {clip.shape[-1]} coordinates per joint, the dataset "
                           f"{channels}", path)
    return normalise(clip, layout, options)


def normalise(clip: np.ndarray, layout: Layout, options: Mapping[str, Any]) -> np.ndarray:
    """What `preprocess` stores: `clip` centred (`options["center"]`) and view-aligned
    (`options["align"]`), contiguous float32."""
    from skelctl.data.normalize import align_view, center_on_joint

    if options.get("center", False):
        clip = center_on_joint(clip, layout)
    if options.get("align", False):
        clip = align_view(clip, layout)
    return np.ascontiguousarray(clip, dtype=np.float32)


def as_clip(array: np.ndarray, layout: Layout, persons: int, channels: int,
            source: str | Path) -> np.ndarray:
    """An array in one of the documented layouts as a `(T, persons, V, C)` float32 clip,
    absent bodies zero."""
    v, c = layout.num_joints, channels
    shape = array.shape
    if array.ndim == 3 and shape[1:] == (v, c):
        clip = array[:, None]
    elif array.ndim == 4 and shape[2:] == (v, c):
        clip = array
    elif array.ndim == 4 and shape[0] == c and shape[2] == v:
        clip = array.transpose(1, 3, 2, 0)
    else:
        raise SkelctlError(
            f"clip has shape {shape}; expected (T, {v}, {c}), (T, M, {v}, {c}) or ({c}, T, {v}, M) "
            f"for layout '{layout.name}'", source)
    if clip.shape[0] == 0:
        raise SkelctlError("clip has no frames", source)
    if clip.shape[1] > persons:
        raise SkelctlError(f"clip has {clip.shape[1]} bodies, the dataset at most {persons}", source)
    if clip.dtype.kind not in "fiu":  # complex would lose its imaginary part
        raise SkelctlError(f"clip array has dtype {clip.dtype}, expected real numbers", source)
    clip = clip.astype(np.float32)
    if not np.isfinite(clip).all():
        raise SkelctlError("clip contains NaN or infinite values", source)
    padded = np.zeros((clip.shape[0], persons, v, c), np.float32)
    padded[:, : clip.shape[1]] = clip
    return padded


def _array_clip(array: np.ndarray, layout: Layout, persons: int, channels: int | None,
                source: str | Path) -> np.ndarray:
    if channels is not None:
        return as_clip(array, layout, persons, channels, source)
    try:
        return as_clip(array, layout, persons, CHANNELS[0], source)
    except SkelctlError as three_d:  # a 2-D clip has 2 coordinates per joint
        try:
            return as_clip(array, layout, persons, CHANNELS[1], source)
        except SkelctlError:
            raise three_d from None


def _ntu_clip(path: str | Path, layout: Layout, bodies: str, data: bytes | None) -> np.ndarray:
    from skelctl.data.denoise import select_bodies
    from skelctl.data.formats import read_ntu_skeleton

    _check_ntu_layout(layout, "an NTU .skeleton file", path)
    try:  # from bytes, so that a non-standard file name is no error; messages keep the path
        raw = read_ntu_skeleton(_read(path) if data is None else data, None)
    except SkelctlError as exc:
        raise SkelctlError(exc.reason, path, exc.line) from None
    joints = select_bodies(raw, bodies)
    if len(joints) == 0:
        raise SkelctlError("no body in any frame", path)
    return joints


def _pku_clip(path: str | Path, layout: Layout, data: bytes | None) -> np.ndarray:
    from skelctl.data.formats import read_pku_skeleton

    _check_ntu_layout(layout, "a PKU-MMD skeleton .txt file", path)
    return read_pku_skeleton(path if data is None else data, str(path))


def _check_ntu_layout(layout: Layout, what: str, path: str | Path) -> None:
    if layout.num_joints != NTU_JOINTS:
        raise SkelctlError(f"{what} has {NTU_JOINTS} joints, layout '{layout.name}' has "
                           f"{layout.num_joints}", path)


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SkelctlError(f"cannot read file ({exc.strerror or exc})", path) from exc


def shape_problem(shape: tuple[int, ...], dtype: np.dtype, layout: Layout) -> str:
    """Why an array of this shape/dtype cannot be a stored clip of `layout` ('' when it can)."""
    v = layout.num_joints
    expected = f"(T, {v}, C) or (T, M<={NUM_BODIES}, {v}, C) with C = 3 or 2"
    if dtype.kind not in "fiu":
        return f"dtype {dtype}, expected numbers"
    if len(shape) not in (3, 4):
        return f"shape {shape}, expected {expected}"
    if shape[-2] != v:
        return f"shape {shape}: {shape[-2]} joints, layout '{layout.name}' has {v}; expected {expected}"
    if shape[-1] not in CHANNELS:
        return f"shape {shape}: {shape[-1]} coordinates per joint, expected 3 (x y z) or 2 (x y)"
    if len(shape) == 4 and not 1 <= shape[1] <= NUM_BODIES:
        return f"shape {shape}: {shape[1]} bodies, expected 1 to {NUM_BODIES}"
    if shape[0] < MIN_FRAMES:
        return f"{shape[0]} frame(s), at least {MIN_FRAMES} needed"
    return ""


def to_clip(array: np.ndarray, layout: Layout) -> np.ndarray:
    """(T, V, C) or (T, M, V, C) numbers -> a (T, 2, V, C) float32 clip to store, absent body
    zero; stricter than `as_clip` (at least MIN_FRAMES frames, not all zero).

    Raises `SkelctlError(reason)` (no path: callers know where the array came from).
    """
    problem = shape_problem(array.shape, array.dtype, layout)
    if problem:
        raise SkelctlError(problem)
    clip = np.asarray(array, np.float32)
    if clip.ndim == 3:
        clip = clip[:, None]
    bad = ~np.isfinite(clip)
    if bad.any():
        t, _, j, _ = np.argwhere(bad)[0]
        raise SkelctlError(f"NaN or infinite value (first at frame {t + 1}, joint {j + 1})")
    if not clip.any():
        raise SkelctlError("every value is zero (no body in any frame)")
    padded = np.zeros((len(clip), NUM_BODIES, *clip.shape[2:]), np.float32)
    padded[:, : clip.shape[1]] = clip
    return padded
