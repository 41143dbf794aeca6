"""The benchmark scripts keep working as the package moves: every `from skelctl... import` in
them (and in the package, whose imports are mostly lazy) resolves, and `bench_real.py` runs end
to end on real MSR Action3D with a two-step budget and shrunk schedules (a smoke run, not a
measurement)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(REPO / "benchmarks").glob("*.py"), *(REPO / "skelctl").rglob("*.py")])


def unresolved_imports(path: Path) -> list[str]:
    """`module:name` for each `from skelctl.X import name` in `path` that does not resolve."""
    missing = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                and node.module.split(".")[0] == "skelctl"):
            continue
        try:
            module = importlib.import_module(node.module)
        except ImportError:
            missing.append(f"{node.module} (line {node.lineno})")
            continue
        for alias in node.names:
            if not hasattr(module, alias.name) and not (
                    hasattr(module, "__path__") and importlib.util.find_spec(f"{node.module}.{alias.name}")):
                missing.append(f"{node.module}:{alias.name} (line {node.lineno})")
    return missing


def test_every_skelctl_import_resolves() -> None:
    assert len(SOURCES) > 90
    broken = {p.relative_to(REPO).as_posix(): m for p in SOURCES if (m := unresolved_imports(p))}
    assert broken == {}


def test_an_unresolved_import_is_reported(tmp_path: Path) -> None:
    source = tmp_path / "stale.py"
    source.write_text("def f():\n    from skelctl.evaluate.protocols import override\n"
                      "    from skelctl.evaluate.heads import override, no_such_name\n")
    assert unresolved_imports(source) == ["skelctl.evaluate.protocols (line 2)",
                                          "skelctl.evaluate.heads:no_such_name (line 3)"]


@pytest.fixture(scope="module")
def bench_real():
    spec = importlib.util.spec_from_file_location("bench_real", REPO / "benchmarks" / "bench_real.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_real"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench_real"]


def test_bench_real_runs_end_to_end(bench_real, tmp_path: Path) -> None:
    out = tmp_path / "out"
    threads = torch.get_num_threads()  # main() sets its --threads for the whole process
    try:
        rc = bench_real.main(["--datasets", "msr3d", "--methods", "isc", "--steps", "2", "--seeds", "0",
                              "--supervised", "--quick", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    cell = results["datasets"]["msr3d"]["methods"]["isc"]
    rows = cell["rows"]
    assert set(rows) == set(bench_real.ROWS)
    for row, protocols in {"raw": ("linear", "knn1"), "random": ("linear", "knn1", "semisup10"),
                           "pretrained": ("linear", "knn1", "semisup10"),
                           "pretrained_graph": ("linear", "knn1"), "supervised": ("finetune",)}.items():
        for protocol in protocols:
            assert 0.0 <= rows[row][protocol]["mean"] <= 100.0, (row, protocol)
    assert rows["pretrained"]["arch"] == rows["random"]["arch"] == "gru"
    assert cell["pretraining"][0]["steps"] >= 2
    assert {t["target"][:3] for t in cell["targets"]} >= {"(a)", "(b)", "(d)"}
    report = (out / "results.md").read_text()
    assert "MSR Action3D" in report and "pretrained (graph encoder)" in report


def test_pretraining_precision_is_fp32_on_cpu_unless_asked(bench_real, tmp_path: Path) -> None:
    data = tmp_path / "msr.h5"  # only named in the config: nothing is read
    configs = {p: bench_real.method_config("isc", "msr3d", data, bench_real.Settings(out=tmp_path, precision=p), 0)
               for p in (None, "bf16", "auto")}
    assert {p: c.train.precision for p, c in configs.items()} == {None: "fp32", "bf16": "bf16", "auto": "auto"}
    assert bench_real.parse_args(["--precision", "bf16", "--out", str(tmp_path)]).precision == "bf16"


def test_targets_show_the_pretraining_seeds_a_mean_hides(bench_real) -> None:
    def cells(key: str, values: dict[int, list[float]]) -> dict:
        return {"mean": sum(sum(v) for v in values.values()) / sum(len(v) for v in values.values()),
                "runs": [{key: p, "top1": x} for p, v in values.items() for x in v]}

    rows = {"raw": {"knn1": {"mean": 57.9}},
            "random": {"linear": cells("init_seed", {0: [28.9], 1: [31.9]})},
            "pretrained": {"arch": "gru", "knn1": cells("pretrain_seed", {0: [56.8], 1: [61.9]}),
                           "linear": cells("pretrain_seed", {0: [79.0, 79.6], 1: [81.0, 81.4]})}}
    found = {t["target"][:3]: t for t in bench_real.targets("nwucla", "isc", rows)}
    assert found["(a)"]["status"] == "met"  # 59.35 > 57.9 on the mean
    assert [c["met"] for c in found["(a)"]["by_seed"]] == [False, True]
    assert "1 of 2 met (missed: seed 0 56.8 vs 57.9)" in bench_real.target_text(found["(a)"])
    assert [(c["seed"], c["value"], c["met"]) for c in found["(c)"]["by_seed"]] == [(0, 79.3, False),
                                                                                   (1, 81.2, True)]
    assert [(c["need"], c["met"]) for c in found["(b)"]["by_seed"]] == [(38.9, True), (41.9, True)]
    assert found["(e)"]["status"] == "not measured"
