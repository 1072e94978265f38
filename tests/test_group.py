"""The Group view, the open functions, Array.append and Array.info (zarrsync.group,
zarrsync.array), and the store's ``stored_chunks`` that info is built on."""

import json
import os
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import s3_server
import zarrsync as zs
from zarrsync.codecs import Bytes, Gzip, ShardingIndexed, Zstd


def chunk_sizes(store, prefix, is_chunk):
    """``{key: size}`` of the keys under ``prefix`` that ``is_chunk`` accepts,
    found with the key-value interface alone (the reference for ``info``)."""
    return {k: len(store.get(k)) for k in store.list_prefix(prefix) if is_chunk(k)}


def small_hierarchy(store):
    root = zs.open_group(store, mode="w", attributes={"title": "t"})
    temp = root.create_array("climate/temp", shape=(4, 6), chunks=(2, 3), dtype="float32",
                             dimension_names=["y", "x"], attributes={"units": "K"})
    root.create_array("mask", shape=(6,), chunks=(6,), dtype="bool")
    root.create_array("sharded", shape=(8, 8), chunks=(4, 4), dtype="int16",
                      codecs=[ShardingIndexed((2, 2))])
    root.create_group("empty")
    return root, temp


# -- Group ----------------------------------------------------------------------------------

def test_group_members_and_lookup(store):
    root, temp = small_hierarchy(store)
    assert isinstance(root, zs.Group) and root.path == "/" and root.name == ""
    assert root.store is store and root.node == zs.GroupNode.root()
    assert root.zarr_format == 3 and root.metadata.attributes == {"title": "t"}

    climate = root["climate"]
    assert isinstance(climate, zs.Group) and climate.path == "/climate"
    assert climate.name == "climate"
    arr = root["climate/temp"]
    assert isinstance(arr, zs.Array) and arr.path == "/climate/temp"
    assert arr.shape == (4, 6) and arr.dtype == np.float32
    assert climate["temp"].path == arr.path
    assert root["/climate/temp/"].path == arr.path   # slashes at either end are ignored

    assert "climate" in root and "climate/temp" in root and "mask" in root
    assert "nope" not in root and "climate/nope" not in root
    assert ".." not in root and "" not in root and 3 not in root

    with pytest.raises(zs.KeyNotFound, match=r"no array or group 'nope' in group /climate"):
        climate["nope"]
    with pytest.raises(KeyError):
        root["__bad"]
    with pytest.raises(zs.KeyNotFound):
        root[""]
    assert root.get("nope") is None

    names = [name for name, _ in root.members()]
    assert names == ["climate", "empty", "mask", "sharded"]
    kinds = {name: type(view) for name, view in root.members()}
    assert kinds == {"climate": zs.Group, "empty": zs.Group, "mask": zs.Array,
                     "sharded": zs.Array}
    assert [n for n, _ in root.arrays()] == ["mask", "sharded"] == root.array_keys()
    assert [n for n, _ in root.groups()] == ["climate", "empty"] == root.group_keys()
    assert all(isinstance(v, zs.Array) for _, v in root.arrays())
    assert all(isinstance(v, zs.Group) for _, v in root.groups())
    assert list(root) == names and len(root) == 4 and list(root.keys()) == names
    assert root["empty"].members() == [] and len(root["empty"]) == 0
    assert climate.members()[0][1].path == "/climate/temp"


def test_group_constructor_checks_the_node(store):
    small_hierarchy(store)
    assert zs.Group(store, "/climate").path == "/climate"
    assert zs.Group(store, zs.GroupNode.of_path("/empty")).path == "/empty"
    with pytest.raises(zs.KeyNotFound, match="not a member"):
        zs.Group(store, "/missing")
    with pytest.raises(zs.KeyNotFound, match="is an array, not a group"):
        zs.Group(store, "/mask")


def test_group_attrs_write_through(store):
    root, _ = small_hierarchy(store)
    grp = root["climate"]
    assert dict(grp.attrs) == {}
    grp.attrs["a"] = 1
    grp.attrs["b"] = [1, 2]
    assert store.group_metadata(zs.GroupNode.of_path("/climate")).attributes == {
        "a": 1, "b": [1, 2]}
    del grp.attrs["a"]
    assert zs.Group(store, "/climate").attrs.asdict() == {"b": [1, 2]}
    assert root.attrs["title"] == "t"


