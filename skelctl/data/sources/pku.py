"""PKU-MMD v1 / v2: `skelctl preprocess pku1|pku2 RAW --labels DIR [--splits DIR]`.

Each skeleton `.txt` is a whole video (150 numbers per frame line, two bodies); its label file
(same stem, in --labels) lists the actions to cut from it. Benchmarks come from the official
split files (--splits), when given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skelctl.data.formats import parse_pku_name, read_pku_labels, read_pku_skeleton, read_pku_splits
from skelctl.data.sources.base import (
    Clip,
    Parsed,
    PreprocessOptions,
    RawFile,
    SourcePlan,
    find_raw_files,
    normalise_clip,
)
from skelctl.errors import Rejection, SkelctlError

PKU_VIEWS = {"L": 1, "M": 2, "R": 3}  # stored as the camera number, like NTU's C001-C003



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



def pku1_plan(raw: Path, options: PreprocessOptions) -> SourcePlan:
    return _pku_plan(1, raw, options)


def pku2_plan(raw: Path, options: PreprocessOptions) -> SourcePlan:
    return _pku_plan(2, raw, options)
