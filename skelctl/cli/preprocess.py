"""`skelctl preprocess KIND RAW [-o OUT.h5]`: raw skeleton files -> one dataset file."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import ProgressColumn, Task
from rich.table import Table
from rich.text import Text

from skelctl.console import err, print_json, progress
from skelctl.errors import RuntimeFailure
from skelctl.paths import data_root


class _Throughput(ProgressColumn):
    """files/s from rich's own rate estimate, MB/s from the bytes the run reports."""

    def render(self, task: Task) -> Text:
        files = task.speed or 0.0
        elapsed = task.elapsed or 0.0
        mb = task.fields.get("bytes", 0) / 1e6 / elapsed if elapsed > 0 else 0.0
        return Text(f"{files:6.1f} files/s {mb:6.1f} MB/s", style="progress.data.speed")


@contextlib.contextmanager
def _stop_requests() -> Iterator[threading.Event]:
    """Ctrl-C / SIGTERM set a flag the run checks between files, so it stops at a clean point
    (workers cancelled, temp file removed); an exception raised at an arbitrary instruction can
    be swallowed inside a library callback. A second signal interrupts at once."""
    stop = threading.Event()

    def request(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def register(app: typer.Typer) -> None:
    @app.command("preprocess")
    def preprocess_command(
        kind: str = typer.Argument(
            ..., help="Dataset kind: ntu60, ntu120, pku1, pku2 (and nwucla, msr3d, custom)."),
        raw: Path = typer.Argument(..., help="Folder of raw files (searched recursively; zip "
                                   "archives in it are read in place) or an official zip archive."),
        out: Path | None = typer.Option(None, "-o", "--out", help="Output .h5 file (default: "
                                        "KIND.h5 in $SKELCTL_DATA, else ./data)."),
        bodies: str = typer.Option("denoise", help="Body selection: denoise, energy or first."),
        center: bool = typer.Option(True, "--center/--no-center",
                                    help="Translate to actor 1's spine-mid."),
        align: bool = typer.Option(False, "--align", help="Also rotate frame 0 to a canonical view."),
        workers: int = typer.Option(0, help="Parsing processes, this one included (0: all cores)."),
        strict: bool = typer.Option(False, "--strict", help="Fail (exit 1, no output) on any bad file."),
        json_out: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
        missing_list: Path | None = typer.Option(
            None, help="NTU: missing-skeleton list to apply instead of the official one."),
        keep_missing: bool = typer.Option(
            False, "--keep-missing", help="NTU: keep files named by the missing-skeleton list; "
            "msr3d: keep sequences outside files_used_in_cvpr12_paper.txt."),
        labels: Path | None = typer.Option(None, help="PKU: folder of label files (same stems)."),
        splits: Path | None = typer.Option(None, help="PKU: folder holding the official split files."),
        label_frames: str = typer.Option("inclusive", help="PKU label frames: inclusive "
                                         "([start-1, end)) or halfopen ([start, end))."),
        long_clips: str = typer.Option("center", help="PKU clips over --max-frames: center or truncate."),
        max_frames: int = typer.Option(300, help="PKU: longest clip kept, in frames."),
        layout: str | None = typer.Option(
            None, help="Skeleton layout name or YAML file, for kinds whose files do not fix it."),
        force: bool = typer.Option(
            False, "--force", help="Replace OUT even if it is not a skelctl dataset file."),
    ) -> None:
        """Parse, denoise and normalise raw NTU RGB+D / PKU-MMD skeletons into one HDF5 file."""
        from skelctl.data.preprocess import PreprocessOptions, preprocess

        options = PreprocessOptions(
            bodies=bodies, center=center, align=align, workers=workers, strict=strict,
            missing_list=_text(missing_list), keep_missing=keep_missing, labels=_text(labels),
            splits=_text(splits), label_frames=label_frames, long_clips=long_clips,
            max_frames=max_frames, layout=layout,
        )
        target = out if out is not None else data_root() / f"{kind}.h5"
        with _progress_bar(f"preprocess {kind}", target) as on_progress:
            summary = preprocess(kind, raw, target, options, on_progress, force=force)
        _print_summary(summary)
        if json_out:
            print_json(summary)
        else:
            typer.echo(summary["output"])


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


@contextlib.contextmanager
def _progress_bar(label: str, target: Path) -> Iterator[Callable[[int, int, int], None]]:
    """A files/s + MB/s progress bar on a terminal; the callback it yields updates it and stops
    the run (no output written) once Ctrl-C / SIGTERM was received."""
    bar = progress(_Throughput(), transient=True)
    bar.disable = not err.is_terminal  # logs and pipes get the summary, not bar redraws
    with bar, _stop_requests() as stop:
        task = bar.add_task(label, total=None)

        def on_progress(done: int, total: int, nbytes: int) -> None:
            if stop.is_set():
                raise RuntimeFailure("interrupted; no output written", target)
            bar.update(task, completed=done, total=total, bytes=nbytes)

        yield on_progress


def _print_summary(summary: dict[str, Any]) -> None:
    for line in summary["rejected_files"]:
        err.print(f"[yellow]rejected[/yellow] {escape(line)}", highlight=False, soft_wrap=True)
    table = Table(title=f"preprocess {summary['kind']}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("samples", f"{summary['samples']:,}")
    table.add_row("frames", f"{summary['frames']:,}")
    table.add_row("raw files", f"{summary['files']:,}")
    table.add_row("rejected", f"{summary['rejected']:,}")
    for reason, count in summary["excluded"].items():
        table.add_row(f"excluded ({reason.replace('_', ' ')})", f"{count:,}")
    for bench, parts in summary["splits"].items():
        table.add_row(f"{bench} train / test", f"{parts['train']:,} / {parts['test']:,}")
    table.add_row("time", f"{summary['seconds']:.1f} s with {summary['workers']} worker(s)")
    table.add_row(
        "throughput", f"{summary['files_per_s']:.1f} files/s, {summary['mb_per_s']:.1f} MB/s"
    )
    table.add_row("output", escape(summary["output"]))
    err.print(table)
