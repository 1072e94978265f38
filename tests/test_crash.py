"""A writer killed with SIGKILL never leaves a torn chunk or zarr.json in a FilesystemStore.

A child process writes whole chunks of one array in a loop, generation
after generation, and rewrites the array's ``zarr.json`` (its attributes)
after each generation. The parent kills it with SIGKILL, then checks these
things. Every chunk decodes: crc32c is in the codec chain, so torn or mixed
bytes would fail. Every chunk holds exactly the value of one generation:
its old value or a new one, in the order the child wrote them. The array's
metadata opens. Temporary files are never listed as keys. Each round
continues from the state the previous one left.

The kill lands in three ways. In a "free" round it comes at a random time.
In a "torn" round the child writes 4 KiB per ``os.write`` call and hangs
inside a random one of them, so the kill cuts a temporary file (a chunk's or
zarr.json's) in half. In a "stall" round the kill comes while the child
hangs in a random ``os.replace`` call, after a temporary file is complete
but before it is moved into place.

An erase killed after it moved a node's folder out of sight, before it
deleted it, leaves no node that zarrsync or zarr-python would list.
"""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

import zarrsync as zs
from zarrsync import ArrayNode, GroupNode
from zarrsync.codecs import Bytes, Crc32c

SHAPE = (12, 32768)   # 12 chunks of 128 KiB (int32)
CHUNKS = (1, 32768)
NODE = ArrayNode.of_path("/g/arr")

CHILD = r"""
import os, sys, time
import numpy as np
import zarrsync as zs

root, start, mode, nth = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
out = sys.stdout
calls = 0

def signal_and_hang():
    out.write("caught\n"); out.flush()
    time.sleep(60)

if mode == "torn":  # write 4 KiB per call; hang inside the nth call
    real_write = os.write
    def torn_write(fd, data):
        global calls
        n = real_write(fd, data[:4096])
        calls += 1
        if calls == nth:
            signal_and_hang()
        return n
    os.write = torn_write
elif mode == "stall":  # hang in the nth os.replace: the temporary file is complete
    real_replace = os.replace
    def stalled_replace(src, dst):
        global calls
        calls += 1
        if calls == nth:
            signal_and_hang()
        return real_replace(src, dst)
    os.replace = stalled_replace

def PATTERN(gen, i, width):
    return (np.arange(width, dtype=np.int64) * 7919 + gen * 1_000_003 + i * 101).astype("int32")

store = zs.FilesystemStore(root)
node = zs.ArrayNode.of_path("/g/arr")
meta = store.array_metadata(node)
n_chunks, width = meta.shape[0], meta.shape[1]
out.write("ready\n"); out.flush()
gen = start
while True:
    for i in range(n_chunks):
        store.write_array(node, (slice(i, i + 1),), PATTERN(gen, i, width)[None])
    store.set_attributes(node, {"generation": gen})
    gen += 1
"""


def pattern(gen, i, width):
    """Chunk ``i`` of generation ``gen``: every element differs, so a mix shows."""
    return (np.arange(width, dtype=np.int64) * 7919 + gen * 1_000_003 + i * 101).astype("int32")


def chunk_generations(store):
    """The generation each chunk holds; fails if a chunk is torn or mixed."""
    meta = store.array_metadata(NODE)
    gens = []
    for i in range(SHAPE[0]):
        key = f"g/arr/c/{i}/0"
        raw = store.get(key)
        assert raw is not None, f"chunk {key} is missing"
        row = meta.chain.decode(raw, key).reshape(-1)  # raises on a bad crc32c
        gen = round((int(row[0]) - i * 101) / 1_000_003)
        np.testing.assert_array_equal(row, pattern(gen, i, SHAPE[1]),
                                      err_msg=f"chunk {i} holds no single generation")
        gens.append(gen)
    return gens


