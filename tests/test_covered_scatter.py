"""Uncompressed whole chunks copied in one walk over the written value (``CoveredScatter``).

A write to a chain without bytes->bytes codecs copies every chunk it
covers box by box, reading the value row after row and splitting each box's
rows between threads. These tests compare the kernel and the write path
with NumPy on random shapes, chunks, selections and value layouts.
"""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zarrsync as zs
from zarrsync.codecs import Bytes, Crc32c
from zarrsync.indexing import CoveredScatter, normalize_selection
from zarrsync.storage import _hierarchy

NODE = zs.ArrayNode.of_path("/a")


@st.composite
def selections(draw, shape, int_lists=True):
    """Per axis a slice (mostly step 1) or, off the innermost axis, a list of
    distinct indices in any order."""
    sel = []
    for d, n in enumerate(shape):
        if int_lists and d < len(shape) - 1 and draw(st.integers(0, 4)) == 0:
            idx = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
            sel.append(np.array(idx, dtype=np.int64))
        else:
            start = draw(st.integers(0, n - 1))
            stop = draw(st.integers(start + 1, n))
            sel.append(slice(start, stop, draw(st.sampled_from([1, 1, 1, 2]))))
    return tuple(sel)


@st.composite
def cases(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 12), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, max(1, n // 2 + 1))) for n in shape)
    dtype = np.dtype(draw(st.sampled_from(["uint8", "int16", "float32", "complex128"])))
    return shape, chunks, dtype, draw(selections(shape))


def laid_out(value, layout):
    """``value`` as a C-contiguous array, or as a view with outer strides that
    are not C order (the innermost axis stays contiguous)."""
    if layout == "contiguous" or value.ndim < 2:
        return np.ascontiguousarray(value)
    padded = np.zeros((value.shape[0] * 2,) + value.shape[1:-1] + (value.shape[-1] + 3,),
                      dtype=value.dtype)
    view = padded[::2, ..., 1:1 + value.shape[-1]]
    view[...] = value
    return view


def orthogonal(sel, shape):
    """``sel`` as NumPy indexes each axis on its own (as zarrsync does with
    integer lists: ``numpy.ix_``)."""
    return np.ix_(*[np.arange(n)[s] for s, n in zip(sel, shape)])


def plan_of(shape, chunks, sel):
    selection = normalize_selection(sel, shape)
    return selection, selection.plan(shape, chunks)


@settings(max_examples=150, deadline=None)
@given(case=cases(), layout=st.sampled_from(["contiguous", "strided"]), data=st.data())
def test_covered_chunks_hold_their_elements_of_the_value(case, layout, data):
    shape, chunks, dtype, sel = case
    selection, plan = plan_of(shape, chunks, sel)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    value = rng.integers(0, 250, selection.out_shape).astype(dtype)
    whole = np.zeros(shape, dtype=dtype)
    whole[orthogonal(sel, shape)] = value
    job = CoveredScatter(plan, laid_out(value, layout).reshape(selection.full_shape))
    covered = plan.covered_chunks().tolist()
    if len(covered) == 0:
        assert not job.usable
        return
    assert job.usable
    max_bytes = data.draw(st.integers(1, 4 * job.chunk_nbytes * len(covered)))
    seen = []
    stream = data.draw(st.booleans())
    for box in job.boxes(max_bytes):
        chunks_of_box = job.new_chunks(box)
        parts = data.draw(st.integers(1, 4))
        for part in data.draw(st.permutations(range(parts))):
            job.copy(box, chunks_of_box, part, parts, stream)
        for i, raw in zip(job.box_chunks(box).tolist(), chunks_of_box):
            region = tuple(slice(c * n, (c + 1) * n)
                           for c, n in zip(plan.chunk_coords(i), chunks))
            assert raw == whole[region].tobytes()
            seen.append(i)
    assert sorted(seen) == covered  # every covered chunk, exactly once


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_streamed_rows_hold_their_elements_whatever_the_chunk_alignment(data):
    # Rows of whole cache lines: streamed, each line written whole except
    # where a chunk, a part, or a run of consecutive rows ends. Chunks of a
    # few KiB come from the heap, at every 16-byte offset into a line.
    dtype = np.dtype(data.draw(st.sampled_from(["uint8", "float32", "complex128"])))
    lines = data.draw(st.integers(1, 3))
    inner = 64 * lines // dtype.itemsize
    chunks = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5)), inner)
    shape = tuple(c * data.draw(st.integers(1, 3)) + data.draw(st.integers(0, 2))
                  for c in chunks)
    sel = data.draw(selections(shape, int_lists=True))
    selection, plan = plan_of(shape, chunks, sel)
    value = np.random.default_rng(0).integers(0, 250, selection.out_shape).astype(dtype)
    whole = np.zeros(shape, dtype=dtype)
    whole[orthogonal(sel, shape)] = value
    job = CoveredScatter(plan, value.reshape(selection.full_shape))
    if not job.usable:
        return
    # Pad the heap: the next chunks start at other offsets into a line.
    padding = [bytes(16 * k + 1) for k in range(data.draw(st.integers(0, 4)))]
    for box in job.boxes(data.draw(st.integers(1, 1 << 16))):
        chunks_of_box = job.new_chunks(box)
        parts = data.draw(st.integers(1, 3))
        for part in range(parts):
            job.copy(box, chunks_of_box, part, parts, True)
        for i, raw in zip(job.box_chunks(box).tolist(), chunks_of_box):
            region = tuple(slice(c * n, (c + 1) * n)
                           for c, n in zip(plan.chunk_coords(i), chunks))
            assert raw == whole[region].tobytes()
    del padding


