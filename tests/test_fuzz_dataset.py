"""Issue 19, property: a damaged dataset file (random byte flips, truncation) of a real fixture
dataset never gives `info`, `linear` or `retrieve --eval` a traceback, a multi-line error, a
non-finite result, or a failure that replaces the good result already in the output folder."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import make_run, ntu_raw, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skelctl.data.preprocess import PreprocessOptions, preprocess


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory, shared_fixtures: Path) -> Path:
    """real.h5 (`preprocess` of the real NTU fixtures), a GRU run, and the good results of
    `linear` and `retrieve --eval` on real.h5 in lin/ and knn/."""
    root = tmp_path_factory.mktemp("fuzz")
    raw = ntu_raw(shared_fixtures, root / "raw")
    preprocess("ntu60", raw, root / "real.h5", PreprocessOptions(workers=1))
    make_run(root / "runs", root / "real.h5", "run", arch="gru")
    for args in _commands(root, root / "real.h5")[1:]:
        code, _, stderr = run_cli(args)
        assert code == 0, stderr
    return root


def _commands(root: Path, data: Path) -> list[list[str]]:
    run = str(root / "runs" / "run")
    return [
        ["info", str(data), "--json"],
        ["linear", "--encoder", run, "--data", str(data), "--epochs", "1", "--no-cache",
         "--out", str(root / "lin"), "--json"],
        ["retrieve", "--eval", "--encoder", run, "--data", str(data), "--out", str(root / "knn"),
         "--json"],
    ]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


EXAMPLES = int(os.environ.get("SKELCTL_FUZZ_EXAMPLES", "12"))  # CI: few; set more to explore
# Where a flip lands: the file's head (superblock, root group) and tail (the index datasets and
# attributes, written at close) hold the structures, the middle mostly compressed frames.
REGIONS = {"head": 4096, "tail": 40_000, "anywhere": None}
flip = st.tuples(st.sampled_from(sorted(REGIONS)), st.floats(0, 1, exclude_max=True), st.integers(0, 7))
damage = st.one_of(
    st.tuples(st.just("flip"), st.lists(flip, min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
)


def _offset(size: int, region: str, fraction: float) -> int:
    span = min(REGIONS[region] or size, size)
    return size - 1 - int(fraction * span) if region == "tail" else int(fraction * span)


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(damage=damage)
def test_damaged_dataset_fails_cleanly(fuzz_root: Path, tmp_path: Path, damage: tuple) -> None:
    data = bytearray((fuzz_root / "real.h5").read_bytes())
    kind, where = damage
    if kind == "truncate":
        data = data[: int(where * len(data))]
    else:
        for region, fraction, bit in where:
            data[_offset(len(data), region, fraction)] ^= 1 << bit
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(bytes(data))
    for args in _commands(fuzz_root, damaged):
        out = fuzz_root / ("lin" if args[0] == "linear" else "knn")
        before = _snapshot(out)
        code, stdout, stderr = run_cli(args)
        assert code in (0, 1, 2), (args[0], code, stderr)
        documents = stdout.strip().splitlines()
        assert len(documents) <= 1, (args[0], stdout)
        if code != 0:
            lines = [line for line in stderr.splitlines() if line.strip()]
            assert len(lines) <= 1, (args[0], stderr)
            # with --json the one document is the failure's (README: JSON output and exit codes)
            assert all(json.loads(d)["ok"] is False for d in documents), (args[0], stdout)
            assert _snapshot(out) == before, (args[0], stderr)
        elif args[0] != "info":
            result = json.loads(documents[0])
            assert _finite(result) and _finite(json.loads((out / "result.json").read_text()))
