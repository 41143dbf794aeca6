"""NTU RGB+D benchmarks (SPEC 1.2): subject/camera/setup splits, missing-skeleton lists, classes.

Papers compare numbers only on the official splits, so they live here once, as data, and are
checked in the tests against the split sizes every paper reports.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np

from skelctl.data.formats import NtuName, parse_ntu_name
from skelctl.errors import SkelctlError

NTU_KINDS = ("ntu60", "ntu120")
NTU60_MAX_SETUP = 17
NTU60_MAX_ACTION = 60
NTU60_XSUB_TRAIN = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
NTU120_XSUB_TRAIN = NTU60_XSUB_TRAIN + (
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86,
    89, 91, 92, 93, 94, 95, 97, 98, 100, 103,
)
XVIEW_TRAIN_CAMERAS = (2, 3)
_BENCHMARKS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset")}
_MISSING_FILES = {
    "ntu60": "NTU_RGBD_samples_with_missing_skeletons.txt",
    "ntu120": "NTU_RGBD120_samples_with_missing_skeletons.txt",
}
_CLASS_FILES = {"ntu60": "ntu60_classes.txt", "ntu120": "ntu120_classes.txt"}
_SAMPLE_ID = re.compile(r"S\d{3}C\d{3}P\d{3}R\d{3}A\d{3}")


def ntu_benchmarks(kind: str) -> tuple[str, ...]:
    """The benchmarks papers report for an NTU dataset: ("xsub", "xview") or ("xsub", "xset")."""
    return _BENCHMARKS[_check_kind(kind)]


def ntu_split_masks(
    kind: str, performers: np.ndarray, cameras: np.ndarray, setups: np.ndarray
) -> dict[str, np.ndarray]:
    """{benchmark: bool mask, True = train} over samples given by their performer, camera and
    setup numbers (arrays of equal length), so a whole dataset is split in a few operations."""
    kind = _check_kind(kind)
    performers, cameras, setups = (np.asarray(a) for a in (performers, cameras, setups))
    if not performers.shape == cameras.shape == setups.shape:
        raise SkelctlError(
            f"performers, cameras and setups differ in shape: "
            f"{performers.shape}, {cameras.shape}, {setups.shape}"
        )
    subjects = NTU60_XSUB_TRAIN if kind == "ntu60" else NTU120_XSUB_TRAIN
    masks = {"xsub": np.isin(performers, subjects)}
    if kind == "ntu60":
        masks["xview"] = np.isin(cameras, XVIEW_TRAIN_CAMERAS)
    else:
        masks["xset"] = setups % 2 == 0
    return masks


def in_ntu60(name: str | Path | NtuName) -> bool:
    """Whether a sample belongs to NTU RGB+D 60 (setups 1-17, actions 1-60), the subset NTU60
    experiments must keep from an NTU120 download."""
    parsed = name if isinstance(name, NtuName) else parse_ntu_name(name)
    return parsed.setup <= NTU60_MAX_SETUP and parsed.action <= NTU60_MAX_ACTION


def load_missing_list(kind: str, path: str | Path | None = None) -> set[str]:
    """Sample IDs with missing or incomplete skeletons, which the official protocol excludes:
    the list shipped with skelctl, or the file at `path` (lines that are not IDs are ignored)."""
    kind = _check_kind(kind)
    if path is None:
        text = _resource_text(_MISSING_FILES[kind])
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SkelctlError(f"cannot read the missing-skeleton list ({exc})", path) from exc
    return {
        line.strip().removesuffix(".skeleton")
        for line in text.splitlines()
        if _SAMPLE_ID.fullmatch(line.strip().removesuffix(".skeleton"))
    }


def ntu_class_names(kind: str) -> list[str]:
    """Class names in label order (label = action - 1), for reports and the dataset attrs."""
    kind = _check_kind(kind)
    names = []
    for line in _resource_text(_CLASS_FILES[kind]).splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        number, name = line.split("\t", 1)
        if int(number) != len(names) + 1:
            raise SkelctlError(f"class list out of order at {number}", _CLASS_FILES[kind])
        names.append(name.strip())
    return names


def _check_kind(kind: str) -> str:
    if kind not in NTU_KINDS:
        raise SkelctlError(f"unknown NTU dataset {kind!r} (expected {' or '.join(NTU_KINDS)})")
    return kind


def _resource_text(name: str) -> str:
    return resources.files("skelctl.resources").joinpath(name).read_text(encoding="utf-8")
