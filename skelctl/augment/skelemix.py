"""SkeleMix (SPEC 4): paste a body-part x time region of a partner clip into each clip.

One region is drawn per mixed batch and every clip takes its partner from the same batch rolled
by a random offset, so the whole mix is one `torch.where`. The region is drawn at the encoder's
feature resolution (stride 4: 64 input frames -> 16 feature frames) and upsampled to the input,
so the pasted input frames and the pooled feature cells are exactly the same region.
All draws stay on the generator's device (no host sync).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from skelctl.data.layout import PART_NAMES, Layout
from skelctl.errors import SkelctlError


@dataclass(frozen=True)
class MixRegion:
    offset: torch.Tensor  # () long in [1, N-2]: the partner of clip i is clip (i - offset) mod N
    joints: torch.Tensor  # (V,) bool: the pasted body parts
    feature_mask: torch.Tensor  # (T', V) bool: the pasted region at feature resolution
    input_mask: torch.Tensor  # (T, V) bool: the pasted region at input resolution

    def partner(self, batch: torch.Tensor) -> torch.Tensor:
        """`batch` rolled along dim 0 by `offset` (`batch.roll(offset, 0)`): each clip's partner.

        Use it for the mixed input and for the partner's key alike, so the two always agree.
        """
        n = batch.shape[0]
        source = (torch.arange(n, device=batch.device) - self.offset.to(batch.device)) % n
        return batch.index_select(0, source)


def sample_region(
    n: int,
    layout: Layout,
    gen: torch.Generator,
    frames: int = 64,
    stride: int = 4,
    parts: tuple[int, int] = (2, 3),
    feature_frames: tuple[int, int] = (7, 11),
    device: torch.device | str | None = None,
) -> MixRegion:
    """Draw one SkeleMix region for a batch of `n` clips of `frames` frames.

    `parts` and `feature_frames` are inclusive ranges: how many of the layout's 5 parts and how
    many feature frames (of ceil(frames / stride)) are pasted; the start frame is uniform.
    """
    device = torch.device(device) if device is not None else gen.device
    feature_len = -(-frames // stride)  # what a stride-`stride` encoder keeps of `frames`
    if n < 3:
        raise SkelctlError(f"SkeleMix needs a batch of at least 3 clips, got {n}")
    if not 1 <= parts[0] <= parts[1] <= len(PART_NAMES):
        raise SkelctlError(
            f"SkeleMix parts must be a range within 1..{len(PART_NAMES)}, got {parts}"
        )
    if not 1 <= feature_frames[0] <= feature_frames[1] <= feature_len:
        raise SkelctlError(
            f"SkeleMix feature frames must be a range within 1..{feature_len} "
            f"({frames} frames, stride {stride}), got {feature_frames}"
        )
    offset = torch.randint(1, n - 1, (), generator=gen, device=device)

    parts_joints = tuple(layout.parts[name] for name in PART_NAMES)
    membership = _part_membership(parts_joints, layout.num_joints, device)
    count = torch.randint(parts[0], parts[1] + 1, (), generator=gen, device=device)
    rank = torch.rand(len(PART_NAMES), generator=gen, device=device).argsort().argsort()
    joints = (membership & (rank < count)[:, None]).any(0)  # the union of `count` random parts

    length = torch.randint(
        feature_frames[0], feature_frames[1] + 1, (), generator=gen, device=device
    )
    room = feature_len - length
    u = torch.rand((), generator=gen, device=device, dtype=torch.float64)
    start = torch.minimum(torch.floor(u * (room + 1)).long(), room)
    t = torch.arange(feature_len, device=device)
    in_time = (t >= start) & (t < start + length)
    feature_mask = in_time[:, None] & joints[None, :]
    input_mask = feature_mask.repeat_interleave(stride, dim=0)[:frames]
    return MixRegion(offset, joints, feature_mask, input_mask)


@functools.lru_cache(maxsize=16)
def _part_membership(
    parts: tuple[tuple[int, ...], ...], num_joints: int, device: torch.device
) -> torch.Tensor:
    """(parts, V) bool, built once per layout and device: a copy to the GPU per batch would
    make every batch wait for the previous training step."""
    membership = torch.zeros(len(parts), num_joints, dtype=torch.bool)
    for row, joints in enumerate(parts):
        membership[row, list(joints)] = True
    return membership.to(device)


def mix(x: torch.Tensor, region: MixRegion) -> torch.Tensor:
    """Paste each clip's partner into the region: all coordinates, both bodies. x: (N, C, T, V, M)."""
    if tuple(x.shape[2:4]) != tuple(region.input_mask.shape):
        raise SkelctlError(
            f"SkeleMix region is for (T, V) = {tuple(region.input_mask.shape)}, "
            f"got clips of {tuple(x.shape[2:4])}"
        )
    return torch.where(region.input_mask[None, None, :, :, None], region.partner(x), x)
