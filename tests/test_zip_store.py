"""ZipStore: the store contract, modes, rewriting keys, compaction on close, rejected
entry names, thread safety, and zip files exchanged with zarr-python's ZipStore."""

import itertools
import sys
import threading
import warnings
import zipfile

import numpy as np
import pytest

import zarrsync as zs
from zarrsync import ArrayNode, GroupNode
from zarrsync.codecs import Bytes, Crc32c, Gzip, Zstd

from store_contract import StoreContract

zarr = pytest.importorskip("zarr")


def _reopen_read_only(store):
    store.close()
    return zs.ZipStore(store.path, mode="r")


class TestZipStore(StoreContract):
    # One writer owns the archive's central directory: a "w" store does not pickle.
    pickles_while_writable = False

    @pytest.fixture
    def make_store(self, tmp_path):
        counter = itertools.count()
        return lambda: zs.ZipStore(tmp_path / f"s{next(counter)}.zip", mode="w")

    @pytest.fixture
    def reopen_read_only(self):
        return _reopen_read_only


class TestZipStoreAppendMode(StoreContract):
    """Mode "a" on an archive that already holds unrelated entries."""

    pickles_while_writable = False

    @pytest.fixture
    def reopen_read_only(self):
        return _reopen_read_only

    @pytest.fixture
    def make_store(self, tmp_path):
        counter = itertools.count()

        def make():
            path = tmp_path / f"s{next(counter)}.zip"
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr("unrelated/file", b"x")
            store = zs.ZipStore(path, mode="a")
            store.erase("unrelated/file")
            return store

        return make


def entries(path):
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


# ----------------------------------------------------------------------------------
# Modes
# ----------------------------------------------------------------------------------

def test_write_then_read(tmp_path):
    path = tmp_path / "data.zip"
    node = ArrayNode.of_path("/g/arr")
    data = np.arange(30, dtype="float32").reshape(5, 6)
    with zs.ZipStore(path, mode="w") as store:
        store.create_group(GroupNode.root(), attrs={"title": "zip"})
        store.create_array(node, shape=(5, 6), chunks=(2, 4), dtype="float32",
                           codecs=[Bytes(), Gzip(1), Crc32c()])
        store.write_array(node, ..., data)
    assert store.closed
    with zs.ZipStore(path) as store:  # mode "r" is the default
        assert store.mode == "r"
        np.testing.assert_array_equal(store.read_array(node), data)
        assert store.group_metadata(GroupNode.root()).attributes == {"title": "zip"}
        assert store.find_all_nodes() == ([node], [GroupNode.root(), GroupNode.of_path("/g")])
    assert sorted(n for n, _ in entries(path)) == sorted(
        ["zarr.json", "g/zarr.json", "g/arr/zarr.json"]
        + [f"g/arr/c/{i}/{j}" for i in range(3) for j in range(2)])


def test_read_only_writes_raise(tmp_path):
    path = tmp_path / "data.zip"
    with zs.ZipStore(path, mode="w") as store:
        store.create_array(ArrayNode.of_path("/a"), shape=(4,), chunks=(2,), dtype="int8")
        store.write_array(ArrayNode.of_path("/a"), ..., np.arange(4, dtype="int8"))
    before = path.read_bytes()
    with zs.ZipStore(path, mode="r") as store:
        for op in [lambda: store.set("k", b"v"), lambda: store.erase("a/c/0"),
                   lambda: store.erase_prefix(""), lambda: store.move_prefix("a/", "b/"),
                   lambda: store.write_array(ArrayNode.of_path("/a"), 0, np.int8(5)),
                   lambda: store.create_group(GroupNode.of_path("/new")),
                   lambda: store.erase_array_node(ArrayNode.of_path("/a")),
                   lambda: store.rename_array(ArrayNode.of_path("/a"), "b")]:
            with pytest.raises(zs.ReadOnlyStoreError, match="read-only"):
                op()
        # Also a PermissionError and a StoreError, for callers catching those.
        with pytest.raises(PermissionError):
            store.set("k", b"v")
        with pytest.raises(zs.StoreError):
            store.set("k", b"v")
        np.testing.assert_array_equal(store.read_array(ArrayNode.of_path("/a")), np.arange(4))
    assert path.read_bytes() == before


