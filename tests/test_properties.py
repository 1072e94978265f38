"""Property tests: every read, write and resize of zarrsync matches NumPy.

Each test draws an array configuration (shape, chunk shape, data type, fill
value, codec chain, chunk key encoding; see ``strategies.py``), applies the
same operations to a zarrsync array and to a NumPy array, and compares them
bit for bit. The store API uses orthogonal indexing (lists on several axes
select their outer product, as ``np.ix_``); the ``Array`` view uses NumPy
basic indexing (clipped slices, negative steps).

Run more examples with ``HYPOTHESIS_PROFILE=ci`` (see ``conftest.py``).
"""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, rule,
                                 run_state_machine_as_test)

import zarrsync as zs
from zarrsync import ArrayNode

from strategies import (array_configs, assert_bitwise_equal, basic_selections, chunk_key,
                        crop_or_pad, expected_chunk_keys, expected_empty_inner_chunks,
                        is_fast_path, np_read, np_write, orthogonal_index, scalars,
                        selections, shard_index_entries, sharding_config, shapes,
                        write_values)

# A nested node, so chunk keys carry a multi-level prefix.
NODE = ArrayNode.of_path("/group/arr")
PREFIX = NODE.key + "/"

MAX_EXAMPLES = settings.default.max_examples


def stored_chunk_keys(store):
    return set(store.list_prefix(PREFIX)) - {NODE.metadata_key}


def check_chunks_and_contents(store, config, expected):
    """The whole array reads as ``expected``, its metadata has ``expected``'s
    shape, and exactly the chunks that are not all fill value are stored."""
    meta = store.array_metadata(NODE)
    assert meta.shape == expected.shape
    whole = store.read_array(NODE)
    assert_bitwise_equal(whole, expected)
    assert whole.flags.writeable
    assert stored_chunk_keys(store) == expected_chunk_keys(expected, config, PREFIX)


def random_writes(data, store, config, expected, max_writes=4, unique=False):
    """Apply 0..``max_writes`` random writes to the store and to ``expected``."""
    for _ in range(data.draw(st.integers(0, max_writes), label="number of writes")):
        sel = data.draw(selections(expected.shape, unique=unique), label="write selection")
        _, out_shape = orthogonal_index(sel, expected.shape)
        value = data.draw(write_values(config.dtype, out_shape, config.fill_value),
                          label="value")
        store.write_array(NODE, sel, value)
        np_write(expected, sel, value)


# -- store API: write_array / read_array ------------------------------------------------------

@given(data=st.data())
def test_writes_then_reads_match_numpy(store_factory, data):
    config = data.draw(array_configs(), label="config")
    store = store_factory()
    config.create(store, NODE)
    meta = store.array_metadata(NODE)
    # The fill value survives creation and the zarr.json round trip bit for bit.
    assert_bitwise_equal(np.array(meta.fill_value), np.array(config.fill_value))
    expected = config.reference()

    random_writes(data, store, config, expected)
    for _ in range(data.draw(st.integers(1, 3), label="number of reads")):
        sel = data.draw(selections(expected.shape), label="read selection")
        dtype = data.draw(st.sampled_from([None, config.dtype]), label="read dtype")
        actual = store.read_array(NODE, sel, dtype=dtype)
        assert_bitwise_equal(actual, np_read(expected, sel))
    check_chunks_and_contents(store, config, expected)


def large_array_paths(data, threads):
    """The settings of a large array for a small one: every multi-chunk call
    on the thread pool, outputs streamed, tasks and encode batches of a few
    chunks or one, the row walk over any number of chunks."""
    return zs.config.set(
        threads=threads, parallel_min_bytes=0, parallel_min_chunk_bytes=0,
        stream_min_bytes=0,
        task_bytes=data.draw(st.sampled_from([1, 100, 1000, 4 << 20]), label="task_bytes"),
        encode_batch_bytes=data.draw(st.sampled_from([1, 1000, 1 << 20]), label="batch"),
        walk_chunks=data.draw(st.sampled_from([0, 1, 2, 64]), label="walk_chunks"))


