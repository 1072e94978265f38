"""The Cython kernels in zarrsync._kernels, called directly and checked against NumPy."""

import gc
import itertools
import struct

import crc32c as crc32c_lib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zarrsync._kernels import memory, transform
from zarrsync._kernels.indexing import ChunkPlan


# ----------------------------------------------------------------------------------
# A NumPy model of ChunkPlan
# ----------------------------------------------------------------------------------

def axis_indices(ax):
    """The array indices an axis selection visits, in output order."""
    if isinstance(ax, tuple):
        start, step, count = ax
        return np.arange(count, dtype=np.int64) * step + start
    return np.asarray(ax, dtype=np.int64)


def model_chunks(shape, chunks, axes):
    """Chunk coordinates a selection touches, in C order (what the plan must list)."""
    per_axis = [np.unique(axis_indices(ax) // c) for ax, c in zip(axes, chunks)]
    return [tuple(int(v) for v in coords) for coords in itertools.product(*per_axis)]


def model_complete(shape, chunks, axes, coords):
    for ax, n, c, k in zip(axes, shape, chunks, coords):
        valid = set(range(k * c, min((k + 1) * c, n)))
        if not valid <= set(axis_indices(ax).tolist()):
            return False
    return True


def chunk_region(coords, shape, chunks):
    """The padded chunk at ``coords`` of ``data`` (padding filled with a marker)."""
    return tuple(slice(k * c, min((k + 1) * c, n)) for k, n, c in zip(coords, shape, chunks))


def padded_chunk(data, coords, chunks, pad):
    out = np.full(chunks, pad, dtype=data.dtype)
    region = chunk_region(coords, data.shape, chunks)
    out[tuple(slice(0, r.stop - r.start) for r in region)] = data[region]
    return out


def random_axis(rng, n):
    """A random in-bounds selection of an axis of length ``n``."""
    kind = rng.integers(0, 4) if n else 0
    if kind == 0:    # slice, step 1
        start = int(rng.integers(0, n + 1))
        stop = int(rng.integers(start, n + 1))
        return (start if stop > start else 0, 1, stop - start)
    if kind == 1:    # strided slice
        step = int(rng.integers(1, 5))
        start = int(rng.integers(0, n))
        count = int(rng.integers(0, (n - 1 - start) // step + 2))
        return (start, step, count)
    if kind == 2:    # single index
        return (int(rng.integers(0, n)), 1, 1)
    # integer list: unsorted, maybe with duplicates
    m = int(rng.integers(0, 2 * n + 1))
    return rng.integers(0, n, m).astype(np.int64)


def random_case(rng):
    ndim = int(rng.integers(1, 4))
    shape = tuple(int(rng.integers(0, 13)) for _ in range(ndim))
    chunks = tuple(int(rng.integers(1, 6)) for _ in range(ndim))
    axes = [random_axis(rng, n) for n in shape]
    return shape, chunks, axes


CASES = [random_case(np.random.default_rng(seed)) for seed in range(300)]
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
]


def _id(case):
    shape, chunks, axes = case
    return f"{shape}-{chunks}"


@pytest.mark.parametrize("case", FIXED_CASES + CASES, ids=_id)
def test_plan_against_numpy(case):
    shape, chunks, axes = case
    plan = ChunkPlan(shape, chunks, axes)
    expected_chunks = model_chunks(shape, chunks, axes)
    assert plan.ndim == len(shape)
    assert plan.nchunks == len(expected_chunks)
    assert [plan.chunk_coords(i) for i in range(plan.nchunks)] == expected_chunks
    sel_shape = tuple(len(axis_indices(ax)) for ax in axes)
    assert plan.selection_shape == sel_shape
    assert plan.complete_flags() == [model_complete(shape, chunks, axes, c)
                                     for c in expected_chunks]

    rng = np.random.default_rng(1)
    data = rng.integers(0, 1000, shape).astype(np.int32)
    ix = np.ix_(*[axis_indices(ax) for ax in axes])

    # gather: chunks -> selection
    out = np.full(sel_shape, -1, dtype=np.int32)
    for i, coords in enumerate(expected_chunks):
        plan.gather(i, padded_chunk(data, coords, chunks, -99), out)
    np.testing.assert_array_equal(out, data[ix])

    # scatter: selection -> chunks; NumPy's assignment (the last duplicate wins)
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
        # padding is never written
        pad = np.ones(chunks, dtype=bool)
        pad[inner] = False
        assert (chunk[pad] == -99).all()
    np.testing.assert_array_equal(got, expected)

    # The raw-bytes routes: whole inner chunks to new bytes, and bytes to the selection.
    covered = []
    for i, coords in enumerate(expected_chunks):
        inside = all((k + 1) * c <= n for k, c, n in zip(coords, chunks, shape))
        whole = inside and model_complete(shape, chunks, axes, coords)
        assert plan.covers_inner_chunk(i) == whole
        covered.append(whole)
        raw = padded_chunk(data, coords, chunks, -99).tobytes()
        out = np.full(sel_shape, -1, dtype=np.int32)
        plan.gather_raw(i, raw, out)
        ref = np.full(sel_shape, -1, dtype=np.int32)
        plan.gather(i, padded_chunk(data, coords, chunks, -99), ref)
        np.testing.assert_array_equal(out, ref)
        if whole:
            chunk = np.full(chunks, -99, dtype=np.int32)
            plan.scatter(i, value, chunk)
            got_bytes = plan.scatter_to_bytes(i, value)
            assert type(got_bytes) is bytes and got_bytes == chunk.tobytes()
        else:
            with pytest.raises(ValueError, match="not wholly covered"):
                plan.scatter_to_bytes(i, value)
    assert plan.count_inner_covered() == sum(covered)


def test_raw_routes_check_sizes_and_take_strided_values():
    data = np.arange(24, dtype=np.float64).reshape(4, 6)
    plan = ChunkPlan((4, 6), (2, 3), [(0, 1, 4), (0, 2, 3)])   # every other column
    out = np.zeros((4, 3), dtype=np.float64)
    with pytest.raises(ValueError, match="a chunk holds 48 bytes"):
        plan.gather_raw(0, b"\0" * 47, out)
    for i, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        plan.gather_raw(i, data[2 * r:2 * r + 2, 3 * c:3 * c + 3].tobytes(), out)
    np.testing.assert_array_equal(out, data[:, ::2])
    full = ChunkPlan((4, 6), (2, 3), [(0, 1, 4), (0, 1, 6)])
    strided = np.asfortranarray(data)
    assert full.scatter_to_bytes(3, strided) == data[2:, 3:].tobytes()


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_scatter_many_to_bytes_matches_each_chunk_alone(data):
    """Covered chunks copied in one call (row by row across chunks where the
    value's rows are contiguous and every axis is a slice of step 1; chunk by
    chunk otherwise) hold what ``scatter_to_bytes`` makes of each alone, and
    what NumPy cuts out of the value."""
    ndim = data.draw(st.integers(1, 4), label="ndim")
    chunks = tuple(data.draw(st.integers(1, 5), label="chunk") for _ in range(ndim))
    counts = tuple(data.draw(st.integers(1, 4), label="chunks") for _ in range(ndim))
    first = tuple(data.draw(st.integers(0, 2), label="first chunk") for _ in range(ndim))
    shape = tuple((f + n) * c + data.draw(st.integers(0, 3)) for f, n, c in zip(first, counts, chunks))
    axes, picked = [], []
    for d in range(ndim):
        start, stop = first[d] * chunks[d], (first[d] + counts[d]) * chunks[d]
        if data.draw(st.booleans(), label="index array"):
            # Whole chunks, each in an order of its own: covered, not a slice.
            index = np.concatenate([
                np.array(data.draw(st.permutations(range(b, b + chunks[d]))), dtype=np.int64)
                for b in range(start, stop, chunks[d])])
            axes.append(index)
            picked.append(index)
        else:
            axes.append((start, 1, stop - start))
            picked.append(np.arange(start, stop))
    plan = ChunkPlan(shape, chunks, axes)
    dtype = data.draw(st.sampled_from(["u1", "<i2", "<f4", "<f8", "<c16"]), label="dtype")
    full = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape).astype(dtype)
    value = full[np.ix_(*picked)] if ndim else full
    if data.draw(st.booleans(), label="strided value"):
        wide = np.zeros(value.shape[:-1] + (2 * value.shape[-1],), dtype=dtype)
        wide[..., ::2] = value
        value = wide[..., ::2]
    indices = plan.covered_chunks()
    assert len(indices) == int(np.prod(counts))
    nbytes = int(np.prod(chunks)) * np.dtype(dtype).itemsize
    out = bytearray(len(indices) * nbytes)
    plan.scatter_many_to_bytes(indices, value, out)
    for k, i in enumerate(indices.tolist()):
        piece = bytes(out[k * nbytes:(k + 1) * nbytes])
        assert piece == bytes(plan.scatter_to_bytes(i, value))
        coords = plan.chunk_coords(i)
        region = tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, chunks))
        assert piece == np.ascontiguousarray(full[region]).tobytes()


