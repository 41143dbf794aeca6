"""What a Kinect v2 reports when it watches a performance.

Cameras see the world through a pinhole model whose intrinsics were fitted to the real
files in the shared fixtures (depth within ~3 px, colour within ~10 px). The sensor adds
what real recordings have and the preprocessing must survive (SPEC 1.1, 2.1): jitter,
runs of inferred joints, hand states, leading empty frames, a person re-identified under a
new body ID after a tracking loss, short-lived ghost bodies (<= 11 frames) and wide flat
objects (furniture) tracked as bodies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skelctl.synth.rig import JOINT, KINECT_CHILD, LAYOUT, normalize, orientations

DEPTH_SIZE = (512, 424)
COLOR_SIZE = (1920, 1080)
# Pinhole intrinsics (fx, fy, cx, cy); pixel y grows downwards, camera y upwards.
DEPTH_INTRINSICS = (365.0, 365.0, 257.0, 209.0)
COLOR_INTRINSICS = (1062.0, 1062.0, 965.0, 560.0)
COLOR_OFFSET_X = 0.034  # the colour camera sits 3.4 cm beside the depth camera
BODY_ID_BASE = 72057594037927936  # 2**56: real body IDs are a little above it
MAX_GHOST_FRAMES = 11  # the denoiser's length filter drops bodies seen in <= 11 frames

_INNER = sorted(KINECT_CHILD)  # joints with an orientation
_LEAVES = [j for j in range(25) if j not in KINECT_CHILD]
_JITTER = np.full(25, 0.004)  # metres, trunk
for _name, _sd in (
    ("elbow", 0.006),
    ("wrist", 0.008),
    ("hand", 0.01),
    ("hand_tip", 0.015),
    ("thumb", 0.015),
    ("knee", 0.006),
    ("ankle", 0.008),
    ("foot", 0.012),
):
    for _side in ("left", "right"):
        _JITTER[JOINT[f"{_side}_{_name}"]] = _sd
_PARENTS = LAYOUT.parents


def _depth(joint: int) -> int:
    """How many bones lie between `joint` and the layout's root."""
    return 0 if _PARENTS[joint] < 0 else 1 + _depth(_PARENTS[joint])


_TREE_ORDER = sorted(range(len(_PARENTS)), key=_depth)  # parents before children
_LIMBS = {
    f"{side}_{limb}": [JOINT[f"{side}_{j}"] for j in joints]
    for side in ("left", "right")
    for limb, joints in (
        ("arm", ("elbow", "wrist", "hand", "hand_tip", "thumb")),
        ("hand", ("hand", "hand_tip", "thumb")),
        ("leg", ("knee", "ankle", "foot")),
        ("foot", ("ankle", "foot")),
    )
}


def project(
    points: np.ndarray, intrinsics: tuple[float, float, float, float], offset_x: float = 0.0
) -> np.ndarray:
    """Camera-space points (..., 3) -> pixel coordinates (..., 2)."""
    fx, fy, cx, cy = intrinsics
    z = np.maximum(points[..., 2], 1e-3)
    return np.stack([cx + fx * (points[..., 0] + offset_x) / z, cy - fy * points[..., 1] / z], -1)


@dataclass(frozen=True)
class Camera:
    """A sensor pose: world -> camera space is `rotation @ (p - position)`.

    Camera space is Kinect's: x towards the sensor's left (a person facing it has their
    right hand at larger x), y up, z away from the sensor.
    """

    position: np.ndarray
    rotation: np.ndarray  # rows: camera x, y, z axes in world coordinates

    @classmethod
    def looking_at(cls, position: np.ndarray, target: np.ndarray) -> Camera:
        z = normalize(np.asarray(target, float) - position)
        x = normalize(np.cross([0.0, 1.0, 0.0], z))
        y = np.cross(z, x)
        return cls(np.asarray(position, float), np.stack([x, y, z]))

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return (points - self.position) @ self.rotation.T


