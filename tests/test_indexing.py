"""zarrsync.indexing and its kernel, checked against NumPy.

* ``ChunkPlan``: the chunks a selection touches, their classes and keys, and
  the copies between chunks and selections (``gather``, ``scatter``, the raw
  byte routes, the batch routes ``gather_many``/``scatter_many`` with the row
  walk, and streamed stores), against a NumPy model of the plan.
* ``metadata.ChunkKeyEncoding``: chunk keys as the spec writes them, and back.
* Selections: ``normalize_selection``, ``expand_selection`` and ``ElementPlan``
  (``tests/test_api.py`` checks selections through ``read_array``; these
  check what it does not).
"""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies
from zarrsync import config
from zarrsync._kernels import indexing as kernel, memory, zstd
from zarrsync.errors import InvalidArraySlice, ParseError
from zarrsync.indexing import (COVERED, EDGE, PARTIAL, ChunkPlan, ElementPlan,
                               expand_selection, normalize_selection)
from zarrsync.metadata import ChunkKeyEncoding

HAVE_ZSTD = zstd.load() != 0
needs_zstd = pytest.mark.skipif(not HAVE_ZSTD, reason="no libzstd to load")


# ----------------------------------------------------------------------------------
# A NumPy model of ChunkPlan
# ----------------------------------------------------------------------------------

def axis_indices(ax):
    """The array indices an axis selection visits, in output order."""
    if isinstance(ax, tuple):
        start, step, count = ax
        return np.arange(count, dtype=np.int64) * step + start
    return np.asarray(ax, dtype=np.int64)


def numpy_index(axes):
    """The NumPy index selecting the outer product of ``axes`` (``()`` at rank 0)."""
    return np.ix_(*[axis_indices(ax) for ax in axes]) if axes else ()


