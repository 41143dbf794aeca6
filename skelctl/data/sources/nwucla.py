"""Northwestern-UCLA Multiview Action3D: `skelctl preprocess nwucla RAW` (the CTR-GCN JSON form).

One file per sequence, `aAA_sSS_eEE_vVV.json` = action, subject, repetition, view, holding
`{"file_name", "label": 1..10, "skeletons": T x 20 x 3}` (Kinect v1, metres, one body). Clips
are stored like every other dataset, (T, M=2, V=20, C=3) with the second body zero, so every
encoder and augmentation runs on them unchanged. Benchmarks: `xview` (views 1 and 2 train,
view 3 test, the standard protocol) and `xsub` (subjects 1-5 train, 6-10 test, ours).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skelctl.data.clipfile import to_clip
from skelctl.data.sources.base import (
    Parsed,
    PreprocessOptions,
    RawFile,
    SourcePlan,
    cached_layout,
    named_file_plan,
    one_clip,
    splits_by,
)
from skelctl.errors import SkelctlError

LAYOUT = "kinect20"
NUM_JOINTS = 20  # Kinect v1, the joints of LAYOUT
ACTIONS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)  # action ids in file names; label = position + 1
CLASS_NAMES = (
    "pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down",
    "stand up", "donning", "doffing", "throw", "carry",
)
VIEWS = (1, 2, 3)
XVIEW_TRAIN_VIEWS = (1, 2)
XSUB_TRAIN_SUBJECTS = (1, 2, 3, 4, 5)
_NAME = re.compile(r"a(\d+)_s(\d+)_e(\d+)_v(\d+)")


@dataclass(frozen=True)
class NwuclaTask:
    file: RawFile
    action: int
    subject: int
    repetition: int
    view: int


def parse_nwucla_name(stem: str) -> tuple[int, int, int, int]:
    """`a01_s02_e03_v01` -> (action, subject, repetition, view)."""
    match = _NAME.fullmatch(stem)
    if match is None:
        raise SkelctlError("not an NW-UCLA name (expected aAA_sSS_eEE_vVV.json)")
    action, subject, repetition, view = (int(g) for g in match.groups())
    if view not in VIEWS:
        raise SkelctlError(f"view {view}: NW-UCLA has views {', '.join(map(str, VIEWS))}")
    if action not in ACTIONS:
        raise SkelctlError(f"action {action} is not an NW-UCLA action ({', '.join(map(str, ACTIONS))})")
    return action, subject, repetition, view


def read_nwucla_json(data: bytes, where: str) -> tuple[np.ndarray, int]:
    """(T, 20, 3) joints and the file's 1-based label; `SkelctlError` on any defect."""
    try:
        content = json.loads(data)
    except UnicodeDecodeError as exc:
        raise SkelctlError(f"not UTF-8 text ({exc.reason})", where) from exc
    except json.JSONDecodeError as exc:
        raise SkelctlError(f"malformed JSON ({exc.msg}, column {exc.colno})", where, exc.lineno) from exc
    if not isinstance(content, dict) or not isinstance(content.get("skeletons"), list):
        raise SkelctlError("expected a JSON object with a 'skeletons' list (T x 20 x 3)", where)
    label = content.get("label")
    if not isinstance(label, int) or isinstance(label, bool):
        raise SkelctlError(f"'label': expected an integer 1..{len(ACTIONS)}, got {label!r}", where)
    frames = content["skeletons"]
    if not frames:
        return np.zeros((0, NUM_JOINTS, 3)), label
    try:
        joints = np.asarray(frames)  # no dtype: strings or nulls must not pass as numbers
    except ValueError:  # ragged nesting
        joints = None
    if joints is None or joints.dtype.kind not in "fiu" or joints.shape[1:] != (NUM_JOINTS, 3):
        raise SkelctlError(_first_bad_frame(frames), where)
    return joints, label


def _first_bad_frame(frames: list) -> str:
    """Say which frame is not NUM_JOINTS joints x 3 numbers (computed on the error path only)."""
    for t, frame in enumerate(frames, 1):
        if not isinstance(frame, list) or len(frame) != NUM_JOINTS:
            count = len(frame) if isinstance(frame, list) else type(frame).__name__
            return f"'skeletons' frame {t}: {count} joints, expected {NUM_JOINTS} ({LAYOUT})"
        for j, joint in enumerate(frame, 1):
            if not isinstance(joint, list) or len(joint) != 3 or not all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in joint
            ):
                return f"'skeletons' frame {t} joint {j}: expected 3 numbers, got {joint!r}"
    return f"'skeletons': expected T x {NUM_JOINTS} x 3 numbers"


def _parse_nwucla(task: NwuclaTask, options: PreprocessOptions) -> Parsed:
    where = task.file.display
    joints, label = read_nwucla_json(task.file.read(), where)
    expected = ACTIONS.index(task.action) + 1
    if label != expected:
        raise SkelctlError(f"'label' is {label} but action a{task.action:02d} is label {expected}", where)
    try:
        clip = to_clip(joints, cached_layout(LAYOUT))
    except SkelctlError as exc:
        raise SkelctlError(exc.reason, where) from exc
    return one_clip(task.file, clip, options, LAYOUT, task.action, subject=task.subject,
                    camera=task.view, replication=task.repetition)


def nwucla_plan(raw: Path, options: PreprocessOptions) -> SourcePlan:
    return named_file_plan(
        raw, ".json", lambda file: parse_nwucla_name(file.stem), NwuclaTask, _parse_nwucla,
        LAYOUT, CLASS_NAMES, ACTIONS,
        splits_by({"xview": ("camera", XVIEW_TRAIN_VIEWS), "xsub": ("subject", XSUB_TRAIN_SUBJECTS)}),
    )
