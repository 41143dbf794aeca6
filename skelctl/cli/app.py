"""The `skelctl` Typer app. Each `skelctl/cli/<command>.py` module exposing `register(app)` adds
its command; heavy imports (torch, h5py) stay inside command bodies so `--help` is instant."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

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
    """Console entry point: map skelctl errors to one stderr line and an exit code."""
    try:
        app(standalone_mode=False)
    except SkelctlError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
