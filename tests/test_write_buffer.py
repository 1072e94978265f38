"""The write buffer (``zarrsync.storage._buffer``): partly written chunks kept decoded.

On a store whose ``buffers_writes`` is true, ``write_array`` keeps the chunks
it writes only partly (and edge chunks) in memory until the array's writes
move on, a write covers them, anything reads or lists their keys, or
``flush()``/``close()``. These tests check that:

* the time-step append pattern stores each chunk once, not once per step;
* every read path (hierarchy and key-value) sees buffered data, and the
  key-value writes (``set``/``erase``/``erase_prefix``) win over it;
* a buffered store and an unbuffered one (``buffers_writes = False``) give
  equal reads at every step and byte-for-byte equal contents after ``flush``
  (Hypothesis, against a NumPy model);
* ZipStore and FilesystemStore put buffered chunks on disk on ``close``/``flush``
  and zarr-python reads them; a failed flush loses nothing; threads are safe;
  ``config.write_buffer_bytes`` bounds what is buffered.

The backend's own dict (``MemoryStore._data``) bypasses the flushing
wrappers, so it shows what has really been stored.
"""

import collections
import sys
import threading

import numpy as np
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st

import zarrsync as zs
from zarrsync import ArrayNode
from zarrsync.codecs import Bytes, ShardingIndexed, Transpose, VlenUtf8, Zstd

A = ArrayNode.of_path("/a")
B = ArrayNode.of_path("/b")


class CountingStore(zs.MemoryStore):
    """A MemoryStore that counts ``set`` calls per key."""

    def __init__(self, store_dict=None):
        self.sets = collections.Counter()
        super().__init__(store_dict)

    def set(self, key, value):
        self.sets[key] += 1
        super().set(key, value)


class FlakyStore(zs.MemoryStore):
    """A MemoryStore whose ``set`` of chunk keys fails ``failures`` more times."""

    def __init__(self):
        self.failures = 0
        super().__init__()

    def set(self, key, value):
        if "/c/" in key and self.failures > 0:
            self.failures -= 1
            raise OSError("simulated: no space left on device")
        super().set(key, value)


def unbuffered_memory_store():
    store = zs.MemoryStore()
    store.buffers_writes = False
    return store


def create_small(store, node=A, fill_value=-1, codecs=None):
    """A (10, 10) int16 array of (4, 4) chunks: chunk (0, 0) is whole, (2, *) are edges."""
    store.create_array(node, shape=(10, 10), chunks=(4, 4), dtype="int16",
                       fill_value=fill_value, codecs=codecs or [Bytes(), Zstd()])


def decode(store, node, key):
    """The decoded chunk at ``key`` as stored in the backend (no flushing)."""
    raw = store._data[key]
    return np.asarray(store.array_metadata(node).chain.decode(raw, key))


# -- 1. the append pattern ------------------------------------------------------------

def run_append(store, nodes, steps=40, seed=0):
    rng = np.random.default_rng(seed)
    expected = {n: rng.random((steps, 16, 16), dtype=np.float32) for n in nodes}
    for n in nodes:
        store.create_array(n, shape=(0, 16, 16), chunks=(8, 16, 16), dtype="float32",
                           codecs=[Bytes(), Zstd()])
    for t in range(steps):
        for n in nodes:  # several variables per time step, written in turn
            store.reshape(n, (t + 1, 16, 16))
            store.write_array(n, (slice(t, t + 1),), expected[n][t:t + 1])
    return expected


def chunk_set_counts(store, node):
    prefix = node.key + "/c/"
    return {k: n for k, n in store.sets.items() if k.startswith(prefix)}


@pytest.mark.parametrize("nvars", [1, 2], ids=["one-variable", "two-variables"])
def test_append_pattern_stores_each_chunk_once(nvars):
    nodes = [ArrayNode.of_path(f"/var{i}") for i in range(nvars)]
    store = CountingStore()
    assert store.buffers_writes
    expected = run_append(store, nodes)
    keys = [f"c/{i}/0/0" for i in range(5)]
    for n in nodes:
        counts = chunk_set_counts(store, n)
        # Chunks 0..3 are done (the writes moved on): stored once or twice, not
        # once per step (8); chunk 4 is still buffered.
        assert all(1 <= counts.get(f"{n.key}/{k}", 0) <= 2 for k in keys[:4]), counts
        assert f"{n.key}/c/4/0/0" not in store._data
    for n in nodes:
        np.testing.assert_array_equal(store.read_array(n), expected[n])
        np.testing.assert_array_equal(store.read_array(n, (slice(30, 40),)), expected[n][30:])
    store.flush()
    for n in nodes:
        counts = chunk_set_counts(store, n)
        assert sorted(counts) == [f"{n.key}/{k}" for k in keys]
        assert all(1 <= c <= 2 for c in counts.values()), counts
        np.testing.assert_array_equal(decode(store, n, f"{n.key}/c/4/0/0"), expected[n][32:40])


def test_append_pattern_unbuffered_sets_once_per_step_and_stores_the_same_bytes():
    # The control: without the buffer every step re-stores its chunk, so the
    # counts above do measure the buffer. Both runs store the same bytes.
    nodes = [ArrayNode.of_path("/var0"), ArrayNode.of_path("/var1")]
    plain = CountingStore()
    plain.buffers_writes = False
    expected = run_append(plain, nodes)
    assert chunk_set_counts(plain, nodes[0])["var0/c/0/0/0"] == 8
    buffered = CountingStore()
    run_append(buffered, nodes)
    assert buffered.to_dict() == plain.to_dict()
    for n in nodes:
        np.testing.assert_array_equal(plain.read_array(n), expected[n])


