"""Centring and view alignment on real recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skelctl.data.denoise import select_bodies
from skelctl.data.formats import read_ntu_skeleton
from skelctl.data.layout import get_layout
from skelctl.data.normalize import align_view, center_on_joint
from skelctl.errors import SkelctlError

FIXTURES = Path(__file__).parent / "fixtures" / "ntu"
LAYOUT = get_layout("ntu25")
ONE = select_bodies(read_ntu_skeleton(FIXTURES / "S003C001P015R001A034.skeleton"))
TWO = select_bodies(read_ntu_skeleton(FIXTURES / "S017C003P020R002A055.skeleton"))


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@pytest.mark.parametrize("clip", [ONE, TWO], ids=["one actor", "two actors"])
def test_center_puts_actor_1_centre_joint_at_origin(clip):
    centred = center_on_joint(clip, LAYOUT)
    assert centred.dtype == np.float32 and centred.shape == clip.shape
    np.testing.assert_allclose(centred[0, 0, LAYOUT.center], 0, atol=1e-6)
    present = clip.any(axis=(2, 3))
    offset = clip[present] - centred[present]  # one translation for every actor and frame
    np.testing.assert_allclose(offset, np.broadcast_to(clip[0, 0, LAYOUT.center], offset.shape),
                               atol=1e-5)
    assert not centred[~present].any()  # absent bodies stay zero
    assert LAYOUT.joints[LAYOUT.center] == "spine_mid"


def test_center_uses_actor_1_first_valid_frame():
    clip = TWO.copy()
    clip[:5, 0] = 0  # actor 1 appears at frame 5
    centred = center_on_joint(clip, LAYOUT)
    np.testing.assert_allclose(centred[5, 0, LAYOUT.center], 0, atol=1e-6)
    assert not centred[:5, 0].any()
    np.testing.assert_allclose(centred[:5, 1], clip[:5, 1] - clip[5, 0, LAYOUT.center], atol=1e-6)


def test_all_zero_clip_is_unchanged():
    zero = np.zeros((4, 2, 25, 3), np.float32)
    assert not center_on_joint(zero, LAYOUT).any() and not align_view(zero, LAYOUT).any()


def bone_and_shoulders(clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pose = clip[0, 0]
    a = LAYOUT.align
    return pose[a["spine"]] - pose[a["base"]], pose[a["left_shoulder"]] - pose[a["right_shoulder"]]


@pytest.mark.parametrize("clip", [ONE, TWO], ids=["one actor", "two actors"])
def test_align_makes_the_spine_vertical_and_the_shoulders_face_x(clip):
    aligned = align_view(center_on_joint(clip, LAYOUT), LAYOUT)
    assert aligned.dtype == np.float32
    bone, shoulders = bone_and_shoulders(aligned)
    np.testing.assert_allclose(bone[:2], 0, atol=1e-6)
    assert bone[2] > 0
    np.testing.assert_allclose(shoulders[1], 0, atol=1e-6)
    assert shoulders[0] > 0
    # The shoulder vector keeps its real tilt against the spine: only its part perpendicular to
    # the spine can point along +x.
    raw_bone, raw_shoulders = bone_and_shoulders(clip)
    cosine = raw_bone @ raw_shoulders / np.linalg.norm(raw_bone) / np.linalg.norm(raw_shoulders)
    np.testing.assert_allclose(shoulders[2] / np.linalg.norm(shoulders), cosine, atol=1e-5)
    # A rotation: distances within and across actors are unchanged, absent bodies stay zero.
    present = clip.any(axis=(2, 3))
    before, after = clip[present].reshape(-1, 3), aligned[present].reshape(-1, 3)
    centred = center_on_joint(clip, LAYOUT)[present].reshape(-1, 3)
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), np.linalg.norm(centred, axis=1),
                               atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(after[1:] - after[:-1], axis=1),
                               np.linalg.norm(before[1:] - before[:-1], axis=1), atol=1e-5)
    assert not aligned[~present].any()


def test_alignment_removes_the_camera_angle():
    rotated = (TWO.astype(np.float64) @ random_rotation(3).T).astype(np.float32)
    rotated[~TWO.any(axis=(2, 3))] = 0
    a = align_view(center_on_joint(TWO, LAYOUT), LAYOUT)
    b = align_view(center_on_joint(rotated, LAYOUT), LAYOUT)
    np.testing.assert_allclose(a, b, atol=2e-5)


def test_degenerate_vectors_give_no_nan():
    clip = TWO.copy()
    a = LAYOUT.align
    clip[0, 0, a["spine"]] = clip[0, 0, a["base"]]  # no spine direction
    clip[0, 0, a["left_shoulder"]] = clip[0, 0, a["right_shoulder"]]  # no shoulder direction
    aligned = align_view(clip, LAYOUT)
    assert np.isfinite(aligned).all()
    np.testing.assert_allclose(aligned, clip, atol=1e-6)  # camera axes kept
    single = np.zeros((3, 2, 25, 3), np.float32)
    single[:, 0, a["spine"], 2] = 1.0  # only a vertical spine: shoulders fall back to x
    assert np.isfinite(align_view(single, LAYOUT)).all()


def test_align_needs_3d_and_4d_input():
    with pytest.raises(SkelctlError, match="3-D"):
        align_view(TWO[..., :2], LAYOUT)
    with pytest.raises(SkelctlError, match="T, M, V, C"):
        center_on_joint(TWO[0], LAYOUT)
