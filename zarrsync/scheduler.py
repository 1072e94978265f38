"""The one scheduler: runs the tasks of one call on a shared thread pool.

Codec libraries and the copy kernels release the GIL, so the tasks of one
read or write proceed in parallel. The calling thread takes tasks too and
waits only for tasks a pool thread has already started: a caller that holds
chunk locks while its tasks run (a sharded write holds its shards' locks)
never waits on pool threads that are themselves waiting for those locks.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

from . import config

__all__ = ["run"]

_lock = threading.Lock()
_pool = None
_pool_size = 0


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


def worth_threads(nbytes, n_chunks):
    """True if work of ``nbytes`` over ``n_chunks`` chunks, handled one chunk
    per task, should go to the pool (``config``: ``threads``,
    ``parallel_min_bytes``, ``parallel_min_chunk_bytes``)."""
    return (config.get("threads") > 1 and nbytes >= config.get("parallel_min_bytes")
            and nbytes >= config.get("parallel_min_chunk_bytes") * n_chunks)


def run(task, n_tasks, parallel):
    """Call ``task(i)`` for ``i`` in ``range(n_tasks)``: on the pool if
    ``parallel`` and there are two or more, else on the calling thread.

    Every task runs even if another fails; the first exception raised is
    raised here, after all of them have finished.
    """
    threads = config.get("threads")
    if not parallel or threads <= 1 or n_tasks < 2:
        error = None
        for i in range(n_tasks):
            try:
                task(i)
            except Exception as e:  # every task runs, as on the pool
                if error is None:
                    error = e
        if error is not None:
            raise error
        return
    batch = _Tasks(task, n_tasks)
    pool = _get_pool(threads)
    for _ in range(min(threads, n_tasks) - 1):
        pool.submit(batch.run)
    batch.run()
    batch.finished.wait()
    if batch.error is not None:
        raise batch.error


class _Tasks:
    """The tasks of one ``run`` call, taken one at a time by whichever thread is free."""

    def __init__(self, task, n_tasks):
        self.task = task
        self.n_tasks = n_tasks
        self.next_task = 0
        self.unfinished = n_tasks
        self.error = None
        self.lock = threading.Lock()
        self.finished = threading.Event()

    def run(self):
        task = self.task
        lock = self.lock
        while True:
            with lock:
                i = self.next_task
                if i >= self.n_tasks:
                    return
                self.next_task = i + 1
            try:
                task(i)
            except Exception as e:  # every task runs; the caller raises the first error
                with lock:
                    if self.error is None:
                        self.error = e
            finally:
                with lock:
                    self.unfinished -= 1
                    if not self.unfinished:
                        self.finished.set()
