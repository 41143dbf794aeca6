"""Pretraining throughput and memory at the papers' reference configuration, measured in one run.

For `skelemix` (SkeleMixCLR+) and `isc` (sequence + graph) at batch 64, 64 frames and the paper's
queue, each precision runs in its own subprocess (clean peak RSS): the engine's own training
step (`Trainer._step`: views from a ClipBank, forward, backward, SGD) for a few timed steps
after warm-up; peak RSS is read after them (precision trial included, as in a real run), before
the step whose FLOPs are counted (the counter keeps alive tensors that training frees). `auto`
is what `--precision auto` picks on this machine (a measured trial, see
skelctl/engine/precision.py). The same run measures the machine's matmul GFLOP/s (fp32, bf16)
and counts each step's FLOPs (torch's FlopCounterMode, forward + backward), so the step's
effective GFLOP/s can be compared with the machine's peak. On a shared machine the wall-clock
rate depends on other jobs; the best step and the CPU-time rate (samples per CPU-second times
the thread count: the rate with the threads' cores to themselves) bound what the code can do.
FLOPs on CUDA miss cuDNN's fused GRU (FlopCounterMode does not count it), so ISC's CUDA
TFLOP/step is an undercount.

Anchors (SPEC 3, 5; the reference implementations on this 2-core CPU, batch 64, fp32):
SkeleMixCLR 1.53 samples/s at 9.2 GiB peak RSS; ISC 1.13 samples/s at 8.65 GiB. Targets:
>= 4x the samples/s, <= 2 GiB. On CPU the run ends with ISC memory-bounded (`MEMORY_BOUNDED`:
the same global batch in micro-batches, activation checkpointing, heap trimming). The bank is
a synthetic 512-clip one (lengths 40-300 frames), so RSS is the model, optimizer, queue and
activations; the training split's bank adds its frames x 600 bytes (`--data X.h5` prints that
for a real dataset).

Usage: python benchmarks/bench_pretrain.py [--device cpu|cuda] [--steps N] [--methods skelemix,isc]
       [--precisions fp32,auto] [--data ntu60.h5] [--set train.activation_checkpointing=true]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REFERENCE = {"skelemix": (1.53, 9.2), "isc": (1.13, 8.65)}  # samples/s, GiB peak RSS
TARGET_SPEEDUP, TARGET_GIB = 4.0, 2.0
# ISC on a CPU with little memory (README, Troubleshooting): the global batch of 64 as 4
# micro-batches of 16, each encoder unit's activations recomputed in backward, and the C heap
# trimmed after a loss term when the resident size is above 2 GiB.
MEMORY_BOUNDED = {"isc": ["train.accumulate=4", "train.activation_checkpointing=true",
                          "train.memory_budget_mib=2048"]}
SKELEMIX_REFERENCE_TFLOP = 1.26  # per batch of 64 (SPEC 3)
BYTES_PER_FRAME = 2 * 25 * 3 * 4  # a bank frame: 2 bodies x 25 joints x xyz, float32


def matmul_gflops(dtype: torch.dtype, device: str, n: int = 2048, repeats: int = 5) -> float:
    """Best-of-`repeats` n x n matmul rate."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def synthetic_bank(device: str, clips: int = 512):
    from skelctl.data.clips import ClipBank

    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(40, 301, (clips,), generator=gen)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    frames = 0.3 * torch.randn(int(offsets[-1]), 2, 25, 3, generator=gen)
    labels = torch.randint(0, 60, (clips,), generator=gen)
    return ClipBank.from_arrays(frames, offsets, labels, device)


