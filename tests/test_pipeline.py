"""The chunk pipeline (``zarrsync.pipeline``): one route for every read and write.

A call plans its chunks, classifies them once (covered, edge, partial,
absent), picks one step per class from what the codec chain can do, and runs
them as the tasks of one scheduler call. These tests check:

* the steps chosen for each kind of chain, by capability and not by name
  (a codec of the test's own gets the batch path by offering ``native()``);
* one scheduler call per read and per write, with every task of a write on
  the pool (partial chunks included) once the work is worth threads;
* reads and writes against NumPy on every step, with the thresholds that
  pick batches, groups, parallelism and streaming patched through
  ``zarrsync.config`` (so small arrays reach the large-array paths);
* batches: a clean read never crosses into Python per chunk, a chunk the
  native decoder refuses goes the portable route (which reads it or names
  what is wrong), the batch goes on after it;
* failures: a write whose codec fails leaves every chunk wholly old or
  wholly new, and the error names the cause;
* sharded arrays: the inner chunks of every shard are one batch of tasks,
  and the shards built equal the codec's own whole-shard encoding;
* values handed out by a store (``get``) never change afterwards.
"""

import threading
from concurrent.futures import Future

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import zarrsync as zs
from zarrsync import pipeline, scheduler
from zarrsync._kernels import native as native_kernels
from zarrsync.codecs import (Bytes, CodecChain, Crc32c, Gzip, ShardingIndexed, Transpose,
                             VlenUtf8, Zstd)
from zarrsync.codecs import _zstd as zstd_module
from zarrsync.codecs._zstd import native_library
from zarrsync.storage._base import Pending

from strategies import (ArrayConfig, chunked_write_cases, expected_chunk_keys,
                        fill_mixed_values, orthogonal_index)

NODE = zs.ArrayNode.of_path("/a")

needs_native = pytest.mark.skipif(
    native_library() is None or not zs.config.get("fast_paths"),
    reason="the zstd fast path (system libzstd, fast paths on) is not in use")

CHAINS = {
    "raw": lambda: [Bytes()],
    "zstd": lambda: [Bytes(), Zstd(level=1)],
    "gzip": lambda: [Bytes(), Gzip(level=1)],
    "zstd+crc32c": lambda: [Bytes(), Zstd(level=3, checksum=True), Crc32c()],
    "transpose": lambda ndim=2: [Transpose(tuple(reversed(range(ndim)))), Bytes(), Zstd()],
    "big-endian": lambda: [Bytes("big"), Gzip(1)],
}


def threads(n, **settings_):
    """``n`` threads, and every call worth the pool however small (plus any
    other settings), for a ``with`` block."""
    return zs.config.set(threads=n, parallel_min_bytes=0, parallel_min_chunk_bytes=0,
                         **settings_)


@pytest.fixture
def runs(monkeypatch):
    """``(n_tasks, parallel)`` of every ``scheduler.run`` call, which still runs."""
    calls = []
    original = scheduler.run

    def recorded(task, n_tasks, parallel):
        calls.append((n_tasks, parallel))
        return original(task, n_tasks, parallel)
    monkeypatch.setattr(scheduler, "run", recorded)
    return calls


@pytest.fixture
def per_chunk_decodes(monkeypatch):
    """The keys of the chunks decoded one Python call each (``CodecChain.decode_raw``)."""
    keys = []
    original = CodecChain.decode_raw

    def counted(self, data, out, key=""):
        keys.append(key)
        return original(self, data, out, key)
    monkeypatch.setattr(CodecChain, "decode_raw", counted)
    return keys


def chain_of(name, ndim=2):
    return CHAINS[name](ndim) if name == "transpose" else CHAINS[name]()


def new_array(shape, chunks, dtype="float32", chain="zstd", fill_value=0, store=None,
              codecs=None):
    store = zs.MemoryStore() if store is None else store
    store.create_array(NODE, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill_value,
                       codecs=codecs if codecs is not None else chain_of(chain, len(shape)))
    return store


