"""Raw skeleton files -> one dataset file (SPEC sections 1-2).

A *source* turns RAW into a plan: one task per raw file, a `parse` function that turns a task
into clips, and the dataset's classes and benchmarks. Worker processes read, parse, denoise and
normalise; the parent writes clips in plan order, so the file is the same for any worker count.
New dataset kinds add themselves with `register_source`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import posixpath
import stat
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from skelctl.data.denoise import select_bodies
from skelctl.data.formats import (
    parse_ntu_name,
    parse_pku_name,
    read_ntu_skeleton,
    read_pku_labels,
    read_pku_skeleton,
    read_pku_splits,
)
from skelctl.data.layout import Layout, get_layout
from skelctl.data.normalize import align_view, center_on_joint
from skelctl.data.parallel import ordered_map, start_server
from skelctl.data.splits import in_ntu60, load_missing_list, ntu_class_names, ntu_split_masks
from skelctl.errors import Rejection, RuntimeFailure, SkelctlError

BODY_METHODS = ("denoise", "energy", "first")
LABEL_FRAMES = ("inclusive", "halfopen")
LONG_CLIPS = ("center", "truncate")
PKU_VIEWS = {"L": 1, "M": 2, "R": 3}  # stored as the camera number, like NTU's C001-C003

T = TypeVar("T")


@dataclass(frozen=True)
class PreprocessOptions:
    bodies: str = "denoise"  # SPEC 2.1: denoise | energy | first
    center: bool = True  # translate by actor 1's spine-mid in its first valid frame
    align: bool = False  # 2s-AGCN view alignment of frame 0
    workers: int = 0  # 0: every available core
    strict: bool = False  # any bad input fails the run (exit 1, no output)
    missing_list: str | None = None  # replaces the shipped NTU missing-skeleton list
    keep_missing: bool = False  # keep the files the missing-skeleton list names (msr3d: the
    # sequences outside files_used_in_cvpr12_paper.txt)
    labels: str | None = None  # PKU: folder of label files, one per video, same stem
    splits: str | None = None  # PKU: folder of the official split files
    label_frames: str = "inclusive"  # PKU: [start-1, end) (1-based inclusive) or [start, end)
    long_clips: str = "center"  # PKU: centre-crop or truncate clips over max_frames
    max_frames: int = 300
    layout: str | None = None  # layout name or YAML file, for kinds whose files do not fix it

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("bodies", self.bodies, BODY_METHODS),
            ("label_frames", self.label_frames, LABEL_FRAMES),
            ("long_clips", self.long_clips, LONG_CLIPS),
        ):
            if value not in allowed:
                raise SkelctlError(
                    f"option {key}: expected one of {', '.join(allowed)}, got {value!r}"
                )
        if self.max_frames < 1:
            raise SkelctlError(
                f"option max_frames: expected a positive frame count, got {self.max_frames}"
            )
        if self.workers < 0:
            raise SkelctlError(
                f"option workers: expected 0 (all cores) or more, got {self.workers}"
            )

    def recorded(self) -> dict[str, Any]:
        """What the dataset file stores: everything that can change its contents."""
        return {k: v for k, v in asdict(self).items() if k not in ("workers", "strict")}


@dataclass(frozen=True)
class RawFile:
    """A raw file on disk, or a member of a zip archive (read without unpacking)."""

    member: str  # the file's path, or its name inside `archive`
    size: int
    archive: str | None = None

    @property
    def display(self) -> str:
        return f"{self.archive}/{self.member}" if self.archive else self.member

    @functools.cached_property
    def stem(self) -> str:  # cached: planning asks for it a few times per file
        return posixpath.splitext(posixpath.basename(self.member))[0]

    def read(self) -> bytes:
        if self.archive is None:
            with open(self.member, "rb") as f:
                return f.read()
        return _open_archive(self.archive).read(self.member)


@functools.cache
def _open_archive(path: str) -> zipfile.ZipFile:
    """One open handle per archive and process (workers read many members of the same zip)."""
    return zipfile.ZipFile(path)


@dataclass(frozen=True)
class Clip:
    name: str
    joints: np.ndarray  # (T, M, V, C) float32, normalised
    action: int  # raw action id (the label map turns it into a dense label)
    subject: int = -1
    camera: int = -1
    setup: int = -1
    replication: int = -1
    video: str = ""  # the raw file it came from (PKU splits are per video)


@dataclass
class Parsed:
    clips: list[Clip] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


SplitBuilder = Callable[[Sequence[Clip]], dict[str, tuple[np.ndarray, np.ndarray]]]


@dataclass
class SourcePlan:
    """What a source makes of RAW before any file is parsed."""

    layout: str
    class_names: list[str]
    label_map: list[int]  # dense label -> raw action id
    tasks: list[Any]  # picklable; each has a `.file: RawFile`
    parse: Callable[[Any, PreprocessOptions], Parsed]  # module-level: it is sent to workers
    splits: SplitBuilder  # clips (without joints) in file order -> {benchmark: (train, test)}
    rejected: list[Rejection] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)  # skipped on purpose, by reason
    channels: int = 3  # coordinates per joint (2 for 2-D pose)


SourceBuilder = Callable[[Path, PreprocessOptions], SourcePlan]
SOURCES: dict[str, SourceBuilder] = {}


def register_source(kind: str, builder: SourceBuilder) -> None:
    """Make `preprocess(kind, ...)` (and `skelctl preprocess KIND`) use `builder`.

    A module `skelctl.data.<kind>` that registers itself on import is found without any
    other wiring (see `source_for`).
    """
    SOURCES[kind] = builder


def source_for(kind: str) -> SourceBuilder:
    """The builder for `kind`, importing `skelctl.data.<kind>` on first use if it exists."""
    if (
        kind not in SOURCES
        and kind.isidentifier()
        and importlib.util.find_spec(f"skelctl.data.{kind}")
    ):
        importlib.import_module(f"skelctl.data.{kind}")
    if kind not in SOURCES:
        raise SkelctlError(f"unknown dataset kind '{kind}' (expected one of {', '.join(SOURCES)})")
    return SOURCES[kind]


def named_files(
    files: Sequence[RawFile], read_name: Callable[[RawFile], T], rejected: list[Rejection]
) -> list[tuple[RawFile, T]]:
    """Each file with what `read_name` reads from its name (a SkelctlError rejects the file),
    a second file of the same stem rejected as a duplicate; rejections go to `rejected`."""
    named: list[tuple[RawFile, T]] = []
    first_copy: dict[str, str] = {}
    for file in files:
        try:
            fields = read_name(file)
            if file.stem in first_copy:
                raise SkelctlError(f"duplicate sample (also at {first_copy[file.stem]})")
        except SkelctlError as exc:
            rejected.append(Rejection(file.display, -1, exc.reason))
            continue
        first_copy[file.stem] = file.display
        named.append((file, fields))
    return named


def find_raw_files(
    raw: Path, suffix: str, exclude: Sequence[Path] = ()
) -> tuple[list[RawFile], list[Rejection]]:
    """Files ending in `suffix` under RAW (searched recursively) and inside zip archives there.

    Returns them sorted by stem, then location, so a folder and an archive of the same files
    give the same order; unreadable archives come back as rejections.
    """
    if not raw.exists():
        raise SkelctlError("raw data not found", raw)
    if raw.is_file():
        if zipfile.is_zipfile(raw):
            return _archive_members(raw, suffix)
        if raw.name.lower().endswith(suffix):
            return [RawFile(str(raw), raw.stat().st_size)], []
        raise SkelctlError(f"expected a folder, a .zip archive or a {suffix} file", raw)
    seen = {p.resolve() for p in exclude}  # also guards against symlink cycles
    files: list[RawFile] = []
    rejected: list[Rejection] = []

    def unlistable(exc: OSError) -> None:  # a folder that cannot be read: say so, go on
        rejected.append(Rejection(str(exc.filename or raw), -1, f"unreadable folder ({exc.strerror or exc})"))

    for folder, dirs, names in os.walk(raw, followlinks=True, onerror=unlistable):
        if Path(folder).resolve() in seen:
            dirs.clear()
            continue
        seen.add(Path(folder).resolve())
        dirs.sort()
        for name in sorted(names):  # os.path, not Path objects: this loop is serial, per file
            path = os.path.join(folder, name)
            if name.lower().endswith(suffix):
                try:
                    info = os.stat(path)
                except OSError as exc:  # a dangling link, a link loop: that entry only
                    rejected.append(Rejection(path, -1, f"unreadable ({exc.strerror or exc})"))
                    continue
                if stat.S_ISREG(info.st_mode):
                    files.append(RawFile(path, info.st_size))
                else:  # a FIFO or device would block or never end
                    rejected.append(Rejection(path, -1, "not a regular file"))
            elif name.lower().endswith(".zip"):
                members, bad = _archive_members(Path(path), suffix)
                files += members
                rejected += bad
    files.sort(key=lambda f: (f.stem, f.display))
    return files, rejected


def _archive_members(path: Path, suffix: str) -> tuple[list[RawFile], list[Rejection]]:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        return [], [Rejection(str(path), -1, f"not a readable zip archive ({exc})")]
    members = [
        RawFile(info.filename, info.file_size, str(path))
        for info in infos
        if not info.is_dir() and info.filename.lower().endswith(suffix)
    ]
    return sorted(members, key=lambda f: (f.stem, f.display)), []


@functools.cache
def _layout(name: str) -> Layout:
    return get_layout(name)


def normalise_clip(joints: np.ndarray, options: PreprocessOptions, layout: str) -> np.ndarray:
    if options.center:
        joints = center_on_joint(joints, _layout(layout))
    if options.align:
        joints = align_view(joints, _layout(layout))
    return np.ascontiguousarray(joints, dtype=np.float32)


# ---------------------------------------------------------------- NTU RGB+D 60 / 120


@dataclass(frozen=True)
class NtuTask:
    file: RawFile
    setup: int
    camera: int
    performer: int
    replication: int
    action: int


def _parse_ntu(task: NtuTask, options: PreprocessOptions) -> Parsed:
    where = task.file.display
    joints = select_bodies(read_ntu_skeleton(task.file.read(), where), options.bodies)
    if len(joints) == 0:
        raise SkelctlError("no body in any frame", where)
    clip = Clip(
        name=task.file.stem,
        joints=normalise_clip(joints, options, "ntu25"),
        action=task.action,
        subject=task.performer,
        camera=task.camera,
        setup=task.setup,
        replication=task.replication,
        video=task.file.stem,
    )
    return Parsed(clips=[clip])


def _ntu_plan(kind: str, raw: Path, options: PreprocessOptions) -> SourcePlan:
    files, rejected = find_raw_files(raw, ".skeleton")
    missing = set() if options.keep_missing else load_missing_list(kind, options.missing_list)
    excluded = {"missing_skeleton_list": 0} | ({"not_in_ntu60": 0} if kind == "ntu60" else {})
    tasks: list[NtuTask] = []
    first_copy: dict[str, str] = {}
    for file in files:
        try:
            name = parse_ntu_name(file.stem)
        except SkelctlError as exc:
            rejected.append(Rejection(file.display, -1, exc.reason))
            continue
        if kind == "ntu60" and not in_ntu60(name):
            excluded["not_in_ntu60"] += 1
        elif file.stem in missing:
            excluded["missing_skeleton_list"] += 1
        elif file.stem in first_copy:
            rejected.append(
                Rejection(file.display, -1, f"duplicate sample (also at {first_copy[file.stem]})")
            )
        else:
            first_copy[file.stem] = file.display
            tasks.append(
                NtuTask(
                    file, name.setup, name.camera, name.performer, name.replication, name.action
                )
            )
    class_names = ntu_class_names(kind)

    def splits(clips: Sequence[Clip]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        masks = ntu_split_masks(
            kind,
            np.array([c.subject for c in clips], np.int64),
            np.array([c.camera for c in clips], np.int64),
            np.array([c.setup for c in clips], np.int64),
        )
        return {b: (np.flatnonzero(m), np.flatnonzero(~m)) for b, m in masks.items()}

    return SourcePlan(
        layout="ntu25",
        class_names=class_names,
        label_map=list(range(1, len(class_names) + 1)),
        tasks=tasks,
        parse=_parse_ntu,
        splits=splits,
        rejected=rejected,
        excluded=excluded,
    )


# ---------------------------------------------------------------- PKU-MMD v1 / v2


@dataclass(frozen=True)
class PkuTask:
    file: RawFile
    subject: int
    camera: int
    label_file: str
    rows: tuple[tuple[int, int, int, int], ...]  # (action, start, end, line in label_file)


def _clip_frames(start: int, end: int, frames: int, convention: str) -> tuple[int, int, str]:
    """A label row's frame range as a 0-based [lo, hi) slice, or a reason it is invalid."""
    lo, hi = (start - 1, end) if convention == "inclusive" else (start, end)
    first = 1 if convention == "inclusive" else 0
    if start < first:
        return lo, hi, f"start frame {start} < {first} ({convention} frame numbers)"
    if hi <= lo:
        return lo, hi, f"start frame {start} is not before end frame {end} ({convention})"
    if hi > frames:
        return lo, hi, f"end frame {end} is past the video's {frames} frames ({convention})"
    return lo, hi, ""


