"""Pretraining speed and memory at the papers' configuration, against the reference
implementations' own training steps measured in the same run on the same machine.

For `skelemix` (SkeleMixCLR+) and `isc` (sequence + graph) at batch 64, 64 frames and the paper's
queue, each configuration runs in its own subprocess (its own heap, so its own peak RSS): the
engine's training step (`Trainer._step`: views from a ClipBank, forward, backward, SGD) in each
precision, as shipped (the preset's memory budget picks micro-batches / activation checkpointing,
engine/memory.py), for `--steps` timed steps after a warm-up step; then the encoder passes such a
step runs, timed alone (forward + backward of each query encoder pass, forward of each key
encoder, random inputs, in the step's precision and micro-batches, without checkpointing): the encoder share of
the step is what the rest of the step costs. With `--reference-skelemix DIR` / `--reference-isc
DIR` (a checkout of github.com/czhaneva/SkeleMixCLR / github.com/fmthoker/skeleton-contrast) the
reference's own training loop runs in a subprocess too (benchmarks/reference_steps.py: its model,
loss and SGD step, fp32, random inputs of the same shape; steps after its first timed), and the
bench prints the ratios and the targets: met, or missed by how much. `--rounds R` repeats the
reference / skelctl subprocesses R times, interleaved; the figures are medians over all steps.

Timing: by default each subprocess runs on 1 thread (torch.set_num_threads and OMP_NUM_THREADS)
and its steps and encoder passes are timed by the process's CPU time (time.process_time), so
other jobs on a shared machine do not change the figures: rates are samples per CPU-second, and
the ratios and the encoder share come from CPU seconds; wall seconds are printed beside them.
`--threads N` (N > 1, for an idle machine) times by wall seconds instead, CPU seconds beside
(they add up the threads). On CUDA the wall time is the measure.

The bank is a synthetic 512-clip one (lengths 40-300 frames), so RSS is the model, optimizer,
queue and activations; a real training split adds its frames x 600 bytes (`--data X.h5` prints
that for a dataset). `--flops` also counts one step's FLOPs (torch's FlopCounterMode) to compare
the step's effective GFLOP/s with the machine's matmul rate.

Usage: python benchmarks/bench_pretrain.py [--device cpu|cuda] [--steps N] [--rounds R] [--threads N]
       [--methods skelemix,isc] [--precisions fp32,bf16] [--reference-skelemix DIR]
       [--reference-isc DIR] [--flops] [--data ntu60.h5] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

BATCH, FRAMES = 64, 64
# same run, same machine: skelctl's samples/s over the reference step's, by method and precision
TARGET_SPEEDUP = {("skelemix", "bf16"): 2.0, ("skelemix", "fp32"): 1.2, ("isc", "bf16"): 2.0}
TARGET_GIB = 2.0  # peak RSS as shipped
TARGET_ENCODER_SHARE = 0.9  # the encoder passes' share of the step
BYTES_PER_FRAME = 2 * 25 * 3 * 4  # a bank frame: 2 bodies x 25 joints x xyz, float32


def matmul_gflops(dtype: torch.dtype, device: str, clock: Callable[[], float], n: int = 2048, repeats: int = 5) -> float:
    """Best-of-`repeats` n x n matmul rate, timed by `clock`."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = clock()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, clock() - start)
    return 2 * n**3 / best / 1e9


