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
from torch import nn

from skelctl.augment.inputs import ClipView
from skelctl.data.clips import ClipBank
from skelctl.engine.config import StageConfig
from skelctl.evaluate.encoders import LoadedEncoder
from skelctl.evaluate.features import ClipSource
from skelctl.evaluate.heads import (
    Standardize,
    epoch_progress,
    linear_classifier,
    sized_stage,
    train_classifier,
)
from skelctl.evaluate.jobs import EvalJob, clip_source, default_out_dir, output_name
from skelctl.evaluate.report import Trained, finish
from skelctl.models.layers import frozen


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
    test_features = test_features.to(device)

    def inputs(idx: torch.Tensor) -> torch.Tensor:
        if isinstance(train, torch.Tensor):
            return train[idx.to(train.device)].to(device)
        with frozen(loaded.encoder):
            return loaded.encoder(view.inputs(train, idx, stage.train_crop, gen)).float()

    return train_classifier(classifier, stage, train_labels, inputs, lambda: classifier(test_features),
                            test_labels.to(device), num_classes, gen, on_epoch=on_epoch)


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
        train: torch.Tensor | ClipBank = fixed_train if stage.train_crop is None else source.bank(train_idx, view)
        with epoch_progress(f"linear {view.stream}", stage.epochs) as show:
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
