"""skelctl: self-supervised skeleton-based action recognition, from raw files to published protocols."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("skelctl")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"
