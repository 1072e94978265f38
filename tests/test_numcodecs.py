"""The ``blosc`` codec and the ``numcodecs.*`` codecs (codecs/_blosc.py, _numcodecs.py).

Round trips against NumPy, the JSON forms, the same bytes as numcodecs,
bounded decoding (a chunk that would decode to more than its bound is a
``CodecError`` before the decoder allocates it), corrupt chunks, and
interoperability with zarr-python in both directions.
"""

import gzip
import json
import struct
import tracemalloc
import warnings
import zlib

import numcodecs
import numpy as np
import pytest

import zarrsync as zs
from interop_matrix import cell, codec_label, dtype_label
from zarrsync import ArrayNode, CodecError
from zarrsync import codecs as zc

NODE = ArrayNode.of_path("/a")

#: (numcodecs id, configuration) of every bytes->bytes codec, as zarr-python writes them.
BYTES_CASES = [
    ("zlib", {"level": 1}),
    ("gzip", {"level": 5}),
    ("bz2", {"level": 1}),
    ("lzma", {"preset": 1}),
    ("lzma", {"format": 3, "filters": [{"id": 33, "dict_size": 1 << 20}]}),   # raw LZMA2
    ("lz4", {"acceleration": 1}),
    ("zstd", {"level": 3}),
    ("blosc", {"cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}),
    ("shuffle", {"elementsize": 4}),
    ("crc32", {}),
    ("crc32", {"location": "end"}),
    ("crc32c", {}),
    ("adler32", {}),
    ("fletcher32", {}),
    ("jenkins_lookup3", {}),
]
BYTES_IDS = [f"{i}-{j}" for j, (i, _) in enumerate(BYTES_CASES)]
#: The ones that compress: a bomb of each is refused within its bound.
COMPRESSORS = ["zlib", "gzip", "bz2", "lzma", "lz4", "zstd", "blosc"]

DTYPES = ["uint8", "int16", "int32", "float32", "float64", "complex128", "bool"]


def values(dtype, shape, seed=0):
    """Compressible data of ``dtype``: runs and a ramp, some noise."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if np.dtype(dtype) == bool:
        return (rng.integers(0, 4, n) == 0).reshape(shape)
    base = (np.arange(n) // 3) % 50 + rng.integers(0, 3, n)
    return base.astype(dtype).reshape(shape)


def chain_of(codecs, dtype, shape):
    return zc.CodecChain(codecs, dtype, shape)


# -- JSON forms ---------------------------------------------------------------------------

@pytest.mark.parametrize("codec_id,config", BYTES_CASES, ids=BYTES_IDS)
def test_bytes_codec_json_round_trip(codec_id, config):
    d = {"name": f"numcodecs.{codec_id}", "configuration": config}
    codec = zc.from_dict(d)
    assert isinstance(codec, zc.NumcodecsBytesToBytes)
    assert codec.to_dict() == d
    assert list(codec.to_dict()["configuration"]) == list(config)   # key order kept
    assert zc.from_dict(codec.to_dict()) == codec


def test_blosc_json_is_zarr_pythons():
    d = {"name": "blosc", "configuration": {"typesize": 4, "cname": "zstd", "clevel": 5,
                                            "shuffle": "shuffle", "blocksize": 0}}
    codec = zc.from_dict(d)
    assert codec == zc.Blosc(typesize=4)
    assert json.dumps(codec.to_dict()) == json.dumps(d)   # the same keys in the same order


def test_blosc_binds_typesize_and_shuffle_to_the_data_type():
    # As zarr-python's evolve_from_array_spec: typesize from the item size;
    # an absent shuffle is bitshuffle for 1-byte elements, else shuffle.
    bound = zc.CodecChain([zc.Bytes(), zc.Blosc()], "float64", (10,)).codecs[1]
    assert bound.to_dict()["configuration"]["typesize"] == 8
    auto = zc.from_dict({"name": "blosc", "configuration": {"cname": "lz4", "clevel": 1}})
    assert auto.shuffle is None and auto.typesize is None
    one = zc.CodecChain([zc.Bytes(), auto], "uint8", (10,)).codecs[1]
    assert (one.shuffle, one.typesize) == ("bitshuffle", 1)
    four = zc.CodecChain([zc.Bytes(), auto], "int32", (10,)).codecs[1]
    assert (four.shuffle, four.typesize) == ("shuffle", 4)
    given = zc.CodecChain([zc.Bytes(), zc.Blosc(typesize=2)], "int32", (10,)).codecs[1]
    assert given.typesize == 2


@pytest.mark.parametrize("kwargs,words", [
    ({"cname": "nope"}, "cname"), ({"clevel": 10}, "clevel"), ({"clevel": True}, "clevel"),
    ({"shuffle": "bits"}, "shuffle"), ({"typesize": 0}, "typesize"),
    ({"blocksize": -1}, "blocksize"),
])
def test_blosc_refuses_bad_configurations(kwargs, words):
    with pytest.raises(CodecError, match=words):
        zc.Blosc(**kwargs)


def test_blosc_cname_missing_from_numcodecs_build_is_named():
    if "snappy" in numcodecs.blosc.list_compressors():
        pytest.skip("this numcodecs build has snappy")
    with pytest.raises(CodecError, match="snappy.*not in this numcodecs build"):
        zc.Blosc(cname="snappy")


def test_unknown_names_are_refused_by_name():
    for name in ("numcodecs.base64", "numcodecs.pickle", "blosc2", "numcodecs."):
        with pytest.raises(CodecError, match=f"codec '{name}' is not supported"):
            zc.from_dict({"name": name, "configuration": {}})


def test_numcodecs_refusing_a_configuration_names_the_codec():
    with pytest.raises(CodecError, match="numcodecs.zlib.*invalid configuration"):
        zc.from_dict({"name": "numcodecs.zlib", "configuration": {"levl": 1}})
    with pytest.raises(CodecError, match="may not hold an 'id'"):
        zc.from_dict({"name": "numcodecs.zlib", "configuration": {"id": "zlib"}})


# -- bytes->bytes: round trips and numcodecs' bytes ---------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("codec_id,config", BYTES_CASES, ids=BYTES_IDS)
def test_bytes_codec_round_trip_through_a_store(codec_id, config, dtype):
    store = zs.MemoryStore()
    codec = zc.numcodecs_codec(codec_id, **config)
    store.create_array(NODE, shape=(9, 40), chunks=(4, 16), dtype=dtype,
                       codecs=[zc.Bytes(), codec])
    data = values(dtype, (9, 40))
    store.write_array(NODE, ..., data)
    np.testing.assert_array_equal(store.read_array(NODE, ...), data)
    np.testing.assert_array_equal(store.read_array(NODE, (slice(3, 7), slice(5, 33))),
                                  data[3:7, 5:33])


@pytest.mark.parametrize("codec_id,config", BYTES_CASES, ids=BYTES_IDS)
def test_bytes_codec_reads_and_writes_numcodecs_bytes(codec_id, config):
    raw = values("int32", (3000,)).tobytes()
    theirs = numcodecs.get_codec({"id": codec_id, **config})
    ours = zc.numcodecs_codec(codec_id, **config)
    encoded = theirs.encode(raw)
    encoded = encoded.tobytes() if isinstance(encoded, np.ndarray) else bytes(encoded)
    assert bytes(ours.decode(encoded, len(raw))) == raw
    mine = ours.encode(raw)
    if codec_id == "gzip":
        # numcodecs writes the current time into the header (bytes 4..8); we write 0.
        assert mine[4:8] == bytes(4)
        assert mine[:4] + mine[8:] == encoded[:4] + encoded[8:]
    else:
        assert mine == encoded
    assert bytes(theirs.decode(mine)) == raw


def test_stdlib_decoders_read_numcodecs_multi_stream_data_as_numcodecs_does():
    raw = b"zarr" * 1000
    for codec_id in ("bz2", "lzma"):
        codec = numcodecs.get_codec({"id": codec_id})
        two = bytes(codec.encode(raw)) + bytes(codec.encode(raw[:10]))
        expect = bytes(codec.decode(two))
        assert expect == raw + raw[:10]
        assert bytes(zc.numcodecs_codec(codec_id).decode(two, len(expect))) == expect
    # zlib: numcodecs (zlib.decompress) ignores bytes after the stream.
    z = zlib.compress(raw, 1) + b"trailing"
    assert bytes(zc.numcodecs_codec("zlib", level=1).decode(z, len(raw))) == raw


def test_shuffle_binds_elementsize_to_the_data_type():
    bound = zc.CodecChain([zc.Bytes(), zc.numcodecs_codec("shuffle")], "float64", (8,))
    assert bound.codecs[1].to_dict() == {"name": "numcodecs.shuffle",
                                         "configuration": {"elementsize": 8}}
    raw = np.arange(8, dtype="float64").tobytes()
    assert bound.codecs[1].encode(raw) == bytes(numcodecs.Shuffle(8).encode(raw))


def test_checksum_codecs_refuse_changed_data():
    for codec_id in ("crc32", "crc32c", "adler32", "fletcher32", "jenkins_lookup3"):
        codec = zc.numcodecs_codec(codec_id)
        good = bytearray(codec.encode(b"some bytes to protect"))
        assert bytes(codec.decode(bytes(good), 100)) == b"some bytes to protect"
        good[6] ^= 1
        with pytest.raises(CodecError, match=f"numcodecs.{codec_id}"):
            codec.decode(bytes(good), 100)
        with pytest.raises(CodecError, match="at least 4 bytes"):
            codec.decode(b"ab", 100)


# -- blosc --------------------------------------------------------------------------------

@pytest.mark.parametrize("cname", numcodecs.blosc.list_compressors())
@pytest.mark.parametrize("shuffle", ["noshuffle", "shuffle", "bitshuffle"])
def test_blosc_round_trip(cname, shuffle):
    for dtype in ("uint8", "int32", "float64", "complex64"):
        data = values(dtype, (50, 30))
        chain = chain_of([zc.Bytes(), zc.Blosc(cname=cname, clevel=4, shuffle=shuffle)],
                         dtype, data.shape)
        stored = chain.encode(data)
        header = struct.unpack_from("<BBBBIII", stored)
        assert header[3] == np.dtype(dtype).itemsize   # typesize from the data type
        assert header[4] == data.nbytes and header[6] == len(stored)
        np.testing.assert_array_equal(chain.decode(stored, "k"), data)
        # numcodecs reads what we write, and we read what it writes
        ref = numcodecs.Blosc(cname=cname, clevel=4, typesize=data.itemsize,
                              shuffle=("noshuffle", "shuffle", "bitshuffle").index(shuffle))
        assert bytes(ref.decode(stored)) == data.tobytes()
        assert stored == bytes(ref.encode(data.tobytes()))


def test_blosc_decodes_into_a_buffer():
    codec = zc.Blosc(typesize=8)
    data = values("float64", (1000,))
    stored = codec.encode(data.tobytes())
    out = bytearray(data.nbytes)
    assert codec.decodes_into and codec.decode_into(stored, memoryview(out)) == data.nbytes
    assert bytes(out) == data.tobytes()
    for wrong in (data.nbytes - 1, data.nbytes + 1):
        out = bytearray(wrong)
        with pytest.raises(CodecError, match="expected"):
            codec.decode_into(stored, out)
        assert out == bytearray(wrong)   # nothing written


def test_blosc_empty_chunk():
    codec = zc.Blosc(typesize=1)
    assert bytes(codec.decode(codec.encode(b""), 0)) == b""


def blosc_bomb(nbytes=1 << 30):
    """A blosc chunk whose header claims ``nbytes`` bytes (memcpyed flag
    set, so a decoder would copy that much) but holds a few."""
    body = bytes(64)
    flags = 0x02 | 0x01   # memcpyed, byte shuffle
    return struct.pack("<BBBBIII", 2, 1, flags, 1, nbytes, nbytes, 16 + len(body)) + body


def test_blosc_bomb_is_refused_before_decoding():
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match=r"blosc: .*1073741824 bytes, more than"):
            zc.Blosc().decode(blosc_bomb(), 4096)
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("mangle,words", [
    (lambda b: b[:10], "16-byte header"),
    (lambda b: b[:-1], "compressed bytes, the chunk holds"),
    (lambda b: b + b"\0", "compressed bytes, the chunk holds"),
    (lambda b: bytes([9]) + b[1:], "format version"),
    (lambda b: b[:16] + bytes(len(b) - 16), "could not be decoded"),
    (lambda b: b"x" * 40, "format version"),
])
def test_blosc_corrupt_chunks_are_codec_errors(mangle, words):
    codec = zc.Blosc(cname="zstd", typesize=4)
    good = codec.encode(values("int32", (4000,)).tobytes())
    with pytest.raises(CodecError, match=words):
        codec.decode(mangle(good), 16000)


# -- bounded decoding ---------------------------------------------------------------------

def bomb(codec_id, n):
    """``n`` zero bytes compressed by numcodecs' ``codec_id`` (or by hand for blosc)."""
    if codec_id == "blosc":
        return blosc_bomb(n)
    codec = numcodecs.get_codec({"id": codec_id})
    out = codec.encode(bytes(n))
    return out.tobytes() if isinstance(out, np.ndarray) else bytes(out)


@pytest.mark.parametrize("codec_id", COMPRESSORS)
def test_compressor_bomb_is_refused_within_the_bound(codec_id):
    data = bomb(codec_id, 64 << 20)
    codec = zc.numcodecs_codec(codec_id)
    assert codec.decodes_bounded
    limit = 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match=f"numcodecs.{codec_id}|blosc|zstd|gzip"):
            codec.decode(data, limit)
        # Well under the 64 MiB the data holds: the decoder stopped near the
        # bound (lzma also holds its dictionary, 8 MiB for numcodecs' default preset).
        window = (16 << 20) if codec_id == "lzma" else 0
        assert tracemalloc.get_traced_memory()[1] < 4 * limit + len(data) + window
    finally:
        tracemalloc.stop()
    # The same data is fine with room for it.
    if codec_id != "blosc":
        assert len(codec.decode(data, 64 << 20)) == 64 << 20


def test_lz4_header_is_checked_before_decoding():
    codec = zc.numcodecs_codec("lz4")
    good = codec.encode(bytes(1000))
    lying = (1 << 30).to_bytes(4, "little") + good[4:]
    with pytest.raises(CodecError, match="more than the 1000 bytes"):
        codec.decode(lying, 1000)
    with pytest.raises(CodecError, match="negative size"):
        codec.decode((-5).to_bytes(4, "little", signed=True) + good[4:], 1000)


@pytest.mark.parametrize("codec_id", COMPRESSORS)
def test_bomb_chunk_in_a_store_names_the_chunk(codec_id):
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(2048,), chunks=(1024,), dtype="uint8",
                       codecs=[zc.Bytes(), zc.numcodecs_codec(codec_id)])
    store.write_array(NODE, ..., values("uint8", (2048,)))
    store.set("a/c/1", bomb(codec_id, 8 << 20))
    np.testing.assert_array_equal(store.read_array(NODE, slice(0, 1024)),
                                  values("uint8", (2048,))[:1024])
    with pytest.raises(CodecError, match="a/c/1"):
        store.read_array(NODE, slice(1024, 2048))


