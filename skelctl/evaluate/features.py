"""Encoders as the evaluation protocols see them: loaded from a run (or random), frozen, embedding
clips of a `ClipBank` batch by batch.

Every protocol feeds an encoder the same input: a temporal crop of the stored clip resized to
the encoder's frame count, converted to its stream. `ClipView.inputs` is that one definition.
Features of a deterministic input (a centre crop, the encoder in eval mode) are a function of
(encoder, dataset, samples, crop, stream), so `FeatureCache` keeps them on disk under that key:
a second linear probe, a k-NN evaluation and an index build all reuse one extraction.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from skelctl.atomic import atomic_path
from skelctl.augment.streams import to_stream
from skelctl.augment.temporal import crop_resize
from skelctl.console import progress
from skelctl.data.clips import ClipBank
from skelctl.data.layout import Layout
from skelctl.data.npy import read_npy
from skelctl.errors import SkelctlError
from skelctl.paths import runs_root

RANDOM_PREFIX = "random:"
RAW_SPEC = "raw"  # the clip's normalised coordinates, flattened: the no-learning floor


def is_untrained(spec: str | None) -> bool:
    """`random:<arch>` or `raw`: baselines built for the dataset instead of loaded."""
    return spec is not None and (spec == RAW_SPEC or spec.startswith(RANDOM_PREFIX))
EMBED_BATCH = 256


@dataclass
class LoadedEncoder:
    """An encoder and what it was trained on (`info` keys as `encoder.pt` stores them)."""

    encoder: nn.Module
    source: str  # path of encoder.pt, or "random:<arch>"
    sha256: str  # of encoder.pt; for a random encoder, of its architecture and seed
    info: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None

    @property
    def is_random(self) -> bool:
        return self.source.startswith(RANDOM_PREFIX)

    @property
    def is_raw(self) -> bool:
        return self.source == RAW_SPEC

    @property
    def feature_dim(self) -> int:
        return int(self.encoder.feature_dim)

    def describe(self) -> dict[str, Any]:
        """What a result file records about the encoder."""
        return {
            "source": self.source,
            "sha256": self.sha256,
            "method": self.info.get("method"),
            "preset": self.info.get("preset"),
            "epoch": self.info.get("epoch"),
            "arch": self.encoder.config.get("name"),
        }


def latest_run() -> Path:
    """The run `runs/latest` points at; a clear error when there is none."""
    link = runs_root() / "latest"
    if not link.exists():
        raise SkelctlError(
            f"no encoder given and no latest run at {link} "
            "(run `skelctl pretrain` first, or pass --encoder RUN_DIR|encoder.pt|random:ARCH)"
        )
    return link.resolve()


def encoder_file(spec: str | Path) -> Path:
    """The encoder.pt a run directory or file spec names."""
    path = Path(spec)
    if path.is_dir():
        path = path / "encoder.pt"
    if not path.is_file():
        raise SkelctlError("encoder not found (expected a run directory or an encoder.pt file)", path)
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_encoder(
    spec: str | None,
    *,
    layout: Layout | None = None,
    in_channels: int = 3,
    num_persons: int = 2,
    frames: int = 64,
    seed: int = 0,
) -> LoadedEncoder:
    """`spec` = a run directory, an encoder.pt, `random:<arch>`, `raw` or None (runs/latest).

    A random encoder is the from-scratch baseline: built for the dataset's `layout` and shape
    and initialised from `seed`, so it is reproducible (its hash covers arch, shape and seed).
    `raw` is the no-learning floor: the input coordinates themselves, flattened.
    """
    if spec is not None and str(spec).startswith(RANDOM_PREFIX):
        return _random_encoder(str(spec), layout, in_channels, num_persons, frames, seed)
    if spec == RAW_SPEC:
        return _raw_encoder(layout, in_channels, num_persons, frames)
    from skelctl.engine.checkpoint import load_encoder

    path = encoder_file(latest_run() if spec is None else spec)
    encoder, info = load_encoder(path)
    run_dir = path.parent if (path.parent / "config.yaml").is_file() else None
    return LoadedEncoder(encoder, str(path.resolve()), file_sha256(path), dict(info), run_dir)


def _random_encoder(
    spec: str, layout: Layout | None, in_channels: int, num_persons: int, frames: int, seed: int
) -> LoadedEncoder:
    from skelctl.models import build_encoder

    arch = spec[len(RANDOM_PREFIX):]
    if layout is None:
        raise SkelctlError(f"--encoder {spec}: a random encoder needs a dataset (pass --data)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_encoder(arch, layout, in_channels=in_channels, num_persons=num_persons,
                                frames=frames)
    identity = json.dumps({"config": encoder.config, "seed": seed}, sort_keys=True)
    info = {"method": "random", "frames": frames, "layout": layout.to_dict(), "seed": seed}
    return LoadedEncoder(encoder, spec, hashlib.sha256(identity.encode()).hexdigest(), info)


def _raw_encoder(layout: Layout | None, in_channels: int, num_persons: int, frames: int) -> LoadedEncoder:
    from skelctl.models.raw import RawCoordinates

    if layout is None:
        raise SkelctlError(f"--encoder {RAW_SPEC}: the raw-coordinate baseline needs a dataset (pass --data)")
    encoder = RawCoordinates(layout, in_channels, num_persons, frames)
    identity = json.dumps({"config": encoder.config}, sort_keys=True)
    info = {"method": RAW_SPEC, "frames": frames, "layout": layout.to_dict()}
    return LoadedEncoder(encoder, RAW_SPEC, hashlib.sha256(identity.encode()).hexdigest(), info)


@dataclass(frozen=True)
class ClipView:
    """How a stored clip becomes encoder input: put in the input coordinates `normalize` names
    when loaded (`ClipSource.bank`), resized to `frames`, converted to `stream`."""

    frames: int
    stream: str
    layout: Layout
    normalize: str = "none"

    def inputs(
        self,
        bank: ClipBank,
        idx: torch.Tensor,
        crop: tuple[float, float],
        gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(N, C, frames, V, M): a random crop U(crop) of each clip's valid length, or with
        `gen=None` its centre `crop[1]`, linearly resized, in this view's stream."""
        x = crop_resize(bank, idx, self.frames, scale=crop, gen=gen)
        return to_stream(x, self.stream, self.layout)


