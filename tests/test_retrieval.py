"""Retrieval: FAISS against brute force, recall of approximate indexes, k-NN votes, queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_run, write_tiny_dataset

from skelctl.augment.inputs import ClipView
from skelctl.data.clipfile import as_clip
from skelctl.data.clips import ClipBank
from skelctl.data.layout import get_layout
from skelctl.data.store import open_dataset
from skelctl.engine.checkpoint import load_encoder
from skelctl.errors import SkelctlError
from skelctl.evaluate import index as index_module
from skelctl.evaluate.features import embed
from skelctl.evaluate.index import (
    GalleryIndex,
    bf16_error_bound,
    build_faiss,
    default_params,
    exact_search,
    load_index,
    measure_recall,
    normalized,
    save_index,
)
from skelctl.evaluate.jobs import clip_source, resolve_job
from skelctl.evaluate.retrieval import (
    build_gallery,
    ensemble_features,
    evaluate_knn,
    expand_queries,
    index_encoder,
    knn_accuracy,
    knn_evaluate,
    memory_gallery,
    query_gallery,
    run_index,
)


def _brute_force(gallery: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q.astype(np.float64) @ g.T.astype(np.float64)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), order


def _assert_same_neighbours(gallery: np.ndarray, queries: np.ndarray, positions: np.ndarray,
                            sims: np.ndarray, k: int) -> None:
    """`positions` are a correct top-k: their exact similarities are the k best (order among
    items closer than float32 resolution may differ) and `sims` are those similarities."""
    want_sims, want_positions = _brute_force(gallery, queries, k)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    got = np.einsum("qd,qkd->qk", q.astype(np.float64), g[positions].astype(np.float64))
    assert np.allclose(got, want_sims, atol=1e-6)
    assert np.allclose(sims, want_sims, atol=1e-5)
    assert np.mean(positions == want_positions) > 0.99  # the same items, up to near-ties


def _gallery(features: np.ndarray, ids: np.ndarray, index_type: str = "exact") -> GalleryIndex:
    unit = normalized(features)
    meta = {"ids": ids.tolist(), "labels": [0] * len(ids), "names": [str(i) for i in ids],
            "class_names": ["a"]}
    return GalleryIndex(build_faiss(unit, ids, index_type), meta)


def test_exact_index_equals_numpy_cosine_search() -> None:
    rng = np.random.default_rng(0)
    gallery, queries = rng.normal(size=(500, 24)), rng.normal(size=(40, 24))
    ids = rng.permutation(10_000)[:500]  # sparse, unsorted dataset indices
    sims, positions = _gallery(gallery, ids).search(normalized(queries), 7)
    _assert_same_neighbours(gallery, queries, positions, sims, 7)


@pytest.mark.parametrize("fast", [False, True])
def test_exact_search_equals_numpy(monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    """Both paths of `exact_search`: fp32 tiles, and bf16 candidates certified, escalated or
    redone in fp32. Clusters of near-duplicates (1e-3 apart, which bf16 cannot separate) make
    queries near them fail certification: 60 copies fit the second pass's 160 candidates,
    300 copies do not."""
    monkeypatch.setattr(index_module, "SEARCH_TILE", (64, 256))  # several tiles each way
    calls: list[tuple[torch.dtype, int, int]] = []
    tiled = index_module._tiled_topk

    def spy(gallery: torch.Tensor, queries: torch.Tensor, k: int):
        calls.append((gallery.dtype, len(queries), k))
        return tiled(gallery, queries, k)

    monkeypatch.setattr(index_module, "_tiled_topk", spy)
    if fast:
        monkeypatch.setattr(index_module, "BF16_MIN_WORK", 0)
        monkeypatch.setattr(index_module, "_bf16_is_faster", lambda device: True)
    rng = np.random.default_rng(6)
    base = rng.normal(size=(400, 32))
    copies = [base[[0] * 300], base[[1] * 60]]
    gallery = normalized(np.concatenate([base, *(c + 1e-3 * rng.normal(size=c.shape) for c in copies)]))
    near = np.concatenate([rng.integers(0, 400, 200), [0] * 10, [1] * 10])
    queries = normalized(base[near] + 0.05 * rng.normal(size=(220, 32)))
    sims, positions = exact_search(torch.from_numpy(gallery), torch.from_numpy(queries), 5)
    _assert_same_neighbours(gallery, queries, positions.numpy(), sims.numpy(), 5)
    if fast:
        assert [(dtype, k) for dtype, _, k in calls] == [
            (torch.bfloat16, 20), (torch.bfloat16, 160), (torch.float32, 5)]
        assert calls[1][1] >= 20 and calls[2][1] >= 10  # both clusters' queries escalated
    else:
        assert calls == [(torch.float32, 220, 5)]


def test_exact_search_with_negative_similarities(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bf16 pass ranks raw bits as int16, right only for values >= 0: queries whose every
    similarity is negative must not be certified from it, and still get the exact answer."""
    monkeypatch.setattr(index_module, "SEARCH_TILE", (64, 256))
    monkeypatch.setattr(index_module, "BF16_MIN_WORK", 0)
    monkeypatch.setattr(index_module, "_bf16_is_faster", lambda device: True)
    rng = np.random.default_rng(8)
    gallery = normalized(np.abs(rng.normal(size=(700, 16))))
    queries = normalized(np.concatenate([-np.abs(rng.normal(size=(40, 16))), rng.normal(size=(40, 16))]))
    sims, positions = exact_search(torch.from_numpy(gallery), torch.from_numpy(queries), 3)
    _assert_same_neighbours(gallery, queries, positions.numpy(), sims.numpy(), 3)
    assert (sims[:40] < 0).all()


