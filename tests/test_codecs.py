"""Codecs: encode/decode round trips, JSON forms, configuration checks, chain ordering."""

import gzip as gzip_module
import pickle
import struct
import threading
import zlib

import numpy as np
import pytest
import zstandard

import zarrsync as zs
from zarrsync import codecs
from zarrsync.codecs import Bytes, CodecChain, Crc32c, Gzip, Transpose, Zstd, from_dict
from zarrsync.errors import (ArrayToBytesInvariant, BytesToBytesInvariant, ChecksumMismatch,
                             CodecError, InvalidCodecOrdering, InvalidTransposeOrder,
                             InvalidZstdLevel)

DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float16", "float32", "float64", "complex64", "complex128"]


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

@pytest.mark.parametrize("level", range(10))
def test_gzip_round_trip(level):
    data = payload()
    encoded = Gzip(level).encode(data)
    assert gzip_module.decompress(encoded) == data       # a real gzip stream
    assert bytes(Gzip(level).decode(encoded)) == data
    if level >= 1:
        assert len(encoded) < len(data)


def test_gzip_reproducible_bytes():
    data = payload()
    a, b = Gzip(5).encode(data), Gzip(5).encode(data)
    assert a == b
    assert a[:2] == b"\x1f\x8b"
    assert a[4:8] == b"\x00\x00\x00\x00"  # mtime 0


def test_gzip_reads_other_writers():
    data = payload()
    assert bytes(Gzip().decode(gzip_module.compress(data, mtime=123))) == data
    assert bytes(Gzip().decode(zlib.compress(data))) == data   # zlib header
    # Concatenated members decode to the concatenation.
    both = gzip_module.compress(b"abc") + gzip_module.compress(b"def")
    assert bytes(Gzip().decode(both)) == b"abcdef"


def test_gzip_empty_input():
    assert bytes(Gzip().decode(Gzip().encode(b""))) == b""


def test_gzip_corrupt():
    encoded = Gzip(5).encode(payload())
    with pytest.raises(CodecError, match="truncated"):
        Gzip().decode(encoded[: len(encoded) // 2])
    with pytest.raises(zlib.error):
        Gzip().decode(b"this is not gzip data")


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


# -- zstd -----------------------------------------------------------------------------

@pytest.mark.parametrize("level", [-131072, -5, 0, 1, 3, 19, 22])
@pytest.mark.parametrize("checksum", [False, True])
def test_zstd_round_trip(level, checksum):
    data = payload(3000)
    codec = Zstd(level, checksum)
    encoded = codec.encode(data)
    assert zstandard.ZstdDecompressor().decompress(encoded) == data   # a real zstd frame
    params = zstandard.get_frame_parameters(encoded)
    assert params.has_checksum == checksum
    assert params.content_size == len(data)
    assert bytes(codec.decode(encoded)) == data
    assert bytes(codec.decode(encoded, len(data))) == data


def test_zstd_reads_frames_without_content_size():
    # Streaming writers leave the content size out of the frame header.
    data = payload()
    stream = zstandard.ZstdCompressor().compressobj()
    encoded = stream.compress(data) + stream.flush()
    assert zstandard.get_frame_parameters(encoded).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert bytes(Zstd().decode(encoded)) == data
    assert bytes(Zstd().decode(encoded, len(data))) == data


def test_zstd_truncated_frames():
    data = payload()
    stream = zstandard.ZstdCompressor().compressobj()
    no_size = stream.compress(data) + stream.flush()
    sized = Zstd().encode(data)
    for encoded in (no_size, sized):
        for cut in (4, len(encoded) // 2, len(encoded) - 1):
            with pytest.raises(CodecError):
                Zstd().decode(encoded[:cut])
            with pytest.raises(CodecError):
                Zstd().decode(encoded[:cut], len(data))


def test_zstd_checksum_detects_corruption():
    data = payload()
    encoded = bytearray(Zstd(3, checksum=True).encode(data))
    encoded[-1] ^= 0xFF   # the frame checksum
    with pytest.raises(CodecError):
        Zstd().decode(bytes(encoded))


def test_zstd_garbage():
    with pytest.raises(CodecError):
        Zstd().decode(b"definitely not a zstd frame")


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


def test_zstd_shared_between_threads():
    codec = Zstd(3)
    inputs = [payload(2000, seed) for seed in range(8)]
    errors = []

    def work(data):
        try:
            for _ in range(20):
                assert bytes(codec.decode(codec.encode(data))) == data
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
                                 {"name": "bytes", "extra": 1}, "blosc"])
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
        codecs._REGISTRY.pop("zarrsync-test-noop", None)


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
