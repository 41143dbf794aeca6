"""Any skeleton dataset given as arrays: `skelctl preprocess custom RAW --layout NAME|FILE`.

RAW is a folder holding
- `labels.csv`: header `name,label` plus optional `subject`, `view`, `split` columns; one row
  per sample, in the order the dataset keeps;
- `<name>.npy` per sample, or one `.npz` archive whose keys are the names: shape (T, V, C) or
  (T, M, V, C) with M <= 2 bodies, V the layout's joints, C = 3 (or 2 for 2-D pose);
- optionally `classes.csv` (header `label,name`): the class list. Without it the classes are
  the labels that occur (integer ids sorted, or class names sorted).
Every defect of a sample is a rejection pointing at its `labels.csv` line. The benchmark is the
`split` column when given, else a seeded subject split (`xsub`) when subjects are given, else a
seeded class-stratified 80/20 split (`random`); see docs/layouts.md.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skelctl.data.clipfile import shape_problem, to_clip
from skelctl.data.layout import Layout, get_layout
from skelctl.data.npy import read_header, read_npy
from skelctl.data.sources.base import (
    Clip,
    Parsed,
    PreprocessOptions,
    RawFile,
    SourcePlan,
    cached_layout,
    normalise_clip,
    train_test,
)
from skelctl.errors import Rejection, SkelctlError

SPLIT_SEED = 0  # the seeded `xsub` and `random` benchmarks are the same on every machine
TRAIN_FRACTION = 0.8
LABELS_FILE = "labels.csv"
CLASSES_FILE = "classes.csv"
LABEL_COLUMNS = ("name", "label", "subject", "view", "split")
SPLIT_VALUES = ("train", "test")
Resolver = Callable[[str], "int | str"]  # a label cell -> raw class id, or why it is unknown


# ---------------------------------------------------------------- the custom source


@dataclass(frozen=True)
class ArrayTask:
    file: RawFile  # `<name>.npy`, or the member `<name>.npy` of the .npz archive
    name: str
    action: int  # raw class id (the label map makes it dense)
    subject: int
    camera: int
    labels_file: str
    line: int  # of the sample's row in labels.csv: every rejection points there
    layout: str


@dataclass(frozen=True)
class _Row:
    line: int
    name: str
    label: str
    subject: int
    camera: int
    split: str


def _parse_array(task: ArrayTask, options: PreprocessOptions) -> Parsed:
    try:
        joints = to_clip(read_npy(task.file.read()), cached_layout(task.layout))
    except SkelctlError as exc:
        raise SkelctlError(f"{task.file.display}: {exc.reason}", task.labels_file, task.line) from exc
    clip = Clip(
        name=task.name,
        joints=normalise_clip(joints, options, task.layout),
        action=task.action,
        subject=task.subject,
        camera=task.camera,
        video=task.name,
    )
    return Parsed(clips=[clip])


def custom_plan(raw: Path, options: PreprocessOptions) -> SourcePlan:
    if options.layout is None:
        raise SkelctlError("custom needs --layout NAME|FILE (ntu25, kinect20 or a YAML layout file)")
    layout = get_layout(options.layout)
    if not raw.is_dir():
        raise SkelctlError(f"expected a folder holding {LABELS_FILE} and the arrays", raw)
    labels_path = raw / LABELS_FILE
    if not labels_path.is_file():
        raise SkelctlError(f"no {LABELS_FILE} (header name,label[,subject][,view][,split])", raw)
    rows, columns, rejected = _read_labels(labels_path)
    classes = _read_classes(raw / CLASSES_FILE) if (raw / CLASSES_FILE).is_file() else None
    class_names, label_map, resolve = _class_table(rows, classes)
    with _ArraySource(raw) as arrays:
        accepted, channels = _check_arrays(arrays, rows, resolve, layout, labels_path, rejected)
        excluded = {"not_in_labels_csv": arrays.unused({row.name for row in rows})}
    rejected.sort(key=lambda r: r.line)  # labels.csv order: --strict stops at the first bad row
    if channels == 2 and options.align:
        raise SkelctlError("--align rotates 3-D skeletons; this dataset is 2-D (C = 2)", raw)
    split_of = {row.name: row.split for row, _, _ in accepted}
    tasks = [
        ArrayTask(file, row.name, action, row.subject, row.camera, str(labels_path), row.line,
                  options.layout)
        for row, action, file in accepted
    ]

    def splits(clips: Sequence[Clip]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if "split" in columns:
            is_train = np.array([split_of[c.name] == "train" for c in clips], bool)
            return {"split": train_test(is_train)}
        subjects = np.array([c.subject for c in clips], np.int64)
        if "subject" in columns and len(np.unique(subjects)) >= 2:
            return {"xsub": subject_split(subjects)}
        return {"random": stratified_split(np.array([c.action for c in clips], np.int64))}

    return SourcePlan(
        layout=options.layout,
        class_names=class_names,
        label_map=label_map,
        tasks=tasks,
        parse=_parse_array,
        splits=splits,
        rejected=rejected,
        excluded=excluded,
        channels=channels,
    )


def _check_arrays(
    arrays: _ArraySource, rows: list[_Row], resolve: Resolver, layout: Layout, labels_path: Path,
    rejected: list[Rejection],
) -> tuple[list[tuple[_Row, int, RawFile]], int]:
    """Rows whose label resolves and whose array header fits the layout, and the dataset's C.

    The first usable sample sets C; a later sample with the other C is rejected, not converted.
    """
    accepted: list[tuple[_Row, int, RawFile]] = []
    first: tuple[int, _Row] | None = None  # (C, the row that set it)
    for row in rows:
        action = resolve(row.label)
        if isinstance(action, str):
            rejected.append(Rejection(str(labels_path), row.line, action))
            continue
        file, channels, problem = _array_problem(arrays, row.name, layout)
        if not problem and first is not None and channels != first[0]:
            problem = (f"{file.display}: {channels} coordinates per joint, but line "
                       f"{first[1].line} ({first[1].name}) set the dataset to {first[0]}")
        if problem:
            rejected.append(Rejection(str(labels_path), row.line, problem))
            continue
        first = first or (channels, row)
        accepted.append((row, action, file))
    return accepted, 3 if first is None else first[0]


def _array_problem(arrays: _ArraySource, name: str, layout: Layout) -> tuple[RawFile, int, str]:
    """The sample's file, its C, and why it cannot be used ('' when it can)."""
    file = arrays.find(name)
    if file is None:
        return RawFile(name, 0), 0, arrays.missing(name)
    try:
        shape, dtype = arrays.header(file)
    except SkelctlError as exc:
        return file, 0, f"{file.display}: {exc.reason}"
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        return file, 0, f"{file.display}: not a readable .npy array ({exc})"
    problem = shape_problem(shape, dtype, layout)
    return file, shape[-1] if shape else 0, problem and f"{file.display}: {problem}"



