"""Coordinate normalisation of (T, M, V, C) clips (SPEC 2.2).

Raw positions depend on where the camera stood; models should see the body, not the room.
Absent bodies are all-zero and stay all-zero, so "zero means absent" survives normalisation.
"""

from __future__ import annotations

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