def model_chunks(chunks, axes):
    """Chunk coordinates a selection touches, in C order (what the plan must list)."""
    per_axis = [np.unique(axis_indices(ax) // c) for ax, c in zip(axes, chunks)]
    return [tuple(int(v) for v in coords) for coords in itertools.product(*per_axis)]


def model_class(shape, chunks, axes, coords):
    """``COVERED``, ``EDGE`` or ``PARTIAL``, from the definitions."""
    for ax, n, c, k in zip(axes, shape, chunks, coords):
        if not set(range(k * c, min((k + 1) * c, n))) <= set(axis_indices(ax).tolist()):
            return PARTIAL
    inside = all((k + 1) * c <= n for k, c, n in zip(coords, chunks, shape))
    return COVERED if inside else EDGE


def chunk_region(coords, shape, chunks):
    """The part of the array chunk ``coords`` holds (cut at the array's end)."""
    return tuple(slice(k * c, min((k + 1) * c, n)) for k, n, c in zip(coords, shape, chunks))


def padded_chunk(data, coords, chunks, pad):
    """Chunk ``coords`` of ``data``, its part past the array's end set to ``pad``."""
    out = np.full(chunks, pad, dtype=data.dtype)
    region = chunk_region(coords, data.shape, chunks)
    out[tuple(slice(0, r.stop - r.start) for r in region)] = data[region]
    return out


def covered_indices(plan):
    return np.flatnonzero(plan.classify() == COVERED).astype(np.int64)


@st.composite
def plan_cases(draw, max_dims=4):
    """``(shape, chunks, axes)``: a store-API selection of a small array,
    normalised, over a chunk grid (chunks need not divide the shape)."""
    shape = draw(strategies.shapes(max_dims=max_dims), label="shape")
    chunks = draw(strategies.chunk_shapes(shape), label="chunks")
    selection = draw(strategies.selections(shape), label="selection")
    return shape, chunks, normalize_selection(selection, shape).axes


FIXED_CASES = [
    ((10,), (3,), [(0, 1, 10)]),
    ((10,), (3,), [(2, 3, 3)]),
    ((10,), (3,), [(9, 1, 1)]),
    ((10,), (10,), [(0, 1, 10)]),
    ((10,), (4,), [np.array([9, 0, 5, 5, 1], dtype=np.int64)]),
    ((6, 7), (2, 3), [(1, 1, 4), np.array([6, 0, 3], dtype=np.int64)]),
    ((4, 5, 6), (4, 5, 6), [(0, 1, 4), (0, 1, 5), (0, 1, 6)]),
    ((4, 5, 6), (1, 1, 1), [(3, 1, 1), (0, 2, 3), (5, 1, 1)]),
    ((5, 5), (2, 2), [(0, 1, 0), (0, 1, 5)]),      # empty selection
    ((0, 3), (2, 2), [(0, 1, 0), (0, 1, 3)]),      # empty array
    ((), (), []),                                  # rank 0
]


def check_plan(shape, chunks, axes):
    plan = ChunkPlan(shape, chunks, axes)
    expected_chunks = model_chunks(chunks, axes)
    sel_shape = tuple(len(axis_indices(ax)) for ax in axes)
    assert plan.ndim == len(shape)
    assert plan.nchunks == len(expected_chunks)
    assert plan.selection_shape == sel_shape
    assert [plan.chunk_coords(i) for i in range(plan.nchunks)] == expected_chunks
    coords = np.full(plan.nchunks * plan.ndim, -1, dtype=np.int64)
    plan.coords_into(coords)
    assert coords.reshape(plan.nchunks, plan.ndim).tolist() == [list(c) for c in expected_chunks]
    classes = plan.classify()
    assert classes.dtype == np.uint8 and classes.shape == (plan.nchunks,)
    assert classes.tolist() == [model_class(shape, chunks, axes, c) for c in expected_chunks]
    assert plan.format_keys("g/a/c.", ".") == [
        "g/a/c." + ".".join(map(str, c)) for c in expected_chunks]

    rng = np.random.default_rng(1)
    data = rng.integers(0, 1000, shape).astype(np.int32)
    ix = numpy_index(axes)

    # gather: chunks -> selection, from chunk arrays and from their raw bytes
    out = np.full(sel_shape, -1, dtype=np.int32)
    out_raw = np.full(sel_shape, -1, dtype=np.int32)
    for i, coords in enumerate(expected_chunks):
        chunk = padded_chunk(data, coords, chunks, -99)
        plan.gather(i, chunk, out)
        plan.gather_raw(i, chunk.tobytes(), out_raw)
    np.testing.assert_array_equal(out, data[ix])
    np.testing.assert_array_equal(out_raw, data[ix])

    # scatter: selection -> chunks; as NumPy's assignment, the last duplicate wins
    value = rng.integers(1000, 2000, sel_shape).astype(np.int32)
    expected = data.copy()
    expected[ix] = value
    got = data.copy()
    for i, coords in enumerate(expected_chunks):
        chunk = padded_chunk(data, coords, chunks, -99)
        plan.scatter(i, value, chunk)
        region = chunk_region(coords, shape, chunks)
        inner = tuple(slice(0, r.stop - r.start) for r in region)
        got[region] = chunk[inner]
        pad = np.ones(chunks, dtype=bool)
        pad[inner] = False
        assert (chunk[pad] == -99).all()  # the part past the array is never written
    np.testing.assert_array_equal(got, expected)

    # Covered chunks straight to bytes; any other chunk is refused.
    for i, cls in enumerate(classes.tolist()):
        one = np.array([i], dtype=np.int64)
        if cls == COVERED:
            (raw,) = plan.scatter_many_to_bytes(one, value, config.get("walk_chunks"))
            region = chunk_region(expected_chunks[i], shape, chunks)
            assert type(raw) is bytes and raw == np.ascontiguousarray(expected[region]).tobytes()
        else:
            with pytest.raises(ValueError, match="not wholly covered"):
                plan.scatter_many_to_bytes(one, value, 1)


# ----------------------------------------------------------------------------------
# The plan: chunks, classes, keys
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", FIXED_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_plan_against_numpy(case):
    check_plan(*case)


@given(case=plan_cases())
def test_plans_of_any_selection_against_numpy(case):
    check_plan(*case)


def test_classify():
    # Chunks of 4 over length 10: chunk 2 holds only 2 elements of the array.
    cases = [
        ((0, 1, 10), [COVERED, COVERED, EDGE]),
        ((1, 1, 9), [PARTIAL, COVERED, EDGE]),
        ((0, 1, 9), [COVERED, COVERED, PARTIAL]),
        ((8, 1, 2), [EDGE]),
        ((0, 2, 5), [PARTIAL, PARTIAL, PARTIAL]),
        ((9, 1, 1), [PARTIAL]),
        # Integer lists: every element of the chunk, in any order, repeats allowed.
        (np.array([3, 2, 1, 0, 0, 9, 8], dtype=np.int64), [COVERED, EDGE]),
        (np.array([3, 2, 1, 9], dtype=np.int64), [PARTIAL, PARTIAL]),
    ]
    for ax, classes in cases:
        assert ChunkPlan((10,), (4,), [ax]).classify().tolist() == classes
    assert ChunkPlan((1,), (4,), [(0, 1, 1)]).classify().tolist() == [EDGE]
    # A step over chunks of one element covers each one.
    assert ChunkPlan((6,), (1,), [(1, 2, 3)]).classify().tolist() == [COVERED] * 3
    # Across axes: partial anywhere -> PARTIAL; else past the end anywhere -> EDGE.
    plan = ChunkPlan((8, 6), (4, 4), [(0, 1, 8), (1, 1, 5)])
    assert plan.classify().tolist() == [PARTIAL, EDGE, PARTIAL, EDGE]
    assert ChunkPlan((), (), []).classify().tolist() == [COVERED]
    assert ChunkPlan((5,), (2,), [(0, 1, 0)]).classify().tolist() == []


def test_the_classes_are_exported_by_both_modules():
    assert len({COVERED, EDGE, PARTIAL}) == 3
    assert (kernel.COVERED, kernel.EDGE, kernel.PARTIAL) == (COVERED, EDGE, PARTIAL)
    # classify() stores them in a uint8 array.
    assert all(0 <= c <= 255 for c in (COVERED, EDGE, PARTIAL))


def test_format_keys():
    plan = ChunkPlan((10, 10), (4, 5), [(3, 1, 3), np.array([9, 0], dtype=np.int64)])
    # Plan order is C order of the chunk coordinates, whatever the index order.
    assert plan.format_keys("g/a/c/", "/") == ["g/a/c/0/0", "g/a/c/0/1",
                                               "g/a/c/1/0", "g/a/c/1/1"]
    assert plan.format_keys("", ".") == ["0.0", "0.1", "1.0", "1.1"]
    assert ChunkPlan((30,), (3,), [(28, 1, 2)]).format_keys("x/", "/") == ["x/9"]
    # At rank 0 there are no coordinates to join: the head alone.
    assert ChunkPlan((), (), []).format_keys("a/c", "/") == ["a/c"]


def test_zero_dimensional_plan():
    plan = ChunkPlan((), (), [])
    assert plan.nchunks == 1 and plan.ndim == 0
    assert plan.chunk_coords(0) == ()
    assert plan.selection_shape == ()
    out = np.zeros((), dtype=np.float64)
    plan.gather(0, np.array(2.5), out)
    assert out[()] == 2.5
    plan.gather_raw(0, np.float64(-3.5).tobytes(), out, True)
    assert out[()] == -3.5
    chunk = np.zeros((), dtype=np.float64)
    plan.scatter(0, np.array(-1.0), chunk)
    assert chunk[()] == -1.0
    zero = np.zeros(1, dtype=np.int64)
    assert plan.scatter_many_to_bytes(zero, np.array(7.0), 64) == [np.float64(7).tobytes()]


@pytest.mark.parametrize("shape,chunks,axes", [
    ((10,), (3,), [(0, 1, 11)]),                          # past the end
    ((10,), (3,), [(8, 2, 2)]),                           # 8, 10: past the end
    ((10,), (3,), [(-1, 1, 1)]),
    ((10,), (3,), [(0, 0, 3)]),                           # step 0
    ((10,), (3,), [np.array([10], dtype=np.int64)]),
    ((10,), (3,), [np.array([-1], dtype=np.int64)]),
    ((10,), (0,), [(0, 1, 1)]),                           # zero chunk size
    ((-1,), (3,), [(0, 1, 0)]),                           # negative shape
    ((10, 10), (3,), [(0, 1, 1), (0, 1, 1)]),             # rank mismatch
    ((10,), (3,), [(0, 1, 1), (0, 1, 1)]),
    ((1,) * 65, (1,) * 65, [(0, 1, 1)] * 65),             # past the kernels' rank limit
])
def test_plan_rejects(shape, chunks, axes):
    with pytest.raises(ValueError):
        ChunkPlan(shape, chunks, axes)


def _readonly(shape, dtype=np.int32):
    a = np.zeros(shape, dtype=dtype)
    a.setflags(write=False)
    return a


def test_plan_rejects_bad_operands():
    plan = ChunkPlan((4, 4), (2, 2), [(0, 1, 4), (0, 1, 4)])
    out = np.zeros((4, 4), dtype=np.int32)
    chunk = np.zeros((2, 2), dtype=np.int32)
    with pytest.raises(IndexError):
        plan.gather(4, chunk, out)
    with pytest.raises(IndexError):
        plan.scatter(-1, out, chunk)
    with pytest.raises(IndexError):
        plan.chunk_coords(-1)
    with pytest.raises(IndexError):
        plan.chunk_coords(4)
    with pytest.raises(ValueError):
        plan.gather(0, np.zeros((2, 3), dtype=np.int32), out)        # not the chunk shape
    with pytest.raises(ValueError):
        plan.gather(0, chunk, np.zeros((4, 3), dtype=np.int32))      # not the selection shape
    with pytest.raises(ValueError):
        plan.gather(0, np.zeros((2, 2), dtype=np.int64), out)        # itemsize
    with pytest.raises(ValueError):
        plan.gather(0, np.zeros(4, dtype=np.int32), out)             # rank
    with pytest.raises((ValueError, BufferError)):
        plan.gather(0, chunk, _readonly((4, 4)))
    with pytest.raises((ValueError, BufferError)):
        plan.scatter(0, out, _readonly((2, 2)))
    with pytest.raises(ValueError, match="must hold 8 values"):
        plan.coords_into(np.zeros(7, dtype=np.int64))


def test_plan_is_reusable():
    plan = ChunkPlan((8,), (3,), [(1, 2, 4)])
    a = np.arange(8, dtype=np.int8)
    for _ in range(3):
        out = np.zeros(4, dtype=np.int8)
        for i in range(plan.nchunks):
            plan.gather(i, padded_chunk(a, plan.chunk_coords(i), (3,), 0), out)
        np.testing.assert_array_equal(out, a[1::2])


# ----------------------------------------------------------------------------------
# Copies between chunks and selections
# ----------------------------------------------------------------------------------

def test_raw_routes_check_sizes_and_take_strided_values():
    data = np.arange(24, dtype=np.float64).reshape(4, 6)
    plan = ChunkPlan((4, 6), (2, 3), [(0, 1, 4), (0, 2, 3)])   # every other column
    out = np.zeros((4, 3), dtype=np.float64)
    with pytest.raises(ValueError, match="a chunk holds 48 bytes"):
        plan.gather_raw(0, b"\0" * 47, out)
    with pytest.raises(IndexError):
        plan.gather_raw(4, b"\0" * 48, out)
    for i, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        plan.gather_raw(i, data[2 * r:2 * r + 2, 3 * c:3 * c + 3].tobytes(), out)
    np.testing.assert_array_equal(out, data[:, ::2])
    full = ChunkPlan((4, 6), (2, 3), [(0, 1, 4), (0, 1, 6)])
    three = np.array([3], dtype=np.int64)
    for value in (np.asfortranarray(data), data[::-1, ::-1].copy()[::-1, ::-1]):
        assert full.scatter_many_to_bytes(three, value, 64) == [data[2:, 3:].tobytes()]


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32", "float64", "complex128",
                                   "S3", "V5"])