def test_append_mode_adds_to_an_archive(tmp_path):
    path = tmp_path / "data.zip"
    with zs.ZipStore(path, mode="w") as store:
        store.create_group(GroupNode.of_path("/g"))
    with zs.ZipStore(path, mode="a") as store:
        node = ArrayNode.of_path("/g/arr")
        store.create_array(node, shape=(3,), chunks=(3,), dtype="uint16")
        store.write_array(node, ..., np.array([1, 2, 3], dtype="uint16"))
        assert store.group_exists(GroupNode.of_path("/g"))
    with zs.ZipStore(path) as store:
        np.testing.assert_array_equal(store.read_array(ArrayNode.of_path("/g/arr")), [1, 2, 3])
    # Nothing was replaced or erased: a plain append, no duplicate names.
    names = [n for n, _ in entries(path)]
    assert len(names) == len(set(names))


def test_append_mode_creates_a_missing_file(tmp_path):
    with zs.ZipStore(tmp_path / "new.zip", mode="a") as store:
        store.set("k", b"v")
    assert entries(tmp_path / "new.zip") == [("k", b"v")]


def test_write_mode_replaces_an_archive(tmp_path):
    path = tmp_path / "data.zip"
    with zs.ZipStore(path, mode="w") as store:
        store.set("old", b"1")
    with zs.ZipStore(path, mode="w") as store:
        assert store.list_prefix("") == []
        store.set("new", b"2")
    assert entries(path) == [("new", b"2")]


def test_bad_mode_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        zs.ZipStore(tmp_path / "x.zip", mode="x")
    with pytest.raises(zs.StoreError, match="cannot open"):
        zs.ZipStore(tmp_path / "missing.zip", mode="r")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip file at all" * 10)
    with pytest.raises(zs.StoreError, match="not a valid zip"):
        zs.ZipStore(junk, mode="r")
    with pytest.raises(zs.StoreError, match="not a zip file"):
        zs.ZipStore(junk, mode="a")
    assert junk.read_bytes() == b"this is not a zip file at all" * 10


def test_closed_store_raises(tmp_path):
    store = zs.ZipStore(tmp_path / "d.zip", mode="w")
    store.set("k", b"v")
    store.close()
    store.close()  # idempotent
    for op in [lambda: store.get("k"), lambda: store.set("k", b"v"),
               lambda: store.list_prefix(""), lambda: store.list_dir("")]:
        with pytest.raises(zs.StoreError, match="closed"):
            op()


def test_unclosed_store_is_finished_when_collected(tmp_path):
    path = tmp_path / "d.zip"
    store = zs.ZipStore(path, mode="w")
    store.set("k", b"v")
    del store
    import gc
    gc.collect()
    assert entries(path) == [("k", b"v")]


# ----------------------------------------------------------------------------------
# Rewriting and erasing keys
# ----------------------------------------------------------------------------------

def test_rewrite_reads_new_value_and_compacts_on_close(tmp_path):
    path = tmp_path / "d.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Duplicate name" warning from zipfile
        store = zs.ZipStore(path, mode="w")
        store.set("k", b"first")
        store.set("other", b"o")
        store.set("k", b"second, longer")
        assert store.get("k") == b"second, longer"
        assert store.get_partial_values([("k", 8, 3)]) == [b"lon"]
        assert store.getsize("k") == 14
        assert store.list_prefix("") == ["k", "other"]
        store.close()
    assert entries(path) == [("other", b"o"), ("k", b"second, longer")]


def test_erase_is_final_after_close(tmp_path):
    path = tmp_path / "d.zip"
    node = ArrayNode.of_path("/arr")
    with zs.ZipStore(path, mode="w") as store:
        store.create_array(node, shape=(6,), chunks=(2,), dtype="int32", fill_value=0)
        store.write_array(node, ..., np.arange(1, 7, dtype="int32"))
        store.write_array(node, slice(0, 2), np.zeros(2, dtype="int32"))  # erases c/0
        assert store.list_prefix("arr/c") == ["arr/c/1", "arr/c/2"]
    assert sorted(n for n, _ in entries(path)) == ["arr/c/1", "arr/c/2", "arr/zarr.json",
                                                   "zarr.json"]
    with zs.ZipStore(path) as store:
        np.testing.assert_array_equal(store.read_array(node), [0, 0, 3, 4, 5, 6])


