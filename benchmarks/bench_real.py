"""Learning on REAL data: self-supervised pretraining against its baselines, NW-UCLA and MSR Action3D.

Datasets: NW-UCLA cross-view (`xview`: train views 1-2, test view 3) and MSR Action3D cross-subject
(`xsub`: the paper's 557 sequences, odd subjects train), preprocessed from tests/fixtures/ unless
`--data-nwucla` / `--data-msr3d` give built files. Methods: `presets/small-<method>.yaml` with
`data.dataset` / `data.benchmark` set per dataset. For each dataset x method:

1. Pretrain once per `--pretrain-seeds` seed (`train.seed`). Budget: the preset's own sizing
   (its epochs, `train.min_steps` and `moco.queue_fraction`, fitted to the training split by the
   engine); `--steps S`: S steps (whole epochs; the preset's warm-up and milestones kept at the
   same fractions of the run); `--minutes M`: S from a short trial of the step rate. Precision:
   fp32 on CPU (auto on CUDA) unless `--precision` says otherwise. Recorded: wall seconds,
   epochs, steps, the queue size the engine used, the precision it ran.
2. Evaluate every row with the same protocols, the preset's `evaluation` stages:
   - `raw`: the normalised input coordinates, flattened (`--encoder raw` at the preset's frames
     and `data.normalize`); the linear probe z-scores them. Linear over `--seeds`, 1-NN once.
   - `random`: random twins of the exported encoder (`skelctl.demo.random_twin`: its
     architecture freshly drawn from the seed, BatchNorm statistics fitted on the normalised
     training clips); one per `--seeds` seed (linear and 1-NN each), semi-sup 10% on the first.
   - `pretrained`: each pretraining's `encoder.pt` (ISC: its sequence/GRU encoder); linear over
     `--seeds`, 1-NN and semi-sup 10% (first seed) once per pretraining.
   - `pretrained (graph encoder)`, ISC only: its `encoder_graph.pt`, linear and 1-NN.
   - `supervised` (`--supervised`): the first seed's twin (BatchNorm not fitted) fine-tuned on
     100% of the labels (the preset's `evaluation.finetune`), first seed.
   Protocols: linear = top-1 of a linear classifier on frozen features (`skelctl linear`);
   1-NN = cosine nearest neighbour, train split as gallery (`retrieve --eval`); semi-sup 10% =
   encoder + linear layer fine-tuned on 10% of each class's labels (`semisup --fraction 0.1`).
3. Check the targets (means over seeds, and per pretraining seed where it has one): (a)
   pretrained 1-NN > raw 1-NN; (b) pretrained linear >= random linear + 10; (c) NW-UCLA:
   pretrained linear >= 80; (d) ISC: its GRU's linear >= its random twin's + 10; (e) NW-UCLA:
   supervised >= 88.

Usage: python benchmarks/bench_real.py [--datasets nwucla,msr3d] [--methods skelemix,isc]
       [--minutes M | --steps S] [--seeds 0,1,2] [--pretrain-seeds 0] [--supervised]
       [--threads N] [--out DIR] [--device cpu|cuda] [--precision fp32|bf16|auto]
       [--data-nwucla H5] [--data-msr3d H5] [--quick]
Writes DIR/results.json (everything, machine included) and DIR/results.md (tables, targets).
`--quick` shrinks the evaluation schedules for smoke runs: its numbers are NOT a measurement.
Tests import `bench_method` (one dataset x method) with a short `Settings`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
SEMISUP_FRACTION = 0.1
TRIAL_STEPS = 2  # timed steps (after one warm-up) that turn a time budget into steps
QUICK_EPOCHS = {"linear": 10, "semisup10": 2, "finetune": 1}  # --quick: smoke runs only


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    benchmark: str
    zip: Path


DATASETS = {
    "nwucla": DatasetSpec("NW-UCLA", "xview", ROOT / "tests" / "fixtures" / "nw_ucla.zip"),
    "msr3d": DatasetSpec("MSR Action3D", "xsub", ROOT / "tests" / "fixtures" / "msr_action3d.zip"),
}


@dataclass(frozen=True)
class Settings:
    """What one benchmark runs; the defaults are the full measurement."""

    out: Path
    seeds: tuple[int, ...] = (0, 1, 2)  # linear-probe seeds; initialisation seeds of `random`
    pretrain_seeds: tuple[int, ...] = (0,)
    steps: int | None = None  # pretraining steps (None: the preset's sizing, or `minutes`)
    minutes: float | None = None  # pretraining time budget, turned into steps by a trial
    supervised: bool = False
    device: str = "cpu"
    precision: str | None = None  # pretraining `train.precision`; None: fp32 on CPU, auto elsewhere
    quick: bool = False  # shrunk evaluation schedules: a smoke run, not a measurement


def preset_path(method: str) -> Path:
    return ROOT / "presets" / f"small-{method}.yaml"


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- data and configuration ---------------------------------------------------------------------


def prepare_dataset(kind: str, given: Path | None, out: Path) -> Path:
    """`given`, else the dataset preprocessed from its fixture zip into `out/data/<kind>.h5`."""
    if given is not None:
        return given
    from skelctl.data.preprocess import PreprocessOptions, preprocess

    target = out / "data" / f"{kind}.h5"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        preprocess(kind, DATASETS[kind].zip, target, PreprocessOptions())
    return target


def method_config(method: str, kind: str, data: Path, settings: Settings, seed: int) -> Any:
    """The preset with this dataset, device, precision and pretraining seed (no kNN monitor)."""
    from skelctl.engine.config import load_preset

    precision = settings.precision or ("fp32" if torch.device(settings.device).type == "cpu" else "auto")
    return load_preset(preset_path(method), [
        f"data.dataset={json.dumps(str(data))}", f"data.benchmark={DATASETS[kind].benchmark}",
        f"train.device={settings.device}", f"train.precision={precision}", f"train.seed={seed}",
        "train.knn_every=0",
    ])


def step_budget(cfg: Any, clips: int, steps: int) -> Any:
    """`cfg` trained for at least `steps` steps in whole epochs over `clips` clips, warm-up and
    milestones at the same fractions of the run (`train.epochs=1` would leave the warm-up
    longer than the run once the engine stretched the epochs)."""
    spe = max(1, clips // cfg.train.batch_size)
    epochs = max(1, math.ceil(steps / spe))
    ratio = epochs / cfg.train.epochs
    warmup = min(round(cfg.optim.warmup_epochs * ratio), epochs - 1)
    milestones = tuple(sorted({max(1, round(m * ratio)) for m in cfg.optim.milestones}))
    return replace(cfg, train=replace(cfg.train, epochs=epochs, min_steps=steps),
                   optim=replace(cfg.optim, warmup_epochs=warmup,
                                 milestones=tuple(m for m in milestones if m < epochs)))


# --- turning minutes into steps -----------------------------------------------------------------


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


def pretrain_rate(cfg: Any, bank: Any, layout: Any, device: torch.device) -> float:
    """Clips/s of one pretraining step (views, forward, backward, SGD) on a throw-away model."""
    from skelctl.methods import build_method

    method = build_method(cfg.method, layout, cfg.data.frames, cfg.data.stream,
                          in_channels=bank.frames.shape[-1], normalize=cfg.data.normalize).to(device).train()
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


# --- pretraining ---------------------------------------------------------------------------------


def pretrain_cell(cfg: Any, bank: Any, layout: Any, settings: Settings, folder: Path) -> dict[str, Any]:
    """Pretrain `cfg` (budgeted by `settings`) into `folder`; what it cost and ran."""
    from skelctl.engine.train import fit_to_dataset, pretrain

    budget: dict[str, Any] = {"budget": "preset"}
    if settings.minutes is not None:
        fitted = fit_to_dataset(cfg, len(bank))
        rate = pretrain_rate(fitted, bank, layout, bank.device)
        steps = max(1, int(settings.minutes * 60 * rate / cfg.train.batch_size))
        cfg = step_budget(cfg, len(bank), steps)
        budget = {"budget": f"{settings.minutes:g} min", "trial_clips_per_s": round(rate, 2),
                  "steps_asked": steps}
    elif settings.steps is not None:
        cfg = step_budget(cfg, len(bank), settings.steps)
        budget = {"budget": f"{settings.steps} steps", "steps_asked": settings.steps}
    fitted = fit_to_dataset(cfg, len(bank))
    err(f"  pretrain seed {cfg.train.seed}: {fitted.train.epochs} epochs of "
        f"{len(bank) // cfg.train.batch_size} steps, queue {fitted.method.moco.queue_size}")
    start = time.perf_counter()
    summary = pretrain(cfg, folder, show_progress=False)
    seconds = time.perf_counter() - start
    assert summary is not None  # one process: rank 0
    return {**budget, "seed": cfg.train.seed, "seconds": round(seconds, 1),
            "minutes": round(seconds / 60, 2), "epochs": summary["epochs"], "steps": summary["steps"],
            "queue": fitted.method.moco.queue_size, "warmup_epochs": fitted.optim.warmup_epochs,
            "milestones": list(fitted.optim.milestones), "final_loss": summary["final_loss"],
            "precision": summary["precision"], "run_dir": summary["run_dir"]}


# --- encoders ------------------------------------------------------------------------------------


def encoder_arch(path: Path) -> str:
    from skelctl.engine.checkpoint import load_encoder

    encoder, _ = load_encoder(path)
    return str(encoder.config["name"])


# --- evaluation cells ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalContext:
    """Where and how every row of one dataset x method is evaluated."""

    data: Path
    benchmark: str
    device: str
    stages: dict[str, Any]  # linear, semisup10, finetune
    frames: int | None = None  # raw only (trained encoders carry their own)
    normalize: str | None = None


def eval_stages(evaluation: Any, quick: bool) -> dict[str, Any]:
    """The preset's stages; `quick` cuts their epochs (and min_steps): smoke runs only."""
    from skelctl.evaluate.heads import override

    stages = {"linear": evaluation.linear, "semisup10": evaluation.semisup_10,
              "finetune": evaluation.finetune}
    if quick:
        stages = {k: override(s, epochs=min(s.epochs, QUICK_EPOCHS[k]), min_steps=0)
                  for k, s in stages.items()}
    return stages


