"""Retrieval: build a gallery index from a split, answer queries from raw or array files, and the
k-NN evaluation protocol (SPEC 6).

A query goes through exactly what the gallery went through: the dataset's stored preprocessing
(body selection for raw NTU files, centring, view alignment), the same crop, frame count and
stream, the same encoder (checked by hash). Centring and alignment are idempotent, so a clip
that is already normalised (e.g. one read back from the dataset) is unchanged by them.

Query arrays (.npy, float) come in one of three documented layouts:
`(T, V, C)` one body; `(T, M, V, C)` as the dataset stores clips; `(C, T, V, M)` as models read them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from skelctl.augment.inputs import ClipView
from skelctl.console import err
from skelctl.data.clipfile import read_clip
from skelctl.data.layout import Layout
from skelctl.engine.knn import class_votes, vote_weights
from skelctl.engine.precision import resolve_device
from skelctl.errors import RuntimeFailure, SkelctlError
from skelctl.evaluate.encoders import LoadedEncoder, open_encoder
from skelctl.evaluate.features import ClipSource, FeatureCache, embed
from skelctl.evaluate.index import (
    RECALL_QUERIES,
    GalleryIndex,
    build_faiss,
    default_params,
    index_lock,
    load_index,
    measure_recall,
    normalized,
    save_index,
)
from skelctl.evaluate.jobs import EvalJob, clip_source
from skelctl.evaluate.report import write_result

QUERY_SUFFIXES = (".skeleton", ".npy")
KNN_PROTOCOL = ("knn-cosine (ISC/CMD): L2-normalised backbone features of centre-cropped clips, "
                "gallery = train split, queries = test split; top1 = 1-NN accuracy, "
                "top5 = a correct label among the 5 nearest")


# --- queries ------------------------------------------------------------------------------------


def expand_queries(items: Sequence[str], stdin: TextIO | None = None) -> list[Path]:
    """Query paths from `--query` values: files, folders (their .skeleton/.npy files, sorted)
    and `-` (paths read from stdin, one per line)."""
    paths: list[Path] = []
    for item in items:
        if item == "-":
            lines = (stdin or sys.stdin).read().splitlines()
            paths.extend(Path(line.strip()) for line in lines if line.strip())
        elif Path(item).is_dir():
            found = sorted(p for p in Path(item).iterdir() if p.suffix in QUERY_SUFFIXES)
            if not found:
                raise SkelctlError(f"no {' or '.join(QUERY_SUFFIXES)} files in this folder", item)
            paths.extend(found)
        else:
            paths.append(Path(item))
    if not paths:
        raise SkelctlError("no query given (--query FILE|FOLDER|-)")
    for path in paths:
        if not path.is_file():
            raise SkelctlError("query file not found", path)
    return paths


def load_query(path: Path, layout: Layout, options: dict[str, Any], persons: int,
               channels: int) -> np.ndarray:
    """Read and preprocess one query like the gallery's dataset was (its stored `options`)."""
    if path.suffix not in QUERY_SUFFIXES:
        raise SkelctlError(f"unsupported query file (expected {' or '.join(QUERY_SUFFIXES)})", path)
    return read_clip(path, layout, options, persons=persons, channels=channels)


def embed_clips(loaded: LoadedEncoder, view: ClipView, clips: Sequence[np.ndarray], crop: float,
                device: torch.device) -> np.ndarray:
    """(Q, D) unit-norm features of preprocessed clips (T_i, M, V, C)."""
    features = embed(loaded.encoder.to(device), view.bank_of(clips, device), view, crop).cpu().numpy()
    _refuse_non_finite(features, lambda row: f"query {row + 1}")
    return normalized(features)


@dataclass
class Match:
    rank: int
    name: str
    label: int
    class_name: str
    similarity: float

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "name": self.name, "label": self.label,
                "class": self.class_name, "similarity": round(self.similarity, 6)}


def search(gallery: GalleryIndex, features: np.ndarray, k: int) -> list[list[Match]]:
    sims, positions = gallery.search(features, k)
    return [
        [Match(r + 1, gallery.names[p], int(gallery.labels[p]), gallery.class_names[gallery.labels[p]],
               float(s)) for r, (s, p) in enumerate(zip(row_s, row_p, strict=True)) if p >= 0]
        for row_s, row_p in zip(sims, positions, strict=True)
    ]