def run_child(root, start, mode, nth, script=CHILD, latest=0.15, extra=()):
    """Run the writer ``script`` until it is killed: at a random time up to
    ``latest`` seconds in ("free"), or while it hangs inside its ``nth``
    ``os.write`` ("torn") or ``os.replace`` ("stall")."""
    proc = subprocess.Popen([sys.executable, "-P", "-c", script, str(root), str(start), mode,
                             str(nth), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        if mode == "free":
            time.sleep(random.uniform(0.01, latest))
        else:
            assert proc.stdout.readline() == "caught\n", proc.stderr.read()
        assert proc.poll() is None, f"the writer died: {proc.stderr.read()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def temporary_files(root):
    return [os.path.join(folder, n) for folder, _, names in os.walk(root) for n in names
            if n.startswith(".") and n.endswith(".zarrsync-tmp")]


ROUNDS = ["stall", "torn", "free", "torn", "free", "stall", "free"]


@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_while_writing_chunks(tmp_path, seed):
    rng = random.Random(seed)
    root = tmp_path / "store.zarr"
    store = zs.FilesystemStore(root)
    store.create_array(NODE, shape=SHAPE, chunks=CHUNKS, dtype="int32",
                       codecs=[Bytes(), Crc32c()], attributes={"generation": 0})
    for i in range(SHAPE[0]):
        store.write_array(NODE, (slice(i, i + 1),), pattern(0, i, SHAPE[1])[None])
    old, old_attr = [0] * SHAPE[0], 0
    chunk_writes = SHAPE[1] * 4 // 4096  # os.write calls per chunk in "torn" rounds

    for round_, mode in enumerate(ROUNDS):
        start = max(old) + 1
        nth = rng.randint(1, 2 * SHAPE[0] * (chunk_writes if mode == "torn" else 1))
        before_tmp = set(temporary_files(root))
        random.seed(seed * 100 + round_)
        run_child(root, start, mode, nth)
        store = zs.FilesystemStore(root)  # as a new process would open it
        meta = store.array_metadata(NODE)
        assert meta.shape == SHAPE
        gens = chunk_generations(store)
        where = f"round {round_} ({mode}, nth={nth}): generations {gens}, before {old}"

        # Chunks are written in order, generation after generation: the newest
        # generation G covers a prefix of the chunks, the rest hold G - 1, or
        # their old value when G is the first generation of this round.
        newest = max(gens)
        if gens != old:
            assert newest >= start, where
            k = next((i for i, g in enumerate(gens) if g != newest), len(gens))
            previous = [newest - 1 if newest > start else o for o in old]
            assert gens[k:] == previous[k:], where
        # zarr.json is rewritten after each whole generation: never torn, never ahead.
        def attr_after(g):
            return g if g >= start else old_attr
        if all(g == newest for g in gens):
            allowed = {attr_after(newest), attr_after(newest - 1)}
        else:
            allowed = {attr_after(newest - 1)}
        assert meta.attributes["generation"] in allowed, where

        new_tmp = set(temporary_files(root)) - before_tmp
        if mode != "free":
            # The kill landed between creating a temporary file and moving it.
            assert new_tmp, where
        keys = store.list_prefix("")
        assert not any(".zarrsync-tmp" in k for k in keys)
        assert len(keys) == 3 + SHAPE[0], keys  # zarr.json, g/, g/arr/, the chunks
        old, old_attr = gens, meta.attributes["generation"]

    # The array opens and reads (here and in zarr-python), and takes new writes.
    data = store.read_array(NODE)
    za = zarr.open_array(zarr.storage.LocalStore(str(root), read_only=True), path="g/arr",
                         mode="r")
    np.testing.assert_array_equal(za[...], data)
    store.write_array(NODE, ..., np.zeros(SHAPE, dtype="int32") + 5)
    np.testing.assert_array_equal(store.read_array(NODE), 5)
    # Erasing the array also removes what the killed writers left behind.
    store.erase_array_node(NODE)
    assert temporary_files(root) == []


# -- consolidated metadata ------------------------------------------------------------
#
# A child reshapes an array, sets attributes (array, group, root), erases and
# re-creates an array and renames a group, in a loop, in a store whose root and
# /g both hold consolidated metadata. zarrsync's rule (docs/design.md): a change
# first retracts the node's entries from every copy above it, then changes the
# node, then publishes the new entries. So after a kill at any point, every
# entry of every copy equals its node's own zarr.json; an entry may be missing
# (the node changed while retracted), never wrong or for a node that is gone.

CONSOLIDATED_CHILD = r"""
import os, sys, time
import zarrsync as zs
from zarrsync import ArrayNode, GroupNode

root, start, mode, nth = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
zarr_format = int(sys.argv[5])
out = sys.stdout
calls = 0
if mode == "stall":  # hang in the nth os.replace: a document is about to be replaced
    real_replace = os.replace
    def stalled_replace(src, dst):
        global calls
        calls += 1
        if calls == nth:
            out.write("caught\n"); out.flush()
            time.sleep(60)
        return real_replace(src, dst)
    os.replace = stalled_replace

store = zs.FilesystemStore(root)
arr, g, eph = (ArrayNode.of_path("/g/arr"), GroupNode.of_path("/g"),
               ArrayNode.of_path("/g/h/eph"))
out.write("ready\n"); out.flush()
gen = start
while True:
    store.reshape(arr, (1 + gen % 7, 4))
    store.set_attributes(arr, {"gen": gen})
    store.set_attributes(g, {"gen": gen})
    store.set_attributes(GroupNode.root(), {"gen": gen})
    store.erase_array_node(eph)
    store.create_array(eph, shape=(1 + gen % 5,), chunks=(2,), dtype="int16",
                       attributes={"gen": gen}, zarr_format=zarr_format)
    r = GroupNode.of_path("/g/r0")
    if not store.group_exists(r):
        r = GroupNode.of_path("/g/r1")
    store.rename_group(r, "r1" if r.name == "r0" else "r0")
    gen += 1
"""

CONSOLIDATED_ROUNDS = ["stall", "free", "stall", "free", "stall", "stall", "free", "free"]


def run_consolidated_child(root, start, mode, nth, zarr_format):
    """Run the consolidated-metadata writer until killed: at a random time
    ("free"), or while it hangs in its ``nth`` ``os.replace`` ("stall")."""
    run_child(root, start, mode, nth, script=CONSOLIDATED_CHILD, latest=0.3,
              extra=[str(zarr_format)])


def check_copies(root, where):
    """Every entry of each copy (at / and /g: a zarr.json block, or a v2
    .zmetadata) equals its node's own documents; returns how many nodes below
    each holder its copy misses. A v2 holder may have dropped its whole copy
    (while its own attributes changed): then every node counts as missed."""
    store = zs.FilesystemStore(root, mode="r")
    missing = {}
    for holder in ("", "g"):
        meta = store.group_metadata(GroupNode.of_path("/" + holder))
        copy = meta.consolidated
        assert copy is not None or meta.zarr_format == 2, \
            f"{where}: /{holder} lost its consolidated metadata"
        for rel, entry in (copy or {}).items():
            path = f"/{holder}/{rel}" if holder else f"/{rel}"
            if isinstance(entry, zs.ArrayMetadata):
                node = ArrayNode.of_path(path)
                assert store.array_exists(node), f"{where}: /{holder} holds {rel!r}, gone"
                assert entry == store.array_metadata(node), \
                    f"{where}: /{holder} holds a stale {rel!r}"
            else:
                node = GroupNode.of_path(path)
                assert store.group_exists(node), f"{where}: /{holder} holds {rel!r}, gone"
                own = store.group_metadata(node)
                assert (entry.attributes, entry.extra) == (own.attributes, own.extra), \
                    f"{where}: /{holder} holds a stale {rel!r}"
        prefix = f"{holder}/" if holder else ""
        nodes = {k[len(prefix):].rpartition("/")[0] for k in store.list_prefix(prefix)
                 if k.rpartition("/")[2] in ("zarr.json", ".zarray", ".zgroup")}
        nodes.discard("")
        missing[holder] = len(nodes - set(copy or {}))
    return missing


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
@pytest.mark.filterwarnings("ignore:Object at .*zarrsync-tmp")  # what killed writers leave
@pytest.mark.parametrize("seed,zarr_format", [(0, 3), (1, 3), (0, 2), (1, 2)])
def test_sigkill_keeps_consolidated_metadata_true(tmp_path, seed, zarr_format):
    rng = random.Random(seed)
    root = tmp_path / "store.zarr"
    store = zs.FilesystemStore(root)
    store.create_group(GroupNode.root(), zarr_format=zarr_format)
    store.create_array(ArrayNode.of_path("/g/arr"), shape=(4, 4), chunks=(2, 2),
                       dtype="int32", attributes={"gen": 0}, zarr_format=zarr_format)
    store.write_array(ArrayNode.of_path("/g/arr"), ..., np.arange(16, dtype="int32").reshape(4, 4))
    store.create_array(ArrayNode.of_path("/g/h/eph"), shape=(2,), chunks=(2,), dtype="int16",
                       zarr_format=zarr_format)
    store.create_array(ArrayNode.of_path("/g/r0/x"), shape=(3,), chunks=(3,), dtype="uint8",
                       zarr_format=zarr_format)
    store.consolidate_metadata(zs.GroupNode.of_path("/g"))
    store.consolidate_metadata()
    assert check_copies(root, "setup") == {"": 0, "g": 0}

    start = 1
    for round_, mode in enumerate(CONSOLIDATED_ROUNDS):
        nth = rng.randint(1, 60)
        random.seed(seed * 100 + round_)
        run_consolidated_child(root, start, mode, nth, zarr_format)
        check_copies(root, f"round {round_} ({mode}, nth={nth})")
        start += 1000  # generations of each round differ from the last round's

    # Consolidating again makes the copies whole; zarr-python agrees with them.
    store = zs.FilesystemStore(root)
    store.consolidate_metadata(zs.GroupNode.of_path("/g"))
    store.consolidate_metadata()
    assert check_copies(root, "after consolidating") == {"": 0, "g": 0}
    zroot = zarr.storage.LocalStore(str(root), read_only=True)
    consolidated = zarr.open_consolidated(zroot, mode="r")
    plain = zarr.open_group(zroot, mode="r", use_consolidated=False)
    for path, node in plain.members(max_depth=None):
        if isinstance(node, zarr.Array):
            assert consolidated[path].shape == node.shape, path
        assert dict(consolidated[path].attrs) == dict(node.attrs), path


ERASE_CHILD = r"""
import shutil, sys, time
import zarrsync as zs

root, node, follow_links = sys.argv[1], sys.argv[5], sys.argv[6] == "True"
out = sys.stdout
def stalled_rmtree(*args, **kwargs):  # the folder is moved out of sight, not yet deleted
    out.write("caught\n"); out.flush()
    time.sleep(60)
shutil.rmtree = stalled_rmtree
store = zs.FilesystemStore(root, follow_links=follow_links)
out.write("ready\n"); out.flush()
if node.endswith("arr"):
    store.erase_array_node(zs.ArrayNode.of_path(node))
else:
    store.erase_group_node(zs.GroupNode.of_path(node))
"""


@pytest.mark.filterwarnings("ignore:Object at .*zarrsync-tmp")  # what the killed erase leaves
@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("erased", ["/g/arr", "/g"])
@pytest.mark.parametrize("follow_links", [True, False], ids=["links", "confined"])
def test_sigkill_mid_erase_leaves_no_node_for_any_reader(tmp_path, zarr_format, erased,
                                                         follow_links):
    root = tmp_path / "store.zarr"
    store = zs.FilesystemStore(root)
    store.create_group(GroupNode.root(), zarr_format=zarr_format)
    store.create_array(ArrayNode.of_path("/g/arr"), shape=(4,), chunks=(2,), dtype="int32",
                       zarr_format=zarr_format)
    store.write_array(ArrayNode.of_path("/g/arr"), ..., np.arange(4, dtype="int32"))
    store.create_array(ArrayNode.of_path("/keep"), shape=(2,), chunks=(2,), dtype="uint8",
                       zarr_format=zarr_format)

    run_child(root, 0, "stall", 0, script=ERASE_CHILD, extra=[erased, str(follow_links)])

    leftovers = [n for n in os.listdir(root) if n.endswith(".zarrsync-tmp")]
    assert len(leftovers) == 1, "the kill did not land between the move and the delete"
    holder = root / leftovers[0]
    assert os.listdir(holder) == ["node"]   # the erased folder, below a folder of no node
    store = zs.FilesystemStore(root, mode="r")
    expected = {"/keep"} | ({"/g"} if erased == "/g/arr" else set())
    arrays, groups = store.find_all_nodes()
    assert {str(n) for n in arrays + groups} - {"/"} == expected
    plain = zarr.open_group(zarr.storage.LocalStore(str(root), read_only=True), mode="r")
    assert {"/" + path for path, _ in plain.members(max_depth=None)} == expected

    # Clearing the store removes what the kill left.
    zs.FilesystemStore(root, follow_links=follow_links).erase_prefix("")
    assert os.listdir(root) == []
