"""Consolidated metadata (Zarr v3, zarr-python's inline form): reading it,
writing it with ``consolidate_metadata``, keeping it fresh through every
change zarrsync makes, and refusing hostile blocks.

zarr-python is the reference: it writes the stores zarrsync reads, re-reads
what zarrsync writes with a consolidated open, and re-consolidates copies so
that a copy zarrsync kept fresh can be compared with a freshly made one.
"""

import json
import shutil

import numpy as np
import pytest
import zarr

import zarrsync as zs
from interop_matrix import cell
from zarrsync import ArrayNode, GroupNode
from zarrsync.codecs import Bytes, ShardingIndexed
from zarrsync.errors import KeyNotFound, ParseError, ReadOnlyStoreError
from zarrsync.metadata import MAX_JSON_DEPTH, ArrayMetadata, GroupMetadata

pytestmark = pytest.mark.filterwarnings(
    "ignore:Consolidated metadata is currently not part:UserWarning")


def build_zarr_python(root, consolidate=True):
    """A hierarchy written by zarr-python: /, /a (array), /h, /h/b (array), /h/e (group)."""
    zstore = zarr.storage.LocalStore(str(root))
    g = zarr.open_group(zstore, mode="w", attributes={"root": True})
    a = g.create_array("a", shape=(6,), chunks=(4,), dtype="int32", fill_value=-1)
    a[...] = np.arange(6)
    h = g.create_group("h", attributes={"level": 1})
    b = h.create_array("b", shape=(3, 5), chunks=(2, 2), dtype="float64",
                       dimension_names=["y", "x"], attributes={"units": "m"})
    b[...] = np.arange(15.0).reshape(3, 5)
    h.create_group("e")
    if consolidate:
        zarr.consolidate_metadata(zstore)
    return zstore


def root_doc(root):
    return json.loads((root / "zarr.json").read_text())


def block(root, group=""):
    path = root / group / "zarr.json" if group else root / "zarr.json"
    return json.loads(path.read_text()).get("consolidated_metadata")


def reconsolidated_block(root, tmp_path):
    """The block zarr-python writes when it consolidates a copy of ``root`` now."""
    copy = tmp_path / "reference.zarr"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root, copy)
    zarr.consolidate_metadata(zarr.storage.LocalStore(str(copy)))
    return block(copy)


def consolidated_tree(root):
    """``{path: (kind, shape or None, attributes)}`` from zarr-python's consolidated open."""
    g = zarr.open_consolidated(zarr.storage.LocalStore(str(root), read_only=True), mode="r")
    out = {"": ("group", None, dict(g.attrs))}
    for path, node in g.members(max_depth=None):
        kind = "array" if isinstance(node, zarr.Array) else "group"
        out[path] = (kind, node.shape if kind == "array" else None, dict(node.attrs))
    return out


def plain_tree(root):
    """The same, from each node's own zarr.json (zarr-python, no consolidated metadata)."""
    g = zarr.open_group(zarr.storage.LocalStore(str(root), read_only=True), mode="r",
                        use_consolidated=False)
    out = {"": ("group", None, dict(g.attrs))}
    for path, node in g.members(max_depth=None):
        kind = "array" if isinstance(node, zarr.Array) else "group"
        out[path] = (kind, node.shape if kind == "array" else None, dict(node.attrs))
    return out


# -- reading ---------------------------------------------------------------------------

def test_reads_zarr_python_consolidated_block(tmp_path):
    root = tmp_path / "z.zarr"
    build_zarr_python(root)
    store = zs.FilesystemStore(root)
    meta = store.group_metadata(GroupNode.root())
    assert sorted(meta.consolidated) == ["a", "h", "h/b", "h/e"]
    assert isinstance(meta.consolidated["h/b"], ArrayMetadata)
    assert meta.consolidated["h/b"].shape == (3, 5)
    assert meta.consolidated["h/b"].dimension_names == ("y", "x")
    assert isinstance(meta.consolidated["h"], GroupMetadata)
    assert meta.consolidated["h"].attributes == {"level": 1}
    # Written back, the document is the one zarr-python wrote, key order included.
    assert list(meta.to_dict()) == list(root_doc(root))
    assert meta.to_dict() == root_doc(root)
    assert list(meta.to_dict()["consolidated_metadata"]["metadata"]) == \
        list(block(root)["metadata"])