def test_group_create_members(store):
    root = zs.open_group(store, mode="w")
    g = root.create_group("a/b", attributes={"k": "v"})
    assert isinstance(g, zs.Group) and g.path == "/a/b" and dict(g.attrs) == {"k": "v"}
    assert store.group_exists(zs.GroupNode.of_path("/a"))
    # A no-op for an existing group, as Store.create_group.
    again = root.create_group("a/b", attributes={"other": 1})
    assert again == g and dict(again.attrs) == {"k": "v"}

    arr = g.create_array("x", shape=(5,), chunks=(2,), dtype="int8", fill_value=3,
                         codecs=[Bytes(), Gzip()], attributes={"u": 1},
                         dimension_names=["t"])
    assert isinstance(arr, zs.Array) and arr.path == "/a/b/x"
    meta = store.array_metadata(zs.ArrayNode.of_path("/a/b/x"))
    assert meta.fill_value == 3 and meta.dimension_names == ("t",)
    assert meta.attributes == {"u": 1} and [c.name for c in meta.codecs] == ["bytes", "gzip"]
    np.testing.assert_array_equal(arr[...], np.full(5, 3, "int8"))

    v2 = root.create_array("v2", shape=(3,), chunks=(2,), dtype="int8", zarr_format=2)
    assert v2.zarr_format == 2 and root["v2"].zarr_format == 2
    with pytest.raises(zs.NodeExists):
        g.create_array("x", shape=(1,), chunks=(1,), dtype="int8")
    replaced = g.create_array("x", shape=(2,), chunks=(1,), dtype="int8", overwrite=True)
    assert replaced.shape == (2,)
    with pytest.raises(zs.NodeExists):
        root.create_group("a/b/x/inside")
    with pytest.raises(zs.NodeInvariant):
        root.create_group("..")
    with pytest.raises(zs.NodeInvariant):
        root.create_array("", shape=(1,), chunks=(1,), dtype="int8")


def test_group_repr_eq_hash(tmp_path):
    store = zs.FilesystemStore(tmp_path / "s")
    root = zs.open_group(store, mode="w")
    sub = root.create_group("g")
    assert repr(sub) == f"<zarrsync.Group /g in {store!r}>"
    assert sub == zs.Group(store, "/g") == zs.Group(zs.FilesystemStore(tmp_path / "s"), "/g")
    assert hash(sub) == hash(zs.Group(store, "/g"))
    assert sub != root and sub != "/g"
    other = zs.MemoryStore()
    other.create_group(zs.GroupNode.of_path("/g"))
    assert sub != zs.Group(other, "/g")
    assert len({sub, zs.Group(store, "/g"), root}) == 2


# -- the tree -------------------------------------------------------------------------------

TREE_TEXT = """\
/
├── climate
│   └── temp (4, 6) float32, chunks (2, 3)
├── empty
├── mask (6,) bool, chunks (6,)
└── sharded (8, 8) int16, chunks (2, 2), shards (4, 4)"""


def test_tree_text_html_and_dict(store):
    root, _ = small_hierarchy(store)
    tree = root.tree()
    assert str(tree) == TREE_TEXT
    assert repr(tree) == TREE_TEXT
    assert str(root["climate"].tree()) == "/climate\n└── temp (4, 6) float32, chunks (2, 3)"
    assert str(root["empty"].tree()) == "/empty"

    assert tree._repr_html_() == (
        '<ul class="zarrsync-tree"><li><strong>/</strong><ul>'
        '<li><strong>climate</strong><ul><li>temp <code>(4, 6) float32, chunks (2, 3)</code>'
        '</li></ul></li>'
        '<li><strong>empty</strong></li>'
        '<li>mask <code>(6,) bool, chunks (6,)</code></li>'
        '<li>sharded <code>(8, 8) int16, chunks (2, 2), shards (4, 4)</code></li>'
        '</ul></li></ul>')

    d = tree.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d == {
        "name": "", "path": "/", "node_type": "group", "zarr_format": 3, "members": [
            {"name": "climate", "path": "/climate", "node_type": "group", "zarr_format": 3,
             "members": [
                 {"name": "temp", "path": "/climate/temp", "node_type": "array",
                  "zarr_format": 3, "shape": [4, 6], "data_type": "float32",
                  "chunks": [2, 3], "shards": None}]},
            {"name": "empty", "path": "/empty", "node_type": "group", "zarr_format": 3,
             "members": []},
            {"name": "mask", "path": "/mask", "node_type": "array", "zarr_format": 3,
             "shape": [6], "data_type": "bool", "chunks": [6], "shards": None},
            {"name": "sharded", "path": "/sharded", "node_type": "array", "zarr_format": 3,
             "shape": [8, 8], "data_type": "int16", "chunks": [2, 2], "shards": [4, 4]},
        ]}


def test_tree_deep_nesting_draws_continuation_lines():
    root = zs.open_group("memory://")
    root.create_array("a/b/c", shape=(), chunks=(), dtype="uint8")
    root.create_array("a/z", shape=(2,), chunks=(1,), dtype="datetime64[ns]")
    root.create_group("b")
    assert str(root.tree()) == (
        "/\n"
        "├── a\n"
        "│   ├── b\n"
        "│   │   └── c () uint8, chunks ()\n"
        "│   └── z (2,) datetime64[ns], chunks (1,)\n"
        "└── b")


