"""Training a classifier head: the ONE training loop of linear evaluation, semi-supervised
evaluation and fine-tuning, with its schedule (`StageConfig`: learning rate, warm-up,
milestones, epochs scaled to the data) and the classifier's layers.

A protocol builds the model (a linear layer on fixed features, or encoder + linear layer), says
how a batch's input is made from its indices and how the test scores are computed, and
`train_classifier` does the rest: a seeded shuffle per epoch, SGD with the stage's schedule,
optional gradient clipping, a test after the last epoch (and every `evaluate_every` epochs).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from skelctl.console import progress
from skelctl.engine.config import StageConfig, scaled_schedule
from skelctl.errors import SkelctlError
from skelctl.evaluate.report import Trained, classification_report

CLASSIFIER_INIT_STD = 0.02  # the SkeleMixCLR reference initialises its new fc N(0, 0.02)

# --- schedules -----------------------------------------------------------------------------------


def override(stage: StageConfig, **values: Any) -> StageConfig:
    """`stage` with the command-line values that were given (None = keep).

    A new `epochs` keeps the schedule's shape: milestones and warm-up scale with it. Why: a cut
    schedule whose milestones stay put may never decay, and BatchNorm's running statistics then
    lag so far behind the still-moving weights that eval-mode accuracy collapses
    (docs/learning-synthetic.md)."""
    given = {k: v for k, v in values.items() if v is not None}
    epochs = given.pop("epochs", None)
    if epochs is not None and epochs < 1:
        raise SkelctlError(f"--epochs must be at least 1, got {epochs}")
    stage = replace(stage, **given)
    return stage if epochs is None else scaled_stage(stage, epochs)


def scaled_stage(stage: StageConfig, epochs: int) -> StageConfig:
    """`stage` stretched or shrunk to `epochs`, milestones and warm-up at the same fractions
    (a milestone that would fall on or after the last epoch is dropped: it would change nothing)."""
    return replace(scaled_schedule(stage, stage.epochs, epochs), epochs=epochs)


def sized_stage(stage: StageConfig, clips: int) -> StageConfig:
    """`stage` with enough epochs for `stage.min_steps` optimiser steps over `clips` training
    clips (the schedule's shape kept, as `scaled_stage` does); unchanged when it has them."""
    steps_per_epoch = max(1, math.ceil(clips / stage.batch_size))
    if stage.epochs * steps_per_epoch >= stage.min_steps:
        return stage
    return scaled_stage(stage, math.ceil(stage.min_steps / steps_per_epoch))


def lr_at(stage: StageConfig, epoch: int, progress: float) -> float:
    """Learning rate at `progress` (0..1] through 0-based `epoch`: linear warm-up per iteration
    over `warmup_epochs`, then x`gamma` for each milestone reached (epoch >= milestone)."""
    lr = stage.lr * stage.gamma ** sum(epoch >= m for m in stage.milestones)
    if stage.warmup_epochs and epoch < stage.warmup_epochs:
        lr *= (epoch + progress) / stage.warmup_epochs
    return lr


def make_optimizer(params: Any, stage: StageConfig) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=stage.lr, momentum=stage.momentum,
                           weight_decay=stage.weight_decay,
                           nesterov=stage.nesterov and stage.momentum > 0)


def batches(n: int, batch_size: int, gen: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    """A seeded shuffle of range(n) in batches; a trailing batch of one sample is dropped (BN
    in train mode cannot normalise a single sample; it is drawn again next epoch)."""
    order = torch.randperm(n, generator=gen, device=gen.device).to(device)
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and chunks[-1].numel() == 1:
        chunks.pop()
    return chunks


# --- classifiers ---------------------------------------------------------------------------------


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


class Classifier(nn.Module):
    """The encoder's pooled feature followed by a linear layer."""

    def __init__(self, encoder: nn.Module, num_classes: int, gen: torch.Generator):
        super().__init__()
        self.encoder = encoder
        self.fc = linear_classifier(int(encoder.feature_dim), num_classes, gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(x))


def train_without_dropout(model: nn.Module) -> None:
    """Train mode for BatchNorm (batch statistics, running averages updated), eval mode for
    every dropout layer."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.eval()


# --- the training loop ---------------------------------------------------------------------------


def train_classifier(
    model: nn.Module,
    stage: StageConfig,
    labels: torch.Tensor,
    inputs: Callable[[torch.Tensor], torch.Tensor],
    test: Callable[[], torch.Tensor],
    test_labels: torch.Tensor,
    num_classes: int,
    gen: torch.Generator,
    evaluate_every: int = 1,
    max_grad_norm: float = 0.0,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> Trained:
    """Train `model` (all its parameters, BN in train mode, dropout off) on the `labels`' samples
    under `stage`'s schedule. `inputs(idx)` is a batch's model input (it may draw crops from
    `gen`); `test()` the (N_test, C) test scores, taken without gradients after the last epoch
    and every `evaluate_every` epochs (0: only the last). Gradients are clipped to
    `max_grad_norm` after backward (0: not clipped)."""
    device = labels.device
    optimizer = make_optimizer(model.parameters(), stage)
    history: list[dict[str, Any]] = []
    scores = torch.zeros(0)
    for epoch in range(stage.epochs):
        train_without_dropout(model)
        loss_sum, seen = 0.0, 0
        epoch_batches = batches(len(labels), stage.batch_size, gen, device)
        for step, idx in enumerate(epoch_batches):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(stage, epoch, (step + 1) / len(epoch_batches))
            loss = F.cross_entropy(model(inputs(idx)), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm > 0:
                nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
        entry: dict[str, Any] = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                                 "loss": loss_sum / max(seen, 1)}
        if epoch + 1 == stage.epochs or (evaluate_every > 0 and (epoch + 1) % evaluate_every == 0):
            with torch.no_grad():
                scores = test()
            entry.update(classification_report(scores, test_labels, num_classes).summary())
        history.append(entry)
        if on_epoch is not None:
            on_epoch(entry)
    return Trained(scores.cpu(), history)


@contextlib.contextmanager
def epoch_progress(what: str, epochs: int) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A progress bar over `epochs`; yields the `on_epoch` that advances it and shows the loss
    (and the test top-1 when that epoch was tested)."""
    with progress() as bar:
        task = bar.add_task(what, total=epochs)

        def show(entry: dict[str, Any]) -> None:
            top1 = f" top-1 {entry['top1']:.2f}" if "top1" in entry else ""
            bar.update(task, advance=1, description=f"{what} loss {entry['loss']:.3f}{top1}")

        yield show
