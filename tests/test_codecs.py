"""Codecs: encode/decode round trips, JSON forms, configuration checks, chain ordering.

zstd and gzip are tested on each of their paths, chosen inside the tests
with ``zarrsync.config.set(fast_paths=...)`` so that both run whatever
``--fast-paths`` says:

- zstd: the system libzstd (``_kernels.zstd.ZstdContext``, fast paths on)
  and numcodecs' zstd (off). Frames of either path read on the other and in
  python-zstandard; other writers' frames read on both; ``decode_into``
  rejects what is not whole frames decoding to exactly its buffer, never
  writing past it.
- gzip: ISA-L writes and reads, member by member, every writer's members,
  and never decodes more than the expected size.

Bounded decoding: every codec decodes exactly up to the bound it is given
and refuses one byte more (zstd on both paths, for frames with and without
a content size, and frames of no content); chains derive the bounds, and
check codecs that cannot bound themselves after decoding. Memory under
real bombs is measured in ``test_bombs.py``.

``native.encode_many`` (a batch of chunks encoded without the GIL) is checked
against ``ZstdContext.compress_into`` chunk by chunk. Last, zarr-python,
tensorstore and zarrs read the zstd and gzip chunks zarrsync writes, and
zarrsync reads zarr-python's.
"""

import ctypes
import gzip as gzip_module
import io
import json
import pickle
import struct
import sys
import threading
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st
from isal import igzip, isal_zlib

import zarrsync as zs
from interop_matrix import cell, dtype_label
from zarrsync import ArrayNode, codecs
from zarrsync._kernels import native, zstd as libzstd
from zarrsync.codecs import (Bytes, CodecChain, Crc32c, Gzip, ShardingIndexed, Transpose, Zstd,
                             from_dict)
from zarrsync.codecs import _registry
from zarrsync.codecs._gzip import GzipDataError
from zarrsync.codecs import _zstd as zstd_module
from zarrsync.codecs._zstd import native_library
from zarrsync.errors import (ArrayToBytesInvariant, BytesToBytesInvariant, ChecksumMismatch,
                             CodecError, InvalidCodecOrdering, InvalidTransposeOrder,
                             InvalidZstdLevel)

DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float16", "float32", "float64", "complex64", "complex128"]
NODE = ArrayNode.of_path("/a")

needs_libzstd = pytest.mark.skipif(native_library() is None,
                                   reason="no system libzstd loads here (the zstd fast path)")


def sample(dtype, shape=(5, 6), seed=0):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) > 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)


def payload(n=5000, seed=1):
    rng = np.random.default_rng(seed)
    # Compressible but not trivial.
    return bytes(rng.integers(0, 8, n, dtype=np.uint8))


def _payloads():
    rng = np.random.default_rng(7)
    smooth = (np.sin(np.linspace(0, 20, 50_000)) + rng.normal(0, 1e-3, 50_000)).astype("f4")
    return {
        "random": rng.integers(0, 256, 200_003, dtype=np.uint8).tobytes(),
        "small-alphabet": rng.integers(0, 8, 150_000, dtype=np.uint8).tobytes(),
        "smooth-float32": smooth.tobytes(),
        "zeros": bytes(70_000),
        "one-byte": b"x",
        "empty": b"",
    }


#: Incompressible, compressible, tiny and empty inputs by name; the large ones
#: span several 128 KiB zstd blocks and several 64 KiB stored deflate blocks.
PAYLOADS = _payloads()


def field(shape, dtype, seed=5):
    """Smooth values with a little noise, as scientific arrays hold."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(0, 3, n) for n in shape], indexing="ij")
    x = sum(np.sin(g * (i + 1)) for i, g in enumerate(grid)) + rng.normal(0, 1e-3, shape)
    if np.dtype(dtype).kind in "iu":
        x = x * 1000
    return x.astype(dtype)


def outcome(call):
    """What ``call()`` gives: its result as bytes, or its error's type and message."""
    try:
        return bytes(call())
    except Exception as e:
        return type(e), str(e)


# -- bytes ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("endian", ["little", "big"])
def test_bytes_round_trip(dtype, endian):
    x = sample(dtype)
    codec = Bytes(endian).evolve(x.dtype, x.shape)
    encoded = bytes(codec.encode(x))
    order = "<" if endian == "little" else ">"
    assert encoded == x.astype(x.dtype.newbyteorder(order)).tobytes()
    assert codec.encoded_size(x.shape, x.dtype) == len(encoded)
    decoded = codec.decode(encoded, x.shape, x.dtype)
    assert decoded.dtype == x.dtype
    assert decoded.shape == x.shape
    np.testing.assert_array_equal(decoded, x)


def test_bytes_complex_swaps_each_part():
    x = np.array([1 + 2j], dtype="complex64")
    encoded = bytes(Bytes("big").encode(x))
    assert encoded == struct.pack(">ff", 1.0, 2.0)
    assert Bytes("big").decode(encoded, (1,), np.dtype("complex64"))[0] == 1 + 2j


@pytest.mark.parametrize("endian", ["little", "big"])
def test_bytes_non_contiguous_input(endian):
    x = np.arange(24, dtype="int32").reshape(2, 3, 4)
    view = x.transpose(2, 0, 1)[::2]
    encoded = bytes(Bytes(endian).encode(view))
    order = "<" if endian == "little" else ">"
    assert encoded == np.ascontiguousarray(view).astype(order + "i4").tobytes()


def test_bytes_wrong_length():
    with pytest.raises(CodecError, match="expected 16 bytes"):
        Bytes().decode(b"\x00" * 15, (4,), np.dtype("int32"))


def test_bytes_endian_config():
    with pytest.raises(CodecError):
        Bytes("middle")
    with pytest.raises(CodecError):
        Bytes.from_config({"endian": "little", "extra": 1})
    # No endian: only for one-byte types.
    assert Bytes(None).evolve(np.dtype("uint8"), (2,)).endian is None
    assert Bytes("big").evolve(np.dtype("int8"), (2,)).to_dict() == {"name": "bytes"}
    with pytest.raises(CodecError):
        Bytes(None).evolve(np.dtype("int16"), (2,))
    with pytest.raises(CodecError):
        CodecChain([Bytes(None)], "float32", (4,))


# -- transpose --------------------------------------------------------------------------

@pytest.mark.parametrize("order", [(0,), (1, 0), (0, 1), (2, 0, 1), (1, 2, 0), (3, 1, 0, 2)])
def test_transpose_round_trip(order):
    shape = (2, 3, 4, 5)[:len(order)]
    x = np.arange(np.prod(shape)).reshape(shape)
    codec = Transpose(order).evolve(x.dtype, shape)
    encoded = codec.encode(x)
    np.testing.assert_array_equal(encoded, np.transpose(x, order))
    assert codec.resolve_shape(shape) == encoded.shape
    np.testing.assert_array_equal(codec.decode(encoded), x)


@pytest.mark.parametrize("order", [[0, 0], [1, 2], [-1, 0], [0, 2], "01", 3, None,
                                   [0.0, 1.0], [True, False], [[0], [1]]])
def test_transpose_invalid_order(order):
    with pytest.raises(InvalidTransposeOrder):
        Transpose(order)
    with pytest.raises(InvalidTransposeOrder):
        from_dict({"name": "transpose", "configuration": {"order": order}})


def test_transpose_rank_mismatch():
    with pytest.raises(InvalidTransposeOrder):
        Transpose((1, 0)).evolve(np.dtype("int8"), (2, 3, 4))
    with pytest.raises(InvalidTransposeOrder):
        CodecChain([Transpose((0, 1, 2)), Bytes()], "int8", (4, 4))


def test_transpose_config():
    with pytest.raises(InvalidTransposeOrder):
        Transpose.from_config({})
    with pytest.raises(InvalidTransposeOrder):
        Transpose.from_config({"order": [0], "other": 1})
    assert issubclass(InvalidTransposeOrder, CodecError)


# -- gzip -----------------------------------------------------------------------------

def gzip_members(data):
    """The gzip members of ``data``, decoded one by one by the standard library."""
    out = []
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out.append(d.decompress(data))
        assert d.eof
        data = d.unused_data
    return out


@pytest.mark.parametrize("level", range(10))
@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_gzip_round_trip_every_level(level, name):
    data = PAYLOADS[name]
    encoded = Gzip(level).encode(data)
    assert type(encoded) is bytes
    # One RFC 1952 member: magic, deflate, no flags, mtime 0; then crc32 and size.
    assert encoded[:8] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00"
    assert gzip_members(encoded) == [data]
    assert struct.unpack("<II", encoded[-8:]) == (zlib.crc32(data), len(data))
    assert gzip_module.decompress(encoded) == data
    assert Gzip(level).encode(data) == encoded        # reproducible bytes
    assert bytes(Gzip(level).decode(encoded)) == data
    assert bytes(Gzip(level).decode(encoded, len(data))) == data
    # The expected size bounds the output; a shorter result is the chain's to judge.
    assert bytes(Gzip(level).decode(encoded, len(data) + 1000)) == data
    if level >= 1 and name == "small-alphabet":
        assert len(encoded) < len(data) * 0.8
    if level >= 1 and name == "zeros":
        assert len(encoded) < len(data) // 50


