"""The dataset file: round trip, lazy and in-memory reads agree, atomic writes, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from skelctl.data import store
from skelctl.data.denoise import select_bodies
from skelctl.data.formats import read_ntu_skeleton
from skelctl.data.layout import get_layout
from skelctl.data.store import DatasetWriter, open_dataset
from skelctl.errors import Rejection, SkelctlError

LAYOUT = get_layout("ntu25")
NTU = Path(__file__).parent / "fixtures" / "ntu"


def make_clips(rng: np.random.Generator, lengths: list[int]) -> list[np.ndarray]:
    return [rng.standard_normal((t, 2, 25, 3)).astype(np.float32) for t in lengths]


def write(path, clips):
    with DatasetWriter(
        path, "ntu60", LAYOUT, ["a", "b", "c"], [1, 2, 3], {"bodies": "denoise"}
    ) as w:
        for i, clip in enumerate(clips):
            w.add(f"s{i}", clip, label=i % 3, subject=i, camera=1 + i % 3, setup=2, replication=1)
        w.reject("raw/bad.skeleton", 7, "truncated")
        w.reject("raw/worse.skeleton", None, "junk")
        w.set_split("xsub", [0, 2], [1])
    return path


@pytest.fixture
def clips():
    # lengths straddle the chunk and write-buffer sizes, so clips cross chunk boundaries
    lengths = [5, store.CHUNK_FRAMES + 3, 1, store.CHUNK_FRAMES * store._BUFFER_CHUNKS + 17, 40]
    return make_clips(np.random.default_rng(0), lengths)


def test_round_trip(tmp_path, clips):
    path = write(tmp_path / "d.h5", clips)
    with open_dataset(path) as ds:
        assert ds.kind == "ntu60" and ds.num_samples == len(ds) == 5
        assert ds.layout == LAYOUT
        assert ds.class_names == ["a", "b", "c"] and ds.label_map == [1, 2, 3]
        assert ds.options == {"bodies": "denoise"}
        assert ds.names == [f"s{i}" for i in range(5)]
        assert ds.labels.tolist() == [0, 1, 2, 0, 1]
        assert ds.lengths.tolist() == [len(c) for c in clips]
        assert ds.meta("subject").tolist() == [0, 1, 2, 3, 4]
        assert ds.meta("camera").tolist() == [1, 2, 3, 1, 2]
        assert ds.benchmarks == ["xsub"]
        assert ds.split("xsub", "train").tolist() == [0, 2]
        assert ds.split("xsub", "test").tolist() == [1]
        assert ds.rejected == [
            Rejection("raw/bad.skeleton", 7, "truncated"),
            Rejection("raw/worse.skeleton", -1, "junk"),
        ]
        assert str(ds.rejected[0]) == "raw/bad.skeleton:7: truncated"
        assert str(ds.rejected[1]) == "raw/worse.skeleton: junk"
        for i, clip in enumerate(clips):
            np.testing.assert_array_equal(ds.clip(i), clip)
        np.testing.assert_array_equal(ds.clip(-1), clips[-1])
        with h5py.File(path) as f:
            assert f["joints"].compression == store.COMPRESSION
            assert f["joints"].chunks[0] == store.CHUNK_FRAMES


def real_clips() -> list[np.ndarray]:
    return [select_bodies(read_ntu_skeleton(path)) for path in sorted(NTU.glob("*.skeleton"))]


@pytest.mark.parametrize("channels", [3, 2])
def test_chunks_compressed_here_read_like_hdf5s_own(tmp_path, clips, monkeypatch, channels):
    """The C writer (`_speedups.shuffle_lzf` + write_direct_chunk) stores the same values under
    the same filters as HDF5 applying shuffle + lzf itself, and real frames about as small; a
    chunk that does not compress is stored with lzf marked as skipped, as HDF5 does."""
    assert store._speedups is not None, "the C extension is not built: run `pip install -e .`"
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 2**32, (600, 2, 25, 3), dtype=np.uint32).view(np.float32)
    mixed = [*clips, noise, np.zeros((300, 2, 25, 3), np.float32)]

    def write_file(name: str, data: list[np.ndarray]) -> Path:
        with DatasetWriter(tmp_path / name, "ntu60", LAYOUT, ["a"], [1], {}, channels) as w:
            for i, clip in enumerate(data):
                w.add(f"s{i}", clip[..., :channels], 0)
        return tmp_path / name

    fast, fast_real = write_file("c.h5", mixed), write_file("c-real.h5", real_clips())
    monkeypatch.setattr(store, "_speedups", None)
    plain, plain_real = write_file("hdf5.h5", mixed), write_file("hdf5-real.h5", real_clips())
    with h5py.File(fast) as a, h5py.File(plain) as b:
        for key in ("compression", "shuffle", "chunks", "shape", "dtype"):
            assert getattr(a["joints"], key) == getattr(b["joints"], key), key
        assert a["joints"][...].tobytes() == b["joints"][...].tobytes()
        chunks = a["joints"].id
        masks = [chunks.get_chunk_info(k).filter_mask for k in range(chunks.get_num_chunks())]
        assert 0 < sum(m != 0 for m in masks) < len(masks)  # the noise chunk, only
    with h5py.File(fast_real) as a, h5py.File(plain_real) as b:
        assert a["joints"][...].tobytes() == b["joints"][...].tobytes()
    assert fast_real.stat().st_size < 1.03 * plain_real.stat().st_size


@pytest.mark.parametrize("in_memory", [False, True])
def test_frames_for_keeps_the_order_given(tmp_path, clips, in_memory, monkeypatch):
    monkeypatch.setattr(store, "_READ_BLOCK_FRAMES", 300)  # force several block reads
    path = write(tmp_path / "d.h5", clips)
    with open_dataset(path) as ds:
        if in_memory:
            ds.load()
        order = [3, 0, 4, 0, 2]
        frames, offsets = ds.frames_for(order)
        assert (
            offsets.tolist()
            == np.concatenate([[0], np.cumsum([len(clips[i]) for i in order])]).tolist()
        )
        np.testing.assert_array_equal(frames, np.concatenate([clips[i] for i in order]))
        empty, empty_offsets = ds.frames_for([])
        assert empty.shape == (0, 2, 25, 3) and empty_offsets.tolist() == [0]
        with pytest.raises(IndexError):
            ds.frames_for([5])


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path, clips):
    out = tmp_path / "d.h5"
    out.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="boom"):
        with DatasetWriter(out, "ntu60", LAYOUT, ["a"], [1], {}, force=True) as w:
            w.add("s0", clips[0], 0)
            raise RuntimeError("boom")
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


def test_writer_rejects_wrong_shapes_and_labels(tmp_path):
    with pytest.raises(ValueError, match="expected"):
        with DatasetWriter(tmp_path / "d.h5", "ntu60", LAYOUT, ["a"], [1], {}) as w:
            w.add("s0", np.zeros((4, 2, 20, 3), np.float32), 0)
    with pytest.raises(ValueError, match="label 1"):
        with DatasetWriter(tmp_path / "d.h5", "ntu60", LAYOUT, ["a"], [1], {}) as w:
            w.add("s0", np.zeros((4, 2, 25, 3), np.float32), 1)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_or_directory_output(tmp_path):
    with pytest.raises(SkelctlError, match="directory"):
        DatasetWriter(tmp_path, "ntu60", LAYOUT, ["a"], [1], {}).__enter__()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SkelctlError, match="cannot write"):
        DatasetWriter(blocker / "d.h5", "ntu60", LAYOUT, ["a"], [1], {}).__enter__()


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(SkelctlError, match="not found") as missing:
        open_dataset(tmp_path / "nope.h5")
    assert "nope.h5" in missing.value.message
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(SkelctlError, match="not a readable HDF5"):
        open_dataset(junk)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(SkelctlError, match="not a skelctl dataset"):
        open_dataset(foreign)


@pytest.mark.parametrize(
    "damage, key",
    [
        (lambda f: f.__delitem__("label"), "/label"),
        (lambda f: f.__delitem__("offsets"), "/offsets"),
        (lambda f: f.attrs.__delitem__("layout"), "@layout"),
        (lambda f: f.attrs.__setitem__("class_names", "[not json"), "@class_names"),
        (lambda f: _replace(f, "subject", np.zeros(2, np.int16)), "/subject"),
        (lambda f: _replace(f, "length", np.ones(5, np.int32)), "/length"),
        (lambda f: _replace(f, "label", np.full(5, 7, np.int16)), "/label"),
    ],
)
def test_damaged_files_name_the_key(tmp_path, clips, damage, key):
    path = write(tmp_path / "d.h5", clips)
    with h5py.File(path, "a") as f:
        damage(f)
    with pytest.raises(SkelctlError) as info:
        open_dataset(path)
    assert str(path) in info.value.message and key in info.value.message


def test_unknown_split_and_column_name_the_key(tmp_path, clips):
    with open_dataset(write(tmp_path / "d.h5", clips)) as ds:
        with pytest.raises(SkelctlError, match="split/xview.*xsub"):
            ds.split("xview", "train")
        with pytest.raises(SkelctlError, match="metadata column"):
            ds.meta("age")


def test_empty_rejections_and_options_json(tmp_path):
    out = tmp_path / "d.h5"
    with DatasetWriter(out, "pku2", LAYOUT, ["action_3"], [3], {"max_frames": 300}) as w:
        w.add("A01N01-L_001", np.ones((3, 2, 25, 3), np.float32), 0)
    with open_dataset(out) as ds:
        assert ds.rejected == [] and ds.benchmarks == [] and ds.label_map == [3]
    with h5py.File(out) as f:
        assert json.loads(f.attrs["options"]) == {"max_frames": 300}
        assert f.attrs["format"] == store.FORMAT


def _replace(f: h5py.File, key: str, data: np.ndarray) -> None:
    del f[key]
    f[key] = data
