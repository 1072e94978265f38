"""The ``string`` and ``bytes`` data types and the ``vlen-utf8``/``vlen-bytes`` codecs.

Frames are checked against the format written out here with ``struct``
(https://github.com/zarr-developers/zarr-extensions/tree/main/codecs/vlen-utf8):
a u32 little-endian element count, then per element a u32 little-endian byte
count and the bytes. Store operations are checked against NumPy on every
backend; damaged chunks must raise a ``CodecError`` naming their key, and
so must chunks that decode to more than ``config.max_chunk_bytes``.
Random data is in ``test_properties_vlen.py``, zarr-python in ``test_interop_vlen.py``.
"""

import json
import random
import struct

import numpy as np
import pytest

import zarrsync as zs
from zarrsync import ArrayNode
from zarrsync.codecs import (Bytes, Crc32c, Gzip, ShardingIndexed, Transpose, VlenBytes,
                             VlenUtf8, Zstd, from_dict)
from zarrsync.metadata import ArrayMetadata, parse_dtype

T = np.dtypes.StringDType()
O = np.dtype(object)
NODE = ArrayNode.of_path("/g/text")

# Strings that exercise every path: empty, NULs (a trailing NUL is dropped by
# NumPy's fixed-width types), 2-, 3- and 4-byte UTF-8, and strings longer than
# StringDType's 15-byte inline storage (heap/arena allocated).
STRINGS = ["", "a", "\x00", "a\x00", "\x00\x00b\x00", "é", "€uro", "𝄞 clef",
           "日本語テキスト", "x" * 16, "long " * 60, "\U0010ffff", "tab\tnew\nline"]
BYTES = [b"", b"a", b"\x00", b"a\x00", b"\xff\xfe", bytes(range(256)), b"x" * 300,
         "é".encode()]


def frame(items):
    """The vlen frame of ``items`` (bytes each), written out by hand."""
    return struct.pack("<I", len(items)) + b"".join(
        struct.pack("<I", len(b)) + b for b in items)


def strings(values, shape=None):
    """A StringDType array holding exactly ``values`` (no fixed-width detour)."""
    a = np.empty(len(values), dtype=T)
    for i, v in enumerate(values):
        a[i] = v
    return a.reshape(shape or (len(values),))


def byte_strings(values, shape=None):
    a = np.empty(len(values), dtype=O)
    for i, v in enumerate(values):
        a[i] = v
    return a.reshape(shape or (len(values),))


def chunk_keys(store, node=NODE):
    return sorted(k for k in store.list_prefix(node.key + "/") if not k.endswith("zarr.json"))


def assert_same(actual, expected):
    assert isinstance(actual, np.ndarray)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.tolist() == expected.tolist()


# ----------------------------------------------------------------------------------
# The codecs on their own
# ----------------------------------------------------------------------------------

def test_vlen_utf8_frame_is_the_spec_layout():
    data = strings(STRINGS)
    encoded = VlenUtf8().encode(data)
    assert encoded == frame([s.encode("utf-8") for s in STRINGS])
    assert_same(VlenUtf8().decode(encoded, data.shape, T), data)


def test_vlen_bytes_frame_is_the_spec_layout():
    data = byte_strings(BYTES)
    encoded = VlenBytes().encode(data)
    assert encoded == frame(BYTES)
    assert_same(VlenBytes().decode(encoded, data.shape, O), data)


def test_frames_are_in_c_order_of_the_chunk():
    values = [f"{i}" * (i % 4) for i in range(12)]
    data = strings(values, (3, 4))
    assert VlenUtf8().encode(data) == frame([v.encode() for v in values])
    # A strided (transposed) view encodes in its own C order.
    assert VlenUtf8().encode(data.T) == frame([v.encode() for v in data.T.reshape(-1).tolist()])
    assert_same(VlenUtf8().decode(VlenUtf8().encode(data), (3, 4), T), data)


