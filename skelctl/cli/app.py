"""The `skelctl` Typer app: the explicit list of commands (`COMMANDS`: one module per command,
each exposing `register(app)`), readable `--help` (`HelpCommand`) and `main`, the one place where
a failure becomes output. Heavy imports (torch, h5py) stay inside command bodies so `--help` is
instant; options several commands share live in `skelctl.cli.options`."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup

from skelctl import __version__
from skelctl.cli import (
    demo,
    finetune,
    info,
    linear,
    plot,
    preprocess,
    pretrain,
    retrieve,
    semisup,
    show,
    synth,
)
from skelctl.console import err, print_json
from skelctl.errors import RuntimeFailure, SkelctlError
from skelctl.interrupt import Interrupted, raise_on_signals


def readable_metavars(params: list[Any]) -> None:
    """What `--help` shows after each option: nothing for a flag, `a|b|c` for a choice, else
    the option's own metavar or its type in capitals (never typer's `<bool>` / `{name}`)."""
    for param in params:
        if isinstance(param, TyperArgument):
            param.metavar = param.metavar or param.name.upper()
            param.display_type_rich = lambda ctx: None  # its name says what it is; no `<path>` beside it
        elif param.metavar is not None:
            continue
        elif param.is_flag:
            param.metavar = ""
        elif param.type_descriptor.choices is not None:
            param.metavar = "|".join(str(getattr(c, "value", c)) for c in param.type_descriptor.choices)
        else:
            annotation = param.type_descriptor.annotation
            param.metavar = {int: "INTEGER", float: "NUMBER", Path: "PATH"}.get(annotation, "TEXT")


class HelpCommand(TyperCommand):
    """A command whose help reads `Usage: skelctl show [OPTIONS] DATASET [INDEX]`."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        readable_metavars(params)
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """typer writes a required argument as `{NAME}`: plain `NAME`, as usage lines go."""
        return [piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
                for piece in super().collect_usage_pieces(ctx)]


class HelpGroup(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        readable_metavars(params)
        return params


app = typer.Typer(
    name="skelctl",
    cls=HelpGroup,
    help="Self-supervised skeleton action recognition: raw NTU/PKU files to published protocols.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"skelctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """skelctl: preprocess, synth, pretrain, evaluate, retrieve."""


# the commands, in pipeline order: data in, pretraining, evaluation, pictures, everything at once
COMMANDS = (synth, preprocess, info, show, pretrain, linear, semisup, finetune, retrieve, plot, demo)
for _module in COMMANDS:
    _module.register(app)
for _command in app.registered_commands:
    _command.cls = HelpCommand


def main(argv: list[str] | None = None) -> None:
    """Console entry point, and the ONE place where any failure of any command becomes output:
    one `error: path:line: reason` line on stderr, the exit code (2 bad input or usage, 1 runtime
    failure) and, with --json, `{"ok": false, "error": {...}}` as the only document on stdout."""
    args = list(sys.argv[1:] if argv is None else argv)
    json_out = "--json" in (args[: args.index("--")] if "--" in args else args)
    stdout = sys.stdout
    if json_out:
        sys.stdout = io.StringIO()  # held back: a failure's document replaces it
    failure: SkelctlError | None = None
    try:
        with raise_on_signals():
            code = app(args=args, prog_name="skelctl", standalone_mode=False)
        if code == 130:  # typer's answer to a KeyboardInterrupt raised by a command itself
            failure = RuntimeFailure("interrupted by SIGINT")
    except SystemExit as exc:  # a library's sys.exit: its code, as it was
        code = exc.code
    except BaseException as exc:  # noqa: BLE001 - every failure ends here, as one line
        if type(exc).__name__ == "NoArgsIsHelpError" and getattr(exc, "ctx", None) is not None:
            code = 2  # bare `skelctl`: the help, as before
            sys.stderr.write(exc.ctx.get_help() + "\n")
        else:
            failure = as_failure(exc)
    finally:
        held, sys.stdout = sys.stdout, stdout
    if failure is None:
        if json_out:
            stdout.write(held.getvalue())
            stdout.flush()
        sys.exit(0 if code is None else code if isinstance(code, int) else 1)
    report(failure, json_out)
    sys.exit(failure.exit_code)


def as_failure(exc: BaseException) -> SkelctlError:
    """Any exception as the SkelctlError it means (exit 2: bad input or usage; 1: the rest)."""
    if isinstance(exc, SkelctlError):
        return exc
    if callable(getattr(exc, "format_message", None)):  # Click's usage errors (vendored by typer)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        return SkelctlError(exc.format_message() + hint)
    if isinstance(exc, Interrupted):
        return RuntimeFailure(str(exc))
    if isinstance(exc, (KeyboardInterrupt, typer.Abort)):
        return RuntimeFailure("interrupted by SIGINT")
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        cls = RuntimeFailure if exc.errno in _RUNTIME_ERRNOS else SkelctlError
        return cls(reason, exc.filename)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return RuntimeFailure(f"out of memory ({_first_line(exc)})")
    if os.environ.get("SKELCTL_TRACEBACK"):
        traceback.print_exception(exc)
    return RuntimeFailure(f"internal error: {type(exc).__name__}: {_first_line(exc)} (a bug; "
                          "SKELCTL_TRACEBACK=1 prints where)")


# a full or failing disk, a closed pipe: the job failed (exit 1); other OS errors are bad input
_RUNTIME_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EPIPE, errno.ENOMEM}


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def report(failure: SkelctlError, json_out: bool) -> None:
    """The failure as one stderr line and, with --json, one document on stdout."""
    reason = " ".join(line.strip() for line in failure.reason.splitlines() if line.strip())
    one_line = SkelctlError(reason, failure.path, failure.line).message
    with contextlib.suppress(OSError):  # a closed pipe cannot take the message either
        err.print(f"[red]error:[/red] {escape(one_line)}", highlight=False, soft_wrap=True, emoji=False)
    if json_out:
        with contextlib.suppress(OSError):
            print_json({"ok": False, "error": {"path": failure.path, "line": failure.line,
                                               "reason": reason, "exit_code": failure.exit_code}})
