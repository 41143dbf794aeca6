"""How the evaluation commands print a result: JSON on stdout with --json; else one headline
line on stdout (data) and the details on stderr."""

from __future__ import annotations

from typing import Any

import typer

from skelctl.console import err, print_json


def print_result(result: dict[str, Any], json_out: bool) -> None:
    """A classification protocol's result: the headline and each stream's numbers."""
    if json_out:
        print_json(result)
        return
    streams = result.get("streams", {})
    if len(streams) > 1:
        for stream, numbers in streams.items():
            err.print(f"  {stream:<7} top-1 {numbers['top1']:6.2f}  top-5 {numbers['top5']:6.2f}")
    for stream, numbers in streams.items():
        if "best" in numbers:
            best = numbers["best"]
            err.print(f"  {stream} best epoch {best['epoch']} (selected on the test set): "
                      f"top-1 {best['top1']:.2f}  top-5 {best['top5']:.2f}")
    what = "ensemble" if len(streams) > 1 else next(iter(streams), "")
    typer.echo(f"{result['protocol']} {result['benchmark']} {what}: top-1 {result['top1']:.2f}  "
               f"top-5 {result['top5']:.2f}  (epoch {result['epoch']}; {result['out']})")