def _job(spec: str, ctx: EvalContext, seed: int = 0) -> Any:
    from skelctl.evaluate.jobs import resolve_job

    return resolve_job([spec], data=str(ctx.data), benchmark=ctx.benchmark, device=ctx.device,
                       seed=seed, frames=ctx.frames, normalize=ctx.normalize)


def _timed(run: Callable[[], dict[str, Any]], **tags: Any) -> dict[str, Any]:
    start = time.perf_counter()
    result = run()
    return {"top1": round(float(result["top1"]), 2), "seconds": round(time.perf_counter() - start, 1),
            **tags}


def linear_cell(spec: str, ctx: EvalContext, seed: int, out: Path, standardize: bool = False,
                **tags: Any) -> dict[str, Any]:
    from skelctl.evaluate.linear import evaluate_linear

    stage = replace(ctx.stages["linear"], standardize=True) if standardize else ctx.stages["linear"]
    return _timed(lambda: evaluate_linear(_job(spec, ctx, seed), stage, out, seed), seed=seed, **tags)


def knn_cell(spec: str, ctx: EvalContext, **tags: Any) -> dict[str, Any]:
    from skelctl.evaluate.retrieval import evaluate_knn

    return _timed(lambda: evaluate_knn(_job(spec, ctx), [1]), **tags)


