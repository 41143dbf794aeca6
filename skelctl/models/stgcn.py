"""ST-GCN/4: the quarter-width ST-GCN of SkeletonCLR, CrosSCLR and SkeleMixCLR (SPEC 3).

Ten blocks of spatial graph convolution (3 subsets) + temporal convolution (kernel 9), channel
widths 16-16-16-16-32-32-32-64-64-256, temporal stride 2 at blocks 5 and 8, so 64 input frames
give a 256 x 16 x V feature map per body.
"""

from __future__ import annotations

import torch
from torch import nn

from skelctl.data.layout import Layout
from skelctl.models.graph import NUM_SUBSETS, adjacency
from skelctl.models.layers import Dropout, GraphEncoder, TemporalConv, init_normal_, residual_branch
from skelctl.models.registry import register_encoder

TEMPORAL_KERNEL = 9


class STGCNBlock(nn.Module):
    """Graph conv (1x1 conv to K*out channels, aggregate each subset over the joints) -> BN,
    ReLU, temporal conv, BN, dropout -> + residual -> ReLU.

    Each block learns an edge-importance mask multiplied into the fixed adjacency.
    """

    def __init__(self, in_channels: int, out_channels: int, num_joints: int, stride: int = 1,
                 dropout: float = 0.0, residual: bool = True):
        super().__init__()
        self.out_channels = out_channels
        self.gcn = nn.Conv2d(in_channels, out_channels * NUM_SUBSETS, kernel_size=1)
        self.edge_importance = nn.Parameter(torch.ones(NUM_SUBSETS, num_joints, num_joints))
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            TemporalConv(out_channels, out_channels, TEMPORAL_KERNEL, stride),
            Dropout(dropout),
        )
        self.residual = residual_branch(in_channels, out_channels, stride, residual)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        y = self.gcn(x).view(n, NUM_SUBSETS, self.out_channels, t, v)
        y = torch.einsum("nkctv,kvw->nctw", y, graph * self.edge_importance)
        y = self.tcn(y)
        if self.residual is not None:
            y = y + self.residual(x)
        return self.relu(y)


@register_encoder("stgcn")
class STGCN(GraphEncoder):
    """ST-GCN/4 backbone: (N, C, T, V, M) -> (N, feature_dim), about 0.82 M parameters.

    `base_channels` is the width of blocks 1-4 (16 for ST-GCN/4, 64 for the full ST-GCN);
    `dropout` applies inside blocks 2-10, block 1 has neither dropout nor residual.
    """

    def __init__(self, layout: Layout, in_channels: int = 3, num_persons: int = 2,
                 frames: int = 64, *, base_channels: int = 16, feature_dim: int = 256,
                 dropout: float = 0.5):
        super().__init__(layout, in_channels, num_persons, frames, per_person_norm=False)
        self.feature_dim = feature_dim
        self.register_buffer("graph", torch.from_numpy(adjacency(layout)), persistent=False)
        b, v = base_channels, layout.num_joints
        plan = [  # (in, out, stride)
            (in_channels, b, 1), (b, b, 1), (b, b, 1), (b, b, 1),
            (b, 2 * b, 2), (2 * b, 2 * b, 1), (2 * b, 2 * b, 1),
            (2 * b, 4 * b, 2), (4 * b, 4 * b, 1), (4 * b, feature_dim, 1),
        ]
        self.blocks = nn.ModuleList(
            STGCNBlock(cin, cout, v, stride,
                       dropout=0.0 if i == 0 else dropout, residual=i > 0)
            for i, (cin, cout, stride) in enumerate(plan)
        )
        init_normal_(self)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_units(self.blocks, x, self.graph)
