"""ISC, inter-skeleton contrast (Thoker et al., ACM MM 2021; SPEC 5).

Two representations S1, S2 of the same clip (sequence / graph / image) each get a MoCo pair:
q, k encode S1 and r, l encode S2 (k, l are momentum twins). The positive of a query is the
OTHER representation's key of the other view, and its negatives are that representation's queue:

    q = q(S1(v1)),  positive l = l(S2(v2)),  negatives Q2
    r = r(S2(v1)),  positive k = k(S1(v2)),  negatives Q1
    L = CE(q) + CE(r);  then enqueue k into Q1 and l into Q2

With `method.intra_weight` w > 0 (not in the paper) each query also meets its own
representation's key, as in plain MoCo: L += w [CE(q; k, Q1) + CE(r; l, Q2)]. Each encoder then
learns from its own views from the first step, where the inter terms alone wait for two random
encoders to agree (docs/bench-real.md).

Every encoder takes the (N, C, T, V, M) clip and builds its own representation from it, so the
representations of one view always come from the same augmented skeleton.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

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
from skelctl.methods.skeletonclr import SkeletonCLR
from skelctl.methods.views import ViewMaker


@register_method("isc")
class ISC(ContrastiveMethod):
    """Cross-representation MoCo over an ordered pair `{S1: branch, S2: branch}`; the query view
    is read by q and r, the key view by k and l."""

    def __init__(self, branches: dict[str, MomentumBranch], views: ViewMaker, temperature: float,
                 primary: str, intra_weight: float = 0.0):
        super().__init__(views, temperature, primary)
        if len(branches) != 2 or primary not in branches:
            raise ValueError(f"ISC needs two representations including {primary!r}, got {list(branches)}")
        self.pair = tuple(branches)
        self.branches = nn.ModuleDict(branches)
        self.intra_weight = intra_weight

    @classmethod
    def from_config(cls, cfg: MethodConfig, views: ViewMaker, in_channels: int) -> ISC:
        shape = branch_shape(cfg, views, in_channels)
        branches = {
            r: build_branch(cfg.representation_encoders[r], views.view.layout, cfg.moco, **shape,
                            encoder_kwargs=cfg.representation_kwargs.get(r))
            for r in cfg.pair
        }
        # the paper evaluates the sequence (GRU) encoder of a sequence + graph pretraining
        primary = "sequence" if "sequence" in cfg.pair else cfg.pair[0]
        return cls(branches, views, cfg.moco.temperature, primary, cfg.intra_weight)

    def momentum_branches(self) -> dict[str, MomentumBranch]:
        return {s: self.branches[s] for s in self.pair}

    def forward(self, views: dict[str, torch.Tensor],
                backward: Callable[[torch.Tensor], None] | None = None) -> dict[str, torch.Tensor]:
        """The loss parts; with `backward`, CE(q) is back-propagated before r is computed, so one
        query encoder's activations are alive at a time (see `LossSum`)."""
        s1, s2 = self.pair
        first, second = self.branches[s1], self.branches[s2]
        k = first.encode_keys(views["key"])
        l = second.encode_keys(views["key"])  # noqa: E741 (the paper's name)
        loss = LossSum(backward)
        queue_1, queue_2 = first.queue.snapshot(), second.queue.snapshot()
        inter, intra, accuracies = {}, {}, []
        for name, branch, other_key, other_queue, own_key, own_queue in (
                (s1, first, l, queue_2, k, queue_1), (s2, second, k, queue_1, l, queue_2)):
            query = branch.query(views["query"])
            logits = contrast_logits(query, other_key, other_queue, self.temperature)
            inter[name] = term = info_nce(logits)
            accuracies.append(top1(logits))
            if self.intra_weight:
                intra[name] = info_nce(contrast_logits(query, own_key, own_queue, self.temperature))
                term = term + self.intra_weight * intra[name]
            loss.add(term)  # one query encoder's activations alive at a time
        first.queue.push(gather_keys(k))
        second.queue.push(gather_keys(l))
        out = {"loss": loss.value, **{f"loss_{name}": part.detach() for name, part in inter.items()}}
        if intra:
            out["loss_intra"] = sum(intra.values()).detach()
        out["acc"] = sum(accuracies) / len(accuracies)
        return out

@register_method("isc-intra")
class ISCIntra(SkeletonCLR):
    """ISC's intra-skeleton baseline: plain MoCo v2 (SkeletonCLR) on the first representation
    of `method.pair`, with ISC's encoder, head and augmentations."""

    @classmethod
    def from_config(cls, cfg: MethodConfig, views: ViewMaker, in_channels: int) -> ISCIntra:
        representation = cfg.pair[0]
        branch = build_branch(cfg.representation_encoders[representation], views.view.layout,
                              cfg.moco, **branch_shape(cfg, views, in_channels),
                              encoder_kwargs=cfg.encoder_kwargs)
        return cls(branch, views, cfg.moco.temperature, primary=representation)
