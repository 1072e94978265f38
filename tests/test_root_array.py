"""Root arrays: an array whose ``zarr.json`` is at the store's root.

tensorstore and zarrs usually write an array as the whole store, so
``ArrayNode.root()`` (path "/", chunk keys such as "c/0/0") works with every
hierarchy method. A store holds a root array or a hierarchy of nodes, never
both. Interop: tensorstore and zarr-python write root arrays that zarrsync
reads, and zarr-python (with and without the zarrs pipeline) and tensorstore
read the root arrays zarrsync writes.
"""

import json
import pickle

import numpy as np
import pytest

import zarrsync as zs
from interop_matrix import cell
from zarrsync import (ArrayNode, CannotRenameRoot, GroupNode, InvalidResizeShape, KeyNotFound,
                      NodeExists)

ROOT_ARRAY = ArrayNode.root()
ROOT_GROUP = GroupNode.root()


def make_root_array(store, shape=(5, 6), chunks=(2, 4), dtype="int32", **kw):
    kw.setdefault("fill_value", -1)
    store.create_array(ROOT_ARRAY, shape=shape, chunks=chunks, dtype=dtype, **kw)
    return np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)


# -- every hierarchy method --------------------------------------------------------------

def test_create_write_read(store):
    data = make_root_array(store)
    store.write_array(ROOT_ARRAY, ..., data)
    assert store.array_exists(ROOT_ARRAY)
    meta = store.array_metadata(ROOT_ARRAY)
    assert meta.shape == (5, 6) and meta.chunks == (2, 4)
    np.testing.assert_array_equal(store.read_array(ROOT_ARRAY), data)
    np.testing.assert_array_equal(store.read_array(ROOT_ARRAY, (slice(1, 4), 5)), data[1:4, 5])
    # The array is the whole store: its chunk keys are at the root.
    assert sorted(store.list_prefix("")) == ["c/0/0", "c/0/1", "c/1/0", "c/1/1", "c/2/0",
                                             "c/2/1", "zarr.json"]
    assert json.loads(store.get("zarr.json"))["node_type"] == "array"


def test_of_path_and_array_view(store):
    data = make_root_array(store)
    store.write_array(ArrayNode.of_path("/"), (0,), data[0])
    arr = zs.Array(store, "/")
    assert arr.node == ROOT_ARRAY
    arr[1:] = data[1:]
    np.testing.assert_array_equal(arr[...], data)


def test_find_nodes(store):
    make_root_array(store)
    assert store.find_all_nodes() == ([ROOT_ARRAY], [])
    assert store.find_child_nodes(ROOT_GROUP) == ([], [])


def test_group_exists_is_false_for_the_root_group(store):
    assert not store.group_exists(ROOT_GROUP)
    assert not store.array_exists(ROOT_ARRAY)
    make_root_array(store)
    assert store.array_exists(ROOT_ARRAY)
    assert not store.group_exists(ROOT_GROUP)
    with pytest.raises(KeyNotFound):
        store.group_metadata(ROOT_GROUP)


def test_root_group_is_no_root_array(store):
    store.create_group(ROOT_GROUP)
    assert not store.array_exists(ROOT_ARRAY)
    with pytest.raises(KeyNotFound):
        store.array_metadata(ROOT_ARRAY)
    with pytest.raises(KeyNotFound):
        store.read_array(ROOT_ARRAY)


def test_set_attributes(store):
    make_root_array(store)
    store.set_attributes(ROOT_ARRAY, {"units": "K"})
    assert store.array_metadata(ROOT_ARRAY).attributes == {"units": "K"}
    assert json.loads(store.get("zarr.json"))["attributes"] == {"units": "K"}


def test_reshape(store):
    data = make_root_array(store)
    store.write_array(ROOT_ARRAY, ..., data)
    store.reshape(ROOT_ARRAY, (3, 3))
    np.testing.assert_array_equal(store.read_array(ROOT_ARRAY), data[:3, :3])
    assert sorted(store.list_prefix("")) == ["c/0/0", "c/1/0", "zarr.json"]
    store.reshape(ROOT_ARRAY, (5, 6))
    expected = np.full((5, 6), -1, dtype="int32")
    expected[:3, :3] = data[:3, :3]
    np.testing.assert_array_equal(store.read_array(ROOT_ARRAY), expected)
    with pytest.raises(InvalidResizeShape):
        store.reshape(ROOT_ARRAY, (5,))


def test_rename_is_refused(store):
    make_root_array(store)
    with pytest.raises(CannotRenameRoot, match="root array"):
        store.rename_array(ROOT_ARRAY, "x")
    assert store.array_exists(ROOT_ARRAY)


def test_erase_only_its_own_keys(store):
    data = make_root_array(store)
    store.write_array(ROOT_ARRAY, ..., data)
    store.set("README", b"not a chunk")
    store.set("c.txt", b"not a chunk either")
    store.erase_array_node(ROOT_ARRAY)
    assert not store.array_exists(ROOT_ARRAY)
    assert sorted(store.list_prefix("")) == ["README", "c.txt"]
    store.erase_array_node(ROOT_ARRAY)  # absent: a no-op
    assert sorted(store.list_prefix("")) == ["README", "c.txt"]


