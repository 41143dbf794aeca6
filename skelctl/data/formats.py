"""Raw skeleton files: NTU RGB+D `.skeleton` and PKU-MMD text, read fast and strictly (SPEC 1).

A full NTU120 run reads 114k files of ~30k numbers each, so the NTU reader never converts a
token with a Python call. When the optional C extension `_speedups` is built, it reads a clean
file without the GIL (~4-5x faster than numpy); a file it refuses, and every file without it,
goes to the numpy reader: numpy finds every token boundary at once, a short Python walk over
frames and bodies checks the structure with integer indices, and all numbers are converted in
one vectorised pass (`tokenize.py`: 8 digits per uint64 lane). Both give the same arrays, bit for
bit; only the numpy reader explains defects, so errors are the same with or without C.
Files are parsed by tokens, so CRLF and LF files read the same. Every defect raises
`SkelctlError(reason, path, line)`; the line is worked out only on that error path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from skelctl.data.tokenize import WORK, Tokens, quote, sparse_positions
from skelctl.errors import SkelctlError

try:  # the C fast path of the NTU reader; optional: without a compiler numpy does it all
    from skelctl.data import _speedups
except ImportError:  # pragma: no cover - depends on the build
    _speedups = None

NUM_JOINTS = 25  # Kinect v2; NTU and PKU-MMD files always hold 25 joints per body
MAX_FRAMES = 100_000  # NTU sequences have at most ~300 frames; more means a corrupt count
MAX_BODIES = 16  # per frame; Kinect v2 tracks at most 6 bodies
BODY_INFO_FIELDS = (
    "clipedEdges", "handLeftConfidence", "handLeftState", "handRightConfidence",
    "handRightState", "isRestricted", "leanX", "leanY", "trackingState",
)
JOINT_FIELDS = (
    "x", "y", "z", "depthX", "depthY", "colorX", "colorY",
    "orientationW", "orientationX", "orientationY", "orientationZ", "trackingState",
)
PKU_VALUES_PER_FRAME = 2 * NUM_JOINTS * 3

# Token layout of one body record: bodyID, 9 body-info numbers, jointCount, 25 x 12 joint numbers.
_BODY_TOKENS = 1 + len(BODY_INFO_FIELDS) + 1 + NUM_JOINTS * len(JOINT_FIELDS)
_JOINT_COUNT_OFFSET = 1 + len(BODY_INFO_FIELDS)
_NUMBER_OFFSETS = np.concatenate([
    np.arange(1, _JOINT_COUNT_OFFSET), np.arange(_JOINT_COUNT_OFFSET + 1, _BODY_TOKENS)
])
_NTU_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})(?:\.skeleton)?")
_PKU_NAME_V1 = re.compile(r"(\d{4})-([LMR])(?:\.txt)?")
_PKU_NAME_V2 = re.compile(r"A(\d{2})N(\d{2})-([LMR])(?:\.txt)?")


class NtuName(NamedTuple):
    """The numbers in an NTU sample name SsssCcccPpppRrrrAaaa (label = action - 1)."""

    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @property
    def stem(self) -> str:
        """The sample ID as the dataset writes it, e.g. S001C002P003R002A013."""
        s, c, p, r, a = self
        return f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{a:03d}"


class PkuName(NamedTuple):
    """What a PKU-MMD video name tells: its stem, part (version), camera view and subject."""

    stem: str  # video name without extension: "0002-L" (v1) or "A10N08-L" (v2)
    version: int  # 1 (Part I) or 2 (Part II)
    view: str  # "L", "M" or "R"
    subject: int  # performer number N of v2 names; -1 for v1 (not in the name)


@dataclass(frozen=True, eq=False)
class NtuSkeletonFile:
    """Every record of one `.skeleton` file, one row per (frame, body) in file order."""

    path: str  # where it came from, for messages
    name: NtuName | None  # None when read from bytes without a name
    body_counts: np.ndarray  # (T,) int64 bodies per frame
    body_frame: np.ndarray  # (B,) int64 frame index of each body record
    body_id: np.ndarray  # (B,) int64 tracking ID (~2^56: exact, never float)
    body_info: np.ndarray  # (B, 9) float32, BODY_INFO_FIELDS
    joints: np.ndarray  # (B, 25, 12) float32, JOINT_FIELDS

    @property
    def frame_count(self) -> int:
        """Frames in the file, including frames without bodies."""
        return len(self.body_counts)

    @property
    def xyz(self) -> np.ndarray:
        """(B, 25, 3) camera-space joint positions in metres: what training uses."""
        return self.joints[..., :3]


def parse_ntu_name(name: str | Path) -> NtuName:
    """Setup, camera, performer, replication and action from an NTU sample name or file path,
    because labels and benchmark splits are encoded only there."""
    base = Path(name).name
    match = _NTU_NAME.fullmatch(base)
    if match is None:
        raise SkelctlError(
            "not an NTU sample name (expected SsssCcccPpppRrrrAaaa.skeleton)", str(name)
        )
    parsed = NtuName(*(int(g) for g in match.groups()))
    limits = NtuName(setup=32, camera=3, performer=106, replication=2, action=120)
    for field, value, top in zip(NtuName._fields, parsed, limits, strict=True):
        if not 1 <= value <= top:
            raise SkelctlError(f"{field} {value} out of range 1..{top} in the name", str(name))
    return parsed


def read_ntu_skeleton(source: str | Path | bytes, name: str | None = None) -> NtuSkeletonFile:
    """Parse one NTU `.skeleton` file (a path, or bytes such as a zip member) into arrays,
    validating its structure so a corrupt file fails here with its line, not later in training."""
    data, path = _read_source(source, name)
    label_from = name if name is not None else (None if _is_bytes(source) else source)
    ntu_name = None if label_from is None else parse_ntu_name(label_from)
    records = _ntu_records_native(data) if _speedups is not None else None
    counts, body_id, numbers = records if records is not None else _ntu_records(data, path)
    n_info = len(BODY_INFO_FIELDS)
    return NtuSkeletonFile(
        path=path,
        name=ntu_name,
        body_counts=counts,
        body_frame=np.repeat(np.arange(len(counts), dtype=np.int64), counts),
        body_id=body_id,
        body_info=numbers[:, :n_info],
        joints=numbers[:, n_info:].reshape(-1, NUM_JOINTS, len(JOINT_FIELDS)),
    )


def _ntu_records_native(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(body_counts, body_id, numbers (B, 309)) from the C parser, or None when the file is
    not clean: `_ntu_records` then finds the defect and names its line."""
    parsed = _speedups.parse_ntu(data, MAX_FRAMES, MAX_BODIES)
    if parsed is None:
        return None
    counts, body_id, numbers = parsed
    return (
        np.frombuffer(counts, np.int64),
        np.frombuffer(body_id, np.int64),
        np.frombuffer(numbers, np.float32).reshape(-1, len(_NUMBER_OFFSETS)),
    )


