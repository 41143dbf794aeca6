"""`skelctl show DATASET SAMPLE -o OUT` / `skelctl show FILE -o OUT`: draw a skeleton clip."""

from __future__ import annotations

from pathlib import Path

import typer

from skelctl.console import err, print_json


def register(app: typer.Typer) -> None:
    @app.command("show")
    def show_command(
        source: str = typer.Argument(..., metavar="DATASET|FILE",
                                     help="A dataset .h5 file or kind name in the data root, or a "
                                     "raw clip: NTU .skeleton, PKU-MMD .txt or .npy array."),
        sample: str | None = typer.Argument(None, metavar="SAMPLE|INDEX",
                                            help="With a dataset: a sample name or 0-based index."),
        out: Path = typer.Option(..., "-o", "--out",
                                 help="Picture to write: .gif animates the clip; .png (.svg, .pdf, "
                                 ".jpg) shows a strip of evenly spaced frames."),
        frames: int | None = typer.Option(None, "--frames", min=1,
                                          help="Frames shown: strip default 8, GIF default all."),
        fps: float = typer.Option(15.0, "--fps", min=0.1, help="GIF frames per second "
                                  "(NTU is recorded at 30)."),
        view: str = typer.Option("front", "--view", help="front (x, y), side (z, y) or top (x, z)."),
        three_d: bool = typer.Option(False, "--3d", help="Draw in 3-D instead of a 2-D view."),
        layout: str = typer.Option("ntu25", "--layout", help=".npy clips: layout name or YAML file."),
        bodies: str = typer.Option("denoise", "--bodies",
                                   help=".skeleton files: body selection (denoise, energy, first)."),
        normalize: str = typer.Option(
            "none", "--normalize", metavar="none|sgn|skelemix|isc",
            help="Draw the clip in the input coordinates a preset's data.normalize gives its "
            "encoder (default: as stored or recorded)."),
        dpi: int = typer.Option(100, "--dpi", min=20, max=600, help="Resolution."),
        json_out: bool = typer.Option(False, "--json", help="Print what was written as JSON on stdout."),
    ) -> None:
        """Draw a clip's skeletons, bones on the layout's graph, one colour per actor."""
        from skelctl.viz import require_matplotlib

        require_matplotlib()
        from skelctl.viz.skeleton import load_clip, normalized_clip, render_clip

        clip = load_clip(source, sample, layout, bodies)
        clip = normalized_clip(clip, normalize)
        summary = render_clip(clip, out, frames, fps, view, three_d, dpi)
        if json_out:
            print_json({**summary, "clip": clip.title})
        else:
            err.print(f"wrote {out} ({clip.title})", highlight=False, markup=False)
