"""`skelctl pretrain`: self-supervised pretraining from a preset (resumes a started --out)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from skelctl.cli.options import JSON, PRECISION_HELP, Benchmark, Precision, Stream
from skelctl.console import print_json


def option_overrides(**options: object) -> list[str]:
    """Command-line options as `--set` items (JSON values are valid YAML, so strings stay strings)."""
    return [f"{key}={json.dumps(str(value) if isinstance(value, Path) else value)}"
            for key, value in options.items() if value is not None and value is not False]


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain_command)


def pretrain_command(
    preset: str | None = typer.Option(
        None, "--preset", metavar="NAME|FILE", help="Shipped preset name (skelemix, skeletonclr, "
        "isc, isc-intra, demo) or a YAML file. Default: skelemix, or the stored config when --out holds a run."),
    overrides: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                        help="Override a preset key, e.g. --set optim.lr=0.05 (repeatable)."),
    data: Path | None = typer.Option(None, "--data", metavar="DATASET",
                                     help="Dataset .h5 file (default: the preset's dataset in the data root)."),
    benchmark: Benchmark | None = typer.Option(None, "--benchmark", help="Benchmark split to train on "
                                               "(split, random: custom datasets)."),
    stream: Stream | None = typer.Option(None, "--stream", help="Input stream."),
    out: Path | None = typer.Option(None, "--out", metavar="RUN_DIR", help="Run directory; an existing "
                                    "run there is resumed. Default: runs/<preset>-<dataset>-<benchmark>-<time>/ "
                                    "(runs/latest links to it)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, metavar="N", help="Number of epochs."),
    device: str | None = typer.Option(None, "--device", metavar="DEVICE",
                                      help="Training device: auto, cpu, cuda or cuda:N (default: the preset's)."),
    precision: Precision | None = typer.Option(None, "--precision", help="Numeric precision: " + PRECISION_HELP),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    seed: int | None = typer.Option(None, "--seed", min=0, metavar="N", help="Random seed."),
    json_out: bool = JSON,
) -> None:
    """Pretrain an encoder self-supervised (SkeleMixCLR+, SkeletonCLR, ISC); torchrun for several processes."""
    from skelctl.engine.train import config_for_run, pretrain

    items = list(overrides) + option_overrides(**{
        "data.dataset": data, "data.benchmark": benchmark, "data.stream": stream,
        "train.epochs": epochs, "train.device": device, "train.precision": precision,
        "train.compile": compile_model, "train.seed": seed,
    })
    summary = pretrain(config_for_run(out, preset, items), out)
    if json_out and summary is not None:
        print_json(summary)
