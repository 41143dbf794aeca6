"""NTU RGB+D 60 / 120: `skelctl preprocess ntu60|ntu120 RAW` (the official `.skeleton` files).

One file per sample, named SsssCcccPpppRrrrAaaa; bodies are selected per SPEC 2.1. The shipped
missing-skeleton lists are applied unless `keep_missing`; ntu60 keeps only actions 1-60 of
setups 1-17. Benchmarks: xsub and xview (ntu60), xsub and xset (ntu120), SPEC 1.2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skelctl.data.clipfile import read_clip
from skelctl.data.formats import parse_ntu_name
from skelctl.data.sources.base import (
    Clip,
    Parsed,
    PreprocessOptions,
    RawFile,
    SourcePlan,
    cached_layout,
    find_raw_files,
    train_test,
)
from skelctl.data.splits import in_ntu60, load_missing_list, ntu_class_names, ntu_split_masks
from skelctl.errors import Rejection, SkelctlError

LAYOUT = "ntu25"


@dataclass(frozen=True)
class NtuTask:
    file: RawFile
    setup: int
    camera: int
    performer: int
    replication: int
    action: int


def _parse_ntu(task: NtuTask, options: PreprocessOptions) -> Parsed:
    joints = read_clip(task.file.display, cached_layout(LAYOUT), options.recorded(),
                       data=task.file.read())
    clip = Clip(
        name=task.file.stem,
        joints=joints,
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
        return {b: train_test(m) for b, m in masks.items()}

    return SourcePlan(
        layout=LAYOUT,
        class_names=class_names,
        label_map=list(range(1, len(class_names) + 1)),
        tasks=tasks,
        parse=_parse_ntu,
        splits=splits,
        rejected=rejected,
        excluded=excluded,
    )



def ntu60_plan(raw: Path, options: PreprocessOptions) -> SourcePlan:
    return _ntu_plan("ntu60", raw, options)


def ntu120_plan(raw: Path, options: PreprocessOptions) -> SourcePlan:
    return _ntu_plan("ntu120", raw, options)
