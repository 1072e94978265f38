"""``ObjectStore`` against a real S3 server (moto's server mode on loopback,
started by the tests), directly and behind a proxy that adds 20 ms per
request and injects faults: dropped connections, 503s and stalls.

The store contract runs on it (and ``conftest.STORE_FACTORIES`` puts it under
every hierarchy test that takes the ``store`` fixture). Beyond the contract:
retries hide transient faults; once retries are spent the error is a
``StoreError`` naming the key; no fault leaves a torn or lost object; reads
of many chunks run concurrently; ranges of a shard are coalesced; listing uses
consolidated metadata; credentials stay out of reprs and errors; the store
pickles; ``open_store`` picks it from the URL. A read checks the array's
document while it reads the chunks, and a sharded read keeps the shard's
index and reads inner chunks on the condition that the shard is unchanged:
both stay right when another writer changes the array meanwhile.
"""

import json
import pickle
import threading
from datetime import timedelta

import numpy as np
import pytest

import s3_server
import zarrsync as zs
from store_contract import StoreContract
from zarrsync import ArrayNode, GroupNode
from zarrsync.codecs import Bytes, ShardingIndexed, Zstd
from zarrsync.errors import CodecError, ReadOnlyStoreError, StoreError

pytest.importorskip("obstore")
pytest.importorskip("moto")


class TestObjectStore(StoreContract):
    @pytest.fixture
    def make_store(self):
        return s3_server.new_store

    @pytest.fixture
    def reopen_read_only(self):
        return lambda store: zs.ObjectStore(store.url, mode="r", **s3_server.options())


@pytest.fixture(scope="module")
def proxy():
    p = s3_server.FaultProxy(s3_server.endpoint(), latency=0.02, stall=3.0)
    yield p
    p.close()


def through(proxy, store, mode="a", **extra):
    """The data of ``store`` opened again through ``proxy``."""
    retry = {"max_retries": 3, "retry_timeout": timedelta(seconds=20),
             "backoff": {"init_backoff": timedelta(milliseconds=10),
                         "max_backoff": timedelta(milliseconds=100), "base": 2}}
    extra.setdefault("retry_config", retry)
    extra.setdefault("client_options", {"allow_http": True, "timeout": "1s"})
    return zs.ObjectStore(store.url, mode=mode, **s3_server.options(proxy.url, **extra))


def filled(store, shape=(64, 64), chunks=(8, 8)):
    node = ArrayNode.of_path("/g/a")
    data = np.arange(np.prod(shape), dtype="float64").reshape(shape)
    store.create_array(node, shape=shape, chunks=chunks, dtype="float64",
                       codecs=[Bytes(), Zstd(level=1)])
    store.write_array(node, ..., data)
    return node, data


# -- concurrency ------------------------------------------------------------------------

def test_a_read_fetches_its_chunks_concurrently(proxy):
    store = s3_server.new_store()
    node, data = filled(store)
    remote = through(proxy, store, mode="r")
    proxy.reset_counts()
    np.testing.assert_array_equal(remote.read_array(node), data)
    assert proxy.count("GET") >= 64   # the 64 chunks, and the document
    # Many requests were in flight at once (each is held 20 ms by the proxy).
    assert proxy.most_in_flight >= 8


