"""Linear evaluation: schedule, classifier training, frozen BN, reports, outputs, streams."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FRAMES, make_run, tiny_encoder
from torch import nn

from skelctl.augment.inputs import ClipView
from skelctl.data.clips import ClipBank
from skelctl.data.layout import get_layout
from skelctl.data.store import open_dataset
from skelctl.engine.checkpoint import EncoderInfo
from skelctl.engine.config import StageConfig
from skelctl.errors import SkelctlError
from skelctl.evaluate.encoders import LoadedEncoder, open_encoder
from skelctl.evaluate.features import ClipSource, FeatureCache, embed
from skelctl.evaluate.heads import lr_at
from skelctl.evaluate.jobs import resolve_job
from skelctl.evaluate.linear import evaluate_linear, linear_probe
from skelctl.evaluate.report import classification_report


def test_lr_schedule_warmup_then_steps() -> None:
    stage = StageConfig(lr=0.1, milestones=(50, 70, 90), warmup_epochs=10)
    assert lr_at(stage, 0, 0.5) == pytest.approx(0.1 * 0.5 / 10)  # half-way through epoch 0
    assert lr_at(stage, 9, 1.0) == pytest.approx(0.1)  # warm-up ends with epoch 9
    assert lr_at(stage, 49, 1.0) == pytest.approx(0.1)
    assert lr_at(stage, 50, 0.1) == pytest.approx(0.01)  # "x0.1 at 50": epoch 50 (0-based) on
    assert lr_at(stage, 95, 0.1) == pytest.approx(1e-4)
    plain = StageConfig(lr=3.0, milestones=(80,))
    assert lr_at(plain, 0, 0.01) == 3.0 and lr_at(plain, 80, 0.5) == pytest.approx(0.3)


def test_classification_report_counts() -> None:
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    labels = torch.tensor([0, 1, 1, 0])
    report = classification_report(scores, labels, 3)
    assert report.top1 == pytest.approx(50.0)
    assert report.top5 == pytest.approx(100.0)  # k capped at the 3 classes
    assert report.confusion.tolist() == [[1, 0, 1], [1, 1, 0], [0, 0, 0]]
    assert report.per_class[:2].tolist() == [50.0, 50.0] and np.isnan(report.per_class[2])


def _loaded(encoder: nn.Module) -> LoadedEncoder:
    return LoadedEncoder(encoder, "test", "0" * 64, EncoderInfo(frames=FRAMES))


def test_linear_probe_learns_fixed_features_deterministically() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=gen) * 3
    labels = torch.arange(3).repeat_interleave(20)
    features = centres[labels] + torch.randn(60, 16, generator=gen)
    stage = StageConfig(epochs=20, batch_size=16, lr=0.1, milestones=(15,), weight_decay=0.0)
    view = ClipView(FRAMES, "joint", get_layout("ntu25"))
    runs = [linear_probe(_loaded(tiny_encoder()), view, features, labels, features, labels, stage, 3,
                         seed=5) for _ in range(2)]
    assert runs[0].history[-1]["top1"] == 100.0
    assert runs[0].history[0]["loss"] > runs[0].history[-1]["loss"]
    assert torch.equal(runs[0].scores, runs[1].scores)
    assert runs[0].history == runs[1].history
    other = linear_probe(_loaded(tiny_encoder()), view, features, labels, features, labels, stage, 3,
                         seed=6)
    assert not torch.equal(other.scores, runs[0].scores)


def test_standardized_probe_ignores_channel_scales_and_converges_where_plain_sgd_does_not() -> None:
    """`standardize`: the probe sees z-scores of the train statistics, so rescaling a feature
    channel changes nothing; at the papers' lr 3.0 on channels of very different scales, plain
    SGD oscillates while the standardized probe separates the classes."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(30)
    features = torch.randn(4, 16, generator=gen)[labels] + 0.5 * torch.randn(120, 16, generator=gen)
    scales = 10.0 ** torch.linspace(-2, 2, 16)  # the tiny encoder's feature size
    view = ClipView(FRAMES, "joint", get_layout("ntu25"))
    stage = StageConfig(epochs=30, batch_size=32, lr=3.0, milestones=(20,), weight_decay=0.0, standardize=True)

    def probe(x: torch.Tensor, stage: StageConfig) -> object:
        return linear_probe(_loaded(tiny_encoder()), view, x, labels, x, labels, stage, 4, seed=1,
                            standardize_with=x if stage.standardize else None)

    unit, scaled = probe(features, stage), probe(features * scales, stage)
    torch.testing.assert_close(unit.scores, scaled.scores, rtol=1e-4, atol=1e-4)
    assert scaled.history[-1]["top1"] == 100.0
    plain = probe(features * scales, StageConfig(**{**stage.__dict__, "standardize": False}))
    assert plain.history[-1]["loss"] > 10 * scaled.history[-1]["loss"]
    with pytest.raises(TypeError, match="standardize_with"):
        linear_probe(_loaded(tiny_encoder()), view, features, labels, features, labels, stage, 4, seed=1)


