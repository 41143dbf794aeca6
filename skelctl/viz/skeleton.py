"""Skeleton clips as pictures: a strip of frames (PNG/SVG/PDF), an animation (GIF), in 2-D
views or 3-D, and the query-and-neighbours figure of `retrieve --show`.

Clips are (T, M, V, C) as the dataset stores them. Bones come from the clip's `Layout`, each
actor has its own colour, and an all-zero body (absent actor) is not drawn. Camera space has x
right, y up, z depth; a view-aligned dataset (`preprocess --align`) has its spine along +z, so
there z is up and y is depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from skelctl.atomic import atomic_path
from skelctl.data.clipfile import CLIP_SUFFIXES, read_clip
from skelctl.data.layout import Layout, get_layout
from skelctl.errors import SkelctlError
from skelctl.viz import DEFAULT_DPI, image_format, new_figure, save_figure

VIEWS = ("front", "side", "top")
ACTOR_COLOURS = ("#1f77b4", "#d62728")  # actor 1 blue, actor 2 red
STRIP_FRAMES = 8


@dataclass(frozen=True)
class ShownClip:
    """A clip to draw and what its title says."""

    joints: np.ndarray  # (T, M, V, C) float32
    layout: Layout
    name: str
    class_name: str | None = None
    aligned: bool = False  # view-aligned: z is up

    @property
    def title(self) -> str:
        return self.name if self.class_name is None else f"{self.name}: {self.class_name}"


@dataclass(frozen=True)
class Projection:
    """Which data channels the picture's axes show: (horizontal, vertical[, 3-D vertical])."""

    channels: tuple[int, ...]
    labels: tuple[str, ...]

    @property
    def three_d(self) -> bool:
        return len(self.channels) == 3


def projection(view: str = "front", three_d: bool = False, aligned: bool = False,
               channels: int = 3) -> Projection:
    """The axes of a view; a 3-D picture puts "up" on matplotlib's vertical z axis."""
    if view not in VIEWS:
        raise SkelctlError(f"--view {view}: expected one of {', '.join(VIEWS)}")
    right, up, depth = (0, 2, 1) if aligned else (0, 1, 2)
    chosen = {"front": (right, up), "side": (depth, up), "top": (right, depth)}[view]
    if three_d:
        chosen = (right, depth, up)
    if max(chosen) >= channels:
        what = "3-D" if three_d else f"the {view} view"
        raise SkelctlError(f"{what} needs depth, but the clip has {channels} coordinates: use --view front")
    return Projection(chosen, tuple("xyz"[c] for c in chosen))


def frame_indices(length: int, count: int | None) -> np.ndarray:
    """`count` evenly spaced frames of a clip (first and last included), or every frame."""
    if count is None or count >= length:
        return np.arange(length)
    if count < 1:
        raise SkelctlError(f"--frames {count}: expected at least 1")
    return np.unique(np.linspace(0, length - 1, count).round().astype(np.int64))


def present_bodies(joints: np.ndarray) -> np.ndarray:
    """(T, M) bool: which bodies hold a skeleton (an absent actor is stored as zeros)."""
    return np.any(joints != 0, axis=(2, 3))


# --- loading ------------------------------------------------------------------------------------


def load_clip(source: str, sample: str | None = None, layout: str = "ntu25",
              bodies: str = "denoise") -> ShownClip:
    """What `skelctl show SOURCE [SAMPLE]` draws: a raw clip file (`clip_from_file`), or sample
    `sample` of a dataset file or kind name in the data root (`clip_from_dataset`)."""
    if Path(source).suffix in CLIP_SUFFIXES:
        if sample is not None:
            raise SkelctlError(f"a raw clip file is one sample: drop '{sample}'", source)
        return clip_from_file(Path(source), layout, bodies)
    from skelctl.data.store import open_dataset
    from skelctl.paths import resolve_dataset

    with open_dataset(resolve_dataset(source)) as ds:
        if sample is None:
            raise SkelctlError(f"which sample? pass a name or an index 0..{ds.num_samples - 1} "
                               "after the dataset", ds.path)
        return clip_from_dataset(ds, sample)


