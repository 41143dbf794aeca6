"""`skelctl finetune`: full fine-tuning on the whole train split (semisup with fraction 1)."""

from __future__ import annotations

import typer

from skelctl.cli import options
from skelctl.cli.printing import print_result


def register(app: typer.Typer) -> None:
    app.command("finetune")(options.with_option_groups(finetune_command))


def finetune_command(job: options.JobOptions, training: options.TrainingOptions, fine: options.FineTuneOptions,
                     json_out: bool = options.JSON) -> None:
    """Full fine-tuning of encoder + linear layer on every training clip (BN in train mode):
    110 epochs, lr 0.1 with 10 warm-up epochs, x0.1 at 50/70/90, wd 1e-4, nesterov."""
    from skelctl.evaluate.semisup import evaluate_semisup

    evaluation = job.resolve()
    stage = training.stage(evaluation.evaluation.finetune)
    result = evaluate_semisup(evaluation, stage, 1.0, training.out, job.seed, training.report_best,
                              fine.eval_every, fine.clip_grad, protocol="finetune")
    print_result(result, json_out)
