"""The contrastive methods (the papers) behind a registry: SkeletonCLR (`skeletonclr`),
SkeleMixCLR+ (`skelemix`), ISC (`isc`) and its intra baseline (`isc-intra`).

Every method is a `skelctl.methods.base.ContrastiveMethod` (an `nn.Module`) with
  `make_views(bank, idx, gen) -> dict` (all augmentation, no grad, on the bank's device),
  `forward(views) -> dict` ("loss" plus named parts; momentum update and enqueue inside),
  `embed(x) -> (N, proj_dim)` (L2-normalised query projection),
  `export_encoders() -> dict[name, backbone]`, `primary` (the name saved as encoder.pt) and
  `query_encoder` (that backbone).
Importing this package stays light (the preset schema imports `skelctl.methods.config`);
`build_method` imports torch and registers the methods when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skelctl.methods.config import MethodConfig, paper_defaults

if TYPE_CHECKING:
    from skelctl.data.layout import Layout
    from skelctl.methods.base import ContrastiveMethod

__all__ = ["MethodConfig", "build_method", "paper_defaults"]


def build_method(cfg: MethodConfig, layout: Layout, frames: int = 64, stream: str = "joint",
                 in_channels: int = 3, normalize: str = "none") -> ContrastiveMethod:
    """The method `cfg.name` with fresh encoders, heads, key twins and queues, for clips in the
    `normalize` input coordinates (its views rotate about that normalisation's vertical)."""
    from skelctl.augment.inputs import ClipView
    from skelctl.methods import isc, skelemix, skeletonclr  # noqa: F401  (registration)
    from skelctl.methods.base import method_class
    from skelctl.methods.views import ViewMaker

    views = ViewMaker(cfg.augment, ClipView(frames, stream, layout, normalize))
    return method_class(cfg.name).from_config(cfg, views, in_channels)
