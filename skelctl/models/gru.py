"""Bidirectional GRU over the sequence view, the sequence encoder of ISC (SPEC 5).

Sequence view: (N, C, T, V, M) -> (N, T, V*C*M), each frame flattened joint-major, then
coordinate, then body: feature index = (v * C + c) * M + m. This is ISC's
`(C, T, V, M).transpose(1, 2, 0, 3).reshape(T, -1)`, i.e. 150 = 25 joints x 3 xyz x 2 bodies.

Feature: the reference feeds its GRU one frame at a time, carrying the hidden state, so both of
its "directions" read the clip forwards and its last-step output has seen every frame in both
halves. skelctl runs a true bidirectional GRU over the whole clip (cuDNN/MKL-friendly), and keeps
that property by taking each direction's final state from the top layer: the forward direction
at t = T-1 and the backward direction at t = 0. (The literal output at t = T-1 would give a
backward half that has read a single frame.)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from skelctl.data.layout import Layout
from skelctl.models.layers import check_input
from skelctl.models.registry import register_encoder


@register_encoder("gru")
class BiGRU(nn.Module):
    """3-layer bidirectional GRU, 1024 units per direction: (N, C, T, V, M) -> (N, 2048)."""

    encoder_name: str  # set by `register_encoder`
    checkpoint_units: bool = False  # set by `use_activation_checkpointing`: per layer here

    def __init__(self, layout: Layout, in_channels: int = 3, num_persons: int = 2,
                 frames: int = 64, *, hidden_size: int = 1024, num_layers: int = 3):
        super().__init__()
        self.input_shape = (in_channels, frames, layout.num_joints, num_persons)
        self.feature_dim = 2 * hidden_size
        self.gru = nn.GRU(in_channels * layout.num_joints * num_persons, hidden_size,
                          num_layers=num_layers, batch_first=True, bidirectional=True)
        for param in self.gru.parameters():  # ISC's init: Xavier on the weight matrices
            if param.dim() == 2:
                nn.init.xavier_uniform_(param)

    @staticmethod
    def sequence_view(x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> (N, T, V*C*M), joint-major, then xyz, then body."""
        n, _, t, _, _ = x.shape
        return x.permute(0, 2, 3, 1, 4).reshape(n, t, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.encoder_name, self.input_shape)
        sequence = self.sequence_view(x)
        if self.checkpoint_units and self.training and torch.is_grad_enabled():
            final = self._recomputed_layers(sequence)
        else:
            _, final = self.gru(sequence)  # (num_layers * 2, N, H)
        return torch.cat([final[-2], final[-1]], dim=1)

    def _recomputed_layers(self, sequence: torch.Tensor) -> torch.Tensor:
        """The same GRU one layer at a time, each layer's activations recomputed in backward
        (activation checkpointing): only the layers' inputs are kept."""
        per_layer = len(self.gru._flat_weights) // self.gru.num_layers  # w_ih, w_hh, b_ih, b_hh x 2

        def layer(inputs: torch.Tensor, *weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            start = inputs.new_zeros(2, inputs.shape[0], self.gru.hidden_size)
            # what nn.GRU calls: has_biases, num_layers=1, dropout=0, train, bidirectional,
            # batch_first
            return torch._VF.gru(inputs, start, weights, True, 1, 0.0, True, True, True)

        for i in range(self.gru.num_layers):
            weights = self.gru._flat_weights[i * per_layer:(i + 1) * per_layer]
            sequence, final = checkpoint(layer, sequence, *weights, use_reentrant=False)
        return final
