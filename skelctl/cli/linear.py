"""`skelctl linear`: linear evaluation of a frozen encoder (SPEC 6)."""

from __future__ import annotations

from pathlib import Path

import typer

from skelctl.cli.options import (
    BATCH_SIZE,
    BENCHMARK,
    DATA,
    DEVICE,
    ENCODER,
    EPOCHS,
    FRAMES,
    JSON,
    LR,
    NORMALIZE,
    OUT,
    REPORT_BEST,
    SEED,
    STREAMS,
    Normalization,
)
from skelctl.cli.printing import print_result


def register(app: typer.Typer) -> None:
    app.command("linear")(linear_command)


def linear_command(
    encoder: list[str] = ENCODER,
    data: str | None = DATA,
    benchmark: str | None = BENCHMARK,
    streams: str | None = STREAMS,
    frames: int | None = FRAMES,
    normalize: Normalization | None = NORMALIZE,
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
    from skelctl.evaluate.heads import override
    from skelctl.evaluate.jobs import parse_streams, resolve_job
    from skelctl.evaluate.linear import evaluate_linear

    job = resolve_job(encoder, parse_streams(streams), data, benchmark, device, seed, frames, normalize)
    stage = override(job.evaluation.linear, epochs=epochs, lr=lr, batch_size=batch_size,
                     standardize=standardize)
    print_result(evaluate_linear(job, stage, out, seed, report_best, use_cache=not no_cache), json_out)