def finetune_cell(spec: str, ctx: EvalContext, fraction: float, seed: int, out: Path,
                  **tags: Any) -> dict[str, Any]:
    from skelctl.evaluate.semisup import evaluate_semisup

    if fraction == 1.0:
        stage, protocol = ctx.stages["finetune"], "finetune"
    else:
        stage, protocol = ctx.stages["semisup10"], None
    return _timed(lambda: evaluate_semisup(_job(spec, ctx, seed), stage, fraction, out, seed,
                                           protocol=protocol), seed=seed, **tags)


def encoder_cells(spec: Path, ctx: EvalContext, linear_seeds: Sequence[int], semisup_seed: int | None,
                  folder: Path, **tags: Any) -> dict[str, list[dict[str, Any]]]:
    """Linear per seed, 1-NN once, semi-sup 10% once (with `semisup_seed`) of one encoder file."""
    cells: dict[str, list[dict[str, Any]]] = {
        "linear": [linear_cell(str(spec), ctx, s, folder / f"linear-{s}", **tags) for s in linear_seeds],
        "knn1": [knn_cell(str(spec), ctx, **tags)],
    }
    if semisup_seed is not None:
        cells["semisup10"] = [finetune_cell(str(spec), ctx, SEMISUP_FRACTION, semisup_seed,
                                            folder / "semisup-0.1", **tags)]
    return cells


