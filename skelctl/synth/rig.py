"""A Kinect-v2 body driven by a few interpretable channels.

The trunk is forward kinematics (pelvis position and yaw, spine bend/lean/twist, head
nod/turn); arms and legs are two-bone inverse kinematics towards wrist and ankle targets.
Motions set channels and targets (whole arrays over T frames, no per-frame Python) and
`Body.solve()` returns the 25 joints (T, 25, 3) in world metres: y up, floor at y = 0.

Body-local axes: +x the person's left, +y up, +z where they face; `yaw` turns +z towards +x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skelctl.data.layout import get_layout

LAYOUT = get_layout("ntu25")
JOINT = {name: i for i, name in enumerate(LAYOUT.joints)}
SIDES = ("left", "right")
UP = np.array([0.0, 1.0, 0.0])

# Segment lengths (metres) of a 1.75 m adult; each performer scales and perturbs them.
_SEGMENTS = {
    "spine_low": 0.27,
    "spine_high": 0.23,
    "neck": 0.07,
    "head": 0.11,
    "shoulder_width": 0.17,
    "shoulder_drop": 0.04,
    "upper_arm": 0.28,
    "forearm": 0.25,
    "hand": 0.08,
    "hand_tip": 0.07,
    "thumb": 0.05,
    "hip_width": 0.08,
    "hip_drop": 0.07,
    "thigh": 0.43,
    "shank": 0.42,
    "ankle_height": 0.08,
    "foot": 0.12,
}


@dataclass(frozen=True)
class Physique:
    """One performer: body proportions and a movement style kept across all their samples."""

    segments: dict[str, float]
    dominant: str  # "right" or "left": the hand (and foot) one-handed actions use
    tempo: float  # > 1 moves faster
    amplitude: float  # scales how far limbs travel
    stance: float  # half the distance between the feet

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Physique:
        scale = float(np.clip(rng.normal(1.0, 0.055), 0.88, 1.12))
        segments = {k: v * scale * float(rng.normal(1.0, 0.03)) for k, v in _SEGMENTS.items()}
        return cls(
            segments=segments,
            dominant="left" if rng.random() < 0.15 else "right",
            tempo=float(rng.uniform(0.8, 1.25)),
            amplitude=float(rng.uniform(0.85, 1.15)),
            stance=float(rng.uniform(0.09, 0.17)) * scale,
        )

    @property
    def hip_height(self) -> float:
        """Height of the spine-base joint when standing straight."""
        s = self.segments
        return s["hip_drop"] + s["thigh"] + s["shank"] + s["ankle_height"]

    @property
    def arm_reach(self) -> float:
        return self.segments["upper_arm"] + self.segments["forearm"]

    @property
    def off_hand(self) -> str:
        return "left" if self.dominant == "right" else "right"


def side_sign(side: str) -> float:
    """+1 for the left side (body-local +x), -1 for the right."""
    return 1.0 if side == "left" else -1.0


def rot_x(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*np.shape(a), 3, 3)


def rot_y(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*np.shape(a), 3, 3)


def rot_z(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*np.shape(a), 3, 3)


def normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def apply(rot: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors: rot (..., 3, 3) times v (..., 3) or (3,)."""
    return np.einsum("...ij,...j->...i", rot, v)


