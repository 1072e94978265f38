"""FilesystemStore(follow_links=False): a symbolic link inside the root that leads
outside it is never read, listed, written, moved or deleted through.

Each test builds a folder ``outside`` next to the store root, links parts of it
into the store and checks that a confined store neither shows nor changes it,
while links whose targets stay inside the root keep working. The default store
(``follow_links=True``) follows every link, as zarr-python's LocalStore: one
test pins that too.
"""

import itertools
import os

import numpy as np
import pytest

import zarrsync as zs
from zarrsync import ArrayNode, GroupNode
from zarrsync.codecs import Bytes

from store_contract import StoreContract

ROOT = GroupNode.root()
ARR = ArrayNode.of_path("/grp/arr")
SECRET = np.arange(4, dtype="int32") + 1000


class TestConfinedFilesystemStore(StoreContract):
    """The whole store contract holds for a confined store."""

    @pytest.fixture
    def make_store(self, tmp_path):
        counter = itertools.count()
        return lambda: zs.FilesystemStore(tmp_path / f"s{next(counter)}.zarr",
                                          follow_links=False)

    @pytest.fixture
    def reopen_read_only(self):
        return lambda store: zs.FilesystemStore(store.path, mode="r", follow_links=False)

    def test_erase_prefix(self, store):
        # As TestFilesystemStore: a file system holds no key "a" next to "a/x".
        for k in ["a/x", "a/y/z", "ab/x", "b/a/x", "zarr.json", "c"]:
            store.set(k, b"v")
        store.erase_prefix("a/")
        assert store.list_prefix("") == ["ab/x", "b/a/x", "c", "zarr.json"]
        store.erase_prefix("b")
        assert store.list_prefix("") == ["ab/x", "c", "zarr.json"]
        store.erase_prefix("nothing/")
        assert store.list_prefix("") == ["ab/x", "c", "zarr.json"]


# ----------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------

def snapshot(root):
    """Every file, folder and link under ``root`` with its bytes or target."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                out[rel] = ("folder", None)
            else:
                with open(path, "rb") as f:
                    out[rel] = ("file", f.read())
    return out


@pytest.fixture
def outside(tmp_path):
    """A folder next to the store root holding a group, an array with one chunk
    and a loose file, none of which a confined store may show or change."""
    path = tmp_path / "outside"
    other = zs.FilesystemStore(path)
    other.create_group(ROOT, attrs={"secret": True})
    other.create_array(ARR, shape=(4,), chunks=(4,), dtype="int32", fill_value=-1,
                       codecs=[Bytes()], attributes={"secret": True})
    other.write_array(ARR, ..., SECRET)
    (path / "loose").write_bytes(b"SECRET")
    return path


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "store"
    store = zs.FilesystemStore(path)
    store.create_group(ROOT, attrs={"mine": True})
    return path


def confined(root, mode="a"):
    return zs.FilesystemStore(root, mode, follow_links=False)


def own_array(store, name="a"):
    """An array of the store with the outside array's layout (its chunks would fit)."""
    node = ArrayNode.of_path(f"/{name}")
    store.create_array(node, shape=(4,), chunks=(4,), dtype="int32", fill_value=-1,
                       codecs=[Bytes()])
    return node


# ----------------------------------------------------------------------------------
# The default follows links (pinned, so the contrast below means something)
# ----------------------------------------------------------------------------------

def test_the_default_store_follows_every_link(root, outside):
    os.symlink(outside / "grp", root / "grp")
    store = zs.FilesystemStore(root)
    assert store.follow_links is True
    np.testing.assert_array_equal(store.read_array(ARR), SECRET)
    assert "grp/arr/c/0" in store.list_prefix("")


# ----------------------------------------------------------------------------------
# Reading: links to outside are absent
# ----------------------------------------------------------------------------------