def test_scatter_many_to_bytes_of_more_chunks_than_one_walk():
    """Past the 64 chunks walked together, and an uneven last group."""
    full = np.random.default_rng(1).random((12, 70 * 4), dtype=np.float32)
    plan = ChunkPlan(full.shape, (3, 4), [(0, 1, 12), (0, 1, 280)])
    indices = plan.covered_chunks()
    out = bytearray(len(indices) * 48)
    plan.scatter_many_to_bytes(indices[::-1].copy(), full, out)
    for k, i in enumerate(indices[::-1].tolist()):
        a, b = plan.chunk_coords(i)
        assert out[k * 48:(k + 1) * 48] == full[3 * a:3 * a + 3, 4 * b:4 * b + 4].tobytes()


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32", "float64", "complex128",
                                   "S3", "V5"])
def test_gather_scatter_every_itemsize(dtype):
    shape, chunks = (7, 9), (3, 4)
    rng = np.random.default_rng(0)
    data = np.frombuffer(rng.bytes(63 * np.dtype(dtype).itemsize), dtype=dtype).reshape(shape)
    axes = [(1, 2, 3), np.array([8, 0, 4, 5], dtype=np.int64)]
    plan = ChunkPlan(shape, chunks, axes)
    ix = np.ix_(*[axis_indices(ax) for ax in axes])
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
    assert out.tobytes() == np.ascontiguousarray(data[ix]).tobytes()
    expected = data.copy()
    expected[ix] = value
    assert written.tobytes() == expected.tobytes()


