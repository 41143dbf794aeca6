"""`preprocess custom`: arrays + labels.csv in any layout, 3-D and 2-D, .npy files or one .npz;
round trips, label maps, the documented benchmarks, and one rejection per kind of mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SMALL_FRAMES, run_cli

from skelctl.augment.spatial import isc_one_of, shear
from skelctl.augment.streams import to_stream
from skelctl.data.clipfile import MIN_FRAMES
from skelctl.data.layout import get_layout
from skelctl.data.normalize import center_on_joint
from skelctl.data.preprocess import PreprocessOptions, preprocess
from skelctl.data.sources.custom import SPLIT_SEED
from skelctl.data.store import open_dataset
from skelctl.errors import RuntimeFailure, SkelctlError
from skelctl.models.registry import build_encoder

COCO = str(Path(__file__).parents[1] / "docs" / "coco17.yaml")


def run(raw: Path, out: Path, layout: str | None, **options) -> dict:
    return preprocess("custom", raw, out, PreprocessOptions(workers=1, layout=layout, **options))


def random_clip(rng: np.random.Generator, joints: int, channels: int, bodies: int | None) -> np.ndarray:
    """(T, V, C) when `bodies` is None, else (T, bodies, V, C); T varies per sample."""
    frames = int(rng.integers(MIN_FRAMES, 30))
    shape = (frames, joints, channels) if bodies is None else (frames, bodies, joints, channels)
    return rng.normal(0, 1, shape).astype(np.float32)


def write_raw(folder: Path, arrays: dict[str, np.ndarray], labels_csv: str, npz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.csv").write_text(labels_csv)
    if npz:
        np.savez_compressed(folder / "poses.npz", **arrays)
    else:
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", array)
    return folder


def padded(array: np.ndarray) -> np.ndarray:
    clip = array[:, None] if array.ndim == 3 else array
    out = np.zeros((len(clip), 2, *clip.shape[2:]), np.float32)
    out[:, : clip.shape[1]] = clip
    return out


def test_3d_npy_round_trip_with_class_names_and_subject_split(tmp_path):
    rng = np.random.default_rng(1)
    classes = ["wave", "kick", "jump"]
    arrays, rows = {}, ["name,label,subject,view"]
    for i in range(20):
        name = f"clip{i:02d}"
        arrays[name] = random_clip(rng, 20, 3, None if i % 2 else int(rng.integers(1, 3)))
        rows.append(f"{name},{classes[i % 3]},{1 + i % 5},{1 + i % 2}")
    raw = write_raw(tmp_path / "raw", arrays, "\n".join(rows) + "\n")
    summary = run(raw, tmp_path / "a.h5", "kinect20", center=False)
    assert summary["samples"] == 20 and summary["rejected"] == 0
    with open_dataset(tmp_path / "a.h5") as ds:
        assert ds.kind == "custom" and ds.layout == get_layout("kinect20")
        assert ds.names == list(arrays)  # labels.csv order
        assert ds.class_names == sorted(classes) and ds.label_map == [0, 1, 2]
        assert [ds.class_names[k] for k in ds.labels] == [classes[i % 3] for i in range(20)]
        assert ds.meta("subject").tolist() == [1 + i % 5 for i in range(20)]
        assert ds.meta("camera").tolist() == [1 + i % 2 for i in range(20)]
        for i, array in enumerate(arrays.values()):
            np.testing.assert_array_equal(ds.clip(i), padded(array))
        assert ds.benchmarks == ["xsub"]
        train, test = ds.split("xsub", "train"), ds.split("xsub", "test")
        subjects = ds.meta("subject")
        assert len(set(subjects[train])) == 4 and len(set(subjects[test])) == 1  # round(0.8 * 5)
        assert not set(subjects[train]) & set(subjects[test])
        assert sorted([*train, *test]) == list(range(20))
        expected_test = np.random.default_rng(SPLIT_SEED).permutation([1, 2, 3, 4, 5])[4:]
        assert set(subjects[test]) == set(expected_test)


def test_2d_npz_round_trip_with_integer_labels_random_split_and_centring(tmp_path):
    rng = np.random.default_rng(2)
    ids = [3, 7, 12]
    arrays, rows = {}, ["name,label"]
    for i in range(23):
        name = f"person_{i}"
        arrays[name] = random_clip(rng, 17, 2, None if i % 3 else 2)
        rows.append(f"{name},{ids[i % 3]}")
    raw = write_raw(tmp_path / "raw", arrays, "\n".join(rows) + "\n", npz=True)
    layout = get_layout(COCO)
    summary = run(raw, tmp_path / "b.h5", COCO)
    assert summary["samples"] == 23 and summary["splits"] == {"random": {"train": 18, "test": 5}}
    with open_dataset(tmp_path / "b.h5") as ds:
        assert ds.layout == layout and ds.layout.name == "coco17"
        assert ds.class_names == ["3", "7", "12"] and ds.label_map == ids
        assert ds.labels.tolist() == [i % 3 for i in range(23)]
        for i, array in enumerate(arrays.values()):
            clip = ds.clip(i)
            assert clip.shape == (len(array), 2, 17, 2)
            np.testing.assert_allclose(clip, center_on_joint(padded(array), layout), atol=1e-6)
            assert np.allclose(clip[0, 0, layout.center], 0)
        train, test = ds.split("random", "train"), ds.split("random", "test")
        assert sorted([*train, *test]) == list(range(23))
        for label, count in zip(range(3), (8, 8, 7), strict=True):  # 80/20 inside every class
            members = np.flatnonzero(ds.labels == label)
            assert len(members) == count
            assert np.isin(members, test).sum() == round(0.2 * count)
    rerun = run(raw, tmp_path / "c.h5", COCO)
    assert rerun["splits"] == summary["splits"]
    with open_dataset(tmp_path / "c.h5") as again:
        np.testing.assert_array_equal(again.split("random", "test"), test)


def test_2d_dataset_feeds_augmentations_and_every_encoder(tmp_path):
    rng = np.random.default_rng(3)
    arrays = {f"s{i}": random_clip(rng, 17, 2, None) for i in range(4)}
    rows = ["name,label"] + [f"s{i},{i % 2}" for i in range(4)]
    raw = write_raw(tmp_path / "raw", arrays, "\n".join(rows) + "\n")
    run(raw, tmp_path / "d.h5", COCO)
    with pytest.raises(SkelctlError, match=r"--align rotates 3-D skeletons; this dataset is 2-D"):
        run(raw, tmp_path / "e.h5", COCO, align=True)
    with open_dataset(tmp_path / "d.h5") as ds:
        layout = ds.layout
        clips = np.stack([ds.clip(i)[:MIN_FRAMES] for i in range(4)])
    x = torch.from_numpy(clips).permute(0, 4, 1, 3, 2)  # (N, T, M, V, C) -> (N, C, T, V, M)
    assert x.shape == (4, 2, MIN_FRAMES, 17, 2)
    gen = torch.Generator().manual_seed(0)
    assert shear(x, gen).shape == x.shape and isc_one_of(x, gen).shape == x.shape
    assert to_stream(x, "bone", layout).shape == x.shape
    for name, frames in SMALL_FRAMES.items():
        clip = x[:, :, torch.arange(frames) % MIN_FRAMES]
        encoder = build_encoder(name, layout, in_channels=2, frames=frames).eval()
        with torch.no_grad():
            assert encoder(clip).shape == (4, encoder.feature_dim)


def test_split_column_and_classes_file(tmp_path):
    rng = np.random.default_rng(4)
    arrays = {f"m{i}": random_clip(rng, 25, 3, None) for i in range(6)}
    rows = ["name,label,split"] + [
        "m0,walk,train", "m1,2,test", "m2,sit,train", "m3,1,train", "m4,walk,test", "m5,sit,test",
    ]
    raw = write_raw(tmp_path / "raw", arrays, "\n".join(rows) + "\n")
    (raw / "classes.csv").write_text("label,name\n2,sit\n1,walk\n9,unused\n")
    summary = run(raw, tmp_path / "s.h5", "ntu25")
    assert summary["splits"] == {"split": {"train": 3, "test": 3}}
    with open_dataset(tmp_path / "s.h5") as ds:
        assert ds.class_names == ["sit", "walk", "unused"] and ds.label_map == [2, 1, 9]
        assert ds.labels.tolist() == [1, 0, 0, 1, 1, 0]
        assert ds.split("split", "train").tolist() == [0, 2, 3]
        assert ds.split("split", "test").tolist() == [1, 4, 5]


# ---------------------------------------------------------------- one rejection per mismatch


def mismatch_raw(folder: Path, npz: bool) -> tuple[Path, dict[int, str]]:
    """A kinect20 3-D dataset: 2 good samples and one defect per row; {csv line: reason}."""
    rng = np.random.default_rng(5)
    good = random_clip(rng, 20, 3, None)
    nan = good.copy()
    nan[1, 0, 2] = np.nan
    arrays = {
        "good0": good, "good1": random_clip(rng, 20, 3, 2), "other": good,
        "joints19": good[:, :19], "coords4": np.zeros((8, 20, 4), np.float32),
        "bodies3": np.ones((8, 3, 20, 3), np.float32), "short": good[: MIN_FRAMES - 1],
        "nan": nan, "zeros": np.zeros_like(good), "words": np.full((8, 20, 3), "a"),
        "flat": good.reshape(-1), "flat2d": good[..., :2], "unused_extra": good,
    }
    f = f"{folder}/poses.npz/" if npz else f"{folder}/"
    rows = [  # (labels.csv row, rejection reason or None); line 1 is the header
        ("good0,walk,1,1,train", None),
        ("ghost,walk,1,1,train", f"no array 'ghost' in {folder}/poses.npz" if npz else f"no file {folder}/ghost.npy"),
        ("joints19,walk,1,1,train", f"{f}joints19.npy: shape {good[:, :19].shape}: 19 joints, layout 'kinect20' has 20"),
        ("coords4,walk,1,1,test", f"{f}coords4.npy: shape (8, 20, 4): 4 coordinates per joint, expected 3 (x y z) or 2 (x y)"),
        ("bodies3,walk,1,1,test", f"{f}bodies3.npy: shape (8, 3, 20, 3): 3 bodies, expected 1 to 2"),
        ("short,walk,1,1,test", f"{f}short.npy: {MIN_FRAMES - 1} frame(s), at least {MIN_FRAMES} needed"),
        ("nan,walk,1,1,test", f"{f}nan.npy: NaN or infinite value (first at frame 2, joint 1)"),
        ("zeros,walk,1,1,test", f"{f}zeros.npy: every value is zero (no body in any frame)"),
        ("words,walk,1,1,test", f"{f}words.npy: dtype <U1, expected numbers"),
        ("flat,walk,1,1,test", f"{f}flat.npy: shape ({good.size},), expected (T, 20, C)"),
        ("flat2d,walk,1,1,test", f"{f}flat2d.npy: 2 coordinates per joint, but line 2 (good0) set the dataset to 3"),
        ("other,dance,1,1,test", "unknown label 'dance' (classes.csv has walk, run)"),
        ("good0,run,2,1,test", "duplicate name 'good0' (first at line 2)"),
        ("x1,run,2,1,val", "split 'val': expected train or test"),
        ("x2,run,two,1,test", "subject 'two': expected an integer id"),
        ("x3,run,2,1", "4 cells, expected 5 (name,label,subject,view,split)"),
        ("../x4,run,2,1,test", "name '../x4': expected a file name"),
        ("good1,run,2,3,test", None),
    ]
    labels = "\n".join(["name,label,subject,view,split"] + [row for row, _ in rows]) + "\n"
    write_raw(folder, arrays, labels, npz)
    (folder / "classes.csv").write_text("label,name\n1,walk\n2,run\n")
    return folder, {line: reason for line, (_, reason) in enumerate(rows, 2) if reason}


@pytest.mark.parametrize("npz", [False, True], ids=["npy", "npz"])
def test_every_mismatch_is_rejected_with_its_csv_line(tmp_path, npz):
    raw, expected = mismatch_raw(tmp_path / "raw", npz)
    summary = run(raw, tmp_path / "m.h5", "kinect20")
    assert summary["samples"] == 2 and summary["excluded"] == {"not_in_labels_csv": 1}
    with open_dataset(tmp_path / "m.h5") as ds:
        assert ds.names == ["good0", "good1"] and ds.meta("camera").tolist() == [1, 3]
        found = {r.line: r for r in ds.rejected}
    assert sorted(found) == sorted(expected)
    for line, reason in expected.items():
        assert found[line].path == str(raw / "labels.csv")
        assert found[line].reason.startswith(reason), (line, found[line].reason)
        assert str(found[line]).startswith(f"{raw}/labels.csv:{line}: ")


def test_strict_fails_on_the_first_mismatch(tmp_path):
    raw, expected = mismatch_raw(tmp_path / "raw", npz=False)
    with pytest.raises(RuntimeFailure) as info:
        run(raw, tmp_path / "m.h5", "kinect20", strict=True)
    assert info.value.line == min(expected) and info.value.path == str(raw / "labels.csv")
    assert not (tmp_path / "m.h5").exists()


def test_unreadable_arrays_are_rejected(tmp_path):
    rng = np.random.default_rng(6)
    raw = write_raw(tmp_path / "raw", {"ok": random_clip(rng, 20, 3, None)}, "name,label\nok,a\nbroken,a\n")
    (raw / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    run(raw, tmp_path / "u.h5", "kinect20")
    with open_dataset(tmp_path / "u.h5") as ds:
        (rejection,) = ds.rejected
    assert rejection.line == 3 and "broken.npy: not a readable .npy array" in rejection.reason


def test_integer_among_class_names_needs_a_classes_file(tmp_path):
    rng = np.random.default_rng(7)
    arrays = {f"x{i}": random_clip(rng, 20, 3, None) for i in range(3)}
    raw = write_raw(tmp_path / "raw", arrays, "name,label\nx0,wave\nx1,4\nx2,wave\n")
    run(raw, tmp_path / "i.h5", "kinect20")
    with open_dataset(tmp_path / "i.h5") as ds:
        assert ds.class_names == ["wave"] and ds.names == ["x0", "x2"]
        (rejection,) = ds.rejected
    assert rejection.line == 3 and "label '4' is an integer but other labels are class names" in rejection.reason


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no layout", "custom needs --layout NAME|FILE (ntu25, kinect20 or a YAML layout file)"),
        ("no labels", "raw: no labels.csv (header name,label[,subject][,view][,split])"),
        ("no label column", "labels.csv:1: missing column 'label' (header must start name,label)"),
        ("typo column", "labels.csv:1: unknown column 'subjet' (expected name, label, subject, view, split)"),
        ("header only", "labels.csv: no sample rows after the header"),
        ("npy and npz", "raw: both .npy files and an .npz archive; keep one of them"),
        ("bad classes", "classes.csv:3: expected an integer label and a class name"),
        ("bad layout", "bad.yaml: layout key 'center': expected a joint number in 1..20, got 0"),
    ],
)
def test_dataset_level_errors_name_the_file(tmp_path, setup, message):
    rng = np.random.default_rng(8)
    raw = write_raw(tmp_path / "raw", {"a": random_clip(rng, 20, 3, None)}, "name,label\na,1\n")
    layout = "kinect20"
    if setup == "no layout":
        layout = None
    elif setup == "no labels":
        (raw / "labels.csv").unlink()
    elif setup == "no label column":
        (raw / "labels.csv").write_text("name,class\na,1\n")
    elif setup == "typo column":
        (raw / "labels.csv").write_text("name,label,subjet\na,1,1\n")
    elif setup == "header only":
        (raw / "labels.csv").write_text("name,label\n")
    elif setup == "npy and npz":
        np.savez(raw / "more.npz", b=np.zeros(3))
    elif setup == "bad classes":
        (raw / "classes.csv").write_text("label,name\n1,wave\nwave,2\n")
    elif setup == "bad layout":
        bad = get_layout("kinect20").to_dict() | {"center": 0}
        layout = str(tmp_path / "bad.yaml")
        Path(layout).write_text(json.dumps(bad))
    with pytest.raises(SkelctlError) as info:
        run(raw, tmp_path / "x.h5", layout)
    assert str(info.value).endswith(message) and "\n" not in str(info.value)
    assert not (tmp_path / "x.h5").exists()


def test_cli_custom_with_a_layout_file(tmp_path):
    rng = np.random.default_rng(9)
    arrays = {f"p{i}": random_clip(rng, 17, 2, None) for i in range(5)}
    raw = write_raw(tmp_path / "raw", arrays, "name,label\n" + "".join(f"p{i},a{i % 2}\n" for i in range(5)))
    out = tmp_path / "pose.h5"
    args = ["preprocess", "custom", str(raw), "-o", str(out), "--json", "--workers", "1"]
    code, stdout, stderr = run_cli([*args, "--layout", COCO])
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["kind"] == "custom" and summary["samples"] == 5 and summary["classes"] == 2
    with open_dataset(out) as ds:
        assert ds.layout.name == "coco17" and ds.clip(0).shape[-1] == 2
        assert ds.options["layout"] == COCO

    code, stdout, stderr = run_cli(args)
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert json.loads(stdout)["error"]["exit_code"] == 2  # --json: the failure document
    assert "custom needs --layout NAME|FILE" in stderr
    code, stdout, stderr = run_cli([*args, "--layout", "kinect20"])
    assert code == 2 and "no usable custom sample in 5 rejected input(s); first: " in stderr
    assert f"labels.csv:2: {raw}/p0.npy: shape" in stderr and "17 joints, layout 'kinect20' has 20" in stderr
