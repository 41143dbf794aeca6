"""`skelctl demo`: the whole pipeline end to end (tiny sizes), its outputs, and its refusals."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
from helpers import run_skelctl

from skelctl.data.layout import get_layout
from skelctl.demo import ENCODERS, METHODS, PROTOCOLS, random_twin, results_markdown
from skelctl.engine.checkpoint import load_encoder, save_encoder
from skelctl.errors import SkelctlError
from skelctl.models import build_encoder


def skelctl(*args: str) -> subprocess.CompletedProcess:
    return run_skelctl(*args, env={"COLUMNS": "120"}, timeout=900)


def test_demo_runs_end_to_end_and_writes_the_table(tmp_path):
    out = tmp_path / "demo"
    result = skelctl("demo", str(out), "--size", "test", "--epochs", "1", "--linear-epochs", "1",
                     "--semisup-epochs", "1", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary == json.loads((out / "results.json").read_text())
    assert set(summary["methods"]) == {key for key, _, _ in METHODS}
    for key, method in summary["methods"].items():
        assert (out / "runs" / key / "encoder.pt").is_file()
        assert (out / "random" / key / "encoder.pt").is_file()
        assert (out / "baseline-raw" / key / "eval" / "knn-xsub").is_dir()
        for label in ENCODERS:
            for protocol, _ in PROTOCOLS:
                assert 0.0 <= method[label][protocol] <= 100.0
    table = (out / "results.md").read_text()
    assert table.count("| pretrained |") == 2 and table.count("| random |") == 2
    assert table.count("| raw |") == 2
    for stage in ("synth ntu60", "pretrain SkeleMixCLR+", "pretrain ISC", "evaluate ISC random"):
        assert stage in result.stderr  # progress is shown on stderr

    again = skelctl("demo", str(out), "--size", "test")
    assert again.returncode == 2 and "not empty" in again.stderr  # never mixes with an old run
    assert (out / "results.json").is_file()


def test_demo_refuses_a_file_as_out_dir(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = skelctl("demo", str(target))
    assert result.returncode == 2 and "not a directory" in result.stderr


def test_random_twin_has_the_architecture_and_fresh_seeded_weights(tmp_path):
    layout = get_layout("ntu25")
    trained = build_encoder("stgcn", layout, frames=32, base_channels=4, feature_dim=32)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)  # "trained" weights, far from any initialisation
    save_encoder(tmp_path / "encoder.pt", trained, {"method": "skelemix", "frames": 32, "stream": "joint"})
    first = random_twin(tmp_path / "encoder.pt", tmp_path / "a" / "encoder.pt", seed=3)
    second = random_twin(tmp_path / "encoder.pt", tmp_path / "b" / "encoder.pt", seed=3)
    other = random_twin(tmp_path / "encoder.pt", tmp_path / "c" / "encoder.pt", seed=4)
    twin, info = load_encoder(first)
    assert twin.config == trained.config
    assert info.method == "random" and info.frames == 32 and info.stream == "joint"
    same, different = load_encoder(second)[0].state_dict(), load_encoder(other)[0].state_dict()
    for name, value in twin.state_dict().items():
        assert torch.equal(value, same[name])  # seeded: reproducible
    for name, value in twin.named_parameters():
        assert not torch.equal(value, trained.state_dict()[name])  # nothing of the trained weights
    assert any(not torch.equal(v, different[k]) for k, v in twin.state_dict().items())


def test_results_markdown_has_one_row_per_method_and_encoder():
    numbers = {"linear": 50.0, "knn": 40.25, "semisup": 30.0}
    summary = {"benchmark": "xsub", "seconds": 12.0, "methods": {
        "skelemix": {"name": "SkeleMixCLR+", "precision": "bf16", "pretrained": numbers,
                     "random": {k: 1.0 for k in numbers}}}}
    table = results_markdown(summary)
    assert "pretrained in SkeleMixCLR+ bf16" in table
    assert "| SkeleMixCLR+ | pretrained | 50.0 | 40.2 | 30.0 |" in table
    assert "| SkeleMixCLR+ | random | 1.0 | 1.0 | 1.0 |" in table


def test_force_clears_only_what_a_demo_wrote(tmp_path):
    from skelctl.demo import _claim

    (tmp_path / "runs" / "skelemix").mkdir(parents=True)
    (tmp_path / "results.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SkelctlError, match="not empty"):
        _claim(tmp_path, force=False)
    _claim(tmp_path, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_the_isc_demo_preset_builds_small_encoders():
    """`method.representation_kwargs` reaches each representation's backbone."""
    from skelctl.engine.config import load_preset
    from skelctl.methods import build_method

    cfg = load_preset("demo-isc")
    method = build_method(cfg.method, get_layout("ntu25"), cfg.data.frames)
    encoders = method.export_encoders()
    assert set(encoders) == {"graph", "image"}
    assert encoders["image"].config["name"] == "cnn" and encoders["image"].config["channels"] == 32
    assert encoders["graph"].config["name"] == "stgcn" and encoders["graph"].config["base_channels"] == 8
    assert method.primary == "graph"
    with pytest.raises(SkelctlError, match="representation_kwargs"):
        load_preset("demo-isc", ["method.representation_kwargs={skeleton: {hidden_size: 8}}"])