def format_matches(query: Path, matches: Sequence[Match]) -> str:
    """A plain-text table (stdout is data: no colour, no wrapping)."""
    name_w = max([len("name"), *(len(m.name) for m in matches)])
    class_w = max([len("class"), *(len(m.class_name) for m in matches)])
    lines = [f"query: {query}", f"{'rank':>4}  {'name':<{name_w}}  {'class':<{class_w}}  similarity"]
    lines += [f"{m.rank:>4}  {m.name:<{name_w}}  {m.class_name:<{class_w}}  {m.similarity:10.4f}"
              for m in matches]
    return "\n".join(lines)


# --- galleries ----------------------------------------------------------------------------------


def gallery_features(source: ClipSource, loaded: LoadedEncoder, view: ClipView,
                     indices: np.ndarray, crop: float, label: str) -> np.ndarray:
    """Unit-norm features of dataset samples `indices` (cached on disk when the cache allows)."""
    features = source.features(loaded, view, indices, crop, label).numpy()
    _refuse_non_finite(features, lambda row: f"sample {indices[row]} ({source.ds.names[indices[row]]})")
    return normalized(features)


def _refuse_non_finite(features: np.ndarray, describe: Callable[[int], str]) -> None:
    """Fail (exit 1) before any index or result is written from NaN or infinite features."""
    rows = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if len(rows):
        raise RuntimeFailure(f"the encoder's feature of {describe(int(rows[0]))} is NaN or "
                             f"infinite ({len(rows)} of {len(features)}); nothing written")


def build_gallery(
    source: ClipSource,
    loaded: LoadedEncoder,
    view: ClipView,
    benchmark: str,
    part: str,
    crop: float,
    index_type: str,
    seed: int = 0,
) -> GalleryIndex:
    """Embed split `part` and index it; an approximate index gets its recall@k against exact
    search measured on up to 1,000 clips of the other part (the real query distribution)."""
    ds = source.ds
    indices = ds.split(benchmark, part)
    features = gallery_features(source, loaded, view, indices, crop, part)
    params = default_params(index_type, len(features))
    index = build_faiss(features, indices, index_type, params)
    recall = None
    if index_type != "exact":
        other = ds.split(benchmark, "test" if part == "train" else "train")
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(other, size=min(RECALL_QUERIES, len(other)), replace=False))
        queries = gallery_features(source, loaded, view, sample, crop, "recall queries")
        recall = measure_recall(index, features, indices, queries)
    _, persons, _, channels = ds.clip(0).shape
    meta = {
        "index_type": index_type,
        "params": params,
        "recall": recall,
        "dim": int(features.shape[1]),
        "count": len(indices),
        "ids": indices.tolist(),
        "names": [ds.names[i] for i in indices],
        "labels": ds.labels[indices].tolist(),
        "class_names": list(ds.class_names),
        "encoder": {"source": loaded.source, "sha256": loaded.sha256,
                    "arch": loaded.encoder.config.get("name"), "seed": loaded.info.seed},
        "dataset": str(source.dataset_path),
        "benchmark": benchmark,
        "split": part,
        "preprocess_options": ds.options,
        "layout": ds.layout.to_dict(),
        "persons": int(persons),
        "channels": int(channels),
        "frames": view.frames,
        "stream": view.stream,
        "normalize": view.normalize,
        "crop": crop,
    }
    return GalleryIndex(index, meta, torch.from_numpy(features) if index_type == "exact" else None)


def index_encoder(gallery: GalleryIndex, spec: str | None, where: Path | None) -> LoadedEncoder:
    """The encoder that built `gallery` (`spec`, else the one recorded), checked by hash."""
    meta = gallery.meta
    recorded = meta["encoder"]
    loaded = open_encoder(
        spec or recorded["source"], layout=Layout.from_dict(meta["layout"]),
        in_channels=meta["channels"], num_persons=meta["persons"], frames=meta["frames"],
        seed=recorded.get("seed") or 0)
    if loaded.sha256 != recorded["sha256"]:
        raise SkelctlError(
            f"the index was built by another encoder (sha256 {recorded['sha256'][:12]}, "
            f"{loaded.source} has {loaded.sha256[:12]}): rebuild it with --build", where)
    return loaded