class NoListingStore(zs.MemoryStore):
    """A memory store that refuses to list, as a store where listing is slow or denied."""

    def list_prefix(self, prefix):
        raise AssertionError(f"listed {prefix!r}")

    def list_dir(self, prefix):
        raise AssertionError(f"listed {prefix!r}")


def test_listing_comes_from_the_copy_without_listing_the_store(tmp_path):
    root = tmp_path / "z.zarr"
    build_zarr_python(root)
    store = NoListingStore()
    for path in root.rglob("*"):
        if path.is_file():
            store.set(path.relative_to(root).as_posix(), path.read_bytes())
    arrays, groups = store.find_all_nodes()
    assert [a.path for a in arrays] == ["/a", "/h/b"]
    assert [g.path for g in groups] == ["/", "/h", "/h/e"]
    assert store.find_child_nodes(GroupNode.root()) == ([ArrayNode.of_path("/a")],
                                                        [GroupNode.of_path("/h")])
    assert store.find_child_nodes(GroupNode.of_path("/h")) == (
        [ArrayNode.of_path("/h/b")], [GroupNode.of_path("/h/e")])
    assert store.find_child_nodes(GroupNode.of_path("/h/e")) == ([], [])
    assert store.find_child_nodes(GroupNode.of_path("/nope")) == ([], [])
    np.testing.assert_array_equal(store.read_array(ArrayNode.of_path("/a")), np.arange(6))


def test_listing_trusts_the_copy_and_node_metadata_its_own_document(tmp_path):
    """The documented rule when another tool changed nodes without re-consolidating."""
    root = tmp_path / "z.zarr"
    zstore = build_zarr_python(root)
    g = zarr.open_group(zstore, mode="r+", use_consolidated=False)
    g["a"].resize((9,))
    g.create_array("late", shape=(2,), chunks=(2,), dtype="uint8")
    store = zs.FilesystemStore(root)
    # The listing is the copy's: the late array is not in it.
    arrays, _ = store.find_all_nodes()
    assert [a.path for a in arrays] == ["/a", "/h/b"]
    # Metadata and data always come from the node's own document.
    assert store.array_metadata(ArrayNode.of_path("/a")).shape == (9,)
    assert store.read_array(ArrayNode.of_path("/a")).shape == (9,)
    assert store.array_exists(ArrayNode.of_path("/late"))
    # Consolidating again brings the copy up to date.
    store.consolidate_metadata()
    arrays, _ = store.find_all_nodes()
    assert [a.path for a in arrays] == ["/a", "/h/b", "/late"]
    assert store.group_metadata(GroupNode.root()).consolidated["a"].shape == (9,)


# -- writing ---------------------------------------------------------------------------

def build_zarrsync(store):
    store.create_group(GroupNode.root(), attrs={"root": True})
    store.create_array(ArrayNode.of_path("/a"), shape=(6,), chunks=(4,), dtype="int32",
                       fill_value=-1)
    store.create_group(GroupNode.of_path("/h"), attrs={"level": 1})
    store.create_array(ArrayNode.of_path("/h/b"), shape=(3, 5), chunks=(2, 2),
                       dtype="float64", dimension_names=["y", "x"], attributes={"units": "m"})
    store.create_group(GroupNode.of_path("/h/e"))
    store.create_group(GroupNode.of_path("/Z"), attrs={"caps": 1})


