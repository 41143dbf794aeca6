"""What every evaluation command shares: which encoders, dataset and split it evaluates (with
runs/latest as the default), the learning-rate schedule of a `StageConfig`, the classification
report (top-1/top-5, per-class accuracy, confusion matrix) and the output directory.

Schedules come from the run's `config.yaml` (`evaluation` section, SPEC 6 defaults); a random
encoder takes the protocol of the paper that uses its backbone (ST-GCN: SkeleMixCLR, others: ISC).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skelctl.atomic import atomic_path, write_text_atomic
from skelctl.augment.streams import STREAMS
from skelctl.console import err
from skelctl.data.clips import ClipBank
from skelctl.data.normalize import NORMALIZATIONS
from skelctl.data.store import SkeletonDataset, open_dataset
from skelctl.engine.config import (
    EvaluationConfig,
    StageConfig,
    load_config_file,
    load_preset,
    scaled_schedule,
)
from skelctl.engine.precision import resolve_device
from skelctl.errors import RuntimeFailure, SkelctlError
from skelctl.evaluate.features import (
    ClipSource,
    ClipView,
    FeatureCache,
    LoadedEncoder,
    calibrate_batchnorm,
    is_untrained,
    open_encoder,
)
from skelctl.paths import resolve_dataset

RANDOM_ARCH_METHOD = {"stgcn": "skelemix"}  # any other backbone: ISC's protocol
TOPK = (1, 5)


@dataclass
class EvalJob:
    """Encoders (one per stream) and the dataset split they are evaluated on."""

    encoders: list[LoadedEncoder]
    views: list[ClipView]  # one per encoder: its frames, stream and the dataset layout
    dataset: SkeletonDataset
    dataset_path: Path
    benchmark: str
    device: torch.device
    evaluation: EvaluationConfig
    banks: dict[bytes, ClipBank] = field(default_factory=dict)  # clips read so far, by indices

    @property
    def streams(self) -> list[str]:
        return [view.stream for view in self.views]

    @property
    def num_classes(self) -> int:
        return len(self.dataset.class_names)

    @property
    def run_dir(self) -> Path | None:
        return self.encoders[0].run_dir

    def describe(self) -> dict[str, Any]:
        return {
            "dataset": str(self.dataset_path),
            "benchmark": self.benchmark,
            "encoders": [
                {**loaded.describe(), "stream": view.stream, "frames": view.frames}
                for loaded, view in zip(self.encoders, self.views, strict=True)
            ],
        }


def parse_streams(text: str | None) -> list[str] | None:
    """`joint,motion,bone` -> list; None stays None (each encoder's own stream)."""
    if text is None:
        return None
    streams = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in streams if s not in STREAMS]
    if not streams or bad or len(set(streams)) != len(streams):
        raise SkelctlError(
            f"--streams {text}: expected distinct names from {', '.join(STREAMS)}, comma separated"
        )
    return streams


