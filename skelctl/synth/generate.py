"""Whole synthetic datasets: official file names, folder layouts, labels and split files.

NTU (SPEC 1.1-1.2): every (performer, replication, action) is performed once and recorded
by three cameras at azimuth 0 (C001), -45 (C002) and +45 degrees (C003). As in the real
setup, replication 1 faces camera 2 and replication 2 faces camera 3, so camera 1 always
sees a 45-degree view and cameras 2/3 see front and side views. Performer IDs alternate
between the official cross-subject training and test subjects, and setups between
S001-S017 and (NTU120) even and odd S018-S032, so every benchmark of SPEC 1.2 has both
parts. Names on the official missing-skeleton list are written as files whose frames hold
no body, as in the real release.

PKU-MMD (SPEC 1.3): each video is one performer doing a shuffled sequence of actions with
idle gaps, seen from views L (-45), M (0) and R (+45 degrees). Single-person and
two-person actions live in separate videos, as in the real data. Layout:
`OUT/skeleton/*.txt`, `OUT/label/*.txt` (`action,start,end,confidence`, 1-based inclusive
frames) and `OUT/split/` with the official split files; cross-view trains on M and R.

Every file is a function of (seed, its own name): the same seed gives byte-identical files
and changing the size options does not change the files that both sizes contain.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from skelctl.atomic import atomic_path
from skelctl.data.splits import NTU60_XSUB_TRAIN, NTU120_XSUB_TRAIN, load_missing_list
from skelctl.errors import SkelctlError
from skelctl.synth.kinect import (
    BODY_ID_BASE,
    PKU_ARTIFACTS,
    Artifacts,
    Recording,
    Sensor,
    ring_of_cameras,
)
from skelctl.synth.motions import ACTIONS, DEFAULT_ORDER, Action, ease, perform
from skelctl.synth.rig import Physique
from skelctl.synth.writers import (
    dense_bodies,
    ntu_skeleton_text,
    pku_label_text,
    pku_skeleton_text,
    pku_split_text,
)

KINDS = ("ntu60", "ntu120", "pku1", "pku2")
NTU_CAMERA_AZIMUTHS = (0.0, -45.0, 45.0)  # C001, C002, C003
PKU_VIEWS = {"L": -45.0, "M": 0.0, "R": 45.0}
PKU_XVIEW_TRAIN = ("M", "R")
PKU_SPLIT_FILES = {  # the official names
    1: {"xsub": "cross-subject.txt", "xview": "cross-view.txt"},
    2: {"xsub": "cross_subject_v2.txt", "xview": "cross_view_v2.txt"},
}

_LIMITS = {  # performers, setups, actions
    "ntu60": (40, 17, 60),
    "ntu120": (106, 32, 120),
    "pku1": (66, 0, 51),
    "pku2": (13, 0, 51),
}
_PKU_MAX_VIDEOS = {"pku1": 363, "pku2": 26}  # v1 ids 0002-0364; v2 A01-A26 per performer

# Seed-sequence tags: each random stream is keyed by what it describes.
_PERFORMER, _SETUP, _SESSION, _TAKE, _CAMERA, _PARTNER, _VIDEO, _INSTANCE = range(1, 9)


@dataclass(frozen=True)
class SynthSize:
    """How much to generate. `classes` takes the first N of the kind's default order unless
    `actions` names the classes (NTU action numbers; PKU-MMD action ids for pku1/pku2)."""

    performers: int = 4
    classes: int = 12
    actions: tuple[int, ...] | None = None
    replications: int = 1  # NTU: 1 or 2
    cameras: int = 3  # NTU cameras C001..; PKU views L, M, R
    frames: tuple[int, int] = (40, 120)  # clip length range at 30 fps
    videos: int = 4  # PKU: videos (each seen from every view)


# Test size: 12 classes x 4 performers x 3 cameras = 144 NTU files (PKU: 4 videos x 3 views).
# Demo size: enough to pretrain and evaluate on a CPU in minutes (NTU: 20 classes x 40
# performers x 1 replication x 3 cameras = 2,400 files, 20 performers in each xsub half;
# PKU: 12 videos x 3 views). Many performers with one take each: with 8 performers x 2
# replications (4 training performers) pretraining fell well behind a random encoder on the
# held-out performers; with 40 it comes level on linear evaluation (docs/learning-synthetic.md).
PRESETS: dict[str, dict[str, SynthSize]] = {
    "test": {kind: SynthSize() for kind in KINDS},
    "demo": {
        "ntu60": SynthSize(performers=40, classes=20, replications=1),
        "ntu120": SynthSize(performers=40, classes=20, replications=1),
        "pku1": SynthSize(performers=6, classes=21, videos=12),
        "pku2": SynthSize(performers=6, classes=21, videos=12),
    },
}


NTU_ONLY, PKU_ONLY = ("replications",), ("videos",)  # size fields of one family of kinds


def synth_size(kind: str, preset: str = "test", **overrides: Any) -> SynthSize:
    """A preset size with some fields replaced (None leaves a field as the preset has it); a
    field of the other family of kinds (`replications` for PKU, `videos` for NTU) is an error."""
    check_kind(kind)
    foreign = PKU_ONLY if kind.startswith("ntu") else NTU_ONLY
    for name in foreign:
        if overrides.get(name) is not None:
            raise SkelctlError(f"option --{name} does not apply to {kind}")
    if preset not in PRESETS:
        raise SkelctlError(f"unknown size preset '{preset}' (expected one of {', '.join(PRESETS)})")
    return replace(PRESETS[preset][kind], **{k: v for k, v in overrides.items() if v is not None})


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise SkelctlError(f"unknown dataset kind '{kind}' (expected one of {', '.join(KINDS)})")


def synthesize(
    kind: str,
    out_dir: str | Path,
    seed: int = 0,
    size: SynthSize | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Write a synthetic raw dataset of `kind` into `out_dir`; returns a summary dict.

    `out_dir` must be empty (or new) unless `force`, so two sizes never mix unnoticed; with
    `force`, files of the same name are replaced and others left alone. Every file is written
    atomically: an interrupted run leaves only complete files.
    """
    check_kind(kind)
    size = size or PRESETS["test"][kind]
    actions = _validate(kind, seed, size)
    out = _output_folder(out_dir, force)
    started = time.perf_counter()
    progress = on_progress or (lambda done, total: None)
    if kind.startswith("ntu"):
        summary = _write_ntu(kind, out, seed, size, actions, progress)
    else:
        summary = _write_pku(kind, out, seed, size, actions, progress)
    return {
        "kind": kind,
        "out_dir": str(out),
        "seed": seed,
        **summary,
        "actions": [a.ntu if kind.startswith("ntu") else a.pku for a in actions],
        "size": asdict(size),
        "seconds": round(time.perf_counter() - started, 3),
    }


