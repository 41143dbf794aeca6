"""`skelctl demo OUT_DIR`: synth -> preprocess -> pretrain (SkeleMixCLR+, ISC) -> evaluate, beside
randomly initialised encoders. Progress on stderr; the results table (results.md) on stdout, or
results.json with --json."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from skelctl.cli.options import PRECISION_HELP, Precision
from skelctl.console import err, print_json


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)


def demo_command(
    out_dir: Path = typer.Argument(..., metavar="OUT_DIR", help="New or empty folder for everything the demo writes."),
    force: bool = typer.Option(False, "--force", help="Start over in a non-empty OUT_DIR (deletes what an earlier demo wrote there)."),
    size: str = typer.Option("demo", "--size", help="Synthetic data size: demo (2,393 clips, 20 classes) "
                             "or test (144 clips, 12 classes)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1,
                                      help="Pretraining epochs of each method (default: each demo preset's train.epochs)."),
    linear_epochs: int | None = typer.Option(None, "--linear-epochs", min=1,
                                             help="Linear-probe epochs (default: the demo presets' 30)."),
    semisup_epochs: int = typer.Option(15, "--semisup-epochs", min=1, help="Semi-supervised fine-tuning epochs."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the data, the evaluations and the random encoders."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    precision: Precision = typer.Option("auto", "--precision", help="Pretraining precision: " + PRECISION_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print results.json on stdout instead of the table."),
) -> None:
    """Run the whole pipeline on synthetic NTU-60 data in a few CPU minutes: SkeleMixCLR+ and
    ISC pretraining against random encoders (linear, 1-NN retrieval, 10% semi-supervised)."""
    from skelctl.demo import DemoSettings, run_demo

    settings = DemoSettings(size=size, seed=seed, epochs=epochs, linear_epochs=linear_epochs,
                            semisup_epochs=semisup_epochs, device=device, precision=precision)
    summary = run_demo(out_dir, settings, force,
                       say=lambda line: err.print(f"[bold]demo[/bold] {escape(line)}", highlight=False))
    err.print(f"done in {summary['seconds']:.0f} s: {escape(str(out_dir / 'results.md'))}, "
              f"{escape(str(out_dir / 'results.json'))}", highlight=False)
    if json_out:
        print_json(summary)
    else:
        typer.echo((out_dir / "results.md").read_text(), nl=False)