def test_gather_scatter_every_itemsize(dtype):
    shape, chunks = (7, 9), (3, 4)
    rng = np.random.default_rng(0)
    data = np.frombuffer(rng.bytes(63 * np.dtype(dtype).itemsize), dtype=dtype).reshape(shape)
    axes = [(1, 2, 3), np.array([8, 0, 4, 5], dtype=np.int64)]
    plan = ChunkPlan(shape, chunks, axes)
    out = np.zeros((3, 4), dtype=dtype)
    value = np.frombuffer(rng.bytes(12 * np.dtype(dtype).itemsize), dtype=dtype).reshape(3, 4)
    written = data.copy()
    for i in range(plan.nchunks):
        coords = plan.chunk_coords(i)
        chunk = padded_chunk(data, coords, chunks, data.flat[0])
        plan.gather(i, chunk, out)
        plan.scatter(i, value, chunk)
        region = chunk_region(coords, shape, chunks)
        written[region] = chunk[tuple(slice(0, r.stop - r.start) for r in region)]
    assert out.tobytes() == np.ascontiguousarray(data[numpy_index(axes)]).tobytes()
    expected = data.copy()
    expected[numpy_index(axes)] = value
    assert written.tobytes() == expected.tobytes()


def test_gather_from_strided_and_broadcast_chunks():
    shape, chunks = (6, 8), (3, 4)
    data = np.arange(48, dtype=np.int64).reshape(shape)
    plan = ChunkPlan(shape, chunks, [(0, 1, 6), (0, 1, 8)])
    out = np.empty(shape, dtype=np.int64)
    for i in range(plan.nchunks):
        stored = np.ascontiguousarray(data[chunk_region(plan.chunk_coords(i), shape, chunks)].T)
        plan.gather(i, stored.T, out)       # a transposed (non-contiguous) view
    np.testing.assert_array_equal(out, data)
    fill = np.broadcast_to(np.array(-5, dtype=np.int64), chunks)   # zero strides
    for i in range(plan.nchunks):
        plan.gather(i, fill, out)
    assert (out == -5).all()


def test_scatter_from_broadcast_value():
    plan = ChunkPlan((4, 4), (2, 2), [(0, 1, 4), (1, 1, 2)])
    value = np.broadcast_to(np.array(7, dtype=np.int16), (4, 2))
    chunks = [np.zeros((2, 2), dtype=np.int16) for _ in range(plan.nchunks)]
    for i, c in enumerate(chunks):
        plan.scatter(i, value, c)
    assert [plan.chunk_coords(i) for i in range(plan.nchunks)] == [(0, 0), (0, 1),
                                                                    (1, 0), (1, 1)]
    for c in chunks[0::2]:
        np.testing.assert_array_equal(c, [[0, 7], [0, 7]])
    for c in chunks[1::2]:
        np.testing.assert_array_equal(c, [[7, 0], [7, 0]])


# ----------------------------------------------------------------------------------
# gather_many: a batch of stored chunks into the output
# ----------------------------------------------------------------------------------

def zstd_frames(chunks):
    ctx = zstd.ZstdContext(1, False)
    frames = []
    for c in chunks:
        raw = np.ascontiguousarray(c).tobytes()
        out = bytearray(ctx.bound(len(raw)))
        frames.append(bytes(out[:ctx.compress_into(raw, out)]))
    return frames


CODECS = ["raw", pytest.param("zstd", marks=needs_zstd)]


