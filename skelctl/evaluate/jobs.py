"""Resolving an evaluation job: which encoders (one per stream; runs/latest by default), which
dataset and benchmark split they are evaluated on, the clip -> model input view of each, the
evaluation schedules (the run's `config.yaml`, else the protocol of the paper that uses the
backbone: ST-GCN SkeleMixCLR, others ISC), and where features are cached and outputs written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from skelctl.augment.inputs import ClipView
from skelctl.augment.streams import STREAMS
from skelctl.console import err
from skelctl.data.clips import ClipBank
from skelctl.data.normalize import NORMALIZATIONS
from skelctl.data.store import SkeletonDataset, open_dataset
from skelctl.engine.checkpoint import EncoderInfo
from skelctl.engine.config import EvaluationConfig, load_config_file, load_preset
from skelctl.engine.precision import resolve_device
from skelctl.errors import SkelctlError
from skelctl.evaluate.encoders import (
    LoadedEncoder,
    batchnorm_note,
    calibrate_batchnorm,
    is_untrained,
    open_encoder,
)
from skelctl.evaluate.features import ClipSource, FeatureCache
from skelctl.paths import resolve_dataset

RANDOM_ARCH_METHOD = {"stgcn": "skelemix"}  # any other backbone: ISC's protocol


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
    _, persons, _, channels = _clip_shape(dataset)
    reference = first.info if first else EncoderInfo()  # a baseline alone: the defaults
    frames = reference.frames if frames is None else frames
    normalize = reference.normalize if normalize is None else normalize
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
        own = normalize if is_untrained(loaded.source) else loaded.info.normalize
        if own != normalize:
            raise SkelctlError(
                f"encoder {loaded.source} was pretrained on '{own}' input coordinates, not "
                f"'{normalize}': evaluate encoders of one normalisation together")
        views.append(ClipView(loaded.info.frames, stream, dataset.layout, own))
        _warn_preprocessing(loaded, dataset)
    bench = benchmark or reference.benchmark
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
    bank = clip_source(job, use_cache=False).bank(job.dataset.split(bench, "train"), view)
    calibrate_batchnorm(loaded.encoder.to(job.device), bank, view)
    stat = dataset_path.stat()
    identity = [loaded.sha256, str(dataset_path.resolve()), stat.st_size, stat.st_mtime_ns, bench]
    loaded.sha256 = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
    loaded.info.batchnorm = batchnorm_note(bench)


def _dataset_path(data: str | None, first: LoadedEncoder | None) -> Path:
    if data is not None:
        return resolve_dataset(data)
    recorded = first.info.dataset if first else None
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


def _stream_of(loaded: LoadedEncoder, asked: str | None) -> str:
    trained_on = loaded.info.stream
    if asked is not None and trained_on is not None and asked != trained_on:
        raise SkelctlError(
            f"encoder {loaded.source} was pretrained on the {trained_on} stream, not {asked}: "
            "give the encoders in the order of --streams")
    return asked or trained_on or "joint"


def _warn_preprocessing(loaded: LoadedEncoder, dataset: SkeletonDataset) -> None:
    trained_on = loaded.info.preprocess_options
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
    method = loaded.info.method
    if loaded.is_random:
        method = RANDOM_ARCH_METHOD.get(loaded.encoder.config.get("name"), "isc")
    try:
        return load_preset(str(method)).evaluation
    except SkelctlError:
        return EvaluationConfig()


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


