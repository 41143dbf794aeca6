"""The MoCo v2 machinery every method shares (He et al. 2020; Chen et al. 2020).

A query network (backbone + MLP head) learns by gradient; its key twin follows it by an
exponential moving average; a FIFO queue of past keys supplies the negatives, and the InfoNCE
loss puts the positive at index 0 of every logits row. Written once here so SkeletonCLR,
SkeleMixCLR+ and ISC differ only in which pairs they contrast.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from skelctl.data.layout import Layout
from skelctl.methods.config import MocoConfig
from skelctl.models import MLPHead, build_encoder
from skelctl.models.layers import init_normal_, reset_parameters_


class Projector(nn.Module):
    """Backbone + MLP head; `forward` is the L2-normalised projection MoCo contrasts."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.encoder(x)), dim=1)


def momentum_copy(net: nn.Module) -> nn.Module:
    """The key twin of a query network: same weights at start, never touched by gradients."""
    twin = copy.deepcopy(net)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def momentum_update(query_net: nn.Module, key_net: nn.Module, m: float) -> None:
    """theta_k <- m * theta_k + (1 - m) * theta_q, parameters only (each keeps its own BN stats)."""
    for q, k in zip(query_net.parameters(), key_net.parameters(), strict=True):
        k.mul_(m).add_(q.detach(), alpha=1.0 - m)


@torch.no_grad()
def gather_keys(keys: torch.Tensor) -> torch.Tensor:
    """The keys of every rank, in rank order, so all ranks enqueue the same global batch.

    Identity outside torch.distributed. All ranks must pass tensors of the same shape.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return keys
    parts = [torch.empty_like(keys) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, keys.contiguous())
    return torch.cat(parts, dim=0)


class KeyQueue(nn.Module):
    """A FIFO of the K most recent keys, stored (dim, K) so `q @ queue` gives the negatives.

    Buffers (saved with the model, moved with `.to`): random unit columns at start, as MoCo,
    so the first iterations already contrast against K (uninformative) negatives.
    """

    keys: torch.Tensor
    pointer: torch.Tensor

    def __init__(self, dim: int, size: int):
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be positive, got {size}")
        self.register_buffer("keys", F.normalize(torch.randn(dim, size), dim=0))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.keys.shape[1]

    def snapshot(self) -> torch.Tensor:
        """A copy of the keys to contrast against: backward still reads it after `push`."""
        return self.keys.clone()

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        """Overwrite the oldest columns with `keys` (B, dim), wrapping around the end."""
        keys = keys[-self.size :]  # a batch larger than the queue keeps only its newest keys
        slots = (self.pointer + torch.arange(keys.shape[0], device=self.keys.device)) % self.size
        self.keys[:, slots] = keys.detach().to(self.keys.dtype).T
        self.pointer.copy_((self.pointer + keys.shape[0]) % self.size)


def contrast_logits(
    query: torch.Tensor,
    positive: torch.Tensor,
    queue: torch.Tensor,
    temperature: float,
    extra_negative: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE logits `[q.positive | q.queue | q.extra_negative] / T`, one row per query.

    query, positive, extra_negative: (N, dim) unit rows (row i pairs with row i); queue: (dim, K).
    The queue is a detached snapshot: negatives carry no gradient. Computed in fp32: with
    T = 0.07 a bf16 logit would be off by up to 0.05.
    """
    with torch.autocast(query.device.type, enabled=False):  # logits in fp32 under bf16/fp16
        query = query.float()
        columns = [(query * positive.float()).sum(dim=1, keepdim=True), query @ queue.detach().float()]
        if extra_negative is not None:
            columns.append((query * extra_negative.float()).sum(dim=1, keepdim=True))
        return torch.cat(columns, dim=1) / temperature


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the positive at index 0 of each row."""
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), target)


class LossSum:
    """A method's loss as the sum of its terms, each back-propagated as soon as it is complete.

    The papers' losses are sums of terms that share no activations: SkeleMixCLR+'s instance term
    and one term per mixed batch (each its own forward pass), ISC's one term per representation.
    With `backward` (the engine's training step) every added term is back-propagated at once and
    its forward pass's activations freed: the gradient is that of the sum, the peak memory that of
    the largest term instead of all of them. Without it (evaluation, tests) the terms are summed
    with their graphs and `value` is differentiable.
    """

    def __init__(self, backward: Callable[[torch.Tensor], None] | None = None):
        self.backward = backward
        self.value: torch.Tensor | None = None

    def add(self, term: torch.Tensor) -> None:
        if self.backward is not None:
            self.backward(term)
            term = term.detach()
        self.value = term if self.value is None else self.value + term


@torch.no_grad()
def top1(logits: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose positive (index 0) has the highest logit."""
    return (logits.argmax(dim=1) == 0).float().mean()


class MomentumBranch(nn.Module):
    """One MoCo pair: the query network, its momentum twin (the key network) and the queue of
    the twin's past keys."""

    def __init__(self, query: nn.Module, queue_size: int, momentum: float, key_dim: int):
        super().__init__()
        self.query = query
        self.key = momentum_copy(query)
        self.queue = KeyQueue(key_dim, queue_size)
        self.momentum = momentum

    @torch.no_grad()
    def encode_keys(self, x: torch.Tensor) -> torch.Tensor:
        """Step the key network towards the query network, then encode `x` with it (no grad)."""
        if self.momentum < 1.0:  # at 1 the key network stays where it is
            momentum_update(self.query, self.key, self.momentum)
        return self.key(x)


@contextlib.contextmanager
def frozen_key_networks(module: nn.Module) -> Iterator[None]:
    """Inside the block, the key networks of `module` do not follow their query networks
    (momentum 1): for throw-away steps, such as the engine's precision trial."""
    branches = [m for m in module.modules() if isinstance(m, MomentumBranch)]
    saved = [branch.momentum for branch in branches]
    for branch in branches:
        branch.momentum = 1.0
    try:
        yield
    finally:
        for branch, momentum in zip(branches, saved, strict=True):
            branch.momentum = momentum


def build_branch(encoder_name: str, layout: Layout, moco: MocoConfig, frames: int = 64,
                 in_channels: int = 3, num_persons: int = 2, reference_init: bool = False,
                 encoder_kwargs: dict[str, str | int | float | bool] | None = None,
                 pytorch_init: bool = False) -> MomentumBranch:
    """Encoder + MLP head (hidden = `moco.head_hidden` or the feature dim) as a MoCo pair.

    `reference_init`: the head drawn like SkeletonCLR's backbone (N(0, 0.02)) instead of
    PyTorch's default; `pytorch_init`: every layer (the encoder's too) at PyTorch's default
    instead. Either happens before the key twin copies the query network.
    """
    encoder = build_encoder(encoder_name, layout, in_channels, num_persons, frames,
                            **(encoder_kwargs or {}))
    hidden = moco.head_hidden or encoder.feature_dim
    head = MLPHead(encoder.feature_dim, hidden, moco.proj_dim, moco.head_batchnorm)
    query = Projector(encoder, head)
    if pytorch_init:
        reset_parameters_(query)
    elif reference_init:
        init_normal_(head)
    return MomentumBranch(query, moco.queue_size, moco.momentum, moco.proj_dim)
