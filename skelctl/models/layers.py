"""Building blocks shared by the encoders: input checking, input batch-norm, the temporal
convolution unit, the residual branch, the graph-encoder base class and reference inits."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from skelctl.data.layout import Layout
from skelctl.errors import SkelctlError


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (BN running statistics, no dropout) and no gradients inside the block; the
    module's own mode restored afterwards. The one eval-then-restore of the code base."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)


def check_input(x: torch.Tensor, encoder: str, expected: tuple[int, int, int, int]) -> None:
    """Refuse a batch whose (C, T, V, M) differ from what the encoder was built for.

    A silent mismatch (32 vs 64 frames, 20 vs 25 joints) would otherwise train a wrong model
    or fail deep inside a layer with a message about matrix sizes.
    """
    if x.dim() != 5 or tuple(x.shape[1:]) != expected:
        c, t, v, m = expected
        raise SkelctlError(
            f"encoder '{encoder}' expects input (N, C={c}, T={t}, V={v}, M={m}), "
            f"got {tuple(x.shape)}"
        )


class InputNorm(nn.Module):
    """BatchNorm1d over each frame's joint coordinates, then bodies folded into the batch.

    (N, C, T, V, M) -> (N*M, C, T, V). `per_person=False` (ST-GCN) shares statistics across
    bodies (V*C features); `per_person=True` (2s-AGCN) keeps one set per body slot (M*V*C).
    """

    def __init__(self, in_channels: int, num_joints: int, num_persons: int, per_person: bool):
        super().__init__()
        self.per_person = per_person
        features = in_channels * num_joints * (num_persons if per_person else 1)
        self.bn = nn.BatchNorm1d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).contiguous()  # N, M, V, C, T
        x = x.view(n, m * v * c, t) if self.per_person else x.view(n * m, v * c, t)
        x = self.bn(x).view(n, m, v, c, t)
        return x.permute(0, 1, 3, 4, 2).contiguous().view(n * m, c, t, v)


class TemporalConv(nn.Sequential):
    """Convolution along time only (kernel (k, 1), stride (s, 1)) followed by BatchNorm2d.

    With k=1 it is the strided 1x1 projection the residual branches use.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, (kernel_size, 1), (stride, 1),
                      ((kernel_size - 1) // 2, 0)),
            nn.BatchNorm2d(out_channels),
        )


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper CPU mask: drawn by `torch.rand` (not `bernoulli_`) and kept
    as booleans for backward. Same distribution; forward + backward about 1.8x faster on CPU,
    where nn.Dropout cost ~15% of an ST-GCN/4 pass. On other devices it is nn.Dropout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and 0.0 < self.p < 1.0 and x.device.type == "cpu":
            return _MaskedScale.apply(x, torch.rand(x.shape) >= self.p, 1.0 / (1.0 - self.p))
        return super().forward(x)


class _MaskedScale(torch.autograd.Function):
    """x * keep * scale, saving only the boolean `keep` for backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x.mul(keep).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None, None


def residual_branch(in_channels: int, out_channels: int, stride: int,
                    enabled: bool = True) -> nn.Module | None:
    """None (no residual), identity, or a strided 1x1 projection when the shape changes."""
    if not enabled:
        return None
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    return TemporalConv(in_channels, out_channels, kernel_size=1, stride=stride)


class GraphEncoder(nn.Module):
    """Base of the graph encoders: input norm, a trunk on (N*M, C, T, V), pooling.

    Subclasses implement `trunk`; `feature_map` keeps the bodies apart (SkeleMix pools
    sub-regions of it), `pool` is the global average used as the feature.
    """

    encoder_name: str  # set by `register_encoder`
    feature_dim: int
    # set by `use_activation_checkpointing`: recompute each unit's activations in backward
    checkpoint_units: bool = False

    def __init__(self, layout: Layout, in_channels: int, num_persons: int, frames: int,
                 per_person_norm: bool):
        super().__init__()
        self.input_shape = (in_channels, frames, layout.num_joints, num_persons)
        self.data_bn = InputNorm(in_channels, layout.num_joints, num_persons, per_person_norm)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(N*M, C, T, V) -> (N*M, D, T', V)."""
        raise NotImplementedError

    def run_units(self, units: nn.ModuleList | nn.Sequential, x: torch.Tensor, *args) -> torch.Tensor:
        """x through `units` in order (each called as unit(x, *args)).

        With `checkpoint_units`, while training with gradients, only each unit's input is kept
        for backward and the rest is recomputed there (activation checkpointing): the memory of
        one unit's activations instead of all of them, for one more forward pass. The recompute
        leaves BN's running statistics as the first pass left them.
        """
        recompute = self.checkpoint_units and self.training and torch.is_grad_enabled()
        for unit in units:
            if recompute:
                x = checkpoint(unit, x, *args, use_reentrant=False,
                               context_fn=functools.partial(_recompute_contexts, unit))
            else:
                x = unit(x, *args)
        return x

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> (N, M, D, T', V), the last feature map before pooling."""
        check_input(x, self.encoder_name, self.input_shape)
        n, m = x.shape[0], x.shape[4]
        fmap = self.trunk(self.data_bn(x))
        return fmap.view(n, m, *fmap.shape[1:])

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """(N, M, D, T', V) -> (N, D): average over time and joints, then over bodies."""
        return fmap.mean(dim=(3, 4)).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.feature_map(x))


def use_activation_checkpointing(module: nn.Module, enabled: bool = True) -> int:
    """Turn activation checkpointing on (or off) in every encoder inside `module` that offers it
    (those with a `checkpoint_units` flag: the graph encoders and the GRU); returns how many."""
    encoders = [m for m in module.modules() if hasattr(type(m), "checkpoint_units")]
    for encoder in encoders:
        encoder.checkpoint_units = enabled
    return len(encoders)


def _recompute_contexts(unit: nn.Module):
    return contextlib.nullcontext(), frozen_running_stats(unit)


@contextlib.contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """BN layers of `module` normalise with batch statistics as usual but do not update their
    running statistics (momentum 0, batch counter restored): a recomputed batch must count once."""
    norms = [m for m in module.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)


def init_normal_(module: nn.Module, std: float = 0.02) -> None:
    """SkeletonCLR/SkeleMixCLR init: Conv/Linear N(0, std) with zero bias, BN weight N(1, std)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def reset_parameters_(module: nn.Module) -> None:
    """Every layer of `module` back to PyTorch's default initialisation (kaiming-uniform
    convolutions and linears, BN weight 1 / bias 0, fresh running statistics)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear, nn.GRU, nn.modules.batchnorm._BatchNorm)):
            m.reset_parameters()
