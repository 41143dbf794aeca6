"""Procedural actions: real NTU RGB+D classes told apart by how limbs move, not by pose.

Each action is a function of a `Scene` that creates one or two `Body`s and sets their
channels and targets over the scene's frames. Start pose, position, facing, tempo, amplitude
and handedness vary per sample, and every action starts and ends near a resting pose, so a
single frame says little about the class while the motion says a lot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from skelctl.synth.rig import Body, Physique, apply, side_sign

FPS = 30.0
IDLE_STYLES = ("hang", "front", "hips", "back", "folded", "chin")
_IDLE_WEIGHTS = (0.35, 0.2, 0.12, 0.1, 0.13, 0.1)


# ---------------------------------------------------------------------- time envelopes
def ease(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def bump(
    t: np.ndarray, start: float, end: float, rise: float, fall: float | None = None
) -> np.ndarray:
    """0 before `start`, eases to 1 over `rise` frames, holds, eases back to 0 by `end`."""
    fall = rise if fall is None else fall
    return np.minimum(ease((t - start) / max(rise, 1.0)), ease((end - t) / max(fall, 1.0)))


def keyframes(t: np.ndarray, times, values) -> np.ndarray:
    """Eased piecewise interpolation through `values` (K, ...) or per-frame (K, T, ...)."""
    times = np.asarray(times, float)
    values = np.asarray(values, float)
    k = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    w = ease((t - times[k]) / np.maximum(times[k + 1] - times[k], 1e-6))
    if values.ndim >= 2 and values.shape[1] == len(t):  # per-frame keys
        frames = np.arange(len(t))
        a, b = values[k, frames], values[k + 1, frames]
    else:
        a, b = values[k], values[k + 1]
    w = w.reshape(w.shape + (1,) * (a.ndim - 1))
    return a * (1 - w) + b * w


def lerp(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    s = np.asarray(s)
    if a.ndim > s.ndim:
        s = s[..., None]
    return a + (b - a) * s


# ---------------------------------------------------------------------- scene
class Scene:
    """The frames, random stream, placement and cast of one performance."""

    def __init__(
        self,
        rng: np.random.Generator,
        frames: int,
        center: np.ndarray,
        facing: float,
        cast: list[Physique],
        tempo: float,
        amplitude: float,
    ):
        self.rng = rng
        self.frames = frames
        self.t = np.arange(frames, dtype=float)
        self.center = np.asarray(center, float)
        self.facing = facing
        self.cast = cast
        self.tempo = tempo
        self.amplitude = amplitude
        self.bodies: list[Body] = []
        self.styles: list[str] = []

    # placement ------------------------------------------------------------
    def add(self, who: int, position: np.ndarray, facing: float) -> Body:
        """A body with its resting quirks: posture offsets and slow sway."""
        body = Body(self.cast[who], self.frames, position, facing)
        rng = self.rng
        body.bend += rng.normal(0.04, 0.05) + self.wobble(0.03)
        body.lean += rng.normal(0.0, 0.03) + self.wobble(0.02)
        body.twist += rng.normal(0.0, 0.06) + self.wobble(0.04)
        body.turn += rng.normal(0.0, 0.2) + self.wobble(0.12)
        body.nod += rng.normal(0.0, 0.1) + self.wobble(0.05)
        body.ground[:, [0, 2]] += self.wobble(0.012, 2)
        self.bodies.append(body)
        self.styles.append(str(rng.choice(IDLE_STYLES, p=_IDLE_WEIGHTS)))
        return body

    def solo(self) -> Body:
        return self.add(0, self.center, self.facing)

    def pair(self, gap: float) -> tuple[Body, Body]:
        """Performer and partner facing each other `gap` metres apart, side-on to the view."""
        axis = np.array([np.cos(self.facing), 0.0, -np.sin(self.facing)])  # facing's left
        a = self.add(0, self.center - axis * gap / 2, self.facing + np.pi / 2)
        b = self.add(1, self.center + axis * gap / 2, self.facing - np.pi / 2)
        return a, b

    # timing ---------------------------------------------------------------
    def window(self, lead=(0.08, 0.25), tail=(0.08, 0.25)) -> tuple[float, float]:
        """Start and end frame of the action proper, leaving some rest on either side."""
        n = self.frames
        return self.rng.uniform(*lead) * n, n - 1 - self.rng.uniform(*tail) * n

    def phases(self, start: float, end: float, *durations: float) -> list[float]:
        """Key times from `start` through consecutive phases, squeezed to end by `end`."""
        total = sum(durations)
        scale = min(1.0, (end - start) / total) if total > 0 else 1.0
        return list(start + scale * np.concatenate([[0.0], np.cumsum(durations)]))

    def rate(self, lo: float, hi: float) -> float:
        """Cycles per frame for an oscillation of lo..hi Hz at this sample's tempo."""
        return self.rng.uniform(lo, hi) * self.tempo / FPS

    def seconds(self, lo: float, hi: float) -> float:
        return self.rng.uniform(lo, hi) * FPS / self.tempo

    def amp(self, lo: float, hi: float) -> float:
        return self.rng.uniform(lo, hi) * self.amplitude

    def wobble(self, scale: float, dims: int = 0) -> np.ndarray:
        """Slow smooth noise (T,) or (T, dims): two random sinusoids of 0.1-0.7 Hz."""
        shape = (2,) if dims == 0 else (2, dims)
        freq = self.rng.uniform(0.1, 0.7, shape) / FPS
        phase = self.rng.uniform(0, 2 * np.pi, shape)
        t = self.t.reshape(-1, *([1] * len(shape)))
        out = np.sin(2 * np.pi * freq * t + phase).sum(1) / np.sqrt(2)
        return scale * out

    # targets --------------------------------------------------------------
    def rest(self, body: Body, side: str) -> np.ndarray:
        """The resting wrist position (T, 3) for the body's current trunk, with a little drift."""
        style = self.styles[self.bodies.index(body)]
        return body.idle_wrist(side, style, body.trunk()) + self.wobble(0.015, 3)

    def joints(self) -> np.ndarray:
        """(P, T, 25, 3) world joints of every body."""
        return np.stack([b.solve(style) for b, style in zip(self.bodies, self.styles, strict=True)])


