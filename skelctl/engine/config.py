"""The preset schema: typed dataclasses, built from YAML by one generic validator.

A preset is a YAML file whose keys mirror `PretrainConfig`. Anything the file leaves out keeps
the dataclass default; anything it gets wrong (an unknown key, a wrong type, a value outside a
`Literal` or a declared range) fails with ONE line naming the full dotted key, so a typo in a
300-epoch run is caught before the first step. Ranges are declared with
`field(metadata={"range": (lo, hi)})` (inclusive, either end may be None; on a list, per item).
Every float must be finite (`.nan`, `.inf` and `1e400` fail naming the key), and every float key
declares a range (tests/test_harden_run.py checks the schema).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from skelctl.data.normalize import Normalization
from skelctl.errors import SkelctlError
from skelctl.methods.config import MethodConfig, paper_defaults, value_range

T = TypeVar("T")

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Stream = Literal["joint", "motion", "bone"]
Benchmark = Literal["xsub", "xview", "xset", "split", "random"]  # split/random: custom datasets


@dataclass
class DataConfig:
    """Which dataset (a name in the data root, or a path), benchmark split, stream, clip length,
    and the input coordinates clips are put in when loaded (`skelctl.data.normalize`)."""

    dataset: str = "ntu60"
    benchmark: Benchmark = "xsub"
    stream: Stream = "joint"
    frames: int = field(default=64, metadata=value_range(4, None))
    normalize: Normalization = "none"  # as stored (preprocess centres it, SGN)


@dataclass
class OptimConfig:
    """SGD with a step schedule: lr x gamma at each milestone epoch, after a linear warm-up."""

    lr: float = field(default=0.1, metadata=value_range(0.0, None))
    momentum: float = field(default=0.9, metadata=value_range(0.0, 1.0))
    weight_decay: float = field(default=1e-4, metadata=value_range(0.0, None))
    nesterov: bool = False
    milestones: tuple[int, ...] = ()
    gamma: float = field(default=0.1, metadata=value_range(0.0, None))
    warmup_epochs: int = field(default=0, metadata=value_range(0, None))


Schedule = TypeVar("Schedule", bound=OptimConfig)


def scaled_schedule(optim: Schedule, epochs: int, to_epochs: int) -> Schedule:
    """`optim`'s milestones and warm-up, written for `epochs`, moved to the same fractions of
    `to_epochs` (a milestone that would fall on or after the last epoch is dropped: it would
    change nothing)."""
    ratio = to_epochs / epochs
    scaled = {max(1, round(m * ratio)) for m in optim.milestones}
    return dataclasses.replace(
        optim, milestones=tuple(sorted(m for m in scaled if m < to_epochs)),
        warmup_epochs=min(round(optim.warmup_epochs * ratio), to_epochs - 1))


@dataclass
class TrainConfig:
    """How the loop runs. `batch_size` is the global batch (all ranks, all micro-batches)."""

    epochs: int = field(default=300, metadata=value_range(1, None))
    # at least this many steps: on a small dataset `epochs` grows (warm-up and milestones are
    # in epochs and scale with it); 0: off
    min_steps: int = field(default=0, metadata=value_range(0, None))
    batch_size: int = field(default=128, metadata=value_range(1, None))
    # micro-batches per rank; null: chosen from the memory budget (CPU; elsewhere 1)
    accumulate: int | None = field(default=None, metadata=value_range(1, None))
    seed: int = field(default=2, metadata=value_range(0, 2**63 - 1))
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Precision = "auto"
    compile: bool = False
    log_every: int = field(default=50, metadata=value_range(1, None))
    checkpoint_every_steps: int = field(default=0, metadata=value_range(0, None))  # 0: each epoch only
    keep_every_epochs: int = field(default=50, metadata=value_range(0, None))  # epoch_N.pt; 0: none
    knn_every: int = field(default=0, metadata=value_range(0, None))  # epochs; 0: no kNN monitor
    knn_k: tuple[int, ...] = (10, 20, 40)
    # CPU: the peak resident memory (MiB) a run aims at besides the clips it holds in memory
    # (micro-batches and checkpointing are chosen to fit it, the heap trimmed above it); null:
    # half the RAM available when training starts, plus what the process holds then
    # (engine/memory.py)
    memory_budget_mib: int | None = field(default=None, metadata=value_range(64, None))
    # CPU: after a loss term, give the C heap's free pages back when the resident size is above
    # this many MiB (engine/memory.py); null: the memory budget; 0: never. (Before, it counted
    # the heap's free bytes; old configs keep working, with this meaning.)
    release_memory_above_mib: int | None = field(default=None, metadata=value_range(0, None))
    # graph encoders keep only each unit's input for backward and recompute the rest there,
    # the GRU each layer's: less memory for one more forward pass (same gradients); null: chosen
    # from the memory budget (CPU; elsewhere off)
    activation_checkpointing: bool | None = None


@dataclass
class StageConfig(OptimConfig):
    """One downstream training stage (linear probe, semi-supervised, fine-tuning)."""

    epochs: int = field(default=100, metadata=value_range(1, None))
    batch_size: int = field(default=128, metadata=value_range(1, None))
    # random crop scale of the valid length; None: centre clip
    train_crop: tuple[float, float] | None = field(default=None, metadata=value_range(0.0, 1.0))
    # fine-tuning stages: training clips turned up to this many degrees about the vertical
    rotate: float = field(default=0.0, metadata=value_range(0.0, 180.0))
    test_crop: float = field(default=1.0, metadata=value_range(0.0, 1.0))  # centre crop fraction
    # at least this many optimiser steps: on a small dataset `epochs` grows (milestones and
    # warm-up scale with it), so a schedule written for NTU's 40k clips still trains; 0: off
    min_steps: int = field(default=0, metadata=value_range(0, None))
    # linear probe only: z-score the features with the train split's statistics (MAE's
    # affine-free BatchNorm); a fixed affine map, so it changes the optimisation, not the features
    standardize: bool = False


def _linear_skelemix() -> StageConfig:
    return StageConfig(epochs=150, batch_size=128, lr=3.0, milestones=(80,), weight_decay=0.0)


def _semisup_1() -> StageConfig:
    return StageConfig(epochs=150, batch_size=128, lr=0.05, milestones=(40,), weight_decay=0.0)


def _semisup_10() -> StageConfig:
    return StageConfig(epochs=150, batch_size=128, lr=0.1, milestones=(80,), weight_decay=1e-4)


def _finetune() -> StageConfig:
    return StageConfig(
        epochs=110, batch_size=128, lr=0.1, milestones=(50, 70, 90), weight_decay=1e-4,
        nesterov=True, warmup_epochs=10,
    )


@dataclass
class EvaluationConfig:
    """Defaults the downstream commands read from a run (SPEC 6); their flags override them."""

    linear: StageConfig = field(default_factory=_linear_skelemix)
    semisup_1: StageConfig = field(default_factory=_semisup_1)
    semisup_10: StageConfig = field(default_factory=_semisup_10)
    finetune: StageConfig = field(default_factory=_finetune)

    def __post_init__(self) -> None:
        for key in ("semisup_1", "semisup_10", "finetune"):
            if getattr(self, key).standardize:
                raise ValueError(f"{key}.standardize: only the linear probe standardizes features")


@dataclass
class PretrainConfig:
    """Everything a pretraining run needs; `config.yaml` in a run directory is this, resolved."""

    preset: str = ""  # the preset's name (file stem when loaded from a file); names runs
    method: MethodConfig = field(default_factory=MethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)


# --- generic validation -------------------------------------------------------------------------


_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def from_dict(cls: type[T], raw: Any, source: str = "config", prefix: str = "") -> T:
    """Build dataclass `cls` from plain YAML data, or raise SkelctlError naming the dotted key."""
    return _convert(cls, raw, source, prefix)


def _fail(source: str, key: str, reason: str) -> SkelctlError:
    return SkelctlError(f"{key}: {reason}" if key else reason, source)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {_type_name(args[0])}"
        return f"a list of {len(args)} ({', '.join(_type_name(a) for a in args)})"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, source, key)
    if tp is Any:
        return value
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices and type(value) in {type(c) for c in choices}:
            return value
        raise _fail(source, key, f"expected {_type_name(tp)}, got {_show(value)}")
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        present = [o for o in options if o is not type(None)]
        if value is not None and len(present) == 1:
            try:
                return _convert(present[0], value, source, key)
            except SkelctlError as exc:  # `X | None`: keep X's message when it says more
                if not exc.reason.startswith(f"{key}: expected {_type_name(present[0])}, got"):
                    raise
        for option in options:
            try:
                return _convert(option, value, source, key)
            except SkelctlError:
                continue
        raise _fail(source, key, f"expected {_type_name(tp)}, got {_show(value)}")
    if origin in (tuple, list):
        return _convert_sequence(tp, value, source, key)
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(source, key, f"expected a mapping, got {_show(value)}")
        key_type, value_type = typing.get_args(tp)
        return {
            _convert(key_type, k, source, key): _convert(value_type, v, source, f"{key}.{k}")
            for k, v in value.items()
        }
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int past float's range
                number = math.inf
        elif isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            number = float(value)  # YAML 1.1 reads `1e-3` (no dot) as a string
        if number is not None:
            if not math.isfinite(number):  # .nan, .inf, 1e400: a run would only "diverge" later
                raise _fail(source, key, f"expected a finite number, got {value!r}")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"config schema: unsupported field type {tp!r} at {key}")
    raise _fail(source, key, f"expected {_type_name(tp)}, got {_show(value)}")


def _convert_sequence(tp: Any, value: Any, source: str, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if not isinstance(value, (list, tuple)):
        raise _fail(source, key, f"expected {_type_name(tp)}, got {_show(value)}")
    if origin is list or (len(args) == 2 and args[1] is Ellipsis):
        items = [_convert(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if len(value) != len(args):
        raise _fail(source, key, f"expected {_type_name(tp)}, got {len(value)} items")
    return tuple(_convert(a, v, source, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))


def _convert_dataclass(cls: Any, value: Any, source: str, key: str) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise _fail(source, key, f"expected a mapping, got {_show(value)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in value if k not in fields]
    if unknown:
        dotted = f"{key}.{unknown[0]}" if key else str(unknown[0])
        raise _fail(source, dotted, f"unknown key (expected one of {', '.join(fields)})")
    kwargs = {}
    for name, raw in value.items():
        dotted = f"{key}.{name}" if key else name
        converted = _convert(hints[name], raw, source, dotted)
        _check_range(fields[name], converted, source, dotted)
        kwargs[name] = converted
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise _fail(source, key, str(exc)) from exc


def _check_range(f: dataclasses.Field, value: Any, source: str, key: str) -> None:
    bounds = f.metadata.get("range")
    if bounds is None or value is None:
        return
    lo, hi = bounds
    for item in value if isinstance(value, (tuple, list)) else (value,):
        if (lo is not None and not item >= lo) or (hi is not None and not item <= hi):  # NaN fails
            want = f">= {lo}" if hi is None else f"<= {hi}" if lo is None else f"in [{lo}, {hi}]"
            raise _fail(source, key, f"expected a value {want}, got {value!r}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain YAML/JSON data (tuples become lists) that `from_dict` turns back into `cfg`."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(cfg))


def to_yaml(cfg: PretrainConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)


# --- presets ------------------------------------------------------------------------------------


def preset_names() -> list[str]:
    """Presets shipped with skelctl (`skelctl/resources/presets`, a link to the repo's presets/)."""
    folder = resources.files("skelctl.resources").joinpath("presets")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_yaml_mapping(path: str | Path, text: str | None = None) -> dict[str, Any]:
    """A YAML file that must hold a mapping; syntax errors name the file and line."""
    try:
        text = Path(path).read_text() if text is None else text
    except OSError as exc:
        raise SkelctlError(f"cannot read ({exc.strerror or exc})", path) from exc
    except UnicodeDecodeError as exc:
        raise SkelctlError(f"not UTF-8 text (byte {exc.start})", path) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = None if mark is None else mark.line + 1
        raise SkelctlError(f"invalid YAML ({getattr(exc, 'problem', exc)})", path, line) from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SkelctlError(f"expected a mapping of settings, got {type(raw).__name__}", path)
    return raw


def _preset_source(name_or_path: str | Path) -> tuple[str, str, str]:
    """(text, source label for messages, preset name) of a shipped preset or a YAML file."""
    text_name = str(name_or_path)
    path = Path(text_name)
    if path.suffix in {".yaml", ".yml"} or path.is_file() or "/" in text_name:
        if not path.is_file():
            raise SkelctlError("preset file not found", path)
        try:
            return path.read_text(), str(path), path.stem
        except OSError as exc:
            raise SkelctlError(f"cannot read ({exc.strerror or exc})", path) from exc
        except UnicodeDecodeError as exc:
            raise SkelctlError(f"not UTF-8 text (byte {exc.start})", path) from exc
    names = preset_names()
    if text_name not in names:
        raise SkelctlError(
            f"unknown preset '{text_name}' (shipped: {', '.join(names)}; or pass a YAML file)"
        )
    text = resources.files("skelctl.resources").joinpath(f"presets/{text_name}.yaml").read_text()
    return text, f"presets/{text_name}.yaml", text_name


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`key.sub=value` items set into a copy of `raw`; each value is read as YAML (`[a, b]`, `1e-3`)."""
    import copy

    merged = copy.deepcopy(raw)
    for item in overrides:
        dotted, sep, text = item.partition("=")
        keys = dotted.strip().split(".")
        if not sep or not all(keys):
            raise SkelctlError(f"--set {item}: expected KEY.SUB=VALUE, e.g. optim.lr=0.05")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SkelctlError(f"--set {item}: value is not valid YAML") from exc
        node = merged
        for depth, k in enumerate(keys[:-1]):
            child = node.setdefault(k, {})
            if not isinstance(child, dict):
                raise SkelctlError(f"--set {item}: {'.'.join(keys[: depth + 1])} is not a section")
            node = child
        node[keys[-1]] = value
    return merged


def load_preset(name_or_path: str | Path, overrides: list[str] | None = None) -> PretrainConfig:
    """A shipped preset by name or a YAML file, with `--set` overrides applied and validated.

    The file is validated on its own first (errors name the file), then each override on top
    (errors name the `--set` item), so a message always points at what the user wrote.
    """
    text, source, name = _preset_source(name_or_path)
    raw = read_yaml_mapping(source, text)
    raw.setdefault("preset", name)
    return build_config(raw, source, overrides or [])


def build_config(raw: dict[str, Any], source: str, overrides: list[str]) -> PretrainConfig:
    """Validate `raw` (errors name `source`), then each override on top (errors name `--set`)."""
    cfg = _with_method_defaults(raw, source)
    for item in overrides:
        raw = apply_overrides(raw, [item])
        cfg = _with_method_defaults(raw, "--set")
    return cfg


def _with_method_defaults(raw: dict[str, Any], source: str) -> PretrainConfig:
    """Method keys a file leaves out take the published values of ITS method (`paper_defaults`),
    not SkeleMixCLR+'s, so `method: {name: isc}` alone gives ISC's queue and temperature."""
    first = from_dict(PretrainConfig, raw, source)
    base = to_dict(paper_defaults(first.method.name))
    merged = dict(raw, method=_deep_merge(base, raw.get("method") or {}))
    return from_dict(PretrainConfig, merged, source)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config_file(path: str | Path) -> PretrainConfig:
    """A resolved `config.yaml` (as a run directory holds it)."""
    raw = read_yaml_mapping(path)
    if not raw:  # skelctl writes every key: an empty file was truncated, not meant as defaults
        raise SkelctlError("empty (a run's config.yaml holds all its settings)", path)
    return from_dict(PretrainConfig, raw, str(path))