@pytest.mark.parametrize("name", ["random", "smooth-float32", "one-byte"])
def test_gzip_level_zero_stores(name):
    data = PAYLOADS[name]
    encoded = Gzip(0).encode(data)
    assert encoded[3] == 0            # no optional header fields: deflate starts at 10
    assert encoded[10] & 0b110 == 0   # BTYPE 00: a stored block
    # The data, plus header, trailer and 5 bytes per stored block of at most 65535.
    assert len(data) < len(encoded) <= len(data) + 18 + 5 * (len(data) // 65535 + 2)
    assert Gzip(0).decode(encoded) == data


@given(data=st.binary(max_size=3000), level=st.integers(0, 9), fast_paths=st.booleans())
def test_gzip_agrees_with_zlib(data, level, fast_paths):
    encoded = Gzip(level).encode(data)
    assert zlib.decompress(encoded, 16 + zlib.MAX_WBITS) == data
    theirs = zlib.compress(data, level, 16 + zlib.MAX_WBITS)
    with zs.config.set(fast_paths=fast_paths):
        assert bytes(Gzip().decode(encoded, len(data))) == data
        assert bytes(Gzip().decode(theirs, len(data))) == data
        assert bytes(Gzip().decode(theirs)) == data


def gzip_with_every_header_field(data):
    """A member with FEXTRA, FNAME, FCOMMENT and FHCRC set, and a nonzero mtime."""
    header = b"\x1f\x8b\x08" + bytes([0b11110]) + struct.pack("<I", 1_700_000_000) + b"\x02\x03"
    header += struct.pack("<H", 6) + b"ab\x02\x00xy"   # FEXTRA: one subfield
    header += b"chunk.raw\x00" + b"a comment\x00"        # FNAME, FCOMMENT
    header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)  # FHCRC
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = c.compress(data) + c.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def gzipfile_with_name(data):
    buf = io.BytesIO()
    with gzip_module.GzipFile(filename="x.bin", mode="wb", fileobj=buf, mtime=123) as f:
        f.write(data)
    return buf.getvalue()


def gzip_writers(data):
    """``data`` as one gzip member, by writer."""
    return {
        "stdlib gzip, mtime 123": gzip_module.compress(data, mtime=123),
        "stdlib gzip level 0": gzip_module.compress(data, compresslevel=0),
        "GzipFile with FNAME": gzipfile_with_name(data),
        "every header field": gzip_with_every_header_field(data),
        "zlib, small window": zlib.compress(data, 1, 16 + 9),
        "isal level 0": isal_zlib.compress(data, 0, 16 + zlib.MAX_WBITS),
        "isal igzip": igzip.compress(data),
    }


def zlib_streams(data):
    """``data`` as one zlib (RFC 1950) stream, by writer."""
    small_window = zlib.compressobj(9, zlib.DEFLATED, 9)
    return {
        "zlib": zlib.compress(data),
        "zlib, small window": small_window.compress(data) + small_window.flush(),
        "isal zlib": isal_zlib.compress(data, 2),
    }


@pytest.mark.parametrize("name", ["small-alphabet", "random", "one-byte", "empty"])
def test_gzip_reads_other_writers(name):
    data = PAYLOADS[name]
    for writer, encoded in gzip_writers(data).items():
        for size in (None, len(data)):
            assert bytes(Gzip().decode(encoded, size)) == data, writer


@pytest.mark.parametrize("name", ["small-alphabet", "random", "one-byte", "empty"])
def test_gzip_reads_zlib_streams(name):
    data = PAYLOADS[name]
    for writer, encoded in zlib_streams(data).items():
        for size in (None, len(data)):
            assert bytes(Gzip().decode(encoded, size)) == data, writer


@pytest.mark.parametrize("level", [0, 1, 5, 9])
def test_gzip_numcodecs_reads_and_writes(level):
    numcodecs = pytest.importorskip("numcodecs")
    for name, data in PAYLOADS.items():
        assert bytes(numcodecs.GZip(level).decode(Gzip(level).encode(data))) == data, name
        theirs = bytes(numcodecs.GZip(level).encode(data))
        assert bytes(Gzip().decode(theirs, len(data))) == data, name


def test_gzip_concatenated_members():
    a, b = PAYLOADS["small-alphabet"], PAYLOADS["random"][:5000]
    parts = [gzip_module.compress(a), gzip_module.compress(b""), zlib.compress(b, 1, 31),
             Gzip(1).encode(b"tail"), zlib.compress(b"zlib-member")]
    joined = b"".join(parts)
    expected = a + b + b"tail" + b"zlib-member"
    for size in (None, len(expected), len(expected) + 1):
        assert bytes(Gzip().decode(joined, size)) == expected
    with pytest.raises(CodecError, match=f"more than the {len(a) + len(b)} bytes expected"):
        Gzip().decode(joined, len(a) + len(b))
    # A member followed by a copy of itself: the concatenation, not the first.
    one = Gzip(1).encode(a)
    assert bytes(Gzip().decode(one + one, 2 * len(a))) == a + a
    assert bytes(Gzip().decode(one + one)) == a + a
    assert bytes(Gzip().decode(one + gzip_module.compress(b""), len(a))) == a


@pytest.mark.parametrize("after,error", [
    ("the same member", "more than the 150000 bytes expected"),
    ("another member of its size", "more than the 150000 bytes expected"),
    ("junk ending in its size", "could not be decoded"),
])
def test_gzip_data_after_a_member_of_the_expected_size_is_an_error(after, error):
    a = PAYLOADS["small-alphabet"]
    one = Gzip(1).encode(a)
    tail = {"the same member": one,
            "another member of its size": Gzip(1).encode(a[::-1]),
            "junk ending in its size": b"junk" + struct.pack("<I", len(a))}[after]
    with pytest.raises(CodecError, match=error):
        Gzip().decode(one + tail, len(a))


def test_gzip_empty_input():
    assert bytes(Gzip().decode(b"")) == b""
    assert bytes(Gzip().decode(b"", 0)) == b""
    assert bytes(Gzip().decode(Gzip().encode(b""), 0)) == b""


def test_gzip_bytes_like_inputs():
    data = PAYLOADS["small-alphabet"]
    view = memoryview(np.frombuffer(data, dtype=np.uint8))
    encoded = Gzip(1).encode(view)
    assert gzip_module.decompress(encoded) == data
    assert bytes(Gzip().decode(memoryview(encoded))) == data
    assert bytes(Gzip().decode(bytearray(encoded), len(data))) == data


