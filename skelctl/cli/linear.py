"""`skelctl linear`: linear evaluation of a frozen encoder (SPEC 6).

The options every evaluation command shares are defined here once and reused by
`semisup`, `finetune` and `retrieve`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from skelctl.console import err, print_json

ENCODER = typer.Option(
    [], "--encoder", "-e", metavar="RUN_DIR|encoder.pt|random:ARCH|raw",
    help="Encoder to evaluate: a run directory, an encoder.pt, random:<arch> (e.g. random:stgcn) "
    "for a random encoder with BatchNorm fitted to the training clips, or raw for the clips' "
    "normalised coordinates themselves (the no-learning floor). Repeat it once per --streams "
    "entry. Default: runs/latest.")
DATA = typer.Option(None, "--data", help="Dataset .h5 file or name in the data root "
                    "(default: the one the encoder was pretrained on).")
BENCHMARK = typer.Option(None, "--benchmark", help="Benchmark split, e.g. xsub, xview, xset "
                         "(default: the encoder's).")
STREAMS = typer.Option(None, "--streams", metavar="joint,motion,bone",
                       help="One stream per --encoder (same order); several streams also report "
                       "their score-level ensemble. Default: each encoder's own stream.")
FRAMES = typer.Option(None, "--frames", min=4, help="Clip length for random:<arch> encoders "
                      "(default: the trained encoder's, else 64); trained encoders use their own.")
NORMALIZE = typer.Option(
    None, "--normalize", metavar="sgn|skelemix|isc|none",
    help="Input coordinates for random:<arch> and raw encoders (default: the trained encoder's, "
    "else none: as stored); trained encoders use their own.")
SEED = typer.Option(0, "--seed", min=0, help="Seed of shuffling, crops, the classifier's init and "
                    "random encoders.")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
OUT = typer.Option(None, "--out", help="Output directory (default: <run dir>/eval/<protocol>-<benchmark>/).")
JSON = typer.Option(False, "--json", help="Print the result as JSON on stdout.")
EPOCHS = typer.Option(None, "--epochs", min=1,
                      help="Override the protocol's epochs (its milestones and warm-up scale with them).")
LR = typer.Option(None, "--lr", min=0.0, help="Override the protocol's learning rate.")
BATCH_SIZE = typer.Option(None, "--batch-size", min=1, help="Override the protocol's batch size.")
REPORT_BEST = typer.Option(False, "--report-best", help="Also report the best epoch's test accuracy "
                           "(selected on the test set, labelled as such; the protocol's number is the last epoch's).")


def print_result(result: dict[str, Any], json_out: bool) -> None:
    """The result: JSON on stdout, or one headline line on stdout and the streams on stderr."""
    if json_out:
        print_json(result)
        return
    streams = result.get("streams", {})
    if len(streams) > 1:
        for stream, numbers in streams.items():
            err.print(f"  {stream:<7} top-1 {numbers['top1']:6.2f}  top-5 {numbers['top5']:6.2f}")
    for stream, numbers in streams.items():
        if "best" in numbers:
            best = numbers["best"]
            err.print(f"  {stream} best epoch {best['epoch']} (selected on the test set): "
                      f"top-1 {best['top1']:.2f}  top-5 {best['top5']:.2f}")
    what = "ensemble" if len(streams) > 1 else next(iter(streams), "")
    typer.echo(f"{result['protocol']} {result['benchmark']} {what}: top-1 {result['top1']:.2f}  "
               f"top-5 {result['top5']:.2f}  (epoch {result['epoch']}; {result['out']})")


def register(app: typer.Typer) -> None:
    @app.command("linear")
    def linear_command(
        encoder: list[str] = ENCODER,
        data: str | None = DATA,
        benchmark: str | None = BENCHMARK,
        streams: str | None = STREAMS,
        frames: int | None = FRAMES,
        normalize: str | None = NORMALIZE,
        epochs: int | None = EPOCHS,
        lr: float | None = LR,
        batch_size: int | None = BATCH_SIZE,
        seed: int = SEED,
        device: str = DEVICE,
        out: Path | None = OUT,
        report_best: bool = REPORT_BEST,
        no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write cached features."),
        standardize: bool | None = typer.Option(
            None, "--standardize/--no-standardize", help="z-score the features with the train "
            "split's statistics before the linear layer (default: the run's protocol; the papers' do not)."),
        json_out: bool = JSON,
    ) -> None:
        """Linear evaluation: frozen encoder (BN in eval mode), a linear classifier on its pooled
        feature; the run's protocol (SkeleMixCLR: 150 epochs, lr 3.0; ISC: 80 epochs, lr 0.1).
        Reports the LAST epoch's top-1/top-5 (percent), per-class accuracy and a confusion matrix."""
        from skelctl.evaluate.linear import evaluate_linear
        from skelctl.evaluate.protocols import override, parse_streams, resolve_job

        job = resolve_job(encoder, parse_streams(streams), data, benchmark, device, seed, frames,
                              normalize)
        stage = override(job.evaluation.linear, epochs=epochs, lr=lr, batch_size=batch_size,
                         standardize=standardize)
        result = evaluate_linear(job, stage, out, seed, report_best, use_cache=not no_cache)
        print_result(result, json_out)
