"""`preprocess nwucla` on real NW-UCLA files: counts, labels, metadata, benchmarks, rejections,
the CLI, and every encoder built from the stored (kinect20) layout."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import SMALL_FRAMES, assert_encoders_run, run_cli

from skelctl.data.layout import get_layout
from skelctl.data.preprocess import PreprocessOptions, preprocess
from skelctl.data.sources.nwucla import ACTIONS, CLASS_NAMES, parse_nwucla_name
from skelctl.data.store import open_dataset
from skelctl.errors import RuntimeFailure

SUBSET = Path(__file__).parent / "fixtures" / "nw_ucla"  # 62 real files, see its README.md
# the whole real dataset, shipped as a zip (read in place by preprocess); see fixtures/README.md
FULL = Path(os.environ.get("SKELCTL_NWUCLA_DIR", Path(__file__).parent / "fixtures" / "nw_ucla.zip"))
ONE_FRAME = ("a02_s09_e04_v02", "a02_s09_e04_v03")  # the real sequences under 5 frames
SHORT_REASON = "1 frame(s), at least 5 needed"


def run(raw: Path, out: Path, **options) -> dict:
    return preprocess("nwucla", raw, out, PreprocessOptions(workers=1, **options))


def raw_joints(path: Path) -> tuple[np.ndarray, int]:
    content = json.loads(path.read_text())
    return np.asarray(content["skeletons"], np.float32), content["label"]


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> tuple[dict, Path]:
    """The 62 fixture files preprocessed once, in camera coordinates (no centring)."""
    out = tmp_path_factory.mktemp("nwucla") / "nwucla.h5"
    return run(SUBSET, out, center=False), out


def test_subset_samples_labels_metadata_and_values(subset):
    summary, out = subset
    stems = sorted(p.stem for p in SUBSET.glob("*.json"))
    kept = [s for s in stems if s not in ONE_FRAME]
    assert summary["samples"] == 60 and summary["files"] == 62 and summary["rejected"] == 2
    assert summary["classes"] == 10
    with open_dataset(out) as ds:
        assert ds.kind == "nwucla" and ds.layout == get_layout("kinect20")
        assert ds.class_names == list(CLASS_NAMES) and ds.label_map == list(ACTIONS)
        assert ds.names == kept
        fields = [parse_nwucla_name(s) for s in kept]
        assert ds.labels.tolist() == [ACTIONS.index(a) for a, _, _, _ in fields]
        assert ds.meta("subject").tolist() == [s for _, s, _, _ in fields]
        assert ds.meta("camera").tolist() == [v for _, _, _, v in fields]
        assert ds.meta("replication").tolist() == [e for _, _, e, _ in fields]
        assert set(ds.meta("setup").tolist()) == {-1}
        assert sorted(set(ds.labels.tolist())) == list(range(10))
        for i, stem in enumerate(kept):
            joints, label = raw_joints(SUBSET / f"{stem}.json")
            assert ds.labels[i] == label - 1  # the file's own 1-based label agrees
            clip = ds.clip(i)
            assert clip.shape == (len(joints), 2, 20, 3)
            np.testing.assert_array_equal(clip[:, 0], joints, err_msg=stem)
            assert not clip[:, 1].any()  # one body: the second slot is zero
        rejected = sorted((Path(r.path).stem, r.reason) for r in ds.rejected)
        assert rejected == [(stem, SHORT_REASON) for stem in ONE_FRAME]


def test_subset_benchmarks(subset):
    _, out = subset
    with open_dataset(out) as ds:
        assert ds.benchmarks == ["xsub", "xview"]
        views, subjects = ds.meta("camera"), ds.meta("subject")
        train, test = ds.split("xview", "train"), ds.split("xview", "test")
        assert (len(train), len(test)) == (40, 20)
        assert set(views[train]) == {1, 2} and set(views[test]) == {3}
        train, test = ds.split("xsub", "train"), ds.split("xsub", "test")
        assert (len(train), len(test)) == (30, 30)
        assert set(subjects[train]) == {1, 2, 3, 4, 5} and set(subjects[test]) == {6, 7, 8, 9, 10}
        assert sorted([*train, *test]) == list(range(ds.num_samples))


def test_centring_and_alignment_use_the_kinect20_joints(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    stems = [p.stem for p in sorted(SUBSET.glob("*.json"))][:3]
    for stem in stems:
        shutil.copy(SUBSET / f"{stem}.json", raw)
    run(raw, tmp_path / "c.h5")
    run(raw, tmp_path / "a.h5", align=True)
    spine, base, right, left = 1, 0, 8, 4  # kinect20: spine, hip centre, shoulders
    with open_dataset(tmp_path / "c.h5") as centred, open_dataset(tmp_path / "a.h5") as aligned:
        assert centred.options["center"] is True and aligned.options["align"] is True
        for i, stem in enumerate(stems):
            joints, _ = raw_joints(raw / f"{stem}.json")
            np.testing.assert_allclose(centred.clip(i)[:, 0], joints - joints[0, spine], atol=1e-6)
            frame0 = aligned.clip(i)[0, 0].astype(np.float64)
            up = frame0[spine] - frame0[base]
            np.testing.assert_allclose(up / np.linalg.norm(up), [0, 0, 1], atol=1e-5)
            across = frame0[left] - frame0[right]
            assert abs(across[1]) < 1e-5 and across[0] > 0
            lengths = np.linalg.norm(aligned.clip(i)[:, 0] - aligned.clip(i)[:, 0, base:base + 1], axis=-1)
            expected = np.linalg.norm(joints - joints[:, base:base + 1], axis=-1)
            np.testing.assert_allclose(lengths, expected, atol=1e-5)  # a rigid motion


def corrupt(raw: Path, source: str, target: str, change) -> None:
    """Write `target` from the real file `source`, with `change(content)` returning its text."""
    content = json.loads((SUBSET / f"{source}.json").read_text())
    (raw / f"{target}.json").write_text(change(content))


def set_value(frame: int, joint: int, value):
    def change(content):
        content["skeletons"][frame][joint][0] = value
        return json.dumps(content)
    return change


def bad_line_5(content) -> str:
    lines = json.dumps(content, indent=1).split("\n")
    lines[4] = "oops"
    return "\n".join(lines)


def bad_raw(folder: Path) -> Path:
    """Three good real files plus one defect each, named so every defect is its own file."""
    folder.mkdir()
    good = ["a01_s02_e03_v02", "a02_s02_e01_v01", "a01_s07_e00_v02"]
    for stem in good:
        shutil.copy(SUBSET / f"{stem}.json", folder)
    source = good[0]
    corrupt(folder, source, "a01_s01_e01_v01", lambda c: json.dumps(c)[:700])
    corrupt(folder, source, "a01_s01_e02_v01", bad_line_5)

    def drop_joint(content):
        del content["skeletons"][2][7]
        return json.dumps(content)

    corrupt(folder, source, "a01_s01_e03_v01", drop_joint)
    corrupt(folder, source, "a01_s01_e04_v01", set_value(2, 4, math.nan))
    corrupt(folder, source, "a01_s01_e05_v01", set_value(0, 0, "1.5"))
    corrupt(folder, source, "a01_s01_e06_v01", lambda c: json.dumps({**c, "label": 5}))
    corrupt(folder, source, "a01_s01_e07_v01", lambda c: json.dumps({"label": 1}))
    corrupt(folder, source, "a07_s01_e00_v01", json.dumps)
    corrupt(folder, source, "a01_s01_e00_v04", json.dumps)
    corrupt(folder, source, "notes", json.dumps)
    corrupt(folder, source, "a01_s01_e08_v01", lambda c: json.dumps({**c, "skeletons": c["skeletons"][:4]}))
    return folder


EXPECTED_REJECTIONS = {
    "a01_s01_e01_v01": (1, "malformed JSON (Expecting ',' delimiter, column 700)"),
    "a01_s01_e02_v01": (5, "malformed JSON (Expecting value, column 1)"),
    "a01_s01_e03_v01": (-1, "'skeletons' frame 3: 19 joints, expected 20 (kinect20)"),
    "a01_s01_e04_v01": (-1, "NaN or infinite value (first at frame 3, joint 5)"),
    "a01_s01_e05_v01": (-1, "'skeletons' frame 1 joint 1: expected 3 numbers, got ['1.5'"),
    "a01_s01_e06_v01": (-1, "'label' is 5 but action a01 is label 1"),
    "a01_s01_e07_v01": (-1, "expected a JSON object with a 'skeletons' list"),
    "a07_s01_e00_v01": (-1, "action 7 is not an NW-UCLA action (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)"),
    "a01_s01_e00_v04": (-1, "view 4: NW-UCLA has views 1, 2, 3"),
    "notes": (-1, "not an NW-UCLA name (expected aAA_sSS_eEE_vVV.json)"),
    "a01_s01_e08_v01": (-1, "4 frame(s), at least 5 needed"),
}


def test_bad_files_are_rejected_with_path_line_and_reason(tmp_path):
    raw = bad_raw(tmp_path / "raw")
    summary = run(raw, tmp_path / "out.h5")
    assert summary["samples"] == 3 and summary["rejected"] == len(EXPECTED_REJECTIONS)
    with open_dataset(tmp_path / "out.h5") as ds:
        found = {Path(r.path).stem: r for r in ds.rejected}
    assert found.keys() == EXPECTED_REJECTIONS.keys()
    for stem, (line, reason) in EXPECTED_REJECTIONS.items():
        assert found[stem].path == str(raw / f"{stem}.json")
        assert found[stem].line == line, stem
        assert found[stem].reason.startswith(reason), (stem, found[stem].reason)


def test_strict_stops_at_the_first_bad_file_and_writes_nothing(tmp_path):
    raw = bad_raw(tmp_path / "raw")
    with pytest.raises(RuntimeFailure, match="--strict: stopped, no output written"):
        run(raw, tmp_path / "out.h5", strict=True)
    assert not (tmp_path / "out.h5").exists()


def test_cli_and_zip_archive(tmp_path):
    archive = tmp_path / "all_sqe.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(SUBSET.glob("*.json"))[:12]:
            z.write(path, f"all_sqe/{path.name}")
    out = tmp_path / "ucla.h5"
    args = ["preprocess", "nwucla", str(archive), "-o", str(out), "--json", "--workers", "1"]
    code, stdout, stderr = run_cli(args)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["kind"] == "nwucla" and summary["samples"] == 12
    assert summary["splits"]["xview"]["train"] + summary["splits"]["xview"]["test"] == 12


@pytest.mark.parametrize("name", sorted(SMALL_FRAMES))
def test_encoders_build_from_the_stored_layout_and_run(subset, name):
    assert_encoders_run(subset[1], name, "kinect20")


def test_full_dataset(tmp_path):
    """All 1,484 real sequences (about 3 s): the published counts and the standard protocol."""
    assert FULL.exists(), f"NW-UCLA data not found at {FULL} (set SKELCTL_NWUCLA_DIR)"
    started = time.perf_counter()
    summary = preprocess("nwucla", FULL, tmp_path / "nwucla.h5", PreprocessOptions())
    seconds = time.perf_counter() - started
    assert summary["files"] == 1484 and summary["samples"] == 1482
    assert sorted(Path(r.split(":")[0]).stem for r in summary["rejected_files"]) == list(ONE_FRAME)
    # views 1+2 / 3 hold 1,020 / 464 sequences; one one-frame sequence is in each part
    assert summary["splits"]["xview"] == {"train": 1019, "test": 463}
    assert summary["splits"]["xsub"] == {"train": 754, "test": 728}
    with open_dataset(tmp_path / "nwucla.h5") as ds:
        assert np.bincount(ds.labels, minlength=10).min() > 100
        assert sorted(set(ds.meta("subject").tolist())) == list(range(1, 11))
    print(f"nwucla full run: {seconds:.1f} s, {summary['files_per_s']} files/s")
