"""FilesystemStore: the store contract, its file layout, atomic writes, safety of keys,
and concurrent writers (threads and processes).

The SIGKILL crash test is in ``test_crash.py``.
"""

import errno
import itertools
import json
import multiprocessing
import os
import re
import sys
import threading

import numpy as np
import pytest

import zarrsync as zs
from zarrsync import ArrayNode, GroupNode
from zarrsync.codecs import Bytes, Crc32c, Zstd

from store_contract import StoreContract

TMP_SUFFIX = ".zarrsync-tmp"


class TestFilesystemStore(StoreContract):
    @pytest.fixture
    def make_store(self, tmp_path):
        counter = itertools.count()
        return lambda: zs.FilesystemStore(tmp_path / f"s{next(counter)}.zarr")

    @pytest.fixture
    def reopen_read_only(self):
        return lambda store: zs.FilesystemStore(store.path, mode="r")

    def test_erase_prefix(self, store):
        # The contract's version also sets key "a" next to "a/x": a file and a
        # folder of one name, which no file system holds (see
        # test_key_and_folder_of_one_name). The same checks without that key:
        for k in ["a/x", "a/y/z", "ab/x", "b/a/x", "zarr.json", "c"]:
            store.set(k, b"v")
        store.erase_prefix("a/")
        assert store.list_prefix("") == ["ab/x", "b/a/x", "c", "zarr.json"]
        store.erase_prefix("b/")
        assert store.list_prefix("") == ["ab/x", "c", "zarr.json"]
        store.erase_prefix("nothing/")
        assert store.list_prefix("") == ["ab/x", "c", "zarr.json"]


def files_under(root):
    """Every file under ``root`` as a "/"-separated relative path (temporary ones too)."""
    out = []
    for folder, _, names in os.walk(root):
        for name in names:
            out.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    return sorted(out)


def folders_under(root):
    return sorted(os.path.relpath(os.path.join(folder, d), root)
                  for folder, dirs, _ in os.walk(root) for d in dirs)


# ----------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------

def test_root_folder_is_created(tmp_path):
    root = tmp_path / "a" / "b" / "data.zarr"
    store = zs.FilesystemStore(root)
    assert root.is_dir()
    assert store.path == str(root)
    assert os.listdir(root) == []  # opening writes nothing
    zs.FilesystemStore(str(root))  # str works, and an existing folder is fine


def test_root_that_is_a_file_is_rejected(tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"x")
    with pytest.raises(zs.StoreError, match="not a folder"):
        zs.FilesystemStore(f)


def test_each_key_is_a_file(tmp_path):
    store = zs.FilesystemStore(tmp_path)
    node = ArrayNode.of_path("/g/arr")
    store.create_array(node, shape=(4, 4), chunks=(2, 2), dtype="uint8",
                       codecs=[Bytes()], attributes={"ü": "é"})
    store.write_array(node, (slice(0, 2), slice(2, 4)), np.full((2, 2), 7, "uint8"))
    assert files_under(tmp_path) == ["g/arr/c/0/1", "g/arr/zarr.json", "g/zarr.json",
                                     "zarr.json"]
    assert (tmp_path / "g/arr/c/0/1").read_bytes() == bytes([7] * 4)
    doc = json.loads((tmp_path / "g/arr/zarr.json").read_text("utf-8"))
    assert doc["attributes"] == {"ü": "é"}
    assert store.get("g/arr/zarr.json") == (tmp_path / "g/arr/zarr.json").read_bytes()


def test_existing_folder_opens_as_it_is(tmp_path):
    (tmp_path / "grp" / "arr" / "c").mkdir(parents=True)
    (tmp_path / "zarr.json").write_text(
        '{"zarr_format": 3, "node_type": "group", "attributes": {"made": "by hand"}}')
    (tmp_path / "grp" / "zarr.json").write_text(
        '{"zarr_format": 3, "node_type": "group"}')
    doc = {"zarr_format": 3, "node_type": "array", "shape": [3], "data_type": "int16",
           "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}},
           "chunk_key_encoding": {"name": "default"}, "fill_value": -1,
           "codecs": [{"name": "bytes", "configuration": {"endian": "big"}}]}
    (tmp_path / "grp" / "arr" / "zarr.json").write_text(json.dumps(doc))
    (tmp_path / "grp" / "arr" / "c" / "0").write_bytes(b"\x00\x05\x01\x00")
    before = {p: (tmp_path / p).read_bytes() for p in files_under(tmp_path)}
    store = zs.FilesystemStore(tmp_path)
    assert store.group_metadata(GroupNode.root()).attributes == {"made": "by hand"}
    np.testing.assert_array_equal(store.read_array(ArrayNode.of_path("/grp/arr")),
                                  [5, 256, -1])
    arrays, groups = store.find_all_nodes()
    assert arrays == [ArrayNode.of_path("/grp/arr")]
    assert groups == [GroupNode.root(), GroupNode.of_path("/grp")]
    assert {p: (tmp_path / p).read_bytes() for p in files_under(tmp_path)} == before