class Laps:
    """CPU seconds (the process's, all its threads: time.process_time) and wall seconds of each
    timed lap, by clock: {"cpu": [...], "wall": [...]}."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, list[float]] = {"cpu": [], "wall": []}

    @contextlib.contextmanager
    def lap(self) -> Iterator[None]:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        cpu, wall = time.process_time(), time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds["cpu"].append(time.process_time() - cpu)
        self.seconds["wall"].append(time.perf_counter() - wall)


def synthetic_bank(device: str, clips: int = 512):
    from skelctl.data.clips import ClipBank

    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(40, 301, (clips,), generator=gen)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    frames = 0.3 * torch.randn(int(offsets[-1]), 2, 25, 3, generator=gen)
    labels = torch.randint(0, 60, (clips,), generator=gen)
    return ClipBank.from_arrays(frames, offsets, labels, device)


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo, as lscpu prints it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def encoder_passes(method: torch.nn.Module) -> list[tuple[torch.nn.Module, int, bool]]:
    """(encoder, passes, with gradient) of one training step of `method`: each MoCo branch's
    query encoder once per loss term that runs it (SkeleMixCLR+: the instance term and one per
    mixed batch), its key encoder once, without gradient."""
    from skelctl.methods.moco import MomentumBranch

    mixing = getattr(method, "mixing", None)
    query_passes = 1 + (mixing.repeat if mixing is not None else 0)
    passes = []
    for branch in (m for m in method.modules() if isinstance(m, MomentumBranch)):
        passes += [(branch.query.encoder, query_passes, True), (branch.key.encoder, 1, False)]
    return passes


def time_encoder_passes(method: torch.nn.Module, precision, laps: Laps, micro_batches: int = 1,
                        checkpointing: bool = False) -> None:
    """One lap of `laps`: the encoder passes of one step, on random clips of the step's shape,
    in the step's `micro_batches` (its memory plan), without activation checkpointing (what the
    step would cost if it were nothing but its encoders) or, with `checkpointing`, with the
    recompute the plan pays for its memory."""
    from skelctl.engine.precision import autocast
    from skelctl.models.layers import use_activation_checkpointing

    use_activation_checkpointing(method, checkpointing)
    x = torch.randn(BATCH // micro_batches, 3, FRAMES, 25, 2, device=laps.device)
    with laps.lap():
        for _ in range(micro_batches):
            for encoder, passes, grad in encoder_passes(method):
                for _ in range(passes):
                    with torch.set_grad_enabled(grad), autocast(precision, laps.device):
                        out = encoder(x)
                    if grad:
                        out.float().sum().backward()
    for p in method.parameters():
        p.grad = None


def worker(method: str, precision: str, device_name: str, steps: int, overrides: list[str], flops: bool) -> dict:
    """One configuration, in this process: warm-up, `steps` timed steps (peak RSS read here: the
    process as training leaves it), the encoder passes timed `steps` times (CPU and wall
    seconds, `Laps`), then (`flops`) one step with its FLOPs counted."""
    from torch.utils.flop_counter import FlopCounterMode

    from skelctl.data.layout import get_layout
    from skelctl.engine.config import load_preset
    from skelctl.engine.distributed import DistContext
    from skelctl.engine.rundir import RunDir
    from skelctl.engine.train import Trainer, epoch_permutation
    from skelctl.methods import build_method
    from skelctl.models.layers import use_activation_checkpointing

    cfg = load_preset(method, [f"train.batch_size={BATCH}", f"data.frames={FRAMES}", f"train.precision={precision}",
                               f"train.device={device_name}", *overrides])
    device = torch.device(device_name)
    bank = synthetic_bank(device_name)
    torch.manual_seed(0)
    model = build_method(cfg.method, get_layout("ntu25"), cfg.data.frames, cfg.data.stream).to(device)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, RunDir(tmp), DistContext(), device, model, bank, None, None, {}, show_progress=False)
        trainer.choose_precision()
        trainer.choose_memory_plan()
        permutation = epoch_permutation(0, 0, len(bank))
        warm_up = 3 if device.type == "cuda" else 1
        for warm in range(warm_up):
            trainer._step(model, model, permutation, warm, cfg.optim.lr)
        step_laps, encoder_laps = Laps(device), Laps(device)
        for step in range(steps):
            with step_laps.lap():
                trainer._step(model, model, permutation, (warm_up + step) % trainer.steps_per_epoch, cfg.optim.lr)
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        cuda_peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
        plan = trainer.memory_plan
        for _ in range(steps):
            time_encoder_passes(model, trainer.precision, encoder_laps, plan.accumulate)
        recompute_laps = Laps(device)
        for _ in range(steps if plan.checkpointing else 0):
            time_encoder_passes(model, trainer.precision, recompute_laps, plan.accumulate, checkpointing=True)
        tflop = None
        if flops:
            counter = FlopCounterMode(display=False)  # last: the counter keeps alive what training frees
            use_activation_checkpointing(model, plan.checkpointing)
            with counter:
                trainer._step(model, model, permutation, warm_up + steps, cfg.optim.lr)
            tflop = counter.get_total_flops() / 1e12
    return {
        "method": method, "requested": precision, "precision": trainer.precision.name,
        "queue": cfg.method.moco.queue_size, "step_seconds": step_laps.seconds,
        "encoder_seconds": encoder_laps.seconds, "checkpointed_encoder_seconds": recompute_laps.seconds,
        "accumulate": plan.accumulate, "checkpointing": plan.checkpointing,
        "predicted_gib": None if trainer.predicted_peak is None else trainer.predicted_peak / 2**30,
        "budget_gib": trainer.memory_budget / 2**30,
        "tflop_per_step": tflop, "peak_rss_gib": peak_rss, "cuda_peak_gib": cuda_peak,
        "threads": torch.get_num_threads(),
    }


def reference_worker(method: str, directory: str, steps: int) -> dict:
    """The reference's own training loop for one warm-up and `steps` timed steps, fp32."""
    import reference_steps

    return {"step_seconds": reference_steps.run(method, directory, BATCH, FRAMES, 1, steps),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "threads": torch.get_num_threads()}


