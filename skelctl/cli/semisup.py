"""`skelctl semisup`: semi-supervised evaluation on a labelled fraction of the train split."""

from __future__ import annotations

from pathlib import Path

import typer

from skelctl.cli.options import (
    BATCH_SIZE,
    BENCHMARK,
    CLIP_GRAD,
    DATA,
    DEVICE,
    ENCODER,
    EPOCHS,
    EVAL_EVERY,
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
    app.command("semisup")(semisup_command)


def semisup_command(
    fraction: float = typer.Option(..., "--fraction", min=0.0, max=1.0, metavar="P",
                                   help="Labelled fraction of each class, e.g. 0.01 or 0.1."),
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
    eval_every: int = EVAL_EVERY,
    clip_grad: float = CLIP_GRAD,
    json_out: bool = JSON,
) -> None:
    """Semi-supervised evaluation: round(p * n_c) labelled clips per class (at least 1,
    seeded; names saved), the whole encoder plus a linear layer fine-tuned with BN in train
    mode (1%: lr 0.05 x0.1 after 40; 10%: lr 0.1 x0.1 after 80; 150 epochs)."""
    from skelctl.evaluate.heads import override
    from skelctl.evaluate.jobs import parse_streams, resolve_job
    from skelctl.evaluate.semisup import evaluate_semisup, semisup_stage

    job = resolve_job(encoder, parse_streams(streams), data, benchmark, device, seed, frames, normalize)
    stage = override(semisup_stage(job.evaluation, fraction), epochs=epochs, lr=lr, batch_size=batch_size)
    result = evaluate_semisup(job, stage, fraction, out, seed, report_best, eval_every, clip_grad)
    print_result(result, json_out)
