"""What a contrastive method is made of, as plain dataclasses (the preset schema builds on them).

Defaults are SkeleMixCLR+'s (SPEC 4); `paper_defaults(name)` gives each paper's own values, so a
preset only lists what it changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from skelctl.errors import SkelctlError

MethodName = Literal["skeletonclr", "skelemix", "isc", "isc-intra"]
Representation = Literal["sequence", "graph", "image"]
METHOD_NAMES: tuple[str, ...] = ("skeletonclr", "skelemix", "isc", "isc-intra")
REPRESENTATIONS: tuple[str, ...] = ("sequence", "graph", "image")


def value_range(lo: float | None = None, hi: float | None = None) -> dict[str, tuple[float | None, float | None]]:
    """Field metadata: inclusive bounds (either end None: open) that the preset validator
    (`skelctl.engine.config`) checks, naming the key. The one definition for every schema."""
    return {"range": (lo, hi)}


@dataclass
class MocoConfig:
    """MoCo v2 queue, key momentum, softmax temperature and projection head."""

    queue_size: int = field(default=32768, metadata=value_range(1, None))
    # > 0: the queue holds at most this fraction of the training clips (whole batches): a queue
    # near a small dataset's size holds stale keys of each query's own clip as negatives
    queue_fraction: float = field(default=0.0, metadata=value_range(0.0, 1.0))
    momentum: float = field(default=0.999, metadata=value_range(0.0, 1.0))
    temperature: float = field(default=0.2, metadata=value_range(1e-6, None))
    proj_dim: int = field(default=128, metadata=value_range(1, None))
    head_hidden: int | None = field(default=None, metadata=value_range(1, None))  # None: feature dim
    head_batchnorm: bool = True


@dataclass
class AugmentConfig:
    """Per-view augmentation: one temporal crop, then one spatial transform."""

    temporal: Literal["pad_crop", "crop_resize"] = "pad_crop"
    # crop_resize only: fraction of the valid length
    crop_scale: tuple[float, float] = field(default=(0.1, 1.0), metadata=value_range(0.0, 1.0))
    spatial: Literal["shear", "isc_one_of"] = "shear"
    shear: float = field(default=0.5, metadata=value_range(0.0, None))  # "shear": U(-shear, shear)
    rotate: float = field(default=0.0, metadata=value_range(0.0, 180.0))  # degrees about the vertical; 0 = off (the papers)

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")


@dataclass
class SkeleMixConfig:
    """SkeleMix regions (SPEC 4): how many mixed batches, how big a pasted region, loss weights."""

    repeat: int = field(default=3, metadata=value_range(1, None))
    parts: tuple[int, int] = (2, 3)  # how many of the 5 body parts are pasted (inclusive range)
    feature_frames: tuple[int, int] = (7, 11)  # pasted length in feature frames (inclusive range)
    trimmed_weight: float = field(default=0.5, metadata=value_range(0.0, None))
    truncated_weight: float = field(default=0.5, metadata=value_range(0.0, None))

    def __post_init__(self) -> None:
        for key in ("parts", "feature_frames"):
            lo, hi = getattr(self, key)
            if not 1 <= lo <= hi:
                raise ValueError(f"{key} must be an inclusive range 1 <= lo <= hi, got {(lo, hi)}")


@dataclass
class MethodConfig:
    """A method and everything it builds: encoders, MoCo, views, SkeleMix."""

    name: MethodName = "skelemix"
    encoder: str = "stgcn"  # skeletonclr / skelemix backbone
    # options of the single backbone of skeletonclr / skelemix / isc-intra (isc builds defaults)
    encoder_kwargs: dict[str, str | int | float | bool] = field(default_factory=dict)
    pair: tuple[Representation, Representation] = ("sequence", "graph")  # isc; isc-intra: pair[0]
    representation_encoders: dict[str, str] = field(
        default_factory=lambda: {"sequence": "gru", "graph": "agcn", "image": "cnn"}
    )
    # isc: options of each representation's backbone, e.g. {sequence: {hidden_size: 64}} (small demos)
    representation_kwargs: dict[str, dict[str, str | int | float | bool]] = field(default_factory=dict)
    moco: MocoConfig = field(default_factory=MocoConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    skelemix: SkeleMixConfig = field(default_factory=SkeleMixConfig)
    # isc only: weight w of the intra-representation terms added to the paper's inter terms,
    # L = CE(q; l, Q2) + CE(r; k, Q1) + w [CE(q; k, Q1) + CE(r; l, Q2)]; 0 = the paper's loss
    intra_weight: float = field(default=0.0, metadata=value_range(0.0, None))
    # weights at start: "reference" = each paper's code (SkeletonCLR's N(0, 0.02) for ST-GCN);
    # "pytorch" = PyTorch's layer defaults, which start short CPU runs with sane gradients
    init: Literal["reference", "pytorch"] = "reference"

    def __post_init__(self) -> None:
        if self.name == "isc" and self.pair[0] == self.pair[1]:
            raise ValueError(f"isc contrasts two different representations, got pair {list(self.pair)}")
        missing = [r for r in self.pair if r not in self.representation_encoders]
        if missing:
            raise ValueError(f"representation_encoders has no encoder for {missing[0]!r}")
        unknown = [r for r in self.representation_kwargs if r not in REPRESENTATIONS]
        if unknown:
            raise ValueError(f"representation_kwargs: {unknown[0]!r} is not one of {', '.join(REPRESENTATIONS)}")


def paper_defaults(name: str) -> MethodConfig:
    """The published configuration of a method (SPEC 4 for SkeletonCLR/SkeleMixCLR+, SPEC 5 for ISC)."""
    if name in ("skeletonclr", "skelemix"):
        return MethodConfig(name=name)
    if name in ("isc", "isc-intra"):
        return MethodConfig(
            name=name,
            moco=MocoConfig(queue_size=16384, temperature=0.07, head_batchnorm=False),
            augment=replace(AugmentConfig(), temporal="crop_resize", spatial="isc_one_of"),
        )
    raise SkelctlError(f"unknown method {name!r} (expected one of {', '.join(METHOD_NAMES)})", "method.name")
