"""MSR Action3D: `skelctl preprocess msr3d RAW` (the skeleton3D text release).

One file per sequence, `aAA_sSS_eEE_skeleton3D.txt` = action (1-20), subject (1-10),
repetition; each line one joint `x y z c` (c, a confidence flag, is not stored), 20 lines per
frame. Joints are in MSR Action3D's own order (layout `msr20`, not the Kinect SDK's `kinect20`).

Coordinates are used as they are: they already are Kinect camera space (checked on the whole
release): metres (forearm 0.29, thigh 0.53, head above the feet by 1.6), y up (the head is
above the hip centre in every sequence), z away from the camera (2.7 m on average), right-handed
with body_model.mat's joint names (right = forward x up, forward from the feet, in every
sequence), so x points to the performer's right as they face the camera; the one-arm and
one-leg actions, done with the right limbs, move joints 11 and 17 (right wrist and ankle).
The same frame as NW-UCLA. (a01_s02_e02 was tracked facing away: its left/right are swapped.)

Frames whose 20 joints are all zero (tracking lost while bending down in 13 listed sequences)
are dropped, as NTU's body selection drops frames without a body. Clips are stored like every
other dataset, (T, M=2, V=20, C=3) with the second body zero. By default only the 557
sequences of `files_used_in_cvpr12_paper.txt` (when RAW holds it) are kept, the others rejected
with that reason (`keep_missing` keeps them); the known-corrupt a13_s09_e03 is always rejected.
Benchmark: `xsub` (subjects 1, 3, 5, 7, 9 train; 2, 4, 6, 8, 10 test).
"""

from __future__ import annotations

import re
import zipfile
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

LAYOUT = "msr20"
NUM_JOINTS = 20
VALUES = 4  # x y z c per line
SUFFIX = "_skeleton3d.txt"  # matched case-insensitively
PAPER_LIST = "files_used_in_cvpr12_paper.txt"
CLASS_NAMES = (
    "high arm wave", "horizontal arm wave", "hammer", "hand catch", "forward punch",
    "high throw", "draw x", "draw tick", "draw circle", "hand clap", "two hand wave",
    "side-boxing", "bend", "forward kick", "side kick", "jogging", "tennis swing",
    "tennis serve", "golf swing", "pick up & throw",
)
ACTIONS = tuple(range(1, len(CLASS_NAMES) + 1))  # label = action - 1
SUBJECTS = tuple(range(1, 11))
XSUB_TRAIN_SUBJECTS = (1, 3, 5, 7, 9)
# sequences bad in the release itself, rejected even with keep_missing
KNOWN_CORRUPT = {
    "a13_s09_e03": "known corrupt in the release (936 frames, 740 of them empty; "
    "the others have 13-100)",
}
_NAME = re.compile(r"a(\d+)_s(\d+)_e(\d+)_skeleton3d", re.IGNORECASE)


@dataclass(frozen=True)
class Msr3dTask:
    file: RawFile
    action: int
    subject: int
    repetition: int


def parse_msr3d_name(stem: str) -> tuple[int, int, int]:
    """`a01_s02_e03_skeleton3D` -> (action, subject, repetition)."""
    match = _NAME.fullmatch(stem)
    if match is None:
        raise SkelctlError("not an MSR Action3D name (expected aAA_sSS_eEE_skeleton3D.txt)")
    action, subject, repetition = (int(g) for g in match.groups())
    if action not in ACTIONS:
        raise SkelctlError(f"action {action}: MSR Action3D has actions 1-{len(ACTIONS)}")
    if subject not in SUBJECTS:
        raise SkelctlError(f"subject {subject}: MSR Action3D has subjects 1-{len(SUBJECTS)}")
    return action, subject, repetition