def test_consolidate_writes_what_zarr_python_writes(tmp_path):
    root = tmp_path / "s.zarr"
    store = zs.FilesystemStore(root)
    build_zarrsync(store)
    store.consolidate_metadata()
    assert root_doc(root)["consolidated_metadata"] == reconsolidated_block(root, tmp_path)
    assert list(root_doc(root)) == ["attributes", "zarr_format", "consolidated_metadata",
                                    "node_type"]
    assert consolidated_tree(root) == plain_tree(root)
    # Documents without consolidated metadata stay without it.
    for sub in ("h", "h/e", "a", "h/b"):
        assert "consolidated_metadata" not in json.loads((root / sub / "zarr.json").read_text())
    # zarr-python reads it through use_consolidated=True as well.
    g = zarr.open_group(zarr.storage.LocalStore(str(root), read_only=True), mode="r",
                        use_consolidated=True)
    assert g.metadata.consolidated_metadata is not None
    assert g["h/b"].shape == (3, 5) and dict(g["h/b"].attrs) == {"units": "m"}


def test_consolidate_a_subgroup(tmp_path):
    root = tmp_path / "s.zarr"
    store = zs.FilesystemStore(root)
    build_zarrsync(store)
    store.consolidate_metadata(GroupNode.of_path("/h"))
    assert "consolidated_metadata" not in root_doc(root)
    assert sorted(block(root, "h")["metadata"]) == ["b", "e"]
    g = zarr.open_consolidated(zarr.storage.LocalStore(str(root), read_only=True), path="h",
                               mode="r")
    assert g["b"].shape == (3, 5)
    # A change below /h keeps its copy fresh; relative paths stay relative.
    store.reshape(ArrayNode.of_path("/h/b"), (4, 4))
    assert block(root, "h")["metadata"]["b"]["shape"] == [4, 4]


def test_consolidate_refuses_what_is_no_group(tmp_path):
    store = zs.MemoryStore()
    with pytest.raises(KeyNotFound, match="/nope"):
        store.consolidate_metadata(GroupNode.of_path("/nope"))
    store.create_array(ArrayNode.root(), shape=(2,), chunks=(2,), dtype="int8")
    with pytest.raises(KeyNotFound):
        store.consolidate_metadata()


def test_consolidate_on_a_read_only_store(tmp_path):
    root = tmp_path / "s.zarr"
    build_zarrsync(zs.FilesystemStore(root))
    before = (root / "zarr.json").read_bytes()
    store = zs.FilesystemStore(root, mode="r")
    with pytest.raises(ReadOnlyStoreError, match="consolidate_metadata /"):
        store.consolidate_metadata()
    assert (root / "zarr.json").read_bytes() == before


def test_a_null_block_is_not_written_back():
    store = zs.MemoryStore()
    store.set("zarr.json", json.dumps({"zarr_format": 3, "node_type": "group",
                                       "attributes": {}, "consolidated_metadata": None}).encode())
    store.set_attributes(GroupNode.root(), {"k": 1})
    assert json.loads(store.get("zarr.json")) == {"attributes": {"k": 1}, "zarr_format": 3,
                                                  "node_type": "group"}


# -- freshness -------------------------------------------------------------------------

A, B, H, E = (ArrayNode.of_path("/a"), ArrayNode.of_path("/h/b"), GroupNode.of_path("/h"),
              GroupNode.of_path("/h/e"))