def batch_sources(codec, chunks, nbytes):
    """``(sources, codec, scratch)`` for ``gather_many`` of chunk arrays
    ``chunks`` of ``nbytes`` each."""
    if codec == "raw":
        return [c.tobytes() for c in chunks], None, None
    return zstd_frames(chunks), zstd.ZstdContext(1, False), bytearray(nbytes)


@pytest.mark.parametrize("codec", CODECS)
@given(case=plan_cases(max_dims=3), stream=st.booleans(), data=st.data())
def test_gather_many_matches_numpy(codec, case, stream, data):
    shape, chunks, axes = case
    plan = ChunkPlan(shape, chunks, axes)
    values = np.random.default_rng(2).integers(0, 1 << 30, shape).astype(np.int32)
    stored = [padded_chunk(values, plan.chunk_coords(i), chunks, -1)
              for i in range(plan.nchunks)]
    # Any order, and in several calls: each chunk lands where it belongs.
    order = data.draw(st.permutations(range(plan.nchunks)), label="order")
    cut = data.draw(st.integers(0, plan.nchunks), label="cut")
    out = np.full(plan.selection_shape, -7, dtype=np.int32)
    for batch in (order[:cut], order[cut:]):
        sources, ctx, scratch = batch_sources(codec, [stored[i] for i in batch],
                                              int(np.prod(chunks)) * 4)
        assert plan.gather_many(np.array(batch, dtype=np.int64), sources, out, ctx, scratch,
                                stream) == -1
    np.testing.assert_array_equal(out, values[numpy_index(axes)])


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("refused", ["short", "long", "garbage"])
def test_gather_many_stops_at_the_first_refused_source(codec, refused):
    shape, chunks = (8, 12), (4, 3)
    data = np.arange(96, dtype=np.int16).reshape(shape)
    plan = ChunkPlan(shape, chunks, [(0, 1, 8), (0, 1, 12)])
    stored = [padded_chunk(data, plan.chunk_coords(i), chunks, 0) for i in range(8)]
    sources, ctx, scratch = batch_sources(codec, stored, stored[0].nbytes)
    # Chunk 5 is given as the 3rd source: not one chunk's bytes, or not decodable.
    bad = {"short": stored[5].tobytes()[:-2], "long": stored[5].tobytes() + b"\0\0",
           "garbage": b"\x28\xb5\x2f\xfd not a frame"}[refused]
    indices = np.array([2, 7, 5, 0, 1], dtype=np.int64)
    batch = [sources[2], sources[7], bad, sources[0], sources[1]]
    if codec == "zstd" and refused != "garbage":
        (batch[2],) = zstd_frames([np.frombuffer(bad, dtype=np.uint8)])
    out = np.full(shape, -1, dtype=np.int16)
    assert plan.gather_many(indices, batch, out, ctx, scratch) == 2
    expected = np.full(shape, -1, dtype=np.int16)
    for i in (2, 7):  # the chunks before it are written; it and those after it are not
        region = chunk_region(plan.chunk_coords(i), shape, chunks)
        expected[region] = data[region]
    np.testing.assert_array_equal(out, expected)
    assert plan.gather_many(indices[:0], [], out, ctx, scratch) == -1


def test_contiguous_offset_finds_chunks_that_lie_as_one_run():
    # Chunks of whole rows lie in a C-ordered output as one run each.
    plan = ChunkPlan((8, 6), (2, 6), [(0, 1, 8), (0, 1, 6)])
    out = np.empty((8, 6), dtype=np.float32)
    assert [plan.contiguous_offset(i, out) for i in range(4)] == [0, 48, 96, 144]
    # Not when the selection starts inside the chunk, steps, or picks indices;
    # not for an edge chunk (it is partly outside the array).
    for axes, shape in [([(1, 1, 7), (0, 1, 6)], (7, 6)), ([(0, 2, 4), (0, 1, 6)], (4, 6)),
                        ([np.arange(8, dtype=np.int64), (0, 1, 6)], (8, 6))]:
        plan = ChunkPlan((8, 6), (2, 6), axes)
        assert plan.contiguous_offset(0, np.empty(shape, "f4")) == -1
    # Rows 1..7: the last chunk (rows 6 and 7) is whole, from row 5 of the output.
    plan = ChunkPlan((8, 6), (2, 6), [(1, 1, 7), (0, 1, 6)])
    assert plan.contiguous_offset(3, np.empty((7, 6), "f4")) == 5 * 6 * 4
    assert ChunkPlan((7, 6), (2, 6), [(0, 1, 7), (0, 1, 6)]).contiguous_offset(
        3, np.empty((7, 6), "f4")) == -1
    # Not when the output's rows are not packed (a view with a step, a column cut).
    plan = ChunkPlan((8, 6), (2, 6), [(0, 1, 8), (0, 1, 6)])
    assert plan.contiguous_offset(1, np.empty((8, 12), "f4")[:, ::2]) == -1
    assert plan.contiguous_offset(1, np.empty((8, 6), "f4", order="F")) == -1
    # Axes of length 1 in the chunk may have any stride.
    plan = ChunkPlan((4, 3, 5), (1, 3, 5), [(0, 1, 4), (0, 1, 3), (0, 1, 5)])
    assert plan.contiguous_offset(2, np.empty((4, 3, 5), "i2")) == 2 * 30
    # A chunk narrower than the output's rows is not one run.
    plan = ChunkPlan((4, 6), (2, 3), [(0, 1, 4), (0, 1, 6)])
    assert all(plan.contiguous_offset(i, np.empty((4, 6), "u1")) == -1 for i in range(4))


@needs_zstd
def test_gather_many_decodes_chunks_of_whole_rows_in_place():
    shape, chunks = (8, 6), (2, 6)
    data = np.arange(48, dtype=np.int32).reshape(shape)
    plan = ChunkPlan(shape, chunks, [(0, 1, 8), (0, 1, 6)])
    frames = zstd_frames([data[2 * i:2 * i + 2] for i in range(4)])
    scratch = bytearray(48)
    out = np.full(shape, -1, dtype=np.int32)
    assert plan.gather_many(np.arange(4, dtype=np.int64), frames, out,
                            zstd.ZstdContext(1, False), scratch) == -1
    np.testing.assert_array_equal(out, data)
    assert scratch == bytearray(48)   # every chunk went straight to its place
    # A frame that holds too much is refused; the chunks before it are in place.
    out[:] = -1
    (long,) = zstd_frames([np.arange(13, dtype=np.int32)])
    assert plan.gather_many(np.arange(4, dtype=np.int64), frames[:2] + [long, frames[3]], out,
                            zstd.ZstdContext(1, False), scratch) == 2
    np.testing.assert_array_equal(out[:4], data[:4])
    np.testing.assert_array_equal(out[6:], -1)