def clip_from_dataset(ds: Any, sample: str) -> ShownClip:
    """Sample `sample` (a name, or a 0-based index) of an open `SkeletonDataset`."""
    n = ds.num_samples
    if sample.lstrip("-").isdigit() and sample not in ds.names:
        index = int(sample)
        if not 0 <= index < n:
            raise SkelctlError(f"sample index {index} outside 0..{n - 1}", ds.path)
    else:
        try:
            index = ds.names.index(sample)
        except ValueError:
            raise SkelctlError(f"no sample named '{sample}' ({n} samples; pass a name or an "
                               f"index 0..{n - 1})", ds.path) from None
    return ShownClip(
        joints=ds.clip(index),
        layout=ds.layout,
        name=f"{ds.names[index]} (#{index})",
        class_name=ds.class_names[int(ds.labels[index])],
        aligned=bool(ds.options.get("align", False)),
    )


def normalized_clip(clip: ShownClip, normalize: str) -> ShownClip:
    """`clip` in the input coordinates of `normalize` (`skelctl.data.normalize`); `isc` puts
    the spine on +z, so it is drawn z-up like a view-aligned dataset."""
    from skelctl.data.normalize import normalize_clip

    if normalize == "none":
        return clip
    joints = normalize_clip(clip.joints, clip.layout, normalize)
    return replace(clip, joints=joints, aligned=normalize == "isc" or clip.aligned)


def clip_from_file(path: Path, layout: str = "ntu25", bodies: str = "denoise") -> ShownClip:
    """A raw clip file read by `read_clip` (an NTU `.skeleton` with bodies selected as
    `preprocess --bodies` does, a PKU-MMD skeleton `.txt`, or a `.npy` array of `layout`), in
    camera space, as recorded; an NTU file with a standard name is titled with its class."""
    if not path.is_file():
        raise SkelctlError("file not found", path)
    if path.suffix not in CLIP_SUFFIXES:
        raise SkelctlError(f"cannot show this file (expected a dataset .h5 or {', '.join(CLIP_SUFFIXES)})", path)
    chosen = get_layout(layout if path.suffix == ".npy" else "ntu25")
    joints = read_clip(path, chosen, {"bodies": bodies})
    return ShownClip(joints, chosen, path.stem, _ntu_class_name(path))


def _ntu_class_name(path: Path) -> str | None:
    """The NTU class an NTU file's name says, None for any other name or file."""
    from skelctl.data.formats import parse_ntu_name
    from skelctl.data.splits import ntu_class_names

    if path.suffix != ".skeleton":
        return None
    try:
        action = parse_ntu_name(path.name).action
    except SkelctlError:  # any file name will do; only the class is lost
        return None
    return ntu_class_names("ntu120")[action - 1]


# --- drawing ------------------------------------------------------------------------------------


def _limits(joints: np.ndarray, proj: Projection) -> np.ndarray:
    """(D, 2) equal-span axis limits around every present joint of `joints` (T, M, V, C)."""
    points = joints[present_bodies(joints)][..., list(proj.channels)].reshape(-1, len(proj.channels))
    if len(points) == 0:
        return np.tile([-1.0, 1.0], (len(proj.channels), 1))
    lo, hi = points.min(axis=0), points.max(axis=0)
    half = max(float((hi - lo).max()) / 2 * 1.15, 0.05)
    centre = (lo + hi) / 2
    return np.stack([centre - half, centre + half], axis=1)


