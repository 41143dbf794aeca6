"""What several commands declare the same way.

--- data commands (preprocess, synth, info, show) ---
`ReadableHelp`: the command class that gives `--help` readable metavars: positional arguments
in the usage line as `KIND RAW` (not `{kind} {raw}`), flags without a `<bool>` type.
`JSON`: the `--json` flag.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption


class ReadableHelp(TyperCommand):
    """A Typer command whose `--help` shows `NAME` for arguments and nothing after a flag."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or param.name.upper()
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
                param.metavar = ""  # a flag takes no value: no `<bool>` in the help
            elif isinstance(param, TyperArgument) and param.metavar is None:
                param.metavar = param.name.upper()
        return params


def json_flag(what: str = "the result") -> Any:
    """The `--json` option: `what` printed as JSON on stdout."""
    return typer.Option(False, "--json", help=f"Print {what} as JSON on stdout.")
