"""Reads that decode a batch of chunks in one call without the GIL.

A read of several compressed chunks (or inner chunks of shards) hands them
out in batches, several per thread; where the chain is ``bytes`` and one
codec with a GIL-free decoder (zstd through libzstd, gzip members through
libdeflate), a batch is decoded and gathered by one
``ChunkPlan.gather_decoded_many`` call. A chunk that decoder refuses (a
damaged frame, several gzip members, the wrong size) goes through the
per-chunk path, which reads it another way or raises naming it, and the
batch goes on after it. These tests compare such reads with NumPy, force
the refusals, and check the kernel's own contract.
"""

import contextlib
import gzip
import importlib.util

import crc32c
import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import zarrsync as zs
from zarrsync import ArrayNode
from zarrsync._kernels.indexing import ChunkPlan
from zarrsync.codecs import Bytes, Crc32c, Gzip, ShardingIndexed, Zstd, _gzip
from zarrsync.codecs._chain import CodecChain
from zarrsync.codecs._zstd import native_available

NODE = ArrayNode.of_path("/a")
HAS_LIBDEFLATE = importlib.util.find_spec("deflate") is not None

needs_libzstd = pytest.mark.skipif(not native_available(),
                                   reason="no libzstd with exported symbols to call")


@contextlib.contextmanager
def threads(n):
    """``n`` threads, every multi-chunk call on the pool however small."""
    saved = (zs.config.get_threads(), zs.config.MIN_PARALLEL_BYTES,
             zs.config.MIN_PARALLEL_CHUNK_BYTES)
    zs.config.set_threads(n)
    zs.config.MIN_PARALLEL_BYTES = zs.config.MIN_PARALLEL_CHUNK_BYTES = 0
    try:
        yield
    finally:
        zs.config.set_threads(saved[0])
        zs.config.MIN_PARALLEL_BYTES, zs.config.MIN_PARALLEL_CHUNK_BYTES = saved[1:]


@pytest.fixture(params=["zstd", "gzip-libdeflate", "gzip-backend"])
def compressor(request):
    """A bytes->bytes codec, with the gzip decoder it is read through."""
    if request.param == "zstd":
        if not native_available():
            pytest.skip("no libzstd with exported symbols to call")
        yield Zstd(1)
        return
    name = request.param.split("-")[1]
    if name == "libdeflate" and not HAS_LIBDEFLATE:
        pytest.skip("gzip decoder 'libdeflate': the 'deflate' package is not installed")
    previous = _gzip.set_decoder(name)
    yield Gzip(1)
    _gzip.set_decoder(previous)


