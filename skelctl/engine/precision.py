"""Device and mixed precision: what `--device` and `--precision auto` resolve to, and why.

CUDA: `auto` is bf16 where the GPU supports it (no loss scaling needed), else fp16 with a
GradScaler. CPU: bf16 autocast only pays off on CPUs with native bf16 units (AMX, AVX512-BF16)
and only for some models (ST-GCN's small convolutions may run slower in bf16 than in fp32), so
`auto` times one short training step of the actual model in fp32 and in bf16 and keeps bf16 only
when it is clearly faster. The choice is stored in the run, so a resumed run keeps it.

Resolving the device also settles PyTorch's CPU math kernels (`settle_cpu_kernels`): every
command that computes resolves its device first.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from skelctl.errors import SkelctlError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CPU_BF16_MIN_SPEEDUP = 1.1  # bf16 must beat fp32 by 10% on the trial to be chosen
# the contiguous float unary ops ATen hands to MKL VML
VML_OPS = (torch.exp, torch.log, torch.log1p, torch.sqrt, torch.sin, torch.cos, torch.tan,
           torch.tanh, torch.asin, torch.acos, torch.atan, torch.erf)


@dataclass(frozen=True)
class Precision:
    name: str  # fp32 | bf16 | fp16

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]

    @property
    def uses_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range."""
        return self.name == "fp16"


@functools.cache
def settle_cpu_kernels() -> None:
    """Call each MKL VML function once, on one element, before any multi-threaded use.

    Why: oneMKL picks a VML function's kernel on its first call, and when that first call runs
    on several threads at once one thread's share can come from a low-accuracy kernel
    (pytorch/pytorch#188792), so the same seed did not always give the same numbers
    (docs/perf-memory.md).
    """
    for dtype in (torch.float32, torch.float64):
        one = torch.full((1,), 0.5, dtype=dtype)
        for op in VML_OPS:
            op(one)


def resolve_device(requested: str, key: str = "train.device") -> torch.device:
    """`auto` is the first CUDA device when there is one, else the CPU; errors name `key`."""
    settle_cpu_kernels()
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise SkelctlError(f"{key}: unknown device {requested!r} (cpu, cuda, cuda:N, auto)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SkelctlError(f"{key}: CUDA requested but no CUDA device is available")
    if device.type not in {"cpu", "cuda"}:
        raise SkelctlError(f"{key}: unsupported device type {device.type!r} (cpu or cuda)")
    return device


def resolve_precision(
    requested: str, device: torch.device, trial_step: Callable[[Precision], None] | None = None
) -> Precision:
    """The precision a run uses. `trial_step(p)` runs one training step in precision `p` on
    throw-away state; it is needed only for `auto` on CPU."""
    if requested != "auto":
        if requested == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise SkelctlError("train.precision: this GPU does not support bf16 (use fp16 or fp32)")
        return Precision(requested)
    if device.type == "cuda":
        return Precision("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    if trial_step is None:
        return Precision("fp32")
    fp32, bf16 = _time_steps(trial_step, [Precision("fp32"), Precision("bf16")])
    return Precision("bf16" if bf16 * CPU_BF16_MIN_SPEEDUP < fp32 else "fp32")


def _time_steps(step: Callable[[Precision], None], candidates: list[Precision], rounds: int = 2) -> list[float]:
    """Best time of each candidate over `rounds` interleaved timed steps, after one warm-up step
    each (the first call builds kernels); interleaving spreads load from other jobs evenly."""
    for precision in candidates:
        step(precision)
    best = [float("inf")] * len(candidates)
    for _ in range(rounds):
        for i, precision in enumerate(candidates):
            start = time.perf_counter()
            step(precision)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


@contextlib.contextmanager
def autocast(precision: Precision, device: torch.device) -> Iterator[None]:
    """Autocast for bf16/fp16; plain fp32 otherwise."""
    if precision.name == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=precision.dtype):
        yield


def make_scaler(precision: Precision, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler that is active only for fp16 (disabled scalers pass values through)."""
    return torch.amp.GradScaler(device.type, enabled=precision.uses_scaler)
