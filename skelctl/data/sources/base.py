"""What every dataset source shares: the preprocessing options, the raw files it reads, the
plan it makes of RAW (`SourcePlan`: one task per raw file, a module-level `parse` run in worker
processes, the classes and the benchmark splits) and the helpers that turn arrays into stored
clips. A source is a function `(raw, options) -> SourcePlan`, listed in `sources/__init__.py`.
"""

from __future__ import annotations

import functools
import os
import posixpath
import stat
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from skelctl.data.clipfile import normalise
from skelctl.data.layout import Layout, get_layout
from skelctl.errors import Rejection, SkelctlError

BODY_METHODS = ("denoise", "energy", "first")
LABEL_FRAMES = ("inclusive", "halfopen")
LONG_CLIPS = ("center", "truncate")

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
def cached_layout(name: str) -> Layout:
    """`get_layout(name)`, read once per process (sources ask for it per clip)."""
    return get_layout(name)


def normalise_clip(joints: np.ndarray, options: PreprocessOptions, layout: str) -> np.ndarray:
    """`joints` as `preprocess` stores them under `options` (see `clipfile.normalise`)."""
    return normalise(joints, cached_layout(layout), options.recorded())


def one_clip(file: RawFile, joints: np.ndarray, options: PreprocessOptions, layout: str,
             action: int, **meta: int) -> Parsed:
    """What a raw file holding one sample parses to: its clip, named after the file, stored as
    `options` say; `meta` sets the Clip's subject, camera, setup, replication."""
    return Parsed(clips=[Clip(name=file.stem, joints=normalise_clip(joints, options, layout),
                              action=action, video=file.stem, **meta)])


def train_test(is_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) sample indices of a benchmark from its train mask."""
    return np.flatnonzero(is_train), np.flatnonzero(~is_train)


def splits_by(rules: Mapping[str, tuple[str, Sequence[int]]]) -> SplitBuilder:
    """Benchmarks {name: (column, values)}: train on the clips whose `column` (a `Clip` field)
    is one of `values`, test on the others."""

    def splits(clips: Sequence[Clip]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {bench: train_test(np.isin([getattr(c, column) for c in clips], values))
                for bench, (column, values) in rules.items()}

    return splits


def named_file_plan(raw: Path, suffix: str, read_name: Callable[[RawFile], tuple[int, ...]],
                    task: Callable[..., Any], parse: Callable[[Any, PreprocessOptions], Parsed],
                    layout: str, class_names: Sequence[str], actions: Sequence[int],
                    splits: SplitBuilder) -> SourcePlan:
    """The plan of a dataset of one file per sample, its metadata in its name: each file ending
    in `suffix` becomes `task(file, *read_name(file))` (a name it cannot read, or a duplicate,
    is rejected); `actions` are the raw action ids of `class_names`."""
    files, rejected = find_raw_files(raw, suffix)
    tasks = [task(file, *fields) for file, fields in named_files(files, read_name, rejected)]
    return SourcePlan(layout=layout, class_names=list(class_names), label_map=list(actions),
                      tasks=tasks, parse=parse, splits=splits, rejected=rejected)
