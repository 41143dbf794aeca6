"""Command-line options that several commands share, each defined once here; choices come from
the config's own types (`skelctl.engine.config`, `skelctl.data.normalize`), so a choice added
there is offered here. A command module imports what it takes; its own options stay with it.

Options that always travel together form an `OptionGroup` (a dataclass whose field defaults are
the options): a command parameter annotated with a group becomes the group's options on the
command line (`with_option_groups`), and the command receives them as one object, e.g.
`job: JobOptions` -> `--encoder --data --benchmark ... --device`, then `job.resolve()`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_type_hints

import typer

from skelctl.augment.streams import STREAMS
from skelctl.data.normalize import Normalization
from skelctl.engine.config import Benchmark, Precision, Stream

if TYPE_CHECKING:
    from skelctl.engine.config import StageConfig
    from skelctl.evaluate.jobs import EvalJob

__all__ = ["Benchmark", "Normalization", "Precision", "Stream"]  # the choice types, for annotations


def choices(kind: object) -> str:
    """`a, b or c`: a Literal's values for a help text."""
    values = [str(v) for v in get_args(kind)]
    return ", ".join(values[:-1]) + " or " + values[-1]


# --- every command -------------------------------------------------------------------------------

JSON = typer.Option(False, "--json", help="Print the result as JSON on stdout.")
DEVICE = typer.Option("auto", "--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N.")

# --- evaluation commands: linear, semisup, finetune, retrieve -------------------------------------

ENCODER = typer.Option(
    [], "--encoder", "-e", metavar="RUN_DIR|encoder.pt|random:ARCH|raw",
    help="Encoder to evaluate: a run directory, an encoder.pt, random:<arch> (e.g. random:stgcn) "
    "for a random encoder with BatchNorm fitted to the training clips, or raw for the clips' "
    "normalised coordinates themselves (the no-learning floor). Repeat it once per --streams "
    "entry. Default: runs/latest.")
DATA = typer.Option(None, "--data", metavar="DATASET", help="Dataset .h5 file or name in the data "
                    "root (default: the one the encoder was pretrained on).")
BENCHMARK = typer.Option(None, "--benchmark", metavar="NAME", help="Benchmark split, e.g. xsub, "
                         "xview, xset (default: the encoder's).")
STREAMS = typer.Option(None, "--streams", metavar=",".join(STREAMS),
                       help="One stream per --encoder (same order); several streams also report "
                       "their score-level ensemble. Default: each encoder's own stream.")
FRAMES = typer.Option(None, "--frames", min=4, metavar="N", help="Clip length for random:<arch> "
                      "encoders (default: the trained encoder's, else 64); trained encoders use their own.")
NORMALIZE = typer.Option(
    None, "--normalize", metavar="|".join(get_args(Normalization)),
    help="Input coordinates for random:<arch> and raw encoders (default: the trained encoder's, "
    "else none: as stored); trained encoders use their own.")
SEED = typer.Option(0, "--seed", min=0, metavar="N", help="Seed of shuffling, crops, the "
                    "classifier's init and random encoders.")
OUT = typer.Option(None, "--out", metavar="DIR",
                   help="Output directory (default: <run dir>/eval/<protocol>-<benchmark>/).")
EPOCHS = typer.Option(None, "--epochs", min=1, metavar="N",
                      help="Override the protocol's epochs (its milestones and warm-up scale with them).")
LR = typer.Option(None, "--lr", min=0.0, metavar="LR", help="Override the protocol's learning rate.")
BATCH_SIZE = typer.Option(None, "--batch-size", min=1, metavar="N",
                          help="Override the protocol's batch size.")
REPORT_BEST = typer.Option(False, "--report-best", help="Also report the best epoch's test accuracy "
                           "(selected on the test set, labelled as such; the protocol's number is the last epoch's).")
EVAL_EVERY = typer.Option(0, "--eval-every", min=0, metavar="N", help="Also test every N epochs "
                          "(logged in metrics.jsonl); 0: only after the last epoch (1 with --report-best).")
CLIP_GRAD = typer.Option(35.0, "--clip-grad", min=0.0, metavar="NORM", help="Max gradient norm, "
                         "clipped after backward (0: no clipping).")

# --- pretraining and the demo --------------------------------------------------------------------

PRECISION_HELP = f"{choices(Precision)} (auto: bf16 where it is clearly faster than fp32, else fp32)."


# --- option groups -------------------------------------------------------------------------------


class OptionGroup:
    """Base of a dataclass of options (each field's default is its `typer.Option`)."""


def with_option_groups(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command` with each parameter annotated by an `OptionGroup` spelled out as the group's
    options (where the parameter stands); it is called with the group as one object."""
    hints = get_type_hints(command)
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[type, list[str]]] = {}
    for param in inspect.signature(command).parameters.values():
        kind = hints.get(param.name)
        if isinstance(kind, type) and issubclass(kind, OptionGroup):
            fields, field_hints = dataclasses.fields(kind), get_type_hints(kind)
            groups[param.name] = (kind, [f.name for f in fields])
            params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                         annotation=field_hints[f.name]) for f in fields]
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=kind))

    def run(**values: Any) -> Any:
        for name, (kind, names) in groups.items():
            values[name] = kind(**{n: values.pop(n) for n in names})
        return command(**values)

    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__name__, run.__doc__ = command.__name__, command.__doc__
    return run


@dataclass
class JobOptions(OptionGroup):
    """Which encoders (one per stream), dataset, split and input an evaluation works on."""

    encoder: list[str] = ENCODER
    data: str | None = DATA
    benchmark: str | None = BENCHMARK
    streams: str | None = STREAMS
    frames: int | None = FRAMES
    normalize: Normalization | None = NORMALIZE
    seed: int = SEED
    device: str = DEVICE

    def resolve(self) -> EvalJob:
        """The evaluation job these options name (`skelctl.evaluate.jobs.resolve_job`)."""
        from skelctl.evaluate.jobs import parse_streams, resolve_job

        return resolve_job(self.encoder, parse_streams(self.streams), self.data, self.benchmark,
                           self.device, self.seed, self.frames, self.normalize)


@dataclass
class TrainingOptions(OptionGroup):
    """A classifier-training protocol's schedule overrides and its outputs."""

    epochs: int | None = EPOCHS
    lr: float | None = LR
    batch_size: int | None = BATCH_SIZE
    out: Path | None = OUT
    report_best: bool = REPORT_BEST

    def stage(self, stage: StageConfig, **more: Any) -> StageConfig:
        """`stage` with the overrides that were given (`skelctl.evaluate.heads.override`)."""
        from skelctl.evaluate.heads import override

        return override(stage, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, **more)


@dataclass
class FineTuneOptions(OptionGroup):
    """What fine-tuning (semisup, finetune) adds: periodic tests and gradient clipping."""

    eval_every: int = EVAL_EVERY
    clip_grad: float = CLIP_GRAD
