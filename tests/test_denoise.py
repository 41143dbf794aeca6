"""Body selection on cases built from real recordings: noise bodies, ID changes, empty frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skelctl.data.denoise import select_bodies
from skelctl.data.formats import NtuSkeletonFile, read_ntu_skeleton
from skelctl.errors import SkelctlError

FIXTURES = Path(__file__).parent / "fixtures" / "ntu"
ONE = read_ntu_skeleton(FIXTURES / "S001C001P001R001A001.skeleton")  # 103 frames, 1 body
TWO = read_ntu_skeleton(FIXTURES / "S001C003P008R002A058.skeleton")  # 70 frames, 2 bodies
NAME = "S001C001P001R001A050.skeleton"

Record = tuple[int, np.ndarray, np.ndarray]  # body ID, body info (9,), joints (25, 12)


def frames_of(f: NtuSkeletonFile) -> list[list[Record]]:
    """The file as a list of frames of (ID, info, joints) records, in file order."""
    frames: list[list[Record]] = [[] for _ in range(f.frame_count)]
    for r in range(len(f.body_id)):
        frames[f.body_frame[r]].append((int(f.body_id[r]), f.body_info[r], f.joints[r]))
    return frames


def serialise(frames: list[list[Record]]) -> bytes:
    """Write frames back in the .skeleton format (repr round-trips every float32 exactly)."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, info, joints in bodies:
            lines.append(" ".join([str(body_id)] + [repr(float(v)) for v in info]))
            lines.append(str(len(joints)))
            lines.extend(" ".join(repr(float(v)) for v in joint) for joint in joints)
    return ("\r\n".join(lines) + "\r\n").encode()


def select(frames: list[list[Record]], method: str = "denoise") -> np.ndarray:
    return select_bodies(read_ntu_skeleton(serialise(frames), NAME), method)


def person(f: NtuSkeletonFile, body_id: int) -> np.ndarray:
    """(frames, 25, 12) records of one body ID."""
    return f.joints[f.body_id == body_id]


def shifted(joints: np.ndarray, dx: float) -> np.ndarray:
    moved = joints.copy()
    moved[..., 0] += dx
    return moved


P_ID, Q_ID = (int(i) for i in np.unique(TWO.body_id))
P, Q = person(TWO, P_ID), person(TWO, Q_ID)
assert (TWO.body_id[1::2] == P_ID).all()  # Q is listed first in every frame
INFO = ONE.body_info[0]


def test_serialise_round_trips():
    again = read_ntu_skeleton(serialise(frames_of(TWO)), NAME)
    for field in ("body_counts", "body_frame", "body_id", "body_info", "joints"):
        np.testing.assert_array_equal(getattr(again, field), getattr(TWO, field))


@pytest.mark.parametrize("method", ["denoise", "energy", "first"])
def test_single_body_is_taken_as_is(method):
    clip = select_bodies(ONE, method)
    assert clip.shape == (103, 2, 25, 3) and clip.dtype == np.float32
    np.testing.assert_array_equal(clip[:, 0], ONE.xyz)
    assert not clip[:, 1].any()


@pytest.mark.parametrize("frames, kept", [(11, False), (12, True)])
def test_short_body_is_noise_up_to_11_frames(frames, kept):
    data = frames_of(ONE)
    for k, t in enumerate(range(20, 20 + frames)):
        data[t].append((7, INFO, shifted(Q[k], 1.5)))
    clip = select(data)
    np.testing.assert_array_equal(clip[:, 0], ONE.xyz)
    if kept:
        np.testing.assert_array_equal(clip[20:32, 1], shifted(Q[:12], 1.5)[..., :3])
        assert not clip[:20, 1].any() and not clip[32:, 1].any()
    else:
        assert not clip[:, 1].any()


@pytest.mark.parametrize("wide", [True, False])
def test_wide_body_is_noise(wide):
    data = frames_of(ONE)
    other = shifted(Q[:40], 1.5)
    if wide:  # lying across the view: x spread > 0.8 * y spread in every frame
        other[..., [0, 1]] = other[..., [1, 0]]
    for k in range(40):
        data[30 + k].append((7, INFO, other[k]))
    clip = select(data)
    np.testing.assert_array_equal(clip[:, 0], ONE.xyz)
    assert clip[30:70, 1].any() != wide


def small_still_body(frames: int) -> np.ndarray:
    """A chair-sized object: a real pose shrunk to 30%, not moving."""
    pose = ONE.joints[0].copy()
    centre = pose[:, :3].mean(axis=0)
    pose[:, :3] = centre + 0.3 * (pose[:, :3] - centre) + [2.0, 0.0, 0.0]
    return np.repeat(pose[None], frames, axis=0)


