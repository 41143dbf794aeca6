"""`skelctl pretrain`: self-supervised pretraining from a preset (resumes a started --out)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from skelctl.console import print_json


class Benchmark(str, Enum):
    xsub = "xsub"
    xview = "xview"
    xset = "xset"
    split = "split"  # custom datasets: the labels.csv split column
    random = "random"  # custom datasets: the seeded stratified 80/20 split


class Stream(str, Enum):
    joint = "joint"
    motion = "motion"
    bone = "bone"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class PrecisionChoice(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


def option_overrides(**options: object) -> list[str]:
    """Command-line options as `--set` items (JSON values are valid YAML, so strings stay strings)."""
    out = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        value = value.value if isinstance(value, Enum) else value
        out.append(f"{key}={json.dumps(str(value) if isinstance(value, Path) else value)}")
    return out


def register(app: typer.Typer) -> None:
    @app.command("pretrain")
    def pretrain_command(
        preset: str | None = typer.Option(
            None, "--preset", help="Shipped preset name (skelemix, skeletonclr, isc, isc-intra, demo) "
            "or a YAML file. Default: skelemix, or the stored config when --out holds a run."),
        overrides: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                            help="Override a preset key, e.g. --set optim.lr=0.05 (repeatable)."),
        data: Path | None = typer.Option(None, "--data", help="Dataset .h5 file (default: the preset's dataset in the data root)."),
        benchmark: Benchmark | None = typer.Option(None, "--benchmark", help="Benchmark split to train on."),
        stream: Stream | None = typer.Option(None, "--stream", help="Input stream."),
        out: Path | None = typer.Option(None, "--out", help="Run directory; an existing run there is resumed. "
                                        "Default: runs/<preset>-<dataset>-<benchmark>-<time>/ (runs/latest links to it)."),
        epochs: int | None = typer.Option(None, "--epochs", min=1, help="Number of epochs."),
        device: Device | None = typer.Option(None, "--device", help="Training device."),
        precision: PrecisionChoice | None = typer.Option(None, "--precision", help="Numeric precision (auto: see README)."),
        compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model."),
        seed: int | None = typer.Option(None, "--seed", min=0, help="Random seed."),
        json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON on stdout."),
    ) -> None:
        """Pretrain an encoder self-supervised (SkeleMixCLR+, SkeletonCLR, ISC); torchrun for several processes."""
        from skelctl.engine.train import config_for_run, pretrain

        items = list(overrides) + option_overrides(**{
            "data.dataset": data, "data.benchmark": benchmark, "data.stream": stream,
            "train.epochs": epochs, "train.device": device, "train.precision": precision,
            "train.compile": compile_model, "train.seed": seed,
        })
        cfg = config_for_run(out, preset, items)
        summary = pretrain(cfg, out)
        if json_out and summary is not None:
            print_json(summary)
