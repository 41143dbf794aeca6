"""`skelctl linear`: linear evaluation of a frozen encoder (SPEC 6)."""

from __future__ import annotations

import typer

from skelctl.cli.options import JSON, JobOptions, TrainingOptions, with_option_groups
from skelctl.cli.printing import print_result


def register(app: typer.Typer) -> None:
    app.command("linear")(with_option_groups(linear_command))


def linear_command(
    job: JobOptions,
    training: TrainingOptions,
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

    evaluation = job.resolve()
    stage = training.stage(evaluation.evaluation.linear, standardize=standardize)
    result = evaluate_linear(evaluation, stage, training.out, job.seed, training.report_best,
                             use_cache=not no_cache)
    print_result(result, json_out)