def motion(joints: np.ndarray) -> float:
    return float(np.var(joints[..., :3].reshape(-1, 3), axis=0).sum())


def test_three_bodies_keep_the_two_that_move_most():
    still = small_still_body(TWO.frame_count)
    assert motion(still) < min(motion(P), motion(Q))  # what the selection must rely on
    data = frames_of(TWO)
    for t in range(TWO.frame_count):
        data[t].insert(1, (5, INFO, still[t]))
    clip = select(data)
    np.testing.assert_array_equal(clip, select_bodies(TWO))
    first, second = (P, Q) if motion(P) >= motion(Q) else (Q, P)  # actor 1 moves most
    np.testing.assert_array_equal(clip[:, 0], first[..., :3])
    np.testing.assert_array_equal(clip[:, 1], second[..., :3])


def test_frames_without_bodies_are_removed():
    data = frames_of(ONE)
    data = [[] for _ in range(4)] + data[:50] + [[], []] + data[50:]
    clip = select(data)
    np.testing.assert_array_equal(clip, select_bodies(ONE))


@pytest.mark.parametrize("new_id", [True, False], ids=["new ID", "same ID"])
def test_reappearing_body_stays_in_its_slot_at_its_own_frames(new_id):
    """Q is lost for frames 30-39 and comes back (with a new ID, or the same one): its poses
    must land at its real frames in one actor slot, never glued to the old interval."""
    data = [[(P_ID, INFO, P[t])] for t in range(TWO.frame_count)]
    for t in range(TWO.frame_count):
        if t < 30:
            data[t].append((Q_ID, INFO, Q[t]))
        elif t >= 40:
            data[t].append((Q_ID + 1 if new_id else Q_ID, INFO, Q[t]))
    clip = select(data)
    assert clip.shape == (70, 2, 25, 3)
    p_slot = 0 if np.array_equal(clip[:, 0], P[..., :3]) else 1
    np.testing.assert_array_equal(clip[:, p_slot], P[..., :3])
    q = clip[:, 1 - p_slot]
    np.testing.assert_array_equal(q[:30], Q[:30, :, :3])
    np.testing.assert_array_equal(q[40:], Q[40:, :, :3])
    assert not q[30:40].any()


def test_a_gap_with_nobody_is_removed_and_the_new_id_continues():
    data = [[(11, INFO, ONE.joints[t])] if t < 40 else
            [] if t < 45 else [(12, INFO, ONE.joints[t])] for t in range(ONE.frame_count)]
    clip = select(data)
    expected = np.concatenate([ONE.xyz[:40], ONE.xyz[45:]])
    np.testing.assert_array_equal(clip[:, 0], expected)
    assert not clip[:, 1].any()


def test_energy_and_first_modes_with_a_noise_body_listed_first():
    still = small_still_body(TWO.frame_count)
    data = frames_of(TWO)
    for t in range(TWO.frame_count):
        data[t].insert(0, (5, INFO, still[t]))
    first = select(data, "first")
    np.testing.assert_array_equal(first[:, 0], still[..., :3])
    np.testing.assert_array_equal(first[:, 1], TWO.xyz[0::2])  # each frame's first real body
    energy = select(data, "energy")  # the two slots that vary most, the larger first
    spread = [np.std(a[..., :3].reshape(-1, 3), axis=0).sum() for a in (P, Q)]
    leader, other = (P, Q) if spread[0] >= spread[1] else (Q, P)
    np.testing.assert_array_equal(energy[:, 0], leader[..., :3])
    np.testing.assert_array_equal(energy[:, 1], other[..., :3])


def test_spread_filter_never_drops_the_last_body():
    wide = ONE.joints.copy()
    wide[..., [0, 1]] = wide[..., [1, 0]]
    data = [[(11, INFO, wide[t])] for t in range(ONE.frame_count)]
    for t in range(5):
        data[t].append((12, INFO, Q[t]))  # short: removed by the length filter first
    clip = select(data)
    np.testing.assert_array_equal(clip[:, 0], wide[..., :3])
    assert not clip[:, 1].any()


def test_nothing_left_is_an_error():
    empty = [[] for _ in range(5)]
    for method in ("denoise", "energy", "first"):
        with pytest.raises(SkelctlError, match="no body left") as info:
            select(empty, method)
        assert info.value.path == NAME
    short = [[(1, INFO, P[t]), (2, INFO, Q[t])] for t in range(8)]
    with pytest.raises(SkelctlError, match="no body left"):
        select(short, "denoise")
    assert select(short, "first").shape == (8, 2, 25, 3)


def test_unknown_method():
    with pytest.raises(SkelctlError, match="unknown body selection"):
        select_bodies(ONE, "largest")