# ---------------------------------------------------------------------- validation
def _validate(kind: str, seed: int, size: SynthSize) -> list[Action]:
    max_performers, _, max_action = _LIMITS[kind]
    if not isinstance(seed, int) or seed < 0:
        raise SkelctlError(f"option seed: expected a non-negative integer, got {seed!r}")
    _check_range("performers", size.performers, 1, max_performers)
    _check_range("cameras" if kind.startswith("ntu") else "views", size.cameras, 1, 3)
    lo, hi = size.frames
    if not 20 <= lo <= hi <= 1000:
        raise SkelctlError(
            f"option frames: expected MIN-MAX with 20 <= MIN <= MAX <= 1000, got {lo}-{hi}"
        )
    if kind.startswith("ntu"):
        _check_range("replications", size.replications, 1, 2)
    else:
        limit = _PKU_MAX_VIDEOS[kind] * (size.performers if kind == "pku2" else 1)
        _check_range("videos", size.videos, 1, limit)
    order = DEFAULT_ORDER[kind]
    if size.actions is None:
        _check_range("classes", size.classes, 1, len(order))
        return [ACTIONS[a] for a in order[: size.classes]]
    by_id = {(a if kind.startswith("ntu") else ACTIONS[a].pku): ACTIONS[a] for a in order}
    unknown = [a for a in size.actions if a not in by_id]
    if unknown or not size.actions:
        raise SkelctlError(
            f"option actions: no synthetic {kind} class {unknown[0] if unknown else '(empty list)'} "
            f"(available: {', '.join(str(a) for a in sorted(by_id))}; ids 1-{max_action})"
        )
    return [by_id[a] for a in dict.fromkeys(size.actions)]


def _check_range(option: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, int) or not lo <= value <= hi:
        raise SkelctlError(f"option {option}: expected an integer in {lo}..{hi}, got {value!r}")


