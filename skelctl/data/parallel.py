"""`map(work, tasks)` over worker processes, results in task order: preprocessing's parallelism.

Tasks go out in batches of consecutive files; the calling process parses batches too, and
writes. What the workers send back (joint arrays, most of the bytes) travels through a shared
memory ring, not a pipe: a worker writes its batch's arrays into one of its slots and sends a
few hundred bytes of pickle, so it never blocks on a full pipe while the parent is busy. The
parent receives in its own thread, between its own batches: no pool threads compete with it for
the GIL. With `concurrent.futures.ProcessPoolExecutor` instead, two processes spent 8% more CPU
per file than one and 2 workers ran 1.52x as fast as 1; now they spend the same and run ~1.8x
(benchmarks/bench_preprocess.py, README).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import pickle
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.shared_memory import SharedMemory
from typing import Any

from skelctl.errors import RuntimeFailure

# Tasks go out in batches of consecutive files: one round trip costs a fraction of a
# millisecond, as much as parsing a file. A few batches per worker are in flight: enough to hide
# latency, and memory stays bounded whatever the number of files.
BATCH_FILES = 32
BATCH_BYTES = 8 << 20  # of raw input
BATCHES_PER_WORKER = 3  # sent to each worker ahead of need: its ring slots
MOST_PENDING = 4 * BATCHES_PER_WORKER  # batches held per process, parsed or in flight
SLOT_BYTES = 8 << 20  # at most; a batch whose arrays do not fit goes through the pipe instead

# Parsing never multiplies matrices, yet each process's BLAS starts (and, for a while, spins)
# one thread per core: on 16 cores, ~1.5 CPU-seconds per worker for nothing. A user's setting
# wins.
_ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def batches(sizes: Sequence[int], workers: int) -> Iterator[range]:
    """Consecutive task indices, up to BATCH_FILES tasks or BATCH_BYTES of input per batch (task
    i reads sizes[i] bytes), and at least four batches per worker so that small datasets still
    spread over all workers."""
    most = max(1, min(BATCH_FILES, len(sizes) // (4 * workers)))
    start = total = 0
    for i, size in enumerate(sizes):
        total += size
        if i + 1 - start == most or total >= BATCH_BYTES:
            yield range(start, i + 1)
            start, total = i + 1, 0
    if start < len(sizes):
        yield range(start, len(sizes))


def ordered_map(
    work: Callable[[Any], Any], tasks: Sequence[Any], sizes: Sequence[int], workers: int
) -> Iterator[Any]:
    """`map(work, tasks)` on `workers` processes, this one included, in task order.

    This process parses a batch itself whenever the oldest pending batch is not back yet, so
    `--workers 2` keeps two cores busy, not three processes fighting over them. It receives
    results between its own batches and refills the workers' slots at once, so a worker never
    waits for work (measured: under 1% of its time)."""
    workers = min(workers, len(tasks))
    if workers <= 1:
        yield from map(work, tasks)
        return
    with _Pool(workers - 1, work) as pool:
        queue = enumerate(batches(sizes, workers))
        pending: deque[int] = deque()  # batch numbers in task order, in flight or done
        done: dict[int, list[Any]] = {}

        def take() -> tuple[int, range] | None:
            taken = next(queue, None)
            if taken is not None:
                pending.append(taken[0])
            return taken

        while True:
            done.update(pool.receive(block=False))  # frees their slots: refill them at once
            for worker in pool.workers:  # keep the workers fed before anything else
                while worker.has_room() and (taken := take()) is not None:
                    worker.send(taken[0], [tasks[i] for i in taken[1]])
            while pending and pending[0] in done:
                yield from done.pop(pending.popleft())
            if len(pending) < MOST_PENDING * workers and (taken := take()) is not None:
                done[taken[0]] = [work(tasks[i]) for i in taken[1]]
            elif not pending:
                return
            else:  # the oldest batch is a worker's, and this process has parsed far enough ahead
                done.update(pool.receive(block=True))


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    slots: list[int]  # free slots of the ring
    in_flight: deque[tuple[int, int]] = field(default_factory=deque)  # (batch, slot), in order

    def has_room(self) -> bool:
        return bool(self.slots)

    def send(self, number: int, batch: list[Any]) -> None:
        slot = self.slots.pop()
        try:
            self.conn.send((slot, batch))
        except OSError as exc:
            raise _died(self) from exc
        self.in_flight.append((number, slot))


class _Pool:
    """`count` worker processes, each with a pipe and BATCHES_PER_WORKER slots of one ring."""

    def __init__(self, count: int, work: Callable[[Any], Any]):
        self.workers: list[_Worker] = []
        self.slot_bytes = _slot_bytes(count * BATCHES_PER_WORKER)
        self.ring = SharedMemory(create=True, size=max(1, count * BATCHES_PER_WORKER * self.slot_bytes))
        try:
            # Waits for the fork server to finish its imports (started before planning, see
            # `start_server`). Starting from a thread instead, while this process parses, was
            # no faster: the thread waits for the GIL at every step of the start.
            context = start_server(_modules_of(work))
            for k in range(count):
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=_serve,
                    args=(theirs, self.ring.name, self.slot_bytes, work, os.getpid()),
                    name=f"skelctl-parse-{k}",
                    daemon=True,
                )
                process.start()
                theirs.close()  # the worker holds its end: when it dies, ours reads EOF
                slots = list(range(k * BATCHES_PER_WORKER, (k + 1) * BATCHES_PER_WORKER))
                self.workers.append(_Worker(process, ours, slots))
        except BaseException:
            self.__exit__(RuntimeError)
            raise

    def receive(self, block: bool) -> dict[int, list[Any]]:
        """The results that have come back, {batch: results}; with `block`, wait for one."""
        busy = [w for w in self.workers if w.in_flight]
        if not busy:
            return {}
        # A worker that dies closes its end of the pipe: its connection turns readable, and
        # reading it fails (`_unpack`).
        arrived = multiprocessing.connection.wait(
            [w.conn for w in busy], timeout=None if block else 0
        )
        results: dict[int, list[Any]] = {}
        for worker in busy:
            while worker.conn in arrived and worker.in_flight and worker.conn.poll():
                number, slot = worker.in_flight.popleft()  # every message that is in
                results[number] = self._unpack(worker, slot)
                worker.slots.append(slot)
        return results

    def _unpack(self, worker: _Worker, slot: int) -> list[Any]:
        try:
            status, payload, sizes = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError) as exc:
            raise _died(worker) from exc
        if status == "error":
            raise payload
        if sizes is None:  # did not fit its slot: sent whole through the pipe
            return pickle.loads(payload)
        start = slot * self.slot_bytes
        buffers = []
        for size in sizes:  # copied out: the slot is free again as soon as this returns
            buffers.append(bytearray(self.ring.buf[start : start + size]))
            start += size
        return pickle.loads(payload, buffers=buffers)

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the workers (at once when the run failed) and free the ring."""
        failed = exc_info[0] is not None
        for worker in self.workers:
            with contextlib.suppress(OSError):
                if failed:
                    worker.process.terminate()
                else:
                    worker.conn.send(None)
        deadline = time.monotonic() + 5
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self.ring.close()
        self.ring.unlink()


