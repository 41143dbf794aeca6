"""`skelctl finetune`: full fine-tuning on the whole train split (semisup with fraction 1)."""

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
    app.command("finetune")(finetune_command)


def finetune_command(
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
    """Full fine-tuning of encoder + linear layer on every training clip (BN in train mode):
    110 epochs, lr 0.1 with 10 warm-up epochs, x0.1 at 50/70/90, wd 1e-4, nesterov."""
    from skelctl.evaluate.heads import override
    from skelctl.evaluate.jobs import parse_streams, resolve_job
    from skelctl.evaluate.semisup import evaluate_semisup

    job = resolve_job(encoder, parse_streams(streams), data, benchmark, device, seed, frames, normalize)
    stage = override(job.evaluation.finetune, epochs=epochs, lr=lr, batch_size=batch_size)
    result = evaluate_semisup(job, stage, 1.0, out, seed, report_best, eval_every, clip_grad,
                              protocol="finetune")
    print_result(result, json_out)
