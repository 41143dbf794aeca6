"""The evaluation commands as a user runs them: defaults from runs/latest, JSON on stdout,
one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import make_run, run_skelctl, write_tiny_dataset

from skelctl.data.store import open_dataset

RESULT_KEYS = {"protocol", "top1", "top5", "epoch", "epochs", "streams", "schedule", "dataset",
               "benchmark", "encoders", "num_train", "num_test", "out"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny.h5, runs/run (a GRU run) with runs/latest pointing at it, runs/other (another GRU)."""
    root = tmp_path_factory.mktemp("cli")
    data = write_tiny_dataset(root / "tiny.h5", per_class_train=8, per_class_test=4)
    make_run(root / "runs", data, "run", arch="gru")
    make_run(root / "runs", data, "other", arch="gru", seed=4)
    (root / "runs" / "latest").symlink_to("run")
    return root


def skelctl(root: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`skelctl ARGS` with runs/ and the data root in `root`."""
    return run_skelctl(*args, env={"SKELCTL_RUNS": str(root / "runs"), "SKELCTL_DATA": str(root)},
                       stdin=stdin)


def _json(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0])


def test_linear_defaults_to_latest_run(workspace: Path) -> None:
    result = _json(skelctl(workspace, "linear", "--epochs", "2", "--json"))
    assert RESULT_KEYS <= set(result)
    assert result["protocol"] == "linear" and result["epoch"] == "last" and result["epochs"] == 2
    assert result["out"] == str((workspace / "runs" / "run" / "eval" / "linear-xsub").resolve())
    assert result["benchmark"] == "xsub" and result["dataset"] == str(workspace / "tiny.h5")
    assert (Path(result["out"]) / "confusion.csv").is_file()


def test_semisup_finetune_and_random_baseline(workspace: Path, tmp_path: Path) -> None:
    semi = _json(skelctl(workspace, "semisup", "--fraction", "0.1", "--epochs", "1", "--json"))
    assert RESULT_KEYS | {"fraction", "labelled"} <= set(semi)
    assert semi["protocol"] == "semisup-0.1" and semi["num_train"] == 4  # 1 per class
    tune = _json(skelctl(workspace, "finetune", "--epochs", "1", "--json", "--out", str(tmp_path / "ft")))
    assert tune["protocol"] == "finetune" and tune["num_train"] == 32
    assert tune["out"] == str(tmp_path / "ft")
    scratch = _json(skelctl(workspace, "linear", "--encoder", "random:stgcn", "--data", "tiny",
                            "--epochs", "1", "--out", str(tmp_path / "rnd"), "--json"))
    assert scratch["encoders"][0]["source"] == "random:stgcn"
    assert scratch["schedule"]["lr"] == 3.0  # SkeleMixCLR's protocol for an ST-GCN


def test_retrieve_build_query_eval(workspace: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    summary = _json(skelctl(workspace, "retrieve", "--build", str(index), "--json"))
    assert summary["count"] == 32 and summary["index_type"] == "exact" and summary["recall"] is None
    assert (index / "index.faiss").is_file() and (index / "meta.json").is_file()

    ds = open_dataset(workspace / "tiny.h5")
    picks = [int(ds.split("xsub", "train")[i]) for i in (0, 9)]
    queries = []
    for i in picks:
        queries.append(tmp_path / f"{ds.names[i]}.npy")
        np.save(queries[-1], ds.clip(i))
    table = skelctl(workspace, "retrieve", "--index", str(index), "--query", str(queries[0]), "-k", "3")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.strip().splitlines()
    assert lines[0] == f"query: {queries[0]}" and lines[1].split() == ["rank", "name", "class", "similarity"]
    assert lines[2].split()[:2] == ["1", ds.names[picks[0]]] and len(lines) == 5

    listed = skelctl(workspace, "retrieve", "--index", str(index), "--query", "-", "--json",
                     stdin="\n".join(str(q) for q in queries) + "\n")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["query"] for r in rows] == [str(q) for q in queries]
    for row, i in zip(rows, picks, strict=True):
        assert len(row["results"]) == 10
        assert set(row["results"][0]) == {"rank", "name", "label", "class", "similarity"}
        assert row["results"][0]["name"] == ds.names[i]
        assert row["results"][0]["similarity"] == pytest.approx(1.0, abs=1e-5)

    result = _json(skelctl(workspace, "retrieve", "--index", str(index), "--eval", "--json"))
    assert {"protocol", "description", "top1", "top5", "knn", "index", "num_gallery",
            "num_queries"} <= set(result)
    assert result["protocol"] == "knn-cosine" and result["index"] == str(index)
    direct = _json(skelctl(workspace, "retrieve", "--eval", "--k-list", "1,3", "--json"))
    assert direct["top1"] == result["top1"] and set(direct["knn"]) == {"1", "3"}
    assert (workspace / "runs" / "run" / "eval" / "knn-xsub" / "result.json").is_file()


def test_query_alone_uses_the_latest_runs_index(workspace: Path, tmp_path: Path) -> None:
    ds = open_dataset(workspace / "tiny.h5")
    np.save(tmp_path / "q.npy", ds.clip(3))
    done = skelctl(workspace, "retrieve", "--query", str(tmp_path / "q.npy"), "-k", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].split()[1] == ds.names[3]
    assert (workspace / "runs" / "run" / "index" / "meta.json").is_file()


def test_bad_queries_fail_with_one_line(workspace: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    assert skelctl(workspace, "retrieve", "--build", str(index)).returncode == 0
    np.save(tmp_path / "shape.npy", np.zeros((10, 20, 3), np.float32))
    nan = np.ones((10, 25, 3), np.float32)
    nan[3, 4, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    (tmp_path / "text.npy").write_text("not an array")
    good = tmp_path / "good.npy"
    np.save(good, np.ones((10, 25, 3), np.float32))
    cases = {
        "has shape (10, 20, 3)": ["--index", str(index), "--query", str(tmp_path / "shape.npy")],
        "NaN": ["--index", str(index), "--query", str(good), "--query", str(tmp_path / "nan.npy")],
        "not a readable .npy": ["--index", str(index), "--query", str(tmp_path / "text.npy")],
        "not found": ["--index", str(index), "--query", str(tmp_path / "missing.npy")],
        "built by another encoder": ["--index", str(index), "--encoder",
                                     str(workspace / "runs" / "other"), "--query", str(good)],
        "not a skelctl index": ["--index", str(tmp_path), "--query", str(good)],
        "exactly one of": ["--index", str(index)],
    }
    for message, args in cases.items():
        done = skelctl(workspace, "retrieve", *args)
        assert done.returncode == 2, (message, done.stderr)
        assert done.stdout == "", message  # nothing half-printed, even for the good first query
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines


def test_help_of_every_command_shows_plain_metavars() -> None:
    """No typer placeholders in --help: flags show no value, arguments and options their name
    (`OUT_DIR`, `N`, `sgn|skelemix|isc|none`), never `<bool>`, `<int range>`, `{out_dir}` or
    `[[SAMPLE|INDEX]]`."""
    from typer.testing import CliRunner

    from skelctl.cli.app import COMMANDS, app

    runner = CliRunner()
    for name in [m.__name__.rsplit(".", 1)[1] for m in COMMANDS]:
        done = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
        assert done.exit_code == 0, (name, done.output)
        assert "Usage: skelctl " + name in done.output
        for placeholder in ("<bool>", "<int", "<float", "<str>", "<path>", "{", "[["):
            assert placeholder not in done.output, (name, placeholder, done.output)