def test_only_the_linear_stage_may_standardize() -> None:
    from skelctl.engine.config import load_preset

    assert not load_preset("skelemix").evaluation.linear.standardize  # the papers' probe
    assert load_preset("skelemix", ["evaluation.linear.standardize=true"]).evaluation.linear.standardize
    with pytest.raises(SkelctlError, match="semisup_10.standardize"):
        load_preset("demo", ["evaluation.semisup_10.standardize=true"])


def test_linear_probe_with_train_crops_keeps_encoder_frozen(tiny_data: Path) -> None:
    ds = open_dataset(tiny_data)
    train = ClipBank.from_dataset(ds, ds.split("xsub", "train"), "cpu")
    encoder = tiny_encoder()
    encoder.train()  # the probe must switch it to eval itself, and restore it afterwards
    modes: list[bool] = []
    norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.register_forward_pre_hook(lambda module, _: modes.append(module.training))
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    view = ClipView(FRAMES, "joint", ds.layout)
    test_features = embed(encoder, train, view, 1.0)
    stage = StageConfig(epochs=2, batch_size=16, lr=0.1, train_crop=(0.5, 1.0), test_crop=0.95)
    modes.clear()
    linear_probe(_loaded(encoder), view, train, train.labels, test_features, train.labels, stage,
                 len(ds.class_names), seed=0)
    assert modes and not any(modes), "BN must run in eval mode during linear evaluation"
    after = encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the encoder must stay frozen"
    assert encoder.training


def test_evaluate_linear_reports_last_epoch_and_writes_outputs(tiny_data: Path, tmp_path: Path) -> None:
    run = make_run(tmp_path, tiny_data)
    job = resolve_job([str(run)], device="cpu")
    assert job.benchmark == "xsub" and job.dataset_path == tiny_data  # defaults from the run
    result = evaluate_linear(job, job.evaluation.linear, None, seed=0)
    out = run / "eval" / "linear-xsub"
    assert result["out"] == str(out)
    for key in ("protocol", "top1", "top5", "epoch", "epochs", "streams", "schedule", "dataset",
                "benchmark", "encoders", "num_train", "num_test"):
        assert key in result
    assert result["protocol"] == "linear" and result["epoch"] == "last" and "best" not in result
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 4 and result["top1"] == history[-1]["top1"]
    assert json.loads((out / "result.json").read_text()) == result
    confusion = (out / "confusion.csv").read_text().splitlines()
    assert len(confusion) == 1 + len(job.dataset.class_names)
    counts = sum(sum(int(x) for x in row.split(",")[1:]) for row in confusion[1:])
    assert counts == result["num_test"] == 16
    assert np.load(out / "scores.npy").shape == (16, 4)
    assert len(list((run / "eval" / "features").glob("*.npy"))) == 2  # train and test features

    again = evaluate_linear(job, job.evaluation.linear, tmp_path / "other", seed=0, report_best=True)
    assert again["top1"] == result["top1"]  # cached features give the same numbers
    assert again["best"]["top1"] == max(h["top1"] for h in history)
    assert "test set" in again["best"]["note"]