def gallery_view(gallery: GalleryIndex) -> ClipView:
    meta = gallery.meta
    return ClipView(meta["frames"], meta["stream"], Layout.from_dict(meta["layout"]),
                    meta.get("normalize", "none"))


def run_index(run_dir: Path, source: ClipSource, loaded: LoadedEncoder, view: ClipView,
              benchmark: str, crop: float) -> GalleryIndex:
    """`<run>/index/`: the run's gallery, built on first use and rebuilt when the run's
    encoder.pt has changed since (pretraining goes on writing it)."""
    directory = run_dir / "index"
    if (directory / "meta.json").is_file():
        gallery = load_index(directory)
        if gallery.meta["encoder"]["sha256"] == loaded.sha256 and gallery.meta["stream"] == view.stream:
            return gallery
        err.print(f"the run's encoder changed since {directory} was built: rebuilding it")
    else:
        err.print(f"building the run's index {directory} (first use)")
    with index_lock(directory):
        gallery = build_gallery(source, loaded, view, benchmark, "train", crop, "exact")
        save_index(directory, gallery.index, gallery.meta)
    return gallery


# --- k-NN evaluation ----------------------------------------------------------------------------


def knn_accuracy(sims: np.ndarray, neighbour_labels: np.ndarray, truth: np.ndarray,
                 k_list: Iterable[int], num_classes: int) -> dict[str, Any]:
    """Top-1 (1-NN), top-5 (a correct label among the 5 nearest) and, per k, the accuracy of
    the majority vote (ties go to the class with the larger summed similarity) and of the
    exp(sim / 0.1)-weighted vote, all in percent."""
    q = len(truth)
    if q == 0:
        raise SkelctlError("the test split is empty: nothing to evaluate")
    hits = neighbour_labels == truth[:, None]
    result: dict[str, Any] = {
        "top1": _percent(hits[:, 0]),
        "top5": _percent(hits[:, :5].any(axis=1)),
        "knn": {},
    }
    valid = torch.from_numpy(neighbour_labels >= 0)  # -1: an approximate index found fewer neighbours
    labels = torch.from_numpy(np.where(neighbour_labels >= 0, neighbour_labels, 0).astype(np.int64))
    sims64 = torch.from_numpy(np.asarray(sims, np.float64))
    for k in k_list:
        kk = min(k, neighbour_labels.shape[1])
        s, ok = sims64[:, :kk], valid[:, :kk]
        votes = class_votes(labels[:, :kk], ok * (1.0 + s / (2 * kk + 1)), num_classes)  # |s| <= 1: breaks ties only
        weighted = class_votes(labels[:, :kk], ok * vote_weights(s), num_classes)
        result["knn"][str(k)] = {
            "majority": _percent(votes.argmax(dim=1).numpy() == truth),
            "weighted": _percent(weighted.argmax(dim=1).numpy() == truth),
        }
    return result


def _percent(hits: np.ndarray) -> float:
    return round(100.0 * float(np.mean(hits)), 4)


def knn_evaluate(gallery: GalleryIndex, queries: np.ndarray, truth: np.ndarray,
                 k_list: Sequence[int]) -> dict[str, Any]:
    """The k-NN protocol of unit-norm `queries` against `gallery`."""
    k = max([5, *k_list])
    sims, positions = gallery.search(queries, k)
    labels = np.where(positions >= 0, gallery.labels[positions], -1)
    return knn_accuracy(sims, labels, np.asarray(truth), k_list, len(gallery.class_names))


def memory_gallery(features: np.ndarray, ids: np.ndarray, labels: np.ndarray,
                   names: Sequence[str], class_names: Sequence[str]) -> GalleryIndex:
    """An exact in-memory gallery (no FAISS index, no files) over unit-norm `features`."""
    meta = {"ids": ids.tolist(), "labels": labels.tolist(), "names": list(names),
            "class_names": list(class_names)}
    return GalleryIndex(None, meta, torch.from_numpy(np.ascontiguousarray(features, np.float32)))


