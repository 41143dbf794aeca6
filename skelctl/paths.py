"""Where skelctl finds things by name: the data root and the runs root."""

from __future__ import annotations

import os
from pathlib import Path

from skelctl.errors import SkelctlError


def data_root() -> Path:
    """`$SKELCTL_DATA`, default `./data`: where `preprocess` writes `<kind>.h5` and others look."""
    return Path(os.environ.get("SKELCTL_DATA", "data"))


def runs_root() -> Path:
    """`$SKELCTL_RUNS`, default `./runs`: where `pretrain` puts runs and the `latest` link."""
    return Path(os.environ.get("SKELCTL_RUNS", "runs"))


def resolve_dataset(name_or_path: str | Path) -> Path:
    """A dataset given as a path to an .h5 file, or by kind name (`ntu60`) in the data root."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".h5", ".hdf5"} or candidate.exists():
        if not candidate.is_file():
            raise SkelctlError("dataset file not found", candidate)
        return candidate
    by_name = data_root() / f"{name_or_path}.h5"
    if not by_name.is_file():
        raise SkelctlError(
            f"no dataset named '{name_or_path}' in the data root {data_root()} "
            f"(run `skelctl preprocess {name_or_path} RAW` or pass --data FILE.h5)"
        )
    return by_name