def ring_of_cameras(
    azimuths_deg, distance: float, height: float, target_height: float
) -> list[Camera]:
    """Cameras on a circle around the origin at the given azimuths (0 = on the +z axis)."""
    cams = []
    for az in np.radians(azimuths_deg):
        pos = np.array([distance * np.sin(az), height, distance * np.cos(az)])
        cams.append(Camera.looking_at(pos, np.array([0.0, target_height, 0.0])))
    return cams


@dataclass(frozen=True)
class Artifacts:
    """Per-recording probabilities of the sensor's misbehaviours."""

    empty_lead: float = 0.05  # first 1-10 frames report no body
    id_switch: float = 0.06  # a person vanishes for 1-4 frames and returns with a new ID
    ghost: float = 0.08  # a short-lived extra body (<= 11 frames)
    furniture: float = 0.05  # a wide, flat, still object tracked as a body
    bone_fit: float = 0.06  # sd of each bone's apparent length factor over a recording


PKU_ARTIFACTS = Artifacts(empty_lead=0.05, id_switch=0.0, ghost=0.0, furniture=0.0)


@dataclass
class Track:
    """One body ID as the sensor reports it, over the frames it was seen."""

    body_id: int
    slot: int  # the sensor's body slot: the order bodies come in within a frame
    frames: np.ndarray  # (n,) frame indices
    xyz: np.ndarray  # (n, 25, 3) camera space
    quat: np.ndarray  # (n, 25, 4)
    state: np.ndarray  # (n, 25) joint tracking state: 1 inferred, 2 tracked
    hands: np.ndarray  # (n, 4) confidence and state of the left, then the right hand

    def joint_rows(self) -> np.ndarray:
        """(n, 25, 12): x y z depthX depthY colorX colorY orientW..Z trackingState."""
        return np.concatenate(
            [
                self.xyz,
                project(self.xyz, DEPTH_INTRINSICS),
                project(self.xyz, COLOR_INTRINSICS, COLOR_OFFSET_X),
                self.quat,
                self.state[..., None],
            ],
            -1,
        )

    def body_info(self) -> np.ndarray:
        """(n, 9): clipedEdges, hand confidences/states, isRestricted, leanX, leanY, tracking."""
        depth = project(self.xyz, DEPTH_INTRINSICS)
        edges = (
            np.any(depth[..., 0] >= DEPTH_SIZE[0], -1) * 1
            + np.any(depth[..., 0] < 0, -1) * 2
            + np.any(depth[..., 1] < 0, -1) * 4
            + np.any(depth[..., 1] >= DEPTH_SIZE[1], -1) * 8
        )
        spine = normalize(self.xyz[:, JOINT["spine_shoulder"]] - self.xyz[:, JOINT["spine_base"]])
        left = self.xyz[:, JOINT["left_hip"]] - self.xyz[:, JOINT["right_hip"]]
        left[:, 1] = 0.0
        left = normalize(left)
        forward = np.cross(left, [0.0, 1.0, 0.0])
        lean_x = np.clip(-2 * np.sum(spine * left, -1), -1, 1)
        lean_y = np.clip(2 * np.sum(spine * forward, -1), -1, 1)
        n = len(self.frames)
        return np.column_stack([edges, self.hands, np.zeros(n), lean_x, lean_y, np.full(n, 2.0)])


@dataclass
class Recording:
    """A whole take from one camera: frame count plus the tracks seen in it."""

    frame_count: int
    tracks: list[Track]

    def frame_bodies(self) -> list[list[tuple[Track, int]]]:
        """Per frame, the (track, row) pairs present, in sensor-slot order."""
        frames: list[list[tuple[Track, int]]] = [[] for _ in range(self.frame_count)]
        for track in sorted(self.tracks, key=lambda tr: tr.slot):
            for row, f in enumerate(track.frames):
                frames[f].append((track, row))
        return frames


