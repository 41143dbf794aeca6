"""The preset schema: shipped presets, validation messages that name the key, --set overrides."""

from __future__ import annotations

import pytest
import yaml
from helpers import run_skelctl

from skelctl.engine.config import (
    PretrainConfig,
    from_dict,
    load_preset,
    preset_names,
    to_dict,
    to_yaml,
)
from skelctl.errors import SkelctlError

SHIPPED = ("skelemix", "skeletonclr", "isc", "isc-intra", "demo")


def test_every_shipped_preset_is_listed_and_loads():
    assert set(SHIPPED) <= set(preset_names())
    for name in preset_names():
        cfg = load_preset(name)
        assert cfg.preset == name
        assert cfg.method.name in name or name == "demo"
    for name in SHIPPED:
        cfg = load_preset(name)
        assert (cfg.data.dataset, cfg.data.benchmark) == ("synth-ntu60" if name == "demo" else "ntu60", "xsub")


def test_presets_hold_the_papers_values():
    mix = load_preset("skelemix")
    assert (mix.method.moco.queue_size, mix.method.moco.temperature, mix.method.moco.momentum) == (32768, 0.2, 0.999)
    assert (mix.train.batch_size, mix.train.epochs, mix.optim.lr, mix.optim.milestones) == (128, 300, 0.1, ())
    assert mix.method.skelemix.feature_frames == (7, 11) and mix.method.skelemix.repeat == 3
    assert (mix.evaluation.linear.lr, mix.evaluation.linear.epochs, mix.evaluation.linear.milestones) == (3.0, 150, (80,))
    assert mix.evaluation.finetune.warmup_epochs == 10 and mix.evaluation.finetune.nesterov
    isc = load_preset("isc")
    assert isc.method.pair == ("sequence", "graph")
    assert (isc.method.moco.queue_size, isc.method.moco.temperature, isc.method.moco.head_batchnorm) == (16384, 0.07, False)
    assert (isc.train.batch_size, isc.train.epochs, isc.optim.lr, isc.optim.milestones) == (64, 451, 0.01, (351,))
    assert isc.evaluation.linear.milestones == (50, 70) and isc.evaluation.linear.test_crop == 0.95
    assert load_preset("skeletonclr").method.name == "skeletonclr"
    assert load_preset("isc-intra").method.name == "isc-intra"


def test_set_overrides_parse_values_as_yaml():
    cfg = load_preset("isc", ["method.pair=[graph,image]", "optim.lr=1e-3", "train.compile=true",
                              "data.dataset=data/x.h5"])
    assert cfg.method.pair == ("graph", "image")
    assert cfg.optim.lr == 0.001
    assert cfg.train.compile is True
    assert cfg.data.dataset == "data/x.h5"


def write_preset(tmp_path, body: dict) -> str:
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"method": {"moco": {"queue_sise": 10}}}, "method.moco.queue_sise: unknown key (expected one of queue_size,"),
        ({"method": {"moco": {"queue_size": "abc"}}}, "method.moco.queue_size: expected int, got 'abc'"),
        ({"train": {"precision": "fp8"}}, "train.precision: expected one of auto, fp32, bf16, fp16, got 'fp8'"),
        ({"optim": {"lr": -0.1}}, "optim.lr: expected a value >= 0.0, got -0.1"),
        ({"train": {"knn_k": [10, "x"]}}, "train.knn_k[1]: expected int, got 'x'"),
        ({"method": {"pair": ["graph"]}}, "method.pair: expected a list of 2"),
        ({"train": {"compile": 1}}, "train.compile: expected bool, got 1 (int)"),
        ({"data": "ntu60"}, "data: expected a mapping, got 'ntu60'"),
    ],
)
def test_validation_errors_name_the_file_and_dotted_key(tmp_path, body, expected):
    path = write_preset(tmp_path, body)
    with pytest.raises(SkelctlError) as info:
        load_preset(path)
    assert info.value.message.startswith(f"{path}: {expected}")
    assert "\n" not in info.value.message


def test_bad_override_names_the_key():
    with pytest.raises(SkelctlError, match=r"^--set: method\.moco\.queue_size: expected int, got 'many'$"):
        load_preset("skelemix", ["method.moco.queue_size=many"])
    with pytest.raises(SkelctlError, match="expected KEY.SUB=VALUE"):
        load_preset("skelemix", ["optim.lr"])
    with pytest.raises(SkelctlError, match=r"unknown preset 'nope' \(shipped: .*skelemix"):
        load_preset("nope")


def test_method_keys_left_out_take_that_methods_paper_values(tmp_path):
    cfg = load_preset(write_preset(tmp_path, {"method": {"name": "isc", "moco": {"momentum": 0.99}}}))
    assert cfg.method.moco.queue_size == 16384 and cfg.method.moco.temperature == 0.07
    assert cfg.method.moco.momentum == 0.99
    assert cfg.method.augment.temporal == "crop_resize"


def test_resolved_yaml_round_trips():
    cfg = load_preset("isc", ["method.pair=[graph,image]"])
    again = from_dict(PretrainConfig, yaml.safe_load(to_yaml(cfg)), "config.yaml")
    assert again == cfg
    assert to_dict(again) == to_dict(cfg)


def test_cli_exits_2_with_one_line_naming_the_key(tmp_path):
    path = write_preset(tmp_path, {"method": {"moco": {"queue_size": "abc"}}})
    result = run_skelctl("pretrain", "--preset", path, "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {path}: method.moco.queue_size: expected int, got 'abc'"
    assert not (tmp_path / "run").exists()
    result = run_skelctl("pretrain", "--set", "train.batch_size=0", "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "train.batch_size: expected a value >= 1, got 0" in result.stderr