def test_bf16_error_bound_holds() -> None:
    rng = np.random.default_rng(7)
    for dim in (3, 256, 2048):
        a = torch.from_numpy(normalized(rng.normal(size=(200, dim))))
        b = torch.from_numpy(normalized(rng.normal(size=(300, dim))))
        adversarial = torch.from_numpy(normalized(np.abs(rng.normal(size=(50, dim)))))  # sims ~1
        for x, y in ((a, b), (adversarial, adversarial)):
            error = (x.bfloat16() @ y.bfloat16().T).float() - x.double().mm(y.double().T).float()
            assert error.abs().max().item() < bf16_error_bound(dim)


@pytest.mark.parametrize("index_type", ["ivf", "hnsw"])
def test_approximate_recall_matches_own_computation(index_type: str) -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(50, 16))
    gallery = normalized(centres[rng.integers(0, 50, 4000)] + 0.5 * rng.normal(size=(4000, 16)))
    queries = normalized(centres[rng.integers(0, 50, 200)] + 0.5 * rng.normal(size=(200, 16)))
    ids = np.arange(4000) * 3
    params = default_params(index_type, len(gallery))
    if index_type == "ivf":
        params["nprobe"] = 2  # few lists probed: recall visibly below 1
    index = build_faiss(gallery, ids, index_type, params)
    reported = measure_recall(index, gallery, ids, queries, ks=(1, 10))

    _, exact = _brute_force(gallery, queries, 10)
    found = index.search(queries, 10)[1]
    for k in (1, 10):
        own = np.mean([len(set(f[:k]) & set(ids[e[:k]])) / k for f, e in zip(found, exact, strict=True)])
        assert reported[f"recall@{k}"] == pytest.approx(own, abs=1e-4)
    assert reported["queries"] == 200
    if index_type == "ivf":
        assert reported["recall@10"] < 1.0


def test_knn_votes() -> None:
    def acc(sims, labels, truth, k, classes=3):
        result = knn_accuracy(np.array([sims]), np.array([labels]), np.array([truth]), [k], classes)
        return result["knn"][str(k)]

    # two neighbours of class 1 outvote a closer one of class 0, unless weighted by exp(sim/0.1)
    assert acc([0.9, 0.8, 0.7], [0, 1, 1], 1, 3) == {"majority": 100.0, "weighted": 0.0}
    assert acc([0.9, 0.5, 0.45], [0, 1, 1], 0, 3) == {"majority": 0.0, "weighted": 100.0}
    # a 1-1 tie goes to the class with the larger similarity
    assert acc([0.9, 0.8], [2, 1], 2, 2)["majority"] == 100.0
    assert acc([0.8, 0.9], [1, 2], 2, 2)["majority"] == 100.0
    # missing neighbours (-1, from an approximate index) do not vote
    assert acc([0.9, 0.0, 0.0], [1, -1, -1], 1, 3) == {"majority": 100.0, "weighted": 100.0}
    result = knn_accuracy(np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]] * 2),
                          np.array([[0, 1, 1, 1, 1, 2], [2, 0, 0, 0, 0, 0]]),
                          np.array([2, 2]), [1], 3)
    assert result["top1"] == 50.0 and result["top5"] == 50.0  # row 0's label 2 is 6th