def from_shoulder(body: Body, side: str, out: float, up, fwd) -> np.ndarray:
    """World points given relative to a shoulder in the chest frame; `out` is away from the
    body's midline on that side."""
    trunk = body.trunk()
    local = np.stack(
        np.broadcast_arrays(
            side_sign(side) * np.asarray(out, float), np.asarray(up, float), np.asarray(fwd, float)
        ),
        -1,
    )
    return trunk[f"{side}_shoulder"] + apply(trunk["chest_rot"], local)


def from_head(body: Body, side: str, out: float, up: float, fwd: float) -> np.ndarray:
    trunk = body.trunk()
    return trunk["head"] + apply(trunk["head_rot"], np.array([side_sign(side) * out, up, fwd]))


def arc(a: np.ndarray, b: np.ndarray, s: np.ndarray, bulge: np.ndarray) -> np.ndarray:
    """Move from a to b with s, bowing out along `bulge` halfway (hands go around the body)."""
    return lerp(a, b, s) + np.sin(np.pi * np.clip(s, 0, 1))[:, None] * bulge


def _floor(point: np.ndarray, height: float) -> np.ndarray:
    out = np.array(point, float, copy=True)
    out[..., 1] = height
    return out


# ---------------------------------------------------------------------- single-person actions
def drink_water(sc: Scene) -> None:
    b = sc.solo()
    side = b.phys.dominant
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.5, 0.8))
    sip = bump(sc.t, t0 + 0.3 * (t1 - t0), t1 - 0.3 * (t1 - t0), rise=6)
    b.nod -= 0.3 * sip
    mouth = from_head(b, side, 0.03, -0.19, 0.11) + np.array([0, 0.025, 0]) * sip[:, None]
    b.reach(side, arc(sc.rest(b, side), mouth, s, b.forward() * 0.12))


def pickup(sc: Scene) -> None:
    b = sc.solo()
    side = b.phys.dominant
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=0.42 * (t1 - t0))
    b.bend += sc.rng.uniform(1.0, 1.35) * s
    b.shift[:, 1] -= sc.rng.uniform(0.25, 0.4) * s
    b.shift[:, 2] -= 0.12 * s
    b.nod += 0.2 * s
    spot = (
        b.ground[0]
        + b.forward()[0] * sc.rng.uniform(0.3, 0.45)
        + side_sign(side) * b.left()[0] * sc.rng.uniform(0.05, 0.2)
    )
    floor = np.tile(_floor(spot, 0.1), (sc.frames, 1))
    carry = from_shoulder(b, side, -0.05, -0.38, 0.28)
    before = sc.t < (t0 + t1) / 2
    hand = np.where(before[:, None], lerp(sc.rest(b, side), floor, s), lerp(carry, floor, s))
    b.reach(side, hand)


