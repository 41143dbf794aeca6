"""A persisted retrieval gallery: a FAISS index over L2-normalised features plus what is needed
to use it (sample names, labels, the encoder's hash, the preprocessing and clip view).

```
INDEX_DIR/index.faiss   FAISS index; ids = dataset sample indices
INDEX_DIR/meta.json     {"format": "skelctl-index/1", "index_type", "dim", "count", "ids", "names",
                         "labels", "class_names", "encoder": {source, sha256, arch, seed?},
                         "dataset", "benchmark", "split", "preprocess_options", "layout",
                         "frames", "stream", "crop", "params", "recall", "created", "skelctl_version"}
```
Similarity is the inner product of unit vectors (cosine). `exact` is `IndexFlatIP` inside an
`IndexIDMap`; `ivf` (`IVF{nlist},Flat`, nlist ~ 4 sqrt(N)) and `hnsw` (HNSW32) trade exactness
for speed on large galleries, and their recall against exact search is measured at build time.
The directory is written next to its final place and renamed in, so a reader never sees half;
while one process builds it, `.INDEX_DIR.lock` beside it (`index_lock`) turns a second away.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch

from skelctl import __version__
from skelctl.atomic import plain_mode, remove_stale_temps, temp_prefix
from skelctl.errors import SkelctlError
from skelctl.lock import folder_lock

INDEX_FORMAT = "skelctl-index/1"
INDEX_TYPES = ("exact", "ivf", "hnsw")
INDEX_FILE = "index.faiss"
META_FILE = "meta.json"
HNSW_NEIGHBOURS = 32
HNSW_EF_SEARCH = 128
IVF_MIN_POINTS_PER_LIST = 39  # FAISS warns (and k-means degrades) below this
RECALL_QUERIES = 1000
SEARCH_TILE = (2048, 16384)  # queries x gallery items per similarity tile
BF16_UNIT_ROUNDOFF = 2.0**-8  # bfloat16 keeps 8 significant bits
BF16_MIN_WORK = 2**31  # Q x G x D multiply-adds below which a bf16 pass is not worth it


def normalized(features: np.ndarray) -> np.ndarray:
    """A float32 C-contiguous copy of `features` with unit rows (zero rows stay zero)."""
    out = np.array(features, dtype=np.float32, order="C", copy=True)
    faiss.normalize_L2(out)
    return out


def default_params(index_type: str, count: int) -> dict[str, int]:
    """IVF: nlist = 4 sqrt(N) (capped so every list gets ~39 training points), nprobe = nlist/8
    (at least 8); HNSW: 32 neighbours, efSearch 128."""
    if index_type == "ivf":
        nlist = max(1, min(round(4 * math.sqrt(count)), count // IVF_MIN_POINTS_PER_LIST))
        return {"nlist": nlist, "nprobe": min(nlist, max(8, nlist // 8))}
    if index_type == "hnsw":
        return {"M": HNSW_NEIGHBOURS, "efSearch": HNSW_EF_SEARCH}
    return {}


def build_faiss(features: np.ndarray, ids: np.ndarray, index_type: str,
                params: dict[str, int] | None = None) -> faiss.Index:
    """An index of unit-norm `features` (N, D) with ids `ids` (N,)."""
    if index_type not in INDEX_TYPES:
        raise SkelctlError(f"--index-type {index_type}: expected one of {', '.join(INDEX_TYPES)}")
    if len(features) == 0:
        raise SkelctlError("cannot build an index over an empty gallery")
    features = np.ascontiguousarray(features, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    dim = features.shape[1]
    params = params or default_params(index_type, len(features))
    if index_type == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, params["nlist"], faiss.METRIC_INNER_PRODUCT)
        index.train(features)
        index.nprobe = params["nprobe"]
        index.add_with_ids(features, ids)
        return index
    if index_type == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efSearch = params["efSearch"]
    else:
        inner = faiss.IndexFlatIP(dim)
    index = faiss.IndexIDMap(inner)
    index.add_with_ids(features, ids)
    return index


def set_search_params(index: faiss.Index, index_type: str, params: dict[str, int]) -> None:
    """Search-time settings a reloaded index must get back (they are not all serialised)."""
    if index_type == "ivf":
        faiss.extract_index_ivf(index).nprobe = params["nprobe"]
    elif index_type == "hnsw":
        faiss.downcast_index(index.index).hnsw.efSearch = params["efSearch"]


def _tiled_topk(gallery: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of `queries @ gallery.T` (values as float32, gallery positions), tile by tile in
    the tensors' dtype: memory stays one tile whatever Q and G, and the matmuls stay large.

    Each tile's top-k goes into one buffer per query block, reduced once at the end. bf16 tiles
    are ranked by their bit patterns read as int16, which is the float order for values >= 0
    (and twice as fast to scan on CPU): a row whose k-th value comes out negative may hold the
    wrong negatives, so `exact_search` never certifies such a row.
    """
    g, q = len(gallery), len(queries)
    k = min(k, g)
    qb, gb = SEARCH_TILE[0], max(SEARCH_TILE[1], k)
    bits = queries.dtype == torch.bfloat16
    starts = torch.arange(0, g, gb, device=queries.device)
    values = torch.empty(q, k, device=queries.device)
    positions = torch.empty(q, k, dtype=torch.long, device=queries.device)
    tile = torch.empty(min(qb, q), min(gb, g), dtype=queries.dtype, device=queries.device)
    # per tile of the gallery: its k best of each query (raw bits for bf16), filled in place
    pool_v = torch.empty(len(starts), min(qb, q), k, dtype=torch.int16 if bits else queries.dtype,
                         device=queries.device)
    pool_i = torch.empty(len(starts), min(qb, q), k, dtype=torch.long, device=queries.device)
    for qs in range(0, q, qb):
        block = queries[qs : qs + qb]
        n = len(block)
        for t, gs in enumerate(starts.tolist()):
            sims = tile[:n, : min(gb, g - gs)]
            torch.mm(block, gallery[gs : gs + gb].T, out=sims)
            if sims.shape[1] < k:  # a last tile narrower than k: pad with -inf (never chosen)
                sims = torch.cat([sims, sims.new_full((n, k - sims.shape[1]), float("-inf"))], 1)
            torch.topk(sims.view(torch.int16) if bits else sims, k, dim=1, sorted=False,
                       out=(pool_v[t, :n], pool_i[t, :n]))
        found = pool_v[:, :n].view(torch.bfloat16) if bits else pool_v[:, :n]
        found = found.permute(1, 0, 2).reshape(n, -1).float()
        best, order = found.topk(k, dim=1)
        tile_of = order // k
        values[qs : qs + n] = best
        positions[qs : qs + n] = pool_i[:, :n].permute(1, 0, 2).reshape(n, -1).gather(1, order) + starts[tile_of]
    return values, positions