@pytest.mark.parametrize("codec", CODECS)
def test_gather_many_checks_its_arguments(codec):
    plan = ChunkPlan((4, 4), (2, 2), [(0, 1, 4), (0, 1, 4)])
    chunk = np.arange(4, dtype=np.int32).reshape(2, 2)
    sources, ctx, scratch = batch_sources(codec, [chunk, chunk], chunk.nbytes)
    out = np.zeros((4, 4), dtype=np.int32)
    two = np.array([0, 1], dtype=np.int64)
    with pytest.raises(ValueError, match="2 chunk indices but 1 sources"):
        plan.gather_many(two, sources[:1], out, ctx, scratch)
    with pytest.raises(IndexError):
        plan.gather_many(np.array([0, 4], dtype=np.int64), sources, out, ctx, scratch)
    with pytest.raises(ValueError):
        plan.gather_many(two, sources, np.zeros((4, 3), dtype=np.int32), ctx, scratch)
    with pytest.raises((ValueError, BufferError)):
        plan.gather_many(two, sources, _readonly((4, 4)), ctx, scratch)
    with pytest.raises(TypeError):
        plan.gather_many(two, [sources[0], None], out, ctx, scratch)
    with pytest.raises(ValueError):  # indices must be int64
        plan.gather_many(two.astype(np.int32), sources, out, ctx, scratch)
    if ctx is not None:
        with pytest.raises(ValueError, match="scratch holds 15 bytes"):
            plan.gather_many(two, sources, out, ctx, bytearray(15))
        with pytest.raises(TypeError):
            plan.gather_many(two, sources, out, ctx, None)
        with pytest.raises((TypeError, BufferError)):
            plan.gather_many(two, sources, out, ctx, bytes(16))  # read-only scratch
    assert (out == 0).all()  # a refused call writes nothing


# ----------------------------------------------------------------------------------
# scatter_many: covered chunks from the value, with the row walk or chunk by chunk
# ----------------------------------------------------------------------------------

WALKS = [0, 1, 3, 64]


def laid_out(value, layout):
    """``value`` in one of several memory layouts (the same elements, except
    that the broadcast layouts repeat the first row or the first column)."""
    if value.ndim == 0 or layout == "c":
        return value.copy()  # C order (ascontiguousarray would make a 0-d array 1-d)
    if layout == "fortran":          # transposed: the last axis is not contiguous
        return np.asfortranarray(value)
    if layout == "strided":          # every other element of a wider array
        wide = np.zeros(value.shape[:-1] + (2 * value.shape[-1],), dtype=value.dtype)
        wide[..., ::2] = value
        return wide[..., ::2]
    if layout == "reversed":         # negative strides on the last axis
        return np.ascontiguousarray(value[..., ::-1])[..., ::-1]
    if layout == "rows reversed":    # negative strides on the first axis, rows contiguous
        return np.ascontiguousarray(value[::-1])[::-1]
    if layout == "padded rows":      # rows contiguous and apart: outer strides not C order
        padded = np.zeros(value.shape[:-1] + (value.shape[-1] + 3,), dtype=value.dtype)
        view = padded[..., 1:1 + value.shape[-1]]
        view[...] = value
        return view
    if layout == "broadcast rows":   # zero stride on the first axis
        return np.broadcast_to(value[:1], value.shape)
    assert layout == "broadcast last"
    return np.broadcast_to(value[..., :1], value.shape)


LAYOUTS = ["c", "fortran", "strided", "reversed", "rows reversed", "padded rows",
           "broadcast rows", "broadcast last"]


@st.composite
def covering_axis(draw, chunk):
    """``(shape, axis, count)`` of an axis with chunks of ``chunk`` and a
    selection covering ``count`` whole chunks of it: a step-1 slice, an index
    array (each chunk's elements in any order, some repeated, the chunks in
    any order) or, over chunks of one element, a slice of step 2 or 3."""
    first = draw(st.integers(0, 2), label="first chunk")
    count = draw(st.integers(1, 4), label="chunks")
    extra = draw(st.integers(0, 3), label="past the last chunk")
    kinds = ["slice", "index array"] + (["step"] if chunk == 1 else [])
    kind = draw(st.sampled_from(kinds), label="axis kind")
    if kind == "step":
        step = draw(st.integers(2, 3))
        return first + (count - 1) * step + 1 + extra, (first, step, count), count
    shape = (first + count) * chunk + extra
    start = first * chunk
    if kind == "slice":
        return shape, (start, 1, count * chunk), count
    blocks = []
    for c in draw(st.permutations(range(first, first + count))):
        block = draw(st.permutations(range(c * chunk, (c + 1) * chunk)))
        repeats = draw(st.lists(st.sampled_from(block), max_size=2))
        blocks.append(list(block) + repeats)
    return shape, np.array([i for b in blocks for i in b], dtype=np.int64), count


@settings(max_examples=100)
@given(data=st.data())
def test_scatter_many_equals_each_chunk_copied_alone(data):
    """Covered chunks copied in one call hold what ``scatter`` makes of each
    alone and what NumPy cuts out of the array the value was written to,
    however the value lies in memory and whatever the walk size: row by row
    across chunks where the value's rows are contiguous and every axis is a
    step-1 slice, chunk by chunk otherwise."""
    ndim = data.draw(st.integers(0, 4), label="ndim")
    chunks = tuple(data.draw(st.integers(1, 5), label="chunk") for _ in range(ndim))
    shape, axes, counts = [], [], []
    for c in chunks:
        n, ax, count = data.draw(covering_axis(c))
        shape.append(n)
        axes.append(ax)
        counts.append(count)
    shape = tuple(shape)
    plan = ChunkPlan(shape, chunks, axes)
    assert plan.classify().tolist() == [COVERED] * int(np.prod(counts))
    dtype = np.dtype(data.draw(st.sampled_from(["u1", "<i2", "<f4", "<f8", "<c16", "S3"])))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    raw = rng.integers(0, 256, int(np.prod(plan.selection_shape)) * dtype.itemsize,
                       dtype=np.uint8)
    value = laid_out(raw.view(dtype).reshape(plan.selection_shape),
                     data.draw(st.sampled_from(LAYOUTS), label="layout"))
    full = np.zeros(shape, dtype=dtype)
    full[numpy_index(axes)] = value

    every = list(range(plan.nchunks))
    picked = data.draw(st.permutations(every), label="order")[:data.draw(
        st.integers(0, plan.nchunks), label="how many")]
    indices = np.array(picked, dtype=np.int64)
    walk = data.draw(st.sampled_from(WALKS), label="walk_chunks")
    nbytes = int(np.prod(chunks)) * dtype.itemsize
    # The destination at any offset into a cache line, with guard bytes on both sides.
    offset = data.draw(st.integers(0, 63), label="dest offset")
    end = offset + len(picked) * nbytes
    backing = bytearray(b"\xee" * (end + 8))
    dest = memoryview(backing)[offset:end]
    plan.scatter_many(indices, value, dest, walk)
    assert backing[:offset] == b"\xee" * offset and backing[end:] == b"\xee" * 8
    to_bytes = plan.scatter_many_to_bytes(indices, value, walk)
    assert len(to_bytes) == len(picked)
    for k, i in enumerate(picked):
        alone = np.empty(chunks, dtype=dtype)
        plan.scatter(i, value, alone)
        expected = full[chunk_region(plan.chunk_coords(i), shape, chunks)].tobytes()
        assert alone.tobytes() == expected
        assert type(to_bytes[k]) is bytes and to_bytes[k] == expected
        assert bytes(dest[k * nbytes:(k + 1) * nbytes]) == expected