@pytest.mark.parametrize("codec_id,config", BYTES_CASES, ids=BYTES_IDS)
def test_truncated_chunk_is_a_codec_error_naming_the_chunk(codec_id, config):
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(4000,), chunks=(2000,), dtype="int32",
                       codecs=[zc.Bytes(), zc.numcodecs_codec(codec_id, **config)])
    store.write_array(NODE, ..., values("int32", (4000,)))
    good = store.get("a/c/0")
    for bad in (good[:-7], good[: len(good) // 2], b"", b"\x00" * 3):
        store.set("a/c/0", bad)
        with pytest.raises(CodecError, match="a/c/0"):
            store.read_array(NODE, ...)


def test_blosc_corrupt_chunk_in_a_store_names_the_chunk():
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(4000,), chunks=(2000,), dtype="int32",
                       codecs=[zc.Bytes(), zc.Blosc()])
    store.write_array(NODE, ..., values("int32", (4000,)))
    good = store.get("a/c/1")
    for bad in (good[:-1], good[:12], blosc_bomb()):
        store.set("a/c/1", bad)
        with pytest.raises(CodecError, match="a/c/1"):
            store.read_array(NODE, ...)


# -- array->array -------------------------------------------------------------------------

#: (numcodecs id, configuration, array dtype, data, encoded dtype)
FILTER_CASES = [
    ("delta", {"dtype": "<i4"}, "int32", None, "int32"),
    ("delta", {"dtype": "<i8", "astype": "<i2"}, "int64", None, "int16"),
    ("fixedscaleoffset", {"offset": 1000, "scale": 10, "dtype": "<f8", "astype": "<i4"},
     "float64", lambda a: np.round(a * 0.1 + 990, 1), "int32"),
    ("quantize", {"digits": 2, "dtype": "<f8"}, "float64", lambda a: a * 0.25, "float64"),
    ("bitround", {"keepbits": 10}, "float32", lambda a: a * 0.5, "float32"),
    ("astype", {"encode_dtype": "<f4", "decode_dtype": "<f8"}, "float64",
     lambda a: a * 0.5, "float32"),
    ("packbits", {}, "bool", None, "uint8"),
]
FILTER_IDS = [f"{c[0]}-{i}" for i, c in enumerate(FILTER_CASES)]


def filter_data(case, shape):
    _, _, dtype, make, _ = case
    data = values(dtype, shape)
    return make(data).astype(dtype) if make else data


@pytest.mark.parametrize("case", FILTER_CASES, ids=FILTER_IDS)
def test_filter_round_trip_matches_numcodecs(case):
    codec_id, config, dtype, _, encoded = case
    shape = (9, 13)
    data = filter_data(case, shape)
    codec = zc.numcodecs_codec(codec_id, **config)
    assert zc.from_dict(codec.to_dict()) == codec
    chain = chain_of([codec, zc.Bytes(), zc.numcodecs_codec("zlib", level=1)], dtype, (9, 13))
    assert chain.encoded_dtype == np.dtype(encoded)
    stored = chain.encode(data)
    decoded = chain.decode(stored, "k")
    assert decoded.shape == shape and decoded.dtype == np.dtype(dtype)
    ref = numcodecs.get_codec({"id": codec_id, **chain.codecs[0].configuration})
    expect = np.asarray(ref.decode(ref.encode(data))).reshape(shape)
    np.testing.assert_array_equal(decoded, expect)
    # The stored bytes are numcodecs' filter output, serialised little-endian.
    enc = np.asarray(ref.encode(data))
    assert zlib.decompress(stored) == enc.astype(enc.dtype.newbyteorder("<")).tobytes()


@pytest.mark.parametrize("case", FILTER_CASES, ids=FILTER_IDS)
def test_filter_round_trip_through_a_store(case):
    codec_id, config, dtype, _, _ = case
    data = filter_data(case, (10, 20))
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(10, 20), chunks=(4, 8), dtype=dtype,
                       codecs=[zc.numcodecs_codec(codec_id, **config), zc.Bytes(),
                               zc.Blosc(clevel=1)])
    store.write_array(NODE, ..., data)
    ref = numcodecs.get_codec({"id": codec_id,
                               **store.array_metadata(NODE).codecs[0].configuration})
    expect = data.copy()
    for i in range(0, 10, 4):
        for j in range(0, 20, 8):
            # Edge chunks are written whole, padded with the fill value.
            block = np.zeros((4, 8), dtype=dtype)
            part = data[i:i + 4, j:j + 8]
            block[:part.shape[0], :part.shape[1]] = part
            got = np.asarray(ref.decode(ref.encode(block))).reshape(4, 8)
            expect[i:i + 4, j:j + 8] = got[:part.shape[0], :part.shape[1]]
    np.testing.assert_array_equal(store.read_array(NODE, ...), expect)


