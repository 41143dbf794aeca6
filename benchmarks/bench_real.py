"""Learning on REAL data: NW-UCLA cross-view, self-supervised pretraining against its baselines.

For each method (`skelemix`, `isc`; the CPU-sized presets `presets/ucla-<method>.yaml`):
1. pretrain on the xview training split (views 1, 2: 1,019 clips) for a time budget: a short
   trial of the engine's own step measures clips/s, the budget becomes a whole number of epochs;
2. evaluate the pretrained encoder, the SAME architecture at its initialisation (the weights the
   pretraining started from, and more initialisation seeds for the spread), and supervised
   training from scratch (that random encoder fine-tuned on 100% of the labels):
   - linear: frozen encoder, linear classifier (cached features), top-1 on view 3 (463 clips);
   - 1-NN: cosine 1-nearest neighbour, train split as gallery (the `retrieve --eval` protocol);
   - semi-supervised 10%: encoder + linear layer fine-tuned on 10% of each class's labels.
Every cell calls the functions the CLI calls (`skelctl pretrain`, `linear`, `retrieve --eval`,
`semisup --fraction 0.1`, `finetune`) and records top-1 (percent) and wall seconds.
Seeds: the cheap cells (linear, 1-NN) run for every seed in `--seeds`: the linear probe's seed on
the pretrained encoder, the initialisation seed on the random one; the costly cells run once.

Usage: python benchmarks/bench_real.py [--minutes 25 | --epochs N] [--seeds 0,1,2] [--device cpu|cuda]
       [--out DIR] [--data nw-ucla.h5 | --zip N-UCLA.zip] [--methods skelemix,isc] [--threads N]
Writes DIR/results.json and DIR/results.md (the table docs/bench-real.md quotes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = ROOT / "tests" / "fixtures" / "nw_ucla.zip"
BENCHMARK = "xview"
SEMISUP_FRACTION = 0.1
TRIAL_STEPS = 2  # timed steps (after one warm-up) that turn a time budget into epochs


def preset_path(method: str) -> Path:
    return ROOT / "presets" / f"ucla-{method}.yaml"


# --- data -------------------------------------------------------------------------------------


def prepare_data(args: argparse.Namespace) -> Path:
    """The given dataset, else NW-UCLA preprocessed from the zip into the output folder."""
    if args.data is not None:
        return args.data
    from skelctl.data.preprocess import PreprocessOptions, preprocess

    out = args.out / "nw-ucla.h5"
    if not out.is_file():
        preprocess("nwucla", args.zip, out, PreprocessOptions())
    return out


# --- turning minutes into epochs --------------------------------------------------------------


def clips_per_second(step: Callable[[], None], batch: int, device: torch.device) -> float:
    """Best of TRIAL_STEPS timed calls of `step` (one warm-up first: kernels, allocator)."""
    step()
    best = float("inf")
    for _ in range(TRIAL_STEPS):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return batch / best


def epochs_for(minutes: float, clips_per_epoch: int, rate: float) -> int:
    return max(1, int(minutes * 60 * rate / clips_per_epoch))


def pretrain_rate(cfg: Any, bank: Any, layout: Any, device: torch.device) -> float:
    """Clips/s of one pretraining step (views, forward, backward, SGD) on a throw-away model."""
    from skelctl.methods import build_method

    method = build_method(cfg.method, layout, cfg.data.frames, cfg.data.stream,
                          in_channels=bank.frames.shape[-1]).to(device).train()
    optimizer = torch.optim.SGD(method.parameters(), lr=0.0)
    gen = torch.Generator(device).manual_seed(0)
    batch = cfg.train.batch_size

    def step() -> None:
        idx = torch.randperm(len(bank), generator=gen, device=device)[:batch]
        loss = method(method.make_views(bank, idx, gen))["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return clips_per_second(step, batch, device)


def finetune_rate(encoder_file: Path, stage: Any, frames: int, bank: Any, layout: Any,
                  num_classes: int, device: torch.device) -> float:
    """Clips/s of one fine-tuning step (encoder + linear layer) of the encoder in `encoder_file`."""
    from skelctl.engine.checkpoint import load_encoder
    from skelctl.evaluate.features import ClipView

    encoder, _ = load_encoder(encoder_file, device)
    model = torch.nn.Sequential(encoder, torch.nn.Linear(encoder.feature_dim, num_classes)).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    view = ClipView(frames, "joint", layout)
    gen = torch.Generator(device).manual_seed(0)
    batch = min(stage.batch_size, len(bank))

    def step() -> None:
        idx = torch.randperm(len(bank), generator=gen, device=device)[:batch]
        loss = torch.nn.functional.cross_entropy(model(view.inputs(bank, idx, (1.0, 1.0))), bank.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return clips_per_second(step, batch, device)


# --- encoders ---------------------------------------------------------------------------------


def save_initial_encoder(cfg: Any, layout: Any, in_channels: int, seed: int, path: Path,
                         calibrate_on: Any | None = None) -> Path:
    """The method's primary encoder exactly as pretraining with `seed` initialises it (same
    architecture, same draw), saved as an encoder.pt: the "random encoder" baseline.

    With `calibrate_on` (a ClipBank of training clips) its BatchNorm running statistics are
    those of the clips (`skelctl.evaluate.features.calibrate_batchnorm`).
    """
    from skelctl.engine.checkpoint import save_encoder
    from skelctl.engine.train import _INIT, derive_seed
    from skelctl.methods import build_method

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, _INIT))
        method = build_method(cfg.method, layout, cfg.data.frames, cfg.data.stream, in_channels=in_channels)
    encoder = method.query_encoder
    if calibrate_on is not None:
        from skelctl.evaluate.features import ClipView, calibrate_batchnorm

        calibrate_batchnorm(encoder, calibrate_on, ClipView(cfg.data.frames, cfg.data.stream, layout))
    info = {"method": "random-init", "preset": cfg.preset, "dataset": cfg.data.dataset,
            "benchmark": cfg.data.benchmark, "stream": cfg.data.stream, "frames": cfg.data.frames,
            "layout": layout.to_dict(), "seed": seed, "encoder": method.primary,
            "batchnorm": "calibrated on the training clips" if calibrate_on is not None else "initial"}
    save_encoder(path, encoder, info)
    return path


# --- evaluation cells -------------------------------------------------------------------------


def timed(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    start = time.perf_counter()
    result = run()
    return {"top1": round(float(result["top1"]), 2), "seconds": round(time.perf_counter() - start, 1)}


def linear_cell(encoder: Path, data: Path, stage: Any, seed: int, device: str, out: Path) -> dict[str, Any]:
    from skelctl.evaluate.linear import evaluate_linear
    from skelctl.evaluate.protocols import resolve_job

    def run() -> dict[str, Any]:
        job = resolve_job([str(encoder)], None, str(data), BENCHMARK, device, seed)
        return evaluate_linear(job, stage, out, seed)

    return timed(run)


def knn_cell(encoder: Path, data: Path, device: str) -> dict[str, Any]:
    from skelctl.evaluate.protocols import resolve_job
    from skelctl.evaluate.retrieval import evaluate_knn

    return timed(lambda: evaluate_knn(resolve_job([str(encoder)], None, str(data), BENCHMARK, device), [1]))


def finetune_cell(encoder: Path, data: Path, stage: Any, fraction: float, seed: int, device: str,
                  out: Path) -> dict[str, Any]:
    from skelctl.evaluate.protocols import resolve_job
    from skelctl.evaluate.semisup import evaluate_semisup

    def run() -> dict[str, Any]:
        job = resolve_job([str(encoder)], None, str(data), BENCHMARK, device, seed)
        return evaluate_semisup(job, stage, fraction, out, seed,
                                protocol="finetune" if fraction == 1.0 else None)

    return timed(run)


def spread(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample standard deviation and range of a cell repeated over seeds."""
    values = [c["top1"] for c in cells]
    return {
        "mean": round(statistics.fmean(values), 2),
        "std": round(statistics.stdev(values), 2) if len(values) > 1 else None,
        "min": min(values), "max": max(values), "n": len(values),
        "seconds": round(sum(c["seconds"] for c in cells), 1), "runs": cells,
    }