class Sensor:
    """Turns world-space people into a `Recording` for one camera."""

    def __init__(
        self,
        camera: Camera,
        rng: np.random.Generator,
        first_id: int,
        artifacts: Artifacts = Artifacts(),
    ):
        self.camera = camera
        self.rng = rng
        self.next_id = first_id
        self.artifacts = artifacts
        self.slots = list(rng.permutation(6))

    def _new_id(self) -> int:
        self.next_id += int(self.rng.integers(1, 4))
        return self.next_id

    def record(self, people: np.ndarray) -> Recording:
        """people: (P, T, 25, 3) world joints -> what the sensor writes."""
        rng, art = self.rng, self.artifacts
        frames = people.shape[1]
        clean = self.camera.to_camera(people)
        tracks: list[Track] = []
        for person in clean:
            xyz, state = self._measure(self._fit_bones(person))
            quat = self._orient(person)
            track = Track(
                self._new_id(),
                self.slots.pop(),
                np.arange(frames),
                xyz,
                quat,
                state,
                self._hand_states(frames),
            )
            tracks += self._maybe_lose(track) if rng.random() < art.id_switch else [track]
        if rng.random() < art.ghost:
            tracks.append(self._ghost(clean[0]))
        if rng.random() < art.furniture:
            tracks.append(self._furniture(frames, clean))
        if rng.random() < art.empty_lead:
            lead = int(rng.integers(1, 11))
            tracks = [_keep(tr, tr.frames >= lead) for tr in tracks]
            tracks = [tr for tr in tracks if len(tr.frames)]
        return Recording(frames, tracks)

    # --------------------------------------------------------------- measurement noise
    def _fit_bones(self, clean: np.ndarray) -> np.ndarray:
        """The skeleton fit's bias: each bone's apparent length is the true one times a factor
        N(1, bone_fit) that holds for the whole recording (it depends on the view, clothing and
        depth image). Real Kinect v2 files of one performer seen by one camera differ by ~5-8%
        per bone (median over bones, tests/fixtures); without it every synthetic performer's
        proportions would be a fingerprint no real recording has."""
        factors = self.rng.normal(1.0, self.artifacts.bone_fit, len(_PARENTS))
        fitted = np.empty_like(clean)
        for j in _TREE_ORDER:
            p = _PARENTS[j]
            fitted[:, j] = clean[:, j] if p < 0 else fitted[:, p] + factors[j] * (clean[:, j] - clean[:, p])
        return fitted

    def _measure(self, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Jitter (white plus a 3-frame correlated part) and runs of inferred joints."""
        rng = self.rng
        frames = len(clean)
        white = rng.normal(size=(frames + 2, 25, 3))
        noise = 0.6 * white[2:] + 0.6 * (white[:-2] + white[1:-1] + white[2:]) / np.sqrt(3)
        noise *= _JITTER[None, :, None] * np.array([1.0, 1.0, 1.5])
        xyz = clean + noise
        state = np.full((frames, 25), 2.0)
        far = _far_side(clean)
        for limb, joints in _LIMBS.items():
            rate = 0.004 * (2.5 if limb.startswith(far) else 1.0)
            rate *= 2.0 if limb.endswith(("hand", "foot")) else 1.0
            for start in np.flatnonzero(rng.random(frames) < rate):
                length = int(rng.integers(3, 25))
                span = slice(start, min(start + length, frames))
                state[span, joints] = 1.0
                drift = (
                    rng.normal(0, 0.03, 3) * np.linspace(0.3, 1.0, span.stop - span.start)[:, None]
                )
                xyz[span, joints] += drift[:, None, :]
        return xyz, state

    def _orient(self, clean: np.ndarray) -> np.ndarray:
        quat = orientations(clean)
        inner = quat[..., _INNER, :]
        quat[..., _INNER, :] = normalize(inner + self.rng.normal(0, 0.01, inner.shape))
        return quat

    def _hand_states(self, frames: int) -> np.ndarray:
        """Piecewise-constant hand (confidence, state) for each hand: 0 unknown, 1 not
        tracked, 2 open, 3 closed, 4 lasso; confidence 1 = high."""
        out = np.zeros((frames, 4))
        for hand in range(2):
            t = 0
            while t < frames:
                length = int(self.rng.integers(5, 40))
                hand_state = int(self.rng.choice(5, p=[0.08, 0.4, 0.3, 0.17, 0.05]))
                confident = hand_state in (2, 3) and self.rng.random() < 0.85
                out[t : t + length, 2 * hand] = float(confident)
                out[t : t + length, 2 * hand + 1] = hand_state
                t += length
        return out

    # --------------------------------------------------------------- tracking failures
    def _maybe_lose(self, track: Track) -> list[Track]:
        """Tracking loss: a 1-4 frame gap, then the same person under a new body ID."""
        n = len(track.frames)
        if n < 40:
            return [track]
        cut = int(self.rng.integers(int(0.3 * n), int(0.7 * n)))
        gap = int(self.rng.integers(1, 5))
        before = _keep(track, track.frames < cut)
        after = _keep(track, track.frames >= cut + gap)
        after.body_id, after.slot = self._new_id(), self.slots.pop()
        return [before, after]

    def _ghost(self, person: np.ndarray) -> Track:
        """A short-lived phantom: a displaced, noisy partial copy of a person."""
        rng = self.rng
        frames = len(person)
        length = int(rng.integers(2, MAX_GHOST_FRAMES + 1))
        start = int(rng.integers(0, max(frames - length, 1)))
        span = np.arange(start, min(start + length, frames))
        offset = np.array(
            [rng.choice([-1, 1]) * rng.uniform(0.4, 1.0), 0.0, rng.uniform(-0.3, 0.5)]
        )
        xyz = person[span] + offset + rng.normal(0, 0.05, (len(span), 25, 3))
        state = np.where(rng.random((len(span), 25)) < 0.6, 1.0, 2.0)
        return Track(
            self._new_id(),
            self.slots.pop(),
            span,
            xyz,
            self._orient(person[span] + offset),
            state,
            self._hand_states(len(span)),
        )

    def _furniture(self, frames: int, people: np.ndarray) -> Track:
        """A chair or table seen as a body: wide, flat and still, off to one side."""
        rng = self.rng
        length = int(rng.integers(min(20, frames), frames + 1))
        start = int(rng.integers(0, frames - length + 1))
        span = np.arange(start, start + length)
        centre = people[:, :, JOINT["spine_base"]].mean((0, 1))
        centre = centre + np.array(
            [rng.choice([-1, 1]) * rng.uniform(0.9, 1.5), 0, rng.uniform(0.0, 0.8)]
        )
        centre[1] = people[..., 1].min() + rng.uniform(0.1, 0.6)
        size = np.array([rng.uniform(0.8, 1.4), rng.uniform(0.1, 0.3), rng.uniform(0.3, 0.6)])
        shape = centre + (rng.random((25, 3)) - 0.5) * size
        xyz = shape + rng.normal(0, 0.008, (length, 25, 3))
        quat = np.zeros((length, 25, 4))
        quat[..., 0] = 1.0
        quat[..., _LEAVES, :] = 0.0
        state = np.where(rng.random((length, 25)) < 0.5, 1.0, 2.0)
        return Track(
            self._new_id(), self.slots.pop(), span, xyz, quat, state, self._hand_states(length)
        )


def _keep(track: Track, mask: np.ndarray) -> Track:
    return Track(
        track.body_id,
        track.slot,
        track.frames[mask],
        track.xyz[mask],
        track.quat[mask],
        track.state[mask],
        track.hands[mask],
    )


def _far_side(clean: np.ndarray) -> str:
    """The side of the body turned away from the camera (its limbs get occluded more)."""
    gap = clean[:, JOINT["left_shoulder"], 2] - clean[:, JOINT["right_shoulder"], 2]
    return "left" if gap.mean() > 0 else "right"
