"""Bad input: stores that zarr-python wrote correctly and the test then damaged.

Each kind of damage must raise the matching ``zarrsync.errors`` exception,
and name the key, never return wrong data. The kinds are a truncated chunk or
shard, a flipped byte under crc32c, a ``zarr.json`` that is not JSON, a wrong
``node_type``, an unknown codec, and a shape whose rank differs from the
chunk shape. The store is read from disk with ``FilesystemStore``, as a user
would read it.
"""

import json
import os

import numpy as np
import pytest
import zarr
from zarr.codecs import Crc32cCodec, GzipCodec, ZstdCodec

import zarrsync as zs
from zarrsync import ArrayNode, GroupNode

pytestmark = pytest.mark.filterwarnings("ignore:Combining a `sharding_indexed`")

DATA = np.arange(1, 25, dtype="int32").reshape(6, 4)
INDEX_CRC = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]

# name -> zarr.create_array keywords (shape (6, 4), int32, chunks (3, 4) unless given)
ARRAYS = {
    "raw": dict(compressors=None),
    "gzip": dict(compressors=[GzipCodec(level=1)]),
    "zstd": dict(compressors=[ZstdCodec(level=1, checksum=False)]),
    "crc": dict(compressors=[Crc32cCodec()]),
    "gzip_crc": dict(compressors=[GzipCodec(level=1), Crc32cCodec()]),
    "shard": dict(shards=(6, 4), chunks=(3, 2), compressors=None),
    "shard_start": dict(serializer=zarr.codecs.ShardingCodec(
        chunk_shape=(3, 2), codecs=[zarr.codecs.BytesCodec(), Crc32cCodec()],
        index_location="start"), chunks=(6, 4), compressors=None),
}


@pytest.fixture
def root(tmp_path):
    """A folder holding group /g and one array per entry of ARRAYS, all written."""
    store = zarr.storage.LocalStore(str(tmp_path))
    zarr.create_group(store, path="g", attributes={"ok": True})
    for name, kw in ARRAYS.items():
        kw = dict(kw)
        za = zarr.create_array(store, name=f"g/{name}", shape=(6, 4),
                               chunks=kw.pop("chunks", (3, 4)), dtype="int32",
                               fill_value=0, **kw)
        za[...] = DATA
    return tmp_path


def node(name):
    return ArrayNode.of_path(f"/g/{name}")


def truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])


def flip_byte(path, index):
    data = bytearray(path.read_bytes())
    data[index] ^= 0x04
    path.write_bytes(bytes(data))


def edit_doc(path, change):
    doc = json.loads(path.read_text("utf-8"))
    change(doc)
    path.write_text(json.dumps(doc), "utf-8")


def test_undamaged_stores_read(root):
    store = zs.FilesystemStore(root)
    for name in ARRAYS:
        np.testing.assert_array_equal(store.read_array(node(name)), DATA)


# -- truncated chunks -----------------------------------------------------------------

@pytest.mark.parametrize("name, keep, error, message", [
    ("raw", 20, zs.CodecError, "expected 48 bytes"),
    ("raw", 0, zs.CodecError, "expected 48 bytes"),
    ("gzip", -4, zs.CodecError, "could not be decoded|truncated"),
    ("gzip", 12, zs.CodecError, "could not be decoded|truncated"),
    ("zstd", -3, zs.CodecError, "zstd"),
    ("crc", -1, zs.ChecksumMismatch, "crc32c"),
    ("crc", 3, zs.CodecError, "at least 4 bytes"),
    ("gzip_crc", -6, zs.ChecksumMismatch, "crc32c"),
    ("shard", 40, zs.CodecError, "index"),
    ("shard", -1, zs.ChecksumMismatch, "crc32c"),     # the index's own checksum
    ("shard_start", -3, zs.CodecError, "outside the shard"),  # the index points past the end
], ids=lambda v: str(v) if not isinstance(v, type) else v.__name__)
def test_truncated_chunk(root, name, keep, error, message):
    chunk = root / "g" / name / "c" / "0" / "0"
    truncate(chunk, keep)
    store = zs.FilesystemStore(root)
    with pytest.raises(error, match=message) as info:
        store.read_array(node(name))
    assert f"g/{name}/c/0/0" in str(info.value)
    # Reading only part of the damaged chunk (the sharding fast path reads byte
    # ranges) fails the same way; the other chunk still reads.
    with pytest.raises(zs.CodecError):
        store.read_array(node(name), (slice(0, 2), slice(0, 1)))
    if name.startswith("shard"):
        return  # one shard holds the whole array
    np.testing.assert_array_equal(store.read_array(node(name), slice(3, 6)), DATA[3:])


