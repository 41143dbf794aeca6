"""Pictures: every command renders a valid, non-blank image of the right kind, draws what the
data holds (both actors, absent bodies left out), and fails on bad input with one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

from skelctl.data.formats import read_pku_skeleton
from skelctl.data.layout import get_layout
from skelctl.data.store import DatasetWriter, open_dataset
from skelctl.engine.rundir import RunDir
from skelctl.errors import SkelctlError
from skelctl.evaluate.index import build_faiss, normalized, save_index
from skelctl.viz import INSTALL_HINT
from skelctl.viz.curves import build_panels
from skelctl.viz.embedding import pca_2d, read_gallery
from skelctl.viz.skeleton import ACTOR_COLOURS, draw_query_neighbours, frame_indices, projection

DPI = "60"
TWO_ACTORS = "S001C003P008R002A058.skeleton"  # real NTU file: two people shaking hands
BLUE, RED = (np.array([int(c[i : i + 2], 16) for i in (1, 3, 5)]) for c in ACTOR_COLOURS)


# --- helpers ------------------------------------------------------------------------------------


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.size[0] > 0 and image.size[1] > 0
        return np.asarray(image.convert("RGB"), dtype=np.int64)


def assert_picture(path: Path, min_colours: int = 3) -> np.ndarray:
    """A readable, non-blank image: pixel variance and several distinct colours."""
    rgb = pixels(path)
    assert rgb.std() > 5.0, f"{path} is (nearly) blank"
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(colours) >= min_colours, f"{path} has only {len(colours)} colours"
    assert not list(path.parent.glob(".*.tmp")), "a temporary file was left behind"
    return rgb


def colour_pixels(rgb: np.ndarray, colour: np.ndarray, tolerance: int = 40) -> int:
    """Pixels within `tolerance` (max channel difference) of `colour`."""
    return int((np.abs(rgb - colour).max(axis=-1) <= tolerance).sum())


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


# --- data ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, shared_fixtures) -> Path:
    """Real PKU-MMD motion: a solo clip, and a clip whose second actor (a shifted copy) only
    enters halfway, as the dataset stores absent actors: zeros."""
    video = read_pku_skeleton(shared_fixtures / "pku" / "A10N08-L.txt")
    solo = video[200:260].copy()
    solo[:, 1] = 0
    pair = video[300:360].copy()
    pair[:, 1] = pair[:, 0] + np.array([1.2, 0.0, 0.0], np.float32)
    pair[:30, 1] = 0
    path = tmp_path_factory.mktemp("viz") / "clips.h5"
    with DatasetWriter(path, "pku2", get_layout("ntu25"), ["wave", "meet"], [1, 2], {"align": False}) as w:
        w.add("solo", solo, 0)
        w.add("pair", pair, 1)
    return path


# --- skeletons ----------------------------------------------------------------------------------


def test_strip_draws_both_actors_and_leaves_absent_bodies_out(dataset, tmp_path):
    out = tmp_path / "pair.png"
    code, stdout, err = run_cli(["show", str(dataset), "pair", "-o", str(out),
                                "--frames", "2", "--dpi", DPI, "--json"])
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["frames"] == [0, 59] and summary["clip"] == "pair (#1): meet"
    rgb = assert_picture(out)
    # frame 1 (left panel): actor 2 is all zeros, so no red; frame 60 (right panel): both actors
    body = rgb[: int(rgb.shape[0] * 0.85)]  # above the actors' legend
    left, right = body[:, : rgb.shape[1] // 2], body[:, rgb.shape[1] // 2 :]
    assert colour_pixels(left, BLUE) > 50 and colour_pixels(left, RED) == 0
    assert colour_pixels(right, BLUE) > 50 and colour_pixels(right, RED) > 50


def test_sample_by_index_gives_the_same_picture_as_by_name(dataset, tmp_path):
    by_name, by_index = tmp_path / "a.png", tmp_path / "b.png"
    for sample, out in (("solo", by_name), ("0", by_index)):
        code, _, err = run_cli(["show", str(dataset), sample, "-o", str(out), "--dpi", DPI])
        assert code == 0, err
    rgb = assert_picture(by_name)
    assert np.array_equal(rgb, pixels(by_index))
    assert colour_pixels(rgb, BLUE) > 100 and colour_pixels(rgb, RED) == 0  # one actor only


def test_gif_animates_the_requested_frames(dataset, tmp_path):
    out = tmp_path / "clip.gif"
    code, _, err = run_cli(["show", str(dataset), "1", "-o", str(out),
                           "--frames", "5", "--fps", "10", "--dpi", DPI])
    assert code == 0, err
    with Image.open(out) as gif:
        assert gif.format == "GIF" and gif.n_frames == 5
        assert gif.info["duration"] == 100
        frames = []
        for k in range(gif.n_frames):
            gif.seek(k)
            frames.append(np.asarray(gif.convert("RGB"), dtype=np.int64))
    bodies = [frame[: int(frame.shape[0] * 0.9)] for frame in frames]  # above the actors' legend
    for body in bodies:
        assert body.std() > 5.0 and colour_pixels(body, BLUE) > 30
    assert colour_pixels(bodies[0], RED) == 0 and colour_pixels(bodies[-1], RED) > 30
    assert all(not np.array_equal(a, b) for a, b in zip(frames, frames[1:], strict=False))


def test_views_and_3d_render_different_pictures(dataset, tmp_path):
    rendered = {}
    for name, extra in (("front", []), ("side", ["--view", "side"]), ("top", ["--view", "top"]),
                        ("3d", ["--3d"])):
        out = tmp_path / f"{name}.png"
        code, _, err = run_cli(["show", str(dataset), "pair", "-o", str(out),
                               "--frames", "3", "--dpi", DPI, *extra])
        assert code == 0, err
        rendered[name] = assert_picture(out)
        assert colour_pixels(rendered[name], BLUE) > 30 and colour_pixels(rendered[name], RED) > 30
    assert not np.array_equal(rendered["front"], rendered["side"])
    assert not np.array_equal(rendered["front"], rendered["top"])
    assert rendered["3d"].shape == rendered["front"].shape and not np.array_equal(rendered["3d"], rendered["front"])


def test_projection_axes_follow_camera_space_and_view_alignment():
    assert projection("front").channels == (0, 1)  # x right, y up
    assert projection("side").channels == (2, 1)
    assert projection("top").channels == (0, 2)
    assert projection("front", aligned=True).channels == (0, 2)  # aligned: the spine is +z
    assert projection(three_d=True).channels == (0, 2, 1)  # matplotlib's vertical axis = up
    with pytest.raises(SkelctlError, match="needs depth"):
        projection("side", channels=2)
    assert frame_indices(60, 4).tolist() == [0, 20, 39, 59]
    assert frame_indices(3, 8).tolist() == [0, 1, 2]


def test_raw_ntu_file_shows_two_actors_with_their_class(shared_fixtures, tmp_path):
    out = tmp_path / "handshake.png"
    code, stdout, err = run_cli(["show", str(shared_fixtures / "ntu" / TWO_ACTORS),
                                "-o", str(out), "--frames", "3", "--dpi", DPI, "--json"])
    assert code == 0, err
    assert json.loads(stdout)["clip"] == "S001C003P008R002A058: handshaking"
    rgb = assert_picture(out)
    assert colour_pixels(rgb, BLUE) > 50 and colour_pixels(rgb, RED) > 50


def test_raw_ntu_gif_of_two_actors(shared_fixtures, tmp_path):
    out = tmp_path / "handshake.gif"
    code, _, err = run_cli(["show", str(shared_fixtures / "ntu" / TWO_ACTORS),
                           "-o", str(out), "--frames", "4", "--3d", "--dpi", DPI])
    assert code == 0, err
    with Image.open(out) as gif:
        assert gif.n_frames == 4
        gif.seek(2)
        frame = np.asarray(gif.convert("RGB"), dtype=np.int64)
    assert colour_pixels(frame, BLUE) > 30 and colour_pixels(frame, RED) > 30


def test_pku_text_and_npy_clips(shared_fixtures, tmp_path):
    pku = tmp_path / "pku.png"
    code, _, err = run_cli(["show", str(shared_fixtures / "pku" / "A10N08-L.txt"),
                           "-o", str(pku), "--frames", "4", "--dpi", DPI])
    assert code == 0, err
    assert colour_pixels(assert_picture(pku), BLUE) > 50
    video = read_pku_skeleton(shared_fixtures / "pku" / "A10N08-L.txt")
    single = tmp_path / "single.npy"
    np.save(single, video[:30, 0])  # (T, V, C): one body
    out = tmp_path / "npy.png"
    code, _, err = run_cli(["show", str(single), "-o", str(out), "--frames", "3",
                           "--view", "top", "--dpi", DPI])
    assert code == 0, err
    rgb = assert_picture(out)
    assert colour_pixels(rgb, BLUE) > 30 and colour_pixels(rgb, RED) == 0


@pytest.mark.parametrize(("args", "needles"), [
    (["{ds}", "nobody"], ["no sample named 'nobody'", "clips.h5"]),
    (["{ds}", "7"], ["sample index 7 outside 0..1"]),
    (["{ds}"], ["which sample?"]),
    (["{ds}", "solo", "--view", "under"], ["--view under"]),
    (["{missing}", "0"], ["dataset file not found"]),
    (["{bad_npy}"], ["clip has shape (4, 3)"]),
])
def test_bad_show_input_is_one_line_exit_2(dataset, tmp_path, args, needles):
    bad_npy = tmp_path / "bad.npy"
    np.save(bad_npy, np.zeros((4, 3), np.float32))
    where = {"ds": dataset, "missing": tmp_path / "none.h5", "bad_npy": bad_npy}
    out = tmp_path / "out.png"
    code, _, err = run_cli(["show", *(a.format(**where) for a in args), "-o", str(out)])
    one_line_error(code, err, *needles)
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_unsupported_picture_suffix_is_refused_before_drawing(dataset, tmp_path):
    code, _, err = run_cli(["show", str(dataset), "0", "-o", str(tmp_path / "x.bmp")])
    one_line_error(code, err, "unsupported picture type", ".png")


def test_query_and_neighbours_figure(dataset, tmp_path):
    ds = open_dataset(dataset)
    query, neighbours = ds.clip(1), [ds.clip(0), ds.clip(1), ds.clip(0)]
    titles = ["query: pair", "1. solo (wave) 0.91", "2. pair (meet) 0.88", "3. solo (wave) 0.80"]
    out = draw_query_neighbours(query, neighbours, titles, ds.layout, tmp_path / "nn.png", frames=4, dpi=60)
    rgb = assert_picture(out)
    rows = np.array_split(rgb, 4, axis=0)  # one row per clip, query first
    assert all(colour_pixels(row, BLUE) > 20 for row in rows)
    assert colour_pixels(rows[0], RED) > 0 and colour_pixels(rows[1], RED) == 0
    with pytest.raises(ValueError, match="titles"):
        draw_query_neighbours(query, neighbours, titles[:2], ds.layout, tmp_path / "bad.png")


# --- training curves ----------------------------------------------------------------------------


def write_metrics(run: Path, epochs: int = 3, steps: int = 4) -> None:
    """Records shaped as the engine's `_log` writes them, appended by `RunDir` itself."""
    rundir = RunDir(run)
    run.mkdir(parents=True, exist_ok=True)
    step = 0
    for epoch in range(1, epochs + 1):
        for _ in range(steps):
            step += 1
            rundir.append_metrics({"kind": "step", "epoch": epoch, "step": step, "loss": 6.0 / step,
                                   "loss_ins": 4.0 / step, "loss_trimmed": 2.0 / step,
                                   "lr": 0.01 * min(step, 4), "samples_per_s": 90.0 + step % 3})
        rundir.append_metrics({"kind": "epoch", "epoch": epoch, "step": step, "loss": 6.0 / step,
                               "loss_ins": 4.0 / step, "loss_trimmed": 2.0 / step, "lr": 0.04,
                               "samples_per_s": 91.0, "seconds": 1.5,
                               "knn": {"protocol": "weighted-knn", "top1@1": 20.0 + epoch, "top1@20": 30.0 + 2 * epoch}})


