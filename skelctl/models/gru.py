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

Training on CPU runs the same GRU through `GRURecurrence`, whose backward computes the recurrent
weights' gradient in one matrix product over all steps, where ATen's CPU GRU (like autograd
through a cell loop) adds a (3H, H) product into it at every step (docs/perf-memory.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
        training = self.training and torch.is_grad_enabled()
        if training and (sequence.device.type == "cpu" or self.checkpoint_units):
            final = self._per_layer(sequence)
        else:
            _, final = self.gru(sequence)  # (num_layers * 2, N, H)
        return torch.cat([final[-2], final[-1]], dim=1)

    def _per_layer(self, sequence: torch.Tensor) -> torch.Tensor:
        """The same GRU one layer at a time (`GRURecurrence` on CPU, ATen's GRU elsewhere);
        with `checkpoint_units` each layer's activations are recomputed in backward
        (activation checkpointing): only the layers' inputs are kept."""
        per_layer = len(self.gru._flat_weights) // self.gru.num_layers  # w_ih, w_hh, b_ih, b_hh x 2
        on_cpu = sequence.device.type == "cpu"
        layer = bidirectional_layer if on_cpu else self._aten_layer
        if on_cpu:
            sequence = sequence.transpose(0, 1)  # time-major
        for i in range(self.gru.num_layers):
            weights = self.gru._flat_weights[i * per_layer:(i + 1) * per_layer]
            if self.checkpoint_units:
                sequence, final = checkpoint(layer, sequence, *weights, use_reentrant=False)
            else:
                sequence, final = layer(sequence, *weights)
        return final

    def _aten_layer(self, inputs: torch.Tensor, *weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start = inputs.new_zeros(2, inputs.shape[0], self.gru.hidden_size)
        # what nn.GRU calls: has_biases, num_layers=1, dropout=0, train, bidirectional, batch_first
        return torch._VF.gru(inputs, start, weights, True, 1, 0.0, True, True, True)


def bidirectional_layer(inputs: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor,
                        b_hh: torch.Tensor, w_ih_back: torch.Tensor, w_hh_back: torch.Tensor,
                        b_ih_back: torch.Tensor, b_hh_back: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One bidirectional GRU layer, time-major: inputs (T, N, I) -> outputs (T, N, 2H) and
    final states (2, N, H), as `nn.GRU` computes them; under autocast in its dtype throughout."""
    forwards = _direction(inputs, w_ih, w_hh, b_ih, b_hh)
    backwards = _direction(inputs.flip(0), w_ih_back, w_hh_back, b_ih_back, b_hh_back)
    return torch.cat([forwards, backwards.flip(0)], dim=2), torch.stack([forwards[-1], backwards[-1]])


@torch.compiler.disable  # a Python loop over time: compiled, it unrolls into a graph per length
def _direction(inputs: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor,
               b_hh: torch.Tensor) -> torch.Tensor:
    projected = F.linear(inputs, w_ih, b_ih)  # all steps' input gates at once (autocast applies)
    dtype = projected.dtype
    start = projected.new_zeros(projected.shape[1], w_hh.shape[1])
    return GRURecurrence.apply(projected, start, w_hh.to(dtype), b_hh.to(dtype))


class GRURecurrence(torch.autograd.Function):
    """h_t = GRUCell(h_{t-1}) over t, given every step's input projection gi_t = W_ih x_t + b_ih:

        r = sigmoid(gi_r + W_hr h + b_hr),  z = sigmoid(gi_z + W_hz h + b_hz)
        n = tanh(gi_n + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h

    (projected (T, N, 3H), start (N, H), w_hh (3H, H), b_hh (3H,)) -> hidden states (T, N, H).
    Backward runs the recurrence back for the gradients of the gate inputs, then the gradient of
    W_hh is one product over all steps: sum_t dgh_t^T h_{t-1}.
    """

    @staticmethod
    def forward(ctx, projected: torch.Tensor, start: torch.Tensor, w_hh: torch.Tensor,
                b_hh: torch.Tensor) -> torch.Tensor:
        steps, batch, _ = projected.shape
        hidden = start.shape[1]
        states = projected.new_empty(steps, batch, hidden)
        r, z, n, hn = (projected.new_empty(steps, batch, hidden) for _ in range(4))
        h, w_t = start, w_hh.t()
        for t in range(steps):
            gh = torch.addmm(b_hh, h, w_t)
            gi_r, gi_z, gi_n = projected[t].chunk(3, dim=1)
            gh_r, gh_z, hn[t] = gh.chunk(3, dim=1)
            torch.sigmoid(gi_r + gh_r, out=r[t])
            torch.sigmoid(gi_z + gh_z, out=z[t])
            torch.tanh(torch.addcmul(gi_n, r[t], hn[t]), out=n[t])
            torch.addcmul(n[t], z[t], h - n[t], out=states[t])  # (1 - z) n + z h
            h = states[t]
        ctx.save_for_backward(start, states, r, z, n, hn, w_hh)
        return states

    @staticmethod
    def backward(ctx, d_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        start, states, r, z, n, hn, w_hh = ctx.saved_tensors
        steps, batch, hidden = states.shape
        d_gh = d_states.new_empty(steps, batch, 3 * hidden)  # gradients of W_hh h + b_hh
        d_gi_n = d_states.new_empty(steps, batch, hidden)
        d_h = torch.zeros_like(start)
        for t in reversed(range(steps)):
            previous = states[t - 1] if t else start
            d_h = d_h + d_states[t]
            d_r, d_z, d_hn = d_gh[t].chunk(3, dim=1)
            torch.mul(d_h * (1 - z[t]), 1 - n[t] * n[t], out=d_gi_n[t])
            torch.mul(d_h * (previous - n[t]), z[t] * (1 - z[t]), out=d_z)
            torch.mul(d_gi_n[t] * hn[t], r[t] * (1 - r[t]), out=d_r)
            torch.mul(d_gi_n[t], r[t], out=d_hn)
            d_h = torch.addmm(d_h * z[t], d_gh[t], w_hh)
        d_projected = torch.cat([d_gh[..., : 2 * hidden], d_gi_n], dim=2)
        previous = torch.cat([start.unsqueeze(0), states[:-1]])
        d_w_hh = d_gh.reshape(-1, 3 * hidden).t() @ previous.reshape(-1, hidden)
        return d_projected, d_h, d_w_hh, d_gh.sum(dim=(0, 1))
