"""1-NN retrieval evaluation at NTU120-xsub scale, and query latency against a persisted index.

Figures (one line each, ratios against baselines measured in this same run):
- the k-NN protocol end to end (`knn_evaluate`: L2 normalisation, exact search, votes) on random
  256-d embeddings, 63,026 gallery x 50,919 queries;
- the fp32 matrix-multiply floor: the (Q x D) @ (D x G) product alone, in blocks of queries;
- scikit-learn's `KNeighborsClassifier(n_neighbors=1, metric="cosine")` fit + predict (optional:
  not a skelctl dependency; `pip install scikit-learn` to include it), with a check that both
  return the same accuracy and the same predictions;
- one query clip against a persisted 63,026-clip index: cold (`skelctl retrieve` in a fresh
  process) and warm (in-process, index and encoder already loaded).

Usage: python benchmarks/bench_retrieval.py [--gallery N] [--queries N] [--skip-sklearn]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skelctl.evaluate.index import SEARCH_TILE, normalized

GALLERY, QUERIES, DIM, CLASSES = 63_026, 50_919, 256, 120
REPO = Path(__file__).resolve().parents[1]


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def matmul_floor(gallery: np.ndarray, queries: np.ndarray) -> float:
    """Seconds for the fp32 similarity product alone, blocks of queries into a reused buffer."""
    g, q = torch.from_numpy(gallery), torch.from_numpy(queries)
    block = SEARCH_TILE[0]
    out = torch.empty(block, len(g))
    torch.mm(q[:block], g.T, out=out)  # warm-up
    start = time.perf_counter()
    for s in range(0, len(q), block):
        rows = q[s : s + block]
        torch.mm(rows, g.T, out=out[: len(rows)])
    return time.perf_counter() - start


def ours(gallery: np.ndarray, queries: np.ndarray, g_labels: np.ndarray, q_labels: np.ndarray) -> tuple[float, float]:
    """(seconds, 1-NN accuracy %) of the k-NN protocol as `skelctl retrieve --eval` runs it."""
    from skelctl.evaluate.retrieval import knn_evaluate, memory_gallery

    start = time.perf_counter()
    ids = np.arange(len(gallery))
    gal = memory_gallery(normalized(gallery), ids, g_labels, [""] * len(ids), [str(c) for c in range(CLASSES)])
    result = knn_evaluate(gal, normalized(queries), q_labels, [1])
    return time.perf_counter() - start, result["top1"]


def sklearn_1nn(gallery: np.ndarray, queries: np.ndarray, g_labels: np.ndarray) -> tuple[float, np.ndarray] | None:
    try:
        from sklearn.neighbors import KNeighborsClassifier
    except ImportError:
        return None
    start = time.perf_counter()
    predicted = KNeighborsClassifier(n_neighbors=1, metric="cosine").fit(gallery, g_labels).predict(queries)
    return time.perf_counter() - start, predicted


def persisted_index(root: Path, gallery: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    """An exact index of `gallery` built by a real (random-init) ST-GCN/4, and a query clip."""
    from skelctl.data.layout import get_layout
    from skelctl.engine.checkpoint import save_encoder
    from skelctl.evaluate.encoders import file_sha256
    from skelctl.evaluate.index import build_faiss, save_index
    from skelctl.models import build_encoder

    layout = get_layout("ntu25")
    torch.manual_seed(0)
    encoder_path = root / "encoder.pt"
    save_encoder(encoder_path, build_encoder("stgcn", layout), {"method": "skelemix", "frames": 64})
    ids = np.arange(len(gallery))
    unit = normalized(gallery)
    meta = {
        "index_type": "exact", "params": {}, "recall": None, "dim": DIM, "count": len(ids),
        "ids": ids.tolist(), "names": [f"S{1 + i % 32:03d}C001P{i % 106 + 1:03d}R001A{i % 120 + 1:03d}"
                                       for i in ids],
        "labels": labels.tolist(), "class_names": [f"action {c + 1}" for c in range(CLASSES)],
        "encoder": {"source": str(encoder_path), "sha256": file_sha256(encoder_path), "arch": "stgcn"},
        "dataset": "", "benchmark": "xsub", "split": "train",
        "preprocess_options": {"bodies": "denoise", "center": True, "align": False},
        "layout": layout.to_dict(), "persons": 2, "channels": 3, "frames": 64, "stream": "joint",
        "crop": 1.0,
    }
    save_index(root / "index", build_faiss(unit, ids, "exact"), meta)
    walk = np.cumsum(np.random.default_rng(1).normal(0, 0.01, (100, 2, 25, 3)), axis=0)
    query = root / "query.npy"
    np.save(query, (walk + np.random.default_rng(2).normal(0, 0.3, (1, 2, 25, 3))).astype(np.float32))
    return root / "index", query


def latency(index: Path, query: Path) -> tuple[float, float]:
    """(cold, warm) seconds for one query: a fresh `skelctl retrieve` process; in-process."""
    cold = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "skelctl", "retrieve", "--index", str(index),
                        "--query", str(query), "-k", "10", "--device", "cpu"],
                       check=True, capture_output=True, cwd=REPO)
        cold.append(time.perf_counter() - start)
    from skelctl.evaluate.index import load_index
    from skelctl.evaluate.retrieval import index_encoder, query_gallery

    gallery = load_index(index)
    encoder = index_encoder(gallery, None, index)
    device = torch.device("cpu")
    query_gallery(gallery, encoder, [query], 10, device)  # warm-up
    warm = []
    for _ in range(20):
        start = time.perf_counter()
        query_gallery(gallery, encoder, [query], 10, device)
        warm.append(time.perf_counter() - start)
    return statistics.median(cold), statistics.median(warm)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=GALLERY)
    parser.add_argument("--queries", type=int, default=QUERIES)
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((args.gallery, DIM), dtype=np.float32)
    queries = rng.standard_normal((args.queries, DIM), dtype=np.float32)
    g_labels, q_labels = rng.integers(0, CLASSES, args.gallery), rng.integers(0, CLASSES, args.queries)
    print(f"1-NN evaluation: {args.gallery:,} gallery x {args.queries:,} queries x {DIM}-d, "
          f"{torch.get_num_threads()} threads, load average {load_average()}", flush=True)

    floor = matmul_floor(normalized(gallery), normalized(queries))
    print(f"matmul floor (fp32, {SEARCH_TILE[0]}-query blocks): {floor:.2f} s", flush=True)
    seconds, top1 = ours(gallery, queries, g_labels, q_labels)
    print(f"skelctl knn_evaluate end to end: {seconds:.2f} s = {seconds / floor:.2f} x floor "
          f"(target <= 2), 1-NN top-1 {top1:.3f} %", flush=True)

    baseline = None if args.skip_sklearn else sklearn_1nn(gallery, queries, g_labels)
    if baseline is None and not args.skip_sklearn:
        print("scikit-learn baseline: skipped, not installed (pip install scikit-learn)")
    elif baseline is not None:
        sk_seconds, predicted = baseline
        sk_top1 = 100.0 * float(np.mean(predicted == q_labels))
        from skelctl.evaluate.retrieval import memory_gallery

        sample = slice(0, 2000)
        gal = memory_gallery(normalized(gallery), np.arange(len(gallery)), g_labels,
                             [""] * len(gallery), [])
        mine = g_labels[gal.search(normalized(queries[sample]), 1)[1][:, 0]]
        agree = float(np.mean(mine == predicted[sample]))
        print(f"scikit-learn KNeighborsClassifier(1, cosine) fit+predict: {sk_seconds:.2f} s = "
              f"{sk_seconds / floor:.2f} x floor; skelctl is {sk_seconds / seconds:.1f} x faster "
              f"(target >= 5); top-1 {sk_top1:.3f} % (skelctl {top1:.3f} %), same prediction "
              f"on {100 * agree:.2f} % of the first 2,000 queries", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        index, query = persisted_index(Path(tmp), gallery, g_labels)
        cold, warm = latency(index, query)
    print(f"one query vs {args.gallery:,}-clip index (ST-GCN/4, k=10): cold {cold:.2f} s "
          f"(fresh `skelctl retrieve` process, median of 3), warm {1000 * warm:.1f} ms "
          f"(in-process, median of 20); load average {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
