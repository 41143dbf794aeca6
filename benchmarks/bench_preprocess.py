"""`skelctl preprocess` throughput and memory against a classic NTU reader, measured in one run.

The 11 real NTU fixtures are replicated (symlinks, unique S/P/R numbers) to 6,000 files in a
temp dir, so files are hot in the page cache: this measures parsing, not the disk. Figures:
- the classic per-line reader of the ST-GCN kind (readline, float() per token, a dict per
  joint) and a whitespace-split-only floor, on a subset, one core: files/s, MB/s, files/CPU-s;
- `read_ntu_skeleton` alone, with the C parser and with the numpy reader;
- `skelctl preprocess ntu120` end to end (CLI subprocess) with --workers 1 and 2, on 6,000 and
  3,000 files: files/s and MB/s (the run's own timer: interpreter start excluded), per core
  against the classic reader in wall time and in CPU time. Every process of the CLI's tree
  (the CLI, the forkserver, the workers) is reaped here (PR_SET_CHILD_SUBREAPER), so
  RUSAGE_CHILDREN counts all of their CPU; CPU time is what other jobs on a shared machine
  cannot inflate. "Steady" figures take the difference of the two runs, in which fixed costs
  (interpreter, imports, starting the pool) cancel: the throughput on a large dataset;
- scaling from 1 to 2 workers, end to end and steady;
- peak RSS at 3,000 vs 6,000 files (flat when memory does not grow with the dataset): each
  process's VmHWM, sampled every 20 ms until it exits, summed over the tree;
- the HDF5 filters on the produced frames: size ratio and write speed, skelctl's writer included.
Every figure is the best of --repeats runs (3): a shared machine only ever slows a run down.
Usage: python benchmarks/bench_preprocess.py [--files 6000] [--classic-files 150] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import ctypes
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
UNIQUE_NAMES = 32 * 106 * 2  # setups x performers x replications: NTU-120's valid S/P/R triples
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
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


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
    """The floor for any text parser in Python: read the file and split it into tokens."""
    return len(path.read_bytes().split())


def replicate(folder: Path, count: int) -> list[Path]:
    """`count` links to the fixtures, each with a unique setup/performer/replication triple."""
    sources = sorted(FIXTURES.glob("*.skeleton"))
    folder.mkdir(parents=True)
    paths = []
    for k in range(count):  # 32 setups x 106 performers x 2 replications
        source = sources[k % len(sources)]
        camera, action = NAME.match(source.stem).groups()
        setup, rest = 1 + k % 32, k // 32
        performer, replication = 1 + rest % 106, 1 + rest // 106
        name = f"S{setup:03d}C{camera}P{performer:03d}R{replication:03d}A{action}"
        path = folder / f"{name}.skeleton"
        path.symlink_to(source)
        paths.append(path)
    return paths


def rate(function, paths: list[Path], repeats: int) -> tuple[float, float, float]:
    """(files/s, MB/s, files per CPU-second) of `function` over `paths` on one core, each the
    best of `repeats` passes (other jobs only ever slow a pass down)."""
    size = sum(p.stat().st_size for p in paths)
    seconds = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for path in paths:
            function(path)
        seconds = min(seconds, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return len(paths) / seconds, size / 1e6 / seconds, len(paths) / cpu


def best_run(raw: Path, out: Path, workers: int, repeats: int) -> dict:
    """`run_preprocess` repeated: the fastest run's figures, with the least CPU and memory seen."""
    runs = [run_preprocess(raw, out, workers) for _ in range(repeats)]
    best = dict(min(runs, key=lambda r: r["seconds"]))
    for key in ("cpu", "peak_tree_mb", "peak_process_mb"):
        best[key] = min(r[key] for r in runs)
    return best


def _tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack += children.get(pid, [])
    return found


