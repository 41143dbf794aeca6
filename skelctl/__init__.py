"""skelctl: self-supervised skeleton-based action recognition, from raw files to published protocols."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """`__version__`, read from the installed metadata on first use: importing
    importlib.metadata costs ~30 ms, which every worker process and quick command would pay."""
    if name != "__version__":
        raise AttributeError(f"module 'skelctl' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("skelctl")
    except PackageNotFoundError:  # running from a source tree without installation
        found = "0.0.0+local"
    globals()["__version__"] = found
    return found
