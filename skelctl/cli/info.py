"""`skelctl info OUT.h5|NAME`: what a dataset file holds and how it was made."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from skelctl.console import err, print_json
from skelctl.paths import resolve_dataset


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info_command(
        dataset: str = typer.Argument(
            ..., help="A dataset .h5 file, or a kind name in the data root."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print everything as JSON on stdout."),
    ) -> None:
        """Samples per split, class histogram, clip lengths, rejected files, options, layout."""
        from skelctl.data.stats import dataset_info

        report = dataset_info(resolve_dataset(dataset))
        if json_out:
            print_json(report)
        else:
            _print_report(report)


def _print_report(report: dict[str, Any]) -> None:
    overview = Table(title=escape(report["path"]), show_header=False)
    overview.add_column(style="bold")
    overview.add_column()
    layout = report["layout"]
    length = report["length"]
    overview.add_row("kind", report["kind"])
    overview.add_row("samples / frames", f"{report['samples']:,} / {report['frames']:,}")
    for bench, parts in report["splits"].items():
        overview.add_row(f"{bench} train / test", f"{parts['train']:,} / {parts['test']:,}")
    if length:
        overview.add_row(
            "clip length",
            f"min {length['min']}, median {length['median']:g}, mean {length['mean']}, "
            f"p95 {length['p95']:g}, max {length['max']}",
        )
    overview.add_row("layout", escape(f"{layout['name']} ({len(layout['joints'])} joints)"))
    options = ", ".join(f"{k}={v}" for k, v in sorted(report["options"].items()))
    overview.add_row("options", escape(options))
    overview.add_row("rejected files", str(len(report["rejected"])))
    if report["non_finite"]:
        overview.add_row("damaged samples", f"[red]{len(report['non_finite'])} with NaN or "
                         "infinite values[/red]")
    overview.add_row("skelctl", f"{report['skelctl_version']} ({report['created']})")
    err.print(overview)

    classes = Table(title="classes")
    for column in ("label", "raw id", "name", "samples"):
        classes.add_column(column, justify="left" if column == "name" else "right")
    for row in report["classes"]:
        classes.add_row(
            str(row["label"]), str(row["raw_id"]), escape(row["name"]), f"{row['samples']:,}"
        )
    err.print(classes)
    for line in report["rejected"]:
        err.print(f"[yellow]rejected[/yellow] {escape(line)}", highlight=False, soft_wrap=True)
    for name in report["non_finite"]:
        err.print(f"[red]NaN or infinite values[/red] in sample {escape(name)}: the file is "
                  "damaged; commands that read it refuse it", highlight=False, soft_wrap=True)