def throw(sc: Scene) -> None:
    b = sc.solo()
    side, other = b.phys.dominant, b.phys.off_hand
    t0, t1 = sc.window()
    times = sc.phases(
        t0,
        t1,
        sc.seconds(0.4, 0.7),
        sc.seconds(0.12, 0.2),
        sc.seconds(0.15, 0.3),
        sc.seconds(0.4, 0.7),
    )
    wind, release = times[1], times[2]
    k = side_sign(side)
    b.twist += keyframes(sc.t, times, [0, 0.4 * k, -0.35 * k, -0.3 * k, 0]) * sc.amplitude
    b.bend += keyframes(sc.t, times, [0, -0.1, 0.2, 0.3, 0])
    if sc.rng.random() < 0.6:  # step into the throw
        step = keyframes(sc.t, [t0, wind, release], [0.0, 0.0, sc.amp(0.2, 0.35)])
        b.feet[other] = b.feet[other] + step[:, None] * b.forward()
        b.shift[:, 2] += 0.5 * step
    keys = [
        sc.rest(b, side),
        from_shoulder(b, side, 0.15, sc.amp(0.25, 0.35), -0.25),
        from_shoulder(b, side, -0.05, 0.15, 0.5),
        from_shoulder(b, side, -0.2, -0.35, 0.35),
        sc.rest(b, side),
    ]
    b.reach(side, keyframes(sc.t, times, keys))


def _sit_profile(sc: Scene, b: Body, s: np.ndarray) -> None:
    """Pelvis down and back onto a seat (s = 1 seated), leaning forward on the way."""
    seat = sc.rng.uniform(0.42, 0.52)
    b.shift[:, 1] -= (b.phys.hip_height - seat - 0.1) * s
    b.shift[:, 2] -= sc.rng.uniform(0.2, 0.3) * s
    b.bend += sc.amp(0.45, 0.7) * np.sin(np.pi * s) + 0.08 * s
    for side in ("left", "right"):
        b.feet[side] = b.feet[side] + 0.08 * s[:, None] * b.forward()
    trunk = b.trunk()
    for side in ("left", "right"):
        lap = trunk[f"{side}_hip"] + b.forward() * 0.3 + np.array([0, 0.1, 0])
        b.reach(side, lerp(sc.rest(b, side), lap, s))


def sitting_down(sc: Scene) -> None:
    b = sc.solo()
    t0, t1 = sc.window(lead=(0.1, 0.3), tail=(0.1, 0.3))
    _sit_profile(sc, b, ease((sc.t - t0) / (t1 - t0)))


def standing_up(sc: Scene) -> None:
    b = sc.solo()
    t0, t1 = sc.window(lead=(0.1, 0.3), tail=(0.1, 0.3))
    _sit_profile(sc, b, 1 - ease((sc.t - t0) / (t1 - t0)))


def clapping(sc: Scene) -> None:
    b = sc.solo()
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.3, 0.5))
    f = sc.rate(2.0, 3.2)
    apart = 0.5 * (1 - np.cos(2 * np.pi * f * (sc.t - t0))) * sc.amp(0.1, 0.16) + 0.035
    height, reach = sc.rng.uniform(-0.2, -0.02), sc.rng.uniform(0.25, 0.38)
    for side in ("left", "right"):
        clap = from_shoulder(b, side, apart - b.segments["shoulder_width"], height, reach)
        b.reach(side, lerp(sc.rest(b, side), clap, s))


def cheer_up(sc: Scene) -> None:
    b = sc.solo()
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.3, 0.5))
    pump = sc.amp(0.05, 0.1) * np.sin(2 * np.pi * sc.rate(1.5, 2.5) * (sc.t - t0))
    out = sc.rng.uniform(0.15, 0.3)
    b.nod -= 0.15 * s
    for side in ("left", "right"):
        up = from_shoulder(b, side, out, 0.42 + pump, 0.05)
        b.reach(side, lerp(sc.rest(b, side), up, s), b.left() * side_sign(side))


def hand_waving(sc: Scene) -> None:
    b = sc.solo()
    side = b.phys.dominant
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.3, 0.5))
    sway = sc.amp(0.12, 0.2) * np.sin(2 * np.pi * sc.rate(1.8, 3.0) * (sc.t - t0))
    wave = from_shoulder(b, side, 0.2 + sway, sc.rng.uniform(0.15, 0.3), sc.rng.uniform(0.05, 0.2))
    pole = side_sign(side) * b.left() - np.array([0, 0.5, 0])
    b.reach(side, lerp(sc.rest(b, side), wave, s), pole)