def test_gather_from_strided_and_broadcast_chunks():
    shape, chunks = (6, 8), (3, 4)
    data = np.arange(48, dtype=np.int64).reshape(shape)
    plan = ChunkPlan(shape, chunks, [(0, 1, 6), (0, 1, 8)])
    out = np.empty(shape, dtype=np.int64)
    for i in range(plan.nchunks):
        coords = plan.chunk_coords(i)
        stored = np.ascontiguousarray(data[chunk_region(coords, shape, chunks)].T)
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


def test_zero_dimensional_plan():
    plan = ChunkPlan((), (), [])
    assert plan.nchunks == 1
    assert plan.chunk_coords(0) == ()
    assert plan.is_complete(0)
    assert plan.chunk_keys("a/", "/", False) == ["a/c"]
    assert plan.chunk_keys("a/", ".", True) == ["a/0"]
    out = np.zeros((), dtype=np.float64)
    plan.gather(0, np.array(2.5), out)
    assert out[()] == 2.5
    chunk = np.zeros((), dtype=np.float64)
    plan.scatter(0, np.array(-1.0), chunk)
    assert chunk[()] == -1.0


def test_chunk_keys():
    plan = ChunkPlan((10, 10), (4, 5), [(3, 1, 3), np.array([9, 0], dtype=np.int64)])
    assert plan.chunk_keys("g/a/", "/", False) == ["g/a/c/0/0", "g/a/c/0/1",
                                                    "g/a/c/1/0", "g/a/c/1/1"]
    assert plan.chunk_keys("g/a/", ".", False) == ["g/a/c.0.0", "g/a/c.0.1",
                                                    "g/a/c.1.0", "g/a/c.1.1"]
    assert plan.chunk_keys("", ".", True) == ["0.0", "0.1", "1.0", "1.1"]
    assert plan.chunk_keys("x/", "/", True) == ["x/0/0", "x/0/1", "x/1/0", "x/1/1"]


