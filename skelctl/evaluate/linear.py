"""Linear evaluation (SPEC 6): a frozen encoder (BN in eval mode) and a linear classifier on its
pooled backbone feature.

Without train-time augmentation (SkeleMixCLR's protocol) the features are computed once (and
cached on disk), so the 150 classifier epochs cost seconds. With a random train crop (ISC's
protocol) each batch is cropped and embedded afresh, still under `frozen`.
The reported number is the LAST epoch's; the best epoch is kept in the history for `--report-best`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from skelctl.console import progress
from skelctl.data.clips import ClipBank
from skelctl.engine.config import StageConfig
from skelctl.evaluate.features import ClipSource, ClipView, LoadedEncoder, frozen
from skelctl.evaluate.protocols import (
    EvalJob,
    Trained,
    batches,
    classification_report,
    clip_source,
    default_out_dir,
    finish,
    lr_at,
    make_optimizer,
    output_name,
    sized_stage,
)

CLASSIFIER_INIT_STD = 0.02  # the SkeleMixCLR reference initialises its new fc N(0, 0.02)


def linear_classifier(in_dim: int, num_classes: int, gen: torch.Generator) -> nn.Linear:
    """N(0, 0.02) weights, zero bias, drawn from `gen` (reproducible whatever ran before)."""
    layer = nn.Linear(in_dim, num_classes)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen, device=gen.device)
                           * CLASSIFIER_INIT_STD)
        layer.bias.zero_()
    return layer


class Standardize(nn.Module):
    """z = (x - mean) / std with fixed statistics: BatchNorm without affine, frozen in eval mode.

    Why: an SGD probe at the papers' lr 3.0 oscillates on features whose channels differ in
    scale by orders of magnitude (measured on a SkeleMixCLR+ encoder: train loss 113 after 10
    epochs), so its last-epoch accuracy measures the optimiser, not the features. A fixed
    affine map can be folded into the linear layer: what the probe can express is unchanged."""

    def __init__(self, reference: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", reference.mean(0))
        self.register_buffer("std", reference.std(0).clamp_min(1e-6))  # a dead channel stays 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def linear_probe(
    loaded: LoadedEncoder,
    view: ClipView,
    train: torch.Tensor | ClipBank,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    stage: StageConfig,
    num_classes: int,
    seed: int,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    standardize_with: torch.Tensor | None = None,
) -> Trained:
    """Train a linear layer on frozen features; test it after every epoch.

    `train` is the (N, D) train features when `stage.train_crop` is None; with a train crop it
    is the `ClipBank` each batch is cropped from (seeded generator) and embedded, frozen.
    `standardize_with` (train features, with `stage.standardize`) puts a `Standardize` of their
    statistics in front of the layer.
    """
    if stage.standardize != (standardize_with is not None):
        raise TypeError("linear_probe: standardize_with is given exactly when stage.standardize")
    if (stage.train_crop is None) != isinstance(train, torch.Tensor):
        raise TypeError("linear_probe: fixed features without a train crop, a ClipBank with one")
    device = train_labels.device
    gen = torch.Generator(device=device).manual_seed(seed)
    classifier: nn.Module = linear_classifier(loaded.feature_dim, num_classes, gen)
    if standardize_with is not None:
        classifier = nn.Sequential(Standardize(standardize_with.float()), classifier)
    classifier = classifier.to(device)
    optimizer = make_optimizer(classifier.parameters(), stage)
    test_features, test_labels = test_features.to(device), test_labels.to(device)
    history: list[dict[str, Any]] = []
    for epoch in range(stage.epochs):
        loss_sum, seen = 0.0, 0
        epoch_batches = batches(len(train_labels), stage.batch_size, gen, device)
        for step, idx in enumerate(epoch_batches):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(stage, epoch, (step + 1) / len(epoch_batches))
            if isinstance(train, torch.Tensor):
                features = train[idx.to(train.device)].to(device)
            else:
                with frozen(loaded.encoder):
                    features = loaded.encoder(view.inputs(train, idx, stage.train_crop, gen)).float()
            loss = F.cross_entropy(classifier(features), train_labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
        with torch.no_grad():
            scores = classifier(test_features)
        report = classification_report(scores, test_labels, num_classes)
        entry = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                 "loss": loss_sum / max(seen, 1), **report.summary()}
        history.append(entry)
        if on_epoch is not None:
            on_epoch(entry)
    return Trained(scores.cpu(), history)


def run_linear(
    job: EvalJob,
    stage: StageConfig,
    seed: int,
    source: ClipSource,
) -> tuple[list[Trained], torch.Tensor, int]:
    """Linear-probe every stream's encoder on the job's split; clips are read only for features
    not in the cache and for train-time crops.

    Returns the per-stream results, the test labels and the number of training samples.
    """
    ds = job.dataset
    train_idx, test_idx = ds.split(job.benchmark, "train"), ds.split(job.benchmark, "test")
    train_labels = torch.as_tensor(ds.labels[train_idx], device=job.device)
    test_labels = torch.as_tensor(ds.labels[test_idx], device=job.device)
    results = []
    for loaded, view in zip(job.encoders, job.views, strict=True):
        loaded.encoder.to(job.device)
        test_features = source.features(loaded, view, test_idx, stage.test_crop, "test")
        fixed_train = (source.features(loaded, view, train_idx, stage.test_crop, "train")
                       if stage.train_crop is None or stage.standardize else None)
        # without a train crop the train features are fixed; standardizing needs them as well
        train: torch.Tensor | ClipBank = fixed_train if stage.train_crop is None else source.bank(train_idx, view.normalize)
        with progress() as bar:
            task = bar.add_task(f"linear {view.stream}", total=stage.epochs)

            def show(entry: dict[str, Any], bar=bar, task=task, stream=view.stream) -> None:
                bar.update(task, advance=1, description=(
                    f"linear {stream} loss {entry['loss']:.3f} top-1 {entry['top1']:.2f}"))

            results.append(linear_probe(loaded, view, train, train_labels, test_features,
                                        test_labels, stage, job.num_classes, seed, on_epoch=show,
                                        standardize_with=fixed_train if stage.standardize else None))
    return results, test_labels.cpu(), len(train_idx)


def evaluate_linear(
    job: EvalJob,
    stage: StageConfig,
    out: Path | None,
    seed: int,
    report_best: bool = False,
    use_cache: bool = True,
) -> dict[str, Any]:
    """The linear protocol end to end: train, report, write `out` (default
    `<run>/eval/linear-<benchmark>/`), return the JSON result."""
    out_dir = default_out_dir(job, output_name("linear", job), out)
    stage = sized_stage(stage, len(job.dataset.split(job.benchmark, "train")))
    results, labels, num_train = run_linear(job, stage, seed, clip_source(job, out_dir, use_cache))
    return finish(job, out_dir, "linear", stage, results, labels, report_best,
                  {"num_train": num_train, "seed": seed})