def test_boxes_respect_the_byte_limit():
    shape, chunks = (16, 12, 8), (4, 4, 4)
    selection, plan = plan_of(shape, chunks, (slice(None),) * 3)
    job = CoveredScatter(plan, np.zeros(shape, dtype="float64"))
    per_chunk = 4 * 4 * 4 * 8
    # Per slot of axis 1 a box holds a row of 2 chunks along the last axis.
    assert job.boxes(7 * per_chunk) == [(s0, s0 + 1, 0, 3) for s0 in range(4)]
    assert job.boxes(4 * per_chunk) == [b for s0 in range(4)
                                        for b in ((s0, s0 + 1, 0, 2), (s0, s0 + 1, 2, 3))]
    # Never less than one row of chunks, whatever the limit.
    assert all(len(job.box_chunks(b)) == 2 for b in job.boxes(1))
    one_d = CoveredScatter(plan_of((40,), (4,), (slice(None),))[1], np.zeros(40, "uint8"))
    assert one_d.boxes(12) == [(0, 3, 0, 1), (3, 6, 0, 1), (6, 9, 0, 1), (9, 10, 0, 1)]


def test_when_the_walk_does_not_apply():
    shape, chunks = (8, 8), (4, 4)
    _, plan = plan_of(shape, chunks, (slice(None),) * 2)
    transposed = np.zeros(shape, dtype="int32").T
    assert not CoveredScatter(plan, transposed).usable          # innermost axis strided
    _, edge_only = plan_of((6, 6), chunks, (slice(4, 6), slice(None)))
    assert not CoveredScatter(edge_only, np.zeros((2, 6), "int32")).usable  # nothing covered
    _, listed = plan_of(shape, chunks, (slice(None), np.arange(8)[::-1].copy()))
    assert not CoveredScatter(listed, np.zeros(shape, "int32")).usable  # list on last axis
    _, repeated = plan_of(shape, chunks, (np.array([0, 1, 2, 3, 3, 4, 5, 6, 7]), slice(None)))
    assert not CoveredScatter(repeated, np.zeros((9, 8), "int32")).usable  # index repeated
    _, scalar = plan_of((), (), ())
    assert not CoveredScatter(scalar, np.zeros((), "int32")).usable


def test_copy_checks_its_arguments():
    _, plan = plan_of((8, 8), (4, 4), (slice(None),) * 2)
    job = CoveredScatter(plan, np.zeros((8, 8), "int32"))
    box = job.boxes(1 << 20)[0]
    chunks = job.new_chunks(box)
    with pytest.raises(ValueError, match="holds"):
        job.copy(box, chunks[:-1])
    with pytest.raises(ValueError, match="bytes of"):
        job.copy(box, [bytes(3)] * len(chunks))
    with pytest.raises(ValueError, match="part"):
        job.copy(box, chunks, 2, 2)
    with pytest.raises(ValueError, match="not within"):
        job.copy((0, 5, 0, 1), chunks)


# -- through write_array ----------------------------------------------------------


@contextlib.contextmanager
def boxes_of(max_bytes, threads):
    """Boxes of at most ``max_bytes``; with several threads, every box is
    split into parts taken on the pool, however small."""
    config = zs.config
    saved = (_hierarchy._MAX_BATCH_BYTES, config.get_threads(), config.MIN_PARALLEL_BYTES,
             config.MIN_PARALLEL_CHUNK_BYTES)
    _hierarchy._MAX_BATCH_BYTES = max_bytes
    config.set_threads(threads)
    config.MIN_PARALLEL_BYTES = config.MIN_PARALLEL_CHUNK_BYTES = 0
    try:
        yield
    finally:
        (_hierarchy._MAX_BATCH_BYTES, _, config.MIN_PARALLEL_BYTES,
         config.MIN_PARALLEL_CHUNK_BYTES) = saved
        config.set_threads(saved[1])


