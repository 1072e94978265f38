"""Memory: what a read or write allocates, and what zarrsync keeps afterwards.

* Peaks, with tracemalloc (it sees NumPy's, Python's and zstandard's
  allocations): a whole-array read needs its output plus a chunk per thread,
  a whole-array write the stored bytes plus a few chunks.
* Retention: arrays written, read and erased on several threads leave
  nothing behind but each thread's scratch (bounded by
  ``config.scratch_keep_bytes``), both as Python allocations (tracemalloc)
  and as the process's resident memory, once the C allocator has handed
  back what it holds free (``malloc_trim``).
"""

import ctypes
import ctypes.util
import sys
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import zarrsync as zs
from zarrsync import _scratch
from zarrsync.codecs import Bytes, Gzip, ShardingIndexed, Zstd

NODE = zs.ArrayNode.of_path("/a")
MiB = 1 << 20


def smooth(shape):
    rng = np.random.default_rng(0)
    axes = np.meshgrid(*[np.linspace(0, 4, n) for n in shape], indexing="ij")
    return (sum(np.sin(a) for a in axes) + rng.normal(0, 1e-3, shape)).astype("float32")


def peak_bytes(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        return tracemalloc.get_traced_memory()[1] - before, result
    finally:
        tracemalloc.stop()


@pytest.fixture
def two_threads():
    with zs.config.set(threads=2):
        yield


@pytest.mark.parametrize("codecs", [[Bytes()], [Bytes(), Zstd(level=1)],
                                    [Bytes(), Gzip(level=1)]],
                         ids=["raw", "zstd", "gzip"])
def test_full_read_peak_is_output_plus_a_chunk_per_thread(codecs, two_threads):
    data = smooth((128, 128, 128))  # 8 MiB in 64 chunks of 128 KiB: on the pool
    store = zs.MemoryStore()
    store.create_array(NODE, shape=data.shape, chunks=(32, 32, 32), dtype="float32",
                       codecs=codecs)
    store.write_array(NODE, ..., data)
    store.read_array(NODE)  # the threads' scratch exists from here on
    peak, out = peak_bytes(lambda: store.read_array(NODE))
    np.testing.assert_array_equal(out, data)
    assert data.nbytes <= peak <= 1.2 * data.nbytes, (peak, data.nbytes)
    assert out.flags.owndata and out.flags.writeable


def test_full_write_peak_is_a_few_chunks_beyond_the_stored_bytes(two_threads):
    data = smooth((128, 128, 128))
    store = zs.MemoryStore()
    store.create_array(NODE, shape=data.shape, chunks=(32, 32, 32), dtype="float32",
                       codecs=[Bytes()])
    peak, _ = peak_bytes(lambda: store.write_array(NODE, ..., data))
    # The new chunks are the stored values themselves (one copy of the data),
    # plus transient buffers of a few chunks.
    assert peak <= data.nbytes + 8 * 32 ** 3 * 4, (peak, data.nbytes)
    np.testing.assert_array_equal(store.read_array(NODE), data)


# -- what is kept after the calls ----------------------------------------------------------

CHAINS = {
    "zstd": lambda: [Bytes(), Zstd(level=1)],
    "gzip": lambda: [Bytes(), Gzip(level=1)],
    "sharded": lambda: [ShardingIndexed((16, 16, 16), [Bytes(), Zstd(level=1)])],
}


def resident_bytes():
    """The process's resident memory, after the C allocator returned what it
    holds free to the system (glibc's ``malloc_trim``)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def churn(store, first, count, workers):
    """Write, read and erase arrays ``first .. first + count`` of ``store``
    on the threads of the executor ``workers``, each array on one of them."""

    def one(k):
        node = zs.ArrayNode.of_path(f"/g{k % 3}/a{k}")
        chain = sorted(CHAINS)[k % len(CHAINS)]
        data = smooth((32, 48, 64)) + k
        store.create_array(node, shape=data.shape, chunks=(16, 16, 32), dtype="float32",
                           codecs=CHAINS[chain]())
        store.write_array(node, ..., data)
        store.write_array(node, (slice(3, 20), 7), data[3:20, 7] * 2)
        expected = data[::2, 1:40].copy()
        expected[2:10, 6] *= 2  # the even rows of 3..19, at column 7 (6 after 1:)
        np.testing.assert_array_equal(
            store.read_array(node, (slice(None, None, 2), slice(1, 40))), expected)
        store.erase_array_node(node)

    for future in [workers.submit(one, k) for k in range(first, first + count)]:
        future.result()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/statm")
@pytest.mark.parametrize("backend", ["memory", "filesystem"])
def test_a_hundred_arrays_leave_nothing_behind(backend, tmp_path):
    n_threads = 3
    # The same threads throughout: each thread's C allocator arena and
    # scratch are made in the warm-up, not counted as retained.
    with (zs.config.set(threads=n_threads, parallel_min_bytes=0, parallel_min_chunk_bytes=0),
          ThreadPoolExecutor(n_threads) as workers):
        store = zs.MemoryStore() if backend == "memory" else zs.FilesystemStore(tmp_path)
        store.create_group(zs.GroupNode.root())
        churn(store, 0, 20, workers)
        resident_before = resident_bytes()
        churn(store, 20, 100, workers)
        resident_after = resident_bytes()
        tracemalloc.start()  # on its own: its bookkeeping would count as resident
        try:
            traced_before = tracemalloc.get_traced_memory()[0]
            churn(store, 120, 30, workers)
            traced_after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert store.find_all_nodes()[0] == []
    # Every array's metadata, chunks and buffers are gone with it.
    assert traced_after - traced_before < 1 * MiB, traced_after - traced_before
    assert resident_after - resident_before < 4 * MiB, resident_after - resident_before
    assert store._hierarchy._layouts == {}


def test_scratch_kept_per_thread_is_bounded():
    _scratch.release()
    with zs.config.set(scratch_keep_bytes=3 * MiB):
        a = _scratch.buffer("a", 2 * MiB)
        assert _scratch.buffer("a", MiB) is a          # reused while large enough
        b = _scratch.buffer("b", 2 * MiB)               # over the bound: not kept
        assert _scratch.buffer("b", 2 * MiB) is not b
        assert _scratch.kept_bytes() == 2 * MiB
        big = _scratch.buffer("a", 4 * MiB)             # replaces "a", too large to keep
        assert len(big) == 4 * MiB and _scratch.kept_bytes() == 0
    _scratch.release()
    assert _scratch.kept_bytes() == 0


def test_erasing_an_array_drops_its_cached_metadata():
    store = zs.MemoryStore()
    for k in range(5):
        node = zs.ArrayNode.of_path(f"/g/a{k}")
        store.create_array(node, shape=(4,), chunks=(2,), dtype="int8")
        store.write_array(node, ..., np.arange(4, dtype="int8"))
    assert len(store._hierarchy._layouts) == 5
    store.erase_array_node(zs.ArrayNode.of_path("/g/a0"))
    assert len(store._hierarchy._layouts) == 4
    store.erase_group_node(zs.GroupNode.of_path("/g"))
    assert store._hierarchy._layouts == {}


def test_cached_metadata_is_bounded():
    store = zs.MemoryStore()
    with zs.config.set(cached_arrays=4):
        for k in range(10):
            node = zs.ArrayNode.of_path(f"/a{k}")
            store.create_array(node, shape=(2,), chunks=(2,), dtype="int8")
            store.read_array(node)
            assert len(store._hierarchy._layouts) <= 4
    # Dropped entries are parsed again when needed.
    np.testing.assert_array_equal(store.read_array(zs.ArrayNode.of_path("/a0")), [0, 0])
