"""Input streams (SPEC 6): joint, motion and bone views of batched clips `(N, C, T, V, M)`.

3-stream results ensemble models trained on each stream, so the stream is a property of the
model input, computed after augmentation on the device.
"""

from __future__ import annotations

import functools

import torch

from skelctl.data.layout import Layout
from skelctl.errors import SkelctlError

STREAMS = ("joint", "motion", "bone")


def check_stream(stream: str) -> str:
    """`stream` if it names a stream; the one error otherwise."""
    if stream not in STREAMS:
        raise SkelctlError(f"unknown stream {stream!r} (expected one of {', '.join(STREAMS)})")
    return stream


def to_stream(x: torch.Tensor, stream: str, layout: Layout) -> torch.Tensor:
    """joint: x itself; motion: x[t + 1] - x[t] (last frame zero); bone: joint minus parent
    (`layout.bone_parents`, the root's bone is zero)."""
    if check_stream(stream) == "joint":
        return x
    if stream == "motion":
        motion = torch.zeros_like(x)
        motion[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
        return motion
    if x.shape[3] != layout.num_joints:  # bone
        raise SkelctlError(
            f"bone stream: layout {layout.name} has {layout.num_joints} joints, "
            f"clips have {x.shape[3]}"
        )
    return x - x.index_select(3, _parents(tuple(layout.bone_parents), x.device))


@functools.lru_cache(maxsize=16)
def _parents(parents: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """The parent index per joint on `device`, copied there once (not once per batch)."""
    return torch.tensor(parents, device=device)