def field(shape, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return (np.indices(shape).sum(axis=0) + rng.normal(0, 0.01, shape)).astype(dtype)


def stored_keys(store):
    return {k for k in store.list_prefix("a/") if k != "a/zarr.json"}


def layout_of(store):
    return store._hierarchy.array_layout(NODE)


# -- steps, by capability -----------------------------------------------------------------

class OwnZstd(Zstd):
    """A bytes->bytes codec of the test's own (another name): it gets the
    batch path by offering ``native()``, not by being called zstd."""

    name = "test.own-zstd"


class Opaque(Zstd):
    """The same frames, but no native form: the per-chunk path."""

    name = "test.opaque-zstd"

    def native(self):
        return None


@pytest.mark.parametrize("codecs, kind", [
    ([Bytes()], "raw"),
    ([Bytes(), Zstd(1)], "bytes"),
    ([Bytes(), Gzip(1), Crc32c()], "bytes"),
    ([Transpose((1, 0)), Bytes()], "array"),
    ([Bytes("big")], "array"),
    ([ShardingIndexed((2, 2), [Bytes(), Zstd(1)])], "bytes"),
    ([ShardingIndexed((2, 2), [Bytes()]), Crc32c()], "array"),
])
def test_steps_follow_the_chain_capabilities(codecs, kind):
    store = new_array((8, 8), (4, 4), dtype="int16", codecs=codecs)
    layout = layout_of(store)
    assert layout.steps == kind
    # Sharding alone is read and written inner chunk by inner chunk; with a
    # codec after it, a shard is a chunk like any other.
    assert (layout.inner is not None) == (len(codecs) == 1
                                          and isinstance(codecs[0], ShardingIndexed))


def test_strings_take_the_array_step():
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(6,), chunks=(4,), dtype="string",
                       codecs=[VlenUtf8(), Zstd(1)])
    assert layout_of(store).steps == "array"
    store.write_array(NODE, slice(1, 5), ["a", "bé", "", "ccc"])
    assert store.read_array(NODE).tolist() == ["", "a", "bé", "", "ccc", ""]


@needs_native
def test_a_codec_of_our_own_with_a_native_form_reads_in_batches(per_chunk_decodes):
    values = field((32, 32))
    store = new_array(values.shape, (8, 8), codecs=[Bytes(), OwnZstd(1)])
    store.write_array(NODE, ..., values)
    with threads(2):
        np.testing.assert_array_equal(store.read_array(NODE), values)
    assert per_chunk_decodes == []
    opaque = new_array(values.shape, (8, 8), codecs=[Bytes(), Opaque(1)])
    opaque.write_array(NODE, ..., values)
    np.testing.assert_array_equal(opaque.read_array(NODE), values)
    assert len(per_chunk_decodes) == 16


# -- one scheduler call ---------------------------------------------------------------------

@pytest.mark.parametrize("chain", ["raw", "zstd", "transpose"])
def test_each_read_and_write_makes_one_scheduler_call(runs, chain):
    store = new_array((40, 40), (8, 8), chain=chain)
    values = field((40, 40))
    with threads(2):
        store.write_array(NODE, ..., values)
        store.write_array(NODE, (slice(3, 37), slice(1, 40)), values[3:37, 1:])
        store.read_array(NODE, (slice(None, None, 3), [1, 5, 30]))
    assert len(runs) == 3


def test_partial_chunks_beside_covered_ones_run_on_the_pool_too(runs):
    # One element off the chunk grid: 9 covered chunks, 7 partial ones
    # (read, modified and stored). Every one is a task of the same parallel call.
    store = new_array((32, 32), (8, 8))
    store.write_array(NODE, ..., field((32, 32)))
    runs.clear()
    with threads(3, tasks_per_thread=1):
        store.write_array(NODE, (slice(1, 32), slice(1, 32)), field((31, 31), 1))
    (n_tasks, parallel), = runs
    assert parallel
    assert n_tasks == 3 + 7  # the covered chunks in one group per thread, each partial alone


