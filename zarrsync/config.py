"""Run-time settings: the number of threads that encode and decode chunks.

The chunks of one ``read_array``/``write_array`` call are independent work
items; with more than one thread they run on a shared pool. Codec libraries
(zstandard, the gzip backends) and the copy kernels release the GIL, so chunks
proceed in parallel. Calls whose work is small run inline: a thread hop
costs more than it saves.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["get_threads", "set_threads", "run_chunks", "batch_bounds", "run_batches"]

#: Below this many bytes of selection a call runs on the calling thread.
MIN_PARALLEL_BYTES = 1 << 20
#: Below this many bytes per chunk, too: the per-chunk Python work (under the
#: GIL) then outweighs the codec work the threads would share (8x8 float64
#: chunks ran 5x slower on two threads).
MIN_PARALLEL_CHUNK_BYTES = 1 << 16

#: Items split into batches (``batch_bounds``) make this many per thread.
BATCHES_PER_THREAD = 8

_lock = threading.Lock()
_threads = os.cpu_count() or 1
_pool = None
_pool_size = 0


def get_threads():
    """The number of threads a call may use (default ``os.cpu_count()``)."""
    return _threads


def set_threads(n):
    """Use ``n`` threads (``n >= 1``; 1 runs every chunk on the calling thread)."""
    global _threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be an integer >= 1, got {n!r}")
    with _lock:
        _threads = n


def _get_pool(n):
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != n:
            old = _pool
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="zarrsync")
            _pool_size = n
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def run_chunks(work, n_items, nbytes):
    """Call ``work(i)`` for ``i`` in ``range(n_items)``, on the pool when worth it.

    The calling thread takes items too and waits only for items a pool
    thread has started: a caller that holds locks while its items run can
    never wait on pool threads that are themselves waiting for those locks.
    The first exception raised by any item is raised here, after every
    item has finished.
    """
    threads = _threads
    if (threads <= 1 or n_items < 2 or nbytes < MIN_PARALLEL_BYTES
            or nbytes < MIN_PARALLEL_CHUNK_BYTES * n_items):
        for i in range(n_items):
            work(i)
        return
    batch = _Batch(work, n_items)
    pool = _get_pool(threads)
    for _ in range(min(threads, n_items) - 1):
        pool.submit(batch.run)
    batch.run()
    batch.finished.wait()
    if batch.error is not None:
        raise batch.error


def batch_bounds(n_items):
    """``[0, ..., n_items]``: batch ``b`` of ``n_items`` items is
    ``bounds[b]:bounds[b + 1]``, for ``run_chunks`` over ``len(bounds) - 1``
    batches. One batch at one thread; else ``BATCHES_PER_THREAD`` per
    thread, taken as threads come free, so that a thread slowed down (by
    the hypervisor, say) does not hold up the call."""
    threads = _threads
    n = min(n_items, BATCHES_PER_THREAD * threads if threads > 1 else 1)
    return [n_items * b // n for b in range(n + 1)] if n else [0]


def run_batches(work, n_items, nbytes):
    """``work(lo, hi)`` for every batch ``lo:hi`` of ``batch_bounds(n_items)``,
    through ``run_chunks`` (``nbytes``: the work of all items together)."""
    bounds = batch_bounds(n_items)
    run_chunks(lambda b: work(bounds[b], bounds[b + 1]), len(bounds) - 1, nbytes)


class _Batch:
    """Items of one ``run_chunks`` call, taken one at a time by whichever thread is free."""

    def __init__(self, work, n_items):
        self.work = work
        self.n_items = n_items
        self.next_item = 0
        self.unfinished = n_items
        self.error = None
        self.lock = threading.Lock()
        self.finished = threading.Event()

    def run(self):
        work = self.work
        lock = self.lock
        while True:
            with lock:
                i = self.next_item
                if i >= self.n_items:
                    return
                self.next_item = i + 1
            try:
                work(i)
            except Exception as e:  # every item runs; the caller raises the first error
                with lock:
                    if self.error is None:
                        self.error = e
            finally:
                with lock:
                    self.unfinished -= 1
                    if not self.unfinished:
                        self.finished.set()
