"""`skelctl demo`: the whole pipeline on synthetic data, end to end, in a few CPU minutes.

synth (NTU-60 files) -> preprocess -> pretrain SkeleMixCLR+ (preset `demo`) and ISC (preset
`demo-isc`) -> linear, 1-NN retrieval and 10% semi-supervised evaluation of each pretrained
encoder, of a randomly initialised twin (same architecture, seeded, BatchNorm fitted) and of the
raw input coordinates (`--encoder raw`: no learning at all), so the table shows what
pretraining adds and what any encoder must beat. Every stage calls the function its own command calls (`synthesize`,
`preprocess`, `pretrain`, `evaluate_linear`, `evaluate_knn`, `evaluate_semisup`); the demo only
chooses sizes and collects the numbers.

Layout of OUT_DIR:
```
raw/                         synthetic NTU .skeleton files
synth-ntu60.h5               the preprocessed dataset
runs/<method>/               pretraining run (config.yaml, metrics.jsonl, encoder.pt, eval/)
random/<method>/encoder.pt   the random twin of that run's encoder, and its eval/ outputs
baseline-raw/<method>/eval/  the raw-coordinate baseline's outputs (that run's clip length)
results.json, results.md     the final table
```
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skelctl.atomic import write_text_atomic
from skelctl.errors import SkelctlError

if TYPE_CHECKING:
    from skelctl.engine.config import EvaluationConfig

KIND = "ntu60"
BENCHMARK = "xsub"
SEMISUP_FRACTION = 0.1
METHODS = (("skelemix", "SkeleMixCLR+", "demo"), ("isc", "ISC", "demo-isc"))  # (key, name, preset)
PROTOCOLS = (("linear", "linear"), ("knn", "1-NN"), ("semisup", "semi-sup 10%"))
OUTPUTS = ("raw", "synth-ntu60.h5", "runs", "random", "baseline-raw", "results.json", "results.md")
ENCODERS = ("pretrained", "random", "raw")  # the table's rows per method


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs; the defaults are the shipped demo, tests shrink them."""

    size: str = "demo"  # synth size preset
    seed: int = 0  # synthesis, evaluation and random-twin seed (pretraining keeps its preset seed)
    epochs: int | None = None  # pretraining epochs (None: the presets' own)
    linear_epochs: int | None = None  # None: the presets' (cheap: features are computed once)
    semisup_epochs: int | None = 15  # None: the presets' 30 (fine-tuning is the costly protocol)
    device: str = "cpu"
    benchmark: str = BENCHMARK  # the split pretraining and evaluation use (other datasets: theirs)
    # auto: bf16 where the engine's trial on the model finds it clearly faster than fp32, else fp32
    precision: str = "auto"


