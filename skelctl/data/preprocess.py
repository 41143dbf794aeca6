"""Raw skeleton files -> one dataset file (SPEC sections 1-2).

A *source* (`skelctl.data.sources`) turns RAW into a plan: one task per raw file, a `parse`
function that turns a task into clips, and the dataset's classes and benchmarks. Worker
processes read, parse, denoise and normalise; the parent writes clips in plan order, so the
file is the same for any worker count.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from skelctl.data.layout import get_layout
from skelctl.data.parallel import ordered_map, start_server
from skelctl.data.sources import source_for
from skelctl.data.sources.base import Clip, Parsed, PreprocessOptions, SourcePlan
from skelctl.errors import Rejection, RuntimeFailure, SkelctlError

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
    layout = get_layout(plan.layout)
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