@pytest.mark.parametrize("threads", [1, 3])
@settings(max_examples=max(10, MAX_EXAMPLES // 2))
@given(data=st.data())
def test_large_array_paths_match_numpy(threads, data):
    """The write/read property with chunks (and inner chunks of shards, half
    the time) on the large-array paths (``large_array_paths``); the test
    above runs them on the calling thread, its arrays being small."""
    config = data.draw(array_configs(sharded=data.draw(st.booleans(), label="sharded")
                                     or None), label="config")
    store = zs.MemoryStore()
    config.create(store, NODE)
    expected = config.reference()
    with large_array_paths(data, threads):
        random_writes(data, store, config, expected)
        sel = data.draw(selections(expected.shape), label="read selection")
        assert_bitwise_equal(store.read_array(NODE, sel), np_read(expected, sel))
    check_chunks_and_contents(store, config, expected)


@given(data=st.data())
def test_duplicate_index_writes_last_wins(store_factory, data):
    """Integer lists with repeated indices: like ``a[np.ix_(...)] = v`` in NumPy,
    the value from the last occurrence (in C order) of each index wins."""
    config = data.draw(array_configs(shape=data.draw(shapes(min_dims=1, max_dims=3))),
                       label="config")
    store = store_factory()
    config.create(store, NODE)
    expected = config.reference()
    index = []
    for n in config.shape:
        if n == 0:
            index.append([])
        else:
            index.append(data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=2 * n)))
    sel = tuple(index)
    _, out_shape = orthogonal_index(sel, config.shape)
    value = data.draw(write_values(config.dtype, out_shape, config.fill_value), label="value")
    store.write_array(NODE, sel, value)
    np_write(expected, sel, value)
    check_chunks_and_contents(store, config, expected)


