"""SkeletonCLR (Li et al., CVPR 2021): MoCo v2 on two augmented views of a skeleton clip.

    q = g(f_q(x_q)),  k = g'(f_k(x_k)),  L_ins = -log exp(q.k / T) / (exp(q.k / T) + sum_queue exp(q.m / T))

The same class is ISC's intra-skeleton baseline (`isc-intra`): plain MoCo v2 on one
representation, with ISC's encoder, head and augmentations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from skelctl.data.layout import Layout
from skelctl.methods.base import ContrastiveMethod, branch_shape, register_method
from skelctl.methods.config import MethodConfig
from skelctl.methods.moco import (
    LossSum,
    MomentumBranch,
    build_branch,
    contrast_logits,
    gather_keys,
    info_nce,
    top1,
)
from skelctl.methods.views import ViewMaker


@register_method("skeletonclr")
class SkeletonCLR(ContrastiveMethod):
    """MoCo v2 with one backbone; `primary` names that backbone in `export_encoders()`."""

    def __init__(self, branch: MomentumBranch, views: ViewMaker, temperature: float, primary: str):
        super().__init__(views, temperature, primary)
        self.branch = branch

    @classmethod
    def from_config(cls, cfg: MethodConfig, views: ViewMaker, in_channels: int) -> SkeletonCLR:
        return cls(cls.reference_branch(cfg, views, in_channels), views, cfg.moco.temperature,
                   primary=cfg.encoder)

    @staticmethod
    def reference_branch(cfg: MethodConfig, views: ViewMaker, in_channels: int) -> MomentumBranch:
        """The `method.encoder` backbone and its head, both drawn as the SkeletonCLR reference."""
        layout: Layout = views.view.layout
        return build_branch(cfg.encoder, layout, cfg.moco, **branch_shape(cfg, views, in_channels),
                            reference_init=True, encoder_kwargs=cfg.encoder_kwargs)

    def momentum_branches(self) -> dict[str, MomentumBranch]:
        return {self.primary: self.branch}

    def instance_contrast(self, views: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(logits [q.k | q.queue] / T, keys k, the queue snapshot the logits used)."""
        q = self.branch.query(views["query"])
        k = self.branch.encode_keys(views["key"])
        negatives = self.branch.queue.snapshot()
        return contrast_logits(q, k, negatives, self.temperature), k, negatives

    def forward(self, views: dict[str, torch.Tensor],
                backward: Callable[[torch.Tensor], None] | None = None) -> dict[str, torch.Tensor]:
        """The loss parts; with `backward`, the loss is back-propagated here (see `LossSum`)."""
        logits, k, _ = self.instance_contrast(views)
        loss_ins = info_nce(logits)
        loss = LossSum(backward)
        loss.add(loss_ins)
        self.branch.queue.push(gather_keys(k))
        return {"loss": loss.value, "loss_ins": loss_ins.detach(), "acc": top1(logits)}