def test_object_array_of_str_encodes_as_strings():
    assert VlenUtf8().encode(np.array(["a\x00", "é"], dtype=O)) == frame([b"a\x00", "é".encode()])


@pytest.mark.parametrize("bad", [
    b"", b"\x01\x00\x00",                                  # no element count
    frame([b"ab"])[:-1],                                   # payload runs past the end
    frame([b"ab"])[:6],                                    # length prefix runs past the end
    frame([b"ab"]) + b"\x00",                              # trailing bytes
    struct.pack("<I", 2) + frame([b"ab"])[4:],             # count says 2, holds 1
    struct.pack("<II", 1, 0xFFFFFFFF) + b"ab",             # huge length
])
@pytest.mark.parametrize("codec,dtype", [(VlenUtf8(), T), (VlenBytes(), O)])
def test_damaged_frames_raise(codec, dtype, bad):
    with pytest.raises(zs.CodecError, match=codec.name):
        codec.decode(bad, (1,), dtype)


def test_count_must_match_the_chunk():
    with pytest.raises(zs.CodecError, match="2 elements, the chunk has 3"):
        VlenUtf8().decode(frame([b"a", b"b"]), (3,), T)


INVALID_UTF8 = [b"\x80", b"\xff", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80",
                b"\xf0\x80\x80\x80", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xe2\x82",
                b"\xf0\x9d\x84", b"abcdefgh\xc3", b"abcdefghijklmnop\xe2\x28\xa1",
                b"\xc3\x28"]


@pytest.mark.parametrize("bad", INVALID_UTF8, ids=lambda b: b.hex())
def test_invalid_utf8_raises(bad):
    with pytest.raises(UnicodeDecodeError):
        bad.decode("utf-8")
    with pytest.raises(zs.CodecError, match="element 1 is not valid UTF-8"):
        VlenUtf8().decode(frame([b"ok", bad]), (2,), T)
    # The same bytes are fine for vlen-bytes.
    assert VlenBytes().decode(frame([b"ok", bad]), (2,), O)[1] == bad


def test_utf8_check_agrees_with_python():
    # Pieces chosen to hit every branch of the validator, glued at random.
    pieces = [b"a", b"abcdefgh", b"\x00", "é".encode(), "€".encode(), "𝄞".encode(),
              "\U0010ffff".encode(), b"\xed\x9f\xbf", b"\xee\x80\x80", *INVALID_UTF8[:10]]
    rng = random.Random(0)
    for _ in range(3000):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        try:
            expected = raw.decode("utf-8")
        except UnicodeDecodeError:
            expected = None
        try:
            got = VlenUtf8().decode(frame([raw]), (1,), T)[0]
        except zs.CodecError:
            got = None
        assert got == expected, raw


def test_vlen_bytes_rejects_other_elements():
    with pytest.raises(zs.InvalidDataType, match="element 1 is str"):
        VlenBytes().encode(np.array([b"a", "b"], dtype=O))


def test_codec_json_forms():
    assert VlenUtf8().to_dict() == {"name": "vlen-utf8", "configuration": {}}
    assert VlenBytes().to_dict() == {"name": "vlen-bytes", "configuration": {}}
    for codec in (VlenUtf8(), VlenBytes()):
        assert from_dict(codec.to_dict()) == codec
        assert from_dict(codec.name) == codec
    with pytest.raises(zs.CodecError, match="no configuration"):
        from_dict({"name": "vlen-utf8", "configuration": {"x": 1}})


@pytest.mark.parametrize("dtype,codecs,match", [
    ("string", [Bytes()], "use vlen-utf8"),
    ("bytes", [Bytes()], "use vlen-bytes"),
    ("bytes", [VlenUtf8()], "string data type only"),
    ("string", [VlenBytes()], "bytes data type only"),
    ("int32", [VlenUtf8()], "string data type only"),
    ("string", [ShardingIndexed((2,), codecs=[Bytes()])], "use vlen-utf8"),
])
def test_codec_must_fit_the_data_type(store, dtype, codecs, match):
    with pytest.raises(zs.CodecError, match=match):
        store.create_array(NODE, shape=(4,), chunks=(2,), dtype=dtype, codecs=codecs)
    assert not store.array_exists(NODE)


