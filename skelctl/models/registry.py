"""Encoders by name (timm-style): `@register_encoder("stgcn")` on the class, `build_encoder(...)`
to make one. The builder records a JSON-able `config` on the encoder, so a checkpoint can
rebuild the exact architecture with `build_encoder(**config)`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from skelctl.data.layout import Layout
from skelctl.errors import SkelctlError

ModuleType = TypeVar("ModuleType", bound=type[nn.Module])

_ENCODERS: dict[str, type[nn.Module]] = {}


def register_encoder(name: str) -> Callable[[ModuleType], ModuleType]:
    """Class decorator: make the encoder buildable as `name`."""

    def add(cls: ModuleType) -> ModuleType:
        if name in _ENCODERS:
            raise ValueError(f"encoder '{name}' is registered twice")
        cls.encoder_name = name
        _ENCODERS[name] = cls
        return cls

    return add


def encoder_names() -> list[str]:
    return sorted(_ENCODERS)


def build_encoder(name: str, layout: Layout | dict[str, Any], in_channels: int = 3,
                  num_persons: int = 2, frames: int = 64, **kwargs: Any) -> nn.Module:
    """Build encoder `name` for clips of shape (C=in_channels, T=frames, V, M=num_persons).

    `layout` may be a `Layout` or its `to_dict()` form (what `config` stores). Extra keyword
    options are the encoder's own (e.g. `hidden_size` for `gru`); unknown or mistyped ones
    raise `SkelctlError` naming the key. The result has `feature_dim` and `config`.
    """
    if name not in _ENCODERS:
        raise SkelctlError(f"unknown encoder '{name}' (known: {', '.join(encoder_names())})")
    if not isinstance(layout, Layout):
        layout = Layout.from_dict(layout, f"encoder '{name}' layout")
    cls = _ENCODERS[name]
    options = {
        p.name: p.default for p in inspect.signature(cls).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    shape = {"in_channels": in_channels, "num_persons": num_persons, "frames": frames}
    for key, value in shape.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SkelctlError(f"encoder '{name}': '{key}' must be a positive integer, got {value!r}")
    for key, value in kwargs.items():
        if key not in options:
            known = ", ".join(sorted(options)) or "none"
            raise SkelctlError(f"encoder '{name}' has no option '{key}' (options: {known})")
        options[key] = _checked_option(name, key, value, options[key])
    encoder = cls(layout, **shape, **options)
    encoder.config = {"name": name, "layout": layout.to_dict(), **shape, **options}
    return encoder


def _checked_option(name: str, key: str, value: Any, default: Any) -> Any:
    """`value` if it has the default's type; an int where a float is expected becomes a float."""
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, expected) and isinstance(value, bool) == (expected is bool):
        return value
    raise SkelctlError(f"encoder '{name}' option '{key}' must be {expected.__name__}, got {value!r}")
