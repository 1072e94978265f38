"""GroupNode / ArrayNode: name rules, paths, keys, ancestry, immutability, hashing."""

import copy
import pickle

import pytest

import zarrsync as zs
from zarrsync import ArrayNode, GroupNode, NodeInvariant
from zarrsync.nodes import validate_name

ROOT = GroupNode.root()

BAD_NAMES = ["", "a/b", "/", ".", "..", "__", "__x", "__zarr", "x/"]
GOOD_NAMES = ["a", "temp", "_x", "x__", "x__y", "...", ".a", "a.b", "a b", "é", "0", "-",
              "c", "zarr.json"]


def test_reexported_at_top_level():
    from zarrsync import nodes
    assert nodes.GroupNode is GroupNode
    assert nodes.ArrayNode is ArrayNode


# -- the root -------------------------------------------------------------------------

def test_root():
    assert ROOT.path == "/"
    assert ROOT.name == ""
    assert ROOT.parent is None
    assert ROOT.key == ""
    assert ROOT.metadata_key == "zarr.json"
    assert ROOT.ancestors() == []
    assert ROOT.is_root()
    assert GroupNode.of_path("/") == ROOT
    assert str(ROOT) == "/"


def test_root_is_not_its_own_parent():
    assert not ROOT.is_parent(ROOT)


# -- construction -------------------------------------------------------------------

def test_group_create_and_truediv():
    g = GroupNode.create(ROOT, "group")
    assert g == ROOT / "group"
    assert g.path == "/group"
    assert g.name == "group"
    assert g.parent == ROOT
    assert not g.is_root()
    gg = g / "sub"
    assert gg.path == "/group/sub"
    assert gg.parent == g
    assert gg == GroupNode.of_path("/group/sub")


def test_array_create():
    g = GroupNode.create(ROOT, "group")
    a = ArrayNode.create(g, "temp")
    assert a == ArrayNode(g, "temp")
    assert a == ArrayNode.of_path("/group/temp")
    assert a.path == "/group/temp"
    assert a.name == "temp"
    assert a.parent == g
    assert a.key == "group/temp"
    assert a.metadata_key == "group/temp/zarr.json"


def test_array_at_top_level():
    a = ArrayNode(ROOT, "x")
    assert a.path == "/x"
    assert a.key == "x"
    assert a.metadata_key == "x/zarr.json"
    assert a.parent == ROOT
    assert a.ancestors() == [ROOT]


def test_keys_and_metadata_keys():
    g = GroupNode.of_path("/a/b/c")
    assert g.key == "a/b/c"
    assert g.metadata_key == "a/b/c/zarr.json"
    assert not g.key.startswith("/")
    assert GroupNode.of_path("/a").metadata_key == "a/zarr.json"


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(name):
    g = GroupNode.create(ROOT, name)
    a = ArrayNode(g, name)
    assert g.name == name
    assert a.name == name
    assert a.path == f"/{name}/{name}"
    assert ArrayNode.of_path(a.path) == a
    assert validate_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names(name):
    with pytest.raises(NodeInvariant):
        GroupNode.create(ROOT, name)
    with pytest.raises(NodeInvariant):
        ROOT / name
    with pytest.raises(NodeInvariant):
        ArrayNode(ROOT, name)
    with pytest.raises(NodeInvariant):
        ArrayNode.create(ROOT, name)
    with pytest.raises(NodeInvariant):
        validate_name(name)


@pytest.mark.parametrize("name", [None, 3, b"abc", ["a"]])
def test_non_string_names(name):
    with pytest.raises(NodeInvariant):
        GroupNode.create(ROOT, name)
    with pytest.raises(NodeInvariant):
        ArrayNode(ROOT, name)


@pytest.mark.parametrize("path", ["", "a", "a/b", "//", "/a/", "/a//b", "/a/./b",
                                  "/a/../b", "/__x", "/a/__b", "/.", "/..", "a/", None, 5])
def test_bad_paths(path):
    with pytest.raises(NodeInvariant):
        GroupNode.of_path(path)
    with pytest.raises(NodeInvariant):
        ArrayNode.of_path(path)


def test_root_array():
    r = ArrayNode.root()
    assert r == ArrayNode.of_path("/") == ArrayNode(())
    assert type(ArrayNode.of_path("/")) is ArrayNode
    assert r.path == "/"
    assert r.name == ""
    assert r.key == ""
    assert r.metadata_key == "zarr.json"
    assert r.parent is None
    assert r.ancestors() == []
    assert r.is_root()
    assert not ArrayNode.of_path("/a").is_root()
    assert not r.is_parent(ROOT)
    assert str(r) == "/"


def test_root_array_is_not_the_root_group():
    r = ArrayNode.root()
    assert r != ROOT and ROOT != r
    assert len({r, ROOT, ArrayNode.of_path("/"), GroupNode.of_path("/")}) == 2
    assert hash(r) == hash(ArrayNode.of_path("/"))
    # A total order that agrees with ==: exactly one of the two roots sorts first.
    assert (r < ROOT) != (ROOT < r)
    assert not r < ArrayNode.root()
    assert sorted([ArrayNode.of_path("/a"), ROOT, r]) == sorted([r, ArrayNode.of_path("/a"), ROOT])
    assert sorted([ArrayNode.of_path("/a"), r])[0] == r


