"""The ``zarrsync`` command, run as a subprocess as a user runs it.

Every command in text and ``--json`` (the JSON compared with what the store
holds), copies between formats, codecs, chunk shapes and stores (stores that
zarr-python and tensorstore wrote, a zip, the local S3 server), ``check`` on
damaged stores, one-line errors with their exit codes, and the progress bar
on a terminal only. Nothing is mocked.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import zarrsync as zs
from zarrsync import ArrayNode, GroupNode
from zarrsync.codecs import Bytes, Crc32c, ShardingIndexed, Zstd, parse_codecs

ZSTD3 = [{"name": "bytes", "configuration": {"endian": "little"}},
         {"name": "zstd", "configuration": {"level": 3}}]
#: ZSTD3 as zarr.json spells it (every configuration field written out).
ZSTD3_STORED = [c.to_dict() for c in parse_codecs(ZSTD3)]


def run(*args, env=None, stderr=subprocess.PIPE):
    """``python -P -m zarrsync ARGS``: -P keeps the checkout folder from
    shadowing the installed package."""
    return subprocess.run([sys.executable, "-P", "-m", "zarrsync", *map(str, args)],
                          stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=300)


def ok(*args, env=None):
    out = run(*args, env=env)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out


def one_line_error(out, code=1):
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("zarrsync: error: "), lines[0]
    return lines[0]


def v2_source(path):
    """A Zarr v2 hierarchy written by zarrsync: groups with attributes, a
    float array half written (the rest is never-written fill value), a string array."""
    store = zs.FilesystemStore(path)
    store.create_group(GroupNode.root(), {"title": "source"}, zarr_format=2)
    store.create_group(GroupNode.of_path("/g"), {"level": 1}, zarr_format=2)
    temp = np.arange(100 * 60, dtype="float32").reshape(100, 60)
    temp[50:] = np.nan
    node = ArrayNode.of_path("/g/t")
    store.create_array(node, shape=(100, 60), chunks=(10, 7), dtype="float32",
                       fill_value=np.nan, dimension_names=["y", "x"],
                       attributes={"units": "K"}, zarr_format=2)
    store.write_array(node, (slice(0, 50),), temp[:50])
    names = np.array(["a", "bb", "ccc", "", "eeeee"], dtype="T")
    store.create_array(ArrayNode.of_path("/names"), shape=(5,), chunks=(2,), dtype="string",
                       zarr_format=2)
    store.write_array(ArrayNode.of_path("/names"), ..., names)
    return {"/g/t": temp, "/names": names}


def assert_same(got, want):
    assert got.shape == want.shape
    if want.dtype.kind == "f":
        np.testing.assert_array_equal(got, want)
    else:
        assert list(got.reshape(-1)) == list(want.reshape(-1))


# -- help, demo, usage errors -------------------------------------------------------------

def test_help_names_every_command_and_the_exit_codes():
    out = ok("--help")
    assert out.stdout.startswith("usage: zarrsync")
    for command in ("tree", "info", "copy", "consolidate", "check", "demo"):
        assert command in out.stdout
        sub = ok(command, "--help")
        assert sub.stdout.startswith(f"usage: zarrsync {command}")
    assert "exit codes" in out.stdout and "usage error" in out.stdout
    copy_help = ok("copy", "--help").stdout
    for option in ("--path", "--codecs", "--chunks", "--shards", "--zarr-format", "--json",
                   "--no-progress", "--overwrite"):
        assert option in copy_help


def test_demo_prints_its_figures():
    out = ok("demo", "--repeats", "1")
    assert "MB/s" in out.stdout and "all values read back exactly" in out.stdout
    assert "temperature" in out.stdout


@pytest.mark.parametrize("args, says", [
    (["frob"], "invalid choice"),
    (["copy", "a.zarr", "b.zarr", "--chunks", "10,x"], "--chunks"),
    (["copy", "a.zarr", "b.zarr", "--chunks", "0,10"], "--chunks"),
    (["copy", "a.zarr", "b.zarr", "--codecs", '[{"name": "bytes"'], "not valid JSON"),
    (["copy", "a.zarr", "b.zarr", "--codecs", '[{"name": "no-such-codec"}]'], "--codecs"),
    (["copy", "a.zarr", "b.zarr", "--zarr-format", "4"], "--zarr-format"),
    (["info", "a.zarr"], "required"),
    ([], "required"),
])
def test_usage_errors_are_one_line_and_exit_2(args, says):
    line = one_line_error(run(*args), code=2)
    assert says in line


def test_missing_paths_are_one_line_errors(tmp_path):
    missing = tmp_path / "missing.zarr"
    for args in (["tree", missing], ["info", missing, "/a"], ["check", missing],
                 ["consolidate", missing], ["copy", missing, tmp_path / "out.zarr"],
                 ["copy", tmp_path / "missing.zip", tmp_path / "out.zarr"]):
        line = one_line_error(run(*args))
        assert "missing" in line
    assert not (tmp_path / "out.zarr").exists()
    v2_source(tmp_path / "src.zarr")
    line = one_line_error(run("copy", tmp_path / "src.zarr", tmp_path / "o", "--path", "/nope"))
    assert "/nope" in line
    line = one_line_error(run("info", tmp_path / "src.zarr", "/nope"))
    assert "nope" in line


# -- copy ---------------------------------------------------------------------------------

def test_copy_v2_to_v3_zip_with_new_codecs_and_chunks(tmp_path):
    zarr = pytest.importorskip("zarr")
    want = v2_source(tmp_path / "src.zarr")
    dst = tmp_path / "dst.zip"
    out = ok("copy", tmp_path / "src.zarr", dst, "--zarr-format", "3", "--chunks", "20,32",
             "--codecs", json.dumps(ZSTD3), "--json", "--no-progress")
    summary = json.loads(out.stdout)
    assert summary["arrays"] == 2 and summary["groups"] == 2
    assert summary["bytes"] == sum(a.nbytes for a in want.values())
    # --chunks has rank 2: the rank-1 string array keeps its chunks and codecs.
    assert any("/names" in note for note in summary["notes"])

    store = zs.ZipStore(dst, mode="r")
    assert store.group_metadata(GroupNode.root()).attributes == {"title": "source"}
    assert store.group_metadata(GroupNode.of_path("/g")).attributes == {"level": 1}
    meta = store.array_metadata(ArrayNode.of_path("/g/t"))
    assert meta.zarr_format == 3 and meta.chunks == (20, 32)
    assert [c.to_dict() for c in meta.codecs] == ZSTD3_STORED
    assert meta.dimension_names == ("y", "x") and meta.attributes == {"units": "K"}
    assert np.isnan(meta.fill_value)
    for path, data in want.items():
        assert_same(store.read_array(ArrayNode.of_path(path)), data)
    # Chunks that are all fill value (the unwritten half) are not stored.
    stored = store.stored_chunks(ArrayNode.of_path("/g/t"))
    assert {c.chunk_coords[0] for c in stored} == {0, 1, 2}
    assert summary["chunks"] == 5 * 2 + 3

    zstore = zarr.storage.ZipStore(str(dst), mode="r")
    got = zarr.open_array(zstore, path="g/t", mode="r")
    assert got.metadata.zarr_format == 3 and got.chunks == (20, 32)
    np.testing.assert_array_equal(got[...], want["/g/t"])
    assert list(zarr.open_array(zstore, path="names", mode="r")[...]) == list(want["/names"])


def test_copy_refuses_a_destination_that_is_not_empty_unless_overwrite(tmp_path):
    v2_source(tmp_path / "src.zarr")
    dst = tmp_path / "dst.zarr"
    dst.mkdir()   # an empty folder is fine
    ok("copy", tmp_path / "src.zarr", dst, "--no-progress")
    line = one_line_error(run("copy", tmp_path / "src.zarr", dst))
    assert "not empty" in line and "--overwrite" in line
    out = ok("copy", tmp_path / "src.zarr", dst, "--overwrite", "--zarr-format", "3")
    assert out.stdout.startswith("copied 2 arrays and 2 groups")
    assert zs.FilesystemStore(dst, mode="r").array_metadata(
        ArrayNode.of_path("/g/t")).zarr_format == 3
    line = one_line_error(run("copy", tmp_path / "src.zarr", tmp_path / "src.zarr",
                              "--overwrite"))
    assert "source" in line
    assert (tmp_path / "src.zarr" / "g" / "t" / ".zarray").exists()


def test_copy_of_a_path_makes_it_the_root(tmp_path):
    want = v2_source(tmp_path / "src.zarr")
    ok("copy", tmp_path / "src.zarr", tmp_path / "g.zarr", "--path", "/g", "--zarr-format", "3")
    store = zs.FilesystemStore(tmp_path / "g.zarr", mode="r")
    assert store.group_metadata(GroupNode.root()).attributes == {"level": 1}
    assert_same(store.read_array(ArrayNode.of_path("/t")), want["/g/t"])
    ok("copy", tmp_path / "src.zarr", tmp_path / "t.zarr", "--path", "/g/t", "--zarr-format", "3")
    root = zs.FilesystemStore(tmp_path / "t.zarr", mode="r")
    assert_same(root.read_array(ArrayNode.root()), want["/g/t"])


def test_copy_from_zarr_python_v2_and_sharded_v3(tmp_path):
    zarr = pytest.importorskip("zarr")
    from zarr.codecs import BloscCodec
    data = np.random.default_rng(0).normal(size=(90, 70)).astype("float64")
    v2 = zarr.open_group(str(tmp_path / "zp2.zarr"), mode="w", zarr_format=2)
    v2.attrs["made_by"] = "zarr-python"
    a = v2.create_array("a", shape=data.shape, chunks=(30, 35), dtype="f8",
                        attributes={"x": 1})
    a[...] = data
    zarr.consolidate_metadata(str(tmp_path / "zp2.zarr"))
    v3 = zarr.open_group(str(tmp_path / "zp3.zarr"), mode="w", zarr_format=3)
    s = v3.create_array("s", shape=data.shape, chunks=(10, 10), shards=(30, 70), dtype="f8",
                        compressors=BloscCodec(cname="zstd"), dimension_names=["i", "j"])
    s[...] = data

    ok("copy", tmp_path / "zp2.zarr", tmp_path / "from2.zarr", "--zarr-format", "3")
    store = zs.FilesystemStore(tmp_path / "from2.zarr", mode="r")
    np.testing.assert_array_equal(store.read_array(ArrayNode.of_path("/a")), data)
    root = store.group_metadata(GroupNode.root())
    assert root.attributes == {"made_by": "zarr-python"}
    assert root.consolidated is not None   # the source was consolidated, so is the copy
    np.testing.assert_array_equal(
        zarr.open_array(str(tmp_path / "from2.zarr"), path="a", mode="r")[...], data)

    # A sharded source stays sharded, re-encoded inside its shards.
    ok("copy", tmp_path / "zp3.zarr", tmp_path / "from3.zarr", "--codecs", json.dumps(ZSTD3))
    store = zs.FilesystemStore(tmp_path / "from3.zarr", mode="r")
    meta = store.array_metadata(ArrayNode.of_path("/s"))
    assert meta.chunks == (30, 70) and meta.dimension_names == ("i", "j")
    inner = meta.codecs[0].to_dict()["configuration"]
    assert inner["chunk_shape"] == [10, 10] and inner["codecs"] == ZSTD3_STORED
    np.testing.assert_array_equal(store.read_array(ArrayNode.of_path("/s")), data)
    got = zarr.open_array(str(tmp_path / "from3.zarr"), path="s", mode="r")
    np.testing.assert_array_equal(got[...], data)

    # New shards and chunks; and to Zarr v2, which has no sharding.
    ok("copy", tmp_path / "zp3.zarr", tmp_path / "reshard.zarr", "--chunks", "15,35",
       "--shards", "45,70")
    meta = zs.FilesystemStore(tmp_path / "reshard.zarr", mode="r").array_metadata(
        ArrayNode.of_path("/s"))
    assert meta.chunks == (45, 70)
    assert meta.codecs[0].to_dict()["configuration"]["chunk_shape"] == [15, 35]
    ok("copy", tmp_path / "zp3.zarr", tmp_path / "to2.zarr", "--zarr-format", "2",
       "--codecs", json.dumps([{"name": "bytes", "configuration": {"endian": "little"}},
                               {"name": "zstd"}]))
    got = zarr.open_array(str(tmp_path / "to2.zarr"), path="s", mode="r")
    assert got.metadata.zarr_format == 2 and got.chunks == (10, 10)
    np.testing.assert_array_equal(got[...], data)


def test_copy_from_a_tensorstore_root_array(tmp_path):
    ts = pytest.importorskip("tensorstore")
    data = np.arange(64 * 48, dtype="int32").reshape(64, 48)
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{tmp_path}/ts/"},
                 "metadata": {"shape": [64, 48], "data_type": "int32",
                              "chunk_grid": {"name": "regular",
                                             "configuration": {"chunk_shape": [16, 16]}},
                              "codecs": [{"name": "bytes"}, {"name": "crc32c"}]}},
                create=True).result()
    t[...] = data
    out = ok("copy", tmp_path / "ts", tmp_path / "copy.zip", "--chunks", "32,48", "--json")
    assert json.loads(out.stdout)["arrays"] == 1
    store = zs.ZipStore(tmp_path / "copy.zip", mode="r")
    assert store.array_metadata(ArrayNode.root()).chunks == (32, 48)
    np.testing.assert_array_equal(store.read_array(ArrayNode.root()), data)


def s3_env():
    import s3_server
    return dict(os.environ, AWS_ENDPOINT_URL=s3_server.endpoint(),
                AWS_ACCESS_KEY_ID=s3_server.ACCESS_KEY,
                AWS_SECRET_ACCESS_KEY=s3_server.SECRET_KEY, AWS_REGION=s3_server.REGION,
                AWS_ALLOW_HTTP="true",
                # A crash in a native library then shows the Python stacks of every thread.
                PYTHONFAULTHANDLER="1")


def test_copy_to_and_from_the_local_s3_server(tmp_path):
    pytest.importorskip("obstore")
    pytest.importorskip("moto")
    import s3_server
    want = v2_source(tmp_path / "src.zarr")
    url = f"s3://{s3_server.new_bucket()}/copy.zarr"
    env = s3_env()
    out = ok("copy", tmp_path / "src.zarr", url, "--zarr-format", "3", "--codecs",
             json.dumps(ZSTD3), "--json", env=env)
    assert json.loads(out.stdout)["arrays"] == 2
    remote = zs.ObjectStore(url, mode="r", **s3_server.options())
    for path, data in want.items():
        assert_same(remote.read_array(ArrayNode.of_path(path)), data)
    assert one_line_error(run("copy", tmp_path / "src.zarr", url, env=env))
    ok("check", url, env=env)
    ok("copy", url, tmp_path / "back.zarr", env=env)
    back = zs.FilesystemStore(tmp_path / "back.zarr", mode="r")
    for path, data in want.items():
        assert_same(back.read_array(ArrayNode.of_path(path)), data)


def test_copy_skips_blocks_that_were_never_written(tmp_path):
    BLOCK_BYTES = zs.config.get("copy_block_bytes")
    store = zs.FilesystemStore(tmp_path / "sparse.zarr")
    node = ArrayNode.of_path("/a")
    rows = 2 * BLOCK_BYTES // (2048 * 4)    # two blocks of whole rows
    store.create_array(node, shape=(rows, 2048), chunks=(512, 512), dtype="float32",
                       fill_value=-1.0)
    store.write_array(node, (slice(0, 512), slice(512, 1024)), np.float32(7.0))
    out = ok("copy", tmp_path / "sparse.zarr", tmp_path / "copy.zarr", "--json")
    summary = json.loads(out.stdout)
    half = rows // 512 * 4 // 2
    assert summary["chunks"] == 2 * half and summary["chunks_skipped"] == half
    copy = zs.FilesystemStore(tmp_path / "copy.zarr", mode="r")
    assert [c.key for c in copy.stored_chunks(node)] == ["a/c/0/1"]
    assert copy.read_array(node, (slice(0, 600), slice(500, 1030))).tolist() == \
        store.read_array(node, (slice(0, 600), slice(500, 1030))).tolist()


def test_copy_settles_every_array_before_writing_anything(tmp_path):
    v2_source(tmp_path / "src.zarr")
    gzip_only = json.dumps([{"name": "gzip", "configuration": {"level": 1}}])
    line = one_line_error(run("copy", tmp_path / "src.zarr", tmp_path / "a", "--codecs",
                              gzip_only))
    assert "suit none of the arrays" in line and "array->bytes" in line
    line = one_line_error(run("copy", tmp_path / "src.zarr", tmp_path / "b", "--chunks", "3,3",
                              "--shards", "20,20", "--zarr-format", "3"))
    assert "/g/t" in line and "does not divide" in line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_copy_that_fails_midway_says_so_in_one_line(tmp_path):
    store = zs.FilesystemStore(tmp_path / "src.zarr")
    node = ArrayNode.of_path("/a")
    store.create_array(node, shape=(40,), chunks=(10,), dtype="int64",
                       codecs=[Bytes(), Crc32c()])
    store.write_array(node, ..., np.arange(40))
    chunk = tmp_path / "src.zarr" / "a" / "c" / "2"
    chunk.write_bytes(b"\x00" + chunk.read_bytes()[1:])
    line = one_line_error(run("copy", tmp_path / "src.zarr", tmp_path / "dst.zarr"))
    assert "copying /a" in line and "a/c/2" in line and "crc32c mismatch" in line


# -- check --------------------------------------------------------------------------------

def damaged_store(path):
    """A v3 store with a crc32c chunk whose bytes are flipped, a zstd chunk cut
    short, and good chunks around them; returns the broken keys."""
    store = zs.FilesystemStore(path)
    store.create_group(GroupNode.root())
    crc, zst = ArrayNode.of_path("/crc"), ArrayNode.of_path("/grp/zst")
    store.create_array(crc, shape=(64, 64), chunks=(16, 16), dtype="float32",
                       codecs=[Bytes(), Crc32c()])
    store.write_array(crc, ..., np.arange(64 * 64, dtype="float32").reshape(64, 64))
    store.create_array(zst, shape=(1000,), chunks=(100,), dtype="int32",
                       codecs=[Bytes(), Zstd(level=3)])
    store.write_array(zst, ..., np.arange(1000, dtype="int32"))
    sharded = ArrayNode.of_path("/grp/sharded")
    store.create_array(sharded, shape=(32, 32), chunks=(16, 32), dtype="uint8",
                       codecs=[ShardingIndexed((8, 8), [Bytes(), Zstd()])])
    store.write_array(sharded, ..., np.ones((32, 32), dtype="uint8"))
    return store


def test_check_passes_a_clean_store_and_reports_it(tmp_path):
    store = damaged_store(tmp_path / "s.zarr")
    out = ok("check", tmp_path / "s.zarr")
    assert "all decode" in out.stdout
    report = json.loads(ok("check", tmp_path / "s.zarr", "--json").stdout)
    arrays, groups = store.find_all_nodes()
    stored = [c for a in arrays for c in store.stored_chunks(a)]
    assert report["ok"] is True and report["broken"] == []
    assert report["arrays"] == len(arrays) and report["groups"] == len(groups)
    assert report["chunks"] == len(stored) == 16 + 10 + 2
    assert report["stored_bytes"] == sum(c.nbytes for c in stored)
    part = json.loads(ok("check", tmp_path / "s.zarr", "--path", "/grp", "--json").stdout)
    assert part["arrays"] == 2 and part["chunks"] == 12


def test_check_names_each_broken_chunk_and_exits_1(tmp_path):
    root = tmp_path / "s.zarr"
    damaged_store(root)
    flipped = root / "crc" / "c" / "1" / "2"
    raw = bytearray(flipped.read_bytes())
    raw[5] ^= 0xFF
    raw[6] ^= 0x0F
    flipped.write_bytes(bytes(raw))
    cut = root / "grp" / "zst" / "c" / "7"
    cut.write_bytes(cut.read_bytes()[:-9])
    shard = root / "grp" / "sharded" / "c" / "1" / "0"
    shard.write_bytes(shard.read_bytes()[:20])
    (root / "bad").mkdir()
    (root / "bad" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "array"}')

    out = run("check", root, "--no-progress")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    broken_lines = [line for line in out.stdout.splitlines() if line.startswith("BROKEN")]
    assert [line.split()[1].rstrip(":") for line in broken_lines] == [
        "crc/c/1/2", "grp/sharded/c/1/0", "grp/zst/c/7"]
    assert "UNREADABLE bad/zarr.json" in out.stdout

    out = run("check", root, "--json")
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["ok"] is False
    assert {b["key"]: b["array"] for b in report["broken"]} == {
        "crc/c/1/2": "/crc", "grp/zst/c/7": "/grp/zst", "grp/sharded/c/1/0": "/grp/sharded"}
    assert "ChecksumMismatch" in next(b["error"] for b in report["broken"]
                                      if b["key"] == "crc/c/1/2")
    assert [d["key"] for d in report["unreadable_metadata"]] == ["bad/zarr.json"]
    # The rest of the store is clean.
    assert run("check", root, "--path", "/grp/zst").returncode == 1
    (root / "bad" / "zarr.json").unlink()
    cut.unlink()
    shard.unlink()
    flipped.unlink()
    assert ok("check", root).returncode == 0


# -- consolidate, tree, info --------------------------------------------------------------

def test_consolidate_v3_and_v2(tmp_path):
    store = damaged_store(tmp_path / "v3.zarr")
    out = json.loads(ok("consolidate", tmp_path / "v3.zarr", "--json").stdout)
    arrays, groups = store.find_all_nodes()
    assert out["key"] == "zarr.json" and out["nodes"] == len(arrays) + len(groups) - 1
    doc = json.loads((tmp_path / "v3.zarr" / "zarr.json").read_text())
    assert set(doc["consolidated_metadata"]["metadata"]) == {"crc", "grp", "grp/zst",
                                                              "grp/sharded"}
    v2_source(tmp_path / "v2.zarr")
    out = ok("consolidate", tmp_path / "v2.zarr")
    assert ".zmetadata" in out.stdout
    zmeta = json.loads((tmp_path / "v2.zarr" / ".zmetadata").read_text())
    assert "g/t/.zarray" in zmeta["metadata"]
    line = one_line_error(run("consolidate", tmp_path / "v2.zarr", "--path", "/g/t"))
    assert "/g/t" in line


def entries(tree):
    """``{path: (node_type, shape)}`` of a ``tree --json`` document."""
    out = {tree["path"]: (tree["node_type"], tree.get("shape"))}
    for member in tree.get("members", []):
        out.update(entries(member))
    return out


def test_tree_and_info(tmp_path):
    want = v2_source(tmp_path / "src.zarr")
    url = tmp_path / "src.zarr"
    text = ok("tree", url).stdout
    assert "t (100, 60) float32, chunks (10, 7)" in text and "names (5,)" in text
    store = zs.FilesystemStore(url, mode="r")
    arrays, groups = store.find_all_nodes()
    expected = {a.path: ("array", list(store.array_metadata(a).shape)) for a in arrays}
    expected.update({g.path: ("group", None) for g in groups})
    assert entries(json.loads(ok("tree", url, "--json").stdout)) == expected
    sub = json.loads(ok("tree", url, "--path", "/g", "--json").stdout)
    assert entries(sub) == {"/g": ("group", None), "/g/t": ("array", [100, 60])}

    info = ok("info", url, "/g/t").stdout
    assert "float32" in info and "(100, 60)" in info and "y, x" in info
    doc = json.loads(ok("info", url, "/g/t", "--json").stdout)
    meta = store.array_metadata(ArrayNode.of_path("/g/t"))
    assert list(doc["shape"]) == list(want["/g/t"].shape) == list(meta.shape)
    assert doc["chunk_shape"] == list(meta.chunks) and doc["zarr_format"] == 2
    assert doc["nchunks_stored"] == len(store.stored_chunks(ArrayNode.of_path("/g/t")))
    group = json.loads(ok("info", url, "/g", "--json").stdout)
    assert group == {"node_type": "group", "path": "/g", "zarr_format": 2, "arrays": ["t"],
                     "groups": [], "consolidated": False, "attributes": {"level": 1}}
    root = ok("info", url, "/").stdout
    assert "group" in root and "names" in root and "g" in root
    assert "KeyNotFound" not in one_line_error(run("tree", url, "--path", "/g/t"))


# -- progress -----------------------------------------------------------------------------

def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path):
    v2_source(tmp_path / "src.zarr")
    out = ok("copy", tmp_path / "src.zarr", tmp_path / "dst.zarr")
    assert out.stderr.strip().startswith("note:") or out.stderr == ""
    assert "B/s" not in out.stderr and "it/s" not in out.stderr and "%|" not in out.stderr


def read_pty(args):
    """Run ``zarrsync ARGS`` with stderr on a pseudo-terminal; (code, stdout, terminal text)."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-P", "-m", "zarrsync", *map(str, args)],
                                stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                                text=True)
    finally:
        os.close(slave)
    seen = b""
    while True:
        try:
            part = os.read(master, 4096)
        except OSError:   # EIO: the child closed the terminal
            break
        if not part:
            break
        seen += part
    os.close(master)
    stdout = proc.stdout.read()
    proc.stdout.close()
    return proc.wait(timeout=120), stdout, seen.decode("utf-8", "replace")


def test_progress_bar_on_a_terminal(tmp_path):
    v2_source(tmp_path / "src.zarr")
    code, stdout, terminal = read_pty(["copy", tmp_path / "src.zarr", tmp_path / "dst.zarr"])
    assert code == 0, terminal
    assert "B/s" in terminal and "chunks=" in terminal and "100%" in terminal
    assert stdout.startswith("copied")
    code, _, terminal = read_pty(["copy", tmp_path / "src.zarr", tmp_path / "quiet.zarr",
                                  "--no-progress"])
    assert code == 0 and "B/s" not in terminal and "%|" not in terminal
    code, _, terminal = read_pty(["check", tmp_path / "src.zarr"])
    assert code == 0 and "chunk/s" in terminal