def raw_cells(ctx: EvalContext, seeds: Sequence[int], folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The raw-coordinate floor (`ctx.frames`, `ctx.normalize`): z-scored linear per seed, 1-NN."""
    return {"linear": [linear_cell("raw", ctx, s, folder / f"linear-{s}", standardize=True) for s in seeds],
            "knn1": [knn_cell("raw", ctx)]}


def spread(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample standard deviation and range of a cell repeated over seeds."""
    values = [c["top1"] for c in cells]
    return {
        "mean": round(statistics.fmean(values), 2),
        "std": round(statistics.stdev(values), 2) if len(values) > 1 else None,
        "min": min(values), "max": max(values), "n": len(values),
        "seconds": round(sum(c["seconds"] for c in cells), 1), "runs": cells,
    }


def _merge(into: dict[str, list[dict[str, Any]]], more: dict[str, list[dict[str, Any]]]) -> None:
    for key, cells in more.items():
        into.setdefault(key, []).extend(cells)


def _row(cells: dict[str, list[dict[str, Any]]], **extra: Any) -> dict[str, Any]:
    return {**extra, **{key: spread(c) for key, c in cells.items()},
            "seconds": round(sum(c["seconds"] for v in cells.values() for c in v), 1)}


# --- one dataset x method ------------------------------------------------------------------------


ROWS = ("raw", "random", "pretrained", "pretrained_graph", "supervised")
ROW_LABELS = {"raw": "raw coordinates", "random": "random init, BN fitted", "pretrained": "pretrained",
              "pretrained_graph": "pretrained (graph encoder)", "supervised": "supervised from scratch"}


def bench_method(method: str, kind: str, data: Path, settings: Settings,
                 raw_cache: dict[Any, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Pretrain `method` on dataset `kind` (built at `data`) and evaluate every row; `raw_cache`
    shares the raw row between methods of the same frames and normalisation."""
    from skelctl.data.clips import ClipBank
    from skelctl.data.store import open_dataset
    from skelctl.demo import random_twin
    from skelctl.engine.train import fit_to_dataset
    from skelctl.evaluate.heads import sized_stage
    from skelctl.evaluate.report import schedule_description
    from skelctl.evaluate.semisup import stratified_subset

    spec = DATASETS[kind]
    seeds, first = tuple(settings.seeds), settings.seeds[0]
    folder = settings.out / kind / method
    device = torch.device(settings.device)
    cfg = method_config(method, kind, data, settings, settings.pretrain_seeds[0])
    with open_dataset(data) as ds:
        layout = ds.layout
        bank = ClipBank.from_dataset(ds, ds.split(spec.benchmark, "train"), device, cfg.data.normalize)
    ctx = EvalContext(data, spec.benchmark, settings.device, eval_stages(cfg.evaluation, settings.quick))
    rows: dict[str, dict[str, Any]] = {}

    err(f"{kind} x {method}: pretraining")
    runs = []
    for p in settings.pretrain_seeds:
        runs.append(pretrain_cell(method_config(method, kind, data, settings, p), bank, layout, settings,
                                  folder / f"pretrain-{p}"))

    pretrained_file = Path(runs[0]["run_dir"]) / "encoder.pt"  # the architecture every twin copies

    err(f"{kind} x {method}: raw coordinates")
    key = (kind, cfg.data.frames, cfg.data.normalize, seeds, settings.quick)
    if raw_cache is not None and key in raw_cache:
        rows["raw"] = {**raw_cache[key], "shared": True}
    else:
        raw_ctx = replace(ctx, frames=cfg.data.frames, normalize=cfg.data.normalize)
        rows["raw"] = _row(raw_cells(raw_ctx, seeds, folder / "raw"), arch="raw",
                           frames=cfg.data.frames, normalize=cfg.data.normalize)
        if raw_cache is not None:
            raw_cache[key] = rows["raw"]

    err(f"{kind} x {method}: random init, BN fitted (seeds {list(seeds)})")
    random: dict[str, list[dict[str, Any]]] = {}
    for s in seeds:
        path = random_twin(pretrained_file, folder / f"random-{s}" / "encoder.pt", s, data,
                           spec.benchmark, cfg.method.init)
        _merge(random, encoder_cells(path, ctx, [s], s if s == first else None, path.parent, init_seed=s))
    rows["random"] = _row(random, arch=encoder_arch(folder / f"random-{first}" / "encoder.pt"))

    err(f"{kind} x {method}: pretrained")
    pretrained: dict[str, list[dict[str, Any]]] = {}
    graph: dict[str, list[dict[str, Any]]] = {}
    for p, run in zip(settings.pretrain_seeds, runs, strict=True):
        run_dir = Path(run["run_dir"])
        _merge(pretrained, encoder_cells(run_dir / "encoder.pt", ctx, seeds, first,
                                         folder / f"eval-{p}" / "encoder", pretrain_seed=p))
        if method == "isc":
            _merge(graph, encoder_cells(run_dir / "encoder_graph.pt", ctx, seeds, None,
                                        folder / f"eval-{p}" / "encoder_graph", pretrain_seed=p))
    rows["pretrained"] = _row(pretrained, arch=encoder_arch(pretrained_file))
    if graph:
        rows["pretrained_graph"] = _row(graph, arch=encoder_arch(pretrained_file.with_name("encoder_graph.pt")))

    if settings.supervised:
        err(f"{kind} x {method}: supervised from scratch")
        scratch = random_twin(pretrained_file, folder / f"scratch-{first}" / "encoder.pt", first,
                              init=cfg.method.init)
        rows["supervised"] = _row({"finetune": [finetune_cell(str(scratch), ctx, 1.0, first,
                                                              scratch.parent / "finetune")]},
                                  arch=encoder_arch(scratch))
    seconds = {row: r["seconds"] for row, r in rows.items() if not r.get("shared")}
    fitted = fit_to_dataset(cfg, len(bank))
    labelled = len(stratified_subset(bank.labels.cpu().numpy(), SEMISUP_FRACTION, first))
    return {
        "preset": str(preset_path(method).relative_to(ROOT)), "dataset": kind,
        "benchmark": spec.benchmark, "frames": cfg.data.frames, "normalize": cfg.data.normalize,
        "batch_size": cfg.train.batch_size, "queue": fitted.method.moco.queue_size,
        "pretraining": runs, "rows": rows, "eval_seconds": seconds,
        "stages": {k: schedule_description(sized_stage(s, labelled if k == "semisup10" else len(bank)))
                   for k, s in ctx.stages.items()},
        "quick": settings.quick,
        "targets": targets(kind, method, rows),
    }


# --- targets -------------------------------------------------------------------------------------


def _mean(rows: dict[str, Any], row: str, protocol: str) -> float | None:
    cell = rows.get(row, {}).get(protocol)
    return None if cell is None else cell["mean"]


def _target(name: str, value: float | None, need: float | None, strict: bool = False,
            by_seed: list[tuple[int, float, float]] | None = None) -> dict[str, Any]:
    """`value` against `need`; `by_seed`: (pretraining seed, its value, its need) for the same
    check per pretraining, so a mean that passes on the strength of some seeds shows it."""
    if value is None or need is None:
        return {"target": name, "status": "not measured"}

    def passes(v: float, n: float) -> bool:
        return v > n if strict else v >= n

    met = passes(value, need)
    out = {"target": name, "value": value, "need": need, "status": "met" if met else "missed",
           "short_by": None if met else round(need - value, 2)}
    if by_seed:
        out["by_seed"] = [{"seed": p, "value": v, "need": n, "met": passes(v, n)} for p, v, n in by_seed]
    return out


def _by_pretraining(rows: dict[str, Any], protocol: str) -> dict[int, float]:
    """Pretraining seed -> the pretrained row's mean on `protocol` over that run's cells."""
    runs: dict[int, list[float]] = {}
    for cell in rows.get("pretrained", {}).get(protocol, {}).get("runs", []):
        runs.setdefault(cell["pretrain_seed"], []).append(cell["top1"])
    return {p: round(statistics.fmean(v), 2) for p, v in runs.items()}


def _twin_margin_by_seed(rows: dict[str, Any], linear_by_seed: dict[int, float],
                         margin: float) -> list[tuple[int, float, float]]:
    """(seed, pretrained linear, its twin's linear + margin) where the twin of that seed exists."""
    twins = {c["init_seed"]: c["top1"] for c in rows.get("random", {}).get("linear", {}).get("runs", [])}
    return [(p, v, round(twins[p] + margin, 2)) for p, v in linear_by_seed.items() if p in twins]


def targets(kind: str, method: str, rows: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets for one dataset x method, on means over seeds."""
    pre_lin, pre_knn = _mean(rows, "pretrained", "linear"), _mean(rows, "pretrained", "knn1")
    rnd_lin = _mean(rows, "random", "linear")
    twin_need = None if rnd_lin is None else round(rnd_lin + 10, 2)
    raw_knn = _mean(rows, "raw", "knn1")
    knn_by_seed = None if raw_knn is None else [
        (p, v, raw_knn) for p, v in _by_pretraining(rows, "knn1").items()]
    linear_by_seed = _by_pretraining(rows, "linear")
    twin_by_seed = _twin_margin_by_seed(rows, linear_by_seed, 10.0)
    out = [
        _target("(a) pretrained 1-NN > raw 1-NN", pre_knn, raw_knn, strict=True, by_seed=knn_by_seed),
        _target("(b) pretrained linear >= random linear + 10", pre_lin, twin_need, by_seed=twin_by_seed),
    ]
    if kind == "nwucla":
        out.append(_target("(c) NW-UCLA pretrained linear >= 80", pre_lin, 80.0,
                           by_seed=[(p, v, 80.0) for p, v in linear_by_seed.items()]))
    if method == "isc":
        name = "(d) ISC GRU linear >= its random twin + 10"
        arch = rows.get("pretrained", {}).get("arch")
        if arch != "gru":
            out.append({"target": name, "status": "missed", "short_by": None,
                        "note": f"the evaluated encoder is {arch}, not the GRU"})
        else:
            out.append(_target(name, pre_lin, twin_need, by_seed=twin_by_seed))
    if kind == "nwucla":
        out.append(_target("(e) NW-UCLA supervised >= 88", _mean(rows, "supervised", "finetune"), 88.0))
    return out


def target_text(t: dict[str, Any]) -> str:
    if t["status"] == "not measured":
        return "not measured"
    if t.get("note"):
        return f"missed: {t['note']}"
    if t["status"] == "met":
        text = f"met ({t['value']:.1f} vs {t['need']:.1f})"
    else:
        text = f"missed by {t['short_by']:.1f} ({t['value']:.1f} vs {t['need']:.1f})"
    if t.get("by_seed"):
        seeds = t["by_seed"]
        missed = ", ".join(f"seed {c['seed']} {c['value']:.1f} vs {c['need']:.1f}" for c in seeds if not c["met"])
        text += f"; per pretraining: {sum(c['met'] for c in seeds)} of {len(seeds)} met"
        text += f" (missed: {missed})" if missed else ""
    return text


# --- report --------------------------------------------------------------------------------------


def cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return ""
    if cell["n"] == 1:
        return f"{cell['mean']:.1f}"
    return f"{cell['mean']:.1f} ± {cell['std']:.1f} (n={cell['n']}, {cell['min']:.1f}-{cell['max']:.1f})"


def markdown(results: dict[str, Any]) -> str:
    lines: list[str] = []
    if results["settings"]["quick"]:
        lines += ["**--quick: evaluation schedules shrunk for a smoke run. These numbers are NOT a "
                  "measurement.**", ""]
    m = results["machine"]
    lines += [f"Machine: {m['cpu_model']} ({m['cpus']} CPUs), device {m['device']}, torch {m['torch']} "
              f"with {m['torch_threads']} thread(s); load average {m['load_average_start'][0]:.1f} at "
              f"the start, {m.get('load_average_end', [float('nan')])[0]:.1f} at the end; total "
              f"{results.get('total_seconds', 0) / 60:.1f} min.", ""]
    for d in results["datasets"].values():
        lines += [f"## {d['name']} {d['benchmark']} (train {d['num_train']} clips, test {d['num_test']}, "
                  f"{d['num_classes']} classes), top-1 %",
                  "", "`± std (n, range)`: over seeds (linear-probe seed; initialisation seed for `random`).",
                  "", "| method | row | linear | 1-NN | semi-sup 10% | supervised 100% |", "|---|---|---|---|---|---|"]
        for method, r in d["methods"].items():
            for row in ROWS:
                if row not in r["rows"]:
                    continue
                cells = r["rows"][row]
                label = f"{ROW_LABELS[row]} ({cells['arch']})"
                lines.append(f"| {method} | {label} | {cell_text(cells.get('linear'))} | "
                             f"{cell_text(cells.get('knn1'))} | {cell_text(cells.get('semisup10'))} | "
                             f"{cell_text(cells.get('finetune'))} |")
        lines += ["", "| method | pretrain seed | budget | epochs | steps | queue | precision | pretraining min | "
                  "eval s: raw | random | pretrained | graph | supervised |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for method, r in d["methods"].items():
            ev = r["eval_seconds"]
            for run in r["pretraining"]:
                lines.append(
                    f"| {method} | {run['seed']} | {run['budget']} | {run['epochs']} | {run['steps']} | "
                    f"{run['queue']} | {run['precision']} | {run['minutes']:.1f} | "
                    + " | ".join(f"{ev[k]:.0f}" if k in ev else "-" for k in
                                 ("raw", "random", "pretrained", "pretrained_graph", "supervised"))
                    + " |")
        lines += ["", "Targets (means over seeds):"]
        for method, r in d["methods"].items():
            for t in r["targets"]:
                lines.append(f"- {method} {t['target']}: {target_text(t)}")
        lines += ["", "Schedules (after min_steps):"]
        for method, r in d["methods"].items():
            lines.append(f"- {method} ({r['preset']}): frames {r['frames']}, normalize {r['normalize']}, "
                         f"batch {r['batch_size']}, queue {r['queue']}")
            lines += [f"  - {name}: {_stage_text(s)}" for name, s in r["stages"].items()]
        lines.append("")
    return "\n".join(lines)


def _stage_text(s: dict[str, Any]) -> str:
    crop = "" if s["train_crop"] is None else f", train crop {s['train_crop']}"
    rotate = f", rotate {s['rotate']:g}" if s["rotate"] else ""
    return (f"{s['epochs']} epochs, batch {s['batch_size']}, lr {s['lr']:g} x{s['gamma']:g} at "
            f"{s['milestones']}, warm-up {s['warmup_epochs']}, wd {s['weight_decay']:g}{crop}{rotate}")


def machine_info(device: str) -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        names = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name:")]
        model = names[0] if names else model
    info = {"cpu_model": model, "cpus": os.cpu_count(), "platform": platform.platform(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": device,
            "load_average_start": list(os.getloadavg())}
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


# --- command line --------------------------------------------------------------------------------


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in text.split(",") if s.strip())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--datasets", default="nwucla,msr3d", help=f"of {', '.join(DATASETS)}")
    parser.add_argument("--methods", default="skelemix,isc", help="presets/small-<method>.yaml each")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None,
                        help="pretraining budget per run, turned into steps by a trial (default: the preset's sizing)")
    budget.add_argument("--steps", type=int, default=None,
                        help="pretraining steps per run (whole epochs; default: the preset's sizing)")
    parser.add_argument("--seeds", default="0,1,2",
                        help="linear-probe seeds, random-init seeds; the first seeds semi-sup and supervised")
    parser.add_argument("--pretrain-seeds", default="0", help="one pretraining per seed (train.seed)")
    parser.add_argument("--supervised", action="store_true", help="also fine-tune from scratch on 100%% labels")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); 1 is far faster on a CPU other "
                        "jobs share (idle OpenMP threads of an oversubscribed core spin)")
    parser.add_argument("--out", type=Path, default=Path("bench-real-out"))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=("fp32", "bf16", "auto"), default=None,
                        help="pretraining precision (default: fp32 on CPU, auto on CUDA; "
                        "auto picks bf16 on a CPU with native bf16); evaluation stays fp32")
    for kind, spec in DATASETS.items():
        parser.add_argument(f"--data-{kind}", type=Path, default=None,
                            help=f"preprocessed {spec.name} .h5 (default: built from {spec.zip.name} into OUT/data)")
    parser.add_argument("--quick", action="store_true",
                        help="shrink evaluation schedules (smoke runs: NOT a measurement)")
    args = parser.parse_args(argv)
    args.datasets = [d for d in args.datasets.split(",") if d.strip()]
    args.methods = [m for m in args.methods.split(",") if m.strip()]
    for kind in args.datasets:
        if kind not in DATASETS:
            parser.error(f"--datasets: unknown {kind!r} (expected {', '.join(DATASETS)})")
    for method in args.methods:
        if not preset_path(method).is_file():
            parser.error(f"--methods: no preset {preset_path(method)}")
    try:
        args.seeds, args.pretrain_seeds = _ints(args.seeds), _ints(args.pretrain_seeds)
    except ValueError as exc:
        parser.error(f"seeds: {exc}")
    if not args.seeds or not args.pretrain_seeds:
        parser.error("--seeds / --pretrain-seeds: give at least one seed")
    if args.steps is not None and args.steps < 1 or args.minutes is not None and args.minutes <= 0:
        parser.error("--steps / --minutes must be positive")
    for kind in args.datasets:
        if (args.out / kind).exists():
            parser.error(f"--out {args.out} already holds {kind} results: pass a new folder")
    return args


def main(argv: list[str] | None = None) -> int:
    from skelctl.atomic import write_text_atomic
    from skelctl.data.store import open_dataset

    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = Settings(out=args.out, seeds=args.seeds, pretrain_seeds=args.pretrain_seeds,
                        steps=args.steps, minutes=args.minutes, supervised=args.supervised,
                        device=args.device, precision=args.precision, quick=args.quick)
    start = time.perf_counter()
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
        "settings": {**settings.__dict__, "out": str(settings.out)},
        "machine": machine_info(args.device), "datasets": {},
    }

    def save() -> None:
        write_text_atomic(args.out / "results.json", json.dumps(results, indent=2) + "\n")

    raw_cache: dict[Any, dict[str, Any]] = {}
    for kind in args.datasets:
        spec = DATASETS[kind]
        data = prepare_dataset(kind, getattr(args, f"data_{kind}"), args.out)
        with open_dataset(data) as ds:
            d = results["datasets"][kind] = {
                "name": spec.name, "benchmark": spec.benchmark, "path": str(data),
                "num_train": len(ds.split(spec.benchmark, "train")),
                "num_test": len(ds.split(spec.benchmark, "test")),
                "num_classes": len(ds.class_names), "methods": {}}
        for method in args.methods:
            d["methods"][method] = bench_method(method, kind, data, settings, raw_cache)
            save()
    results["machine"]["load_average_end"] = list(os.getloadavg())
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    save()
    table = markdown(results)
    write_text_atomic(args.out / "results.md", table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