def _output_folder(out_dir: str | Path, force: bool) -> Path:
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SkelctlError(
            "the output folder is not empty (choose a new folder, or force to write into it)", out
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SkelctlError(f"cannot create the output folder ({exc.strerror or exc})", out) from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise SkelctlError("the output folder is not writable", out)
    return out


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def _write(path: Path, text: str) -> int:
    data = text.encode("ascii")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return len(data)


def _cast(
    seed: int, action: Action, performer: int, partner_key: tuple[int, ...]
) -> list[Physique]:
    """The performer's own physique, plus a random partner for two-person actions."""
    cast = [Physique.sample(_rng(seed, _PERFORMER, performer))]
    if action.persons == 2:
        cast.append(Physique.sample(_rng(seed, _PARTNER, *partner_key)))
    return cast


# ---------------------------------------------------------------------- NTU RGB+D
def ntu_performers(kind: str, count: int) -> list[tuple[int, int]]:
    """(performer ID, setup) pairs alternating cross-subject train and test subjects, with
    setups cycling so that every NTU benchmark split has samples."""
    train = NTU60_XSUB_TRAIN if kind == "ntu60" else NTU120_XSUB_TRAIN
    total = _LIMITS[kind][0]
    test = [p for p in range(1, total + 1) if p not in train]
    ordered = [p for pair in zip(train, test, strict=False) for p in pair]
    ordered += list(train[len(test) :]) + test[len(train) :]
    pairs = []
    for k, performer in enumerate(ordered[:count]):
        if kind == "ntu60":
            setup = 1 + k % 17
        else:  # even >= 18, odd >= 18, odd <= 17, even <= 17, ...
            block, slot = divmod(k, 4)
            setup = 18 + 2 * (block % 7) + slot if slot < 2 else 1 + 2 * (block % 8) + (slot - 2)
        pairs.append((performer, setup))
    return pairs


def _write_ntu(
    kind: str,
    out: Path,
    seed: int,
    size: SynthSize,
    actions: list[Action],
    progress: Callable[[int, int], None],
) -> dict[str, Any]:
    missing = load_missing_list(kind)
    performers = ntu_performers(kind, size.performers)
    cameras = range(1, size.cameras + 1)
    total = len(performers) * size.replications * len(actions) * len(cameras)
    done = nbytes = frames = empty = 0
    for performer, setup in performers:
        geometry = _rng(seed, _SETUP, setup)
        distance, height, aim = (
            geometry.uniform(2.6, 3.4),
            geometry.uniform(0.7, 1.3),
            geometry.uniform(0.8, 1.1),
        )
        azimuths = np.array(NTU_CAMERA_AZIMUTHS) + geometry.normal(0, 3, 3)
        rig = ring_of_cameras(azimuths, distance, height, aim)
        for replication in range(1, size.replications + 1):
            for action in actions:
                key = (setup, performer, replication, action.ntu)
                take = _rng(seed, _TAKE, *key)
                facing = np.radians(azimuths[replication]) + take.normal(0, np.radians(12))
                center = np.array([take.normal(0, 0.25), 0.0, take.normal(0, 0.25)])
                people = perform(
                    action, take, size.frames, center, facing, _cast(seed, action, performer, key)
                )
                for camera in cameras:
                    name = f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action.ntu:03d}"
                    shot = _rng(seed, _CAMERA, *key, camera)
                    if name in missing:  # the real release has these files with no bodies
                        rec = Recording(people.shape[1], [])
                        empty += 1
                    else:
                        ordinal = (performer * 2 + replication) * 121 + action.ntu
                        session = int(_rng(seed, _SESSION, setup, camera).integers(2000, 20000))
                        sensor = Sensor(
                            rig[camera - 1],
                            shot,
                            BODY_ID_BASE + session + 40 * ordinal,
                            Artifacts(),
                        )
                        rec = sensor.record(people)
                    newline = "\r\n" if shot.random() < 0.5 else "\n"
                    nbytes += _write(out / f"{name}.skeleton", ntu_skeleton_text(rec, newline))
                    frames += rec.frame_count
                    done += 1
                    progress(done, total)
    return {
        "files": done,
        "bytes": nbytes,
        "frames": frames,
        "empty_files": empty,
        "performers": [p for p, _ in performers],
        "setups": sorted({s for _, s in performers}),
        "cameras": list(cameras),
        "replications": size.replications,
    }


# ---------------------------------------------------------------------- PKU-MMD
def pku_video_names(kind: str, size: SynthSize) -> list[tuple[str, int]]:
    """(video stem without view, subject number) per video."""
    out = []
    for i in range(size.videos):
        subject = i % size.performers + 1
        stem = (
            f"{i + 2:04d}" if kind == "pku1" else f"A{i // size.performers + 1:02d}N{subject:02d}"
        )
        out.append((stem, subject))
    return out


