"""`preprocess` on the real fixtures: contents, NTU scopes and splits, zips, workers, missing
lists, PKU label rows and splits, and bad input (recorded, strict, fatal)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from helpers import ntu_raw

from skelctl.data import formats, parallel, store
from skelctl.data.denoise import select_bodies
from skelctl.data.formats import read_ntu_skeleton
from skelctl.data.layout import get_layout
from skelctl.data.normalize import align_view, center_on_joint
from skelctl.data.preprocess import PreprocessOptions, preprocess
from skelctl.data.sources import SOURCES
from skelctl.data.sources.base import Clip, Parsed, SourcePlan, find_raw_files
from skelctl.data.store import open_dataset
from skelctl.errors import RuntimeFailure, SkelctlError

LAYOUT = get_layout("ntu25")
NTU60_XSUB_TRAIN = {1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38}
PKU_VIDEO = "A10N08-L"
PKU_FRAMES = 1040


def fields(name: str) -> dict[str, int]:
    return {key: int(name[i + 1 : i + 4]) for i, key in zip(range(0, 20, 4), "SCPRA", strict=True)}


def dataset_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array in a dataset file, plus its attributes except the creation time."""
    arrays = {}
    with h5py.File(path) as f:
        f.visititems(
            lambda key, obj: (
                arrays.__setitem__(key, obj[...]) if isinstance(obj, h5py.Dataset) else None
            )
        )
        arrays.update({f"@{k}": v for k, v in f.attrs.items() if k != "created"})
    return arrays


def assert_same_dataset(a: Path, b: Path) -> None:
    left, right = dataset_arrays(a), dataset_arrays(b)
    assert left.keys() == right.keys()
    for key in left:
        np.testing.assert_array_equal(left[key], right[key], err_msg=key)


@pytest.fixture(scope="module")
def ntu60(shared_fixtures, tmp_path_factory):
    """The 11 real NTU fixtures preprocessed once with the defaults (1 worker)."""
    tmp = tmp_path_factory.mktemp("ntu60")
    raw = ntu_raw(shared_fixtures, tmp / "raw")
    summary = preprocess("ntu60", raw, tmp / "ntu60.h5", PreprocessOptions(workers=1))
    return raw, tmp / "ntu60.h5", summary


def test_ntu_contents_match_the_parts(ntu60):
    raw, out, summary = ntu60
    stems = sorted(p.stem for p in raw.iterdir())
    with open_dataset(out) as ds:
        assert ds.kind == "ntu60" and ds.names == stems and len(ds.class_names) == 60
        assert ds.class_names[0] == "drink water" and ds.label_map == list(range(1, 61))
        assert ds.labels.tolist() == [fields(n)["A"] - 1 for n in stems]
        for column, key in [
            ("subject", "P"),
            ("camera", "C"),
            ("setup", "S"),
            ("replication", "R"),
        ]:
            assert ds.meta(column).tolist() == [fields(n)[key] for n in stems]
        assert ds.options["bodies"] == "denoise" and ds.options["center"] is True
        assert ds.rejected == []
        for i, name in enumerate(stems):
            expected = center_on_joint(
                select_bodies(read_ntu_skeleton(raw / f"{name}.skeleton"), "denoise"), LAYOUT
            )
            np.testing.assert_array_equal(ds.clip(i), expected.astype(np.float32), err_msg=name)
        assert ds.lengths[stems.index("S001C001P001R001A001")] == 103
        assert summary["samples"] == 11 and summary["rejected"] == 0 and summary["files"] == 11


