"""Checkpoints and exported encoders: tensors and plain containers only, loaded without pickle.

A training checkpoint is `{"format", "model", "optimizer", "scaler", "epoch", "epoch_step",
"step", "precision", "world_size", "config"}`; every value is a tensor, number, string or a
list/dict of those, so `torch.load(weights_only=True)` reads it. Writes are atomic, and the
previous `last.pt` survives as `last.prev.pt`, so a run killed at any instant (or a file later
truncated) still resumes from the newest intact state.

`encoder.pt` is what downstream commands consume:
`{"format": "skelctl-encoder/1", "config": <build_encoder kwargs>, "state_dict", "info"}`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from skelctl.atomic import atomic_path
from skelctl.console import err
from skelctl.errors import SkelctlError

CHECKPOINT_FORMAT = "skelctl-checkpoint/1"
ENCODER_FORMAT = "skelctl-encoder/1"


def _save(obj: Any, path: Path, keep_previous: Path | None = None) -> None:
    """torch.save to a temp file, fsync, then rename onto `path` (moving the old file aside)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)


def _load(path: Path, expected_format: str) -> dict[str, Any]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise SkelctlError("file not found", path) from exc
    except Exception as exc:  # truncated zip, foreign pickle, bit rot: all mean "unusable"
        raise SkelctlError(f"not a readable checkpoint ({type(exc).__name__}: {exc})", path) from exc
    if not isinstance(obj, dict) or obj.get("format") != expected_format:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise SkelctlError(f"expected a {expected_format} file, found {found!r}", path)
    return obj


def save_checkpoint(path: str | Path, state: dict[str, Any], keep_previous: str | Path | None = None) -> None:
    _save({"format": CHECKPOINT_FORMAT, **state}, Path(path), None if keep_previous is None else Path(keep_previous))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return _load(Path(path), CHECKPOINT_FORMAT)


def load_first_good(candidates: Iterable[Path]) -> tuple[dict[str, Any], Path] | None:
    """The first candidate that loads; each unreadable one is reported as a warning on stderr.

    Missing files are skipped silently (a run killed between the two renames has no last.pt).
    None when no candidate exists at all; an error when some exist but none is readable.
    """
    broken = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            return load_checkpoint(path), path
        except SkelctlError as exc:
            err.print(f"[yellow]warning:[/yellow] skipping checkpoint {exc.message}", highlight=False, soft_wrap=True)
            broken.append(path)
    if broken:
        raise SkelctlError(f"no readable checkpoint to resume from ({len(broken)} broken)", broken[0].parent)
    return None


def save_encoder(path: str | Path, encoder: nn.Module, info: dict[str, Any]) -> None:
    """An encoder with what rebuilds it (`encoder.config`) and where it came from (`info`)."""
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    _save({"format": ENCODER_FORMAT, "config": dict(encoder.config), "state_dict": state, "info": info}, Path(path))


def load_encoder(path_or_run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(encoder in eval mode, info) from an `encoder*.pt` file or a run directory (its encoder.pt)."""
    from skelctl.models.registry import build_encoder

    path = Path(path_or_run_dir)
    if path.is_dir():
        path = path / "encoder.pt"
        if not path.is_file():
            raise SkelctlError("no encoder.pt in this run directory (has an epoch finished?)", path.parent)
    obj = _load(path, ENCODER_FORMAT)
    config = obj.get("config")
    if not isinstance(config, dict) or "name" not in config:
        raise SkelctlError("encoder file has no usable 'config'", path)
    encoder = build_encoder(**config)
    try:
        encoder.load_state_dict(obj["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise SkelctlError(f"encoder weights do not match its config ({exc})", path) from exc
    return encoder.to(device).eval(), dict(obj.get("info") or {})