@pytest.mark.parametrize("sep", [".", "/"])
def test_erase_v2_encoded_chunks(store, sep):
    data = make_root_array(store, chunk_key_encoding="v2", separator=sep)
    store.write_array(ROOT_ARRAY, ..., data)
    assert f"0{sep}0" in store.list_prefix("") and f"2{sep}1" in store.list_prefix("")
    others = sorted([f"0{sep}x", f"9{sep}9{sep}9", "c/0/0"])  # none is a chunk key of it
    for key in others:
        store.set(key, b"not a chunk of the root array")
    store.erase_array_node(ROOT_ARRAY)
    assert sorted(store.list_prefix("")) == others


def test_erase_rank_0(store):
    store.create_array(ROOT_ARRAY, shape=(), chunks=(), dtype="float64")
    store.write_array(ROOT_ARRAY, (), 2.5)
    assert store.read_array(ROOT_ARRAY)[()] == 2.5
    assert sorted(store.list_prefix("")) == ["c", "zarr.json"]
    store.set("cc", b"other")
    store.erase_array_node(ROOT_ARRAY)
    assert store.list_prefix("") == ["cc"]


def test_erase_group_node_of_the_root_keeps_a_root_array(store):
    data = make_root_array(store)
    store.write_array(ROOT_ARRAY, ..., data)
    store.erase_group_node(ROOT_GROUP)  # the root is no group: nothing to erase
    np.testing.assert_array_equal(store.read_array(ROOT_ARRAY), data)
    store.erase_all_nodes()
    assert store.list_prefix("") == []


def test_stale_chunks_do_not_show_through(store):
    store.set("c/0/0", b"stale bytes no zarr.json claims")
    make_root_array(store)
    assert store.get("c/0/0") is None
    assert (store.read_array(ROOT_ARRAY) == -1).all()


# -- a root array or a hierarchy, never both ----------------------------------------------

@pytest.mark.parametrize("make", [
    lambda s: s.create_group(GroupNode.of_path("/g")),
    lambda s: s.create_group(GroupNode.of_path("/g/h")),
    lambda s: s.create_group(ROOT_GROUP),
    lambda s: s.create_array(ArrayNode.of_path("/a"), shape=(1,), chunks=(1,), dtype="i1"),
    lambda s: s.create_array(ArrayNode.of_path("/g/a"), shape=(1,), chunks=(1,), dtype="i1",
                             overwrite=True),
], ids=["group", "nested-group", "root-group", "array", "array-overwrite"])
def test_no_node_beside_a_root_array(store, make):
    data = make_root_array(store)
    store.write_array(ROOT_ARRAY, ..., data)
    with pytest.raises(NodeExists, match="root array"):
        make(store)
    assert store.find_all_nodes() == ([ROOT_ARRAY], [])
    np.testing.assert_array_equal(store.read_array(ROOT_ARRAY), data)


def test_no_second_root_array(store):
    make_root_array(store)
    with pytest.raises(NodeExists, match="root array already exists"):
        make_root_array(store, shape=(2,), chunks=(2,))
    assert store.array_metadata(ROOT_ARRAY).shape == (5, 6)


def test_no_root_array_beside_a_root_group(store):
    store.create_group(ROOT_GROUP, attrs={"x": 1})
    with pytest.raises(NodeExists, match="root group"):
        make_root_array(store)
    assert store.group_metadata(ROOT_GROUP).attributes == {"x": 1}


def test_no_root_array_beside_any_node(store):
    store.create_group(GroupNode.of_path("/g"))
    store.erase("zarr.json")  # a hierarchy whose root has no document
    with pytest.raises(NodeExists, match="/g"):
        make_root_array(store)
    assert store.group_exists(GroupNode.of_path("/g"))


def test_overwrite_replaces_everything(store):
    store.create_array(ArrayNode.of_path("/g/a"), shape=(3,), chunks=(1,), dtype="i1")
    store.write_array(ArrayNode.of_path("/g/a"), ..., np.ones(3, "i1"))
    data = make_root_array(store, overwrite=True)
    assert store.find_all_nodes() == ([ROOT_ARRAY], [])
    assert store.list_prefix("g/") == []
    store.write_array(ROOT_ARRAY, ..., data)
    # ... and a root array is replaced by another.
    make_root_array(store, shape=(2,), chunks=(2,), dtype="uint8", fill_value=255,
                    overwrite=True)
    np.testing.assert_array_equal(store.read_array(ROOT_ARRAY), [255, 255])
    assert sorted(store.list_prefix("")) == ["zarr.json"]


def test_pickled_store_keeps_the_root_array(tmp_path):
    store = zs.FilesystemStore(tmp_path / "s")
    data = make_root_array(store)
    store.write_array(ROOT_ARRAY, ..., data)
    clone = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(clone.read_array(pickle.loads(pickle.dumps(ROOT_ARRAY))),
                                  data)


# -- interop ---------------------------------------------------------------------------

def field(shape, dtype):
    return (np.arange(int(np.prod(shape))) * 7 % 251).astype(dtype).reshape(shape)