def test_vlen_codec_needs_a_serializer_slot(store):
    with pytest.raises(zs.ArrayToBytesInvariant):
        store.create_array(NODE, shape=(4,), chunks=(2,), dtype="string",
                           codecs=[VlenUtf8(), VlenUtf8()])
    with pytest.raises(zs.InvalidCodecOrdering):
        store.create_array(NODE, shape=(4,), chunks=(2,), dtype="string",
                           codecs=[Gzip(), VlenUtf8()])


# ----------------------------------------------------------------------------------
# Data types and documents
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["string", str, T, np.dtype("T"),
                                      np.dtypes.StringDType(coerce=False)])
def test_string_spellings(spelling):
    assert parse_dtype(spelling) == T


@pytest.mark.parametrize("spelling", ["bytes", bytes, "variable_length_bytes"])
def test_bytes_spellings(spelling):
    assert parse_dtype(spelling) == O


@pytest.mark.parametrize("spelling", [object, "O", "object", "U", "S", np.str_, np.bytes_])
def test_ambiguous_types_are_rejected(spelling):
    # Fixed widths ("U4", "S3") are the fixed_length_utf32 and null_terminated_bytes types.
    with pytest.raises(zs.InvalidDataType):
        parse_dtype(spelling)


def test_default_documents_match_zarr_python(store):
    # What zarr-python 3.1 writes for dtype=str / VariableLengthBytes() by default.
    store.create_array(NODE, shape=(5,), chunks=(2,), dtype="string")
    doc = json.loads(store.get(NODE.metadata_key))
    assert doc["data_type"] == "string"
    assert doc["fill_value"] == ""
    assert doc["codecs"] == [{"name": "vlen-utf8", "configuration": {}},
                             {"name": "zstd", "configuration": {"level": 0, "checksum": False}}]
    b = ArrayNode.of_path("/g/raw")
    store.create_array(b, shape=(5,), chunks=(2,), dtype="bytes")
    doc = json.loads(store.get(b.metadata_key))
    assert doc["data_type"] == "variable_length_bytes"
    assert doc["fill_value"] == ""
    assert doc["codecs"][0] == {"name": "vlen-bytes", "configuration": {}}
    meta = store.array_metadata(b)
    assert meta.dtype == O and meta.fill_value == b"" and meta.data_type == "variable_length_bytes"


@pytest.mark.parametrize("dtype,fill,json_fill", [
    ("string", None, ""), ("string", "", ""), ("string", "n/a", "n/a"),
    ("string", "a\x00", "a\x00"), ("string", "𝄞", "𝄞"),
    ("bytes", None, ""), ("bytes", b"\x00", "AA=="), ("bytes", b"\x00\xff\x10", "AP8Q"),
    ("bytes", bytearray(b"ab\x00"), "YWIA"),
])
def test_fill_value_json(dtype, fill, json_fill):
    meta = ArrayMetadata((4,), (2,), dtype, fill)
    assert meta.to_dict()["fill_value"] == json_fill
    back = ArrayMetadata.from_json(meta.to_json())
    assert back.fill_value == meta.fill_value
    assert type(back.fill_value) is (str if dtype == "string" else bytes)
    assert back == meta


def test_reads_other_document_forms():
    doc = ArrayMetadata((4,), (2,), "bytes", b"ab").to_dict()
    doc["data_type"] = "bytes"                    # the zarr-extensions name
    assert ArrayMetadata.from_dict(doc).dtype == O
    doc["fill_value"] = [97, 98, 0]               # byte values instead of base64
    assert ArrayMetadata.from_dict(doc).fill_value == b"ab\x00"
    doc = ArrayMetadata((4,), (2,), "string").to_dict()
    doc["data_type"] = {"name": "string", "configuration": {}}
    assert ArrayMetadata.from_dict(doc).dtype == T