def test_requests_in_flight_are_bounded_per_store_object():
    store = s3_server.new_store()
    node, data = filled(store)
    proxy = s3_server.FaultProxy(s3_server.endpoint(), latency=0.02)   # none left stalling
    remote = through(proxy, store, mode="r", max_concurrency=4)
    results = [None, None]

    def read(k):
        results[k] = remote.read_array(node)
    threads = [threading.Thread(target=read, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        np.testing.assert_array_equal(got, data)
    # Two reads of 64 chunks at once, from two threads: 4 requests in flight at most.
    assert proxy.count("GET") >= 128
    assert proxy.most_in_flight == 4
    proxy.close()


def test_a_streamed_read_fills_absent_chunks_and_names_a_broken_one(proxy):
    store = s3_server.new_store()
    node, data = filled(store)
    for key in ["g/a/c/0/0", "g/a/c/7/7", "g/a/c/3/4"]:
        store.erase(key)
    expected = data.copy()
    expected[0:8, 0:8] = expected[56:64, 56:64] = expected[24:32, 32:40] = 0
    remote = through(proxy, store, mode="r")
    np.testing.assert_array_equal(remote.read_array(node), expected)
    store.set("g/a/c/5/1", store.get("g/a/c/5/1")[:-7])   # a cut zstd frame
    with pytest.raises(zs.CodecError, match="g/a/c/5/1"):
        remote.read_array(node)
    # Every request of the failed read has ended: the next read is whole.
    np.testing.assert_array_equal(remote.read_array(node, (slice(0, 40), slice(0, 64))),
                                  expected[:40])


def test_sharded_reads_coalesce_ranges(proxy):
    store = s3_server.new_store()
    node = ArrayNode.of_path("/s")
    store.create_array(node, shape=(64, 64), chunks=(64, 64), dtype="uint16",
                       codecs=[ShardingIndexed((8, 8), codecs=[Bytes(), Zstd(1)])])
    data = np.arange(64 * 64, dtype="uint16").reshape(64, 64)
    store.write_array(node, ..., data)
    remote = through(proxy, store, mode="r")
    remote.array_metadata(node)
    proxy.reset_counts()
    np.testing.assert_array_equal(remote.read_array(node, (slice(0, 24), slice(0, 64))),
                                  data[:24])
    # 24 inner chunks, close together in one shard: a handful of requests, not 24.
    assert proxy.count("GET") <= 6, proxy.requests


def sharded(store, path="/s"):
    node = ArrayNode.of_path(path)
    store.create_array(node, shape=(64, 64), chunks=(32, 32), dtype="uint16",
                       codecs=[ShardingIndexed((8, 8), codecs=[Bytes(), Zstd(1)])])
    data = np.arange(64 * 64, dtype="uint16").reshape(64, 64)
    store.write_array(node, ..., data)
    return node, data


def test_a_point_read_of_a_known_shard_is_one_round_trip(proxy):
    store = s3_server.new_store()
    node, data = sharded(store)
    remote = through(proxy, store, mode="r")
    assert remote.read_array(node, (1, 2)) == data[1, 2]   # reads the index, keeps it
    proxy.reset_counts()
    for point in [(3, 4), (30, 1), (17, 9)]:
        assert remote.read_array(node, point) == data[point]
    # Per read: the document (checked) and the inner chunk, at the same time.
    assert proxy.count("GET") == 6, proxy.requests
    assert proxy.count() == 6, proxy.requests
    assert proxy.most_in_flight == 2


def test_without_kept_indexes_each_read_fetches_the_index(proxy):
    store = s3_server.new_store()
    node, data = sharded(store)
    remote = through(proxy, store, mode="r")
    with zs.config.set(cached_shard_index_bytes=0):
        assert remote.read_array(node, (1, 2)) == data[1, 2]
        proxy.reset_counts()
        assert remote.read_array(node, (40, 41)) == data[40, 41]
        # The document, the index (its size comes with it), the inner chunk.
        assert proxy.count("GET") == 3 and proxy.count() == 3, proxy.requests
        np.testing.assert_array_equal(remote.read_array(node), data)


def test_kept_indexes_follow_shards_rewritten_by_another_writer():
    store = s3_server.new_store()
    node, data = sharded(store)
    reader = zs.ObjectStore(store.url, mode="r", **s3_server.options())
    np.testing.assert_array_equal(reader.read_array(node), data)   # keeps every index
    # Another writer rewrites part of a shard: its inner chunks move.
    new = data.copy()
    new[0:9, 0:9] = 7
    store.write_array(node, (slice(0, 9), slice(0, 9)), 7)
    assert reader.read_array(node, (20, 20)) == data[20, 20]
    np.testing.assert_array_equal(reader.read_array(node), new)
    # ... erases a shard: the kept index must not bring it back.
    store.write_array(node, (slice(0, 32), slice(0, 32)), 0)
    new[:32, :32] = 0
    assert reader.read_array(node, (5, 5)) == 0
    np.testing.assert_array_equal(reader.read_array(node), new)


def test_a_read_sees_an_array_replaced_by_another_writer():
    store = s3_server.new_store()
    node, data = sharded(store)
    reader = zs.ObjectStore(store.url, mode="r", **s3_server.options())
    np.testing.assert_array_equal(reader.read_array(node), data)
    # Replaced by an array of another type, chunking and codecs (same path).
    store.erase_array_node(node)
    store.create_array(node, shape=(10, 70), chunks=(3, 7), dtype="float32",
                       codecs=[Bytes(endian="big")], fill_value=-1.5)
    store.write_array(node, (slice(0, 4), slice(0, 70)), 2.5)
    expected = np.full((10, 70), -1.5, dtype="float32")
    expected[:4] = 2.5
    np.testing.assert_array_equal(reader.read_array(node), expected)
    assert reader.read_array(node, (9, 69)) == -1.5
    # Resized: a read outside the old shape works at once.
    store.reshape(node, (20, 70))
    assert reader.read_array(node, (19, 0)) == -1.5
    store.erase_array_node(node)
    with pytest.raises(zs.KeyNotFound):
        reader.read_array(node, (0, 0))


def test_arrays_found_by_listing_are_read_in_one_round_trip(proxy):
    store = s3_server.new_store()
    node, data = filled(store)
    other = ArrayNode.of_path("/g/b")
    store.create_array(other, shape=(4,), chunks=(4,), dtype="int8")
    store.write_array(other, ..., np.arange(4, dtype="int8"))
    remote = through(proxy, store, mode="r")
    arrays, _ = remote.find_all_nodes()
    assert arrays == [node, other]
    proxy.reset_counts()
    assert remote.read_array(node, (3, 4)) == data[3, 4]
    # The document found by the listing is checked at the same time as the chunk is read.
    assert proxy.count() == 2 and proxy.most_in_flight == 2, proxy.requests
    # Changed by another writer after the listing: the read sees the change.
    store.erase_array_node(other)
    store.create_array(other, shape=(6,), chunks=(2,), dtype="float64", fill_value=0.5)
    np.testing.assert_array_equal(remote.read_array(other), np.full(6, 0.5))


def test_arrays_found_in_consolidated_metadata_are_read_in_one_round_trip(proxy):
    store = s3_server.new_store()
    node, data = filled(store)
    store.consolidate_metadata()
    remote = through(proxy, store, mode="r")
    assert remote.find_child_nodes(GroupNode.of_path("/g"))[0] == [node]
    proxy.reset_counts()
    assert remote.read_array(node, (5, 6)) == data[5, 6]
    assert proxy.count() == 2 and proxy.most_in_flight == 2, proxy.requests


def test_a_stale_consolidated_copy_does_not_decide_a_read():
    store = s3_server.new_store()
    node, data = filled(store)
    store.consolidate_metadata()
    # Another tool rewrites the array's document and leaves the copy as it was:
    # the copy still says chunks of 8 x 8 and a fill value of 0.
    doc = json.loads(store.get("g/a/zarr.json"))
    doc["chunk_grid"]["configuration"]["chunk_shape"] = [64, 64]
    doc["fill_value"] = 9.0
    store.set("g/a/zarr.json", json.dumps(doc).encode())
    for key in store.list_prefix("g/a/c/"):
        store.erase(key)
    reader = zs.ObjectStore(store.url, mode="r", **s3_server.options())
    assert reader.find_all_nodes()[0] == [node]   # from the copy
    np.testing.assert_array_equal(reader.read_array(node), np.full((64, 64), 9.0))


def test_a_broken_document_found_by_listing_fails_its_read_clearly():
    store = s3_server.new_store()
    node, _ = filled(store)
    doc = store.get("g/a/zarr.json").replace(b'"float64"', b'"float99"')
    store.set("g/a/zarr.json", doc)
    reader = zs.ObjectStore(store.url, mode="r", **s3_server.options())
    assert reader.find_all_nodes()[0] == [node]   # only node_type is needed to list
    with pytest.raises(zs.ParseError, match="float99"):
        reader.read_array(node, (0, 0))


def test_a_damaged_shard_index_fails_at_once(proxy):
    store = s3_server.new_store()
    node, _ = sharded(store)
    key = "s/c/0/0"
    raw = bytearray(store.get(key))
    raw[-1] ^= 0xFF   # the index's crc32c no longer matches
    store.set(key, bytes(raw))
    remote = through(proxy, store, mode="r")
    remote.array_metadata(node)
    proxy.reset_counts()
    with pytest.raises(CodecError, match="s/c/0/0"):
        remote.read_array(node, (0, 0))
    # The index came with the shard's size and version in one response: no race
    # to rule out by reading it again.
    assert proxy.count("GET") <= 2, proxy.requests


def test_listing_uses_consolidated_metadata(proxy):
    store = s3_server.new_store()
    for i in range(10):
        store.create_array(ArrayNode.of_path(f"/g{i % 3}/a{i}"), shape=(4,), chunks=(4,),
                           dtype="int8")
    store.consolidate_metadata()
    remote = through(proxy, store, mode="r")
    proxy.reset_counts()
    arrays, groups = remote.find_all_nodes()
    assert len(arrays) == 10 and len(groups) == 4
    assert proxy.count() == 2, proxy.requests   # zarr.json, and the .zmetadata probe


# -- faults ------------------------------------------------------------------------------

@pytest.mark.parametrize("faults", [["503"], ["drop"], ["503", "drop", "503"], ["stall"]])
def test_transient_faults_are_retried(proxy, faults):
    store = s3_server.new_store()
    node, data = filled(store, shape=(16, 16), chunks=(8, 8))
    remote = through(proxy, store)
    proxy.inject(*faults)
    np.testing.assert_array_equal(remote.read_array(node), data)
    proxy.inject(*faults)
    remote.write_array(node, (slice(0, 8), slice(0, 8)), np.float64(-1))
    data[:8, :8] = -1
    np.testing.assert_array_equal(store.read_array(node), data)


def test_faults_past_the_retries_are_store_errors_naming_the_key(proxy):
    store = s3_server.new_store()
    node, data = filled(store, shape=(8, 8), chunks=(8, 8))
    remote = through(proxy, store, retry_config={
        "max_retries": 2, "retry_timeout": timedelta(seconds=10),
        "backoff": {"init_backoff": timedelta(milliseconds=10),
                    "max_backoff": timedelta(milliseconds=20), "base": 2}})
    remote.array_metadata(node)
    proxy.inject(*["503"] * 10)
    try:
        with pytest.raises(StoreError, match=r"'g/a/(zarr\.json|c/0/0)'.*503") as info:
            remote.read_array(node)
    finally:
        proxy.faults.clear()
    assert s3_server.SECRET_KEY not in str(info.value)
    # The failed write left nothing torn: the old value reads back whole.
    proxy.inject(*["503"] * 10)
    try:
        with pytest.raises(StoreError, match=r"'g/a/(zarr\.json|c/0/0)'.*503"):
            remote.write_array(node, ..., np.zeros((8, 8)))
    finally:
        proxy.faults.clear()
    np.testing.assert_array_equal(store.read_array(node), data)


def test_writes_are_whole_or_absent_under_dropped_connections(proxy):
    store = s3_server.new_store()
    remote = through(proxy, store)
    values = [np.random.default_rng(i).bytes(100_000 + i) for i in range(20)]
    for i, value in enumerate(values):
        proxy.inject("drop" if i % 2 else "503")
        remote.set(f"k{i}", value)
    assert [store.get(f"k{i}") for i in range(20)] == values


# -- identity ----------------------------------------------------------------------------

def test_credentials_stay_out_of_repr_errors_and_pickles():
    store = s3_server.new_store()
    assert s3_server.SECRET_KEY not in repr(store)
    bad = zs.ObjectStore(store.url, mode="a", **s3_server.options(
        "http://127.0.0.1:9", retry_config={"max_retries": 0,
                                            "retry_timeout": timedelta(seconds=1)}))
    with pytest.raises(StoreError) as info:
        bad.get("zarr.json")
    assert s3_server.SECRET_KEY not in str(info.value)
    assert "zarr.json" in str(info.value)


def test_pickles_and_reopens_in_another_process():
    import subprocess
    import sys
    store = s3_server.new_store()
    node, data = filled(store, shape=(8, 8), chunks=(4, 4))
    blob = pickle.dumps(store)
    code = ("import pickle, sys, numpy as np, zarrsync as zs\n"
            "s = pickle.loads(sys.stdin.buffer.read())\n"
            "n = zs.ArrayNode.of_path('/g/a')\n"
            "s.write_array(n, (0, 0), np.float64(42))\n"
            "print(float(s.read_array(n).sum()))")
    out = subprocess.run([sys.executable, "-P", "-c", code], input=blob, capture_output=True,
                         check=True)
    data[0, 0] = 42
    assert float(out.stdout) == data.sum()
    np.testing.assert_array_equal(store.read_array(node), data)


def test_modes():
    store = s3_server.new_store()
    store.set("k", b"v")
    url, opts = store.url, s3_server.options()
    with pytest.raises(StoreError, match="not empty"):
        zs.ObjectStore(url, mode="w-", **opts)
    assert zs.ObjectStore(url, mode="r+", **opts).get("k") == b"v"
    with pytest.raises(ReadOnlyStoreError, match="cannot set"):
        zs.ObjectStore(url, mode="r", **opts).set("k", b"x")
    assert zs.ObjectStore(url, mode="w", **opts).list_prefix("") == []
    empty = f"s3://{s3_server.new_bucket()}/nothing"
    with pytest.raises(StoreError, match="holds nothing"):
        zs.ObjectStore(empty, mode="r+", **opts)
    with pytest.raises(ValueError, match="mode"):
        zs.ObjectStore(url, mode="x", **opts)


def test_open_store_picks_the_object_store():
    store = s3_server.new_store()
    store.create_group(GroupNode.of_path("/g"))
    opened = zs.open_store(store.url, mode="r", **s3_server.options())
    assert isinstance(opened, zs.ObjectStore) and opened.read_only
    assert opened.group_exists(GroupNode.of_path("/g"))
    with pytest.raises(StoreError, match="no store serves ftp://"):
        zs.open_store("ftp://example.com/x")


def test_credentials_and_endpoint_from_the_environment():
    """No options: obstore reads AWS_ENDPOINT_URL, the keys, the region and
    AWS_ALLOW_HTTP from the environment, as every AWS tool does."""
    import os
    import subprocess
    import sys
    store = s3_server.new_store()
    store.create_group(GroupNode.of_path("/g"), {"from": "options"})
    env = dict(os.environ, AWS_ENDPOINT_URL=s3_server.endpoint(),
               AWS_ACCESS_KEY_ID=s3_server.ACCESS_KEY,
               AWS_SECRET_ACCESS_KEY=s3_server.SECRET_KEY, AWS_REGION=s3_server.REGION,
               AWS_ALLOW_HTTP="true")
    code = ("import sys, zarrsync as zs\n"
            "s = zs.open_store(sys.argv[1], mode='r')\n"
            "print(s.group_metadata(zs.GroupNode.of_path('/g')).attributes['from'])")
    out = subprocess.run([sys.executable, "-P", "-c", code, store.url], env=env,
                         capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "options"