def test_truncated_chunk_in_a_partial_write(root):
    """A read-modify-write of a damaged chunk raises and leaves the chunk as it was."""
    chunk = root / "g" / "crc" / "c" / "0" / "0"
    truncate(chunk, -2)
    damaged = chunk.read_bytes()
    store = zs.FilesystemStore(root)
    with pytest.raises(zs.CodecError):
        store.write_array(node("crc"), (1, 1), np.int32(7))
    assert chunk.read_bytes() == damaged


# -- flipped bytes under crc32c -------------------------------------------------------

@pytest.mark.parametrize("name, where", [
    ("crc", 0), ("crc", 47), ("crc", 49),          # data bytes, then the checksum itself
    ("gzip_crc", 15),                              # inside the gzip stream
    ("shard", -3),                                 # the shard index's checksum guards it
    ("shard_start", 70),                           # an inner chunk's data
    ("shard_start", 5),                            # the index at the start
])
def test_flipped_byte_under_crc32c(root, name, where):
    chunk = root / "g" / name / "c" / "0" / "0"
    flip_byte(chunk, where)
    store = zs.FilesystemStore(root)
    with pytest.raises(zs.ChecksumMismatch, match="crc32c") as info:
        store.read_array(node(name))
    assert isinstance(info.value, zs.CodecError)
    assert f"g/{name}/c/0/0" in str(info.value)


def test_flipped_byte_without_crc32c_is_not_detected(root):
    """Without a checksum a flipped data byte is just other data: documented, not hidden."""
    flip_byte(root / "g" / "raw" / "c" / "0" / "0", 0)
    got = zs.FilesystemStore(root).read_array(node("raw"))
    assert got[0, 0] == DATA[0, 0] ^ 0x04
    np.testing.assert_array_equal(got.reshape(-1)[1:], DATA.reshape(-1)[1:])


# -- broken documents -----------------------------------------------------------------

@pytest.mark.parametrize("text", [b"", b"{not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]",
                                  b'"zarr"', b"null", b'{"zarr_format": 3, "node_type": "array"'])
def test_array_document_not_json(root, text):
    (root / "g" / "raw" / "zarr.json").write_bytes(text)
    store = zs.FilesystemStore(root)
    for op in [lambda: store.array_metadata(node("raw")),
               lambda: store.read_array(node("raw")),
               lambda: store.write_array(node("raw"), 0, np.int32(1)),
               lambda: store.find_all_nodes(),
               lambda: store.find_child_nodes(GroupNode.of_path("/g")),
               lambda: store.array_exists(node("raw"))]:
        with pytest.raises(zs.ParseError, match="g/raw/zarr.json"):
            op()
    np.testing.assert_array_equal(store.read_array(node("gzip")), DATA)  # others still read


def test_group_document_not_json(root):
    (root / "g" / "zarr.json").write_bytes(b"{'single': 'quotes'}")
    store = zs.FilesystemStore(root)
    for op in [lambda: store.group_metadata(GroupNode.of_path("/g")),
               lambda: store.find_all_nodes(),
               lambda: store.group_exists(GroupNode.of_path("/g")),
               lambda: store.find_child_nodes(GroupNode.of_path("/g"))]:
        with pytest.raises(zs.ParseError, match="g/zarr.json"):
            op()


@pytest.mark.parametrize("node_type", ["banana", 7, None, "Array", ["array"]], ids=repr)
def test_wrong_node_type(root, node_type):
    edit_doc(root / "g" / "raw" / "zarr.json", lambda d: d.__setitem__("node_type", node_type))
    store = zs.FilesystemStore(root)
    for op in [lambda: store.find_all_nodes(),
               lambda: store.find_child_nodes(GroupNode.of_path("/g")),
               lambda: store.array_metadata(node("raw")),
               lambda: store.read_array(node("raw"))]:
        with pytest.raises(zs.ParseError, match="node_type"):
            op()


