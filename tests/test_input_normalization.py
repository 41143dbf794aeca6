"""Load-time input normalisations against independent loop-by-loop re-implementations of the
reference formulas (SkeleMixCLR's feeder, 2s-AGCN's pre-normalisation used by ISC), on real
NTU and NW-UCLA recordings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from skelctl.data.denoise import select_bodies
from skelctl.data.formats import read_ntu_skeleton
from skelctl.data.layout import get_layout
from skelctl.data.normalize import NORMALIZATIONS, center_on_joint, normalize_clip, normalize_frames
from skelctl.errors import SkelctlError

FIXTURES = Path(__file__).parent / "fixtures"
NTU = get_layout("ntu25")
KINECT = get_layout("kinect20")


def ntu_clip(name: str) -> np.ndarray:
    return select_bodies(read_ntu_skeleton(FIXTURES / "ntu" / f"{name}.skeleton"))


def ucla_clip(name: str) -> np.ndarray:
    joints = np.asarray(json.loads((FIXTURES / "nw_ucla" / f"{name}.json").read_text())["skeletons"],
                        np.float32)
    clip = np.zeros((len(joints), 2, 20, 3), np.float32)
    clip[:, 0] = joints
    return clip


CLIPS = {
    "ntu one actor": (ntu_clip("S003C001P015R001A034"), NTU),
    "ntu two actors": (ntu_clip("S017C003P020R002A055"), NTU),
    "ntu two actors, second": (ntu_clip("S001C003P008R002A058"), NTU),
    "nw-ucla": (ucla_clip("a01_s02_e03_v02"), KINECT),
}


def reference_skelemix(clip: np.ndarray, neck: int, right: int, left: int) -> np.ndarray:
    """SkeleMixCLR's input, frame by frame: minus the body's own neck, then a turn about y by
    arccos(v_x / (|v| + 1e-4)) (degrees in the reference), negated when sum_t v_z >= 0."""
    out = np.zeros(clip.shape, np.float64)
    for m in range(clip.shape[1]):
        body = clip[:, m].astype(np.float64)
        body = body - body[:, neck:neck + 1]
        vec = body[:, right] - body[:, left]
        vec[:, 1] = 0
        thetas = [math.degrees(math.acos(v[0] / (math.sqrt(v @ v) + 0.0001))) for v in vec]
        if vec[:, 2].sum() >= 0:
            thetas = [-t for t in thetas]
        for t, theta in enumerate(thetas):
            r = math.radians(theta)
            turn = np.array([[math.cos(r), 0, -math.sin(r)], [0, 1, 0], [math.sin(r), 0, math.cos(r)]])
            out[t, m] = (turn @ body[t].T).T
    return out


def quaternion_rotation(axis: np.ndarray, theta: float) -> np.ndarray:
    """Counter-clockwise rotation by theta about axis (Euler-Rodrigues, 2s-AGCN's form)."""
    if np.abs(axis).sum() < 1e-6 or abs(theta) < 1e-6:
        return np.eye(3)
    axis = axis / math.sqrt(axis @ axis)
    a = math.cos(theta / 2)
    b, c, d = -axis * math.sin(theta / 2)
    return np.array([
        [a * a + b * b - c * c - d * d, 2 * (b * c + a * d), 2 * (b * d - a * c)],
        [2 * (b * c - a * d), a * a + c * c - b * b - d * d, 2 * (c * d + a * b)],
        [2 * (b * d + a * c), 2 * (c * d - a * b), a * a + d * d - b * b - c * c]])


def angle(v1: np.ndarray, v2: np.ndarray) -> float:
    if np.abs(v1).sum() < 1e-6:
        return 0.0
    return math.acos(np.clip(v1 @ v2 / np.linalg.norm(v1) / np.linalg.norm(v2), -1, 1))


def reference_isc(clip: np.ndarray, centre: int, base: int, spine: int, right: int, left: int) -> np.ndarray:
    """2s-AGCN's pre-normalisation: minus actor 1's centre joint in every frame (joints that
    exist), then frame 0 of actor 1: base->spine onto +z, then right - left shoulder onto +x."""
    s = clip.astype(np.float64).copy()
    main = s[:, 0, centre].copy()
    for m in range(s.shape[1]):
        if s[:, m].sum() == 0:
            continue
        mask = (s[:, m].sum(-1) != 0)[..., None]
        s[:, m] = (s[:, m] - main[:, None]) * mask
    for bottom, top, target in ((base, spine, np.array([0.0, 0, 1])), (right, left, np.array([1.0, 0, 0]))):
        v = s[0, 0, top] - s[0, 0, bottom] if target[2] else s[0, 0, bottom] - s[0, 0, top]
        rotation = quaternion_rotation(np.cross(v, target), angle(v, target))
        for m in range(s.shape[1]):
            for t in range(s.shape[0]):
                if s[t, m].sum() == 0:
                    continue
                for j in range(s.shape[2]):
                    s[t, m, j] = rotation @ s[t, m, j]
    return s


@pytest.mark.parametrize("name", list(CLIPS))
def test_skelemix_matches_the_reference_formulas(name):
    clip, layout = CLIPS[name]
    a = layout.align
    expected = reference_skelemix(clip, a["neck"], a["right_shoulder"], a["left_shoulder"])
    got = normalize_clip(clip, layout, "skelemix")
    assert got.dtype == np.float32 and got.shape == clip.shape
    assert np.abs(got - expected).max() <= 1e-5
    assert not got[~clip.any(axis=(2, 3))].any()  # absent bodies stay zero


@pytest.mark.parametrize("name", list(CLIPS))
def test_isc_matches_the_reference_formulas(name):
    clip, layout = CLIPS[name]
    a = layout.align
    assert clip[0, 0].any()  # the reference reads actor 1's frame 0
    expected = reference_isc(clip, layout.center, a["base"], a["spine"], a["right_shoulder"],
                             a["left_shoulder"])
    got = normalize_clip(clip, layout, "isc")
    assert np.abs(got - expected).max() <= 1e-5
    bone = got[0, 0, a["spine"]] - got[0, 0, a["base"]]
    shoulders = got[0, 0, a["right_shoulder"]] - got[0, 0, a["left_shoulder"]]
    np.testing.assert_allclose(shoulders[1:], 0, atol=1e-5)  # the last rotation holds exactly
    assert shoulders[0] > 0 and bone[2] > 0


def test_sgn_is_todays_centring_and_none_keeps_the_clip():
    clip, layout = CLIPS["ntu two actors"]
    np.testing.assert_array_equal(normalize_clip(clip, layout, "sgn"), center_on_joint(clip, layout))
    np.testing.assert_array_equal(normalize_clip(clip, layout, "none"), clip)


@pytest.mark.parametrize("mode", NORMALIZATIONS)
def test_flat_clips_normalise_each_clip_on_its_own(mode):
    clips = [CLIPS["ntu one actor"][0], CLIPS["ntu two actors"][0], CLIPS["ntu two actors, second"][0]]
    frames = np.concatenate(clips)
    offsets = np.cumsum([0] + [len(c) for c in clips])
    flat = normalize_frames(frames, offsets, NTU, mode)
    for clip, start, end in zip(clips, offsets[:-1], offsets[1:], strict=True):
        np.testing.assert_allclose(flat[start:end], normalize_clip(clip, NTU, mode), atol=1e-6)


def test_skelemix_needs_a_neck_joint_and_modes_are_checked():
    clip, layout = CLIPS["nw-ucla"]
    raw = layout.to_dict()
    del raw["align"]["neck"]
    no_neck = type(layout).from_dict(raw)
    with pytest.raises(SkelctlError, match="neck"):
        normalize_clip(clip, no_neck, "skelemix")
    with pytest.raises(SkelctlError, match="expected one of sgn, skelemix, isc, none"):
        normalize_clip(clip, layout, "camera")
    with pytest.raises(SkelctlError, match="3-D"):
        normalize_clip(clip[..., :2], layout, "isc")
