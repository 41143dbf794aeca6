"""NTU benchmarks against the split sizes every paper reports (SPEC 1.2)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from skelctl.data.formats import parse_ntu_name
from skelctl.data.splits import (
    in_ntu60,
    load_missing_list,
    ntu_benchmarks,
    ntu_class_names,
    ntu_split_masks,
)
from skelctl.errors import SkelctlError


@pytest.fixture(scope="module")
def available() -> tuple[list[str], np.ndarray]:
    """The 113,945 NTU120 samples that have skeletons, and their (S, C, P, R, A) numbers."""
    text = resources.files("skelctl.resources").joinpath("ntu120_available_samples.txt")
    names = text.read_text().split()
    fields = np.frombuffer("".join(names).encode(), np.uint8).reshape(len(names), 20)
    digits = fields.astype(np.int64) - 48
    numbers = np.stack([digits[:, k] * 100 + digits[:, k + 1] * 10 + digits[:, k + 2]
                        for k in (1, 5, 9, 13, 17)], axis=1)
    return names, numbers


def test_available_list_is_the_dataset(available):
    names, numbers = available
    assert len(names) == 113_945 == len(set(names))
    for k in (0, 777, len(names) - 1):  # the vectorised decoding above agrees with the parser
        assert tuple(numbers[k]) == tuple(parse_ntu_name(names[k]))
    missing = load_missing_list("ntu120")
    assert not missing & set(names)
    assert len(missing) + len(names) == 114_480


@pytest.mark.parametrize("kind, sizes", [
    ("ntu60", {"xsub": (40_091, 16_487), "xview": (37_646, 18_932)}),
    ("ntu120", {"xsub": (63_026, 50_919), "xset": (54_468, 59_477)}),
])
def test_split_sizes_match_the_papers(available, kind, sizes):
    names, numbers = available
    if kind == "ntu60":
        keep = (numbers[:, 0] <= 17) & (numbers[:, 4] <= 60)
        assert keep.sum() == 56_578
        assert all(in_ntu60(names[k]) == keep[k] for k in range(0, len(names), 101))
        numbers = numbers[keep]
    setups, cameras, performers = numbers[:, 0], numbers[:, 1], numbers[:, 2]
    masks = ntu_split_masks(kind, performers, cameras, setups)
    assert tuple(masks) == ntu_benchmarks(kind)
    assert {b: (int(m.sum()), int((~m).sum())) for b, m in masks.items()} == sizes


def test_benchmarks_and_kinds():
    assert ntu_benchmarks("ntu60") == ("xsub", "xview")
    assert ntu_benchmarks("ntu120") == ("xsub", "xset")
    with pytest.raises(SkelctlError, match="unknown NTU dataset"):
        ntu_benchmarks("ntu90")
    with pytest.raises(SkelctlError, match="shape"):
        ntu_split_masks("ntu60", [1, 2], [1], [1, 2])


def test_split_rules_on_single_samples():
    masks = ntu_split_masks("ntu120", [1, 3, 103, 106], [1, 2, 3, 1], [2, 3, 32, 31])
    np.testing.assert_array_equal(masks["xsub"], [True, False, True, False])
    np.testing.assert_array_equal(masks["xset"], [True, False, True, False])
    np.testing.assert_array_equal(ntu_split_masks("ntu60", [1], [1], [1])["xview"], [False])
    np.testing.assert_array_equal(ntu_split_masks("ntu60", [45], [3], [1])["xsub"], [False])


def test_missing_lists():
    ntu60, ntu120 = load_missing_list("ntu60"), load_missing_list("ntu120")
    assert len(ntu60) == 302 and len(ntu120) == 535
    assert ntu60 < ntu120
    assert "S001C002P005R002A008" in ntu60


def test_custom_missing_list(tmp_path):
    path = tmp_path / "missing.txt"
    path.write_text("header line\n\nS001C001P001R001A001\r\n  S002C003P004R001A005.skeleton \n"
                    "S1C1P1R1A1\n")
    assert load_missing_list("ntu60", path) == {"S001C001P001R001A001", "S002C003P004R001A005"}
    with pytest.raises(SkelctlError, match="cannot read"):
        load_missing_list("ntu60", tmp_path / "nowhere.txt")


def test_class_names():
    ntu60, ntu120 = ntu_class_names("ntu60"), ntu_class_names("ntu120")
    assert len(ntu60) == 60 and len(ntu120) == 120
    assert ntu120[:60] == ntu60
    assert ntu60[0] == "drink water"
    assert ntu60[57] == "handshaking"  # A058, the two-person fixture


def test_in_ntu60():
    assert in_ntu60("S017C003P020R002A055.skeleton")
    assert in_ntu60(parse_ntu_name("S001C001P001R001A060"))
    assert not in_ntu60("S018C001P001R001A001")
    assert not in_ntu60("S001C001P001R001A061")