@pytest.mark.parametrize("walk", WALKS + [1000])
@pytest.mark.parametrize("layout", ["c", "rows reversed", "fortran"])
def test_scatter_many_of_more_chunks_than_one_walk(walk, layout):
    """280 chunks: past the 64 walked together, with an uneven last group."""
    full = laid_out(np.random.default_rng(1).random((12, 70 * 4), dtype=np.float32), layout)
    plan = ChunkPlan(full.shape, (3, 4), [(0, 1, 12), (0, 1, 280)])
    indices = covered_indices(plan)[::-1].copy()
    assert len(indices) == 280
    dest = bytearray(280 * 48)
    plan.scatter_many(indices, full, dest, walk)
    chunks = plan.scatter_many_to_bytes(indices, full, walk)
    for k, i in enumerate(indices.tolist()):
        a, b = plan.chunk_coords(i)
        expected = full[3 * a:3 * a + 3, 4 * b:4 * b + 4].tobytes()
        assert chunks[k] == expected and dest[k * 48:(k + 1) * 48] == expected


def test_scatter_many_refuses_chunks_not_covered():
    # Chunks of 4 over 10 x 10, selection 0:10 x 1:10: covered, edge and partial chunks.
    plan = ChunkPlan((10, 10), (4, 4), [(0, 1, 10), (1, 1, 9)])
    classes = plan.classify()
    assert set(classes.tolist()) == {COVERED, EDGE, PARTIAL}
    value = np.ones((10, 9), dtype=np.int32)
    first_covered = int(covered_indices(plan)[0])
    for i in np.flatnonzero(classes != COVERED).tolist():
        indices = np.array([first_covered, i], dtype=np.int64)
        dest = bytearray(2 * 64)
        for walk in (0, 64):
            with pytest.raises(ValueError, match=f"chunk {i} is not wholly covered"):
                plan.scatter_many(indices, value, dest, walk)
            with pytest.raises(ValueError, match=f"chunk {i} is not wholly covered"):
                plan.scatter_many_to_bytes(indices, value, walk)
        assert dest == bytearray(2 * 64)  # refused before anything is copied


def test_scatter_many_checks_its_arguments():
    plan = ChunkPlan((4, 4), (2, 2), [(0, 1, 4), (0, 1, 4)])
    value = np.arange(16, dtype=np.int32).reshape(4, 4)
    two = np.array([0, 3], dtype=np.int64)
    with pytest.raises(ValueError, match="dest holds 31 bytes, 2 chunks 32"):
        plan.scatter_many(two, value, bytearray(31), 1)
    with pytest.raises(ValueError, match="dest holds 33 bytes"):
        plan.scatter_many(two, value, bytearray(33), 1)
    with pytest.raises((TypeError, BufferError)):
        plan.scatter_many(two, value, bytes(32), 1)              # read-only
    with pytest.raises(IndexError):
        plan.scatter_many(np.array([4], dtype=np.int64), value, bytearray(16), 1)
    with pytest.raises(IndexError):
        plan.scatter_many_to_bytes(np.array([-1], dtype=np.int64), value, 1)
    with pytest.raises(ValueError):
        plan.scatter_many_to_bytes(two, value[:3], 1)            # not the selection shape
    with pytest.raises(ValueError):
        plan.scatter_many_to_bytes(two, value.reshape(16), 1)    # rank
    with pytest.raises(ValueError):
        plan.scatter_many_to_bytes(two.astype(np.int32), value, 1)
    empty = np.zeros(0, dtype=np.int64)
    assert plan.scatter_many_to_bytes(empty, value, 64) == []
    plan.scatter_many(empty, value, bytearray(0), 64)


# ----------------------------------------------------------------------------------
# Streamed gathers (non-temporal stores)
# ----------------------------------------------------------------------------------

