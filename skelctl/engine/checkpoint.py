"""Checkpoints and exported encoders: tensors and plain containers only, loaded without pickle.

A training checkpoint is `{"format", "model", "optimizer", "scaler", "epoch", "epoch_step",
"step", "precision", "world_size", "config"}`; every value is a tensor, number, string or a
list/dict of those, so `torch.load(weights_only=True)` reads it. Writes are atomic, and the
previous `last.pt` survives as `last.prev.pt`, so a run killed at any instant (or a file later
truncated) still resumes from the newest intact state.

`encoder.pt` is what downstream commands consume:
`{"format": "skelctl-encoder/1", "config": <build_encoder kwargs>, "state_dict", "info"}`, where
`info` is an `EncoderInfo` stored as a plain dict (its fields that are set). Files written before
`EncoderInfo` existed hold the same keys and load the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from skelctl.atomic import atomic_path
from skelctl.console import err
from skelctl.errors import RuntimeFailure, SkelctlError

CHECKPOINT_FORMAT = "skelctl-checkpoint/1"
ENCODER_FORMAT = "skelctl-encoder/1"


@dataclass
class EncoderInfo:
    """What an encoder was trained on and how it expects its input; saved with every encoder.
    A field that is None was not recorded (an older file, or a baseline that has no such thing)."""

    method: str | None = None  # skelemix, isc, ...; "random" / "raw" for the baselines
    preset: str | None = None
    dataset: str | None = None  # the dataset path it was pretrained on
    benchmark: str | None = None
    stream: str | None = None  # None: not recorded (evaluation then takes the asked one, or joint)
    frames: int = 64  # its clip length
    normalize: str = "none"  # its input coordinates (`none`: as stored, before the key existed)
    preprocess_options: dict[str, Any] | None = None
    layout: dict[str, Any] | None = None  # `Layout.to_dict()`
    epoch: int | None = None
    encoder: str | None = None  # which of the run's encoders (its representation or backbone)
    seed: int | None = None  # random baselines: the initialisation seed
    batchnorm: str | None = None  # random baselines: where their BatchNorm statistics come from
    random_twin_of: str | None = None

    @classmethod
    def from_dict(cls, info: Mapping[str, Any], where: str | Path | None = None) -> EncoderInfo:
        """From a stored dict (keys this version does not know are ignored; a wrongly typed
        clip length is an error naming the file)."""
        known = {f.name for f in dataclasses.fields(cls)}
        typed = cls(**{k: v for k, v in info.items() if k in known and v is not None})
        if isinstance(typed.frames, bool) or not isinstance(typed.frames, int) or typed.frames < 1:
            raise SkelctlError(f"encoder info: 'frames' must be a positive integer, got {typed.frames!r}", where)
        return typed

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, as stored in encoder.pt."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def _write(obj: Any, tmp: Path, path: Path) -> None:
    """torch.save into `tmp` and fsync it. Through a Python file, so a full disk surfaces as
    the OSError it is (torch's own writer says only "unexpected pos"): exit 1, naming `path`."""
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
    except (OSError, RuntimeError) as exc:
        cause = next((e for e in (exc, exc.__context__, exc.__cause__) if isinstance(e, OSError)), None)
        reason = cause.strerror if cause is not None and cause.strerror else _first_line(exc)
        kept = "; the previous one is kept" if path.exists() else ""
        raise RuntimeFailure(f"cannot write ({reason}){kept}", path) from exc


def _save(obj: Any, path: Path, keep_previous: Path | None = None) -> None:
    """Write a temp file, then rename it onto `path` (moving the old file aside)."""
    with atomic_path(path) as tmp:
        _write(obj, tmp, path)
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


_FOREIGN_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _load(path: Path, expected_format: str) -> dict[str, Any]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise SkelctlError("file not found", path) from exc
    except Exception as exc:  # truncated zip, foreign pickle, bit rot: all mean "unusable"
        foreign = _FOREIGN_GLOBAL.search(str(exc))
        if foreign:  # torch's advice (weights_only=False) would run the file's code: not offered
            reason = (f"holds a Python object ({foreign.group(1)}), not only tensors; skelctl does "
                      "not load such files (unpickling them can run arbitrary code)")
        else:
            reason = f"not a readable checkpoint ({_first_line(exc)})"
        raise SkelctlError(reason, path) from exc
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


def _encoder_file(encoder: nn.Module, info: EncoderInfo | Mapping[str, Any]) -> dict[str, Any]:
    """`info` may be given as the dict of its fields."""
    typed = info if isinstance(info, EncoderInfo) else EncoderInfo.from_dict(info)
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    return {"format": ENCODER_FORMAT, "config": dict(encoder.config), "state_dict": state,
            "info": typed.to_dict()}


def save_encoder(path: str | Path, encoder: nn.Module, info: EncoderInfo | Mapping[str, Any]) -> None:
    """An encoder with what rebuilds it (`encoder.config`) and where it came from (`info`)."""
    _save(_encoder_file(encoder, info), Path(path))


def save_encoders(files: Iterable[tuple[Path, nn.Module, EncoderInfo | Mapping[str, Any]]]) -> None:
    """Several encoder files that appear together or not at all: every one is written to its
    temp file first, and they are renamed in only when all writes succeeded."""
    with contextlib.ExitStack() as stack:
        for path, encoder, info in files:
            path = Path(path)
            _write(_encoder_file(encoder, info), stack.enter_context(atomic_path(path)), path)


def load_encoder(path_or_run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, EncoderInfo]:
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
    info = obj.get("info") or {}
    if not isinstance(info, dict):
        raise SkelctlError(f"encoder file's 'info' is a {type(info).__name__}, not a dict", path)
    return encoder.to(device).eval(), EncoderInfo.from_dict(info, path)
