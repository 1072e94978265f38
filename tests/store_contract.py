"""The contract every zarrsync store backend must meet.

A backend test module subclasses :class:`StoreContract` and provides a
``make_store`` fixture: a zero-argument callable that returns a new, empty
store each time it is called (so a test can build several). For example::

    class TestMemoryStore(StoreContract):
        @pytest.fixture
        def make_store(self):
            return zs.MemoryStore

    class TestFilesystemStore(StoreContract):
        @pytest.fixture
        def make_store(self, tmp_path):
            counter = itertools.count()
            return lambda: zs.FilesystemStore(tmp_path / f"s{next(counter)}.zarr")

The class is named without a ``Test`` prefix so pytest only collects it
through its subclasses. Its tests cover the key-value interface of the Zarr
v3 abstract store (``get``, ``get_partial_values``, ``set``, ``erase``,
``erase_prefix``, ``list_prefix``, ``list_dir``) and every hierarchy
method of API.md, using only the public API, so they hold for any backend.

A backend with a read-only mode also overrides the ``reopen_read_only``
fixture; one whose writable stores cannot be pickled sets
``pickles_while_writable = False`` (pickling must then raise ``StoreError``).
"""

import json
import pickle
import re

import numpy as np
import pytest

import zarrsync as zs
from zarrsync import ArrayNode, GroupNode
from zarrsync.codecs import Bytes, Crc32c, Gzip, Transpose, Zstd


ROOT = GroupNode.root()


def _keys(store, prefix=""):
    return sorted(store.list_prefix(prefix))


def _doc(store, key):
    raw = store.get(key)
    assert raw is not None, f"{key} is missing"
    return json.loads(raw)