def two_bone(
    root: np.ndarray, target: np.ndarray, a: float, b: float, pole: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Middle and end joints of a limb of lengths a, b reaching from root towards target.

    The limb bends towards `pole` (a direction); out-of-reach targets straighten it.
    """
    offset = target - root
    dist = np.linalg.norm(offset, axis=-1, keepdims=True)
    axis = offset / np.maximum(dist, 1e-9)
    dist = np.clip(dist, abs(a - b) + 1e-3, a + b - 1e-4)
    along = (a * a - b * b + dist * dist) / (2 * dist)
    radius = np.sqrt(np.maximum(a * a - along * along, 0.0))
    bend = pole - np.sum(pole * axis, -1, keepdims=True) * axis
    bend = normalize(bend)
    middle = root + along * axis + radius * bend
    return middle, root + dist * axis


class Body:
    """One person over T frames. Set channels, then targets, then `solve()`."""

    def __init__(self, phys: Physique, frames: int, position: np.ndarray, facing: float):
        self.phys = phys
        self.frames = frames
        self.ground = np.tile(np.asarray(position, float), (frames, 1))  # floor point under pelvis
        self.ground[:, 1] = 0.0
        self.yaw = np.full(frames, float(facing))
        self.shift = np.zeros((frames, 3))  # pelvis offset in the body frame (y: crouch)
        self.bend = np.zeros(frames)  # trunk forward flexion (rad)
        self.lean = np.zeros(frames)  # trunk lateral lean, + towards the left (rad)
        self.twist = np.zeros(frames)  # chest yaw relative to the pelvis (rad)
        self.nod = np.zeros(frames)  # head pitch, + looks down
        self.turn = np.zeros(frames)  # head yaw
        self.wrists: dict[str, np.ndarray | None] = {"left": None, "right": None}
        self.elbow_pole: dict[str, np.ndarray] = {}  # world directions (T, 3)
        self.feet = self._planted_feet()

    # ------------------------------------------------------------------ frames of reference
    def pelvis_rot(self) -> np.ndarray:
        return rot_y(self.yaw)

    def forward(self) -> np.ndarray:
        return np.stack([np.sin(self.yaw), np.zeros_like(self.yaw), np.cos(self.yaw)], -1)

    def left(self) -> np.ndarray:
        return np.stack([np.cos(self.yaw), np.zeros_like(self.yaw), -np.sin(self.yaw)], -1)

    def trunk(self) -> dict[str, np.ndarray]:
        """Trunk joints and the chest/head rotations for the current channels."""
        s = self.segments
        pelvis = self.pelvis_rot()
        base = self.ground + np.array([0.0, self.phys.hip_height, 0.0]) + apply(pelvis, self.shift)
        half = rot_y(self.twist / 2) @ rot_z(-self.lean / 2) @ rot_x(self.bend / 2)
        lower = pelvis @ half
        chest = lower @ half
        mid = base + apply(lower, np.array([0.0, s["spine_low"], 0.0]))
        top = mid + apply(chest, np.array([0.0, s["spine_high"], 0.0]))
        neck = top + apply(chest, np.array([0.0, s["neck"], 0.0]))
        head_rot = chest @ rot_y(self.turn) @ rot_x(self.nod)
        out = {
            "spine_base": base,
            "spine_mid": mid,
            "spine_shoulder": top,
            "neck": neck,
            "head": neck + apply(head_rot, np.array([0.0, s["head"], 0.015])),
            "chest_rot": chest,
            "head_rot": head_rot,
            "pelvis_rot": pelvis,
        }
        for side in SIDES:
            k = side_sign(side)
            out[f"{side}_shoulder"] = top + apply(
                chest, np.array([k * s["shoulder_width"], -s["shoulder_drop"], 0.0])
            )
            out[f"{side}_hip"] = base + apply(
                pelvis, np.array([k * s["hip_width"], -s["hip_drop"], 0.0])
            )
        return out

    @property
    def segments(self) -> dict[str, float]:
        return self.phys.segments

    def at(self, origin: np.ndarray, rot: np.ndarray, local) -> np.ndarray:
        """World point of `local` (3,) or (T, 3) given in the frame (origin, rot)."""
        return origin + apply(rot, np.asarray(local, float))

    def idle_wrist(self, side: str, style: str, trunk: dict[str, np.ndarray]) -> np.ndarray:
        """Where a resting wrist sits: arms hanging, hands in front, on the hips, behind the
        back, arms folded, or the dominant hand at the chin."""
        s, k = self.segments, side_sign(side)
        if style == "chin":
            if side == self.phys.dominant:
                return trunk["head"] + apply(trunk["head_rot"], np.array([k * 0.03, -0.2, 0.1]))
            style = "hang"
        reach = self.phys.arm_reach
        local = {
            "hang": [k * 0.05, -reach * 0.97, 0.04],
            "front": [k * 0.07, -reach * 0.72, 0.22],
            "hips": [k * 0.14, -s["spine_high"] - 0.08, -0.02],
            "back": [k * 0.05, -reach * 0.8, -0.16],
            "folded": [-k * (s["shoulder_width"] + 0.08), -0.27, 0.17],
        }[style]
        shoulder = trunk[f"{side}_shoulder"]
        rot = trunk["chest_rot"] if style != "hips" else trunk["pelvis_rot"]
        return self.at(shoulder, rot, local)

    # ------------------------------------------------------------------ feet and walking
    def _planted_feet(self) -> dict[str, np.ndarray]:
        """Feet fixed on the floor beside the pelvis where it starts."""
        feet = {}
        for side in SIDES:
            local = np.array([side_sign(side) * self.phys.stance, 0.0, 0.0])
            spot = self.ground[0] + apply(self.pelvis_rot()[0], local)
            spot[1] = self.segments["ankle_height"]
            feet[side] = np.tile(spot, (self.frames, 1))
        return feet

    def walk(self, stride: float = 0.65) -> None:
        """Leg cycle that follows the current `ground` path and `yaw`.

        The stance foot moves backwards at the body's speed (planted), the swing foot
        forwards with a lift; the pelvis bobs twice per stride.
        """
        step = np.linalg.norm(np.diff(self.ground, axis=0), axis=-1)
        travel = np.concatenate([[0.0], np.cumsum(step)])
        phase = travel / (2 * stride)  # one full cycle = two steps
        # Feet start and end side by side: the stride opens over the first and last half step.
        opening = np.clip(np.minimum(travel, travel[-1] - travel) / (0.5 * stride), 0.0, 1.0)
        fwd, left = self.forward(), self.left()
        for side in SIDES:
            u = (phase + (0.25 if side == "left" else 0.75)) % 1.0
            stance = u < 0.5
            swing = (u - 0.5) * 2
            along = np.where(
                stance,
                stride / 2 * (1 - 4 * u),
                -stride / 2 + stride * (swing - np.sin(2 * np.pi * swing) / (2 * np.pi)),
            )
            along = along * opening
            lift = np.where(stance, 0.0, 0.09 * np.sin(np.pi * swing)) * opening
            spot = (
                self.ground + along[:, None] * fwd + side_sign(side) * self.phys.stance * 0.8 * left
            )
            spot[:, 1] = self.segments["ankle_height"] + lift
            self.feet[side] = spot
        moving = np.clip(np.gradient(travel) / 0.01, 0.0, 1.0)
        self.shift[:, 1] += -0.025 * moving * (1 - np.cos(4 * np.pi * phase)) / 2

    # ------------------------------------------------------------------ arms
    def reach(self, side: str, wrist: np.ndarray, pole: np.ndarray | None = None) -> None:
        """Send a wrist towards world points (T, 3); `pole` says where the elbow points."""
        self.wrists[side] = wrist
        if pole is not None:
            self.elbow_pole[side] = pole

    def _default_elbow_pole(self, side: str, trunk: dict[str, np.ndarray]) -> np.ndarray:
        local = np.array([side_sign(side) * 0.6, -1.0, -0.35])
        return apply(trunk["chest_rot"], local)

    # ------------------------------------------------------------------ solve
    def solve(self, idle_style: str = "hang") -> np.ndarray:
        """All 25 joints (T, 25, 3), world metres."""
        s = self.segments
        trunk = self.trunk()
        joints = np.zeros((self.frames, 25, 3))
        for name in ("spine_base", "spine_mid", "spine_shoulder", "neck", "head"):
            joints[:, JOINT[name]] = trunk[name]
        chest_fwd = apply(trunk["chest_rot"], np.array([0.0, 0.0, 1.0]))
        chest_up = apply(trunk["chest_rot"], UP)
        for side in SIDES:
            shoulder = trunk[f"{side}_shoulder"]
            wrist = self.wrists[side]
            if wrist is None:
                wrist = self.idle_wrist(side, idle_style, trunk)
            pole = self.elbow_pole.get(side)
            if pole is None:
                pole = self._default_elbow_pole(side, trunk)
            elbow, wrist = two_bone(shoulder, wrist, s["upper_arm"], s["forearm"], pole)
            forearm = normalize(wrist - elbow)
            hand = wrist + s["hand"] * forearm
            # Thumbs point forward for a hanging arm and up for an arm held forward.
            facing = chest_fwd - np.sum(chest_fwd * forearm, -1, keepdims=True) * forearm
            upward = chest_up - np.sum(chest_up * forearm, -1, keepdims=True) * forearm
            weight = np.abs(np.sum(chest_fwd * forearm, -1, keepdims=True))
            thumb_dir = normalize(
                normalize(facing) * (1 - weight)
                + normalize(upward) * weight
                - side_sign(side) * 0.3 * apply(trunk["chest_rot"], np.array([1.0, 0, 0]))
            )
            joints[:, JOINT[f"{side}_shoulder"]] = shoulder
            joints[:, JOINT[f"{side}_elbow"]] = elbow
            joints[:, JOINT[f"{side}_wrist"]] = wrist
            joints[:, JOINT[f"{side}_hand"]] = hand
            joints[:, JOINT[f"{side}_hand_tip"]] = hand + s["hand_tip"] * forearm
            joints[:, JOINT[f"{side}_thumb"]] = hand + s["thumb"] * normalize(
                0.4 * forearm + thumb_dir
            )

            hip = trunk[f"{side}_hip"]
            knee_pole = self.forward() + side_sign(side) * 0.15 * self.left()
            knee, ankle = two_bone(hip, self.feet[side], s["thigh"], s["shank"], knee_pole)
            shank = normalize(ankle - knee)
            foot = ankle + s["foot"] * normalize(self.forward() + 0.45 * shank)
            joints[:, JOINT[f"{side}_hip"]] = hip
            joints[:, JOINT[f"{side}_knee"]] = knee
            joints[:, JOINT[f"{side}_ankle"]] = ankle
            joints[:, JOINT[f"{side}_foot"]] = foot
        return joints


# ---------------------------------------------------------------------- joint orientations
def _kinect_children() -> dict[int, int]:
    """Joint -> the child its orientation's Y axis points at, in the Kinect SDK's own tree
    (rooted at the spine base; hand tip and thumb both hang from the hand, unlike the
    skeleton graph of `ntu25`). Head, feet, hand tips and thumbs are leaves."""
    chains = {
        "spine_base": "spine_mid",
        "spine_mid": "spine_shoulder",
        "spine_shoulder": "neck",
        "neck": "head",
    }
    for side in SIDES:
        for joint, child in (
            ("shoulder", "elbow"),
            ("elbow", "wrist"),
            ("wrist", "hand"),
            ("hand", "hand_tip"),
            ("hip", "knee"),
            ("knee", "ankle"),
            ("ankle", "foot"),
        ):
            chains[f"{side}_{joint}"] = f"{side}_{child}"
    return {JOINT[j]: JOINT[c] for j, c in chains.items()}


KINECT_CHILD = _kinect_children()


def orientations(joints: np.ndarray) -> np.ndarray:
    """Kinect-style absolute joint orientations (..., 25, 4) as w x y z quaternions.

    Y runs along the bone to the joint's child, X follows the person's right-to-left
    direction; leaf joints get 0 0 0 0 as in the real files.
    """
    lead = joints.shape[:-2]
    quats = np.zeros((*lead, 25, 4))
    hips = normalize(joints[..., JOINT["left_hip"], :] - joints[..., JOINT["right_hip"], :])
    shoulders = normalize(
        joints[..., JOINT["left_shoulder"], :] - joints[..., JOINT["right_shoulder"], :]
    )
    spine = normalize(joints[..., JOINT["spine_shoulder"], :] - joints[..., JOINT["spine_base"], :])
    for j, child in KINECT_CHILD.items():
        y_axis = normalize(joints[..., child, :] - joints[..., j, :])
        name = LAYOUT.joints[j]
        ref = hips if name == "spine_base" or name.endswith(("hip", "knee", "ankle")) else shoulders
        # A bone along the reference line (an arm held sideways) takes the spine instead.
        along = np.abs(np.sum(ref * y_axis, -1, keepdims=True)) > 0.9
        ref = np.where(along, spine, ref)
        x_axis = normalize(ref - np.sum(ref * y_axis, -1, keepdims=True) * y_axis)
        z_axis = np.cross(x_axis, y_axis)
        quats[..., j, :] = matrix_to_quaternion(np.stack([x_axis, y_axis, z_axis], -1))
    return quats


def matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4), w x y z."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    w = 0.5 * np.sqrt(np.maximum(0.0, 1 + m00 + m11 + m22))
    x = 0.5 * np.sqrt(np.maximum(0.0, 1 + m00 - m11 - m22)) * np.sign(m[..., 2, 1] - m[..., 1, 2])
    y = 0.5 * np.sqrt(np.maximum(0.0, 1 - m00 + m11 - m22)) * np.sign(m[..., 0, 2] - m[..., 2, 0])
    z = 0.5 * np.sqrt(np.maximum(0.0, 1 - m00 - m11 + m22)) * np.sign(m[..., 1, 0] - m[..., 0, 1])
    return normalize(np.stack([w, x, y, z], -1))