def clustered(seed: int, classes: int, dim: int, sizes: tuple[int, int], spread: float):
    """Unit-norm gallery and query features around one random centre per class, with labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    g_labels, q_labels = rng.integers(0, classes, sizes[0]), rng.integers(0, classes, sizes[1])
    gallery = normalized(centres[g_labels] + spread * rng.normal(size=(sizes[0], dim)))
    queries = normalized(centres[q_labels] + spread * rng.normal(size=(sizes[1], dim)))
    return gallery, g_labels, queries, q_labels


def test_the_pretraining_monitor_and_the_knn_protocol_cast_the_same_weighted_vote() -> None:
    from skelctl.engine.knn import weighted_knn_top1

    gallery, g_labels, queries, q_labels = clustered(3, classes=5, dim=16, sizes=(200, 50), spread=2.0)
    ks = [1, 5, 20]
    protocol = knn_evaluate(memory_gallery(gallery, np.arange(200), g_labels, [str(i) for i in range(200)],
                                           [str(c) for c in range(5)]), queries, q_labels, ks)
    monitor = weighted_knn_top1(torch.from_numpy(gallery), torch.from_numpy(g_labels),
                                torch.from_numpy(queries), torch.from_numpy(q_labels), ks)
    assert {k: protocol["knn"][str(k)]["weighted"] for k in ks} == {k: round(v, 4) for k, v in monitor.items()}
    assert len({protocol["knn"][str(k)]["weighted"] for k in ks}) > 1  # the k values differ


def test_knn_evaluate_matches_explicit_loops() -> None:
    gallery, g_labels, queries, q_labels = clustered(5, classes=4, dim=8, sizes=(300, 60), spread=1.5)
    ids = np.arange(300) + 1000
    index = memory_gallery(gallery, ids, g_labels, [str(i) for i in ids], list("abcd"))
    result = knn_evaluate(index, queries, q_labels, [1, 5])
    sims = queries.astype(np.float64) @ gallery.T.astype(np.float64)
    one, five, weighted = 0, 0, 0
    for i in range(60):
        order = np.argsort(-sims[i])[:5]
        one += g_labels[order[0]] == q_labels[i]
        counts = np.bincount(g_labels[order], minlength=4).astype(float)
        counts += np.bincount(g_labels[order], weights=sims[i, order], minlength=4) / 11
        five += counts.argmax() == q_labels[i]
        votes = np.bincount(g_labels[order], weights=np.exp(sims[i, order] / 0.1), minlength=4)
        weighted += votes.argmax() == q_labels[i]
    assert result["top1"] == pytest.approx(100 * one / 60, abs=1e-3)
    assert result["knn"]["5"]["majority"] == pytest.approx(100 * five / 60, abs=1e-3)
    assert result["knn"]["5"]["weighted"] == pytest.approx(100 * weighted / 60, abs=1e-3)
    assert 30 < result["top1"] < 95  # a non-trivial case


def test_ensemble_features_average_cosines() -> None:
    rng = np.random.default_rng(2)
    a, b = normalized(rng.normal(size=(5, 8))), normalized(rng.normal(size=(5, 4)))
    joined = ensemble_features([a, b])
    assert np.allclose(joined @ joined[0], (a @ a[0] + b @ b[0]) / 2, atol=1e-6)


def test_query_array_layouts_and_errors(tmp_path: Path) -> None:
    layout = get_layout("ntu25")
    rng = np.random.default_rng(3)
    clip = rng.normal(size=(10, 2, 25, 3)).astype(np.float32)
    assert np.array_equal(as_clip(clip, layout, 2, 3, tmp_path), clip)
    assert np.array_equal(as_clip(clip.transpose(3, 0, 2, 1), layout, 2, 3, tmp_path), clip)
    one = as_clip(clip[:, 0], layout, 2, 3, tmp_path)
    assert np.array_equal(one[:, 0], clip[:, 0]) and not one[:, 1].any()
    bad = {
        "has shape": rng.normal(size=(10, 24, 3)),
        "bodies": rng.normal(size=(10, 3, 25, 3)),
        "no frames": np.zeros((0, 25, 3)),
        "NaN": np.where(np.arange(750).reshape(10, 25, 3) == 7, np.nan, 1.0),
    }
    for message, array in bad.items():
        with pytest.raises(SkelctlError, match=message):
            as_clip(array, layout, 2, 3, tmp_path)
    (tmp_path / "queries").mkdir()
    np.save(tmp_path / "queries" / "b.npy", clip)
    np.save(tmp_path / "queries" / "a.npy", clip)
    (tmp_path / "queries" / "notes.txt").write_text("ignored")
    assert [p.name for p in expand_queries([str(tmp_path / "queries")])] == ["a.npy", "b.npy"]
    import io

    listed = expand_queries(["-"], io.StringIO(f"{tmp_path}/queries/b.npy\n\n"))
    assert listed == [tmp_path / "queries" / "b.npy"]
    with pytest.raises(SkelctlError, match="not found"):
        expand_queries([str(tmp_path / "missing.npy")])


def test_save_load_replace_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    gallery = _gallery(rng.normal(size=(30, 8)), np.arange(30))
    meta = {**gallery.meta, "index_type": "exact", "dim": 8, "encoder": {"sha256": "x"}}
    save_index(tmp_path / "idx", gallery.index, meta)
    loaded = load_index(tmp_path / "idx")
    assert loaded.index.ntotal == 30 and loaded.meta["format"] == "skelctl-index/1"
    save_index(tmp_path / "idx", gallery.index, {**meta, "note": "second"})  # replaces
    assert load_index(tmp_path / "idx").meta["note"] == "second"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporaries left"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(SkelctlError, match="not a skelctl index"):
        save_index(tmp_path / "mine", gallery.index, meta)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    with pytest.raises(SkelctlError, match="not a skelctl index"):
        load_index(tmp_path / "mine")
    (tmp_path / "idx" / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(SkelctlError, match="unreadable FAISS index"):
        load_index(tmp_path / "idx")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("retrieval")
    data = write_tiny_dataset(root / "tiny.h5", per_class_train=8, per_class_test=4)
    return make_run(root, data, arch="gru")


def _features(run: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    encoder, info = load_encoder(run)
    ds = open_dataset(info.dataset)
    idx = ds.split("xsub", part)
    bank = ClipBank.from_dataset(ds, idx, "cpu")
    return normalized(embed(encoder, bank, ClipView(info.frames, "joint", ds.layout), 1.0).numpy()), idx


def test_knn_evaluation_matches_numpy(tiny_run: Path) -> None:
    result = evaluate_knn(resolve_job([str(tiny_run)], device="cpu"), [1, 5])
    gallery, train_idx = _features(tiny_run, "train")
    queries, test_idx = _features(tiny_run, "test")
    labels = open_dataset(tiny_run.parent / "tiny.h5").labels
    nearest = np.argmax(queries @ gallery.T, axis=1)
    own = 100.0 * np.mean(labels[train_idx][nearest] == labels[test_idx])
    assert result["top1"] == pytest.approx(own, abs=1e-3)
    assert result["protocol"] == "knn-cosine" and "1-NN" in result["description"]
    assert set(result["knn"]) == {"1", "5"} and result["knn"]["1"]["majority"] == result["top1"]
    assert result["num_gallery"] == 32 and result["num_queries"] == 16


def test_gallery_queries_find_themselves_and_check_the_encoder(tiny_run: Path, tmp_path: Path) -> None:
    job = resolve_job([str(tiny_run)], device="cpu")
    loaded, view = job.encoders[0], job.views[0]
    gallery = build_gallery(clip_source(job), loaded, view, "xsub", "train", 1.0, "exact")
    save_index(tmp_path / "idx", gallery.index, gallery.meta)
    gallery = load_index(tmp_path / "idx")
    ds = job.dataset
    sample = int(ds.split("xsub", "train")[5])
    clip = ds.clip(sample)
    np.save(tmp_path / "q.npy", clip)
    np.save(tmp_path / "q_ctvm.npy", clip.transpose(3, 0, 2, 1))
    paths = [tmp_path / "q.npy", tmp_path / "q_ctvm.npy"]
    for matches in query_gallery(gallery, index_encoder(gallery, None, tmp_path), paths, 3, job.device):
        assert matches[0].name == ds.names[sample] and matches[0].rank == 1
        assert matches[0].similarity == pytest.approx(1.0, abs=1e-5)
        assert matches[0].class_name == ds.class_names[ds.labels[sample]]
        assert len(matches) == 3 and matches[0].similarity >= matches[1].similarity

    other = make_run(tmp_path, job.dataset_path, "other", seed=9, arch="gru")
    with pytest.raises(SkelctlError, match="built by another encoder"):
        index_encoder(gallery, str(other), tmp_path / "idx")


def test_approximate_gallery_reports_recall(tiny_run: Path) -> None:
    job = resolve_job([str(tiny_run)], device="cpu")
    gallery = build_gallery(clip_source(job), job.encoders[0], job.views[0], "xsub", "train", 1.0,
                            "hnsw")
    recall = gallery.meta["recall"]
    features, train_idx = _features(tiny_run, "train")
    queries, _ = _features(tiny_run, "test")  # all 16 test clips (fewer than 1,000)
    _, exact = _brute_force(features, queries, 10)
    found = gallery.index.search(queries, 10)[1]
    own = np.mean([len(set(f) & set(train_idx[e])) / 10 for f, e in zip(found, exact, strict=True)])
    assert recall["queries"] == 16 and recall["recall@10"] == pytest.approx(own, abs=1e-4)


def test_run_index_is_built_once_and_rebuilt_for_a_new_encoder(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    job = resolve_job([str(run)], device="cpu")
    first = run_index(run, clip_source(job), job.encoders[0], job.views[0], "xsub", 1.0)
    stamp = (run / "index" / "meta.json").stat().st_mtime_ns
    run_index(run, clip_source(job), job.encoders[0], job.views[0], "xsub", 1.0)
    assert (run / "index" / "meta.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    newer = make_run(tmp_path, job.dataset_path, "newer", seed=5, arch="gru")
    shutil.copy(newer / "encoder.pt", run / "encoder.pt")
    job = resolve_job([str(run)], device="cpu")
    second = run_index(run, clip_source(job), job.encoders[0], job.views[0], "xsub", 1.0)
    assert second.meta["encoder"]["sha256"] != first.meta["encoder"]["sha256"]
    assert load_index(run / "index").meta["encoder"]["sha256"] == job.encoders[0].sha256


def test_encoder_features_are_spread(tiny_run: Path) -> None:
    """Guards the tests above: with near-identical directions every search would tie."""
    features, _ = _features(tiny_run, "train")
    sims = features @ features.T
    assert sims.min() < 0.99


def test_raw_skeleton_query_is_preprocessed_like_the_gallery(shared_fixtures: Path, tmp_path: Path) -> None:
    """Real NTU files preprocessed with centring and view alignment; querying with one of the
    raw files (or its stored clip, already normalised: both steps are idempotent) finds it."""
    from skelctl.data.preprocess import PreprocessOptions, preprocess

    data = tmp_path / "real.h5"
    preprocess("ntu60", shared_fixtures / "ntu", data, PreprocessOptions(center=True, align=True, workers=1))
    run = make_run(tmp_path, data, arch="gru")
    job = resolve_job([str(run)], device="cpu")
    gallery = build_gallery(clip_source(job), job.encoders[0], job.views[0], "xsub", "train", 1.0,
                            "exact")
    assert gallery.meta["preprocess_options"]["align"] is True
    name = "S001C003P008R002A058"  # two performers
    position = gallery.names.index(name)
    np.save(tmp_path / "stored.npy", job.dataset.clip(int(gallery.meta["ids"][position])))
    paths = [shared_fixtures / "ntu" / f"{name}.skeleton", tmp_path / "stored.npy"]
    for matches in query_gallery(gallery, job.encoders[0], paths, 2, job.device):
        assert matches[0].name == name
        assert matches[0].similarity == pytest.approx(1.0, abs=1e-5)
        assert matches[1].similarity < 0.9999