def test_folder_link_to_outside_is_absent(root, outside):
    os.symlink(outside / "grp", root / "grp")
    store = confined(root)
    assert store.follow_links is False
    assert store.get("grp/zarr.json") is None
    assert store.get("grp/arr/c/0") is None
    assert store.getsize("grp/arr/c/0") is None
    assert store.get_partial_values([("grp/arr/c/0", 0, None), ("zarr.json", 0, 1)]) == \
        [None, b"{"]
    assert store.get_many(["grp/arr/zarr.json"]) == [None]
    assert store.list_prefix("") == ["zarr.json"]
    assert store.list_prefix("grp/") == []
    assert store.list_prefix("g") == []
    assert store.list_dir("") == (["zarr.json"], [])
    assert store.list_dir("grp/") == ([], [])
    with pytest.raises(zs.KeyNotFound):
        store.group_metadata(GroupNode.of_path("/grp"))
    with pytest.raises(zs.KeyNotFound):
        store.array_metadata(ARR)
    with pytest.raises(zs.KeyNotFound):
        store.read_array(ARR)
    with pytest.raises(zs.KeyNotFound):
        zs.Array(store, ARR)
    assert not store.group_exists(GroupNode.of_path("/grp"))
    assert store.find_all_nodes() == ([], [ROOT])
    assert store.find_child_nodes(ROOT) == ([], [])


def test_linked_zarr_json_is_absent(root, outside):
    store = confined(root)
    node = own_array(store, "b")
    os.unlink(root / "zarr.json")
    os.symlink(outside / "zarr.json", root / "zarr.json")
    os.unlink(root / "b" / "zarr.json")
    os.symlink(outside / "grp" / "arr" / "zarr.json", root / "b" / "zarr.json")
    assert store.get("zarr.json") is None
    assert store.get("b/zarr.json") is None
    assert store.getsize("b/zarr.json") is None
    assert store.get_partial_values([("b/zarr.json", 0, 10)]) == [None]
    with pytest.raises(zs.KeyNotFound):
        store.group_metadata(ROOT)
    with pytest.raises(zs.KeyNotFound):
        store.array_metadata(node)
    with pytest.raises(zs.KeyNotFound):
        store.set_attributes(node, {"x": 1})
    assert store.list_prefix("") == []
    assert store.list_dir("") == ([], [])
    assert store.find_all_nodes() == ([], [])


def test_linked_chunk_file_is_absent(root, outside):
    store = confined(root)
    node = own_array(store)
    os.makedirs(root / "a" / "c")
    os.symlink(outside / "grp" / "arr" / "c" / "0", root / "a" / "c" / "0")
    # The default store would read the outside chunk as this array's data.
    np.testing.assert_array_equal(zs.FilesystemStore(root).read_array(node), SECRET)
    np.testing.assert_array_equal(store.read_array(node), np.full(4, -1, "int32"))
    assert store.get("a/c/0") is None
    assert store.getsize("a/c/0") is None
    assert store.get_partial_values([("a/c/0", 0, 4), ("a/c/0", -4, None)]) == [None, None]
    assert store.list_prefix("a/") == ["a/zarr.json"]
    assert store.list_dir("a/") == (["zarr.json"], [])
    assert store.find_all_nodes() == ([node], [ROOT])


def test_the_root_may_be_a_link(tmp_path, outside):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "alias")
    store = confined(tmp_path / "alias")
    assert store.path == str(tmp_path / "alias")
    node = own_array(store)
    store.write_array(node, ..., np.arange(4, dtype="int32"))
    assert sorted(os.listdir(real)) == ["a", "zarr.json"]
    np.testing.assert_array_equal(store.read_array(node), np.arange(4))
    assert store.list_prefix("") == ["a/c/0", "a/zarr.json", "zarr.json"]
    assert store.getsize("a/c/0") == 16
    store.erase_array_node(node)
    assert store.list_prefix("") == ["zarr.json"]
    # A link in the real root that leads outside is still refused.
    os.symlink(outside / "grp", real / "grp")
    with pytest.raises(zs.KeyNotFound):
        store.array_metadata(ARR)