def run_worker(what: list[str], device: str, steps: int, threads: int, overrides: list[str], flops: bool) -> dict:
    command = [sys.executable, __file__, "--worker", *what, "--device", device, "--steps", str(steps),
               "--threads", str(threads), *(f"--set={o}" for o in overrides), *(["--flops"] if flops else [])]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{'/'.join(what)} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def rate(seconds: list[float]) -> float:
    return BATCH / statistics.median(seconds)


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    """'met' or 'missed by N%' (of the target)."""
    met = value >= target if higher_is_better else value <= target
    if met:
        return "met"
    return f"MISSED by {100 * abs(value - target) / target:.1f}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=None, help="timed steps per subprocess (default: 3 on CPU, 20 on CUDA)")
    parser.add_argument("--rounds", type=int, default=1, help="reference and skelctl subprocesses, interleaved, this many times")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per subprocess (default 1, timed by CPU time; above 1, for an idle machine, by wall time)")
    parser.add_argument("--methods", default="skelemix,isc")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--reference-skelemix", metavar="DIR", help="a checkout of github.com/czhaneva/SkeleMixCLR")
    parser.add_argument("--reference-isc", metavar="DIR", help="a checkout of github.com/fmthoker/skeleton-contrast")
    parser.add_argument("--flops", action="store_true", help="count one step's FLOPs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a preset override for every configuration, e.g. train.memory_budget_mib=4096")
    parser.add_argument("--data", help="a dataset .h5: print the size of its xsub training bank")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps = args.steps or (3 if args.device == "cpu" else 20)
    if args.threads < 1:
        parser.error(f"--threads: {args.threads} is not a positive number of threads")
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.worker and args.worker[0] == "reference":
        print(json.dumps(reference_worker(args.worker[1], args.worker[2], steps)))
        return 0
    if args.worker:
        print(json.dumps(worker(*args.worker, args.device, steps, args.set, args.flops)))
        return 0

    import reference_steps

    methods = args.methods.split(",")
    references = {m: d for m, d in (("skelemix", args.reference_skelemix), ("isc", args.reference_isc))
                  if d is not None and m in methods}
    for method, directory in references.items():
        error = reference_steps.checkout_error(method, directory)
        if error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    clock = "cpu" if args.device == "cpu" and args.threads == 1 else "wall"
    timer = time.process_time if clock == "cpu" else time.perf_counter
    fp32, bf16 = (matmul_gflops(dtype, args.device, timer) for dtype in (torch.float32, torch.bfloat16))
    per = _seconds(clock)
    print(f"machine: {args.device}, {cpu_name()}, {args.threads} thread(s) per process; matmul 2048^3: fp32 {fp32:.0f} "
          f"GFLOP/{per}, bf16 {bf16:.0f} GFLOP/{per} (x{bf16 / fp32:.2f})", flush=True)
    if clock == "cpu":
        print("timing: by each process's CPU time (time.process_time), 1 thread each (torch, OMP_NUM_THREADS), "
              "so other jobs on the machine do not change it: rates in samples per CPU-second, ratios and encoder "
              "share from CPU seconds; wall seconds beside", flush=True)
    else:
        print(f"timing: by wall time, {args.threads} thread(s) per process (--threads: an idle machine); CPU seconds "
              "beside (all threads added)", flush=True)
    if args.data:
        from skelctl.data.store import open_dataset

        with open_dataset(args.data) as ds:
            frames = int(ds.lengths[ds.split("xsub", "train")].sum())
        print(f"{args.data}: the xsub training bank holds {frames:,} frames = "
              f"{frames * BYTES_PER_FRAME / 2**30:.2f} GiB (not included below)")
    precisions = args.precisions.split(",")
    for method in methods:
        runs: dict[str, list[dict]] = {}
        reference = None
        for round_ in range(1, args.rounds + 1):
            configs = [("reference", ["reference", method, str(Path(references[method]).resolve())], [])] if method in references else []
            configs += [(p, [method, p], args.set) for p in precisions]
            for name, what, overrides in configs:
                result = run_worker(what, args.device, steps, args.threads, overrides,
                                    args.flops and name != "reference")
                runs.setdefault(name, []).append(result)
                print(f"  ({method} {name}, round {round_}: {_laps(result['step_seconds'], clock)}, "
                      f"peak RSS {result['peak_rss_gib']:.2f} GiB)", flush=True)
                if round_ == args.rounds:  # its last round: its lines now, so a run stopped later keeps them
                    if name == "reference":
                        reference = report_reference(method, runs[name], clock)
                    else:
                        report(method, runs[name], reference, args.device, clock, {"fp32": fp32, "bf16": bf16})
    return 0


