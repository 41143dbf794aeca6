"""Projection heads that methods put on top of an encoder's pooled feature."""

from __future__ import annotations

from torch import nn


class MLPHead(nn.Sequential):
    """Linear -> (BatchNorm1d) -> ReLU -> Linear.

    SkeleMixCLR uses 256-256-128 with BN; ISC uses d-d-128 without (the MoCo v2 head).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, batchnorm: bool):
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim)]
        if batchnorm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
        super().__init__(*layers)