def test_tree_escapes_names():
    root = zs.open_group("memory://")
    root.create_group("<b>&\"x\"")
    root.create_array("bell\x07\nnext", shape=(1,), chunks=(1,), dtype="int8")
    text = str(root.tree())
    assert text == ('/\n├── <b>&"x"\n'
                    '└── bell\\x07\\nnext (1,) int8, chunks (1,)')
    page = root.tree()._repr_html_()
    assert "<b>&" not in page and "&lt;b&gt;&amp;&quot;x&quot;" in page
    names = [m["name"] for m in root.tree().to_dict()["members"]]
    assert names == ['<b>&"x"', "bell\x07\nnext"]   # JSON keeps the names as they are


def test_tree_of_a_zarr_v2_hierarchy(tmp_path):
    root = zs.open_group(tmp_path / "v2", mode="w", zarr_format=2)
    root.create_array("g/a", shape=(3, 2), chunks=(2, 2), dtype="<i4", zarr_format=2)
    assert root.zarr_format == 2
    assert str(root.tree()) == "/\n└── g\n    └── a (3, 2) int32, chunks (2, 2)"
    entry = root.tree().to_dict()["members"][0]
    assert entry["zarr_format"] == 2 and entry["members"][0]["zarr_format"] == 2


# -- open functions over every store ---------------------------------------------------------

def test_open_group_modes(store):
    with pytest.raises(zs.KeyNotFound, match=r"no group at / in .*mode 'r'"):
        zs.open_group(store, mode="r")
    with pytest.raises(zs.KeyNotFound, match="no group at /a"):
        zs.open_group(store, mode="r+", path="a")

    grp = zs.open_group(store, attributes={"x": 1})          # "a" creates
    assert grp.path == "/" and dict(grp.attrs) == {"x": 1}
    assert zs.open_group(store, mode="a", attributes={"y": 2}).attrs.asdict() == {"x": 1}
    assert zs.open_group(store, mode="r") == grp
    assert zs.open_group(store, mode="r+") == grp

    sub = zs.open_group(store, mode="a", path="a/b/c")       # parents too
    assert sub.path == "/a/b/c" and store.group_exists(zs.GroupNode.of_path("/a/b"))
    sub.create_array("t", shape=(2,), chunks=(2,), dtype="int8")

    with pytest.raises(zs.NodeExists, match=r"mode 'w-'.*a group exists"):
        zs.open_group(store, mode="w-", path="/a")
    with pytest.raises(zs.KeyNotFound, match=r"/a/b/c/t is an array, not a group.*use "
                                             r"open_array or open"):
        zs.open_group(store, mode="r", path="/a/b/c/t")
    with pytest.raises(zs.KeyNotFound, match="is an array, not a group"):
        zs.open_group(store, mode="a", path="/a/b/c/t")
    with pytest.raises(zs.NodeExists, match="an array exists"):
        zs.open_group(store, mode="w-", path="/a/b/c/t")
    with pytest.raises(zs.NodeExists, match="/a/b/c/t is an array"):
        zs.open_group(store, mode="w", path="/a/b/c/t/below")
    assert "t" in zs.Group(store, "/a/b/c")   # the failed "w" erased nothing

    fresh = zs.open_group(store, mode="w-", path="new", attributes={"n": 1})
    assert fresh.attrs.asdict() == {"n": 1}

    # "w" below the root erases that group only; an array there is replaced too.
    zs.open_group(store, mode="w", path="/a/b", attributes={"w": True})
    assert zs.Group(store, "/a/b").members() == []
    assert zs.Group(store, "/a/b").attrs.asdict() == {"w": True}
    assert "new" in zs.Group(store, "/")
    store.create_array(zs.ArrayNode.of_path("/new/arr"), shape=(1,), chunks=(1,),
                       dtype="int8")
    assert isinstance(zs.open_group(store, mode="w", path="/new/arr"), zs.Group)
    assert store.group_exists(zs.GroupNode.of_path("/new/arr"))

    # "w" at the root clears the store.
    root = zs.open_group(store, mode="w")
    assert root.members() == [] and root.attrs.asdict() == {}


def test_open_group_w_minus_refuses_stray_keys(store):
    store.set("stray/file", b"x")
    with pytest.raises(zs.NodeExists, match="already holds keys"):
        zs.open_group(store, mode="w-", path="stray")
    with pytest.raises(zs.NodeExists, match="already holds keys"):
        zs.open_group(store, mode="w-")
    assert zs.open_group(store, mode="w-", path="other").path == "/other"