def kicking_something(sc: Scene) -> None:
    b = sc.solo()
    side, other = b.phys.dominant, b.phys.off_hand
    t0, t1 = sc.window(lead=(0.15, 0.3), tail=(0.15, 0.3))
    times = sc.phases(t0, t1, 0.35 * (t1 - t0), sc.seconds(0.15, 0.25), 0.5 * (t1 - t0))
    fwd = b.forward()
    start = b.feet[side]
    keys = [
        start,
        start - 0.25 * fwd + np.array([0, 0.15, 0]),
        start + sc.amp(0.45, 0.6) * fwd + np.array([0, sc.amp(0.25, 0.45), 0]),
        start,
    ]
    b.feet[side] = keyframes(sc.t, times, keys)
    s = bump(sc.t, t0, t1, rise=0.3 * (t1 - t0))
    b.shift[:, 0] += side_sign(other) * 0.06 * s  # weight over the standing foot
    b.bend -= keyframes(sc.t, times, [0, 0.05, 0.25, 0])
    for arm in ("left", "right"):
        b.reach(arm, lerp(sc.rest(b, arm), from_shoulder(b, arm, 0.2, -0.4, 0.1), s))


def hopping(sc: Scene) -> None:
    b = sc.solo()
    lifted, support = b.phys.off_hand, b.phys.dominant
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.3, 0.4))
    b.feet[lifted] = lerp(
        b.feet[lifted], b.feet[lifted] - 0.15 * b.forward() + np.array([0, sc.amp(0.2, 0.3), 0]), s
    )
    hop = sc.amp(0.05, 0.1) * np.abs(np.sin(np.pi * sc.rate(2.0, 2.6) * (sc.t - t0))) * s
    b.shift[:, 1] += hop - 0.04 * s
    b.shift[:, 0] += side_sign(support) * 0.05 * s
    b.feet[support] = b.feet[support] + hop[:, None] * np.array([0, 1.0, 0])
    for arm in ("left", "right"):
        b.reach(arm, lerp(sc.rest(b, arm), from_shoulder(b, arm, 0.2, -0.3, 0.2), s))


def jump_up(sc: Scene) -> None:
    b = sc.solo()
    t0, t1 = sc.window(lead=(0.15, 0.3), tail=(0.15, 0.3))
    crouch, height = sc.amp(0.12, 0.22), sc.amp(0.15, 0.3)
    flight = 2 * np.sqrt(2 * height / 9.81) * FPS  # frames in the air
    times = sc.phases(
        t0,
        t1,
        sc.seconds(0.3, 0.5),
        sc.seconds(0.15, 0.25),
        flight / 2,
        flight / 2,
        sc.seconds(0.2, 0.35),
        sc.seconds(0.3, 0.5),
    )
    lift = keyframes(sc.t, times, [0, -crouch, 0, height, 0, -0.7 * crouch, 0])
    b.shift[:, 1] += lift
    b.bend += keyframes(sc.t, times, [0, 0.35, 0.05, 0, 0, 0.3, 0])
    air = np.clip(lift, 0, None)[:, None] * np.array([0, 1.0, 0])
    for side in ("left", "right"):
        b.feet[side] = b.feet[side] + air
        rest = sc.rest(b, side)
        back = from_shoulder(b, side, 0.1, -0.45, -0.3)
        up = from_shoulder(b, side, 0.15, 0.4, 0.15)
        b.reach(side, keyframes(sc.t, times, [rest, back, up, up, rest, back, rest]))


def pointing(sc: Scene) -> None:
    b = sc.solo()
    side = b.phys.dominant
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.4, 0.6))
    az, el = sc.rng.uniform(-0.2, 0.7), sc.rng.uniform(-0.1, 0.5)
    reach = 0.95 * b.phys.arm_reach
    point = from_shoulder(
        b,
        side,
        reach * np.cos(el) * np.sin(az),
        reach * np.sin(el),
        reach * np.cos(el) * np.cos(az),
    )
    b.reach(side, lerp(sc.rest(b, side), point, s))


def bow(sc: Scene) -> None:
    b = sc.solo()
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.5, 0.9))
    b.bend += sc.amp(0.4, 0.9) * s
    b.nod += 0.25 * s
    b.shift[:, 2] -= 0.06 * s


def wipe_face(sc: Scene) -> None:
    b = sc.solo()
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.4, 0.6))
    stroke = sc.amp(0.04, 0.08) * np.sin(2 * np.pi * sc.rate(1.2, 2.0) * (sc.t - t0))
    b.nod += 0.2 * s
    hands = ("left", "right") if sc.rng.random() < 0.6 else (b.phys.dominant,)
    for side in hands:
        face = from_head(b, side, 0.05, -0.2, 0.12) + stroke[:, None] * np.array([0, 1.0, 0])
        b.reach(side, arc(sc.rest(b, side), face, s, b.forward() * 0.1))


def salute(sc: Scene) -> None:
    b = sc.solo()
    side = b.phys.dominant
    t0, t1 = sc.window(lead=(0.15, 0.3), tail=(0.15, 0.3))
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.25, 0.4))
    brow = from_head(b, side, 0.13, -0.03, 0.09)
    pole = side_sign(side) * b.left() + 0.3 * b.forward()
    b.reach(side, lerp(sc.rest(b, side), brow, s), pole)