def test_links_inside_the_root_work(root, outside):
    store = confined(root)
    node = own_array(store)
    store.write_array(node, ..., np.arange(4, dtype="int32"))
    store.create_group(GroupNode.of_path("/g"))
    twin = ArrayNode.of_path("/g/twin")
    store.create_array(twin, shape=(8,), chunks=(4,), dtype="int32", fill_value=-1,
                       codecs=[Bytes()])
    # A chunk linked to another chunk, by a relative link.
    os.makedirs(root / "g" / "twin" / "c")
    os.symlink(os.path.join("..", "..", "..", "a", "c", "0"), root / "g" / "twin" / "c" / "1")
    # A folder linked to a folder, through a path that leaves the root and comes back.
    os.symlink(os.path.join("..", "store", "g"), root / "alias")
    # A link to a link to a folder.
    os.symlink("alias", root / "alias2")
    expected = np.r_[np.full(4, -1), np.arange(4)].astype("int32")
    np.testing.assert_array_equal(store.read_array(twin), expected)
    np.testing.assert_array_equal(store.read_array(ArrayNode.of_path("/alias/twin")), expected)
    np.testing.assert_array_equal(store.read_array(ArrayNode.of_path("/alias2/twin")),
                                  expected)
    assert store.getsize("alias/twin/c/1") == 16
    assert store.get_partial_values([("alias2/twin/c/1", 4, 4)]) == [
        np.int32(1).tobytes()]
    assert store.list_prefix("alias/") == ["alias/twin/c/1", "alias/twin/zarr.json",
                                           "alias/zarr.json"]
    assert store.list_dir("") == (["zarr.json"], ["a", "alias", "alias2", "g"])
    arrays, groups = store.find_all_nodes()
    assert ArrayNode.of_path("/alias2/twin") in arrays
    # Writing through an inside link writes its target.
    store.set("alias/k", b"v")
    assert (root / "g" / "k").read_bytes() == b"v"


def test_link_cycles_are_listed_once(root):
    store = confined(root)
    store.set("g/h/k", b"v")
    os.symlink(".", root / "loop")
    os.symlink("..", root / "g" / "up")
    os.symlink(os.path.join("..", ".."), root / "g" / "h" / "top")
    assert store.list_prefix("") == ["g/h/k", "zarr.json"]
    assert store.list_dir("") == (["zarr.json"], ["g"])
    assert store.list_dir("g/") == ([], ["h"])
    assert store.find_all_nodes() == ([], [ROOT])
    # Reading through a cycle still resolves inside the root.
    assert store.get("loop/g/up/g/h/k") == b"v"


def test_dangling_links_and_special_files_hold_no_value(root):
    store = confined(root)
    os.symlink(root / "nowhere", root / "dangling")
    os.symlink("/nonexistent/zarrsync/target", root / "gone")
    os.mkfifo(root / "fifo")  # opening it for reading would wait for a writer
    for key in ("dangling", "gone", "fifo", "gone/x"):
        assert store.get(key) is None
        assert store.getsize(key) is None
        assert store.get_partial_values([(key, 0, None)]) == [None]
    assert store.list_prefix("") == ["zarr.json"]
    assert store.list_dir("") == (["zarr.json"], [])


# ----------------------------------------------------------------------------------
# Writing, erasing and moving: nothing outside changes
# ----------------------------------------------------------------------------------

def test_writes_never_go_through_an_outside_link(root, outside):
    before = snapshot(outside)
    os.symlink(outside / "grp", root / "grp")
    store = confined(root)
    with pytest.raises(zs.StoreError, match="'grp' is a symbolic link that leads outside"):
        store.set("grp/new", b"evil")
    with pytest.raises(zs.StoreError, match="leads outside"):
        store.set("grp/arr/c/0", b"evil")
    with pytest.raises(zs.StoreError, match="leads outside"):
        store.set_many(["grp/x/y"], [b"evil"])
    with pytest.raises(zs.StoreError, match="leads outside"):
        store.create_array(ArrayNode.of_path("/grp/other"), shape=(2,), chunks=(2,),
                           dtype="int8")
    # An array whose chunk folder is a link to outside: its writes are refused.
    node = own_array(store)
    os.symlink(outside / "grp" / "arr" / "c", root / "a" / "c")
    with pytest.raises(zs.StoreError, match="'a/c' is a symbolic link"):
        store.write_array(node, ..., np.zeros(4, "int32"))
    np.testing.assert_array_equal(store.read_array(node), np.full(4, -1))
    assert snapshot(outside) == before