def _ntu_records(data: bytes, path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(body_counts, body_id, numbers (B, 309)) by the numpy reader, which explains any defect
    with a `SkelctlError` naming its line."""
    text = Tokens(data, path)
    if text.count == 0:
        raise SkelctlError("empty file (expected a frame count)", path, 1)
    value = text.values.item  # Python floats, NaN where the text must be re-read exactly
    frame_count = text.integer(0, "frame count", 1, MAX_FRAMES)
    body_counts: list[int] = []
    body_starts: list[int] = []
    i = 1
    for frame in range(frame_count):
        bodies = value(i) if i < text.count else -1.0
        if not (bodies.is_integer() and 0 <= bodies <= MAX_BODIES):
            bodies = text.integer(i, "body count", 0, MAX_BODIES)  # exact, or names the problem
        bodies = int(bodies)
        body_counts.append(bodies)
        for start in range(i + 1, i + 1 + bodies * _BODY_TOKENS, _BODY_TOKENS):
            if start + _BODY_TOKENS > text.count:
                raise text.truncated(f"frame {frame + 1} of {frame_count} is incomplete")
            if value(start + _JOINT_COUNT_OFFSET) != NUM_JOINTS:
                text.integer(start + _JOINT_COUNT_OFFSET, "joint count", NUM_JOINTS, NUM_JOINTS)
            body_starts.append(start)
        i += 1 + bodies * _BODY_TOKENS
    if i < text.count:
        raise text.error(i, f"unexpected data after the last of {frame_count} frames")

    starts = np.asarray(body_starts, dtype=np.int64)
    index = WORK.get("record_tokens", (len(starts), len(_NUMBER_OFFSETS)), np.int64)
    np.add(starts[:, None], _NUMBER_OFFSETS, out=index)
    return np.asarray(body_counts, dtype=np.int64), text.body_ids(starts), text.numbers(index)


def parse_pku_name(name: str | Path) -> PkuName:
    """Video stem, view and (v2) subject from a PKU-MMD name such as `0002-L` or `A10N08-L.txt`,
    because the cross-view/subject splits and label files are keyed by it."""
    parsed = _match_pku_name(Path(name).name)
    if parsed is None:
        raise SkelctlError(
            "not a PKU-MMD video name (expected dddd-V (v1) or AxxNyy-V (v2), V in L/M/R)",
            str(name),
        )
    return parsed


def read_pku_skeleton(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """(T, 2, 25, 3) float32 joints of a PKU-MMD skeleton file (150 numbers per frame line);
    whole videos holding many actions, cut into clips later with the label file."""
    data, path = _read_source(source, name)
    text = Tokens(data, path)
    if text.count == 0:
        raise SkelctlError("empty file (expected one line of 150 numbers per frame)", path, 1)
    newline = WORK.get("newline", (len(data),), np.bool_)
    np.equal(np.frombuffer(data, np.uint8), 10, out=newline)
    line_ends = np.searchsorted(text.starts, sparse_positions(newline))  # tokens before each
    per_line = np.diff(line_ends, prepend=0, append=text.count)
    bad = np.flatnonzero((per_line != 0) & (per_line != PKU_VALUES_PER_FRAME))
    if len(bad):
        line = int(bad[0])
        raise SkelctlError(
            f"expected {PKU_VALUES_PER_FRAME} numbers per frame line "
            f"(2 bodies x {NUM_JOINTS} joints x 3), got {per_line[line]}",
            path,
            line + 1,
        )
    return text.numbers().reshape(-1, 2, NUM_JOINTS, 3)


def read_pku_labels(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """(K, 4) int64 rows (action_id, start_frame, end_frame, confidence) of a PKU-MMD label
    file: the clips to cut from the video (frame convention applied by the caller)."""
    data, path = _read_source(source, name)
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise SkelctlError(f"not UTF-8 text (byte {exc.start})", path) from exc
    rows = []
    for number, line in enumerate(lines, start=1):
        fields = [f.strip() for f in line.split(",")]
        while fields and not fields[-1]:  # blank line, or a trailing comma
            fields.pop()
        if not fields:
            continue
        if len(fields) != 4 or not all(f.isascii() and f.isdigit() for f in fields):
            raise SkelctlError(
                f"expected 'action_id,start_frame,end_frame,confidence' integers, got {quote(line)}",
                path,
                number,
            )
        action, start, end, confidence = (int(f) for f in fields)
        if action < 1 or start > end:
            raise SkelctlError(
                f"expected action_id >= 1 and start_frame <= end_frame, got {quote(line)}",
                path,
                number,
            )
        rows.append((action, start, end, confidence))
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def read_pku_splits(folder: str | Path, version: int) -> dict[str, tuple[list[str], list[str]]]:
    """{"xsub"|"xview": (train_stems, test_stems)} from the official PKU-MMD split files in
    `folder` (either file-name spelling); benchmarks without a file are left out."""
    if version not in (1, 2):
        raise SkelctlError(f"PKU-MMD version must be 1 or 2, got {version}")
    folder = Path(folder)
    if not folder.is_dir():
        raise SkelctlError("PKU-MMD split folder not found", folder)
    suffixes = ("", "_v1", "-v1") if version == 1 else ("_v2", "-v2", "")
    splits = {}
    tried = []
    for benchmark, word in (("xsub", "subject"), ("xview", "view")):
        names = [f"cross{sep}{word}{suffix}.txt" for suffix in suffixes for sep in "-_"]
        tried += names
        found = next((folder / n for n in names if (folder / n).is_file()), None)
        if found is not None:
            splits[benchmark] = _read_pku_split_file(found)
    if not splits:
        raise SkelctlError(f"no PKU-MMD v{version} split file (tried {', '.join(tried)})", folder)
    return splits


def _read_pku_split_file(path: Path) -> tuple[list[str], list[str]]:
    """The two video lists of one split file: a "Training videos:" header and its list, then a
    "Validataion videos:" (sic; "Validation"/"Test" also accepted) header and its list."""
    data, shown = _read_source(path, None)
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise SkelctlError(f"not UTF-8 text (byte {exc.start})", shown) from exc
    parts: dict[str, list[str]] = {}
    current = None
    for number, line in enumerate(lines, start=1):
        header, _, rest = line.partition(":")
        if header.strip().lower().startswith("train"):
            current = parts.setdefault("train", [])
        elif header.strip().lower().startswith(("validataion", "validation", "test")):
            current = parts.setdefault("test", [])
        else:
            rest = line
        if not rest.strip():
            continue
        if current is None:
            raise SkelctlError(f"expected a 'Training videos:' header, got {quote(line)}",
                               shown, number)
        for item in rest.split(","):
            stem = item.strip()
            if not stem:
                continue
            parsed = _match_pku_name(stem)
            if parsed is None:
                raise SkelctlError(f"not a PKU-MMD video name: {quote(stem)}", shown, number)
            current.append(parsed.stem)
    if not parts.get("train") or not parts.get("test"):
        raise SkelctlError("expected a training list and a validation list", shown)
    return parts["train"], parts["test"]


def _match_pku_name(base: str) -> PkuName | None:
    if match := _PKU_NAME_V1.fullmatch(base):
        return PkuName(f"{match[1]}-{match[2]}", 1, match[2], -1)
    if match := _PKU_NAME_V2.fullmatch(base):
        return PkuName(f"A{match[1]}N{match[2]}-{match[3]}", 2, match[3], int(match[2]))
    return None


def _is_bytes(source: object) -> bool:
    return isinstance(source, (bytes, bytearray, memoryview))


def _read_source(source: str | Path | bytes, name: str | None) -> tuple[bytes, str]:
    """The file's bytes and the name to show in messages."""
    if _is_bytes(source):
        return bytes(source), name or "<bytes>"
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise SkelctlError(f"cannot read file ({exc.strerror or exc})", str(source)) from exc
    return data, name or str(source)