def worker(method: str, precision: str, device_name: str, steps: int, overrides: list[str]) -> dict:
    """One configuration, in this process: warm-up, `steps` timed steps (peak RSS read here: the
    process as training leaves it), then one step with its FLOPs counted."""
    from torch.utils.flop_counter import FlopCounterMode

    from skelctl.data.layout import get_layout
    from skelctl.engine.config import load_preset
    from skelctl.engine.distributed import DistContext
    from skelctl.engine.rundir import RunDir
    from skelctl.engine.train import Trainer, epoch_permutation
    from skelctl.methods import build_method

    cfg = load_preset(method, ["train.batch_size=64", "data.frames=64", f"train.precision={precision}",
                               f"train.device={device_name}", *overrides])
    device = torch.device(device_name)
    bank = synthetic_bank(device_name)
    torch.manual_seed(0)
    model = build_method(cfg.method, get_layout("ntu25"), cfg.data.frames, cfg.data.stream).to(device)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, RunDir(tmp), DistContext(), device, model, bank, None, None, {}, show_progress=False)
        trainer.choose_precision()
        permutation = epoch_permutation(0, 0, len(bank))
        warm_up = 3 if device.type == "cuda" else 1
        for warm in range(warm_up):
            trainer._step(model, model, permutation, warm, cfg.optim.lr)
        times, cpu_times = [], []
        for step in range(steps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, cpu_start = time.perf_counter(), time.process_time()
            trainer._step(model, model, permutation, (warm_up + step) % trainer.steps_per_epoch, cfg.optim.lr)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        cuda_peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
        counter = FlopCounterMode(display=False)  # last: the counter keeps alive what training frees
        with counter:
            trainer._step(model, model, permutation, warm_up + steps, cfg.optim.lr)
    median = sorted(times)[len(times) // 2]
    return {
        "method": method, "requested": precision, "precision": trainer.precision.name,
        "device": device_name, "batch": 64, "frames": 64, "queue": cfg.method.moco.queue_size,
        "step_seconds": [round(t, 3) for t in times], "samples_per_s": 64 / median,
        "best_samples_per_s": 64 / min(times),
        "cpu_samples_per_s": 64 * torch.get_num_threads() / (sorted(cpu_times)[len(cpu_times) // 2]),
        "tflop_per_step": counter.get_total_flops() / 1e12,
        "peak_rss_gib": peak_rss,
        "cuda_peak_gib": cuda_peak,
        "threads": torch.get_num_threads(),
    }


def run_config(method: str, precision: str, device: str, steps: int, overrides: list[str]) -> dict:
    command = [sys.executable, __file__, "--worker", method, precision, "--device", device, "--steps", str(steps),
               *(f"--set={o}" for o in overrides)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{method}/{precision} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 5 on CPU, 20 on CUDA)")
    parser.add_argument("--methods", default="skelemix,isc")
    parser.add_argument("--precisions", default="fp32,auto")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a preset override for every configuration, e.g. train.activation_checkpointing=true")
    parser.add_argument("--data", help="a dataset .h5: print the size of its xsub training bank")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps = args.steps or (5 if args.device == "cpu" else 20)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.worker:
        print(json.dumps(worker(*args.worker, args.device, steps, args.set)))
        return 0

    fp32, bf16 = (matmul_gflops(dtype, args.device) for dtype in (torch.float32, torch.bfloat16))
    print(f"machine: {args.device}, {torch.get_num_threads()} threads; matmul 2048^3: fp32 {fp32:.0f} GFLOP/s, "
          f"bf16 {bf16:.0f} GFLOP/s (x{bf16 / fp32:.2f})")
    if args.data:
        from skelctl.data.store import open_dataset

        with open_dataset(args.data) as ds:
            frames = int(ds.lengths[ds.split("xsub", "train")].sum())
        print(f"{args.data}: the xsub training bank holds {frames:,} frames = "
              f"{frames * BYTES_PER_FRAME / 2**30:.2f} GiB (not included below)")
    configs = [(m, p, args.set, "") for m in args.methods.split(",") for p in args.precisions.split(",")]
    if args.device == "cpu":
        configs += [(m, "auto", [*args.set, *MEMORY_BOUNDED[m]], " (memory-bounded)")
                    for m in args.methods.split(",") if m in MEMORY_BOUNDED]
    for method, precision, overrides, label in configs:
        ref_rate, ref_gib = REFERENCE[method]
        if label:
            print(f"{method}{label}: {' '.join(MEMORY_BOUNDED[method])}")
        r = run_config(method, precision, args.device, steps, overrides)
        rate, tflop = r["samples_per_s"], r["tflop_per_step"]
        effective = tflop * 1e3 * rate / 64
        peak = fp32 if r["precision"] == "fp32" else bf16
        memory = r["cuda_peak_gib"] if args.device == "cuda" else r["peak_rss_gib"]
        line = (f"{method:8s} {precision:>4s}->{r['precision']}{label}: {rate:7.2f} samples/s "
                f"(x{rate / ref_rate:.2f} vs reference {ref_rate}, target x{TARGET_SPEEDUP:.0f}); "
                f"peak {'GPU memory' if args.device == 'cuda' else 'RSS'} {memory:.2f} GiB")
        if args.device == "cpu":
            line += f" (x{memory / ref_gib:.2f} of reference {ref_gib} GiB, target <= {TARGET_GIB} GiB)"
        line += (f"; {tflop:.3f} TFLOP/step counted -> {effective:.0f} GFLOP/s effective "
                 f"({100 * effective / peak:.0f}% of {r['precision'] if r['precision'] != 'fp16' else 'bf16'} matmul peak)")
        if method == "skelemix":
            line += f"; at the reference's {SKELEMIX_REFERENCE_TFLOP} TFLOP/step: {SKELEMIX_REFERENCE_TFLOP * 1e3 * rate / 64:.0f} GFLOP/s"
        print(line, flush=True)
        print(f"    steps (s): {r['step_seconds']}; best step {r['best_samples_per_s']:.2f} samples/s "
              f"(x{r['best_samples_per_s'] / ref_rate:.2f})"
              + (f"; by CPU time, {r['threads']} threads busy: {r['cpu_samples_per_s']:.2f} samples/s "
                 f"(x{r['cpu_samples_per_s'] / ref_rate:.2f})" if args.device == "cpu" else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
