"""2s-AGCN (one stream), the graph encoder of ISC (SPEC 5).

Ten units of adaptive graph convolution + temporal convolution, widths 64 x4, 128 x3 (stride 2
at the first), 256 x3 (stride 2 at the first). The graph of each subset is the sum of the fixed
adjacency A, a learned matrix B (starting near zero) and a per-sample attention C computed from
two 1x1 embeddings.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from skelctl.data.layout import Layout
from skelctl.models.graph import NUM_SUBSETS, adjacency
from skelctl.models.layers import GraphEncoder, TemporalConv, residual_branch
from skelctl.models.registry import register_encoder

EMBED_RATIO = 4  # embedding width = out_channels // 4
TEMPORAL_KERNEL = 9


class AdaptiveGraphConv(nn.Module):
    """Sum over subsets k of W_k x (A_k + B_k + C_k), then BN, + down-projection of x, ReLU.

    The per-subset convolutions run as one conv each: theta/phi emit all K embeddings at once,
    and the K output convolutions W_k with the sum over k are one 1x1 conv over the K aggregated
    inputs stacked (K*C_in channels): the same parameters as K separate convolutions (stored as
    one grouped conv, `mix`), and no K*C_out intermediate to sum (a third faster on CPU).
    """

    def __init__(self, in_channels: int, out_channels: int, graph: torch.Tensor):
        super().__init__()
        self.out_channels = out_channels
        self.embed_channels = out_channels // EMBED_RATIO
        self.register_buffer("graph", graph.clone(), persistent=False)
        self.adaptive = nn.Parameter(torch.full_like(graph, 1e-6))  # B, learned from ~0
        self.theta = nn.Conv2d(in_channels, NUM_SUBSETS * self.embed_channels, 1)
        self.phi = nn.Conv2d(in_channels, NUM_SUBSETS * self.embed_channels, 1)
        self.mix = nn.Conv2d(NUM_SUBSETS * in_channels, NUM_SUBSETS * out_channels, 1,
                             groups=NUM_SUBSETS)
        self.bn = nn.BatchNorm2d(out_channels)
        self.down = residual_branch(in_channels, out_channels, stride=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        e = self.embed_channels
        theta = self.theta(x).view(n, NUM_SUBSETS, e, t, v)
        phi = self.phi(x).view(n, NUM_SUBSETS, e, t, v)
        scores = torch.einsum("nkctv,nkctw->nkvw", theta, phi) / (e * t)
        graph = scores.softmax(dim=-2) + self.graph + self.adaptive  # columns: senders
        aggregated = torch.einsum("nctv,nkvw->nkctw", x, graph).reshape(n, NUM_SUBSETS * c, t, v)
        # sum_k W_k a_k + b_k = [W_1 .. W_K] [a_1; ..; a_K] + sum_k b_k
        weight = self.mix.weight.view(NUM_SUBSETS, self.out_channels, c)
        weight = weight.transpose(0, 1).reshape(self.out_channels, NUM_SUBSETS * c, 1, 1)
        bias = self.mix.bias.view(NUM_SUBSETS, self.out_channels).sum(dim=0)
        y = F.conv2d(aggregated, weight, bias)
        return self.relu(self.bn(y) + self.down(x))


class AGCNUnit(nn.Module):
    """Adaptive graph conv -> temporal conv (kernel 9) -> + residual -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, graph: torch.Tensor, stride: int = 1,
                 residual: bool = True):
        super().__init__()
        self.gcn = AdaptiveGraphConv(in_channels, out_channels, graph)
        self.tcn = TemporalConv(out_channels, out_channels, TEMPORAL_KERNEL, stride)
        self.residual = residual_branch(in_channels, out_channels, stride, residual)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn(self.gcn(x))
        if self.residual is not None:
            y = y + self.residual(x)
        return self.relu(y)


@register_encoder("agcn")
class AGCN(GraphEncoder):
    """2s-AGCN backbone: (N, C, T, V, M) -> (N, 256), about 3.45 M parameters.

    Input batch-norm keeps separate statistics per body slot (BN1d over M*V*C), as 2s-AGCN does.
    """

    def __init__(self, layout: Layout, in_channels: int = 3, num_persons: int = 2,
                 frames: int = 64):
        super().__init__(layout, in_channels, num_persons, frames, per_person_norm=True)
        graph = torch.from_numpy(adjacency(layout))
        plan = [  # (in, out, stride)
            (in_channels, 64, 1), (64, 64, 1), (64, 64, 1), (64, 64, 1),
            (64, 128, 2), (128, 128, 1), (128, 128, 1),
            (128, 256, 2), (256, 256, 1), (256, 256, 1),
        ]
        self.feature_dim = plan[-1][1]
        self.units = nn.Sequential(*(
            AGCNUnit(cin, cout, graph, stride, residual=i > 0)
            for i, (cin, cout, stride) in enumerate(plan)
        ))
        _init_agcn_(self)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_units(self.units, x)


def _init_agcn_(model: AGCN) -> None:
    """2s-AGCN's init: convs Kaiming (fan-out), BN weight 1, the output convs of the graph
    branches N(0, sqrt(2 / (out * in * K))), and each graph conv's BN starting at 1e-6 so every
    unit starts close to its residual path."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, AdaptiveGraphConv):
            out_k, in_channels = m.mix.weight.shape[:2]
            nn.init.normal_(m.mix.weight, 0.0, math.sqrt(2.0 / (out_k * in_channels)))
            nn.init.zeros_(m.mix.bias)
            nn.init.constant_(m.bn.weight, 1e-6)