# -- 2. key-value reads see buffered chunks -------------------------------------------

KEY = "a/c/0/0"


@pytest.fixture
def buffered_and_twin():
    """A buffered store with a partly written chunk ``KEY``, and an unbuffered twin."""
    stores = []
    for buffered in (True, False):
        store = zs.MemoryStore()
        store.buffers_writes = buffered
        create_small(store)
        store.write_array(A, (slice(1, 3), slice(0, 3)), np.arange(6, dtype=np.int16).reshape(2, 3))
        store.write_array(A, (3, slice(2, 4)), np.array([7, 8], dtype=np.int16))
        stores.append(store)
    store, twin = stores
    assert KEY not in store._data  # buffered
    assert KEY in twin._data       # written through
    return store, twin


def expected_chunk():
    chunk = np.full((4, 4), -1, dtype=np.int16)
    chunk[1:3, 0:3] = np.arange(6).reshape(2, 3)
    chunk[3, 2:4] = [7, 8]
    return chunk


def test_get_stores_and_returns_buffered_chunk(buffered_and_twin):
    store, twin = buffered_and_twin
    raw = store.get(KEY)
    assert raw == twin.get(KEY)
    assert KEY in store._data
    np.testing.assert_array_equal(decode(store, A, KEY), expected_chunk())


def test_get_many_returns_buffered_chunk(buffered_and_twin):
    store, twin = buffered_and_twin
    keys = ["a/zarr.json", KEY, "a/c/1/1"]
    assert store.get_many(keys) == twin.get_many(keys)
    assert store.get_many(keys)[1] is not None


def test_get_many_accepts_any_iterable_of_keys(buffered_and_twin):
    # Without anything buffered any iterable works (the twin); the buffer
    # must not change what get_many returns.
    store, twin = buffered_and_twin
    keys = ["a/zarr.json", KEY]
    assert twin.get_many(k for k in keys) == twin.get_many(keys)
    assert store.get_many(k for k in keys) == twin.get_many(keys)


def test_get_partial_values_returns_buffered_chunk(buffered_and_twin):
    store, twin = buffered_and_twin
    ranges = [(KEY, 0, None), (KEY, 2, 5), (KEY, -4, None), ("a/c/1/1", 0, 1)]
    got = store.get_partial_values(ranges)
    assert got == twin.get_partial_values(ranges)
    whole = twin.get(KEY)
    assert got[:3] == [whole, whole[2:7], whole[-4:]]


def test_get_partial_values_accepts_any_iterable_of_ranges(buffered_and_twin):
    store, twin = buffered_and_twin
    ranges = [(KEY, 0, None), ("a/zarr.json", 0, 4)]
    assert twin.get_partial_values(iter(ranges)) == twin.get_partial_values(ranges)
    assert store.get_partial_values(iter(ranges)) == twin.get_partial_values(ranges)


def test_getsize_counts_buffered_chunk(buffered_and_twin):
    store, twin = buffered_and_twin
    assert store.getsize(KEY) == twin.getsize(KEY) == len(twin.get(KEY))
    assert KEY in store._data


@pytest.mark.parametrize("prefix", ["", "a/", "a/c/", "a/c/0/"])
def test_list_prefix_lists_buffered_chunk(buffered_and_twin, prefix):
    store, twin = buffered_and_twin
    listed = store.list_prefix(prefix)
    assert KEY in listed
    assert listed == twin.list_prefix(prefix)
    assert store._data[KEY] == twin.get(KEY)


@pytest.mark.parametrize("prefix, entry", [("a/c/0/", ("keys", "0")),
                                           ("a/c/", ("prefixes", "0")),
                                           ("a/", ("prefixes", "c")),
                                           ("", ("prefixes", "a"))])
def test_list_dir_lists_buffered_chunk(buffered_and_twin, prefix, entry):
    store, twin = buffered_and_twin
    keys, prefixes = store.list_dir(prefix)
    assert entry[1] in (keys if entry[0] == "keys" else prefixes)
    assert (keys, prefixes) == twin.list_dir(prefix)
    assert store._data[KEY] == twin.get(KEY)


KV_READS = {
    "get": lambda s: s.get(KEY),
    "get_many": lambda s: s.get_many([KEY, "a/c/2/2"]),
    "get_partial_values": lambda s: s.get_partial_values([(KEY, 1, 3), (KEY, -2, None)]),
    "getsize": lambda s: s.getsize(KEY),
    "list_prefix": lambda s: s.list_prefix("a/c/"),
    "list_dir": lambda s: s.list_dir("a/c/0/"),
}


@pytest.mark.parametrize("read", sorted(KV_READS))
@pytest.mark.parametrize("backend", ["filesystem", "zip"])
def test_key_value_reads_of_disk_backends_see_buffered_chunk(tmp_path, backend, read):
    if backend == "zip":
        store = zs.ZipStore(tmp_path / "data.zip", mode="w")
    else:
        store = zs.FilesystemStore(tmp_path)
        store.buffers_writes = True
    twin = unbuffered_memory_store()
    for s in (store, twin):
        create_small(s)
        s.write_array(A, (slice(1, 3), slice(0, 3)), np.arange(6, dtype=np.int16).reshape(2, 3))
        s.write_array(A, (3, slice(2, 4)), np.array([7, 8], dtype=np.int16))
    if backend == "filesystem":
        assert zs.FilesystemStore(tmp_path).get(KEY) is None  # still buffered
    assert KV_READS[read](store) == KV_READS[read](twin)
    if backend == "filesystem":
        assert zs.FilesystemStore(tmp_path).get(KEY) == twin.get(KEY)  # the read stored it
    store.close()


