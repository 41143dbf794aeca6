"""A split's clips as flat tensors on the training device.

Clips keep their native length (no padding to 300 frames): all frames of all clips sit in one
`(F, M, V, C)` tensor and `offsets` say where each clip starts. Loading a split once and
augmenting batches by index arithmetic on the device removes the DataLoader round trip that
dominates skeleton pretraining.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from skelctl.errors import SkelctlError


class FrameSource(Protocol):
    """What `ClipBank.from_dataset` needs from a dataset (`skelctl.data.store.SkeletonDataset`)."""

    labels: Any
    layout: Any

    def frames_for(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class ClipBank:
    """Variable-length clips, flat: clip i is `frames[offsets[i]:offsets[i + 1]]`."""

    frames: torch.Tensor  # (F, M, V, C) float32
    offsets: torch.Tensor  # (N + 1,) long, offsets[0] == 0, offsets[-1] == F
    lengths: torch.Tensor  # (N,) long, offsets[1:] - offsets[:-1]
    labels: torch.Tensor  # (N,) long, -1 when unlabelled

    def __len__(self) -> int:
        return self.lengths.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes the bank's tensors hold."""
        return sum(t.numel() * t.element_size() for t in (self.frames, self.offsets, self.lengths, self.labels))

    @property
    def device(self) -> torch.device:
        return self.frames.device

    @classmethod
    def from_arrays(
        cls,
        frames: np.ndarray | torch.Tensor,
        offsets: np.ndarray | torch.Tensor | Sequence[int],
        labels: np.ndarray | torch.Tensor | Sequence[int] | None = None,
        device: torch.device | str = "cpu",
    ) -> ClipBank:
        """Build a bank from flat frames and offsets, checking that they describe whole clips."""
        frames_t = torch.as_tensor(frames, dtype=torch.float32)
        offsets_t = torch.as_tensor(offsets, dtype=torch.long)
        if frames_t.ndim != 4:
            raise SkelctlError(
                f"clip bank: frames must be (F, M, V, C), got {tuple(frames_t.shape)}"
            )
        if offsets_t.ndim != 1 or offsets_t.numel() < 1:
            raise SkelctlError("clip bank: offsets must be a 1-D array of N + 1 frame indices")
        lengths = offsets_t.diff()
        if offsets_t[0] != 0 or offsets_t[-1] != frames_t.shape[0]:
            raise SkelctlError(
                f"clip bank: offsets must run from 0 to the frame count {frames_t.shape[0]}, "
                f"got {int(offsets_t[0])}..{int(offsets_t[-1])}"
            )
        if (lengths < 1).any():
            raise SkelctlError(
                "clip bank: every clip needs at least one frame (offsets increasing)"
            )
        if labels is None:
            labels_t = torch.full_like(lengths, -1)
        else:
            labels_t = torch.as_tensor(labels, dtype=torch.long, device=lengths.device)
            if labels_t.shape != lengths.shape:
                raise SkelctlError(
                    f"clip bank: expected {lengths.numel()} labels, got {tuple(labels_t.shape)}"
                )
        return cls(
            frames=frames_t.to(device),
            offsets=offsets_t.to(device),
            lengths=lengths.to(device),
            labels=labels_t.to(device),
        )

    @classmethod
    def from_dataset(
        cls, ds: FrameSource, indices: np.ndarray | Sequence[int], device: torch.device | str,
        normalize: str = "none",
    ) -> ClipBank:
        """Load the clips `indices` of a dataset once, in that order, onto `device`, in the
        input coordinates `normalize` names (`skelctl.data.normalize.normalize_frames`; `none`:
        as stored)."""
        from skelctl.data.normalize import normalize_frames

        indices = np.asarray(indices, dtype=np.int64)
        frames, offsets = ds.frames_for(indices)
        if normalize != "none":
            frames = normalize_frames(frames, offsets, ds.layout, normalize)
        labels = np.asarray(ds.labels)[indices]
        return cls.from_arrays(np.ascontiguousarray(frames, np.float32), offsets, labels, device)

    def subset(self, idx: torch.Tensor | np.ndarray | Sequence[int]) -> ClipBank:
        """A new bank holding clips `idx` (in that order), e.g. a labelled fraction of a split."""
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.device)
        lengths = self.lengths[idx]
        offsets = torch.zeros(idx.numel() + 1, dtype=torch.long, device=self.device)
        torch.cumsum(lengths, 0, out=offsets[1:])
        # frame j of the new bank = source start of its clip + its position inside the clip
        clip_of_frame = torch.repeat_interleave(
            torch.arange(idx.numel(), device=self.device), lengths
        )
        position = torch.arange(int(offsets[-1]), device=self.device) - offsets[clip_of_frame]
        source = self.offsets[idx][clip_of_frame] + position
        return ClipBank(self.frames[source], offsets, lengths, self.labels[idx])
