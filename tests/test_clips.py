"""ClipBank: a split loaded once as flat variable-length clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skelctl.data.clips import ClipBank
from skelctl.data.layout import get_layout
from skelctl.data.store import DatasetWriter, open_dataset
from skelctl.errors import SkelctlError


class FakeDataset:
    """The two things ClipBank.from_dataset uses of a SkeletonDataset: frames_for and labels."""

    def __init__(self, clips: list[np.ndarray], labels: np.ndarray):
        self.clips = clips
        self.labels = labels
        self.requests: list[np.ndarray] = []

    def frames_for(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.requests.append(np.asarray(indices))
        chosen = [self.clips[i] for i in indices]
        offsets = np.concatenate([[0], np.cumsum([len(c) for c in chosen])]).astype(np.int64)
        return np.concatenate(chosen).astype(np.float32), offsets


def make_dataset(lengths: list[int], seed: int = 0) -> FakeDataset:
    rng = np.random.default_rng(seed)
    clips = [rng.standard_normal((t, 2, 25, 3)).astype(np.float32) for t in lengths]
    labels = np.arange(len(lengths), dtype=np.int16) % 7
    return FakeDataset(clips, labels)


def clip(bank: ClipBank, i: int) -> np.ndarray:
    return bank.frames[bank.offsets[i] : bank.offsets[i + 1]].numpy()


def test_from_dataset_loads_the_split_once_in_order():
    ds = make_dataset([12, 3, 40, 1, 7])
    indices = np.array([4, 0, 2])
    bank = ClipBank.from_dataset(ds, indices, "cpu")
    assert len(ds.requests) == 1 and ds.requests[0].tolist() == [4, 0, 2]
    assert len(bank) == 3
    assert bank.frames.dtype == torch.float32 and bank.frames.shape == (7 + 12 + 40, 2, 25, 3)
    assert bank.offsets.tolist() == [0, 7, 19, 59]
    assert bank.lengths.tolist() == [7, 12, 40]
    assert bank.labels.dtype == torch.long and bank.labels.tolist() == [4, 0, 2]
    for row, source in enumerate(indices):
        np.testing.assert_array_equal(clip(bank, row), ds.clips[source])


def test_subset_keeps_each_clip_whole_and_in_the_asked_order():
    ds = make_dataset([5, 9, 1, 14])
    bank = ClipBank.from_dataset(ds, np.arange(4), "cpu")
    sub = bank.subset(torch.tensor([3, 1, 3]))
    assert sub.lengths.tolist() == [14, 9, 14]
    assert sub.offsets.tolist() == [0, 14, 23, 37]
    assert sub.labels.tolist() == [3, 1, 3]
    for row, source in enumerate([3, 1, 3]):
        np.testing.assert_array_equal(clip(sub, row), ds.clips[source])


def test_from_arrays_without_labels_marks_them_unknown():
    bank = ClipBank.from_arrays(np.zeros((6, 1, 2, 3)), [0, 2, 6])
    assert bank.labels.tolist() == [-1, -1] and bank.lengths.tolist() == [2, 4]
    assert bank.device == torch.device("cpu")


@pytest.mark.parametrize(
    ("frames", "offsets", "labels", "message"),
    [
        (np.zeros((6, 2, 3)), [0, 6], None, "frames must be"),
        (np.zeros((6, 1, 2, 3)), [0, 2, 5], None, "offsets must run from 0"),
        (np.zeros((6, 1, 2, 3)), [1, 6], None, "offsets must run from 0"),
        (np.zeros((6, 1, 2, 3)), [0, 3, 3, 6], None, "at least one frame"),
        (np.zeros((6, 1, 2, 3)), [0, 4, 2, 6], None, "at least one frame"),
        (np.zeros((6, 1, 2, 3)), [0, 3, 6], [1], "expected 2 labels"),
    ],
)
def test_from_arrays_rejects_what_is_not_a_set_of_whole_clips(frames, offsets, labels, message):
    with pytest.raises(SkelctlError, match=message):
        ClipBank.from_arrays(frames, offsets, labels)


def test_from_dataset_reads_a_real_store(tmp_path):
    rng = np.random.default_rng(2)
    clips = [rng.standard_normal((t, 2, 25, 3)).astype(np.float32) for t in (9, 1, 33, 4)]
    out = tmp_path / "tiny.h5"
    with DatasetWriter(out, "ntu60", get_layout("ntu25"), ["a", "b", "c"], [1, 2, 3], {}) as w:
        for i, c in enumerate(clips):
            w.add(f"clip{i}", c, label=i % 3)
    with open_dataset(out) as ds:
        bank = ClipBank.from_dataset(ds, np.array([2, 3, 0]), "cpu")
    assert bank.lengths.tolist() == [33, 4, 9] and bank.labels.tolist() == [2, 0, 0]
    for row, source in enumerate([2, 3, 0]):
        np.testing.assert_array_equal(clip(bank, row), clips[source])
