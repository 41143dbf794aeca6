"""Checkpoints, exported encoders and run directories."""

from __future__ import annotations

import json
import os
import re

import pytest
import torch
from helpers import run_skelctl, tiny_overrides, write_tiny_dataset

from skelctl.data.layout import get_layout
from skelctl.engine.checkpoint import (
    EncoderInfo,
    load_checkpoint,
    load_encoder,
    load_first_good,
    save_checkpoint,
    save_encoder,
)
from skelctl.engine.rundir import RunDir, link_latest, new_run_dir
from skelctl.errors import SkelctlError
from skelctl.models.registry import build_encoder


def test_checkpoint_round_trip_keeps_the_previous_one(tmp_path):
    last, prev = tmp_path / "last.pt", tmp_path / "last.prev.pt"
    save_checkpoint(last, {"model": {"w": torch.ones(3)}, "step": 1}, keep_previous=prev)
    assert not prev.exists()
    save_checkpoint(last, {"model": {"w": torch.zeros(3)}, "step": 2}, keep_previous=prev)
    assert load_checkpoint(last)["step"] == 2 and load_checkpoint(prev)["step"] == 1
    assert torch.equal(load_checkpoint(prev)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_pickled_objects_and_foreign_files_are_refused(tmp_path):
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "skelctl-checkpoint/1", "step": 1, "odd": ValueError("x")}, pickled)
    with pytest.raises(SkelctlError, match=r"pickled\.pt: holds a Python object \(exceptions\.ValueError\), not only tensors"):
        load_checkpoint(pickled)
    other = tmp_path / "other.pt"
    torch.save({"step": 1}, other)
    with pytest.raises(SkelctlError, match="expected a skelctl-checkpoint/1 file, found None"):
        load_checkpoint(other)


def test_first_good_checkpoint_skips_broken_ones_with_a_warning(tmp_path, capsys):
    last, prev = tmp_path / "last.pt", tmp_path / "last.prev.pt"
    save_checkpoint(prev, {"step": 4})
    save_checkpoint(last, {"step": 5})
    last.write_bytes(last.read_bytes()[:100])
    state, path = load_first_good([last, prev])
    assert (state["step"], path) == (4, prev)
    assert "warning: skipping checkpoint" in capsys.readouterr().err
    assert load_first_good([tmp_path / "missing.pt"]) is None
    prev.write_bytes(b"garbage")
    with pytest.raises(SkelctlError, match=r"no readable checkpoint to resume from \(2 broken\)"):
        load_first_good([last, prev])


def tiny_encoder():
    return build_encoder("stgcn", get_layout("ntu25"), frames=16, base_channels=4, feature_dim=32)


def test_encoder_files_written_before_encoder_info_still_load(tmp_path):
    """An encoder.pt of an earlier version: `info` a plain dict without the later keys
    (normalize), with a key this version does not know; the defaults fill what is missing."""
    encoder = tiny_encoder()
    old_info = {"method": "skelemix", "preset": "skelemix", "dataset": "ntu60.h5", "benchmark": "xsub",
                "stream": "joint", "frames": 16, "layout": get_layout("ntu25").to_dict(),
                "epoch": 7, "retired_key": [1, 2]}
    torch.save({"format": "skelctl-encoder/1", "config": dict(encoder.config),
                "state_dict": encoder.state_dict(), "info": old_info}, tmp_path / "old.pt")
    _, info = load_encoder(tmp_path / "old.pt")
    assert (info.method, info.benchmark, info.stream, info.frames, info.epoch) == ("skelemix", "xsub", "joint", 16, 7)
    assert info.normalize == "none" and info.seed is None and info.preprocess_options is None
    torch.save({"format": "skelctl-encoder/1", "config": dict(encoder.config),
                "state_dict": encoder.state_dict(), "info": {"frames": "16"}}, tmp_path / "bad.pt")
    with pytest.raises(SkelctlError, match=r"bad.pt: encoder info: 'frames' must be a positive integer, got '16'"):
        load_encoder(tmp_path / "bad.pt")


def test_encoder_file_rebuilds_the_same_network(tmp_path):
    torch.manual_seed(0)
    encoder = tiny_encoder().eval()
    info = {"method": "skelemix", "epoch": 3, "layout": get_layout("ntu25").to_dict()}
    save_encoder(tmp_path / "encoder.pt", encoder, info)
    loaded, loaded_info = load_encoder(tmp_path)  # a run directory resolves to its encoder.pt
    assert loaded_info == EncoderInfo(method="skelemix", epoch=3, layout=info["layout"])
    assert loaded_info.to_dict() == {**info, "frames": 64, "normalize": "none"} and not loaded.training
    x = torch.randn(2, 3, 16, 25, 2)
    assert torch.equal(loaded(x), encoder(x))
    raw = torch.load(tmp_path / "encoder.pt", weights_only=True)
    assert raw["format"] == "skelctl-encoder/1" and raw["config"]["name"] == "stgcn"
    (tmp_path / "empty").mkdir()
    with pytest.raises(SkelctlError, match="empty: no encoder.pt in this run directory"):
        load_encoder(tmp_path / "empty")
    with pytest.raises(SkelctlError, match="nowhere: file not found"):
        load_encoder(tmp_path / "nowhere")


def test_run_directory_names_links_and_metrics(tmp_path):
    first = new_run_dir("skelemix", "data/ntu60.h5", "xsub", root=tmp_path)
    assert re.fullmatch(r"skelemix-ntu60-xsub-\d{8}-\d{6}", first.path.name)
    first.prepare()
    second = new_run_dir("skelemix", "ntu60", "xsub", root=tmp_path)
    assert second.path != first.path  # the same second gets a suffix
    link_latest(first)
    assert os.readlink(tmp_path / "latest") == first.path.name
    run = RunDir(first.path)
    for step in (1, 2, 3):
        run.append_metrics({"kind": "step", "step": step})
    with run.metrics_path.open("a") as f:
        f.write('{"kind": "step", "st')  # what a kill in mid-write leaves
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]
    run.truncate_metrics(2)
    assert [json.loads(line)["step"] for line in run.metrics_path.read_text().splitlines()] == [1, 2]


def test_default_run_goes_to_runs_root_and_its_encoder_loads(tmp_path):
    data = write_tiny_dataset(tmp_path / "tiny.h5", per_class_train=4, per_class_test=2)
    runs = tmp_path / "runs"
    result = run_skelctl("pretrain", "--data", str(data), "--json", *tiny_overrides(**{"train.epochs": 1}),
                         env={"SKELCTL_RUNS": str(runs)})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    latest = runs / "latest"
    assert latest.is_symlink() and latest.resolve() == (runs / os.readlink(latest)).resolve()
    assert re.fullmatch(r"skelemix-tiny-xsub-\d{8}-\d{6}", os.readlink(latest))
    assert summary["run_dir"] == str(runs / os.readlink(latest))
    encoder, info = load_encoder(latest)
    assert info.method == "skelemix" and info.preset == "skelemix" and info.epoch == 1
    assert (info.benchmark, info.stream, info.frames, info.dataset) == ("xsub", "joint", 32, str(data))
    assert info.layout["name"] == "ntu25" and info.preprocess_options == {"synthetic": "pretrain tests"}
    # encoder.pt holds exactly the query backbone of the final training state
    model = load_checkpoint(latest / "checkpoints" / "last.pt")["model"]
    prefix = "branch.query.encoder."
    backbone = {k[len(prefix):]: v for k, v in model.items() if k.startswith(prefix)}
    state = encoder.state_dict()
    assert backbone.keys() == state.keys()
    assert all(torch.equal(backbone[k], state[k]) for k in state)
