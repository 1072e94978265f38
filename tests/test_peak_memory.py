"""Peak memory of whole-array reads and writes: the output plus a chunk per thread.

Measured with tracemalloc, which sees NumPy's and zstandard's allocations.
"""

import tracemalloc

import numpy as np
import pytest

import zarrsync as zs
from zarrsync.codecs import Bytes, Gzip, Zstd

NODE = zs.ArrayNode.of_path("/a")


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
    saved = zs.config.get_threads()
    zs.config.set_threads(2)
    yield
    zs.config.set_threads(saved)


@pytest.mark.parametrize("codecs", [[Bytes()], [Bytes(), Zstd(level=1)],
                                    [Bytes(), Gzip(level=1)]],
                         ids=["raw", "zstd", "gzip"])
def test_full_read_peak_is_output_plus_a_chunk_per_thread(codecs, two_threads):
    data = smooth((128, 128, 128))  # 8 MiB in 64 chunks of 128 KiB: on the pool
    store = zs.MemoryStore()
    store.create_array(NODE, shape=data.shape, chunks=(32, 32, 32), dtype="float32",
                       codecs=codecs)
    store.write_array(NODE, ..., data)
    peak, out = peak_bytes(lambda: store.read_array(NODE))
    np.testing.assert_array_equal(out, data)
    assert data.nbytes <= peak <= 1.2 * data.nbytes, (peak, data.nbytes)
    # A large output is allocated cache-line aligned (its gathers stream
    # their stores), and is still an ordinary array that owns its data.
    assert out.ctypes.data % 64 == 0
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
