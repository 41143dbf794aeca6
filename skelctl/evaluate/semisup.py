"""Semi-supervised evaluation and full fine-tuning (SPEC 6): the whole encoder plus a linear
layer trained on a labelled fraction of the train split, BN in TRAIN mode.

The labelled subset keeps round(p * n_c) samples of every class c (at least one), drawn with a
seeded generator, so two runs with one seed train on the same samples (their names are saved).
Gradients are clipped after `backward` (the reference clipped the previous step's gradients).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from skelctl.atomic import write_text_atomic
from skelctl.augment.inputs import ClipView
from skelctl.augment.spatial import rotate
from skelctl.data.clips import ClipBank
from skelctl.engine.config import EvaluationConfig, StageConfig
from skelctl.errors import SkelctlError
from skelctl.evaluate.features import embed
from skelctl.evaluate.heads import Classifier, epoch_progress, sized_stage, train_classifier
from skelctl.evaluate.jobs import EvalJob, default_out_dir, output_name
from skelctl.evaluate.report import Trained, finish

MAX_GRAD_NORM = 35.0  # the SkeleMixCLR fine-tuning reference's clip value


def stratified_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted positions into `labels` of round(fraction * n_c) samples per class (at least 1).

    round() is half-up (2.5 -> 3), not Python's half-to-even; classes are visited in label
    order and sampled without replacement from one seeded generator.
    """
    if not 0.0 < fraction <= 1.0:
        raise SkelctlError(f"--fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        keep = min(len(members), max(1, math.floor(fraction * len(members) + 0.5)))
        chosen.append(rng.choice(members, size=keep, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def semisup_stage(evaluation: EvaluationConfig, fraction: float) -> StageConfig:
    """The 1% schedule up to sqrt(1% x 10%) ~ 3.2%, the 10% schedule above (SPEC 6 gives
    these two); fine-tuning on everything is `evaluation.finetune`."""
    return evaluation.semisup_1 if fraction <= math.sqrt(0.01 * 0.1) else evaluation.semisup_10


def fine_tune(
    encoder: nn.Module,
    view: ClipView,
    train: ClipBank,
    test: ClipBank,
    stage: StageConfig,
    num_classes: int,
    seed: int,
    eval_every: int = 0,
    max_grad_norm: float = MAX_GRAD_NORM,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> Trained:
    """Train `encoder` + a linear layer on `train` (BN in train mode, dropout off as in the
    reference, which fine-tuned in eval mode); test after the last epoch, and every
    `eval_every` epochs when > 0."""
    gen = torch.Generator(device=train.device).manual_seed(seed)
    model = Classifier(encoder, num_classes, gen).to(train.device)
    train_crop = stage.train_crop or (stage.test_crop, stage.test_crop)
    crop_gen = gen if stage.train_crop is not None else None

    def inputs(idx: torch.Tensor) -> torch.Tensor:
        x = view.inputs(train, idx, train_crop, crop_gen)
        return rotate(x, gen, stage.rotate, view.vertical_axis) if stage.rotate else x

    return train_classifier(model, stage, train.labels, inputs,
                            lambda: embed(model, test, view, stage.test_crop),  # class scores
                            test.labels, num_classes, gen, eval_every, max_grad_norm, on_epoch)


def run_semisup(
    job: EvalJob,
    stage: StageConfig,
    fraction: float,
    seed: int,
    eval_every: int = 0,
    max_grad_norm: float = MAX_GRAD_NORM,
) -> tuple[list[Trained], torch.Tensor, list[str]]:
    """Fine-tune every stream's encoder on the seeded labelled subset of the train split.

    Returns the per-stream results, the test labels and the labelled sample names.
    """
    ds = job.dataset
    train_idx, test_idx = ds.split(job.benchmark, "train"), ds.split(job.benchmark, "test")
    labelled = train_idx[stratified_subset(ds.labels[train_idx], fraction, seed)]
    results = []
    for loaded, view in zip(job.encoders, job.views, strict=True):
        train, test = view.load(ds, labelled, job.device), view.load(ds, test_idx, job.device)
        with epoch_progress(f"fine-tune {view.stream}", stage.epochs) as show:
            results.append(fine_tune(loaded.encoder, view, train, test, stage, job.num_classes,
                                     seed, eval_every, max_grad_norm, on_epoch=show))
    return results, test.labels.cpu(), [ds.names[i] for i in labelled]


def evaluate_semisup(
    job: EvalJob,
    stage: StageConfig,
    fraction: float,
    out: Path | None,
    seed: int,
    report_best: bool = False,
    eval_every: int = 0,
    max_grad_norm: float = MAX_GRAD_NORM,
    protocol: str | None = None,
) -> dict[str, Any]:
    """Semi-supervised evaluation (or, as protocol `finetune`, full fine-tuning) end to end:
    train, report, write `out` (default `<run>/eval/<protocol>-<benchmark>/`, protocol
    `semisup-<fraction>`) with the labelled sample names, return the JSON result."""
    protocol = protocol or f"semisup-{fraction:g}"
    out_dir = default_out_dir(job, output_name(protocol, job), out)
    if report_best and eval_every == 0:
        eval_every = 1
    train_labels = job.dataset.labels[job.dataset.split(job.benchmark, "train")]
    stage = sized_stage(stage, len(stratified_subset(train_labels, fraction, seed)))
    results, labels, names = run_semisup(job, stage, fraction, seed, eval_every, max_grad_norm)
    write_text_atomic(out_dir / "labelled.txt", "".join(f"{name}\n" for name in names))
    return finish(job, out_dir, protocol, stage, results, labels, report_best, {
        "fraction": fraction, "num_train": len(names), "labelled": str(out_dir / "labelled.txt"),
        "max_grad_norm": max_grad_norm, "bn": "train mode", "seed": seed})
