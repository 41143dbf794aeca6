"""Methods by name (the encoder registry's pattern): `@register_method("skelemix")` on the
class, `build_method` (in `skelctl.methods`) to make one from a `MethodConfig`.

`ContrastiveMethod` holds what every method shares: its `ViewMaker`, the InfoNCE temperature,
the `primary` representation (saved as encoder.pt), `make_views` (two augmented views),
`embed` (the primary branch's L2-normalised projection) and `export_encoders` (every branch's
backbone). A method adds `forward(views) -> dict` (the loss and its parts), `momentum_branches()` and
`from_config`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from skelctl.data.clips import ClipBank
from skelctl.errors import SkelctlError
from skelctl.methods.config import MethodConfig
from skelctl.methods.moco import MomentumBranch
from skelctl.methods.views import ViewMaker

NUM_PERSONS = 2  # bodies per clip in every stored dataset

MethodType = TypeVar("MethodType", bound=type["ContrastiveMethod"])

_METHODS: dict[str, type[ContrastiveMethod]] = {}


def register_method(name: str) -> Callable[[MethodType], MethodType]:
    """Class decorator: make the method buildable as `method.name: <name>`."""

    def add(cls: MethodType) -> MethodType:
        if name in _METHODS:
            raise ValueError(f"method '{name}' is registered twice")
        _METHODS[name] = cls
        return cls

    return add


def method_class(name: str) -> type[ContrastiveMethod]:
    if name not in _METHODS:
        raise SkelctlError(f"method.name: unknown method {name!r} (known: {', '.join(sorted(_METHODS))})")
    return _METHODS[name]


class ContrastiveMethod(nn.Module, ABC):
    """A MoCo-style method over one or more `MomentumBranch`es."""

    def __init__(self, views: ViewMaker, temperature: float, primary: str):
        super().__init__()
        self.views = views
        self.temperature = temperature
        self.primary = primary

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: MethodConfig, views: ViewMaker, in_channels: int) -> ContrastiveMethod:
        """The method with fresh encoders, heads, key twins and queues."""

    @abstractmethod
    def momentum_branches(self) -> dict[str, MomentumBranch]:
        """Each representation's MoCo pair, by the name its encoder is exported under."""

    @torch.no_grad()
    def make_views(self, bank: ClipBank, idx: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """query = view 1, key = view 2 of the same clips (all augmentation, no grad, on the
        bank's device)."""
        return self.views.pair(bank, idx, gen)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The primary representation's L2-normalised query projection (the kNN monitor's feature)."""
        return self.momentum_branches()[self.primary].query(x)

    def export_encoders(self) -> dict[str, nn.Module]:
        return {name: branch.query.encoder for name, branch in self.momentum_branches().items()}

    @property
    def query_encoder(self) -> nn.Module:
        """The backbone downstream evaluation uses (saved as encoder.pt)."""
        return self.momentum_branches()[self.primary].query.encoder


def branch_shape(cfg: MethodConfig, views: ViewMaker, in_channels: int) -> dict[str, Any]:
    """The clip shape and initialisation every branch of a method is built with."""
    return {"frames": views.view.frames, "in_channels": in_channels, "num_persons": NUM_PERSONS,
            "pytorch_init": cfg.init == "pytorch"}