def test_open_array_modes(store):
    kw = dict(shape=(4, 3), chunks=(2, 3), dtype="int32")
    with pytest.raises(zs.KeyNotFound, match="no array at /t"):
        zs.open_array(store, mode="r", path="t")
    with pytest.raises(zs.KeyNotFound, match=r"pass shape=, dtype= and chunks= to create"):
        zs.open_array(store, mode="a", path="t")
    with pytest.raises(TypeError, match="dtype=, chunks="):
        zs.open_array(store, mode="w", path="t", shape=(3,))
    with pytest.raises(TypeError, match="shape="):
        zs.open_array(store, mode="w-", path="t")
    assert store.list_prefix("") == []   # nothing was made

    arr = zs.open_array(store, mode="a", path="g/t", fill_value=7, attributes={"u": 1}, **kw)
    assert arr.path == "/g/t" and arr.shape == (4, 3) and dict(arr.attrs) == {"u": 1}
    np.testing.assert_array_equal(arr[...], np.full((4, 3), 7, "int32"))
    arr[0] = 1
    again = zs.open_array(store, mode="a", path="/g/t", shape=(9,), chunks=(9,), dtype="int8")
    assert again.shape == (4, 3)   # opened: the creation keywords are not used
    assert zs.open_array(store, mode="r", path="/g/t")[0].tolist() == [1, 1, 1]
    assert zs.open_array(store, mode="r+", path="/g/t").dtype == np.int32

    with pytest.raises(zs.NodeExists, match="an array exists"):
        zs.open_array(store, mode="w-", path="/g/t", **kw)
    with pytest.raises(zs.KeyNotFound, match=r"/g is a group, not an array.*open_group or "
                                             r"open"):
        zs.open_array(store, mode="r", path="/g")
    with pytest.raises(zs.KeyNotFound, match="is a group, not an array"):
        zs.open_array(store, mode="a", path="/g", **kw)
    with pytest.raises(zs.NodeExists, match="a group exists"):
        zs.open_array(store, mode="w-", path="/g", **kw)

    replaced = zs.open_array(store, mode="w", path="/g/t", shape=(2,), chunks=(2,),
                             dtype="float64")
    assert replaced.shape == (2,) and replaced[...].tolist() == [0.0, 0.0]
    # "w" replaces a group (and what it holds) too.
    over = zs.open_array(store, mode="w", path="/g", **kw)
    assert over.shape == (4, 3) and not store.array_exists(zs.ArrayNode.of_path("/g/t"))
    with pytest.raises(zs.NodeExists):
        zs.open_array(store, mode="w", path="/g/inside", **kw)
    new = zs.open_array(store, mode="w-", path="/n", zarr_format=2, separator="/", **kw)
    assert new.zarr_format == 2 and new.metadata.separator == "/"


def test_open_returns_whatever_is_there(store):
    with pytest.raises(zs.KeyNotFound, match="no array or group at /"):
        zs.open(store, mode="r")
    grp = zs.open(store)                                   # "a": a group
    assert isinstance(grp, zs.Group) and grp.path == "/"
    arr = zs.open(store, path="a/t", shape=(3,), chunks=(3,), dtype="uint8")
    assert isinstance(arr, zs.Array) and arr.path == "/a/t"
    assert isinstance(zs.open(store, mode="r", path="a/t"), zs.Array)
    assert isinstance(zs.open(store, mode="r+", path="a"), zs.Group)
    assert isinstance(zs.open(store, mode="r", path="/"), zs.Group)
    with pytest.raises(zs.KeyNotFound, match="no array or group at /a/x"):
        zs.open(store, mode="r", path="a/x")
    made = zs.open(store, mode="a", path="b", attributes={"k": 1})
    assert isinstance(made, zs.Group) and made.attrs.asdict() == {"k": 1}
    assert isinstance(zs.open(store, mode="w", path="a"), zs.Group)
    assert zs.Group(store, "/a").members() == []
    with pytest.raises(zs.NodeExists):
        zs.open(store, mode="w-", path="b")
    assert isinstance(zs.open(store, mode="w", path="b", shape=(1,), chunks=(1,),
                              dtype="int8"), zs.Array)


def test_root_array_through_the_open_functions(store):
    arr = zs.open_array(store, mode="w", shape=(5,), chunks=(2,), dtype="int16")
    assert arr.path == "/" and arr.node == zs.ArrayNode.root()
    arr[...] = np.arange(5, dtype="int16")
    found = zs.open(store, mode="r")
    assert isinstance(found, zs.Array) and found[...].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(zs.KeyNotFound, match=r"/ is an array, not a group"):
        zs.open_group(store, mode="r")
    with pytest.raises(zs.NodeExists):
        zs.open_array(store, mode="w-", shape=(1,), chunks=(1,), dtype="int8")
    grp = zs.open_group(store, mode="w")     # "w" replaces the root array
    assert grp.members() == [] and not store.array_exists(zs.ArrayNode.root())


def test_bad_arguments():
    store = zs.MemoryStore()
    with pytest.raises(ValueError, match="mode must be one of"):
        zs.open_group(store, mode="x")
    with pytest.raises(ValueError, match="mode must be one of"):
        zs.open(store, mode="rw")
    with pytest.raises(zs.NodeInvariant):
        zs.open_group(store, path="/a/../b")
    with pytest.raises(zs.StoreError, match="apply to a path or URL"):
        zs.open_group(store, follow_links=False)
    with pytest.raises(zs.StoreError):
        zs.open_group(42)


# -- open functions over paths and URLs ------------------------------------------------------

