"""The ``sharding_indexed`` codec: partial reads, whole-shard writes, bad shards.

https://zarr-specs.readthedocs.io/en/latest/v3/codecs/sharding-indexed/index.html

Arrays whose codec chain is ``sharding_indexed`` alone are read and written
inner chunk by inner chunk (the codec's ``inner_chunks()``, used by the
pipeline): reads fetch a shard's index and then the byte ranges of the
inner chunks they need, never the whole shard. Other sharded
chains (a transpose before the sharding codec, a compressor after it) decode
and encode whole shards. Both paths are checked here against shards parsed
with NumPy alone (``parse_shard``), so the index layout is pinned
independently of zarrsync. An index entry larger than its inner chunk's
codecs can store is refused before any range is read. Random arrays, shapes and chains are in
``test_properties.py``; zarr-python interop is in ``test_interop.py``.
"""

import json

import itertools

import crc32c
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zarrsync as zs
from zarrsync import ArrayNode
from zarrsync.codecs import Bytes, Crc32c, Gzip, ShardingIndexed, Transpose, Zstd, from_dict
from zarrsync.metadata import ArrayMetadata
from zarrsync.storage import Store

from strategies import (array_configs, arrays_of, assert_bitwise_equal, chunk_key,
                        expected_empty_inner_chunks, np_read, np_write, orthogonal_index,
                        selections, sharding_config, write_values)

NODE = ArrayNode.of_path("/g/arr")
EMPTY = 2**64 - 1


# -- stores that record what is read --------------------------------------------------

class SpecOnlyCountingStore(Store):
    """A backend with only the spec's key-value methods, over a MemoryStore,
    recording every value it returns: ``(key, offset, length, nbytes)``;
    ``offset`` is ``None`` for a whole-value ``get``, ``nbytes`` is ``None``
    for an absent key."""

    def __init__(self, inner=None):
        self.inner = inner if inner is not None else zs.MemoryStore()
        self.reads = []

    def get(self, key):
        value = self.inner.get(key)
        self.reads.append((key, None, None, None if value is None else len(value)))
        return value

    def get_partial_values(self, key_ranges):
        key_ranges = list(key_ranges)
        values = self.inner.get_partial_values(key_ranges)
        for (key, offset, length), value in zip(key_ranges, values):
            self.reads.append((key, offset, length, None if value is None else len(value)))
        return values

    def set(self, key, value):
        self.inner.set(key, value)

    def erase(self, key):
        self.inner.erase(key)

    def erase_prefix(self, prefix):
        self.inner.erase_prefix(prefix)

    def list_prefix(self, prefix):
        return self.inner.list_prefix(prefix)

    def list_dir(self, prefix):
        return self.inner.list_dir(prefix)

    # -- what the tests look at

    def reset(self):
        self.reads.clear()

    def chunk_reads(self):
        """Reads of anything but a ``zarr.json`` document."""
        return [r for r in self.reads if not r[0].endswith("zarr.json")]

    def bytes_read(self):
        return sum(r[3] or 0 for r in self.chunk_reads())


class CountingStore(SpecOnlyCountingStore):
    """The same, passing the optional ``getsize`` on to the MemoryStore (it
    returns a size, no bytes)."""

    knows_sizes = True

    def __init__(self, inner=None):
        super().__init__(inner)
        self.sizes = []

    def getsize(self, key):
        self.sizes.append(key)
        return self.inner.getsize(key)


# -- shards parsed with NumPy alone ---------------------------------------------------

def index_size(n_inner, crc):
    return 16 * n_inner + (4 if crc else 0)


def index_bounds(shard_size, n_inner, location, crc):
    """``[start, stop)`` of the index within a shard of ``shard_size`` bytes."""
    size = index_size(n_inner, crc)
    return (0, size) if location == "start" else (shard_size - size, shard_size)


def parse_shard(raw, n_inner, location="end", endian="little", crc=True):
    """The ``(n_inner, 2)`` (offset, nbytes) entries of a shard, checking the crc32c."""
    start, stop = index_bounds(len(raw), n_inner, location, crc)
    index = raw[start:stop]
    if crc:
        assert crc32c.crc32c(index[:-4]) == int.from_bytes(index[-4:], "little"), \
            "the index crc32c does not match"
        index = index[:-4]
    dt = np.dtype("<u8" if endian == "little" else ">u8")
    return np.frombuffer(index, dtype=dt).astype(np.uint64).reshape(n_inner, 2)


def with_entries(raw, entries, location="end", endian="little", crc=True):
    """``raw`` with its index replaced by ``entries`` (crc32c recomputed)."""
    entries = np.asarray(entries, dtype=np.uint64)
    n_inner = entries.shape[0]
    start, stop = index_bounds(len(raw), n_inner, location, crc)
    dt = np.dtype("<u8" if endian == "little" else ">u8")
    index = entries.astype(dt).tobytes()
    if crc:
        index += crc32c.crc32c(index).to_bytes(4, "little")
    return raw[:start] + index + raw[stop:]


def covered(ranges, intervals, probes=False):
    """True if every absolute byte range ``[a, b)`` lies inside one of ``intervals``.

    ``probes``: one-byte reads are allowed anywhere. A backend without its own
    ``getsize`` cannot tell a shard's size, so with the index at the end
    zarrsync reads one byte ``index size - 1`` past the furthest chunk it needs,
    proving that the chunks end before the index.
    """
    return all(any(lo <= a and b <= hi for lo, hi in intervals) or (probes and b - a == 1)
               for a, b in ranges)


def probe_bytes(store, location):
    """The bytes a one-byte size probe may add (see ``covered``)."""
    return 1 if location == "end" and type(store) is SpecOnlyCountingStore else 0


def absolute_ranges(reads, key, shard_size):
    out = []
    for k, offset, length, nbytes in reads:
        if k != key or nbytes is None:
            continue
        assert offset is not None, f"the whole shard {key!r} was read with get()"
        a = shard_size + offset if offset < 0 else offset
        out.append((a, a + nbytes))
    return out


