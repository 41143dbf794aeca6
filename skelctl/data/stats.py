"""What a dataset file holds, as plain data (`skelctl info`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skelctl.data.store import SkeletonDataset, open_dataset


def dataset_info(path: str | Path) -> dict[str, Any]:
    """Everything `skelctl info` shows about the dataset file `path`, as plain data: samples,
    frames, split sizes, per-class counts, clip-length statistics, rejected files, samples
    holding NaN/inf, preprocessing options and layout."""
    with open_dataset(path) as ds:
        return _summary(ds)


def _summary(ds: SkeletonDataset) -> dict[str, Any]:
    lengths = ds.lengths
    counts = np.bincount(ds.labels, minlength=len(ds.class_names))
    stats = {}
    if len(lengths):
        stats = {
            "min": int(lengths.min()),
            "max": int(lengths.max()),
            "mean": round(float(lengths.mean()), 1),
            "median": float(np.median(lengths)),
            "p95": float(np.percentile(lengths, 95)),
        }
    return {
        "path": str(ds.path),
        "kind": ds.kind,
        "skelctl_version": ds.version,
        "created": ds.created,
        "samples": ds.num_samples,
        "frames": int(lengths.sum()),
        "splits": {
            bench: {part: len(ds.split(bench, part)) for part in ("train", "test")}
            for bench in ds.benchmarks
        },
        "classes": [
            {"label": i, "raw_id": raw_id, "name": name, "samples": int(n)}
            for i, (raw_id, name, n) in enumerate(
                zip(ds.label_map, ds.class_names, counts, strict=True)
            )
        ],
        "length": stats,
        "rejected": [str(r) for r in ds.rejected],
        # every frame is read: a damaged file is reported here, refused where clips are loaded
        "non_finite": [ds.names[i] for i in ds.non_finite_samples()],
        "options": ds.options,
        "layout": ds.layout.to_dict(),
    }
