"""A run directory: everything one pretraining run writes, in one place.

```
RUN/config.yaml              the resolved configuration (what `--out RUN` resumes with)
RUN/metrics.jsonl            one JSON line per logged step and per epoch
RUN/checkpoints/last.pt      newest training state (atomic; last.prev.pt is the one before)
RUN/checkpoints/epoch_N.pt   kept every `train.keep_every_epochs` epochs
RUN/encoder.pt               the primary encoder for downstream commands
RUN/encoder_<name>.pt        every encoder the method exports
RUN/.lock                    while a process writes the run: its pid (skelctl.lock)
```
Runs without `--out` go to `runs/<preset>-<dataset>-<benchmark>-<YYYYmmdd-HHMMSS>/` and
`runs/latest` links to the newest one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from skelctl.atomic import write_text_atomic
from skelctl.errors import SkelctlError
from skelctl.paths import runs_root

_EPOCH_FILE = re.compile(r"epoch_(\d+)\.pt$")


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # --- paths ---
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def last_prev(self) -> Path:
        return self.checkpoints / "last.prev.pt"

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch}.pt"

    @property
    def lock_path(self) -> Path:
        return self.path / ".lock"

    def encoder_path(self, name: str | None = None) -> Path:
        return self.path / ("encoder.pt" if name is None else f"encoder_{name}.pt")

    def epoch_checkpoints(self) -> list[Path]:
        """Kept epoch checkpoints, newest first."""
        if not self.checkpoints.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.checkpoints.iterdir() if (m := _EPOCH_FILE.search(p.name))]
        return [p for _, p in sorted(found, reverse=True)]

    def is_started(self) -> bool:
        """A run directory that already holds a run (its resolved config)."""
        return self.config_path.is_file()

    def has_checkpoint(self) -> bool:
        """Whether any training state was saved (intact or not): else nothing here can resume."""
        return self.last.exists() or self.last_prev.exists() or bool(self.epoch_checkpoints())

    def discard_unstarted(self, created: bool) -> None:
        """Remove what a run that saved no checkpoint wrote, so a corrected rerun on the same
        folder starts clean: the whole folder when this run created it, else skelctl's files."""
        if self.has_checkpoint():
            return
        if created:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for path in (self.config_path, self.metrics_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self.checkpoints.is_dir():
            for leftover in self.checkpoints.glob(".*.tmp"):  # an interrupted save's temp file
                with contextlib.suppress(OSError):
                    leftover.unlink()
            with contextlib.suppress(OSError):
                self.checkpoints.rmdir()

    # --- writing ---
    def prepare(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise SkelctlError("run directory path exists and is not a directory", self.path)
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SkelctlError(f"cannot create the run directory ({exc.strerror or exc})", self.path) from exc

    def write_config(self, text: str) -> None:
        write_text_atomic(self.config_path, text)

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one line; a killed run leaves at worst a partial last line, which readers skip."""
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        records = []
        for line in self.metrics_path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                records.append(json.loads(line))
        return records

    def truncate_metrics(self, step: int) -> None:
        """Keep only records up to global step `step` (what a resumed run is about to redo goes)."""
        if not self.metrics_path.is_file():
            return
        kept = [r for r in self.read_metrics() if r.get("step", 0) <= step]
        write_text_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))


def new_run_dir(preset: str, dataset: str, benchmark: str, root: Path | None = None) -> RunDir:
    """`runs/<preset>-<dataset>-<benchmark>-<YYYYmmdd-HHMMSS>` (a suffix if that second is taken)."""
    root = runs_root() if root is None else root
    dataset_name = Path(dataset).stem if dataset.endswith((".h5", ".hdf5")) else Path(dataset).name
    stem = f"{preset or 'custom'}-{dataset_name}-{benchmark}-{datetime.now():%Y%m%d-%H%M%S}"
    path, n = root / stem, 1
    while path.exists():
        path, n = root / f"{stem}-{n}", n + 1
    return RunDir(path)


def link_latest(run: RunDir, target: str | None = None) -> str | None:
    """Point `<runs root>/latest` at `run` (relative link, replaced atomically), or at `target`
    (a name in the same folder); returns what it pointed at before (None: nothing)."""
    latest = run.path.parent / "latest"
    previous = None
    with contextlib.suppress(OSError):
        previous = os.readlink(latest)
    tmp = run.path.parent / f".latest.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target or run.path.name, tmp)
    os.replace(tmp, latest)
    return previous


def unlink_latest(run: RunDir, previous: str | None) -> None:
    """Undo `link_latest(run)` for a run that was discarded: `latest` points back at `previous`."""
    latest = run.path.parent / "latest"
    with contextlib.suppress(OSError):
        if os.readlink(latest) != run.path.name:
            return  # another run has linked itself since
        if previous is None:
            latest.unlink()
        else:
            link_latest(run, previous)