def resolve_job(
    encoder_specs: Sequence[str],
    streams: list[str] | None = None,
    data: str | None = None,
    benchmark: str | None = None,
    device: str = "auto",
    seed: int = 0,
    frames: int | None = None,
    normalize: str | None = None,
) -> EvalJob:
    """Load the encoders and open the dataset, defaulting everything from the (first) run.

    No `--encoder` means runs/latest; no `--data` / `--benchmark` means what the encoder was
    pretrained on. An encoder of another skeleton layout, stream or input normalisation than
    asked is a usage error. Random and raw encoders see `frames`-long clips in the `normalize`
    input coordinates (default: the trained encoder's, else 64 frames and `none`: as stored).
    """
    specs: list[str | None] = list(encoder_specs) or [None]
    if normalize is not None and normalize not in NORMALIZATIONS:
        raise SkelctlError(f"--normalize {normalize}: expected one of {', '.join(NORMALIZATIONS)}")
    if streams is not None and len(streams) != len(specs):
        raise SkelctlError(
            f"--streams lists {len(streams)} stream(s) but {len(specs)} --encoder was given: "
            "pass one --encoder per stream, in the same order"
        )
    trained = {i: open_encoder(s) for i, s in enumerate(specs) if not is_untrained(s)}
    first = trained[min(trained)] if trained else None
    dataset_path = _dataset_path(data, first)
    dataset = open_dataset(dataset_path)
    frames_ref, persons, _, channels = _clip_shape(dataset)
    if frames is None:
        frames = int(first.info.get("frames", 64)) if first else 64
    if normalize is None:
        normalize = _normalize_of(first) if first else "none"
    encoders = [
        trained[i] if i in trained else open_encoder(
            s, layout=dataset.layout, in_channels=channels, num_persons=persons, frames=frames,
            seed=seed)
        for i, s in enumerate(specs)
    ]
    views = []
    for i, loaded in enumerate(encoders):
        _check_layout(loaded, dataset)
        stream = _stream_of(loaded, None if streams is None else streams[i])
        own = normalize if is_untrained(loaded.source) else _normalize_of(loaded)
        if own != normalize:
            raise SkelctlError(
                f"encoder {loaded.source} was pretrained on '{own}' input coordinates, not "
                f"'{normalize}': evaluate encoders of one normalisation together")
        views.append(ClipView(int(loaded.info.get("frames", frames)), stream, dataset.layout, own))
        _warn_preprocessing(loaded, dataset)
    bench = benchmark or (first.info.get("benchmark") if first else None)
    job_device = resolve_device(device, "--device")
    if bench is None:
        if len(dataset.benchmarks) != 1:
            raise SkelctlError(
                f"pass --benchmark (this dataset has: {', '.join(dataset.benchmarks) or 'none'})",
                dataset_path)
        bench = dataset.benchmarks[0]
    if bench not in dataset.benchmarks:
        raise SkelctlError(
            f"no benchmark '{bench}' in this dataset (it has: {', '.join(dataset.benchmarks) or 'none'})",
            dataset_path)
    job = EvalJob(encoders, views, dataset, dataset_path, str(bench), job_device,
                  _evaluation_defaults(encoders[0]))
    for loaded, view in zip(encoders, views, strict=True):
        if loaded.is_random:
            _calibrate_random(job, loaded, view)
    return job


def _calibrate_random(job: EvalJob, loaded: LoadedEncoder, view: ClipView) -> None:
    """A random encoder's BatchNorm statistics from the benchmark's training clips (see
    `calibrate_batchnorm`); its hash then covers the clips it was calibrated on. The clips
    stay in `job.banks` for the protocol that reads them next."""
    bench, dataset_path = job.benchmark, job.dataset_path
    bank = clip_source(job, use_cache=False).bank(job.dataset.split(bench, "train"), view.normalize)
    calibrate_batchnorm(loaded.encoder.to(job.device), bank, view)
    stat = dataset_path.stat()
    identity = [loaded.sha256, str(dataset_path.resolve()), stat.st_size, stat.st_mtime_ns, bench]
    loaded.sha256 = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
    loaded.info["batchnorm"] = f"statistics of the {bench} training clips"


def _dataset_path(data: str | None, first: LoadedEncoder | None) -> Path:
    if data is not None:
        return resolve_dataset(data)
    recorded = first.info.get("dataset") if first else None
    if not recorded:
        raise SkelctlError("pass --data (a random encoder has no dataset of its own)")
    try:
        return resolve_dataset(recorded)
    except SkelctlError as exc:
        raise SkelctlError(
            f"the encoder was pretrained on '{recorded}', which is not found here ({exc.reason}); "
            "pass --data", first.source) from exc


def _clip_shape(dataset: SkeletonDataset) -> tuple[int, int, int, int]:
    if dataset.num_samples == 0:
        raise SkelctlError("the dataset holds no samples", dataset.path)
    return tuple(dataset.clip(0).shape)  # type: ignore[return-value]