def test_curves_plot_every_logged_quantity(tmp_path):
    run = tmp_path / "run"
    write_metrics(run)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "step", "epoch": 4, "st')  # a run killed mid-write: skipped
    out = tmp_path / "curves.png"
    code, stdout, err = run_cli(["plot", str(run), "-o", str(out), "--dpi", DPI, "--json"])
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["records"] == 15
    assert summary["panels"] == ["loss", "learning rate", "throughput", "kNN monitor"]
    assert_picture(out, min_colours=10)


def test_curves_series_come_from_step_records_and_knn_from_epochs(tmp_path):
    run = tmp_path / "run"
    write_metrics(run, epochs=2, steps=3)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    panels = {p.title: p for p in build_panels(records)}
    assert list(panels["loss"].series) == ["loss", "loss_ins", "loss_trimmed"]
    assert panels["loss"].series["loss"] == ([1, 2, 3, 4, 5, 6], [6.0, 3.0, 2.0, 1.5, 1.2, 1.0])
    assert panels["kNN monitor"].series["top1@20"] == ([3, 6], [32.0, 34.0])


def test_curves_tolerate_missing_keys(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": 1, "loss": 3.0 - 0.1 * k, "acc": 10.0 * k}) + "\n" for k in range(8)))
    out = tmp_path / "curves.png"
    code, stdout, err = run_cli(["plot", str(run / "metrics.jsonl"), "-o", str(out),
                                "--dpi", DPI, "--json"])
    assert code == 0, err
    assert json.loads(stdout)["panels"] == ["loss", "acc"]
    assert_picture(out)


@pytest.mark.parametrize(("content", "needles"), [
    (None, ["no metrics.jsonl in this run directory"]),
    ("", ["no metrics logged yet"]),
    ('{"step": 1, "loss": 1.0}\n{"step": 2, loss\n{"step": 3, "loss": 0.5}\n', ["metrics.jsonl:2:", "not a JSON line"]),
    ('[1, 2]\n{"step": 1}\n', ["metrics.jsonl:1:", "expected a JSON object"]),
    ('{"step": 1, "kind": "step"}\n', ["nothing to plot"]),
])
def test_bad_metrics_are_one_line_exit_2(tmp_path, content, needles):
    run = tmp_path / "run"
    run.mkdir()
    if content is not None:
        (run / "metrics.jsonl").write_text(content)
    out = tmp_path / "curves.png"
    code, _, err = run_cli(["plot", str(run), "-o", str(out)])
    one_line_error(code, err, *needles)
    assert not out.exists()


# --- embedding maps -----------------------------------------------------------------------------


def write_index(directory: Path, index_type: str, classes: int = 6, per_class: int = 15) -> np.ndarray:
    """A real skelctl index dir over clustered unit vectors, ids shuffled; returns the vectors."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(classes), per_class)
    centres = rng.normal(size=(classes, 16))
    vectors = normalized(centres[labels] + 0.3 * rng.normal(size=(len(labels), 16)))
    ids = rng.permutation(10 * len(labels))[: len(labels)]
    params = {"nlist": 2, "nprobe": 2} if index_type == "ivf" else None
    index = build_faiss(vectors, ids, index_type, params)
    save_index(directory, index, {
        "index_type": index_type, "params": params or {}, "dim": 16, "count": len(ids),
        "ids": ids.tolist(), "names": [f"s{i}" for i in ids], "labels": labels.tolist(),
        "class_names": [f"action {c}" for c in range(classes)], "encoder": {"sha256": "x"}})
    return vectors


@pytest.mark.parametrize("index_type", ["exact", "ivf", "hnsw"])
def test_gallery_vectors_come_back_exactly_from_every_index_type(tmp_path, index_type):
    vectors = write_index(tmp_path / "index", index_type)
    gallery = read_gallery(tmp_path / "index")
    assert np.array_equal(gallery.vectors, vectors)
    assert gallery.class_names[5] == "action 5" and gallery.labels.tolist()[:2] == [0, 0]


def test_pca_matches_the_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([5.0, 3.0, 1.0, 0.5, 0.1])
    points, share = pca_2d(x)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(x, rowvar=False))
    top = eigenvectors[:, ::-1][:, :2]
    assert np.allclose(np.abs(points), np.abs((x - x.mean(axis=0)) @ top))
    assert np.allclose(share, eigenvalues[::-1][:2] / eigenvalues.sum())


def test_embedding_map_colours_classes(tmp_path):
    write_index(tmp_path / "index", "exact")
    out = tmp_path / "map.png"
    code, stdout, err = run_cli(["plot", "--embedding", str(tmp_path / "index"),
                                "-o", str(out), "--dpi", DPI, "--json"])
    assert code == 0, err
    assert json.loads(stdout) | {"out": None} == {"out": None, "index": str(tmp_path / "index"),
                                                  "method": "pca", "points": 90, "classes": 6}
    assert_picture(out, min_colours=20)


def test_tsne_without_scikit_learn_is_a_usage_error(tmp_path, monkeypatch):
    write_index(tmp_path / "index", "exact")
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    code, _, err = run_cli(["plot", "--embedding", str(tmp_path / "index"), "--method",
                           "tsne", "-o", str(tmp_path / "map.png")])
    one_line_error(code, err, "scikit-learn", "--method pca")


@pytest.mark.parametrize(("args", "needles"), [
    (["--embedding", "{tmp}/nowhere"], ["not a skelctl index"]),
    (["--embedding", "{tmp}/index", "--method", "umap"], ["--method umap"]),
    (["{tmp}", "--embedding", "{tmp}/index"], ["either RUN_DIR", "or --embedding"]),
    ([], ["either RUN_DIR"]),
])
def test_bad_plot_input_is_one_line_exit_2(tmp_path, args, needles):
    write_index(tmp_path / "index", "exact")
    code, _, err = run_cli(["plot", *(a.format(tmp=tmp_path) for a in args),
                           "-o", str(tmp_path / "map.png")])
    one_line_error(code, err, *needles)


# --- the optional extra -------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["show", "{ds}", "0"], ["plot", "{tmp}"]])
def test_missing_matplotlib_names_the_extra(dataset, tmp_path, monkeypatch, command):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    args = [a.format(ds=dataset, tmp=tmp_path) for a in command]
    code, _, err = run_cli([*args, "-o", str(tmp_path / "x.png")])
    one_line_error(code, err, INSTALL_HINT)


def test_missing_matplotlib_exit_code_of_the_real_process(dataset, tmp_path):
    script = ("import sys; sys.modules['matplotlib'] = None; "
              "from skelctl.cli.app import main; main()")
    proc = subprocess.run([sys.executable, "-c", script, "show", str(dataset), "0", "-o", str(tmp_path / "x.gif")],
                          capture_output=True, text=True, timeout=120)
    one_line_error(proc.returncode, proc.stderr, INSTALL_HINT)
    assert proc.stdout == ""
