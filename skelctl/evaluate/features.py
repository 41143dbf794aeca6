"""Features: a frozen encoder's outputs for the clips of a split, computed batch by batch over
the one clip -> model input path (`ClipView`), and cached on disk.

Features of a deterministic input (a centre crop, the encoder in eval mode) are a function of
(encoder, dataset, samples, crop, stream, input coordinates), so `FeatureCache` keeps them under
that key: a second linear probe, a k-NN evaluation and an index build all reuse one extraction.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from skelctl.atomic import atomic_path
from skelctl.augment.inputs import ClipView
from skelctl.console import progress
from skelctl.data.clips import ClipBank
from skelctl.data.npy import read_npy
from skelctl.errors import SkelctlError
from skelctl.evaluate.encoders import EMBED_BATCH, LoadedEncoder
from skelctl.models.layers import frozen


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
        for x in view.batches(bank, crop, batch_size):
            chunks.append(encoder(x).float())
            if on_batch is not None:
                on_batch(x.shape[0])
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

    def bank(self, indices: np.ndarray, view: ClipView) -> ClipBank:
        """Samples `indices` in `view`'s input coordinates (read once per coordinates)."""
        key = view.normalize.encode() + b":" + np.ascontiguousarray(indices, np.int64).tobytes()
        if key not in self._banks:
            self._banks[key] = view.load(self.ds, indices, self.device)
        return self._banks[key]

    def features(self, loaded: LoadedEncoder, view: ClipView, indices: np.ndarray, crop: float,
                 label: str) -> torch.Tensor:
        """(N, D) CPU features of samples `indices` (centre crop `crop`), from the cache if there."""

        def compute() -> torch.Tensor:
            bank = self.bank(indices, view)
            with progress(transient=True) as bar:
                task = bar.add_task(f"features {view.stream} {label}", total=len(bank))
                return embed(loaded.encoder.to(self.device), bank, view, crop,
                             on_batch=lambda n: bar.update(task, advance=n)).cpu()

        return self.cache.get(feature_key(loaded, self.dataset_path, indices, view, crop), compute)