def _limit_length(clip: np.ndarray, options: PreprocessOptions) -> np.ndarray:
    extra = len(clip) - options.max_frames
    if extra <= 0:
        return clip
    start = extra // 2 if options.long_clips == "center" else 0
    return clip[start : start + options.max_frames]


def _parse_pku(task: PkuTask, options: PreprocessOptions) -> Parsed:
    video = read_pku_skeleton(task.file.read(), task.file.display)
    parsed = Parsed()
    for action, start, end, line in task.rows:
        lo, hi, problem = _clip_frames(start, end, len(video), options.label_frames)
        if not problem and not np.any(video[lo:hi]):
            problem = f"no body in frames {start}-{end}"
        if problem:
            parsed.rejected.append(Rejection(task.label_file, line, problem))
            continue
        clip = _limit_length(video[lo:hi], options)
        parsed.clips.append(
            Clip(
                name=f"{task.file.stem}_{line:03d}",
                joints=normalise_clip(clip, options, "ntu25"),
                action=action,
                subject=task.subject,
                camera=task.camera,
                video=task.file.stem,
            )
        )
    return parsed


def _label_rows(path: Path) -> tuple[tuple[int, int, int, int], ...]:
    """(action, start, end, line) per label row: line numbers let a bad row be pointed at.

    `read_pku_labels` validates the file and skips lines of only commas and blanks; the same
    rule here recovers each row's line.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SkelctlError(f"cannot read the label file ({exc.strerror or exc})", path) from exc
    rows = read_pku_labels(data, str(path))
    text = data.decode("utf-8")  # read_pku_labels has checked it
    lines = [n for n, line in enumerate(text.splitlines(), 1) if line.replace(",", "").strip()]
    return tuple((int(r[0]), int(r[1]), int(r[2]), n) for r, n in zip(rows, lines, strict=True))


def _pku_plan(version: int, raw: Path, options: PreprocessOptions) -> SourcePlan:
    if options.labels is None:
        raise SkelctlError(f"pku{version} needs --labels DIR (one label file per video, same stem)")
    labels_dir = Path(options.labels)
    if not labels_dir.is_dir():
        raise SkelctlError("labels folder not found", labels_dir)
    split_files = {}
    if options.splits is not None:
        if not Path(options.splits).is_dir():
            raise SkelctlError("splits folder not found", options.splits)
        split_files = read_pku_splits(Path(options.splits), version)
    exclude = [labels_dir] + ([Path(options.splits)] if options.splits else [])
    files, rejected = find_raw_files(raw, ".txt", exclude)
    tasks: list[PkuTask] = []
    first_copy: dict[str, str] = {}
    for file in files:
        label_file = labels_dir / f"{file.stem}.txt"
        try:
            name = parse_pku_name(file.stem)
            if name.version != version:
                raise SkelctlError(f"a PKU-MMD v{name.version} name, expected v{version}")
            if file.stem in first_copy:
                raise SkelctlError(f"duplicate video (also at {first_copy[file.stem]})")
            if not label_file.is_file():
                raise SkelctlError(f"no label file {label_file}")
        except SkelctlError as exc:
            rejected.append(Rejection(file.display, -1, exc.reason))
            continue
        try:
            rows = _label_rows(label_file)
        except SkelctlError as exc:
            rejected.append(Rejection(exc.path or str(label_file), exc.line or -1, exc.reason))
            continue
        first_copy[file.stem] = file.display
        tasks.append(PkuTask(file, name.subject, PKU_VIEWS[name.view], str(label_file), rows))
    actions = sorted({row[0] for task in tasks for row in task.rows})

    def splits(clips: Sequence[Clip]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        videos = np.array([c.video for c in clips], dtype=object)
        return {
            bench: (
                np.flatnonzero(np.isin(videos, list(train))),
                np.flatnonzero(np.isin(videos, list(test))),
            )
            for bench, (train, test) in split_files.items()
        }

    return SourcePlan(
        layout="ntu25",
        class_names=[f"action_{a}" for a in actions],
        label_map=actions,
        tasks=tasks,
        parse=_parse_pku,
        splits=splits,
        rejected=rejected,
    )


register_source("ntu60", functools.partial(_ntu_plan, "ntu60"))
register_source("ntu120", functools.partial(_ntu_plan, "ntu120"))
register_source("pku1", functools.partial(_pku_plan, 1))
register_source("pku2", functools.partial(_pku_plan, 2))


# ---------------------------------------------------------------- running a plan

ProgressCallback = Callable[[int, int, int], None]  # (files done, files total, bytes read)


def _parse_task(
    parse: Callable[[Any, PreprocessOptions], Parsed], options: PreprocessOptions, task: Any
) -> Parsed:
    """Run in a worker: bad input becomes a rejection; anything else is a bug and propagates."""
    try:
        return parse(task, options)
    except SkelctlError as exc:
        return Parsed(
            rejected=[Rejection(exc.path or task.file.display, exc.line or -1, exc.reason)]
        )
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        return Parsed(rejected=[Rejection(task.file.display, -1, f"unreadable ({exc})")])


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def preprocess(
    kind: str,
    raw: str | Path,
    out: str | Path,
    options: PreprocessOptions | None = None,
    on_progress: ProgressCallback | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Turn RAW (folder or zip archives) into the dataset file OUT; returns the run summary.

    Bad files are recorded (`/rejected`) and skipped; with `options.strict` the first one fails
    the run. OUT appears only when everything succeeded; an existing OUT is replaced atomically,
    and only if it is a skelctl dataset (or `force`); OUT is never one of the inputs.
    Summary (`skelctl preprocess --json`): kind, output, samples, frames, classes, files (raw
    files considered), rejected (count), excluded ({reason: files skipped on purpose}), splits
    ({benchmark: {train, test}}), workers, seconds, files_per_s, mb_per_s, input_mb,
    rejected_files (`path:line: reason` lines).
    """
    from skelctl.data.store import DatasetWriter  # here: workers import this module, not h5py

    options = options or PreprocessOptions()
    build = source_for(kind)
    started = time.perf_counter()
    raw, out = Path(raw), Path(out)
    workers = options.workers or default_workers()
    if workers > 1:  # the fork server imports the parsing code while this process plans
        start_server([build.__module__])
    plan = build(raw, options)
    if options.layout is not None and options.layout != plan.layout:
        raise SkelctlError(
            f"{kind} files hold the {plan.layout} layout; drop --layout {options.layout}"
        )
    if not plan.tasks and not plan.rejected:
        raise SkelctlError(
            f"no {kind} raw files found (searched recursively, zip archives included)", raw
        )
    _check_not_an_input(out, plan)
    if options.strict and plan.rejected:
        _fail_strict(plan.rejected[0])
    total = len(plan.tasks)
    label_of = {raw_id: dense for dense, raw_id in enumerate(plan.label_map)}
    clips: list[Clip] = []  # metadata only: joints are dropped once written
    rejected = list(plan.rejected)
    done = read = frames = 0
    work = functools.partial(_parse_task, plan.parse, options)
    layout = _layout(plan.layout)
    with (
        DatasetWriter(
            out, kind, layout, plan.class_names, plan.label_map, options.recorded(), plan.channels,
            force,
        ) as writer,
        contextlib.closing(
            ordered_map(work, plan.tasks, [t.file.size for t in plan.tasks], workers)
        ) as results,
    ):
        for task, parsed in zip(plan.tasks, results, strict=True):
            if options.strict and parsed.rejected:
                _fail_strict(parsed.rejected[0])
            rejected += parsed.rejected
            for clip in parsed.clips:
                writer.add(
                    clip.name,
                    clip.joints,
                    label_of[clip.action],
                    clip.subject,
                    clip.camera,
                    clip.setup,
                    clip.replication,
                )
                frames += len(clip.joints)
                clips.append(replace(clip, joints=clip.joints[:0].copy()))  # frames written: drop them
            done += 1
            read += task.file.size
            if on_progress is not None:
                on_progress(done, total, read)
        if not clips:
            first = f"; first: {rejected[0]}" if rejected else ""
            raise SkelctlError(
                f"no usable {kind} sample in {len(rejected)} rejected input(s){first}", raw
            )
        for r in rejected:
            writer.reject(r.path, r.line, r.reason)
        split_indices = plan.splits(clips)
        for bench, (train, test) in split_indices.items():
            writer.set_split(bench, train, test)
    seconds = time.perf_counter() - started
    return {
        "kind": kind,
        "output": str(out),
        "samples": len(clips),
        "frames": frames,
        "classes": len(plan.class_names),
        "files": total + len(plan.rejected),
        "rejected": len(rejected),
        "excluded": dict(plan.excluded),
        "splits": {b: {"train": len(tr), "test": len(te)} for b, (tr, te) in split_indices.items()},
        "workers": workers,
        "seconds": round(seconds, 3),
        "files_per_s": round(done / seconds, 1),
        "mb_per_s": round(read / 1e6 / seconds, 2),
        "input_mb": round(read / 1e6, 2),
        "rejected_files": [str(r) for r in rejected],
    }


def _check_not_an_input(out: Path, plan: SourcePlan) -> None:
    """Refuse an OUT that is one of the files the plan reads (same inode: links count too)."""
    try:
        target = os.stat(out)
    except OSError:
        return  # nothing there yet: it cannot be an input
    candidates = set()
    for task in plan.tasks:  # raw files of another size cannot be OUT: no stat for them
        if task.file.archive is not None or task.file.size == target.st_size:
            candidates.add(task.file.archive or task.file.member)
        candidates.update(p for p in (getattr(task, "label_file", None),
                                      getattr(task, "labels_file", None)) if p)
    for path in candidates:
        with contextlib.suppress(OSError):
            if os.path.samestat(os.stat(path), target):
                raise SkelctlError("output is one of the raw inputs; choose another -o path", out)


def _fail_strict(first: Rejection) -> None:
    raise RuntimeFailure(
        f"{first.reason} (--strict: stopped, no output written)",
        first.path,
        first.line if first.line >= 0 else None,
    )
