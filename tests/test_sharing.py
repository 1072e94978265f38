"""Stores and views pickled to other processes, as dask.distributed ships them.

Every store and ``Array`` view pickles at any point of its life, before and
after writes (buffered ones too), and works in a ``spawn`` child: a fresh
interpreter that gets only the pickled bytes. A ``MemoryStore`` arrives as a
copy; a ``FilesystemStore`` as the same folder, with its mode and
``follow_links``; a ``ZipStore`` only when open for reading. One open for
writing raises ``StoreError`` when pickled.
"""

import multiprocessing
import os
import pickle

import numpy as np
import pytest

import zarrsync as zs
from zarrsync import ArrayNode, GroupNode
from zarrsync.codecs import Bytes, Zstd

ROOT = GroupNode.root()
NODE = ArrayNode.of_path("/g/arr")


@pytest.fixture(scope="module")
def child():
    """One spawn worker process for the module (pickles every argument and result)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        yield pool


# -- what the child runs (module level, so the child can import it) ---------------------

def read_everything(store):
    """Every key with its value, the nodes, every array's data and the mode, as the
    child sees them."""
    arrays, groups = store.find_all_nodes()
    return {
        "pid": os.getpid(),
        "keys": {k: store.get(k) for k in store.list_prefix("")},
        "arrays": {a.path: store.read_array(a) for a in arrays},
        "groups": [g.path for g in groups],
        "mode": (store.mode, store.read_only),
    }


def read_view(arr):
    return {"pid": os.getpid(), "data": arr[...], "shape": arr.shape,
            "attrs": arr.attrs.asdict(), "reversed": arr[::-1]}


def read_attributes(attrs):
    return attrs.asdict()


def write_in_child(arr, start, value):
    """Write through a view in the child; return what the child then reads."""
    arr[start:start + 3] = value
    arr.attrs["written_by"] = os.getpid()
    arr.store.flush()
    return arr[...]


def try_to_write(store):
    try:
        store.set("k", b"v")
    except zs.ReadOnlyStoreError as e:
        return str(e)
    return None


def visible_keys(store):
    return store.follow_links, store.list_prefix("")


# -- helpers ---------------------------------------------------------------------------

def fill(store):
    """A group and an array, all of it stored, then one partial chunk write (which a
    store that buffers writes keeps in memory). Returns the expected data."""
    data = np.arange(40, dtype="int32").reshape(8, 5)
    store.create_group(ROOT, attrs={"title": "shared"})
    store.create_array(NODE, shape=(8, 5), chunks=(4, 5), dtype="int32", fill_value=-1,
                       codecs=[Bytes(), Zstd(1)], attributes={"units": "m"})
    store.write_array(NODE, ..., data)
    store.write_array(NODE, (slice(1, 2), slice(0, 2)), np.int32(-9))
    data[1, :2] = -9
    return data


def expected_keys(store):
    return {k: store.get(k) for k in store.list_prefix("")}


def check_child_view(result, store, data, pid):
    assert result["pid"] != pid
    assert result["keys"] == expected_keys(store)
    assert result["groups"] == ["/", "/g"]
    assert set(result["arrays"]) == {"/g/arr"}
    np.testing.assert_array_equal(result["arrays"]["/g/arr"], data)
    assert result["mode"] == (store.mode, store.read_only)


# -- MemoryStore -----------------------------------------------------------------------

def test_memory_store_is_shared_as_a_copy(child):
    store = zs.MemoryStore()
    empty = child.apply(read_everything, (store,))
    assert empty["keys"] == {} and empty["arrays"] == {}
    data = fill(store)
    assert store._hierarchy.buffer.pending  # the partial chunk is still buffered
    result = child.apply(read_everything, (store,))
    check_child_view(result, store, data, os.getpid())
    # The child's writes go to its copy only.
    arr = zs.Array(store, NODE)
    got = child.apply(write_in_child, (arr, 0, 7))
    assert (got[:3] == 7).all()
    np.testing.assert_array_equal(arr[...], data)
    assert "written_by" not in arr.attrs


# -- FilesystemStore -------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["a", "w", "w-", "r+"])
def test_filesystem_store_is_shared(child, tmp_path, mode):
    root = tmp_path / "data.zarr"
    if mode == "r+":
        root.mkdir()
    store = zs.FilesystemStore(root, mode)
    store.buffers_writes = True
    empty = child.apply(read_everything, (store,))
    assert empty["keys"] == {}
    data = fill(store)
    assert store._hierarchy.buffer.pending
    chunk = root / "g" / "arr" / "c" / "0" / "0"
    stale = chunk.read_bytes()  # the partial write is buffered, not stored yet
    # Pickling stores the buffered chunk; the child ("w": without clearing the
    # folder again; "w-": without failing on the folder that now exists) reads it.
    result = child.apply(read_everything, (store,))
    assert chunk.read_bytes() != stale
    check_child_view(result, store, data, os.getpid())
    assert result["mode"] == (mode, False)


def test_a_child_writes_what_the_parent_reads(child, tmp_path):
    store = zs.FilesystemStore(tmp_path)
    data = fill(store)
    arr = zs.Array(store, NODE)
    got = child.apply(write_in_child, (arr, 2, 42))
    data[2:5] = 42
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(arr[...], data)
    np.testing.assert_array_equal(zs.FilesystemStore(tmp_path, "r").read_array(NODE), data)
    assert arr.attrs["written_by"] != os.getpid()


def test_read_only_and_confined_stores_stay_so_in_a_child(child, tmp_path):
    fill(zs.FilesystemStore(tmp_path / "s"))
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"SECRET")
    os.symlink(tmp_path / "outside", tmp_path / "s" / "link")
    store = zs.FilesystemStore(tmp_path / "s", mode="r", follow_links=False)
    message = child.apply(try_to_write, (store,))
    assert message is not None and "cannot set 'k'" in message
    follow, keys = child.apply(visible_keys, (store,))
    assert follow is False
    assert "link/secret" not in keys and "g/arr/zarr.json" in keys
    assert not (tmp_path / "s" / "k").exists()


# -- ZipStore --------------------------------------------------------------------------

def test_zip_store_open_for_reading_is_shared(child, tmp_path):
    path = tmp_path / "data.zip"
    with zs.ZipStore(path, mode="w") as writer:
        data = fill(writer)
    store = zs.ZipStore(path, mode="r")
    result = child.apply(read_everything, (store,))
    check_child_view(result, store, data, os.getpid())
    assert result["mode"] == ("r", True)
    # The copy opens the archive by path, read-only.
    copy = pickle.loads(pickle.dumps(store))
    assert (copy.path, copy.mode, copy.read_only) == (store.path, "r", True)
    with pytest.raises(zs.ReadOnlyStoreError, match="cannot set 'k'"):
        copy.set("k", b"v")
    copy.close()
    store.close()


@pytest.mark.parametrize("mode", ["w", "a"])
def test_zip_store_open_for_writing_does_not_pickle(tmp_path, mode):
    store = zs.ZipStore(tmp_path / "data.zip", mode=mode)
    for state in ("new", "written"):
        if state == "written":
            fill(store)
        for obj in (store, zs.Array(store, NODE) if state == "written" else store):
            with pytest.raises(zs.StoreError, match=f"cannot pickle ZipStore .*mode "
                                                   f"'{mode}'.*central directory") as info:
                pickle.dumps(obj)
            assert str(tmp_path / "data.zip") in str(info.value)
            assert "mode='r'" in str(info.value)
    store.close()
    # The refusal wrote nothing half-way: the closed archive reads back whole.
    with zs.ZipStore(tmp_path / "data.zip") as reader:
        assert reader.read_array(NODE).shape == (8, 5)


def test_closed_zip_store_does_not_pickle(tmp_path):
    with zs.ZipStore(tmp_path / "data.zip", mode="w") as store:
        store.set("k", b"v")
    reader = zs.ZipStore(tmp_path / "data.zip")
    reader.close()
    for closed in (store, reader):
        with pytest.raises(zs.StoreError, match="cannot pickle ZipStore .* closed"):
            pickle.dumps(closed)


# -- Array views -----------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["memory", "filesystem", "zip"])
def test_array_view_in_a_child(child, tmp_path, backend):
    if backend == "zip":
        with zs.ZipStore(tmp_path / "d.zip", mode="w") as writer:
            data = fill(writer)
        store = zs.ZipStore(tmp_path / "d.zip")
    else:
        store = zs.MemoryStore() if backend == "memory" else zs.FilesystemStore(tmp_path)
        store.buffers_writes = True
        data = fill(store)
        assert store._hierarchy.buffer.pending
    arr = zs.Array(store, NODE)
    result = child.apply(read_view, (arr,))
    assert result["pid"] != os.getpid()
    np.testing.assert_array_equal(result["data"], data)
    np.testing.assert_array_equal(result["reversed"], data[::-1])
    assert result["shape"] == (8, 5)
    assert result["attrs"] == {"units": "m"}
    assert child.apply(read_attributes, (arr.attrs,)) == {"units": "m"}
    store.close()
