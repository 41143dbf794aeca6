"""Augmented views of a batch of clips, drawn straight from the `ClipBank` on its device."""

from __future__ import annotations

import torch

from skelctl.augment import crop_resize, isc_one_of, pad_crop, rotate, shear
from skelctl.augment.inputs import ClipView
from skelctl.data.clips import ClipBank
from skelctl.methods.config import AugmentConfig


class ViewMaker:
    """One random view per clip: temporal crop -> (rotation) -> spatial transform -> stream.

    `view` is the clip -> model input path evaluation takes too (frames, stream, layout, input
    coordinates); the augmentations sit between its crop and its stream conversion. The stream
    (motion, bone) is computed from the augmented joints, as the reference feeders do, so
    SkeleMix later pastes stream values, not joints.
    """

    def __init__(self, augment: AugmentConfig, view: ClipView):
        self.augment = augment
        self.view = view

    @torch.no_grad()
    def __call__(self, bank: ClipBank, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """(N, C, frames, V, M) on the bank's device."""
        cfg, frames = self.augment, self.view.frames
        if cfg.temporal == "pad_crop":
            x = pad_crop(bank, idx, frames, gen=gen)
        else:
            x = crop_resize(bank, idx, frames, cfg.crop_scale, gen)
        if cfg.rotate:
            x = rotate(x, gen, cfg.rotate, self.view.vertical_axis)
        x = shear(x, gen, cfg.shear) if cfg.spatial == "shear" else isc_one_of(x, gen)
        return self.view.model_input(x)

    def pair(self, bank: ClipBank, idx: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Two independent views of the same clips: the query's and the key's."""
        return {"query": self(bank, idx, gen), "key": self(bank, idx, gen)}