def falling(sc: Scene) -> None:
    b = sc.solo()
    t0 = sc.window(lead=(0.2, 0.4))[0]
    s = ease((sc.t - t0) / sc.seconds(0.5, 0.8))
    kneel = b.phys.hip_height - sc.rng.uniform(0.5, 0.6)
    b.shift[:, 1] -= kneel * s
    b.bend += sc.amp(0.7, 1.1) * s
    b.nod -= 0.2 * s
    for side in ("left", "right"):
        b.feet[side] = b.feet[side] - 0.4 * s[:, None] * b.forward()
        ground = _floor(b.ground + b.forward() * 0.35 + side_sign(side) * 0.2 * b.left(), 0.08)
        b.reach(side, lerp(sc.rest(b, side), ground, ease(s * 1.3)))


def squat_down(sc: Scene) -> None:
    b = sc.solo()
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.6, 1.0))
    b.shift[:, 1] -= sc.amp(0.35, 0.45) * s
    b.shift[:, 2] -= 0.15 * s
    b.bend += sc.amp(0.35, 0.6) * s
    for side in ("left", "right"):
        b.reach(side, lerp(sc.rest(b, side), from_shoulder(b, side, 0.0, -0.05, 0.45), s))


def hands_up(sc: Scene) -> None:
    b = sc.solo()
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.4, 0.6))
    for side in ("left", "right"):
        up = from_shoulder(b, side, sc.rng.uniform(0.0, 0.08), 0.5, 0.05)
        b.reach(side, lerp(sc.rest(b, side), up, s), b.left() * side_sign(side))


def arm_circles(sc: Scene) -> None:
    b = sc.solo()
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.4, 0.6))
    radius, f = sc.amp(0.1, 0.18), sc.rate(1.0, 1.6)
    angle = 2 * np.pi * f * (sc.t - t0) * (1 if sc.rng.random() < 0.5 else -1)
    for side in ("left", "right"):
        circle = from_shoulder(b, side, 0.45, radius * np.sin(angle), radius * np.cos(angle))
        b.reach(side, lerp(sc.rest(b, side), circle, s), np.array([0, -1.0, 0]))


def running_on_the_spot(sc: Scene) -> None:
    b = sc.solo()
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.3, 0.5))
    phase = 2 * np.pi * sc.rate(1.2, 1.6) * (sc.t - t0)  # one cycle = a step with each leg
    knee = sc.amp(0.2, 0.35)
    for i, side in enumerate(("left", "right")):
        lift = knee * np.clip(np.sin(phase + i * np.pi), 0, None) * s
        b.feet[side] = b.feet[side] + lift[:, None] * (np.array([0, 1.0, 0]) + 0.4 * b.forward())
        swing = 0.15 * np.sin(phase + (i + 1) * np.pi)  # arms swing against the legs
        b.reach(side, lerp(sc.rest(b, side), from_shoulder(b, side, 0.05, -0.3, 0.12 + swing), s))
    b.shift[:, 1] += 0.03 * np.abs(np.sin(phase)) * s


def butt_kicks(sc: Scene) -> None:
    b = sc.solo()
    t0, t1 = sc.window()
    s = bump(sc.t, t0, t1, rise=sc.seconds(0.3, 0.5))
    f, heel = sc.rate(1.0, 1.4), sc.amp(0.35, 0.5)
    for i, side in enumerate(("left", "right")):
        kick = np.clip(np.sin(2 * np.pi * f * (sc.t - t0) + i * np.pi), 0, None) * s
        b.feet[side] = b.feet[side] + kick[:, None] * (np.array([0, heel, 0]) - 0.3 * b.forward())
    b.bend += 0.12 * s
    for side in ("left", "right"):
        b.reach(side, lerp(sc.rest(b, side), sc.rest(b, side) + np.array([0, 0.1, 0]), s))


def side_kick(sc: Scene) -> None:
    b = sc.solo()
    side = b.phys.dominant
    t0, t1 = sc.window(lead=(0.15, 0.3), tail=(0.15, 0.3))
    s = bump(sc.t, t0, t1, rise=0.35 * (t1 - t0), fall=0.45 * (t1 - t0))
    out = side_sign(side) * b.left()
    b.feet[side] = b.feet[side] + s[:, None] * (
        sc.amp(0.45, 0.65) * out + np.array([0, sc.amp(0.35, 0.6), 0])
    )
    b.lean -= side_sign(side) * sc.amp(0.3, 0.5) * s
    b.shift[:, 0] -= side_sign(side) * 0.08 * s
    for arm in ("left", "right"):
        b.reach(arm, lerp(sc.rest(b, arm), from_shoulder(b, arm, 0.15, -0.2, 0.25), s))