@pytest.mark.parametrize(
    "options, expected",
    [
        (
            dict(bodies="energy", align=True),
            lambda x: align_view(center_on_joint(x, LAYOUT), LAYOUT),
        ),
        (dict(bodies="first", center=False), lambda x: x),
    ],
)
def test_body_and_normalisation_options_reach_the_clips(ntu60, tmp_path, options, expected):
    raw, _, _ = ntu60
    preprocess("ntu60", raw, tmp_path / "o.h5", PreprocessOptions(workers=1, **options))
    with open_dataset(tmp_path / "o.h5") as ds:
        assert {k: ds.options[k] for k in options} == options
        for i, name in enumerate(ds.names):
            bodies = select_bodies(read_ntu_skeleton(raw / f"{name}.skeleton"), options["bodies"])
            np.testing.assert_array_equal(
                ds.clip(i), expected(bodies).astype(np.float32), err_msg=name
            )


def test_ntu60_benchmarks_follow_subjects_and_cameras(ntu60):
    _, out, summary = ntu60
    with open_dataset(out) as ds:
        assert ds.benchmarks == ["xsub", "xview"]
        names = np.array(ds.names)
        xsub_train = {n for n in ds.names if fields(n)["P"] in NTU60_XSUB_TRAIN}
        xview_train = {n for n in ds.names if fields(n)["C"] in (2, 3)}
        assert set(names[ds.split("xsub", "train")]) == xsub_train
        assert set(names[ds.split("xsub", "test")]) == set(ds.names) - xsub_train
        assert set(names[ds.split("xview", "train")]) == xview_train
        assert set(names[ds.split("xview", "test")]) == set(ds.names) - xview_train
        # fixtures: performers 1, 8, 15 are xsub-train; 3 and 20 test; cameras 3 train, 1 test
        assert len(xsub_train) == 8 and len(xview_train) == 3
    assert summary["splits"] == {"xsub": {"train": 8, "test": 3}, "xview": {"train": 3, "test": 8}}


def test_ntu60_keeps_only_its_setups_and_actions(shared_fixtures, tmp_path):
    raw = ntu_raw(shared_fixtures, tmp_path / "raw")
    source = raw / "S001C001P001R001A001.skeleton"
    shutil.copy(source, raw / "S018C001P001R001A001.skeleton")
    shutil.copy(source, raw / "S001C001P001R001A061.skeleton")
    s60 = preprocess("ntu60", raw, tmp_path / "60.h5", PreprocessOptions(workers=1))
    s120 = preprocess("ntu120", raw, tmp_path / "120.h5", PreprocessOptions(workers=1))
    assert s60["samples"] == 11 and s60["excluded"]["not_in_ntu60"] == 2
    assert s120["samples"] == 13
    with open_dataset(tmp_path / "60.h5") as ds60, open_dataset(tmp_path / "120.h5") as ds120:
        assert not {"S018C001P001R001A001", "S001C001P001R001A061"} & set(ds60.names)
        assert ds120.labels[ds120.names.index("S001C001P001R001A061")] == 60
        assert ds120.benchmarks == ["xset", "xsub"] and len(ds120.class_names) == 120
        xset_train = set(np.array(ds120.names)[ds120.split("xset", "train")])
        assert xset_train == {n for n in ds120.names if fields(n)["S"] % 2 == 0}


def test_zip_archives_give_the_folder_output(ntu60, tmp_path):
    raw, folder_out, _ = ntu60
    files = sorted(raw.iterdir())
    single = tmp_path / "nturgbd_skeletons_s001_to_s017.zip"
    with zipfile.ZipFile(single, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, f"nturgb+d_skeletons/{path.name}")
    preprocess("ntu60", single, tmp_path / "zip.h5", PreprocessOptions(workers=1))
    assert_same_dataset(folder_out, tmp_path / "zip.h5")

    several = tmp_path / "archives"
    several.mkdir()
    for k, chunk in enumerate((files[::2], files[1::2])):
        with zipfile.ZipFile(several / f"part{k}.zip", "w") as archive:
            for path in chunk:
                archive.write(path, f"nturgb+d_skeletons/{path.name}")
    preprocess("ntu60", several, tmp_path / "zips.h5", PreprocessOptions(workers=2))
    assert_same_dataset(folder_out, tmp_path / "zips.h5")