def test_len_and_to_dict_include_buffered_chunk(buffered_and_twin):
    store, twin = buffered_and_twin
    assert len(store) == len(twin) == 3  # root group, array, chunk
    d = store.to_dict()
    assert d == twin.to_dict()
    assert KEY in d


def test_hierarchy_reads_see_buffered_chunk(buffered_and_twin):
    store, twin = buffered_and_twin
    np.testing.assert_array_equal(store.read_array(A, (slice(0, 4), slice(0, 4))),
                                  expected_chunk())
    np.testing.assert_array_equal(store.read_array(A), twin.read_array(A))
    arrays, _ = store.find_all_nodes()
    assert arrays == [A]


def test_turning_the_buffer_off_with_chunks_buffered():
    store = zs.MemoryStore()
    create_small(store)
    store.write_array(A, (0, 0), np.int16(1))
    store.write_array(A, (1, 1), np.int16(2))
    store.buffers_writes = False
    assert zs.MemoryStore.buffers_writes  # per store object
    store.write_array(A, (2, 2), np.int16(3))  # the same chunk: starts from the buffered one
    assert KEY in store._data
    np.testing.assert_array_equal(np.diag(decode(store, A, KEY)), [1, 2, 3, -1])
    store.write_array(A, (9, 9), np.int16(4))
    assert "a/c/2/2" in store._data
    expected = np.full((10, 10), -1, dtype=np.int16)
    expected[[0, 1, 2, 9], [0, 1, 2, 9]] = [1, 2, 3, 4]
    np.testing.assert_array_equal(store.read_array(A), expected)


def test_unbuffered_memory_store_writes_through():
    store = unbuffered_memory_store()
    create_small(store)
    store.write_array(A, (slice(9, 10), slice(9, 10)), np.int16(5))  # partial edge chunk
    store.write_array(A, (slice(0, 1), slice(0, 1)), np.int16(6))    # partial chunk
    assert {"a/c/2/2", "a/c/0/0"} <= set(store._data)


def test_partial_and_edge_chunks_are_buffered_whole_chunks_are_not():
    store = zs.MemoryStore()
    create_small(store)
    # Rows 0..3 whole: chunks (0, 0) and (0, 1) are whole, (0, 2) is an edge chunk
    # (columns 8..9 of 12) written whole.
    store.write_array(A, (slice(0, 4),), np.ones((4, 10), dtype=np.int16))
    assert {"a/c/0/0", "a/c/0/1"} <= set(store._data)
    assert "a/c/0/2" not in store._data
    np.testing.assert_array_equal(store.read_array(A, (slice(0, 4),)), 1)
    assert "a/c/0/2" in store._data


def test_writes_to_another_array_do_not_flush():
    store = zs.MemoryStore()
    create_small(store, A)
    create_small(store, B)
    store.write_array(A, (0, 0), np.int16(1))
    store.write_array(B, (9, 9), np.int16(2))
    store.write_array(B, (0, 9), np.int16(3))  # B moves on from chunk (2, 2)
    assert "b/c/2/2" in store._data
    assert "a/c/0/0" not in store._data and "b/c/0/2" not in store._data
    assert store.read_array(A, (0, 0)) == 1


def test_write_covering_a_buffered_chunk_replaces_it():
    store = CountingStore()
    create_small(store)
    store.write_array(A, (0, 0), np.int16(1))
    store.write_array(A, (slice(0, 4), slice(0, 4)), np.full((4, 4), 2, dtype=np.int16))
    assert store.sets["a/c/0/0"] == 1  # the buffered chunk was not stored first
    np.testing.assert_array_equal(decode(store, A, "a/c/0/0"), 2)
    store.flush()
    np.testing.assert_array_equal(store.read_array(A, (slice(0, 4), slice(0, 4))), 2)


def test_buffered_chunk_that_ends_all_fill_is_erased():
    store = zs.MemoryStore()
    create_small(store)
    store.write_array(A, (slice(0, 4), slice(0, 4)), np.full((4, 4), 3, dtype=np.int16))
    store.write_array(A, (slice(0, 2), slice(0, 4)), np.int16(-1))
    store.write_array(A, (slice(2, 4), slice(0, 4)), np.int16(-1))
    store.flush()
    assert store.list_prefix("a/c/") == []
    np.testing.assert_array_equal(store.read_array(A), -1)


def test_sharded_arrays_are_not_buffered():
    store = zs.MemoryStore()
    store.create_array(A, shape=(16, 16), chunks=(8, 8), dtype="int16",
                       codecs=[ShardingIndexed((4, 4), codecs=[Bytes()])])
    store.write_array(A, (1, slice(0, 3)), np.array([1, 2, 3], dtype=np.int16))
    assert "a/c/0/0" in store._data
    expected = np.zeros((16, 16), dtype=np.int16)
    expected[1, :3] = [1, 2, 3]
    np.testing.assert_array_equal(store.read_array(A), expected)


# -- 3. key-value writes and node operations win over buffered data ------------------

def other_chunk_bytes():
    """The encoded bytes of a chunk of 9s, written by an unbuffered store."""
    twin = unbuffered_memory_store()
    create_small(twin)
    twin.write_array(A, (slice(0, 4), slice(0, 4)), np.full((4, 4), 9, dtype=np.int16))
    return twin.get(KEY)