def test_complete_flags():
    # Chunks of 4 over length 10: chunk 2 holds only 2 valid elements.
    cases = [
        ((0, 1, 10), [True, True, True]),
        ((1, 1, 9), [False, True, True]),
        ((0, 1, 9), [True, True, False]),
        ((8, 1, 2), [True]),
        ((0, 2, 5), [False, False, False]),
        ((9, 1, 1), [False]),
    ]
    for ax, flags in cases:
        assert ChunkPlan((10,), (4,), [ax]).complete_flags() == flags
    # Integer lists: complete when every valid position appears (any order, repeats).
    idx = np.array([3, 2, 1, 0, 0, 9, 8], dtype=np.int64)
    assert ChunkPlan((10,), (4,), [idx]).complete_flags() == [True, True]
    assert ChunkPlan((1,), (4,), [(0, 1, 1)]).complete_flags() == [True]


@pytest.mark.parametrize("shape,chunks,axes", [
    ((10,), (3,), [(0, 1, 11)]),                          # past the end
    ((10,), (3,), [(8, 2, 2)]),                           # 8, 10: past the end
    ((10,), (3,), [(-1, 1, 1)]),
    ((10,), (3,), [(0, 0, 3)]),                           # step 0
    ((10,), (3,), [np.array([10], dtype=np.int64)]),
    ((10,), (3,), [np.array([-1], dtype=np.int64)]),
    ((10,), (0,), [(0, 1, 1)]),                           # zero chunk size
    ((10, 10), (3,), [(0, 1, 1), (0, 1, 1)]),             # rank mismatch
    ((10,), (3,), [(0, 1, 1), (0, 1, 1)]),
])
def test_plan_rejects(shape, chunks, axes):
    with pytest.raises(ValueError):
        ChunkPlan(shape, chunks, axes)


def test_plan_rejects_bad_operands():
    plan = ChunkPlan((4, 4), (2, 2), [(0, 1, 4), (0, 1, 4)])
    out = np.zeros((4, 4), dtype=np.int32)
    with pytest.raises(IndexError):
        plan.gather(4, np.zeros((2, 2), dtype=np.int32), out)
    with pytest.raises(IndexError):
        plan.chunk_coords(-1)
    with pytest.raises(ValueError):
        plan.gather(0, np.zeros((2, 3), dtype=np.int32), out)        # not the chunk shape
    with pytest.raises(ValueError):
        plan.gather(0, np.zeros((2, 2), dtype=np.int32), np.zeros((4, 3), dtype=np.int32))
    with pytest.raises(ValueError):
        plan.gather(0, np.zeros((2, 2), dtype=np.int64), out)        # itemsize
    with pytest.raises(ValueError):
        plan.gather(0, np.zeros(4, dtype=np.int32), out)             # rank
    with pytest.raises((ValueError, BufferError)):
        plan.gather(0, np.zeros((2, 2), dtype=np.int32), _readonly((4, 4)))


def _readonly(shape, dtype=np.int32):
    a = np.zeros(shape, dtype=dtype)
    a.setflags(write=False)
    return a


def test_plan_is_reusable():
    plan = ChunkPlan((8,), (3,), [(1, 2, 4)])
    a = np.arange(8, dtype=np.int8)
    for _ in range(3):
        out = np.zeros(4, dtype=np.int8)
        for i in range(plan.nchunks):
            c = plan.chunk_coords(i)[0]
            plan.gather(i, padded_chunk(a, (c,), (3,), 0), out)
        np.testing.assert_array_equal(out, a[1::2])