def test_file_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        store = zs.FilesystemStore(tmp_path)
        store.set("k", b"v")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "k").st_mode & 0o777) == 0o644


# ----------------------------------------------------------------------------------
# Keys that could escape the root, and other bad keys
# ----------------------------------------------------------------------------------

BAD_KEYS = ["../x", "a/../../x", "..", ".", "a/./b", "/etc/passwd", "/abs", "a//b", "a/",
            "", "a\\b", "..\\x", "a\x00b", "c/." + "x" + TMP_SUFFIX]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_bad_keys_are_rejected(tmp_path, key):
    root = tmp_path / "store"
    store = zs.FilesystemStore(root)
    (tmp_path / "x").write_bytes(b"outside")
    for op in (lambda: store.set(key, b"evil"), lambda: store.get(key),
               lambda: store.erase(key), lambda: store.getsize(key),
               lambda: store.get_partial_values([(key, 0, None)])):
        with pytest.raises(zs.StoreError, match="invalid key"):
            op()
    assert (tmp_path / "x").read_bytes() == b"outside"
    assert files_under(root) == []


@pytest.mark.parametrize("prefix", ["../", "a/../../", "/", "/etc/", "..\\", "a//"], ids=repr)
def test_bad_prefixes_are_rejected(tmp_path, prefix):
    root = tmp_path / "store"
    store = zs.FilesystemStore(root)
    (tmp_path / "keep").write_bytes(b"outside")
    store.set("a/k", b"v")
    for op in (lambda: store.erase_prefix(prefix), lambda: store.list_prefix(prefix),
               lambda: store.list_dir(prefix)):
        with pytest.raises(zs.StoreError, match="invalid prefix"):
            op()
    assert (tmp_path / "keep").read_bytes() == b"outside"
    assert store.list_prefix("") == ["a/k"]


def test_non_str_key_is_a_type_error(tmp_path):
    store = zs.FilesystemStore(tmp_path)
    with pytest.raises(TypeError):
        store.set(b"k", b"v")


def test_symlink_escape_is_not_followed_by_erase(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"keep")
    root = tmp_path / "store"
    store = zs.FilesystemStore(root)
    os.symlink(outside, root / "link")
    store.erase_prefix("link/")
    store.erase_prefix("")
    assert (outside / "precious").read_bytes() == b"keep"
    assert os.listdir(root) == []


def test_key_and_folder_of_one_name(tmp_path):
    """A file system cannot hold key "a" and key "a/b" at once: a clear StoreError."""
    store = zs.FilesystemStore(tmp_path)
    store.set("a/b", b"1")
    with pytest.raises(zs.StoreError, match="prefix"):
        store.set("a", b"2")
    store.set("f", b"3")
    with pytest.raises(zs.StoreError, match="prefix"):
        store.set("f/g", b"4")
    assert store.list_prefix("") == ["a/b", "f"]
    assert store.get("a") is None          # a folder is no value
    assert store.getsize("a") is None
    assert store.get("f/g") is None
    assert store.get_partial_values([("a", 0, 1), ("f/g", 0, 1)]) == [None, None]
    store.erase("a")                       # erasing a folder as a key does nothing
    assert store.get("a/b") == b"1"
    assert not any(_is_tmp(n) for n in files_under(tmp_path))


def _is_tmp(name):
    return name.rsplit("/", 1)[-1].startswith(".") and name.endswith(TMP_SUFFIX)


# ----------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------

