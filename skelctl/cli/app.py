"""The `skelctl` Typer app. Each `skelctl/cli/<command>.py` module exposing `register(app)` adds
its command; heavy imports (torch, h5py) stay inside command bodies so `--help` is instant."""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import os
import pkgutil
import sys
import traceback

import typer
from rich.markup import escape

from skelctl import __version__
from skelctl.console import err, print_json
from skelctl.errors import RuntimeFailure, SkelctlError
from skelctl.interrupt import Interrupted, raise_on_signals

app = typer.Typer(
    name="skelctl",
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


def _register_commands() -> None:
    import skelctl.cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name in {"app", "common"}:
            continue
        module = importlib.import_module(f"skelctl.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


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