class PosePanel:
    """One axes showing one frame of a clip: per actor a bone collection and joint markers,
    created once and updated in place, so an animation redraws without rebuilding axes."""

    def __init__(self, fig: Any, position: Any, layout: Layout, proj: Projection, limits: np.ndarray):
        self.bones = np.asarray(layout.bones, dtype=np.int64).reshape(-1, 2)
        self.proj = proj
        if proj.three_d:
            from mpl_toolkits.mplot3d.art3d import Line3DCollection

            self.ax = fig.add_subplot(*position, projection="3d")
            # a 3-D collection must start non-empty (autoscaling reads it); limits are set after
            centre = limits.mean(axis=1)
            self.lines = [Line3DCollection([[centre, centre]], colors=c, linewidths=2)
                          for c in ACTOR_COLOURS]
            for lines in self.lines:
                self.ax.add_collection3d(lines)
            self.dots = [self.ax.plot([], [], [], "o", color=c, ms=2)[0] for c in ACTOR_COLOURS]
            self.ax.set_xlim(*limits[0])
            self.ax.set_ylim(*limits[1])
            self.ax.set_zlim(*limits[2])
            self.ax.set_box_aspect((1, 1, 1))
            self.ax.view_init(elev=15, azim=-70)
            for axis, label in zip("xyz", proj.labels, strict=True):  # the scale is shared: no ticks
                getattr(self.ax, f"set_{axis}label")(label, fontsize=7, labelpad=-12)
                getattr(self.ax, f"set_{axis}ticklabels")([])
        else:
            from matplotlib.collections import LineCollection

            self.ax = fig.add_subplot(*position)
            self.ax.set_xlim(*limits[0])
            self.ax.set_ylim(*limits[1])
            self.ax.set_aspect("equal")
            self.ax.set_xticks([])
            self.ax.set_yticks([])
            self.lines = [LineCollection([], colors=c, linewidths=2) for c in ACTOR_COLOURS]
            for lines in self.lines:
                self.ax.add_collection(lines)
            self.dots = [self.ax.plot([], [], "o", color=c, ms=2)[0] for c in ACTOR_COLOURS]

    def show(self, frame: np.ndarray) -> None:
        """Draw `frame` (M, V, C); bodies that are all zeros are hidden."""
        dims = len(self.proj.channels)
        for m, (lines, dots) in enumerate(zip(self.lines, self.dots, strict=True)):
            if m < len(frame) and np.any(frame[m] != 0):
                body = frame[m][:, list(self.proj.channels)]
                segments = np.stack([body[self.bones[:, 0]], body[self.bones[:, 1]]], axis=1)
            else:
                body = np.zeros((0, dims), np.float32)
                segments = np.zeros((0, 2, dims), np.float32)
            lines.set_segments(segments)
            if self.proj.three_d:
                dots.set_data_3d(body[:, 0], body[:, 1], body[:, 2])
            else:
                dots.set_data(body[:, 0], body[:, 1])


def _actor_legend(fig: Any, joints: np.ndarray) -> None:
    """A figure legend naming the actors when a second one appears somewhere in the clip."""
    from matplotlib.lines import Line2D

    present = present_bodies(joints).any(axis=0)
    if present.sum() < 2:
        return
    handles = [Line2D([], [], color=c, lw=2) for c in ACTOR_COLOURS[: len(present)]]
    fig.legend(handles, [f"actor {m + 1}" for m in range(len(handles))], loc="lower center",
               ncol=len(handles), fontsize=7, frameon=False)


def render_strip(clip: ShownClip, out: Path, frames: int = STRIP_FRAMES, view: str = "front",
                 three_d: bool = False, dpi: int = DEFAULT_DPI) -> dict[str, Any]:
    """`frames` evenly spaced frames side by side, one shared scale."""
    proj = projection(view, three_d, clip.aligned, clip.joints.shape[-1])
    shown = frame_indices(len(clip.joints), frames)
    limits = _limits(clip.joints[shown], proj)
    fig = new_figure(1.9 * len(shown), 2.9, dpi)
    for k, t in enumerate(shown):
        panel = PosePanel(fig, (1, len(shown), k + 1), clip.layout, proj, limits)
        panel.show(clip.joints[t])
        panel.ax.set_title(f"frame {t + 1}", fontsize=8)
    fig.suptitle(f"{clip.title}  ({len(clip.joints)} frames)", fontsize=9)
    _actor_legend(fig, clip.joints[shown])
    fig.subplots_adjust(left=0.01, right=0.99, top=0.82, bottom=0.1, wspace=0.05)
    save_figure(fig, out)
    return {"out": str(out), "kind": "strip", "frames": shown.tolist(), "view": _view_name(view, three_d)}