def test_failed_write_keeps_the_old_value(tmp_path, monkeypatch):
    store = zs.FilesystemStore(tmp_path)
    store.set("g/k", b"old value")
    real_write = os.write
    calls = []

    def failing_write(fd, data):
        calls.append(len(data))
        real_write(fd, bytes(data)[:3])  # a torn first part...
        raise OSError(28, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(zs.StoreError, match="No space left"):
        store.set("g/k", b"new value that does not fit")
    monkeypatch.undo()
    assert calls
    assert store.get("g/k") == b"old value"
    assert files_under(tmp_path) == ["g/k"]  # the temporary file is gone


def test_interrupted_write_keeps_the_old_value(tmp_path, monkeypatch):
    store = zs.FilesystemStore(tmp_path)
    node = ArrayNode.of_path("/arr")
    store.create_array(node, shape=(4,), chunks=(4,), dtype="int32",
                       codecs=[Bytes(), Crc32c()])
    store.write_array(node, ..., np.arange(4, dtype="int32"))
    meta_before = store.get("arr/zarr.json")

    def interrupt(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        store.write_array(node, ..., np.full(4, 9, dtype="int32"))
    with pytest.raises(KeyboardInterrupt):
        store.set_attributes(node, {"new": 1})
    monkeypatch.undo()
    np.testing.assert_array_equal(store.read_array(node), np.arange(4))
    assert store.get("arr/zarr.json") == meta_before
    assert files_under(tmp_path) == ["arr/c/0", "arr/zarr.json", "zarr.json"]


def test_temporary_files_are_not_keys(tmp_path):
    """A temporary file a killed writer left behind is skipped by listing and erased with
    its prefix."""
    store = zs.FilesystemStore(tmp_path)
    store.set("g/a/zarr.json", b"{}")
    (tmp_path / "g" / "a" / (".c" + ".0123456789abcdef" + TMP_SUFFIX)).write_bytes(b"torn")
    (tmp_path / "g" / ("." + "x" * 5 + TMP_SUFFIX)).mkdir()
    (tmp_path / "g" / ("." + "x" * 5 + TMP_SUFFIX) / "chunk").write_bytes(b"half-erased")
    assert store.list_prefix("") == ["g/a/zarr.json"]
    assert store.list_prefix("g/a/.") == []
    assert store.list_dir("g/") == ([], ["a"])
    assert store.list_dir("g/a/") == (["zarr.json"], [])
    store.erase_prefix("g/")
    assert files_under(tmp_path) == []


def test_hidden_files_of_other_tools_are_keys(tmp_path):
    (tmp_path / ".zattrs").write_bytes(b"{}")
    (tmp_path / ".tmp").write_bytes(b"x")
    store = zs.FilesystemStore(tmp_path)
    assert store.list_prefix("") == [".tmp", ".zattrs"]
    assert store.get(".zattrs") == b"{}"


def test_fsync_mode(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    store = zs.FilesystemStore(tmp_path, fsync=True)
    store.set("a/b", b"durable")
    assert store.get("a/b") == b"durable"
    assert len(synced) == 2  # the file, then its folder
    zs.FilesystemStore(tmp_path).set("a/c", b"fast")
    assert len(synced) == 2


# ----------------------------------------------------------------------------------
# Byte ranges, sizes, listing and erasing on folders
# ----------------------------------------------------------------------------------

def test_partial_reads_read_only_the_range(tmp_path, monkeypatch):
    store = zs.FilesystemStore(tmp_path)
    value = bytes(range(256)) * 4096  # 1 MiB
    store.set("big", value)
    reads = []
    real_pread = os.pread

    def counting_pread(fd, n, offset):
        reads.append(n)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    got = store.get_partial_values([("big", 1000, 16), ("big", -8, None),
                                    ("big", len(value) - 4, 100), ("missing", 0, 4)])
    assert got == [value[1000:1016], value[-8:], value[-4:], None]
    assert sum(reads) == 16 + 8 + 4


def test_getsize(tmp_path):
    store = zs.FilesystemStore(tmp_path)
    store.set("a/b", b"12345")
    store.set("e", b"")
    assert store.getsize("a/b") == 5
    assert store.getsize("e") == 0
    assert store.getsize("a") is None
    assert store.getsize("nope") is None
    assert store.getsize("e/x") is None


def test_erase_removes_empty_folders(tmp_path):
    store = zs.FilesystemStore(tmp_path)
    store.set("g/a/c/0/0", b"1")
    store.set("g/a/c/0/1", b"2")
    store.set("g/zarr.json", b"{}")
    store.erase("g/a/c/0/0")
    assert folders_under(tmp_path) == ["g", "g/a", "g/a/c", "g/a/c/0"]
    store.erase("g/a/c/0/1")
    assert folders_under(tmp_path) == ["g"]
    store.erase_prefix("g/")
    assert folders_under(tmp_path) == []
    assert os.path.isdir(tmp_path)


def test_empty_folders_are_not_listed(tmp_path):
    """Folders without any key (left by another tool or a crash) are no prefixes."""
    store = zs.FilesystemStore(tmp_path)
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    (tmp_path / "g" / "gone").mkdir(parents=True)
    (tmp_path / "g" / "zarr.json").write_bytes(
        b'{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    (tmp_path / "zarr.json").write_bytes(
        b'{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    assert store.list_dir("") == (["zarr.json"], ["g"])
    assert store.list_dir("g/") == (["zarr.json"], [])
    assert store.find_child_nodes(GroupNode.root()) == ([], [GroupNode.of_path("/g")])
    assert store.find_all_nodes()[1] == [GroupNode.root(), GroupNode.of_path("/g")]


def test_list_prefix_is_a_string_prefix(tmp_path):
    store = zs.FilesystemStore(tmp_path)
    for k in ["arr/c/0", "arr/c/1", "arr/zarr.json", "arr2/zarr.json", "ar", "b/arr/x"]:
        store.set(k, b"v")
    assert store.list_prefix("ar") == ["ar", "arr/c/0", "arr/c/1", "arr/zarr.json",
                                       "arr2/zarr.json"]
    assert store.list_prefix("arr/c") == ["arr/c/0", "arr/c/1"]
    assert store.list_prefix("arr/c/1") == ["arr/c/1"]
    assert store.list_dir("arr") == (["zarr.json"], ["c"])  # "/" is added


def test_erase_prefix_string_prefix(tmp_path):
    store = zs.FilesystemStore(tmp_path)
    for k in ["arr/c/0", "arr/c.1", "arr/cx/0", "arr/zarr.json", "other/c/0"]:
        store.set(k, b"v")
    store.erase_prefix("arr/c")
    assert store.list_prefix("") == ["arr/zarr.json", "other/c/0"]
    store.erase_prefix("o")
    assert store.list_prefix("") == ["arr/zarr.json"]
    assert folders_under(tmp_path) == ["arr"]


def test_move_prefix_renames_the_folder(tmp_path, monkeypatch):
    store = zs.FilesystemStore(tmp_path)
    node = ArrayNode.of_path("/g/arr")
    store.create_array(node, shape=(6,), chunks=(2,), dtype="int16")
    store.write_array(node, ..., np.arange(6, dtype="int16"))
    inode = os.stat(tmp_path / "g" / "arr" / "c" / "1").st_ino
    monkeypatch.setattr(zs.FilesystemStore, "set", None)  # no copying allowed
    new = store.rename_array(node, "moved")
    monkeypatch.undo()
    assert os.stat(tmp_path / "g" / "moved" / "c" / "1").st_ino == inode
    np.testing.assert_array_equal(store.read_array(new), np.arange(6))
    assert not (tmp_path / "g" / "arr").exists()
    # Into a new parent folder, and of a whole group.
    store.rename_group(GroupNode.of_path("/g"), "h")
    np.testing.assert_array_equal(store.read_array(ArrayNode.of_path("/h/moved")),
                                  np.arange(6))
    assert folders_under(tmp_path) == ["h", "h/moved", "h/moved/c"]


def test_move_prefix_onto_leftover_keys(tmp_path):
    """A target folder that already holds (stale) keys: moved key by key."""
    store = zs.FilesystemStore(tmp_path)
    store.set("a/k1", b"1")
    store.set("a/sub/k2", b"2")
    store.set("b/stale", b"s")
    store.move_prefix("a/", "b/")
    assert store.list_prefix("") == ["b/k1", "b/stale", "b/sub/k2"]
    assert store.get("b/sub/k2") == b"2"
    with pytest.raises(zs.StoreError, match="into itself"):
        store.move_prefix("b/", "b/sub/x/")


def test_erase_of_a_folder_is_atomic_for_listing(tmp_path):
    """erase_prefix renames the folder away first: a lister sees all keys or none."""
    store = zs.FilesystemStore(tmp_path)
    for i in range(400):
        store.set(f"arr/c/{i}", b"v")
    store.set("zarr.json", b"{}")
    seen = []
    done = threading.Event()

    def lister():
        while not done.is_set():
            seen.append(len(store.list_prefix("arr/")))

    t = threading.Thread(target=lister)
    t.start()
    try:
        store.erase_prefix("arr/")
    finally:
        done.set()
        t.join()
    assert set(seen) <= {0, 400}
    assert store.list_prefix("") == ["zarr.json"]


# ----------------------------------------------------------------------------------
# Concurrency: threads
# ----------------------------------------------------------------------------------

N_THREADS = 8


def run_threads(target, n):
    barrier = threading.Barrier(n)
    errors = []

    def body(t):
        try:
            barrier.wait()
            target(t)
        except BaseException as e:  # re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=body, args=(t,)) for t in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.fixture
def frequent_thread_switches():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_threads_write_unaligned_tiles(tmp_path):
    store = zs.FilesystemStore(tmp_path)
    node = ArrayNode.of_path("/g/arr")
    shape = (40, 42)
    store.create_array(node, shape=shape, chunks=(7, 9), dtype="int32", fill_value=-1,
                       codecs=[Bytes(), Zstd(1), Crc32c()])
    expected = np.arange(np.prod(shape), dtype="int32").reshape(shape)
    tiles = [(slice(r, r + 5), slice(c, c + 6)) for r in range(0, 40, 5)
             for c in range(0, 42, 6)]
    np.random.default_rng(0).shuffle(tiles)

    def work(t):
        for sel in tiles[t::N_THREADS]:
            store.write_array(node, sel, expected[sel])

    run_threads(work, N_THREADS)
    np.testing.assert_array_equal(store.read_array(node), expected)
    np.testing.assert_array_equal(zs.FilesystemStore(tmp_path).read_array(node), expected)
    assert not any(_is_tmp(f) for f in files_under(tmp_path))


@pytest.mark.usefixtures("frequent_thread_switches")
def test_threads_create_erase_and_list(tmp_path):
    store = zs.FilesystemStore(tmp_path)
    store.create_group(GroupNode.root())
    rounds = 10
    n_workers = N_THREADS // 2

    def work(t):
        if t >= n_workers:
            for _ in range(rounds * 2):
                arrays, groups = store.find_all_nodes()
                assert GroupNode.root() in groups
                store.list_dir("")
            return
        g = GroupNode.of_path(f"/w{t}")
        for k in range(rounds):
            a = ArrayNode(g, f"a{k}")
            store.create_array(a, shape=(6,), chunks=(2,), dtype="int16")
            store.write_array(a, ..., np.full(6, k + 1, dtype="int16"))
            if k % 2:
                store.erase_array_node(a)

    run_threads(work, N_THREADS)
    arrays, _ = store.find_all_nodes()
    assert arrays == sorted(ArrayNode.of_path(f"/w{t}/a{k}")
                            for t in range(n_workers) for k in range(0, rounds, 2))
    for a in arrays:
        k = int(a.name[1:])
        np.testing.assert_array_equal(store.read_array(a), np.full(6, k + 1))


@pytest.mark.parametrize("in_place", [False, True], ids=["renamed", "in-place"])
def test_a_set_into_the_folder_being_erased_never_fails_the_erase(tmp_path, monkeypatch,
                                                                  in_place):
    """The race of test_set_races_erase_of_its_folder, forced: a key is written into
    the folder being erased after rmtree emptied it, just before it removes the folder.

    ``renamed``: the folder was moved into a new hidden folder first; the writer's path
    lookup had passed the folder before the rename, so its file lands in the renamed
    folder (the writer here is a store rooted there: the same calls on the same
    folder). ``in-place``: the rename fails with EXDEV (another file system mounted
    there), the folder is deleted where it is and the writer's ``set`` re-creates it.
    """
    store = zs.FilesystemStore(tmp_path)
    for k in range(3):
        store.set(f"shared/t0/k{k}", b"old")
    folder = os.path.join(store.path, "shared")
    real_rename, real_rmdir = os.rename, os.rmdir
    renamed_to = []
    emptied, written = threading.Event(), threading.Event()

    def rename(src, dst, **kwargs):
        if src == folder:
            if in_place:
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), src, dst)
            renamed_to.append(dst)
        return real_rename(src, dst, **kwargs)

    def rmdir(path, *, dir_fd=None):
        # rmtree's last call: the folder it deletes, now empty. Let the writer in first.
        erased = renamed_to[0] if renamed_to else folder
        if dir_fd is None and path == erased and not emptied.is_set():
            emptied.set()
            assert written.wait(10)
        return real_rmdir(path, dir_fd=dir_fd)

    def writer():
        assert emptied.wait(10)
        if in_place:
            store.set("shared/t1/k0", b"new")
        else:
            zs.FilesystemStore(renamed_to[0]).set("t1/k0", b"new")
        written.set()

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "rmdir", rmdir)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        store.erase_prefix("shared/")
    finally:
        emptied.set()  # the writer never waits forever, whatever happened
        thread.join(10)
    monkeypatch.undo()
    assert written.is_set()
    if in_place:
        # The new value was written after the old ones were removed: it stays.
        assert store.list_prefix("") == ["shared/t1/k0"]
        assert store.get("shared/t1/k0") == b"new"
    else:
        # Written into the old folder: erased with it, and nothing hidden is left.
        assert store.list_prefix("") == []
    assert not any(_is_tmp(f) for f in files_under(tmp_path))
    assert not any(_is_tmp(f) for f in folders_under(tmp_path))


@pytest.mark.parametrize("follow_links", [True, False], ids=["links", "confined"])
def test_a_failed_erase_keeps_the_folder_and_leaves_nothing_hidden(tmp_path, monkeypatch,
                                                                   follow_links):
    store = zs.FilesystemStore(tmp_path, follow_links=follow_links)
    store.set("grp/arr/c/0", b"chunk")
    real_rename = os.rename

    def refused_rename(src, dst, **kwargs):
        if os.path.basename(src) == "arr":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), src)
        return real_rename(src, dst, **kwargs)

    monkeypatch.setattr(os, "rename", refused_rename)
    with pytest.raises(zs.errors.StoreError, match="cannot erase prefix 'grp/arr/'"):
        store.erase_prefix("grp/arr/")
    monkeypatch.undo()
    assert store.get("grp/arr/c/0") == b"chunk"
    assert sorted(os.listdir(tmp_path)) == ["grp"]