def test_gzip_truncated():
    data = PAYLOADS["small-alphabet"]
    for encoded in (Gzip(1).encode(data), zlib.compress(data), Gzip(0).encode(data)):
        n = len(encoded)
        for cut in (1, 2, 5, 10, 11, n // 2, n - 8, n - 4, n - 1):
            for size in (None, len(data)):
                with pytest.raises(CodecError, match="truncated"):
                    Gzip().decode(encoded[:cut], size)
    # The second member cut short.
    with pytest.raises(CodecError, match="truncated"):
        Gzip().decode(Gzip(1).encode(b"abc") + Gzip(1).encode(data)[:-3])


def gzip_corruptions(encoded):
    """Damaged copies of the gzip member ``encoded``, by what is wrong."""
    flipped = bytearray(encoded)
    flipped[len(encoded) // 2] ^= 0x55
    return {
        "not gzip": b"this is not gzip data",
        "zeros": bytes(64),
        "bad method": encoded[:2] + b"\x07" + encoded[3:],
        "flipped deflate byte": bytes(flipped),
        "bad crc32": encoded[:-8] + struct.pack("<I", zlib.crc32(b"x")) + encoded[-4:],
        "bad length": encoded[:-4] + struct.pack("<I", 12345),
        "trailing garbage": encoded + b"junk!",
        "trailing zeros": encoded + bytes(8),
    }


def test_gzip_corrupt():
    data = PAYLOADS["small-alphabet"]
    for what, bad in gzip_corruptions(Gzip(1).encode(data)).items():
        for size in (None, len(data)):
            # A CodecError, and a zlib.error as the codec raised before.
            with pytest.raises(GzipDataError, match="could not be decoded") as info:
                Gzip().decode(bad, size)
            assert isinstance(info.value, CodecError), what
            assert isinstance(info.value, zlib.error), what


def test_gzip_corrupt_through_chain():
    chunk = np.arange(4096, dtype="<u2").reshape(64, 64)
    chain = CodecChain([Bytes("little"), Gzip(1)], chunk.dtype, chunk.shape)
    encoded = chain.encode(chunk)
    for bad in gzip_corruptions(encoded).values():
        with pytest.raises(CodecError, match="c/1/2.*could not be decoded"):
            chain.decode(bad, "c/1/2")
    with pytest.raises(CodecError, match="c/1/2.*truncated"):
        chain.decode(encoded[:-1], "c/1/2")


@pytest.mark.parametrize("data", [b"\x1f\x8b" + b"not a member" + bytes(4),
                                  Gzip(1).encode(b"")[:3] + b"\x07" + Gzip(1).encode(b"")[4:]],
                         ids=["garbage", "bad method"])
def test_gzip_garbage_is_an_error_when_nothing_is_expected(data):
    with pytest.raises(GzipDataError, match="could not be decoded"):
        Gzip().decode(data, 0)


#: A gzip bomb's size decoded, and the size its reader expects.
BOMB_BYTES = 64 << 20
EXPECTED_BYTES = 1 << 20


@pytest.fixture(scope="module")
def gzip_bomb():
    """One gzip member of 64 MiB of zeros (about 290 KiB), made without holding the zeros."""
    c = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    return b"".join([c.compress(zeros) for _ in range(BOMB_BYTES >> 20)] + [c.flush()])


def traced_peak(call):
    """(``outcome(call)``, the peak bytes tracemalloc saw allocated during the call)."""
    tracemalloc.start()
    try:
        result = outcome(call)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gzip_bomb_decodes_whole_without_an_expected_size(gzip_bomb):
    # Also shows that tracemalloc sees the decoders' output buffers.
    result, peak = traced_peak(lambda: Gzip().decode(gzip_bomb))
    assert result == bytes(BOMB_BYTES)
    assert peak >= BOMB_BYTES


@pytest.mark.parametrize("trailer", ["true", "lying"])
def test_gzip_bomb_stops_at_the_expected_size(gzip_bomb, trailer):
    # A lying trailer claims the expected size.
    bomb = gzip_bomb if trailer == "true" else gzip_bomb[:-4] + struct.pack("<I", EXPECTED_BYTES)
    result, peak = traced_peak(lambda: Gzip().decode(bomb, EXPECTED_BYTES))
    assert result == (CodecError, f"gzip data decodes to more than the {EXPECTED_BYTES} "
                                  f"bytes expected")
    assert peak < 4 * EXPECTED_BYTES


@pytest.mark.parametrize("level", [-1, 10, 1.5, "5", True, None])
def test_gzip_invalid_level(level):
    with pytest.raises(CodecError):
        Gzip(level)
    with pytest.raises(CodecError):
        from_dict({"name": "gzip", "configuration": {"level": level}})


def test_gzip_config():
    with pytest.raises(CodecError, match="level"):
        Gzip.from_config({})
    with pytest.raises(CodecError):
        Gzip.from_config({"level": 1, "x": 2})


def test_gzip_chain_round_trip():
    rng = np.random.default_rng(3)
    chunk = np.cumsum(rng.normal(size=(64, 48)), axis=1)   # native float64
    for level in (0, 1, 4, 7, 9):
        chain = CodecChain([Bytes("big"), Gzip(level)], chunk.dtype, chunk.shape)
        encoded = chain.encode(chunk)
        assert gzip_module.decompress(encoded) == chunk.astype(">f8").tobytes()
        np.testing.assert_array_equal(chain.decode(encoded, "c/0/0"), chunk)


@pytest.mark.parametrize("codecs", [[Bytes(), Gzip(1)], [Bytes(), Gzip(1), Crc32c()]],
                         ids=["gzip", "gzip-crc32c"])
def test_gzip_array_reads(codecs):
    values = field((40, 33, 17), "float32")
    store = zs.MemoryStore()
    store.create_array(NODE, shape=values.shape, chunks=(16, 16, 8), dtype="float32",
                       codecs=codecs)
    store.write_array(NODE, ..., values)
    np.testing.assert_array_equal(store.read_array(NODE), values)
    np.testing.assert_array_equal(store.read_array(NODE, (slice(3, None, 5), 7)),
                                  values[3::5, 7])
    if len(codecs) == 2:
        store.set("a/c/0/1/0", Gzip(1).encode(b"\0" * 100))  # a chunk of the wrong size
        with pytest.raises(CodecError, match="a/c/0/1/0"):
            store.read_array(NODE)
        store.set("a/c/0/1/0", b"not gzip at all")
        with pytest.raises(CodecError, match="a/c/0/1/0"):
            store.read_array(NODE)


def test_gzip_pickles_and_is_shared_between_threads():
    codec = pickle.loads(pickle.dumps(Gzip(2)))
    assert codec == Gzip(2)
    rng = np.random.default_rng(11)
    inputs = [rng.integers(0, 4 + i, 300_000, dtype=np.uint8).tobytes() for i in range(8)]

    def work(data):
        # The setting is global, not per thread: the pool threads see the fixture's.
        for _ in range(3):
            encoded = codec.encode(data)
            assert gzip_module.decompress(encoded) == data
            assert bytes(codec.decode(encoded, len(data))) == data
        return True

    with ThreadPoolExecutor(4) as pool:  # result() re-raises a thread's failure here
        assert all(f.result() for f in [pool.submit(work, d) for d in inputs])


# -- zstd -----------------------------------------------------------------------------

@pytest.fixture(params=["libzstd", "zstandard", "numcodecs"])
def zstd_path(request, monkeypatch):
    """Fast paths on, decoding with the system libzstd (skipped where none
    loads) or with the zstd that the ``zstandard`` package carries (as where
    it is the newer, whatever the size), or fast paths off: numcodecs' zstd."""
    fast = request.param != "numcodecs"
    if request.param == "libzstd" and native_library() is None:
        pytest.skip("no system libzstd loads here (the zstd fast path)")
    bundled = request.param == "zstandard"
    monkeypatch.setattr(zstd_module, "_bundled_is_newer", lambda: bundled)
    monkeypatch.setattr(zstd_module, "BUNDLED_MIN_BYTES", 0)
    with zs.config.set(fast_paths=fast):
        if request.param != "zstandard":
            assert (Zstd().native_decoder(1) is not None) == fast
        else:
            assert Zstd().native_decoder(1) is None
        yield request.param


@pytest.mark.parametrize("level", [-131072, -5, 0, 1, 3, 19, 22])
@pytest.mark.parametrize("checksum", [False, True])
def test_zstd_round_trip(zstd_path, level, checksum):
    data = payload(3000)
    codec = Zstd(level, checksum)
    encoded = codec.encode(data)
    assert type(encoded) is bytes
    assert zstandard.ZstdDecompressor().decompress(encoded) == data   # a real zstd frame
    params = zstandard.get_frame_parameters(encoded)
    assert params.has_checksum == checksum
    assert params.content_size == len(data)
    assert bytes(codec.decode(encoded)) == data
    assert bytes(codec.decode(encoded, len(data))) == data
    out = bytearray(len(data))
    assert codec.decode_into(encoded, out) == len(data)
    assert out == data


#: Payloads numcodecs' zstd reads back: never nothing (it refuses a frame of
#: no content, which zarrsync reads on both paths).
ZSTD_PAYLOADS = sorted(name for name, data in PAYLOADS.items() if data)


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_zstd_round_trip_of_every_payload(zstd_path, name):
    data = PAYLOADS[name]
    codec = Zstd(1, checksum=True)
    encoded = codec.encode(data)
    assert zstandard.ZstdDecompressor().decompress(encoded) == data
    assert zstandard.get_frame_parameters(encoded).content_size == len(data)
    assert bytes(codec.decode(encoded, len(data))) == data


@given(data=st.binary(min_size=1, max_size=3000), level=st.integers(-10, 10),
       checksum=st.booleans(), fast_paths=st.booleans())
def test_zstd_agrees_with_python_zstandard(data, level, checksum, fast_paths):
    theirs = zstandard.ZstdCompressor(level=level, write_checksum=checksum).compress(data)
    with zs.config.set(fast_paths=fast_paths):
        encoded = Zstd(level, checksum).encode(data)
        assert bytes(Zstd().decode(theirs, len(data))) == data
        assert bytes(Zstd().decode(theirs)) == data
    assert zstandard.ZstdDecompressor().decompress(encoded) == data


@needs_libzstd
@pytest.mark.parametrize("level,checksum", [(-5, False), (1, True), (3, False), (19, True)])
@pytest.mark.parametrize("name", ["random", "smooth-float32", "zeros", "one-byte"])
def test_zstd_frames_of_either_path_read_on_the_other(level, checksum, name):
    data = PAYLOADS[name]
    codec = Zstd(level, checksum)
    frames = []
    for fast_paths in (True, False):
        with zs.config.set(fast_paths=fast_paths):
            frames.append(codec.encode(data))
    for frame in frames:
        assert zstandard.ZstdDecompressor().decompress(frame) == data
        params = zstandard.get_frame_parameters(frame)
        assert (params.content_size, params.has_checksum) == (len(data), checksum)
        for fast_paths in (True, False):
            with zs.config.set(fast_paths=fast_paths):
                assert bytes(codec.decode(frame, len(data))) == data
                assert bytes(codec.decode(frame)) == data


def _streamed(data):
    # read_to_iter does not know the size in advance: no content size.
    return b"".join(zstandard.ZstdCompressor().read_to_iter(io.BytesIO(data), read_size=7777))


def _compressobj(data):
    c = zstandard.ZstdCompressor(write_checksum=True).compressobj()
    return c.compress(data) + c.flush()


#: Frames as other writers make them, by writer: each a function of the data.
ZSTD_WRITERS = {
    "content size": zstandard.ZstdCompressor(level=3).compress,
    "no content size": zstandard.ZstdCompressor(write_content_size=False).compress,
    "checksum": zstandard.ZstdCompressor(write_checksum=True).compress,
    "streamed": _streamed,
    "compressobj with checksum": _compressobj,
}


@pytest.mark.parametrize("writer", sorted(ZSTD_WRITERS))
@pytest.mark.parametrize("name", ["small-alphabet", "random", "one-byte"])
def test_zstd_reads_other_writers(zstd_path, writer, name):
    data = PAYLOADS[name]
    frame = ZSTD_WRITERS[writer](data)
    assert bytes(Zstd().decode(frame)) == data
    assert bytes(Zstd().decode(frame, len(data))) == data
    out = bytearray(len(data))
    assert Zstd().decode_into(frame, out) == len(data)
    assert out == data


def test_zstd_numcodecs_reads_and_writes(zstd_path):
    numcodecs = pytest.importorskip("numcodecs")
    for name in ZSTD_PAYLOADS:
        data = PAYLOADS[name]
        assert bytes(numcodecs.Zstd().decode(Zstd(1, True).encode(data))) == data, name
        theirs = bytes(numcodecs.Zstd(level=5, checksum=True).encode(data))
        assert bytes(Zstd().decode(theirs, len(data))) == data, name


def several_frames():
    """(frames one after another, what they decode to)."""
    a, b = PAYLOADS["small-alphabet"][:2000], PAYLOADS["random"][:3000]
    c = b"three frames"
    frames = (ZSTD_WRITERS["content size"](a) + ZSTD_WRITERS["no content size"](b)
              + ZSTD_WRITERS["checksum"](c))
    return frames, a + b + c


def test_zstd_several_frames_decode_to_their_concatenation(zstd_path):
    frames, data = several_frames()
    assert bytes(Zstd().decode(frames, len(data))) == data
    out = bytearray(len(data))
    assert Zstd().decode_into(frames, out) == len(data)
    assert out == data


def test_zstd_several_frames_decode_to_their_concatenation_without_a_size():
    frames, data = several_frames()
    assert bytes(Zstd().decode(frames)) == data


def test_zstd_truncated_frames(zstd_path):
    data = payload()
    for encoded in (ZSTD_WRITERS["no content size"](data), Zstd().encode(data)):
        for cut in (4, len(encoded) // 2, len(encoded) - 1):
            with pytest.raises(CodecError):
                Zstd().decode(encoded[:cut])


GUARD = b"\xa5" * 64


def decode_into_guarded(frame, n):
    """``Zstd().decode_into(frame, out)`` with ``out`` the first ``n`` bytes of
    a buffer, checking that the bytes after ``out`` stay untouched."""
    buf = bytearray(b"\0" * n + GUARD)
    try:
        return Zstd().decode_into(frame, memoryview(buf)[:n])
    finally:
        assert buf[n:] == GUARD, "decode_into wrote past its buffer"


def not_whole_frames():
    """(decoded size, {what is wrong: data that is not whole zstd frames})."""
    data = PAYLOADS["small-alphabet"]   # two blocks
    good = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    no_size = ZSTD_WRITERS["no content size"](data)
    flipped = bytearray(good)
    flipped[-2] ^= 0xFF   # in the checksum
    return len(data), {
        "truncated: frame header only": good[:6],
        "truncated: half a frame": good[:len(good) // 2],
        "truncated: in the checksum": good[:-1],
        "truncated: no content size": no_size[:-3],
        "checksum mismatch": bytes(flipped),
        "not zstd": bytes(64),
        "trailing junk": good + b"junk",
    }


@pytest.mark.parametrize("what", sorted(not_whole_frames()[1]))
def test_zstd_decode_into_rejects_what_is_not_whole_frames(zstd_path, what):
    size, cases = not_whole_frames()
    for n in (size, size + 100):
        with pytest.raises(CodecError, match="zstd"):
            decode_into_guarded(cases[what], n)
    with pytest.raises(CodecError, match="zstd"):
        Zstd().decode(cases[what], size)


def test_zstd_decode_without_a_size_rejects_trailing_junk():
    _, cases = not_whole_frames()
    with pytest.raises(CodecError):
        Zstd().decode(cases["trailing junk"])


@pytest.mark.parametrize("writer", ["content size", "no content size"])
def test_zstd_decode_into_rejects_frames_larger_than_out(zstd_path, writer):
    data = PAYLOADS["small-alphabet"]
    frame = ZSTD_WRITERS[writer](data)
    for n in (0, 1, len(data) // 2, len(data) - 1):
        with pytest.raises(CodecError, match="zstd"):
            decode_into_guarded(frame, n)
    with pytest.raises(CodecError, match="zstd"):
        Zstd().decode(frame, len(data) - 1)


def test_zstd_checksum_detects_corruption(zstd_path):
    data = payload()
    encoded = bytearray(Zstd(3, checksum=True).encode(data))
    encoded[-1] ^= 0xFF   # the frame checksum
    with pytest.raises(CodecError):
        Zstd().decode(bytes(encoded))
    with pytest.raises(CodecError, match="checksum"):
        Zstd().decode(bytes(encoded), len(data))


def test_zstd_garbage(zstd_path):
    with pytest.raises(CodecError):
        Zstd().decode(b"definitely not a zstd frame")
    with pytest.raises(CodecError):
        Zstd().decode(b"definitely not a zstd frame", 100)


@pytest.mark.parametrize("level", [23, 100, -131073, 1.5, "3", True, None])
def test_zstd_invalid_level(level):
    with pytest.raises(InvalidZstdLevel):
        Zstd(level)
    with pytest.raises(InvalidZstdLevel):
        from_dict({"name": "zstd", "configuration": {"level": level, "checksum": False}})
    assert issubclass(InvalidZstdLevel, CodecError)


def test_zstd_config():
    with pytest.raises(CodecError):
        Zstd(3, checksum="yes")
    with pytest.raises(CodecError):
        Zstd.from_config({"level": 3, "checksum": False, "extra": 1})
    assert Zstd.from_config({}) == Zstd(0, False)


def test_zstd_shared_between_threads(zstd_path):
    codec = Zstd(3)
    inputs = [payload(2000, seed) for seed in range(8)]
    errors = []

    def work(data):
        try:
            for _ in range(20):
                assert bytes(codec.decode(codec.encode(data))) == data
                assert bytes(codec.decode(codec.encode(data), len(data))) == data
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(d,)) for d in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_zstd_pickles():
    codec = pickle.loads(pickle.dumps(Zstd(7, True)))
    assert codec == Zstd(7, True)
    assert bytes(codec.decode(codec.encode(b"abc" * 100))) == b"abc" * 100


@pytest.mark.parametrize("codecs", [[Bytes(), Zstd(1)], [Bytes(), Zstd(1), Crc32c()],
                                    [Bytes(), Crc32c(), Zstd(1)]],
                         ids=["zstd", "zstd-crc32c", "crc32c-zstd"])
def test_zstd_reads_of_several_chunks_do_not_share_a_buffer(zstd_path, codecs):
    values = field((4, 32, 32), "float32") * np.arange(1, 5, dtype="float32")[:, None, None]
    store = zs.MemoryStore()
    store.create_array(NODE, shape=values.shape, chunks=(1, 32, 32), dtype="float32",
                       codecs=codecs)
    store.write_array(NODE, ..., values)
    reads = [store.read_array(NODE, k) for k in range(4)]
    for k in range(4):
        np.testing.assert_array_equal(reads[k], values[k])
    np.testing.assert_array_equal(store.read_array(NODE, (slice(None), 3, slice(None, None, 5))),
                                  values[:, 3, ::5])


@pytest.mark.parametrize("extra_elements", [10, -1, -32])
def test_zstd_chunk_of_the_wrong_size_is_an_error_naming_it(zstd_path, extra_elements):
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(64,), chunks=(32,), dtype="float32",
                       codecs=[Bytes(), Zstd(1)])
    store.write_array(NODE, ..., np.arange(64, dtype="float32"))
    raw = np.arange(32 + extra_elements, dtype="float32").tobytes()  # more, fewer or none
    store.set("a/c/1", zstandard.ZstdCompressor().compress(raw) if raw else b"")
    with pytest.raises(CodecError, match="a/c/1"):
        store.read_array(NODE)
    np.testing.assert_array_equal(store.read_array(NODE, slice(0, 32)), np.arange(32))


# -- the zstd fast path: the system libzstd -------------------------------------------

@needs_libzstd
def test_native_library_reports_soname_and_version():
    soname, version = native_library()
    assert soname in libzstd.SONAMES
    assert (libzstd.soname(), libzstd.version()) == (soname, version)
    assert version >= libzstd.MIN_VERSION
    assert version == ctypes.CDLL(soname).ZSTD_versionNumber()


def test_native_is_none_with_fast_paths_off():
    with zs.config.set(fast_paths=False):
        assert Zstd(3, True).native() is None
        assert CodecChain([Bytes(), Zstd()], "float32", (8,)).native() is None


@needs_libzstd
def test_native_is_a_libzstd_context_per_thread():
    with zs.config.set(fast_paths=True):
        ctx = Zstd(5, True).native()
        assert isinstance(ctx, libzstd.ZstdContext) and isinstance(ctx, native.NativeCodec)
        assert (ctx.level, ctx.checksum) == (5, True)
        again = Zstd(-1, False).native()          # this thread's, set to the new codec
        assert (again.level, again.checksum) == (-1, False)
        others = []
        thread = threading.Thread(target=lambda: others.append(Zstd(5, True).native()))
        thread.start()
        thread.join()
        assert others[0] is not again
        assert CodecChain([Bytes(), Zstd(2)], "float32", (8,)).native() is again
        assert CodecChain([Bytes(), Zstd(2), Crc32c()], "float32", (8,)).native() is None
        assert Gzip().native() is None


@needs_libzstd
@pytest.mark.parametrize("level,checksum", [(1, False), (3, True), (-5, True), (19, False)])
def test_zstd_encodes_what_the_context_compresses(level, checksum):
    data = field((64, 64, 16), "float32").tobytes()
    ctx = libzstd.ZstdContext(level, checksum)
    out = bytearray(ctx.bound(len(data)))
    n = ctx.compress_into(data, out)
    with zs.config.set(fast_paths=True):
        assert Zstd(level, checksum).encode(data) == out[:n]


@needs_libzstd
def test_zstd_context_compresses_and_decompresses_into_buffers():
    data = PAYLOADS["smooth-float32"]
    ctx = libzstd.ZstdContext(3, True)
    assert (ctx.level, ctx.checksum) == (3, True)
    out = bytearray(ctx.bound(len(data)))
    n = ctx.compress_into(memoryview(data), out)
    frame = bytes(out[:n])
    params = zstandard.get_frame_parameters(frame)
    assert (params.content_size, params.has_checksum) == (len(data), True)
    assert zstandard.ZstdDecompressor().decompress(frame) == data
    decoded = np.zeros(len(data) + 5, dtype=np.uint8)   # any writable buffer; room to spare
    assert ctx.decompress_into(frame, decoded) == len(data)
    assert decoded[:len(data)].tobytes() == data
    two = bytearray(2 * len(data))
    assert ctx.decompress_into(frame + frame, two) == 2 * len(data)
    assert two == data + data


@needs_libzstd
def test_zstd_context_configure_changes_the_frames():
    data = payload(20_000)
    ctx = libzstd.ZstdContext(19, False)
    ctx.configure(1, True)
    assert (ctx.level, ctx.checksum) == (1, True)
    out, fresh = bytearray(ctx.bound(len(data))), bytearray(ctx.bound(len(data)))
    n = ctx.compress_into(data, out)
    assert out[:n] == fresh[:libzstd.ZstdContext(1, True).compress_into(data, fresh)]
    assert zstandard.get_frame_parameters(bytes(out[:n])).has_checksum
    with pytest.raises(AttributeError):
        ctx.level = 3                      # only configure changes it


@needs_libzstd
@pytest.mark.parametrize("n", [0, 1, 1000, (128 << 10) - 1, 128 << 10, 10 << 20])
def test_zstd_context_bound(n):
    # ZSTD_COMPRESSBOUND from zstd.h.
    margin = ((128 << 10) - n) >> 11 if n < (128 << 10) else 0
    assert libzstd.ZstdContext(1, False).bound(n) == n + (n >> 8) + margin


@needs_libzstd
def test_zstd_context_incompressible_frames_fit_the_bound():
    data = PAYLOADS["random"]
    ctx = libzstd.ZstdContext(22, True)
    out = bytearray(ctx.bound(len(data)))
    n = ctx.compress_into(data, out)
    assert len(data) < n <= len(out)


@needs_libzstd
def test_zstd_context_errors():
    data = payload()
    ctx = libzstd.ZstdContext(3, False)
    frame = bytearray(ctx.bound(len(data)))
    frame = bytes(frame[:ctx.compress_into(data, frame)])
    with pytest.raises(libzstd.ZstdError, match="Destination buffer is too small"):
        ctx.compress_into(data, bytearray(10))
    with pytest.raises(libzstd.ZstdError, match="Destination buffer is too small"):
        ctx.decompress_into(frame, bytearray(len(data) - 1))
    with pytest.raises(libzstd.ZstdError, match="Unknown frame descriptor"):
        ctx.decompress_into(b"\0" * 64, bytearray(100))
    with pytest.raises(libzstd.ZstdError):
        ctx.decompress_into(frame[:-1], bytearray(len(data)))
    with pytest.raises(BufferError):
        ctx.compress_into(data, bytes(ctx.bound(len(data))))   # read-only
    assert not issubclass(libzstd.ZstdError, CodecError)      # the codec converts it
    # The context still works after every error.
    assert ctx.decompress_into(frame, bytearray(len(data))) == len(data)


# -- batches of chunks: native.encode_many --------------------------------------------

@needs_libzstd
@given(data=st.data())
def test_encode_many_matches_compress_into_chunk_by_chunk(data):
    itemsize = data.draw(st.sampled_from([1, 2, 4, 8, 16]), label="itemsize")
    chunk_nbytes = itemsize * data.draw(st.integers(1, 200), label="elements")
    kinds = data.draw(st.lists(st.sampled_from(["fill", "fill but one byte", "random"]),
                               max_size=8), label="chunks")
    level = data.draw(st.integers(-3, 5), label="level")
    checksum = data.draw(st.booleans(), label="checksum")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    fill = rng.bytes(itemsize)
    chunks = []
    for kind in kinds:
        chunk = bytearray(fill * (chunk_nbytes // itemsize))
        if kind == "random":
            chunk = bytearray(rng.bytes(chunk_nbytes))
        elif kind == "fill but one byte":
            chunk[int(rng.integers(chunk_nbytes))] ^= 0xFF
        chunks.append(bytes(chunk))
    ctx = libzstd.ZstdContext(level, checksum)
    scratch = bytearray(len(chunks) * ctx.bound(chunk_nbytes))
    frames = native.encode_many(ctx, b"".join(chunks), chunk_nbytes, fill, scratch)
    assert len(frames) == len(chunks)
    reference = libzstd.ZstdContext(level, checksum)
    for chunk, frame in zip(chunks, frames):
        if chunk == fill * (chunk_nbytes // itemsize):
            assert frame is None
            continue
        expected = bytearray(reference.bound(chunk_nbytes))
        expected = bytes(expected[:reference.compress_into(chunk, expected)])
        assert type(frame) is bytes and frame == expected
        assert zstandard.ZstdDecompressor().decompress(expected) == chunk


def test_encode_many_checks_its_arguments():
    codec = native.NativeCodec()             # bound(n) == n
    fill = b"\0\0"
    assert native.encode_many(codec, bytes(16), 8, fill, bytearray(16)) == [None, None]
    assert native.encode_many(codec, b"", 8, fill, bytearray(0)) == []
    with pytest.raises(ValueError, match="scratch holds 15 bytes"):
        native.encode_many(codec, bytes(16), 8, fill, bytearray(15))
    with pytest.raises(ValueError, match="not whole chunks"):
        native.encode_many(codec, bytes(17), 8, fill, bytearray(32))
    with pytest.raises(ValueError, match="not whole chunks"):
        native.encode_many(codec, bytes(16), 0, fill, bytearray(32))
    with pytest.raises(ValueError, match="not whole 3-byte elements"):
        native.encode_many(codec, bytes(16), 8, b"\0" * 3, bytearray(16))
    with pytest.raises(ValueError, match="0-byte elements"):
        native.encode_many(codec, bytes(16), 8, b"", bytearray(16))
    with pytest.raises(BufferError):
        native.encode_many(codec, bytes(16), 8, fill, bytes(16))   # read-only scratch


def test_encode_many_names_the_chunk_the_codec_failed_on():
    # The base class fails every call; the fill chunk before it is never encoded.
    src = bytes(8) + b"\1" * 8 + bytes(8)
    with pytest.raises(RuntimeError, match="chunk 1 of the batch"):
        native.encode_many(native.NativeCodec(), src, 8, b"\0", bytearray(24))


# -- crc32c ---------------------------------------------------------------------------

def test_crc32c_known_value():
    # The CRC-32C check value (RFC 3720, Castagnoli).
    encoded = Crc32c().encode(b"123456789")
    assert encoded == b"123456789" + struct.pack("<I", 0xE3069283)


def test_crc32c_round_trip():
    data = payload()
    encoded = Crc32c().encode(data)
    assert len(encoded) == len(data) + 4
    assert Crc32c().size_after_encode(len(data)) == len(encoded)
    assert bytes(Crc32c().decode(encoded)) == data
    assert bytes(Crc32c().decode(Crc32c().encode(b""))) == b""


@pytest.mark.parametrize("position", [0, 100, -5, -1])
def test_crc32c_mismatch(position):
    encoded = bytearray(Crc32c().encode(payload(500)))
    encoded[position] ^= 0x10
    with pytest.raises(ChecksumMismatch):
        Crc32c().decode(bytes(encoded))
    assert issubclass(ChecksumMismatch, CodecError)


def test_crc32c_too_short():
    with pytest.raises(ValueError):
        Crc32c().decode(b"abc")


def test_crc32c_config():
    with pytest.raises(CodecError):
        Crc32c.from_config({"x": 1})
    assert Crc32c.from_config({}) == Crc32c()


# -- bounded decoding: no decode produces more than its bound -------------------------

@pytest.mark.parametrize("name", ["small-alphabet", "random", "one-byte", "empty"])
def test_gzip_decodes_up_to_its_bound_and_refuses_one_byte_more(name):
    data = PAYLOADS[name]
    for writer, encoded in {**gzip_writers(data), **zlib_streams(data)}.items():
        assert bytes(Gzip().decode(encoded, len(data))) == data, writer
        if data:
            with pytest.raises(CodecError, match=f"gzip data decodes to more than the "
                                                 f"{len(data) - 1} bytes expected"):
                Gzip().decode(encoded, len(data) - 1)


def test_gzip_members_share_one_bound():
    a = PAYLOADS["small-alphabet"]
    joined = Gzip(1).encode(a) + Gzip(1).encode(a)
    assert bytes(Gzip().decode(joined, 2 * len(a))) == a + a
    with pytest.raises(CodecError, match=f"more than the {2 * len(a) - 1} bytes expected"):
        Gzip().decode(joined, 2 * len(a) - 1)


def zstd_frames_by_writer(data):
    """``data`` as zstd frames by writer, several frames one after another too."""
    frames = {writer: make(data) for writer, make in ZSTD_WRITERS.items()}
    half = len(data) // 2
    frames["two frames"] = (ZSTD_WRITERS["content size"](data[:half])
                            + ZSTD_WRITERS["no content size"](data[half:]))
    frames["skippable frame first"] = (b"\x50\x2a\x4d\x18" + struct.pack("<I", 3) + b"abc"
                                       + ZSTD_WRITERS["checksum"](data))
    return frames


@pytest.mark.parametrize("name", ["small-alphabet", "one-byte", "zeros"])
def test_zstd_decodes_up_to_its_bound_and_refuses_one_byte_more(zstd_path, name):
    data = PAYLOADS[name]
    for writer, frames in zstd_frames_by_writer(data).items():
        assert bytes(Zstd().decode(frames, len(data))) == data, writer
        # A looser bound (variable-length data): frames without a content
        # size take at most one 128 KiB block more than they hold.
        assert bytes(Zstd().decode(frames, len(data) + ZSTD_BLOCK)) == data, writer
        with pytest.raises(CodecError, match="zstd"):
            Zstd().decode(frames, len(data) - 1)


def lying_frame(frame, declared):
    """``frame`` (one with a 4-byte content size) claiming ``declared`` bytes."""
    assert frame[4] >> 6 == 2, "the frame must have a 4-byte content size"
    return frame[:5] + struct.pack("<I", declared) + frame[9:]


def test_zstd_frames_declaring_more_than_the_bound_are_refused_at_once(zstd_path):
    data = PAYLOADS["small-alphabet"]
    frame = zstandard.ZstdCompressor(level=1).compress(data)
    for declared in (len(data) + 1, 2**32 - 1):
        bad = lying_frame(frame, declared)
        with pytest.raises(CodecError, match=f"declares {declared} bytes, more than the "
                                             f"{len(data)} bytes expected"):
            Zstd().decode(bad, len(data))
    # A later frame pushes the total over.
    two = ZSTD_WRITERS["content size"](b"x") + frame
    with pytest.raises(CodecError, match=f"frames declare {len(data) + 1} bytes, more than "
                                         f"the {len(data)} bytes expected"):
        Zstd().decode(two, len(data))


def test_zstd_frames_holding_more_than_they_declare_are_refused(zstd_path):
    data = PAYLOADS["small-alphabet"]
    frame = zstandard.ZstdCompressor(level=1).compress(data)
    for bound in (len(data) - 10, len(data) + 10):
        with pytest.raises(CodecError, match="zstd"):
            Zstd().decode(lying_frame(frame, len(data) - 10), bound)


def numcodecs_zstd():
    from numcodecs import zstd
    return zstd


@pytest.mark.parametrize("writer", sorted(ZSTD_WRITERS) + ["numcodecs"])
def test_zstd_frames_of_no_content_decode_to_nothing(zstd_path, writer):
    frame = (bytes(numcodecs_zstd().compress(b"", 1)) if writer == "numcodecs"
             else ZSTD_WRITERS[writer](b""))
    for frames in (frame, frame + frame, b""):
        assert bytes(Zstd().decode(frames)) == b""
        assert bytes(Zstd().decode(frames, 0)) == b""
        assert bytes(Zstd().decode(frames, 100)) == b""
        assert Zstd().decode_into(frames, bytearray(0)) == 0
    with pytest.raises(CodecError, match="zstd"):
        Zstd().decode_into(frame, bytearray(1))
    with pytest.raises(CodecError, match="zstd"):
        Zstd().decode(frame + b"junk", 0)
    chain = CodecChain([Bytes(), Zstd()], "uint8", (0,))
    assert chain.decode(frame, "c/0").shape == (0,)


@pytest.fixture
def fast_paths_off():
    with zs.config.set(fast_paths=False):
        yield


def test_zstd_portable_route_reads_frames_without_a_content_size_that_fit(fast_paths_off):
    data = PAYLOADS["small-alphabet"]
    frame = ZSTD_WRITERS["no content size"](data)
    # Their block headers bound them within the limit: streamed by numcodecs.
    assert bytes(Zstd().decode(frame, 4 * len(data))) == data
    # Else only when they fill the limit exactly (fixed-size chunks).
    assert bytes(Zstd().decode(frame, len(data))) == data
    with pytest.raises(CodecError, match="without a content size"):
        Zstd().decode(frame, len(data) + 1)


def test_crc32c_decodes_up_to_its_bound_and_refuses_one_byte_more():
    data = payload(500)
    encoded = Crc32c().encode(data)
    assert bytes(Crc32c().decode(encoded, len(data))) == data
    with pytest.raises(CodecError, match=f"crc32c: the data holds {len(data)} bytes and a "
                                         f"checksum, more than the {len(data) - 1} bytes"):
        Crc32c().decode(encoded, len(data) - 1)


def test_codecs_declare_bounded_decoding():
    for codec in (Gzip(), Zstd(), Crc32c()):
        assert codec.decodes_bounded, codec
        # Their largest encodings bound their real ones.
        for name, data in PAYLOADS.items():
            assert len(codec.encode(data)) <= codec.max_encoded_size(len(data)), (codec, name)
    assert Crc32c().max_encoded_size(10) == 14


def test_chain_limits_of_fixed_size_chunks():
    c = CodecChain([Bytes(), Gzip(1), Crc32c()], "int16", (4, 5))
    raw, decoded, stored = c.limits()
    gzip_most = Gzip().max_encoded_size(40)
    assert (raw, decoded, stored) == (40, (40, gzip_most), gzip_most + 4)
    c = CodecChain([Bytes(), Crc32c(), Zstd(1)], "int16", (4, 5))
    assert c.limits() == (40, (40, 44), Zstd().max_encoded_size(44))
    # Without bytes->bytes codecs a stored chunk is its raw form.
    assert CodecChain([Bytes()], "int16", (4, 5)).limits() == (40, (), 40)


def test_chain_limits_of_variable_length_chunks_follow_the_config():
    c = CodecChain([codecs.VlenBytes(), Zstd(1)], object, (10,))
    with zs.config.set(max_chunk_bytes=1000):
        assert c.limits() == (1000, (1000,), Zstd().max_encoded_size(1000))
    with zs.config.set(max_chunk_bytes=5000):
        assert c.limits()[0] == 5000


class Unbounded(codecs.BytesToBytesCodec):
    """zlib, decoded without a bound: a codec that declares no bounded decoding."""

    name = "test-unbounded-zlib"

    def to_dict(self):
        return {"name": self.name}

    def encode(self, data):
        return zlib.compress(data)

    def decode(self, data, max_size=None):
        return zlib.decompress(data)


def test_chain_checks_codecs_that_decode_unbounded_after_the_fact():
    assert not Unbounded().decodes_bounded and Unbounded().max_encoded_size(10) is None
    c = CodecChain([Bytes(), Unbounded(), Zstd(1)], "uint8", (100,))
    with zs.config.set(max_chunk_bytes=1000):
        # Nothing bounds the unknown codec's encoding but the setting.
        assert c.limits() == (100, (100, 1000), Zstd().max_encoded_size(1000))
    x = np.arange(100, dtype="uint8")
    np.testing.assert_array_equal(c.decode(c.encode(x), "c/0"), x)
    bomb = Zstd(1).encode(zlib.compress(bytes(5000)))
    with pytest.raises(CodecError, match="c/1.*test-unbounded-zlib: the data decoded to 5000 "
                                         "bytes, more than the 100 bytes expected"):
        c.decode(bomb, "c/1")


def test_chain_refuses_variable_length_chunks_beyond_the_setting():
    c = CodecChain([codecs.VlenBytes()], object, (2,))
    frame = struct.pack("<II", 2, 3) + b"abc" + struct.pack("<I", 0)
    with zs.config.set(max_chunk_bytes=len(frame)):
        assert list(c.decode(frame, "c/0")) == [b"abc", b""]
    with zs.config.set(max_chunk_bytes=len(frame) - 1):
        with pytest.raises(CodecError, match=f"c/1.*vlen-bytes: the chunk holds {len(frame)} "
                                             f"bytes, more than the {len(frame) - 1} allowed "
                                             f"\\(config max_chunk_bytes\\)"):
            c.decode(frame, "c/1")


# -- JSON forms ---------------------------------------------------------------------

CODECS = [
    (Bytes(), {"name": "bytes", "configuration": {"endian": "little"}}),
    (Bytes("big"), {"name": "bytes", "configuration": {"endian": "big"}}),
    (Bytes(None), {"name": "bytes"}),
    (Transpose((1, 0, 2)), {"name": "transpose", "configuration": {"order": [1, 0, 2]}}),
    (Gzip(), {"name": "gzip", "configuration": {"level": 5}}),
    (Gzip(9), {"name": "gzip", "configuration": {"level": 9}}),
    (Zstd(), {"name": "zstd", "configuration": {"level": 0, "checksum": False}}),
    (Zstd(-3, True), {"name": "zstd", "configuration": {"level": -3, "checksum": True}}),
    (Crc32c(), {"name": "crc32c"}),
]


@pytest.mark.parametrize("codec,doc", CODECS, ids=[repr(c) for c, _ in CODECS])
def test_to_dict_from_dict(codec, doc):
    assert codec.to_dict() == doc
    again = from_dict(doc)
    assert type(again) is type(codec)
    assert again == codec
    assert hash(again) == hash(codec)
    assert again.to_dict() == doc
    assert from_dict(codec) is codec


def test_defaults():
    assert Bytes().endian == "little"
    assert Gzip().level == 5
    assert (Zstd().level, Zstd().checksum) == (0, False)


def test_from_dict_forms():
    assert from_dict("crc32c") == Crc32c()
    assert from_dict({"name": "crc32c", "configuration": {}}) == Crc32c()
    assert from_dict({"name": "zstd"}) == Zstd()
    assert from_dict({"name": "bytes", "must_understand": True}) == Bytes(None)


@pytest.mark.parametrize("doc", [{"name": "unknown"}, {"configuration": {}}, 5, None,
                                 ["bytes"], {"name": "bytes", "configuration": [1]},
                                 {"name": "bytes", "extra": 1}, "zfp"])
def test_from_dict_rejects(doc):
    with pytest.raises(CodecError):
        from_dict(doc)


def test_equality():
    assert Zstd(1) != Zstd(2)
    assert Gzip(1) != Zstd(1)
    assert Transpose((0, 1)) != Transpose((1, 0))
    assert len({Zstd(1), Zstd(1), Gzip(1), Crc32c(), Crc32c()}) == 3


def test_register_codec():
    class Noop(codecs.BytesToBytesCodec):
        name = "zarrsync-test-noop"

        @classmethod
        def from_config(cls, configuration):
            return cls()

        def to_dict(self):
            return {"name": self.name}

        def encode(self, data):
            return bytes(data)

        def decode(self, data, size_hint=None):
            return data

    codecs.register_codec(Noop)
    try:
        assert isinstance(from_dict({"name": "zarrsync-test-noop"}), Noop)
        chain = CodecChain([Bytes(), Noop()], "int16", (3,))
        x = np.array([1, 2, 3], dtype="int16")
        np.testing.assert_array_equal(chain.decode(chain.encode(x)), x)
    finally:
        _registry._REGISTRY.pop("zarrsync-test-noop", None)   # there is no unregister


def test_parse_codecs():
    assert codecs.parse_codecs(Bytes()) == [Bytes()]
    assert codecs.parse_codecs({"name": "crc32c"}) == [Crc32c()]
    assert codecs.parse_codecs([{"name": "bytes"}, Zstd(1)]) == [Bytes(None), Zstd(1)]


def test_default_codecs():
    assert codecs.default_codecs(np.dtype("float32")) == [Bytes("little"), Zstd(0, False)]


# -- chains ---------------------------------------------------------------------------

def test_errors_alias():
    assert BytesToBytesInvariant is ArrayToBytesInvariant
    assert zs.BytesToBytesInvariant is zs.ArrayToBytesInvariant
    assert issubclass(ArrayToBytesInvariant, CodecError)
    assert issubclass(InvalidCodecOrdering, CodecError)


@pytest.mark.parametrize("chain", [
    [],
    [Zstd()],
    [Transpose((0,)), Crc32c()],
    [Bytes(), Bytes()],
    [Bytes(), Zstd(), Bytes()],
])
def test_chain_needs_one_array_to_bytes(chain):
    with pytest.raises(ArrayToBytesInvariant):
        CodecChain(chain, "int32", (4,))
    with pytest.raises(BytesToBytesInvariant):
        CodecChain(chain, "int32", (4,))


@pytest.mark.parametrize("chain", [
    [Zstd(), Bytes()],
    [Crc32c(), Bytes(), Zstd()],
    [Bytes(), Transpose((0,))],
    [Bytes(), Zstd(), Transpose((0,))],
    [Transpose((0,)), Crc32c(), Bytes()],
])
def test_chain_ordering(chain):
    with pytest.raises(InvalidCodecOrdering):
        CodecChain(chain, "int32", (4,))


def test_chain_rejects_non_codec():
    with pytest.raises(CodecError):
        CodecChain([Bytes(), "zstd"], "int32", (4,))


@pytest.mark.parametrize("chain", [
    [Bytes()],
    [Bytes("big"), Gzip(1)],
    [Transpose((2, 0, 1)), Bytes("big"), Zstd(1, True), Crc32c()],
    [Transpose((1, 0, 2)), Transpose((2, 1, 0)), Bytes(), Crc32c(), Gzip(3), Crc32c()],
])
@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32", "complex128"])
def test_chain_round_trip(chain, dtype):
    x = sample(dtype, (3, 4, 5))
    c = CodecChain(chain, dtype, (3, 4, 5))
    encoded = c.encode(x)
    assert isinstance(encoded, bytes)
    np.testing.assert_array_equal(c.decode(encoded, "k"), x)
    assert c.to_dicts() == [codec.to_dict() for codec in c.codecs]


def test_chain_encoded_shape():
    c = CodecChain([Transpose((2, 0, 1)), Bytes()], "int8", (3, 4, 5))
    assert c.encoded_shape == (5, 3, 4)
    x = np.arange(60, dtype="int8").reshape(3, 4, 5)
    assert c.encode(x) == np.ascontiguousarray(x.transpose(2, 0, 1)).tobytes()


def test_chain_decode_errors_name_the_key():
    c = CodecChain([Bytes(), Zstd(), Crc32c()], "int32", (8,))
    good = c.encode(np.arange(8, dtype="int32"))
    bad = bytearray(good)
    bad[3] ^= 1
    with pytest.raises(ChecksumMismatch, match="grp/arr/c/0"):
        c.decode(bytes(bad), "grp/arr/c/0")
    with pytest.raises(CodecError, match="grp/arr/c/1"):
        c.decode(good[:2], "grp/arr/c/1")       # shorter than a checksum
    c2 = CodecChain([Bytes(), Zstd()], "int32", (8,))
    with pytest.raises(CodecError, match="a/c/7"):
        c2.decode(b"\x00" * 40, "a/c/7")
    c3 = CodecChain([Bytes(), Gzip()], "int32", (8,))
    with pytest.raises(CodecError, match="a/c/8"):
        c3.decode(b"garbage bytes", "a/c/8")


@pytest.mark.parametrize("endian", ["little", "big"])
@pytest.mark.parametrize("order", ["<", ">"])
def test_bytes_encode_takes_either_input_byte_order(endian, order):
    values = np.arange(5, dtype="float64") - 2.5
    encoded = bytes(Bytes(endian).encode(values.astype(order + "f8")))
    assert encoded == values.astype(("<" if endian == "little" else ">") + "f8").tobytes()


def test_chain_capabilities():
    raw = CodecChain([Bytes(), Zstd()], "float32", (4, 5))
    assert raw.stores_raw and raw.raw_nbytes == 80 and raw.inner_chunks is None
    foreign = "big" if sys.byteorder == "little" else "little"
    assert not CodecChain([Bytes(foreign), Zstd()], "float32", (4, 5)).stores_raw
    assert CodecChain([Bytes(foreign), Zstd()], "uint8", (4, 5)).stores_raw   # no byte order
    assert not CodecChain([Transpose((1, 0)), Bytes(), Zstd()], "float32", (4, 5)).stores_raw
    assert CodecChain([Bytes(), Crc32c(), Gzip()], "int16", (4, 5)).raw_nbytes == 40
    sharding = ShardingIndexed((2, 5), [Bytes(), Zstd()])
    assert CodecChain([sharding], "float32", (4, 5)).inner_chunks is not None
    # Inner chunks are read in the array's own bytes: no codec around the shard.
    assert CodecChain([sharding, Crc32c()], "float32", (4, 5)).inner_chunks is None


def test_chain_decode_raw_decodes_into_out(zstd_path):
    chain = CodecChain([Bytes(), Zstd(1)], "float32", (32, 32))
    x = field((32, 32), "float32")
    out = bytearray(chain.raw_nbytes)
    raw = chain.decode_raw(chain.encode(x), out, "c/0/0")
    assert isinstance(raw, memoryview) and raw.obj is out
    assert bytes(raw) == x.tobytes()
    with pytest.raises(CodecError, match="c/0/1.*4092 bytes, expected 4096"):
        chain.decode_raw(Zstd(1).encode(x.tobytes()[:-4]), out, "c/0/1")
    with pytest.raises(CodecError, match="c/0/2"):
        chain.decode_raw(Zstd(1).encode(x.tobytes() + b"more"), out, "c/0/2")


def test_chain_decode_raw_without_bytes_codecs_is_the_data():
    chain = CodecChain([Bytes()], "int16", (3,))
    data = np.array([1, 2, 3], dtype="int16").tobytes()
    assert chain.decode_raw(data, bytearray(6)) is data
    with pytest.raises(CodecError, match="c/9.*expected 6 bytes"):
        chain.decode_raw(data[:4], bytearray(6), "c/9")


# -- other Zarr implementations -------------------------------------------------------

ZSTD_BLOCK = 128 * 1024


def zstd_frame_blocks(frame):
    """The number of blocks in one zstd frame (RFC 8878, section 3.1.1)."""
    descriptor = frame[4]
    content_size_flag, single_segment = descriptor >> 6, (descriptor >> 5) & 1
    pos = (5 + (not single_segment) + (0, 1, 2, 4)[descriptor & 3]
           + (single_segment, 2, 4, 8)[content_size_flag])
    blocks = 0
    while True:
        header = int.from_bytes(frame[pos:pos + 3], "little")
        pos += 3 + (1 if (header >> 1) & 3 == 1 else header >> 3)  # RLE blocks: one byte
        blocks += 1
        if header & 1:
            break
    assert pos == len(frame) - 4 * ((descriptor >> 2) & 1)  # then only the checksum
    return blocks


def first_chunk(root):
    return next(p for p in sorted((root / "a").rglob("*"))
                if p.is_file() and p.name != "zarr.json").read_bytes()


@pytest.mark.parametrize("checksum", [False, True])
def test_zarr_python_reads_zarrsync_zstd(zstd_path, tmp_path, checksum):
    zarr = pytest.importorskip("zarr")
    values = field((100, 64, 70), "float32")   # 1 MiB chunks, and edge chunks
    store = zs.FilesystemStore(tmp_path)
    store.create_array(NODE, shape=values.shape, chunks=(64, 64, 64), dtype="float32",
                       codecs=[Bytes(), Zstd(1, checksum)])
    store.write_array(NODE, ..., values)
    assert zstd_frame_blocks(bytes(store.get("a/c/0/0/0"))) >= (1 << 20) // ZSTD_BLOCK
    got = zarr.open_array(zarr.storage.LocalStore(str(tmp_path), read_only=True), path="a",
                          mode="r")[...]
    assert got.tobytes() == values.tobytes()


@pytest.mark.parametrize("level,checksum", [(1, False), (5, True), (-3, False)])
def test_zarrsync_reads_zarr_python_zstd(zstd_path, tmp_path, level, checksum):
    zarr = pytest.importorskip("zarr")
    from zarr.codecs import BytesCodec, ZstdCodec
    values = field((100, 64, 70), "float32")
    za = zarr.create_array(zarr.storage.LocalStore(str(tmp_path)), name="a", shape=values.shape,
                           chunks=(64, 64, 64), dtype="float32", fill_value=0,
                           serializer=BytesCodec(),
                           compressors=[ZstdCodec(level=level, checksum=checksum)])
    za[...] = values
    got = zs.FilesystemStore(tmp_path).read_array(NODE)
    assert got.tobytes() == values.tobytes()
    assert zstandard.get_frame_parameters(first_chunk(tmp_path)).has_checksum == checksum


# dtype, endian, shape, chunks, level: partial edge chunks, levels of each ISA-L band.
GZIP_ARRAYS = [
    ("float32", "little", (40, 33, 17), (16, 16, 8), 1),
    ("float64", "big", (37, 50), (16, 32), 5),
    ("int16", "little", (70, 9), (32, 4), 9),
    ("uint8", "little", (300,), (64,), 0),
]


def write_zarrsync_gzip(root, dtype, endian, shape, chunks, level):
    data = field(shape, dtype)
    store = zs.FilesystemStore(root)
    store.create_array(NODE, shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                       codecs=[{"name": "bytes", "configuration": {"endian": endian}},
                               {"name": "gzip", "configuration": {"level": level}}])
    store.write_array(NODE, Ellipsis, data)
    stored = first_chunk(root)
    assert stored == Gzip(level).encode(gzip_module.decompress(stored))  # written by the codec
    return data


@pytest.mark.parametrize("dtype, endian, shape, chunks, level", GZIP_ARRAYS)
def test_zarr_python_reads_zarrsync_gzip(tmp_path, dtype, endian, shape, chunks, level):
    zarr = pytest.importorskip("zarr")
    data = write_zarrsync_gzip(tmp_path, dtype, endian, shape, chunks, level)
    za = zarr.open_array(zarr.storage.LocalStore(str(tmp_path), read_only=True), path="a",
                         mode="r")
    got = za[...]
    assert got.dtype == data.dtype
    assert got.tobytes() == data.tobytes()


@pytest.mark.parametrize("dtype, endian, shape, chunks, level", GZIP_ARRAYS)
def test_zarrsync_reads_zarr_python_gzip(tmp_path, dtype, endian, shape, chunks,
                                         level):
    zarr = pytest.importorskip("zarr")
    from zarr.codecs import BytesCodec, GzipCodec
    data = field(shape, dtype)
    za = zarr.create_array(zarr.storage.LocalStore(str(tmp_path)), name="a", shape=shape,
                           chunks=chunks, dtype=dtype, fill_value=0,
                           serializer=BytesCodec(endian=endian),
                           compressors=[GzipCodec(level=level)])
    za[...] = data
    got = zs.FilesystemStore(tmp_path).read_array(NODE)
    assert got.tobytes() == data.tobytes()
    assert first_chunk(tmp_path)[:2] == b"\x1f\x8b"


@pytest.mark.parametrize("dtype, endian, shape, chunks, level", GZIP_ARRAYS[:2])
def test_tensorstore_reads_zarrsync_gzip(tmp_path, dtype, endian, shape, chunks, level):
    ts = pytest.importorskip("tensorstore")
    data = write_zarrsync_gzip(tmp_path, dtype, endian, shape, chunks, level)
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{tmp_path}/a/"}},
                open=True, read=True).result()
    got = t.read().result()
    np.testing.assert_array_equal(got, data)
    assert got.tobytes() == data.astype(got.dtype).tobytes()


@pytest.mark.parametrize("dtype, endian, shape, chunks, level", GZIP_ARRAYS[:2])
def test_zarrs_reads_zarrsync_gzip(tmp_path, dtype, endian, shape, chunks, level):
    zarr = pytest.importorskip("zarr")
    zarrs = pytest.importorskip("zarrs")
    data = write_zarrsync_gzip(tmp_path, dtype, endian, shape, chunks, level)
    with zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline",
                          "codec_pipeline.strict": True}):
        za = zarr.open_array(zarr.storage.LocalStore(str(tmp_path)), path="a", mode="r")
        assert isinstance(za._async_array.codec_pipeline, zarrs.ZarrsCodecPipeline)
        got = za[...]
    np.testing.assert_array_equal(got, data)
    assert got.tobytes() == data.tobytes()


# -- transpose orders "C" and "F" (read leniently) ----------------------------------------
# zarrita and early zarr-python v3 wrote the order "C" (identity) or "F" (axes
# reversed); zarrsync reads them as that permutation and writes the explicit list.

MEMORY_ORDERS = [("C", (0, 1, 2)), ("F", (2, 1, 0))]


@pytest.mark.parametrize("name, order", MEMORY_ORDERS)
def test_transpose_memory_order_resolves_to_a_permutation(name, order):
    codec = from_dict({"name": "transpose", "configuration": {"order": name}})
    chain = CodecChain([codec, Bytes()], "int16", (2, 3, 4))
    assert chain.codecs[0] == Transpose(order)
    assert chain.to_dicts()[0] == {"name": "transpose", "configuration": {"order": list(order)}}
    assert chain.encoded_shape == tuple((2, 3, 4)[i] for i in order)
    # Rank 1: both are the identity.
    assert CodecChain([codec, Bytes()], "int16", (5,)).codecs[0] == Transpose((0,))


@pytest.mark.parametrize("name", ["C", "F"])
def test_transpose_memory_order_is_not_written(name):
    with pytest.raises(InvalidTransposeOrder):
        Transpose(name)


@pytest.mark.parametrize("order", ["c", "f", "K", "A", "CF", ""])
def test_transpose_other_order_names_are_refused(order):
    with pytest.raises(InvalidTransposeOrder):
        from_dict({"name": "transpose", "configuration": {"order": order}})


def _memory_order_doc(name, chunk_shape, codecs):
    return {"zarr_format": 3, "node_type": "array", "shape": [2, 3, 4], "data_type": "int16",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunk_shape}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0, "codecs": codecs, "attributes": {}}


@pytest.mark.parametrize("name, order", MEMORY_ORDERS)
def test_store_reads_transpose_memory_order(name, order):
    x = np.arange(24, dtype="<i2").reshape(2, 3, 4) - 7
    store = zs.MemoryStore()
    store.set("a/zarr.json", json.dumps(_memory_order_doc(name, [2, 3, 4], [
        {"name": "transpose", "configuration": {"order": name}},
        {"name": "bytes", "configuration": {"endian": "little"}}])).encode())
    # The chunk as zarrita stored it: the elements in C or Fortran order.
    store.set("a/c/0/0/0", x.tobytes(order=name))
    assert store.read_array(NODE).tobytes() == x.tobytes()
    store.write_array(NODE, (1, 2), np.array([40, 41, 42, 43], "<i2"))
    x[1, 2] = [40, 41, 42, 43]
    assert store.get("a/c/0/0/0") == x.tobytes(order=name)
    store.set_attributes(NODE, {})
    stored = json.loads(store.get("a/zarr.json"))["codecs"][0]
    assert stored == {"name": "transpose", "configuration": {"order": list(order)}}


@pytest.mark.parametrize("name, order", MEMORY_ORDERS)
def test_store_reads_transpose_memory_order_inside_shards(name, order):
    x = np.arange(24, dtype="int16").reshape(2, 3, 4) * 3
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(2, 3, 4), chunks=(2, 3, 4), dtype="int16", codecs=[
        ShardingIndexed((1, 3, 2), codecs=[Transpose(order), Bytes()])])
    store.write_array(NODE, ..., x)
    doc = json.loads(store.get("a/zarr.json"))
    inner = doc["codecs"][0]["configuration"]["codecs"]
    assert inner[0] == {"name": "transpose", "configuration": {"order": list(order)}}
    inner[0]["configuration"]["order"] = name  # the same chunks, as zarrita named the order
    store.set("a/zarr.json", json.dumps(doc).encode())
    assert store.read_array(NODE).tobytes() == x.tobytes()


def interop_cells(name, params):
    """The cells of docs/interop.md each test checks (tests/interop_matrix.py)."""
    found = {"test_zarr_python_reads_zarrsync_zstd": ("zarr-python", "zstd", "write"),
             "test_zarrsync_reads_zarr_python_zstd": ("zarr-python", "zstd", "read"),
             "test_zarr_python_reads_zarrsync_gzip": ("zarr-python", "gzip", "write"),
             "test_zarrsync_reads_zarr_python_gzip": ("zarr-python", "gzip", "read"),
             "test_tensorstore_reads_zarrsync_gzip": ("tensorstore", "gzip", "write"),
             "test_zarrs_reads_zarrsync_gzip": ("zarrs", "gzip", "write")}.get(name)
    if found is None:
        return []
    return [cell(found[0], 3, found[1], dtype_label(params.get("dtype", "float32")),
                 found[2])]
