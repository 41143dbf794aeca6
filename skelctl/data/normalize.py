"""Coordinate normalisation of (T, M, V, C) clips (SPEC 2.2).

Raw positions depend on where the camera stood; models should see the body, not the room.
Absent bodies are all-zero and stay all-zero, so "zero means absent" survives normalisation.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from skelctl.data.layout import Layout
from skelctl.errors import SkelctlError

_EPS = 1e-6  # metres: shorter vectors carry no direction


def center_on_joint(x: np.ndarray, layout: Layout) -> np.ndarray:
    """Translate both actors by actor 1's `layout.center` joint in its first valid frame (the
    SGN convention), so positions are relative to the performer instead of the camera."""
    x = _check(x)
    frames, actors, joints, channels = x.shape
    poses = x.reshape(frames, actors, joints * channels)  # numpy is slow over axes of 3
    present = poses.any(axis=2)
    reference = _reference_pose(x, present)
    if reference is None:
        return x.copy()
    centred = poses - np.tile(reference[layout.center], joints)
    centred[~present] = 0
    return centred.reshape(x.shape)


def align_view(x: np.ndarray, layout: Layout) -> np.ndarray:
    """Rotate the clip so actor 1's base->spine bone (first valid frame) points along +z and its
    right->left shoulder vector along +x (the 2s-AGCN/ISC view alignment), removing the camera
    angle.

    Both cannot hold exactly unless the two vectors are perpendicular: the bone is made exactly
    parallel to +z and the shoulder vector's part perpendicular to it exactly parallel to +x.
    Degenerate vectors (absent actor, coincident joints) fall back to the camera axes.
    """
    x = _check(x)
    if x.shape[-1] != 3:
        raise SkelctlError(f"view alignment needs 3-D joints, got {x.shape[-1]} coordinates")
    reference = _reference_pose(x, x.any(axis=(2, 3)))
    if reference is None:
        return x.copy()
    joints = layout.align
    up = reference[joints["spine"]] - reference[joints["base"]]
    across = reference[joints["left_shoulder"]] - reference[joints["right_shoulder"]]
    rotation = _body_axes(up.astype(np.float64), across.astype(np.float64))
    return (x.astype(np.float64) @ rotation.T).astype(x.dtype)


def _check(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise SkelctlError(f"expected a (T, M, V, C) clip, got shape {x.shape}")
    return x


def _reference_pose(x: np.ndarray, present: np.ndarray) -> np.ndarray | None:
    """(V, C) pose of actor 1 in its first valid frame; of the first actor present when actor 1
    never is; None for an all-zero clip."""
    for actor in range(x.shape[1]):
        frames = np.flatnonzero(present[:, actor])
        if len(frames):
            return x[frames[0], actor]
    return None


def _body_axes(up: np.ndarray, across: np.ndarray) -> np.ndarray:
    """Rows x', y', z' of a right-handed orthonormal frame: z' along `up`, x' along the part of
    `across` perpendicular to it."""
    z = _unit(up)
    if z is None:
        z = np.array([0.0, 0.0, 1.0])
    for candidate in (across, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])):
        x = _unit(candidate - (candidate @ z) * z)
        if x is not None:
            return np.stack([x, np.cross(z, x), z])
    raise AssertionError("unreachable: e_x and e_y cannot both be parallel to z")


def _unit(v: np.ndarray) -> np.ndarray | None:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > _EPS else None


# --- load-time input normalisations (the `data.normalize` preset key) ---------------------------

Normalization = Literal["sgn", "skelemix", "isc", "none"]
NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)


def vertical_axis(mode: str) -> int:
    """The coordinate that points up in `mode`'s input coordinates: z after `isc` (the spine
    is turned onto +z), else the camera's y. Rotations "about the vertical" use it."""
    return 2 if mode == "isc" else 1


def normalize_clip(x: np.ndarray, layout: Layout, mode: str) -> np.ndarray:
    """One (T, M, V, C) clip in a paper's input coordinates (see `normalize_frames`)."""
    x = _check(x)
    return normalize_frames(x, np.array([0, x.shape[0]]), layout, mode)


