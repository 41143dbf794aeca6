"""Temporal crops straight from a `ClipBank`: one gather for the whole batch.

Every function works out, for each output frame of each sample, a fractional source frame in
the flat bank, gathers the two neighbouring frames and interpolates. Clips keep their own valid
length, so a crop never reads a neighbouring clip and no padded zero frame enters a resize.

The linear resize is the half-pixel convention of `F.interpolate(mode="linear",
align_corners=False)` (and OpenCV's INTER_LINEAR) that the reference feeders use.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from skelctl.data.clips import ClipBank
from skelctl.errors import SkelctlError


def crop_resize(
    bank: ClipBank,
    idx: torch.Tensor | Sequence[int],
    frames: int,
    scale: tuple[float, float] = (0.1, 1.0),
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """ISC crop (SPEC 5): a random fraction U(lo, hi) of the valid length, resized to `frames`.

    The crop keeps at least `frames` frames (or the whole clip when shorter), as the reference
    does, and starts uniformly at random. `gen=None` gives the evaluation crop: the centre
    fraction `scale[1]` of the clip. Returns `(N, C, frames, V, M)`.
    """
    lo, hi = scale
    if not 0.0 < lo <= hi <= 1.0:
        raise SkelctlError(f"crop scale must satisfy 0 < lo <= hi <= 1, got {scale}")
    idx = _index(bank, idx)
    length = bank.lengths[idx]
    if gen is None:
        bias = torch.floor((1.0 - hi) * length.double() / 2).long()
        return _resized_window(bank, idx, bias, length - 2 * bias, frames)
    u = torch.rand(idx.numel(), generator=gen, device=bank.device, dtype=torch.float64)
    crop = torch.floor((lo + (hi - lo) * u) * length).long()
    crop = torch.minimum(torch.maximum(crop, length.clamp(max=frames)), length)
    room = length - crop  # start is uniform in [0, room]
    v = torch.rand(idx.numel(), generator=gen, device=bank.device, dtype=torch.float64)
    start = torch.minimum(torch.floor(v * (room + 1)).long(), room)
    return _resized_window(bank, idx, start, crop, frames)


def pad_crop(
    bank: ClipBank,
    idx: torch.Tensor | Sequence[int],
    frames: int = 64,
    *,
    gen: torch.Generator,
    padding_ratio: int = 6,
) -> torch.Tensor:
    """SkeletonCLR/SkeleMixCLR crop (SPEC 4): resize to `frames`, mirror-pad, random window.

    The resized clip is padded with `frames // padding_ratio` mirrored frames at both ends
    (edge frame repeated, numpy's "symmetric") and a random `frames`-long window is taken.
    The padding is never built: each window frame maps back to a frame of the resized clip.
    Returns `(N, C, frames, V, M)`.
    """
    idx = _index(bank, idx)
    pad = frames // padding_ratio
    shift = torch.randint(0, 2 * pad + 1, (idx.numel(), 1), generator=gen, device=bank.device)
    position = shift + torch.arange(frames, device=bank.device) - pad  # in the unpadded clip
    position = torch.where(position < 0, -position - 1, position)
    position = torch.where(position >= frames, 2 * frames - 1 - position, position)
    length = bank.lengths[idx]
    return _resized_window(bank, idx, torch.zeros_like(length), length, frames, position)


def _index(bank: ClipBank, idx: torch.Tensor | Sequence[int]) -> torch.Tensor:
    return torch.as_tensor(idx, dtype=torch.long, device=bank.device).reshape(-1)


def _resized_window(
    bank: ClipBank,
    idx: torch.Tensor,
    start: torch.Tensor,
    crop: torch.Tensor,
    frames: int,
    order: torch.Tensor | None = None,
) -> torch.Tensor:
    """Frames [start, start + crop) of each clip linearly resized to `frames`, as (N, C, T, V, M).

    `order` (N, frames), when given, picks which resized frame each output frame shows.
    """
    if frames < 1:
        raise SkelctlError(f"the number of output frames must be positive, got {frames}")
    step = crop.float() / frames  # source frames per output frame, as F.interpolate computes it
    target = torch.arange(frames, device=bank.device, dtype=torch.float32)
    source = ((target + 0.5) * step[:, None] - 0.5).clamp(min=0.0)  # (N, frames)
    if order is not None:
        source = source.gather(1, order)
    lower = source.long()  # floor, since source >= 0; always < crop
    weight = (source - lower).to(bank.frames.dtype)
    upper = lower + (lower < crop[:, None] - 1).long()
    first = (bank.offsets[idx] + start)[:, None]
    rows = bank.frames.flatten(1)  # (F, M*V*C): whole-frame rows gather fastest
    a = rows.index_select(0, (first + lower).flatten())
    b = rows.index_select(0, (first + upper).flatten())
    mixed = torch.lerp(a, b, weight.reshape(-1, 1))
    return mixed.view(len(idx), frames, *bank.frames.shape[1:]).permute(0, 4, 1, 3, 2).contiguous()
