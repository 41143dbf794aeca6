"""`skelctl preprocess` and `skelctl info` as a user runs them: exit codes, one-line errors,
stdout/stderr split, JSON keys, default output location, and a run killed mid-write."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import ntu_raw, run_cli
from test_preprocess import bad_corpus

SUMMARY_KEYS = {
    "kind",
    "output",
    "samples",
    "frames",
    "classes",
    "files",
    "rejected",
    "excluded",
    "splits",
    "workers",
    "seconds",
    "files_per_s",
    "mb_per_s",
    "input_mb",
    "rejected_files",
}
INFO_KEYS = {
    "path",
    "kind",
    "skelctl_version",
    "created",
    "samples",
    "frames",
    "splits",
    "classes",
    "length",
    "rejected",
    "non_finite",
    "options",
    "layout",
}


def test_json_summary_and_info(shared_fixtures, tmp_path):
    raw = ntu_raw(shared_fixtures, tmp_path / "raw")
    out = tmp_path / "ntu60.h5"
    code, stdout, stderr = run_cli(
        ["preprocess", "ntu60", str(raw), "-o", str(out), "--json", "--workers", "1"]
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert set(summary) == SUMMARY_KEYS
    assert summary["output"] == str(out) and summary["samples"] == 11 and summary["classes"] == 60
    assert summary["splits"]["xview"] == {"train": 3, "test": 8}
    assert "samples" in stderr and "files/s" in stderr  # the summary table goes to stderr

    code, stdout, stderr = run_cli(["info", str(out), "--json"])
    assert code == 0, stderr
    info = json.loads(stdout)
    assert set(info) == INFO_KEYS
    assert info["samples"] == 11 and info["splits"] == summary["splits"] and info["rejected"] == []
    assert info["non_finite"] == []
    assert info["frames"] == summary["frames"] and info["length"]["min"] >= 1
    assert sum(c["samples"] for c in info["classes"]) == 11 and len(info["classes"]) == 60
    assert info["options"]["bodies"] == "denoise" and info["layout"]["name"] == "ntu25"

    code, stdout, stderr = run_cli(["info", str(out)])
    assert code == 0 and stdout == "" and "xsub train / test" in stderr and "drink water" in stderr


def test_default_output_goes_to_the_data_root(shared_fixtures, tmp_path, monkeypatch):
    raw = ntu_raw(shared_fixtures, tmp_path / "raw")
    monkeypatch.setenv("SKELCTL_DATA", str(tmp_path / "data"))
    code, stdout, stderr = run_cli(
        ["preprocess", "ntu60", str(raw), "--workers", "1", "--no-center", "--bodies", "first"]
    )
    assert code == 0, stderr
    assert stdout.strip() == str(tmp_path / "data" / "ntu60.h5")
    code, stdout, _ = run_cli(["info", "ntu60", "--json"])
    options = json.loads(stdout)["options"]
    assert code == 0 and options["center"] is False and options["bodies"] == "first"


def test_bad_files_are_listed_and_strict_fails(shared_fixtures, tmp_path):
    bad = bad_corpus(shared_fixtures, tmp_path / "raw")
    out = tmp_path / "out.h5"
    code, stdout, stderr = run_cli(
        ["preprocess", "ntu60", str(tmp_path / "raw"), "-o", str(out), "--workers", "1"]
    )
    assert code == 0, stderr
    rejected_lines = [line for line in stderr.splitlines() if line.startswith("rejected ")]
    assert len(rejected_lines) == len(bad)
    for path in bad.values():
        assert sum(f"rejected {path}:" in line for line in rejected_lines) == 1
    code, stdout, _ = run_cli(["info", str(out), "--json"])
    assert len(json.loads(stdout)["rejected"]) == len(bad)

    before = out.read_bytes()
    code, stdout, stderr = run_cli(
        ["preprocess", "ntu60", str(tmp_path / "raw"), "-o", str(out), "--strict"]
    )
    assert code == 1 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1 and "--strict" in stderr
    assert out.read_bytes() == before


@pytest.mark.parametrize("case", ["missing_raw", "empty_raw", "unwritable_out", "bad_option"])
def test_fatal_input_errors_exit_2_with_one_line(
    shared_fixtures, tmp_path, case
):
    raw = ntu_raw(shared_fixtures, tmp_path / "raw")
    out = tmp_path / "out.h5"
    extra: list[str] = []
    if case == "missing_raw":
        raw = tmp_path / "nowhere"
    elif case == "empty_raw":
        raw = tmp_path / "empty"
        raw.mkdir()
        (raw / "notes.md").write_text("no skeletons here")
    elif case == "unwritable_out":
        (tmp_path / "blocker").write_text("")
        out = tmp_path / "blocker" / "out.h5"
    else:
        extra = ["--label-frames", "sometimes"]
    code, stdout, stderr = run_cli(
        ["preprocess", "ntu60", str(raw), "-o", str(out), "--workers", "1", *extra]
    )
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert not out.exists()


def _previous_dataset(out: Path) -> None:
    from skelctl.data.layout import get_layout
    from skelctl.data.store import DatasetWriter

    with DatasetWriter(out, "ntu60", get_layout("ntu25"), ["a"], [1], {}) as writer:
        writer.add("old", np.ones((4, 2, 25, 3), np.float32), 0)


def _session_members(session: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[3]) == session and fields[0] != "Z":
                members.append(int(entry))
    return members


@pytest.mark.parametrize(
    "sig, existing",
    [(signal.SIGKILL, False), (signal.SIGKILL, True), (signal.SIGTERM, True)],
    ids=["kill", "kill-with-old-out", "term-with-old-out"],
)
def test_stopped_run_leaves_no_output(shared_fixtures, tmp_path, sig, existing):
    """A run stopped while it writes: OUT absent or the old OUT intact, workers gone; SIGTERM
    (like Ctrl-C) also removes the temp file and exits 1 with one line."""
    raw = tmp_path / "raw"
    raw.mkdir()
    source = shared_fixtures / "ntu" / "S001C001P001R001A005.skeleton"
    for k in range(600):
        shutil.copy(source, raw / f"S{1 + k % 17:03d}C001P{1 + k // 17:03d}R001A005.skeleton")
    out = tmp_path / "out" / "ntu60.h5"
    out.parent.mkdir()
    if existing:  # a dataset file (anything else is not replaced without --force)
        _previous_dataset(out)
        previous = out.read_bytes()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skelctl",
            "preprocess",
            "ntu60",
            str(raw),
            "-o",
            str(out),
            "--workers",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            temps = [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
            if temps and temps[0].stat().st_size > 200_000:  # clips are being written
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be stopped: use more files"
        os.kill(proc.pid, sig)
        _, stderr = proc.communicate(timeout=60)
        if existing:
            assert out.read_bytes() == previous
        else:
            assert not out.exists()
        if sig == signal.SIGTERM:
            assert proc.returncode == 1 and stderr.count("\n") == 1 and "interrupted" in stderr
            assert [p.name for p in out.parent.iterdir()] == [out.name]
        deadline = time.monotonic() + 10
        while _session_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _session_members(proc.pid) == [], "worker processes outlived the stopped run"
        if sig == signal.SIGKILL and not existing:  # its temp file stays, until the next run
            assert [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
            small = ntu_raw(shared_fixtures, tmp_path / "small")
            again = subprocess.run([sys.executable, "-m", "skelctl", "preprocess", "ntu60", str(small),
                                    "-o", str(out), "--workers", "1"], capture_output=True, text=True)
            assert again.returncode == 0, again.stderr
            assert [p.name for p in out.parent.iterdir()] == [out.name]
    finally:
        if _session_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
