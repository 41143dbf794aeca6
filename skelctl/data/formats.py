"""Raw skeleton files: NTU RGB+D `.skeleton` and PKU-MMD text, read fast and strictly (SPEC 1).

A full NTU120 run reads 114k files of ~30k numbers each, so the NTU reader never converts a
token with a Python call. When the optional C extension `_speedups` is built, it reads a clean
file without the GIL (~4-5x faster than numpy); a file it refuses, and every file without it,
goes to the numpy reader: numpy finds every token boundary at once, a short Python walk over
frames and bodies checks the structure with integer indices, and all numbers are converted in
one vectorised pass (`_decimals`: 8 digits per uint64 lane). Both give the same arrays, bit for
bit; only the numpy reader explains defects, so errors are the same with or without C.
Files are parsed by tokens, so CRLF and LF files read the same. Every defect raises
`SkelctlError(reason, path, line)`; the line is worked out only on that error path.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

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
_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INT64_LIMIT = 2**63


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
    text = _Tokens(data, path)
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
    index = _WORK.get("record_tokens", (len(starts), len(_NUMBER_OFFSETS)), np.int64)
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
    text = _Tokens(data, path)
    if text.count == 0:
        raise SkelctlError("empty file (expected one line of 150 numbers per frame)", path, 1)
    newline = _WORK.get("newline", (len(data),), np.bool_)
    np.equal(np.frombuffer(data, np.uint8), 10, out=newline)
    line_ends = np.searchsorted(text.starts, _sparse_positions(newline))  # tokens before each
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
                f"expected 'action_id,start_frame,end_frame,confidence' integers, got {_show(line)}",
                path,
                number,
            )
        action, start, end, confidence = (int(f) for f in fields)
        if action < 1 or start > end:
            raise SkelctlError(
                f"expected action_id >= 1 and start_frame <= end_frame, got {_show(line)}",
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
            raise SkelctlError(f"expected a 'Training videos:' header, got {_show(line)}",
                               shown, number)
        for item in rest.split(","):
            stem = item.strip()
            if not stem:
                continue
            parsed = _match_pku_name(stem)
            if parsed is None:
                raise SkelctlError(f"not a PKU-MMD video name: {_show(stem)}", shown, number)
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


def _show(text: str | bytes, limit: int = 40) -> str:
    """A short printable quote of user data for error messages."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="backslashreplace")
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --- tokens and numbers ------------------------------------------------------------------------
# Numbers are converted without a Python call each: every byte gets a code (digit value, 0x10
# for '.', 0x40 for '-', 0 otherwise), each token is read as the 16 code bytes that end where it
# ends (two little-endian uint64 lanes, byte k of the window in bits 8k..8k+7), and the digits of
# a lane are combined in three multiply-shift steps (SWAR). Tokens with an exponent, more than 15
# characters or anything unusual take the strict path through float().
_DOT_BITS = np.uint64(0x1010101010101010)
_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_MINUS_BITS = np.uint64(0x4040404040404040)
_FAST_MAX_LEN = 15  # <= 15 digits: the integer mantissa is exact in float64
# _INSIDE[w, n]: the bytes of lane w (0: window bytes 0-7, 1: bytes 8-15) that belong to a token
# of n characters ending at the end of the window.
_INSIDE = np.array(
    [[sum(0xFF << (8 * (k - 8 * w)) for k in range(8 * w, 8 * w + 8) if k >= 16 - n)
      for n in range(17)] for w in range(2)],
    dtype=np.uint64,
)
# The dot's window position p, keyed by (bits below it in lane 0) - (bits below it in lane 1)
# mod 256 (a lane without the dot counts 64): 196 + 8p in lane 0, 60 - 8(p - 8) in lane 1, 0 for
# no dot. Per key: 10^(digits after the dot) and 10 times that (for no dot, a power above any
# 15-digit value, so the integer part comes out as 0).
_DOT_KEY = {196 + 8 * p: p for p in range(8)} | {60 - 8 * (p - 8): p for p in range(8, 16)}
_SCALE = np.ones(256)
_SCALE_UP = np.full(256, 1e17)
for _key, _position in _DOT_KEY.items():
    _SCALE[_key] = 10.0 ** (15 - _position)
    _SCALE_UP[_key] = 10.0 ** (16 - _position)