def test_open_folder_paths(tmp_path):
    folder = tmp_path / "data.zarr"
    with pytest.raises(zs.StoreError, match="no such folder"):
        zs.open_group(folder, mode="r")
    with pytest.raises(zs.StoreError, match="no such folder"):
        zs.open(str(folder), mode="r+")
    assert not folder.exists()   # "r" and "r+" create nothing

    grp = zs.open_group(str(folder))
    assert isinstance(grp.store, zs.FilesystemStore) and (folder / "zarr.json").exists()
    grp.create_array("t", shape=(3,), chunks=(2,), dtype="int8")[...] = 1
    ro = zs.open_group(folder, mode="r")
    assert ro.store.read_only and ro["t"][...].tolist() == [1, 1, 1]
    with pytest.raises(zs.ReadOnlyStoreError):
        ro.attrs["x"] = 1
    with pytest.raises(zs.ReadOnlyStoreError):
        ro.create_group("g")
    assert zs.open(f"file://{folder}", mode="r", path="t").shape == (3,)
    assert zs.open_array(folder, mode="r+", path="/t", follow_links=False).store.follow_links \
        is False

    (folder / "not-zarr.txt").write_text("x")
    zs.open_group(folder, mode="w", path="g")        # below the root: the rest stays
    assert (folder / "not-zarr.txt").exists() and "t" in zs.open_group(folder, mode="r")
    zs.open_group(folder, mode="w")                  # the root: the folder is cleared
    assert os.listdir(folder) == ["zarr.json"]

    with pytest.raises(zs.NodeExists):
        zs.open_group(folder, mode="w-")
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    assert zs.open_group(empty, mode="w-").path == "/"   # an empty folder is fine
    assert zs.open_group(tmp_path / "brand-new.zarr", mode="w-").members() == []


def test_open_zip_files(tmp_path):
    path = tmp_path / "data.zip"
    with pytest.raises(zs.StoreError, match="no such file"):
        zs.open_group(path, mode="r+")
    assert not path.exists()
    grp = zs.open_group(path, mode="w", attributes={"z": 1})
    assert isinstance(grp.store, zs.ZipStore)
    grp.create_array("a", shape=(4,), chunks=(2,), dtype="int16")[...] = 5
    grp.store.close()

    ro = zs.open_group(str(path), mode="r")
    assert ro.store.read_only and ro.attrs.asdict() == {"z": 1}
    assert ro["a"][...].tolist() == [5] * 4
    back = pickle.loads(pickle.dumps(ro["a"]))   # a read-only zip pickles
    assert back[...].tolist() == [5] * 4
    ro.store.close()

    with pytest.raises(zs.StoreError, match="no such file"):
        zs.open_group(f"file://{tmp_path / 'other.zip'}", mode="r+")
    rw = zs.open(f"file://{path}", mode="r+", path="a")
    rw.append(np.array([6], dtype="int16"))
    rw.store.close()
    with zs.ZipStore(path) as check:
        assert zs.Array(check, "/a")[...].tolist() == [5, 5, 5, 5, 6]


def test_open_array_w_with_bad_arguments_keeps_the_data(tmp_path):
    folder = tmp_path / "d.zarr"
    zs.open_array(folder, mode="w", shape=(2,), chunks=(2,), dtype="int8")[...] = 4
    with pytest.raises(zs.ZarrSyncError):
        zs.open_array(folder, mode="w", shape=(2,), chunks=(2,), dtype="no-such-type")
    with pytest.raises(zs.ZarrSyncError):
        zs.open(folder, mode="w", shape=(2,), chunks=(3, 3), dtype="int8")
    assert zs.open_array(folder, mode="r")[...].tolist() == [4, 4]


def test_open_memory_url():
    grp = zs.open_group("memory://", mode="w-", path="x/y")
    assert isinstance(grp.store, zs.MemoryStore) and grp.path == "/x/y"
    assert zs.open_group("memory://", mode="a").store is not grp.store   # a new store each time
    with pytest.raises(zs.KeyNotFound):
        zs.open_group("memory://", mode="r")


def test_open_s3_url():
    url = f"s3://{s3_server.new_bucket()}/data.zarr"
    options = s3_server.options()
    grp = zs.open_group(url, mode="w", attributes={"s3": True}, **options)
    assert isinstance(grp.store, zs.ObjectStore)
    grp.create_array("t", shape=(3,), chunks=(2,), dtype="float32")[...] = 2.5
    assert zs.open(url, mode="r", path="t", **options)[...].tolist() == [2.5] * 3
    assert zs.open_group(url, mode="r", **options).attrs.asdict() == {"s3": True}


# -- pickling ----------------------------------------------------------------------------------