def test_set_wins_over_buffered_chunk(buffered_and_twin):
    store, _ = buffered_and_twin
    raw = other_chunk_bytes()
    store.set(KEY, raw)
    assert store._data[KEY] == raw
    np.testing.assert_array_equal(store.read_array(A, (slice(0, 4), slice(0, 4))), 9)
    store.flush()
    assert store.get(KEY) == raw
    # A new partial write starts from the set value.
    store.write_array(A, (0, 0), np.int16(1))
    expected = np.full((4, 4), 9, dtype=np.int16)
    expected[0, 0] = 1
    np.testing.assert_array_equal(store.read_array(A, (slice(0, 4), slice(0, 4))), expected)


def test_set_through_keyword_arguments_wins(buffered_and_twin):
    store, _ = buffered_and_twin
    raw = other_chunk_bytes()
    store.set(key=KEY, value=raw)
    store.flush()
    assert store.get(KEY) == raw


def test_erase_wins_over_buffered_chunk():
    store = zs.MemoryStore()
    create_small(store)
    # Store a whole chunk, then buffer a partial update of it.
    store.write_array(A, (slice(0, 4), slice(0, 4)), np.full((4, 4), 5, dtype=np.int16))
    store.write_array(A, (0, 0), np.int16(6))
    assert decode(store, A, KEY)[0, 0] == 5  # the update is still buffered
    store.erase(KEY)
    np.testing.assert_array_equal(store.read_array(A), -1)
    store.flush()
    assert store.get(KEY) is None
    assert store.list_prefix("a/c/") == []


@pytest.mark.parametrize("prefix", ["a/c/", "a/c/0/", "a/c/0/0", "a/"])
def test_erase_prefix_wins_over_buffered_chunk(buffered_and_twin, prefix):
    store, _ = buffered_and_twin
    store.erase_prefix(prefix)
    if prefix != "a/":
        np.testing.assert_array_equal(store.read_array(A), -1)
    store.flush()
    assert store.list_prefix(prefix) == []
    assert KEY not in store._data


def test_erase_array_node_drops_buffered_chunks(buffered_and_twin):
    store, _ = buffered_and_twin
    store.erase_array_node(A)
    assert not store.array_exists(A)
    store.flush()
    assert store.list_prefix("a/") == []
    create_small(store)
    np.testing.assert_array_equal(store.read_array(A), -1)
    store.flush()
    assert store.list_prefix("a/c/") == []


def test_erase_all_nodes_drops_buffered_chunks(buffered_and_twin):
    store, _ = buffered_and_twin
    store.erase_all_nodes()
    store.flush()
    assert store.to_dict() == {}
    assert store._data == {}


def test_create_array_overwrite_drops_buffered_chunks(buffered_and_twin):
    store, _ = buffered_and_twin
    with pytest.raises(zs.NodeExists):
        create_small(store)
    # The same metadata again: the array's cached state must not resurrect anything.
    store.create_array(A, shape=(10, 10), chunks=(4, 4), dtype="int16", fill_value=-1,
                       codecs=[Bytes(), Zstd()], overwrite=True)
    np.testing.assert_array_equal(store.read_array(A), -1)
    store.flush()
    assert store.list_prefix("a/c/") == []
    # Also with other metadata (another chunk grid and data type).
    store.write_array(A, (0, 0), np.int16(3))
    store.create_array(A, shape=(10, 10), chunks=(5, 5), dtype="float32", fill_value=0.5,
                       overwrite=True)
    np.testing.assert_array_equal(store.read_array(A), np.float32(0.5))
    store.flush()
    assert store.list_prefix("a/c/") == []


def test_rename_array_moves_buffered_chunks(buffered_and_twin):
    store, twin = buffered_and_twin
    store.write_array(A, (9, 9), np.int16(4))
    twin.write_array(A, (9, 9), np.int16(4))
    expected = twin.read_array(A)
    new = store.rename_array(A, "b")
    assert new == B
    assert not store.array_exists(A)
    np.testing.assert_array_equal(store.read_array(B), expected)
    assert store.list_prefix("a/") == []
    # Writing on under the new name keeps working; nothing returns to the old name.
    store.write_array(B, (0, 3), np.int16(11))
    expected[0, 3] = 11
    store.flush()
    assert store.list_prefix("a/") == []
    np.testing.assert_array_equal(store.read_array(B), expected)
    assert twin.rename_array(A, "b") == B
    twin.write_array(B, (0, 3), np.int16(11))
    assert store.to_dict() == twin.to_dict()


def test_move_prefix_moves_buffered_chunks(buffered_and_twin):
    store, twin = buffered_and_twin
    store.move_prefix("a/", "b/")
    twin.move_prefix("a/", "b/")
    assert store._data == twin._data
    assert "b/c/0/0" in store._data


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_reshape_shrink_then_grow_shows_fill_past_the_cut(buffered):
    store = zs.MemoryStore()
    store.buffers_writes = buffered
    create_small(store)
    data = np.arange(100, dtype=np.int16).reshape(10, 10)
    for row in range(10):  # row by row: every chunk is written partly
        store.write_array(A, (row,), data[row])
    store.write_array(A, (slice(5, 7), slice(5, 7)), np.int16(0))  # buffered, partial
    data[5:7, 5:7] = 0
    store.reshape(A, (6, 7))
    store.reshape(A, (10, 10))
    expected = np.full((10, 10), -1, dtype=np.int16)
    expected[:6, :7] = data[:6, :7]
    np.testing.assert_array_equal(store.read_array(A), expected)
    store.flush()
    twin = unbuffered_memory_store()
    create_small(twin)
    twin.write_array(A, Ellipsis, expected)
    np.testing.assert_array_equal(twin.read_array(A), expected)
    assert store.to_dict() == twin.to_dict()