def ensemble_features(per_stream: Sequence[np.ndarray]) -> np.ndarray:
    """Unit-norm concatenation whose inner products are the MEAN of the streams' cosines
    (score-level ensemble of the similarities)."""
    return np.ascontiguousarray(np.hstack(per_stream) / np.sqrt(len(per_stream)), dtype=np.float32)


# --- the three modes of `skelctl retrieve` -------------------------------------------------------


def retrieve_mode(build: Path | None, queries: Sequence[str], evaluate: bool, index: Path | None,
                  split: str) -> str:
    """`build`, `query` or `eval`: the one mode the options ask for (checked before any work)."""
    modes = [name for name, on in (("--build", build), ("--query", queries), ("--eval", evaluate)) if on]
    if len(modes) != 1:
        raise SkelctlError("pass exactly one of --build INDEX_DIR, --query FILE, --eval"
                           + (f" (got {', '.join(modes)})" if modes else ""))
    if build is not None and index is not None:
        raise SkelctlError("--build writes an index; --index reads one: pass one of them")
    if build is not None and split not in ("train", "test"):
        raise SkelctlError(f"--split {split}: expected train or test")
    return modes[0][2:]


def parse_k_list(text: str) -> list[int]:
    """`1,5,10` -> [1, 5, 10] (sorted, distinct, positive)."""
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise SkelctlError(f"--k-list {text}: expected positive integers, comma separated (1,5,10)")
    return ks


def answer_queries(items: Sequence[str], k: int, index: Path | None, encoder_spec: str | None,
                   resolve: Callable[[], EvalJob], device: str) -> list[tuple[Path, list[Match]]]:
    """`retrieve --query`: each query file with its k nearest clips of the gallery `index` (its
    recorded encoder, or `encoder_spec`), else of the job's run (`<run>/index`, built on first use)."""
    if index is not None:
        gallery = load_index(index)
        loaded = index_encoder(gallery, encoder_spec, index)
        run_device = resolve_device(device, "--device")
    else:
        job = resolve()
        gallery, loaded = default_gallery(job)
        run_device = job.device
    paths = expand_queries(items)
    return list(zip(paths, query_gallery(gallery, loaded, paths, k, run_device), strict=True))


def knn_protocol(ks: Sequence[int], index: Path | None, encoder_spec: str | None,
                 resolve: Callable[[], EvalJob], device: str, out: Path | None) -> dict[str, Any]:
    """`retrieve --eval`: the k-NN protocol through the persisted `index`, else on the job's
    split (exact search); result.json written to `out` (default `<run>/eval/knn-<benchmark>/`)."""
    if index is not None:
        gallery = load_index(index)
        loaded = index_encoder(gallery, encoder_spec, index)
        result = evaluate_knn_index(gallery, index, loaded, ks, resolve_device(device, "--device"))
        out_dir = out
    else:
        job = resolve()
        result = evaluate_knn(job, ks)
        out_dir = out or (job.run_dir / "eval" / f"knn-{job.benchmark}" if job.run_dir else None)
    if out_dir is not None:
        result["out"] = str(out_dir)
        write_result(out_dir, result)
    return result


# --- the protocols behind them -------------------------------------------------------------------


def single_encoder(job: EvalJob, what: str) -> tuple[LoadedEncoder, ClipView]:
    if len(job.encoders) != 1:
        raise SkelctlError(f"{what} takes one encoder (--streams ensembles are for --eval)")
    return job.encoders[0], job.views[0]


def build_index_dir(job: EvalJob, directory: Path, part: str, index_type: str, seed: int,
                    use_cache: bool = True) -> dict[str, Any]:
    """`retrieve --build`: embed split `part`, index it, write `directory`; the build summary."""
    loaded, view = single_encoder(job, "--build")
    with index_lock(directory):
        gallery = build_gallery(clip_source(job, None, use_cache), loaded, view, job.benchmark, part,
                                job.evaluation.linear.test_crop, index_type, seed)
        save_index(directory, gallery.index, gallery.meta)
    meta = gallery.meta
    return {"index": str(directory), "index_type": index_type, "count": meta["count"],
            "dim": meta["dim"], "params": meta["params"], "recall": meta["recall"],
            "encoder_sha256": loaded.sha256, "dataset": meta["dataset"],
            "benchmark": meta["benchmark"], "split": part, "stream": view.stream}


