"""Clip -> model input: the ONE path from stored clips to the `(N, C, T, V, M)` batch an encoder
reads, taken by pretraining views, the kNN monitor and every evaluation protocol.

A `ClipView` names the four things that decide an encoder's input: the input coordinates clips
are put in when loaded (`normalize`, `skelctl.data.normalize`), the clip length (`frames`), the
stream and the skeleton layout. `load` / `bank_of` give the `ClipBank` (normalised once, on the
device); `inputs` crops, resizes and converts a batch; `batches` walks a whole bank in order.
Augmented views (`skelctl.methods.views`) crop and transform in between and finish with
`model_input`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from skelctl.augment.streams import check_stream, to_stream
from skelctl.augment.temporal import crop_resize
from skelctl.data.clips import ClipBank, FrameSource
from skelctl.data.layout import Layout
from skelctl.data.normalize import normalize_frames, vertical_axis

WHOLE_CLIP = (1.0, 1.0)  # the un-augmented input: the whole valid clip, resized


@dataclass(frozen=True)
class ClipView:
    """How a stored clip becomes encoder input: put in the `normalize` input coordinates when
    loaded, (cropped and) resized to `frames`, converted to `stream`."""

    frames: int
    stream: str
    layout: Layout
    normalize: str = "none"

    def __post_init__(self) -> None:
        check_stream(self.stream)

    @property
    def vertical_axis(self) -> int:
        """The axis rotations turn about in these input coordinates."""
        return vertical_axis(self.normalize)

    def load(self, ds: FrameSource, indices: np.ndarray | Sequence[int], device: torch.device | str) -> ClipBank:
        """Dataset samples `indices`, in this view's input coordinates, on `device`."""
        return ClipBank.from_dataset(ds, indices, device, self.normalize)

    def bank_of(self, clips: Sequence[np.ndarray], device: torch.device | str) -> ClipBank:
        """Clips read from files ((T_i, M, V, C) each, preprocessed like the dataset), as `load`
        would give them."""
        offsets = np.concatenate([[0], np.cumsum([len(c) for c in clips])])
        frames = normalize_frames(np.concatenate(clips), offsets, self.layout, self.normalize)
        return ClipBank.from_arrays(frames, offsets, device=device)

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) joints (after any augmentation) in this view's stream."""
        return to_stream(x, self.stream, self.layout)

    def inputs(
        self,
        bank: ClipBank,
        idx: torch.Tensor,
        crop: tuple[float, float] = WHOLE_CLIP,
        gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(N, C, frames, V, M): a random crop U(crop) of each clip's valid length, or with
        `gen=None` its centre `crop[1]`, linearly resized, in this view's stream."""
        return self.model_input(crop_resize(bank, idx, self.frames, scale=crop, gen=gen))

    def batches(self, bank: ClipBank, crop: float = 1.0, batch_size: int = 256) -> Iterator[torch.Tensor]:
        """The centre-`crop` inputs of every clip of `bank`, in order, `batch_size` at a time."""
        for start in range(0, len(bank), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(bank)), device=bank.device)
            yield self.inputs(bank, idx, (crop, crop))