def test_node_type_of_the_other_kind(root):
    """An array document saying "group" (and the other way round) is read as that kind."""
    edit_doc(root / "g" / "raw" / "zarr.json", lambda d: d.__setitem__("node_type", "group"))
    store = zs.FilesystemStore(root)
    with pytest.raises(zs.KeyNotFound, match="group"):
        store.array_metadata(node("raw"))
    with pytest.raises(zs.ParseError):  # a group document may not hold array fields
        store.group_metadata(GroupNode.of_path("/g/raw"))
    with pytest.raises(zs.KeyNotFound):
        store.read_array(node("raw"))
    arrays, groups = store.find_all_nodes()
    assert node("raw") not in arrays and GroupNode.of_path("/g/raw") in groups
    edit_doc(root / "g" / "zarr.json", lambda d: d.__setitem__("node_type", "array"))
    with pytest.raises(zs.KeyNotFound):
        store.group_metadata(GroupNode.of_path("/g"))


def test_missing_node_type(root):
    edit_doc(root / "g" / "raw" / "zarr.json", lambda d: d.pop("node_type"))
    store = zs.FilesystemStore(root)
    with pytest.raises(zs.ParseError, match="node_type"):
        store.find_all_nodes()
    with pytest.raises(zs.ParseError, match="node_type"):
        store.array_metadata(node("raw"))


@pytest.mark.parametrize("codecs", [
    [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "lz77-please"}],
    [{"name": "no-such-serializer"}],
    [{"name": "bytes", "configuration": {"endian": "little"}},
     {"name": "zfp", "configuration": {"mode": "fixed_rate", "rate": 8}}],
    [{"name": "sharding_indexed", "configuration": {
        "chunk_shape": [3, 2], "codecs": [{"name": "bytes"}, {"name": "mystery"}],
        "index_codecs": INDEX_CRC}}],
], ids=["after-bytes", "serializer", "zfp", "inside-sharding"])
def test_unknown_codec(root, codecs):
    edit_doc(root / "g" / "raw" / "zarr.json", lambda d: d.__setitem__("codecs", codecs))
    store = zs.FilesystemStore(root)
    for op in [lambda: store.array_metadata(node("raw")),
               lambda: store.read_array(node("raw")),
               lambda: store.write_array(node("raw"), 0, np.int32(1))]:
        with pytest.raises(zs.ParseError, match="codec .* is not supported") as info:
            op()
        assert "g/raw/zarr.json" in str(info.value)
    # Finding nodes needs only node_type: the array is still listed.
    assert node("raw") in store.find_all_nodes()[0]


@pytest.mark.parametrize("shape, chunk_shape", [([6, 4], [3]), ([6], [3, 4]), ([6, 4], []),
                                                ([], [3])])
def test_rank_of_shape_differs_from_chunk_shape(root, shape, chunk_shape):
    def change(d):
        d["shape"] = shape
        d["chunk_grid"]["configuration"]["chunk_shape"] = chunk_shape
    edit_doc(root / "g" / "raw" / "zarr.json", change)
    store = zs.FilesystemStore(root)
    for op in [lambda: store.array_metadata(node("raw")),
               lambda: store.read_array(node("raw"))]:
        with pytest.raises(zs.ParseError, match="rank") as info:
            op()
        assert "g/raw/zarr.json" in str(info.value)


def test_dimension_names_of_the_wrong_rank(root):
    edit_doc(root / "g" / "raw" / "zarr.json",
             lambda d: d.__setitem__("dimension_names", ["only-one"]))
    with pytest.raises(zs.ParseError, match="dimension_names"):
        zs.FilesystemStore(root).array_metadata(node("raw"))


def test_errors_are_zarrsync_errors_and_builtins(root):
    truncate(root / "g" / "raw" / "c" / "0" / "0", 5)
    (root / "g" / "gzip" / "zarr.json").write_bytes(b"nope")
    store = zs.FilesystemStore(root)
    with pytest.raises(ValueError):
        store.read_array(node("raw"))
    with pytest.raises(zs.ZarrSyncError):
        store.read_array(node("gzip"))
    assert os.path.exists(root / "g" / "gzip" / "c" / "0" / "0")  # nothing was erased
