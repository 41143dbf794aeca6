"""ISC, inter-skeleton contrast (Thoker et al., ACM MM 2021; SPEC 5).

Two representations S1, S2 of the same clip (sequence / graph / image) each get a MoCo pair:
q, k encode S1 and r, l encode S2 (k, l are momentum twins). The positive of a query is the
OTHER representation's key of the other view, and its negatives are that representation's queue:

    q = q(S1(v1)),  positive l = l(S2(v2)),  negatives Q2
    r = r(S2(v1)),  positive k = k(S1(v2)),  negatives Q1
    L = CE(q) + CE(r);  then enqueue k into Q1 and l into Q2

Every encoder takes the (N, C, T, V, M) clip and builds its own representation from it, so the
representations of one view always come from the same augmented skeleton.
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


class ISC(nn.Module):
    """Cross-representation MoCo over an ordered pair `{S1: branch, S2: branch}`."""

    def __init__(self, branches: dict[str, MomentumBranch], views: ViewMaker, temperature: float,
                 primary: str):
        super().__init__()
        if len(branches) != 2 or primary not in branches:
            raise ValueError(f"ISC needs two representations including {primary!r}, got {list(branches)}")
        self.pair = tuple(branches)
        self.branches = nn.ModuleDict(branches)
        self.views = views
        self.temperature = temperature
        self.primary = primary

    @torch.no_grad()
    def make_views(self, bank: ClipBank, idx: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """query = view 1 (read by q and r), key = view 2 (read by k and l)."""
        return self.views.pair(bank, idx, gen)

    def forward(self, views: dict[str, torch.Tensor],
                backward: Callable[[torch.Tensor], None] | None = None) -> dict[str, torch.Tensor]:
        """The loss parts; with `backward`, CE(q) is back-propagated before r is computed, so one
        query encoder's activations are alive at a time (see `LossSum`)."""
        s1, s2 = self.pair
        first, second = self.branches[s1], self.branches[s2]
        k = first.encode_keys(views["key"])
        l = second.encode_keys(views["key"])  # noqa: E741 (the paper's name)
        loss = LossSum(backward)
        logits_q = contrast_logits(first.query(views["query"]), l, second.queue.snapshot(), self.temperature)
        loss_q = info_nce(logits_q)
        loss.add(loss_q)
        logits_r = contrast_logits(second.query(views["query"]), k, first.queue.snapshot(), self.temperature)
        loss_r = info_nce(logits_r)
        loss.add(loss_r)
        first.queue.push(gather_keys(k))
        second.queue.push(gather_keys(l))
        return {
            "loss": loss.value,
            f"loss_{s1}": loss_q.detach(),
            f"loss_{s2}": loss_r.detach(),
            "acc": (top1(logits_q) + top1(logits_r)) / 2,
        }

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The primary representation's L2-normalised query projection."""
        return self.branches[self.primary].query(x)

    def export_encoders(self) -> dict[str, nn.Module]:
        return {s: self.branches[s].query.encoder for s in self.pair}

    @property
    def query_encoder(self) -> nn.Module:
        """The backbone saved as encoder.pt: the graph one when the pair has it."""
        return self.branches[self.primary].query.encoder
