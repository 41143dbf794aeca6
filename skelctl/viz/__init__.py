"""Pictures: skeleton clips (strips, GIFs, 3-D), training curves and embedding maps.

matplotlib is the optional extra `skelctl[viz]`. Figures are built with the object API on an
Agg canvas (never pyplot), so nothing here needs a display or touches global backend state.
Every picture is written through `atomic_path`, so an interrupted render leaves no half file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from skelctl.atomic import atomic_path
from skelctl.errors import SkelctlError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'skelctl[viz]'"
# Suffix -> matplotlib format. The temp file of `atomic_path` has another suffix, so the format
# is always passed explicitly.
IMAGE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpg", ".jpeg": "jpg"}
DEFAULT_DPI = 100


def require_matplotlib() -> None:
    """Fail with the install hint (exit 2) when the `viz` extra is missing; call it first."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise SkelctlError(f"pictures need matplotlib, which is not installed: {INSTALL_HINT}") from exc


def image_format(out: str | Path, allowed: dict[str, str] = IMAGE_FORMATS) -> str:
    """The matplotlib format for OUT's suffix, or a usage error listing the accepted ones."""
    fmt = allowed.get(Path(out).suffix.lower())
    if fmt is None:
        raise SkelctlError(f"unsupported picture type (expected {', '.join(allowed)})", out)
    return fmt


def new_figure(width: float, height: float, dpi: int = DEFAULT_DPI) -> Figure:
    """A figure with its own Agg canvas (inches; no pyplot, no display)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out: str | Path) -> Path:
    """Write `fig` to OUT atomically, in the format its suffix names."""
    fmt = image_format(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=fig.dpi)
    return Path(out)
