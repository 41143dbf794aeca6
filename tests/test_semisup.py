"""Semi-supervised evaluation and fine-tuning: labelled subsets, BN in train mode, clipping."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FRAMES, make_run, tiny_encoder
from torch import nn

from skelctl.augment.inputs import ClipView
from skelctl.data.clips import ClipBank
from skelctl.data.store import open_dataset
from skelctl.engine.config import EvaluationConfig, StageConfig
from skelctl.errors import SkelctlError
from skelctl.evaluate.heads import override
from skelctl.evaluate.jobs import resolve_job
from skelctl.evaluate.semisup import evaluate_semisup, fine_tune, semisup_stage, stratified_subset

SIZES = (250, 100, 37, 3, 1)  # samples per class


def _labels() -> np.ndarray:
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(SIZES)])
    return np.random.default_rng(0).permutation(labels)


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.01, [3, 1, 1, 1, 1]),  # 2.5 rounds half up to 3; 0.37, 0.03, 0.01 keep at least 1
        (0.1, [25, 10, 4, 1, 1]),  # 3.7 -> 4, 0.3 -> 1
        (0.5, [125, 50, 19, 2, 1]),  # 18.5 -> 19, 1.5 -> 2, 0.5 -> 1
        (1.0, list(SIZES)),
    ],
)
def test_stratified_subset_counts(fraction: float, expected: list[int]) -> None:
    labels = _labels()
    chosen = stratified_subset(labels, fraction, seed=1)
    counts = Counter(labels[chosen].tolist())
    assert [counts[c] for c in range(len(SIZES))] == expected
    assert np.all(np.diff(chosen) > 0), "sorted, no duplicates"


def test_stratified_subset_is_seeded() -> None:
    labels = _labels()
    a, b = stratified_subset(labels, 0.1, seed=7), stratified_subset(labels, 0.1, seed=7)
    c = stratified_subset(labels, 0.1, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert Counter(labels[a].tolist()) == Counter(labels[c].tolist())
    with pytest.raises(SkelctlError, match="fraction"):
        stratified_subset(labels, 0.0, seed=0)


def test_semisup_schedules() -> None:
    evaluation = EvaluationConfig()
    assert semisup_stage(evaluation, 0.01) == StageConfig(
        epochs=150, batch_size=128, lr=0.05, milestones=(40,), weight_decay=0.0)
    assert semisup_stage(evaluation, 0.1) == StageConfig(
        epochs=150, batch_size=128, lr=0.1, milestones=(80,), weight_decay=1e-4)


def _banks(path: Path) -> tuple[ClipBank, ClipBank, ClipView]:
    ds = open_dataset(path)
    train = ClipBank.from_dataset(ds, ds.split("xsub", "train"), "cpu")
    test = ClipBank.from_dataset(ds, ds.split("xsub", "test"), "cpu")
    return train, test, ClipView(FRAMES, "joint", ds.layout)


def test_fine_tune_trains_with_bn_in_train_mode(tiny_data: Path) -> None:
    train, test, view = _banks(tiny_data)
    encoder = tiny_encoder()
    norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    modes: list[bool] = []
    for m in norms:
        m.register_forward_pre_hook(lambda module, _: modes.append(module.training))
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    stage = StageConfig(epochs=2, batch_size=8, lr=0.05, milestones=(1,))
    result = fine_tune(encoder, view, train, test, stage, num_classes=4, seed=0, eval_every=1)
    steps = len(train) // 8  # 32 clips, batches of 8
    one_epoch = [True] * steps * len(norms) + [False] * len(norms)  # train, then one test batch
    assert modes == one_epoch * 2, "BN in train mode while fine-tuning, eval mode for testing"
    after = encoder.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("running_mean" in k for k in changed) and any(k.endswith("weight") for k in changed)
    assert [h["epoch"] for h in result.history] == [1, 2] and "top1" in result.history[0]
    assert result.scores.shape == (len(test), 4)


def test_fine_tune_turns_dropout_off(tiny_data: Path) -> None:
    """The reference fine-tuned in eval mode: BN is trained here (a documented fix), dropout
    stays off as there."""
    train, test, view = _banks(tiny_data)
    encoder = nn.Sequential(tiny_encoder(), nn.Dropout(0.5))
    encoder.feature_dim = encoder[0].feature_dim
    modes: list[bool] = []
    encoder[1].register_forward_pre_hook(lambda module, _: modes.append(module.training))
    stage = StageConfig(epochs=1, batch_size=8, lr=0.05)
    fine_tune(encoder, view, train, test, stage, num_classes=4, seed=0)
    assert modes and not any(modes)


def test_gradients_are_clipped_after_backward(tiny_data: Path) -> None:
    train, test, view = _banks(tiny_data)
    stage = StageConfig(epochs=1, batch_size=len(train), lr=1.0, momentum=0.0, weight_decay=0.0)

    def change(max_norm: float) -> float:
        encoder = tiny_encoder()
        params = [p.detach().clone() for p in encoder.parameters()]
        fine_tune(encoder, view, train, test, stage, 4, seed=0, max_grad_norm=max_norm)
        return torch.sqrt(sum(((p - q) ** 2).sum() for p, q in
                              zip(encoder.parameters(), params, strict=True))).item()

    # one SGD step of lr 1 moves the encoder by at most the clipped gradient norm
    assert change(1e-3) <= 1e-3 * 1.001
    assert change(0.0) > 1e-2  # unclipped, the same step is far larger


def test_evaluate_semisup_saves_labelled_names(tiny_data: Path, tmp_path: Path) -> None:
    run = make_run(tmp_path, tiny_data)
    job = resolve_job([str(run)], device="cpu")
    stage = semisup_stage(job.evaluation, 0.25)
    result = evaluate_semisup(job, stage, 0.25, None, seed=3)
    out = run / "eval" / "semisup-0.25-xsub"
    assert result["out"] == str(out) and result["protocol"] == "semisup-0.25"
    for key in ("top1", "top5", "epoch", "fraction", "num_train", "labelled", "streams", "schedule"):
        assert key in result
    names = (out / "labelled.txt").read_text().split()
    ds = open_dataset(tiny_data)
    train_names = {ds.names[i] for i in ds.split("xsub", "train")}
    assert len(names) == result["num_train"] == 4 * 2 and set(names) <= train_names
    labels = Counter(ds.labels[ds.names.index(n)] for n in names)
    assert set(labels.values()) == {2}  # round(0.25 * 8) per class
    again = evaluate_semisup(resolve_job([str(run)], device="cpu"), stage, 0.25, tmp_path / "b", seed=3)
    assert (tmp_path / "b" / "labelled.txt").read_text().split() == names
    assert again["top1"] == result["top1"]  # same seed, same data, same CPU: same numbers


def test_a_new_epoch_count_keeps_the_schedule_shape():
    """`--epochs` scales the milestones and warm-up with the schedule: a 30-epoch schedule
    cut to 15 still decays (at 10), instead of ending at its peak learning rate."""
    stage = StageConfig(epochs=30, lr=0.1, milestones=(15, 25), warmup_epochs=3)
    half = override(stage, epochs=15, lr=None)
    assert (half.epochs, half.milestones, half.warmup_epochs, half.lr) == (15, (8, 12), 2, 0.1)
    assert override(stage, epochs=1).milestones == () and override(stage, epochs=1).warmup_epochs == 0
    assert override(stage, epochs=60).milestones == (30, 50)
    assert override(stage, lr=0.5) == replace(stage, lr=0.5)  # no new epochs: schedule kept


def test_min_steps_stretches_a_schedule_on_a_small_dataset():
    from skelctl.evaluate.heads import sized_stage

    stage = StageConfig(epochs=10, batch_size=32, milestones=(6,), warmup_epochs=1, min_steps=400)
    assert sized_stage(stage, clips=3200) == stage  # 100 steps an epoch: 1,000 >= 400
    small = sized_stage(stage, clips=284)  # 9 steps an epoch: 90 < 400
    assert small.epochs == 45 and small.milestones == (27,) and small.warmup_epochs == 4
    assert sized_stage(replace(stage, min_steps=0), clips=10) == replace(stage, min_steps=0)