def test_group_and_array_pickle(tmp_path):
    root, temp = small_hierarchy(zs.FilesystemStore(tmp_path / "s"))
    temp[...] = np.arange(24, dtype="float32").reshape(4, 6)
    grp = pickle.loads(pickle.dumps(root))
    assert grp == root and str(grp.tree()) == TREE_TEXT
    arr = pickle.loads(pickle.dumps(temp))
    assert arr.path == temp.path
    np.testing.assert_array_equal(arr[...], temp[...])
    arr.append(np.zeros((1, 6), dtype="float32"))     # the copy writes the same array
    assert temp.shape == (5, 6)

    mem_root, _ = small_hierarchy(zs.MemoryStore())
    copy = pickle.loads(pickle.dumps(mem_root))        # a MemoryStore travels as a copy
    assert copy.store is not mem_root.store and str(copy.tree()) == TREE_TEXT


# -- Array: properties -------------------------------------------------------------------------

def test_array_properties(store):
    root, temp = small_hierarchy(store)
    assert temp.store is store and temp.node == zs.ArrayNode.of_path("/climate/temp")
    assert temp.path == "/climate/temp" and temp.name == "temp"
    assert temp.zarr_format == 3 and temp.metadata.dimension_names == ("y", "x")
    assert temp.nbytes == 4 * 6 * 4 and temp.size == 24
    assert repr(temp) == "<zarrsync.Array /climate/temp shape=(4, 6) chunks=(2, 3) dtype=float32>"


# -- Array.append ------------------------------------------------------------------------------

def test_append_several_steps_matches_concatenate(store):
    arr = zs.open_array(store, mode="w", path="t", shape=(0, 3), chunks=(4, 2), dtype="int32",
                        fill_value=-1)
    rng = np.random.default_rng(0)
    expected = np.zeros((0, 3), dtype="int32")
    for n in (1, 3, 0, 5, 4):
        block = rng.integers(-100, 100, (n, 3)).astype("int32")
        shape = arr.append(block)
        expected = np.concatenate([expected, block])
        assert shape == expected.shape == arr.shape
    np.testing.assert_array_equal(arr[...], expected)
    np.testing.assert_array_equal(zs.Array(store, "/t")[...], expected)

    # along the last axis, from Python lists (cast as assignment casts)
    assert arr.append([[1]] * expected.shape[0], axis=-1) == (expected.shape[0], 4)
    expected = np.concatenate([expected, np.ones((expected.shape[0], 1), "int32")], axis=1)
    np.testing.assert_array_equal(arr[...], expected)


def test_append_to_strings_and_v2():
    store = zs.MemoryStore()
    words = zs.open_array(store, path="w", shape=(1,), chunks=(2,), dtype="string")
    words[...] = ["a"]
    assert words.append(["bb", "ccc"]) == (3,)
    assert words[...].tolist() == ["a", "bb", "ccc"]
    v2 = zs.open_array(store, path="v2", shape=(2, 2), chunks=(1, 1), dtype="float64",
                       zarr_format=2)
    v2.append(np.full((2, 1), 2.0), axis=1)
    assert v2[...].tolist() == [[0.0, 0.0, 2.0], [0.0, 0.0, 2.0]]


@st.composite
def append_cases(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim)))
    axis = draw(st.integers(-ndim, ndim - 1))
    steps = draw(st.lists(st.integers(0, 4), min_size=1, max_size=4))
    sharded = draw(st.booleans())
    return shape, chunks, axis, steps, sharded


@settings(max_examples=25)
@given(case=append_cases(), seed=st.integers(0, 2**32 - 1))
def test_append_matches_numpy_concatenate(store_factory, case, seed):
    shape, chunks, axis, steps, sharded = case
    store = store_factory()
    if sharded:
        codecs = [ShardingIndexed(chunks, codecs=[Bytes(), Zstd()])]
        grid = tuple(2 * c for c in chunks)
    else:
        codecs, grid = [Bytes(), Gzip(level=1)], chunks
    rng = np.random.default_rng(seed)
    arr = zs.open_array(store, mode="w", path="p", shape=shape, chunks=grid, dtype="int16",
                        codecs=codecs, fill_value=3)
    expected = rng.integers(-50, 50, shape).astype("int16")
    arr[...] = expected
    for n in steps:
        block_shape = list(shape)
        block_shape[axis] = n
        block = rng.integers(-50, 50, block_shape).astype("int16")
        expected = np.concatenate([expected, block], axis=axis)
        assert arr.append(block, axis=axis) == expected.shape
    np.testing.assert_array_equal(zs.open_array(store, mode="r", path="p")[...], expected)


