"""`skelctl plot RUN_DIR -o curves.png` / `skelctl plot --embedding INDEX_DIR -o map.png`."""

from __future__ import annotations

from pathlib import Path

import typer

from skelctl.console import err, print_json
from skelctl.errors import SkelctlError


def register(app: typer.Typer) -> None:
    app.command("plot")(plot_command)


def plot_command(
    run: Path | None = typer.Argument(None, metavar="RUN_DIR",
                                      help="Run directory (or its metrics.jsonl) to draw the "
                                      "training curves of."),
    embedding: Path | None = typer.Option(None, "--embedding", metavar="INDEX_DIR",
                                          help="Draw a retrieval index's gallery as a 2-D map "
                                          "coloured by class instead."),
    out: Path = typer.Option(..., "-o", "--out", help="Picture to write (.png, .svg, .pdf, .jpg)."),
    method: str = typer.Option("pca", "--method", help="--embedding projection: pca, or tsne "
                               "(needs scikit-learn)."),
    seed: int = typer.Option(0, "--seed", min=0, help="t-SNE seed."),
    dpi: int = typer.Option(100, "--dpi", min=20, max=600, help="Resolution."),
    json_out: bool = typer.Option(False, "--json", help="Print what was written as JSON on stdout."),
) -> None:
    """Training curves (loss and parts, lr, samples/s, kNN monitor) or an embedding map."""
    if (run is None) == (embedding is None):
        raise SkelctlError("pass either RUN_DIR (training curves) or --embedding INDEX_DIR")
    from skelctl.viz import require_matplotlib

    require_matplotlib()
    if embedding is not None:
        from skelctl.viz.embedding import plot_embedding

        summary = plot_embedding(embedding, out, method, seed, dpi)
    else:
        from skelctl.viz.curves import plot_curves

        summary = plot_curves(run, out, dpi)
    if json_out:
        print_json(summary)
    else:
        err.print(f"wrote {out}", highlight=False, markup=False)
