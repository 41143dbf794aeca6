"""Reporting a classification protocol: top-1/top-5 (percent), per-class accuracy and the
confusion matrix of test scores, the score-level ensemble of streams, and the files of an
evaluation's output directory (per_class.csv, confusion.csv, scores.npy, metrics.jsonl,
result.json), each written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from skelctl.atomic import atomic_path, write_text_atomic
from skelctl.engine.config import StageConfig
from skelctl.errors import RuntimeFailure, SkelctlError

if TYPE_CHECKING:
    from skelctl.evaluate.jobs import EvalJob

TOPK = (1, 5)


@dataclass
class Trained:
    """A trained classifier's last-epoch test scores and its per-epoch history."""

    scores: torch.Tensor  # (N_test, C)
    history: list[dict[str, Any]] = field(default_factory=list)

    def best(self) -> dict[str, Any] | None:
        """The epoch with the highest test top-1 among the evaluated ones (`--report-best`)."""
        evaluated = [h for h in self.history if "top1" in h]
        return max(evaluated, key=lambda h: h["top1"]) if evaluated else None


@dataclass
class Report:
    """Top-k accuracy (percent), per-class accuracy and confusion of one set of test scores."""

    top1: float
    top5: float
    per_class: np.ndarray  # (C,) percent, NaN for a class without test samples
    counts: np.ndarray  # (C,) test samples per class
    confusion: np.ndarray  # (C, C) int64, rows = true class, columns = predicted

    def summary(self) -> dict[str, float]:
        return {"top1": round(self.top1, 4), "top5": round(self.top5, 4)}


def classification_report(scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Report:
    scores, labels = scores.float().cpu(), labels.long().cpu()
    if len(labels) == 0:
        raise SkelctlError("the test split is empty: nothing to evaluate")
    k = min(max(TOPK), scores.shape[1])
    topk = scores.topk(k, dim=1).indices
    hits = topk == labels[:, None]
    predicted = topk[:, 0]
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.long)
    confusion.index_add_(0, labels * num_classes + predicted, torch.ones_like(labels))
    confusion = confusion.view(num_classes, num_classes).numpy()
    counts = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = 100.0 * np.diag(confusion) / counts
    return Report(
        top1=100.0 * hits[:, 0].float().mean().item(),
        top5=100.0 * hits.any(dim=1).float().mean().item(),
        per_class=per_class,
        counts=counts,
        confusion=confusion,
    )


def ensemble(scores: Sequence[torch.Tensor]) -> torch.Tensor:
    """Score-level ensemble of streams: the sum of their softmax probabilities."""
    return torch.stack([s.float().softmax(dim=1) for s in scores]).sum(dim=0)


def schedule_description(stage: StageConfig) -> dict[str, Any]:
    return {
        "epochs": stage.epochs, "batch_size": stage.batch_size, "lr": stage.lr,
        "milestones": list(stage.milestones), "gamma": stage.gamma,
        "warmup_epochs": stage.warmup_epochs, "weight_decay": stage.weight_decay,
        "momentum": stage.momentum, "nesterov": stage.nesterov,
        "train_crop": None if stage.train_crop is None else list(stage.train_crop),
        "test_crop": stage.test_crop, "standardize": stage.standardize,
        "min_steps": stage.min_steps, "rotate": stage.rotate,
    }



def write_report(
    out_dir: Path,
    report: Report,
    class_names: Sequence[str],
    scores: torch.Tensor,
    history: Sequence[dict[str, Any]] = (),
) -> None:
    """per_class.csv, confusion.csv, scores.npy (test scores, for later ensembles) and
    metrics.jsonl (one line per epoch), each written atomically."""
    per_class = io.StringIO()
    writer = csv.writer(per_class)
    writer.writerow(["class", "name", "test_samples", "accuracy"])
    for c, name in enumerate(class_names):
        acc = report.per_class[c]
        writer.writerow([c, name, int(report.counts[c]), "" if math.isnan(acc) else f"{acc:.4f}"])
    write_text_atomic(out_dir / "per_class.csv", per_class.getvalue())

    confusion = io.StringIO()
    writer = csv.writer(confusion)
    writer.writerow(["true \\ predicted", *class_names])
    for name, row in zip(class_names, report.confusion, strict=True):
        writer.writerow([name, *row.tolist()])
    write_text_atomic(out_dir / "confusion.csv", confusion.getvalue())

    with atomic_path(out_dir / "scores.npy", suffix=".npy") as tmp, tmp.open("wb") as handle:
        np.save(handle, scores.float().cpu().numpy(), allow_pickle=False)
    if history:
        write_text_atomic(out_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))


def refuse_non_finite(trained: Trained, what: str, out_dir: Path) -> None:
    """A diverged classifier fails the job before anything is written: OUT keeps the previous
    (good) result instead of NaN scores reported as top-1 0."""
    losses = [h["loss"] for h in trained.history if "loss" in h]
    if torch.isfinite(trained.scores).all() and all(math.isfinite(x) for x in losses):
        return
    raise RuntimeFailure(f"{what}: the loss or test scores are NaN or infinite; nothing written "
                         "(a previous result there is kept)", out_dir)


def write_result(out_dir: Path, result: dict[str, Any]) -> None:
    write_text_atomic(out_dir / "result.json", json.dumps(result, indent=2) + "\n")


def finish(
    job: EvalJob,
    out_dir: Path,
    protocol: str,
    stage: StageConfig,
    trained: Sequence[Trained],
    test_labels: torch.Tensor,
    report_best: bool,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Write each stream's report (in `<out>/<stream>/` when there are several, plus their
    ensemble in `<out>/`) and return the JSON result: the LAST epoch's numbers; the best epoch,
    selected on the test set, only when asked and labelled as such."""
    class_names = job.dataset.class_names
    several = len(trained) > 1
    for view, result in zip(job.views, trained, strict=True):
        refuse_non_finite(result, f"{protocol} ({view.stream} stream)", out_dir)
    streams: dict[str, Any] = {}
    for view, result in zip(job.views, trained, strict=True):
        report = classification_report(result.scores, test_labels, job.num_classes)
        write_report(out_dir / view.stream if several else out_dir, report, class_names,
                     result.scores, result.history)
        streams[view.stream] = report.summary()
        if report_best and (best := result.best()) is not None:
            streams[view.stream]["best"] = {
                "top1": best["top1"], "top5": best["top5"], "epoch": best["epoch"],
                "note": "best epoch selected on the test set (not the protocol's number)"}
    if several:
        scores = ensemble([r.scores for r in trained])
        report = classification_report(scores, test_labels, job.num_classes)
        write_report(out_dir, report, class_names, scores)
        headline: dict[str, Any] = {**report.summary(), "ensemble": "sum of softmax scores"}
    else:
        headline = dict(streams[job.views[0].stream])
    result = {
        "protocol": protocol,
        **headline,
        "epoch": "last",
        "epochs": stage.epochs,
        "streams": streams,
        **extra,
        "schedule": schedule_description(stage),
        **job.describe(),
        "num_test": len(test_labels),
        "out": str(out_dir),
    }
    write_result(out_dir, result)
    return result