def test_append_errors_leave_the_array_unchanged(store):
    arr = zs.open_array(store, mode="w", path="t", shape=(3, 2), chunks=(2, 2), dtype="int16")
    arr[...] = np.arange(6, dtype="int16").reshape(3, 2)
    before_keys = sorted(store.list_prefix(""))
    before = {k: store.get(k) for k in before_keys}

    cases = [
        (np.zeros((2, 3), "int16"), 0, zs.InvalidResizeShape,
         r"cannot append data of shape \(2, 3\) along axis 0 to array /t of shape \(3, 2\): "
         r"the other axes must match, expected shape \(\*, 2\)"),
        (np.zeros((3, 1, 1), "int16"), 1, zs.InvalidResizeShape, r"expected shape \(3, \*\)"),
        (np.zeros(2, "int16"), 0, zs.InvalidResizeShape, "the other axes must match"),
        (5, 0, zs.InvalidResizeShape, "the other axes must match"),
        (np.zeros((1, 2), "int16"), 2, zs.InvalidResizeShape, "axis 2 is out of range"),
        (np.zeros((1, 2), "int16"), -3, zs.InvalidResizeShape, "out of range"),
        (np.zeros((1, 2), "int16"), 0.0, zs.InvalidResizeShape, "axis must be an int"),
        (np.zeros((1, 2), "float64"), 0, zs.InvalidDataType, "same_kind"),
        (np.array([["a", "b"]]), 0, zs.InvalidDataType, "cannot assign"),
    ]
    for data, axis, error, message in cases:
        with pytest.raises(error, match=message):
            arr.append(data, axis=axis)
        assert issubclass(error, (ValueError, TypeError))
        assert arr.shape == (3, 2)
        assert sorted(store.list_prefix("")) == before_keys
        assert {k: store.get(k) for k in before_keys} == before
    assert arr.append(np.zeros((0, 2), "int16")) == (3, 2)    # nothing to add
    assert sorted(store.list_prefix("")) == before_keys

    scalar = zs.open_array(store, mode="w", path="s", shape=(), chunks=(), dtype="int8")
    with pytest.raises(zs.InvalidResizeShape, match="0-d array /s"):
        scalar.append(np.zeros(1, "int8"))


def test_append_on_read_only_store(tmp_path):
    zs.open_array(tmp_path / "s", mode="w", path="t", shape=(2,), chunks=(2,), dtype="int8")
    ro = zs.open_array(tmp_path / "s", mode="r", path="t")
    with pytest.raises(zs.ReadOnlyStoreError, match="append to Array /t"):
        ro.append(np.zeros(1, "int8"))
    assert ro.shape == (2,)


# -- Array.info and Store.stored_chunks --------------------------------------------------------

def test_info_v3(store):
    arr = zs.open_array(store, mode="w", path="g/t", shape=(4, 6), chunks=(2, 3),
                        dtype="int16", codecs=[Bytes()], dimension_names=["y", None])
    arr[:2] = 1                  # two of the four chunks; the others stay fill value
    info = arr.info
    assert info.nchunks == 4 and info.nchunks_stored == 2
    assert info.nbytes == 48 and info.nbytes_stored == 24 and info.compression_ratio == 2.0
    sizes = chunk_sizes(store, "g/t/c/", lambda k: True)
    assert info.nbytes_stored == sum(sizes.values())
    assert [c.key for c in store.stored_chunks(arr.node)] == ["g/t/c/0/0", "g/t/c/0/1"]
    assert str(info) == "\n".join([
        "Path               : /g/t",
        f"Store              : {store!r}",
        "Zarr format        : 3",
        "Data type          : int16",
        "Shape              : (4, 6)",
        "Chunk shape        : (2, 3)",
        "Fill value         : 0",
        'Codecs             : bytes(endian="little")',
        "Chunk key encoding : default (separator '/')",
        "Dimension names    : y, None",
        "Read-only          : False",
        "Chunks stored      : 2 of 4",
        "Uncompressed bytes : 48",
        "Stored bytes       : 24",
        "Compression ratio  : 2.00",
    ])
    assert repr(info) == str(info)
    d = info.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d == {
        "path": "/g/t", "store": repr(store), "zarr_format": 3, "data_type": "int16",
        "shape": [4, 6], "chunk_shape": [2, 3], "shard_shape": None, "fill_value": 0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "dimension_names": ["y", None], "read_only": False, "nchunks": 4,
        "nchunks_stored": 2, "nbytes": 48, "nbytes_stored": 24, "compression_ratio": 2.0}


def test_info_compressed_and_html():
    store = zs.MemoryStore()
    arr = zs.open_array(store, path="<x>", shape=(1000,), chunks=(300,), dtype="float64",
                        fill_value=float("nan"), codecs=[Bytes(), Zstd(level=3)])
    arr[...] = np.zeros(1000)
    info = arr.info
    sizes = chunk_sizes(store, "<x>/c/", lambda k: True)
    assert info.nchunks == info.nchunks_stored == len(sizes) == 4
    assert info.nbytes_stored == sum(sizes.values()) < 8000
    assert info.compression_ratio == 8000 / info.nbytes_stored
    assert "Uncompressed bytes : 8000 (7.8 KiB)" in str(info)
    assert "Fill value         : nan" in str(info)
    assert 'zstd(level=3, checksum=false)' in str(info)
    assert info.to_dict()["fill_value"] == "NaN"
    page = info._repr_html_()
    assert page.startswith('<table class="zarrsync-array-info">')
    assert "/&lt;x&gt;" in page and "<x>" not in page