def misaligned_empty(shape, dtype):
    """An array whose data starts 16 bytes past a cache line."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    base = memory.empty((n + 64,), np.uint8)
    return base[16:16 + n].view(dtype).reshape(shape)


ALLOCATORS = {"aligned": memory.empty, "misaligned": misaligned_empty, "numpy": np.empty}


def gather_all(plan, stored, out, route, stream):
    """Every chunk of ``plan`` from ``stored`` (chunk arrays) into ``out`` by ``route``."""
    if route == "gather":
        for i, chunk in enumerate(stored):
            plan.gather(i, chunk, out, stream)
    elif route == "gather_raw":
        for i, chunk in enumerate(stored):
            plan.gather_raw(i, chunk.tobytes(), out, stream)
    else:
        sources, ctx, scratch = batch_sources(route.split()[1], stored, stored[0].nbytes)
        indices = np.arange(plan.nchunks, dtype=np.int64)
        assert plan.gather_many(indices, sources, out, ctx, scratch, stream) == -1


ROUTES = ["gather", "gather_raw", "gather_many raw",
          pytest.param("gather_many zstd", marks=needs_zstd)]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("alloc", ALLOCATORS)
@pytest.mark.parametrize("chunks", [(4, 16), (3, 32), (4, 10), (2, 7)],
                         ids=["rows of 64 B", "rows of 128 B", "rows of 40 B", "rows of 28 B"])
@pytest.mark.parametrize("axes", [[(0, 1, 12), (0, 1, 64)],     # all: rows on cache lines
                                  [(1, 1, 10), (16, 1, 48)],    # offset by one line
                                  [(0, 1, 12), (3, 1, 60)],     # offset within a line
                                  [(0, 2, 6), (0, 2, 32)]],     # strided
                         ids=["all", "line offset", "odd offset", "strided"])
def test_streamed_gathers_equal_plain_ones(route, alloc, chunks, axes):
    shape = (12, 64)  # float32: rows of 256 bytes
    data = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    plan = ChunkPlan(shape, chunks, axes)
    stored = [padded_chunk(data, plan.chunk_coords(i), chunks, np.float32(-1))
              for i in range(plan.nchunks)]
    streamed = ALLOCATORS[alloc](plan.selection_shape, np.float32)
    plain = np.empty(plan.selection_shape, np.float32)
    gather_all(plan, stored, streamed, route, True)
    gather_all(plan, stored, plain, route, False)
    np.testing.assert_array_equal(streamed, plain)
    np.testing.assert_array_equal(streamed, data[numpy_index(axes)])


@pytest.mark.parametrize("chunks", [(16, 16, 64), (16, 16, 50), (7, 9, 128), (80, 64, 1)])
@pytest.mark.parametrize("selection", ["all", "strided", "offset"])
@pytest.mark.parametrize("alloc", ["aligned", "misaligned"])
def test_gathers_into_large_outputs_match_numpy(chunks, selection, alloc):
    # Outputs as large as the pipeline streams into: streamed where the runs
    # cover whole cache lines (aligned output, 256-byte rows), copied plainly
    # everywhere else; every byte must land either way.
    shape = (80, 64, 256)
    data = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    axes = {"all": [(0, 1, 80), (0, 1, 64), (0, 1, 256)],
            "strided": [(0, 1, 80), (1, 3, 21), (0, 2, 128)],
            "offset": [(3, 1, 77), (0, 1, 64), (16, 1, 240)]}[selection]
    plan = ChunkPlan(shape, chunks, axes)
    out = ALLOCATORS[alloc](plan.selection_shape, np.float32)
    out_raw = ALLOCATORS[alloc](plan.selection_shape, np.float32)
    if selection == "all":
        assert out.nbytes >= config.DEFAULTS["stream_min_bytes"]
    for i in range(plan.nchunks):
        chunk = padded_chunk(data, plan.chunk_coords(i), chunks, np.float32(-1))
        plan.gather(i, chunk, out, True)
        plan.gather_raw(i, chunk.tobytes(), out_raw, True)
    np.testing.assert_array_equal(out, data[numpy_index(axes)])
    np.testing.assert_array_equal(out_raw, data[numpy_index(axes)])


# ----------------------------------------------------------------------------------
# Chunk key encoding
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,separator,coords,key", [
    ("default", "/", (1, 2), "c/1/2"),
    ("default", ".", (1, 2), "c.1.2"),
    ("default", "/", (0,), "c/0"),
    ("default", "/", (), "c"),
    ("default", ".", (), "c"),
    ("v2", ".", (1, 2), "1.2"),
    ("v2", "/", (1, 2), "1/2"),
    ("v2", ".", (12,), "12"),
    ("v2", ".", (), "0"),
    ("v2", "/", (), "0"),
])
def test_chunk_keys_follow_the_spec(name, separator, coords, key):
    encoding = ChunkKeyEncoding(name, separator)
    assert encoding.key("g/a/", coords) == "g/a/" + key
    assert encoding.key("", coords) == key
    assert encoding.coords("g/a/", "g/a/" + key, len(coords)) == coords


def test_chunk_key_encoding_defaults_and_rejects():
    assert ChunkKeyEncoding().key("", (3, 4)) == "c/3/4"
    assert ChunkKeyEncoding("v2").key("", (3, 4)) == "3.4"
    for args in [("v3",), ("default", "-"), ("v2", "")]:
        with pytest.raises(ParseError):
            ChunkKeyEncoding(*args)


@given(encoding=strategies.chunk_key_encodings(),
       coords=st.lists(st.integers(0, 10 ** 12), max_size=5).map(tuple),
       prefix=st.sampled_from(["", "a/", "g/arr/", "c/"]))
def test_coords_invert_keys(encoding, coords, prefix):
    name, separator = encoding
    enc = ChunkKeyEncoding(name, separator)
    key = enc.key(prefix, coords)
    assert key == prefix + strategies.chunk_key(coords, name, separator)
    assert enc.coords(prefix, key, len(coords)) == coords
    if coords or name == "default":  # v2's rank-0 key "0" is chunk (0,)'s at rank 1 too
        assert enc.coords(prefix, key, len(coords) + 1) is None


@given(case=plan_cases(), encoding=strategies.chunk_key_encodings())
def test_keys_of_a_plan_are_the_keys_of_its_chunks(case, encoding):
    plan = ChunkPlan(*case)
    enc = ChunkKeyEncoding(*encoding)
    assert enc.keys("g/a/", plan) == [enc.key("g/a/", plan.chunk_coords(i))
                                      for i in range(plan.nchunks)]


@pytest.mark.parametrize("name,separator,key,ndim", [
    ("default", "/", "b/c/1/2", 2),       # another prefix
    ("default", "/", "a/1/2", 2),         # no "c"
    ("default", "/", "a/c.1.2", 2),       # the other separator
    ("default", "/", "a/c/1", 2),         # too few coordinates
    ("default", "/", "a/c/1/2/3", 2),     # too many
    ("default", "/", "a/c/1/", 1),        # an empty coordinate
    ("default", "/", "a/c//1", 2),
    ("default", "/", "a/c/-1/2", 2),      # negative
    ("default", "/", "a/c/1/x", 2),
    ("default", "/", "a/c/1/+2", 2),
    ("default", "/", "a/c/1/\u0663", 2),  # a digit, but not an ASCII one
    ("default", "/", "a/c/0", 0),         # rank 0 is "c" alone
    ("default", "/", "a/zarr.json", 0),
    ("default", ".", "a/c", 1),
    ("v2", ".", "a/c.1.2", 2),            # a default key
    ("v2", ".", "a/1/2", 2),
    ("v2", ".", "a/1.2.", 2),
    ("v2", ".", "a/c", 0),                # rank 0 is "0"
    ("v2", ".", "a/zarr.json", 1),
])
def test_coords_reject_what_is_not_a_chunk_key(name, separator, key, ndim):
    assert ChunkKeyEncoding(name, separator).coords("a/", key, ndim) is None


# ----------------------------------------------------------------------------------
# Selections
# ----------------------------------------------------------------------------------

@given(shape=strategies.shapes(max_dims=3), data=st.data())
def test_normalize_selection_matches_numpy(shape, data):
    selection = data.draw(strategies.selections(shape), label="selection")
    sel = normalize_selection(selection, shape)
    index, out_shape = strategies.orthogonal_index(selection, shape)
    assert sel.out_shape == out_shape
    assert sel.full_shape == tuple(len(i) for i in index)
    assert len(sel.axes) == len(shape)
    for ax, expected, n in zip(sel.axes, index, shape):
        if isinstance(ax, tuple):
            start, step, count = ax
            assert step >= 1 and count >= 0
            assert start == 0 if count == 0 else 0 <= start + (count - 1) * step < n
        else:
            assert ax.dtype == np.int64 and ax.ndim == 1 and ax.flags.c_contiguous
        np.testing.assert_array_equal(axis_indices(ax), expected)


def _any_slices(n):
    bound = st.none() | st.integers(-2 * n - 3, 2 * n + 3)
    return st.builds(slice, bound, bound, st.none() | st.integers(1, n + 2))


@given(n=st.integers(0, 12), data=st.data())
def test_slices_clip_as_numpy_or_raise_when_out_of_bounds(n, data):
    s = data.draw(_any_slices(n), label="slice")
    expected = np.arange(n)[s]
    (clipped,) = normalize_selection((s,), (n,), clip=True).axes
    np.testing.assert_array_equal(axis_indices(clipped), expected)
    if all(b is None or -n <= b <= n for b in (s.start, s.stop)):
        (strict,) = normalize_selection((s,), (n,)).axes
        assert strict == clipped
    else:
        with pytest.raises(InvalidArraySlice, match="out of bounds"):
            normalize_selection((s,), (n,))


@pytest.mark.parametrize("selection,ndim,expected", [
    (0, 3, (0, slice(None), slice(None))),
    ((), 2, (slice(None), slice(None))),
    ((Ellipsis, 1), 3, (slice(None), slice(None), 1)),
    ((1, Ellipsis, 2), 3, (1, slice(None), 2)),
    ((1, Ellipsis, 2, 3), 3, (1, 2, 3)),       # an Ellipsis standing for no axis
    (Ellipsis, 0, ()),
    ((Ellipsis,), 2, (slice(None), slice(None))),
])
def test_expand_selection(selection, ndim, expected):
    assert expand_selection(selection, ndim) == expected


def test_a_list_or_nested_tuple_selects_one_axis():
    assert expand_selection([0, 1], 2)[1] == slice(None)
    sel = normalize_selection(((3, 0), slice(None)), (4, 5))
    assert sel.out_shape == (2, 5)
    np.testing.assert_array_equal(sel.axes[0], [3, 0])
    sel = normalize_selection((np.uint8(2), range(4, 1, -1)), (4, 5))
    assert sel.out_shape == (3,)
    assert sel.axes[0] == (2, 1, 1)
    np.testing.assert_array_equal(sel.axes[1], [4, 3, 2])
    # NumPy integers as slice bounds and steps
    assert normalize_selection(slice(np.int64(1), np.int32(9), np.int16(4)), (10,)).axes == [
        (1, 4, 2)]


@pytest.mark.parametrize("selection", [
    np.array([True, False]),                 # a mask of the wrong length
    (slice(None), [True] * 13),
    np.ones((10, 12), dtype=bool),           # a 2-D mask
    True, np.bool_(False), (0, True),        # booleans are not indices
    slice(0, 5, 1.5), slice(0, 5, "1"),      # a step that is no integer
    ["a", "b"], np.array([1, 2], dtype=object),
    {0, 1}, 1j,
    range(5, 15),                            # out of bounds, from a range
])
def test_bad_selections_raise_invalid_array_slice(selection):
    with pytest.raises(InvalidArraySlice):
        normalize_selection(selection, (10, 12))


def test_clipping_never_lets_an_index_out_of_bounds():
    for selection in (10, -11, (0, [12]), (0, [-13])):
        with pytest.raises(InvalidArraySlice, match="out of bounds"):
            normalize_selection(selection, (10, 12), clip=True)


# ----------------------------------------------------------------------------------
# ElementPlan: elements that are references
# ----------------------------------------------------------------------------------

def element_data(kind, shape, start):
    values = [f"v{start + k}" * (k % 3) for k in range(int(np.prod(shape)))]
    if kind == "object":
        out = np.empty(len(values), dtype=object)
        out[:] = [v.encode() for v in values]
        return out.reshape(shape)
    return np.array(values, dtype=np.dtypes.StringDType()).reshape(shape)


@pytest.mark.parametrize("kind", ["object", "string"])
@given(case=plan_cases(max_dims=3))
def test_element_plans_move_elements_as_numpy(kind, case):
    shape, chunks, axes = case
    data = element_data(kind, shape, 0)
    plan = ElementPlan(ChunkPlan(shape, chunks, axes))
    pad = b"pad" if kind == "object" else "pad"
    ix = numpy_index(axes)
    out = element_data(kind, plan.selection_shape, 10 ** 6)
    for i in range(plan.nchunks):
        plan.gather(i, padded_chunk(data, plan.chunk_coords(i), chunks, pad), out)
    np.testing.assert_array_equal(out, data[ix])
    value = element_data(kind, plan.selection_shape, 10 ** 6)
    expected = data.copy()
    expected[ix] = value
    got = data.copy()
    for i in range(plan.nchunks):
        coords = plan.chunk_coords(i)
        chunk = padded_chunk(data, coords, chunks, pad)
        plan.scatter(i, value, chunk)
        region = chunk_region(coords, shape, chunks)
        got[region] = chunk[tuple(slice(0, r.stop - r.start) for r in region)]
    np.testing.assert_array_equal(got, expected)
    # Everything but the copies is the wrapped plan's.
    assert plan.classify().tolist() == plan.plan.classify().tolist()
    assert plan.nchunks == plan.plan.nchunks


def test_a_selection_plans_element_copies_for_references():
    sel = normalize_selection((slice(1, 5), [2, 0]), (6, 3))
    assert isinstance(sel.plan((6, 3), (2, 2)), ChunkPlan)
    element_plan = sel.plan((6, 3), (2, 2), elements=True)
    assert isinstance(element_plan, ElementPlan)
    assert element_plan.selection_shape == (4, 2)
    assert [element_plan.chunk_coords(i) for i in range(element_plan.nchunks)] == [
        (0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