def report_reference(method: str, results: list[dict], clock: str) -> tuple[float, float]:
    """The reference's line; its rate (by `clock`: "cpu" or "wall") and peak RSS."""
    steps = _pooled(results, "step_seconds")
    reference = rate(steps[clock]), max(r["peak_rss_gib"] for r in results)
    print(f"{method:8s} reference, fp32: {reference[0]:6.2f} {_unit(clock)} ({_laps(steps, clock)}); "
          f"peak RSS {reference[1]:.2f} GiB", flush=True)
    return reference


def report(method: str, results: list[dict], reference: tuple[float, float] | None, device: str, clock: str,
           matmul: dict[str, float]) -> None:
    """The lines of one precision: rate, memory, encoder share, the ratios to the `reference`
    (rate, peak RSS) and the targets, all from the `clock` seconds."""
    memory = "GPU memory" if device == "cuda" else "RSS"
    unit = _unit(clock)
    first = results[0]
    step_s = _pooled(results, "step_seconds")
    encoder_s = _pooled(results, "encoder_seconds")
    peak = max(r["cuda_peak_gib"] if device == "cuda" else r["peak_rss_gib"] for r in results)
    samples = rate(step_s[clock])
    encoder = statistics.median(encoder_s[clock])
    share = encoder / statistics.median(step_s[clock])
    plan = ", ".join([f"{first['accumulate']} micro-batches"] * (first["accumulate"] > 1)
                     + ["activation checkpointing"] * first["checkpointing"]) or "whole batch"
    predicted = "" if first["predicted_gib"] is None else f", predicted {first['predicted_gib']:.2f} GiB"
    print(f"{method:8s} skelctl {first['requested']}->{first['precision']}: {samples:6.2f} {unit} ({_laps(step_s, clock)}); "
          f"peak {memory} {peak:.2f} GiB ({plan}{predicted}, budget {first['budget_gib']:.2f} GiB); "
          f"encoder passes {encoder:.1f} {_seconds(clock)} = {100 * share:.0f}% of the step "
          f"({_laps(encoder_s, clock)})" + _checkpointed_share(results, step_s, clock), flush=True)
    checks = []
    target = TARGET_SPEEDUP.get((method, first["precision"]))
    if reference is not None:
        ratio = samples / reference[0]
        checks.append(f"x{ratio:.2f} the reference's {unit}"
                      + (f" (target x{target}: {verdict(ratio, target)})" if target else "")
                      + f", x{peak / reference[1]:.2f} its peak RSS")
    elif target:
        checks.append(f"speed target x{target} the reference: not measured (pass --reference-{method} DIR)")
    if device == "cpu":
        checks.append(f"peak RSS <= {TARGET_GIB} GiB: {verdict(peak, TARGET_GIB, higher_is_better=False)}")
    checks.append(f"encoder share >= {TARGET_ENCODER_SHARE:.0%}: {verdict(share, TARGET_ENCODER_SHARE)}")
    if first["tflop_per_step"] is not None:
        effective = first["tflop_per_step"] * 1e3 * samples / BATCH
        peak_rate = matmul["fp32" if first["precision"] == "fp32" else "bf16"]
        checks.append(f"{first['tflop_per_step']:.3f} TFLOP/step -> {effective:.0f} GFLOP/{_seconds(clock)} "
                      f"({100 * effective / peak_rate:.0f}% of the matmul rate)")
    print("    " + "; ".join(checks), flush=True)


def _checkpointed_share(results: list[dict], step_s: dict[str, list[float]], clock: str) -> str:
    """'; with the plan's activation checkpointing N CPU-s = P%' where the plan recomputes."""
    checkpointed = _pooled(results, "checkpointed_encoder_seconds")
    if not checkpointed[clock]:
        return ""
    seconds = statistics.median(checkpointed[clock])
    return (f"; with the plan's activation checkpointing {seconds:.1f} {_seconds(clock)} = "
            f"{100 * seconds / statistics.median(step_s[clock]):.0f}% of the step ({_laps(checkpointed, clock)})")


def _seconds(clock: str) -> str:
    return "CPU-s" if clock == "cpu" else "s"


def _unit(clock: str) -> str:
    return f"samples/{_seconds(clock)}"


def _pooled(results: list[dict], key: str) -> dict[str, list[float]]:
    """The `key` seconds of every round, by clock."""
    return {clock: [t for r in results for t in r[key][clock]] for clock in ("cpu", "wall")}


def _laps(seconds: dict[str, list[float]], clock: str) -> str:
    """'CPU s/step [...], wall s [...]' with `clock` first."""
    other = "wall" if clock == "cpu" else "cpu"
    names = {"cpu": "CPU s", "wall": "wall s"}
    return "; ".join(f"{names[c]}: [" + ", ".join(f"{v:.1f}" for v in seconds[c]) + "]" for c in (clock, other))


if __name__ == "__main__":
    sys.exit(main())
