"""The public API of API.md, operation by operation and error by error.

Filesystem and zip stores, sharding and the vlen codecs are tested elsewhere.
Every error is raised here by the input API.md says should raise it.
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zarrsync as zs
from zarrsync import ArrayNode, GroupNode
from zarrsync.codecs import Bytes, Crc32c, Gzip, Transpose, Zstd

from store_contract import StoreContract

ROOT = GroupNode.root()


@pytest.fixture
def store():
    return zs.MemoryStore()


def chunk_keys(store, node):
    return sorted(k for k in store.list_prefix(node.key + "/") if not k.endswith("zarr.json"))


def make_array(store, path="/g/arr", data=None, **kwargs):
    node = ArrayNode.of_path(path)
    kwargs.setdefault("shape", (10, 12))
    kwargs.setdefault("chunks", (4, 5))
    kwargs.setdefault("dtype", "int32")
    store.create_array(node, **kwargs)
    if data is not None:
        store.write_array(node, ..., data)
    return node


# ----------------------------------------------------------------------------------
# The exception tree
# ----------------------------------------------------------------------------------

ERRORS = [
    ("KeyNotFound", KeyError), ("ParseError", ValueError),
    ("InvalidArraySlice", IndexError), ("InvalidDataType", TypeError),
    ("InvalidResizeShape", ValueError), ("NodeInvariant", ValueError),
    ("CannotRenameRoot", ValueError), ("NodeExists", FileExistsError),
    ("CodecError", ValueError),
]
CODEC_ERRORS = ["BytesToBytesInvariant", "ArrayToBytesInvariant", "InvalidCodecOrdering",
                "InvalidTransposeOrder", "InvalidShardingChunkShape", "InvalidZstdLevel",
                "ChecksumMismatch"]


@pytest.mark.parametrize("name,builtin", ERRORS)
def test_error_builtin_bases(name, builtin):
    cls = getattr(zs, name)
    assert cls is getattr(zs.errors, name)
    assert issubclass(cls, zs.ZarrSyncError)
    assert issubclass(cls, builtin)
    assert issubclass(zs.ZarrSyncError, Exception)
    with pytest.raises(builtin):
        raise cls("message")


@pytest.mark.parametrize("name", CODEC_ERRORS)
def test_codec_error_subclasses(name):
    cls = getattr(zs, name)
    assert cls is getattr(zs.errors, name)
    assert issubclass(cls, zs.CodecError)
    assert issubclass(cls, ValueError)
    assert issubclass(cls, zs.ZarrSyncError)


def test_bytes_to_bytes_invariant_is_array_to_bytes_invariant():
    assert zs.BytesToBytesInvariant is zs.ArrayToBytesInvariant
    assert zs.errors.BytesToBytesInvariant is zs.errors.ArrayToBytesInvariant


def test_key_not_found_message_is_readable():
    e = zs.KeyNotFound("array /x is not a member of the store")
    assert str(e) == "array /x is not a member of the store"


# ----------------------------------------------------------------------------------
# KeyNotFound
# ----------------------------------------------------------------------------------

def test_key_not_found(store):
    a = ArrayNode.of_path("/missing")
    g = GroupNode.of_path("/missing")
    for call in [lambda: store.array_metadata(a), lambda: store.group_metadata(g),
                 lambda: store.group_metadata(ROOT), lambda: store.read_array(a),
                 lambda: store.write_array(a, ..., 1), lambda: store.reshape(a, (3,)),
                 lambda: store.rename_array(a, "b"), lambda: store.rename_group(g, "b"),
                 lambda: zs.Array(store, a), lambda: zs.Array(store, "/missing")]:
        with pytest.raises(zs.KeyNotFound):
            call()
        with pytest.raises(KeyError):
            call()


def test_key_not_found_for_wrong_node_kind(store):
    store.create_group(GroupNode.of_path("/grp"))
    make_array(store, "/arr")
    with pytest.raises(zs.KeyNotFound):
        store.array_metadata(ArrayNode.of_path("/grp"))
    with pytest.raises(zs.KeyNotFound):
        store.read_array(ArrayNode.of_path("/grp"))
    with pytest.raises(zs.KeyNotFound):
        store.group_metadata(GroupNode.of_path("/arr"))
    with pytest.raises(zs.KeyNotFound):
        store.rename_group(GroupNode.of_path("/arr"), "x")
    with pytest.raises(zs.KeyNotFound):
        store.rename_array(ArrayNode.of_path("/grp"), "x")


# ----------------------------------------------------------------------------------
# ParseError
# ----------------------------------------------------------------------------------

def test_parse_error_bad_node_type(store):
    store.create_group(GroupNode.of_path("/g"))
    make_array(store, "/g/ok")
    store.set("g/bad/zarr.json", json.dumps(
        {"zarr_format": 3, "node_type": "dataset", "attributes": {}}).encode())
    with pytest.raises(zs.ParseError, match="node_type"):
        store.find_child_nodes(GroupNode.of_path("/g"))
    with pytest.raises(zs.ParseError, match="node_type"):
        store.find_all_nodes()
    # A sibling group without the bad child is unaffected.
    store.create_group(GroupNode.of_path("/h/x"))
    assert store.find_child_nodes(GroupNode.of_path("/h"))[1] == [GroupNode.of_path("/h/x")]


@pytest.mark.parametrize("doc", [
    b"not json at all",
    b'{"zarr_format": 3, "node_type": 5}',
    b'{"zarr_format": 2, "node_type": "array"}',
    b"[1, 2, 3]",
])
def test_parse_error_child_documents(store, doc):
    store.create_group(ROOT)
    store.set("child/zarr.json", doc)
    with pytest.raises(zs.ParseError):
        store.find_child_nodes(ROOT)
    with pytest.raises(zs.ParseError):
        store.find_all_nodes()


def test_parse_error_bad_array_document(store):
    node = make_array(store, "/arr")
    doc = json.loads(store.get("arr/zarr.json"))
    doc["storage_transformers"] = [{"name": "chunk-manifest"}]
    store.set("arr/zarr.json", json.dumps(doc).encode())
    for call in [lambda: store.array_metadata(node), lambda: store.read_array(node),
                 lambda: store.write_array(node, ..., 0)]:
        with pytest.raises(zs.ParseError, match="storage_transformers"):
            call()
    doc["storage_transformers"] = []
    doc["data_type"] = "float128"
    store.set("arr/zarr.json", json.dumps(doc).encode())
    with pytest.raises(zs.ParseError, match="data_type"):
        store.array_metadata(node)
    store.set("arr/zarr.json", b"{broken")
    with pytest.raises(zs.ParseError, match="arr/zarr.json"):
        store.array_metadata(node)


def test_parse_error_bad_group_document(store):
    store.set("zarr.json", b'{"zarr_format": 3, "node_type": "group", "attributes": 5}')
    with pytest.raises(zs.ParseError, match="attributes"):
        store.group_metadata(ROOT)


def test_create_array_bad_arguments_raise_parse_error(store):
    node = ArrayNode.of_path("/a")
    with pytest.raises(zs.ParseError):
        store.create_array(node, shape=(4, 4), chunks=(2,), dtype="int8")
    with pytest.raises(zs.ParseError):
        store.create_array(node, shape=(4,), chunks=(0,), dtype="int8")
    with pytest.raises(zs.ParseError):
        store.create_array(node, shape=(4,), chunks=(2,), dtype="int8", separator="-")
    with pytest.raises(zs.ParseError):
        store.create_array(node, shape=(4,), chunks=(2,), dtype="int8",
                           chunk_key_encoding="v3")
    with pytest.raises(zs.ParseError):
        store.create_array(node, shape=(4,), chunks=(2,), dtype="int8",
                           dimension_names=["a", "b"])
    assert not store.array_exists(node)
    assert store.list_prefix("") == []


# ----------------------------------------------------------------------------------
# InvalidArraySlice
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("selection", [
    10, -11, (0, 12), (0, -13),
    slice(0, 11), slice(-11, None), (slice(None), slice(13)),
    slice(None, None, -1), slice(None, None, 0),
    (0, 0, 0), (Ellipsis, 0, 0, 0), (Ellipsis, Ellipsis),
    ([0, 10],), (slice(None), [12]), (slice(None), [-13]), ([[0, 1]],),
    (1.5,), ("a",), (None,), (slice(0.5, 2),), ([0.5, 1.0],),
])
def test_invalid_array_slice_read(store, selection):
    node = make_array(store)
    with pytest.raises(zs.InvalidArraySlice):
        store.read_array(node, selection)
    with pytest.raises(IndexError):
        store.read_array(node, selection)


_BOUNDS = st.one_of(st.none(), st.integers(-13, 13))


@settings(max_examples=500, deadline=None)
@given(shape=st.lists(st.integers(0, 11), min_size=1, max_size=3).map(tuple),
       data=st.data(), clip=st.booleans())
def test_normalize_selection_fast_path_matches_the_general_path(shape, data, clip):
    """Tuples of ints and step-1 slices take a shortcut; it must agree with the
    general path, errors included."""
    from zarrsync import indexing
    from zarrsync.errors import InvalidArraySlice

    axis = st.one_of(st.integers(-13, 13), st.builds(slice, _BOUNDS, _BOUNDS))
    sel = tuple(data.draw(axis) for _ in shape)

    def outcome(normalize):
        try:
            s = normalize(sel, shape, clip)
        except InvalidArraySlice:
            return "InvalidArraySlice"
        return s.axes, s.full_shape, s.out_shape

    def general(sel, shape, clip):
        # The shortcut declines, so the general path runs.
        shortcut = indexing._in_bounds_ints_and_slices
        indexing._in_bounds_ints_and_slices = lambda selection, shape: None
        try:
            return indexing.normalize_selection(sel, shape, clip)
        finally:
            indexing._in_bounds_ints_and_slices = shortcut

    assert outcome(indexing.normalize_selection) == outcome(general)


@pytest.mark.parametrize("selection", [10, (0, 12), slice(0, 11), slice(None, None, -1),
                                       (0, 0, 0), ([0, 10],)])
def test_invalid_array_slice_write_out_of_bounds(store, selection):
    node = make_array(store)
    with pytest.raises(zs.InvalidArraySlice):
        store.write_array(node, selection, np.int32(1))
    assert chunk_keys(store, node) == []


@pytest.mark.parametrize("selection,shape", [
    ((slice(0, 4), slice(0, 5)), (4, 4)),
    ((slice(0, 4), slice(0, 5)), (5, 4)),
    ((slice(0, 4), slice(0, 5)), (20,)),
    ((0,), (11,)),
    ((slice(None), 3), (10, 1, 1)),
    (([1, 2, 3], slice(None)), (2, 12)),
    (Ellipsis, (10, 12, 1)),
])
def test_invalid_array_slice_data_shape(store, selection, shape):
    node = make_array(store)
    with pytest.raises(zs.InvalidArraySlice):
        store.write_array(node, selection, np.ones(shape, dtype="int32"))
    assert chunk_keys(store, node) == []


def test_scalar_and_broadcast_writes(store):
    node = make_array(store)
    store.write_array(node, (slice(0, 3), slice(0, 4)), np.int32(7))
    store.write_array(node, (5,), 9)
    store.write_array(node, (slice(6, 8), slice(None)), np.arange(12, dtype="int32"))
    store.write_array(node, (slice(8, 10), slice(0, 2)), np.array([[1], [2]], dtype="int32"))
    expected = np.zeros((10, 12), dtype="int32")
    expected[0:3, 0:4] = 7
    expected[5] = 9
    expected[6:8] = np.arange(12)
    expected[8:10, 0:2] = [[1], [2]]
    np.testing.assert_array_equal(store.read_array(node), expected)


# ----------------------------------------------------------------------------------
# InvalidDataType
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,value", [
    ("int32", np.zeros(3, dtype="int64")),
    ("int32", np.zeros(3, dtype="float32")),
    ("int32", np.zeros(3, dtype="uint32")),
    ("float32", np.zeros(3, dtype="float64")),
    ("float64", np.zeros(3, dtype="complex128")),
    ("int8", np.zeros(3, dtype="bool")),
    ("bool", np.zeros(3, dtype="uint8")),
    ("uint8", np.zeros(3, dtype="U1")),
    ("int32", [1.5, 2.0, 3.0]),
    ("int32", 1.5),
    ("int8", 300),
    ("uint16", -1),
    ("int16", "abc"),
    ("float32", 1j),
    ("float64", np.float32(1.0)),
    ("int32", [True, False, True]),
    ("bool", 1),
])
def test_invalid_data_type_write(store, dtype, value):
    node = make_array(store, shape=(3,), chunks=(2,), dtype=dtype)
    with pytest.raises(zs.InvalidDataType):
        store.write_array(node, ..., value)
    with pytest.raises(TypeError):
        store.write_array(node, ..., value)
    assert chunk_keys(store, node) == []


@pytest.mark.parametrize("dtype,value,expected", [
    ("float64", [1, 2, 3], [1.0, 2.0, 3.0]),      # Python ints into floats
    ("int16", [1, -2, 3], [1, -2, 3]),
    ("complex64", 2.5, [2.5, 2.5, 2.5]),
    ("bool", [True, False, True], [True, False, True]),
    ("float32", np.array([1, 2, 3], dtype=">f4"), [1, 2, 3]),   # other byte order
    ("uint8", 255, [255, 255, 255]),
])
def test_accepted_write_values(store, dtype, value, expected):
    node = make_array(store, shape=(3,), chunks=(2,), dtype=dtype)
    store.write_array(node, ..., value)
    got = store.read_array(node)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, expected)


def test_invalid_data_type_read(store):
    node = make_array(store, dtype="float32")
    for dtype in ("float64", np.int32, "int32", np.dtype("complex64")):
        with pytest.raises(zs.InvalidDataType):
            store.read_array(node, ..., dtype)
    for same in ("float32", np.float32, np.dtype("float32"), "<f4"):
        assert store.read_array(node, (0, 0), dtype=same).dtype == np.float32


@pytest.mark.parametrize("dtype", ["U", "S", "object", "float128"
                                   if hasattr(np, "float128") else "O", "no-such-type"])
def test_invalid_data_type_create(store, dtype):
    with pytest.raises(zs.InvalidDataType):
        store.create_array(ArrayNode.of_path("/a"), shape=(2,), chunks=(2,), dtype=dtype)
    assert store.list_prefix("") == []


def test_invalid_data_type_fill_value(store):
    with pytest.raises(zs.InvalidDataType):
        store.create_array(ArrayNode.of_path("/a"), shape=(2,), chunks=(2,), dtype="uint8",
                           fill_value=256)
    with pytest.raises(zs.InvalidDataType):
        store.create_array(ArrayNode.of_path("/a"), shape=(2,), chunks=(2,), dtype="int8",
                           fill_value=0.5)


# ----------------------------------------------------------------------------------
# InvalidResizeShape, NodeInvariant, CannotRenameRoot, NodeExists
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(10,), (10, 12, 1), (), (-1, 12), (10, -5)])
def test_invalid_resize_shape(store, shape):
    node = make_array(store, data=np.ones((10, 12), dtype="int32"))
    before = {k: store.get(k) for k in store.list_prefix("")}
    with pytest.raises(zs.InvalidResizeShape):
        store.reshape(node, shape)
    with pytest.raises(ValueError):
        store.reshape(node, shape)
    assert {k: store.get(k) for k in store.list_prefix("")} == before


def test_node_invariant(store):
    for bad in ["", "a/b", ".", "..", "__private"]:
        with pytest.raises(zs.NodeInvariant):
            GroupNode.create(ROOT, bad)
        with pytest.raises(zs.NodeInvariant):
            ArrayNode(ROOT, bad)
    for bad in ["relative", "/a/", "//", "/a/../b", "/__x"]:
        with pytest.raises(zs.NodeInvariant):
            GroupNode.of_path(bad)
        with pytest.raises(zs.NodeInvariant):
            ArrayNode.of_path(bad)
    node = make_array(store, "/a")
    store.create_group(GroupNode.of_path("/g"))
    for bad in ["", "x/y", "..", "__x"]:
        with pytest.raises(zs.NodeInvariant):
            store.rename_array(node, bad)
        with pytest.raises(zs.NodeInvariant):
            store.rename_group(GroupNode.of_path("/g"), bad)
    assert store.array_exists(node)
    assert store.group_exists(GroupNode.of_path("/g"))


def test_wrong_node_kind_arguments(store):
    with pytest.raises(zs.NodeInvariant):
        store.create_array(GroupNode.of_path("/a"), shape=(2,), chunks=(2,), dtype="int8")
    with pytest.raises(zs.NodeInvariant):
        store.create_group(ArrayNode.of_path("/a"))
    assert not store.array_exists(GroupNode.of_path("/a"))
    assert not store.group_exists(ArrayNode.of_path("/a"))


def test_cannot_rename_root(store):
    store.create_group(ROOT)
    with pytest.raises(zs.CannotRenameRoot):
        store.rename_group(ROOT, "new")
    with pytest.raises(ValueError):
        store.rename_group(ROOT, "new")
    with pytest.raises(zs.CannotRenameRoot):
        store.rename_group(GroupNode.of_path("/"), "x")
    assert store.group_exists(ROOT)


def test_node_exists(store):
    node = make_array(store, "/g/a")
    with pytest.raises(zs.NodeExists):
        store.create_array(node, shape=(1,), chunks=(1,), dtype="int8")
    with pytest.raises(FileExistsError):
        store.create_array(node, shape=(1,), chunks=(1,), dtype="int8")
    with pytest.raises(zs.NodeExists):
        store.create_array(ArrayNode.of_path("/g"), shape=(1,), chunks=(1,), dtype="int8")
    with pytest.raises(zs.NodeExists):
        store.create_group(GroupNode.of_path("/g/a"))
    with pytest.raises(zs.NodeExists):
        store.create_group(GroupNode.of_path("/g/a/sub"))
    with pytest.raises(zs.NodeExists):
        store.create_array(ArrayNode.of_path("/g/a/sub"), shape=(1,), chunks=(1,),
                           dtype="int8")
    make_array(store, "/g/b")
    store.create_group(GroupNode.of_path("/g/c"))
    with pytest.raises(zs.NodeExists):
        store.rename_array(node, "b")
    with pytest.raises(zs.NodeExists):
        store.rename_array(node, "c")
    with pytest.raises(zs.NodeExists):
        store.rename_group(GroupNode.of_path("/g/c"), "a")
    assert store.array_metadata(node).shape == (10, 12)


# ----------------------------------------------------------------------------------
# Codec errors through create_array
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("codecs,error", [
    ([Zstd()], zs.ArrayToBytesInvariant),
    ([], zs.ArrayToBytesInvariant),
    ([Bytes(), Bytes()], zs.ArrayToBytesInvariant),
    ([Transpose((1, 0)), Gzip()], zs.BytesToBytesInvariant),
    ([{"name": "gzip", "configuration": {"level": 1}}], zs.ArrayToBytesInvariant),
    ([Zstd(), Bytes()], zs.InvalidCodecOrdering),
    ([Bytes(), Transpose((1, 0))], zs.InvalidCodecOrdering),
    ([Crc32c(), Bytes(), Zstd()], zs.InvalidCodecOrdering),
    ([Transpose((0,)), Bytes()], zs.InvalidTransposeOrder),
    ([Transpose((0, 1, 2)), Bytes()], zs.InvalidTransposeOrder),
    ([{"name": "transpose", "configuration": {"order": [0, 0]}}, Bytes()],
     zs.InvalidTransposeOrder),
    ([{"name": "transpose", "configuration": {"order": [2, 0]}}, Bytes()],
     zs.InvalidTransposeOrder),
    ([Bytes(), {"name": "zstd", "configuration": {"level": 23, "checksum": False}}],
     zs.InvalidZstdLevel),
    ([Bytes(), {"name": "zstd", "configuration": {"level": -200000, "checksum": False}}],
     zs.InvalidZstdLevel),
    ([Bytes(), {"name": "gzip", "configuration": {"level": 12}}], zs.CodecError),
    ([Bytes(), {"name": "no-such-codec"}], zs.CodecError),
    ([{"name": "bytes", "configuration": {"endian": "sideways"}}], zs.CodecError),
    ([Bytes(None)], zs.CodecError),   # a multi-byte type needs an endian
])
def test_codec_errors_on_create(store, codecs, error):
    node = ArrayNode.of_path("/a")
    with pytest.raises(error):
        store.create_array(node, shape=(6, 6), chunks=(3, 3), dtype="float32", codecs=codecs)
    assert not store.array_exists(node)
    assert store.list_prefix("") == []


def test_invalid_zstd_level_constructor():
    with pytest.raises(zs.InvalidZstdLevel):
        Zstd(level=99)
    with pytest.raises(zs.InvalidTransposeOrder):
        Transpose([1, 1])


# ----------------------------------------------------------------------------------
# Corrupt chunks: ChecksumMismatch and CodecError naming the key
# ----------------------------------------------------------------------------------

def _stored_chunk(store, codecs):
    node = make_array(store, "/g/arr", shape=(8, 8), chunks=(4, 4), dtype="float64",
                      codecs=codecs)
    store.write_array(node, ..., np.arange(64, dtype="float64").reshape(8, 8) + 1)
    key = "g/arr/c/1/0"
    assert store.get(key) is not None
    return node, key


def test_checksum_mismatch(store):
    node, key = _stored_chunk(store, [Bytes(), Crc32c()])
    raw = bytearray(store.get(key))
    raw[10] ^= 0x01
    store.set(key, bytes(raw))
    with pytest.raises(zs.ChecksumMismatch, match=key):
        store.read_array(node)
    with pytest.raises(zs.ChecksumMismatch):
        store.read_array(node, (5, 1))
    # Reading around the bad chunk still works.
    np.testing.assert_array_equal(store.read_array(node, (slice(0, 4),)),
                                  np.arange(32).reshape(4, 8) + 1)
    # A partial write must read the chunk first: it fails and keeps the stored bytes.
    with pytest.raises(zs.ChecksumMismatch):
        store.write_array(node, (4, 0), 0.5)
    assert store.get(key) == bytes(raw)
    # A write covering the whole chunk replaces it without reading it.
    store.write_array(node, (slice(4, 8), slice(0, 4)), np.full((4, 4), 2.0))
    np.testing.assert_array_equal(store.read_array(node, (slice(4, 8), slice(0, 4))),
                                  np.full((4, 4), 2.0))


def test_checksum_mismatch_in_checksum_bytes(store):
    node, key = _stored_chunk(store, [Bytes(), Gzip(), Crc32c()])
    raw = bytearray(store.get(key))
    raw[-1] ^= 0x80
    store.set(key, bytes(raw))
    with pytest.raises(zs.ChecksumMismatch, match=key):
        store.read_array(node)


CORRUPTIONS = {
    "truncated": lambda raw: raw[: len(raw) // 2],
    "garbage": lambda raw: b"\x13\x37 this is not a valid chunk at all" * 3,
    "empty": lambda raw: b"",
    "one byte": lambda raw: raw[:1],
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS), ids=list(CORRUPTIONS))
@pytest.mark.parametrize("codecs", [[Bytes(), Zstd()], [Bytes(), Gzip()], [Bytes()],
                                    [Bytes(), Zstd(), Crc32c()], [Bytes(), Gzip(), Crc32c()],
                                    [Transpose((1, 0)), Bytes("big"), Zstd(5, True)]],
                         ids=["zstd", "gzip", "raw", "zstd+crc", "gzip+crc", "transposed"])
def test_corrupt_chunks_raise_codec_error_naming_the_key(store, codecs, corrupt):
    node, key = _stored_chunk(store, codecs)
    store.set(key, CORRUPTIONS[corrupt](store.get(key)))
    with pytest.raises(zs.CodecError, match=key) as info:
        store.read_array(node)
    assert isinstance(info.value, zs.ZarrSyncError)
    with pytest.raises(zs.CodecError, match=key):
        store.write_array(node, (5, 1), 3.0)     # partial write: read-modify-write
    with pytest.raises(ValueError):
        zs.Array(store, node)[4:, :4]


# ----------------------------------------------------------------------------------
# Groups and arrays: creation
# ----------------------------------------------------------------------------------

def test_create_group_ancestors_and_attrs(store):
    store.create_group(GroupNode.of_path("/x/y/z"), attrs={"deep": 1})
    assert store.find_all_nodes() == ([], sorted(GroupNode.of_path(p) for p in
                                                  ["/", "/x", "/x/y", "/x/y/z"]))
    for p in ["/", "/x", "/x/y"]:
        assert store.group_metadata(GroupNode.of_path(p)).attributes == {}
    meta = store.group_metadata(GroupNode.of_path("/x/y/z"))
    assert isinstance(meta, zs.GroupMetadata)
    assert meta.attributes == {"deep": 1}
    # A no-op for an existing group: attributes stay.
    store.create_group(GroupNode.of_path("/x/y/z"), attrs={"deep": 2})
    assert store.group_metadata(GroupNode.of_path("/x/y/z")).attributes == {"deep": 1}


def test_create_array_all_arguments(store):
    node = ArrayNode.of_path("/grp/arr")
    store.create_array(node, shape=(6, 8), chunks=(4, 3), dtype=np.float32, fill_value=-1.5,
                       codecs=[Transpose((1, 0)), Bytes("big"), Gzip(2), Crc32c()],
                       dimension_names=["y", "x"], attributes={"units": "K"},
                       separator=".", chunk_key_encoding="default")
    assert store.group_exists(GroupNode.of_path("/grp")) and store.group_exists(ROOT)
    meta = store.array_metadata(node)
    assert (meta.shape, meta.chunks, meta.dtype) == ((6, 8), (4, 3), np.dtype("float32"))
    assert meta.fill_value == np.float32(-1.5)
    assert list(meta.codecs) == [Transpose((1, 0)), Bytes("big"), Gzip(2), Crc32c()]
    assert tuple(meta.dimension_names) == ("y", "x")
    assert meta.attributes == {"units": "K"}
    assert meta.separator == "."
    doc = json.loads(store.get("grp/arr/zarr.json"))
    assert doc == meta.to_dict()
    assert doc["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "."}}
    data = np.arange(48, dtype="float32").reshape(6, 8)
    store.write_array(node, ..., data)
    np.testing.assert_array_equal(store.read_array(node), data)
    assert "grp/arr/c.1.2" in store.list_prefix("grp/arr/")


def test_create_array_v2_keys(store):
    node = make_array(store, "/v2", shape=(4, 4), chunks=(2, 2), dtype="uint8",
                      chunk_key_encoding="v2", separator=".")
    store.write_array(node, (3, 3), np.uint8(1))
    assert chunk_keys(store, node) == ["v2/1.1"]
    # API.md: separator="/" is the default, and it applies to "v2" too.
    node = make_array(store, "/v2s", shape=(4, 4), chunks=(2, 2), dtype="uint8",
                      chunk_key_encoding="v2")
    store.write_array(node, (3, 0), np.uint8(1))
    assert chunk_keys(store, node) == ["v2s/1/0"]
    assert json.loads(store.get("v2s/zarr.json"))["chunk_key_encoding"] == {
        "name": "v2", "configuration": {"separator": "/"}}


def test_create_array_codecs_as_dicts(store):
    node = make_array(store, "/a", codecs=[
        {"name": "bytes", "configuration": {"endian": "big"}},
        {"name": "zstd", "configuration": {"level": 5, "checksum": True}}])
    assert list(store.array_metadata(node).codecs) == [Bytes("big"), Zstd(5, True)]


def test_several_bytes_to_bytes_codecs_are_allowed(store):
    # The seed raised Bytes_to_bytes_invariant for more than one bytes->bytes
    # codec; API.md makes that name an alias of ArrayToBytesInvariant instead.
    codecs = [Transpose((1, 0)), Transpose((1, 0)), Bytes("big"), Gzip(1), Zstd(1), Crc32c(),
              Crc32c()]
    data = np.arange(120, dtype="int32").reshape(10, 12)
    node = make_array(store, "/a", codecs=codecs, data=data)
    assert list(store.array_metadata(node).codecs) == codecs
    np.testing.assert_array_equal(store.read_array(node), data)


def test_create_array_default_codecs_and_fill(store):
    node = make_array(store, "/a", dtype="uint16")
    meta = store.array_metadata(node)
    assert meta.fill_value == 0
    assert [c.to_dict() for c in meta.codecs] == [
        {"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "zstd", "configuration": {"level": 0, "checksum": False}}]
    np.testing.assert_array_equal(store.read_array(node), np.zeros((10, 12)))


@pytest.mark.parametrize("dtype,zero", [("bool", False), ("int8", 0), ("float32", 0.0),
                                        ("complex128", 0j)])
def test_fill_value_none_is_zero(store, dtype, zero):
    node = make_array(store, "/a", dtype=dtype, fill_value=None)
    assert store.array_metadata(node).fill_value == zero
    got = store.read_array(node)
    assert got.dtype == np.dtype(dtype)
    assert (got == zero).all()


def test_create_array_overwrite(store):
    node = make_array(store, "/a", data=np.ones((10, 12), dtype="int32"))
    with pytest.raises(zs.NodeExists):
        make_array(store, "/a", shape=(3,), chunks=(3,))
    assert len(chunk_keys(store, node)) == 9
    make_array(store, "/a", shape=(3,), chunks=(3,), dtype="int8", fill_value=4,
               overwrite=True)
    assert chunk_keys(store, node) == []
    np.testing.assert_array_equal(store.read_array(node), [4, 4, 4])
    # Overwriting a group erases everything under it.
    store.create_group(GroupNode.of_path("/g/sub"))
    make_array(store, "/g/sub/x", data=np.ones((10, 12), dtype="int32"))
    make_array(store, "/g", shape=(2,), chunks=(2,), overwrite=True)
    assert store.list_prefix("g/") == ["g/zarr.json"]
    assert store.array_exists(ArrayNode.of_path("/g"))


# ----------------------------------------------------------------------------------
# Finding, testing, erasing
# ----------------------------------------------------------------------------------

@pytest.fixture
def tree(store):
    store.create_group(ROOT, attrs={"name": "root"})
    for g in ["/a", "/a/b", "/c"]:
        store.create_group(GroupNode.of_path(g))
    for path in ["/x", "/a/y", "/a/b/z1", "/a/b/z2"]:
        make_array(store, path, shape=(4, 4), chunks=(2, 2), dtype="int16",
                   data=np.arange(16, dtype="int16").reshape(4, 4) + 1)
    return store


def test_find_child_nodes(tree):
    arrays, groups = tree.find_child_nodes(ROOT)
    assert arrays == [ArrayNode.of_path("/x")]
    assert groups == [GroupNode.of_path("/a"), GroupNode.of_path("/c")]
    assert all(isinstance(n, ArrayNode) for n in arrays)
    assert all(isinstance(n, GroupNode) for n in groups)
    assert tree.find_child_nodes(GroupNode.of_path("/a/b")) == (
        [ArrayNode.of_path("/a/b/z1"), ArrayNode.of_path("/a/b/z2")], [])
    assert tree.find_child_nodes(GroupNode.of_path("/c")) == ([], [])
    assert tree.find_child_nodes(GroupNode.of_path("/nope")) == ([], [])
    # Every child's parent is the group.
    for group in [ROOT, GroupNode.of_path("/a")]:
        for child in sum(map(list, tree.find_child_nodes(group)), []):
            assert child.is_parent(group)


def test_find_all_nodes(tree):
    arrays, groups = tree.find_all_nodes()
    assert arrays == sorted(ArrayNode.of_path(p) for p in ["/x", "/a/y", "/a/b/z1", "/a/b/z2"])
    assert groups == sorted(GroupNode.of_path(p) for p in ["/", "/a", "/a/b", "/c"])
    assert zs.MemoryStore().find_all_nodes() == ([], [])


def test_exists(tree):
    assert tree.group_exists(GroupNode.of_path("/a/b"))
    assert tree.array_exists(ArrayNode.of_path("/a/b/z1"))
    assert not tree.group_exists(GroupNode.of_path("/x"))
    assert not tree.array_exists(ArrayNode.of_path("/a"))
    assert not tree.array_exists(ArrayNode.of_path("/a/b/z3"))
    assert not tree.group_exists(GroupNode.of_path("/zzz"))
    assert tree.group_exists(ROOT)
    assert not zs.MemoryStore().group_exists(ROOT)


def test_erase_nodes(tree):
    tree.erase_array_node(ArrayNode.of_path("/a/b/z1"))
    assert not tree.array_exists(ArrayNode.of_path("/a/b/z1"))
    assert tree.list_prefix("a/b/z1/") == []
    assert tree.array_exists(ArrayNode.of_path("/a/b/z2"))
    tree.erase_array_node(ArrayNode.of_path("/a/b/z1"))   # no-op
    tree.erase_group_node(GroupNode.of_path("/a"))
    assert tree.list_prefix("a/") == []
    assert tree.find_all_nodes() == ([ArrayNode.of_path("/x")],
                                     [ROOT, GroupNode.of_path("/c")])
    tree.erase_group_node(GroupNode.of_path("/a"))         # no-op
    tree.erase_group_node(GroupNode.of_path("/never"))
    # Erasing with the wrong kind of node leaves the other kind alone.
    tree.erase_group_node(GroupNode.of_path("/x"))
    tree.erase_array_node(ArrayNode.of_path("/c"))
    assert tree.array_exists(ArrayNode.of_path("/x"))
    assert tree.group_exists(GroupNode.of_path("/c"))
    tree.erase_all_nodes()
    assert tree.list_prefix("") == []
    assert tree.find_all_nodes() == ([], [])
    tree.erase_all_nodes()


# ----------------------------------------------------------------------------------
# reshape and rename
# ----------------------------------------------------------------------------------

def test_reshape_deletes_chunks_outside(store):
    node = make_array(store, "/a", shape=(10, 10), chunks=(3, 3), dtype="int32",
                      fill_value=-1, data=np.arange(100, dtype="int32").reshape(10, 10))
    assert len(chunk_keys(store, node)) == 16
    store.reshape(node, (5, 7))
    # Row chunks 0-1 (rows 0-5) and column chunks 0-2 (columns 0-8) still overlap.
    assert chunk_keys(store, node) == sorted(f"a/c/{i}/{j}" for i in range(2)
                                             for j in range(3))
    assert store.array_metadata(node).shape == (5, 7)
    expected = np.arange(100, dtype="int32").reshape(10, 10)[:5, :7]
    np.testing.assert_array_equal(store.read_array(node), expected)
    with pytest.raises(zs.InvalidArraySlice):
        store.read_array(node, (5,))
    # Growing back shows the fill value, not the old data.
    store.reshape(node, (10, 10))
    grown = np.full((10, 10), -1, dtype="int32")
    grown[:5, :7] = expected
    np.testing.assert_array_equal(store.read_array(node), grown)
    store.reshape(node, (0, 10))
    assert chunk_keys(store, node) == []
    assert store.read_array(node).shape == (0, 10)


def test_reshape_grow_keeps_data(store):
    data = np.arange(12, dtype="float64").reshape(3, 4)
    node = make_array(store, "/a", shape=(3, 4), chunks=(2, 2), dtype="float64", data=data)
    store.reshape(node, (5, 9))
    expected = np.zeros((5, 9))
    expected[:3, :4] = data
    np.testing.assert_array_equal(store.read_array(node), expected)
    store.write_array(node, (slice(3, 5), slice(4, 9)), np.ones((2, 5)))
    expected[3:5, 4:9] = 1
    np.testing.assert_array_equal(store.read_array(node), expected)


def test_reshape_v2_and_dot_keys(store):
    for path, kw in [("/v2", dict(chunk_key_encoding="v2")), ("/dot", dict(separator="."))]:
        node = make_array(store, path, shape=(6, 6), chunks=(2, 2), dtype="uint8",
                          data=np.ones((6, 6), dtype="uint8"), **kw)
        assert len(chunk_keys(store, node)) == 9
        store.reshape(node, (2, 6))
        assert len(chunk_keys(store, node)) == 3
        np.testing.assert_array_equal(store.read_array(node), np.ones((2, 6)))


def test_rename_array_moves_everything(tree):
    old = ArrayNode.of_path("/a/b/z1")
    before = {k[len("a/b/z1"):]: tree.get(k) for k in tree.list_prefix("a/b/z1/")}
    assert len(before) == 5
    tree.rename_array(old, "renamed")
    new = ArrayNode.of_path("/a/b/renamed")
    after = {k[len("a/b/renamed"):]: tree.get(k) for k in tree.list_prefix("a/b/renamed/")}
    assert after == before
    assert tree.list_prefix("a/b/z1/") == []
    assert not tree.array_exists(old)
    np.testing.assert_array_equal(tree.read_array(new),
                                  np.arange(16, dtype="int16").reshape(4, 4) + 1)
    assert tree.find_child_nodes(GroupNode.of_path("/a/b"))[0] == [
        new, ArrayNode.of_path("/a/b/z2")]


def test_rename_group_moves_everything(tree):
    tree.create_group(GroupNode.of_path("/a"), attrs={"ignored": True})  # no-op
    before = {k[1:]: tree.get(k) for k in tree.list_prefix("a/")}
    others = {k: tree.get(k) for k in tree.list_prefix("") if not k.startswith("a/")}
    tree.rename_group(GroupNode.of_path("/a"), "moved")
    after = {k[len("moved"):]: tree.get(k) for k in tree.list_prefix("moved/")}
    assert after == before
    assert tree.list_prefix("a/") == []
    assert {k: tree.get(k) for k in tree.list_prefix("")
            if not k.startswith("moved/")} == others
    arrays, groups = tree.find_all_nodes()
    assert ArrayNode.of_path("/moved/b/z2") in arrays
    assert GroupNode.of_path("/moved/b") in groups
    assert GroupNode.of_path("/a") not in groups


def test_rename_to_same_name(tree):
    before = tree.to_dict()
    tree.rename_array(ArrayNode.of_path("/x"), "x")
    tree.rename_group(GroupNode.of_path("/a"), "a")
    assert tree.to_dict() == before


def test_rename_prefix_sibling_untouched(store):
    make_array(store, "/ab", data=np.ones((10, 12), dtype="int32"))
    make_array(store, "/a", data=np.full((10, 12), 2, dtype="int32"))
    store.rename_array(ArrayNode.of_path("/a"), "z")
    np.testing.assert_array_equal(store.read_array(ArrayNode.of_path("/ab")), 1)
    np.testing.assert_array_equal(store.read_array(ArrayNode.of_path("/z")), 2)


# ----------------------------------------------------------------------------------
# read_array / write_array selections
# ----------------------------------------------------------------------------------

DATA = np.arange(120, dtype="int32").reshape(10, 12)

# (zarrsync selection, the same selection in NumPy); lists select orthogonally.
SELECTIONS = [
    (Ellipsis, lambda d: d),
    ((), lambda d: d),
    (3, lambda d: d[3]),
    (-1, lambda d: d[-1]),
    ((2, 5), lambda d: d[2, 5]),
    ((-3, -12), lambda d: d[-3, -12]),
    (slice(2, 9), lambda d: d[2:9]),
    (slice(None, None, 3), lambda d: d[::3]),
    ((slice(1, 8, 2), slice(-5, None)), lambda d: d[1:8:2, -5:]),
    ((Ellipsis, 4), lambda d: d[..., 4]),
    ((1, Ellipsis), lambda d: d[1, ...]),
    ((slice(None), Ellipsis, slice(3, 4)), lambda d: d[:, ..., 3:4]),
    ([0, 9, 4, 4], lambda d: d[[0, 9, 4, 4]]),
    (([1, 2], [11, 0, 5]), lambda d: d[np.ix_([1, 2], [11, 0, 5])]),
    ((np.array([3, 1]), slice(2, 10, 4)), lambda d: d[[3, 1]][:, 2:10:4]),
    ((slice(None), [-1, -12]), lambda d: d[:, [-1, -12]]),
    ((7, [0, 1, 2]), lambda d: d[7, [0, 1, 2]]),
    ((range(2, 5),), lambda d: d[2:5]),
    ((slice(4, 4), slice(None)), lambda d: d[4:4]),
    (([], slice(None)), lambda d: d[np.array([], dtype=int)]),
    ((np.int64(2), np.int32(3)), lambda d: d[2, 3]),
    ((slice(None), np.array([True, False] * 6)), lambda d: d[:, ::2]),
]


@pytest.mark.parametrize("selection,numpy_equivalent", SELECTIONS,
                         ids=[repr(s) for s, _ in SELECTIONS])
def test_selections_match_numpy(store, selection, numpy_equivalent):
    node = make_array(store, data=DATA)
    expected = numpy_equivalent(DATA)
    got = store.read_array(node, selection)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.int32
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    # Write the negation back through the same selection; nothing else changes.
    store.write_array(node, selection, -expected)
    np.testing.assert_array_equal(store.read_array(node, selection), -expected)
    changed = store.read_array(node) != DATA
    assert (np.abs(store.read_array(node)[changed]) == DATA[changed]).all()


def test_write_non_contiguous_data(store):
    node = make_array(store, shape=(7, 9), chunks=(3, 4), dtype="int16",
                      codecs=[Transpose((1, 0)), Bytes("big"), Crc32c()])
    x = np.arange(63, dtype="int16").reshape(9, 7).T[::-1, ::-1]   # negative strides
    assert not x.flags.c_contiguous
    store.write_array(node, ..., x)
    np.testing.assert_array_equal(store.read_array(node), x)
    y = np.arange(200, dtype="int16")[::7][:18].reshape(2, 9)      # strided
    store.write_array(node, (slice(2, 4),), y)
    x = x.copy()
    x[2:4] = y
    np.testing.assert_array_equal(store.read_array(node), x)


def test_high_rank_array(store):
    shape = (3, 2, 4, 1, 5, 2)
    data = np.random.default_rng(0).standard_normal(shape).astype("float32")
    node = make_array(store, "/hd", shape=shape, chunks=(2, 1, 3, 1, 2, 2),
                      dtype="float32", data=data)
    np.testing.assert_array_equal(store.read_array(node), data)
    got = store.read_array(node, (1, slice(None), [3, 0], 0, slice(1, 5, 2)))
    np.testing.assert_array_equal(got, data[1][:, [3, 0]][:, :, 0][:, :, 1:5:2])


def test_huge_sparse_array(store):
    node = make_array(store, "/big", shape=(10**12,), chunks=(10**6,), dtype="uint8")
    store.write_array(node, slice(10**12 - 3, None), np.uint8(5))
    np.testing.assert_array_equal(store.read_array(node, slice(10**12 - 5, None)),
                                  [0, 0, 5, 5, 5])
    assert chunk_keys(store, node) == ["big/c/999999"]
    store.reshape(node, (10,))
    assert chunk_keys(store, node) == []


def test_read_returns_new_array(store):
    node = make_array(store, data=np.ones((10, 12), dtype="int32"))
    a = store.read_array(node)
    a[:] = 5
    assert a.flags.writeable
    np.testing.assert_array_equal(store.read_array(node), 1)
    assert store.read_array(node) is not store.read_array(node)


def test_zero_dimensional(store):
    node = make_array(store, "/s", shape=(), chunks=(), dtype="complex64", fill_value=1 + 1j)
    assert store.read_array(node) == 1 + 1j
    store.write_array(node, Ellipsis, np.complex64(2 - 3j))
    assert store.read_array(node, ()) == 2 - 3j
    with pytest.raises(zs.InvalidArraySlice):
        store.read_array(node, 0)
    arr = zs.Array(store, node)
    assert arr.shape == () and arr.ndim == 0
    assert arr[()] == 2 - 3j


# ----------------------------------------------------------------------------------
# Fill-value chunks
# ----------------------------------------------------------------------------------

def test_fill_value_chunks_are_not_stored(store):
    node = make_array(store, "/a", shape=(8, 8), chunks=(4, 4), dtype="float32",
                      fill_value=2.5)
    store.write_array(node, ..., np.full((8, 8), 2.5, dtype="float32"))
    assert chunk_keys(store, node) == []
    store.write_array(node, (slice(0, 4), slice(0, 4)), np.float32(2.5))
    assert chunk_keys(store, node) == []
    store.write_array(node, (6, 6), np.float32(1))
    assert chunk_keys(store, node) == ["a/c/1/1"]
    # Overwriting the only non-fill element with fill deletes the stored chunk.
    store.write_array(node, (6, 6), np.float32(2.5))
    assert chunk_keys(store, node) == []
    np.testing.assert_array_equal(store.read_array(node), np.full((8, 8), 2.5))


def test_stored_chunk_deleted_when_overwritten_with_fill(store):
    data = np.arange(1, 65, dtype="int64").reshape(8, 8)
    node = make_array(store, "/a", shape=(8, 8), chunks=(4, 4), dtype="int64", fill_value=0,
                      data=data)
    assert len(chunk_keys(store, node)) == 4
    store.write_array(node, (slice(0, 4), slice(4, 8)), 0)              # whole chunk
    assert "a/c/0/1" not in chunk_keys(store, node)
    store.write_array(node, (slice(4, 8), slice(0, 2)), 0)              # half a chunk
    assert "a/c/1/0" in chunk_keys(store, node)
    store.write_array(node, (slice(4, 8), slice(2, 4)), 0)              # the other half
    assert chunk_keys(store, node) == ["a/c/0/0", "a/c/1/1"]
    expected = data.copy()
    expected[0:4, 4:8] = 0
    expected[4:8, 0:4] = 0
    np.testing.assert_array_equal(store.read_array(node), expected)


def test_fill_check_is_bitwise(store):
    node = make_array(store, "/a", shape=(4,), chunks=(2,), dtype="float64", fill_value=0.0)
    store.write_array(node, ..., np.array([-0.0, 0.0, 0.0, 0.0]))
    assert chunk_keys(store, node) == ["a/c/0"]
    assert np.signbit(store.read_array(node)[0])
    nan = make_array(store, "/n", shape=(4,), chunks=(2,), dtype="float32", fill_value="NaN")
    store.write_array(nan, ..., np.full(4, np.nan, dtype="float32"))
    assert chunk_keys(store, nan) == []
    assert np.isnan(store.read_array(nan)).all()


def test_edge_chunks_of_fill(store):
    # An edge chunk holds padding; it counts as fill only when its elements are.
    node = make_array(store, "/a", shape=(5,), chunks=(4,), dtype="uint8", fill_value=7)
    store.write_array(node, (4,), np.uint8(7))
    assert chunk_keys(store, node) == []
    store.write_array(node, (4,), np.uint8(1))
    assert chunk_keys(store, node) == ["a/c/1"]
    store.write_array(node, (slice(4, 5),), np.array([7], dtype="uint8"))
    assert chunk_keys(store, node) == []


# ----------------------------------------------------------------------------------
# The Array view
# ----------------------------------------------------------------------------------

@pytest.fixture
def arr(store):
    node = make_array(store, "/g/arr", shape=(9, 11), chunks=(4, 3), dtype="float64",
                      fill_value=-1.0, attributes={"units": "m"},
                      data=np.arange(99, dtype="float64").reshape(9, 11))
    return zs.Array(store, node)


def test_array_view_properties(arr):
    assert arr.shape == (9, 11)
    assert arr.dtype == np.dtype("float64")
    assert arr.chunks == (4, 3)
    assert arr.ndim == 2
    assert len(arr) == 9
    assert arr.node == ArrayNode.of_path("/g/arr")
    assert zs.Array(arr.store, "/g/arr").shape == (9, 11)


@pytest.mark.parametrize("selection", [
    Ellipsis, 0, -1, (slice(None), 3), slice(2, 100), slice(-100, 3), (slice(8, 20), 0),
    slice(None, None, -1), (slice(7, 1, -2), slice(None, None, -3)), (slice(5, 2),),
    ([0, 8, 3], slice(10, None, -4)), (Ellipsis, -11), (slice(None), [-1, 0]),
    (slice(100, 200),),
])
def test_array_view_getitem_like_numpy(arr, selection):
    data = np.arange(99, dtype="float64").reshape(9, 11)
    got = arr[selection]
    if isinstance(selection, tuple) and any(isinstance(s, list) for s in selection):
        expected = data[selection[0]][:, selection[1]]
    else:
        expected = data[selection]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("selection", [
    (slice(1, 7), slice(2, 100)), slice(None, None, -2), (0, slice(None, None, -1)),
    (slice(8, 0, -3), 5), (Ellipsis, slice(3, 9)), 4,
])
def test_array_view_setitem_like_numpy(arr, selection):
    expected = np.arange(99, dtype="float64").reshape(9, 11)
    value = np.random.default_rng(0).standard_normal(expected[selection].shape)
    arr[selection] = value
    expected[selection] = value
    np.testing.assert_array_equal(arr[...], expected)
    arr[selection] = 0.5            # a scalar broadcasts
    expected[selection] = 0.5
    np.testing.assert_array_equal(np.asarray(arr), expected)


def test_array_view_setitem_casts_within_kind(store):
    node = make_array(store, "/i", shape=(4,), chunks=(2,), dtype="int16")
    a = zs.Array(store, node)
    a[:] = np.array([1, 2, 3, 4], dtype="int64")
    a[0] = 7
    np.testing.assert_array_equal(a[:], [7, 2, 3, 4])
    with pytest.raises(zs.InvalidDataType):
        a[:] = np.array([1.5, 2, 3, 4])
    with pytest.raises(zs.InvalidArraySlice):
        a[:] = np.zeros(3, dtype="int16")


def test_array_view_errors(arr):
    with pytest.raises(zs.InvalidArraySlice):
        arr[9]
    with pytest.raises(IndexError):
        arr[0, -12]
    with pytest.raises(zs.InvalidArraySlice):
        arr[0, 0, 0]
    with pytest.raises(zs.KeyNotFound):
        zs.Array(arr.store, ArrayNode.of_path("/nope"))


def test_array_view_asarray(arr):
    data = np.arange(99, dtype="float64").reshape(9, 11)
    np.testing.assert_array_equal(np.asarray(arr), data)
    as32 = np.asarray(arr, dtype="float32")
    assert as32.dtype == np.float32
    np.testing.assert_array_equal(as32, data.astype("float32"))
    np.testing.assert_array_equal(np.array(arr), data)
    assert (arr.__array__() == data).all()


def test_array_view_attrs(arr):
    assert arr.attrs["units"] == "m"
    assert dict(arr.attrs) == {"units": "m"}
    arr.attrs["scale"] = 2.5
    assert arr.store.array_metadata(arr.node).attributes == {"units": "m", "scale": 2.5}
    assert json.loads(arr.store.get("g/arr/zarr.json"))["attributes"] == {
        "units": "m", "scale": 2.5}
    del arr.attrs["units"]
    assert dict(arr.attrs) == {"scale": 2.5}
    assert len(arr.attrs) == 1
    assert list(arr.attrs) == ["scale"]
    assert "scale" in arr.attrs
    with pytest.raises(KeyError):
        arr.attrs["units"]
    arr.attrs.update({"a": [1, 2], "b": {"c": None}})
    assert zs.Array(arr.store, arr.node).attrs["b"] == {"c": None}
    # Data and other metadata are untouched.
    assert arr.shape == (9, 11)
    assert arr[0, 1] == 1.0


def test_array_view_resize(arr):
    arr.resize((5, 5))
    assert arr.shape == (5, 5)
    np.testing.assert_array_equal(arr[...], np.arange(99.0).reshape(9, 11)[:5, :5])
    arr.resize((6, 12))
    assert arr[5, 0] == -1.0 and arr[0, 11] == -1.0
    with pytest.raises(zs.InvalidResizeShape):
        arr.resize((5,))


def test_array_view_sees_store_changes(arr):
    view2 = zs.Array(arr.store, arr.node)
    arr.store.write_array(arr.node, (0, 0), 123.0)
    assert arr[0, 0] == 123.0
    view2.resize((2, 2))
    assert arr.shape == (2, 2)


def test_array_view_works_with_dask_style_protocol(arr):
    # dask.array.from_array uses shape, dtype, ndim and __getitem__ with slices.
    block = arr[slice(4, 8), slice(3, 6)]
    np.testing.assert_array_equal(block, np.arange(99.0).reshape(9, 11)[4:8, 3:6])
    arr[slice(4, 8), slice(3, 6)] = np.zeros((4, 3))
    assert (arr[4:8, 3:6] == 0).all()


def test_array_view_with_dask():
    import dask.array as da  # a test dependency: the API promises dask support
    store = zs.MemoryStore()
    src = make_array(store, "/src", shape=(20, 30), chunks=(6, 7), dtype="float64",
                     data=np.arange(600, dtype="float64").reshape(20, 30))
    dst = make_array(store, "/dst", shape=(20, 30), chunks=(6, 7), dtype="float64")
    arr = zs.Array(store, src)
    darr = da.from_array(arr, chunks=arr.chunks)
    out = zs.Array(store, dst)
    da.store(darr * 2, out, lock=False)
    np.testing.assert_array_equal(np.asarray(out), np.arange(600.0).reshape(20, 30) * 2)


# ----------------------------------------------------------------------------------
# Custom backends: only the key-value interface
# ----------------------------------------------------------------------------------

class DictStore(zs.storage.Store):
    """The smallest possible backend: seven methods over a dict, nothing else."""

    def __init__(self):
        self.d = {}

    def get(self, key):
        return self.d.get(key)

    def get_partial_values(self, key_ranges):
        out = []
        for key, offset, length in key_ranges:
            v = self.d.get(key)
            if v is None:
                out.append(None)
                continue
            start = offset if offset >= 0 else max(0, len(v) + offset)
            out.append(v[start:] if length is None else v[start:start + length])
        return out

    def set(self, key, value):
        self.d[key] = bytes(value)

    def erase(self, key):
        self.d.pop(key, None)

    def erase_prefix(self, prefix):
        for k in [k for k in self.d if k.startswith(prefix)]:
            del self.d[k]

    def list_prefix(self, prefix):
        return [k for k in self.d if k.startswith(prefix)]

    def list_dir(self, prefix):
        keys, prefixes = set(), set()
        for k in self.d:
            if k.startswith(prefix):
                head, sep, _ = k[len(prefix):].partition("/")
                (prefixes if sep else keys).add(head)
        return list(keys), list(prefixes)


def test_store_is_abstract():
    with pytest.raises(TypeError):
        zs.storage.Store()

    class Partial(zs.storage.Store):
        def get(self, key):
            return None

    with pytest.raises(TypeError):
        Partial()


class TestCustomBackend(StoreContract):
    """A backend with only the seven key-value methods gets every hierarchy method."""

    @pytest.fixture
    def make_store(self):
        return DictStore