# ----------------------------------------------------------------------------------
# copy_into: the transpose kernel
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32", "int64", "complex128", "S3"])
@pytest.mark.parametrize("shape,order", [
    ((5,), (0,)),
    ((3, 4), (1, 0)),
    ((2, 3, 4), (2, 0, 1)),
    ((2, 3, 4), (1, 2, 0)),
    ((2, 1, 3, 5), (3, 1, 0, 2)),
])
def test_copy_into_transposes(dtype, shape, order):
    src = np.frombuffer(np.random.default_rng(0).bytes(
        int(np.prod(shape)) * np.dtype(dtype).itemsize), dtype=dtype).reshape(shape)
    view = src.transpose(order)
    dst = np.empty(view.shape, dtype=dtype)
    transform.copy_into(view, dst)
    assert dst.tobytes() == np.ascontiguousarray(view).tobytes()
    back = np.empty(shape, dtype=dtype)
    transform.copy_into(dst.transpose(np.argsort(order)), back)
    assert back.tobytes() == src.tobytes()


def test_copy_into_strided_source_and_destination():
    src = np.arange(200, dtype=np.int32).reshape(10, 20)
    view = src[1:9:3, ::-2]                     # negative stride
    dst_base = np.zeros((6, 20), dtype=np.int32)
    dst = dst_base[::2, 5:15]                   # strided destination
    transform.copy_into(view, dst)
    np.testing.assert_array_equal(dst, view)
    assert (dst_base[1::2] == 0).all()


def test_copy_into_broadcast_source():
    dst = np.empty((3, 4), dtype=np.float64)
    transform.copy_into(np.broadcast_to(np.float64(1.5), (3, 4)), dst)
    assert (dst == 1.5).all()


@pytest.mark.parametrize("dtype", ["int16", "uint32", "float32", "float64", "complex64",
                                   "complex128"])
def test_copy_into_with_byteswap(dtype):
    dt = np.dtype(dtype)
    src = (np.arange(24) * 3 + 1).astype(dt).reshape(4, 6)
    unit = dt.itemsize // 2 if dt.kind == "c" else dt.itemsize
    dst = np.empty((6, 4), dtype=dt)
    transform.copy_into(src.T, dst, unit)
    expected = np.ascontiguousarray(src.T).astype(dt.newbyteorder())
    assert dst.tobytes() == expected.tobytes()


def test_copy_into_zero_dim_and_empty():
    dst = np.zeros((), dtype=np.int64)
    transform.copy_into(np.array(42, dtype=np.int64), dst)
    assert dst[()] == 42
    empty = np.zeros((0, 3), dtype=np.int8)
    transform.copy_into(np.ones((0, 3), dtype=np.int8), empty)


