"""`skelctl semisup`: semi-supervised evaluation on a labelled fraction of the train split."""

from __future__ import annotations

import typer

from skelctl.cli import options
from skelctl.cli.printing import print_result


def register(app: typer.Typer) -> None:
    app.command("semisup")(options.with_option_groups(semisup_command))


def semisup_command(
    job: options.JobOptions,
    training: options.TrainingOptions,
    fine: options.FineTuneOptions,
    fraction: float = typer.Option(..., "--fraction", min=0.0, max=1.0, metavar="P",
                                   help="Labelled fraction of each class, e.g. 0.01 or 0.1."),
    json_out: bool = options.JSON,
) -> None:
    """Semi-supervised evaluation: round(p * n_c) labelled clips per class (at least 1,
    seeded; names saved), the whole encoder plus a linear layer fine-tuned with BN in train
    mode (1%: lr 0.05 x0.1 after 40; 10%: lr 0.1 x0.1 after 80; 150 epochs)."""
    from skelctl.evaluate.semisup import evaluate_semisup, semisup_stage

    evaluation = job.resolve()
    stage = training.stage(semisup_stage(evaluation.evaluation, fraction))
    result = evaluate_semisup(evaluation, stage, fraction, training.out, job.seed, training.report_best,
                              fine.eval_every, fine.clip_grad)
    print_result(result, json_out)