def test_reshape_shrink_of_a_buffered_chunk_without_reads():
    store = zs.MemoryStore()
    create_small(store)
    store.write_array(A, (slice(0, 3), slice(0, 3)), np.int16(7))  # one buffered chunk
    store.reshape(A, (1, 1))
    store.reshape(A, (10, 10))
    expected = np.full((10, 10), -1, dtype=np.int16)
    expected[0, 0] = 7
    np.testing.assert_array_equal(store.read_array(A), expected)


def test_set_attributes_between_buffered_writes():
    store = zs.MemoryStore()
    create_small(store)
    store.write_array(A, (0, 0), np.int16(1))
    store.set_attributes(A, {"units": "K"})
    store.write_array(A, (0, 1), np.int16(2))
    store.reshape(A, (10, 12))
    store.write_array(A, (0, 2), np.int16(3))
    expected = np.full((10, 12), -1, dtype=np.int16)
    expected[0, :3] = [1, 2, 3]
    np.testing.assert_array_equal(store.read_array(A), expected)
    assert store.array_metadata(A).attributes == {"units": "K"}


# -- 4. equivalence with an unbuffered store and NumPy (Hypothesis) --------------------

STRING = np.dtypes.StringDType()
# (data type, fill value, NumPy dtype, value pool)
DTYPES = {
    "float32": ("float32", "NaN", np.float32, [np.nan, 0.0, -0.0, 1.5, -2.25, 1e30]),
    "int16": ("int16", -7, np.int16, [-7, 0, 1, 300, -32768, 32767]),
    "string": ("string", "", STRING, ["", "a", "é€", "𝄞", "long " * 5, "x\x00y"]),
}


def codec_chains(kind, ndim):
    if kind == "string":
        return {"vlen+zstd": [VlenUtf8(), Zstd()]}
    return {"bytes": [Bytes()],
            "bytes+zstd": [Bytes(), Zstd()],
            "transpose+bytes": [Transpose(tuple(reversed(range(ndim)))), Bytes()]}


@st.composite
def slice_selections(draw, shape):
    sel = []
    for n in shape:
        if n and draw(st.integers(0, 4)) == 0:
            sel.append(draw(st.integers(0, n - 1)))
            continue
        start = draw(st.integers(0, n))
        stop = draw(st.integers(start, n))
        step = draw(st.sampled_from([1, 1, 1, 2, 3]))
        sel.append(slice(start, stop, step))
    return tuple(sel)


def new_model(dtype, fill, shape):
    return np.full(shape, fill, dtype=dtype)


def assert_same(got, expected):
    assert got.shape == expected.shape
    if got.dtype.kind in "iuf":
        assert got.dtype == expected.dtype
        assert got.tobytes() == expected.tobytes()  # bit for bit (NaN, -0.0)
    else:
        np.testing.assert_array_equal(got, expected)


@given(data=st.data(), kind=st.sampled_from(sorted(DTYPES)))
def test_buffered_store_equals_unbuffered_store_and_numpy(data, kind):
    data_type, fill, np_dtype, pool = DTYPES[kind]
    ndim = data.draw(st.integers(1, 3), label="ndim")
    shape = tuple(data.draw(st.lists(st.integers(0, 9), min_size=ndim, max_size=ndim),
                            label="shape"))
    chunks = tuple(data.draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim),
                             label="chunks"))
    chains = codec_chains(kind, ndim)
    chain_name = data.draw(st.sampled_from(sorted(chains)), label="codecs")
    encoding, separator = data.draw(st.sampled_from(
        [("default", "/"), ("default", "."), ("v2", "."), ("v2", "/")]), label="chunk keys")
    buffered, plain = zs.MemoryStore(), unbuffered_memory_store()
    for store in (buffered, plain):
        store.create_array(A, shape=shape, chunks=chunks, dtype=data_type,
                           fill_value=fill, codecs=codec_chains(kind, ndim)[chain_name],
                           chunk_key_encoding=encoding, separator=separator)
    fill_np = np.array(fill if kind == "string" else float(fill), dtype=np_dtype)
    model = new_model(np_dtype, fill_np, shape)

    ops = data.draw(st.lists(st.sampled_from(["write"] * 5 + ["reshape", "read", "flush"]),
                             max_size=14), label="operations")
    for op in ops:
        if op == "write":
            sel = data.draw(slice_selections(model.shape), label="write selection")
            out_shape = np.shape(model[sel])
            values = data.draw(st.lists(st.sampled_from(pool), min_size=int(np.prod(out_shape)),
                                        max_size=int(np.prod(out_shape))), label="values")
            value = np.array(values, dtype=np_dtype).reshape(out_shape)
            for store in (buffered, plain):
                store.write_array(A, sel, value)
            model[sel] = value
        elif op == "reshape":
            new_shape = tuple(data.draw(st.lists(st.integers(0, 10), min_size=ndim,
                                                 max_size=ndim), label="new shape"))
            for store in (buffered, plain):
                store.reshape(A, new_shape)
            grown = new_model(np_dtype, fill_np, new_shape)
            common = tuple(slice(0, min(a, b)) for a, b in zip(model.shape, new_shape))
            grown[common] = model[common]
            model = grown
        elif op == "read":
            sel = data.draw(slice_selections(model.shape), label="read selection")
            got = buffered.read_array(A, sel)
            assert_same(got, plain.read_array(A, sel))
            assert_same(got, np.asarray(model[sel], dtype=model.dtype).reshape(got.shape))
        else:
            buffered.flush()
            assert buffered._data == plain._data
    assert_same(buffered.read_array(A), model)
    assert_same(plain.read_array(A), model)
    buffered.flush()
    assert buffered.to_dict() == plain.to_dict()


# -- 5. ZipStore --------------------------------------------------------------------------