def test_copy_into_rejects():
    with pytest.raises(ValueError):
        transform.copy_into(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError):
        transform.copy_into(np.zeros((2, 3)), np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        transform.copy_into(np.zeros((2, 3)), np.zeros(6))
    with pytest.raises(ValueError):   # swapping needs a C-contiguous destination
        transform.copy_into(np.zeros((2, 3)), np.zeros((3, 2)).T, 8)
    with pytest.raises((ValueError, BufferError)):
        transform.copy_into(np.zeros(3), _readonly(3, np.float64))


# ----------------------------------------------------------------------------------
# byteswap
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("unit,dtype", [(2, "u2"), (4, "u4"), (8, "u8")])
def test_byteswap(unit, dtype):
    values = np.random.default_rng(unit).integers(0, 2**63, 37, dtype=np.uint64)
    arr = values.astype(dtype)
    buf = bytearray(arr.tobytes())
    transform.byteswap(np.frombuffer(buf, dtype=np.uint8), unit)
    assert bytes(buf) == arr.byteswap().tobytes()
    transform.byteswap(np.frombuffer(buf, dtype=np.uint8), unit)
    assert bytes(buf) == arr.tobytes()


def test_byteswap_unaligned_buffer():
    raw = bytearray(b"\xff" + np.arange(10, dtype="u4").tobytes())
    view = np.frombuffer(raw, dtype=np.uint8)[1:]      # misaligned for u4
    transform.byteswap(view, 4)
    assert bytes(raw[1:]) == np.arange(10, dtype=">u4").tobytes()
    assert raw[0] == 0xFF


def test_byteswap_unit_one_and_empty():
    buf = np.arange(7, dtype=np.uint8)
    transform.byteswap(buf, 1)
    np.testing.assert_array_equal(buf, np.arange(7))
    transform.byteswap(np.zeros(0, dtype=np.uint8), 8)


def test_byteswap_rejects():
    with pytest.raises(ValueError):
        transform.byteswap(np.zeros(6, dtype=np.uint8), 4)     # not whole words
    with pytest.raises(ValueError):
        transform.byteswap(np.zeros(6, dtype=np.uint8), 3)     # bad unit
    with pytest.raises((ValueError, BufferError)):
        transform.byteswap(b"\x00\x01", 2)                     # read-only


# ----------------------------------------------------------------------------------
# all_equal
# ----------------------------------------------------------------------------------

def as_bytes(a):
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


@pytest.mark.parametrize("dtype", ["bool", "int8", "int16", "uint32", "float64",
                                   "complex64", "complex128"])
def test_all_equal(dtype):
    fill = np.ones((), dtype=dtype)
    a = np.ones(50, dtype=dtype)
    assert transform.all_equal(as_bytes(a), as_bytes(fill))
    for pos in (0, 25, 49):
        b = a.copy()
        b[pos] = 0
        assert not transform.all_equal(as_bytes(b), as_bytes(fill))


def test_all_equal_is_bitwise_signed_zero():
    zero = np.zeros((), dtype=np.float64)
    negzero = np.array(-0.0)
    assert -0.0 == 0.0
    assert not transform.all_equal(as_bytes(np.full(4, -0.0)), as_bytes(zero))
    assert not transform.all_equal(as_bytes(np.zeros(4)), as_bytes(negzero))
    assert transform.all_equal(as_bytes(np.full(4, -0.0)), as_bytes(negzero))
    for dtype in ("float16", "float32", "complex64"):
        z = np.zeros((), dtype=dtype)
        a = np.zeros(3, dtype=dtype)
        a[1] = -a[1] if np.dtype(dtype).kind == "f" else complex(-0.0, 0.0)
        assert not transform.all_equal(as_bytes(a), as_bytes(z))


def test_all_equal_is_bitwise_nan():
    nan = np.array(np.nan, dtype=np.float32)
    assert transform.all_equal(as_bytes(np.full(5, np.nan, dtype=np.float32)), as_bytes(nan))
    other_nan = np.array(0x7fc00001, dtype=np.uint32).view(np.float32)
    a = np.full(5, np.nan, dtype=np.float32)
    a[2] = other_nan
    assert not transform.all_equal(as_bytes(a), as_bytes(nan))


def test_all_equal_odd_pattern_sizes():
    pattern = np.frombuffer(b"abc", dtype=np.uint8)
    assert transform.all_equal(np.frombuffer(b"abc" * 10, dtype=np.uint8), pattern)
    assert not transform.all_equal(np.frombuffer(b"abc" * 9 + b"abd", dtype=np.uint8),
                                   pattern)
    assert transform.all_equal(b"", pattern)
    assert transform.all_equal(b"xyz" * 2, b"xyz")      # bytes bind to const views


def test_all_equal_rejects():
    with pytest.raises(ValueError):
        transform.all_equal(b"abcd", b"abc")
    with pytest.raises(ValueError):
        transform.all_equal(b"abcd", b"")


# ----------------------------------------------------------------------------------
# crc32c framing
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"", b"a", b"123456789", bytes(range(256)) * 40])
def test_crc32c_framing(data):
    crc = crc32c_lib.crc32c(data)
    framed = transform.append_crc32c(data, crc)
    assert isinstance(framed, bytes)
    assert framed == data + struct.pack("<I", crc)
    assert transform.stored_crc32c(framed) == crc