@pytest.mark.usefixtures("frequent_thread_switches")
def test_set_races_erase_of_its_folder(tmp_path):
    """A write into a folder being erased lands whole or not at all; never an error.
    Left to timing: many quick rounds of one eraser against three writers."""
    store = zs.FilesystemStore(tmp_path)

    def work(t):
        for k in range(1000):
            if t == 0:
                store.erase_prefix("shared/")
            else:
                store.set(f"shared/t{t}/k{k % 5}", bytes([t]) * 64)

    run_threads(work, 4)
    for key in store.list_prefix(""):
        value = store.get(key)
        t = int(key.split("/")[1][1:])
        assert value == bytes([t]) * 64
    assert not any(_is_tmp(f) for f in files_under(tmp_path))
    assert not any(_is_tmp(f) for f in folders_under(tmp_path))


# ----------------------------------------------------------------------------------
# Concurrency: processes
# ----------------------------------------------------------------------------------

def _process_writer(root, worker, n_workers):
    store = zs.FilesystemStore(root)
    node = ArrayNode.of_path("/arr")
    meta = store.array_metadata(node)
    rows = meta.chunks[0]
    # Worker w owns every n_workers-th row of chunks: its writes touch only its chunks.
    for rep in range(3):
        for r in range(worker * rows, meta.shape[0], rows * n_workers):
            block = np.full((rows, meta.shape[1]), worker * 100 + rep, dtype="int32")
            store.write_array(node, (slice(r, r + rows),), block)


