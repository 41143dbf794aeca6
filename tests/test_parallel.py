"""`skelctl.data.parallel.ordered_map`, preprocessing's parallelism: this process parses beside
its workers, results come back in task order (arrays through the shared-memory ring, or the
pipe when they do not fit a slot), a worker's exception or death stops the run cleanly."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from skelctl.data import parallel
from skelctl.errors import RuntimeFailure

TASKS = 2000  # at ~1 ms each: long enough for the worker to start and take batches


def _tasks(parent: int = 0) -> list[SimpleNamespace]:
    return [SimpleNamespace(number=i, parent=parent) for i in range(TASKS)]


def _number_and_pid(task):
    time.sleep(0.001)  # parsing a file takes about this long
    return task.number, os.getpid()


def _array(task):
    """A result whose bytes differ per task, of varying sizes; task 1500 alone exceeds a slot."""
    time.sleep(0.001)
    size = parallel.SLOT_BYTES // 4 + 1 if task.number == 1500 else 1 + task.number % 97
    return {"number": task.number, "joints": np.arange(size, dtype=np.float32) + task.number}


def _fails_in_workers(task):
    time.sleep(0.001)
    if os.getpid() != task.parent:
        raise ValueError(f"a bug in task {task.number}")
    return task.number


def _dies_in_workers(task):
    time.sleep(0.001)
    if os.getpid() != task.parent:
        os._exit(3)
    return task.number


def _ordered(work, tasks, workers=2):
    return list(parallel.ordered_map(work, tasks, [1000] * len(tasks), workers))


def _shared_segments() -> set[str]:
    shm = Path("/dev/shm")
    return {p.name for p in shm.iterdir()} if shm.is_dir() else set()


def test_this_process_parses_beside_its_worker_and_the_order_holds():
    """`--workers 2` is this process and one worker, both parsing; results in task order."""
    results = _ordered(_number_and_pid, _tasks())
    assert [number for number, _ in results] == list(range(TASKS))
    pids = {pid for _, pid in results}
    assert os.getpid() in pids and len(pids) == 2, pids


def test_arrays_come_back_whole_through_the_ring_and_the_pipe():
    before = _shared_segments()
    results = _ordered(_array, _tasks(), workers=3)
    assert [r["number"] for r in results] == list(range(TASKS))
    for task, result in zip(_tasks(), results, strict=True):
        np.testing.assert_array_equal(result["joints"], _array(task)["joints"])
    assert results[1500]["joints"].nbytes > parallel.SLOT_BYTES
    assert _shared_segments() <= before  # the ring is unlinked
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("slot_bytes", [0, 4096])
def test_a_small_shared_memory_sends_what_does_not_fit_through_the_pipe(monkeypatch, slot_bytes):
    monkeypatch.setattr(parallel, "_slot_bytes", lambda slots: slot_bytes)
    results = _ordered(_array, _tasks())
    for task, result in zip(_tasks(), results, strict=True):
        np.testing.assert_array_equal(result["joints"], _array(task)["joints"])


def test_the_ring_takes_at_most_half_of_the_free_shared_memory(monkeypatch):
    """A container's 64 MB /dev/shm: writing past it would kill a worker with SIGBUS."""
    free = SimpleNamespace(f_bavail=16384, f_frsize=4096)  # 64 MiB
    monkeypatch.setattr(parallel.os, "statvfs", lambda path: free)
    slots = 15 * parallel.BATCHES_PER_WORKER  # --workers 16
    assert 0 < slots * parallel._slot_bytes(slots) <= 32 << 20
    assert parallel._slot_bytes(parallel.BATCHES_PER_WORKER) == parallel.SLOT_BYTES


def test_a_bug_in_a_worker_is_raised_here():
    with pytest.raises(ValueError, match="a bug in task"):
        _ordered(_fails_in_workers, _tasks(os.getpid()))
    assert not multiprocessing.active_children()


def test_a_dead_worker_stops_the_run_with_a_clear_error():
    before = _shared_segments()
    with pytest.raises(RuntimeFailure, match=r"a parsing worker died \(exit code 3\)"):
        _ordered(_dies_in_workers, _tasks(os.getpid()))
    assert _shared_segments() <= before
    assert not multiprocessing.active_children()


def test_one_worker_is_this_process_alone():
    results = _ordered(_number_and_pid, _tasks()[:50], workers=1)
    assert results == [(i, os.getpid()) for i in range(50)]
