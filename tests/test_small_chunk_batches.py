"""Writes of many small whole chunks compressed in one batch (``encode_covered_many``).

A write covering at least ``_MIN_BATCHED_CHUNKS`` chunks of under
``MIN_PARALLEL_CHUNK_BYTES`` each, with a ``bytes`` + ``zstd`` chain, copies
them into one buffer and compresses them in one call on every thread. These
tests force that path on small arrays and compare with NumPy, with the
per-chunk path, and with what zarr-python reads.
"""

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import zarrsync as zs
from zarrsync.codecs import Bytes, Zstd
from zarrsync.codecs._chain import CodecChain
from zarrsync.storage import _hierarchy

from patching import count_chunks_per_call, tuned
from strategies import (ArrayConfig, chunked_write_cases, expected_chunk_keys,
                        fill_mixed_values, orthogonal_index)

NODE = zs.ArrayNode.of_path("/a")


@pytest.fixture
def batch_everything(monkeypatch):
    """Batch from one covered chunk up, in batches of at most ``limit`` bytes."""
    monkeypatch.setattr(_hierarchy, "_MIN_BATCHED_CHUNKS", 1)

    def limit(nbytes):
        monkeypatch.setattr(_hierarchy, "_MAX_BATCH_BYTES", nbytes)
    return limit


def batching(max_bytes, threads):
    """``batch_everything`` as a context (hypothesis runs many inputs per test call)."""
    return tuned(_hierarchy, threads, _MIN_BATCHED_CHUNKS=1, _MAX_BATCH_BYTES=max_bytes)


@pytest.fixture
def count_batches(monkeypatch):
    return count_chunks_per_call(monkeypatch, CodecChain, "encode_covered_many")


def new_array(shape, chunks, dtype, fill_value=0, checksum=False, level=1):
    store = zs.MemoryStore()
    store.create_array(NODE, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill_value,
                       codecs=[Bytes("little"), Zstd(level=level, checksum=checksum)])
    return store


def stored_keys(store):
    return {k for k in store.list_prefix("a/") if k != "a/zarr.json"}


@pytest.mark.parametrize("threads", [1, 3])
@settings(max_examples=60, deadline=None)
@given(case=chunked_write_cases(), batch_chunks=st.integers(1, 5), data=st.data())
def test_batched_writes_match_numpy(threads, case, batch_chunks, data):
    shape, chunks, dtype, fill_value, writes = case
    store = new_array(shape, chunks, dtype, fill_value, checksum=data.draw(st.booleans()))
    expected = np.full(shape, fill_value, dtype=dtype)
    with batching(batch_chunks * int(np.prod(chunks)) * dtype.itemsize, threads):
        for sel in writes:
            region = np.ix_(*orthogonal_index(sel, shape)[0])
            x = data.draw(fill_mixed_values(expected[region].shape, dtype, fill_value))
            store.write_array(NODE, sel, x)
            expected[region] = x
            np.testing.assert_array_equal(store.read_array(NODE), expected)
    config = ArrayConfig(shape, chunks, dtype, dtype.type(fill_value))
    assert stored_keys(store) == expected_chunk_keys(expected, config, "a/")


def test_a_large_write_of_small_chunks_is_batched_and_reads_back(count_batches):
    data = np.random.default_rng(0).standard_normal((512, 512))
    data[:64, :64] = 0  # 64 chunks of fill value: erased, not stored
    store = new_array(data.shape, (8, 8), "float64")
    store.write_array(NODE, ..., data)
    assert count_batches == [4096]
    np.testing.assert_array_equal(store.read_array(NODE), data)
    assert len(stored_keys(store)) == 4096 - 64


def test_batches_split_at_the_byte_limit(batch_everything, count_batches):
    batch_everything(10 * 8 * 8 * 8)   # ten 8x8 float64 chunks per batch
    data = np.arange(64 * 40, dtype="float64").reshape(64, 40) + 1
    store = new_array(data.shape, (8, 8), "float64")
    store.write_array(NODE, ..., data)
    assert count_batches == [10, 10, 10, 10]
    np.testing.assert_array_equal(store.read_array(NODE), data)


def test_partial_edge_chunks_take_the_chunk_path(count_batches):
    # 50 x 50 in 8 x 8 chunks: the 36 whole chunks inside are batched, the
    # 13 edge chunks (padded) go chunk by chunk.
    data = np.random.default_rng(1).integers(1, 9, (50, 50)).astype("int16")
    store = new_array(data.shape, (8, 8), "int16")
    store.write_array(NODE, ..., data)
    assert count_batches == [36]
    np.testing.assert_array_equal(store.read_array(NODE), data)
    assert len(stored_keys(store)) == 49


def test_few_or_large_chunks_are_not_batched(count_batches):
    store = new_array((64, 64), (8, 8), "float64")
    store.write_array(NODE, (slice(0, 16), slice(0, 16)), np.ones((16, 16)))  # 4 chunks
    big = new_array((256, 256), (128, 128), "float64")                     # 128 KiB chunks
    big.write_array(NODE, ..., np.ones((256, 256)))
    assert count_batches == []


@pytest.mark.parametrize("checksum", [False, True])
def test_batched_frames_are_standard_zstd(checksum):
    data = np.random.default_rng(2).standard_normal((64, 64)).astype("float32")
    store = new_array(data.shape, (8, 8), "float32", checksum=checksum, level=3)
    store.write_array(NODE, ..., data)
    frame = store.get("a/c/1/2")
    params = zstandard.get_frame_parameters(frame)
    assert params.content_size == 8 * 8 * 4 and params.has_checksum == checksum
    chunk = np.frombuffer(zstandard.ZstdDecompressor().decompress(frame), dtype="<f4")
    np.testing.assert_array_equal(chunk.reshape(8, 8), data[8:16, 16:24])


def test_zarr_python_reads_a_batched_write(tmp_path):
    zarr = pytest.importorskip("zarr")
    data = np.random.default_rng(3).standard_normal((96, 80))
    store = zs.FilesystemStore(tmp_path)
    store.create_array(NODE, shape=data.shape, chunks=(8, 8), dtype="float64",
                       codecs=[Bytes("little"), Zstd(level=1, checksum=True)])
    store.write_array(NODE, ..., data)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a"), mode="r")[...], data)


def test_a_failing_batch_raises_codec_error_and_keeps_the_old_chunks(monkeypatch):
    store = new_array((64, 64), (8, 8), "float64")
    old = np.ones((64, 64))
    store.write_array(NODE, ..., old)

    def broken(self, data, segments, threads):
        raise zs.errors.CodecError("zstd: out of memory (simulated)")
    monkeypatch.setattr(Zstd, "encode_many", broken)
    with pytest.raises(zs.errors.CodecError, match="simulated"):
        store.write_array(NODE, ..., np.full((64, 64), 2.0))
    np.testing.assert_array_equal(store.read_array(NODE), old)