def test_crc32c_framing_buffers():
    data = bytearray(b"hello world")
    framed = transform.append_crc32c(memoryview(data), 0xDEADBEEF)
    assert framed[-4:] == b"\xef\xbe\xad\xde"
    assert transform.stored_crc32c(bytearray(framed)) == 0xDEADBEEF
    assert transform.stored_crc32c(np.frombuffer(framed, dtype=np.uint8)) == 0xDEADBEEF
    assert transform.append_crc32c(b"", 0) == b"\x00\x00\x00\x00"
    assert transform.append_crc32c(b"x", 0xFFFFFFFF) == b"x\xff\xff\xff\xff"


def test_crc32c_framing_rejects():
    with pytest.raises(ValueError):
        transform.stored_crc32c(b"abc")
    with pytest.raises(OverflowError):
        transform.append_crc32c(b"abc", 2**32)


@pytest.mark.parametrize("at_start", [True, False])
def test_shard_layout_and_join(at_start):
    from zarrsync._kernels import shard
    chunks = [b"abc", None, memoryview(b"defgh"), b"", None]
    entries = np.empty(2 * len(chunks), dtype=np.uint64)
    total = shard.shard_layout(chunks, entries, 4, at_start)
    assert total == 3 + 5 + 4
    base = 4 if at_start else 0
    empty = 2 ** 64 - 1
    assert entries.tolist() == [base, 3, empty, empty, base + 3, 5, base + 8, 0, empty, empty]
    out = shard.join_shard(chunks, b"IDX!", total, at_start)
    assert type(out) is bytes
    assert out == (b"IDX!abcdefgh" if at_start else b"abcdefghIDX!")
    with pytest.raises(ValueError, match="layout"):
        shard.join_shard(chunks, b"IDX!", total + 1, at_start)
    with pytest.raises(ValueError, match="entries must hold"):
        shard.shard_layout(chunks, entries[:4], 4, at_start)


# ----------------------------------------------------------------------------------
# Cache-line-aligned outputs and the streamed gathers into them
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "int8", "complex128", "T", "O"])
@pytest.mark.parametrize("shape", [(0,), (3,), (5, 7), (64, 64, 300)])
def test_memory_empty_is_an_ordinary_aligned_array(dtype, shape):
    dtype = np.dtypes.StringDType() if dtype == "T" else np.dtype(dtype)
    a = memory.empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype
    assert a.flags.owndata and a.flags.writeable and a.flags.c_contiguous
    assert a.ctypes.data % memory.ALIGNMENT == 0
    assert np._core.multiarray.get_handler_name(a) == "zarrsync_cacheline_aligned"
    # The handler is set for that one call only.
    assert np._core.multiarray.get_handler_name() == "default_allocator"
    if dtype.kind == "O":
        assert all(v is None for v in a.flat)
    if a.size and dtype.kind not in "OT":
        a[...] = 7
        assert (a == 7).all()


def test_memory_empty_resizes_in_place_keeping_the_data():
    a = memory.empty((1000,), np.int64)
    a[:] = np.arange(1000)
    a.resize((5000,), refcheck=False)      # NumPy reallocates through the handler
    np.testing.assert_array_equal(a[:1000], np.arange(1000))
    assert a.ctypes.data % memory.ALIGNMENT == 0
    a.resize((10,), refcheck=False)
    np.testing.assert_array_equal(a, np.arange(10))


def test_new_output_aligns_only_large_outputs():
    small = memory.new_output((10, 10), np.float64)
    assert np._core.multiarray.get_handler_name(small) == "default_allocator"
    n = memory.STREAM_MIN_BYTES // 4
    large = memory.new_output((n,), np.float32)
    assert np._core.multiarray.get_handler_name(large) == "zarrsync_cacheline_aligned"
    assert large.ctypes.data % memory.ALIGNMENT == 0