@pytest.mark.parametrize("dtype,json_fill", [
    ("string", 0), ("string", None), ("string", ["a"]),
    ("bytes", "not base64!"), ("bytes", "YWI"), ("bytes", [256]), ("bytes", 5),
])
def test_bad_fill_value_json(dtype, json_fill):
    doc = ArrayMetadata((4,), (2,), dtype).to_dict()
    doc["fill_value"] = json_fill
    with pytest.raises(zs.ParseError, match="fill_value"):
        ArrayMetadata.from_dict(doc)


@pytest.mark.parametrize("dtype,fill", [("string", 0), ("string", b"a"), ("bytes", "a"),
                                        ("bytes", 0), ("string", np.int8(1))])
def test_fill_value_of_the_wrong_type(store, dtype, fill):
    with pytest.raises(zs.InvalidDataType):
        store.create_array(NODE, shape=(4,), chunks=(2,), dtype=dtype, fill_value=fill)


def test_sharding_defaults_to_the_vlen_codec():
    meta = ArrayMetadata((8,), (4,), "string", codecs=[ShardingIndexed((2,))])
    assert meta.to_dict()["codecs"][0]["configuration"]["codecs"] == [
        {"name": "vlen-utf8", "configuration": {}}]
    meta = ArrayMetadata((8,), (4,), "bytes", codecs=[ShardingIndexed((2,))])
    assert meta.to_dict()["codecs"][0]["configuration"]["codecs"] == [
        {"name": "vlen-bytes", "configuration": {}}]


# ----------------------------------------------------------------------------------
# Every store operation
# ----------------------------------------------------------------------------------

CHAINS = {
    "plain": [VlenUtf8()],
    "default": None,
    "gzip": [VlenUtf8(), Gzip(1)],
    "zstd+crc32c": [VlenUtf8(), Zstd(3, checksum=True), Crc32c()],
    "transpose": [Transpose((1, 0)), VlenUtf8(), Crc32c()],
    "sharded": [ShardingIndexed((2, 2), codecs=[VlenUtf8(), Zstd(1)])],
    "sharded+crc32c": [ShardingIndexed((1, 3), codecs=[Transpose((1, 0)), VlenUtf8()]),
                       Crc32c()],
}


def as_bytes_chain(chain):
    def swap(c):
        if isinstance(c, VlenUtf8):
            return VlenBytes()
        if isinstance(c, ShardingIndexed):
            return ShardingIndexed(c.chunk_shape, [swap(x) for x in c.codecs])
        return c
    return None if chain is None else [swap(c) for c in chain]


def make(store, kind, chain, fill=None, shape=(7, 6), chunks=(2, 3)):
    dtype = "string" if kind == "string" else "bytes"
    codecs = CHAINS[chain] if kind == "string" else as_bytes_chain(CHAINS[chain])
    store.create_array(NODE, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                       codecs=codecs)


def sample(kind, shape, seed=0, pool=None):
    rng = random.Random(seed)
    pool = pool or (STRINGS if kind == "string" else BYTES)
    values = [rng.choice(pool) for _ in range(int(np.prod(shape)))]
    return strings(values, shape) if kind == "string" else byte_strings(values, shape)


def filled(kind, shape, fill):
    return sample(kind, shape, pool=[fill])


KINDS = ["string", "bytes"]