def test_parent_must_be_a_group():
    a = ArrayNode.of_path("/a")
    with pytest.raises(NodeInvariant):
        ArrayNode(a, "x")
    with pytest.raises(NodeInvariant):
        GroupNode.create(a, "x")
    with pytest.raises(NodeInvariant):
        GroupNode.create("/", "x")
    with pytest.raises(NodeInvariant):
        ArrayNode("/", "x")


def test_node_invariant_is_a_value_error():
    with pytest.raises(ValueError):
        GroupNode.of_path("no-slash")
    assert issubclass(NodeInvariant, zs.ZarrSyncError)


# -- ancestry -------------------------------------------------------------------------

def test_ancestors():
    a = ArrayNode.of_path("/x/y/z/arr")
    assert a.ancestors() == [ROOT, GroupNode.of_path("/x"), GroupNode.of_path("/x/y"),
                             GroupNode.of_path("/x/y/z")]
    assert all(isinstance(n, GroupNode) for n in a.ancestors())
    g = GroupNode.of_path("/x/y")
    assert g.ancestors() == [ROOT, GroupNode.of_path("/x")]
    assert GroupNode.of_path("/x").ancestors() == [ROOT]


def test_parent_chain_matches_ancestors():
    node = ArrayNode.of_path("/a/b/c/d")
    chain = []
    p = node.parent
    while p is not None:
        chain.append(p)
        p = p.parent
    assert chain[::-1] == node.ancestors()


def test_is_parent():
    g = GroupNode.of_path("/group")
    a = ArrayNode(g, "temp")
    assert a.is_parent(g)
    assert not a.is_parent(ROOT)                      # a grandparent is not the parent
    assert not a.is_parent(GroupNode.of_path("/other"))
    assert g.is_parent(ROOT)
    assert (g / "sub").is_parent(g)
    assert not g.is_parent(g)
    assert not a.is_parent(ArrayNode.of_path("/group"))   # only groups are parents
    assert not a.is_parent("/group")


# -- equality, hashing, immutability ----------------------------------------------------

def test_equality_by_path_and_kind():
    assert GroupNode.of_path("/a/b") == GroupNode.create(GroupNode.of_path("/a"), "b")
    assert ArrayNode.of_path("/a/b") == ArrayNode(GroupNode.of_path("/a"), "b")
    assert GroupNode.of_path("/a") != GroupNode.of_path("/b")
    # An array and a group at the same path are different nodes.
    assert ArrayNode.of_path("/a") != GroupNode.of_path("/a")
    assert ArrayNode.of_path("/a") != "/a"


def test_hashing():
    nodes = {GroupNode.of_path("/a"), GroupNode.create(ROOT, "a"), ArrayNode.of_path("/a"),
             ArrayNode(ROOT, "a"), ROOT, GroupNode.root()}
    assert len(nodes) == 3
    d = {ArrayNode.of_path("/g/x"): 1}
    assert d[ArrayNode(GroupNode.of_path("/g"), "x")] == 1
    assert hash(GroupNode.of_path("/a/b")) == hash(GroupNode.of_path("/a") / "b")


def test_immutable():
    g = GroupNode.of_path("/a")
    a = ArrayNode.of_path("/a/b")
    for node in (g, a, ROOT, ArrayNode.root()):
        with pytest.raises(AttributeError):
            node.path = "/other"
        with pytest.raises(AttributeError):
            node.name = "x"
        with pytest.raises(AttributeError):
            node.anything = 1
    assert g.path == "/a"
    assert a.path == "/a/b"


def test_ordering_and_sorting():
    nodes = [GroupNode.of_path(p) for p in ["/b", "/a/c", "/a", "/"]]
    assert [n.path for n in sorted(nodes)] == ["/", "/a", "/a/c", "/b"]


def test_pickle_and_copy():
    for node in (ROOT, ArrayNode.root(), GroupNode.of_path("/a/b"), ArrayNode.of_path("/a/b/c")):
        for clone in (pickle.loads(pickle.dumps(node)), copy.copy(node), copy.deepcopy(node)):
            assert clone == node
            assert type(clone) is type(node)
            assert hash(clone) == hash(node)


def test_repr_round_trips():
    for node in (ROOT, ArrayNode.root(), GroupNode.of_path("/a"), ArrayNode.of_path("/a/b")):
        assert eval(repr(node), {"GroupNode": GroupNode, "ArrayNode": ArrayNode}) == node
        assert str(node) == node.path


def test_long_paths():
    names = [f"n{i}" for i in range(50)]
    path = "/" + "/".join(names)
    a = ArrayNode.of_path(path)
    assert a.key == path[1:]
    assert len(a.ancestors()) == 50
    assert a.ancestors()[-1].path == "/" + "/".join(names[:-1])