def append_rows(store, node, data):
    """Write ``data`` one row at a time, growing the array by one row each step."""
    store.create_array(node, shape=(0,) + data.shape[1:], chunks=(4,) + data.shape[1:],
                       dtype=data.dtype, fill_value=-1, codecs=[Bytes(), Zstd()])
    for t in range(len(data)):
        store.reshape(node, (t + 1,) + data.shape[1:])
        store.write_array(node, (slice(t, t + 1),), data[t:t + 1])


def zarr_read(location, path="a"):
    if str(location).endswith(".zip"):
        zstore = zarr.storage.ZipStore(location, mode="r")
        try:
            return zarr.open_array(zstore, path=path, mode="r")[...]
        finally:
            zstore.close()
    return zarr.open_array(str(location), path=path, mode="r")[...]


def test_zip_store_close_stores_buffered_chunks(tmp_path):
    path = tmp_path / "data.zip"
    data = np.arange(10 * 6, dtype=np.int16).reshape(10, 6)
    store = zs.ZipStore(path, mode="w")
    assert store.buffers_writes
    append_rows(store, A, data)
    np.testing.assert_array_equal(store.read_array(A, (slice(8, 10),)), data[8:])
    store.write_array(A, (9, 0), np.int16(-5))  # buffered again after the read
    data[9, 0] = -5
    store.close()
    np.testing.assert_array_equal(zarr_read(path), data)
    with zs.ZipStore(path, mode="r") as reader:
        np.testing.assert_array_equal(reader.read_array(A), data)


def test_zip_store_context_manager_stores_buffered_chunks(tmp_path):
    path = tmp_path / "data.zip"
    rng = np.random.default_rng(1)
    data = rng.integers(-100, 100, size=(11, 3, 5), dtype=np.int16)
    other = rng.integers(-100, 100, size=(7, 4), dtype=np.int16)
    with zs.ZipStore(path, mode="w") as store:
        append_rows(store, A, data)
        append_rows(store, B, other)
    np.testing.assert_array_equal(zarr_read(path, "a"), data)
    np.testing.assert_array_equal(zarr_read(path, "b"), other)
    # Append mode buffers too, and close stores the rest.
    with zs.ZipStore(path, mode="a") as store:
        store.write_array(A, (0, 0, 0), np.int16(99))
        data[0, 0, 0] = 99
    np.testing.assert_array_equal(zarr_read(path, "a"), data)


def test_zip_store_dropped_without_close_stores_buffered_chunks(tmp_path):
    # ZipStore finishes the archive when it is garbage collected; that
    # includes the chunks still buffered.
    import gc

    path = tmp_path / "data.zip"
    store = zs.ZipStore(path, mode="w")
    create_small(store)
    store.write_array(A, (2, slice(3, 6)), np.int16(12))
    del store
    gc.collect()
    expected = np.full((10, 10), -1, dtype=np.int16)
    expected[2, 3:6] = 12
    np.testing.assert_array_equal(zarr_read(path), expected)


def test_zip_store_buffered_strings_and_nan_fill_read_by_zarr_python(tmp_path):
    path = tmp_path / "data.zip"
    words = np.array(["", "a", "é€", "𝄞 clef", "long " * 9, "x", "yz"], dtype=STRING)
    with zs.ZipStore(path, mode="w") as store:
        store.create_array(A, shape=(0,), chunks=(3,), dtype="string",
                           codecs=[VlenUtf8(), Zstd()])
        store.create_array(B, shape=(0, 3), chunks=(4, 2), dtype="float32",
                           fill_value=float("nan"), codecs=[Bytes(), Zstd()])
        for t in range(len(words)):
            for node in (A, B):
                store.reshape(node, (t + 1,) + ((3,) if node is B else ()))
            store.write_array(A, (slice(t, t + 1),), words[t:t + 1])
            store.write_array(B, (t, slice(0, 2)), np.float32([t, -t]))
    np.testing.assert_array_equal(zarr_read(path, "a").astype(STRING), words)
    floats = np.full((len(words), 3), np.nan, dtype=np.float32)
    floats[:, 0] = np.arange(len(words))
    floats[:, 1] = -np.arange(len(words))
    np.testing.assert_array_equal(zarr_read(path, "b"), floats)


@pytest.mark.parametrize("sel", [(0, 0), (slice(8, 10), slice(8, 10)),
                                 (slice(0, 4), slice(0, 4)), (0, slice(0, 1))],
                         ids=["partial", "edge-whole", "whole", "partial-fill"])
def test_read_only_zip_store_write_array_raises_at_once(tmp_path, sel):
    path = tmp_path / "data.zip"
    with zs.ZipStore(path, mode="w") as store:
        create_small(store)
        store.write_array(A, (slice(0, 4), slice(0, 4)), np.int16(1))
    reader = zs.ZipStore(path, mode="r")
    assert not reader.buffers_writes
    value = np.int16(-1) if sel == (0, slice(0, 1)) else np.int16(3)
    with pytest.raises(zs.ReadOnlyStoreError):
        reader.write_array(A, sel, value)
    reader.close()
    expected = np.full((10, 10), -1, dtype=np.int16)
    expected[:4, :4] = 1
    np.testing.assert_array_equal(zarr_read(path), expected)


# -- 6. FilesystemStore ----------------------------------------------------------------------

def test_filesystem_store_is_unbuffered_by_default(tmp_path):
    writer, reader = zs.FilesystemStore(tmp_path), zs.FilesystemStore(tmp_path)
    assert not writer.buffers_writes
    create_small(writer)
    expected = np.full((10, 10), -1, dtype=np.int16)
    for i, (row, col) in enumerate([(0, 0), (0, 1), (9, 9), (5, 2), (0, 2)]):
        writer.write_array(A, (row, col), np.int16(i))
        expected[row, col] = i
        np.testing.assert_array_equal(reader.read_array(A), expected)