def default_gallery(job: EvalJob, use_cache: bool = True) -> tuple[GalleryIndex, LoadedEncoder]:
    """The gallery of the job's run (`<run>/index/`), built on first use."""
    loaded, view = single_encoder(job, "--query")
    if job.run_dir is None:
        raise SkelctlError(f"{loaded.source} has no run directory to keep an index in: "
                           "pass --index DIR (build one with --build DIR)")
    gallery = run_index(job.run_dir, clip_source(job, None, use_cache), loaded, view,
                        job.benchmark, job.evaluation.linear.test_crop)
    return gallery, loaded


def query_gallery(gallery: GalleryIndex, loaded: LoadedEncoder, paths: Sequence[Path], k: int,
                  device: torch.device) -> list[list[Match]]:
    """The k nearest gallery clips of every query file; every file is read and checked before
    any is embedded, so one bad query fails the command before it prints anything."""
    if k < 1:
        raise SkelctlError(f"-k must be at least 1, got {k}")
    meta = gallery.meta
    layout = Layout.from_dict(meta["layout"])
    clips = [load_query(p, layout, meta["preprocess_options"], meta["persons"], meta["channels"])
             for p in paths]
    features = embed_clips(loaded, gallery_view(gallery), clips, meta["crop"], device)
    return search(gallery, features, k)


def evaluate_knn(job: EvalJob, k_list: Sequence[int], use_cache: bool = True) -> dict[str, Any]:
    """`retrieve --eval`: the k-NN protocol per stream (exact search) and, with several
    streams, on their ensemble (mean cosine similarity)."""
    ds, crop = job.dataset, job.evaluation.linear.test_crop
    train_idx, test_idx = ds.split(job.benchmark, "train"), ds.split(job.benchmark, "test")
    source = clip_source(job, None, use_cache)
    names, truth = [ds.names[i] for i in train_idx], ds.labels[test_idx]
    streams, galleries, queries = {}, [], []
    for loaded, view in zip(job.encoders, job.views, strict=True):
        galleries.append(gallery_features(source, loaded, view, train_idx, crop, "train"))
        queries.append(gallery_features(source, loaded, view, test_idx, crop, "test"))
        gallery = memory_gallery(galleries[-1], train_idx, ds.labels[train_idx], names, ds.class_names)
        streams[view.stream] = knn_evaluate(gallery, queries[-1], truth, k_list)
    headline = dict(streams[job.streams[0]])
    if len(job.views) > 1:
        gallery = memory_gallery(ensemble_features(galleries), train_idx, ds.labels[train_idx],
                                 names, ds.class_names)
        headline = {**knn_evaluate(gallery, ensemble_features(queries), truth, k_list),
                    "ensemble": "mean of the streams' cosine similarities"}
    return {"protocol": "knn-cosine", "description": KNN_PROTOCOL, **headline,
            "streams": streams, "index": None, "index_type": "exact", "crop": crop,
            **job.describe(), "num_gallery": len(train_idx), "num_queries": len(test_idx)}


def evaluate_knn_index(gallery: GalleryIndex, directory: Path, loaded: LoadedEncoder,
                       k_list: Sequence[int], device: torch.device) -> dict[str, Any]:
    """`retrieve --index DIR --eval`: the k-NN protocol through a persisted (maybe approximate)
    index; queries are the other part of the benchmark it was built from."""
    from skelctl.data.store import open_dataset

    meta = gallery.meta
    ds = open_dataset(meta["dataset"])
    part = "test" if meta["split"] == "train" else "train"
    query_idx = ds.split(meta["benchmark"], part)
    source = ClipSource(ds, Path(meta["dataset"]), device, FeatureCache(None))
    features = gallery_features(source, loaded, gallery_view(gallery), query_idx, meta["crop"], part)
    result = knn_evaluate(gallery, features, ds.labels[query_idx], k_list)
    return {"protocol": "knn-cosine", "description": KNN_PROTOCOL, **result,
            "streams": {meta["stream"]: dict(result)}, "index": str(directory),
            "index_type": meta["index_type"], "crop": meta["crop"], "dataset": meta["dataset"],
            "benchmark": meta["benchmark"], "encoders": [loaded.describe()],
            "num_gallery": meta["count"], "num_queries": len(query_idx)}
