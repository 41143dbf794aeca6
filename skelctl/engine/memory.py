"""CPU memory of a training process: a peak resident size within `train.memory_budget_mib`.

Two mechanisms. (1) `ResidentBudget`: glibc's malloc keeps freed heap chunks for reuse, so the
resident size climbs above the live tensors; `malloc_trim(0)` gives free pages back, but every
page given back is faulted in (and zeroed) again when the next loss term allocates, so a trim is
worth it only above the budget and only when it keeps the process within it. (2) `MemoryPlan`:
the activations a step keeps for backward grow with the micro-batch; `choose_plan` picks the
fastest plan (micro-batches, activation checkpointing) whose predicted peak fits the budget, from
the bytes that autograd saves in a small trial step (`saved_bytes`). Measurements and the
reasons behind both are in docs/perf-memory.md.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

MIB = 2**20


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 (glibc only)
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def _page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int | None:
    """The process's resident set size now; None where /proc is missing."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _page_size()
    except (OSError, ValueError, IndexError):
        return None


def trim_heap() -> bool:
    """Give the C heap's free pages back to the OS (glibc's `malloc_trim(0)`); False without glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


class ResidentBudget:
    """Called after each loss term: trims the heap when the resident size is above `budget`
    bytes (one /proc read per term otherwise). Freed pages stay resident until trimmed, so the
    resident size after a term is about that term's peak, and the next check tells whether the
    trim kept the run within the budget; when it did not (the live memory is above the budget,
    and what was given back was only faulted in again), the number of checks skipped before the
    next try doubles (up to `max_skip`); a trim that did resets it."""

    def __init__(self, budget: int, max_skip: int = 64):
        self.budget, self.max_skip = budget, max_skip
        self.skip = self.backoff = 0
        self.trimmed_at: int | None = None  # the resident size the last trim started from
        self.trims = 0

    def __call__(self) -> bool:
        """True when it trimmed."""
        if self.skip:
            self.skip -= 1
            return False
        resident = resident_bytes()
        if resident is None:
            return False
        if self.trimmed_at is not None:
            useful = resident <= self.budget
            self.backoff = 0 if useful else min(max(2 * self.backoff, 1), self.max_skip)
            self.trimmed_at = None
            if self.backoff:
                self.skip = self.backoff - 1  # this check counts as the first skipped
                return False
        if resident <= self.budget or not trim_heap():
            return False
        self.trims += 1
        self.trimmed_at = resident
        return True


def available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo: what can be allocated without swapping; None without it."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_budget(mib: int | None, clip_bytes: int = 0) -> int:
    """`train.memory_budget_mib` in bytes, besides the `clip_bytes` of clips the run holds in
    memory; None: what the process holds now (the clips included) plus half of the memory
    available (8 GiB where neither can be read)."""
    if mib is not None:
        return mib * MIB + clip_bytes
    resident, available = resident_bytes(), available_bytes()
    if resident is None or available is None:
        return 8 * 2**30
    return resident + available // 2


# Peak resident size over what the model, its gradients and its optimizer state hold, per byte
# that autograd saves for backward: the gradients flowing back, the forward's temporaries and the
# allocator's slack (the largest ratio measured, SkeleMixCLR+ in 2 micro-batches: 2.34;
# docs/perf-memory.md).
SAVED_TO_RESIDENT = 2.4
MIN_MICRO_BATCH = 8  # smaller micro-batches make BatchNorm statistics too noisy to be worth it


@dataclass(frozen=True)
class MemoryPlan:
    """How a step splits its work: `accumulate` micro-batches per rank, each unit's activations
    recomputed in backward or not."""

    accumulate: int
    checkpointing: bool


@dataclass(frozen=True)
class TrialBytes:
    """Bytes autograd saved for backward in a trial of `batch` samples, at the largest loss term,
    without and with activation checkpointing (None: not measured)."""

    batch: int
    plain: int
    checkpointed: int | None = None


def saved_bytes(run: Callable[[Callable[[torch.Tensor], None]], None], exclude: Iterable[torch.Tensor]) -> int:
    """The most bytes autograd holds for backward at once in `run(backward)`, where `run` calls
    `backward(term)` on each loss term as it completes: the tensors saved since the previous
    term, each storage counted once, those of `exclude` (the parameters) not at all. Activation
    checkpointing's recomputation in backward is not seen (it saves while backward runs)."""
    excluded = {t.untyped_storage().data_ptr() for t in exclude}
    live: dict[int, int] = {}
    peak = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in excluded:
            live[storage.data_ptr()] = storage.nbytes()
        return tensor

    def backward(term: torch.Tensor) -> None:
        nonlocal peak
        peak = max(peak, sum(live.values()))
        live.clear()
        term.backward()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run(backward)
    return max(peak, sum(live.values()))


def predicted_peak(plan: MemoryPlan, trial: TrialBytes, per_rank_batch: int, fixed: int) -> int:
    """Peak resident bytes of a step under `plan`: `fixed` (what the process holds, plus the
    gradients and optimizer state to come) and the saved bytes scaled to the micro-batch. With
    checkpointing, backward recomputes one unit at a time; a unit is taken to hold a third of
    what checkpointing spares (the GRU's three layers; a graph encoder's ten units hold less)."""
    saved = trial.plain
    if plan.checkpointing:
        saved = trial.checkpointed + (trial.plain - trial.checkpointed) // 3
    micro = per_rank_batch // plan.accumulate
    return fixed + int(SAVED_TO_RESIDENT * saved * micro / trial.batch)


def candidate_plans(per_rank_batch: int, accumulate: int | None, checkpointing: bool | None) -> list[MemoryPlan]:
    """The plans to consider, fastest first: micro-batches cost little time, checkpointing one
    more forward pass of the encoders, so every micro-batch split without checkpointing (down to
    `MIN_MICRO_BATCH`, or just `accumulate` when it is set) comes before any with it."""
    splits = [k for k in range(1, per_rank_batch + 1)
              if per_rank_batch % k == 0 and per_rank_batch // k >= min(MIN_MICRO_BATCH, per_rank_batch)]
    splits = splits if accumulate is None else [accumulate]
    modes = [False, True] if checkpointing is None else [checkpointing]
    return [MemoryPlan(k, mode) for mode in modes for k in splits]


def choose_plan(candidates: list[MemoryPlan], trial: TrialBytes, per_rank_batch: int, fixed: int,
                budget: int) -> tuple[MemoryPlan, int]:
    """The first candidate whose predicted peak is within `budget`, else the one with the lowest
    prediction; with that prediction."""
    predictions = [(predicted_peak(plan, trial, per_rank_batch, fixed), plan) for plan in candidates]
    for peak, plan in predictions:
        if peak <= budget:
            return plan, peak
    peak, plan = min(predictions, key=lambda p: (p[0], p[1].checkpointing, p[1].accumulate))
    return plan, peak