def render_animation(clip: ShownClip, out: Path, fps: float = 15.0, frames: int | None = None,
                     view: str = "front", three_d: bool = False, dpi: int = DEFAULT_DPI) -> dict[str, Any]:
    """A looping GIF of the clip (every frame, or `frames` evenly spaced ones).

    Frames are grabbed from the Agg canvas and assembled by Pillow (what matplotlib's
    PillowWriter does) with the format named explicitly, since the atomic temporary file has no
    .gif suffix for Pillow to go by."""
    from PIL import Image

    if fps <= 0:
        raise SkelctlError(f"--fps {fps}: expected a positive number")
    proj = projection(view, three_d, clip.aligned, clip.joints.shape[-1])
    shown = frame_indices(len(clip.joints), frames)
    fig = new_figure(3.2, 3.6, dpi)
    panel = PosePanel(fig, (1, 1, 1), clip.layout, proj, _limits(clip.joints[shown], proj))
    title = fig.suptitle("", fontsize=8)
    _actor_legend(fig, clip.joints[shown])
    fig.subplots_adjust(left=0.03, right=0.97, top=0.86, bottom=0.08)
    images = []
    for t in shown:
        panel.show(clip.joints[t])
        title.set_text(f"{clip.title}\nframe {t + 1}/{len(clip.joints)}")
        fig.canvas.draw()
        rgba = np.asarray(fig.canvas.buffer_rgba())
        images.append(Image.fromarray(rgba[..., :3].copy()))
    with atomic_path(out) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=round(1000 / fps), loop=0)
    return {"out": str(out), "kind": "animation", "frames": len(shown), "fps": fps,
            "view": _view_name(view, three_d)}


def render_clip(clip: ShownClip, out: Path, frames: int | None = None, fps: float = 15.0,
                view: str = "front", three_d: bool = False, dpi: int = DEFAULT_DPI) -> dict[str, Any]:
    """A GIF animation for a .gif OUT, else a strip of frames (PNG, SVG, PDF, JPEG)."""
    if Path(out).suffix.lower() == ".gif":
        return render_animation(clip, out, fps, frames, view, three_d, dpi)
    image_format(out)  # reject an unknown suffix before drawing anything
    return render_strip(clip, out, STRIP_FRAMES if frames is None else frames, view, three_d, dpi)


def _view_name(view: str, three_d: bool) -> str:
    return "3d" if three_d else view


def draw_query_neighbours(
    query_clip: np.ndarray,
    neighbour_clips: Sequence[np.ndarray],
    titles: Sequence[str],
    layout: Layout,
    out: str | Path,
    frames: int = 6,
    aligned: bool = False,
    view: str = "front",
    dpi: int = DEFAULT_DPI,
) -> Path:
    """One row per clip, query first, each a strip of `frames` evenly spaced frames.

    `titles` names every row (query first, so len(titles) == 1 + len(neighbour_clips)); rows
    share one scale so that sizes compare."""
    clips = [query_clip, *neighbour_clips]
    if len(titles) != len(clips):
        raise ValueError(f"expected {len(clips)} titles (query first), got {len(titles)}")
    image_format(out)
    proj = projection(view, False, aligned, query_clip.shape[-1])
    chosen = [clip[frame_indices(len(clip), frames)] for clip in clips]
    limits = _limits(np.concatenate(chosen), proj)
    columns = max(len(c) for c in chosen)
    fig = new_figure(1.3 * columns, 1.6 * len(clips), dpi)
    for row, (picked, title) in enumerate(zip(chosen, titles, strict=True)):
        for col, frame in enumerate(picked):
            panel = PosePanel(fig, (len(clips), columns, row * columns + col + 1), layout, proj, limits)
            panel.show(frame)
            if col == 0:
                panel.ax.set_title(title, fontsize=7, loc="left",
                                   fontweight="bold" if row == 0 else "normal")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.01, wspace=0.04, hspace=0.3)
    return save_figure(fig, out)