CHANGES = {
    "create_group": lambda s: s.create_group(GroupNode.of_path("/h/e/f"), attrs={"new": 1}),
    "create_group_with_ancestors": lambda s: s.create_group(GroupNode.of_path("/p/q/r")),
    "create_array": lambda s: s.create_array(ArrayNode.of_path("/h/e/c"), shape=(2, 2),
                                             chunks=(1, 1), dtype="uint16",
                                             attributes={"n": 2}),
    "create_array_with_ancestors": lambda s: s.create_array(
        ArrayNode.of_path("/x/y/z"), shape=(3,), chunks=(3,), dtype="int8"),
    "create_array_overwrite_array": lambda s: s.create_array(
        A, shape=(2, 3), chunks=(2, 3), dtype="float32", overwrite=True),
    "create_array_overwrite_group": lambda s: s.create_array(
        ArrayNode.of_path("/h"), shape=(1,), chunks=(1,), dtype="int64", overwrite=True),
    "erase_array_node": lambda s: s.erase_array_node(B),
    "erase_group_node": lambda s: s.erase_group_node(H),
    "rename_array": lambda s: s.rename_array(B, "renamed"),
    "rename_group": lambda s: s.rename_group(H, "k"),
    "reshape_grow": lambda s: s.reshape(A, (11,)),
    "reshape_shrink": lambda s: s.reshape(B, (1, 2)),
    "set_attributes_array": lambda s: s.set_attributes(B, {"units": "km", "n": [1, 2]}),
    "set_attributes_group": lambda s: s.set_attributes(E, {"e": "new"}),
    "set_attributes_root_and_group": lambda s: (
        s.set_attributes(GroupNode.root(), {"root": "changed"}),
        s.set_attributes(H, {"level": "changed"})),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_change_keeps_the_copy_fresh(tmp_path, change):
    root = tmp_path / "z.zarr"
    build_zarr_python(root)
    store = zs.FilesystemStore(root)
    CHANGES[change](store)
    # The copy equals the one zarr-python makes from the changed store, and a
    # consolidated open sees exactly what the nodes' own documents say.
    assert block(root) == reconsolidated_block(root, tmp_path)
    assert consolidated_tree(root) == plain_tree(root)
    # zarrsync's own listing (from the copy) agrees with a listing of the store.
    listed = zs.FilesystemStore(root).find_all_nodes()
    shutil.copytree(root, tmp_path / "plain.zarr")
    plain = zs.FilesystemStore(tmp_path / "plain.zarr")
    doc = root_doc(root)
    del doc["consolidated_metadata"]
    plain.set("zarr.json", json.dumps(doc).encode())
    assert listed == plain.find_all_nodes()


def test_changes_in_a_store_without_a_copy_write_none(tmp_path):
    root = tmp_path / "z.zarr"
    build_zarr_python(root, consolidate=False)
    store = zs.FilesystemStore(root)
    for change in ("create_group", "create_group_with_ancestors", "create_array",
                   "create_array_with_ancestors", "reshape_grow",
                   "set_attributes_root_and_group", "rename_group"):
        CHANGES[change](store)
    for path in root.rglob("zarr.json"):
        assert "consolidated_metadata" not in json.loads(path.read_text()), path
    # Once consolidated, the copy stays in zarr-python's form through later changes.
    store.consolidate_metadata()
    store.reshape(ArrayNode.of_path("/x/y/z"), (7,))
    assert block(root) == reconsolidated_block(root, tmp_path)


def test_stale_copy_after_reshape_and_root_attributes(tmp_path):
    """The finding: a zarr-python store with consolidated metadata, then a zarrsync
    reshape and a change of the root's attributes; a consolidated open must see both."""
    root = tmp_path / "z.zarr"
    build_zarr_python(root)
    store = zs.FilesystemStore(root)
    store.reshape(B, (7, 5))
    store.write_array(B, (slice(3, 7),), np.full((4, 5), 9.0))
    store.set_attributes(GroupNode.root(), {"root": "v2"})
    g = zarr.open_group(zarr.storage.LocalStore(str(root), read_only=True), mode="r",
                        use_consolidated=True)
    assert g["h/b"].shape == (7, 5)
    assert dict(g.attrs) == {"root": "v2"}
    np.testing.assert_array_equal(g["h/b"][3:], 9.0)


def test_stale_copy_through_xarray(tmp_path):
    xr = pytest.importorskip("xarray")
    root = tmp_path / "ds.zarr"
    ds = xr.Dataset({"t": (("time", "x"), np.arange(12.0).reshape(4, 3))},
                    coords={"time": np.arange(4), "x": [10, 20, 30]}, attrs={"title": "v1"})
    ds.to_zarr(root, consolidated=True, zarr_format=3)
    assert "consolidated_metadata" in root_doc(root)
    store = zs.FilesystemStore(root)
    t, time = ArrayNode.of_path("/t"), ArrayNode.of_path("/time")
    store.reshape(t, (6, 3))
    store.reshape(time, (6,))
    store.write_array(t, (slice(4, 6),), np.full((2, 3), 5.0))
    store.write_array(time, (slice(4, 6),), np.array([4, 5], dtype=store.array_metadata(
        time).dtype))
    attrs = store.group_metadata(GroupNode.root()).attributes
    store.set_attributes(GroupNode.root(), {**attrs, "title": "v2"})
    opened = xr.open_zarr(root, consolidated=True)
    assert opened.sizes["time"] == 6
    assert opened.attrs["title"] == "v2"
    np.testing.assert_array_equal(opened["t"].values[4:], 5.0)
    np.testing.assert_array_equal(opened["time"].values, np.arange(6))


# -- hostile blocks --------------------------------------------------------------------

def group_with(block_value):
    return {"attributes": {}, "zarr_format": 3, "consolidated_metadata": block_value,
            "node_type": "group"}


ARRAY_DOC = {"shape": [4], "data_type": "int8",
             "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}},
             "chunk_key_encoding": {"name": "default"}, "fill_value": 0,
             "codecs": [{"name": "bytes"}], "zarr_format": 3, "node_type": "array"}


def inline(metadata, **extra):
    return {"kind": "inline", "must_understand": False, "metadata": metadata, **extra}


HOSTILE = {
    "list": ([], "consolidated_metadata must be an object"),
    "string": ("inline", "consolidated_metadata must be an object"),
    "kind": ({"kind": "external", "must_understand": False, "metadata": {}},
             "kind must be 'inline'"),
    "no_kind": ({"must_understand": False, "metadata": {}}, "kind must be 'inline'"),
    "must_understand": ({"kind": "inline", "must_understand": True, "metadata": {}},
                        "must_understand must be false"),
    "no_metadata": ({"kind": "inline", "must_understand": False}, "'metadata'"),
    "metadata_list": (inline([ARRAY_DOC]), "metadata must be an object"),
    "unknown_field": (inline({}, extra=1), "unknown field 'extra'"),
    "entry_not_object": (inline({"a": [1]}), r"metadata\['a'\]: expected a zarr.json object"),
    "entry_node_type": (inline({"a": {**ARRAY_DOC, "node_type": "blob"}}),
                        r"metadata\['a'\].*node_type"),
    "entry_bad_shape": (inline({"g/a": {**ARRAY_DOC, "shape": [-1]}}),
                        r"metadata\['g/a'\].*shape"),
    "entry_bad_codec": (inline({"a": {**ARRAY_DOC, "codecs": [{"name": "nope"}]}}),
                        r"metadata\['a'\].*codecs"),
    "entry_v2": (inline({"a": {**ARRAY_DOC, "zarr_format": 2}}),
                 r"metadata\['a'\].*zarr_format"),
    "entry_bad_group": (inline({"g": {"zarr_format": 3, "node_type": "group",
                                      "attributes": [1]}}), r"metadata\['g'\].*attributes"),
    "entry_nested_bad": (inline({"g": {"zarr_format": 3, "node_type": "group",
                                       "consolidated_metadata": inline({"x": 5})}}),
                         r"metadata\['g'\].*metadata\['x'\]"),
    "empty_path": (inline({"": ARRAY_DOC}), "non-empty relative paths"),
    "absolute_path": (inline({"/a": ARRAY_DOC}), "not a relative path"),
    "dotdot_path": (inline({"../a": ARRAY_DOC}), "not a relative path"),
    "double_slash": (inline({"a//b": ARRAY_DOC}), "not a relative path"),
    "below_array": (inline({"a": ARRAY_DOC, "a/b": ARRAY_DOC}), "below the array 'a'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_blocks_are_parse_errors(case):
    value, message = HOSTILE[case]
    with pytest.raises(ParseError, match=message):
        GroupMetadata.from_dict(group_with(value))
    # Through a store, the error names the group's key.
    store = zs.MemoryStore()
    store.set("zarr.json", json.dumps(group_with(value)).encode())
    with pytest.raises(ParseError, match="zarr.json"):
        store.find_all_nodes()
    with pytest.raises(ParseError, match="zarr.json"):
        store.group_metadata(GroupNode.root())


def test_a_bad_copy_stops_a_change_before_it_starts():
    store = zs.MemoryStore()
    build_zarrsync(store)
    doc = json.loads(store.get("zarr.json"))
    doc["consolidated_metadata"] = inline({"a": {**ARRAY_DOC, "shape": "x"}})
    store.set("zarr.json", json.dumps(doc).encode())
    with pytest.raises(ParseError, match=r"zarr.json: consolidated_metadata.metadata\['a'\]"):
        store.reshape(ArrayNode.of_path("/a"), (2,))
    assert store.array_metadata(ArrayNode.of_path("/a")).shape == (6,)


def nested_block(levels):
    """A group document whose consolidated entries nest ``levels`` group documents deep."""
    doc = {"zarr_format": 3, "node_type": "group"}
    for _ in range(levels):
        doc = {"zarr_format": 3, "node_type": "group",
               "consolidated_metadata": inline({"g": doc})}
    return doc


def test_deeply_nested_blocks_are_parse_errors():
    text = json.dumps(nested_block(MAX_JSON_DEPTH))
    with pytest.raises(ParseError, match="nested deeper"):
        GroupMetadata.from_json(text)
    with pytest.raises(ParseError, match="nested deeper"):
        GroupMetadata.from_dict(nested_block(MAX_JSON_DEPTH))
    store = zs.MemoryStore()
    store.set("zarr.json", text.encode())
    with pytest.raises(ParseError, match="nested deeper"):
        store.find_all_nodes()
    # Far deeper than Python's recursion limit: still a ParseError.
    head = '{"zarr_format": 3, "node_type": "group", "consolidated_metadata": ' \
           '{"kind": "inline", "metadata": {"g": '
    deep = head * 5000 + '{"zarr_format": 3, "node_type": "group"}' + "}}}" * 5000
    with pytest.raises(ParseError, match="nested deeper"):
        GroupMetadata.from_json(deep)
    # A few levels, as zarr-python writes them, parse.
    assert GroupMetadata.from_dict(nested_block(3)).consolidated["g"].consolidated.keys() == {"g"}


def test_real_documents_fit_the_depth_bound_inside_a_copy():
    """Deep attributes and sharding inside sharding still parse once consolidated."""
    store = zs.MemoryStore()
    store.create_group(GroupNode.root())
    deep = {}
    node = deep
    for _ in range(MAX_JSON_DEPTH - 30):
        node["d"] = {}
        node = node["d"]
    store.create_array(ArrayNode.of_path("/g/a"), shape=(16,), chunks=(16,), dtype="int8",
                       attributes={"deep": deep},
                       codecs=[ShardingIndexed((8,), codecs=[ShardingIndexed((4,),
                                                                             codecs=[Bytes()])])])
    store.consolidate_metadata()
    parsed = GroupMetadata.from_json(store.get("zarr.json"))
    assert parsed.consolidated["g/a"].attributes == {"deep": deep}
    assert [a.path for a in store.find_all_nodes()[0]] == ["/g/a"]


def test_a_copy_in_a_group_whose_parent_is_implicit():
    """Zarr v3 allows a group without a root zarr.json; creating below it makes
    the root, which is no entry of the group's copy."""
    store = zs.MemoryStore()
    store.set("g/zarr.json", json.dumps({"zarr_format": 3, "node_type": "group",
                                         "attributes": {}}).encode())
    store.consolidate_metadata(GroupNode.of_path("/g"))
    store.create_array(ArrayNode.of_path("/g/x/a"), shape=(3,), chunks=(3,), dtype="int8")
    copy = store.group_metadata(GroupNode.of_path("/g")).consolidated
    assert sorted(copy) == ["x", "x/a"]
    assert store.group_metadata(GroupNode.root()).consolidated is None
    assert store.find_child_nodes(GroupNode.of_path("/g/x")) == (
        [ArrayNode.of_path("/g/x/a")], [])


def interop_cells(name, params):
    """The cells of docs/interop.md each test checks (tests/interop_matrix.py)."""
    if name == "test_stale_copy_through_xarray":
        return [cell("xarray", 3, "zstd (default)", "float64", "write")]
    if name == "test_reads_zarr_python_consolidated_block":
        return [cell("zarr-python", 3, "zstd (consolidated)", "any", "read")]
    return []