def field(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (np.indices(shape).sum(axis=0) + rng.normal(0, 0.01, shape)).astype("float32")


def stored_rows(compressor, shape):
    """``(store, values)``: a 2-d array of ``shape`` in chunks of one row,
    written whole with smooth values."""
    values = field(shape)
    store = zs.MemoryStore()
    store.create_array(NODE, shape=shape, chunks=(1, shape[1]), dtype="float32",
                       codecs=[Bytes(), compressor])
    store.write_array(NODE, ..., values)
    return store, values


def count_per_chunk_decodes(monkeypatch):
    """A list that grows by one for every chunk decoded on the per-chunk path."""
    calls = []
    original = CodecChain.gather_stored

    def counted(self, plan, i, data, out, key=""):
        calls.append(key)
        return original(self, plan, i, data, out, key)

    monkeypatch.setattr(CodecChain, "gather_stored", counted)
    return calls


# -- reads against NumPy ---------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_batched_reads_match_numpy(data):
    """Random shapes, chunks, selections, thread counts and missing chunks,
    plain and sharded, zstd and gzip: the read equals NumPy's."""
    ndim = data.draw(st.integers(1, 3), label="ndim")
    shape = tuple(data.draw(st.lists(st.integers(1, 24), min_size=ndim, max_size=ndim),
                            label="shape"))
    chunks = tuple(data.draw(st.integers(1, n), label="chunk") for n in shape)
    codec = data.draw(st.sampled_from(["zstd", "gzip"]), label="codec")
    if codec == "zstd" and not native_available():
        codec = "gzip"
    inner = [Bytes(), Zstd(1) if codec == "zstd" else Gzip(1)]
    sharded = data.draw(st.booleans(), label="sharded")
    if sharded:
        inner_shape = tuple(data.draw(st.sampled_from([d for d in range(1, c + 1) if c % d == 0]),
                                      label="inner") for c in chunks)
        codecs = [ShardingIndexed(inner_shape, inner, [Bytes(), Crc32c()])]
    else:
        codecs = inner
    expected = np.zeros(shape, dtype="float32")
    store = zs.MemoryStore()
    store.create_array(NODE, shape=shape, chunks=chunks, dtype="float32", codecs=codecs,
                       fill_value=0.0)
    # A few writes: the chunks they miss stay absent (read as the fill value).
    for _ in range(data.draw(st.integers(0, 3), label="writes")):
        sel = tuple(slice(*sorted(data.draw(st.tuples(st.integers(0, n), st.integers(0, n)))))
                    for n in shape)
        value = field(expected[sel].shape, seed=data.draw(st.integers(0, 9)))
        expected[sel] = value
        store.write_array(NODE, sel, value)
    sel = tuple(data.draw(st.one_of(
        st.integers(0, n - 1),
        st.builds(slice, st.integers(0, n), st.integers(0, n), st.integers(1, 4)))) for n in shape)
    with threads(data.draw(st.sampled_from([1, 2, 3]), label="threads")):
        np.testing.assert_array_equal(store.read_array(NODE, sel), expected[sel])


@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("sharded", [False, True])
def test_a_clean_read_never_takes_the_per_chunk_path(compressor, monkeypatch, n_threads,
                                                     sharded):
    values = field((16, 16, 16))
    if sharded:
        codecs = [ShardingIndexed((4, 4, 4), [Bytes(), compressor], [Bytes(), Crc32c()])]
    else:
        codecs = [Bytes(), compressor]
    store = zs.MemoryStore()
    store.create_array(NODE, shape=values.shape, chunks=(8, 8, 8), dtype="float32",
                       codecs=codecs)
    store.write_array(NODE, ..., values)
    calls = count_per_chunk_decodes(monkeypatch)
    with threads(n_threads):
        np.testing.assert_array_equal(store.read_array(NODE), values)
        np.testing.assert_array_equal(store.read_array(NODE, (slice(1, None, 3), 5)),
                                      values[1::3, 5])
    expect_fallback = isinstance(compressor, Gzip) and _gzip.DECODER == "backend"
    assert bool(calls) == expect_fallback


# -- chunks the GIL-free decoder refuses -------------------------------------------------

def two_member_gzip(raw):
    half = len(raw) // 2
    return gzip.compress(raw[:half]) + gzip.compress(raw[half:])


@pytest.mark.skipif(not HAS_LIBDEFLATE, reason="the 'deflate' package is not installed")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_gzip_chunks_of_several_members_are_read_in_a_batch(monkeypatch, n_threads):
    previous = _gzip.set_decoder("libdeflate")
    try:
        store, values = stored_rows(Gzip(1), (8, 32))
        for row in (0, 3, 4, 7):  # first, middle (two in a row) and last of the batch
            store.set(f"a/c/{row}/0", two_member_gzip(values[row].tobytes()))
        calls = count_per_chunk_decodes(monkeypatch)
        with threads(n_threads):
            np.testing.assert_array_equal(store.read_array(NODE), values)
        assert sorted(calls) == ["a/c/0/0", "a/c/3/0", "a/c/4/0", "a/c/7/0"]
    finally:
        _gzip.set_decoder(previous)


def damaged(compressor, raw):
    """``raw`` encoded, then cut short (corrupt bytes may decode, unnoticed,
    to other data: neither format checks the content unless asked to)."""
    return compressor.encode(raw)[:-5]


@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_damaged_chunk_in_a_batch_is_an_error_naming_it(compressor, n_threads):
    store, values = stored_rows(compressor, (8, 64))
    store.set("a/c/5/0", damaged(compressor, values[5].tobytes()))
    with threads(n_threads), pytest.raises(zs.errors.CodecError, match="a/c/5/0"):
        store.read_array(NODE)
    np.testing.assert_array_equal(store.read_array(NODE, slice(0, 5)), values[:5])


@pytest.mark.parametrize("extra", [-4, 4])
def test_a_chunk_of_the_wrong_size_in_a_batch_is_an_error(compressor, extra):
    store, values = stored_rows(compressor, (6, 16))
    raw = values[2].tobytes()
    store.set("a/c/2/0", compressor.encode(raw[:extra] if extra < 0 else raw + bytes(extra)))
    with pytest.raises(zs.errors.CodecError, match="a/c/2/0"):
        store.read_array(NODE)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_damaged_inner_chunk_is_an_error_naming_shard_and_position(compressor, n_threads):
    values = field((16, 16))
    store = zs.MemoryStore()
    store.create_array(NODE, shape=values.shape, chunks=(8, 16), dtype="float32",
                       codecs=[ShardingIndexed((2, 16), [Bytes(), compressor])])
    store.write_array(NODE, ..., values)
    # The shard: its inner chunks, then the index (offset, length per inner
    # chunk as uint64, then its crc32c). Rebuilt with inner chunk 2 cut short.
    shard = store.get("a/c/1/0")
    index = np.frombuffer(shard[-(4 * 16 + 4):-4], dtype="<u8").reshape(4, 2)
    parts = [shard[o:o + n] for o, n in index.tolist()]
    parts[2] = damaged(compressor, values[12:14].tobytes())
    offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
    new_index = np.stack([offsets, [len(p) for p in parts]], axis=1).astype("<u8").tobytes()
    checksum = crc32c.crc32c(new_index).to_bytes(4, "little")
    store.set("a/c/1/0", b"".join(parts) + new_index + checksum)
    with threads(n_threads), pytest.raises(zs.errors.CodecError,
                                           match=r"a/c/1/0 \(inner chunk 2\)"):
        store.read_array(NODE)
    np.testing.assert_array_equal(store.read_array(NODE, slice(0, 8)), values[:8])


# -- the kernel ------------------------------------------------------------------------

@needs_libzstd
def test_gather_decoded_many_stops_at_the_first_refused_frame():
    values = field((4, 8))
    plan = ChunkPlan((4, 8), (1, 8), [(0, 1, 4), (0, 1, 8)])
    codec = Zstd(1)
    frames = [codec.encode(values[k].tobytes()) for k in range(4)]
    frames[2] = b"not a frame"
    out = np.full((4, 8), -1, dtype="float32")
    scratch = bytearray(32)
    decoder = codec.thread_decoder()
    indices = np.arange(4, dtype=np.int64)
    assert plan.gather_decoded_many(indices, frames, 0, out, decoder, scratch) == 2
    np.testing.assert_array_equal(out[:2], values[:2])
    assert (out[2:] == -1).all()
    assert plan.gather_decoded_many(indices, frames, 3, out, decoder, scratch) == -1
    np.testing.assert_array_equal(out[3], values[3])
    assert (out[2] == -1).all()
    assert plan.gather_decoded_many(indices, frames, 4, out, decoder, scratch) == -1


@needs_libzstd
def test_gather_decoded_many_checks_its_arguments():
    plan = ChunkPlan((4, 8), (1, 8), [(0, 1, 4), (0, 1, 8)])
    codec = Zstd(1)
    frames = [codec.encode(bytes(32))] * 2
    out = np.zeros((4, 8), dtype="float32")
    decoder = codec.thread_decoder()
    indices = np.arange(2, dtype=np.int64)
    with pytest.raises(ValueError, match="2 chunk indices but 1 frames"):
        plan.gather_decoded_many(indices, frames[:1], 0, out, decoder, bytearray(32))
    with pytest.raises(ValueError, match="scratch holds 31 bytes"):
        plan.gather_decoded_many(indices, frames, 0, out, decoder, bytearray(31))
    with pytest.raises(IndexError):
        plan.gather_decoded_many(np.array([0, 9], dtype=np.int64), frames, 0, out, decoder,
                                 bytearray(32))
    with pytest.raises(ValueError, match="destination has length"):
        plan.gather_decoded_many(indices, frames, 0, np.zeros((4, 7), dtype="float32"),
                                 decoder, bytearray(32))
    with pytest.raises(ValueError, match="start must be >= 0"):
        plan.gather_decoded_many(indices, frames, -1, out, decoder, bytearray(32))
    with pytest.raises(AttributeError, match="raw_decoder"):
        plan.gather_decoded_many(indices, frames, 0, out, object(), bytearray(32))


def test_codecs_without_a_gil_free_decoder_say_so():
    assert Crc32c().thread_decoder() is None
    previous = _gzip.set_decoder("backend")
    try:
        assert Gzip(1).thread_decoder() is None
    finally:
        _gzip.set_decoder(previous)


def test_zstd_frames_of_other_writers_are_read_in_a_batch(monkeypatch):
    """Frames without a content size (streaming writers) and with checksums."""
    if not native_available():
        pytest.skip("no libzstd with exported symbols to call")
    store, values = stored_rows(Zstd(1), (4, 256))
    streaming = zstandard.ZstdCompressor(write_content_size=False, write_checksum=True)
    for row in range(4):
        store.set(f"a/c/{row}/0", streaming.compress(values[row].tobytes()))
    calls = count_per_chunk_decodes(monkeypatch)
    with threads(2):
        np.testing.assert_array_equal(store.read_array(NODE), values)
    assert calls == []