# ---------------------------------------------------------------------- two-person actions
def _chest(body: Body, fwd: float = 0.08, up: float = 0.0, left: float = 0.0) -> np.ndarray:
    trunk = body.trunk()
    return trunk["spine_shoulder"] + apply(trunk["chest_rot"], np.array([left, up - 0.08, fwd]))


def _recoil(sc: Scene, b: Body, at: float, strength: float) -> None:
    """The partner flinches back around frame `at`."""
    s = bump(sc.t, at - 2, at + sc.seconds(0.4, 0.8), rise=3, fall=sc.seconds(0.3, 0.5))
    b.bend -= 0.3 * strength * s
    b.nod -= 0.3 * strength * s
    b.shift[:, 2] -= 0.1 * strength * s


def punching(sc: Scene) -> None:
    a, b = sc.pair(sc.rng.uniform(0.6, 0.8))
    side = a.phys.dominant
    t0, t1 = sc.window()
    guard = from_shoulder(a, side, -0.05, -0.22, 0.22)
    count = int(sc.rng.integers(1, 4))
    times = sc.phases(t0, t1, sc.seconds(0.3, 0.4), *[sc.seconds(0.45, 0.6)] * count)
    hits = np.array(times[1:-1])
    strike = sc.seconds(0.1, 0.17)
    for hit in hits:
        _recoil(sc, b, hit, sc.rng.uniform(0.5, 1.0))
    target = _chest(b, fwd=0.1, up=sc.rng.uniform(0.0, 0.25))
    s_guard = bump(sc.t, t0, hits[-1] + sc.seconds(0.4, 0.6), rise=sc.seconds(0.25, 0.35))
    jab = sum(bump(sc.t, h - strike, h + strike, rise=strike) for h in hits)
    a.bend += 0.15 * jab
    a.twist -= side_sign(side) * 0.3 * jab
    a.reach(side, lerp(lerp(sc.rest(a, side), guard, s_guard), target, jab))


def pushing(sc: Scene) -> None:
    a, b = sc.pair(sc.rng.uniform(0.65, 0.85))
    t0, t1 = sc.window()
    _, contact, shove, _ = sc.phases(
        t0, t1, sc.seconds(0.4, 0.6), sc.seconds(0.3, 0.5), sc.seconds(0.4, 0.6)
    )
    away = sc.amp(0.35, 0.6)
    moved = keyframes(sc.t, [contact, shove + sc.seconds(0.3, 0.5)], [0.0, away])
    b.ground += moved[:, None] * -b.forward()
    b.walk(stride=0.45)
    b.bend -= 0.3 * bump(sc.t, contact, shove + sc.seconds(0.5, 0.8), rise=5)
    a.ground += 0.5 * moved[:, None] * a.forward()
    a.walk(stride=0.45)
    a.bend += 0.2 * bump(sc.t, contact, shove + 10, rise=5)
    s = bump(sc.t, t0, shove + sc.seconds(0.2, 0.4), rise=contact - t0)
    for side in ("left", "right"):
        chest = _chest(b, fwd=0.1, left=-side_sign(side) * 0.15)
        a.reach(side, lerp(sc.rest(a, side), chest, s))


def hugging(sc: Scene) -> None:
    start = sc.rng.uniform(1.2, 1.6)
    a, b = sc.pair(start)
    t0, t1 = sc.window(lead=(0.05, 0.15), tail=(0.1, 0.2))
    _, meet, part, _ = sc.phases(
        t0, t1, sc.seconds(1.0, 1.4), sc.seconds(1.0, 2.0), sc.seconds(0.5, 0.8)
    )
    close = (start - sc.rng.uniform(0.32, 0.42)) / 2
    for body in (a, b):
        body.ground += (
            keyframes(sc.t, [t0, meet, part, t1], [0, close, close, close * 0.6])[:, None]
            * body.forward()
        )
        body.walk(stride=0.5)
    s = bump(
        sc.t, meet - sc.seconds(0.4, 0.6), part + sc.seconds(0.3, 0.5), rise=sc.seconds(0.4, 0.6)
    )
    high = sc.rng.random() < 0.5
    for me, other in ((a, b), (b, a)):
        for side in ("left", "right"):
            up = 0.0 if (side == "left") == high else -0.2
            back = _chest(other, fwd=-0.15, up=up, left=side_sign(side) * 0.12)
            me.reach(
                side,
                arc(
                    sc.rest(me, side),
                    back,
                    s,
                    me.forward() * 0.15 + side_sign(side) * 0.2 * me.left(),
                ),
                side_sign(side) * me.left(),
            )