def test_append_mode_compacts_duplicates_of_other_writers(tmp_path):
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zf.writestr("k", b"old")
        zf.writestr("k", b"new")  # as zarr-python writes a key set twice
    with zs.ZipStore(path, mode="r") as store:
        assert store.get("k") == b"new"  # the last entry wins
        assert store.list_prefix("") == ["k"]
    with zs.ZipStore(path, mode="a") as store:
        store.set("j", b"j")
    assert entries(path) == [("k", b"new"), ("j", b"j")]


def test_rename_and_erase_nodes(tmp_path):
    path = tmp_path / "d.zip"
    with zs.ZipStore(path, mode="w") as store:
        store.create_array(ArrayNode.of_path("/g/a"), shape=(4,), chunks=(2,), dtype="int8")
        store.write_array(ArrayNode.of_path("/g/a"), ..., np.arange(1, 5, dtype="int8"))
        store.create_group(GroupNode.of_path("/h/i"))
        store.rename_group(GroupNode.of_path("/g"), "moved")
        store.erase_group_node(GroupNode.of_path("/h"))
    assert sorted(n for n, _ in entries(path)) == [
        "moved/a/c/0", "moved/a/c/1", "moved/a/zarr.json", "moved/zarr.json", "zarr.json"]
    with zs.ZipStore(path) as store:
        np.testing.assert_array_equal(store.read_array(ArrayNode.of_path("/moved/a")),
                                      [1, 2, 3, 4])


def test_compression_option(tmp_path):
    path = tmp_path / "d.zip"
    value = b"compressible " * 1000
    with zs.ZipStore(path, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as s:
        s.set("k", value)
        s.set("k", value + b"!")  # compaction keeps the compression
        assert s.get_partial_values([("k", -5, None)]) == [b"ble !"]
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("k")
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.compress_size < len(value) // 10
    with zs.ZipStore(path) as s:
        assert s.get("k") == value + b"!"
        assert s.get_partial_values([("k", 13, 6)]) == [b"compre"]


def test_same_writes_make_the_same_bytes(tmp_path):
    def build(path):
        with zs.ZipStore(path, mode="w") as store:
            store.create_array(ArrayNode.of_path("/a"), shape=(5,), chunks=(2,),
                               dtype="int16", codecs=[Bytes(), Zstd(3)])
            store.write_array(ArrayNode.of_path("/a"), ..., np.arange(5, dtype="int16"))
        return path.read_bytes()

    assert build(tmp_path / "one.zip") == build(tmp_path / "two.zip")


# ----------------------------------------------------------------------------------
# Entry names that would escape
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/abs/evil", "..\\evil",
                                  "a//b", "./x", "../"], ids=repr)
def test_escaping_entries_are_rejected(tmp_path, name):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("zarr.json", b'{"zarr_format": 3, "node_type": "group"}')
        zf.writestr(zipfile.ZipInfo(name), b"payload")
    for mode in ("r", "a"):
        with pytest.raises(zs.StoreError, match="rejected"):
            zs.ZipStore(path, mode=mode)
    assert not (tmp_path.parent / "evil").exists()


@pytest.mark.parametrize("key", ["../x", "/x", "a//b", "a/./b", "a\\b", ""], ids=repr)
def test_bad_keys_are_not_written(tmp_path, key):
    with zs.ZipStore(tmp_path / "d.zip", mode="w") as store:
        with pytest.raises(zs.StoreError, match="invalid key"):
            store.set(key, b"v")
    assert entries(tmp_path / "d.zip") == []


def test_directory_entries_are_ignored(tmp_path):
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("g/", b"")
        zf.writestr("g/zarr.json", b'{"zarr_format": 3, "node_type": "group"}')
    with zs.ZipStore(path) as store:
        assert store.list_prefix("") == ["g/zarr.json"]
        assert store.list_dir("") == ([], ["g"])
        assert store.get("g/") is None


# ----------------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------------

