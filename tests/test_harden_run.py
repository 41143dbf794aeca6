"""Hardening of running (issue 19, run side): every failure of every command is one stderr line,
its exit code and, with --json, one `{"ok": false, "error": ...}` document; float keys are finite
and in range; a run or index folder has one writer; SIGINT/SIGTERM stop pretraining with a
checkpoint; a full disk is exit 1 with the previous files kept; a failed start leaves nothing."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
import torch
from helpers import REPO, run_skelctl, skelctl_command, tiny_overrides, wait_for_step
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skelctl.cli.app import main
from skelctl.engine.checkpoint import ENCODER_FORMAT, load_checkpoint
from skelctl.engine.config import PretrainConfig, load_config_file, load_preset, to_yaml
from skelctl.errors import SkelctlError

ENV = {"OMP_NUM_THREADS": "1"}  # the same thread count for every run a test compares (bit-exact resume)
ARGS = tiny_overrides(**{"train.checkpoint_every_steps": 1})  # 2 epochs x 3 steps
TOTAL_STEPS = 6


def invoke(*args: str) -> tuple[int, str, str]:
    """`skelctl ARGS` in-process through the real entry point: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code or 0
    return code, out.getvalue(), err.getvalue()


def assert_failure(code: int, stdout: str, stderr: str, expected: int | None = None,
                   json_out: bool = True, only_line: bool = False) -> dict:
    """One `error: ...` line, the last on stderr (only line: `only_line`), no traceback, and with
    --json exactly one failure document on stdout; returns the document's error."""
    assert code in ((1, 2) if expected is None else (expected,)), (code, stderr)
    lines = stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    assert "Traceback" not in stderr
    if only_line:
        assert len(lines) == 1, stderr
    if not json_out:
        assert stdout == ""
        return {}
    doc = json.loads(stdout)  # one document: a second one would be "Extra data"
    assert doc["ok"] is False and set(doc["error"]) == {"path", "line", "reason", "exit_code"}
    error = doc["error"]
    assert error["exit_code"] == code
    where = error["path"] if error["line"] is None else f"{error['path']}:{error['line']}"
    assert errors[0] == "error: " + (f"{where}: " if error["path"] is not None else "") + error["reason"]
    return error


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tiny_pretrain_data, tmp_path_factory) -> Path:
    """A finished tiny run (a checkpoint after every step, so last.prev.pt exists)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    result = run_skelctl("pretrain", "--data", str(tiny_pretrain_data), *ARGS, "--out", str(run), env=ENV)
    assert result.returncode == 0, result.stderr
    return run


def copy_run(finished: Path, to: Path) -> Path:
    shutil.copytree(finished, to)
    return to


# --- row 12 / 13: one failure path for every command ---------------------------------------------


def test_failures_of_every_command_are_one_line_an_exit_code_and_one_json_document(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something").write_text("x")
    cases = [
        (2, ["retrieve", "--eval", "-k", "0"], "Invalid value for '-k'"),
        (2, ["semisup", "--fraction", "1.5"], "Invalid value for '--fraction'"),
        (2, ["linear", "--bogus"], "No such option: --bogus"),
        (2, ["info"], "Missing argument"),
        (2, ["info", tmp_path / "missing.h5"], "missing.h5"),
        (2, ["pretrain", "--preset", "no-such-preset"], "unknown preset 'no-such-preset'"),
        (2, ["pretrain", "--set", "optim.lr=.nan", "--out", tmp_path / "run"], "optim.lr: expected a finite number"),
        (2, ["retrieve"], "pass exactly one of --build"),
        (2, ["preprocess", "ntu60", tmp_path / "no-raw", "-o", tmp_path / "x.h5"], "no-raw"),
        (2, ["synth", "no-such-kind", tmp_path / "raw"], "no-such-kind"),
        (2, ["plot", tmp_path / "no-run", "-o", tmp_path / "c.png"], "no-run"),
        (2, ["demo", tmp_path / "busy"], "not empty"),
    ]
    for expected, args, needle in cases:
        for json_out in (True, False):
            code, stdout, stderr = invoke(*args, *(["--json"] if json_out else []))
            error = assert_failure(code, stdout, stderr, expected, json_out, only_line=True)
            assert needle in stderr, (args, stderr)
            if json_out:
                assert needle in (error["path"] or "") + error["reason"]
    assert not (tmp_path / "run").exists()
    # help stays available
    code, stdout, _ = invoke("pretrain", "--help")
    assert code == 0 and "--out" in stdout


def test_unexpected_errors_and_a_full_disk_are_exit_1_in_one_line(tiny_pretrain_data, monkeypatch):
    import skelctl.data.stats as stats  # where `info` opens the dataset

    def broken(*args, **kwargs):
        raise ValueError("a bug\nwith a second line")

    monkeypatch.setattr(stats, "open_dataset", broken)
    code, stdout, stderr = invoke("info", tiny_pretrain_data, "--json")
    error = assert_failure(code, stdout, stderr, 1, only_line=True)
    assert error["reason"].startswith("internal error: ValueError: a bug (")

    def several_lines(*args, **kwargs):
        raise SkelctlError("a reason\n  given on two lines", "some.h5", 3)

    monkeypatch.setattr(stats, "open_dataset", several_lines)
    code, stdout, stderr = invoke("info", tiny_pretrain_data, "--json")
    assert assert_failure(code, stdout, stderr, 2, only_line=True)["reason"] == "a reason given on two lines"
    assert stderr == "error: some.h5:3: a reason given on two lines\n"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "out.h5")

    monkeypatch.setattr(stats, "open_dataset", full)
    code, stdout, stderr = invoke("info", tiny_pretrain_data, "--json")
    error = assert_failure(code, stdout, stderr, 1, only_line=True)
    assert error == {"path": "out.h5", "line": None, "reason": "No space left on device", "exit_code": 1}


def test_a_pickled_object_is_refused_in_one_line_without_torchs_advice(tmp_path):
    path = tmp_path / "encoder.pt"
    torch.save({"format": ENCODER_FORMAT, "config": Path("x")}, path)  # a Python object, not a tensor
    code, stdout, stderr = invoke("linear", "--encoder", path, "--json")
    error = assert_failure(code, stdout, stderr, 2, only_line=True)
    assert error["path"] == str(path) and "pathlib" in error["reason"]
    assert "weights_only" not in stderr and "arbitrary code" in stderr


# --- row 5: every float key finite and in its range --------------------------------------------


def float_keys(cls: type = PretrainConfig, prefix: str = "") -> list[tuple[str, int, dataclasses.Field]]:
    """(dotted key, items (0: a scalar), field) of every float in the preset schema."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, key = hints[f.name], f"{prefix}{f.name}"
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
            tp = args[0]  # X | None
        if dataclasses.is_dataclass(tp):
            out += float_keys(tp, key + ".")
        elif tp is float:
            out.append((key, 0, f))
        elif typing.get_origin(tp) is tuple and typing.get_args(tp) and all(a is float for a in typing.get_args(tp)):
            out.append((key, len(typing.get_args(tp)), f))
    return out


