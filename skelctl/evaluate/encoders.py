"""Encoders as the evaluation protocols see them: loaded from a run (runs/latest by default), a
random twin of an architecture, or the raw coordinates; with their `EncoderInfo` and a hash that
identifies them in caches and result files.

`random_encoder` is the one builder of random twins (`--encoder random:ARCH` and the demo's
`random/` baselines); `calibrate_batchnorm` fits their BatchNorm statistics to the training clips.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from skelctl.augment.inputs import ClipView
from skelctl.data.clips import ClipBank
from skelctl.data.layout import Layout
from skelctl.engine.checkpoint import EncoderInfo, load_encoder
from skelctl.errors import SkelctlError
from skelctl.paths import runs_root

RANDOM_PREFIX = "random:"
RAW_SPEC = "raw"  # the clip's normalised coordinates, flattened: the no-learning floor
EMBED_BATCH = 256


def is_untrained(spec: str | None) -> bool:
    """`random:<arch>` or `raw`: baselines built for the dataset instead of loaded."""
    return spec is not None and (spec == RAW_SPEC or spec.startswith(RANDOM_PREFIX))


@dataclass
class LoadedEncoder:
    """An encoder and what it was trained on."""

    encoder: nn.Module
    source: str  # path of encoder.pt, "random:<arch>" or "raw"
    sha256: str  # of encoder.pt; for a random encoder, of its architecture and seed
    info: EncoderInfo = field(default_factory=EncoderInfo)
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
            "method": self.info.method,
            "preset": self.info.preset,
            "epoch": self.info.epoch,
            "arch": self.encoder.config.get("name"),
        }


def latest_run() -> Path:
    """The run `runs/latest` points at; a clear error when there is none."""
    link = runs_root() / "latest"
    if not link.exists():
        raise SkelctlError(
            f"no encoder given and no latest run at {link} "
            f"(run `skelctl pretrain` first, or pass --encoder RUN_DIR|encoder.pt|{RANDOM_PREFIX}ARCH)"
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
    if is_untrained(spec):
        if layout is None:
            raise SkelctlError(f"--encoder {spec}: a baseline encoder is built for a dataset (pass --data)")
        if spec == RAW_SPEC:
            return _raw_encoder(layout, in_channels, num_persons, frames)
        config = {"name": str(spec)[len(RANDOM_PREFIX):], "layout": layout, "in_channels": in_channels,
                  "num_persons": num_persons, "frames": frames}
        encoder = random_encoder(config, seed)
        identity = json.dumps({"config": encoder.config, "seed": seed}, sort_keys=True)
        info = EncoderInfo(method="random", frames=frames, layout=layout.to_dict(), seed=seed)
        return LoadedEncoder(encoder, str(spec), hashlib.sha256(identity.encode()).hexdigest(), info)
    path = encoder_file(latest_run() if spec is None else spec)
    encoder, info = load_encoder(path)
    run_dir = path.parent if (path.parent / "config.yaml").is_file() else None
    return LoadedEncoder(encoder, str(path.resolve()), file_sha256(path), info, run_dir)


def random_encoder(config: dict[str, Any], seed: int, init: str = "reference") -> nn.Module:
    """A freshly initialised encoder of architecture `config` (`build_encoder` keyword
    arguments, as an encoder's `config` records them), drawn from `seed` without touching the
    global random state. `init` "pytorch": PyTorch's layer defaults (a run's `method.init`)."""
    from skelctl.models import build_encoder
    from skelctl.models.layers import reset_parameters_

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_encoder(**config)
        if init == "pytorch":
            reset_parameters_(encoder)
    return encoder


def _raw_encoder(layout: Layout, in_channels: int, num_persons: int, frames: int) -> LoadedEncoder:
    from skelctl.models.raw import RawCoordinates

    encoder = RawCoordinates(layout, in_channels, num_persons, frames)
    identity = json.dumps({"config": encoder.config}, sort_keys=True)
    info = EncoderInfo(method=RAW_SPEC, frames=frames, layout=layout.to_dict())
    return LoadedEncoder(encoder, RAW_SPEC, hashlib.sha256(identity.encode()).hexdigest(), info)


def batchnorm_note(benchmark: str) -> str:
    """What a calibrated random encoder's `EncoderInfo.batchnorm` says."""
    return f"statistics of the {benchmark} training clips"


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
        for x in view.batches(bank, 1.0, batch_size):
            encoder(x)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        encoder.eval()