def sample(shape, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    # Small integers: compressible, and never equal to the fill values used below.
    return (rng.integers(1, 50, size=shape)).astype(dtype)


def sharded(store, shape, shard, inner, dtype="float64", fill_value=None, codecs=None,
            index_codecs=None, index_location="end", before=(), after=(), node=NODE):
    """Create a sharded array; ``inner`` is in array axes (with a transpose in
    ``before``, the sharding codec sees, and is given, the transposed shape)."""
    for t in before:
        inner = tuple(inner[i] for i in t.order)
    codec = ShardingIndexed(inner, codecs, index_codecs, index_location)
    store.create_array(node, shape=shape, chunks=shard, dtype=dtype, fill_value=fill_value,
                       codecs=[*before, codec, *after])
    return node


LOCATIONS = ["start", "end"]
INDEX_CODECS = {"bytes": [Bytes()], "bytes+crc32c": [Bytes(), Crc32c()]}
INNER_CODECS = {
    "bytes": [Bytes()],
    "zstd": [Bytes(), Zstd(3)],
    "transpose+gzip+crc": [Transpose((2, 0, 1)), Bytes("big"), Gzip(1), Crc32c()],
}


# -- partial reads: the index, then only the needed inner chunks ---------------------

@pytest.mark.parametrize("store_cls", [CountingStore, SpecOnlyCountingStore],
                         ids=["getsize", "spec-only"])
@pytest.mark.parametrize("inner_codecs", list(INNER_CODECS))
@pytest.mark.parametrize("index_codecs", list(INDEX_CODECS))
@pytest.mark.parametrize("location", LOCATIONS)
def test_reading_one_inner_chunk_reads_the_index_and_that_chunk(location, index_codecs,
                                                                inner_codecs, store_cls):
    """A shard of 4x4x4 inner chunks: reading one of them reads fewer than
    2 * (index size + that chunk's stored size) bytes, through byte ranges."""
    store = store_cls()
    crc = index_codecs == "bytes+crc32c"
    node = sharded(store, (32, 16, 16), (16, 16, 16), (4, 4, 4), dtype="float32",
                   codecs=INNER_CODECS[inner_codecs], index_codecs=INDEX_CODECS[index_codecs],
                   index_location=location)
    data = sample((32, 16, 16), "float32")
    store.write_array(node, ..., data)
    key = "g/arr/c/1/0/0"
    raw = store.inner.get(key)
    entries = parse_shard(raw, 64, location, crc=crc)
    assert (entries != EMPTY).all()

    # The inner chunk at (1, 2, 3) of shard (1, 0, 0): index position 1*16 + 2*4 + 3.
    p = 27
    offset, nbytes = int(entries[p, 0]), int(entries[p, 1])
    for sel in [(slice(20, 24), slice(8, 12), slice(12, 16)), (21, 9, 13),
                (slice(21, 23), [8, 11], 15)]:
        store.reset()
        got = store.read_array(node, sel)
        np.testing.assert_array_equal(got, data[sel] if not isinstance(sel[1], list)
                                      else data[21:23][:, [8, 11]][:, :, 15])
        limit = 2 * (index_size(64, crc) + nbytes)
        assert store.bytes_read() < limit, (store.chunk_reads(), limit)
        assert {r[0] for r in store.chunk_reads()} == {key}
        ranges = absolute_ranges(store.chunk_reads(), key, len(raw))
        assert covered(ranges, [index_bounds(len(raw), 64, location, crc),
                                (offset, offset + nbytes)], probe_bytes(store, location)), ranges
        assert store.bytes_read() <= (index_size(64, crc) + nbytes
                                      + probe_bytes(store, location))
    assert store.inner.get(key) == raw  # a read changes nothing


@pytest.mark.parametrize("store_cls", [CountingStore, SpecOnlyCountingStore],
                         ids=["getsize", "spec-only"])
@pytest.mark.parametrize("location", LOCATIONS)
def test_reading_a_few_inner_chunks_reads_only_those(location, store_cls):
    store = store_cls()
    node = sharded(store, (12, 16), (12, 16), (3, 4), dtype="int32",
                   codecs=[Bytes(), Zstd(1)], index_location=location)
    data = sample((12, 16), "int32")
    store.write_array(node, ..., data)
    key = "g/arr/c/0/0"
    raw = store.inner.get(key)
    entries = parse_shard(raw, 16, location)
    # Rows 4..7 x columns 6..9 touch inner chunks (1, 1), (1, 2), (2, 1), (2, 2).
    needed = [1 * 4 + 1, 1 * 4 + 2, 2 * 4 + 1, 2 * 4 + 2]
    store.reset()
    np.testing.assert_array_equal(store.read_array(node, (slice(4, 8), slice(6, 10))),
                                  data[4:8, 6:10])
    ranges = absolute_ranges(store.chunk_reads(), key, len(raw))
    wanted = [(int(entries[p, 0]), int(entries[p, 0] + entries[p, 1])) for p in needed]
    assert covered(ranges, [index_bounds(len(raw), 16, location, True), *wanted],
                   probe_bytes(store, location))
    # Every needed chunk was read, and nothing else.
    assert store.bytes_read() == (index_size(16, True) + sum(b - a for a, b in wanted)
                                  + probe_bytes(store, location))


def test_reads_of_several_shards_read_each_index_once():
    store = CountingStore()
    node = sharded(store, (8, 8), (4, 4), (2, 2), dtype="uint16")
    data = sample((8, 8), "uint16")
    store.write_array(node, ..., data)
    store.reset()
    np.testing.assert_array_equal(store.read_array(node, (slice(1, 7), 3)), data[1:7, 3])
    index_reads = [r for r in store.chunk_reads() if r[3] == index_size(4, True)]
    assert sorted(r[0] for r in index_reads) == ["g/arr/c/0/0", "g/arr/c/1/0"]
    assert all(r[1] is not None for r in store.chunk_reads())


def touched_inner_chunks(sel, shape, inner):
    """Per axis, ``{inner chunk coordinate: complete}`` for an orthogonal selection:
    the inner chunks it touches, and whether it covers their part inside the array."""
    index, _ = orthogonal_index(sel, shape)
    out = []
    for idx, n, c in zip(index, shape, inner):
        chosen = set(int(i) for i in idx)
        out.append({k: set(range(k * c, min((k + 1) * c, n))) <= chosen
                    for k in sorted({i // c for i in chosen})})
    return out


def shard_reads_allowed(store, config, sel, shape, writing):
    """``{shard key: (byte intervals a read or write may fetch, size)}`` for the
    shards ``sel`` touches: the index, and the stored inner chunks the selection
    touches (a read) or does not cover whole (a write, which rebuilds the shard)."""
    inner, location, endian, crc = sharding_config(config.codecs)
    per_shard = [s // c for s, c in zip(config.chunks, inner)]
    n_inner = int(np.prod(per_shard))
    touched = touched_inner_chunks(sel, shape, inner)
    allowed = {}
    for coords in itertools.product(*[sorted({k // p for k in t}) for t, p in
                                      zip(touched, per_shard)]):
        key = NODE.key + "/" + chunk_key(coords, config.chunk_key_encoding, config.separator)
        raw = store.inner.get(key)
        if raw is None:
            allowed[key] = ([], 0)
            continue
        entries = parse_shard(raw, n_inner, location, endian, crc)
        intervals = [index_bounds(len(raw), n_inner, location, crc)]
        for flat, pos in enumerate(itertools.product(*[range(p) for p in per_shard])):
            chunk = [c * p + q for c, p, q in zip(coords, per_shard, pos)]
            hit = all(k in t for k, t in zip(chunk, touched))
            complete = hit and all(t[k] for k, t in zip(chunk, touched))
            if (writing and not complete) or (not writing and hit):
                offset, nbytes = int(entries[flat, 0]), int(entries[flat, 1])
                if offset != EMPTY:
                    intervals.append((offset, offset + nbytes))
        allowed[key] = (intervals, len(raw))
    return allowed


def check_reads(store, allowed, location):
    reads = store.chunk_reads()
    assert {r[0] for r in reads} <= set(allowed), "a shard outside the selection was read"
    for key, (intervals, size) in allowed.items():
        ranges = absolute_ranges(reads, key, size)
        assert covered(ranges, intervals, probe_bytes(store, location)), (key, ranges)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_reads_and_writes_fetch_only_what_they_need(data):
    """Random fast-path arrays: a read fetches only the index and the stored inner
    chunks it touches; a partial write only the index and the stored inner chunks
    it does not cover whole; never a whole shard."""
    config = data.draw(array_configs(sharded=True, sharding_path="fast"), label="config")
    _, location, _, _ = sharding_config(config.codecs)
    store = data.draw(st.sampled_from([CountingStore, SpecOnlyCountingStore]))()
    config.create(store, NODE)
    expected = config.reference()
    whole = data.draw(arrays_of(config.dtype, config.shape, config.fill_value), label="data")
    store.write_array(NODE, ..., whole)
    np_write(expected, ..., whole)
    for _ in range(data.draw(st.integers(1, 3), label="operations")):
        sel = data.draw(selections(config.shape), label="selection")
        if data.draw(st.booleans(), label="write"):
            _, out_shape = orthogonal_index(sel, config.shape)
            value = data.draw(write_values(config.dtype, out_shape, config.fill_value))
            allowed = shard_reads_allowed(store, config, sel, config.shape, writing=True)
            store.reset()
            store.write_array(NODE, sel, value)
            np_write(expected, sel, value)
        else:
            allowed = shard_reads_allowed(store, config, sel, config.shape, writing=False)
            store.reset()
            assert_bitwise_equal(store.read_array(NODE, sel), np_read(expected, sel))
        check_reads(store, allowed, location)
    assert_bitwise_equal(store.read_array(NODE), expected)


# -- empty inner chunks and absent shards ---------------------------------------------

PATHS = {
    "fast": dict(),
    "transpose-before": dict(before=[Transpose((1, 0))]),
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("location", LOCATIONS)
def test_empty_marker_entries_read_as_fill(location, path):
    store = zs.MemoryStore()
    node = sharded(store, (8, 8), (8, 8), (4, 4), dtype="float32", fill_value=-1.5,
                   index_location=location, **PATHS[path])
    data = sample((8, 8), "float32")
    store.write_array(node, ..., data)
    key = "g/arr/c/0/0"
    raw = store.get(key)
    entries = parse_shard(raw, 4, location)
    assert (entries != EMPTY).all()
    # Mark inner chunks 1 and 3 empty (both values 2**64 - 1); their bytes stay.
    entries[[1, 3]] = EMPTY
    store.set(key, with_entries(raw, entries, location))
    expected = data.copy()
    expected[4:8, 4:8] = -1.5       # inner chunk (1, 1)
    if path == "fast":
        expected[0:4, 4:8] = -1.5   # inner chunk (0, 1)
    else:  # the sharding codec sees the transposed shard: (0, 1) is rows 4..8, cols 0..4
        expected[4:8, 0:4] = -1.5
    np.testing.assert_array_equal(store.read_array(node), expected)
    np.testing.assert_array_equal(store.read_array(node, (slice(2, 6), 5)), expected[2:6, 5])
    # A partial write keeps the empty chunks empty unless it writes into them.
    store.write_array(node, (0, 0), np.float32(7))
    expected[0, 0] = 7
    np.testing.assert_array_equal(store.read_array(node), expected)


@pytest.mark.parametrize("path", list(PATHS))
def test_absent_shard_reads_as_fill(path):
    store = zs.MemoryStore()
    node = sharded(store, (10, 7), (4, 4), (2, 2), dtype="complex64", fill_value=1 - 2j,
                   **PATHS[path])
    np.testing.assert_array_equal(store.read_array(node), np.full((10, 7), 1 - 2j, "c8"))
    store.write_array(node, (slice(0, 4), slice(0, 4)), np.ones((4, 4), "c8"))
    assert [k for k in store.list_prefix("g/arr/") if "zarr.json" not in k] == ["g/arr/c/0/0"]
    expected = np.full((10, 7), 1 - 2j, "c8")
    expected[:4, :4] = 1
    np.testing.assert_array_equal(store.read_array(node), expected)
    np.testing.assert_array_equal(store.read_array(node, (slice(3, 9), [0, 6])),
                                  expected[3:9][:, [0, 6]])


# -- writes: fill chunks left out, empty shards erased --------------------------------

@pytest.mark.parametrize("location", LOCATIONS)
def test_fill_inner_chunks_are_left_out_of_the_shard(location):
    store = zs.MemoryStore()
    shape, shard, inner = (10, 12), (8, 8), (2, 4)
    node = sharded(store, shape, shard, inner, dtype="float64", fill_value=np.nan,
                   index_location=location)
    data = np.full(shape, np.nan)
    data[0:2, 0:4] = 1.0            # one whole inner chunk
    data[3, 5] = -0.0               # one element of another
    data[8:10, 0:3] = 2.0           # an edge shard
    # A NaN with other bits is not the fill value (bitwise comparison).
    data[6, 9] = np.array(0x7FF8000000000001, dtype="u8").view("f8")
    store.write_array(node, ..., data)
    keys = sorted(k for k in store.list_prefix("g/arr/") if "zarr.json" not in k)
    assert keys == ["g/arr/c/0/0", "g/arr/c/0/1", "g/arr/c/1/0"]
    for key in keys:
        coords = tuple(int(c) for c in key.split("/")[-2:])
        raw = store.get(key)
        entries = parse_shard(raw, 8, location)
        empty = [bool(e[0] == EMPTY and e[1] == EMPTY) for e in entries]
        assert empty == expected_empty_inner_chunks(data, np.nan, coords, shard, inner), key
        # The shard holds the index and the stored inner chunks, nothing else.
        stored = entries[~np.array(empty)]
        assert len(raw) == index_size(8, True) + int(stored[:, 1].sum())
        for offset, nbytes in stored:
            assert nbytes == 2 * 4 * 8   # bytes codec: uncompressed inner chunks
    got = store.read_array(node)
    assert got.tobytes() == data.tobytes()


@pytest.mark.parametrize("path", ["fast", "transpose-before", "gzip-after"])
def test_shard_whose_inner_chunks_all_become_fill_is_erased(path):
    store = zs.MemoryStore()
    extra = {"fast": {}, "transpose-before": dict(before=[Transpose((1, 0))]),
             "gzip-after": dict(after=[Gzip(1)])}[path]
    node = sharded(store, (8, 6), (4, 6), (2, 3), dtype="int16", fill_value=5, **extra)
    store.write_array(node, (slice(1, 3), slice(1, 5)), np.int16(9))
    store.write_array(node, (slice(5, 6), slice(0, 2)), np.int16(9))
    assert sorted(k for k in store.list_prefix("g/arr/c")) == ["g/arr/c/0/0", "g/arr/c/1/0"]
    # Part of shard (0, 0) back to fill: it stays; all of it: it is erased.
    store.write_array(node, (slice(1, 2), slice(None)), np.int16(5))
    assert store.get("g/arr/c/0/0") is not None
    store.write_array(node, (slice(2, 3), slice(1, 5)), np.int16(5))
    assert store.get("g/arr/c/0/0") is None
    assert store.get("g/arr/c/1/0") is not None
    store.write_array(node, ..., np.int16(5))
    assert store.list_prefix("g/arr/c") == []
    np.testing.assert_array_equal(store.read_array(node), np.full((8, 6), 5, "i2"))


@pytest.mark.parametrize("location", LOCATIONS)
def test_partial_write_reads_the_index_and_the_kept_inner_chunks_only(location):
    store = CountingStore()
    node = sharded(store, (16, 16), (16, 16), (4, 4), dtype="float32",
                   codecs=[Bytes(), Zstd(1)], index_location=location)
    data = sample((16, 16), "float32")
    data[12:16, 12:16] = 0   # inner chunk 15 stays empty
    store.write_array(node, ..., data)
    key = "g/arr/c/0/0"
    raw = store.inner.get(key)
    entries = parse_shard(raw, 16, location)
    assert entries[15, 0] == EMPTY and (entries[:15] != EMPTY).all()

    # Overwrite inner chunks 0 and 1 whole, and one element of inner chunk 6.
    store.reset()
    store.write_array(node, (slice(0, 4), slice(0, 8)), np.float32(-3))
    store.write_array(node, (5, 9), np.float32(-4))
    data[0:4, 0:8] = -3
    data[5, 9] = -4
    np.testing.assert_array_equal(store.read_array(node), data)
    reads = store.chunk_reads()
    assert all(r[1] is not None for r in reads), "a whole shard was read"
    # First write: the index, then every stored chunk but 0 and 1 (15 is empty).
    first = [r for r in reads[:1 + 13]]
    ranges = absolute_ranges(first, key, len(raw))
    kept = [(int(entries[p, 0]), int(entries[p, 0] + entries[p, 1])) for p in range(2, 15)]
    assert covered(ranges, [index_bounds(len(raw), 16, location, True), *kept])
    assert sum(b - a for a, b in ranges) == index_size(16, True) + sum(b - a for a, b in kept)
    skipped = [(int(entries[p, 0]), int(entries[p, 0] + entries[p, 1])) for p in (0, 1)]
    assert not any(a < hi and lo < b for a, b in ranges for lo, hi in skipped)


@pytest.mark.parametrize("location", LOCATIONS)
def test_write_covering_a_shard_reads_nothing(location):
    store = CountingStore()
    node = sharded(store, (10, 10), (8, 8), (4, 4), dtype="uint8", index_location=location)
    store.write_array(node, ..., sample((10, 10), "uint8"))
    store.reset()
    store.write_array(node, (slice(0, 8), slice(0, 8)), np.uint8(3))
    assert store.chunk_reads() == []
    # An edge shard: its part inside the array covered is the whole of it.
    store.write_array(node, (slice(8, 10), slice(0, 8)), np.uint8(4))
    store.write_array(node, (slice(8, 10), slice(8, 10)), np.uint8(5))
    assert store.chunk_reads() == []
    expected = sample((10, 10), "uint8")
    expected[:8, :8] = 3
    expected[8:, :8] = 4
    expected[8:, 8:] = 5
    np.testing.assert_array_equal(store.read_array(node), expected)
    # The edge shard keeps only the inner chunks that intersect the array.
    entries = parse_shard(store.get("g/arr/c/1/1"), 4, location)
    assert [bool(e[0] != EMPTY) for e in entries] == [True, False, False, False]


# -- bad configurations ----------------------------------------------------------------

@pytest.mark.parametrize("codecs", [
    [ShardingIndexed((3, 4))],                        # 3 does not divide 8
    [ShardingIndexed((8, 5))],                        # 5 does not divide 8
    [ShardingIndexed((16, 8))],                       # larger than the shard
    [ShardingIndexed((4,))],                          # rank 1 for a rank-2 shard
    [ShardingIndexed((2, 2, 2))],                     # rank 3
    [Transpose((1, 0)), ShardingIndexed((8, 4))],     # the transposed shard is (4, 8)
    [ShardingIndexed((4, 4), [ShardingIndexed((3, 4))])],   # nested: 3 does not divide 4
    [ShardingIndexed((4, 4), [ShardingIndexed((2,))])],
], ids=["non-dividing", "non-dividing-2", "larger", "rank-1", "rank-3", "transposed",
        "nested", "nested-rank"])
def test_invalid_sharding_chunk_shape(codecs):
    store = zs.MemoryStore()
    with pytest.raises(zs.InvalidShardingChunkShape):
        store.create_array(NODE, shape=(16, 8), chunks=(8, 4), dtype="int8", codecs=codecs)
    assert not store.array_exists(NODE)
    doc = array_document((16, 8), (8, 4), codecs)
    with pytest.raises(zs.ParseError, match="chunk_shape"):
        ArrayMetadata.from_dict(doc)
    store.set(NODE.metadata_key, json.dumps(doc).encode())
    with pytest.raises(zs.ParseError):
        store.read_array(NODE)


@pytest.mark.parametrize("chunk_shape", [[], [0, 4], [-2, 4], [2.5, 4], "ab", None, [True, 4]])
def test_invalid_sharding_chunk_shape_values(chunk_shape):
    with pytest.raises(zs.InvalidShardingChunkShape):
        ShardingIndexed(chunk_shape)
    with pytest.raises(zs.InvalidShardingChunkShape):
        from_dict({"name": "sharding_indexed", "configuration": {"chunk_shape": chunk_shape}})
    with pytest.raises(zs.InvalidShardingChunkShape):
        from_dict({"name": "sharding_indexed", "configuration": {}})


def array_document(shape, chunks, codecs):
    return {"zarr_format": 3, "node_type": "array", "shape": list(shape),
            "data_type": "int8",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0, "codecs": [c.to_dict() for c in codecs], "attributes": {}}


@pytest.mark.parametrize("index_codecs", [
    [Bytes(), Gzip()],
    [Bytes(), Zstd()],
    [Bytes(), Crc32c(), Gzip(1)],
    [Transpose((1, 0, 2)), Bytes()],
    [Bytes(), Crc32c(), Zstd(1)],
    [ShardingIndexed((1, 1, 1))],
], ids=["gzip", "zstd", "crc+gzip", "transpose", "crc+zstd", "sharding"])
def test_index_codecs_of_variable_size_raise_codec_error(index_codecs):
    store = zs.MemoryStore()
    codecs = [ShardingIndexed((2, 2), index_codecs=index_codecs)]
    with pytest.raises(zs.CodecError, match="index_codecs"):
        store.create_array(NODE, shape=(4, 4), chunks=(4, 4), dtype="int8", codecs=codecs)
    assert not store.array_exists(NODE)
    with pytest.raises(zs.ParseError, match="index_codecs"):
        ArrayMetadata.from_dict(array_document((4, 4), (4, 4), codecs))


@pytest.mark.parametrize("config, error", [
    ({"chunk_shape": [2, 2], "index_codecs": [{"name": "crc32c"}]}, zs.ArrayToBytesInvariant),
    ({"chunk_shape": [2, 2], "index_codecs": []}, zs.ArrayToBytesInvariant),
    ({"chunk_shape": [2, 2], "index_codecs": [{"name": "crc32c"}, {"name": "bytes"}]},
     zs.InvalidCodecOrdering),
    ({"chunk_shape": [2, 2], "codecs": [{"name": "gzip", "configuration": {"level": 1}}]},
     zs.ArrayToBytesInvariant),
    ({"chunk_shape": [2, 2], "index_location": "middle"}, zs.CodecError),
    ({"chunk_shape": [2, 2], "unknown": 1}, zs.CodecError),
    ({"chunk_shape": [2, 2], "codecs": [{"name": "no-such-codec"}]}, zs.CodecError),
])
def test_bad_sharding_configurations(config, error):
    doc = {"name": "sharding_indexed", "configuration": config}
    store = zs.MemoryStore()
    with pytest.raises(error):
        store.create_array(NODE, shape=(4, 4), chunks=(4, 4), dtype="int8", codecs=[doc])
    assert not store.array_exists(NODE)


def test_sharding_needs_rank_one_or_more():
    with pytest.raises(zs.InvalidShardingChunkShape):
        zs.MemoryStore().create_array(NODE, shape=(), chunks=(), dtype="int8",
                                      codecs=[ShardingIndexed(())])


# -- corrupt shards: a zarrsync error naming the shard key ----------------------------

def _key_of_corrupt(store, location, path, crc=True):
    """An array of one 4x4-inner-chunk shard per 8x8 block; returns the node,
    the data, the key of shard (1, 0) and its raw bytes."""
    extra = {"fast": {}, "transpose-before": dict(before=[Transpose((1, 0))])}[path]
    node = sharded(store, (16, 8), (8, 8), (4, 4), dtype="int32", index_location=location,
                   index_codecs=[Bytes(), Crc32c()] if crc else [Bytes()], **extra)
    data = sample((16, 8), "int32")
    store.write_array(node, ..., data)
    key = "g/arr/c/1/0"
    return node, data, key, store.get(key)


def _set_entry(raw, location, crc, p, offset=None, nbytes=None):
    entries = parse_shard(raw, 4, location, crc=crc).copy()
    if offset is not None:
        entries[p, 0] = offset
    if nbytes is not None:
        entries[p, 1] = nbytes
    return with_entries(raw, entries, location, crc=crc)


def corruptions(location, crc):
    n = index_size(4, crc)
    chunk = 4 * 4 * 4   # an uncompressed int32 inner chunk

    def data_end(raw):
        return len(raw) if location == "start" else len(raw) - n

    return {
        "offset-past-end": lambda raw: _set_entry(raw, location, crc, 0, offset=len(raw) + 10),
        "offset-at-end": lambda raw: _set_entry(raw, location, crc, 1, offset=len(raw)),
        "length-past-end": lambda raw: _set_entry(raw, location, crc, 2, nbytes=len(raw)),
        "huge-length": lambda raw: _set_entry(raw, location, crc, 3, nbytes=2**63),
        "wrapping-range": lambda raw: _set_entry(raw, location, crc, 0, offset=2**64 - 8,
                                                 nbytes=16),
        "half-empty-marker": lambda raw: _set_entry(raw, location, crc, 1, offset=EMPTY,
                                                    nbytes=chunk),
        "into-the-index": lambda raw: _set_entry(
            raw, location, crc, 2,
            offset=(n - 8) if location == "start" else data_end(raw) - 8),
        "truncated": lambda raw: raw[:len(raw) - 30],
        "truncated-below-index": lambda raw: raw[:n - 1],
        "empty-value": lambda raw: b"",
    }


# The fast path checks an index against the shard's size when the store tells
# it (getsize), else against the ranges it reads: both are tested.
STORES = {"memory": zs.MemoryStore, "spec-only": SpecOnlyCountingStore}


# A shard truncated in its data with the index at the end and no crc32c is
# left out: its "index" is then read from data bytes, which only a crc32c
# (tested) or chance can catch.
CORRUPTION_CASES = [
    (corruption, location, crc)
    for corruption in corruptions("end", True)
    for location in LOCATIONS
    for crc in (True, False)
    if not (corruption == "truncated" and location == "end" and not crc)
]


@pytest.mark.parametrize("store_kind", list(STORES))
@pytest.mark.parametrize("path", ["fast", "transpose-before"])
@pytest.mark.parametrize("corruption,location,crc", CORRUPTION_CASES,
                         ids=[f"{c}-{loc}-{'crc32c' if k else 'no-crc'}"
                              for c, loc, k in CORRUPTION_CASES])
def test_corrupt_shard_raises_naming_the_key(corruption, location, crc, path, store_kind):
    store = STORES[store_kind]()
    node, data, key, raw = _key_of_corrupt(store, location, path, crc)
    bad = corruptions(location, crc)[corruption](raw)
    store.set(key, bad)
    with pytest.raises(zs.CodecError, match=key) as info:
        store.read_array(node)
    assert isinstance(info.value, zs.ZarrSyncError)
    with pytest.raises(zs.CodecError, match=key):
        store.read_array(node, (slice(8, 16), slice(None)))
    # A partial write must read the shard first: it fails and keeps the bytes.
    with pytest.raises(zs.CodecError, match=key):
        store.write_array(node, (9, 1), np.int32(0))
    assert store.get(key) == bad
    # The other shard is unaffected; a write covering the bad shard replaces it.
    np.testing.assert_array_equal(store.read_array(node, (slice(0, 8),)), data[:8])
    store.write_array(node, (slice(8, 16),), np.int32(6))
    np.testing.assert_array_equal(store.read_array(node, (slice(8, 16),)),
                                  np.full((8, 8), 6, "i4"))


@pytest.mark.parametrize("store_kind", list(STORES))
@pytest.mark.parametrize("path", ["fast", "transpose-before"])
@pytest.mark.parametrize("location", LOCATIONS)
@pytest.mark.parametrize("where", ["first", "middle", "crc"])
def test_flipped_byte_in_crc32c_index_raises_checksum_mismatch(where, location, path,
                                                               store_kind):
    store = STORES[store_kind]()
    node, data, key, raw = _key_of_corrupt(store, location, path)
    start, stop = index_bounds(len(raw), 4, location, True)
    pos = {"first": start, "middle": start + 21, "crc": stop - 1}[where]
    bad = bytearray(raw)
    bad[pos] ^= 0x10
    store.set(key, bytes(bad))
    with pytest.raises(zs.ChecksumMismatch, match=key):
        store.read_array(node)
    with pytest.raises(zs.ChecksumMismatch, match=key):
        store.read_array(node, (12, 3))
    with pytest.raises(zs.ChecksumMismatch, match=key):
        store.write_array(node, (12, 3), np.int32(1))
    np.testing.assert_array_equal(store.read_array(node, (slice(0, 8),)), data[:8])


@pytest.mark.parametrize("location", LOCATIONS)
def test_index_entry_larger_than_its_codecs_store_is_refused(location):
    # Inner chunks of 4x4 int32 stored raw: 64 bytes at most. An entry of
    # exactly that reads (another chunk's bytes); one byte more is refused
    # from the index alone, before its range is read.
    store = CountingStore()
    node, data, key, raw = _key_of_corrupt(store, location, "fast")
    entries = parse_shard(raw, 4, location)
    other = _set_entry(raw, location, True, 0, offset=int(entries[1, 0]), nbytes=64)
    store.set(key, other)
    np.testing.assert_array_equal(store.read_array(node, (slice(8, 12), slice(0, 4))),
                                  data[8:12, 4:8])
    store.set(key, _set_entry(raw, location, True, 0, nbytes=65))
    store.reset()
    with pytest.raises(zs.CodecError, match=f"{key}.*index entry 0 .* declares an inner "
                                            f"chunk of 65 bytes, more than the 64 bytes"):
        store.read_array(node, (slice(12, 16), slice(4, 8)))
    assert all(length is None or length <= index_size(4, True)
               for _, _, length, _ in store.chunk_reads())


@pytest.mark.parametrize("inner_codecs", [[Bytes()], [Bytes(), Zstd(1)], [Bytes(), Gzip(1)]],
                         ids=["raw", "zstd", "gzip"])
@pytest.mark.parametrize("location", LOCATIONS)
def test_hostile_index_on_a_store_without_sizes_reads_no_more_than_the_bound(location,
                                                                            inner_codecs):
    # Without getsize, the index cannot be checked against the shard's end:
    # an entry's length must still never become a read (an allocation) of
    # more than its inner chunk's codecs store.
    store = SpecOnlyCountingStore()
    node = sharded(store, (16, 8), (8, 8), (4, 4), dtype="int32", index_location=location,
                   codecs=inner_codecs)
    store.write_array(node, ..., sample((16, 8), "int32"))
    key = "g/arr/c/1/0"
    most = store.array_metadata(node).chain.array_bytes.inner.limits()[2]
    for nbytes in (most + 1, 2**40, 2**63):
        store.set(key, _set_entry(store.get(key), location, True, 2, nbytes=nbytes))
        store.reset()
        with pytest.raises(zs.CodecError, match=f"{key}.*more than the {most} bytes"):
            store.read_array(node, (slice(12, 16), slice(0, 4)))
        lengths = [length for k, offset, length, _ in store.chunk_reads()
                   if k == key and length is not None]
        assert all(n <= max(most, index_size(4, True)) for n in lengths), lengths


def test_corrupt_inner_chunk_names_the_shard_key():
    store = zs.MemoryStore()
    node = sharded(store, (8, 8), (8, 8), (4, 4), dtype="int32",
                   codecs=[Bytes(), Gzip(1), Crc32c()])
    store.write_array(node, ..., sample((8, 8), "int32"))
    key = "g/arr/c/0/0"
    raw = store.get(key)
    entries = parse_shard(raw, 4)
    bad = bytearray(raw)
    bad[int(entries[2, 0]) + 3] ^= 0xFF
    store.set(key, bytes(bad))
    with pytest.raises(zs.ChecksumMismatch, match=key):
        store.read_array(node, (slice(4, 8), slice(0, 4)))
    np.testing.assert_array_equal(store.read_array(node, (slice(0, 4),)),
                                  sample((8, 8), "int32")[:4])


# -- nested sharding, reshape, index codecs --------------------------------------------

@pytest.mark.parametrize("outer_location", LOCATIONS)
@pytest.mark.parametrize("after", [(), (Zstd(1),)], ids=["fast", "zstd-after"])
def test_nested_sharding_round_trip(outer_location, after):
    store = CountingStore()
    nested = ShardingIndexed((2, 3), [Transpose((1, 0)), Bytes("big"), Gzip(1)],
                             [Bytes("big")], "start")
    node = sharded(store, (13, 11), (8, 12), (4, 6), dtype="float64", fill_value=-1,
                   codecs=[nested], index_location=outer_location, after=after)
    expected = np.full((13, 11), -1.0)
    for sel, value in [((slice(1, 9), slice(2, 10)), sample((8, 8))),
                       ((12, slice(None)), np.arange(11.0)),
                       ((slice(0, 2), slice(0, 3)), np.float64(-1)),
                       ((slice(4, 6), [0, 5, 10]), np.float64(3))]:
        store.write_array(node, sel, value)
        expected[sel] = value
        np.testing.assert_array_equal(store.read_array(node), expected)
    for sel in [(slice(3, 7), slice(4, 5)), (12, 10), (slice(None), [1, 7])]:
        np.testing.assert_array_equal(store.read_array(node, sel), expected[sel])
    if not after:
        # The outer index, then an outer inner chunk, which is a whole nested shard.
        store.reset()
        store.read_array(node, (0, 0))
        assert all(r[1] is not None for r in store.chunk_reads())


@pytest.mark.parametrize("path", ["fast", "transpose-before", "crc-after"])
def test_reshape_sharded_array_matches_numpy(path):
    extra = {"fast": {}, "transpose-before": dict(before=[Transpose((1, 0))]),
             "crc-after": dict(after=[Crc32c()])}[path]
    store = zs.MemoryStore()
    node = sharded(store, (10, 9), (4, 6), (2, 3), dtype="int16", fill_value=-7, **extra)
    expected = sample((10, 9), "int16")
    store.write_array(node, ..., expected)

    def resize(shape):
        nonlocal expected
        store.reshape(node, shape)
        out = np.full(shape, -7, dtype="int16")
        common = tuple(slice(0, min(a, b)) for a, b in zip(shape, expected.shape))
        out[common] = expected[common]
        expected = out
        np.testing.assert_array_equal(store.read_array(node), expected)

    resize((5, 4))
    # Shards wholly outside are gone, and cut inner chunks are left out of the shard.
    keys = sorted(k for k in store.list_prefix("g/arr/c"))
    assert keys == ["g/arr/c/0/0", "g/arr/c/1/0"]
    if path == "fast":
        entries = parse_shard(store.get("g/arr/c/1/0"), 4)
        # Shard (1, 0) covers rows 4..7 x cols 0..5: only inner chunks (0, 0), (0, 1)
        # hold rows of the array (row 4), and (0, 1) holds column 3 only.
        assert [bool(e[0] != EMPTY) for e in entries] == [True, True, False, False]
    resize((12, 13))
    store.write_array(node, (slice(9, 12), slice(8, 13)), np.int16(1))
    expected[9:12, 8:13] = 1
    np.testing.assert_array_equal(store.read_array(node), expected)
    resize((3, 13))
    resize((11, 2))
    np.testing.assert_array_equal(store.read_array(node, (slice(2, 9), 1)), expected[2:9, 1])


@pytest.mark.parametrize("endian", ["little", "big"])
@pytest.mark.parametrize("crc", [True, False], ids=["crc32c", "no-crc"])
@pytest.mark.parametrize("location", LOCATIONS)
def test_index_layout(location, crc, endian):
    """The index: (offset, nbytes) uint64 pairs in C order of the inner grid, in the
    index codecs' byte order, at the start or the end; inner chunks back to back."""
    store = zs.MemoryStore()
    index_codecs = [Bytes(endian), Crc32c()] if crc else [Bytes(endian)]
    node = sharded(store, (4, 6), (4, 6), (2, 3), dtype=">u2", index_codecs=index_codecs,
                   index_location=location, codecs=[Bytes("big")])
    data = np.arange(24, dtype="u2").reshape(4, 6) + 1
    data[2:4, 0:3] = 0
    store.write_array(node, ..., data)
    raw = store.get("g/arr/c/0/0")
    entries = parse_shard(raw, 4, location, endian, crc)
    base = index_size(4, crc) if location == "start" else 0
    assert entries.tolist() == [[base, 12], [base + 12, 12], [EMPTY, EMPTY], [base + 24, 12]]
    assert len(raw) == index_size(4, crc) + 36
    for p, region in [(0, (slice(0, 2), slice(0, 3))), (1, (slice(0, 2), slice(3, 6))),
                      (3, (slice(2, 4), slice(3, 6)))]:
        o = int(entries[p, 0])
        assert raw[o:o + 12] == data[region].astype(">u2").tobytes()


# -- documents --------------------------------------------------------------------------

CONFIGS = [
    ShardingIndexed((2, 2)),
    ShardingIndexed((4, 1), [Bytes("big")], [Bytes("big")], "start"),
    ShardingIndexed([2, 4], [Transpose((1, 0)), Bytes(), Zstd(3, True), Crc32c()],
                    [Bytes(), Crc32c()], "end"),
    ShardingIndexed((1, 2), [ShardingIndexed((1, 1), [Bytes(), Gzip(2)], [Bytes()])],
                    index_location="start"),
]


@pytest.mark.parametrize("codec", CONFIGS, ids=range(len(CONFIGS)))
def test_to_dict_from_dict_round_trip(codec):
    doc = codec.to_dict()
    assert doc["name"] == "sharding_indexed"
    again = from_dict(json.loads(json.dumps(doc)))
    assert isinstance(again, ShardingIndexed)
    assert again.to_dict() == doc
    assert again == codec
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(9, 8), chunks=(4, 8), dtype="float32", codecs=[codec])
    meta = store.array_metadata(NODE)
    assert meta.codecs[0].to_dict() == doc
    assert ArrayMetadata.from_json(meta.to_json()).to_dict() == meta.to_dict()
    defaults = ShardingIndexed((2, 2)).to_dict()["configuration"]
    assert defaults["codecs"] == [{"name": "bytes", "configuration": {"endian": "little"}}]
    assert defaults["index_codecs"] == [
        {"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
    assert defaults["index_location"] == "end"


@pytest.mark.parametrize("codec", CONFIGS, ids=range(len(CONFIGS)))
def test_documents_equal_zarr_python(codec):
    zarr = pytest.importorskip("zarr")
    from zarr.codecs import ShardingCodec
    ours = zs.MemoryStore()
    ours.create_array(NODE, shape=(9, 8), chunks=(4, 8), dtype="float32", codecs=[codec])
    zstore = zarr.storage.MemoryStore({})
    zarr.create_array(zstore, name=NODE.key, shape=(9, 8), chunks=(4, 8), dtype="float32",
                      fill_value=0, serializer=ShardingCodec.from_dict(codec.to_dict()),
                      compressors=None, filters=None)
    mine = json.loads(ours.get(NODE.metadata_key))
    theirs = json.loads(zstore._store_dict[NODE.metadata_key].to_bytes())
    assert json.dumps(mine, sort_keys=True) == json.dumps(theirs, sort_keys=True)
    assert json.dumps(ShardingCodec.from_dict(codec.to_dict()).to_dict()) == json.dumps(
        codec.to_dict())


# -- another process rewriting a shard while this one reads it ---------------------------

_REWRITER = """
import sys, numpy as np, zarrsync as zs
store = zs.FilesystemStore(sys.argv[1])
node = zs.ArrayNode.of_path("/a")
low = np.zeros((64, 64), "int32"); low[16:, :] = 7
high = np.random.default_rng(0).integers(0, 2**31, (64, 64)).astype("int32")
first = True
while True:
    for data in (low, high):
        store.write_array(node, ..., data)
    if first:
        print("rewriting", flush=True)
        first = False
"""


class RewritingStore(zs.FilesystemStore):
    """A FilesystemStore on which "another process" replaces shard ``key``
    right after this one has read the shard's index, the worst moment for a
    reader: with each of ``versions`` in turn, ``times`` times."""

    key, times = None, 0  # disarmed until ``arm``

    def arm(self, key, versions, times):
        self.key, self.versions, self.times = key, versions, times

    def get_partial_values(self, key_ranges):
        out = super().get_partial_values(key_ranges)
        if self.times and len(key_ranges) == 1 and key_ranges[0][0] == self.key:
            self.times -= 1
            other = zs.FilesystemStore(self.path)  # a writer that is not this object
            other.set(self.key, self.versions[self.times % len(self.versions)])
        return out


def two_versions(store, node):
    new = np.random.default_rng(0).integers(0, 2**31, (64, 64)).astype("int32")
    old = np.zeros((64, 64), "int32")
    old[16:, :] = 7
    shards = []
    for data in (new, old):
        store.write_array(node, ..., data)
        shards.append(store.get("a/c/0/0"))
    return old, new, shards


def test_a_shard_replaced_between_its_index_and_its_chunks_reads_one_version(tmp_path):
    node = ArrayNode.of_path("/a")
    store = RewritingStore(tmp_path)
    store.create_array(node, shape=(64, 64), chunks=(64, 64), dtype="int32",
                       codecs=[ShardingIndexed((16, 16), [Bytes(), Gzip(1)])])
    old, new, (new_shard, _) = two_versions(store, node)
    store.arm("a/c/0/0", [new_shard], 1)
    # The index read first was the old shard's; the chunks it points to were
    # read from the new one, noticed, and the shard read again.
    np.testing.assert_array_equal(store.read_array(node, (slice(0, 40), slice(0, 40))),
                                  new[:40, :40])
    assert store.times == 0


def test_a_shard_that_keeps_changing_is_an_error_naming_it(tmp_path):
    node = ArrayNode.of_path("/a")
    store = RewritingStore(tmp_path)
    store.create_array(node, shape=(64, 64), chunks=(64, 64), dtype="int32",
                       codecs=[ShardingIndexed((16, 16), [Bytes(), Gzip(1)])])
    _, _, shards = two_versions(store, node)
    store.arm("a/c/0/0", shards, 2 * 10**6 + 1)  # the first replacement is the new shard
    with pytest.raises(zs.CodecError, match="a/c/0/0.*kept changing while it was read"):
        store.read_array(node, (slice(0, 40), slice(0, 40)))


@pytest.mark.parametrize("inner_codecs", [[Bytes()], [Bytes(), Gzip(1)]], ids=["raw", "gzip"])
def test_shard_rewritten_by_another_process_reads_one_version(tmp_path, inner_codecs):
    """The index and the inner chunks come from one version of the shard: an
    old index is never paired with new bytes (wrong data or a spurious error)."""
    import subprocess
    import sys

    node = ArrayNode.of_path("/a")
    store = zs.FilesystemStore(tmp_path)
    store.create_array(node, shape=(64, 64), chunks=(64, 64), dtype="int32",
                       codecs=[ShardingIndexed((16, 16), codecs=inner_codecs)])
    low = np.zeros((64, 64), "int32")
    low[16:, :] = 7
    high = np.random.default_rng(0).integers(0, 2**31, (64, 64)).astype("int32")
    store.write_array(node, ..., high)
    child = subprocess.Popen([sys.executable, "-P", "-c", _REWRITER, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "rewriting"
        for _ in range(300):
            got = store.read_array(node, (slice(0, 40), slice(0, 40)))
            assert (np.array_equal(got, low[:40, :40])
                    or np.array_equal(got, high[:40, :40])), "mixed versions"
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


# -- a shard rewritten between reads ----------------------------------------------------------

def _point_reads_array(store):
    """A (16, 8) int32 array of two 8x8 shards of 4x4 inner chunks, zstd inside."""
    node = sharded(store, (16, 8), (8, 8), (4, 4), dtype="int32", codecs=[Bytes(), Zstd(1)])
    data = sample((16, 8), "int32")
    store.write_array(node, ..., data)
    return node, data


@pytest.mark.parametrize("how", ["set", "store-dict"])
@pytest.mark.parametrize("where", ["index", "crc"])
def test_corrupt_index_after_a_read_is_detected(where, how):
    store = zs.MemoryStore()
    node, data = _point_reads_array(store)
    key = "g/arr/c/1/0"
    assert store.read_array(node, (9, 5)) == data[9, 5]
    raw = store.get(key)
    start, stop = index_bounds(len(raw), 4, "end", True)
    bad = bytearray(raw)
    bad[start + 3 if where == "index" else stop - 1] ^= 0x10
    if how == "set":
        store.set(key, bytes(bad))
    else:
        store._data[key] = bytes(bad)
    for sel in [(9, 5), (slice(8, 16),), (slice(None),)]:
        with pytest.raises(zs.ChecksumMismatch, match=key):
            store.read_array(node, sel)
    # The intact shard still reads.
    np.testing.assert_array_equal(store.read_array(node, (slice(0, 8),)), data[:8])


def test_point_reads_race_with_rewrites_read_one_version():
    """Point reads on one thread while another rewrites the shards: each read
    sees one whole version (the index and the chunk come from one value)."""
    import threading

    store = zs.MemoryStore()
    node = sharded(store, (16, 16), (8, 8), (4, 4), dtype="int32", codecs=[Bytes(), Zstd(1)])
    versions = [np.full((16, 16), v, "int32") + np.arange(16, dtype="int32") * 1000
                for v in (1, 2)]
    store.write_array(node, ..., versions[0])
    stop = threading.Event()

    def rewrite():
        k = 0
        while not stop.is_set():
            k += 1
            store.write_array(node, ..., versions[k % 2])

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        rng = np.random.default_rng(0)
        for i, j in rng.integers(0, 16, (3000, 2)).tolist():
            row = store.read_array(node, (i, slice(j // 4 * 4, j // 4 * 4 + 4)))
            assert any(np.array_equal(row, v[i, j // 4 * 4: j // 4 * 4 + 4])
                       for v in versions), row
    finally:
        stop.set()
        writer.join()
