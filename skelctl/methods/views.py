"""Augmented views of a batch of clips, drawn straight from the `ClipBank` on its device."""

from __future__ import annotations

import torch

from skelctl.augment import crop_resize, isc_one_of, pad_crop, rotate, shear, to_stream
from skelctl.augment.streams import STREAMS
from skelctl.data.clips import ClipBank
from skelctl.data.layout import Layout
from skelctl.errors import SkelctlError
from skelctl.methods.config import AugmentConfig


class ViewMaker:
    """One random view per clip: temporal crop -> (rotation) -> spatial transform -> stream.

    The stream (motion, bone) is computed from the augmented joints, as the reference feeders
    do, so SkeleMix later pastes stream values, not joints.
    """

    def __init__(self, augment: AugmentConfig, layout: Layout, frames: int, stream: str,
                 vertical_axis: int = 1):
        if stream not in STREAMS:
            raise SkelctlError(f"unknown stream {stream!r} (expected one of {', '.join(STREAMS)})")
        self.augment = augment
        self.layout = layout
        self.frames = frames
        self.stream = stream
        self.vertical_axis = vertical_axis  # the axis `augment.rotate` turns about

    @torch.no_grad()
    def __call__(self, bank: ClipBank, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """(N, C, frames, V, M) on the bank's device."""
        cfg = self.augment
        if cfg.temporal == "pad_crop":
            x = pad_crop(bank, idx, self.frames, gen=gen)
        else:
            x = crop_resize(bank, idx, self.frames, cfg.crop_scale, gen)
        if cfg.rotate:
            x = rotate(x, gen, cfg.rotate, self.vertical_axis)
        x = shear(x, gen, cfg.shear) if cfg.spatial == "shear" else isc_one_of(x, gen)
        return to_stream(x, self.stream, self.layout)

    def pair(self, bank: ClipBank, idx: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Two independent views of the same clips: the query's and the key's."""
        return {"query": self(bank, idx, gen), "key": self(bank, idx, gen)}