_WORKSPACE_LIMIT = 1 << 22  # elements (PKU-MMD videos are ~1.5 MB); bigger ones are not kept


class _Workspace(threading.local):
    """Work arrays kept from one file to the next, per thread.

    A fresh numpy temporary of a few hundred KiB costs a page fault per 4 KiB, more than the
    arithmetic done on it, and a file takes ~60 array operations; reusing the buffers removes
    that cost and keeps them in cache.
    """

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, key: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        size = math.prod(shape)
        if size > _WORKSPACE_LIMIT:
            return np.empty(shape, dtype)
        array = self.arrays.get(key)
        if array is None or array.size < size or array.dtype != dtype:
            array = np.empty(max(size * 5 // 4, 1024), dtype)
            self.arrays[key] = array
        return array[:size].reshape(shape)


_WORK = _Workspace()


class _Tokens:
    """A whitespace-separated buffer of numbers: where its tokens are, their values, typed
    access and error lines. Its arrays live in the thread's workspace: valid until the next
    file is read on this thread.

    `values` holds every token as converted by the fast path, and NaN for tokens it leaves to
    the strict path (exponents, long tokens, anything unusual): `numbers` and `integer` re-read
    those from the text, so the fast path never has to judge a malformed token.
    """

    def __init__(self, data: bytes, path: str):
        self.data, self.path = data, path
        n = len(data)
        raw = np.frombuffer(data, np.uint8)
        get = _WORK.get
        # Per-byte codes (digit value, 0x10 for '.', 0x40 for '-'), 8-byte aligned, with 16 zero
        # bytes in front (the first token's window).
        words = get("codes", ((n + 40) // 8,), np.uint64)
        padded = words.view(np.uint8)
        padded[:16] = 0
        padded[16 + n:] = 0
        codes = padded[16:16 + n]
        space = get("space", (n + 2,), np.bool_)  # space[b + 1] is byte b; both ends padded
        space[0] = space[-1] = True
        is_space = space[1:-1]
        scratch = get("byte", (n,), np.uint8)
        digit, dot, sign, exponent, odd, bare = (
            get(key, (n,), np.bool_) for key in ("digit", "dot", "sign", "exponent", "odd", "bare")
        )
        np.subtract(raw, 9, out=scratch)
        np.less(scratch, 5, out=is_space)  # \t \n \v \f \r
        np.equal(raw, 32, out=odd)
        is_space |= odd
        np.subtract(raw, 48, out=codes)
        np.less(codes, 10, out=digit)
        np.multiply(codes, digit, out=codes)
        np.equal(raw, 46, out=dot)
        np.left_shift(dot.view(np.uint8), 4, out=scratch)
        codes |= scratch
        np.equal(raw, 45, out=sign)
        np.left_shift(sign.view(np.uint8), 6, out=scratch)
        codes |= scratch
        np.equal(raw, 43, out=odd)
        sign |= odd
        np.bitwise_or(raw, 32, out=scratch)
        np.equal(scratch, 101, out=exponent)  # E e
        # The classes are disjoint: counting them finds a foreign byte faster than OR-ing masks.
        dots = int(np.count_nonzero(dot))
        if dots + sum(np.count_nonzero(m) for m in (is_space, digit, sign, exponent)) != n:
            allowed = odd
            np.logical_or(is_space, digit, out=allowed)
            allowed |= dot
            allowed |= sign
            allowed |= exponent
            self._reject_byte(int(np.argmin(allowed)))

        # Bytes whose token the fast path would misread: an exponent, a sign that neither opens
        # a token nor follows an exponent, a sign or dot ending a token with no digit before it
        # ('-', '.', '-.').
        np.greater(sign, space[:-2], out=odd)
        np.greater(odd[1:], exponent[:-1], out=odd[1:])
        odd |= exponent
        np.logical_or(sign, dot, out=bare)
        bare &= space[2:]
        np.greater(bare[1:], digit[:-1], out=bare[1:])
        odd |= bare

        edges = np.flatnonzero(space[1:] != space[:-1])
        self.count = len(edges) // 2
        self.starts = get("starts", (self.count,), np.int64)
        self.ends = get("ends", (self.count,), np.int64)
        np.copyto(self.starts, edges[0::2])
        np.copyto(self.ends, edges[1::2])
        self.values, strict, dotted = _decimals(words, self.starts, self.ends)
        if dotted != dots:  # a token with several dots (or one beyond its 16-byte window)
            strict |= np.add.reduceat(dot, self.starts, dtype=np.int64) > 1
        if odd.any():
            strict[np.searchsorted(self.ends, _sparse_positions(odd), "right")] = True
        np.copyto(self.values, np.nan, where=strict)

    def token(self, i: int) -> bytes:
        return self.data[self.starts[i]:self.ends[i]]

    def line_of(self, offset: int) -> int:
        return self.data.count(b"\n", 0, offset) + 1

    def error(self, i: int, reason: str) -> SkelctlError:
        return SkelctlError(reason, self.path, self.line_of(int(self.starts[i])))

    def truncated(self, what: str) -> SkelctlError:
        last = self.line_of(int(self.starts[self.count - 1])) if self.count else 1
        return SkelctlError(f"truncated file: {what}", self.path, last)

    def integer(self, i: int, what: str, low: int, high: int) -> int:
        """Token i as an integer in [low, high] (a count), with a message naming the count."""
        if i >= self.count:
            raise self.truncated(f"it ends where the {what} should be")
        token = self.token(i)
        if not token.isdigit():
            raise self.error(i, f"expected the {what} (an integer), got {_show(token)}")
        value = int(token)
        if low <= value <= high:
            return value
        if low == high:
            raise self.error(i, f"expected a {what} of {low}, got {value}")
        if value < low:
            raise self.error(i, f"{what} is {value} (at least {low} expected)")
        raise self.error(i, f"{what} {value} is above the limit of {high}")

    def body_ids(self, index: np.ndarray) -> np.ndarray:
        """int64 tokens at `index`, exact (Kinect body IDs are ~2^56, beyond float64)."""
        tokens = [self.data[s:e] for s, e in zip(self.starts[index].tolist(),
                                                 self.ends[index].tolist(), strict=True)]
        for k, token in enumerate(tokens):
            if not token.isdigit() or len(token) > 19 or int(token) >= _INT64_LIMIT:
                raise self.error(int(index[k]),
                                 f"expected a body ID (an integer below 2^63), got {_show(token)}")
        return np.array([int(t) for t in tokens], dtype=np.int64)

    def numbers(self, index: np.ndarray | None = None) -> np.ndarray:
        """float32 tokens at `index` (any shape; all when None), rejecting non-numbers and
        values beyond float32 with the token's line."""
        if index is None:
            flat, values = None, self.values
        else:
            flat = index.reshape(-1)
            values = _WORK.get("picked", flat.shape, np.float64)
            np.take(self.values, flat, out=values, mode="clip")
        result = values.astype(np.float32)
        # The strict path: rare. (The fast path reads at most 15 digits: always finite.)
        for k in np.flatnonzero(np.isnan(values)).tolist():
            i = k if flat is None else int(flat[k])
            token = self.token(i)
            if _NUMBER.fullmatch(token) is None:
                raise self.error(i, f"expected a number, got {_show(token)}")
            with np.errstate(over="ignore"):
                result[k] = np.float32(float(token))
            if not np.isfinite(result[k]):
                raise self.error(i, f"not a finite float32 number: {_show(token)}")
        return result if index is None else result.reshape(index.shape)

    def _reject_byte(self, offset: int) -> None:
        """Explain the first byte that cannot occur in a file of numbers."""
        line = self.line_of(offset)
        byte = self.data[offset]
        if not 33 <= byte <= 126:
            raise SkelctlError(
                f"binary or non-UTF-8 data (byte 0x{byte:02x}); expected text numbers",
                self.path,
                line,
            )
        start = offset
        while start > 0 and 33 <= self.data[start - 1] <= 126:
            start -= 1
        end = offset
        while end < len(self.data) and 33 <= self.data[end] <= 126:
            end += 1
        token = self.data[start:end]
        if token.lstrip(b"+-").lower() in (b"nan", b"inf", b"infinity"):
            raise SkelctlError(f"not a finite number: {_show(token)}", self.path, line)
        raise SkelctlError(f"expected a number, got {_show(token)}", self.path, line)


def _sparse_positions(mask: np.ndarray) -> np.ndarray:
    """Indices of the few True entries of a bool array: flatnonzero over 8-byte words first,
    because a byte-wise scan of a whole file costs ~10x more than one vectorised operation."""
    whole = len(mask) // 8 * 8
    words = np.flatnonzero(mask[:whole].view(np.uint64))
    candidates = (words[:, None] * 8 + np.arange(8)).reshape(-1)
    return np.concatenate([candidates[mask[candidates]], whole + np.flatnonzero(mask[whole:])])


def _decimals(
    words: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """(values, strict, dotted) for the tokens ending at `ends` of a buffer coded as in `_Tokens`.

    values is float64, correctly rounded like float(), for every token of the form
    [+-]digits[.digits] of at most 15 characters (if it has at most one dot: `dotted`, the
    number of tokens with a dot, lets the caller check that); strict marks tokens too long to
    read. The arrays are workspace arrays.
    """
    get = _WORK.get
    k = len(starts)
    first_word = get("first_word", (k,), np.intp)  # the 3 aligned words covering each window
    np.right_shift(ends, 3, out=first_word)
    aligned = get("aligned", (3, k), np.uint64)
    for w in range(3):
        np.take(words[w:], first_word, out=aligned[w], mode="clip")
    shift = get("shift", (k,), np.uint64)
    np.bitwise_and(ends, 7, out=shift.view(np.int64))
    shift <<= np.uint64(3)
    lanes = get("lanes", (2, k), np.uint64)
    np.right_shift(aligned[:2], shift, out=lanes)
    np.subtract(np.uint64(64), shift, out=shift)  # a shift by 64 gives 0 in numpy
    other = get("other", (2, k), np.uint64)
    np.left_shift(aligned[1:], shift, out=other)
    lanes |= other

    lengths = get("lengths", (k,), np.int64)
    np.subtract(ends, starts, out=lengths)
    strict = get("strict", (k,), np.bool_)
    np.greater(lengths, _FAST_MAX_LEN, out=strict)
    np.take(_INSIDE, lengths, axis=1, out=other, mode="clip")  # clipped to 16: all bytes
    lanes &= other  # drop the neighbouring tokens' bytes
    marks = other
    np.bitwise_or(lanes[0], lanes[1], out=marks[0])
    negative = get("negative", (k,), np.bool_)
    np.bitwise_and(marks[0], _MINUS_BITS, out=marks[0])
    np.not_equal(marks[0], 0, out=negative)  # a '-' can only open a fast token
    dots = marks
    np.bitwise_and(lanes, _DOT_BITS, out=dots)
    lanes &= _LOW_NIBBLES  # digit values, 0 for the dot
    # Bits below the dot bit in each lane (64 without one): their difference mod 256 names the
    # dot's window position (see _DOT_KEY).
    dots -= np.uint64(1)
    per_lane = get("per_lane", (2, k), np.uint8)
    np.bitwise_count(dots, out=per_lane)
    dot_key = per_lane[0]
    dot_key -= per_lane[1]
    dotted = k - int(np.count_nonzero(dot_key == 0))

    lanes *= np.uint64(2561)  # 10 * 2^8 + 1: pairs of digits
    lanes >>= np.uint64(8)
    lanes &= np.uint64(0x00FF00FF00FF00FF)
    lanes *= np.uint64(6553601)  # 100 * 2^16 + 1: groups of four
    lanes >>= np.uint64(16)
    lanes &= np.uint64(0x0000FFFF0000FFFF)
    lanes *= np.uint64(42949672960001)  # 10^4 * 2^32 + 1: all eight
    lanes >>= np.uint64(32)
    lanes[0] *= np.uint64(10**8)
    lanes[0] += lanes[1]

    # The dot was read as a 0 digit: whole = high * 10^(f+1) + low with f digits after the dot,
    # and the number is (high * 10^f + low) / 10^f, one correctly rounded division.
    values = get("values", (k,), np.float64)
    np.copyto(values, lanes[0], casting="unsafe")
    scale = get("scale", (k,), np.float64)
    high = get("high", (k,), np.float64)
    np.take(_SCALE_UP, dot_key, out=scale, mode="clip")
    np.divide(values, scale, out=high)
    np.floor(high, out=high)
    np.take(_SCALE, dot_key, out=scale, mode="clip")
    high *= scale
    high *= 9.0
    values -= high
    values /= scale
    np.negative(values, out=values, where=negative)
    return values, strict, dotted