def giving(sc: Scene) -> None:
    a, b = sc.pair(sc.rng.uniform(0.9, 1.2))
    t0, t1 = sc.window()
    handover = (a.trunk()["spine_base"] + b.trunk()["spine_base"]) / 2 + np.array(
        [0, sc.rng.uniform(0.0, 0.2), 0]
    )
    mid = (t0 + t1) / 2
    s_a = bump(sc.t, t0, mid + sc.seconds(0.3, 0.5), rise=sc.seconds(0.5, 0.7))
    s_b = bump(sc.t, mid - sc.seconds(0.5, 0.7), t1, rise=sc.seconds(0.4, 0.6))
    a.reach(a.phys.dominant, lerp(sc.rest(a, a.phys.dominant), handover, s_a))
    b.reach(b.phys.dominant, lerp(sc.rest(b, b.phys.dominant), handover, s_b))


def handshaking(sc: Scene) -> None:
    start = sc.rng.uniform(0.9, 1.4)
    a, b = sc.pair(start)
    t0, t1 = sc.window()
    closer = max(start - sc.rng.uniform(0.75, 0.85), 0.0) / 2
    for body in (a, b):
        body.ground += (
            keyframes(sc.t, [t0, t0 + sc.seconds(0.6, 0.9)], [0, closer])[:, None] * body.forward()
        )
        body.walk(stride=0.4)
    s = bump(sc.t, t0 + sc.seconds(0.2, 0.4), t1, rise=sc.seconds(0.5, 0.7))
    shake = sc.amp(0.03, 0.06) * np.sin(2 * np.pi * sc.rate(2.0, 3.0) * sc.t) * s
    grip = (a.trunk()["spine_base"] + b.trunk()["spine_base"]) / 2
    grip = (
        grip + np.array([0, sc.rng.uniform(0.0, 0.15), 0]) + shake[:, None] * np.array([0, 1.0, 0])
    )
    for body in (a, b):  # right hands meet in the middle, each a little to its owner's right
        body.reach("right", lerp(sc.rest(body, "right"), grip - 0.04 * body.left(), s))


def _walk_pair(sc: Scene, gap0: float, gap1: float, turn_away: bool) -> None:
    a, b = sc.pair(gap0)
    t0, t1 = sc.window(lead=(0.05, 0.15), tail=(0.05, 0.15))
    start = t0 + (sc.seconds(0.5, 0.8) if turn_away else 0.0)
    for body in (a, b):
        if turn_away:
            body.yaw += (
                np.pi * ease((sc.t - t0) / (start - t0)) * (1 if sc.rng.random() < 0.5 else -1)
            )
        step = abs(gap1 - gap0) / 2 * ease((sc.t - start) / (t1 - start))
        body.ground += step[:, None] * body.forward()
        body.walk()
        for side in ("left", "right"):  # arms swing against the legs
            swing = np.sin(np.pi * step / 0.65 + (0 if side == "left" else np.pi))
            body.reach(side, sc.rest(body, side) + 0.12 * swing[:, None] * body.forward())


def walking_towards(sc: Scene) -> None:
    _walk_pair(sc, sc.rng.uniform(2.4, 3.2), sc.rng.uniform(0.7, 1.0), turn_away=False)


def walking_apart(sc: Scene) -> None:
    _walk_pair(sc, sc.rng.uniform(0.7, 1.0), sc.rng.uniform(2.4, 3.2), turn_away=True)


def high_five(sc: Scene) -> None:
    a, b = sc.pair(sc.rng.uniform(0.7, 0.9))
    t0, t1 = sc.window()
    meet = t0 + sc.seconds(0.5, 0.8)
    s = bump(sc.t, t0, meet + sc.seconds(0.2, 0.4), rise=meet - t0, fall=sc.seconds(0.4, 0.6))
    top = (a.trunk()["head"] + b.trunk()["head"]) / 2 + np.array([0, sc.rng.uniform(0.15, 0.3), 0])
    for body in (a, b):
        body.reach("right", lerp(sc.rest(body, "right"), top + 0.05 * body.left(), s), -body.left())


def follow(sc: Scene) -> None:
    lead = sc.rng.uniform(1.0, 1.4)
    a = sc.add(0, sc.center, sc.facing + np.pi / 2)
    b = sc.add(1, sc.center + lead * a.forward()[0], sc.facing + np.pi / 2)
    a.ground -= 0.8 * a.forward()[0]
    b.ground -= 0.8 * a.forward()[0]
    t0, t1 = sc.window(lead=(0.05, 0.1), tail=(0.05, 0.1))
    delay = sc.seconds(0.3, 0.6)
    dist = sc.rng.uniform(1.4, 2.0)
    for body, start in ((b, t0), (a, t0 + delay)):
        body.ground += (dist * ease((sc.t - start) / (t1 - start)))[:, None] * body.forward()
        body.walk()


