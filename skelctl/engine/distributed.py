"""Data-parallel training through `torchrun`: one process per device, gloo on CPU, NCCL on GPU.

`torchrun` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; without them the
run is a single process and nothing here touches `torch.distributed`. Every rank builds the
same model from the same seed (DDP also broadcasts rank 0's weights), takes its own slice of
each global batch, and only rank 0 writes files and draws progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_from_env(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes; on CUDA each rank takes GPU LOCAL_RANK."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(), device
    ctx = DistContext(
        rank=int(os.environ["RANK"]), world_size=world_size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ctx, device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DistributedDataParallel when running on several ranks, the module itself otherwise.

    Buffers are not broadcast: the queue is kept identical on every rank by gathering keys,
    and broadcasting it (megabytes) before every forward would only cost time.
    """
    if not ctx.enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def any_rank(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """True on every rank when `flag` is true on at least one (so all ranks stop together)."""
    if not ctx.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_across_ranks(values: dict[str, float], ctx: DistContext, device: torch.device) -> dict[str, float]:
    """Average logged numbers over ranks, so rank 0's log describes the whole global batch."""
    if not ctx.enabled or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, tensor.tolist(), strict=True)}


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_object(obj: object, ctx: DistContext) -> object:
    """Rank 0's value of a small picklable object (a path, a choice) on every rank."""
    if not ctx.enabled:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