def test_packbits_changes_the_shape_and_data_type():
    chain = chain_of([zc.numcodecs_codec("packbits"), zc.Bytes()], "bool", (5, 7))
    assert chain.encoded_shape == (1 + 5,) and chain.encoded_dtype == np.uint8
    assert chain.raw_nbytes == 6
    data = values("bool", (5, 7))
    assert chain.encode(data) == bytes(numcodecs.PackBits().encode(data))


def test_filters_bind_their_data_type_as_zarr_python_does():
    chain = chain_of([zc.numcodecs_codec("fixedscaleoffset", offset=0, scale=2),
                      zc.numcodecs_codec("astype", encode_dtype="<f4"), zc.Bytes()],
                     "float64", (4,))
    assert chain.to_dicts()[:2] == [
        {"name": "numcodecs.fixedscaleoffset",
         "configuration": {"offset": 0, "scale": 2, "dtype": "float64"}},
        {"name": "numcodecs.astype",
         "configuration": {"encode_dtype": "<f4", "decode_dtype": "float64"}}]


@pytest.mark.parametrize("codecs,dtype,words", [
    ([zc.numcodecs_codec("delta", dtype="<i2")], "int32", "does not match"),
    ([zc.numcodecs_codec("quantize", digits=1)], "int32", "does not take int32"),
    ([zc.numcodecs_codec("packbits")], "uint8", "does not take uint8"),
    ([zc.numcodecs_codec("bitround", keepbits=3)], "string", "does not take"),
])
def test_filters_refuse_data_types_they_cannot_take(codecs, dtype, words):
    array_bytes = zc.VlenUtf8() if dtype == "string" else zc.Bytes()
    with pytest.raises(CodecError, match=words):
        chain_of(codecs + [array_bytes], np.dtypes.StringDType() if dtype == "string"
                 else dtype, (4,))