@pytest.mark.parametrize("chain", list(CHAINS))
@pytest.mark.parametrize("kind", KINDS)
def test_store_operations_match_numpy(store, kind, chain):
    fill = "a\x00" if kind == "string" else b"a\x00"
    make(store, kind, chain, fill, chunks=(2, 6) if "sharded" in chain else (2, 3))
    expected = filled(kind, (7, 6), fill)
    assert_same(store.read_array(NODE), expected)
    assert chunk_keys(store) == []

    # Partial, strided and orthogonal writes (duplicates: the last one wins).
    writes = [
        ((slice(1, 4), slice(2, 6)), (3, 4)),
        ((slice(0, 7, 3), slice(None, None, 2)), (3, 3)),
        (([6, 0, 6, 3], [5, -1, 1]), (4, 3)),
        ((2, slice(None)), (6,)),
        ((np.array([True, False] * 3 + [True]), 4), (4,)),
    ]
    for seed, (sel, shape) in enumerate(writes):
        value = sample(kind, shape, seed)
        store.write_array(NODE, sel, value)
        expected[np.ix_(*orthogonal(sel, expected.shape))] = value.reshape(
            [len(i) for i in orthogonal(sel, expected.shape)])
        assert_same(store.read_array(NODE), expected)

    reads = [(slice(1, 6, 2), slice(0, 6, 4)), ([4, 4, 0], slice(None)), (3, [2, 0]),
             (-1, -1), (Ellipsis, 1), (slice(2, 2),)]
    for sel in reads:
        index = orthogonal(sel, expected.shape)
        ref = expected[np.ix_(*index)].reshape(out_shape(sel, expected.shape))
        assert_same(store.read_array(NODE, sel), ref)

    # Writing the fill value back erases exactly the chunks that become all fill.
    store.write_array(NODE, (slice(0, 2), slice(None)), filled(kind, (2, 6), fill))
    expected[0:2] = filled(kind, (2, 6), fill)
    assert_same(store.read_array(NODE), expected)
    grid = [(i, j) for i in range(4) for j in range(2)]
    stored = {key_of(ij) for ij in grid
              if not (expected[2 * ij[0]:2 * ij[0] + 2, 3 * ij[1]:3 * ij[1] + 3]
                      == np.array(fill, dtype=expected.dtype)).all()}
    if "sharded" in chain:
        assert chunk_keys(store)  # shards: checked in test_sharded_fill_inner_chunks
    else:
        assert set(chunk_keys(store)) == stored

    # reshape: shrink, then grow: the cut-off part comes back as the fill value.
    store.reshape(NODE, (3, 4))
    assert_same(store.read_array(NODE), expected[:3, :4])
    store.reshape(NODE, (8, 7))
    grown = filled(kind, (8, 7), fill)
    grown[:3, :4] = expected[:3, :4]
    assert_same(store.read_array(NODE), grown)
    store.write_array(NODE, ..., filled(kind, (8, 7), fill))
    assert chunk_keys(store) == []


def orthogonal(sel, shape):
    sel = sel if isinstance(sel, tuple) else (sel,)
    if any(s is Ellipsis for s in sel):
        i = sel.index(Ellipsis)
        sel = sel[:i] + (slice(None),) * (len(shape) - len(sel) + 1) + sel[i + 1:]
    sel = sel + (slice(None),) * (len(shape) - len(sel))
    out = []
    for s, n in zip(sel, shape):
        if isinstance(s, int):
            out.append(np.array([s % n]))
        elif isinstance(s, slice):
            out.append(np.arange(n)[s])
        else:
            a = np.asarray(s)
            out.append(np.flatnonzero(a) if a.dtype == bool else a % n)
    return out


def out_shape(sel, shape):
    sel = sel if isinstance(sel, tuple) else (sel,)
    index = orthogonal(sel, shape)
    full = list(sel) + [slice(None)] * (len(shape) - len(sel))
    if Ellipsis in full:
        full = [slice(None) if s is Ellipsis else s for s in full][:len(shape)]
    return tuple(len(i) for i, s in zip(index, full) if not isinstance(s, int))


def key_of(coords):
    return NODE.key + "/c/" + "/".join(map(str, coords))


@pytest.mark.parametrize("kind", KINDS)
def test_edge_chunks_store_their_padding_as_fill(store, kind):
    fill = "pad" if kind == "string" else b"pad"
    make(store, kind, "plain", fill, shape=(5,), chunks=(3,))
    value = sample(kind, (5,), 3, pool=["x"] if kind == "string" else [b"x"])
    store.write_array(NODE, ..., value)
    raw = store.get(NODE.key + "/c/1")
    pad = fill.encode() if kind == "string" else fill
    assert raw == frame([b"x", b"x", pad])


