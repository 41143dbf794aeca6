"""The contrastive methods (the papers): SkeletonCLR, SkeleMixCLR+, ISC and its intra baseline.

Every method is an `nn.Module` with
  `make_views(bank, idx, gen) -> dict` (all augmentation, no grad, on the bank's device),
  `forward(views) -> dict` ("loss" plus named parts; momentum update and enqueue inside),
  `embed(x) -> (N, proj_dim)` (L2-normalised query projection),
  `export_encoders() -> dict[name, backbone]`, `primary` (the name saved as encoder.pt) and
  `query_encoder` (that backbone).
Importing this package stays light (the preset schema imports `skelctl.methods.config`);
`build_method` imports torch when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skelctl.methods.config import MethodConfig, paper_defaults

if TYPE_CHECKING:
    from torch import nn

    from skelctl.data.layout import Layout

__all__ = ["MethodConfig", "build_method", "paper_defaults"]

NUM_PERSONS = 2  # bodies per clip in every stored dataset


def build_method(cfg: MethodConfig, layout: Layout, frames: int = 64, stream: str = "joint",
                 in_channels: int = 3, normalize: str = "none") -> nn.Module:
    """The method `cfg.name` with fresh encoders, heads, key twins and queues, for clips in the
    `normalize` input coordinates (its views rotate about that normalisation's vertical)."""
    from skelctl.data.normalize import vertical_axis
    from skelctl.errors import SkelctlError
    from skelctl.methods.isc import ISC
    from skelctl.methods.moco import build_branch
    from skelctl.methods.skelemix import SkeleMixCLR, check_mixing
    from skelctl.methods.skeletonclr import SkeletonCLR
    from skelctl.methods.views import ViewMaker

    views = ViewMaker(cfg.augment, layout, frames, stream, vertical_axis(normalize))
    temperature = cfg.moco.temperature
    shape = {"frames": frames, "in_channels": in_channels, "num_persons": NUM_PERSONS,
             "pytorch_init": cfg.init == "pytorch"}
    if cfg.name in ("skeletonclr", "skelemix"):
        branch = build_branch(cfg.encoder, layout, cfg.moco, **shape, reference_init=True,
                              encoder_kwargs=cfg.encoder_kwargs)
        if cfg.name == "skeletonclr":
            return SkeletonCLR(branch, views, temperature, primary=cfg.encoder)
        encoder = branch.query.encoder
        if not hasattr(encoder, "feature_map"):
            raise SkelctlError(
                f"method.encoder: skelemix pools regions of a feature map; encoder "
                f"'{cfg.encoder}' has none (use stgcn or agcn)"
            )
        stride = temporal_stride(encoder, in_channels, frames, layout.num_joints)
        check_mixing(cfg.skelemix, frames, stride)  # now, by key, not at the first step
        return SkeleMixCLR(branch, views, temperature, cfg.encoder, cfg.skelemix, stride)
    if cfg.name == "isc-intra":
        representation = cfg.pair[0]
        branch = build_branch(cfg.representation_encoders[representation], layout, cfg.moco,
                              **shape, encoder_kwargs=cfg.encoder_kwargs)
        return SkeletonCLR(branch, views, temperature, primary=representation)
    if cfg.name == "isc":
        branches = {
            r: build_branch(cfg.representation_encoders[r], layout, cfg.moco, **shape,
                            encoder_kwargs=cfg.representation_kwargs.get(r))
            for r in cfg.pair
        }
        # the paper evaluates the sequence (GRU) encoder of a sequence + graph pretraining
        primary = "sequence" if "sequence" in cfg.pair else cfg.pair[0]
        return ISC(branches, views, temperature, primary)
    raise SkelctlError(f"method.name: unknown method {cfg.name!r}")


def temporal_stride(encoder: nn.Module, in_channels: int, frames: int, joints: int) -> int:
    """Input frames per feature-map frame, measured on one blank clip (SkeleMix draws its
    regions on the feature map's time axis and pastes them at input resolution)."""
    import torch

    from skelctl.errors import SkelctlError

    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        blank = torch.zeros(1, in_channels, frames, joints, NUM_PERSONS)
        feature_frames = encoder.feature_map(blank).shape[3]
    encoder.train(was_training)
    stride = -(-frames // feature_frames)
    if -(-frames // stride) != feature_frames:
        raise SkelctlError(
            f"skelemix: {frames} input frames give {feature_frames} feature frames, not a whole "
            f"temporal stride; use a frame count divisible by the encoder's stride"
        )
    return stride
