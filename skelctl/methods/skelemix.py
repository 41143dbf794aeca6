"""SkeleMixCLR+ (Chen et al., 2022; SPEC 4): SkeletonCLR plus contrast of mixed clips.

A mixed clip pastes a body-part x time region of a partner clip (the batch rolled by a random
offset) into the query view. Pooling the mixed clip's feature map inside and outside that region
gives two more queries per clip:

    p (trimmed view)   = g(mean of F over the pasted region)   positive k[partner]
    c (truncated view) = g(mean of F over the rest)            positive k

each contrasted against the queue and against the other half of its own mixed clip (detached):

    L_p = CE([p.k[partner] | p.queue | p.sg(c)] / T),  L_c = CE([c.k | c.queue | c.sg(p)] / T)
    L = L_ins + sum over mixes (w_p L_p + w_c L_c)       (w_p = w_c = 0.5, 3 mixes)

Each mixed batch runs through the query encoder on its own, as in the reference code, so every
forward sees BatchNorm statistics of one batch of N clips. (Stacking the three into one 3N batch
would save no arithmetic, only change those statistics.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from skelctl.augment import mix, sample_region
from skelctl.data.clips import ClipBank
from skelctl.data.layout import PART_NAMES
from skelctl.errors import SkelctlError
from skelctl.methods.base import NUM_PERSONS, register_method
from skelctl.methods.config import MethodConfig, SkeleMixConfig
from skelctl.methods.moco import (
    LossSum,
    MomentumBranch,
    contrast_logits,
    gather_keys,
    info_nce,
    top1,
)
from skelctl.methods.skeletonclr import SkeletonCLR
from skelctl.methods.views import ViewMaker
from skelctl.models.layers import frozen


def masked_mean(fmap: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of a feature map (N, M, D, T', V) over the cells where mask (T', V) holds, then
    over bodies -> (N, D)."""
    weight = mask.to(fmap.dtype)
    return (fmap * weight).sum(dim=(3, 4)).div(weight.sum()).mean(dim=1)


def check_mixing(mixing: SkeleMixConfig, frames: int, stride: int) -> None:
    """The region ranges against the clip: at build time, naming the key (not at step 1)."""
    feature_len = -(-frames // stride)
    for key, (lo, hi), top, what in (
        ("parts", mixing.parts, len(PART_NAMES), "body parts"),
        ("feature_frames", mixing.feature_frames, feature_len,
         f"feature frames (data.frames {frames} at the encoder's temporal stride {stride})"),
    ):
        if not 1 <= lo <= hi <= top:
            raise SkelctlError(f"method.skelemix.{key}: [{lo}, {hi}] is not a range within the "
                               f"{top} {what}; expected 1 <= lo <= hi <= {top}")


def temporal_stride(encoder: nn.Module, in_channels: int, frames: int, joints: int) -> int:
    """Input frames per feature-map frame, measured on one blank clip (SkeleMix draws its
    regions on the feature map's time axis and pastes them at input resolution)."""
    with frozen(encoder):
        blank = torch.zeros(1, in_channels, frames, joints, NUM_PERSONS)
        feature_frames = encoder.feature_map(blank).shape[3]
    stride = -(-frames // feature_frames)
    if -(-frames // stride) != feature_frames:
        raise SkelctlError(
            f"skelemix: {frames} input frames give {feature_frames} feature frames, not a whole "
            f"temporal stride; use a frame count divisible by the encoder's stride"
        )
    return stride


@register_method("skelemix")
class SkeleMixCLR(SkeletonCLR):
    """SkeletonCLR + `mix.repeat` SkeleMix batches per step; needs a `feature_map` encoder."""

    def __init__(self, branch: MomentumBranch, views: ViewMaker, temperature: float, primary: str,
                 mixing: SkeleMixConfig, stride: int):
        super().__init__(branch, views, temperature, primary)
        self.mixing = mixing
        self.stride = stride  # input frames per feature frame of the encoder

    @classmethod
    def from_config(cls, cfg: MethodConfig, views: ViewMaker, in_channels: int) -> SkeleMixCLR:
        branch = cls.reference_branch(cfg, views, in_channels)
        encoder, view = branch.query.encoder, views.view
        if not hasattr(encoder, "feature_map"):
            raise SkelctlError(
                f"method.encoder: skelemix pools regions of a feature map; encoder "
                f"'{cfg.encoder}' has none (use stgcn or agcn)"
            )
        stride = temporal_stride(encoder, in_channels, view.frames, view.layout.num_joints)
        check_mixing(cfg.skelemix, view.frames, stride)  # now, by key, not at the first step
        return cls(branch, views, cfg.moco.temperature, cfg.encoder, cfg.skelemix, stride)

    @torch.no_grad()
    def make_views(self, bank: ClipBank, idx: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """query, key: (N, C, T, V, M); mixed: (R, N, C, T, V, M) query views with the partner
        pasted; partner: (R, N) which clip each clip's pasted region comes from; feature_mask:
        (R, T', V) the pasted region on the feature map."""
        views = super().make_views(bank, idx, gen)
        query = views["query"]
        clips = torch.arange(query.shape[0], device=query.device)
        regions = [
            sample_region(query.shape[0], self.views.view.layout, gen, self.views.view.frames, self.stride,
                          self.mixing.parts, self.mixing.feature_frames)
            for _ in range(self.mixing.repeat)
        ]
        views["mixed"] = torch.stack([mix(query, r) for r in regions])
        views["partner"] = torch.stack([r.partner(clips) for r in regions])
        views["feature_mask"] = torch.stack([r.feature_mask for r in regions])
        return views

    def trimmed_and_truncated(self, mixed: torch.Tensor, region: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spatio-temporal mask pooling: (p, c), the projections of the pasted region and of
        the rest of the mixed clips, each through the head on its own, L2-normalised."""
        query = self.branch.query
        fmap = query.encoder.feature_map(mixed)
        p = query.head(masked_mean(fmap, region))
        c = query.head(masked_mean(fmap, ~region))
        return F.normalize(p, dim=1), F.normalize(c, dim=1)

    def forward(self, views: dict[str, torch.Tensor],
                backward: Callable[[torch.Tensor], None] | None = None) -> dict[str, torch.Tensor]:
        """The loss parts; with `backward`, each mix's term is back-propagated as soon as it is
        computed, so one mixed batch's activations are alive at a time (see `LossSum`)."""
        logits, k, negatives = self.instance_contrast(views)
        loss_ins = info_nce(logits)
        loss = LossSum(backward)
        loss.add(loss_ins)
        loss_trimmed = loss_truncated = logits.new_zeros(())
        for mixed, partner, region in zip(views["mixed"], views["partner"], views["feature_mask"], strict=True):
            p, c = self.trimmed_and_truncated(mixed, region)
            trimmed = info_nce(contrast_logits(p, k[partner], negatives, self.temperature, c.detach()))
            truncated = info_nce(contrast_logits(c, k, negatives, self.temperature, p.detach()))
            loss.add(self.mixing.trimmed_weight * trimmed + self.mixing.truncated_weight * truncated)
            loss_trimmed = loss_trimmed + trimmed.detach()
            loss_truncated = loss_truncated + truncated.detach()
        self.branch.queue.push(gather_keys(k))
        return {
            "loss": loss.value,
            "loss_ins": loss_ins.detach(),
            "loss_trimmed": loss_trimmed,
            "loss_truncated": loss_truncated,
            "acc": top1(logits),
        }
