"""zarrsync.config: thread settings and the chunk runner."""

import threading

import numpy as np
import pytest

import zarrsync as zs


@pytest.fixture
def restore_threads():
    before = zs.config.get_threads()
    yield
    zs.config.set_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_threads_rejects_bad_values(bad, restore_threads):
    with pytest.raises(ValueError):
        zs.config.set_threads(bad)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n_items", [0, 1, 5, 16, 17, 1000])
def test_batch_bounds_split_items_in_order(threads, n_items, restore_threads):
    zs.config.set_threads(threads)
    bounds = zs.config.batch_bounds(n_items)
    assert bounds[0] == 0 and bounds[-1] == n_items
    if not n_items:
        assert bounds == [0]  # no batch at all
        return
    sizes = np.diff(bounds)
    per_call = 1 if threads == 1 else zs.config.BATCHES_PER_THREAD * threads
    assert len(sizes) == min(n_items, per_call)
    assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1


@pytest.mark.parametrize("n_items,nbytes", [
    (8, 10),                                   # a small call
    (4096, 4096 * 512),                        # many tiny chunks (8x8 float64)
    (1, 1 << 30),                              # one chunk
])
def test_small_work_runs_on_the_calling_thread(n_items, nbytes, restore_threads):
    zs.config.set_threads(4)
    seen = set()
    zs.config.run_chunks(lambda i: seen.add(threading.get_ident()), n_items, nbytes)
    assert seen == {threading.get_ident()}


def test_large_work_runs_on_the_pool_and_reraises(restore_threads):
    zs.config.set_threads(2)
    seen, done = set(), []

    def work(i):
        seen.add(threading.current_thread().name)
        if i == 3:
            raise zs.CodecError("chunk 3")
        done.append(i)

    with pytest.raises(zs.CodecError, match="chunk 3"):
        zs.config.run_chunks(work, 8, zs.config.MIN_PARALLEL_BYTES)
    # The caller takes items too; the others run on the pool's threads.
    caller = threading.current_thread().name
    assert all(name.startswith("zarrsync") or name == caller for name in seen)
    assert sorted(done) == [0, 1, 2, 4, 5, 6, 7]  # every other item still ran


def test_a_caller_holding_a_lock_finishes_while_pool_threads_wait_for_it(restore_threads):
    # Pool threads busy with another call's items, which wait for a lock the
    # first caller holds: the first caller runs its own items and never waits
    # on an item it did not see start (a sharded write holds shard locks while
    # its inner chunks are encoded on the pool).
    zs.config.set_threads(2)
    held = threading.Lock()
    waiting = threading.Semaphore(0)

    def blocked(i):
        waiting.release()
        with held:
            pass

    with held:
        # Two other calls: each caller and each of the pool's 2 threads take
        # one item and block.
        others = [threading.Thread(target=zs.config.run_chunks,
                                   args=(blocked, 4, zs.config.MIN_PARALLEL_BYTES * 4))
                  for _ in range(2)]
        for t in others:
            t.start()
        for _ in range(4):
            assert waiting.acquire(timeout=10)
        done = []
        zs.config.run_chunks(done.append, 6, zs.config.MIN_PARALLEL_BYTES * 6)
        assert sorted(done) == list(range(6))
    for t in others:
        t.join(10)
        assert not t.is_alive()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_large_arrays_read_and_write_the_same_with_any_thread_count(threads, restore_threads):
    zs.config.set_threads(threads)
    store = zs.MemoryStore()
    node = zs.ArrayNode.of_path("/a")
    store.create_array(node, shape=(96, 96, 64), chunks=(32, 32, 32), dtype="float64",
                       codecs=[zs.codecs.Bytes(), zs.codecs.Zstd(level=1)])
    data = np.random.default_rng(threads).normal(size=(96, 96, 64))
    store.write_array(node, ..., data)
    np.testing.assert_array_equal(store.read_array(node), data)
    store.write_array(node, (slice(5, 90), 7), 0.0)
    data[5:90, 7] = 0.0
    np.testing.assert_array_equal(store.read_array(node, (slice(None, None, 3),)), data[::3])