def start_server(modules: Iterable[str]) -> multiprocessing.context.BaseContext:
    """Start the fork server that workers are forked from, if it is not running, with `modules`
    imported once there (every worker then starts with them loaded). It imports in the
    background: calling this early lets that overlap with the caller's own work. Workers are
    forked from it, not from this process, which may run threads (a progress bar)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(sorted({__name__, *modules}))
    with _environment(_ONE_THREAD):  # the server's environment is its workers'
        multiprocessing.forkserver.ensure_running()
    return context


def _died(worker: _Worker) -> RuntimeFailure:
    worker.process.join(1)  # its exit code, once reaped
    code = worker.process.exitcode
    return RuntimeFailure(f"a parsing worker died (exit code {code}); no output written")


def _modules_of(work: Callable[[Any], Any]) -> set[str]:
    """The modules `work` (a function, or a partial of functions) needs: the fork server imports
    them once, so every worker starts with them loaded."""
    parts = [getattr(work, "func", work), *getattr(work, "args", ())]
    return {part.__module__ for part in parts if callable(part) and hasattr(part, "__module__")}


def _slot_bytes(slots: int) -> int:
    """SLOT_BYTES, or less where shared memory is small (a container's /dev/shm is often 64 MB,
    and writing past it kills the writer with SIGBUS): the ring takes at most half of it. 0 sends
    everything through the pipes."""
    try:
        stats = os.statvfs("/dev/shm")
    except OSError:  # no /dev/shm (not Linux): the platform's shared memory has no such cap
        return SLOT_BYTES
    free = stats.f_bavail * stats.f_frsize
    return min(SLOT_BYTES, free // 2 // slots) // 4096 * 4096


def _serve(conn: multiprocessing.connection.Connection, ring_name: str, slot_bytes: int,
           work: Callable[[Any], Any], main_pid: int) -> None:
    """A worker: parse the batches it is sent until it gets None."""
    _leave_to_parent(main_pid)
    ring = SharedMemory(ring_name)
    try:
        while (message := conn.recv()) is not None:
            slot, batch = message
            try:
                reply = _pack([work(task) for task in batch], ring.buf, slot, slot_bytes)
            except Exception as exc:  # a bug, not bad input: the parent re-raises it
                reply = _error_message(exc)
            conn.send_bytes(reply)
    finally:
        ring.close()


def _error_message(exc: Exception) -> bytes:
    try:
        return pickle.dumps(("error", exc, None))
    except Exception:  # an exception that does not pickle: its text still reaches the parent
        return pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {exc}"), None))


def _pack(results: list[Any], ring: memoryview, slot: int, slot_bytes: int) -> bytes:
    """The message for `results`: their arrays' bytes go into the slot when they fit."""
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(results, protocol=5, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    start = slot * slot_bytes
    if sum(v.nbytes for v in views) > slot_bytes:
        return pickle.dumps(("ok", pickle.dumps(results, protocol=5), None), protocol=5)
    for view in views:
        ring[start : start + view.nbytes] = view
        start += view.nbytes
    return pickle.dumps(("ok", payload, [v.nbytes for v in views]), protocol=5)


def _leave_to_parent(main_pid: int) -> None:
    """Workers leave Ctrl-C to the main process (which stops them and removes its temp file),
    and exit when the main process dies (e.g. `kill -9`): nothing else would tell them, as every
    forkserver child holds the server's "alive" pipe open."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        try:
            select.select([os.pidfd_open(main_pid)], [], [])  # readable once it has exited
        except (AttributeError, OSError):  # no pidfd (old kernel, non-Linux): poll instead
            while _alive(main_pid):
                time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def _environment(defaults: dict[str, str]) -> Iterator[None]:
    """Set the variables of `defaults` that are not set, for the duration of the block."""
    added = [key for key in defaults if key not in os.environ]
    os.environ.update({key: defaults[key] for key in added})
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