@pytest.fixture
def count_walks(monkeypatch):
    walks = []

    def counted(plan, value):
        job = CoveredScatter(plan, value)
        walks.append(job.usable)
        return job
    monkeypatch.setattr(_hierarchy, "CoveredScatter", counted)
    return walks


def new_array(shape, chunks, dtype, fill_value=0, store=None):
    store = zs.MemoryStore() if store is None else store
    store.create_array(NODE, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill_value,
                       codecs=[Bytes("little")])
    return store


@pytest.mark.parametrize("threads", [1, 3])
@settings(max_examples=60, deadline=None)
@given(case=cases(), box_chunks=st.integers(1, 5), data=st.data())
def test_uncompressed_writes_match_numpy(threads, case, box_chunks, data):
    shape, chunks, dtype, _ = case
    fill_value = data.draw(st.sampled_from([0, 1, 7]))
    store = new_array(shape, chunks, dtype, fill_value)
    expected = np.full(shape, fill_value, dtype=dtype)
    with boxes_of(box_chunks * int(np.prod(chunks)) * dtype.itemsize, threads):
        for _ in range(data.draw(st.integers(1, 3))):
            sel = data.draw(selections(shape))
            out_shape = expected[orthogonal(sel, shape)].shape
            rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
            x = rng.integers(0, 100, out_shape).astype(dtype)
            kind = data.draw(st.sampled_from(["fill", "random", "mixed", "strided"]))
            if kind == "fill":
                x[...] = fill_value
            elif kind == "mixed":
                x[rng.random(out_shape) < 0.7] = fill_value
            elif kind == "strided":
                x = laid_out(x, "strided")
            store.write_array(NODE, sel, x)
            expected[orthogonal(sel, shape)] = x
            np.testing.assert_array_equal(store.read_array(NODE), expected)
    # All-fill chunks are erased, not stored.
    grid = [-(-n // c) for n, c in zip(shape, chunks)]
    keys = set()
    for coords in np.ndindex(*grid):
        region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, chunks))
        if not (expected[region] == fill_value).all():
            keys.add("a/c/" + "/".join(map(str, coords)))
    assert {k for k in store.list_prefix("a/") if k != "a/zarr.json"} == keys


def test_a_large_uncompressed_write_walks_the_value_once(count_walks):
    data = np.random.default_rng(0).standard_normal((96, 64, 40)).astype("float32")
    data[:32, :32, :] = 0  # 2 x 2 x 5 chunks of fill value: erased
    store = new_array(data.shape, (16, 16, 8), "float32")
    store.write_array(NODE, ..., data)
    assert count_walks == [True]
    np.testing.assert_array_equal(store.read_array(NODE), data)
    assert len(store.list_prefix("a/c/")) == 6 * 4 * 5 - 20


def test_edge_chunks_and_compressed_or_checksummed_chains_take_the_chunk_path(count_walks):
    data = np.arange(50 * 50, dtype="int16").reshape(50, 50)
    store = new_array(data.shape, (8, 8), "int16")
    store.write_array(NODE, ..., data)           # 36 inner chunks walked, 13 edge chunks not
    assert count_walks == [True]
    np.testing.assert_array_equal(store.read_array(NODE), data)
    assert len(store.list_prefix("a/c/")) == 49
    checked = zs.MemoryStore()
    checked.create_array(NODE, shape=data.shape, chunks=(8, 8), dtype="int16",
                         codecs=[Bytes("little"), Crc32c()])
    checked.write_array(NODE, ..., data)
    assert count_walks == [True]                 # crc32c: encoded chunk by chunk
    np.testing.assert_array_equal(checked.read_array(NODE), data)
    single = new_array((8, 8), (8, 8), "int16")
    single.write_array(NODE, ..., data[:8, :8])  # one covered chunk: chunk path
    assert count_walks == [True]


def test_big_endian_chunks_are_not_walked(count_walks):
    data = np.arange(64 * 64, dtype="float64").reshape(64, 64)
    store = zs.MemoryStore()
    store.create_array(NODE, shape=data.shape, chunks=(16, 16), dtype="float64",
                       codecs=[Bytes("big")])
    store.write_array(NODE, ..., data)
    assert count_walks == []
    assert store.get("a/c/1/2") == data[16:32, 32:48].astype(">f8").tobytes()


def test_zarr_python_reads_a_walked_write(tmp_path):
    zarr = pytest.importorskip("zarr")
    data = np.random.default_rng(3).standard_normal((64, 48, 20))
    store = new_array(data.shape, (16, 16, 10), "float64", store=zs.FilesystemStore(tmp_path))
    store.write_array(NODE, ..., data)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a"), mode="r")[...], data)
