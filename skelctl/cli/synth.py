"""`skelctl synth KIND OUT_DIR`: write a procedural raw dataset in the official formats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from skelctl.console import err, print_json, progress
from skelctl.errors import SkelctlError


def register(app: typer.Typer) -> None:
    @app.command("synth")
    def synth_command(
        kind: str = typer.Argument(..., help="Dataset kind: ntu60, ntu120, pku1 or pku2."),
        out_dir: Path = typer.Argument(..., help="Folder to write the raw files into (created)."),
        seed: int = typer.Option(0, help="Random seed: the same seed writes byte-identical files."),
        size: str = typer.Option(
            "test",
            help="Size preset: test (12 classes, 4 performers: 144 NTU files) or demo "
            "(NTU: 20 classes, 40 performers, 1 replication: 2,400 files; PKU: 12 videos).",
        ),
        performers: int | None = typer.Option(None, help="Performers (subjects)."),
        classes: int | None = typer.Option(None, help="Number of action classes."),
        actions: str | None = typer.Option(
            None,
            help="Comma-separated class ids instead of --classes (NTU action numbers; "
            "PKU-MMD ids for pku1/pku2).",
        ),
        replications: int | None = typer.Option(
            None, help="NTU: replications per performer (1-2)."
        ),
        cameras: int | None = typer.Option(
            None, "--cameras", "--views", help="NTU cameras C001.. or PKU views L, M, R (1-3)."
        ),
        frames: str | None = typer.Option(
            None, help="Frames per action at 30 fps, MIN-MAX or N (default 40-120)."
        ),
        videos: int | None = typer.Option(
            None, help="PKU: number of videos (each seen from every view)."
        ),
        force: bool = typer.Option(
            False, "--force", help="Write into a non-empty OUT_DIR (same-name files are replaced)."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    ) -> None:
        """Generate animated Kinect-v2 skeletons as genuine NTU RGB+D or PKU-MMD raw files."""
        from skelctl.synth import synth_size, synthesize

        chosen = synth_size(kind, size, performers=performers, classes=classes,
                            actions=_id_list(actions), replications=replications, cameras=cameras,
                            frames=_frame_range(frames), videos=videos)
        with progress(transient=True) as bar:
            task = bar.add_task(f"synth {kind}", total=None)
            summary = synthesize(kind, out_dir, seed, chosen, force=force, on_progress=lambda
                                 done, total: bar.update(task, completed=done, total=total))
        _print_summary(summary)
        if json_out:
            print_json(summary)
        else:
            typer.echo(summary["out_dir"])


def _id_list(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SkelctlError(
            f"option --actions: expected comma-separated integers, got {text!r}"
        ) from None


def _frame_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.split("-")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise SkelctlError(f"option --frames: expected MIN-MAX or N, got {text!r}")
    return values[0], values[-1]


def _print_summary(summary: dict[str, Any]) -> None:
    kind, out = summary["kind"], summary["out_dir"]
    err.print(
        f"[bold]synth {kind}[/bold]: {summary['files']:,} files, {len(summary['actions'])} classes, "
        f"{summary['frames']:,} frames, {summary['bytes'] / 1e6:.1f} MB in {summary['seconds']:.1f} s "
        f"-> {out}",
        highlight=False,
        soft_wrap=True,
    )
    if kind.startswith("ntu"):
        err.print(f"next: skelctl preprocess {kind} {out}", highlight=False, soft_wrap=True)
    else:
        err.print(
            f"next: skelctl preprocess {kind} {out} --labels {out}/label --splits {out}/split",
            highlight=False,
            soft_wrap=True,
        )