@torch.no_grad()
def calibrate_batchnorm(encoder: nn.Module, bank: ClipBank, view: ClipView, batch_size: int = EMBED_BATCH) -> None:
    """Set every BatchNorm's running statistics to their exact average over the clips of `bank`
    (whole clips, as evaluation sees them; no labels, no gradient, dropout off).

    Why: a freshly initialised encoder carries running statistics of mean 0 / variance 1, so a
    frozen random ST-GCN (N(0, 0.02) weights, ten blocks) outputs features around 1e-7 and a
    linear probe sits at chance. Pretraining fits these statistics as a side effect; the
    from-scratch baseline gets them too, so it is compared fairly.
    """
    norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    encoder.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
        m.train()
    try:
        for start in range(0, len(bank), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(bank)), device=bank.device)
            encoder(view.inputs(bank, idx, (1.0, 1.0)))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        encoder.eval()


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (BN running statistics, no dropout) and no gradients, restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)


def embed(
    encoder: nn.Module,
    bank: ClipBank,
    view: ClipView,
    crop: float,
    batch_size: int = EMBED_BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """(N, D) float32 outputs of `encoder` (frozen) for every clip of `bank`, centre crop `crop`."""
    if len(bank) == 0:
        raise SkelctlError("no clips to embed: the split is empty")
    chunks = []
    with frozen(encoder):
        for start in range(0, len(bank), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(bank)), device=bank.device)
            chunks.append(encoder(view.inputs(bank, idx, (crop, crop))).float())
            if on_batch is not None:
                on_batch(len(idx))
    return torch.cat(chunks)


class FeatureCache:
    """Features on disk, keyed by everything that determines them; None = no caching.

    The key holds the encoder hash, the dataset file (path, size, modification time), a digest of
    the sample indices, frames, crop and stream. Files are written atomically, so an interrupted
    extraction never leaves a partial cache entry.
    """

    def __init__(self, directory: Path | None):
        self.directory = directory

    def get(self, key: dict[str, Any], compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if self.directory is None:
            return compute()
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        path = self.directory / f"{digest}.npy"
        if path.is_file():
            with contextlib.suppress(SkelctlError):  # damaged: computed and written again
                return torch.from_numpy(np.asarray(read_npy(path, max_bytes=1 << 40), np.float32))
        features = compute()
        with atomic_path(path, suffix=".npy") as tmp:
            with tmp.open("wb") as handle:
                np.save(handle, features.cpu().numpy(), allow_pickle=False)
        return features


def feature_key(
    loaded: LoadedEncoder, dataset_path: Path, indices: np.ndarray, view: ClipView, crop: float
) -> dict[str, Any]:
    """The cache key of `embed` over dataset samples `indices`."""
    stat = dataset_path.stat()
    return {
        "encoder": loaded.sha256,
        "dataset": [str(dataset_path.resolve()), stat.st_size, stat.st_mtime_ns],
        "indices": hashlib.sha256(np.ascontiguousarray(indices, np.int64).tobytes()).hexdigest(),
        "frames": view.frames,
        "crop": crop,
        "stream": view.stream,
        "normalize": view.normalize,
    }


class ClipSource:
    """A dataset's clips and features for one job: each split's clips are read once, and only
    when a feature is not in the cache (or a protocol crops clips itself)."""

    def __init__(self, ds: Any, dataset_path: Path, device: torch.device, cache: FeatureCache,
                 banks: dict[bytes, ClipBank] | None = None):
        self.ds, self.dataset_path, self.device, self.cache = ds, dataset_path, device, cache
        self._banks = {} if banks is None else banks  # shared: clips already read stay read

    def bank(self, indices: np.ndarray, normalize: str) -> ClipBank:
        key = normalize.encode() + b":" + np.ascontiguousarray(indices, np.int64).tobytes()
        if key not in self._banks:
            self._banks[key] = ClipBank.from_dataset(self.ds, indices, self.device, normalize)
        return self._banks[key]

    def features(self, loaded: LoadedEncoder, view: ClipView, indices: np.ndarray, crop: float,
                 label: str) -> torch.Tensor:
        """(N, D) CPU features of samples `indices` (centre crop `crop`), from the cache if there."""

        def compute() -> torch.Tensor:
            bank = self.bank(indices, view.normalize)
            with progress(transient=True) as bar:
                task = bar.add_task(f"features {view.stream} {label}", total=len(bank))
                return embed(loaded.encoder.to(self.device), bank, view, crop,
                             on_batch=lambda n: bar.update(task, advance=n)).cpu()

        return self.cache.get(feature_key(loaded, self.dataset_path, indices, view, crop), compute)