def _pku_sequence(rng: np.random.Generator, actions: list[Action]) -> list[Action]:
    """Every action, repeated to make at least 6 instances, shuffled; standing-up right after
    sitting-down when both occur."""
    pool = actions * -(-6 // len(actions))
    order = [pool[i] for i in rng.permutation(len(pool))]
    sits = [a for a in order if a.ntu == 8]
    stands = [a for a in order if a.ntu == 9]
    if sits and stands:
        order = [a for a in order if a.ntu != 9]
        for k in reversed([k for k, a in enumerate(order) if a.ntu == 8][: len(stands)]):
            order.insert(k + 1, stands.pop())
        order += stands
    return order


def _pku_timeline(
    rng: np.random.Generator,
    seed: int,
    version: int,
    video: int,
    subject: int,
    sequence: list[Action],
    frame_range: tuple[int, int],
    facing: float,
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """World joints (P, T, 25, 3) of a whole video and its label rows. Idle gaps blend the
    end of one action into the start of the next."""
    pieces, labels, cursor = [], [], 0
    previous = None
    for j, action in enumerate(sequence):
        take = _rng(seed, _INSTANCE, version, video, j)
        people = perform(
            action,
            take,
            frame_range,
            np.zeros(3),
            facing,
            _cast(seed, action, subject, (version, video, j)),
        )
        gap = int(rng.integers(15, 46))
        start = people[:, :1] if previous is None else previous
        w = ease(np.linspace(0, 1, gap + 2)[1:-1])[None, :, None, None]
        pieces.append(start * (1 - w) + people[:, :1] * w)
        cursor += gap
        pieces.append(people)
        confidence = 2 if rng.random() < 0.8 else 1
        labels.append((action.pku, cursor + 1, cursor + people.shape[1], confidence))
        cursor += people.shape[1]
        previous = people[:, -1:]
    pieces.append(np.repeat(previous, int(rng.integers(15, 46)), axis=1))
    return np.concatenate(pieces, axis=1), labels


def _write_pku(
    kind: str,
    out: Path,
    seed: int,
    size: SynthSize,
    actions: list[Action],
    progress: Callable[[int, int], None],
) -> dict[str, Any]:
    version = 1 if kind == "pku1" else 2
    views = list(PKU_VIEWS)[: size.cameras]
    singles = [a for a in actions if a.persons == 1]
    pairs = [a for a in actions if a.persons == 2]
    geometry = _rng(seed, _SETUP, 100 + version)
    distance, height, aim = (
        geometry.uniform(2.6, 3.2),
        geometry.uniform(0.8, 1.2),
        geometry.uniform(0.8, 1.1),
    )
    rig = dict(
        zip(
            PKU_VIEWS, ring_of_cameras(list(PKU_VIEWS.values()), distance, height, aim), strict=True
        )
    )
    videos = pku_video_names(kind, size)
    test_subjects = {s for s in range(1, size.performers + 1) if s % 3 == 2}
    split_names: dict[str, tuple[list[str], list[str]]] = {"xsub": ([], []), "xview": ([], [])}
    total = len(videos) * len(views)
    done = nbytes = frames = instances = 0
    for i, (stem, subject) in enumerate(videos):
        plan = _rng(seed, _VIDEO, version, i)
        two_person = bool(pairs) and (not singles or i % 3 == 2)
        sequence = _pku_sequence(plan, pairs if two_person else singles)
        facing = plan.normal(0, np.radians(15))
        world, labels = _pku_timeline(
            plan, seed, version, i, subject, sequence, size.frames, facing
        )
        instances += len(labels)
        for view in views:
            if version == 2 and view == "M" and i % 7 == 5:
                continue  # v2 lacks a few middle views
            name = f"{stem}-{view}"
            sensor = Sensor(
                rig[view], _rng(seed, _CAMERA, version, i, ord(view)), BODY_ID_BASE, PKU_ARTIFACTS
            )
            rec = sensor.record(world)
            nbytes += _write(out / "skeleton" / f"{name}.txt", pku_skeleton_text(dense_bodies(rec)))
            nbytes += _write(out / "label" / f"{name}.txt", pku_label_text(labels))
            split_names["xsub"][subject in test_subjects].append(name)
            split_names["xview"][view not in PKU_XVIEW_TRAIN].append(name)
            frames += rec.frame_count
            done += 1
            progress(done, total)
    for bench, (train, test) in split_names.items():
        nbytes += _write(
            out / "split" / PKU_SPLIT_FILES[version][bench], pku_split_text(train, test)
        )
    return {
        "files": done,
        "bytes": nbytes,
        "frames": frames,
        "videos": len(videos),
        "views": views,
        "action_instances": instances,
        "performers": list(range(1, size.performers + 1)),
        "splits": {b: {"train": len(tr), "test": len(te)} for b, (tr, te) in split_names.items()},
    }