def test_info_sharded():
    store = zs.MemoryStore()
    arr = zs.open_array(store, path="s", shape=(8, 10), chunks=(4, 4), dtype="uint8",
                        codecs=[ShardingIndexed((2, 2), codecs=[Bytes(), Gzip()])])
    arr[:4, :4] = 1
    arr[7, 9] = 2
    info = arr.info
    assert info.chunk_shape == (2, 2) and info.shard_shape == (4, 4)
    assert info.nchunks == 6 and info.nchunks_stored == 2
    sizes = chunk_sizes(store, "s/c/", lambda k: True)
    assert sorted(sizes) == ["s/c/0/0", "s/c/1/2"]
    assert info.nbytes_stored == sum(sizes.values())
    assert info.nbytes == 80 and info.compression_ratio == 80 / info.nbytes_stored
    text = str(info)
    assert "Chunk shape        : (2, 2)\nShard shape        : (4, 4)\n" in text
    assert "Shards stored      : 2 of 6" in text
    assert info.to_dict()["shard_shape"] == [4, 4]


@pytest.mark.parametrize("separator", [".", "/"])
def test_info_v2(store, separator):
    arr = zs.open_array(store, mode="w", path="v2", shape=(5, 5), chunks=(2, 5), dtype="<f4",
                        zarr_format=2, separator=separator, attributes={"a": 1})
    arr[1:3] = 1.5     # chunks 0 and 1
    # a neighbour whose name starts the same must not count
    zs.open_array(store, mode="w", path="v2x", shape=(2,), chunks=(1,), dtype="<f4",
                  zarr_format=2)[...] = 2
    info = arr.info
    sizes = chunk_sizes(store, "v2/", lambda k: not k.rpartition("/")[2].startswith(".z"))
    assert sorted(sizes) == [f"v2/0{separator}0", f"v2/1{separator}0"]
    assert info.zarr_format == 2 and info.nchunks == 3 and info.nchunks_stored == 2
    assert info.nbytes_stored == sum(sizes.values())
    assert f"Chunk key encoding : v2 (separator '{separator}')" in str(info)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_info_root_array(store, zarr_format):
    arr = zs.open_array(store, mode="w", shape=(6,), chunks=(4,), dtype="int32",
                        codecs=[Bytes()], zarr_format=zarr_format)
    arr[...] = np.arange(6, dtype="int32")
    info = arr.info
    assert info.path == "/" and info.nchunks == info.nchunks_stored == 2
    assert info.nbytes_stored == 2 * 16     # whole chunks: edge chunks are stored whole
    keys = [c.key for c in store.stored_chunks(arr.node)]
    assert keys == (["c/0", "c/1"] if zarr_format == 3 else ["0", "1"])
    assert info.nbytes_stored == sum(store.getsize(k) for k in keys)


def test_info_string_array_and_empty_array():
    store = zs.MemoryStore()
    words = zs.open_array(store, path="w", shape=(3,), chunks=(2,), dtype="string")
    words[...] = ["a", "b", "c"]
    info = words.info
    assert info.nbytes is None and info.compression_ratio is None
    assert info.nchunks_stored == 2 and info.nbytes_stored > 0
    assert "Uncompressed bytes : unknown (variable-length data type)" in str(info)
    assert "Compression ratio  : n/a" in str(info)
    empty = zs.open_array(store, path="e", shape=(0, 4), chunks=(2, 2), dtype="int8")
    assert empty.info.nchunks == 0 and empty.info.nbytes_stored == 0
    json.dumps(info.to_dict(), allow_nan=False)


def test_stored_chunks_skips_documents_and_stray_keys():
    store = zs.MemoryStore()
    arr = zs.open_array(store, path="a", shape=(4,), chunks=(2,), dtype="uint8",
                        codecs=[Bytes()])
    arr[...] = 1
    store.set("a/c/9", b"outside the grid")
    store.set("a/c/0/0", b"wrong rank")
    store.set("a/c/x", b"not a number")
    store.set("a/notes", b"other")
    found = store.stored_chunks(zs.ArrayNode.of_path("/a"))
    assert found == [((0,), "a/c/0", 2), ((1,), "a/c/1", 2)]
    assert found[0].chunk_coords == (0,) and found[0].nbytes == 2
    with pytest.raises(zs.KeyNotFound):
        store.stored_chunks(zs.ArrayNode.of_path("/missing"))
    with pytest.raises(zs.NodeInvariant):
        store.stored_chunks(zs.GroupNode.root())


def test_stored_chunks_sees_buffered_writes():
    store = zs.MemoryStore()            # buffers partial chunk writes
    arr = zs.open_array(store, path="t", shape=(0, 4), chunks=(4, 4), dtype="int8",
                        codecs=[Bytes()])
    arr.append(np.ones((1, 4), "int8"))  # a partial chunk, held in the write buffer
    assert arr.info.nchunks_stored == 1 and arr.info.nbytes_stored == 16