def run_demo(out_dir: str | Path, settings: DemoSettings = DemoSettings(), force: bool = False,
             say: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Run the demo into `out_dir` (new or empty, or anything with `force`: it is started over)
    and return the results (also written as results.json and results.md)."""
    from skelctl.engine.config import load_config_file

    out = Path(out_dir)
    _claim(out, force)
    start = time.perf_counter()
    timings: dict[str, float] = {}

    def stage(name: str) -> Callable[[], None]:
        began = time.perf_counter()
        say(f"[{time.perf_counter() - start:5.0f} s] {name}")
        return lambda: timings.__setitem__(name, round(time.perf_counter() - began, 1))

    done = stage("synth ntu60")
    dataset = make_dataset(out, settings)
    done()
    results: dict[str, Any] = {}
    for key, name, preset in METHODS:
        done = stage(f"pretrain {name} (preset {preset})")
        trained = pretrain_method(out, dataset, preset, key, settings)
        run_dir = Path(trained["run_dir"])
        done()
        run_cfg = load_config_file(run_dir / "config.yaml")
        twin = random_twin(run_dir / "encoder.pt", out / "random" / key / "encoder.pt", settings.seed,
                           dataset, settings.benchmark, init=run_cfg.method.init)
        evaluation = run_cfg.evaluation
        results[key] = {"name": name, "preset": preset, "run": str(run_dir),
                        "precision": trained["precision"]}
        for label, spec in (("pretrained", run_dir), ("random", twin), ("raw", None)):
            done = stage(f"evaluate {name} {label}: linear, 1-NN, semi-supervised 10%")
            if spec is None:  # the raw coordinates as that run's encoder sees them
                results[key][label] = evaluate_raw(out / "baseline-raw" / key, run_cfg, dataset,
                                                   evaluation, settings)
            else:
                results[key][label] = evaluate_encoder(spec, dataset, evaluation, settings)
            done()
    summary = {
        "dataset": str(dataset), "benchmark": settings.benchmark, "semisup_fraction": SEMISUP_FRACTION,
        "settings": settings.__dict__, "methods": results, "seconds": round(time.perf_counter() - start, 1),
        "stage_seconds": timings,
    }
    write_text_atomic(out / "results.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(out / "results.md", results_markdown(summary))
    return summary


def _claim(out: Path, force: bool) -> None:
    """A fresh OUT_DIR each time, so results never mix with an older run's. `force` deletes
    only what a demo writes (OUTPUTS), never anything else a mistyped path might hold."""
    if out.exists() and not out.is_dir():
        raise SkelctlError("exists and is not a directory", out)
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise SkelctlError("is not empty (pass a new directory, or --force to start it over)", out)
        import shutil

        for name in OUTPUTS:
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def make_dataset(out: Path, settings: DemoSettings) -> Path:
    """Synthetic raw NTU-60 files, preprocessed into `out/synth-ntu60.h5`."""
    from skelctl.data.preprocess import PreprocessOptions, preprocess
    from skelctl.synth import synth_size, synthesize

    synthesize(KIND, out / "raw", settings.seed, synth_size(KIND, settings.size))
    target = out / "synth-ntu60.h5"
    preprocess(KIND, out / "raw", target, PreprocessOptions())
    return target


def pretrain_method(out: Path, dataset: Path, preset: str, key: str, settings: DemoSettings,
                    overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Pretrain `preset` (plus `--set` style `overrides`) on `dataset` into `out/runs/<key>`;
    returns the run's summary (`run_dir`, the `precision` it trained in, ...)."""
    from skelctl.engine.config import load_preset
    from skelctl.engine.train import pretrain

    # no kNN monitor: the demo evaluates the encoder properly afterwards
    items = [f"data.dataset={json.dumps(str(dataset))}", f"data.benchmark={settings.benchmark}",
             f"train.device={settings.device}", f"train.precision={settings.precision}",
             "train.knn_every=0"]
    if settings.epochs is not None:
        items.append(f"train.epochs={settings.epochs}")
    summary = pretrain(load_preset(preset, [*items, *overrides]), out / "runs" / key)
    assert summary is not None  # one process: it is rank 0
    return summary


def random_twin(encoder_path: Path, out: Path, seed: int, dataset: Path | None = None,
                benchmark: str = BENCHMARK, init: str = "reference") -> Path:
    """A freshly initialised encoder of exactly the pretrained one's architecture (its saved
    config), drawn from `seed`: the from-scratch baseline the pretrained encoder must beat.

    With `dataset`, its BatchNorm statistics are those of `benchmark`'s training clips
    (`calibrate_batchnorm`: no labels), as the pretrained encoder's are: the fair baseline.
    `init` is the run's `method.init` ("pytorch": PyTorch's layer defaults)."""
    from dataclasses import replace

    import torch

    from skelctl.augment.inputs import ClipView
    from skelctl.data.layout import Layout
    from skelctl.data.store import open_dataset
    from skelctl.engine.checkpoint import load_encoder, save_encoder
    from skelctl.evaluate.encoders import batchnorm_note, calibrate_batchnorm, random_encoder

    trained, info = load_encoder(encoder_path)
    encoder = random_encoder(trained.config, seed, init)
    twin = replace(info, method="random", epoch=None, seed=seed, random_twin_of=str(encoder_path))
    if dataset is not None:
        layout = Layout.from_dict(trained.config["layout"])
        view = ClipView(info.frames, info.stream or "joint", layout, info.normalize)
        with open_dataset(dataset) as ds:
            bank = view.load(ds, ds.split(benchmark, "train"), torch.device("cpu"))
        calibrate_batchnorm(encoder, bank, view)
        twin.batchnorm = batchnorm_note(benchmark)
    save_encoder(out, encoder, twin)
    return out


def evaluate_encoder(spec: Path, dataset: Path, evaluation: EvaluationConfig, settings: DemoSettings,
                     protocols: Sequence[str] = ("linear", "knn", "semisup")) -> dict[str, float]:
    """Top-1 (percent) of one encoder (run dir or encoder.pt) on each of `protocols` (linear,
    knn = 1-NN, semisup = 10%), under the schedules `evaluation` gives (the pretrained run's,
    so a random twin gets the same)."""
    from skelctl.evaluate.jobs import resolve_job

    job = resolve_job([str(spec)], data=str(dataset), benchmark=settings.benchmark, device=settings.device,
                      seed=settings.seed)
    return evaluate_job(job, (spec if spec.is_dir() else spec.parent) / "eval", evaluation, settings,
                        protocols)


def evaluate_raw(folder: Path, run_cfg: Any, dataset: Path, evaluation: EvaluationConfig,
                 settings: DemoSettings, protocols: Sequence[str] = ("linear", "knn", "semisup"),
                 ) -> dict[str, float]:
    """The no-learning floor: the run's input clips (its frames and normalisation), flattened,
    under the same protocols; the linear probe z-scores them (their joints differ in scale)."""
    from dataclasses import replace

    from skelctl.evaluate.jobs import resolve_job

    job = resolve_job(["raw"], data=str(dataset), benchmark=settings.benchmark, device=settings.device,
                      seed=settings.seed, frames=run_cfg.data.frames, normalize=run_cfg.data.normalize)
    evaluation = replace(evaluation, linear=replace(evaluation.linear, standardize=True))
    return evaluate_job(job, folder / "eval", evaluation, settings, protocols)


def evaluate_job(job: Any, eval_dir: Path, evaluation: EvaluationConfig, settings: DemoSettings,
                 protocols: Sequence[str] = ("linear", "knn", "semisup")) -> dict[str, float]:
    """Top-1 (percent) of a resolved evaluation job on each of `protocols`; outputs in `eval_dir`."""
    from skelctl.evaluate.heads import override
    from skelctl.evaluate.linear import evaluate_linear
    from skelctl.evaluate.report import write_result
    from skelctl.evaluate.retrieval import evaluate_knn
    from skelctl.evaluate.semisup import evaluate_semisup, semisup_stage

    top1: dict[str, float] = {}
    if "linear" in protocols:
        stage = override(evaluation.linear, epochs=settings.linear_epochs)
        top1["linear"] = evaluate_linear(job, stage, eval_dir / f"linear-{job.benchmark}", settings.seed)["top1"]
    if "knn" in protocols:
        knn = evaluate_knn(job, [1])
        write_result(eval_dir / f"knn-{job.benchmark}", knn)
        top1["knn"] = knn["top1"]
    if "semisup" in protocols:
        stage = override(semisup_stage(evaluation, SEMISUP_FRACTION), epochs=settings.semisup_epochs)
        top1["semisup"] = evaluate_semisup(job, stage, SEMISUP_FRACTION, eval_dir / f"semisup-{job.benchmark}",
                                           settings.seed)["top1"]
    return top1


def results_markdown(summary: dict[str, Any]) -> str:
    """The table: one row per method and encoder, one column per protocol (top-1 %)."""
    head = "| method | encoder | " + " | ".join(label for _, label in PROTOCOLS) + " |"
    lines = [
        f"# skelctl demo: synthetic NTU-60, {summary['benchmark']} (held-out performers), top-1 %",
        "",
        head,
        "|" + "---|" * (2 + len(PROTOCOLS)),
    ]
    for method in summary["methods"].values():
        for label in ENCODERS:
            if label not in method:
                continue
            numbers = method[label]
            cells = " | ".join(f"{numbers[key]:.1f}" for key, _ in PROTOCOLS)
            lines.append(f"| {method['name']} | {label} | {cells} |")
    precisions = ", ".join(f"{m['name']} {m['precision']}" for m in summary["methods"].values())
    lines += ["", f"Total time {summary['seconds']:.0f} s; pretrained in {precisions}. 'random' is the "
              "same architecture, randomly initialised (BatchNorm fitted to the training clips); 'raw' is the input "
              "coordinates themselves, flattened (no learning); all evaluated with the same protocols."]
    return "\n".join(lines) + "\n"