def test_filesystem_store_buffered_is_seen_by_others_after_flush(tmp_path):
    writer, reader = zs.FilesystemStore(tmp_path), zs.FilesystemStore(tmp_path)
    writer.buffers_writes = True
    assert not reader.buffers_writes
    create_small(writer)
    expected = np.full((10, 10), -1, dtype=np.int16)
    writer.write_array(A, (slice(1, 3), slice(1, 3)), np.int16(5))
    expected[1:3, 1:3] = 5
    np.testing.assert_array_equal(reader.read_array(A), -1)  # not on disk yet
    np.testing.assert_array_equal(writer.read_array(A), expected)  # the writer sees it
    np.testing.assert_array_equal(reader.read_array(A), expected)  # the read stored it
    seen = expected.copy()
    writer.write_array(A, (0, 0), np.int16(7))  # buffered again, over the stored chunk
    expected[0, 0] = 7
    np.testing.assert_array_equal(reader.read_array(A), seen)
    writer.write_array(A, (9, 9), np.int16(6))  # moves on: chunk (0, 0) is stored
    expected[9, 9] = 6
    seen[0, 0] = 7
    np.testing.assert_array_equal(reader.read_array(A), seen)
    writer.write_array(A, (9, 8), np.int16(8))  # the same (edge) chunk, still buffered
    expected[9, 8] = 8
    np.testing.assert_array_equal(reader.read_array(A), seen)
    writer.flush()
    np.testing.assert_array_equal(reader.read_array(A), expected)
    np.testing.assert_array_equal(zarr_read(tmp_path), expected)


def test_filesystem_store_buffered_rename_moves_buffered_chunks(tmp_path):
    writer, reader = zs.FilesystemStore(tmp_path), zs.FilesystemStore(tmp_path)
    writer.buffers_writes = True
    create_small(writer)
    writer.write_array(A, (slice(0, 2), slice(0, 2)), np.int16(3))
    writer.rename_array(A, "b")
    writer.write_array(B, (9, 9), np.int16(4))
    writer.flush()
    expected = np.full((10, 10), -1, dtype=np.int16)
    expected[:2, :2] = 3
    expected[9, 9] = 4
    assert not reader.array_exists(A)
    np.testing.assert_array_equal(reader.read_array(B), expected)
    assert not (tmp_path / "a").exists()


def test_filesystem_store_buffered_close_and_context_manager(tmp_path):
    data = np.arange(9 * 4, dtype=np.int16).reshape(9, 4)
    with zs.FilesystemStore(tmp_path) as store:
        store.buffers_writes = True
        append_rows(store, A, data)
        assert zs.FilesystemStore(tmp_path).read_array(A)[8, 0] == -1
    np.testing.assert_array_equal(zarr_read(tmp_path), data)


# -- 7. failed flushes keep the chunk --------------------------------------------------------

def test_failed_flush_keeps_the_chunk_buffered():
    store = FlakyStore()
    create_small(store)
    store.write_array(A, (0, slice(0, 4)), np.array([1, 2, 3, 4], dtype=np.int16))
    store.failures = 1
    with pytest.raises(OSError):
        store.flush()
    assert KEY not in store._data
    # The chunk is still buffered: a later partial write goes into it, and
    # the next flush stores both writes.
    store.write_array(A, (1, slice(0, 2)), np.array([5, 6], dtype=np.int16))
    store.flush()
    expected = np.full((4, 4), -1, dtype=np.int16)
    expected[0] = [1, 2, 3, 4]
    expected[1, :2] = [5, 6]
    np.testing.assert_array_equal(decode(store, A, KEY), expected)
    np.testing.assert_array_equal(store.read_array(A, (slice(0, 4), slice(0, 4))), expected)


def test_failed_flush_then_flush_again():
    store = FlakyStore()
    create_small(store)
    store.write_array(A, (slice(0, 2), slice(0, 6)), np.int16(8))  # chunks (0, 0), (0, 1)
    expected = np.full((10, 10), -1, dtype=np.int16)
    expected[:2, :6] = 8
    store.failures = 1
    with pytest.raises(OSError):
        store.flush()
    store.flush()
    assert {"a/c/0/0", "a/c/0/1"} <= set(store._data)
    np.testing.assert_array_equal(store.read_array(A), expected)


def test_failed_flush_from_a_read_or_write_loses_nothing():
    store = FlakyStore()
    create_small(store)
    store.write_array(A, (0, 0), np.int16(1))
    expected = np.full((10, 10), -1, dtype=np.int16)
    expected[0, 0] = 1
    # A read flushes the chunk it needs: the failure reaches the reader ...
    store.failures = 1
    with pytest.raises(OSError):
        store.read_array(A)
    # ... and the next read is right.
    np.testing.assert_array_equal(store.read_array(A), expected)
    # A write that moves on flushes the chunk it leaves.
    store.write_array(A, (0, 1), np.int16(2))
    expected[0, 1] = 2
    store.failures = 1
    with pytest.raises(OSError):
        store.write_array(A, (9, 9), np.int16(3))
    np.testing.assert_array_equal(store.read_array(A), expected)
    store.write_array(A, (9, 9), np.int16(3))
    expected[9, 9] = 3
    np.testing.assert_array_equal(store.read_array(A), expected)
    store.flush()
    twin = unbuffered_memory_store()
    create_small(twin)
    twin.write_array(A, Ellipsis, expected)
    assert store.to_dict() == twin.to_dict()


