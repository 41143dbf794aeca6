"""Issue 19, data side: hostile inputs and damaged files fail one clean way (a rejection, or
exit 2 with one line), outputs are never a command's own input nor replaced by a worse result,
and temp files of dead writers go away. Each test names the issue row it guards."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import (
    REPO,
    make_run,
    ntu_raw,
    run_cli,
    tiny_encoder,
    tiny_overrides,
    write_tiny_dataset,
)

from skelctl.atomic import atomic_path, remove_stale_temps, temp_prefix, write_text_atomic
from skelctl.data.npy import MAX_BYTES, read_npy
from skelctl.data.store import open_dataset
from skelctl.errors import SkelctlError

TIB = 1 << 40


def npy_claiming(path: Path, shape: tuple[int, ...], descr: str = "<f4", data: int = 64) -> Path:
    """A .npy file whose header claims `shape` but that holds only `data` bytes after it."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
    path.write_bytes(f.getvalue() + bytes(data))
    return path


def error_line(stderr: str, logs: bool = False) -> str:
    """The one error line; with `logs`, after the lines a job logs before it fails."""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:] and (logs or len(lines) == 1), stderr
    return lines[-1]


# --- the .npy reader (rows 2, 3, 15) -------------------------------------------------------------


def test_npy_reader_checks_the_header_before_allocating(tmp_path: Path) -> None:
    huge = npy_claiming(tmp_path / "huge.npy", (186 * TIB // 300, 25, 3))
    assert huge.stat().st_size == 192
    with pytest.raises(SkelctlError, match=r"huge\.npy: header claims shape .* 186\.0 TiB, but the file holds 64 bytes"):
        read_npy(huge)
    big = npy_claiming(tmp_path / "big.npy", (2, MAX_BYTES // 4), data=MAX_BYTES * 2 + 8)
    with pytest.raises(SkelctlError, match="more than the 1.0 GiB a clip may take"):
        read_npy(big)
    for dtype in (np.complex64, np.bool_, np.dtype("U3"), np.dtype([("x", "<f4")])):
        np.save(tmp_path / "odd.npy", np.zeros((6, 25, 3), dtype))
        with pytest.raises(SkelctlError, match="odd.npy: dtype .*, expected numbers"):
            read_npy(tmp_path / "odd.npy")
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(SkelctlError, match="text.npy: not a readable .npy array"):
        read_npy(tmp_path / "text.npy")
    clip = np.arange(6 * 25 * 3, dtype=">f8").reshape(6, 25, 3)
    for array in (clip, np.asfortranarray(clip), clip.astype(np.int16)):
        np.save(tmp_path / "ok.npy", array)
        back = read_npy(tmp_path / "ok.npy")
        assert back.dtype == array.dtype and np.array_equal(back, array)


def custom_raw(folder: Path, arrays: dict[str, np.ndarray | Path]) -> Path:
    folder.mkdir()
    rows = ["name,label"]
    for i, (name, array) in enumerate(arrays.items()):
        if isinstance(array, Path):
            shutil.move(array, folder / f"{name}.npy")
        else:
            np.save(folder / f"{name}.npy", array)
        rows.append(f"{name},{i % 2}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_row2_custom_npy_claiming_terabytes_is_one_rejected_row(tmp_path):
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray | Path] = {f"ok{i}": rng.normal(size=(8, 25, 3)).astype(np.float32)
                                            for i in range(4)}
    arrays["huge"] = npy_claiming(tmp_path / "huge.npy", (186 * TIB // 300, 25, 3))
    arrays["three_gb"] = npy_claiming(tmp_path / "3gb.npy", (3 * 10**9 // 300, 25, 3))
    arrays["cplx"] = np.ones((8, 25, 3), np.complex64)
    raw = custom_raw(tmp_path / "raw", arrays)
    out = tmp_path / "custom.h5"
    code, stdout, stderr = run_cli(["preprocess", "custom", str(raw), "--layout", "ntu25", "-o",
                                    str(out), "--workers", "1", "--json"])
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["samples"] == 4 and summary["rejected"] == 3
    rejected = "\n".join(summary["rejected_files"])
    assert f"labels.csv:6: {raw / 'huge.npy'}: header claims shape" in rejected
    assert "186.0 TiB, but the file holds 64 bytes of data" in rejected
    assert f"labels.csv:7: {raw / 'three_gb.npy'}: header claims" in rejected
    assert "labels.csv:8" in rejected and "dtype complex64, expected numbers" in rejected


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny.h5, runs/run (a GRU run, runs/latest) and its index."""
    root = tmp_path_factory.mktemp("harden")
    data = write_tiny_dataset(root / "tiny.h5", per_class_train=6, per_class_test=3)
    make_run(root / "runs", data, "run", arch="gru")
    (root / "runs" / "latest").symlink_to("run")
    return root


@pytest.fixture
def in_workspace(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKELCTL_RUNS", str(workspace / "runs"))
    monkeypatch.setenv("SKELCTL_DATA", str(workspace))
    return workspace


def test_rows3_15_hostile_query_arrays_exit_2_with_one_line(in_workspace, tmp_path):
    index = tmp_path / "idx"
    code, _, stderr = run_cli(["retrieve", "--build", str(index)])
    assert code == 0, stderr
    huge = npy_claiming(tmp_path / "huge.npy", (186 * TIB // 300, 25, 3))
    np.save(tmp_path / "complex.npy", np.ones((10, 25, 3), np.complex64))
    cases = {huge: "header claims shape", tmp_path / "complex.npy": "dtype complex64, expected numbers"}
    for query, message in cases.items():
        code, stdout, stderr = run_cli(["retrieve", "--index", str(index), "--query", str(query)])
        assert code == 2 and stdout == "", stderr
        line = error_line(stderr)
        assert f"{query}: " in line and message in line


def test_rows3_15_show_reads_arrays_through_the_checked_reader(tmp_path):
    pytest.importorskip("matplotlib")
    huge = npy_claiming(tmp_path / "huge.npy", (186 * TIB // 300, 25, 3))
    np.save(tmp_path / "complex.npy", np.ones((10, 25, 3), np.complex64))
    for clip, message in ((huge, "186.0 TiB, but the file holds 64 bytes"),
                          (tmp_path / "complex.npy", "dtype complex64, expected numbers")):
        code, _, stderr = run_cli(["show", str(clip), "-o", str(tmp_path / "x.png")])
        assert code == 2 and f"{clip}: " in error_line(stderr) and message in stderr
    assert not (tmp_path / "x.png").exists()


def test_row15_a_preset_that_cannot_work_fails_before_any_work(in_workspace, tmp_path):
    """`--set method={}` resets the demo's SkeleMix ranges to the paper's (7-11 feature frames),
    which 32 frames at stride 4 cannot hold: named by key, before clips load or a run exists."""
    out = tmp_path / "run"
    args = ["pretrain", "--preset", "demo", "--data", str(in_workspace / "tiny.h5"), "--out", str(out),
            "--set", "train.device=cpu", "--set", "train.batch_size=8"]
    code, _, stderr = run_cli([*args, "--set", "method={}"])
    assert code == 2, stderr
    line = error_line(stderr)
    assert "method.skelemix.feature_frames: [7, 11]" in line and "within the 8 feature frames" in line
    assert not out.exists()  # no config.yaml that a corrected command would have to match
    code, _, stderr = run_cli([*args[:-2], "--set", "train.batch_size=4096"])
    assert code == 2 and "train.batch_size: 4096 is larger than the 24 training clips" in error_line(stderr)
    assert not out.exists()


# --- non-finite clips (row 6) --------------------------------------------------------------------


def poisoned_copy(source: Path, dest: Path, sample: int, frame: int = 2) -> str:
    """`source` with one NaN written into `sample` (as h5py writes it: a valid chunk)."""
    shutil.copy(source, dest)
    with h5py.File(dest, "r+") as f:
        start = int(f["offsets"][sample])
        f["joints"][start + frame, 0, 3, 1] = np.nan
        return f["name"].asstr()[sample]


def test_row6_store_refuses_non_finite_clips_where_they_are_read(workspace, tmp_path):
    bad = tmp_path / "bad.h5"
    name = poisoned_copy(workspace / "tiny.h5", bad, 5)
    with open_dataset(bad) as ds:
        assert ds.non_finite_samples().tolist() == [5]
        assert ds.clip(4).shape[0] > 0  # its neighbours read fine
        message = rf"bad\.h5: key '/joints': sample 5 \({name}\) holds NaN or infinite values \(first in its frame 3\)"
        with pytest.raises(SkelctlError, match=message):
            ds.clip(5)
        with pytest.raises(SkelctlError, match=message):
            ds.frames_for([7, 1, 5, 2])
        ds.frames_for([7, 1, 2])  # a split without it is fine
        with pytest.raises(SkelctlError, match=message):
            ds.load()


def test_row6_damaged_text_attributes_are_refused_on_open(workspace, tmp_path):
    """A flipped bit in a class name (found by the fuzz test): invalid UTF-8 that h5py hands
    back as surrogates used to pass, and crashed `linear` when it wrote per_class.csv."""
    bad = tmp_path / "bad.h5"
    shutil.copy(workspace / "tiny.h5", bad)
    with h5py.File(bad, "r+") as f:
        text = f.attrs["class_names"].encode().replace(b"class 0", b"class \xe8")
        f.attrs.create("class_names", text, dtype=h5py.string_dtype("utf-8"))
    with pytest.raises(SkelctlError, match=r"bad\.h5: key '@class_names': expected UTF-8 text"):
        open_dataset(bad)
    shutil.copy(workspace / "tiny.h5", bad)
    with h5py.File(bad, "r+") as f:
        f.attrs["label_map"] = json.dumps([1, 2])
    with pytest.raises(SkelctlError, match="key '@label_map': expected a JSON list of integers, one per class"):
        open_dataset(bad)


def test_row6_commands_refuse_a_dataset_with_nan_and_keep_good_results(in_workspace, tmp_path):
    good = in_workspace / "tiny.h5"
    out = tmp_path / "linear"
    base = ["--encoder", str(in_workspace / "runs" / "run"), "--epochs", "1"]
    code, _, stderr = run_cli(["linear", *base, "--data", str(good), "--out", str(out)])
    assert code == 0, stderr
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    bad = tmp_path / "bad.h5"
    name = poisoned_copy(good, bad, 30)  # a test-split clip
    code, stdout, stderr = run_cli(["info", str(bad), "--json"])
    assert code == 0 and json.loads(stdout)["non_finite"] == [name]
    code, _, stderr = run_cli(["info", str(bad)])
    assert code == 0 and f"NaN or infinite values in sample {name}" in stderr
    for command in (["linear", *base, "--data", str(bad), "--out", str(out), "--no-cache"],
                    ["retrieve", "--eval", *base[:2], "--data", str(bad), "--out", str(out)],
                    ["pretrain", "--data", str(bad), "--out", str(tmp_path / "pre"), *tiny_overrides()]):
        code, stdout, stderr = run_cli(command)
        assert code == 2 and stdout == "", (command[0], stderr)
        line = error_line(stderr, logs=command[0] == "pretrain")  # it says what it loads
        assert f"{bad}: key '/joints': sample 30 ({name}) holds NaN" in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_row6_a_diverged_classifier_does_not_replace_a_good_result(in_workspace, tmp_path):
    out = tmp_path / "linear"
    base = ["linear", "--encoder", str(in_workspace / "runs" / "run"), "--epochs", "2", "--out", str(out)]
    code, _, stderr = run_cli(base)
    assert code == 0, stderr
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    code, stdout, stderr = run_cli([*base, "--lr", "1e38"])
    assert code == 1 and stdout == "", stderr
    line = error_line(stderr, logs=True)  # after the epochs' progress bar
    assert f"{out}: linear (joint stream): the loss or test scores are NaN or infinite" in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


# --- preprocess: inputs that are links, outputs that are inputs (rows 1, 11) ---------------------


def test_row1_dangling_and_looping_links_are_rejected_and_the_run_goes_on(shared_fixtures, tmp_path):
    raw = ntu_raw(shared_fixtures, tmp_path / "raw")
    (raw / "S001C001P001R001A042.skeleton").symlink_to(tmp_path / "gone.skeleton")  # dangling
    (raw / "S001C001P001R001A043.skeleton").symlink_to("S001C001P001R001A043.skeleton")  # a loop
    (raw / "sub").mkdir()
    (raw / "sub" / "up").symlink_to("..")  # a folder cycle
    out = tmp_path / "ntu60.h5"
    code, stdout, stderr = run_cli(["preprocess", "ntu60", str(raw), "-o", str(out), "--workers", "1",
                                    "--json"])
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["samples"] == 11 and summary["rejected"] == 2
    assert sorted(summary["rejected_files"]) == [
        f"{raw}/S001C001P001R001A042.skeleton: unreadable (No such file or directory)",
        f"{raw}/S001C001P001R001A043.skeleton: unreadable (Too many levels of symbolic links)",
    ]


def test_row11_preprocess_never_overwrites_an_input_or_a_foreign_file(shared_fixtures, tmp_path):
    raw = ntu_raw(shared_fixtures, tmp_path / "raw")
    target = raw / "S001C001P001R001A001.skeleton"
    original = target.read_bytes()
    for extra in ([], ["--force"]):
        code, _, stderr = run_cli(["preprocess", "ntu60", str(raw), "-o", str(target), "--workers", "1",
                                   *extra])
        assert code == 2, stderr
        assert f"{target}: output is one of the raw inputs" in error_line(stderr)
        assert target.read_bytes() == original
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    code, _, stderr = run_cli(["preprocess", "ntu60", str(raw), "-o", str(notes), "--workers", "1"])
    assert code == 2 and "exists and is not an HDF5 file: pass --force to replace it" in error_line(stderr)
    assert notes.read_text() == "my notes"
    foreign = tmp_path / "other.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    code, _, stderr = run_cli(["preprocess", "ntu60", str(raw), "-o", str(foreign), "--workers", "1"])
    assert code == 2 and "exists and is not a skelctl dataset" in error_line(stderr)
    # --force replaces them; a skelctl dataset is replaced without it, as before
    for out, extra in ((notes, ["--force"]), (foreign, ["--force"]), (foreign, [])):
        code, _, stderr = run_cli(["preprocess", "ntu60", str(raw), "-o", str(out), "--workers", "1",
                                   *extra])
        assert code == 0, stderr
        assert open_dataset(out).num_samples == 11


# --- temp files and modes (rows 9, 14) -----------------------------------------------------------

_DIE_WRITING = """
import os, signal, sys
from skelctl.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half")
    print(tmp.name, flush=True)
    os.kill(os.getpid(), signal.{sig})
"""


def test_row9_temp_files_of_dead_writers_are_removed_by_the_next_writer(tmp_path):
    out = tmp_path / "d.h5"
    killed = subprocess.run([sys.executable, "-c", _DIE_WRITING.format(sig="SIGKILL"), str(out)],
                            capture_output=True, text=True, cwd=REPO)
    assert killed.returncode == -signal.SIGKILL
    stale = tmp_path / killed.stdout.strip()
    assert stale.is_file() and stale.name.startswith(temp_prefix(out).rsplit(".", 2)[0] + ".")
    live = subprocess.Popen([sys.executable, "-c", _DIE_WRITING.format(sig="SIGSTOP"), str(out)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        alive = tmp_path / live.stdout.readline().strip()
        other_host = tmp_path / ".d.h5.elsewhere.1.abcdefgh.tmp"  # pid 1 of another machine
        other_host.write_bytes(b"another machine's")
        old_style = tmp_path / ".d.h5.abcdefgh.tmp"
        old_style.write_bytes(b"no pid")
        other_out = tmp_path / f".e.h5.{stale.name.split('.', 3)[3]}"
        other_out.write_bytes(b"another output's")
        write_text_atomic(out, "new")
        assert out.read_text() == "new" and not stale.exists()
        assert alive.is_file() and other_host.is_file() and old_style.is_file() and other_out.is_file()
    finally:
        live.kill()
        live.wait()
    assert remove_stale_temps(out) == [alive]


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    previous = os.umask(0o022)
    yield set_mask
    os.umask(previous)


def test_row14_outputs_get_the_mode_open_would_give(shared_fixtures, tmp_path, umask):
    from skelctl.engine.checkpoint import save_encoder
    from skelctl.evaluate.index import build_faiss, save_index
    from skelctl.viz import new_figure, save_figure

    for mask in (0o022, 0o027):
        umask(mask)
        folder = tmp_path / f"m{mask:o}"
        write_text_atomic(folder / "config.yaml", "a: 1\n")
        with atomic_path(folder / "scores.npy", suffix=".npy") as tmp:
            np.save(tmp, np.zeros(3))
        save_figure(new_figure(1, 1), folder / "plot.png")
        save_encoder(folder / "encoder.pt", tiny_encoder(0, "gru"), {})
        features = np.eye(4, dtype=np.float32)
        save_index(folder / "index", build_faiss(features, np.arange(4), "exact", {}), {"dim": 4})
        code, _, stderr = run_cli(["preprocess", "ntu60", str(ntu_raw(shared_fixtures, folder / "raw")),
                                   "-o", str(folder / "ntu60.h5"), "--workers", "1"])
        assert code == 0, stderr
        code, _, stderr = run_cli(["synth", "ntu60", str(folder / "synth"), "--performers", "1",
                                   "--classes", "1", "--cameras", "1", "--replications", "1",
                                   "--frames", "20"])
        synth = sorted(p for p in (folder / "synth").rglob("*") if p.is_file())
        assert code == 0 and synth, stderr
        for path in [folder / n for n in ("config.yaml", "scores.npy", "plot.png", "encoder.pt",
                                          "ntu60.h5", "index/index.faiss")] + synth[:3]:
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
        assert stat.S_IMODE((folder / "index").stat().st_mode) == 0o777 & ~mask


def test_row14_umask_is_read_without_changing_it(umask):
    from skelctl.atomic import current_umask, plain_mode

    umask(0o077)
    assert current_umask() == 0o077 and plain_mode() == 0o600 and plain_mode(directory=True) == 0o700
    assert os.umask(0o077) == 0o077
