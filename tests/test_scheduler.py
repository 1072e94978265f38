"""zarrsync.scheduler: where the tasks of one call run, errors, and no deadlock.

Thread interleavings are forced with events, barriers and locks; the
timeouts on them only keep a broken scheduler from hanging the suite.
"""

import threading

import numpy as np
import pytest

import zarrsync as zs
from zarrsync import config, scheduler
from zarrsync.codecs import Bytes, ShardingIndexed, Zstd

WAIT = 30  # seconds; only ever reached if the scheduler is broken


def test_worth_threads_follows_the_settings():
    with config.set(threads=4, parallel_min_bytes=1000, parallel_min_chunk_bytes=100):
        assert not scheduler.worth_threads(999, 1)          # too little work
        assert scheduler.worth_threads(1000, 1)
        assert scheduler.worth_threads(1000, 10)            # 100 bytes a chunk
        assert not scheduler.worth_threads(1000, 11)        # chunks too small
        assert scheduler.worth_threads(10 ** 9, 10 ** 6)
        with config.set(threads=1):
            assert not scheduler.worth_threads(10 ** 9, 1)  # one thread: never
        with config.set(parallel_min_bytes=0, parallel_min_chunk_bytes=0):
            assert scheduler.worth_threads(0, 5)


@pytest.mark.parametrize("n_tasks,nbytes", [
    (8, 10),                                   # a small call
    (4096, 4096 * 512),                        # many tiny chunks (8x8 float64)
    (1, 1 << 30),                              # one chunk: nothing to share
])
def test_small_work_runs_on_the_calling_thread(n_tasks, nbytes):
    seen = []
    with config.set(threads=4):
        scheduler.run(lambda i: seen.append((i, threading.get_ident())), n_tasks,
                      scheduler.worth_threads(nbytes, n_tasks))
    assert seen == [(i, threading.get_ident()) for i in range(n_tasks)]  # in order, here


def test_one_thread_or_one_task_runs_inline_even_when_parallel():
    seen = []
    with config.set(threads=1):
        scheduler.run(lambda i: seen.append(threading.get_ident()), 5, True)
    with config.set(threads=4):
        scheduler.run(lambda i: seen.append(threading.get_ident()), 1, True)
        scheduler.run(lambda i: seen.append(i), 0, True)
    assert seen == [threading.get_ident()] * 6


def test_inline_tasks_all_run_then_the_first_error_is_raised():
    done = []

    def task(i):
        if i in (2, 5):
            raise zs.CodecError(f"task {i}")
        done.append(i)

    with pytest.raises(zs.CodecError, match="task 2"):
        scheduler.run(task, 8, False)
    assert done == [0, 1, 3, 4, 6, 7]


def test_large_work_runs_on_the_pool_and_reraises_after_every_task():
    # The two tasks run at once (the barrier), so on two threads. Task 1
    # fails at once; task 0 finishes only after that: run must still wait for it.
    failed, done = threading.Event(), []
    both = threading.Barrier(2, timeout=WAIT)
    names = set()

    def task(i):
        names.add(threading.current_thread().name)
        both.wait()
        if i == 1:
            failed.set()
            raise zs.CodecError("task 1")
        assert failed.wait(WAIT)
        done.append(i)

    with config.set(threads=2):
        with pytest.raises(zs.CodecError, match="task 1"):
            scheduler.run(task, 2, True)
    assert done == [0]
    caller = threading.current_thread().name
    assert len(names) == 2 and caller in names
    assert all(name.startswith("zarrsync") for name in names - {caller})


@pytest.mark.parametrize("threads", [2, 3])
def test_every_pool_task_runs_once_despite_errors(threads):
    lock = threading.Lock()
    done = []

    def task(i):
        if i % 7 == 3:
            raise ValueError(f"task {i}")
        with lock:
            done.append(i)

    with config.set(threads=threads):
        with pytest.raises(ValueError, match=r"task \d+"):
            scheduler.run(task, 50, True)
    assert sorted(done) == [i for i in range(50) if i % 7 != 3]


def test_a_caller_holding_a_lock_finishes_while_pool_threads_wait_for_it():
    # Pool threads busy with other calls' tasks, which wait for a lock the
    # caller holds: the caller runs its own tasks and never waits on a task
    # it did not see start (a sharded write holds its shards' locks while
    # its inner chunks are encoded on the pool).
    held = threading.Lock()
    waiting = threading.Semaphore(0)

    def blocked(i):
        waiting.release()
        with held:
            pass

    with config.set(threads=2):
        with held:
            # Two other calls: each caller and each of the pool's 2 threads
            # takes one task and blocks.
            others = [threading.Thread(target=scheduler.run, args=(blocked, 4, True))
                      for _ in range(2)]
            for t in others:
                t.start()
            for _ in range(4):
                assert waiting.acquire(timeout=WAIT)
            done = []
            scheduler.run(done.append, 6, True)
            assert sorted(done) == list(range(6))
        for t in others:
            t.join(WAIT)
            assert not t.is_alive()


CHAINS = {
    "bytes": [Bytes()],
    "zstd": [Bytes(), Zstd(level=1)],
    "sharded": [ShardingIndexed((16, 16, 16), codecs=[Bytes(), Zstd(level=1)])],
}


@pytest.mark.parametrize("chain", CHAINS)
def test_results_are_the_same_with_any_thread_count(chain, monkeypatch):
    shape, chunks = (96, 96, 64), (32, 32, 32)
    data = np.random.default_rng(0).normal(size=shape)
    results = []
    real_run = scheduler.run
    pooled = []  # per call: did its tasks go to the pool?

    def run(task, n_tasks, parallel):
        pooled.append(parallel and n_tasks > 1 and config.get("threads") > 1)
        real_run(task, n_tasks, parallel)

    monkeypatch.setattr(scheduler, "run", run)
    for threads in (1, 2, 3):
        del pooled[:]
        store = zs.MemoryStore()
        node = zs.ArrayNode.of_path("/a")
        store.create_array(node, shape=shape, chunks=chunks, dtype="float64",
                           codecs=CHAINS[chain])
        with config.set(threads=threads, parallel_min_bytes=0, parallel_min_chunk_bytes=0):
            store.write_array(node, ..., data)
            store.write_array(node, (slice(5, 90), 7), 0.0)
            results.append((store.read_array(node), store.read_array(node, (slice(None, None, 3),)),
                            {k: store.get(k) for k in store.list_prefix("a/c")}))
        assert pooled and all(pooled) == (threads > 1)
    expected = data.copy()
    expected[5:90, 7] = 0.0
    for whole, strided, stored in results:
        np.testing.assert_array_equal(whole, expected)
        np.testing.assert_array_equal(strided, expected[::3])
        assert stored == results[0][2]  # the same stored bytes, chunk by chunk
