"""The Cython kernels in zarrsync._kernels, called directly and checked against NumPy.

``transform`` (copy_into, byteswap, all_equal, crc32c framing), ``shard``
(index checks, layout and assembly) and ``memory`` (aligned arrays).
``ChunkPlan`` (``indexing``) is tested in test_indexing.py; ``zstd`` and
``native.encode_many`` with the zstd codec in test_codecs.py.
"""

import struct

import crc32c as crc32c_lib
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

from zarrsync._kernels import memory, shard, transform

from strategies import as_bytes as element_bytes, dtypes


def _readonly(shape, dtype=np.int32):
    a = np.zeros(shape, dtype=dtype)
    a.setflags(write=False)
    return a


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


@given(data=st.data())
def test_copy_into_matches_numpy(data):
    """Any permutation and slicing of the source, into a C-contiguous destination."""
    src = data.draw(npst.arrays(dtypes(), npst.array_shapes(min_dims=1, max_dims=4,
                                                             max_side=6)), label="src")
    view = src.transpose(data.draw(st.permutations(range(src.ndim)), label="order"))
    view = view[tuple(data.draw(st.slices(n), label="slice") for n in view.shape)]
    dst = np.empty(view.shape, dtype=view.dtype)
    transform.copy_into(view, dst)
    assert dst.tobytes() == np.ascontiguousarray(view).tobytes()


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


@given(data=st.data())
def test_all_equal_matches_numpy(data):
    dtype = data.draw(dtypes(), label="dtype")
    fill = data.draw(npst.arrays(dtype, ()), label="fill")
    # The fill value everywhere but at a few places, so both answers are common.
    a = np.full(data.draw(st.integers(0, 40), label="size"), fill)
    if a.size:
        for i, v in data.draw(st.lists(st.tuples(st.integers(0, a.size - 1),
                                                 npst.from_dtype(dtype)), max_size=3)):
            a[i] = v
    expected = bool((element_bytes(a) == element_bytes(fill)).all())
    assert transform.all_equal(as_bytes(a), as_bytes(fill)) == expected


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


# ----------------------------------------------------------------------------------
# shard index and assembly
# ----------------------------------------------------------------------------------

EMPTY = 2 ** 64 - 1


def test_check_index_finds_the_first_entry_out_of_bounds():
    entries = np.array([4, 10, EMPTY, EMPTY, 14, 5, 19, 0], dtype=np.uint64)
    assert shard.check_index(entries, 4, 19) == -1         # a 0-byte chunk may sit at the end
    assert shard.check_index(entries, 5, 19) == 0          # starts before the data
    assert shard.check_index(entries, 4, 18) == 2          # ends past the data
    assert shard.check_index(np.zeros(0, dtype=np.uint64), 0, 0) == -1
    half_empty = np.array([0, 1, EMPTY, 3], dtype=np.uint64)
    assert shard.check_index(half_empty, 0, 100) == 1      # only both values mark empty
    # offset + size past 2**64 must not wrap around into bounds.
    wrapping = np.array([10, EMPTY - 5], dtype=np.uint64)
    assert shard.check_index(wrapping, 0, 100) == 0


@pytest.mark.parametrize("at_start", [True, False])
def test_shard_layout_and_join(at_start):
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
# memory: aligned arrays
# ----------------------------------------------------------------------------------

HUGE_PAGE = 2 << 20


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


@pytest.mark.parametrize("nbytes", [4 << 20, (4 << 20) + 8, 9 << 20, 64 << 20])
def test_memory_empty_aligns_arrays_of_4_mib_or_more_to_huge_pages(nbytes):
    a = memory.empty((nbytes // 8,), np.float64)
    assert a.ctypes.data % HUGE_PAGE == 0
    a[:] = 1.5
    assert (a == 1.5).all()


def test_memory_empty_resizes_in_place_keeping_the_data():
    a = memory.empty((1000,), np.int64)
    a[:] = np.arange(1000)
    a.resize((5000,), refcheck=False)      # NumPy reallocates through the handler
    np.testing.assert_array_equal(a[:1000], np.arange(1000))
    assert a.ctypes.data % memory.ALIGNMENT == 0
    a.resize((1 << 20,), refcheck=False)   # 8 MiB: now on a huge page
    np.testing.assert_array_equal(a[:1000], np.arange(1000))
    assert a.ctypes.data % HUGE_PAGE == 0
    a.resize((10,), refcheck=False)
    np.testing.assert_array_equal(a, np.arange(10))
    assert a.ctypes.data % memory.ALIGNMENT == 0
