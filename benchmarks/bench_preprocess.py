"""`skelctl preprocess` throughput and memory against a classic NTU reader, measured in one run.

The 11 real NTU fixtures are replicated (symlinks, unique S/P/R numbers) to 2,000 files in a
temp dir, so files are hot in the page cache: this measures parsing, not the disk. Figures:
- the classic per-line reader (readline, float() per token, a dict per joint, as in the
  ST-GCN-era `read_skeleton`), and a whitespace-split-only floor, on a subset;
- `skelctl preprocess ntu120` end to end (CLI subprocess) with 1 and 2 workers: files/s, MB/s,
  ratio per core against the classic reader (wall, and CPU time for 1 worker, which other
  jobs on a shared machine cannot inflate), 2-vs-1 scaling, peak RSS of the process tree;
- peak RSS at 1,000 vs 2,000 files (flat when memory does not grow with the dataset);
- the HDF5 filters on the produced frames: size ratio and write speed.
Usage: python benchmarks/bench_preprocess.py [--files 2000] [--classic-files 60]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ntu"
NAME = re.compile(r"S\d{3}C(\d{3})P\d{3}R\d{3}A(\d{3})")
BODY_KEYS = (
    "bodyID",
    "clipedEdges",
    "handLeftConfidence",
    "handLeftState",
    "handRightConfidence",
    "handRightState",
    "isResticted",
    "leanX",
    "leanY",
    "trackingState",
)
JOINT_KEYS = (
    "x",
    "y",
    "z",
    "depthX",
    "depthY",
    "colorX",
    "colorY",
    "orientationW",
    "orientationX",
    "orientationY",
    "orientationZ",
    "trackingState",
)


def classic_read_xyz(path: Path, max_body: int = 2, num_joint: int = 25) -> np.ndarray:
    """The classic reader: one readline per record, float() per token, one dict per joint."""
    with open(path) as f:
        frames = []
        for _ in range(int(f.readline())):
            bodies = []
            for _ in range(int(f.readline())):
                body = {k: float(v) for k, v in zip(BODY_KEYS, f.readline().split(), strict=False)}
                body["joints"] = [
                    {k: float(v) for k, v in zip(JOINT_KEYS, f.readline().split(), strict=False)}
                    for _ in range(int(f.readline()))
                ]
                bodies.append(body)
            frames.append(bodies)
    data = np.zeros((3, len(frames), num_joint, max_body), np.float32)
    for t, bodies in enumerate(frames):
        for m, body in enumerate(bodies[:max_body]):
            for j, joint in enumerate(body["joints"][:num_joint]):
                data[:, t, j, m] = [joint["x"], joint["y"], joint["z"]]
    return data


def split_only(path: Path) -> int:
    """The floor for any text parser: read the file and split it into tokens."""
    return len(path.read_bytes().split())


def replicate(folder: Path, count: int) -> list[Path]:
    """`count` links to the fixtures, each with a unique setup/performer/replication triple."""
    sources = sorted(FIXTURES.glob("*.skeleton"))
    folder.mkdir(parents=True)
    paths = []
    for k in range(count):  # 32 setups x 106 performers x 2 replications: 6,784 names
        source = sources[k % len(sources)]
        camera, action = NAME.match(source.stem).groups()
        setup, rest = 1 + k % 32, k // 32
        performer, replication = 1 + rest % 106, 1 + rest // 106
        name = f"S{setup:03d}C{camera}P{performer:03d}R{replication:03d}A{action}"
        path = folder / f"{name}.skeleton"
        path.symlink_to(source)
        paths.append(path)
    return paths


def rate(function, paths: list[Path]) -> tuple[float, float, float]:
    """(files/s, MB/s, files per CPU-second) of `function` over `paths`, one pass.

    CPU time is what other jobs on a shared machine cannot inflate; wall time is what users see.
    """
    size = sum(p.stat().st_size for p in paths)
    start, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        function(path)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(paths) / seconds, size / 1e6 / seconds, len(paths) / cpu


def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    page = os.sysconf("SC_PAGE_SIZE")
    while stack:
        pid = stack.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
        stack += children.get(pid, [])
    return total


def run_preprocess(raw: Path, out: Path, workers: int) -> dict:
    """The CLI end to end in a subprocess; adds the peak RSS of its process tree (sampled)."""
    command = [
        sys.executable,
        "-m",
        "skelctl",
        "preprocess",
        "ntu120",
        str(raw),
        "-o",
        str(out),
        "--workers",
        str(workers),
        "--keep-missing",
        "--json",
    ]
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0

    def sample() -> None:
        nonlocal peak
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stdout, stderr = proc.communicate()
    sampler.join()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"preprocess failed ({proc.returncode}): {stderr.strip()[-2000:]}")
    summary = json.loads(stdout)
    # CPU of the CLI process (exact for workers=1; forkserver workers are not waited for by it)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    summary.update(wall=wall, cpu=cpu, peak_tree_mb=peak / 2**20)
    return summary


def filters(h5: Path) -> list[tuple[str, float, float]]:
    """(filter, size ratio vs raw float32, write MB/s) on the frames of a produced dataset."""
    import h5py

    with h5py.File(h5) as f:
        frames = f["joints"][...]
    results = []
    for label, kwargs in [
        ("none", {}),
        ("lzf", {"compression": "lzf"}),
        ("shuffle+lzf", {"compression": "lzf", "shuffle": True}),
        ("gzip-1", {"compression": "gzip", "compression_opts": 1}),
        ("shuffle+gzip-1", {"compression": "gzip", "compression_opts": 1, "shuffle": True}),
    ]:
        path = h5.with_suffix(".filter.h5")
        start = time.perf_counter()
        with h5py.File(path, "w") as f:
            f.create_dataset("joints", data=frames, chunks=(256, *frames.shape[1:]), **kwargs)
        seconds = time.perf_counter() - start
        results.append((label, frames.nbytes / path.stat().st_size, frames.nbytes / 1e6 / seconds))
        path.unlink()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--classic-files", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skelctl-bench-") as tmp:
        tmp_path = Path(tmp)
        paths = replicate(tmp_path / "raw", args.files)
        half = tmp_path / "half"
        half.mkdir()
        for path in paths[: args.files // 2]:
            (half / path.name).symlink_to(path.resolve())
        mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"input: {len(paths)} NTU files, {mb:.0f} MB (11 real fixtures, symlinked)")

        subset = paths[: args.classic_files]
        classic_fps, classic_mbs, classic_cpu = rate(classic_read_xyz, subset)
        split_fps, split_mbs, _ = rate(split_only, subset)
        print(
            f"classic reader (readline + float() + dict per joint), {len(subset)} files: "
            f"{classic_fps:.1f} files/s, {classic_mbs:.2f} MB/s, {classic_cpu:.1f} files/CPU-s"
        )
        print(f"whitespace split only (floor): {split_fps:.1f} files/s, {split_mbs:.1f} MB/s")

        runs = {w: run_preprocess(tmp_path / "raw", tmp_path / f"w{w}.h5", w) for w in (1, 2)}
        for w, s in runs.items():
            print(
                f"preprocess workers={w}: {s['files_per_s']:.1f} files/s, {s['mb_per_s']:.2f} MB/s "
                f"({s['samples']} samples in {s['seconds']:.1f} s; {s['wall']:.1f} s with "
                f"interpreter start), {s['files_per_s'] / w / classic_fps:.1f}x the classic "
                f"reader per core (wall), peak RSS of the process tree {s['peak_tree_mb']:.0f} MiB"
            )
        cpu_rate = runs[1]["samples"] / runs[1]["cpu"]
        print(
            f"preprocess workers=1 CPU: {cpu_rate:.1f} files/CPU-s (whole CLI run), "
            f"{cpu_rate / classic_cpu:.1f}x the classic reader"
        )
        print(
            f"scaling workers 2 vs 1: {runs[2]['files_per_s'] / runs[1]['files_per_s']:.2f}x "
            f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
        small = run_preprocess(half, tmp_path / "half.h5", 1)
        print(
            f"peak RSS of the process tree, workers=1: {small['samples']} files "
            f"{small['peak_tree_mb']:.0f} MiB, {runs[1]['samples']} files "
            f"{runs[1]['peak_tree_mb']:.0f} MiB "
            f"(ratio {runs[1]['peak_tree_mb'] / small['peak_tree_mb']:.2f})"
        )
        for label, ratio, speed in filters(tmp_path / "w1.h5"):
            print(f"hdf5 {label}: {ratio:.2f}x smaller than raw float32, writes {speed:.0f} MB/s")


if __name__ == "__main__":
    main()