def _peak_rss(pid: int) -> int:
    """The process's peak resident bytes so far (VmHWM), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def _reap_orphans() -> None:
    """Wait for the descendants that were re-parented here, so their CPU time is counted."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def run_preprocess(raw: Path, out: Path, workers: int) -> dict:
    """The CLI end to end in a subprocess, plus: wall (with interpreter start), CPU of the whole
    process tree, and its memory: each process's peak RSS (VmHWM, sampled every 20 ms until it
    exits), summed over the tree (an upper bound of the tree's peak) and the largest."""
    command = [sys.executable, "-m", "skelctl", "preprocess", "ntu120", str(raw), "-o", str(out),
               "--workers", str(workers), "--keep-missing", "--json"]
    _reap_orphans()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}

    def sample() -> None:
        while proc.poll() is None:
            for pid in _tree(proc.pid):
                peaks[pid] = max(peaks.get(pid, 0), _peak_rss(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stdout, stderr = proc.communicate()
    sampler.join()
    wall = time.perf_counter() - start
    _reap_orphans()  # the forkserver and any worker outliving the CLI
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"preprocess failed ({proc.returncode}): {stderr.strip()[-2000:]}")
    summary = json.loads(stdout)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    summary.update(wall=wall, cpu=cpu, peak_tree_mb=sum(peaks.values()) / 2**20,
                   peak_process_mb=max(peaks.values()) / 2**20, processes=len(peaks))
    return summary


def filters(h5: Path) -> list[tuple[str, float, float]]:
    """(filter, size ratio vs raw float32, write MB/s) on the frames of a produced dataset."""
    import h5py

    from skelctl.data.layout import get_layout
    from skelctl.data.store import DatasetWriter

    with h5py.File(h5) as f:
        frames = f["joints"][...]
    results = []
    for label, kwargs in [
        ("none", {}),
        ("lzf", {"compression": "lzf"}),
        ("shuffle+lzf", {"compression": "lzf", "shuffle": True}),
        ("gzip-1", {"compression": "gzip", "compression_opts": 1}),
        ("shuffle+gzip-1", {"compression": "gzip", "compression_opts": 1, "shuffle": True}),
        ("skelctl writer", None),
    ]:
        path = h5.with_suffix(".filter.h5")
        start = time.perf_counter()
        if kwargs is None:  # shuffle+lzf, compressed by the C speedups when built
            with DatasetWriter(path, "ntu120", get_layout("ntu25"), ["a"], [1], {}) as writer:
                writer.add("all", frames, 0)
        else:
            with h5py.File(path, "w") as f:
                f.create_dataset("joints", data=frames, chunks=(256, *frames.shape[1:]), **kwargs)
        seconds = time.perf_counter() - start
        results.append((label, frames.nbytes / path.stat().st_size, frames.nbytes / 1e6 / seconds))
        path.unlink()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=6000)
    parser.add_argument("--classic-files", type=int, default=150)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the best counts")
    args = parser.parse_args()
    if not 2 <= args.files <= UNIQUE_NAMES:
        parser.error(f"--files must be 2-{UNIQUE_NAMES:,} (one file per unique NTU name), got {args.files}")
    from skelctl.data import formats

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("needs Linux (prctl PR_SET_CHILD_SUBREAPER) to count the workers' CPU")
    with tempfile.TemporaryDirectory(prefix="skelctl-bench-") as tmp:
        tmp_path = Path(tmp)
        paths = replicate(tmp_path / "raw", args.files)
        half = tmp_path / "half"
        half.mkdir()
        for path in paths[: args.files // 2]:
            (half / path.name).symlink_to(path.resolve())
        mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"input: {len(paths)} NTU files, {mb:.0f} MB (11 real fixtures, symlinked); "
              f"C speedups {'built' if formats._speedups is not None else 'NOT built'}; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")

        subset = paths[: args.classic_files]
        classic_fps, classic_mbs, classic_cpu = rate(classic_read_xyz, subset, args.repeats)
        split_fps, split_mbs, split_cpu = rate(split_only, subset, args.repeats)
        print(f"classic reader (readline + float() + dict per joint), {len(subset)} files, one "
              f"core: {classic_fps:.1f} files/s, {classic_mbs:.2f} MB/s, "
              f"{classic_cpu:.1f} files/CPU-s")
        print(f"whitespace split only (floor for Python parsers): {split_fps:.0f} files/s, "
              f"{split_mbs:.0f} MB/s, {split_cpu:.0f} files/CPU-s "
              f"({split_cpu / classic_cpu:.1f}x classic)")
        readers = {"C parser": formats._speedups} if formats._speedups is not None else {}
        for label, native in (readers | {"numpy reader": None}).items():
            saved, formats._speedups = formats._speedups, native
            try:
                _, reader_mbs, reader_cpu = rate(formats.read_ntu_skeleton, paths[:300],
                                                 args.repeats)
            finally:
                formats._speedups = saved
            print(f"read_ntu_skeleton ({label}), {len(paths[:300])} files: "
                  f"{reader_cpu:.0f} files/CPU-s, "
                  f"{reader_mbs:.0f} MB/s ({reader_cpu / classic_cpu:.1f}x classic)")

        print(f"preprocess (CLI), {len(paths)} and {len(paths) // 2} files, best of "
              f"{args.repeats} runs; per core = files/s "
              f"/ workers; 'steady' = the {len(paths) - len(paths) // 2} extra files of the big "
              f"run, so fixed costs (interpreter, imports, pool start) cancel:")
        folders = {len(paths): tmp_path / "raw", len(paths) // 2: half}
        warm = tmp_path / "warm"  # compiles bytecode and fills caches before the timed runs
        warm.mkdir()
        for path in paths[:22]:
            (warm / path.name).symlink_to(path.resolve())
        run_preprocess(warm, tmp_path / "warm.h5", max(args.workers))
        for folder in folders.values():  # the kernel's caches of every link (the first visit
            for path in folder.iterdir():  # of a new name costs more than a later one)
                path.read_bytes()
        runs = {(w, n): best_run(folder, tmp_path / f"w{w}-{n}.h5", w, args.repeats)
                for w in args.workers for n, folder in folders.items()}
        steady = {}
        for w in args.workers:
            big, small = runs[w, len(paths)], runs[w, len(paths) // 2]
            extra = big["samples"] - small["samples"]
            steady[w] = extra / (big["seconds"] - small["seconds"])  # files/s
            cpu_per_file = (big["cpu"] - small["cpu"]) / extra
            print(
                f"  --workers {w}: {big['files_per_s']:.0f} files/s, {big['mb_per_s']:.1f} MB/s "
                f"({big['samples']} samples in {big['seconds']:.2f} s, {big['wall']:.2f} s with "
                f"interpreter start) = {big['files_per_s'] / w / classic_fps:.1f}x classic per "
                f"core (wall); steady {steady[w]:.0f} files/s = "
                f"{steady[w] / w / classic_fps:.1f}x per core (wall)"
            )
            print(
                f"    CPU (every process of the tree): whole run {big['cpu']:.2f} s = "
                f"{big['samples'] / big['cpu']:.0f} files/CPU-s = "
                f"{big['samples'] / big['cpu'] / classic_cpu:.1f}x classic; steady "
                f"{cpu_per_file * 1e3:.3f} ms per file = {1 / cpu_per_file:.0f} files/CPU-s = "
                f"{1 / cpu_per_file / classic_cpu:.1f}x classic"
            )
            print(
                f"    peak RSS: {small['samples']} files {small['peak_tree_mb']:.0f} MiB, "
                f"{big['samples']} files {big['peak_tree_mb']:.0f} MiB (ratio "
                f"{big['peak_tree_mb'] / small['peak_tree_mb']:.2f}; summed over "
                f"{big['processes']} processes, largest {big['peak_process_mb']:.0f} MiB)"
            )
        first, *others = args.workers
        for w in others:
            print(
                f"scaling --workers {w} vs {first}: "
                f"{runs[w, len(paths)]['files_per_s'] / runs[first, len(paths)]['files_per_s']:.2f}x"
                f" end to end, {steady[w] / steady[first]:.2f}x steady "
                f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
            )
        for label, ratio, speed in filters(tmp_path / f"w{first}-{len(paths)}.h5"):
            print(f"hdf5 {label}: {ratio:.2f}x smaller than raw float32, writes {speed:.0f} MB/s")


if __name__ == "__main__":
    main()
