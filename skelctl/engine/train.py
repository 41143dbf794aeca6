"""One pretraining loop for every method: the methods say WHAT to contrast, this says HOW to run.

Reproducibility is by construction, not by saved RNG state: every random stream is re-derived
from `(seed, purpose, epoch, step, rank, micro-batch)`, so an epoch's permutation, a step's
augmentations and its dropout masks are the same whether the run went straight through or was
killed and resumed from a checkpoint, and differ between epochs and between ranks.

A step: the global batch (`train.batch_size`) is cut into `world_size` rank shards, each into
`accumulate` micro-batches (on a CPU with `train.accumulate` null, as many as the memory budget
needs, `choose_memory_plan`); every micro-batch makes its views (no grad), runs the method under
autocast and back-propagates `loss / accumulate` (the method does it term by term as its loss
terms complete, `methods.moco.LossSum`, which bounds the peak memory by the largest term); one
SGD step follows. The gradient is then the large batch's mean gradient; what stays per
micro-batch is what the method does inside `forward`: BatchNorm statistics (as on DDP ranks),
and the key encoder's momentum update and the enqueue (unlike DDP, where each happens once per
step: `accumulate` k moves the key encoder k times per SGD step).

Resume is bit-exact for the same device, precision, world size and thread count: a checkpoint
holds the model (queue included), the optimizer, the loss scaler, the position (epoch, step) and
the epoch's running loss sums.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import TextColumn
from torch import nn

from skelctl.atomic import atomic_path
from skelctl.console import err, progress
from skelctl.engine import distributed
from skelctl.engine.checkpoint import EncoderInfo, load_first_good, save_checkpoint, save_encoders
from skelctl.engine.config import (
    PretrainConfig,
    build_config,
    load_config_file,
    load_preset,
    scaled_schedule,
    to_dict,
    to_yaml,
)
from skelctl.engine.distributed import DistContext
from skelctl.engine.knn import knn_monitor
from skelctl.engine.memory import (
    MemoryPlan,
    ResidentBudget,
    TrialBytes,
    candidate_plans,
    choose_plan,
    memory_budget,
    resident_bytes,
    saved_bytes,
    trim_heap,
)
from skelctl.engine.precision import (
    Precision,
    autocast,
    make_scaler,
    resolve_device,
    resolve_precision,
)
from skelctl.engine.rundir import RunDir, link_latest, new_run_dir, unlink_latest
from skelctl.errors import RuntimeFailure, SkelctlError
from skelctl.interrupt import deferred
from skelctl.lock import FolderLock
from skelctl.methods.moco import frozen_key_networks
from skelctl.models.layers import use_activation_checkpointing

# purposes of derived seeds
_INIT, _PERMUTATION, _VIEWS, _GLOBAL, _TRIAL = range(5)
# settings a resumed run may change (how it runs, not what it computes)
RESUMABLE_KEYS = (
    "train.epochs", "train.device", "train.compile", "train.log_every", "train.checkpoint_every_steps",
    "train.keep_every_epochs", "train.knn_every", "train.knn_k", "train.release_memory_above_mib", "train.memory_budget_mib",
    "train.activation_checkpointing",
    "evaluation",
)
PRECISION_TRIAL_BATCH = 8


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (numpy's SeedSequence: nearby inputs, unrelated outputs)."""
    word = np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0]
    return int(word >> np.uint64(1))


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of the training clips in `epoch` (the same on every rank)."""
    gen = torch.Generator().manual_seed(derive_seed(seed, _PERMUTATION, epoch))
    return torch.randperm(n, generator=gen)


def seed_micro_batch(seed: int, epoch: int, step: int, rank: int, micro: int, device: torch.device) -> torch.Generator:
    """The augmentation generator of one micro-batch; also reseeds torch's global RNG (dropout)."""
    torch.manual_seed(derive_seed(seed, _GLOBAL, epoch, step, rank, micro))
    return torch.Generator(device).manual_seed(derive_seed(seed, _VIEWS, epoch, step, rank, micro))


