"""The `skelctl` Typer app. Each `skelctl/cli/<command>.py` module exposing `register(app)` adds
its command; heavy imports (torch, h5py) stay inside command bodies so `--help` is instant."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from rich.markup import escape

from skelctl import __version__
from skelctl.console import err
from skelctl.errors import SkelctlError

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


def main() -> None:
    """Console entry point: usage errors are typer's (exit 2); skelctl errors become one stderr
    line and their exit code (2 bad input, 1 runtime failure)."""
    try:
        app()
    except SkelctlError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        sys.exit(130)
