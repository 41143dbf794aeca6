"""HCN-style CNN, the image encoder of ISC (SPEC 5).

Per body, a position stream (the coordinates) and a motion stream (frame differences, resized
back to T frames) each run: 1x1 conv C->64, ReLU, (3x1) conv 64->64 (point level); then the
image is transposed so the V joints become channels over a (T x 64) plane (co-occurrence
level): 3x3 conv V->32, max-pool 2; 3x3 conv 32->64, dropout, max-pool 2. The two streams are
concatenated (128), then 3x3 conv 128->128 and 128->256, each with ReLU, dropout and max-pool 2.
Bodies are merged by an element-wise max and the (256, T/16, 64/16) map is flattened:
256 x 4 x 4 = 4096 for 64 frames.

The reference sets the point-level width of its (3x1) conv to the window size (64); here it is
`channels` (also 64), so the feature size only grows with `frames`, never the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from skelctl.data.layout import Layout
from skelctl.errors import SkelctlError
from skelctl.models.layers import check_input
from skelctl.models.registry import register_encoder

NUM_POOLS = 4  # four max-pools of 2: the (T x channels) plane shrinks by 16 each way


class HCNStream(nn.Module):
    """One stream's point-level then co-occurrence layers: (B, C, T, V) -> (B, w, T/4, w/4)."""

    def __init__(self, in_channels: int, num_joints: int, channels: int, dropout: float):
        super().__init__()
        self.point = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size=(3, 1), padding=(1, 0)),
        )
        self.cooccurrence = nn.Sequential(
            nn.Conv2d(num_joints, channels // 2, kernel_size=3, padding=1),
            nn.MaxPool2d(2),
            nn.Conv2d(channels // 2, channels, kernel_size=3, padding=1),
            nn.Dropout2d(dropout),
            nn.MaxPool2d(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.point(x).permute(0, 3, 2, 1)  # (B, w, T, V) -> (B, V, T, w): joints as channels
        return self.cooccurrence(y.contiguous())


@register_encoder("cnn")
class HCN(nn.Module):
    """HCN backbone: (N, C, T, V, M) -> (N, 256 * (T // 16) * (channels // 16)), 4096 for T=64."""

    encoder_name: str  # set by `register_encoder`

    def __init__(self, layout: Layout, in_channels: int = 3, num_persons: int = 2,
                 frames: int = 64, *, channels: int = 64, dropout: float = 0.5):
        super().__init__()
        shrink = 2**NUM_POOLS
        if frames < shrink or channels < shrink:
            raise SkelctlError(
                f"encoder 'cnn' needs frames and channels of at least {shrink} "
                f"(four max-pools of 2), got frames={frames}, channels={channels}"
            )
        self.input_shape = (in_channels, frames, layout.num_joints, num_persons)
        self.position = HCNStream(in_channels, layout.num_joints, channels, dropout)
        self.motion = HCNStream(in_channels, layout.num_joints, channels, dropout)
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * channels, 2 * channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * channels, 4 * channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.MaxPool2d(2),
        )
        self.feature_dim = 4 * channels * (frames // shrink) * (channels // shrink)
        for m in self.modules():  # ISC's init: Xavier-uniform weights, zero bias
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def motion_view(x: torch.Tensor) -> torch.Tensor:
        """Frame differences (T-1 of them), linearly resized back to T frames."""
        n, c, t, v, m = x.shape
        diff = (x[:, :, 1:] - x[:, :, :-1]).permute(0, 1, 4, 2, 3).reshape(n, c * m, t - 1, v)
        diff = F.interpolate(diff, size=(t, v), mode="bilinear", align_corners=False)
        return diff.view(n, c, m, t, v).permute(0, 1, 3, 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.encoder_name, self.input_shape)
        n, c, t, v, m = x.shape

        def per_body(view: torch.Tensor) -> torch.Tensor:  # bodies folded into the batch
            return view.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)

        y = torch.cat([self.position(per_body(x)), self.motion(per_body(self.motion_view(x)))], 1)
        y = self.fuse(y)
        return y.view(n, m, -1).amax(dim=1)