def lr_at(cfg: PretrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up over `warmup_epochs` (per step), then x gamma at each milestone epoch."""
    optim = cfg.optim
    done = epoch * steps_per_epoch + step
    warmup_steps = optim.warmup_epochs * steps_per_epoch
    if done < warmup_steps:
        return optim.lr * (done + 1) / warmup_steps
    return optim.lr * optim.gamma ** sum(epoch >= m for m in optim.milestones)


@dataclass(frozen=True)
class StepPlan:
    """Which clips each rank and micro-batch of a global step takes."""

    batch_size: int
    world_size: int
    accumulate: int

    @property
    def micro_batch(self) -> int:
        return self.batch_size // (self.world_size * self.accumulate)

    def micro_batches(self, permutation: torch.Tensor, step: int, rank: int) -> list[torch.Tensor]:
        per_rank = self.batch_size // self.world_size
        start = step * self.batch_size + rank * per_rank
        shard = permutation[start : start + per_rank]
        return list(shard.split(self.micro_batch))


def check_batch(cfg: PretrainConfig, world_size: int, num_clips: int) -> StepPlan:
    """The step plan of `cfg` (`train.accumulate` null counts as 1 until the memory plan is
    chosen); refuses a batch that does not split or is larger than the training split."""
    accumulate = cfg.train.accumulate or 1
    plan = StepPlan(cfg.train.batch_size, world_size, accumulate)
    if cfg.train.batch_size % (world_size * accumulate):
        raise SkelctlError(
            f"train.batch_size: {cfg.train.batch_size} does not split into {world_size} rank(s) x "
            f"{accumulate} micro-batch(es)"
        )
    if num_clips < cfg.train.batch_size:
        raise SkelctlError(
            f"train.batch_size: {cfg.train.batch_size} is larger than the {num_clips} training clips"
        )
    return plan


# --- configuration of a run (new or resumed) -----------------------------------------------------


def config_for_run(out: str | Path | None, preset: str | None, overrides: list[str]) -> PretrainConfig:
    """The configuration a run uses. A started run directory (`--out` holding a config.yaml) keeps
    its stored settings: without --preset they are the base for the overrides; with one, the
    result must agree with them except for `RESUMABLE_KEYS`, else the user gets the difference."""
    run = None if out is None else RunDir(out)
    if run is None or not run.is_started():
        return load_preset(preset or "skelemix", overrides)
    stored = load_config_file(run.config_path)
    if preset is None:
        cfg = build_config(to_dict(stored), str(run.config_path), overrides)
    else:
        cfg = load_preset(preset, overrides)
    if not run.has_checkpoint():  # nothing was trained (a killed start): new settings start over
        return cfg
    for key, (was, now) in _differences(to_dict(stored), to_dict(cfg)).items():
        if not any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS):
            raise SkelctlError(
                f"{key}: this run was started with {was!r}, not {now!r} (resume with the same "
                "settings, or pass a new --out)", run.config_path,
            )
    return cfg


def _differences(a: Any, b: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for k in dict.fromkeys([*a, *b]):
            out.update(_differences(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k))
        return out
    return {} if a == b else {prefix: (a, b)}


# --- the loop ------------------------------------------------------------------------------------


@dataclass
class TrainState:
    """Where training stands: `epoch` is 0-based, `epoch_step` steps of it are done."""

    epoch: int = 0
    epoch_step: int = 0
    step: int = 0
    epoch_sums: dict[str, float] = field(default_factory=dict)  # loss parts summed over the epoch so far
    resumed_from: str | None = None
    last_checkpoint: str | None = None
    saved_step: int = -1  # the global step the newest checkpoint holds
    epoch_records: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Holds what a run needs between steps; `pretrain()` builds it, `run()` trains."""

    def __init__(
        self, cfg: PretrainConfig, run: RunDir, ctx: DistContext, device: torch.device,
        method: nn.Module, bank: Any, test_bank: Any, layout: Any, info: EncoderInfo,
        show_progress: bool = True,
    ):
        self.cfg, self.run_dir, self.ctx, self.device = cfg, run, ctx, device
        self.method, self.bank, self.test_bank, self.layout, self.info = method, bank, test_bank, layout, info
        self.show_progress = show_progress and ctx.is_main
        self.plan = check_batch(cfg, ctx.world_size, len(bank))
        self.steps_per_epoch = len(bank) // cfg.train.batch_size
        self.parameters = [p for p in method.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(
            self.parameters, lr=cfg.optim.lr, momentum=cfg.optim.momentum,
            weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov,
        )
        self.state = TrainState()
        self.release_memory = None  # after each loss term: trims the C heap above the budget
        self.memory_budget = memory_budget(cfg.train.memory_budget_mib,
                                           sum(b.nbytes for b in (bank, test_bank) if b is not None))
        if device.type == "cpu":
            trim_above = cfg.train.release_memory_above_mib
            trim_above = self.memory_budget if trim_above is None else trim_above * 2**20
            if trim_above:
                self.release_memory = ResidentBudget(trim_above)
        self.precision: Precision | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.memory_plan: MemoryPlan | None = None  # set by choose_memory_plan (or a checkpoint)
        self.predicted_peak: int | None = None  # bytes, when the plan was chosen by prediction

    # --- set-up ---
    def restore(self) -> None:
        """Resume from the newest intact checkpoint of the run directory, if it has one."""
        run = self.run_dir
        candidates = [run.last, run.last_prev, *run.epoch_checkpoints()]
        found = load_first_good(candidates) if self.ctx.is_main else None
        path = distributed.broadcast_object(None if found is None else str(found[1]), self.ctx)
        if path is None:
            if self.ctx.is_main:
                run.truncate_metrics(-1)  # a run killed before its first checkpoint starts over
            return
        checkpoint = found[0] if found is not None else load_first_good([Path(path)])[0]
        try:
            self.method.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.precision = Precision(checkpoint["precision"])
            self.scaler = make_scaler(self.precision, self.device)
            if checkpoint.get("scaler"):
                self.scaler.load_state_dict(checkpoint["scaler"])
            self.state.epoch, self.state.epoch_step = int(checkpoint["epoch"]), int(checkpoint["epoch_step"])
            self.state.step = int(checkpoint["step"])
            self.state.epoch_sums = {str(k): float(v) for k, v in dict(checkpoint["epoch_sums"]).items()}
            plan = checkpoint.get("memory_plan")  # (absent from checkpoints of before the key)
            if plan is not None:
                self.memory_plan = MemoryPlan(int(plan["accumulate"]), bool(plan["checkpointing"]))
        except torch.OutOfMemoryError:
            raise
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:  # a foreign or edited file
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SkelctlError(f"checkpoint does not fit this run's config.yaml ({reason})", path) from exc
        self.state.resumed_from = self.state.last_checkpoint = path
        self.state.saved_step = self.state.step
        distributed.barrier(self.ctx)
        if self.ctx.is_main:
            if Path(path) != run.last and run.last.exists():  # a broken last.pt must not become last.prev.pt
                run.last.replace(run.checkpoints / "last.broken.pt")
            run.truncate_metrics(self.state.step)
            err.print(f"resuming from {path} (epoch {self.state.epoch + 1}, step {self.state.step})",
                      highlight=False, soft_wrap=True)

    def choose_precision(self) -> None:
        if self.precision is None:
            self.precision = resolve_precision(self.cfg.train.precision, self.device, self._trial_step)
            choice = ["fp32", "bf16", "fp16"].index(self.precision.name)
            self.precision = Precision(["fp32", "bf16", "fp16"][distributed.broadcast_object(choice, self.ctx)])
            self.scaler = make_scaler(self.precision, self.device)

    def choose_memory_plan(self) -> None:
        """Micro-batches and activation checkpointing. Where `train.accumulate` or
        `train.activation_checkpointing` is null, on a CPU: the fastest plan predicted to keep
        the peak resident size within `train.memory_budget_mib` (engine/memory.py), predicted
        from the bytes a trial step saves for backward (after `choose_precision`: bf16 saves
        half). Every rank runs the trial (as the precision trial), rank 0's choice holds; a
        checkpoint keeps it, so a resumed run keeps it too."""
        train = self.cfg.train
        if self.memory_plan is None:
            plan = MemoryPlan(train.accumulate or 1, bool(train.activation_checkpointing))
            automatic = train.accumulate is None or train.activation_checkpointing is None
            if automatic and self.device.type == "cpu":
                chosen = distributed.broadcast_object(self._predicted_plan(), self.ctx)  # rank 0's
                plan, self.predicted_peak = MemoryPlan(*chosen[0]), chosen[1]
            self.memory_plan = plan
        self.plan = StepPlan(train.batch_size, self.ctx.world_size, self.memory_plan.accumulate)
        use_activation_checkpointing(self.method, self.memory_plan.checkpointing)

    def _predicted_plan(self) -> tuple[tuple[int, bool], int]:
        train = self.cfg.train
        per_rank = train.batch_size // self.ctx.world_size
        candidates = candidate_plans(per_rank, train.accumulate, train.activation_checkpointing)
        n = min(per_rank, PRECISION_TRIAL_BATCH)

        def measure(checkpointing: bool) -> int:
            use_activation_checkpointing(self.method, checkpointing)
            return saved_bytes(lambda backward: self._trial_step(self.precision, n, backward), self.method.parameters())

        modes = {plan.checkpointing for plan in candidates}
        trial = TrialBytes(n, measure(False), measure(True) if True in modes else None)
        trim_heap()  # what the trials freed is not the run's
        state = sum(2 * p.numel() * p.element_size() for p in self.parameters)  # gradients, momentum
        fixed = (resident_bytes() or 0) + state
        plan, peak = choose_plan(candidates, trial, per_rank, fixed, self.memory_budget)
        return (plan.accumulate, plan.checkpointing), peak

    def _trial_step(self, precision: Precision, n: int | None = None,
                    backward: Callable[[torch.Tensor], None] | None = None) -> None:
        """One forward/backward on `n` clips (default: up to 8 of a micro-batch), each loss
        term back-propagated by `backward`; the model is left as it was: the key networks do not
        move, the buffers (queues, BN statistics) are put back and the gradients dropped. (A
        copy of the model would hold ISC's 0.4 GiB of weights twice: the run's peak memory.)"""
        buffers = [(b, b.clone()) for b in self.method.buffers()]
        n = n or min(self.plan.micro_batch, PRECISION_TRIAL_BATCH)
        idx = torch.arange(n, device=self.device)
        gen = torch.Generator(self.device).manual_seed(derive_seed(self.cfg.train.seed, _TRIAL))
        try:
            with frozen_key_networks(self.method):
                views = self.method.make_views(self.bank, idx, gen)
                with autocast(precision, self.device):
                    self.method(views, backward=backward or (lambda term: term.backward()))
        finally:
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)
            for p in self.method.parameters():
                p.grad = None

    # --- training ---
    def run(self, stop: threading.Event | None = None) -> dict[str, Any]:
        """Train to `train.epochs`; `stop` (set by SIGINT/SIGTERM) ends the run before the next
        step with a checkpoint of the step reached."""
        cfg, state = self.cfg, self.state
        model = distributed.wrap(self.method, self.ctx, self.device)
        forward = torch.compile(model) if cfg.train.compile else model
        self.method.train()
        samples, seconds = 0, 0.0
        if cfg.train.knn_every and state.step == 0:  # the untrained network's score, for comparison
            knn = self._knn()
            self._log({"kind": "knn", "epoch": 0, "step": 0, "knn": knn})
            if self.ctx.is_main:
                err.print(_knn_text(knn, "kNN before training:"), highlight=False, soft_wrap=True)
        with self._progress(cfg.train.epochs * self.steps_per_epoch) as bar:
            while state.epoch < cfg.train.epochs:
                first_step, epoch_start = state.epoch_step, time.perf_counter()
                permutation = epoch_permutation(cfg.train.seed, state.epoch, len(self.bank))
                window = _Window()
                for step in range(first_step, self.steps_per_epoch):
                    if stop is not None and distributed.any_rank(stop.is_set(), self.ctx, self.device):
                        self._interrupted(getattr(stop, "signum", signal.SIGTERM))
                    lr = lr_at(cfg, state.epoch, step, self.steps_per_epoch)
                    parts = self._step(model, forward, permutation, step, lr)
                    state.epoch_step, state.step = step + 1, state.step + 1
                    _accumulate(state.epoch_sums, parts)
                    window.add(parts)
                    if state.step % cfg.train.log_every == 0 or state.epoch_step == self.steps_per_epoch:
                        means = distributed.mean_across_ranks(window.means(), self.ctx, self.device)
                        rate = window.rate(cfg.train.batch_size)
                        self._log({"kind": "step", "epoch": state.epoch + 1, "step": state.step,
                                   **_rounded(means), "lr": lr, "samples_per_s": round(rate, 3)})
                        if bar is not None:
                            bar.update(bar.task_ids[0], completed=state.step,
                                       info=f"epoch {state.epoch + 1}  loss {means['loss']:.4f}  {rate:.1f} samples/s")
                        window = _Window()
                    every = cfg.train.checkpoint_every_steps
                    if every and state.step % every == 0 and state.epoch_step < self.steps_per_epoch:
                        self._save()  # (the epoch's last step is saved by _end_epoch)
                ran = self.steps_per_epoch - first_step
                elapsed = time.perf_counter() - epoch_start
                samples, seconds = samples + ran * cfg.train.batch_size, seconds + elapsed
                self._end_epoch(ran, elapsed, lr_at(cfg, state.epoch, self.steps_per_epoch - 1, self.steps_per_epoch))
        distributed.barrier(self.ctx)
        return self._summary(samples, seconds)

    def _step(self, model: nn.Module, forward: Callable, permutation: torch.Tensor, step: int, lr: float) -> dict[str, float]:
        """One optimizer step over this rank's micro-batches; returns the mean loss parts."""
        cfg, state, ctx = self.cfg, self.state, self.ctx
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        micro = self.plan.micro_batches(permutation, step, ctx.rank)
        sums: dict[str, float] = {}

        def backward(term: torch.Tensor) -> None:
            with torch.autocast(self.device.type, enabled=False):
                self.scaler.scale(term / len(micro)).backward()
            # The term's low-precision weight copies go too: the next term may not use them
            # (ISC: the GRU's bf16 copy, 0.1 GiB, would stay alive through the 2s-AGCN's term).
            torch.clear_autocast_cache()
            if self.release_memory is not None:
                self.release_memory()

        # A method back-propagates its loss terms one by one (peak memory of one term) unless DDP
        # (one backward per forward) or torch.compile (a graph break per term) runs it.
        early = backward if forward is model and not isinstance(model, nn.parallel.DistributedDataParallel) else None
        for m, idx in enumerate(micro):
            idx = idx.to(self.device)
            gen = seed_micro_batch(cfg.train.seed, state.epoch, step, ctx.rank, m, self.device)
            views = self.method.make_views(self.bank, idx, gen)
            last = m + 1 == len(micro)
            with _gradient_sync(model, last), autocast(self.precision, self.device):
                out = forward(views, backward=early)
            loss = out["loss"]
            finite = bool(torch.isfinite(loss.detach()))
            if distributed.any_rank(not finite, ctx, self.device):
                self._diverged(f"the loss is {float(loss.detach())}" if not finite else "the loss is not finite on another rank")
            if early is None:
                with _gradient_sync(model, last):
                    backward(loss)
            _accumulate(sums, {k: float(v.detach()) for k, v in out.items() if isinstance(v, torch.Tensor) and v.numel() == 1})
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: v / len(micro) for k, v in sums.items()}

    def _diverged(self, what: str) -> None:
        state = self.state
        kept = self.state.last_checkpoint or "none was written yet"
        raise RuntimeFailure(
            f"training diverged at epoch {state.epoch + 1}, step {state.epoch_step + 1} of "
            f"{self.steps_per_epoch} (global step {state.step + 1}): {what}. Stopped; the last good "
            f"checkpoint is kept ({kept}). Try a lower optim.lr or --precision fp32."
        )

    def _interrupted(self, signum: int) -> None:
        """Save the step reached (unless saved already) and stop with how to resume."""
        state, name = self.state, signal.Signals(signum).name
        if state.step == 0:
            raise RuntimeFailure(f"interrupted by {name} before the first step; nothing was saved")
        if state.saved_step != state.step:
            self._save()
        where = self.run_dir.last.relative_to(self.run_dir.path)
        raise RuntimeFailure(
            f"interrupted by {name} after global step {state.step} (epoch {state.epoch + 1}, step "
            f"{state.epoch_step} of {self.steps_per_epoch}); saved {where}; resume with "
            f"`skelctl pretrain --out {self.run_dir.path}`", self.run_dir.path,
        )

    # --- outputs (rank 0) ---
    def _log(self, record: dict[str, Any]) -> None:
        if self.ctx.is_main:
            self.run_dir.append_metrics(record)

    def _checkpoint_state(self) -> dict[str, Any]:
        state = self.state
        return {
            "model": self.method.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "epoch": state.epoch, "epoch_step": state.epoch_step, "step": state.step,
            "epoch_sums": dict(state.epoch_sums),
            "precision": self.precision.name, "world_size": self.ctx.world_size,
            "memory_plan": {"accumulate": self.memory_plan.accumulate, "checkpointing": self.memory_plan.checkpointing},
            "config": to_dict(self.cfg),
        }

    def _save(self) -> None:
        """Write last.pt (the old one becomes last.prev.pt), refusing to keep non-finite weights."""
        finite = torch.stack([p.detach().isfinite().all() for p in self.method.parameters()]).all()
        if not bool(finite):
            self._diverged("the weights are no longer finite")
        if self.ctx.is_main:
            save_checkpoint(self.run_dir.last, self._checkpoint_state(), keep_previous=self.run_dir.last_prev)
        self.state.last_checkpoint = str(self.run_dir.last)
        self.state.saved_step = self.state.step

    def _end_epoch(self, ran: int, elapsed: float, lr: float) -> None:
        cfg, state = self.cfg, self.state
        sums, steps = state.epoch_sums, self.steps_per_epoch
        state.epoch, state.epoch_step, state.epoch_sums = state.epoch + 1, 0, {}
        means = distributed.mean_across_ranks({k: v / steps for k, v in sums.items()}, self.ctx, self.device)
        record: dict[str, Any] = {
            "kind": "epoch", "epoch": state.epoch, "step": state.step, **_rounded(means), "lr": lr,
            "samples_per_s": round(ran * cfg.train.batch_size / max(elapsed, 1e-9), 3),
            "seconds": round(elapsed, 3),
        }
        if cfg.train.knn_every and (state.epoch % cfg.train.knn_every == 0 or state.epoch == cfg.train.epochs):
            record["knn"] = self._knn()
        self._save()
        if self.ctx.is_main:
            if cfg.train.keep_every_epochs and state.epoch % cfg.train.keep_every_epochs == 0:
                copy_file(self.run_dir.last, self.run_dir.epoch_checkpoint(state.epoch))
            self._export_encoders()
            self._log(record)
            state.epoch_records.append(record)
            err.print(_epoch_line(record, cfg.train.epochs), highlight=False, soft_wrap=True)

    def _knn(self) -> dict[str, Any] | None:
        """The weighted-kNN monitor (rank 0 computes; the others wait)."""
        result = None
        if self.ctx.is_main and self.test_bank is not None:
            cfg = self.cfg
            result = knn_monitor(
                self.method, self.bank, self.test_bank, cfg.data.frames, cfg.data.stream,
                self.layout, cfg.train.knn_k, batch_size=max(self.plan.micro_batch, 64),
            )
        distributed.barrier(self.ctx)
        return result

    def _export_encoders(self) -> None:
        encoders = self.method.export_encoders()
        primary = getattr(self.method, "primary", next(iter(encoders)))
        files = []
        for name, encoder in encoders.items():
            info = dataclasses.replace(self.info, epoch=self.state.epoch, encoder=name)
            files.append((self.run_dir.encoder_path(name), encoder, info))
            if name == primary:
                files.append((self.run_dir.encoder_path(), encoder, info))
        save_encoders(files)  # all of an epoch's encoder files, or none of them

    def _progress(self, total: int) -> Any:
        if not self.show_progress:
            return _NoProgress()
        bar = progress(TextColumn("{task.fields[info]}"))
        bar.add_task("pretrain", total=total, completed=self.state.step, info="")
        return bar

    def _summary(self, samples: int, seconds: float) -> dict[str, Any]:
        last = self.state.epoch_records[-1] if self.state.epoch_records else {}
        return {
            "run_dir": str(self.run_dir.path), "epochs": self.state.epoch, "steps": self.state.step,
            "samples_per_s": round(samples / seconds, 3) if seconds else None,
            "final_loss": last.get("loss"), "knn": last.get("knn"),
            "precision": self.precision.name, "device": str(self.device), "world_size": self.ctx.world_size,
            "resumed_from": self.state.resumed_from,
            "config": str(self.run_dir.config_path), "metrics": str(self.run_dir.metrics_path),
            "checkpoint": str(self.run_dir.last), "encoder": str(self.run_dir.encoder_path()),
        }