def test_packbits_corrupt_padding_is_a_codec_error():
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(20,), chunks=(10,), dtype="bool",
                       codecs=[zc.numcodecs_codec("packbits"), zc.Bytes()])
    store.write_array(NODE, ..., values("bool", (20,)))
    stored = bytearray(store.get("a/c/0"))
    stored[0] = 200   # pad bits: more than the chunk holds
    store.set("a/c/0", bytes(stored))
    with pytest.raises(CodecError, match="a/c/0.*numcodecs.packbits"):
        store.read_array(NODE, ...)


# -- interop with zarr-python ---------------------------------------------------------------

try:
    import zarr
    import zarr.codecs.numcodecs as zn
except ImportError:   # the tests above run without zarr-python
    zarr = zn = None
needs_zarr = pytest.mark.skipif(zarr is None, reason="needs zarr-python 3.1.3 or later")


def zarr_cases():
    """(id, dtype, zarrsync codecs, zarr-python create_array keywords)."""
    B = zarr.codecs.BytesCodec()
    return [
        ("blosc-zstd", "int32", [zc.Bytes(), zc.Blosc()],
         {"compressors": [zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")]}),
        ("blosc-lz4-bitshuffle", "uint8",
         [zc.Bytes(), zc.Blosc(cname="lz4", clevel=1, shuffle="bitshuffle")],
         {"compressors": [zarr.codecs.BloscCodec(cname="lz4", clevel=1,
                                                 shuffle="bitshuffle")]}),
        ("blosc-typesize", "float64",
         [zc.Bytes(), zc.Blosc(cname="blosclz", typesize=4, blocksize=256)],
         {"compressors": [zarr.codecs.BloscCodec(cname="blosclz", typesize=4,
                                                 shuffle="shuffle", blocksize=256)]}),
        ("zlib", "float32", [zc.Bytes(), zc.numcodecs_codec("zlib", level=1)],
         {"compressors": [zn.Zlib(level=1)]}),
        ("gzip", "int16", [zc.Bytes(), zc.numcodecs_codec("gzip", level=3)],
         {"compressors": [zn.GZip(level=3)]}),
        ("bz2", "uint16", [zc.Bytes(), zc.numcodecs_codec("bz2", level=2)],
         {"compressors": [zn.BZ2(level=2)]}),
        ("lzma", "int64", [zc.Bytes(), zc.numcodecs_codec("lzma", preset=1)],
         {"compressors": [zn.LZMA(preset=1)]}),
        ("lz4", "float64", [zc.Bytes(), zc.numcodecs_codec("lz4")],
         {"compressors": [zn.LZ4()]}),
        ("zstd", "int32", [zc.Bytes(), zc.numcodecs_codec("zstd", level=2)],
         {"compressors": [zn.Zstd(level=2)]}),
        ("numcodecs-blosc", "int32",
         [zc.Bytes(), zc.numcodecs_codec("blosc", cname="zlib", clevel=3, shuffle=2)],
         {"compressors": [zn.Blosc(cname="zlib", clevel=3, shuffle=2)]}),
        ("shuffle-crc32", "float32",
         [zc.Bytes(), zc.numcodecs_codec("shuffle"), zc.numcodecs_codec("crc32")],
         {"compressors": [zn.Shuffle(), zn.CRC32()]}),
        ("checksums", "uint8",
         [zc.Bytes(), zc.numcodecs_codec("adler32"), zc.numcodecs_codec("fletcher32"),
          zc.numcodecs_codec("jenkins_lookup3"), zc.numcodecs_codec("crc32c")],
         {"compressors": [zn.Adler32(), zn.Fletcher32(), zn.JenkinsLookup3(), zn.CRC32C()]}),
        ("delta", "int32", [zc.numcodecs_codec("delta", dtype="<i4"), zc.Bytes(),
                            zc.numcodecs_codec("zlib", level=1)],
         {"filters": [zn.Delta(dtype="<i4")], "compressors": [zn.Zlib(level=1)]}),
        ("fixedscaleoffset", "float64",
         [zc.numcodecs_codec("fixedscaleoffset", offset=0, scale=4), zc.Bytes(), zc.Blosc()],
         {"filters": [zn.FixedScaleOffset(offset=0, scale=4)],
          "compressors": [zarr.codecs.BloscCodec(shuffle="shuffle")]}),
        ("quantize", "float32",
         [zc.numcodecs_codec("quantize", digits=2), zc.Bytes()],
         {"filters": [zn.Quantize(digits=2)], "compressors": None}),
        ("bitround", "float64",
         [zc.numcodecs_codec("bitround", keepbits=12), zc.Bytes(),
          zc.numcodecs_codec("zstd", level=1)],
         {"filters": [zn.BitRound(keepbits=12)], "compressors": [zn.Zstd(level=1)]}),
        ("astype", "float64",
         [zc.numcodecs_codec("astype", encode_dtype="<f4"), zc.Bytes()],
         {"filters": [zn.AsType(encode_dtype="<f4")], "serializer": B, "compressors": None}),
    ]


CASE_IDS = ["blosc-zstd", "blosc-lz4-bitshuffle", "blosc-typesize", "zlib", "gzip", "bz2",
            "lzma", "lz4", "zstd", "numcodecs-blosc", "shuffle-crc32", "checksums", "delta",
            "fixedscaleoffset", "quantize", "bitround", "astype"]


def case(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # zarr-python warns that numcodecs.* are not in the spec
        return next(c for c in zarr_cases() if c[0] == name)


def zarr_create(path, dtype, kwargs, shape, chunks):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # zarr-python warns that numcodecs.* are not in the spec
        return zarr.create_array(store=str(path), name="a", shape=shape, chunks=chunks,
                                 dtype=dtype, fill_value=0, **kwargs)


def interop_data(dtype, shape):
    data = values(dtype, shape)
    if np.dtype(dtype).kind == "f":
        data = data * 0.25   # exact in float32 and for quantize/bitround/astype
    return data.astype(dtype)


@needs_zarr
@pytest.mark.parametrize("name", CASE_IDS)
def test_zarr_python_writes_zarrsync_reads(tmp_path, name):
    _, dtype, _, kwargs = case(name)
    shape, chunks = (13, 21), (5, 8)
    data = interop_data(dtype, shape)
    arr = zarr_create(tmp_path, dtype, kwargs, shape, chunks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr[...] = data
        theirs = arr[...]
    ours = zs.FilesystemStore(tmp_path).read_array(NODE, ...)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)
    if name not in ("quantize", "bitround"):
        np.testing.assert_array_equal(ours, data)


@needs_zarr
@pytest.mark.parametrize("name", CASE_IDS)
def test_zarrsync_writes_zarr_python_reads(tmp_path, name):
    _, dtype, codecs, _ = case(name)
    shape, chunks = (13, 21), (5, 8)
    data = interop_data(dtype, shape)
    store = zs.FilesystemStore(tmp_path)
    store.create_array(NODE, shape=shape, chunks=chunks, dtype=dtype, codecs=codecs,
                       fill_value=0)
    store.write_array(NODE, ..., data)
    ours = store.read_array(NODE, ...)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = zarr.open_array(store=str(tmp_path), path="a", mode="r")[...]
    np.testing.assert_array_equal(theirs, ours)
    if name not in ("quantize", "bitround"):
        np.testing.assert_array_equal(theirs, data)


@needs_zarr
@pytest.mark.parametrize("name", CASE_IDS)
def test_both_write_the_same_codecs_json(tmp_path, name):
    _, dtype, codecs, kwargs = case(name)
    zarr_create(tmp_path / "theirs", dtype, kwargs, (8,), (4,))
    store = zs.FilesystemStore(tmp_path / "ours")
    store.create_array(NODE, shape=(8,), chunks=(4,), dtype=dtype, codecs=codecs,
                       fill_value=0)
    theirs = json.loads((tmp_path / "theirs" / "a" / "zarr.json").read_text())
    ours = json.loads((tmp_path / "ours" / "a" / "zarr.json").read_text())
    assert json.dumps(ours["codecs"]) == json.dumps(theirs["codecs"])   # order too
    assert ours == theirs


@needs_zarr
def test_zarrsync_reads_zarr_python_gzip_with_a_timestamp(tmp_path):
    # numcodecs' gzip writes the time into each chunk; the data is the same.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = zarr_create(tmp_path, "int32", {"compressors": [zn.GZip(level=1)]}, (10,), (5,))
        arr[...] = np.arange(10, dtype="int32")
    raw = (tmp_path / "a" / "c" / "0").read_bytes()
    assert gzip.decompress(raw) == np.arange(5, dtype="<i4").tobytes()
    np.testing.assert_array_equal(zs.FilesystemStore(tmp_path).read_array(NODE, ...),
                                  np.arange(10))


def test_lzma_refuses_what_would_take_too_much_memory():
    import lzma
    # An xz header asking for a 1.5 GiB dictionary: refused by the memory limit.
    big = lzma.compress(b"x" * 100, format=lzma.FORMAT_XZ,
                        filters=[{"id": lzma.FILTER_LZMA2, "dict_size": 1536 << 20}])
    with pytest.raises(CodecError, match="numcodecs.lzma"):
        zc.numcodecs_codec("lzma").decode(big, 100)
    # Raw streams take their dictionary size from the configuration: checked first.
    raw = zc.numcodecs_codec("lzma", format=3,
                             filters=[{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 30}])
    with pytest.raises(CodecError, match="dictionary of 1073741824 bytes"):
        raw.decode(b"\0" * 10, 100)


def test_a_configuration_numcodecs_takes_but_cannot_use_is_a_codec_error():
    """Found by the fuzzer: numcodecs builds zlib with ``level: null`` and
    fails only when encoding, with a ``TypeError``."""
    store = zs.MemoryStore()
    node = zs.ArrayNode.of_path("/a")
    store.create_array(node, shape=(4,), chunks=(4,), dtype="uint16",
                       codecs=[{"name": "bytes", "configuration": {"endian": "little"}},
                               {"name": "numcodecs.zlib", "configuration": {"level": None}}])
    with pytest.raises(zs.CodecError, match="numcodecs.zlib .*could not encode"):
        store.write_array(node, ..., np.arange(4, dtype="uint16"))
    np.testing.assert_array_equal(store.read_array(node), [0, 0, 0, 0])


@pytest.mark.parametrize("field, value", [("blocksize", 2 ** 31), ("typesize", 2 ** 31),
                                          ("blocksize", -1), ("typesize", 0)])
def test_blosc_sizes_beyond_a_c_int_are_codec_errors(field, value):
    """Found by the fuzzer: numcodecs raised OverflowError when encoding with a
    blocksize of 2 ** 31."""
    with pytest.raises(zs.CodecError, match=f"blosc {field} must be an integer"):
        zs.codecs.from_dict({"name": "blosc", "configuration": {field: value}})


def interop_cells(name, params):
    """The cells of docs/interop.md each test checks (tests/interop_matrix.py)."""
    direction = {"test_zarr_python_writes_zarrsync_reads": "read",
                 "test_zarrsync_writes_zarr_python_reads": "write"}.get(name)
    if direction is None or zarr is None:
        return []
    _, dtype, codecs, _ = case(params["name"])
    return [cell("zarr-python", 3, codec_label(codecs), dtype_label(dtype), direction)]