def write_zarrsync_root(path, shape=(7, 9), chunks=(3, 4), dtype="uint16"):
    store = zs.FilesystemStore(path)
    store.create_array(ROOT_ARRAY, shape=shape, chunks=chunks, dtype=dtype, fill_value=3,
                       attributes={"source": "zarrsync"})
    data = field(shape, dtype)
    data[-1] = 3  # an all-fill chunk row, not stored
    store.write_array(ROOT_ARRAY, ..., data)
    return data


def test_zarrsync_reads_tensorstore_root_array(tmp_path):
    ts = pytest.importorskip("tensorstore")
    data = field((7, 9), "int16")
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path)},
                 "metadata": {"shape": [7, 9], "data_type": "int16", "fill_value": -5,
                              "chunk_grid": {"name": "regular",
                                             "configuration": {"chunk_shape": [3, 4]}}}},
                create=True).result()
    t[...].write(data).result()
    t[6, 8:].write(np.array([-5], "int16")).result()
    data[6, 8] = -5
    assert (tmp_path / "zarr.json").exists() and (tmp_path / "c" / "0" / "0").exists()
    store = zs.FilesystemStore(tmp_path, mode="r")
    assert store.find_all_nodes() == ([ROOT_ARRAY], [])
    got = store.read_array(ROOT_ARRAY)
    assert got.dtype == data.dtype
    assert got.tobytes() == data.tobytes()
    assert store.array_metadata(ROOT_ARRAY).fill_value == -5


def test_zarrsync_reads_zarr_python_root_array(tmp_path):
    zarr = pytest.importorskip("zarr")
    data = field((7, 9), "float32")
    za = zarr.create_array(zarr.storage.LocalStore(str(tmp_path)), shape=data.shape,
                           chunks=(3, 4), dtype="float32", fill_value=1.5)
    za[...] = data
    store = zs.FilesystemStore(tmp_path, mode="r")
    assert store.find_all_nodes() == ([ROOT_ARRAY], [])
    assert store.read_array(ROOT_ARRAY).tobytes() == data.tobytes()


def test_zarr_python_reads_zarrsync_root_array(tmp_path):
    zarr = pytest.importorskip("zarr")
    data = write_zarrsync_root(tmp_path)
    za = zarr.open_array(zarr.storage.LocalStore(str(tmp_path), read_only=True), mode="r")
    got = za[...]
    assert got.dtype == data.dtype
    assert got.tobytes() == data.tobytes()
    assert za.fill_value == 3
    assert dict(za.attrs) == {"source": "zarrsync"}


def test_zarrs_reads_zarrsync_root_array(tmp_path):
    zarr = pytest.importorskip("zarr")
    zarrs = pytest.importorskip("zarrs")
    data = write_zarrsync_root(tmp_path)
    with zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline",
                          "codec_pipeline.strict": True}):
        za = zarr.open_array(zarr.storage.LocalStore(str(tmp_path), read_only=True), mode="r")
        assert isinstance(za._async_array.codec_pipeline, zarrs.ZarrsCodecPipeline)
        got = za[...]
    assert got.tobytes() == data.tobytes()


def test_tensorstore_reads_zarrsync_root_array(tmp_path):
    ts = pytest.importorskip("tensorstore")
    data = write_zarrsync_root(tmp_path)
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path)}},
                open=True, read=True).result()
    got = t.read().result()
    assert got.dtype == data.dtype
    assert got.tobytes() == data.tobytes()
    assert t.spec().to_json()["metadata"]["attributes"] == {"source": "zarrsync"}


def test_zarrsync_reads_zarrs_root_array(tmp_path):
    zarr = pytest.importorskip("zarr")
    zarrs = pytest.importorskip("zarrs")
    data = field((7, 9), "int64")
    with zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline",
                          "codec_pipeline.strict": True}):
        za = zarr.create_array(zarr.storage.LocalStore(str(tmp_path)), shape=data.shape,
                               chunks=(3, 4), dtype="int64", fill_value=-2)
        assert isinstance(za._async_array.codec_pipeline, zarrs.ZarrsCodecPipeline)
        za[...] = data
    store = zs.FilesystemStore(tmp_path, mode="r")
    assert store.find_all_nodes() == ([ROOT_ARRAY], [])
    assert store.read_array(ROOT_ARRAY).tobytes() == data.tobytes()


def interop_cells(name, params):
    """The cells of docs/interop.md each test checks (tests/interop_matrix.py):
    root arrays, with each library's default chain."""
    found = {"test_zarrsync_reads_tensorstore_root_array": ("tensorstore", "read"),
             "test_tensorstore_reads_zarrsync_root_array": ("tensorstore", "write"),
             "test_zarrsync_reads_zarr_python_root_array": ("zarr-python", "read"),
             "test_zarr_python_reads_zarrsync_root_array": ("zarr-python", "write"),
             "test_zarrs_reads_zarrsync_root_array": ("zarrs", "write"),
             "test_zarrsync_reads_zarrs_root_array": ("zarrs", "read")}.get(name)
    if found is None:
        return []
    return [cell(found[0], 3, "zstd (root array)", "any", found[1])]