# ---------------------------------------------------------------- seeded benchmarks


def _train_count(n: int) -> int:
    """round(80%) of n, leaving at least one for test and one for train when n >= 2."""
    return n if n < 2 else min(max(round(TRAIN_FRACTION * n), 1), n - 1)


def subject_split(subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Train on a seeded 80% of the subjects (at least one each side), test on the rest."""
    unique = np.unique(subjects)
    order = np.random.default_rng(SPLIT_SEED).permutation(unique)
    is_train = np.isin(subjects, order[: _train_count(len(unique))])
    return np.flatnonzero(is_train), np.flatnonzero(~is_train)


def stratified_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A seeded 80/20 split of every class (a class with one sample goes to train)."""
    rng = np.random.default_rng(SPLIT_SEED)
    is_train = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        is_train[members[: _train_count(len(members))]] = True
    return np.flatnonzero(is_train), np.flatnonzero(~is_train)


# ---------------------------------------------------------------- labels.csv, classes.csv


def _csv_rows(path: Path, required: Sequence[str], allowed: Sequence[str]) -> tuple[list[str], csv.reader]:
    """Open a CSV file, check its header; return the header and a reader over the rows."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SkelctlError(f"unreadable ({exc})", path) from exc
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    for key in required:
        if key not in header:
            raise SkelctlError(f"missing column '{key}' (header must start {','.join(required)})", path, 1)
    for key in header:
        if key not in allowed:
            raise SkelctlError(f"unknown column '{key}' (expected {', '.join(allowed)})", path, 1)
        if header.count(key) > 1:
            raise SkelctlError(f"column '{key}' appears twice", path, 1)
    return header, reader


def _read_labels(path: Path) -> tuple[list[_Row], list[str], list[Rejection]]:
    header, reader = _csv_rows(path, ("name", "label"), LABEL_COLUMNS)
    rows: list[_Row] = []
    rejected: list[Rejection] = []
    first_line: dict[str, int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        try:
            row = _label_row(dict(zip(header, (c.strip() for c in cells), strict=False)), header, cells, line)
            if row.name in first_line:
                raise SkelctlError(f"duplicate name '{row.name}' (first at line {first_line[row.name]})")
        except SkelctlError as exc:
            rejected.append(Rejection(str(path), line, exc.reason))
            continue
        first_line[row.name] = line
        rows.append(row)
    if not rows and not rejected:
        raise SkelctlError("no sample rows after the header", path)
    return rows, header, rejected


def _label_row(values: dict[str, str], header: list[str], cells: list[str], line: int) -> _Row:
    if len(cells) != len(header):
        raise SkelctlError(f"{len(cells)} cells, expected {len(header)} ({','.join(header)})")
    name = values["name"]
    if not name or name in (".", "..") or any(ch in name for ch in "/\\"):
        raise SkelctlError(f"name {name!r}: expected a file name without .npy (no / or \\)")
    if not values["label"]:
        raise SkelctlError("empty label")
    split = values.get("split", "")
    if "split" in header and split not in SPLIT_VALUES:
        raise SkelctlError(f"split {split!r}: expected train or test")
    return _Row(line, name, values["label"], _meta_int(values, "subject"), _meta_int(values, "view"), split)


def _meta_int(values: dict[str, str], key: str) -> int:
    """A subject/view id (stored as int16, -1 meaning unknown); required when the column exists."""
    if key not in values:
        return -1
    text = values[key]
    if not text.isdigit() or int(text) > np.iinfo(np.int16).max:
        raise SkelctlError(f"{key} {text!r}: expected an integer id 0..{np.iinfo(np.int16).max}")
    return int(text)


def _read_classes(path: Path) -> list[tuple[int, str]]:
    header, reader = _csv_rows(path, ("label", "name"), ("label", "name"))
    classes: list[tuple[int, str]] = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        values = dict(zip(header, (c.strip() for c in cells), strict=False))
        label, name = _as_int(values.get("label", "")), values.get("name", "")
        where = (path, reader.line_num)
        if len(cells) != 2 or label is None or not name:
            raise SkelctlError("expected an integer label and a class name", *where)
        if any(label == k or name == n for k, n in classes):
            raise SkelctlError(f"class {label} / {name!r} is listed twice", *where)
        classes.append((label, name))
    if not classes:
        raise SkelctlError("no class rows after the header", path)
    return classes


def _as_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _class_table(
    rows: list[_Row], classes: list[tuple[int, str]] | None
) -> tuple[list[str], list[int], Resolver]:
    """Class names, label map (dense -> raw id) and `resolve(label) -> raw id | reason`.

    With classes.csv a label is one of its ids or names. Without, the labels that occur are the
    classes: integer ids when every label is an integer (names = the ids), else class names
    (sorted, raw id = dense index); an integer among names is then ambiguous and rejected.
    """
    if classes is not None:
        ids = {name: label for label, name in classes}
        known = {label for label, _ in classes}
        listed = ", ".join(n for _, n in classes[:5]) + (", ..." if len(classes) > 5 else "")

        def resolve(label: str) -> int | str:
            as_id = _as_int(label)
            if as_id is not None and as_id in known:
                return as_id
            return ids.get(label, f"unknown label {label!r} ({CLASSES_FILE} has {listed})")

        return [n for _, n in classes], [k for k, _ in classes], resolve
    labels = [row.label for row in rows]
    if labels and all(_as_int(label) is not None for label in labels):
        ids = sorted({int(label) for label in labels})
        return [str(i) for i in ids], ids, int
    names = sorted({label for label in labels if _as_int(label) is None})
    index = {name: i for i, name in enumerate(names)}

    def resolve_name(label: str) -> int | str:
        if label in index:
            return index[label]
        return (f"label {label!r} is an integer but other labels are class names: "
                f"add {CLASSES_FILE} (label,name) to say which class it is")

    return names, list(range(len(names))), resolve_name


# ---------------------------------------------------------------- where the arrays are


class _ArraySource:
    """`<name>.npy` files in RAW, or the members of the single .npz archive there.

    A context manager: the archive stays open while the plan reads every member's header.
    """

    def __init__(self, raw: Path):
        archives = sorted(p for p in raw.iterdir() if p.suffix == ".npz" and p.is_file())
        self.npy = {p.stem: p for p in raw.iterdir() if p.suffix == ".npy" and p.is_file()}
        if len(archives) > 1:
            raise SkelctlError(f"{len(archives)} .npz archives; expected one (or .npy files)", raw)
        if archives and self.npy:
            raise SkelctlError("both .npy files and an .npz archive; keep one of them", raw)
        self.raw = raw
        self.archive = archives[0] if archives else None
        self.zip: zipfile.ZipFile | None = None
        self.members: dict[str, zipfile.ZipInfo] = {}
        if self.archive is not None:
            try:
                self.zip = zipfile.ZipFile(self.archive)
            except (zipfile.BadZipFile, OSError) as exc:
                raise SkelctlError(f"not a readable .npz archive ({exc})", self.archive) from exc
            self.members = {
                i.filename[: -len(".npy")]: i for i in self.zip.infolist() if i.filename.endswith(".npy")
            }

    def __enter__(self) -> _ArraySource:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.zip is not None:
            self.zip.close()

    def find(self, name: str) -> RawFile | None:
        if self.archive is not None:
            info = self.members.get(name)
            return None if info is None else RawFile(info.filename, info.file_size, str(self.archive))
        path = self.npy.get(name)
        return None if path is None else RawFile(str(path), path.stat().st_size)

    def missing(self, name: str) -> str:
        if self.archive is not None:
            return f"no array '{name}' in {self.archive}"
        return f"no file {self.raw / (name + '.npy')}"

    def unused(self, named: set[str]) -> int:
        """Arrays that labels.csv does not name (not samples: skipped, counted)."""
        return sum(name not in named for name in (self.members if self.archive else self.npy))

    def header(self, file: RawFile) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype from the validated .npy header only (`read_header`: the data it
        claims must be in the file): every sample is checked without loading it."""
        if self.zip is None:
            with open(file.member, "rb") as f:
                header = read_header(f, os.fstat(f.fileno()).st_size)
        else:
            with self.zip.open(file.member) as f:
                header = read_header(f, file.size)
        return header.shape, header.dtype