def test_the_schema_has_float_keys_in_every_section():
    keys = {key for key, _, _ in float_keys()}
    assert {"optim.lr", "optim.weight_decay", "method.moco.temperature", "method.augment.crop_scale",
            "evaluation.linear.train_crop", "evaluation.finetune.lr"} <= keys


@pytest.mark.parametrize("bad", [".nan", ".inf", "-.inf", "1e400", "-1e400"])
def test_every_float_key_rejects_non_finite_values_naming_the_key(bad):
    for key, items, _ in float_keys():
        value = bad if items == 0 else "[" + ", ".join([bad] + ["0.5"] * (items - 1)) + "]"
        with pytest.raises(SkelctlError) as caught:
            load_preset("skelemix", [f"{key}={value}"])
        assert caught.value.exit_code == 2
        assert caught.value.message.startswith(f"--set: {key}"), caught.value.message
        assert "finite" in caught.value.message


def test_every_float_key_declares_its_range_and_it_is_checked():
    for key, items, f in float_keys():
        assert "range" in f.metadata, f"{key}: a float key needs field(metadata=value_range(lo, hi))"
        lo, hi = f.metadata["range"]
        outside = (lo - 1.0) if lo is not None else (hi + 1.0)
        value = outside if items == 0 else [outside] * items
        with pytest.raises(SkelctlError, match=f"{key}: expected a value"):
            load_preset("skelemix", [f"{key}={json.dumps(value)}"])


def test_a_non_finite_learning_rate_fails_before_the_run_starts(tiny_pretrain_data, tmp_path):
    for key in ("optim.lr=.inf", "optim.lr=1e400", "optim.weight_decay=.nan", "method.moco.temperature=.nan"):
        code, stdout, stderr = invoke("pretrain", "--data", tiny_pretrain_data, "--out", tmp_path / "run",
                                      *tiny_overrides(), "--set", key, "--json")
        error = assert_failure(code, stdout, stderr, 2, only_line=True)
        assert error["reason"].startswith(key.split("=")[0] + ": expected a finite number")
        assert not (tmp_path / "run").exists()


# --- row 4: a run that never trained leaves nothing behind ---------------------------------------