def test_streams_ensemble_and_checks(tiny_data: Path, tmp_path: Path) -> None:
    runs = [make_run(tmp_path, tiny_data, f"run_{s}", stream=s, seed=i)
            for i, s in enumerate(("joint", "motion"))]
    job = resolve_job([str(r) for r in runs], ["joint", "motion"], device="cpu")
    result = evaluate_linear(job, job.evaluation.linear, tmp_path / "out", seed=0)
    assert set(result["streams"]) == {"joint", "motion"}
    assert result["ensemble"] == "sum of softmax scores"
    for stream in ("joint", "motion"):
        assert (tmp_path / "out" / stream / "per_class.csv").is_file()
    joint = np.load(tmp_path / "out" / "joint" / "scores.npy")
    motion = np.load(tmp_path / "out" / "motion" / "scores.npy")
    both = torch.softmax(torch.from_numpy(joint), 1) + torch.softmax(torch.from_numpy(motion), 1)
    assert np.allclose(np.load(tmp_path / "out" / "scores.npy"), both.numpy(), atol=1e-6)

    with pytest.raises(SkelctlError, match="one --encoder per stream"):
        resolve_job([str(runs[0])], ["joint", "motion"], device="cpu")
    with pytest.raises(SkelctlError, match="pretrained on the motion stream"):
        resolve_job([str(runs[0]), str(runs[1])], ["joint", "bone"], device="cpu")


def test_random_encoder_needs_data_and_is_reproducible(tiny_data: Path) -> None:
    with pytest.raises(SkelctlError, match="pass --data"):
        resolve_job(["random:stgcn"], device="cpu")
    layout = get_layout("ntu25")
    a, b = (open_encoder("random:stgcn", layout=layout, seed=3) for _ in range(2))
    c = open_encoder("random:stgcn", layout=layout, seed=4)
    assert a.sha256 == b.sha256 != c.sha256
    assert all(torch.equal(x, y) for x, y in zip(a.encoder.state_dict().values(),
                                                 b.encoder.state_dict().values(), strict=True))
    job = resolve_job(["random:stgcn"], data=str(tiny_data), device="cpu")
    assert job.benchmark == "xsub" and job.encoders[0].is_random
    with pytest.raises(SkelctlError, match="pass --out"):
        evaluate_linear(job, job.evaluation.linear, None, seed=0)


def test_a_random_encoder_gets_the_batchnorm_statistics_of_the_training_clips(tiny_data: Path) -> None:
    layout = get_layout("ntu25")
    raw = open_encoder("random:stgcn", layout=layout, seed=0)
    job = resolve_job(["random:stgcn"], data=str(tiny_data), device="cpu", seed=0)
    calibrated = job.encoders[0]
    assert calibrated.sha256 != raw.sha256  # the cache key covers the calibration clips
    assert "xsub training clips" in calibrated.info.batchnorm
    train = job.dataset.split("xsub", "train")
    # read once (in the encoder's input coordinates), kept for the protocols
    assert list(job.banks) == [b"none:" + train.astype("int64").tobytes()]
    source = ClipSource(job.dataset, job.dataset_path, job.device, FeatureCache(None))
    # at initialisation (running mean 0, variance 1) ten N(0, 0.02) blocks shrink the input to
    # almost nothing; with the clips' own statistics every block is normalised again
    tiny = source.features(raw, job.views[0], train, 1.0, "raw").norm(dim=1).mean()
    fitted = source.features(calibrated, job.views[0], train, 1.0, "fitted").norm(dim=1).mean()
    assert tiny < 1e-3 < 0.1 < fitted
    norms = [m for m in calibrated.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(not m.training for m in norms)
    assert any(float(m.running_var.mean()) != 1.0 for m in norms)