def bf16_error_bound(dim: int) -> float:
    """Largest |bf16 similarity - exact| of two unit vectors of `dim` components, +10%.

    Rounding both inputs to bf16 moves each product by at most (2u + u^2) |q_i g_i|, i.e. the
    similarity by (2u + u^2) sum |q_i g_i| <= 2u + u^2 (Cauchy-Schwarz); the fp32 accumulation
    adds at most dim * 2^-24 (1 + u)^2 and rounding the result to bf16 u (1 + u)^2.
    """
    u = BF16_UNIT_ROUNDOFF
    return 1.1 * (2 * u + u * u + (u + dim * 2.0**-24) * (1 + u) ** 2)


@functools.cache
def _bf16_is_faster(device: str) -> bool:
    """Whether this device multiplies bf16 at least twice as fast as fp32 (AMX, tensor cores;
    emulated bf16 is slower). Measured once per process on a tile-sized product."""
    timings = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.ones(1024, 256, dtype=dtype, device=device)
        b = torch.ones(4096, 256, dtype=dtype, device=device)
        out = torch.empty(1024, 4096, dtype=dtype, device=device)
        torch.mm(a, b.T, out=out)  # warm-up (kernel selection, page faults)
        start = time.perf_counter()
        for _ in range(3):
            torch.mm(a, b.T, out=out)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        timings[dtype] = time.perf_counter() - start
    return timings[torch.bfloat16] * 2 <= timings[torch.float32]