def test_a_run_that_fails_before_training_leaves_nothing_and_the_corrected_rerun_works(tiny_pretrain_data, tmp_path):
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(tiny_pretrain_data.read_bytes()[:4096])
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    run = tmp_path / "run"
    for args, needle in (
        (["--data", tiny_pretrain_data, *tiny_overrides(**{"train.batch_size": 32})], "larger than the 24 training clips"),
        (["--data", corrupt, *tiny_overrides()], str(corrupt)),
        (["--preset", empty, "--data", tiny_pretrain_data, "--set", "train.device=cpu"], "train.batch_size"),
    ):
        code, stdout, stderr = invoke("pretrain", *args, "--out", run, "--json")
        assert_failure(code, stdout, stderr, 2)
        assert needle in stderr
        assert not run.exists(), sorted(p.name for p in run.rglob("*"))
    # an --out folder the user made is kept (empty), and so is anything else of theirs in it
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    code, stdout, stderr = invoke("pretrain", "--data", tiny_pretrain_data, "--out", run,
                                  *tiny_overrides(**{"train.batch_size": 32}), "--json")
    assert_failure(code, stdout, stderr, 2)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    # the README's fix, on the same --out
    code, stdout, stderr = invoke("pretrain", "--data", tiny_pretrain_data, "--out", run,
                                  *tiny_overrides(**{"train.epochs": 1}), "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["steps"] == 3 and (run / "encoder.pt").is_file()


def test_a_killed_start_without_a_checkpoint_does_not_pin_its_settings(tiny_pretrain_data, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    cfg = load_preset("skelemix", [a for a in tiny_overrides(**{"train.batch_size": 32}) if a != "--set"])
    (run / "config.yaml").write_text(to_yaml(cfg))  # what a start killed while loading left
    code, stdout, stderr = invoke("pretrain", "--data", tiny_pretrain_data, "--out", run,
                                  *tiny_overrides(**{"train.epochs": 1}), "--json")
    assert code == 0, stderr
    assert load_config_file(run / "config.yaml").train.batch_size == 8


# --- row 7: one writer per run folder and per index folder ---------------------------------------

HOLD = """
import sys, time
from skelctl.lock import FolderLock
lock = FolderLock(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


@contextlib.contextmanager
def lock_held_by_another_process(lock_file: Path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_file)], stdout=subprocess.PIPE, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_second_writer_of_a_run_folder_exits_2_naming_the_holder_and_a_stale_lock_is_taken_over(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    before = snapshot(run)
    with lock_held_by_another_process(run / ".lock") as holder:
        code, stdout, stderr = invoke("pretrain", "--out", run, "--epochs", "3", "--json")
        error = assert_failure(code, stdout, stderr, 2, only_line=True)
        assert error["path"] == str(run) and f"in use by process {holder.pid}" in error["reason"]
        assert {k: v for k, v in snapshot(run).items() if k != ".lock"} == before
    # the holder was killed (SIGKILL): its lock file is left, naming a dead pid
    assert (run / ".lock").read_text().strip() == str(holder.pid)
    code, stdout, stderr = invoke("pretrain", "--out", run, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["steps"] == TOTAL_STEPS
    assert not (run / ".lock").exists()


def test_building_an_index_takes_its_folder_lock(finished, tmp_path):
    index = tmp_path / "index"
    with lock_held_by_another_process(tmp_path / ".index.lock") as holder:
        code, stdout, stderr = invoke("retrieve", "--build", index, "--encoder", finished, "--json")
        error = assert_failure(code, stdout, stderr, 2)
        assert error["path"] == str(index) and f"in use by process {holder.pid}" in error["reason"]
        assert not index.exists()
    code, stdout, stderr = invoke("retrieve", "--build", index, "--encoder", finished, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["count"] == 24 and not (tmp_path / ".index.lock").exists()


# --- row 10: SIGTERM / SIGINT save the step reached ----------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_running_pretraining_turns_a_second_away_and_a_stop_signal_saves_the_step_reached(
        tiny_pretrain_data, finished, tmp_path, sig):
    run = tmp_path / "run"
    # checkpoints only at epoch ends: the stop itself must save mid-epoch steps
    args = ["pretrain", "--data", str(tiny_pretrain_data), *tiny_overrides(**{"train.epochs": 50}), "--out", str(run)]
    proc = subprocess.Popen(skelctl_command(*args, "--json"), cwd=REPO, env={**os.environ, **ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_step(run / "metrics.jsonl", 1, proc)
        # row 7: the same command again while it runs is turned away, naming the runner (with
        # --epochs 1, a resumable setting, so that without a lock it would end soon)
        code, stdout, stderr = invoke(*args, "--epochs", "1", "--json")
        error = assert_failure(code, stdout, stderr, 2, only_line=True)
        assert error["path"] == str(run) and f"in use by process {proc.pid}" in error["reason"]
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    error = assert_failure(proc.returncode, stdout, stderr, 1)
    saved = load_checkpoint(run / "checkpoints" / "last.pt")
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "step"]
    assert steps == list(range(1, saved["step"] + 1))  # one run's records, up to the step saved
    assert error["path"] == str(run) and error["reason"] == (
        f"interrupted by {signal.Signals(sig).name} after global step {saved['step']} (epoch "
        f"{saved['epoch'] + 1}, step {saved['epoch_step']} of 3); saved checkpoints/last.pt; resume with "
        f"`skelctl pretrain --out {run}`")
    # the command it names resumes from that step (to the end of its epoch)
    code, stdout, stderr = invoke("pretrain", "--out", run, "--epochs", saved["epoch"] + 1, "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["resumed_from"] == str(run / "checkpoints" / "last.pt")
    assert summary["steps"] == 3 * (saved["epoch"] + 1)


# --- row 8: a full disk ------------------------------------------------------------------------


def limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death: a full disk, in effect
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_is_exit_1_in_one_line_and_keeps_the_previous_files(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    before = snapshot(run)
    result = subprocess.run(skelctl_command("pretrain", "--out", str(run), "--epochs", "3", "--json"),
                            cwd=REPO, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=600,
                            preexec_fn=limit_file_size(600_000))  # below a checkpoint's 1.2 MB
    error = assert_failure(result.returncode, result.stdout, result.stderr, 1)
    last = run / "checkpoints" / "last.pt"
    assert error == {"path": str(last), "line": None, "exit_code": 1,
                     "reason": "cannot write (File too large); the previous one is kept"}
    after = snapshot(run)
    for name in ("checkpoints/last.pt", "checkpoints/last.prev.pt", "encoder.pt", "encoder_stgcn.pt"):
        assert after[name] == before[name], name
    assert not [p for p in run.rglob("*.tmp")]


def test_a_runs_encoder_files_appear_together_or_not_at_all(finished, tmp_path, monkeypatch):
    import skelctl.engine.checkpoint as checkpoint

    run = copy_run(finished, tmp_path / "run")
    before = snapshot(run)
    real_save, encoders = torch.save, []

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("format") == ENCODER_FORMAT:
            encoders.append(obj)
            if len(encoders) == 2:  # the disk fills up between the two files of one epoch
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    code, stdout, stderr = invoke("pretrain", "--out", run, "--epochs", "3", "--json")
    error = assert_failure(code, stdout, stderr, 1)
    assert error["reason"].startswith("cannot write (No space left on device)")
    after = snapshot(run)
    assert after["encoder.pt"] == before["encoder.pt"] and after["encoder_stgcn.pt"] == before["encoder_stgcn.pt"]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 3  # the training state was saved
    assert not [p for p in run.rglob("*.tmp")]


# --- property: damaged run folders never crash, never replace good outputs --------------------

DAMAGED = ("config.yaml", "checkpoints/last.pt", "encoder.pt")


@pytest.fixture(scope="module")
def evaluated(finished, tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the finished run and a linear evaluation of it (the good outputs to keep)."""
    base = tmp_path_factory.mktemp("evaluated")
    run = copy_run(finished, base / "run")
    code, _, stderr = invoke("linear", "--encoder", run, "--epochs", "1", "--no-cache", "--out", base / "eval", "--json")
    assert code == 0, stderr
    return run, base / "eval"


damage = st.tuples(
    st.sampled_from(DAMAGED),
    st.one_of(
        st.tuples(st.just("truncate"), st.floats(0.0, 0.99)),
        st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0.0, 0.999), st.integers(1, 255)), min_size=1, max_size=4)),
    ),
)