@settings(max_examples=max(10, MAX_EXAMPLES // 2))
@given(data=st.data())
def test_stored_chunks_are_exactly_the_non_fill_chunks(store_factory, data):
    """A chunk equal to the fill value everywhere is never stored (and is
    erased when a write makes it so); every other chunk is stored."""
    config = data.draw(array_configs(), label="config")
    store = store_factory()
    config.create(store, NODE)
    assert stored_chunk_keys(store) == set()
    expected = config.reference()
    random_writes(data, store, config, expected, max_writes=6)
    check_chunks_and_contents(store, config, expected)
    # Writing the fill value over a random selection, then over everything.
    sel = data.draw(selections(expected.shape), label="fill selection")
    store.write_array(NODE, sel, config.fill_value)
    np_write(expected, sel, config.fill_value)
    check_chunks_and_contents(store, config, expected)
    store.write_array(NODE, Ellipsis, config.fill_value)
    assert stored_chunk_keys(store) == set()
    assert_bitwise_equal(store.read_array(NODE), config.reference())


@settings(max_examples=max(10, MAX_EXAMPLES // 2))
@given(data=st.data())
def test_out_of_bounds_selections_raise_and_change_nothing(store_factory, data):
    """An int, slice bound or list entry beyond an axis raises
    ``InvalidArraySlice`` (an ``IndexError``) on read and write, and a
    failed write leaves the array as it was."""
    config = data.draw(array_configs(shape=data.draw(shapes(min_dims=1))), label="config")
    store = store_factory()
    config.create(store, NODE)
    expected = config.reference()
    random_writes(data, store, config, expected, max_writes=2)
    before = {key: store.get(key) for key in store.list_prefix("")}

    axis = data.draw(st.integers(0, config.ndim - 1), label="axis")
    n = config.shape[axis]
    bad_index = st.one_of(st.integers(n, n + 5), st.integers(-n - 5, -n - 1))
    bad_bound = st.one_of(st.integers(n + 1, n + 5), st.integers(-n - 5, -n - 1))
    good_indices = st.lists(st.integers(0, n - 1), max_size=3) if n else st.just([])
    bad = data.draw(st.one_of(
        bad_index,
        st.builds(slice, bad_bound, st.none()),
        st.builds(slice, st.none(), bad_bound),
        st.builds(lambda good, i: [*good, i], good_indices, bad_index),
    ), label="out-of-bounds axis selection")
    sel = (slice(None),) * axis + (bad,)
    view = zs.Array(store, NODE)
    if isinstance(bad, slice):
        # The Array view clips slices as NumPy does.
        assert_bitwise_equal(view[sel], expected[sel])
    else:
        with pytest.raises(IndexError):
            view[sel]
    with pytest.raises(zs.InvalidArraySlice):
        store.read_array(NODE, sel)
    with pytest.raises(IndexError):
        store.write_array(NODE, sel, config.fill_value)
    with pytest.raises(zs.InvalidArraySlice):
        store.write_array(NODE, sel, data.draw(scalars(config.dtype))[()])
    assert {key: store.get(key) for key in store.list_prefix("")} == before
    check_chunks_and_contents(store, config, expected)


# -- reshape ---------------------------------------------------------------------------------

@given(data=st.data())
def test_reshape_crops_and_pads_with_fill(store_factory, data):
    """After any sequence of grow/shrink resizes (with writes in between), the
    array reads as a NumPy array cropped and padded with the fill value:
    data cut off by a shrink never reappears when the array grows again."""
    config = data.draw(array_configs(), label="config")
    store = store_factory()
    config.create(store, NODE)
    expected = config.reference()
    random_writes(data, store, config, expected, max_writes=3)
    for _ in range(data.draw(st.integers(1, 3), label="number of resizes")):
        new_shape = data.draw(shapes(ndim=config.ndim), label="new shape")
        store.reshape(NODE, new_shape)
        expected = crop_or_pad(expected, new_shape, config.fill_value)
        check_chunks_and_contents(store, config, expected)
        random_writes(data, store, config, expected, max_writes=2)
        check_chunks_and_contents(store, config, expected)


@given(data=st.data())
def test_shrink_then_grow_back_shows_fill(store_factory, data):
    """Shrink, then grow back to the original shape: the regrown region reads
    as the fill value everywhere, the kept region keeps its data."""
    config = data.draw(array_configs(shape=data.draw(shapes(min_dims=1))), label="config")
    store = store_factory()
    config.create(store, NODE)
    expected = config.reference()
    np_write(expected, Ellipsis, data.draw(write_values(config.dtype, config.shape,
                                                        config.fill_value), label="data"))
    store.write_array(NODE, Ellipsis, expected.copy())
    small = tuple(data.draw(st.integers(0, n), label=f"axis {d}")
                  for d, n in enumerate(config.shape))
    store.reshape(NODE, small)
    assert_bitwise_equal(store.read_array(NODE), expected[tuple(slice(0, s) for s in small)])
    store.reshape(NODE, config.shape)
    regrown = store.read_array(NODE)
    kept = tuple(slice(0, s) for s in small)
    assert_bitwise_equal(regrown[kept], expected[kept])
    outside = np.ones(config.shape, dtype=bool)
    outside[kept] = False
    assert_bitwise_equal(regrown[outside], np.full(int(outside.sum()), config.fill_value,
                                                   dtype=config.dtype))
    expected = crop_or_pad(crop_or_pad(expected, small, config.fill_value), config.shape,
                           config.fill_value)
    check_chunks_and_contents(store, config, expected)


# -- sharding_indexed ------------------------------------------------------------------------
# array_configs() shards about one array in four for every test above; these
# draw sharded arrays only, on each path: "fast" (sharding_indexed alone: the
# inner chunk grid, byte-range reads), "transpose" and "compress" (a codec
# around the sharding codec: whole shards decoded and encoded).

def check_shard_layouts(store, config, expected):
    """Every stored shard of a fast-path array, parsed with NumPy: its index
    leaves out exactly the inner chunks that are all fill value (bitwise), and
    it holds the index plus the stored inner chunks, nothing else."""
    inner, location, endian, crc = sharding_config(config.codecs)
    per_shard = [s // c for s, c in zip(config.chunks, inner)]
    n_inner = math.prod(per_shard)
    grid = [-(-n // c) for n, c in zip(expected.shape, config.chunks)]
    for coords in itertools.product(*[range(g) for g in grid]):
        raw = store.get(PREFIX + chunk_key(coords, config.chunk_key_encoding, config.separator))
        if raw is None:
            continue
        entries = shard_index_entries(raw, n_inner, location, endian, crc)
        empty = [offset == nbytes == 2**64 - 1 for offset, nbytes in entries.tolist()]
        assert empty == expected_empty_inner_chunks(expected, config.fill_value, coords,
                                                    config.chunks, inner), coords
        stored = entries[~np.array(empty)]
        assert len(raw) == 16 * n_inner + 4 * crc + int(stored[:, 1].sum())


SHARDING_PATHS = st.sampled_from(["fast", "fast", "transpose", "compress"])


@settings(max_examples=max(10, MAX_EXAMPLES // 2))
@given(data=st.data())
def test_sharded_arrays_match_numpy(store_factory, data):
    """Random shard and inner chunk shapes, both index locations, with and
    without crc32c, compression and transpose inside, nested sharding: reads
    and writes match NumPy, fill-value inner chunks are left out of their
    shard, and a shard with no inner chunk left is not stored."""
    path = data.draw(SHARDING_PATHS, label="sharding path")
    config = data.draw(array_configs(sharded=True, sharding_path=path), label="config")
    assert is_fast_path(config.codecs) == (path == "fast")
    store = store_factory()
    config.create(store, NODE)
    expected = config.reference()
    for _ in range(data.draw(st.integers(1, 3), label="rounds")):
        random_writes(data, store, config, expected, max_writes=3)
        for _ in range(data.draw(st.integers(1, 2), label="number of reads")):
            sel = data.draw(selections(expected.shape), label="read selection")
            assert_bitwise_equal(store.read_array(NODE, sel), np_read(expected, sel))
        check_chunks_and_contents(store, config, expected)
        if path == "fast":
            check_shard_layouts(store, config, expected)
    # Fill over a random selection, then over everything: no shard is left.
    sel = data.draw(selections(expected.shape), label="fill selection")
    store.write_array(NODE, sel, config.fill_value)
    np_write(expected, sel, config.fill_value)
    check_chunks_and_contents(store, config, expected)
    if path == "fast":
        check_shard_layouts(store, config, expected)
    store.write_array(NODE, Ellipsis, config.fill_value)
    assert stored_chunk_keys(store) == set()


@settings(max_examples=max(10, MAX_EXAMPLES // 4))
@given(data=st.data())
def test_sharded_reshape_matches_numpy(store_factory, data):
    """Resizes of sharded arrays crop and pad with the fill value; inner chunks
    cut off by a shrink are left out of their shard."""
    path = data.draw(SHARDING_PATHS, label="sharding path")
    config = data.draw(array_configs(sharded=True, sharding_path=path), label="config")
    store = store_factory()
    config.create(store, NODE)
    expected = config.reference()
    random_writes(data, store, config, expected, max_writes=3)
    for _ in range(data.draw(st.integers(1, 3), label="number of resizes")):
        new_shape = data.draw(shapes(ndim=config.ndim), label="new shape")
        store.reshape(NODE, new_shape)
        expected = crop_or_pad(expected, new_shape, config.fill_value)
        check_chunks_and_contents(store, config, expected)
        if path == "fast":
            check_shard_layouts(store, config, expected)
        random_writes(data, store, config, expected, max_writes=2)
        check_chunks_and_contents(store, config, expected)


# -- 0-d arrays ------------------------------------------------------------------------------

@settings(max_examples=max(10, MAX_EXAMPLES // 2))
@given(data=st.data())
def test_zero_dimensional_arrays(store_factory, data):
    config = data.draw(array_configs(shape=()), label="config")
    store = store_factory()
    config.create(store, NODE)
    arr = zs.Array(store, NODE)
    expected = config.reference()
    assert arr.shape == () and arr.ndim == 0
    for sel in [(), Ellipsis]:
        assert_bitwise_equal(store.read_array(NODE, sel), expected)
    for _ in range(data.draw(st.integers(1, 3), label="number of writes")):
        value = data.draw(write_values(config.dtype, (), config.fill_value), label="value")
        sel = data.draw(st.sampled_from([(), Ellipsis, (Ellipsis,)]), label="selection")
        if data.draw(st.booleans(), label="through the Array view"):
            arr[sel] = value
        else:
            store.write_array(NODE, sel, value)
        np_write(expected, Ellipsis, value)
        check_chunks_and_contents(store, config, expected)
        assert_bitwise_equal(store.read_array(NODE, ()), expected)
        assert_bitwise_equal(np.asarray(arr[()]), expected)
        assert_bitwise_equal(np.asarray(arr), expected)


# -- the Array view: NumPy basic indexing ---------------------------------------------------

@given(data=st.data())
def test_array_view_matches_numpy_basic_indexing(store_factory, data):
    """``arr[sel]`` and ``arr[sel] = x`` behave as on a NumPy array: slices are
    clipped, steps may be negative, ints drop their axis."""
    config = data.draw(array_configs(), label="config")
    store = store_factory()
    config.create(store, NODE)
    arr = zs.Array(store, NODE)
    assert (arr.shape, arr.dtype, arr.chunks, arr.ndim) == (
        config.shape, config.dtype, config.chunks, config.ndim)
    expected = config.reference()
    for _ in range(data.draw(st.integers(0, 4), label="number of writes")):
        sel = data.draw(basic_selections(config.shape), label="write selection")
        target = expected[sel]
        out_shape = np.shape(target)
        value = data.draw(write_values(config.dtype, out_shape, config.fill_value),
                          label="value")
        arr[sel] = value
        expected[sel] = value
    for _ in range(data.draw(st.integers(1, 3), label="number of reads")):
        sel = data.draw(basic_selections(config.shape), label="read selection")
        assert_bitwise_equal(np.asarray(arr[sel]), np.asarray(expected[sel]))
    assert_bitwise_equal(np.asarray(arr), expected)
    assert stored_chunk_keys(store) == expected_chunk_keys(expected, config, PREFIX)


# -- interleavings: a state machine over every operation -------------------------------------

class ArrayMachine(RuleBasedStateMachine):
    """Random interleavings of store-API writes and reads, ``Array`` view
    writes and reads, resizes and re-creation (``overwrite=True``), checked
    against a NumPy array after every step."""

    def __init__(self, make_store):
        super().__init__()
        self.store = make_store()

    @initialize(config=array_configs())
    def create(self, config):
        self.config = config
        config.create(self.store, NODE)
        self.expected = config.reference()
        self.arr = zs.Array(self.store, NODE)

    @rule(data=st.data())
    def write(self, data):
        sel = data.draw(selections(self.expected.shape), label="selection")
        _, out_shape = orthogonal_index(sel, self.expected.shape)
        value = data.draw(write_values(self.config.dtype, out_shape, self.config.fill_value),
                          label="value")
        self.store.write_array(NODE, sel, value)
        np_write(self.expected, sel, value)

    @rule(data=st.data())
    def read(self, data):
        sel = data.draw(selections(self.expected.shape), label="selection")
        assert_bitwise_equal(self.store.read_array(NODE, sel), np_read(self.expected, sel))

    @rule(data=st.data())
    def view_write(self, data):
        sel = data.draw(basic_selections(self.expected.shape), label="selection")
        value = data.draw(write_values(self.config.dtype, np.shape(self.expected[sel]),
                                       self.config.fill_value), label="value")
        self.arr[sel] = value
        self.expected[sel] = value

    @rule(data=st.data())
    def view_read(self, data):
        sel = data.draw(basic_selections(self.expected.shape), label="selection")
        assert_bitwise_equal(np.asarray(self.arr[sel]), np.asarray(self.expected[sel]))

    @rule(data=st.data())
    def resize(self, data):
        shape = data.draw(shapes(ndim=self.config.ndim), label="shape")
        self.arr.resize(shape)
        self.expected = crop_or_pad(self.expected, shape, self.config.fill_value)
        assert self.arr.shape == shape

    @rule(config=array_configs())
    def recreate(self, config):
        # overwrite=True erases the old array: none of its chunks may survive.
        with pytest.raises(zs.NodeExists):
            config.create(self.store, NODE)
        config.create(self.store, NODE, overwrite=True)
        assert stored_chunk_keys(self.store) == set()
        self.config = config
        self.expected = config.reference()

    @invariant()
    def contents_and_chunks_match(self):
        check_chunks_and_contents(self.store, self.config, self.expected)


def test_state_machine(store_factory):
    run_state_machine_as_test(
        lambda: ArrayMachine(store_factory),
        settings=settings(max_examples=MAX_EXAMPLES, stateful_step_count=10))