def read_msr3d_skeleton(data: bytes, where: str) -> np.ndarray:
    """(T, 20, 4) float64 `x y z c` per joint; `SkelctlError(reason, where, line)` on any defect.

    Blank lines are skipped (line numbers still count them).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SkelctlError(f"not UTF-8 text ({exc.reason})", where) from exc
    rows = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not rows:
        raise SkelctlError(f"empty file (expected lines of 'x y z c', {NUM_JOINTS} per frame)", where)
    for n, values in rows:
        if len(values) != VALUES:
            raise SkelctlError(f"{len(values)} values, expected {VALUES} (x y z c)", where, n)
    tokens = [v for _, values in rows for v in values]
    try:
        numbers = np.array(tokens, dtype=np.float64)
    except ValueError:  # find the culprit only on the error path
        for i, token in enumerate(tokens):
            try:
                float(token)
            except ValueError:
                raise SkelctlError(f"not a number: {token!r}", where, rows[i // VALUES][0]) from None
        raise
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad):
        i = int(bad[0])
        raise SkelctlError(f"non-finite value {tokens[i]!r}", where, rows[i // VALUES][0])
    extra = len(rows) % NUM_JOINTS
    if extra:
        start = len(rows) - extra
        raise SkelctlError(
            f"{len(rows)} joint lines, not a multiple of {NUM_JOINTS}: the last frame "
            f"(from this line) has {extra}", where, rows[start][0],
        )
    return numbers.reshape(-1, NUM_JOINTS, VALUES)


def _parse_msr3d(task: Msr3dTask, options: PreprocessOptions) -> Parsed:
    where = task.file.display
    joints = read_msr3d_skeleton(task.file.read(), where)[..., :3]
    tracked = joints.reshape(len(joints), -1).any(axis=1)
    if not tracked.any():
        raise SkelctlError(f"all {len(joints)} frames are zero (no skeleton tracked)", where)
    try:
        clip = to_clip(joints[tracked], cached_layout(LAYOUT))  # too few frames left: rejected
    except SkelctlError as exc:
        dropped = len(joints) - int(tracked.sum())
        note = f" (after dropping {dropped} all-zero frame(s))" if dropped else ""
        raise SkelctlError(exc.reason + note, where) from exc
    return one_clip(task.file, clip, options, LAYOUT, task.action, subject=task.subject,
                    replication=task.repetition)


def read_paper_list(raw: Path) -> tuple[set[str], str] | None:
    """The sequence names of `files_used_in_cvpr12_paper.txt` in RAW (a folder, searched
    recursively, or a zip archive) and where it was found; None when RAW has none."""
    if raw.is_dir():
        found = sorted(raw.rglob(PAPER_LIST))
        if not found:
            return None
        return _names(found[0].read_bytes(), str(found[0])), str(found[0])
    if zipfile.is_zipfile(raw):
        with zipfile.ZipFile(raw) as archive:
            members = sorted(n for n in archive.namelist() if n.rsplit("/", 1)[-1] == PAPER_LIST)
            if not members:
                return None
            return _names(archive.read(members[0]), f"{raw}/{members[0]}"), f"{raw}/{members[0]}"
    return None


def _names(data: bytes, where: str) -> set[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SkelctlError(f"not UTF-8 text ({exc.reason})", where) from exc
    names = set(text.split())
    if not names:
        raise SkelctlError("empty sequence list", where)
    return names


def msr3d_plan(raw: Path, options: PreprocessOptions) -> SourcePlan:
    paper = None if options.keep_missing else read_paper_list(raw)

    def read_name(file: RawFile) -> tuple[int, int, int]:
        sequence = file.stem[: -len("_skeleton3D")]
        fields = parse_msr3d_name(file.stem)
        if sequence in KNOWN_CORRUPT:
            raise SkelctlError(KNOWN_CORRUPT[sequence])
        if paper is not None and sequence not in paper[0]:
            raise SkelctlError(f"not in {PAPER_LIST} ({len(paper[0])} sequences commonly used); "
                               "--keep-missing keeps it")
        return fields

    return named_file_plan(raw, SUFFIX, read_name, Msr3dTask, _parse_msr3d, LAYOUT, CLASS_NAMES,
                           ACTIONS, splits_by({"xsub": ("subject", XSUB_TRAIN_SUBJECTS)}))
