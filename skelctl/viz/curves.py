"""Training curves from a run's `metrics.jsonl`: loss and its parts, learning rate, throughput
and the kNN monitor.

The engine writes one JSON object per logged step (`"kind": "step"`) and per epoch
(`"kind": "epoch"`, which may carry `"knn": {"protocol", "top1@k": ...}`). Only keys that are
present are plotted, so runs of every method (and older or partial runs) draw.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skelctl.errors import SkelctlError
from skelctl.viz import DEFAULT_DPI, image_format, new_figure, save_figure

METRICS_FILE = "metrics.jsonl"
# Bookkeeping keys of a record; every other numeric key is a loss part or a method metric.
_BOOKKEEPING = {"kind", "epoch", "step", "lr", "samples_per_s", "seconds", "knn"}
_MAX_EPOCH_MARKS = 50


@dataclass
class Panel:
    """One axes: a title, a y label and named (x, y) series."""

    title: str
    ylabel: str
    series: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    log_y: bool = False


def metrics_path(run: Path) -> Path:
    """RUN_DIR/metrics.jsonl, or RUN itself when it is the metrics file."""
    path = run if run.is_file() else run / METRICS_FILE
    if not path.is_file():
        what = "run directory" if run.is_dir() else "path"
        raise SkelctlError(f"no {METRICS_FILE} in this {what} (expected a run written by "
                           "`skelctl pretrain`)", run)
    return path


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics file. A partial LAST line (a run killed mid-write) is skipped,
    as the engine's reader does; anything else that is not a JSON object is an error."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SkelctlError(f"unreadable metrics file ({exc})", path) from exc
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    records = []
    for k, (n, line) in enumerate(numbered):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if k == len(numbered) - 1 and records:
                break
            raise SkelctlError(f"not a JSON line ({exc.msg})", path, n) from None
        if not isinstance(record, dict):
            raise SkelctlError(f"expected a JSON object, got {type(record).__name__}", path, n)
        records.append(record)
    if not records:
        raise SkelctlError("no metrics logged yet (the file is empty)", path)
    return records


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def build_panels(records: list[dict[str, Any]]) -> list[Panel]:
    """The panels a run's records support, in a fixed order; empty ones are left out.

    Step records give the curves; when a key was only logged per epoch (kNN, or a run logged
    at epoch ends only) the epoch records give it."""
    steps = [r for r in records if r.get("kind") != "epoch"]
    epochs = [r for r in records if r.get("kind") == "epoch"]

    def series(key: str, extract: Any = None) -> tuple[list[float], list[float]] | None:
        for source in (steps, epochs):
            xs, ys = [], []
            for position, record in enumerate(source):
                value = _number(extract(record) if extract else record.get(key))
                if value is not None:
                    x = _number(record.get("step"))
                    xs.append(position if x is None else x)
                    ys.append(value)
            if ys:
                return xs, ys
        return None

    keys: list[str] = []
    for record in records:
        keys += [k for k, v in record.items()
                 if k not in _BOOKKEEPING and k not in keys and _number(v) is not None]
    losses = sorted((k for k in keys if k.startswith("loss")), key=lambda k: (k != "loss", k))
    others = [k for k in keys if not k.startswith("loss")]
    knn_keys: list[str] = []
    for record in epochs:
        knn = record.get("knn")
        if isinstance(knn, dict):
            knn_keys += [k for k, v in knn.items() if k not in knn_keys and _number(v) is not None]

    def knn_value(key: str) -> Any:
        return lambda r: r.get("knn", {}).get(key) if isinstance(r.get("knn"), dict) else None

    wanted = [
        Panel("loss", "loss", {k: series(k) for k in losses}),
        *(Panel(k, k, {k: series(k)}) for k in others),
        Panel("learning rate", "lr", {"lr": series("lr")}, log_y=True),
        Panel("throughput", "samples/s", {"samples/s": series("samples_per_s")}),
        Panel("kNN monitor", "top-1 (%)", {k: series(k, knn_value(k)) for k in knn_keys}),
    ]
    panels = []
    for panel in wanted:
        panel.series = {name: s for name, s in panel.series.items() if s is not None}
        if panel.series:
            panels.append(panel)
    return panels


def plot_curves(run: Path, out: Path, dpi: int = DEFAULT_DPI) -> dict[str, Any]:
    """Draw every panel `build_panels` finds in RUN's metrics into OUT."""
    image_format(out)
    path = metrics_path(run)
    records = read_metrics(path)
    panels = build_panels(records)
    if not panels:
        raise SkelctlError("nothing to plot (no loss, lr, samples_per_s or knn values)", path)
    columns = 1 if len(panels) == 1 else 2
    rows = math.ceil(len(panels) / columns)
    fig = new_figure(5.0 * columns, 2.8 * rows, dpi)
    epoch_steps = [r["step"] for r in records if r.get("kind") == "epoch" and _number(r.get("step")) is not None]
    for k, panel in enumerate(panels):
        ax = fig.add_subplot(rows, columns, k + 1)
        for name, (xs, ys) in panel.series.items():
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, lw=1.3, label=name)
        if panel.log_y and all(y > 0 for _, ys in panel.series.values() for y in ys):
            ax.set_yscale("log")
        if len(epoch_steps) <= _MAX_EPOCH_MARKS:  # faint epoch boundaries
            for step in epoch_steps:
                ax.axvline(step, color="0.85", lw=0.6, zorder=0)
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel(panel.ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(panel.series) > 1:
            ax.legend(fontsize=7)
    epochs = max((r["epoch"] for r in records if _number(r.get("epoch")) is not None), default=None)
    fig.suptitle(f"{path.parent.name}" + (f"  ({epochs} epochs)" if epochs else ""), fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)
    return {"out": str(out), "metrics": str(path), "records": len(records),
            "panels": [p.title for p in panels]}
