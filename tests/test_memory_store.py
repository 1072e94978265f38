"""MemoryStore: the store contract, plus thread safety."""

import pickle

import pytest

import zarrsync as zs

from store_contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def make_store(self):
        return zs.MemoryStore


# ----------------------------------------------------------------------------------
# MemoryStore specifics
# ----------------------------------------------------------------------------------

def test_initial_contents_are_copied():
    src = {"zarr.json": b'{"zarr_format": 3, "node_type": "group", "attributes": {}}'}
    store = zs.MemoryStore(src)
    src["other"] = b"x"
    assert store.list_prefix("") == ["zarr.json"]
    assert store.group_exists(zs.GroupNode.root())
    assert store.to_dict() == {"zarr.json": src["zarr.json"]}
    assert len(store) == 1


def test_to_dict_is_a_copy():
    store = zs.MemoryStore()
    store.set("a", b"1")
    d = store.to_dict()
    d["b"] = b"2"
    assert store.get("b") is None


def test_negative_offset_beyond_start_reads_whole_value():
    store = zs.MemoryStore()
    store.set("a", b"abc")
    assert store.get_partial_values([("a", -10, None), ("a", -10, 2)]) == [b"abc", b"ab"]


def test_always_read_write():
    store = zs.MemoryStore()
    assert (store.mode, store.read_only) == ("a", False)


def test_a_pickled_store_is_an_independent_copy():
    store = zs.MemoryStore()
    node = zs.ArrayNode.of_path("/a")
    store.create_array(node, shape=(4,), chunks=(4,), dtype="int8")
    store.write_array(node, slice(0, 1), 5)  # a partial chunk: buffered
    copy = pickle.loads(pickle.dumps(store))
    assert copy.read_array(node).tolist() == [5, 0, 0, 0]
    copy.write_array(node, slice(1, 2), 6)
    store.set("only/here", b"x")
    assert store.read_array(node).tolist() == [5, 0, 0, 0]
    assert copy.get("only/here") is None


# ----------------------------------------------------------------------------------
# Thread safety
# ----------------------------------------------------------------------------------

import sys
import threading

import numpy as np

from zarrsync import ArrayNode, GroupNode
from zarrsync.codecs import Bytes, Crc32c, Gzip, Transpose, Zstd

N_THREADS = 12