@pytest.mark.parametrize("kind", KINDS)
def test_zero_dimensional(store, kind):
    fill = "f" if kind == "string" else b"f"
    store.create_array(NODE, shape=(), chunks=(), dtype=kind, fill_value=fill,
                       codecs=[VlenUtf8() if kind == "string" else VlenBytes()])
    assert store.read_array(NODE)[()] == fill
    value = "𝄞\x00" if kind == "string" else b"\x00\x01"
    store.write_array(NODE, (), value)
    out = store.read_array(NODE)
    assert out.shape == () and out[()] == value
    assert store.get(NODE.key + "/c") == frame([value.encode() if kind == "string" else value])
    store.write_array(NODE, ..., fill)
    assert chunk_keys(store) == []


@pytest.mark.parametrize("kind", KINDS)
def test_array_view(store, kind):
    make(store, kind, "gzip", shape=(5, 4), chunks=(2, 3))
    arr = zs.Array(store, NODE)
    data = sample(kind, (5, 4), 7)
    arr[...] = data
    assert_same(arr[::-2, 1:], data[::-2, 1:])
    assert_same(np.asarray(arr), data)
    row = ["a\x00", "", "𝄞", "x"] if kind == "string" else [b"a\x00", b"", b"\xff", b"x"]
    arr[3] = row                               # a plain list, trailing NUL kept
    for j, v in enumerate(row):
        data[3, j] = v
    assert_same(arr[...], data)
    arr[4, ::-1] = row
    for j, v in enumerate(row[::-1]):
        data[4, j] = v
    assert_same(arr[...], data)


def test_accepted_string_values(store):
    make(store, "string", "plain", shape=(4,), chunks=(3,))
    store.write_array(NODE, ..., np.array(["a", "bb", "", "c"]))              # U4
    store.write_array(NODE, slice(0, 2), np.array(["é\x00", "𝄞"], dtype=O))  # object of str
    store.write_array(NODE, slice(2, 3), ["z\x00"])                           # list
    store.write_array(NODE, 3, "q\x00")                                       # scalar
    assert store.read_array(NODE).tolist() == ["é\x00", "𝄞", "z\x00", "q\x00"]
    store.write_array(NODE, ..., "same")                                      # broadcast
    assert store.read_array(NODE).tolist() == ["same"] * 4
    na = np.dtypes.StringDType(na_object=None)
    store.write_array(NODE, ..., np.array(["n", "o", "n", "e"], dtype=na))    # no NA in it
    assert store.read_array(NODE).tolist() == ["n", "o", "n", "e"]


def test_accepted_bytes_values(store):
    make(store, "bytes", "plain", shape=(4,), chunks=(3,))
    store.write_array(NODE, ..., [b"a\x00", b"", b"\xff", b"q"])
    store.write_array(NODE, 1, b"\x00")
    store.write_array(NODE, [3], np.array([b"z\x00"], dtype=O))
    assert store.read_array(NODE).tolist() == [b"a\x00", b"\x00", b"\xff", b"z\x00"]


@pytest.mark.parametrize("kind,value", [
    ("string", 5), ("string", np.arange(4)), ("string", [b"a", b"b", b"c", b"d"]),
    ("string", np.array(["a", 1, "b", "c"], dtype=O)), ("string", np.array([b"a"] * 4)),
    ("string", np.array(["a", None, "b", "c"], dtype=np.dtypes.StringDType(na_object=None))),
    ("bytes", "text"), ("bytes", ["a", "b", "c", "d"]), ("bytes", np.array([b"a"] * 4)),
    ("bytes", np.array([b"a", "b", b"c", b"d"], dtype=O)), ("bytes", 3),
    ("bytes", np.array(["a"] * 4, dtype=T)),
])
def test_rejected_values(store, kind, value):
    make(store, kind, "plain", shape=(4,), chunks=(3,))
    with pytest.raises(zs.InvalidDataType):
        store.write_array(NODE, ..., value)
    assert chunk_keys(store) == []
    with pytest.raises(zs.InvalidDataType):
        zs.Array(store, NODE)[...] = value