# --- one method -------------------------------------------------------------------------------


def bench_method(method: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    from skelctl.data.clips import ClipBank
    from skelctl.data.store import open_dataset
    from skelctl.engine.config import load_preset
    from skelctl.engine.train import pretrain
    from skelctl.evaluate.protocols import scaled_stage

    seeds, device = args.seeds, torch.device(args.device)
    precision = "fp32" if device.type == "cpu" else "auto"
    base = load_preset(preset_path(method), [
        f"data.dataset={data}", f"data.benchmark={BENCHMARK}", f"train.device={args.device}",
        f"train.precision={precision}", f"train.seed={seeds[0]}",
    ])
    folder = args.out / method
    with open_dataset(data) as ds:
        layout, num_classes = ds.layout, len(ds.class_names)
        train_bank = ClipBank.from_dataset(ds, ds.split(BENCHMARK, "train"), device)
    n_train, channels = len(train_bank), train_bank.frames.shape[-1]

    rate = pretrain_rate(base, train_bank, layout, device)
    epochs = args.epochs or epochs_for(args.minutes, n_train, rate)
    cfg = replace(base, train=replace(base.train, epochs=epochs))
    err(f"{method}: trial {rate:.1f} clips/s -> {epochs} epochs"
        + (" (--epochs)" if args.epochs else f" for {args.minutes:g} min"))
    start = time.perf_counter()
    summary = pretrain(cfg, folder / "run", show_progress=False)
    pretrain_seconds = time.perf_counter() - start
    pretrained = folder / "run" / "encoder.pt"

    initial = {s: save_initial_encoder(cfg, layout, channels, s, folder / f"init-{s}" / "encoder.pt")
               for s in seeds}
    calibrated = {s: save_initial_encoder(cfg, layout, channels, s, folder / f"init-bn-{s}" / "encoder.pt",
                                          calibrate_on=train_bank) for s in seeds}
    evaluation = cfg.evaluation
    cells: dict[str, dict[str, Any]] = {"pretrained": {}, "random": {}, "random_bn": {}, "supervised": {}}

    err(f"{method}: linear + 1-NN")
    cells["pretrained"]["linear"] = spread([
        linear_cell(pretrained, data, evaluation.linear, s, args.device, folder / f"linear-pretrained-{s}")
        for s in seeds])
    cells["random"]["linear"] = spread([
        linear_cell(initial[s], data, evaluation.linear, s, args.device, folder / f"linear-random-{s}")
        for s in seeds])
    cells["random_bn"]["linear"] = spread([
        linear_cell(calibrated[s], data, evaluation.linear, s, args.device, folder / f"linear-random-bn-{s}")
        for s in seeds])
    cells["pretrained"]["knn1"] = spread([knn_cell(pretrained, data, args.device)])
    cells["random"]["knn1"] = spread([knn_cell(initial[s], data, args.device) for s in seeds])
    cells["random_bn"]["knn1"] = spread([knn_cell(calibrated[s], data, args.device) for s in seeds])

    err(f"{method}: semi-supervised {SEMISUP_FRACTION:g}")
    semisup = evaluation.semisup_10
    s0 = seeds[0]
    cells["pretrained"]["semisup10"] = spread([finetune_cell(
        pretrained, data, semisup, SEMISUP_FRACTION, s0, args.device, folder / "semisup-pretrained")])
    cells["random"]["semisup10"] = spread([finetune_cell(
        initial[s0], data, semisup, SEMISUP_FRACTION, s0, args.device, folder / "semisup-random")])

    finetune = evaluation.finetune
    if args.supervised_minutes is not None:
        ft_rate = finetune_rate(initial[s0], finetune, cfg.data.frames, train_bank, layout, num_classes, device)
        ft_epochs = epochs_for(args.supervised_minutes, n_train, ft_rate)
        finetune = scaled_stage(finetune, ft_epochs)
    err(f"{method}: supervised from scratch ({finetune.epochs} epochs)")
    cells["supervised"]["full"] = spread([finetune_cell(
        initial[s0], data, finetune, 1.0, s0, args.device, folder / "supervised")])

    return {
        "preset": str(preset_path(method).relative_to(ROOT)),
        "encoder": cfg.method.encoder if method != "isc" else list(cfg.method.pair),
        "frames": cfg.data.frames, "batch_size": cfg.train.batch_size,
        "queue": cfg.method.moco.queue_size, "trial_clips_per_s": round(rate, 2), "epochs": epochs,
        "pretrain_seconds": round(pretrain_seconds, 1), "pretrain_summary": summary,
        "stages": {name: _stage_text(getattr(evaluation, name)) for name in ("linear", "semisup_10")}
        | {"finetune": _stage_text(finetune)},
        "cells": cells,
    }


def _stage_text(stage: Any) -> str:
    crop = "" if stage.train_crop is None else f", train crop {list(stage.train_crop)}"
    return (f"{stage.epochs} epochs, batch {stage.batch_size}, lr {stage.lr:g} x{stage.gamma:g} at "
            f"{list(stage.milestones)}, wd {stage.weight_decay:g}{crop}")


# --- report -----------------------------------------------------------------------------------


ROWS = (
    ("pretrained", "{method} pretrained"),
    ("random", "same encoder, random init"),
    ("random_bn", "same encoder, random init, BN statistics of the train clips"),
)


def _cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "-"
    if cell["n"] == 1:
        return f"{cell['mean']:.1f}"
    return f"{cell['mean']:.1f} ± {cell['std']:.1f} (n={cell['n']}, {cell['min']:.1f}-{cell['max']:.1f})"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"NW-UCLA {BENCHMARK} (train views 1-2: {results['num_train']} clips, test view 3: "
        f"{results['num_test']} clips), top-1 %. `± std (n, range)` = over seeds.",
        "",
        "| method | encoder | linear | 1-NN | semi-sup 10% | supervised 100% (from scratch) |",
        "|---|---|---|---|---|---|",
    ]
    for method, r in results["methods"].items():
        cells = r["cells"]
        for kind, label in ROWS:
            row = cells[kind]
            sup = _cell_text(cells["supervised"]["full"]) if kind == "random" else ""
            lines.append(f"| {label.format(method=method)} | {r['encoder']} | {_cell_text(row.get('linear'))} | "
                         f"{_cell_text(row.get('knn1'))} | {_cell_text(row.get('semisup10'))} | {sup} |")
    lines += ["", "| method | trial clips/s | epochs | pretrain wall s | linear s | 1-NN s | "
              "semi-sup s | supervised s |", "|---|---|---|---|---|---|---|---|"]
    for method, r in results["methods"].items():
        c = r["cells"]
        lines.append(
            f"| {method} | {r['trial_clips_per_s']} | {r['epochs']} | {r['pretrain_seconds']} | "
            f"{sum(c[k]['linear']['seconds'] for k in ('pretrained', 'random', 'random_bn')):.0f} | "
            f"{sum(c[k]['knn1']['seconds'] for k in ('pretrained', 'random', 'random_bn')):.0f} | "
            f"{c['pretrained']['semisup10']['seconds'] + c['random']['semisup10']['seconds']:.0f} | "
            f"{c['supervised']['full']['seconds']:.0f} |")
    lines += ["", "Schedules:"]
    for method, r in results["methods"].items():
        lines.append(f"- {method} ({r['preset']}): frames {r['frames']}, batch {r['batch_size']}, "
                     f"queue {r['queue']}, {r['epochs']} pretraining epochs")
        lines += [f"  - {name}: {text}" for name, text in r["stages"].items()]
    return "\n".join(lines) + "\n"


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=25.0, help="pretraining budget per method")
    parser.add_argument("--epochs", type=int, default=None,
                        help="pretraining epochs per method (overrides --minutes: the same schedule on any machine)")
    parser.add_argument("--supervised-minutes", type=float, default=None,
                        help="budget of supervised training from scratch (default: the preset's epochs)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated; the first seeds pretraining")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", type=Path, default=Path("bench-real-out"))
    parser.add_argument("--data", type=Path, default=None, help="preprocessed NW-UCLA .h5")
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="raw NW-UCLA zip (without --data)")
    parser.add_argument("--methods", default="skelemix,isc")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); 1 is far faster on a CPU other "
                        "jobs share (idle OpenMP threads of an oversubscribed core spin)")
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.methods = [m for m in args.methods.split(",") if m.strip()]
    for method in args.methods:
        if not preset_path(method).is_file():
            parser.error(f"--methods: no preset {preset_path(method)}")
    if not args.seeds:
        parser.error("--seeds: give at least one seed")
    return args


def main(argv: list[str] | None = None) -> int:
    from skelctl.atomic import write_text_atomic
    from skelctl.data.store import open_dataset

    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = prepare_data(args)
    with open_dataset(data) as ds:
        num_train, num_test = len(ds.split(BENCHMARK, "train")), len(ds.split(BENCHMARK, "test"))
    results: dict[str, Any] = {
        "dataset": str(data), "benchmark": BENCHMARK, "num_train": num_train, "num_test": num_test,
        "command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "device": args.device, "torch": torch.__version__,
                    "load_average_start": os.getloadavg()},
        "minutes_per_method": args.minutes, "epochs": args.epochs, "seeds": args.seeds, "methods": {},
    }
    for method in args.methods:
        results["methods"][method] = bench_method(method, data, args)
        write_text_atomic(args.out / "results.json", json.dumps(results, indent=2) + "\n")
    results["machine"]["load_average_end"] = os.getloadavg()
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    write_text_atomic(args.out / "results.json", json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    write_text_atomic(args.out / "results.md", table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
