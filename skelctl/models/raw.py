"""The no-learning floor every evaluation can be asked for (`--encoder raw`)."""

from __future__ import annotations

import torch
from torch import nn

from skelctl.data.layout import Layout


class RawCoordinates(nn.Module):
    """A clip's normalised coordinates, resized to `frames`, flattened: what a classifier or a
    nearest neighbour gets without any encoder. Not in the encoder registry: it has nothing to
    pretrain."""

    def __init__(self, layout: Layout, in_channels: int = 3, num_persons: int = 2, frames: int = 64):
        super().__init__()
        self.feature_dim = in_channels * frames * layout.num_joints * num_persons
        self.config = {"name": "raw", "layout": layout.to_dict(), "in_channels": in_channels,
                       "num_persons": num_persons, "frames": frames}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)