@pytest.fixture
def frequent_thread_switches():
    """Switch threads often, so races show up in a short test."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def run_threads(target, args_list):
    """Run ``target(*args)`` per entry in its own thread, started together.

    Re-raises the first exception any thread raised.
    """
    barrier = threading.Barrier(len(args_list))
    errors = []

    def body(*args):
        try:
            barrier.wait()
            target(*args)
        except BaseException as e:  # collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=body, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


CHAINS = {
    "zstd_crc": [Bytes(), Zstd(1), Crc32c()],
    "transpose_gzip_crc": [Transpose((1, 0)), Bytes("big"), Gzip(1), Crc32c()],
}


def _all_chunks_decode(store, node):
    """Every stored chunk decodes (crc32c in the chain catches torn or mixed bytes)."""
    meta = store.array_metadata(node)
    chain = meta.chain
    for key in store.list_prefix(node.key + "/c"):
        chain.decode(store.get(key), key)


@pytest.mark.usefixtures("frequent_thread_switches")
@pytest.mark.parametrize("chain", list(CHAINS), ids=list(CHAINS))
def test_disjoint_unaligned_tiles(chain):
    # Tiles of 5x6 over chunks of 7x9: nearly every chunk is shared by several
    # tiles, so threads read-modify-write the same chunks at the same time.
    store = zs.MemoryStore()
    node = ArrayNode.of_path("/g/arr")
    shape = (60, 66)
    store.create_array(node, shape=shape, chunks=(7, 9), dtype="int32", fill_value=-1,
                       codecs=CHAINS[chain])
    expected = np.arange(np.prod(shape), dtype="int32").reshape(shape)
    tiles = [(slice(r, r + 5), slice(c, c + 6)) for r in range(0, 60, 5)
             for c in range(0, 66, 6)]
    rng = np.random.default_rng(0)
    rng.shuffle(tiles)

    def work(t):
        for sel in tiles[t::N_THREADS]:
            store.write_array(node, sel, expected[sel])

    run_threads(work, [(t,) for t in range(N_THREADS)])
    np.testing.assert_array_equal(store.read_array(node), expected)
    _all_chunks_decode(store, node)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_disjoint_interleaved_rows_and_columns():
    # Thread t owns rows t::T of the top half (strided slices) and columns
    # t::T of the bottom half (integer lists): every chunk is written by
    # every thread, always partially.
    store = zs.MemoryStore()
    node = ArrayNode.of_path("/arr")
    shape = (48, 40)
    store.create_array(node, shape=shape, chunks=(8, 8), dtype="float64",
                       fill_value=np.nan, codecs=CHAINS["zstd_crc"])
    rng = np.random.default_rng(3)
    expected = rng.standard_normal(shape)

    def work(t):
        for _ in range(2):  # twice: the second pass rewrites existing chunks
            rows = slice(t, 24, N_THREADS)
            store.write_array(node, (rows,), expected[:24][t::N_THREADS])
            cols = list(range(t, 40, N_THREADS))
            store.write_array(node, (slice(24, 48), cols), expected[24:, cols])

    run_threads(work, [(t,) for t in range(N_THREADS)])
    np.testing.assert_array_equal(store.read_array(node), expected)
    _all_chunks_decode(store, node)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_disjoint_single_elements_same_chunk():
    # One chunk, each thread writing its own elements one at a time.
    store = zs.MemoryStore()
    node = ArrayNode.of_path("/arr")
    store.create_array(node, shape=(16, 16), chunks=(16, 16), dtype="uint16",
                       codecs=CHAINS["zstd_crc"])
    expected = np.arange(256, dtype="uint16").reshape(16, 16) + 1
    cells = [(i, j) for i in range(16) for j in range(16)]

    def work(t):
        for i, j in cells[t::N_THREADS]:
            store.write_array(node, (i, j), expected[i, j])

    run_threads(work, [(t,) for t in range(N_THREADS)])
    np.testing.assert_array_equal(store.read_array(node), expected)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_disjoint_writes_through_array_views():
    # As dask.array.store does: one Array view per worker, same store.
    store = zs.MemoryStore()
    node = ArrayNode.of_path("/arr")
    store.create_array(node, shape=(30, 30), chunks=(4, 4), dtype="int64")
    expected = np.arange(900, dtype="int64").reshape(30, 30) * 3
    blocks = [(slice(r, r + 3), slice(c, c + 5)) for r in range(0, 30, 3)
              for c in range(0, 30, 5)]

    def work(t):
        view = zs.Array(store, node)
        for sel in blocks[t::N_THREADS]:
            view[sel] = expected[sel]

    run_threads(work, [(t,) for t in range(N_THREADS)])
    np.testing.assert_array_equal(np.asarray(zs.Array(store, node)), expected)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_overlapping_writes_never_corrupt():
    store = zs.MemoryStore()
    node = ArrayNode.of_path("/arr")
    shape = (40, 40)
    store.create_array(node, shape=shape, chunks=(6, 7), dtype="int32",
                       codecs=CHAINS["zstd_crc"])
    rng = np.random.default_rng(7)
    boxes = []
    for t in range(N_THREADS):
        r0, c0 = rng.integers(0, 30, 2)
        r1, c1 = r0 + rng.integers(5, 11), c0 + rng.integers(5, 11)
        boxes.append((slice(r0, r1), slice(c0, c1)))

    def work(t):
        sel = boxes[t]
        block = np.full((sel[0].stop - sel[0].start, sel[1].stop - sel[1].start), t + 1,
                        dtype="int32")
        for _ in range(5):
            store.write_array(node, sel, block)

    run_threads(work, [(t,) for t in range(N_THREADS)])
    got = store.read_array(node)
    _all_chunks_decode(store, node)
    writers = [[set() for _ in range(shape[1])] for _ in range(shape[0])]
    for t, (rs, cs) in enumerate(boxes):
        for i in range(rs.start, rs.stop):
            for j in range(cs.start, cs.stop):
                writers[i][j].add(t + 1)
    for i in range(shape[0]):
        for j in range(shape[1]):
            allowed = writers[i][j] or {0}
            assert got[i, j] in allowed, (i, j, got[i, j], allowed)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_reads_during_writes_see_only_written_values():
    store = zs.MemoryStore()
    node = ArrayNode.of_path("/arr")
    shape = (32, 32)
    store.create_array(node, shape=shape, chunks=(5, 5), dtype="int32", fill_value=-7,
                       codecs=CHAINS["transpose_gzip_crc"])
    final = np.arange(1024, dtype="int32").reshape(shape)
    n_writers = N_THREADS // 2

    def work(t):
        if t < n_writers:
            for r in range(t, 32, n_writers):
                store.write_array(node, (r, slice(None)), final[r])
        else:
            for _ in range(15):
                got = store.read_array(node)
                ok = (got == final) | (got == -7)
                assert ok.all()

    run_threads(work, [(t,) for t in range(N_THREADS)])
    np.testing.assert_array_equal(store.read_array(node), final)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_concurrent_create_erase_list():
    store = zs.MemoryStore()
    store.create_group(GroupNode.root())
    # Background keys so listing iterates for a while.
    for i in range(300):
        store.create_group(GroupNode.of_path(f"/bg/g{i}"))
    n_workers = N_THREADS // 2
    rounds = 15

    def worker(t):
        g = GroupNode.of_path(f"/w{t}")
        for k in range(rounds):
            a = ArrayNode(g, f"a{k}")
            store.create_array(a, shape=(6,), chunks=(2,), dtype="int16")
            store.write_array(a, ..., np.full(6, k + 1, dtype="int16"))
            store.create_group(g / f"sub{k}", attrs={"k": k})
            if k % 2:
                store.erase_array_node(a)
                store.erase_group_node(g / f"sub{k}")

    def lister(t):
        for _ in range(rounds):
            arrays, groups = store.find_all_nodes()
            assert GroupNode.root() in groups
            store.find_child_nodes(GroupNode.root())
            store.list_prefix("")
            store.list_dir("bg/")
            store.list_dir("")

    def work(t):
        (worker if t < n_workers else lister)(t)

    run_threads(work, [(t,) for t in range(N_THREADS)])
    arrays, groups = store.find_all_nodes()
    kept = range(0, rounds, 2)
    assert sorted(arrays) == sorted(ArrayNode.of_path(f"/w{t}/a{k}")
                                    for t in range(n_workers) for k in kept)
    for t in range(n_workers):
        for k in kept:
            np.testing.assert_array_equal(
                store.read_array(ArrayNode.of_path(f"/w{t}/a{k}")), np.full(6, k + 1))
            assert store.group_metadata(GroupNode.of_path(f"/w{t}/sub{k}")).attributes \
                == {"k": k}
    assert len(groups) == 1 + 1 + 300 + n_workers + n_workers * len(kept)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_concurrent_erase_prefix_and_set():
    store = zs.MemoryStore()

    def work(t):
        for k in range(200):
            store.set(f"t{t}/k{k}", b"v")
            if t == 0 and k % 20 == 0:
                store.erase_prefix("t0/")
            if t == 1:
                store.list_prefix("t")

    run_threads(work, [(t,) for t in range(N_THREADS)])
    for t in range(1, N_THREADS):
        assert len(store.list_prefix(f"t{t}/")) == 200


@pytest.mark.usefixtures("frequent_thread_switches")
def test_concurrent_create_same_group():
    store = zs.MemoryStore()
    deep = GroupNode.of_path("/a/b/c/d")

    def work(t):
        store.create_group(deep)
        store.create_group(GroupNode.of_path(f"/a/b/t{t}"))

    run_threads(work, [(t,) for t in range(N_THREADS)])
    for g in deep.ancestors() + [deep]:
        assert store.group_exists(g)
    _, groups = store.find_child_nodes(GroupNode.of_path("/a/b"))
    assert len(groups) == N_THREADS + 1


@pytest.mark.usefixtures("frequent_thread_switches")
def test_concurrent_writes_to_different_arrays():
    store = zs.MemoryStore()
    nodes = [ArrayNode.of_path(f"/arr{t}") for t in range(N_THREADS)]
    for t, node in enumerate(nodes):
        store.create_array(node, shape=(20, 20), chunks=(3, 3), dtype="float32",
                           codecs=CHAINS["zstd_crc"])

    def work(t):
        data = np.full((20, 20), t, dtype="float32")
        for r in range(0, 20, 2):
            store.write_array(nodes[t], (slice(r, r + 2),), data[r:r + 2])

    run_threads(work, [(t,) for t in range(N_THREADS)])
    for t, node in enumerate(nodes):
        np.testing.assert_array_equal(store.read_array(node), np.full((20, 20), t))