def test_failed_close_of_a_zip_store_can_be_retried(tmp_path):
    class FlakyZip(zs.ZipStore):
        failures = 0

        def set(self, key, value):
            if "/c/" in key and self.failures > 0:
                self.failures -= 1
                raise OSError("simulated: no space left on device")
            super().set(key, value)

    path = tmp_path / "data.zip"
    store = FlakyZip(path, mode="w")
    create_small(store)
    store.write_array(A, (3, 3), np.int16(4))
    store.failures = 1
    with pytest.raises(OSError):
        store.close()
    assert not store.closed
    store.close()
    expected = np.full((10, 10), -1, dtype=np.int16)
    expected[3, 3] = 4
    np.testing.assert_array_equal(zarr_read(path), expected)


# -- 8. threads -------------------------------------------------------------------------------

@pytest.fixture
def frequent_thread_switches():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def threaded_rows(store, n_threads, rows, cols, rounds):
    store.create_array(A, shape=(rows, cols), chunks=(4, 7), dtype="int32", fill_value=0,
                       codecs=[Bytes(), Zstd()])
    data = np.arange(rows * cols, dtype=np.int32).reshape(rows, cols) + 1
    barrier = threading.Barrier(n_threads)
    errors = []

    def work(i):
        try:
            barrier.wait()
            for _ in range(rounds):
                for row in range(i, rows, n_threads):  # neighbouring rows: other threads
                    # Two partial writes per row, so every chunk is written partly.
                    store.write_array(A, (row, slice(0, cols // 2)), data[row, :cols // 2])
                    store.write_array(A, (row, slice(cols // 2, cols)), data[row, cols // 2:])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return data


@pytest.mark.usefixtures("frequent_thread_switches")
def test_threads_writing_disjoint_rows():
    for _ in range(3):  # several runs: several interleavings
        store = zs.MemoryStore()
        data = threaded_rows(store, n_threads=4, rows=30, cols=17, rounds=2)
        np.testing.assert_array_equal(store.read_array(A), data)
        store.flush()
        twin = unbuffered_memory_store()
        twin.create_array(A, shape=data.shape, chunks=(4, 7), dtype="int32", fill_value=0,
                          codecs=[Bytes(), Zstd()])
        for row in range(len(data)):
            twin.write_array(A, (row,), data[row])
        assert store.to_dict() == twin.to_dict()


@pytest.mark.usefixtures("frequent_thread_switches")
def test_threads_writing_while_others_read_and_flush():
    store = zs.MemoryStore()
    stop = threading.Event()
    errors = []

    def disturb():
        try:
            while not stop.is_set():
                store.flush()
                store.list_prefix("a/")
                store.get_many(store.list_prefix("a/c/"))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    helper = threading.Thread(target=disturb)
    helper.start()
    try:
        data = threaded_rows(store, n_threads=3, rows=24, cols=17, rounds=1)
    finally:
        stop.set()
        helper.join()
    assert not errors, errors
    np.testing.assert_array_equal(store.read_array(A), data)


# -- 9. config.write_buffer_bytes --------------------------------------------------------------

@pytest.fixture
def buffer_limit():
    """Set ``config.write_buffer_bytes`` for one test."""
    restore = []
    yield lambda n: restore.append(zs.config.set(write_buffer_bytes=n))
    for r in reversed(restore):
        r.__exit__(None, None, None)


def test_max_buffered_bytes_writes_large_partial_writes_through(buffer_limit):
    buffer_limit(64)
    store = zs.MemoryStore()
    store.create_array(A, shape=(32, 32), chunks=(16, 16), dtype="int16", fill_value=0)
    store.write_array(A, (0, 0), np.int16(1))  # one 512-byte partial chunk > 64 bytes
    assert "a/c/0/0" in store._data
    store.write_array(A, (slice(0, 20), slice(0, 20)), np.int16(2))  # four partial chunks
    assert {"a/c/0/0", "a/c/0/1", "a/c/1/0", "a/c/1/1"} <= set(store._data)
    expected = np.zeros((32, 32), dtype=np.int16)
    expected[:20, :20] = 2
    np.testing.assert_array_equal(store.read_array(A), expected)


def test_max_buffered_bytes_keeps_small_partial_writes(buffer_limit):
    buffer_limit(4096)
    store = zs.MemoryStore()
    store.create_array(A, shape=(32, 32), chunks=(16, 16), dtype="int16", fill_value=0)
    store.write_array(A, (0, 0), np.int16(1))
    assert "a/c/0/0" not in store._data
    assert store.read_array(A, (0, 0)) == 1


def test_default_max_buffered_bytes_writes_a_huge_partial_chunk_through():
    # One uint8 chunk just over the default limit (64 MiB): no monkeypatching.
    side = 8200
    assert side * side > zs.config.get("write_buffer_bytes") == 64 << 20
    store = zs.MemoryStore()
    store.create_array(A, shape=(side, side), chunks=(side, side), dtype="uint8",
                       fill_value=0, codecs=[Bytes()])
    store.write_array(A, (slice(0, 2), slice(0, 3)), np.uint8(7))
    assert "a/c/0/0" in store._data
    store.create_array(B, shape=(16, 16), chunks=(8, 8), dtype="uint8", fill_value=0,
                       codecs=[Bytes()])
    store.write_array(B, (0, 0), np.uint8(7))
    assert "b/c/0/0" not in store._data
    np.testing.assert_array_equal(store.read_array(A, (slice(0, 3), slice(0, 4))),
                                  [[7, 7, 7, 0], [7, 7, 7, 0], [0, 0, 0, 0]])