def test_threads_share_a_zip_store(tmp_path):
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    path = tmp_path / "d.zip"
    node = ArrayNode.of_path("/arr")
    shape = (24, 30)
    expected = np.arange(np.prod(shape), dtype="int64").reshape(shape)
    errors = []
    try:
        with zs.ZipStore(path, mode="w") as store:
            store.create_array(node, shape=shape, chunks=(5, 7), dtype="int64",
                               codecs=[Bytes(), Zstd(1), Crc32c()])
            tiles = [(slice(r, r + 4), slice(c, c + 6)) for r in range(0, 24, 4)
                     for c in range(0, 30, 6)]

            def work(t):
                try:
                    for sel in tiles[t::6]:
                        store.write_array(node, sel, expected[sel])
                        store.read_array(node)
                        store.list_prefix("arr/")
                except BaseException as e:  # re-raised below
                    errors.append(e)

            threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[0]
    with zs.ZipStore(path) as store:
        np.testing.assert_array_equal(store.read_array(node), expected)
    names = [n for n, _ in entries(path)]
    assert len(names) == len(set(names))


# ----------------------------------------------------------------------------------
# zarr-python's ZipStore
# ----------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_zarrsync_reads_zarr_python_zip(tmp_path):
    path = tmp_path / "zp.zip"
    zstore = zarr.storage.ZipStore(path, mode="w")
    root = zarr.open_group(zstore, mode="w", attributes={"ü": "é"})
    sub = root.create_group("a").create_group("b", attributes={"level": 2})
    x = sub.create_array("x", shape=(7, 5), chunks=(3, 2), dtype="float64",
                         fill_value=np.nan, compressors=[zarr.codecs.GzipCodec(level=1)],
                         dimension_names=["y", None])
    data = np.arange(35, dtype="float64").reshape(7, 5)
    x[1:6, :] = data[1:6]
    x[0, 0] = -1.0  # rewrites chunk c/0/0: zarr-python appends a duplicate entry
    zstore.close()
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert names.count("a/b/x/c/0/0") == 2
    expected = np.full((7, 5), np.nan)
    expected[1:6] = data[1:6]
    expected[0, 0] = -1.0
    with zs.ZipStore(path) as store:
        node = ArrayNode.of_path("/a/b/x")
        np.testing.assert_array_equal(store.read_array(node), expected)
        np.testing.assert_array_equal(store.read_array(node, (slice(0, 7, 3), [4, 0])),
                                      expected[0:7:3][:, [4, 0]])
        meta = store.array_metadata(node)
        assert meta.dimension_names == ("y", None)
        assert store.group_metadata(GroupNode.root()).attributes == {"ü": "é"}
        assert store.group_metadata(GroupNode.of_path("/a/b")).attributes == {"level": 2}
        assert store.find_all_nodes() == ([node], [GroupNode.root(), GroupNode.of_path("/a"),
                                                   GroupNode.of_path("/a/b")])


def test_zarr_python_reads_zarrsync_zip(tmp_path):
    path = tmp_path / "zs.zip"
    node = ArrayNode.of_path("/g/h/arr")
    data = np.arange(56, dtype="int32").reshape(7, 8) - 20
    with zs.ZipStore(path, mode="w") as store:
        store.create_group(GroupNode.root(), attrs={"t\u00eftle": "\u2603"})
        store.create_array(node, shape=(7, 8), chunks=(3, 3), dtype="int32", fill_value=-99,
                           codecs=[Bytes("big"), Zstd(2, True), Crc32c()],
                           dimension_names=[None, "x"])
        # Unaligned pieces, each chunk rewritten several times before close.
        for r in range(0, 7, 2):
            rows = slice(r, min(r + 2, 7))
            store.write_array(node, (rows, slice(1, 8)), data[rows, 1:8])
        store.set_attributes(node, {"units": "K"})
    zstore = zarr.storage.ZipStore(path, mode="r")
    try:
        za = zarr.open_array(zstore, path="g/h/arr", mode="r")
        expected = data.copy()
        expected[:, 0] = -99
        np.testing.assert_array_equal(za[...], expected)
        assert za.attrs.asdict() == {"units": "K"}
        assert za.metadata.dimension_names == (None, "x")
        root = zarr.open_group(zstore, mode="r")
        assert root.attrs.asdict() == {"t\u00eftle": "\u2603"}
        assert sorted(name for name, _ in root.members(max_depth=None)) == [
            "g", "g/h", "g/h/arr"]
    finally:
        zstore.close()