def test_processes_write_different_chunks(tmp_path):
    store = zs.FilesystemStore(tmp_path)
    node = ArrayNode.of_path("/arr")
    n_workers = 4
    store.create_array(node, shape=(32, 30), chunks=(4, 5), dtype="int32", fill_value=-1,
                       codecs=[Bytes(), Zstd(1), Crc32c()])
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(str(tmp_path), w, n_workers))
             for w in range(n_workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    expected = np.empty((32, 30), dtype="int32")
    for r in range(0, 32, 4):
        expected[r:r + 4] = ((r // 4) % n_workers) * 100 + 2
    np.testing.assert_array_equal(store.read_array(node), expected)
    assert not any(_is_tmp(f) for f in files_under(tmp_path))


# ----------------------------------------------------------------------------------
# Modes
# ----------------------------------------------------------------------------------

def _snapshot(root):
    """Every file and folder under ``root`` with its bytes (None for folders)."""
    out = {p: (root / p).read_bytes() for p in files_under(root)}
    out.update({p: None for p in folders_under(root)})
    return out


@pytest.mark.parametrize("mode", ["r", "r+"])
def test_missing_path_in_read_modes_raises_and_creates_nothing(tmp_path, mode):
    missing = tmp_path / "no" / "such" / "data.zarr"
    with pytest.raises(zs.StoreError, match="no such folder") as info:
        zs.FilesystemStore(missing, mode=mode)
    assert str(missing) in str(info.value)
    assert f"mode {mode!r}" in str(info.value)
    assert not (tmp_path / "no").exists()
    assert os.listdir(tmp_path) == []


def test_typo_in_a_read_only_path_creates_nothing():
    folders = ["/no/such/path", "/no/such", "/no"]
    if os.path.lexists("/no"):
        pytest.skip("/no exists on this machine")
    try:
        with pytest.raises(zs.StoreError, match="/no/such/path"):
            zs.FilesystemStore("/no/such/path", mode="r")
        assert not os.path.lexists("/no")
    finally:
        for folder in folders:  # a failure must not leave folders at the system's root
            if os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)


@pytest.mark.parametrize("mode", ["r", "r+", "w-"])
def test_modes_refuse_a_file_at_the_path(tmp_path, mode):
    f = tmp_path / "file"
    f.write_bytes(b"x")
    with pytest.raises(zs.StoreError, match="not a folder|exists"):
        zs.FilesystemStore(f, mode=mode)
    assert f.read_bytes() == b"x"


def test_mode_r_reads_and_writes_nothing(tmp_path):
    writer = zs.FilesystemStore(tmp_path)
    node = ArrayNode.of_path("/g/arr")
    writer.create_array(node, shape=(4, 4), chunks=(2, 2), dtype="int32", fill_value=-1,
                        codecs=[Bytes(), Zstd(1)])
    writer.write_array(node, (slice(0, 2), slice(0, 2)), np.ones((2, 2), "int32"))
    before = _snapshot(tmp_path)
    store = zs.FilesystemStore(tmp_path, mode="r")
    assert (store.mode, store.read_only) == ("r", True)
    store.buffers_writes = True  # still nothing to buffer, nothing to flush
    expected = np.full((4, 4), -1, "int32")
    expected[:2, :2] = 1
    np.testing.assert_array_equal(store.read_array(node), expected)
    assert store.get("g/arr/c/1/1") is None
    assert store.list_dir("g/") == (["zarr.json"], ["arr"])
    for op in (lambda: store.set("g/new/k", b"v"), lambda: store.erase("g/arr/c/0/0"),
               lambda: store.erase_prefix(""), lambda: store.move_prefix("g/", "h/"),
               lambda: store.set_many(["x/y"], [b"v"]),
               lambda: store.write_array(node, ..., np.int32(3)),
               lambda: store.create_group(GroupNode.of_path("/g/sub")),
               lambda: store.erase_all_nodes()):
        with pytest.raises(zs.ReadOnlyStoreError, match=re.escape(repr(str(tmp_path)))):
            op()
    store.close()
    # No folder, temporary file or value was made, changed or removed.
    assert _snapshot(tmp_path) == before


def test_mode_r_plus_writes_an_existing_folder(tmp_path):
    zs.FilesystemStore(tmp_path).set("old", b"1")
    store = zs.FilesystemStore(tmp_path, mode="r+")
    assert (store.mode, store.read_only) == ("r+", False)
    store.set("new", b"2")
    assert store.list_prefix("") == ["new", "old"]


def test_mode_a_is_the_default(tmp_path):
    store = zs.FilesystemStore(tmp_path / "new")
    assert (store.mode, store.read_only, store.follow_links) == ("a", False, True)
    store.set("k", b"v")
    assert zs.FilesystemStore(tmp_path / "new", mode="a").get("k") == b"v"


def test_mode_w_clears_the_folder(tmp_path):
    old = zs.FilesystemStore(tmp_path / "s")
    old.create_group(GroupNode.of_path("/g/h"))
    old.set("g/h/c/0", b"chunk")
    (tmp_path / "s" / ("." + "x" * 4 + ".0123456789abcdef" + TMP_SUFFIX)).write_bytes(b"t")
    store = zs.FilesystemStore(tmp_path / "s", mode="w")
    assert store.list_prefix("") == []
    assert os.listdir(tmp_path / "s") == []  # leftover temporary files too
    store.set("k", b"v")
    assert files_under(tmp_path / "s") == ["k"]
    # A missing folder is created.
    assert zs.FilesystemStore(tmp_path / "t" / "u", mode="w").list_prefix("") == []
    assert (tmp_path / "t" / "u").is_dir()


def test_mode_w_dash_creates_only_new_stores(tmp_path):
    store = zs.FilesystemStore(tmp_path / "a" / "new.zarr", mode="w-")
    assert store.mode == "w-"
    store.set("k", b"v")
    with pytest.raises(zs.StoreError, match="exists") as info:
        zs.FilesystemStore(tmp_path / "a" / "new.zarr", mode="w-")
    assert str(tmp_path / "a" / "new.zarr") in str(info.value)
    assert files_under(tmp_path / "a" / "new.zarr") == ["k"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(zs.StoreError, match="mode 'w-'"):
        zs.FilesystemStore(tmp_path / "empty", mode="w-")


def test_bad_mode_names_the_modes(tmp_path):
    for mode in ("x", "rw", "", None, "W"):
        with pytest.raises(ValueError, match=r"one of \('r', 'r\+', 'a', 'w', 'w-'\)"):
            zs.FilesystemStore(tmp_path / "s", mode=mode)
    assert not (tmp_path / "s").exists()


def test_modes_in_repr(tmp_path):
    assert repr(zs.FilesystemStore(tmp_path)) == f"FilesystemStore({str(tmp_path)!r})"
    assert repr(zs.FilesystemStore(tmp_path, mode="r", follow_links=False)) == \
        f"FilesystemStore({str(tmp_path)!r}, mode='r', follow_links=False)"


# ----------------------------------------------------------------------------------
# A file that becomes a folder while it is erased
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("follow_links", [True, False])
def test_erase_prefix_of_a_file_that_becomes_a_folder(tmp_path, monkeypatch, follow_links):
    """Forced: between erase_prefix's look at "a/x" (a file) and its unlink, another
    writer replaces the file with a folder. unlink(2) then fails (EISDIR or EPERM);
    the erase removes the folder instead, and does not fail."""
    store = zs.FilesystemStore(tmp_path, follow_links=follow_links)
    store.set("a/x", b"file")
    store.set("a/y", b"other")
    real_unlink = os.unlink
    swapped = []

    def unlink(path, *, dir_fd=None):
        if os.path.basename(path) == "x" and not swapped:
            swapped.append(path)
            target = tmp_path / "a" / "x"
            real_unlink(target)
            target.mkdir()
            (target / "inner").write_bytes(b"new")
        return real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink)
    store.erase_prefix("a/x")
    monkeypatch.undo()
    assert swapped
    assert store.list_prefix("") == ["a/y"]
    assert not any(_is_tmp(f) for f in files_under(tmp_path) + folders_under(tmp_path))


def test_a_link_cycle_ends_listing(tmp_path):
    """A link to a folder above it (here the root) is not listed through: the
    listing would never end. Keys through it still read."""
    store = zs.FilesystemStore(tmp_path)
    store.set("g/h/k", b"v")
    os.symlink(".", tmp_path / "loop")
    assert store.list_prefix("") == ["g/h/k"]
    assert store.list_prefix("loop/g/") == ["loop/g/h/k"]
    assert store.list_dir("") == ([], ["g"])
    assert store.find_all_nodes() == ([], [])
    assert store.get("loop/g/h/k") == b"v"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_under_a_key_holds_no_value_and_never_blocks(tmp_path):
    """A FIFO planted where a chunk would be (an unpacked tar can hold one)
    used to block ``get`` forever: nothing ever writes to it."""
    store = zs.FilesystemStore(tmp_path)
    node = zs.ArrayNode.of_path("/a")
    store.create_array(node, shape=(4,), chunks=(2,), dtype="int32", fill_value=-1)
    os.makedirs(tmp_path / "a" / "c")
    os.mkfifo(tmp_path / "a" / "c" / "0")
    assert store.get("a/c/0") is None
    assert store.get_partial_values([("a/c/0", 0, 4)]) == [None]
    assert store.getsize("a/c/0") is None
    np.testing.assert_array_equal(store.read_array(node), [-1, -1, -1, -1])


def test_stores_are_equal_when_they_see_the_same_keys_the_same_way(tmp_path):
    plain = zs.FilesystemStore(tmp_path)
    assert plain == zs.FilesystemStore(tmp_path, mode="r+")
    assert hash(plain) == hash(zs.FilesystemStore(str(tmp_path) + "/"))
    assert plain != zs.FilesystemStore(tmp_path, mode="r")
    assert plain != zs.FilesystemStore(tmp_path, follow_links=False)
    assert plain != zs.FilesystemStore(tmp_path / "other")