class StoreContract:
    """Backend-independent tests; subclasses provide ``make_store``."""

    #: A writable store of this backend pickles (else pickling raises ``StoreError``).
    pickles_while_writable = True

    @pytest.fixture
    def store(self, make_store):
        s = make_store()
        yield s
        s.close()

    @pytest.fixture
    def reopen_read_only(self):
        """A callable taking a store of this backend and returning its data opened
        read-only (it may close the store first), or ``None`` if the backend has no
        read-only mode."""
        return None

    # ------------------------------------------------------------------------------
    # The key-value interface
    # ------------------------------------------------------------------------------

    def test_is_a_store(self, store):
        assert isinstance(store, zs.storage.Store)
        assert isinstance(store, zs.Store)

    def test_new_store_is_empty(self, store):
        assert list(store.list_prefix("")) == []
        assert tuple(map(list, store.list_dir(""))) == ([], [])
        assert store.find_all_nodes() == ([], [])

    def test_get_absent_is_none(self, store):
        assert store.get("zarr.json") is None
        assert store.get("a/b/c") is None

    @pytest.mark.parametrize("key", ["zarr.json", "a/zarr.json", "a/b/c/0/1", "x/0.1.2",
                                     "a.b/c", "deep/" * 6 + "leaf"])
    def test_set_get_round_trip(self, store, key):
        store.set(key, b"\x00\x01value\xff")
        got = store.get(key)
        assert isinstance(got, bytes)
        assert got == b"\x00\x01value\xff"

    def test_set_replaces(self, store):
        store.set("k", b"first value, long")
        store.set("k", b"2nd")
        assert store.get("k") == b"2nd"
        assert _keys(store) == ["k"]

    def test_set_empty_value(self, store):
        store.set("empty", b"")
        assert store.get("empty") == b""
        assert _keys(store) == ["empty"]

    @pytest.mark.parametrize("wrap", [bytearray, memoryview,
                                      lambda b: np.frombuffer(b, dtype=np.uint8)])
    def test_set_accepts_bytes_like(self, store, wrap):
        store.set("k", wrap(b"abcdef"))
        got = store.get("k")
        assert isinstance(got, bytes)
        assert got == b"abcdef"

    def test_set_copies_mutable_value(self, store):
        buf = bytearray(b"abc")
        store.set("k", buf)
        buf[0] = ord("z")
        assert store.get("k") == b"abc"

    def test_large_value(self, store):
        value = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
        store.set("big", value)
        assert store.get("big") == value

    def test_get_partial_values(self, store):
        store.set("a", b"0123456789")
        store.set("b/c", b"abcdef")
        ranges = [
            ("a", 0, 10),
            ("a", 0, None),      # length None: to the end
            ("a", 3, 4),
            ("a", 7, None),
            ("a", -3, None),     # negative offset: from the end
            ("a", -5, 2),
            ("a", 0, 0),
            ("a", 10, None),     # offset at the end: empty
            ("b/c", 2, 3),
            ("missing", 0, None),
            ("b/c", -1, None),
            ("a", 8, 100),       # a range past the end stops at the end
        ]
        got = store.get_partial_values(ranges)
        assert list(got) == [b"0123456789", b"0123456789", b"3456", b"789", b"789", b"56",
                             b"", b"", b"cde", None, b"f", b"89"]
        assert all(g is None or isinstance(g, bytes) for g in got)

    def test_get_partial_values_empty_request(self, store):
        assert list(store.get_partial_values([])) == []

    def test_get_partial_values_all_absent(self, store):
        store.set("present", b"x")
        assert list(store.get_partial_values([("a", 0, None), ("b/zarr.json", -2, 1)])) \
            == [None, None]

    def test_get_partial_values_same_key_many_times(self, store):
        value = bytes(range(256))
        store.set("v", value)
        ranges = [("v", i, 16) for i in range(0, 256, 16)]
        assert b"".join(store.get_partial_values(ranges)) == value

    def test_erase(self, store):
        store.set("a", b"1")
        store.set("b", b"2")
        store.erase("a")
        assert store.get("a") is None
        assert store.get("b") == b"2"
        assert _keys(store) == ["b"]

    def test_erase_absent_is_noop(self, store):
        store.set("b", b"2")
        store.erase("a")
        store.erase("b/c/d")
        assert _keys(store) == ["b"]

    def test_erase_prefix(self, store):
        for k in ["a/x", "a/y/z", "ab/x", "a", "b/a/x", "zarr.json"]:
            store.set(k, b"v")
        store.erase_prefix("a/")
        assert _keys(store) == ["a", "ab/x", "b/a/x", "zarr.json"]
        store.erase_prefix("b/")
        assert _keys(store) == ["a", "ab/x", "zarr.json"]
        store.erase_prefix("nothing/")
        assert _keys(store) == ["a", "ab/x", "zarr.json"]

    def test_erase_prefix_empty_clears(self, store):
        for k in ["a/x", "b", "zarr.json", "c/d/e/f"]:
            store.set(k, b"v")
        store.erase_prefix("")
        assert _keys(store) == []
        store.erase_prefix("")  # clearing an empty store is fine
        assert _keys(store) == []

    def test_list_prefix(self, store):
        keys = ["zarr.json", "g/zarr.json", "g/a/zarr.json", "g/a/c/0/0", "g/a/c/1/0",
                "g2/zarr.json", "h.x"]
        for k in keys:
            store.set(k, b"v")
        assert _keys(store, "") == sorted(keys)
        assert _keys(store, "g/") == ["g/a/c/0/0", "g/a/c/1/0", "g/a/zarr.json",
                                      "g/zarr.json"]
        assert _keys(store, "g/a/c/") == ["g/a/c/0/0", "g/a/c/1/0"]
        # A prefix is a string prefix, not a path component.
        assert _keys(store, "g") == ["g/a/c/0/0", "g/a/c/1/0", "g/a/zarr.json",
                                     "g/zarr.json", "g2/zarr.json"]
        assert _keys(store, "missing/") == []
        assert _keys(store, "h.x") == ["h.x"]

    def test_list_dir(self, store):
        for k in ["zarr.json", "g/zarr.json", "g/a/zarr.json", "g/a/c/0/0", "g/b/zarr.json",
                  "g/data", "top"]:
            store.set(k, b"v")
        keys, prefixes = store.list_dir("")
        assert sorted(keys) == ["top", "zarr.json"]
        assert sorted(prefixes) == ["g"]
        keys, prefixes = store.list_dir("g/")
        assert sorted(keys) == ["data", "zarr.json"]
        assert sorted(prefixes) == ["a", "b"]
        keys, prefixes = store.list_dir("g/a/")
        assert sorted(keys) == ["zarr.json"]
        assert sorted(prefixes) == ["c"]
        keys, prefixes = store.list_dir("g/a/c/")
        assert sorted(keys) == []
        assert sorted(prefixes) == ["0"]
        assert tuple(map(list, store.list_dir("missing/"))) == ([], [])

    def test_list_dir_has_no_duplicates(self, store):
        for i in range(5):
            for j in range(3):
                store.set(f"p/{i}/{j}", b"v")
        keys, prefixes = store.list_dir("p/")
        assert list(keys) == []
        assert sorted(prefixes) == ["0", "1", "2", "3", "4"]
        assert len(list(prefixes)) == 5

    def test_listing_reflects_erase(self, store):
        store.set("d/a", b"1")
        store.set("d/b/c", b"2")
        store.erase("d/b/c")
        assert _keys(store, "d/") == ["d/a"]
        keys, prefixes = store.list_dir("d/")
        assert (sorted(keys), sorted(prefixes)) == (["a"], [])

    # ------------------------------------------------------------------------------
    # Groups
    # ------------------------------------------------------------------------------

    def test_create_root_group(self, store):
        store.create_group(ROOT, attrs={"title": "demo", "n": [1, 2]})
        assert store.group_exists(ROOT)
        assert store.group_metadata(ROOT).attributes == {"title": "demo", "n": [1, 2]}
        doc = _doc(store, "zarr.json")
        assert doc["zarr_format"] == 3
        assert doc["node_type"] == "group"
        assert doc["attributes"] == {"title": "demo", "n": [1, 2]}

    def test_create_group_without_attrs(self, store):
        g = GroupNode.of_path("/g")
        store.create_group(g)
        assert store.group_metadata(g).attributes == {}

    def test_create_group_creates_ancestors(self, store):
        deep = GroupNode.of_path("/a/b/c")
        store.create_group(deep, attrs={"x": 1})
        for node in [ROOT, GroupNode.of_path("/a"), GroupNode.of_path("/a/b")]:
            assert store.group_exists(node)
            assert store.group_metadata(node).attributes == {}
        assert store.group_metadata(deep).attributes == {"x": 1}
        assert _keys(store) == ["a/b/c/zarr.json", "a/b/zarr.json", "a/zarr.json",
                                "zarr.json"]

    def test_create_group_keeps_existing_ancestor_attrs(self, store):
        store.create_group(GroupNode.of_path("/a"), attrs={"keep": True})
        store.create_group(GroupNode.of_path("/a/b/c"))
        assert store.group_metadata(GroupNode.of_path("/a")).attributes == {"keep": True}

    def test_create_group_existing_is_noop(self, store):
        g = GroupNode.of_path("/g")
        store.create_group(g, attrs={"v": 1})
        store.create_group(g, attrs={"v": 2})
        assert store.group_metadata(g).attributes == {"v": 1}

    def test_create_group_over_array(self, store):
        store.create_array(ArrayNode.of_path("/x"), shape=(2,), chunks=(2,), dtype="int8")
        with pytest.raises(zs.NodeExists):
            store.create_group(GroupNode.of_path("/x"))
        with pytest.raises(zs.NodeExists):
            store.create_group(GroupNode.of_path("/x/inside"))
        assert store.array_exists(ArrayNode.of_path("/x"))

    def test_group_metadata_absent(self, store):
        with pytest.raises(zs.KeyNotFound):
            store.group_metadata(ROOT)
        with pytest.raises(zs.KeyNotFound):
            store.group_metadata(GroupNode.of_path("/nope"))

    def test_group_metadata_of_array_path(self, store):
        store.create_array(ArrayNode.of_path("/x"), shape=(2,), chunks=(2,), dtype="int8")
        with pytest.raises(zs.KeyNotFound):
            store.group_metadata(GroupNode.of_path("/x"))

    # ------------------------------------------------------------------------------
    # Arrays: creation and metadata
    # ------------------------------------------------------------------------------

    def test_create_array_and_metadata(self, store):
        node = ArrayNode.of_path("/g/arr")
        store.create_array(node, shape=(10, 20), chunks=(3, 7), dtype="float32",
                           fill_value=1.5, dimension_names=["y", None],
                           attributes={"units": "m"})
        meta = store.array_metadata(node)
        assert isinstance(meta, zs.ArrayMetadata)
        assert meta.shape == (10, 20)
        assert meta.chunks == (3, 7)
        assert meta.dtype == np.dtype("float32")
        assert meta.fill_value == np.float32(1.5)
        assert meta.attributes == {"units": "m"}
        assert tuple(meta.dimension_names) == ("y", None)
        assert meta.separator == "/"
        assert [c.to_dict()["name"] for c in meta.codecs] == ["bytes", "zstd"]
        doc = _doc(store, "g/arr/zarr.json")
        assert doc["node_type"] == "array"
        assert doc["shape"] == [10, 20]
        assert doc["data_type"] == "float32"
        assert doc["chunk_grid"] == {"name": "regular",
                                     "configuration": {"chunk_shape": [3, 7]}}
        assert doc["fill_value"] == 1.5
        assert store.array_exists(node)

    def test_create_array_creates_ancestors(self, store):
        node = ArrayNode.of_path("/a/b/arr")
        store.create_array(node, shape=(4,), chunks=(2,), dtype="uint8")
        for g in node.ancestors():
            assert store.group_exists(g)
            assert store.group_metadata(g).attributes == {}
        assert _keys(store) == ["a/b/arr/zarr.json", "a/b/zarr.json", "a/zarr.json",
                                "zarr.json"]

    def test_create_array_exists(self, store):
        node = ArrayNode.of_path("/arr")
        store.create_array(node, shape=(4,), chunks=(2,), dtype="uint8")
        with pytest.raises(zs.NodeExists):
            store.create_array(node, shape=(8,), chunks=(2,), dtype="uint8")
        assert store.array_metadata(node).shape == (4,)
        store.create_group(GroupNode.of_path("/grp"))
        with pytest.raises(zs.NodeExists):
            store.create_array(ArrayNode.of_path("/grp"), shape=(8,), chunks=(2,),
                               dtype="uint8")
        assert store.group_exists(GroupNode.of_path("/grp"))

    def test_create_array_under_array(self, store):
        store.create_array(ArrayNode.of_path("/arr"), shape=(4,), chunks=(2,), dtype="uint8")
        with pytest.raises(zs.NodeExists):
            store.create_array(ArrayNode.of_path("/arr/sub"), shape=(4,), chunks=(2,),
                               dtype="uint8")
        assert _keys(store, "arr/") == ["arr/zarr.json"]

    def test_create_array_overwrite_array(self, store):
        node = ArrayNode.of_path("/arr")
        store.create_array(node, shape=(4,), chunks=(2,), dtype="int16")
        store.write_array(node, ..., np.arange(1, 5, dtype="int16"))
        assert len(_keys(store, "arr/c")) == 2
        store.create_array(node, shape=(6,), chunks=(3,), dtype="float64", overwrite=True)
        meta = store.array_metadata(node)
        assert (meta.shape, meta.chunks, meta.dtype) == ((6,), (3,), np.dtype("float64"))
        # The old chunks are gone: the new array reads as fill value.
        assert _keys(store, "arr/") == ["arr/zarr.json"]
        np.testing.assert_array_equal(store.read_array(node), np.zeros(6))

    def test_create_array_overwrite_group(self, store):
        g = GroupNode.of_path("/g")
        store.create_group(g / "sub")
        store.create_array(ArrayNode(g, "child"), shape=(2,), chunks=(2,), dtype="int8")
        store.create_array(ArrayNode.of_path("/g"), shape=(3,), chunks=(3,), dtype="int8",
                           overwrite=True)
        assert store.array_exists(ArrayNode.of_path("/g"))
        assert not store.group_exists(g)
        assert _keys(store, "g/") == ["g/zarr.json"]

    def test_create_array_overwrite_when_absent(self, store):
        node = ArrayNode.of_path("/new")
        store.create_array(node, shape=(3,), chunks=(3,), dtype="int8", overwrite=True)
        assert store.array_exists(node)

    def test_array_metadata_absent(self, store):
        with pytest.raises(zs.KeyNotFound):
            store.array_metadata(ArrayNode.of_path("/nope"))

    def test_array_metadata_of_group_path(self, store):
        store.create_group(GroupNode.of_path("/g"))
        with pytest.raises(zs.KeyNotFound):
            store.array_metadata(ArrayNode.of_path("/g"))

    # ------------------------------------------------------------------------------
    # Finding, testing and erasing nodes
    # ------------------------------------------------------------------------------

    def _tree(self, store):
        store.create_group(ROOT, attrs={"root": True})
        store.create_group(GroupNode.of_path("/g1/g2"))
        store.create_group(GroupNode.of_path("/h"))
        for path in ["/a", "/g1/b", "/g1/g2/c", "/g1/g2/d"]:
            store.create_array(ArrayNode.of_path(path), shape=(4,), chunks=(2,),
                               dtype="int32")
            store.write_array(ArrayNode.of_path(path), ..., np.arange(4, dtype="int32") + 1)

    def test_find_child_nodes(self, store):
        self._tree(store)
        arrays, groups = store.find_child_nodes(ROOT)
        assert sorted(arrays) == [ArrayNode.of_path("/a")]
        assert sorted(groups) == [GroupNode.of_path("/g1"), GroupNode.of_path("/h")]
        arrays, groups = store.find_child_nodes(GroupNode.of_path("/g1"))
        assert sorted(arrays) == [ArrayNode.of_path("/g1/b")]
        assert sorted(groups) == [GroupNode.of_path("/g1/g2")]
        arrays, groups = store.find_child_nodes(GroupNode.of_path("/g1/g2"))
        assert sorted(arrays) == [ArrayNode.of_path("/g1/g2/c"), ArrayNode.of_path("/g1/g2/d")]
        assert list(groups) == []
        assert tuple(map(list, store.find_child_nodes(GroupNode.of_path("/h")))) == ([], [])

    def test_find_child_nodes_of_absent_group(self, store):
        assert tuple(map(list, store.find_child_nodes(ROOT))) == ([], [])
        self._tree(store)
        assert tuple(map(list, store.find_child_nodes(GroupNode.of_path("/nope")))) \
            == ([], [])

    def test_find_child_nodes_bad_node_type(self, store):
        store.create_group(GroupNode.of_path("/g"))
        store.set("g/bad/zarr.json", json.dumps(
            {"zarr_format": 3, "node_type": "banana", "attributes": {}}).encode())
        with pytest.raises(zs.ParseError):
            store.find_child_nodes(GroupNode.of_path("/g"))

    def test_find_all_nodes(self, store):
        assert tuple(map(list, store.find_all_nodes())) == ([], [])
        self._tree(store)
        arrays, groups = store.find_all_nodes()
        assert sorted(arrays) == sorted(ArrayNode.of_path(p)
                                        for p in ["/a", "/g1/b", "/g1/g2/c", "/g1/g2/d"])
        assert sorted(groups) == sorted(GroupNode.of_path(p)
                                        for p in ["/", "/g1", "/g1/g2", "/h"])

    def test_find_all_nodes_bad_node_type(self, store):
        self._tree(store)
        store.set("h/x/zarr.json", b'{"zarr_format": 3, "node_type": 7}')
        with pytest.raises(zs.ParseError):
            store.find_all_nodes()

    def test_exists(self, store):
        self._tree(store)
        assert store.group_exists(ROOT)
        assert store.group_exists(GroupNode.of_path("/g1/g2"))
        assert not store.group_exists(GroupNode.of_path("/a"))       # an array
        assert not store.group_exists(GroupNode.of_path("/nope"))
        assert store.array_exists(ArrayNode.of_path("/g1/b"))
        assert not store.array_exists(ArrayNode.of_path("/g1"))      # a group
        assert not store.array_exists(ArrayNode.of_path("/g1/nope"))

    def test_erase_array_node(self, store):
        self._tree(store)
        node = ArrayNode.of_path("/g1/b")
        assert _keys(store, "g1/b/")
        store.erase_array_node(node)
        assert not store.array_exists(node)
        assert _keys(store, "g1/b/") == []
        assert store.array_exists(ArrayNode.of_path("/g1/g2/c"))
        store.erase_array_node(node)  # absent: a no-op
        store.erase_array_node(ArrayNode.of_path("/never"))

    def test_erase_group_node(self, store):
        self._tree(store)
        g1 = GroupNode.of_path("/g1")
        store.erase_group_node(g1)
        assert not store.group_exists(g1)
        assert _keys(store, "g1/") == []
        arrays, groups = store.find_all_nodes()
        assert sorted(arrays) == [ArrayNode.of_path("/a")]
        assert sorted(groups) == [ROOT, GroupNode.of_path("/h")]
        store.erase_group_node(g1)  # absent: a no-op
        assert store.array_exists(ArrayNode.of_path("/a"))

    def test_erase_group_node_root(self, store):
        self._tree(store)
        store.erase_group_node(ROOT)
        assert _keys(store) == []

    def test_erase_does_not_touch_sibling_with_shared_prefix(self, store):
        a = ArrayNode.of_path("/x")
        ab = ArrayNode.of_path("/xy")
        for node in (a, ab):
            store.create_array(node, shape=(2,), chunks=(1,), dtype="int8")
            store.write_array(node, ..., np.array([1, 2], dtype="int8"))
        store.erase_array_node(a)
        np.testing.assert_array_equal(store.read_array(ab), [1, 2])
        store.create_group(GroupNode.of_path("/g"))
        store.create_group(GroupNode.of_path("/gg"))
        store.erase_group_node(GroupNode.of_path("/g"))
        assert store.group_exists(GroupNode.of_path("/gg"))

    def test_erase_all_nodes(self, store):
        self._tree(store)
        store.erase_all_nodes()
        assert _keys(store) == []
        assert tuple(map(list, store.find_all_nodes())) == ([], [])
        store.erase_all_nodes()  # already empty
        assert _keys(store) == []

    # ------------------------------------------------------------------------------
    # Reading and writing
    # ------------------------------------------------------------------------------

    CODEC_CHAINS = {
        "default": None,
        "raw": [Bytes()],
        "big": [Bytes("big")],
        "gzip": [Bytes(), Gzip(1)],
        "crc": [Bytes(), Crc32c()],
        "transpose_zstd_crc": [Transpose((1, 0)), Bytes("big"), Zstd(3), Crc32c()],
        "dicts": [{"name": "transpose", "configuration": {"order": [1, 0]}},
                  {"name": "bytes", "configuration": {"endian": "little"}},
                  {"name": "gzip", "configuration": {"level": 5}}],
    }

    @pytest.mark.parametrize("codecs", list(CODEC_CHAINS), ids=list(CODEC_CHAINS))
    @pytest.mark.parametrize("dtype", ["bool", "int8", "uint16", "int32", "uint64",
                                       "float16", "float32", "float64", "complex64",
                                       "complex128"])
    def test_write_read_round_trip(self, store, codecs, dtype):
        node = ArrayNode.of_path("/g/arr")
        store.create_array(node, shape=(9, 7), chunks=(4, 3), dtype=dtype,
                           codecs=self.CODEC_CHAINS[codecs])
        rng = np.random.default_rng(42)
        dt = np.dtype(dtype)
        if dt.kind == "b":
            data = rng.random((9, 7)) > 0.5
        elif dt.kind in "iu":
            info = np.iinfo(dt)
            data = rng.integers(info.min, info.max, (9, 7), dtype=dt, endpoint=True)
        elif dt.kind == "f":
            data = (rng.standard_normal((9, 7)) * 100).astype(dt)
        else:
            data = (rng.standard_normal((9, 7)) + 1j * rng.standard_normal((9, 7))).astype(dt)
        store.write_array(node, ..., data)
        got = store.read_array(node)
        assert got.dtype == dt
        np.testing.assert_array_equal(got, data)
        np.testing.assert_array_equal(store.read_array(node, (slice(2, 8), [0, 6, 3])),
                                      data[2:8][:, [0, 6, 3]])

    def test_read_unwritten_is_fill(self, store):
        node = ArrayNode.of_path("/arr")
        store.create_array(node, shape=(5, 6), chunks=(2, 4), dtype="int16", fill_value=-3)
        got = store.read_array(node)
        assert got.dtype == np.int16
        np.testing.assert_array_equal(got, np.full((5, 6), -3, dtype="int16"))
        assert _keys(store, "arr/") == ["arr/zarr.json"]

    def test_partial_writes_match_numpy(self, store):
        node = ArrayNode.of_path("/arr")
        store.create_array(node, shape=(11, 13), chunks=(4, 5), dtype="float64",
                           fill_value=np.nan)
        expected = np.full((11, 13), np.nan)
        rng = np.random.default_rng(1)
        selections = [
            (slice(1, 7), slice(2, 12)),
            (3, slice(None)),
            (slice(None, None, 3), 4),
            ([0, 10, 5], slice(11, 13)),
            (Ellipsis, [12]),
            (slice(-4, None), slice(-3, -1)),
            (-1, -1),
        ]
        for sel in selections:
            value = rng.standard_normal(expected[sel].shape)
            store.write_array(node, sel, value)
            expected[sel] = value
            np.testing.assert_array_equal(store.read_array(node), expected)
        for sel in selections:
            np.testing.assert_array_equal(store.read_array(node, sel), expected[sel])

    def test_chunk_keys_layout(self, store):
        node = ArrayNode.of_path("/g/arr")
        store.create_array(node, shape=(4, 4), chunks=(2, 2), dtype="uint8")
        store.write_array(node, (slice(0, 2), slice(2, 4)), np.ones((2, 2), dtype="uint8"))
        store.write_array(node, (3, 0), np.uint8(7))
        assert _keys(store, "g/arr/c") == ["g/arr/c/0/1", "g/arr/c/1/0"]

    def test_dot_separator_and_v2_keys(self, store):
        dot = ArrayNode.of_path("/dot")
        v2 = ArrayNode.of_path("/v2")
        store.create_array(dot, shape=(4, 4), chunks=(2, 2), dtype="uint8", separator=".")
        store.create_array(v2, shape=(4, 4), chunks=(2, 2), dtype="uint8",
                           chunk_key_encoding="v2", separator=".")
        data = np.arange(16, dtype="uint8").reshape(4, 4) + 1
        for node in (dot, v2):
            store.write_array(node, ..., data)
            np.testing.assert_array_equal(store.read_array(node), data)
        assert _keys(store, "dot/c") == ["dot/c.0.0", "dot/c.0.1", "dot/c.1.0", "dot/c.1.1"]
        assert sorted(k for k in _keys(store, "v2/") if not k.endswith("zarr.json")) \
            == ["v2/0.0", "v2/0.1", "v2/1.0", "v2/1.1"]

    def test_zero_dimensional_array(self, store):
        node = ArrayNode.of_path("/scalar")
        store.create_array(node, shape=(), chunks=(), dtype="float64", fill_value=2.5)
        assert store.read_array(node).shape == ()
        assert store.read_array(node)[()] == 2.5
        store.write_array(node, (), np.float64(-1.25))
        assert store.read_array(node)[()] == -1.25
        assert _keys(store, "scalar/c") == ["scalar/c"]

    def test_empty_array(self, store):
        node = ArrayNode.of_path("/empty")
        store.create_array(node, shape=(0, 5), chunks=(2, 2), dtype="int32")
        assert store.read_array(node).shape == (0, 5)
        store.write_array(node, ..., np.zeros((0, 5), dtype="int32"))
        assert _keys(store, "empty/") == ["empty/zarr.json"]

    def test_fill_value_chunks_not_stored(self, store):
        node = ArrayNode.of_path("/arr")
        store.create_array(node, shape=(6,), chunks=(2,), dtype="int32", fill_value=9)
        store.write_array(node, ..., np.array([9, 9, 1, 9, 9, 9], dtype="int32"))
        assert _keys(store, "arr/c") == ["arr/c/1"]
        store.write_array(node, (2,), np.int32(9))
        assert _keys(store, "arr/c") == []
        np.testing.assert_array_equal(store.read_array(node), np.full(6, 9))


    @pytest.mark.parametrize("codecs", [[Bytes()], [Bytes(), Zstd(1)]], ids=["raw", "zstd"])
    def test_many_whole_chunks_in_one_write(self, store, codecs):
        # Whole chunks stored as a batch (walked uncompressed chunks, small
        # compressed ones): every one is stored, replaced or erased.
        node = ArrayNode.of_path("/many")
        store.create_array(node, shape=(40, 48), chunks=(4, 6), dtype="int16", codecs=codecs)
        rng = np.random.default_rng(1)
        expected = np.zeros((40, 48), dtype="int16")
        for _ in range(3):
            value = rng.integers(-50, 50, (40, 48)).astype("int16")
            value[rng.random((40, 48)) < 0.5] = 0
            value[:8, :12] = 0  # 2 x 2 chunks of fill: absent
            store.write_array(node, ..., value)
            expected[...] = value
            np.testing.assert_array_equal(store.read_array(node), expected)
            assert len(_keys(store, "many/c")) == 10 * 8 - 4
        store.write_array(node, (slice(0, 20), slice(None)), np.int16(0))
        assert len(_keys(store, "many/c")) == 5 * 8
        expected[:20] = 0
        np.testing.assert_array_equal(store.read_array(node), expected)
    def test_independent_stores(self, make_store):
        a, b = make_store(), make_store()
        try:
            a.set("k", b"a")
            assert b.get("k") is None
            b.create_group(ROOT)
            assert not a.group_exists(ROOT)
        finally:
            a.close()
            b.close()

    # ------------------------------------------------------------------------------
    # Reshape and rename
    # ------------------------------------------------------------------------------

    def test_reshape_shrink_and_grow(self, store):
        node = ArrayNode.of_path("/arr")
        store.create_array(node, shape=(6, 6), chunks=(2, 2), dtype="int32", fill_value=-1)
        data = np.arange(36, dtype="int32").reshape(6, 6)
        store.write_array(node, ..., data)
        store.reshape(node, (3, 5))
        assert store.array_metadata(node).shape == (3, 5)
        assert _doc(store, "arr/zarr.json")["shape"] == [3, 5]
        np.testing.assert_array_equal(store.read_array(node), data[:3, :5])
        # Chunks wholly outside (row chunk 2, column chunk >= 3) are gone.
        chunks = _keys(store, "arr/c/")
        assert chunks == sorted(f"arr/c/{i}/{j}" for i in range(2) for j in range(3))
        store.reshape(node, (6, 6))
        expected = np.full((6, 6), -1, dtype="int32")
        expected[:3, :5] = data[:3, :5]
        np.testing.assert_array_equal(store.read_array(node), expected)

    def test_reshape_errors(self, store):
        node = ArrayNode.of_path("/arr")
        with pytest.raises(zs.KeyNotFound):
            store.reshape(node, (4,))
        store.create_array(node, shape=(4, 4), chunks=(2, 2), dtype="int8")
        with pytest.raises(zs.InvalidResizeShape):
            store.reshape(node, (4,))
        with pytest.raises(zs.InvalidResizeShape):
            store.reshape(node, (4, 4, 4))
        assert store.array_metadata(node).shape == (4, 4)

    def test_rename_array(self, store):
        self._tree(store)
        old = ArrayNode.of_path("/g1/g2/c")
        before = store.read_array(old)
        meta_before = store.array_metadata(old).to_dict()
        store.rename_array(old, "renamed")
        new = ArrayNode.of_path("/g1/g2/renamed")
        assert not store.array_exists(old)
        assert store.array_exists(new)
        assert _keys(store, "g1/g2/c/") == []
        np.testing.assert_array_equal(store.read_array(new), before)
        assert store.array_metadata(new).to_dict() == meta_before
        assert _keys(store, "g1/g2/renamed/") == ["g1/g2/renamed/c/0", "g1/g2/renamed/c/1",
                                                  "g1/g2/renamed/zarr.json"]

    def test_rename_group(self, store):
        self._tree(store)
        before = {p: store.read_array(ArrayNode.of_path(p))
                  for p in ["/g1/b", "/g1/g2/c", "/g1/g2/d"]}
        n_keys = len(_keys(store))
        store.rename_group(GroupNode.of_path("/g1"), "moved")
        assert not store.group_exists(GroupNode.of_path("/g1"))
        assert _keys(store, "g1/") == []
        assert len(_keys(store)) == n_keys
        for p, data in before.items():
            np.testing.assert_array_equal(
                store.read_array(ArrayNode.of_path(p.replace("/g1", "/moved"))), data)
        arrays, groups = store.find_all_nodes()
        assert GroupNode.of_path("/moved/g2") in groups
        assert ArrayNode.of_path("/a") in arrays

    def test_rename_errors(self, store):
        self._tree(store)
        with pytest.raises(zs.CannotRenameRoot):
            store.rename_group(ROOT, "x")
        with pytest.raises(zs.KeyNotFound):
            store.rename_group(GroupNode.of_path("/nope"), "x")
        with pytest.raises(zs.KeyNotFound):
            store.rename_array(ArrayNode.of_path("/nope"), "x")
        with pytest.raises(zs.NodeInvariant):
            store.rename_array(ArrayNode.of_path("/a"), "bad/name")
        with pytest.raises(zs.NodeInvariant):
            store.rename_group(GroupNode.of_path("/g1"), "__reserved")
        assert store.array_exists(ArrayNode.of_path("/a"))
        assert store.group_exists(GroupNode.of_path("/g1"))

    # ------------------------------------------------------------------------------
    # Read-only stores
    # ------------------------------------------------------------------------------

    @staticmethod
    def _small_tree(store):
        node = ArrayNode.of_path("/g/a")
        data = np.arange(16, dtype="int16").reshape(4, 4)
        store.create_group(ROOT, attrs={"title": "t"})
        store.create_array(node, shape=(4, 4), chunks=(2, 2), dtype="int16",
                           attributes={"t": 1})
        store.write_array(node, ..., data)
        return node, data

    def test_writable_store_modes(self, store):
        assert store.read_only is False
        assert store.mode != "r"

    def test_read_only_writes_name_the_call(self, store, reopen_read_only):
        if reopen_read_only is None:
            pytest.skip("the backend has no read-only mode")
        node, data = self._small_tree(store)
        ro = reopen_read_only(store)
        try:
            assert ro.read_only is True
            assert ro.mode == "r"
            before = {k: ro.get(k) for k in ro.list_prefix("")}
            group = GroupNode.of_path("/g")
            arr = zs.Array(ro, node)

            def assign():
                arr[0, 0] = 5

            def delete_attr():
                del arr.attrs["t"]

            calls = {
                "create_group /new": lambda: ro.create_group(GroupNode.of_path("/new")),
                "create_array /g/b": lambda: ro.create_array(
                    ArrayNode.of_path("/g/b"), shape=(2,), chunks=(2,), dtype="int8"),
                "erase_group_node /g": lambda: ro.erase_group_node(group),
                "erase_array_node /g/a": lambda: ro.erase_array_node(node),
                "erase_all_nodes": ro.erase_all_nodes,
                "rename_group /g": lambda: ro.rename_group(group, "h"),
                "rename_array /g/a": lambda: ro.rename_array(node, "b"),
                "set_attributes /g/a": lambda: ro.set_attributes(node, {"x": 1}),
                "write_array /g/a": lambda: ro.write_array(node, (0, 0), np.int16(5)),
                "reshape /g/a": lambda: ro.reshape(node, (2, 2)),
                "set 'k'": lambda: ro.set("k", b"v"),
                "set_many": lambda: ro.set_many(["k"], [b"v"]),
                "erase 'g/a/c/0/0'": lambda: ro.erase("g/a/c/0/0"),
                "erase_prefix 'g/'": lambda: ro.erase_prefix("g/"),
                "move_prefix 'g/' to 'h/'": lambda: ro.move_prefix("g/", "h/"),
                "assign to Array /g/a": assign,
                "resize Array /g/a": lambda: arr.resize((2, 2)),
                "set attrs['x'] of /g/a": lambda: arr.attrs.__setitem__("x", 1),
                "delete attrs['t'] of /g/a": delete_attr,
            }
            for call, op in calls.items():
                with pytest.raises(zs.ReadOnlyStoreError,
                                   match=re.escape(f"cannot {call}")) as info:
                    op()
                assert "is open read-only (mode 'r')" in str(info.value), call
                # Also what callers catching the builtins expect.
                assert isinstance(info.value, PermissionError)
                assert isinstance(info.value, zs.StoreError)
            # Nothing changed, and every read still works.
            assert {k: ro.get(k) for k in ro.list_prefix("")} == before
            np.testing.assert_array_equal(ro.read_array(node), data)
            np.testing.assert_array_equal(arr[1:3, ::-1], data[1:3, ::-1])
            assert arr.attrs.asdict() == {"t": 1}
            assert ro.group_metadata(ROOT).attributes == {"title": "t"}
            assert ro.find_all_nodes() == ([node], [ROOT, group])
            assert ro.find_child_nodes(group) == ([node], [])
            assert ro.get_partial_values([("g/a/zarr.json", 0, 1)]) == [b"{"]
            assert ro.getsize("g/a/zarr.json") == len(before["g/a/zarr.json"])
            ro.flush()  # nothing to store
        finally:
            ro.close()

    # ------------------------------------------------------------------------------
    # Pickling (in this process; tests/test_sharing.py uses other processes)
    # ------------------------------------------------------------------------------

    def test_pickles_before_and_after_writes(self, store):
        if not self.pickles_while_writable:
            with pytest.raises(zs.StoreError, match="cannot pickle"):
                pickle.dumps(store)
            return
        empty = pickle.loads(pickle.dumps(store))
        assert empty.list_prefix("") == []
        assert (empty.mode, empty.read_only) == (store.mode, store.read_only)
        node, data = self._small_tree(store)
        # A partial chunk write, which stores that buffer writes keep in memory.
        store.write_array(node, (0, slice(0, 1)), np.int16(-7))
        data[0, 0] = -7
        copy = pickle.loads(pickle.dumps(store))
        assert copy.list_prefix("") == store.list_prefix("")
        assert {k: copy.get(k) for k in copy.list_prefix("")} == \
            {k: store.get(k) for k in store.list_prefix("")}
        np.testing.assert_array_equal(copy.read_array(node), data)
        assert copy.find_all_nodes() == store.find_all_nodes()
        view = pickle.loads(pickle.dumps(zs.Array(store, node)))
        np.testing.assert_array_equal(view[...], data)
        assert view.attrs.asdict() == {"t": 1}
        copy.close()
