"""A 2-D map of a retrieval gallery: its embeddings projected by PCA (numpy SVD) or t-SNE
(scikit-learn, when installed) and coloured by class.

The index directory (`retrieve --build`, see `skelctl.evaluate.index`) stores no raw feature
file, so the vectors are read back out of the FAISS index: every index type skelctl builds
stores them uncompressed (flat, HNSW-flat, IVF-flat), so they come back exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skelctl.errors import SkelctlError
from skelctl.viz import DEFAULT_DPI, image_format, new_figure, save_figure

METHODS = ("pca", "tsne")
_MIN_TSNE_POINTS = 5


@dataclass(frozen=True)
class Gallery:
    vectors: np.ndarray  # (N, D) float32, in the metadata's order
    labels: np.ndarray  # (N,) int64
    class_names: list[str]
    source: str


def stored_vectors(index: Any, ids: np.ndarray) -> np.ndarray:
    """The (N, D) vectors of a FAISS index, row i being the vector added with id `ids[i]`."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:  # inverted lists are keyed by id: look each one up
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        return ivf.reconstruct_batch(ids)
    if isinstance(index, faiss.IndexIDMap):  # positional storage plus an id per position
        stored_ids = faiss.vector_to_array(index.id_map)
        index = faiss.downcast_index(index.index)
    else:
        stored_ids = np.arange(index.ntotal)
    vectors = index.reconstruct_n(0, index.ntotal)
    order = np.argsort(stored_ids, kind="stable")
    where = order[np.searchsorted(stored_ids[order], ids).clip(max=len(order) - 1)]
    if not np.array_equal(stored_ids[where], ids):
        raise SkelctlError("the FAISS index does not hold the ids its metadata lists: rebuild it")
    return vectors[where]


def read_gallery(directory: Path) -> Gallery:
    """The embeddings, labels and class names of an index directory."""
    from skelctl.evaluate.index import load_index

    gallery = load_index(directory)
    ids = np.asarray(gallery.meta["ids"], dtype=np.int64)
    try:
        vectors = stored_vectors(gallery.index, ids)
    except RuntimeError as exc:  # a FAISS type that keeps only compressed codes
        raise SkelctlError(f"cannot read the vectors back from this index ({str(exc).splitlines()[0]})",
                           directory) from exc
    return Gallery(np.asarray(vectors, np.float32), gallery.labels, list(gallery.class_names), str(directory))


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) coordinates on the two principal axes and the variance share of each.

    Each axis's sign is fixed (largest loading positive) so that the map is deterministic."""
    centred = np.asarray(vectors, np.float64) - vectors.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    axes = axes[:2]
    axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    points = np.zeros((len(vectors), 2))
    points[:, : len(axes)] = centred @ axes.T
    total = float((singular**2).sum())
    share = np.zeros(2)
    share[: len(axes)] = singular[:2] ** 2 / total if total > 0 else 0.0
    return points, share


def tsne_2d(vectors: np.ndarray, seed: int) -> np.ndarray:
    try:
        from sklearn.manifold import TSNE
    except ImportError as exc:
        raise SkelctlError("--method tsne needs scikit-learn, which is not installed "
                           "(pip install scikit-learn), or use --method pca") from exc
    if len(vectors) < _MIN_TSNE_POINTS:
        raise SkelctlError(f"t-SNE needs at least {_MIN_TSNE_POINTS} points, the gallery has {len(vectors)}")
    perplexity = min(30.0, (len(vectors) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(vectors)


def class_colours(count: int) -> np.ndarray:
    """(count, 4) RGBA: qualitative palettes while they last, then an even spread of turbo."""
    from matplotlib import colormaps

    if count <= 10:
        return colormaps["tab10"](np.arange(count))
    if count <= 20:
        return colormaps["tab20"](np.arange(count))
    return colormaps["turbo"](np.linspace(0.0, 1.0, count))


def plot_embedding(directory: Path, out: Path, method: str = "pca", seed: int = 0,
                   dpi: int = DEFAULT_DPI) -> dict[str, Any]:
    """The gallery of `directory` as a 2-D scatter coloured by class, with a legend."""
    if method not in METHODS:
        raise SkelctlError(f"--method {method}: expected one of {', '.join(METHODS)}")
    image_format(out)
    gallery = read_gallery(directory)
    if method == "tsne":
        points, axis_labels = tsne_2d(gallery.vectors, seed), ("t-SNE 1", "t-SNE 2")
    else:
        points, share = pca_2d(gallery.vectors)
        axis_labels = tuple(f"PC{k + 1} ({100 * s:.1f}% of variance)" for k, s in enumerate(share))
    classes = np.unique(gallery.labels)
    legend_columns = math.ceil(len(classes) / 30)
    fig = new_figure(6.0 + 2.2 * legend_columns, 5.5, dpi)
    ax = fig.add_subplot(1, 1, 1)
    colours = class_colours(len(classes))
    size = float(np.clip(600 / math.sqrt(len(points)), 2, 30))
    for colour, label in zip(colours, classes, strict=True):
        chosen = gallery.labels == label
        name = gallery.class_names[label] if 0 <= label < len(gallery.class_names) else str(label)
        ax.scatter(points[chosen, 0], points[chosen, 1], s=size, color=colour, alpha=0.8,
                   linewidths=0, label=f"{label}: {name}")
    ax.set_xlabel(axis_labels[0], fontsize=8)
    ax.set_ylabel(axis_labels[1], fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f"{method.upper() if method == 'pca' else 't-SNE'} of {len(points)} gallery "
                 f"embeddings (dim {gallery.vectors.shape[1]}, {len(classes)} classes)", fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6, ncol=legend_columns,
              markerscale=max(1.0, 20 / size), frameon=False)
    fig.tight_layout()
    save_figure(fig, out)
    return {"out": str(out), "index": str(directory), "method": method, "points": len(points),
            "classes": len(classes)}