def test_a_set_replaces_a_linked_file_never_its_target(root, outside):
    before = snapshot(outside)
    store = confined(root)
    node = own_array(store)
    os.makedirs(root / "a" / "c")
    os.symlink(outside / "grp" / "arr" / "c" / "0", root / "a" / "c" / "0")
    os.symlink(outside / "loose", root / "loose")
    store.write_array(node, ..., np.arange(4, dtype="int32"))
    store.set("loose", b"mine")
    assert not os.path.islink(root / "a" / "c" / "0")
    np.testing.assert_array_equal(store.read_array(node), np.arange(4))
    assert store.get("loose") == b"mine"
    assert snapshot(outside) == before


def test_erase_never_deletes_outside(root, outside):
    before = snapshot(outside)
    os.symlink(outside / "grp", root / "grp")
    os.symlink(outside / "loose", root / "loose")
    store = confined(root)
    store.erase("grp/zarr.json")
    store.erase("grp/arr/c/0")
    store.erase_prefix("grp/arr/")      # the old store renamed outside/grp/arr away
    store.erase_prefix("grp/arr/c/")
    store.erase_prefix("grp/a")
    store.set_many(["grp/arr/zarr.json"], [None])
    store.erase_array_node(ARR)
    assert snapshot(outside) == before
    assert os.path.islink(root / "grp")
    # Erasing the link itself removes the link, not what it leads to.
    store.erase_group_node(GroupNode.of_path("/grp"))
    assert not os.path.lexists(root / "grp")
    store.erase("loose")
    assert not os.path.lexists(root / "loose")
    os.symlink(outside / "grp", root / "grp")
    store.erase_prefix("")
    store.erase_all_nodes()
    assert os.listdir(root) == []
    assert snapshot(outside) == before


def test_move_never_moves_outside(root, outside):
    before = snapshot(outside)
    os.symlink(outside / "grp", root / "grp")
    store = confined(root)
    store.move_prefix("grp/arr/", "moved/")  # the old store moved outside/grp/arr in
    store.move_prefix("grp/arr/c/", "g2/c/")
    store.move_prefix("grp/arr/c/0", "k")
    assert not os.path.lexists(root / "moved")
    assert not os.path.lexists(root / "g2")
    with pytest.raises(zs.KeyNotFound):
        store.rename_array(ARR, "taken")
    with pytest.raises(zs.KeyNotFound):
        store.rename_group(GroupNode.of_path("/grp"), "taken")
    store.set("mine/k", b"v")
    with pytest.raises(zs.StoreError, match="'grp' is a symbolic link that leads outside"):
        store.move_prefix("mine/", "grp/mine/")
    assert snapshot(outside) == before
    assert store.list_prefix("") == ["mine/k", "zarr.json"]


def test_a_folder_swapped_for_a_link_during_the_walk_is_not_followed(root, outside,
                                                                     monkeypatch):
    """Forced race: just before the store opens folder "grp" (checked to be a real
    folder an instant earlier by the caller's own listing), another process replaces
    it with a link to outside. The open refuses to follow it and the link is checked:
    the outside data stays invisible and unchanged."""
    store = confined(root)
    store.set("grp/zarr.json", b'{"zarr_format": 3, "node_type": "group"}')
    assert store.list_dir("") == (["zarr.json"], ["grp"])
    before = snapshot(outside)
    real_open = os.open
    swapped = []

    def open_(path, flags, mode=0o777, *, dir_fd=None):
        if path == "grp" and dir_fd is not None and not swapped:
            swapped.append(path)
            os.rename(root / "grp", root / "grp-old")
            os.symlink(outside / "grp", root / "grp")
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", open_)
    assert store.get("grp/arr/zarr.json") is None
    monkeypatch.undo()
    assert swapped
    assert store.list_prefix("grp/") == []
    assert snapshot(outside) == before


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "a//b", "a\\b", ".."])
def test_keys_that_leave_the_root_are_still_refused(root, key):
    store = confined(root)
    for op in (lambda: store.set(key, b"evil"), lambda: store.get(key),
               lambda: store.erase(key), lambda: store.getsize(key)):
        with pytest.raises(zs.StoreError, match="invalid key"):
            op()