def normalize_frames(frames: np.ndarray, offsets: np.ndarray, layout: Layout, mode: str) -> np.ndarray:
    """Flat clips (clip i = `frames[offsets[i]:offsets[i+1]]`, (F, M, V, C)) in the input
    coordinates of `mode`, applied when clips are loaded so one HDF5 serves every preset:

    - `sgn`: translate by actor 1's centre joint in its first valid frame (SGN; what
      `preprocess` stores by default, so then a no-op);
    - `skelemix`: SkeleMixCLR's input: each body minus its own neck joint in every frame, then
      every frame of each body turned about the vertical (y) so its right-minus-left shoulder
      vector lies on +x, the angle's sign fixed once per body and clip by the sign of the summed
      z of that vector (SPEC 4, as the reference does, including its sign rule);
    - `isc`: 2s-AGCN's pre-normalisation used by ISC: every frame minus actor 1's centre joint
      in that frame, then two rotations from actor 1's first valid frame: base->spine onto +z,
      then the right-minus-left shoulder vector onto +x (SPEC 5);
    - `none`: the stored coordinates.

    Absent bodies (all-zero frames) stay all-zero. Returns a new float32 array.
    """
    if mode not in NORMALIZATIONS:
        raise SkelctlError(f"unknown normalisation '{mode}' (expected one of {', '.join(NORMALIZATIONS)})")
    frames = np.asarray(frames, dtype=np.float32)
    offsets = np.asarray(offsets, dtype=np.int64)
    if frames.ndim != 4:
        raise SkelctlError(f"expected (F, M, V, C) frames, got shape {frames.shape}")
    if mode == "none" or frames.shape[0] == 0:
        return frames.copy()
    if mode == "sgn":
        out = frames.copy()
        for start, end in zip(offsets[:-1], offsets[1:], strict=True):
            out[start:end] = center_on_joint(frames[start:end], layout)
        return out
    if frames.shape[-1] != 3:
        raise SkelctlError(f"the '{mode}' normalisation needs 3-D joints, got {frames.shape[-1]} coordinates")
    if mode == "skelemix":
        return _skelemix_input(frames, offsets, layout)
    return _isc_input(frames, offsets, layout)


def _skelemix_input(frames: np.ndarray, offsets: np.ndarray, layout: Layout) -> np.ndarray:
    if "neck" not in layout.align:
        raise SkelctlError(f"layout '{layout.name}' names no neck joint (align.neck), which the "
                           "skelemix normalisation centres on")
    x = frames.astype(np.float64)
    x -= x[:, :, layout.align["neck"], None, :]  # (F, M, V, 3) minus each body's own neck
    across = x[:, :, layout.align["right_shoulder"]] - x[:, :, layout.align["left_shoulder"]]
    across[..., 1] = 0  # (F, M, 3) on the ground plane
    cos = across[..., 0] / (np.linalg.norm(across, axis=-1) + 1e-4)
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    clip_of_frame = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    z_sum = np.zeros((len(offsets) - 1, x.shape[1]))
    np.add.at(z_sum, clip_of_frame, across[..., 2])
    theta = np.where(z_sum[clip_of_frame] >= 0, -theta, theta)  # one sign per body and clip
    c, s = np.cos(theta)[..., None], np.sin(theta)[..., None]  # (F, M, 1)
    turned = np.empty_like(x)
    turned[..., 0] = c * x[..., 0] - s * x[..., 2]
    turned[..., 1] = x[..., 1]
    turned[..., 2] = s * x[..., 0] + c * x[..., 2]
    return turned.astype(np.float32)


def _isc_input(frames: np.ndarray, offsets: np.ndarray, layout: Layout) -> np.ndarray:
    x = frames.astype(np.float64)
    centre = x[:, 0, layout.center, :].copy()  # (F, 3): actor 1's centre joint, per frame
    present = x.any(axis=-1, keepdims=True)  # joints that exist move; zeros stay zeros
    x = (x - centre[:, None, None, :]) * present
    a = layout.align
    for start, end in zip(offsets[:-1], offsets[1:], strict=True):
        clip = x[start:end]
        first = np.flatnonzero(clip[:, 0].any(axis=(1, 2)))
        if len(first) == 0:
            continue
        pose = clip[first[0], 0]
        to_z = _rotation_onto(pose[a["spine"]] - pose[a["base"]], np.array([0.0, 0.0, 1.0]))
        pose = pose @ to_z.T
        to_x = _rotation_onto(pose[a["right_shoulder"]] - pose[a["left_shoulder"]],
                              np.array([1.0, 0.0, 0.0]))
        x[start:end] = clip @ (to_x @ to_z).T
    return x.astype(np.float32)


def _rotation_onto(v: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The rotation about v x target that turns v's direction onto `target` (identity when v
    is degenerate or already there)."""
    axis = np.cross(v, target)
    norm_v = float(np.linalg.norm(v))
    if np.abs(axis).sum() < 1e-6 or norm_v < 1e-12:
        return np.eye(3)
    angle = float(np.arccos(np.clip(v @ target / norm_v, -1.0, 1.0)))
    k = axis / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
