"""Text in the official layouts (SPEC 1.1, 1.3), formatted a frame at a time by C-level
`%` formatting rather than token by token.

Numbers are written the way the Kinect SDK tools wrote them: NTU uses 7 significant digits
(`%.7G`, capital-E exponents such as `-7.257856E-05`), PKU-MMD six decimals (`%f`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from skelctl.synth.kinect import Recording

_JOINT = " ".join(["%.7G"] * 11) + " %d"


def ntu_skeleton_text(rec: Recording, newline: str = "\r\n") -> str:
    """A `.skeleton` file: frame count, then per frame the body count and each body's
    10-value info line, joint count (25) and 25 lines of 12 values."""
    body_block = newline.join(["%d %d %d %d %d %d %d %.7G %.7G %d", "25", *[_JOINT] * 25]) + newline
    rows = {}
    for track in rec.tracks:
        joints = (track.joint_rows() + 0.0).reshape(len(track.frames), -1)  # + 0.0: no "-0"
        info = track.body_info() + 0.0
        rows[id(track)] = [
            (track.body_id, *i, *j) for i, j in zip(info.tolist(), joints.tolist(), strict=True)
        ]
    parts = [f"{rec.frame_count}{newline}"]
    for bodies in rec.frame_bodies():
        parts.append(f"{len(bodies)}{newline}")
        parts.extend(body_block % rows[id(track)][row] for track, row in bodies)
    return "".join(parts)


def dense_bodies(rec: Recording, bodies: int = 2) -> np.ndarray:
    """(T, bodies, 25, 3) camera-space joints, the first `bodies` in sensor-slot order per
    frame, zeros where fewer were seen (the PKU-MMD layout)."""
    out = np.zeros((rec.frame_count, bodies, 25, 3))
    for f, present in enumerate(rec.frame_bodies()):
        for m, (track, row) in enumerate(present[:bodies]):
            out[f, m] = track.xyz[row]
    return out


def pku_skeleton_text(joints: np.ndarray) -> str:
    """A PKU-MMD skeleton file from (T, 2, 25, 3): one frame per line, 150 values; like the
    real files, every line after the first starts with a space."""
    flat = np.round(joints.reshape(len(joints), -1), 6) + 0.0
    line = " ".join(["%f"] * flat.shape[1])
    return "\n ".join(line % tuple(row) for row in flat.tolist()) + "\n"


def pku_label_text(rows: Iterable[tuple[int, int, int, int]]) -> str:
    """`action_id,start_frame,end_frame,confidence` per action instance."""
    return "".join(f"{a},{s},{e},{c}\n" for a, s, e, c in rows)


def pku_split_text(train: Sequence[str], test: Sequence[str]) -> str:
    """The official 4-line split file, header typo ("Validataion") included."""
    return f"Training videos: \n{', '.join(train)}\nValidataion videos: \n{', '.join(test)}\n"