def test_worker_count_does_not_change_the_file(ntu60, tmp_path):
    raw, one_worker, _ = ntu60
    summary = preprocess("ntu60", raw, tmp_path / "w2.h5", PreprocessOptions(workers=2))
    assert summary["workers"] == 2
    assert_same_dataset(one_worker, tmp_path / "w2.h5")


def test_without_the_c_speedups_the_file_is_the_same(ntu60, tmp_path, monkeypatch):
    """The numpy reader and HDF5's own compression make the same dataset as the C extension."""
    raw, with_c, _ = ntu60
    assert formats._speedups is not None and store._speedups is not None, (
        "the C extension skelctl.data._speedups is not built: run `pip install -e .`")
    monkeypatch.setattr(formats, "_speedups", None)
    monkeypatch.setattr(store, "_speedups", None)
    preprocess("ntu60", raw, tmp_path / "plain.h5", PreprocessOptions(workers=1))
    assert_same_dataset(with_c, tmp_path / "plain.h5")


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_batches_for_workers_keep_the_order_and_their_limits(workers):
    sizes = [1 << 20] * 40 + [9 << 20] + [1 << 10] * 300
    batches = list(parallel.batches(sizes, workers))
    assert [i for batch in batches for i in batch] == list(range(len(sizes)))
    most = min(parallel.BATCH_FILES, len(sizes) // (4 * workers))
    for batch in batches:
        assert 0 < len(batch) <= most
        assert sum(sizes[i] for i in batch[:-1]) < parallel.BATCH_BYTES
    assert len(batches) >= 4 * workers


def test_missing_list_applied_overridden_disabled(shared_fixtures, tmp_path):
    raw = ntu_raw(shared_fixtures, tmp_path / "raw")
    shutil.copy(raw / "S001C001P001R001A001.skeleton", raw / "S001C002P005R002A008.skeleton")
    official = preprocess("ntu60", raw, tmp_path / "a.h5", PreprocessOptions(workers=1))
    assert official["excluded"]["missing_skeleton_list"] == 1 and official["samples"] == 11

    custom = tmp_path / "missing.txt"
    custom.write_text("my header line\n\nS001C001P001R001A002\nS017C003P020R002A055\n")
    overridden = preprocess(
        "ntu60", raw, tmp_path / "b.h5", PreprocessOptions(workers=1, missing_list=str(custom))
    )
    assert overridden["excluded"]["missing_skeleton_list"] == 2 and overridden["samples"] == 10
    with open_dataset(tmp_path / "b.h5") as ds:
        assert "S001C001P001R001A002" not in ds.names and "S001C002P005R002A008" in ds.names

    kept = preprocess(
        "ntu60", raw, tmp_path / "c.h5", PreprocessOptions(workers=1, keep_missing=True)
    )
    assert kept["excluded"]["missing_skeleton_list"] == 0 and kept["samples"] == 12


def test_other_modules_can_register_kinds(shared_fixtures, tmp_path, monkeypatch):
    """The extension point nwucla/custom use: a plan with its own classes, splits and C = 2."""
    raw = ntu_raw(shared_fixtures, tmp_path / "raw")

    def toy_plan(raw_path: Path, options: PreprocessOptions) -> SourcePlan:
        files, rejected = find_raw_files(raw_path, ".skeleton")
        return SourcePlan(
            layout="ntu25",
            class_names=["x", "y"],
            label_map=[7, 9],
            tasks=[SimpleNamespace(file=f) for f in files[:3]],
            parse=lambda task, options: Parsed(
                clips=[Clip(task.file.stem, np.full((4, 2, 25, 2), 0.5, np.float32), action=9)]
            ),
            splits=lambda clips: {"all": (np.arange(len(clips)), np.zeros(0, np.int64))},
            rejected=rejected,
            channels=2,
        )

    monkeypatch.setitem(SOURCES, "toy", toy_plan)
    summary = preprocess(
        "toy", raw, tmp_path / "toy.h5", PreprocessOptions(workers=1, center=False)
    )
    assert summary["samples"] == 3 and summary["splits"] == {"all": {"train": 3, "test": 0}}
    with open_dataset(tmp_path / "toy.h5") as ds:
        assert ds.labels.tolist() == [1, 1, 1] and ds.label_map == [7, 9]
        assert ds.clip(0).shape == (4, 2, 25, 2)
    with pytest.raises(SkelctlError, match="layout"):
        preprocess("toy", raw, tmp_path / "toy.h5", PreprocessOptions(layout="kinect20"))


# ---------------------------------------------------------------- PKU-MMD


def pku_raw_frames(shared_fixtures: Path) -> np.ndarray:
    """The fixture parsed independently of skelctl: one line per frame, 150 floats."""
    return np.loadtxt(shared_fixtures / "pku" / f"{PKU_VIDEO}.txt", dtype=np.float32).reshape(
        -1, 2, 25, 3
    )


def pku_setup(
    shared_fixtures: Path, tmp_path: Path, rows: list[str], splits: bool = True
) -> tuple[Path, Path, Path]:
    raw, labels, split_dir = tmp_path / "skeletons", tmp_path / "labels", tmp_path / "split"
    for folder in (raw, labels, split_dir):
        folder.mkdir()
    shutil.copy(shared_fixtures / "pku" / f"{PKU_VIDEO}.txt", raw)
    (labels / f"{PKU_VIDEO}.txt").write_text("\n".join(rows) + "\n")
    if splits:
        (split_dir / "cross_subject_v2.txt").write_text(
            f"Training videos: \n{PKU_VIDEO}, A01N01-M\nValidataion videos: \nA01N02-L\n"
        )
        (split_dir / "cross_view_v2.txt").write_text(
            f"Training videos: \nA01N01-M\nValidataion videos: \n{PKU_VIDEO}, A01N02-L\n"
        )
    return raw, labels, split_dir


@pytest.mark.parametrize("convention, lo, hi", [("inclusive", 9, 20), ("halfopen", 10, 20)])
def test_pku_label_rows_become_clips(shared_fixtures, tmp_path, convention, lo, hi):
    raw, labels, split_dir = pku_setup(
        shared_fixtures, tmp_path, ["12,10,20,1", "5,100,180,2", "12,500,520,1"]
    )
    options = PreprocessOptions(
        workers=1, center=False, labels=str(labels), splits=str(split_dir), label_frames=convention
    )
    summary = preprocess("pku2", raw, tmp_path / "pku.h5", options)
    frames = pku_raw_frames(shared_fixtures)
    assert len(frames) == PKU_FRAMES
    with open_dataset(tmp_path / "pku.h5") as ds:
        assert ds.names == [f"{PKU_VIDEO}_001", f"{PKU_VIDEO}_002", f"{PKU_VIDEO}_003"]
        assert ds.label_map == [5, 12] and ds.class_names == ["action_5", "action_12"]
        assert ds.labels.tolist() == [1, 0, 1]
        assert ds.lengths.tolist() == [hi - lo, 180 - 100 + (lo == 9), 520 - 500 + (lo == 9)]
        np.testing.assert_array_equal(ds.clip(0), frames[lo:hi])
        np.testing.assert_array_equal(ds.clip(1)[0], frames[99 if lo == 9 else 100])
        assert ds.meta("subject").tolist() == [8, 8, 8]
        assert (
            ds.split("xsub", "train").tolist() == [0, 1, 2]
            and ds.split("xsub", "test").tolist() == []
        )
        assert ds.split("xview", "test").tolist() == [0, 1, 2]
        assert ds.options["label_frames"] == convention
    assert summary["splits"]["xview"] == {"train": 0, "test": 3}


def test_pku_centring_matches_normalize(shared_fixtures, tmp_path):
    raw, labels, _ = pku_setup(shared_fixtures, tmp_path, ["3,200,260,1"], splits=False)
    preprocess("pku2", raw, tmp_path / "pku.h5", PreprocessOptions(workers=1, labels=str(labels)))
    with open_dataset(tmp_path / "pku.h5") as ds:
        expected = center_on_joint(pku_raw_frames(shared_fixtures)[199:260], LAYOUT)
        np.testing.assert_array_equal(ds.clip(0), expected)
        assert ds.benchmarks == []


@pytest.mark.parametrize("mode, start", [("center", (PKU_FRAMES - 300) // 2), ("truncate", 0)])
def test_pku_long_clips(shared_fixtures, tmp_path, mode, start):
    raw, labels, _ = pku_setup(
        shared_fixtures, tmp_path, [f"1,1,{PKU_FRAMES},1", "2,1,300,1"], splits=False
    )
    options = PreprocessOptions(workers=1, center=False, labels=str(labels), long_clips=mode)
    preprocess("pku2", raw, tmp_path / "pku.h5", options)
    frames = pku_raw_frames(shared_fixtures)
    with open_dataset(tmp_path / "pku.h5") as ds:
        assert ds.lengths.tolist() == [300, 300]
        np.testing.assert_array_equal(ds.clip(0), frames[start : start + 300])
        np.testing.assert_array_equal(ds.clip(1), frames[:300])


def test_pku_rows_outside_the_video_are_rejected_with_their_line(shared_fixtures, tmp_path):
    rows = ["4,1,50,1", "4,1000,1041,1", "4,0,10,1", "", "9,900,1040,2"]
    raw, labels, _ = pku_setup(shared_fixtures, tmp_path, rows, splits=False)
    summary = preprocess(
        "pku2", raw, tmp_path / "pku.h5", PreprocessOptions(workers=1, labels=str(labels))
    )
    label_file = str(labels / f"{PKU_VIDEO}.txt")
    with open_dataset(tmp_path / "pku.h5") as ds:
        assert ds.names == [f"{PKU_VIDEO}_001", f"{PKU_VIDEO}_005"]
        assert ds.lengths.tolist() == [50, 141]
        assert [(r.path, r.line) for r in ds.rejected] == [(label_file, 2), (label_file, 3)]
        assert "1041" in ds.rejected[0].reason and "1040 frames" in ds.rejected[0].reason
    assert summary["rejected"] == 2
    assert summary["rejected_files"][0].startswith(f"{label_file}:2: ")
    with pytest.raises(RuntimeFailure) as failure:
        preprocess(
            "pku2",
            raw,
            tmp_path / "strict.h5",
            PreprocessOptions(workers=1, labels=str(labels), strict=True),
        )
    assert failure.value.line == 2 and not (tmp_path / "strict.h5").exists()


def test_pku_malformed_label_file_rejects_its_video(shared_fixtures, tmp_path):
    """A row that is not a frame range at all (start after end) makes the label file invalid."""
    raw, labels, _ = pku_setup(shared_fixtures, tmp_path, ["4,1,50,1", "4,60,59,1"], splits=False)
    (raw / "A10N09-L.txt").write_bytes((raw / f"{PKU_VIDEO}.txt").read_bytes())
    (labels / "A10N09-L.txt").write_text("4,1,50,1\n")
    summary = preprocess(
        "pku2", raw, tmp_path / "pku.h5", PreprocessOptions(workers=1, labels=str(labels))
    )
    assert summary["samples"] == 1 and summary["rejected"] == 1
    assert summary["rejected_files"][0].startswith(f"{labels / PKU_VIDEO}.txt:2: ")


def test_pku_needs_labels_and_matching_names(shared_fixtures, tmp_path):
    raw, labels, _ = pku_setup(shared_fixtures, tmp_path, ["4,1,50,1"], splits=False)
    with pytest.raises(SkelctlError, match="--labels"):
        preprocess("pku2", raw, tmp_path / "pku.h5", PreprocessOptions(workers=1))
    shutil.copy(raw / f"{PKU_VIDEO}.txt", raw / "A10N09-L.txt")  # a video without a label file
    summary = preprocess(
        "pku2", raw, tmp_path / "pku.h5", PreprocessOptions(workers=1, labels=str(labels))
    )
    assert summary["samples"] == 1 and summary["rejected"] == 1
    assert (
        "A10N09-L.txt" in summary["rejected_files"][0]
        and "label file" in summary["rejected_files"][0]
    )


# ---------------------------------------------------------------- bad input


def bad_corpus(shared_fixtures: Path, folder: Path) -> dict[str, Path]:
    """Two good real files plus one file per kind of damage; returns the bad ones by kind."""
    folder.mkdir()
    good = sorted((shared_fixtures / "ntu").glob("*.skeleton"))[:2]
    for path in good:
        shutil.copy(path, folder)
    text = good[0].read_text()
    lines = text.splitlines(keepends=True)
    bad = {
        "truncated": ("S001C002P001R001A001", "".join(lines[: len(lines) // 2])),
        "empty": ("S001C002P001R001A002", ""),
        "frame_count_0": ("S001C002P001R001A003", "0\n"),
        "joint_count": (
            "S001C002P001R001A004",
            text.replace("\n25\n", "\n24\n", 1).replace("\r\n25\r\n", "\r\n24\r\n", 1),
        ),
        "junk": ("S001C002P001R001A005", "this is not a skeleton file\n" * 5),
        "wrong_name": ("skeleton_of_someone", text),
    }
    paths = {}
    for kind, (stem, content) in bad.items():
        paths[kind] = folder / f"{stem}.skeleton"
        paths[kind].write_text(content)
    assert paths["joint_count"].read_text() != text
    return paths


def test_bad_files_are_recorded_and_skipped(shared_fixtures, tmp_path):
    bad = bad_corpus(shared_fixtures, tmp_path / "raw")
    summary = preprocess(
        "ntu60", tmp_path / "raw", tmp_path / "out.h5", PreprocessOptions(workers=2)
    )
    assert summary["samples"] == 2 and summary["rejected"] == len(bad) and summary["files"] == 8
    with open_dataset(tmp_path / "out.h5") as ds:
        by_path = {r.path: r for r in ds.rejected}
        assert set(by_path) == {str(p) for p in bad.values()}
        for kind, path in bad.items():
            rejection = by_path[str(path)]
            assert rejection.reason, kind
            if kind in ("truncated", "joint_count", "junk"):
                assert rejection.line >= 1, (kind, rejection)
        assert json.loads(json.dumps(summary))["rejected_files"] == [str(r) for r in ds.rejected]


def test_strict_fails_without_output_and_keeps_the_old_file(shared_fixtures, tmp_path):
    bad_corpus(shared_fixtures, tmp_path / "raw")
    out = tmp_path / "out.h5"
    out.write_bytes(b"an older dataset")
    with pytest.raises(RuntimeFailure, match="strict"):
        preprocess("ntu60", tmp_path / "raw", out, PreprocessOptions(workers=1, strict=True))
    assert out.read_bytes() == b"an older dataset"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5", "raw"]


def test_fatal_input_errors(shared_fixtures, tmp_path):
    with pytest.raises(SkelctlError, match="not found"):
        preprocess("ntu60", tmp_path / "nowhere", tmp_path / "out.h5")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.txt").write_text("nothing here")
    with pytest.raises(SkelctlError, match="no ntu60 raw files"):
        preprocess("ntu60", tmp_path / "empty", tmp_path / "out.h5")
    raw = ntu_raw(shared_fixtures, tmp_path / "raw")
    (tmp_path / "blocker").write_text("")
    with pytest.raises(SkelctlError, match="cannot write"):
        preprocess("ntu60", raw, tmp_path / "blocker" / "out.h5", PreprocessOptions(workers=1))
    with pytest.raises(SkelctlError, match="unknown dataset kind"):
        preprocess("ntu999", raw, tmp_path / "out.h5")
    with pytest.raises(SkelctlError, match="bodies"):
        PreprocessOptions(bodies="largest")
    assert not (tmp_path / "out.h5").exists()