def misaligned_empty(shape, dtype):
    """An array whose data starts 16 bytes past a cache line."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    base = memory.empty((n + 64,), np.uint8)
    return base[16:16 + n].view(dtype).reshape(shape)


@pytest.mark.parametrize("chunks", [(16, 16, 64), (16, 16, 50), (7, 9, 128), (80, 64, 1)])
@pytest.mark.parametrize("selection", ["all", "strided", "offset"])
@pytest.mark.parametrize("alloc", [memory.new_output, misaligned_empty])
def test_gathers_into_large_outputs_match_numpy(chunks, selection, alloc):
    # >= STREAM_MIN_BYTES: the gathers stream their stores where the runs
    # cover whole cache lines (aligned output, 256-byte rows), and copy
    # plainly everywhere else; every byte must land either way.
    shape = (80, 64, 256)
    rng = np.random.default_rng(1)
    data = rng.standard_normal(shape).astype(np.float32)
    axes = {"all": [(0, 1, 80), (0, 1, 64), (0, 1, 256)],
            "strided": [(0, 1, 80), (1, 3, 21), (0, 2, 128)],
            "offset": [(3, 1, 77), (0, 1, 64), (16, 1, 240)]}[selection]
    ix = np.ix_(*[axis_indices(ax) for ax in axes])
    plan = ChunkPlan(shape, chunks, axes)
    sel_shape = tuple(len(axis_indices(ax)) for ax in axes)
    out = alloc(sel_shape, np.float32)
    out_raw = alloc(sel_shape, np.float32)
    if selection == "all":
        assert out.nbytes >= memory.STREAM_MIN_BYTES
    for i in range(plan.nchunks):
        chunk = padded_chunk(data, plan.chunk_coords(i), chunks, np.float32(-1))
        plan.gather(i, chunk, out)
        plan.gather_raw(i, chunk.tobytes(), out_raw)
    np.testing.assert_array_equal(out, data[ix])
    np.testing.assert_array_equal(out_raw, data[ix])


def test_a_freed_large_output_is_reused_for_the_next_of_nearly_its_size():
    gc.collect()  # earlier tests' large arrays, freed now rather than mid-test
    memory.drop_kept_block()
    n = 8 << 20
    a = memory.empty((n // 8,), np.float64)
    address = a.ctypes.data
    assert memory.kept_bytes() == 0
    del a
    assert memory.kept_bytes() == n
    b = memory.empty((n // 8,), np.float64)          # same size: the kept block
    assert b.ctypes.data == address and memory.kept_bytes() == 0
    del b
    c = memory.empty((n // 8 - 1000,), np.float64)   # a little smaller: still fits
    assert c.ctypes.data == address
    del c
    assert memory.kept_bytes() == n                  # the capacity, not the size used
    d = memory.empty((n // 16,), np.float64)         # half: the kept block is freed
    assert memory.kept_bytes() == 0
    assert d.ctypes.data % memory.ALIGNMENT == 0
    del d
    assert memory.kept_bytes() == n // 2
    memory.drop_kept_block()
    assert memory.kept_bytes() == 0
    memory.drop_kept_block()                         # nothing kept: a no-op
    small = memory.empty((1000,), np.float64)        # under 4 MiB: never kept
    del small
    assert memory.kept_bytes() == 0


def test_arrays_that_must_start_zeroed_never_take_the_kept_block():
    memory.drop_kept_block()
    a = memory.empty((1 << 20,), np.float64)         # 8 MiB of ones, then kept
    a[:] = 1.0
    del a
    objects = memory.empty((1 << 20,), object)       # calloc: every slot None
    assert all(v is None for v in objects[::4097])
    assert objects[-1] is None
    del objects
    memory.drop_kept_block()


def test_kept_blocks_under_threads_never_share_memory():
    import threading
    memory.drop_kept_block()
    errors = []

    def work(t):
        for k in range(30):
            a = memory.empty((1 << 20,), np.int64)   # 8 MiB: the kept-block size range
            a[:] = t * 1000 + k
            if not (a == t * 1000 + k).all():
                errors.append((t, k))
            del a
    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    memory.drop_kept_block()