@pytest.mark.parametrize("work, expect_parallel", [(4 << 10, False), (8 << 20, True)])
def test_small_calls_stay_on_the_calling_thread(runs, work, expect_parallel):
    side = int(np.sqrt(work // 4))
    store = new_array((side, side), (side // 4, side // 4))
    with zs.config.set(threads=2):
        store.write_array(NODE, ..., field((side, side)))
    assert runs[-1][1] == expect_parallel


# -- reads and writes against NumPy ------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_reads_match_numpy_on_every_step(data):
    """Random shapes, chunks, selections, thread counts and missing chunks,
    plain and sharded, on every step, with batches and tasks of any size."""
    ndim = data.draw(st.integers(1, 3), label="ndim")
    shape = tuple(data.draw(st.lists(st.integers(1, 24), min_size=ndim, max_size=ndim),
                            label="shape"))
    chunks = tuple(data.draw(st.integers(1, n), label="chunk") for n in shape)
    chain = data.draw(st.sampled_from(["raw", "zstd", "gzip", "zstd+crc32c"]), label="chain")
    codecs = CHAINS[chain]()
    if data.draw(st.booleans(), label="sharded"):
        inner = tuple(data.draw(st.sampled_from([d for d in range(1, c + 1) if c % d == 0]),
                                label="inner") for c in chunks)
        codecs = [ShardingIndexed(inner, codecs, [Bytes(), Crc32c()])]
    store = new_array(shape, chunks, codecs=codecs)
    expected = np.zeros(shape, dtype="float32")
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
    settings_ = dict(task_bytes=data.draw(st.sampled_from([1, 64, 4 << 20]), label="task"),
                     stream_min_bytes=data.draw(st.sampled_from([0, 4 << 20]), label="stream"))
    with threads(data.draw(st.sampled_from([1, 2, 3]), label="threads"), **settings_):
        np.testing.assert_array_equal(store.read_array(NODE, sel), expected[sel])


@pytest.mark.parametrize("n_threads", [1, 3])
@settings(max_examples=50, deadline=None)
@given(case=chunked_write_cases(), chain=st.sampled_from(sorted(CHAINS)),
       task_chunks=st.integers(1, 9), walk=st.sampled_from([0, 1, 3, 64]), data=st.data())
def test_writes_match_numpy_on_every_step(n_threads, case, chain, task_chunks, walk, data):
    """Covered chunks in groups of any size (gathered with or without the row
    walk), edge and partial chunks read and rewritten, values all fill,
    none or mixed, in C, Fortran and reversed layouts."""
    shape, chunks, dtype, fill_value, writes = case
    store = new_array(shape, chunks, dtype, chain, fill_value)
    expected = np.full(shape, fill_value, dtype=dtype)
    chunk_bytes = int(np.prod(chunks)) * dtype.itemsize
    with threads(n_threads, task_bytes=task_chunks * chunk_bytes, walk_chunks=walk):
        for sel in writes:
            region = np.ix_(*orthogonal_index(sel, shape)[0])
            x = data.draw(fill_mixed_values(expected[region].shape, dtype, fill_value))
            store.write_array(NODE, sel, x)
            expected[region] = x
            np.testing.assert_array_equal(store.read_array(NODE), expected)
    config = ArrayConfig(shape, chunks, dtype, dtype.type(fill_value))
    assert stored_keys(store) == expected_chunk_keys(expected, config, "a/")


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_covered_chunks_are_stored_as_the_chain_encodes_them(chain):
    # The batch and group steps write what encoding each chunk on its own writes.
    data = np.random.default_rng(0).standard_normal((12, 40)).astype("float32")
    data[:, 8:16] = 0  # a chunk of fill value: not stored
    store = new_array(data.shape, (12, 8), "float32", chain)
    with threads(2):
        store.write_array(NODE, ..., data)
    chain_ = layout_of(store).chain
    assert "a/c/0/1" not in stored_keys(store)
    for k in (0, 2, 3, 4):
        chunk = np.ascontiguousarray(data[:, 8 * k:8 * (k + 1)])
        stored = store.get(f"a/c/0/{k}")
        np.testing.assert_array_equal(chain_.decode(stored), chunk)
        if chain in ("raw", "zstd", "zstd+crc32c"):  # gzip: reproducible per library only
            assert stored == chain_.encode(chunk)


@pytest.mark.parametrize("chain", ["raw", "zstd", "gzip"])
def test_large_outputs_stream_and_match(chain):
    # Streaming stores (non-temporal, on cache lines) for outputs over the threshold.
    values = field((64, 64, 64))
    store = new_array(values.shape, (16, 32, 64), chain=chain)
    store.write_array(NODE, ..., values)
    for stream_min in (0, 1 << 40):
        with threads(2, stream_min_bytes=stream_min):
            out = store.read_array(NODE)
            np.testing.assert_array_equal(out, values)
            np.testing.assert_array_equal(store.read_array(NODE, (slice(3, 60), 5)),
                                          values[3:60, 5])
        if stream_min == 0 and zs.config.get("fast_paths"):
            assert out.ctypes.data % 64 == 0  # an aligned output


def test_fast_paths_off_read_what_fast_paths_wrote():
    values = field((48, 48))
    store = new_array(values.shape, (16, 16))
    with zs.config.set(fast_paths=True):
        store.write_array(NODE, ..., values)
    with zs.config.set(fast_paths=False):
        np.testing.assert_array_equal(store.read_array(NODE), values)
        store.write_array(NODE, (slice(0, 16), slice(None)), values[:16] + 1)
    with zs.config.set(fast_paths=True):
        expected = values.copy()
        expected[:16] += 1
        np.testing.assert_array_equal(store.read_array(NODE), expected)


# -- batches: refusals ---------------------------------------------------------------------------

def stored_rows(chain, shape):
    """``(store, values)``: a 2-d array of ``shape`` in chunks of one row, written whole."""
    values = field(shape)
    store = new_array(shape, (1, shape[1]), chain=chain)
    store.write_array(NODE, ..., values)
    return store, values


@pytest.mark.parametrize("fast_paths", [True, False])
@pytest.mark.parametrize("chain", ["zstd", "gzip", "zstd+crc32c"])
@pytest.mark.parametrize("dtype", ["float32", "datetime64[ns]"])
def test_chunks_of_whole_rows_decode_in_place_on_both_routes(fast_paths, chain, dtype):
    """Chunks that lie in the output as one run are decoded straight into it
    (native batches and the portable route alike); those that do not, and
    outputs of another layout, go through a chunk-sized buffer."""
    values = field((12, 40)).astype("int64").astype(dtype)
    store = new_array((12, 40), (3, 40), chain=chain, dtype=dtype)
    store.write_array(NODE, ..., values)
    selections = [Ellipsis, (slice(3, 9),), (slice(2, 11),), (slice(None), slice(0, 39)),
                  (slice(0, 12, 2),), (5,), (slice(None), 7)]
    with zs.config.set(fast_paths=fast_paths), threads(2):
        for sel in selections:
            np.testing.assert_array_equal(store.read_array(NODE, sel), values[sel])
        store.set("a/c/2/0", damaged(CHAINS[chain]()[-1], values[6:9].tobytes()))
        with pytest.raises(zs.errors.CodecError, match="a/c/2/0"):
            store.read_array(NODE)


@needs_native
@pytest.mark.parametrize("bundled_is_newer", [True, False])
def test_large_zstd_chunks_go_to_the_newer_zstd(per_chunk_decodes, monkeypatch,
                                                bundled_is_newer):
    """Chunks of ``BUNDLED_MIN_BYTES`` or more are decoded one call each by
    ``zstandard`` where its zstd is the newer, else in native batches;
    smaller chunks always go in batches. Both give the stored values."""
    monkeypatch.setattr(zstd_module, "_bundled_is_newer", lambda: bundled_is_newer)
    row = zstd_module.BUNDLED_MIN_BYTES // 4
    for rows, width, dtype in [(6, row, "float32"), (6, row // 2, "float32"),
                               (6, row // 2, "datetime64[ms]")]:
        values = field((rows, width), dtype="float64").astype("int64").astype(dtype) \
            if dtype.startswith("datetime") else field((rows, width))
        store = new_array((rows, width), (1, width), chain="zstd", dtype=dtype)
        store.write_array(NODE, ..., values)
        per_chunk_decodes.clear()
        with threads(2):
            np.testing.assert_array_equal(store.read_array(NODE), values)
            np.testing.assert_array_equal(store.read_array(NODE, (slice(1, 5), slice(3, 9))),
                                          values[1:5, 3:9])
        large = width * np.dtype(dtype).itemsize >= zstd_module.BUNDLED_MIN_BYTES
        assert len(per_chunk_decodes) == (10 if large and bundled_is_newer else 0)


@needs_native
@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("sharded", [False, True])
def test_a_clean_read_never_decodes_chunk_by_chunk(per_chunk_decodes, n_threads, sharded):
    values = field((16, 16, 16))
    codecs = CHAINS["zstd"]()
    if sharded:
        codecs = [ShardingIndexed((4, 4, 4), codecs, [Bytes(), Crc32c()])]
    store = new_array(values.shape, (8, 8, 8), codecs=codecs)
    store.write_array(NODE, ..., values)
    with threads(n_threads):
        np.testing.assert_array_equal(store.read_array(NODE), values)
        np.testing.assert_array_equal(store.read_array(NODE, (slice(1, None, 3), 5)),
                                      values[1::3, 5])
    assert per_chunk_decodes == []


def damaged(codec, raw):
    """``raw`` encoded, then cut short."""
    return codec.encode(raw)[:-5]


@pytest.mark.parametrize("chain", ["zstd", "gzip"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_damaged_chunk_in_a_batch_is_an_error_naming_it(chain, n_threads):
    store, values = stored_rows(chain, (8, 64))
    store.set("a/c/5/0", damaged(CHAINS[chain]()[1], values[5].tobytes()))
    with threads(n_threads), pytest.raises(zs.errors.CodecError, match="a/c/5/0"):
        store.read_array(NODE)
    np.testing.assert_array_equal(store.read_array(NODE, slice(0, 5)), values[:5])


@pytest.mark.parametrize("chain", ["raw", "zstd", "gzip"])
@pytest.mark.parametrize("extra", [-4, 4])
def test_a_chunk_of_the_wrong_size_is_an_error_naming_it(chain, extra):
    store, values = stored_rows(chain, (6, 16))
    raw = values[2].tobytes()
    raw = raw[:extra] if extra < 0 else raw + bytes(extra)
    codecs = CHAINS[chain]()
    store.set("a/c/2/0", codecs[1].encode(raw) if len(codecs) > 1 else raw)
    with pytest.raises(zs.errors.CodecError, match="a/c/2/0"):
        store.read_array(NODE)


@needs_native
def test_frames_the_native_decoder_refuses_go_the_portable_route(per_chunk_decodes):
    # Zstd frames followed by a second frame decode natively; a frame with a
    # bad checksum is refused there and named by the portable route.
    store, values = stored_rows("zstd", (6, 256))
    checked = zstandard.ZstdCompressor(write_checksum=True)
    frame = bytearray(checked.compress(values[3].tobytes()))
    frame[-1] ^= 0xFF
    store.set("a/c/3/0", bytes(frame))
    with threads(2), pytest.raises(zs.errors.CodecError, match="a/c/3/0"):
        store.read_array(NODE)
    assert per_chunk_decodes == ["a/c/3/0"]
    np.testing.assert_array_equal(store.read_array(NODE, slice(4, 6)), values[4:])


def test_zstd_frames_of_other_writers_are_read(per_chunk_decodes):
    """Frames without a content size (streaming writers) and with checksums."""
    store, values = stored_rows("zstd", (4, 256))
    streaming = zstandard.ZstdCompressor(write_content_size=False, write_checksum=True)
    for row in range(4):
        store.set(f"a/c/{row}/0", streaming.compress(values[row].tobytes()))
    with threads(2):
        np.testing.assert_array_equal(store.read_array(NODE), values)
    if native_library() is not None and zs.config.get("fast_paths"):
        assert per_chunk_decodes == []


def test_a_damaged_inner_chunk_is_an_error_naming_shard_and_position():
    values = field((16, 16))
    codec = Zstd(1)
    store = new_array(values.shape, (8, 16), codecs=[ShardingIndexed((2, 16), [Bytes(), codec])])
    store.write_array(NODE, ..., values)
    inner = layout_of(store).inner
    slots = [store.get("a/c/1/0")[o:o + n] if o != 2**64 - 1 else None
             for o, n in inner.read_index(store.get("a/c/1/0")[-inner.index_size:], None)
             .reshape(-1, 2).tolist()]
    slots[2] = damaged(codec, values[12:14].tobytes())
    store.set("a/c/1/0", inner.assemble(slots))
    with pytest.raises(zs.errors.CodecError, match=r"a/c/1/0 \(inner chunk 2\)"):
        store.read_array(NODE)
    np.testing.assert_array_equal(store.read_array(NODE, slice(0, 8)), values[:8])


# -- failures ----------------------------------------------------------------------------------

class FailingZstd(Zstd):
    """Zstd without a native form whose encodes fail once ``good`` have run."""

    name = "test.failing-zstd"

    def __init__(self, good):
        super().__init__(1)
        self.good = good
        self.calls = 0

    def native(self):
        return None

    def encode(self, data):
        self.calls += 1
        if self.calls > self.good:
            raise zs.errors.CodecError("zstd: out of memory (simulated)")
        return super().encode(data)


class BrokenNative(Zstd):
    """Zstd whose native form fails every call: the portable route must take over."""

    name = "test.broken-native-zstd"

    def native(self):
        return native_kernels.NativeCodec()


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("sharded", [False, True])
def test_a_failing_write_tears_no_chunk(n_threads, sharded):
    old = np.ones((32, 32, 32), dtype="float32")
    failing = FailingZstd(good=10**9)
    codecs = [Bytes(), failing]
    if sharded:
        codecs = [ShardingIndexed((8, 8, 8), codecs)]
    store = new_array(old.shape, (16, 16, 16), codecs=codecs)
    store.write_array(NODE, ..., old)
    failing.calls, failing.good = 0, 3
    with threads(n_threads), pytest.raises(zs.errors.CodecError, match="simulated"):
        store.write_array(NODE, ..., np.full(old.shape, 2.0, dtype="float32"))
    # Every chunk holds the old values or the new ones, never a mixture.
    failing.good = 10**9
    got = store.read_array(NODE)
    for coords in np.ndindex(2, 2, 2):
        chunk = got[tuple(slice(16 * c, 16 * (c + 1)) for c in coords)]
        assert (chunk == 1).all() or (chunk == 2).all(), coords
    assert (got == 1).any()


@pytest.mark.parametrize("sharded", [False, True])
def test_a_native_form_that_fails_falls_back_to_the_portable_route(sharded):
    values = field((32, 32))
    codecs = [Bytes(), BrokenNative(1)]
    if sharded:
        codecs = [ShardingIndexed((8, 8), codecs)]
    store = new_array(values.shape, (16, 16), codecs=codecs)
    with threads(2):
        store.write_array(NODE, ..., values)
        np.testing.assert_array_equal(store.read_array(NODE), values)
    plain = new_array(values.shape, (16, 16), codecs=CHAINS["zstd"]())
    plain.write_array(NODE, ..., values)
    if not sharded:
        assert store.to_dict()["a/c/1/1"] == plain.to_dict()["a/c/1/1"]


# -- sharded arrays ------------------------------------------------------------------------------

@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("chain", ["raw", "zstd", "zstd+crc32c", "transpose"])
def test_shards_equal_the_whole_shard_encoding(n_threads, chain):
    values = field((32, 32, 16))
    values[:8, :8] = 0  # an inner chunk of fill value: left out
    store = new_array(values.shape, (16, 16, 16),
                      codecs=[ShardingIndexed((8, 8, 8), chain_of(chain, 3))])
    with threads(n_threads, task_bytes=1):  # one task per inner chunk
        store.write_array(NODE, ..., values)
    meta_chain = layout_of(store).meta.chain
    for i, j in np.ndindex(2, 2):
        shard = np.ascontiguousarray(values[16 * i:16 * (i + 1), 16 * j:16 * (j + 1)])
        assert store.get(f"a/c/{i}/{j}/0") == meta_chain.encode(shard)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_partial_shard_writes_keep_the_other_inner_chunks(n_threads):
    values = field((16, 16))
    store = new_array(values.shape, (16, 16), codecs=[ShardingIndexed((4, 4), CHAINS["zstd"]())])
    store.write_array(NODE, ..., values)
    before = store.get("a/c/0/0")
    with threads(n_threads):
        store.write_array(NODE, (slice(4, 8), slice(5, 11)), -1.0)
    expected = values.copy()
    expected[4:8, 5:11] = -1
    np.testing.assert_array_equal(store.read_array(NODE), expected)
    inner = layout_of(store).inner
    old = inner.read_index(before[-inner.index_size:], len(before)).reshape(-1, 2)
    after = store.get("a/c/0/0")
    new = inner.read_index(after[-inner.index_size:], len(after)).reshape(-1, 2)
    # Untouched inner chunks keep their bytes.
    for p in (0, 1, 2, 3, 8, 15):
        (o1, n1), (o2, n2) = old[p], new[p]
        assert before[o1:o1 + n1] == after[o2:o2 + n2]


def test_a_shard_of_fill_value_only_is_erased():
    store = new_array((16, 16), (8, 8), codecs=[ShardingIndexed((4, 4), CHAINS["zstd"]())])
    store.write_array(NODE, ..., field((16, 16)))
    store.write_array(NODE, (slice(0, 8), slice(0, 8)), 0.0)
    store.write_array(NODE, (slice(8, 12), slice(8, 16)), 0.0)
    assert stored_keys(store) == {"a/c/0/1", "a/c/1/0", "a/c/1/1"}
    store.write_array(NODE, (slice(12, 16), slice(8, 16)), 0.0)
    assert stored_keys(store) == {"a/c/0/1", "a/c/1/0"}


def test_a_sharded_write_is_one_scheduler_call_over_all_shards(runs):
    store = new_array((64, 64), (32, 32), codecs=[ShardingIndexed((8, 8), CHAINS["zstd"]())])
    with threads(2, tasks_per_thread=4):
        store.write_array(NODE, ..., field((64, 64)))
    (n_tasks, parallel), = runs
    assert parallel and n_tasks == 8  # the call's 2 x 4 tasks: two groups per shard


# -- values handed out ---------------------------------------------------------------------------

@pytest.mark.parametrize("chain", ["raw", "zstd"])
def test_values_got_from_the_store_never_change(chain):
    values = field((64, 64))
    store = new_array(values.shape, (16, 64), chain=chain)
    store.write_array(NODE, ..., values)
    held = {k: store.get(k) for k in stored_keys(store)}
    copies = {k: bytes(v) for k, v in held.items()}
    view = memoryview(held["a/c/1/0"])
    for k in range(3):
        store.write_array(NODE, ..., values + k + 1)
    assert {k: bytes(v) for k, v in held.items()} == copies
    assert view.tobytes() == copies["a/c/1/0"]


def test_a_backend_overriding_set_sees_every_chunk_of_a_write():
    seen = []

    class Watched(zs.MemoryStore):
        def set(self, key, value):
            seen.append(key)
            super().set(key, value)

    store = new_array((32, 32), (8, 8), store=Watched())
    seen.clear()
    store.write_array(NODE, ..., field((32, 32)))
    assert sorted(seen) == sorted(stored_keys(store)) and len(seen) == 16


# -- layouts -------------------------------------------------------------------------------------

def test_encode_unit_leaves_out_fill_chunks():
    store = new_array((4, 4), (4, 4), fill_value=1.5)
    layout = layout_of(store)
    assert layout.encode_unit(np.full((4, 4), 1.5, dtype="float32")) is None
    chunk = np.full((4, 4), 1.5, dtype="float32")
    chunk[0, 0] = -0.0
    assert layout.chain.decode(layout.encode_unit(chunk))[0, 0] == 0


@pytest.mark.parametrize("stored", [None, "value"])
def test_writable_units_are_new_writable_arrays(stored):
    values = field((8, 8))
    store = new_array((8, 8), (8, 8), chain="zstd")
    store.write_array(NODE, ..., values)
    layout = layout_of(store)
    raw = store.get("a/c/0/0") if stored else None
    unit = layout.writable_unit(raw, "a/c/0/0")
    assert unit.flags.writeable and unit.flags.c_contiguous
    unit[...] = 7  # never the store's bytes
    np.testing.assert_array_equal(store.read_array(NODE), values)


# -- what other implementations read --------------------------------------------------------

@pytest.mark.parametrize("chain", ["raw", "zstd", "gzip", "zstd+crc32c", "transpose",
                                   "big-endian", "sharded"])
def test_zarr_python_reads_every_step(tmp_path, chain):
    zarr = pytest.importorskip("zarr")
    data = np.random.default_rng(3).standard_normal((96, 80))
    data[:8, :16] = 0  # a chunk of fill value, left out
    codecs = ([ShardingIndexed((8, 16), CHAINS["zstd"]())] if chain == "sharded"
              else chain_of(chain))
    store = zs.FilesystemStore(tmp_path)
    store.create_array(NODE, shape=data.shape, chunks=(16, 16), dtype="float64",
                       codecs=codecs)
    with threads(2, task_bytes=3 * 16 * 16 * 8):
        store.write_array(NODE, ..., data)
        store.write_array(NODE, (slice(5, 90), 33), data[5:90, 33] + 1)
    expected = data.copy()
    expected[5:90, 33] += 1
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a"), mode="r")[...],
                                  expected)


class _LateFirstRow(zs.MemoryStore):
    """Reads run in the background, and the first row of chunks comes last."""

    reads_ahead = True

    def get_many_ahead(self, keys, buffers=False):
        keys = list(keys)
        done = Future()
        late = any(k.startswith("a/c/0/") for k in keys)
        threading.Timer(0.3 if late else 0.0,
                        lambda: done.set_result(self.get_many(keys))).start()
        return Pending(done)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_chunks_that_come_first_are_decoded_first(monkeypatch, n_threads):
    """On a store whose reads run in the background, a task takes the group
    of chunks that came first, not the next in order."""
    store = new_array((4, 64), (1, 64), store=_LateFirstRow())
    values = field((4, 64))
    store.write_array(NODE, ..., values)
    order = []
    real = pipeline._Read.decode

    def logged(self, indices):
        order.extend(indices)
        return real(self, indices)

    monkeypatch.setattr(pipeline._Read, "decode", logged)
    with threads(n_threads):
        np.testing.assert_array_equal(store.read_array(NODE), values)
    assert sorted(order) == [0, 1, 2, 3] and order[-1] == 0, order



@pytest.mark.parametrize("chunk_bytes_threshold", [1, 1 << 40])   # read in tasks, or first
def test_chunks_read_in_tasks_or_first_give_the_same_result(tmp_path, chunk_bytes_threshold):
    store = zs.FilesystemStore(tmp_path / "s.zarr")
    data = np.arange(512 * 384, dtype="float64").reshape(512, 384)
    store.create_array(NODE, shape=data.shape, chunks=(64, 128), dtype="float64",
                       codecs=[Bytes(), Zstd(level=1)], fill_value=-2.0)
    store.write_array(NODE, ..., data)
    for key in ["a/c/0/0", "a/c/5/2", "a/c/7/1"]:   # never written: the fill value
        store.erase(key)
    expected = data.copy()
    expected[0:64, 0:128] = expected[320:384, 256:384] = expected[448:512, 128:256] = -2.0
    with zs.config.set(parallel_min_chunk_bytes=chunk_bytes_threshold, threads=2,
                       parallel_min_bytes=1):
        np.testing.assert_array_equal(store.read_array(NODE), expected)
        np.testing.assert_array_equal(store.read_array(NODE, (slice(1, 500, 3), 7)),
                                      expected[1:500:3, 7])
        (tmp_path / "s.zarr" / "a" / "c" / "3" / "1").write_bytes(b"not zstd")
        with pytest.raises(zs.CodecError, match="a/c/3/1"):
            store.read_array(NODE)