def _patch_central_directory(path, offset, value):
    """Overwrite the 2-byte field at ``offset`` of the archive's one central
    directory header (6: version needed to extract, 8: general purpose flags,
    10: compression method)."""
    raw = bytearray(path.read_bytes())
    at = raw.index(b"PK\x01\x02") + offset
    raw[at:at + 2] = value.to_bytes(2, "little")
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("field,value,problem", [(8, 0x1, "encrypted"),
                                                 (10, 99, "compression method")],
                         ids=["encrypted", "unknown-compression"])
def test_unreadable_entries_raise_store_error(tmp_path, field, value, problem):
    """An entry zipfile cannot read (encrypted, or an unknown compression method)
    is a StoreError naming the key, not zipfile's RuntimeError or
    NotImplementedError."""
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("k", b"value")
    _patch_central_directory(path, field, value)
    with zs.ZipStore(path) as store:
        assert store.list_prefix("") == ["k"]
        for op in (lambda: store.get("k"), lambda: store.get_partial_values([("k", 0, 2)])):
            with pytest.raises(zs.StoreError, match=f"entry 'k'.*{problem}"):
                op()


def test_an_archive_of_a_newer_zip_version_raises_store_error(tmp_path):
    """zipfile refuses entries needing zip version > 6.3 with NotImplementedError
    when it opens the archive: a StoreError naming the file."""
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("k", b"value")
    _patch_central_directory(path, 6, 64)  # "version needed to extract": 6.4
    with pytest.raises(zs.StoreError, match="cannot open .*d.zip.*zip file version 6.4"):
        zs.ZipStore(path)


def test_an_entry_inflating_past_max_chunk_bytes_is_refused_unread(tmp_path):
    """A zip bomb: a deflated entry under a chunk key that inflates far past
    any chunk. zipfile stops at the declared size; the store refuses to
    inflate more than ``max_chunk_bytes`` before reading anything."""
    path = tmp_path / "bomb.zip"
    node = ArrayNode.of_path("/a")
    with zs.ZipStore(path, mode="w") as store:
        store.create_array(node, shape=(4,), chunks=(4,), dtype="uint8", codecs=[Bytes()])
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/c/0", bytes(8 << 20))  # 8 MiB of zeros in about 8 KiB
    with zs.ZipStore(path, mode="r") as store, zs.config.set(max_chunk_bytes=1 << 20):
        with pytest.raises(zs.StoreError, match="'a/c/0' is compressed in the archive and "
                                                "reading it takes 8388608 bytes"):
            store.read_array(node)
        with pytest.raises(zs.StoreError, match="max_chunk_bytes"):
            store.get_partial_values([("a/c/0", 0, 2 << 20)])
        assert store.get_partial_values([("a/c/0", 0, 4)]) == [bytes(4)]
        assert store.getsize("a/c/0") == 8 << 20
    with zs.ZipStore(path, mode="r") as store:  # within the default bound: read as it is
        with pytest.raises(zs.CodecError, match="a/c/0"):
            store.read_array(node)  # 8 MiB where 4 bytes belong


@pytest.mark.parametrize("field, value, problem", [
    ("compress_size", 0x3E000000, "end past the archive"),
    ("header_offset", 1 << 40, "end past the archive"),
    ("file_size", 1 << 30, "stored uncompressed, yet claims"),
])
def test_entry_sizes_that_cannot_be_true_are_refused_at_open(tmp_path, field, value, problem):
    """Found by the fuzzer: a stored entry claiming 1 GiB in the central
    directory made zipfile allocate 1 GiB to read 29 bytes."""
    path = tmp_path / "lying.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("zarr.json", b'{"zarr_format": 3, "node_type": "group"}')
    data = bytearray(path.read_bytes())
    central = data.rindex(b"PK\x01\x02")
    offset = {"compress_size": 20, "file_size": 24, "header_offset": 42}[field]
    width = 4
    data[central + offset:central + offset + width] = (value & 0xFFFFFFFF).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    if field == "header_offset":  # 2 ** 40 needs zip64; a 32-bit offset past the end does
        data[central + offset:central + offset + 4] = (len(data) + 1).to_bytes(4, "little")
        path.write_bytes(bytes(data))
    with pytest.raises(zs.StoreError, match=problem):
        zs.ZipStore(path, mode="r")