def exact_search(gallery: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k inner products of unit-norm `queries` (Q, D) against `gallery` (G, D):
    (similarities (Q, k) float32, gallery positions (Q, k)), best first.

    Large searches on hardware with fast bf16 matmul take candidates from a bf16 pass and
    re-score them in fp32. A query is certified when its k-th exact score is at least the best
    score any non-candidate can have: the last candidate's bf16 score + `bf16_error_bound`.
    Uncertified queries get a second bf16 pass with 8x the candidates, then an fp32 search, so
    the answer is the fp32 one in every case.
    """
    gallery, queries = gallery.float(), queries.float()
    k = min(k, len(gallery))
    work = len(gallery) * len(queries) * gallery.shape[1]
    if work < BF16_MIN_WORK or not _bf16_is_faster(str(gallery.device)):
        return _tiled_topk(gallery, queries, k)
    values = torch.empty(len(queries), k, device=queries.device)
    positions = torch.empty(len(queries), k, dtype=torch.long, device=queries.device)
    todo = torch.arange(len(queries), device=queries.device)
    low = gallery.bfloat16()
    for candidates in (max(16, 4 * k), max(128, 32 * k)):
        if candidates >= len(gallery) or len(todo) == 0:
            break
        v, p, certified = _certified_candidates(gallery, low, queries[todo], k, candidates)
        values[todo[certified]], positions[todo[certified]] = v[certified], p[certified]
        todo = todo[~certified]
    if len(todo):
        values[todo], positions[todo] = _tiled_topk(gallery, queries[todo], k)
    return values, positions


def _certified_candidates(gallery: torch.Tensor, low: torch.Tensor, queries: torch.Tensor, k: int,
                          candidates: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k among the bf16 pass's `candidates` best, re-scored in fp32, and which are certain."""
    last, candidate = _tiled_topk(low, queries.bfloat16(), candidates)
    last = last[:, -1]
    # a negative last value may hide wrongly ranked negatives (see _tiled_topk): never certify
    bound = torch.where(last >= 0, last + bf16_error_bound(gallery.shape[1]), torch.inf)
    values = torch.empty(len(queries), k, device=queries.device)
    positions = torch.empty(len(queries), k, dtype=torch.long, device=queries.device)
    step = max(1, 2**24 // (candidates * gallery.shape[1]))  # re-score ~64 MB of vectors at a time
    for qs in range(0, len(queries), step):
        ids = candidate[qs : qs + step]
        exact = torch.einsum("qd,qcd->qc", queries[qs : qs + step], gallery[ids])
        values[qs : qs + step], order = exact.topk(k, dim=1)
        positions[qs : qs + step] = ids.gather(1, order)
    return values, positions, values[:, -1] >= bound


def recall_at(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean over queries of |found top-k  intersect  exact top-k| / k (both (Q, >= k) arrays)."""
    hits = [len(set(f[:k].tolist()) & set(e[:k].tolist())) for f, e in zip(found, exact, strict=True)]
    return float(np.mean(hits)) / k if hits else float("nan")


def measure_recall(index: faiss.Index, gallery: np.ndarray, ids: np.ndarray, queries: np.ndarray,
                   ks: tuple[int, ...] = (1, 10)) -> dict[str, Any]:
    """Recall@k of `index` against exact search over the same unit-norm `gallery` (ids `ids`)."""
    k = min(max(ks), len(gallery))
    exact = ids[exact_search(torch.from_numpy(gallery), torch.from_numpy(queries), k)[1].numpy()]
    found = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)[1]
    return {"queries": len(queries), "against": "exact inner-product search",
            **{f"recall@{kk}": round(recall_at(found, exact, kk), 4) for kk in ks if kk <= k}}


@dataclass
class GalleryIndex:
    """A loaded (or just built) index and its metadata. An exact index is searched with
    `exact_search` over its vectors (same answers as FAISS flat search, faster for large
    batches); approximate ones with FAISS."""

    index: faiss.Index | None  # None for an in-memory exact gallery (vectors only)
    meta: dict[str, Any]
    vectors: torch.Tensor | None = field(default=None, repr=False)  # (G, D) unit rows, exact only

    def __post_init__(self) -> None:
        ids = np.asarray(self.meta["ids"], dtype=np.int64)
        self._order = np.argsort(ids, kind="stable")
        self._sorted_ids = ids[self._order]
        self.labels = np.asarray(self.meta["labels"], dtype=np.int64)

    @property
    def names(self) -> list[str]:
        return self.meta["names"]

    @property
    def class_names(self) -> list[str]:
        return self.meta["class_names"]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities (Q, k), gallery positions (Q, k)) for unit-norm `queries`; position -1
        where an approximate index returned fewer than k neighbours."""
        k = min(k, len(self._sorted_ids))
        if self.vectors is not None:
            sims, positions = exact_search(self.vectors, torch.from_numpy(np.asarray(queries, np.float32)), k)
            return sims.numpy(), positions.numpy()
        sims, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        where = np.searchsorted(self._sorted_ids, ids).clip(max=len(self._sorted_ids) - 1)
        positions = np.where(ids >= 0, self._order[where], -1)
        return sims, positions


def gallery_index(index: faiss.Index, meta: dict[str, Any], index_type: str) -> GalleryIndex:
    """Wrap `index`; an exact one lends its vectors (in insertion order = metadata order)."""
    vectors = None
    if index_type == "exact":
        flat = faiss.downcast_index(index.index if isinstance(index, faiss.IndexIDMap) else index)
        vectors = torch.from_numpy(flat.reconstruct_n(0, flat.ntotal))
    return GalleryIndex(index, meta, vectors)


def index_lock(directory: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock on building `directory`, held from embedding to the rename (the lock
    file sits beside the folder, which is replaced whole)."""
    directory = Path(directory)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SkelctlError(f"cannot write here ({exc.strerror or exc})", directory) from exc
    return folder_lock(directory.parent / f".{directory.name}.lock", directory)


def save_index(directory: Path, index: faiss.Index, meta: dict[str, Any]) -> None:
    """Write `directory` as a whole: into a temporary sibling, then renamed onto it.

    An existing directory is replaced only if it is a skelctl index (or empty).
    """
    directory = Path(directory)
    if directory.exists():
        if not directory.is_dir():
            raise SkelctlError("exists and is not a directory", directory)
        if any(directory.iterdir()) and not (directory / META_FILE).is_file():
            raise SkelctlError("exists and is not a skelctl index: choose another directory", directory)
    meta = {"format": INDEX_FORMAT, **meta,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "skelctl_version": __version__}
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(directory)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(directory), suffix=".tmp", dir=directory.parent))
        tmp.chmod(plain_mode(directory=True))  # mkdtemp's 0700 would become the index's mode
    except OSError as exc:
        raise SkelctlError(f"cannot write here ({exc.strerror or exc})", directory) from exc
    try:
        faiss.write_index(index, str(tmp / INDEX_FILE))
        (tmp / META_FILE).write_text(json.dumps(meta))
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=temp_prefix(directory), suffix=".old", dir=directory.parent))
            os.replace(directory, old / "index")
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_index(directory: Path) -> GalleryIndex:
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise SkelctlError(f"not a skelctl index (no {META_FILE}; build one with --build)", directory)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SkelctlError(f"unreadable index metadata ({exc})", meta_path) from exc
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
        raise SkelctlError(f"expected a {INDEX_FORMAT} index", meta_path)
    missing = [k for k in ("ids", "names", "labels", "class_names", "encoder", "index_type", "dim")
               if k not in meta]
    if missing:
        raise SkelctlError(f"index metadata lacks '{missing[0]}'", meta_path)
    try:
        index = faiss.read_index(str(directory / INDEX_FILE))
    except RuntimeError as exc:
        raise SkelctlError(f"unreadable FAISS index ({str(exc).splitlines()[0]})",
                           directory / INDEX_FILE) from exc
    count = len(meta["ids"])
    if index.ntotal != count or index.d != meta["dim"] or not len(meta["names"]) == len(meta["labels"]) == count:
        raise SkelctlError(
            f"index holds {index.ntotal} vectors of dim {index.d}, metadata says {count} of dim "
            f"{meta['dim']}: rebuild it", directory)
    with contextlib.suppress(KeyError):
        set_search_params(index, meta["index_type"], meta.get("params") or {})
    return gallery_index(index, meta, meta["index_type"])