# ---------------------------------------------------------------------- catalogue
@dataclass(frozen=True)
class Action:
    ntu: int  # NTU RGB+D action number (label = ntu - 1)
    pku: int | None  # PKU-MMD action id (v1 numbering), None if PKU-MMD lacks the class
    persons: int
    seconds: tuple[float, float]  # typical duration at tempo 1
    perform: Callable[[Scene], None]


# PKU-MMD ids follow its 51-class list (alphabetical: 1 bow, 5 cheer up, 6 clapping, ...).
ACTIONS: dict[int, Action] = {
    a.ntu: a
    for a in (
        Action(1, 8, 1, (2.2, 3.2), drink_water),
        Action(6, 22, 1, (2.5, 3.5), pickup),
        Action(7, 41, 1, (2.0, 2.8), throw),
        Action(8, 33, 1, (2.2, 3.2), sitting_down),
        Action(9, 34, 1, (2.2, 3.2), standing_up),
        Action(10, 6, 1, (2.0, 3.2), clapping),
        Action(22, 5, 1, (2.2, 3.2), cheer_up),
        Action(23, 13, 1, (2.0, 3.2), hand_waving),
        Action(24, 19, 1, (1.6, 2.4), kicking_something),
        Action(26, 15, 1, (2.2, 3.2), hopping),
        Action(27, 17, 1, (2.0, 2.8), jump_up),
        Action(31, 25, 1, (2.0, 3.0), pointing),
        Action(35, 1, 1, (2.0, 3.0), bow),
        Action(37, 50, 1, (2.2, 3.2), wipe_face),
        Action(38, 32, 1, (1.8, 2.6), salute),
        Action(43, 11, 1, (2.0, 3.0), falling),
        Action(50, 26, 2, (2.0, 3.0), punching),
        Action(52, 27, 2, (2.0, 3.0), pushing),
        Action(55, 16, 2, (3.0, 4.0), hugging),
        Action(56, 12, 2, (2.2, 3.2), giving),
        Action(58, 14, 2, (2.2, 3.2), handshaking),
        Action(59, None, 2, (2.8, 3.8), walking_towards),
        Action(60, None, 2, (2.8, 3.8), walking_apart),
        Action(80, None, 1, (2.2, 3.2), squat_down),
        Action(95, None, 1, (2.0, 3.0), hands_up),
        Action(97, None, 1, (2.2, 3.2), arm_circles),
        Action(99, None, 1, (2.0, 3.0), running_on_the_spot),
        Action(100, None, 1, (2.0, 3.0), butt_kicks),
        Action(102, None, 1, (1.8, 2.6), side_kick),
        Action(112, None, 2, (1.8, 2.6), high_five),
        Action(116, None, 2, (2.8, 3.8), follow),
    )
}

# The order `--classes N` takes the first N from: varied limbs, speeds and both kinds of
# performance early, so small datasets still look like the real ones.
# fmt: off
DEFAULT_ORDER = {
    "ntu60": (1, 7, 8, 10, 23, 24, 27, 35, 31, 26, 52, 58, 9, 37, 22, 38, 6, 43, 55, 59, 60, 50,
              56),
    "ntu120": (1, 8, 10, 23, 24, 27, 35, 58, 80, 97, 99, 112, 7, 9, 31, 26, 52, 37, 22, 38, 6, 43,
               55, 59, 60, 50, 56, 95, 100, 102, 116),
}
# fmt: on
DEFAULT_ORDER["pku1"] = tuple(a for a in DEFAULT_ORDER["ntu60"] if ACTIONS[a].pku is not None)
DEFAULT_ORDER["pku2"] = DEFAULT_ORDER["pku1"]


def perform(
    action: Action,
    rng: np.random.Generator,
    frame_range: tuple[int, int],
    center: np.ndarray,
    facing: float,
    cast: list[Physique],
) -> np.ndarray:
    """World joints (persons, frames, 25, 3) of one performance.

    The length follows the action's natural duration at the performer's tempo, clipped to
    `frame_range`; phases squeeze to fit when clipped.
    """
    tempo = cast[0].tempo * rng.uniform(0.9, 1.1)
    frames = int(np.clip(round(rng.uniform(*action.seconds) * FPS / tempo), *frame_range))
    scene = Scene(
        rng,
        frames,
        center,
        facing,
        cast,
        tempo=tempo,
        amplitude=cast[0].amplitude * rng.uniform(0.9, 1.1),
    )
    action.perform(scene)
    return scene.joints()