class _Window:
    """Loss parts and throughput since the last log line."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.steps = 0
        self.start = time.perf_counter()

    def add(self, parts: dict[str, float]) -> None:
        _accumulate(self.sums, parts)
        self.steps += 1

    def means(self) -> dict[str, float]:
        return {k: v / max(self.steps, 1) for k, v in self.sums.items()}

    def rate(self, batch_size: int) -> float:
        return self.steps * batch_size / max(time.perf_counter() - self.start, 1e-9)


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _accumulate(sums: dict[str, float], parts: dict[str, float]) -> None:
    for k, v in parts.items():
        sums[k] = sums.get(k, 0.0) + v


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 6) for k, v in values.items()}


def _gradient_sync(model: nn.Module, sync: bool) -> Any:
    """DDP all-reduces gradients only on the last micro-batch of a step."""
    if sync or not isinstance(model, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


def _plan_text(trainer: Trainer) -> str:
    """', 4 micro-batches, activation checkpointing (predicted peak 1.8 of 2.0 GiB)' or ''."""
    plan, parts = trainer.memory_plan, []
    if plan.accumulate > 1:
        parts.append(f"{plan.accumulate} micro-batches")
    if plan.checkpointing:
        parts.append("activation checkpointing")
    text = "".join(f", {p}" for p in parts)
    if trainer.predicted_peak is not None:
        text += f" (predicted peak {trainer.predicted_peak / 2**30:.1f} of a {trainer.memory_budget / 2**30:.1f} GiB budget)"
    return text


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    parts = "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k.startswith("loss") or k == "acc")
    line = f"epoch {record['epoch']}/{epochs}  {parts}  {record['samples_per_s']:.1f} samples/s"
    if record.get("knn"):
        line += "  " + _knn_text(record["knn"], "kNN")
    return line


def _knn_text(knn: dict[str, Any], label: str) -> str:
    return label + " " + " ".join(f"{k}={v:.1f}%" for k, v in knn.items() if k.startswith("top1"))


def copy_file(src: Path, dst: Path) -> None:
    """A kept epoch checkpoint: a hard link to last.pt when possible (no second write)."""
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


# --- entry point ---------------------------------------------------------------------------------


def pretrain(cfg: PretrainConfig, out: str | Path | None = None, show_progress: bool = True) -> dict[str, Any] | None:
    """Train `cfg` into run directory `out` (resuming it when it holds a run), or a new one in
    the runs root; returns the summary (None on ranks other than 0). Works under torchrun."""
    from skelctl.augment.inputs import ClipView
    from skelctl.data.store import open_dataset
    from skelctl.methods import build_method
    from skelctl.paths import resolve_dataset

    device = resolve_device(cfg.train.device)
    dataset_path = resolve_dataset(cfg.data.dataset)
    ctx, device = distributed.init_from_env(device)
    claim = None
    try:
        claim = _RunClaim(cfg, out, ctx)
        run = claim.run
        with open_dataset(dataset_path) as ds:
            if cfg.data.benchmark not in ds.benchmarks:
                raise SkelctlError(
                    f"data.benchmark: '{cfg.data.benchmark}' is not in this dataset (it has: "
                    f"{', '.join(ds.benchmarks) or 'none'})", dataset_path,
                )
            layout, options = ds.layout, ds.options
            train_idx = ds.split(cfg.data.benchmark, "train")
            cfg = fit_to_dataset(cfg, len(train_idx))
            # built before any clip is read: a setting that cannot work fails first, by its key
            torch.manual_seed(derive_seed(cfg.train.seed, _INIT))  # same initial weights on every rank
            method = build_method(cfg.method, layout, cfg.data.frames, cfg.data.stream,
                                  in_channels=ds.channels, normalize=cfg.data.normalize).to(device)
            check_batch(cfg, ctx.world_size, len(train_idx))
            if ctx.is_main:
                err.print(f"loading the {cfg.data.benchmark} training split of {dataset_path}", highlight=False)
            view = ClipView(cfg.data.frames, cfg.data.stream, layout, cfg.data.normalize)
            bank = view.load(ds, train_idx, device)
            test_bank = None
            if cfg.train.knn_every and ctx.is_main:
                test_bank = view.load(ds, ds.split(cfg.data.benchmark, "test"), device)
        info = EncoderInfo(
            method=cfg.method.name, preset=cfg.preset, dataset=str(dataset_path),
            benchmark=cfg.data.benchmark, stream=cfg.data.stream, frames=cfg.data.frames,
            normalize=cfg.data.normalize, preprocess_options=options, layout=layout.to_dict(),
        )
        trainer = Trainer(cfg, run, ctx, device, method, bank, test_bank, layout, info, show_progress)
        trainer.restore()
        trainer.choose_precision()
        trainer.choose_memory_plan()
        if ctx.is_main:
            err.print(f"run {run.path}: {cfg.method.name} on {device} ({trainer.precision.name}, "
                      f"{ctx.world_size} process(es){_plan_text(trainer)}), {trainer.steps_per_epoch} steps/epoch",
                      highlight=False)
        claim.start(cfg)
        with deferred() as stop:
            summary = trainer.run(stop)
        claim.end(failed=False)
        return summary if ctx.is_main else None
    except BaseException:
        if claim is not None:
            claim.end(failed=True)
        raise
    finally:
        distributed.shutdown()


def fit_to_dataset(cfg: PretrainConfig, clips: int) -> PretrainConfig:
    """The sizes a preset derives from its training split of `clips` clips: epochs for
    `train.min_steps` (milestones and warm-up scaled alike) and a queue of at most
    `moco.queue_fraction` of the clips, in whole batches (at least one)."""
    import dataclasses
    import math

    batch = cfg.train.batch_size
    steps_per_epoch = max(1, clips // batch)
    train, optim, moco = cfg.train, cfg.optim, cfg.method.moco
    if train.min_steps and train.epochs * steps_per_epoch < train.min_steps:
        epochs = math.ceil(train.min_steps / steps_per_epoch)
        optim = scaled_schedule(optim, train.epochs, epochs)
        train = dataclasses.replace(train, epochs=epochs)
    if moco.queue_fraction:
        fitted = max(batch, int(moco.queue_fraction * clips) // batch * batch)
        moco = dataclasses.replace(moco, queue_size=min(moco.queue_size, fitted))
    method = dataclasses.replace(cfg.method, moco=moco)
    return dataclasses.replace(cfg, train=train, optim=optim, method=method)


class _RunClaim:
    """Rank 0 names, locks (`skelctl.lock`) and prepares the run directory; the other ranks
    learn its path. config.yaml is written when training starts (`start`), so a command that
    fails before changes nothing in a started run; a run that ends without having saved a
    checkpoint takes what it wrote away with it, so the corrected command works on the same --out."""

    def __init__(self, cfg: PretrainConfig, out: str | Path | None, ctx: DistContext):
        self.lock: FolderLock | None = None
        path = None
        if ctx.is_main:
            self.fresh = out is None
            run = new_run_dir(cfg.preset, cfg.data.dataset, cfg.data.benchmark) if self.fresh else RunDir(out)
            self.created = not run.path.exists()
            run.prepare()
            self.lock = FolderLock(run.lock_path, run.path)  # a second writer fails here (exit 2)
            self.previous_latest = None
            path = str(run.path)
        self.run = RunDir(distributed.broadcast_object(path, ctx))

    def start(self, cfg: PretrainConfig) -> None:
        if self.lock is not None:
            self.run.write_config(to_yaml(cfg))
            if self.fresh:
                self.previous_latest = link_latest(self.run)

    def end(self, failed: bool) -> None:
        if self.lock is None or not self.lock.held:
            return
        try:
            if failed:
                self.run.discard_unstarted(self.created)
                if self.fresh and not self.run.path.exists():
                    unlink_latest(self.run, self.previous_latest)
        finally:
            self.lock.release()
