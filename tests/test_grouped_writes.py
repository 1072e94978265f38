"""Compressed writes of whole chunks a few neighbours at a time
(``Hierarchy._write_covered_in_groups``, ``CodecChain.encode_covered_group``).

Chunks a write covers that are too large for the small-chunk batches are
gathered in groups of up to ``_GROUP_BYTES`` into one thread buffer (their
rows walked side by side), then each is encoded from its place there. These
tests force groups on small arrays and compare with NumPy, with the
per-chunk encoding, and with what zarr-python reads.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zarrsync as zs
from zarrsync.codecs import Bytes, Crc32c, Gzip, Zstd
from zarrsync.codecs._chain import CodecChain
from zarrsync.storage import _hierarchy

from patching import count_chunks_per_call, tuned
from strategies import (ArrayConfig, chunked_write_cases, expected_chunk_keys,
                        fill_mixed_values, orthogonal_index)

NODE = zs.ArrayNode.of_path("/a")

CHAINS = {
    "zstd": lambda: [Bytes("little"), Zstd(level=1)],
    "gzip": lambda: [Bytes("little"), Gzip(level=1)],
    "zstd+crc32c": lambda: [Bytes("little"), Zstd(level=3, checksum=True), Crc32c()],
}


def grouping(group_bytes, threads):
    """Groups of at most ``group_bytes``, never the small-chunk batches, on ``threads`` threads."""
    return tuned(_hierarchy, threads, _GROUP_BYTES=group_bytes, _MIN_BATCHED_CHUNKS=1 << 30)


@pytest.fixture
def group_sizes(monkeypatch):
    """The number of chunks of every ``encode_covered_group`` call."""
    return count_chunks_per_call(monkeypatch, CodecChain, "encode_covered_group")


def new_array(shape, chunks, dtype, chain="zstd", fill_value=0, store=None):
    store = zs.MemoryStore() if store is None else store
    store.create_array(NODE, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill_value,
                       codecs=CHAINS[chain]())
    return store


def stored_keys(store):
    return {k for k in store.list_prefix("a/") if k != "a/zarr.json"}


@pytest.mark.parametrize("threads", [1, 3])
@settings(max_examples=60, deadline=None)
@given(case=chunked_write_cases(), group_chunks=st.integers(2, 9),
       chain=st.sampled_from(sorted(CHAINS)), data=st.data())
def test_grouped_writes_match_numpy(threads, case, group_chunks, chain, data):
    shape, chunks, dtype, fill_value, writes = case
    store = new_array(shape, chunks, dtype, chain, fill_value)
    expected = np.full(shape, fill_value, dtype=dtype)
    with grouping(group_chunks * int(np.prod(chunks)) * dtype.itemsize, threads):
        for sel in writes:
            region = np.ix_(*orthogonal_index(sel, shape)[0])
            x = data.draw(fill_mixed_values(expected[region].shape, dtype, fill_value))
            store.write_array(NODE, sel, x)
            expected[region] = x
            np.testing.assert_array_equal(store.read_array(NODE), expected)
    config = ArrayConfig(shape, chunks, dtype, dtype.type(fill_value))
    assert stored_keys(store) == expected_chunk_keys(expected, config, "a/")


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_a_group_encodes_each_chunk_as_encode_covered_does(chain):
    data = np.random.default_rng(0).standard_normal((12, 40)).astype("float32")
    data[:, 8:16] = 0   # one chunk of fill value in the group
    store = new_array(data.shape, (12, 8), "float32", chain)
    state = store._array_state(NODE)
    plan = zs.indexing.normalize_selection(..., data.shape).plan(data.shape, (12, 8))
    indices = plan.covered_chunks()
    grouped = state.chain.encode_covered_group(plan, indices, data, state.fill_bytes)
    one_by_one = [state.chain.encode_covered(plan, int(i), data, state.fill_bytes)
                  for i in indices]
    assert grouped[1] is None and one_by_one[1] is None
    decoded = [None if g is None else state.chain.decode(g) for g in grouped]
    for k, (g, o) in enumerate(zip(decoded, one_by_one)):
        if o is not None:
            np.testing.assert_array_equal(g, state.chain.decode(o))
            np.testing.assert_array_equal(g, data[:, 8 * k:8 * (k + 1)])


@pytest.mark.parametrize("threads, groups", [(1, [16]), (2, [2] * 8)])
def test_large_chunks_are_written_in_groups(group_sizes, threads, groups):
    # 16 chunks of 256 KiB: groups of at most 4 MiB, with two threads at least
    # four groups per thread.
    data = np.random.default_rng(1).standard_normal((256, 256, 16)).astype("float32")
    store = new_array(data.shape, (64, 64, 16), "float32")
    saved = zs.config.get_threads()
    zs.config.set_threads(threads)
    try:
        store.write_array(NODE, ..., data)
    finally:
        zs.config.set_threads(saved)
    assert group_sizes == groups
    np.testing.assert_array_equal(store.read_array(NODE), data)
    assert len(stored_keys(store)) == 16


def test_too_few_or_too_large_chunks_are_not_grouped(group_sizes):
    one = new_array((64, 64), (64, 64), "float64")
    one.write_array(NODE, ..., np.ones((64, 64)))               # one covered chunk
    big = new_array((1024, 1024), (1024, 512), "float32")        # 2 MiB chunks
    big.write_array(NODE, ..., np.ones((1024, 1024), dtype="float32"))
    raw = zs.MemoryStore()
    raw.create_array(NODE, shape=(64, 64), chunks=(8, 64), dtype="float64",
                     codecs=[Bytes("little")])                   # uncompressed: own path
    raw.write_array(NODE, ..., np.ones((64, 64)))
    assert group_sizes == []
    np.testing.assert_array_equal(big.read_array(NODE), 1)


def test_partial_chunks_beside_groups_take_the_chunk_path(group_sizes):
    # 100 x 100 in 32 x 32 chunks, written from (10, 10): the four chunks it
    # covers wholly inside the array are grouped, the others merged chunk by chunk.
    old = np.random.default_rng(2).integers(1, 9, (100, 100)).astype("int32")
    store = new_array(old.shape, (32, 32), "int32")
    store.write_array(NODE, ..., old)
    group_sizes.clear()
    new = np.arange(90 * 90, dtype="int32").reshape(90, 90)
    with grouping(4 << 20, 1):
        store.write_array(NODE, (slice(10, 100), slice(10, 100)), new)
    assert group_sizes == [4]
    expected = old.copy()
    expected[10:, 10:] = new
    np.testing.assert_array_equal(store.read_array(NODE), expected)


def test_zarr_python_reads_a_grouped_write(tmp_path):
    zarr = pytest.importorskip("zarr")
    data = np.random.default_rng(3).standard_normal((96, 80, 8))
    store = new_array(data.shape, (32, 16, 8), "float64", "zstd+crc32c",
                      store=zs.FilesystemStore(tmp_path))
    with grouping(1 << 20, 2):
        store.write_array(NODE, ..., data)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a"), mode="r")[...], data)


def test_a_failing_group_raises_codec_error_and_tears_no_chunk(monkeypatch):
    old = np.ones((64, 64, 64), dtype="float32")
    store = new_array(old.shape, (16, 16, 16), "float32")
    with grouping(4 << 20, 2):
        store.write_array(NODE, ..., old)
    calls = []
    original = Zstd.encode

    def failing_later(self, data):
        calls.append(1)
        if len(calls) > 5:
            raise zs.errors.CodecError("zstd: out of memory (simulated)")
        return original(self, data)
    monkeypatch.setattr(Zstd, "encode", failing_later)
    with grouping(4 << 20, 2), pytest.raises(zs.errors.CodecError, match="simulated"):
        store.write_array(NODE, ..., np.full(old.shape, 2.0, dtype="float32"))
    # Every chunk holds the old values or the new ones, never a mixture.
    got = store.read_array(NODE)
    for coords in np.ndindex(4, 4, 4):
        chunk = got[tuple(slice(16 * c, 16 * (c + 1)) for c in coords)]
        assert (chunk == 1).all() or (chunk == 2).all(), coords
    assert (got == 1).any()
