"""Stored chunks filled again instead of freed (``_kernels.memory``).

A rewrite of uncompressed chunks keeps each replaced ``bytes`` that nothing
else references and fills it with a later chunk of its size, so the new
chunks land on pages already mapped. The one thing that must never happen:
a ``bytes`` someone can still see changes.
"""

import numpy as np
import pytest

import zarrsync as zs
from zarrsync._kernels import memory
from zarrsync.codecs import Bytes

NODE = zs.ArrayNode.of_path("/a")


@pytest.fixture(autouse=True)
def nothing_kept():
    memory.drop_reusable()
    yield
    memory.drop_reusable()


def fresh(n, fill=0):
    # A new bytes object built at run time: a literal would be a shared constant.
    return bytes(bytearray([fill]) * n)


def test_replace_value_hands_back_only_what_nobody_else_holds():
    data = {"k": fresh(64)}
    old = memory.replace_value(data, "k", fresh(64, 1), 64)
    assert old == fresh(64) and data["k"] == fresh(64, 1)

    held = data["k"]  # a second reference: not handed back
    assert memory.replace_value(data, "k", fresh(64, 2), 64) is None
    assert data["k"] == fresh(64, 2) and held == fresh(64, 1)

    hashed = fresh(64, 3)
    hash(hashed)
    data["k"] = hashed
    del hashed  # nobody else holds it, but its cached hash would go stale
    assert memory.replace_value(data, "k", fresh(64, 4), 64) is None

    assert memory.replace_value(data, "k", fresh(64, 5), 32) is None   # another size
    assert memory.replace_value(data, "new", fresh(64, 6), 64) is None  # nothing replaced
    assert data["new"] == fresh(64, 6)

    class Sub(bytes):
        pass

    data["s"] = Sub(fresh(64))
    assert memory.replace_value(data, "s", fresh(64), 64) is None
    assert data["s"] == fresh(64)


def test_new_bytes_returns_a_kept_object_nobody_else_holds():
    data = {"k": fresh(100)}
    old = memory.replace_value(data, "k", fresh(100, 1), 100)
    ident = id(old)
    memory.reuse_later(old)
    del old
    assert memory.reusable_total() == 100
    again = memory.new_bytes(100)
    assert id(again) == ident and len(again) == 100
    assert memory.reusable_total() == 0
    assert len(memory.new_bytes(100)) == 100  # nothing kept: a new one


def test_a_kept_object_that_became_shared_is_not_returned():
    data = {"k": fresh(100)}
    old = memory.replace_value(data, "k", fresh(100, 1), 100)
    memory.reuse_later(old)  # ``old`` still refers to it here
    other = memory.new_bytes(100)
    assert other is not old and old == fresh(100)
    assert memory.reusable_total() == 0


def test_reuse_is_bounded():
    size = memory.REUSE_MAX_BYTES // 2 + 1
    for _ in range(3):
        data = {"k": fresh(size)}
        memory.reuse_later(memory.replace_value(data, "k", b"", size))
    assert memory.reusable_total() == size
    memory.reuse_later(None)
    memory.reuse_later(bytearray(10))
    assert memory.reusable_total() == size
    memory.drop_reusable()
    assert memory.reusable_total() == 0


def uncompressed_store(shape=(16, 32, 8), chunks=(4, 8, 8), dtype="float64"):
    store = zs.MemoryStore()
    store.create_array(NODE, shape=shape, chunks=chunks, dtype=dtype, codecs=[Bytes()])
    return store


def test_rewrites_reuse_replaced_chunks_and_keep_held_ones_intact():
    rng = np.random.default_rng(0)
    store = uncompressed_store()
    first = rng.normal(size=(16, 32, 8))
    store.write_array(NODE, (slice(None),) * 3, first)
    keys = store.list_prefix("a/c/")
    held = {k: store.get(k) for k in keys[::3]}  # a reader still holds these
    snapshot = {k: bytes(bytearray(v)) for k, v in held.items()}
    before = {id(store.get(k)) for k in keys}
    for step in range(4):
        value = rng.normal(size=(16, 32, 8))
        store.write_array(NODE, (slice(None),) * 3, value)
        np.testing.assert_array_equal(store.read_array(NODE), value)
        for k, v in held.items():
            assert v == snapshot[k]
    # Later rewrites filled objects that earlier writes stored and nobody held.
    reused = {id(store.get(k)) for k in keys} & before
    assert reused
    assert not reused & {id(v) for v in held.values()}


def test_reuse_with_buffered_partial_chunks():
    # A pending partly written chunk is dropped when a whole write replaces it.
    store = uncompressed_store()
    store.buffers_writes = True
    expected = np.zeros((16, 32, 8))
    for value in (1.0, 2.0):
        store.write_array(NODE, (slice(None),) * 3, np.full((16, 32, 8), value))
        expected[:] = value
        store.write_array(NODE, (slice(1, 3), slice(2, 5), slice(0, 4)), 9.0)
        expected[1:3, 2:5, 0:4] = 9.0
        store.write_array(NODE, (slice(0, 8), slice(None), slice(None)), -value)
        expected[0:8] = -value
        np.testing.assert_array_equal(store.read_array(NODE), expected)
    store.flush()
    copy = zs.MemoryStore({k: store.get(k) for k in store.list_prefix("")})
    np.testing.assert_array_equal(copy.read_array(NODE), expected)


def test_chunks_back_to_fill_are_erased_not_kept():
    store = uncompressed_store()
    store.write_array(NODE, (slice(None),) * 3, np.ones((16, 32, 8)))
    store.write_array(NODE, (slice(None),) * 3, np.zeros((16, 32, 8)))
    assert store.list_prefix("a/c/") == []
    np.testing.assert_array_equal(store.read_array(NODE), np.zeros((16, 32, 8)))


def test_a_subclass_overriding_set_sees_every_chunk_of_a_batch():
    seen = []

    class Logged(zs.MemoryStore):
        def set(self, key, value):
            seen.append(key)
            super().set(key, value)

    store = Logged()
    store.create_array(NODE, shape=(16, 32, 8), chunks=(4, 8, 8), dtype="float64",
                       codecs=[Bytes()])
    value = np.arange(16 * 32 * 8, dtype="float64").reshape(16, 32, 8) + 1
    for _ in range(2):
        seen.clear()
        store.write_array(NODE, ..., value)
        assert sorted(seen) == store.list_prefix("a/c/") and len(seen) == 4 * 4
    np.testing.assert_array_equal(store.read_array(NODE), value)