def test_numeric_arrays_reject_text(store):
    store.create_array(NODE, shape=(2,), chunks=(2,), dtype="int32")
    for value in (strings(["1", "2"]), byte_strings([b"1", b"2"]), "1"):
        with pytest.raises(zs.InvalidDataType):
            store.write_array(NODE, ..., value)


def test_read_dtype_check(store):
    make(store, "string", "plain")
    assert store.read_array(NODE, dtype="string").dtype == T
    assert store.read_array(NODE, dtype=T).dtype == T
    with pytest.raises(zs.InvalidDataType):
        store.read_array(NODE, dtype="bytes")
    b = ArrayNode.of_path("/g/raw")
    store.create_array(b, shape=(2,), chunks=(2,), dtype="bytes")
    assert store.read_array(b, dtype=object).dtype == O
    assert store.read_array(b, dtype="bytes").dtype == O
    with pytest.raises(zs.InvalidDataType):
        store.read_array(b, dtype="string")


@pytest.mark.parametrize("kind", KINDS)
def test_sharded_fill_inner_chunks(store, kind):
    fill = "" if kind == "string" else b""
    make(store, kind, "sharded", shape=(8, 6), chunks=(4, 6))
    codec = store.array_metadata(NODE).codecs[0]
    value = sample(kind, (2, 2), 1, pool=["v"] if kind == "string" else [b"v"])
    store.write_array(NODE, (slice(0, 2), slice(2, 4)), value)
    assert chunk_keys(store) == [NODE.key + "/c/0/0"]
    shard = store.get(NODE.key + "/c/0/0")
    entries = np.frombuffer(shard[-codec.index_size:-4], dtype="<u8").reshape(-1, 2)
    empty = 2**64 - 1
    assert [bool(e[0] != empty) for e in entries] == [False, True, False, False, False, False]
    assert shard[entries[1, 0]:entries[1, 0] + entries[1, 1]] != b""
    store.write_array(NODE, (slice(0, 2), slice(2, 4)), filled(kind, (2, 2), fill))
    assert chunk_keys(store) == []


# ----------------------------------------------------------------------------------
# Damaged chunks name their key
# ----------------------------------------------------------------------------------

def damaged_frame(n, damage):
    """A frame of ``n`` elements whose last one is damaged."""
    if damage == "invalid utf-8":
        return frame([b"ok"] * (n - 1) + [b"\xc3("])
    return frame([b"ok"] * n)[:-1]  # the last payload runs past the end


@pytest.mark.parametrize("chain", ["plain", "gzip", "zstd+crc32c", "sharded", "sharded+crc32c"])
@pytest.mark.parametrize("damage", ["truncated", "invalid utf-8"])
def test_damaged_chunk_errors_name_the_key(store, chain, damage):
    make(store, "string", chain, shape=(4, 6), chunks=(2, 6))
    store.write_array(NODE, ..., sample("string", (4, 6), 5, pool=["ok"]))
    key = NODE.key + "/c/1/0"
    meta = store.array_metadata(NODE)
    codec = meta.chain.array_bytes
    if isinstance(codec, ShardingIndexed):
        # A valid shard around one damaged inner chunk (number 1).
        m = int(np.prod(codec.chunk_shape))
        encoded = []
        for i in range(codec.n_inner):
            payload = damaged_frame(m, damage) if i == 1 else frame([b"ok"] * m)
            for c in codec.inner.bytes_bytes:
                payload = c.encode(payload)
            encoded.append(payload)
        data = codec.assemble(encoded)
    else:
        data = damaged_frame(12, damage)
    for c in meta.chain.bytes_bytes:
        data = c.encode(data)
    store.set(key, data)
    with pytest.raises(zs.CodecError) as info:
        store.read_array(NODE)
    assert key in str(info.value)
    assert ("UTF-8" in str(info.value)) == (damage == "invalid utf-8"), str(info.value)
    # A partial write into the damaged (inner) chunk must decode it: same error.
    with pytest.raises(zs.CodecError, match=key):
        store.write_array(NODE, (2, 3), "new")
    assert_same(store.read_array(NODE, slice(0, 2)), sample("string", (2, 6), pool=["ok"]))


