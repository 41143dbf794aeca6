"""SkeletonCLR (Li et al., CVPR 2021): MoCo v2 on two augmented views of a skeleton clip.

    q = g(f_q(x_q)),  k = g'(f_k(x_k)),  L_ins = -log exp(q.k / T) / (exp(q.k / T) + sum_queue exp(q.m / T))

The same class is ISC's intra-skeleton baseline (`isc-intra`): plain MoCo v2 on one
representation, with ISC's encoder, head and augmentations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from skelctl.data.clips import ClipBank
from skelctl.methods.moco import (
    LossSum,
    MomentumBranch,
    contrast_logits,
    gather_keys,
    info_nce,
    top1,
)
from skelctl.methods.views import ViewMaker


class SkeletonCLR(nn.Module):
    """MoCo v2 with one backbone; `primary` names that backbone in `export_encoders()`."""

    def __init__(self, branch: MomentumBranch, views: ViewMaker, temperature: float, primary: str):
        super().__init__()
        self.branch = branch
        self.views = views
        self.temperature = temperature
        self.primary = primary

    @torch.no_grad()
    def make_views(self, bank: ClipBank, idx: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
        return self.views.pair(bank, idx, gen)

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

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised query projection (the weighted-kNN monitor's feature)."""
        return self.branch.query(x)

    def export_encoders(self) -> dict[str, nn.Module]:
        return {self.primary: self.query_encoder}

    @property
    def query_encoder(self) -> nn.Module:
        """The backbone downstream evaluation uses (saved as encoder.pt)."""
        return self.branch.query.encoder