def _check_layout(loaded: LoadedEncoder, dataset: SkeletonDataset) -> None:
    layout = loaded.encoder.config.get("layout", {})
    joints = len(layout.get("joints", ())) if isinstance(layout, dict) else None
    if joints != dataset.layout.num_joints:
        raise SkelctlError(
            f"encoder {loaded.source} was built for layout '{layout.get('name', '?')}' "
            f"({joints} joints) but the dataset has '{dataset.layout.name}' "
            f"({dataset.layout.num_joints} joints)", dataset.path)


def _normalize_of(loaded: LoadedEncoder) -> str:
    """The input coordinates an encoder was trained on (the stored coordinates, `none`, before the key existed)."""
    return str(loaded.info.get("normalize", "none"))


def _stream_of(loaded: LoadedEncoder, asked: str | None) -> str:
    trained_on = loaded.info.get("stream")
    if asked is not None and trained_on is not None and asked != trained_on:
        raise SkelctlError(
            f"encoder {loaded.source} was pretrained on the {trained_on} stream, not {asked}: "
            "give the encoders in the order of --streams")
    return asked or trained_on or "joint"


def _warn_preprocessing(loaded: LoadedEncoder, dataset: SkeletonDataset) -> None:
    trained_on = loaded.info.get("preprocess_options")
    if trained_on is not None and trained_on != dataset.options:
        err.print(f"[yellow]warning:[/yellow] {loaded.source} was pretrained on data preprocessed "
                  f"with {trained_on}, this dataset used {dataset.options}", highlight=False)


def _evaluation_defaults(loaded: LoadedEncoder) -> EvaluationConfig:
    """The run's own `evaluation` section, else the protocol of its method's paper."""
    if loaded.run_dir is not None:
        return load_config_file(loaded.run_dir / "config.yaml").evaluation
    if loaded.is_raw:  # coordinates differ in scale per joint: the probe z-scores them
        defaults = EvaluationConfig()
        return replace(defaults, linear=replace(defaults.linear, standardize=True))
    method = loaded.info.get("method")
    if loaded.is_random:
        method = RANDOM_ARCH_METHOD.get(loaded.encoder.config.get("name"), "isc")
    try:
        return load_preset(str(method)).evaluation
    except SkelctlError:
        return EvaluationConfig()


def override(stage: StageConfig, **values: Any) -> StageConfig:
    """`stage` with the command-line values that were given (None = keep).

    A new `epochs` keeps the schedule's shape: milestones and warm-up scale with it. Why: cut
    to 15 epochs, the 30-epoch 10% schedule (x0.1 at 20) never decayed, the weights still moved
    at lr 0.1 in the last steps, and BatchNorm's running statistics lagged so far behind that
    an ISC encoder fine-tuned this way scored 6.7% on its own training clips in eval mode
    (59.9% on the test split with the full schedule)."""
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


# --- reports ------------------------------------------------------------------------------------


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


def output_name(protocol: str, job: EvalJob) -> str:
    """`<protocol>-<benchmark>`, plus the streams when there are several."""
    name = f"{protocol}-{job.benchmark}"
    return name if len(job.views) == 1 else f"{name}-{'+'.join(job.streams)}"


def feature_cache_dir(job: EvalJob, out_dir: Path | None, enabled: bool = True) -> Path | None:
    """Where cached features live: `<run>/eval/features/` (shared by every command on the run),
    else `<out>/features/`; None when caching is off or there is nowhere to keep them."""
    if not enabled:
        return None
    if job.run_dir is not None:
        return job.run_dir / "eval" / "features"
    return None if out_dir is None else out_dir / "features"


def clip_source(job: EvalJob, out_dir: Path | None = None, use_cache: bool = True) -> ClipSource:
    """The job's clips and (cached) features."""
    cache = FeatureCache(feature_cache_dir(job, out_dir, use_cache))
    return ClipSource(job.dataset, job.dataset_path, job.device, cache, job.banks)


def default_out_dir(job: EvalJob, name: str, out: Path | None) -> Path:
    """`--out`, else `<run dir>/eval/<name>` of the (first) encoder's run."""
    if out is not None:
        return out
    if job.run_dir is None:
        raise SkelctlError("this encoder has no run directory to write into: pass --out DIR")
    return job.run_dir / "eval" / name


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