def apply_damage(path: Path, how: tuple) -> None:
    data = bytearray(path.read_bytes())
    kind, arg = how
    if kind == "truncate":
        del data[int(len(data) * arg):]
    else:
        for where, xor in arg:
            data[int(len(data) * where)] ^= xor
    path.write_bytes(bytes(data))


@settings(max_examples=15, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(damage=damage)
def test_damaged_run_files_give_exit_0_1_or_2_one_line_one_document_and_keep_good_outputs(
        evaluated, tmp_path_factory, damage):
    name, how = damage
    base = tmp_path_factory.mktemp("damaged")
    run = copy_run(evaluated[0], base / "run")
    out = base / "eval"
    shutil.copytree(evaluated[1], out)
    apply_damage(run / name, how)
    commands = (
        (["pretrain", "--out", run, "--json"], run),
        (["linear", "--encoder", run, "--epochs", "1", "--no-cache", "--out", out, "--json"], out),
    )
    for args, outputs in commands:
        before = snapshot(outputs)
        code, stdout, stderr = invoke(*args)
        assert code in (0, 1, 2), (args[0], damage, stderr)
        if code == 0:
            json.loads(stdout)
            assert "Traceback" not in stderr
        else:
            assert_failure(code, stdout, stderr)
            assert snapshot(outputs) == before, (args[0], damage)  # nothing replaced by a failure
