"""`preprocess msr3d` on real MSR Action3D files: the msr20 layout against the release's bone
list and its axes, values against the raw text, the paper's sequence list, the xsub split,
rejections, the CLI, and the whole release."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import SMALL_FRAMES, assert_encoders_run, run_cli

from skelctl.data.layout import PART_NAMES, get_layout
from skelctl.data.preprocess import PreprocessOptions, preprocess
from skelctl.data.sources.msr3d import CLASS_NAMES, PAPER_LIST, parse_msr3d_name
from skelctl.data.store import open_dataset
from skelctl.errors import RuntimeFailure

SUBSET = Path(__file__).parent / "fixtures" / "msr3d"  # 6 real files and the paper's list
# the whole release, zipped (read in place); SKELCTL_MSR3D_DIR may point at the raw folder
FULL = Path(os.environ.get("SKELCTL_MSR3D_DIR", Path(__file__).parent / "fixtures" / "msr_action3d.zip"))
NOT_LISTED = "a02_s03_e02"  # a real sequence outside files_used_in_cvpr12_paper.txt
WITH_GAPS = "a13_s02_e02"  # a real bend with 12 all-zero frames mid-sequence (30 in the file)
# The release's README: body_model.mat's 19 bones (1-based joint pairs, parent first)
README_BONES = {
    (7, 4), (4, 3), (3, 20), (3, 1), (3, 2), (1, 8), (2, 9), (8, 10), (9, 11), (10, 12),
    (11, 13), (7, 5), (7, 6), (5, 14), (6, 15), (14, 16), (15, 17), (16, 18), (17, 19),
}
README_NAMES = {7: "hip_center", 5: "left_hip", 6: "right_hip", 20: "head", 10: "left_wrist",
                11: "right_wrist", 16: "left_ankle", 17: "right_ankle"}


def run(raw: Path, out: Path, **options) -> dict:
    return preprocess("msr3d", raw, out, PreprocessOptions(workers=1, **options))


def raw_xyz(path: Path) -> np.ndarray:
    """(T, 20, 3) from the text, read independently of skelctl (np.loadtxt)."""
    return np.loadtxt(path).reshape(-1, 20, 4)[..., :3]


def listed() -> set[str]:
    return set((SUBSET / PAPER_LIST).read_text().split())


# ---------------------------------------------------------------- the layout


def test_msr20_bones_and_names_are_the_release_body_model():
    layout = get_layout("msr20")
    assert layout.num_joints == 20
    assert {(p + 1, j + 1) for j, p in layout.bones} == README_BONES
    assert {k: layout.joints[k - 1] for k in README_NAMES} == README_NAMES
    assert layout.parents[6] == -1  # root: hip centre, joint 7
    assert layout.joints[layout.center] == "spine" and layout.center == 3
    assert {k: v + 1 for k, v in layout.align.items()} == {
        "base": 7, "spine": 4, "right_shoulder": 2, "left_shoulder": 1, "neck": 3}
    # the same skeleton as Kinect v1's, joints reordered: bones and parts agree by name
    kinect = get_layout("kinect20")

    def named(lay):
        bones = {(lay.joints[j], lay.joints[p]) for j, p in lay.bones}
        parts = {k: {lay.joints[j] for j in lay.parts[k]} for k in PART_NAMES}
        return bones, parts

    assert named(layout) == named(kinect)
    assert sorted(j for k in PART_NAMES for j in layout.parts[k]) == list(range(20))


def test_real_coordinates_are_kinect_camera_space_in_metres():
    """y up, z away from the camera, metres, right-handed with the joints named as body_model
    does: right = forward x up (forward: the feet), so x points to the performer's right when
    they face the camera, as in Kinect camera space; the subjects did one-arm actions with
    their right arm."""
    layout = get_layout("msr20")
    j = {name: i for i, name in enumerate(layout.joints)}
    turned = set()
    for path in sorted(SUBSET.glob("*_skeleton3D.txt")):
        x = raw_xyz(path)
        x = x[x.reshape(len(x), -1).any(axis=1)]
        up = x[:, j["head"]] - x[:, j["hip_center"]]
        assert np.median(up[:, 1]) > 0.3, path.name
        assert np.median(x[:, j["head"], 1] - x[:, j["left_foot"], 1]) > 1.2, path.name
        assert (x[..., 2] > 1.5).all(), path.name
        across = x[:, j["right_shoulder"]] - x[:, j["left_shoulder"]]
        assert 0.25 < np.median(np.linalg.norm(across, axis=-1)) < 0.6, path.name
        forward = sum(x[:, j[f"{s}_foot"]] - x[:, j[f"{s}_ankle"]] for s in ("left", "right"))
        right = np.cross(forward, up)
        assert np.median(np.einsum("ti,ti->t", across, right)) > 0, path.name
        if not (np.median(forward[:, 2]) < 0 and np.median(across[:, 0]) > 0.2):
            turned.add(path.name[:11])  # not facing the camera
    # a01_s02_e02: the tracker fit a skeleton facing away (feet point away from the camera), so
    # its left and right are swapped: the arm that waves in this high arm wave is named left
    assert turned == {"a01_s02_e02"}
    for stem, waving, still in (("a01_s03_e02", "right_wrist", "left_wrist"),
                                ("a01_s02_e02", "left_wrist", "right_wrist")):
        x = raw_xyz(SUBSET / f"{stem}_skeleton3D.txt")
        x = x - x[:, j["hip_center"]][:, None]
        spread = [np.linalg.norm(x[:, j[w]] - x[:, j[w]].mean(0), axis=-1).mean() for w in (waving, still)]
        assert spread[0] > 1.4 * spread[1], stem
        assert x[:, j[waving], 1].max() > x[:, j["head"], 1].max() > x[:, j[still], 1].max(), stem


# ---------------------------------------------------------------- the fixture subset


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> tuple[dict, Path]:
    """The fixture files preprocessed once, in camera coordinates (no centring)."""
    out = tmp_path_factory.mktemp("msr3d") / "msr3d.h5"
    return run(SUBSET, out, center=False), out


def test_subset_values_labels_and_metadata(subset):
    summary, out = subset
    stems = sorted(p.name[:11] for p in SUBSET.glob("*_skeleton3D.txt"))
    kept = [s for s in stems if s in listed()]
    assert NOT_LISTED in stems and NOT_LISTED not in kept and WITH_GAPS in kept
    assert summary["samples"] == len(kept) and summary["files"] == len(stems)
    assert summary["classes"] == 20
    with open_dataset(out) as ds:
        assert ds.kind == "msr3d" and ds.layout == get_layout("msr20")
        assert ds.class_names == list(CLASS_NAMES) and ds.label_map == list(range(1, 21))
        assert ds.class_names[0] == "high arm wave" and ds.class_names[12] == "bend"
        assert ds.names == [f"{s}_skeleton3D" for s in kept]
        fields = [parse_msr3d_name(f"{s}_skeleton3D") for s in kept]
        assert ds.labels.tolist() == [int(s[1:3]) - 1 for s in kept]
        assert ds.meta("subject").tolist() == [int(s[5:7]) for s in kept]
        assert ds.meta("replication").tolist() == [int(s[9:11]) for s in kept]
        assert [f[0] - 1 for f in fields] == ds.labels.tolist()
        assert set(ds.meta("camera").tolist()) == set(ds.meta("setup").tolist()) == {-1}
        for i, stem in enumerate(kept):
            x = raw_xyz(SUBSET / f"{stem}_skeleton3D.txt")
            tracked = x.reshape(len(x), -1).any(axis=1)
            clip = ds.clip(i)
            assert clip.shape == (tracked.sum(), 2, 20, 3)
            np.testing.assert_array_equal(clip[:, 0], x[tracked].astype(np.float32), err_msg=stem)
            assert not clip[:, 1].any()  # one body: the second slot is zero
            assert clip[:, 0].reshape(len(clip), -1).any(axis=1).all()  # no empty frame left
        gaps = ds.clip(kept.index(WITH_GAPS))
        assert (len(raw_xyz(SUBSET / f"{WITH_GAPS}_skeleton3D.txt")), len(gaps)) == (30, 18)
        rejected = [(Path(r.path).name[:11], r.line, r.reason) for r in ds.rejected]
    assert rejected == [(NOT_LISTED, -1, f"not in {PAPER_LIST} (557 sequences commonly used); "
                         "--keep-missing keeps it")]


def test_subset_xsub_split(subset):
    _, out = subset
    with open_dataset(out) as ds:
        assert ds.benchmarks == ["xsub"]
        subjects = ds.meta("subject")
        train, test = ds.split("xsub", "train"), ds.split("xsub", "test")
        assert set(subjects[train]) <= {1, 3, 5, 7, 9} and set(subjects[test]) <= {2, 4, 6, 8, 10}
        assert len(train) and len(test)
        assert sorted([*train, *test]) == list(range(ds.num_samples))


def test_paper_list_is_optional_and_keep_missing_keeps_all(tmp_path):
    summary = run(SUBSET, tmp_path / "all.h5", keep_missing=True)
    assert summary["rejected"] == 0 and summary["samples"] == summary["files"]
    raw = tmp_path / "raw"
    shutil.copytree(SUBSET, raw, ignore=shutil.ignore_patterns(PAPER_LIST))
    summary = run(raw, tmp_path / "nolist.h5")
    assert summary["rejected"] == 0 and summary["samples"] == summary["files"]
    with open_dataset(tmp_path / "nolist.h5") as ds:
        assert f"{NOT_LISTED}_skeleton3D" in ds.names


def test_centring_and_alignment_use_the_msr20_joints(tmp_path):
    run(SUBSET, tmp_path / "c.h5")
    run(SUBSET, tmp_path / "a.h5", align=True)
    spine, base, right, left = 3, 6, 1, 0  # msr20: spine, hip centre, shoulders
    with open_dataset(tmp_path / "c.h5") as centred, open_dataset(tmp_path / "a.h5") as aligned:
        assert centred.options["center"] is True and aligned.options["align"] is True
        for i, name in enumerate(centred.names):
            x = raw_xyz(SUBSET / f"{name}.txt")
            x = x[x.reshape(len(x), -1).any(axis=1)]
            np.testing.assert_allclose(centred.clip(i)[:, 0], x - x[0, spine], atol=1e-6)
            frame0 = aligned.clip(i)[0, 0].astype(np.float64)
            up = frame0[spine] - frame0[base]
            np.testing.assert_allclose(up / np.linalg.norm(up), [0, 0, 1], atol=1e-5)
            across = frame0[left] - frame0[right]
            assert abs(across[1]) < 1e-5 and across[0] > 0


# ---------------------------------------------------------------- bad files


def lines_of(stem: str) -> list[str]:
    return (SUBSET / f"{stem}_skeleton3D.txt").read_text().splitlines()


def write(folder: Path, stem: str, lines: list[str] | bytes) -> None:
    data = lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode()
    (folder / f"{stem}_skeleton3D.txt").write_bytes(data)


def edit(lines: list[str], line: int, text: str) -> list[str]:
    """`lines` with 1-based `line` replaced by `text`."""
    return [text if n == line else s for n, s in enumerate(lines, 1)]


def bad_raw(folder: Path) -> tuple[Path, dict[str, tuple[int, str]]]:
    """Two good real files plus one defect each (edited copies of a real file); no paper list.
    Returns the folder and {stem: (line, reason)}."""
    folder.mkdir()
    good = ["a01_s02_e02", "a01_s03_e02"]
    for stem in good:
        shutil.copy(SUBSET / f"{stem}_skeleton3D.txt", folder)
    src = lines_of("a18_s03_e02")  # 13 frames, 260 lines
    zero = "0.000000 0.000000 0.000000 0.000000"
    cases = {
        "a05_s01_e01": (edit(src, 37, "0.1 0.2 0.3"), 37, "3 values, expected 4 (x y z c)"),
        "a05_s01_e02": (edit(src, 5, "0.1 0.2 0.3 1 7"), 5, "5 values, expected 4 (x y z c)"),
        "a05_s01_e03": (src[:-7], 241, "253 joint lines, not a multiple of 20: the last frame "
                        "(from this line) has 13"),
        "a05_s01_e04": (edit(src, 100, "0.1 abc 0.3 1"), 100, "not a number: 'abc'"),
        "a05_s01_e05": (edit(src, 61, "0.1 0.2 nan 1"), 61, "non-finite value 'nan'"),
        "a05_s01_e06": (edit(src, 62, "inf 0.2 0.3 1"), 62, "non-finite value 'inf'"),
        "a05_s01_e07": (["", "  "], -1, "empty file (expected lines of 'x y z c', 20 per frame)"),
        "a05_s01_e08": ([zero] * 100, -1, "all 5 frames are zero (no skeleton tracked)"),
        "a05_s01_e09": (src[:80], -1, "4 frame(s), at least 5 needed"),
        "a05_s01_e10": (src[:80] + [zero] * 60, -1,
                        "4 frame(s), at least 5 needed (after dropping 3 all-zero frame(s))"),
        "a05_s01_e11": (b"\xff\xfe0.1 0.2 0.3 1\n", -1, "not UTF-8 text"),
        "a13_s09_e03": (src, -1, "known corrupt in the release (936 frames"),
        "a21_s01_e01": (src, -1, "action 21: MSR Action3D has actions 1-20"),
        "a05_s11_e01": (src, -1, "subject 11: MSR Action3D has subjects 1-10"),
        "a05_s01_skeleton": (src, -1, "not an MSR Action3D name (expected aAA_sSS_eEE_skeleton3D.txt)"),
    }
    for stem, (content, _, _) in cases.items():
        write(folder, stem, content)
    return folder, {f"{stem}_skeleton3D": (line, reason) for stem, (_, line, reason) in cases.items()}


def test_bad_files_are_rejected_with_path_line_and_reason(tmp_path):
    raw, expected = bad_raw(tmp_path / "raw")
    # blank lines are skipped but still counted: a blank line 2 makes the bad line 37 line 38
    src = edit(lines_of("a18_s03_e02"), 37, "0.1 0.2 0.3")
    write(raw, "a05_s02_e01", src[:1] + [""] + src[1:])
    expected["a05_s02_e01_skeleton3D"] = (38, "3 values, expected 4 (x y z c)")
    summary = run(raw, tmp_path / "out.h5")
    assert summary["samples"] == 2 and summary["rejected"] == len(expected)
    with open_dataset(tmp_path / "out.h5") as ds:
        found = {Path(r.path).stem: r for r in ds.rejected}
        assert ds.names == ["a01_s02_e02_skeleton3D", "a01_s03_e02_skeleton3D"]
    assert found.keys() == expected.keys()
    for stem, (line, reason) in expected.items():
        assert found[stem].path == str(raw / f"{stem}.txt")
        assert found[stem].line == line, (stem, found[stem].line)
        assert found[stem].reason.startswith(reason), (stem, found[stem].reason)
    shown = {Path(r.split(":")[0]).stem: r for r in summary["rejected_files"]}
    assert shown["a05_s01_e01_skeleton3D"] == (
        f"{raw}/a05_s01_e01_skeleton3D.txt:37: 3 values, expected 4 (x y z c)")


def test_strict_stops_at_the_first_bad_file_and_writes_nothing(tmp_path):
    raw, _ = bad_raw(tmp_path / "raw")
    with pytest.raises(RuntimeFailure, match="--strict: stopped, no output written"):
        run(raw, tmp_path / "out.h5", strict=True)
    assert not (tmp_path / "out.h5").exists()


def test_cli(tmp_path):
    out = tmp_path / "msr.h5"
    args = ["preprocess", "msr3d", str(SUBSET), "-o", str(out), "--json", "--workers", "1"]
    code, stdout, stderr = run_cli(args)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["kind"] == "msr3d" and summary["samples"] == len(listed() & {
        p.name[:11] for p in SUBSET.glob("*_skeleton3D.txt")})
    assert f"rejected {SUBSET}/{NOT_LISTED}_skeleton3D.txt: not in {PAPER_LIST}" in stderr
    code, stdout, _ = run_cli([*args, "--keep-missing"])
    assert code == 0 and json.loads(stdout)["rejected"] == 0


@pytest.mark.parametrize("name", sorted(SMALL_FRAMES))
def test_encoders_build_from_the_stored_layout_and_run(subset, name):
    assert_encoders_run(subset[1], name, "msr20")


# ---------------------------------------------------------------- the whole release


def test_full_dataset(tmp_path):
    """All 567 real sequences (a few seconds): the paper's 557 and the cross-subject split."""
    assert FULL.exists(), f"MSR Action3D not found at {FULL} (set SKELCTL_MSR3D_DIR)"
    started = time.perf_counter()
    summary = preprocess("msr3d", FULL, tmp_path / "msr3d.h5", PreprocessOptions())
    seconds = time.perf_counter() - started
    paper = sorted(listed())  # the fixture copy of the release's list
    assert len(paper) == 557
    train = sum(int(s[5:7]) % 2 == 1 for s in paper)
    assert summary["files"] == 567 and summary["samples"] == 557 and summary["rejected"] == 10
    assert summary["splits"]["xsub"] == {"train": train, "test": 557 - train}
    assert (train, 557 - train) == (284, 273)  # as docs/layouts.md states
    with open_dataset(tmp_path / "msr3d.h5") as ds:
        assert sorted(n[:11] for n in ds.names) == paper
        assert np.bincount(ds.labels, minlength=20).min() >= 20
        assert sorted(set(ds.meta("subject").tolist())) == list(range(1, 11))
        reasons = sorted(r.reason.split(" (")[0] for r in ds.rejected)
    assert reasons == ["known corrupt in the release"] + [f"not in {PAPER_LIST}"] * 9
    print(f"msr3d full run: {seconds:.1f} s, {summary['files_per_s']} files/s")