def test_invalid_utf8_chunk_from_another_writer(store):
    # A chunk another library wrote with invalid UTF-8: vlen-bytes reads it,
    # vlen-utf8 refuses it, naming the key.
    make(store, "string", "plain", shape=(2,), chunks=(2,))
    store.set(NODE.key + "/c/0", frame([b"ok", b"\xff"]))
    with pytest.raises(zs.CodecError, match=r"g/text/c/0.*element 1 is not valid UTF-8"):
        store.read_array(NODE)


def test_large_chunk_round_trip(store):
    # Many elements, long and short, through zstd: the kernels' sizing passes.
    rng = np.random.default_rng(0)
    values = ["é" * int(n) for n in rng.integers(0, 40, 20000)]
    data = strings(values)
    store.create_array(NODE, shape=(20000,), chunks=(7000,), dtype="string",
                       codecs=[VlenUtf8(), Zstd(1)])
    store.write_array(NODE, ..., data)
    assert_same(store.read_array(NODE), data)
    assert_same(store.read_array(NODE, slice(6990, 7010)), data[6990:7010])
    assert store.get(NODE.key + "/c/0").startswith(b"\x28\xb5\x2f\xfd")  # a zstd frame


@pytest.mark.parametrize("kind", KINDS)
def test_threads_write_and_read_disjoint_chunks(kind):
    # The string kernels release the GIL while holding NumPy's string allocator.
    from concurrent.futures import ThreadPoolExecutor
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(8, 500), chunks=(1, 500), dtype=kind,
                       codecs=[VlenUtf8() if kind == "string" else VlenBytes(), Zstd(1)])
    data = sample(kind, (8, 500), 11)

    def write_row(i):
        for _ in range(5):
            store.write_array(NODE, i, data[i])
        return store.read_array(NODE, i)

    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(write_row, range(8)))
    for i, row in enumerate(rows):
        assert_same(row, data[i])
    assert_same(store.read_array(NODE), data)


# -- bounded decoding: chunks larger than config.max_chunk_bytes ------------------------

@pytest.mark.parametrize("compressors", [[], [Zstd(1)], [Gzip(1)], [Zstd(1), Crc32c()]],
                         ids=["plain", "zstd", "gzip", "zstd+crc32c"])
@pytest.mark.parametrize("fast_paths", [True, False], ids=["fast-paths", "portable"])
def test_chunks_beyond_max_chunk_bytes_are_refused(compressors, fast_paths):
    # The metadata cannot fix a vlen chunk's size: config.max_chunk_bytes bounds
    # what its stored bytes may decode to, exactly at the limit included.
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(6,), chunks=(3,), dtype="string",
                       codecs=[VlenUtf8(), *compressors])
    values = strings(["x" * 100, "é" * 50, ""] * 2)
    store.write_array(NODE, ..., values)
    n = len(frame([v.encode() for v in values[:3].tolist()]))   # each chunk's frame
    with zs.config.set(max_chunk_bytes=n, fast_paths=fast_paths):
        assert_same(store.read_array(NODE), values)
    with zs.config.set(max_chunk_bytes=n - 1, fast_paths=fast_paths):
        with pytest.raises(zs.CodecError, match=f"g/text/c/1.*more than the {n - 1} "):
            store.read_array(NODE, slice(3, 6))
        with pytest.raises(zs.CodecError, match="g/text/c/0"):
            store.write_array(NODE, 1, "partial writes decode the chunk first")
