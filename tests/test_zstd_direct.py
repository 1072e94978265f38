"""Sharded zstd writes that compress inner chunks straight into the shard.

``_kernels.zstd`` calls libzstd (python-zstandard's own copy) without Python
between chunks; ``storage/_sharded.py`` uses it for shards whose written
inner chunks are all whole. Its frames and shards must be byte for byte
those of the python-zstandard path, which stays in use for everything else.
"""

import numpy as np
import pytest
import zstandard

import zarrsync as zs
from zarrsync import ArrayNode
from zarrsync._kernels import zstd as zstd_kernel
from zarrsync.codecs import Bytes, Crc32c, ShardingIndexed, Zstd
from zarrsync.codecs._zstd import native_available
from zarrsync.config import get_threads, set_threads
from zarrsync.storage import _sharded
from zarrsync.storage._sharded import ShardLayout, _DirectShard, _DirectWork

pytestmark = pytest.mark.skipif(not native_available(),
                                reason="no libzstd with exported symbols to call")

NODE = ArrayNode.of_path("/a")


@pytest.fixture
def threads():
    before = get_threads()
    yield set_threads
    set_threads(before)


def smooth(shape, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).sum(axis=0)
    return (np.sin(grid / 7.0) + rng.normal(0, 1e-3, shape)).astype(dtype)


@pytest.mark.parametrize("level,checksum", [(1, False), (1, True), (0, False), (-3, False),
                                            (9, True)])
def test_frames_equal_python_zstandard(level, checksum):
    data = smooth((20, 30, 40)).tobytes()
    ctx = zstd_kernel.Context(level, checksum)
    expected = zstandard.ZstdCompressor(level=level, write_checksum=checksum).compress(data)
    assert ctx.compress(data) == expected
    assert ctx.compress(b"") == zstandard.ZstdCompressor(
        level=level, write_checksum=checksum).compress(b"")


def shards_of(store):
    return {k: bytes(store.get(k)) for k in store.list_prefix("a/c")}


def write_both_ways(monkeypatch, shape, shard, inner, writes, level=1, checksum=False,
                    location="end", fill_value=0, dtype="float32"):
    """The stored shards after ``writes`` ([(selection, value)]), through the
    direct way and through python-zstandard."""
    out = []
    for direct in (True, False):
        with monkeypatch.context() as m:
            if not direct:
                m.setattr(ShardLayout, "_direct_zstd", lambda self: None)
            used = []
            real = zstd_kernel.finish_shard
            m.setattr(zstd_kernel, "finish_shard", lambda *a: used.append(1) or real(*a))
            store = zs.MemoryStore()
            store.create_array(NODE, shape=shape, chunks=shard, dtype=dtype,
                               fill_value=fill_value,
                               codecs=[ShardingIndexed(inner, [Bytes(), Zstd(level, checksum)],
                                                       [Bytes(), Crc32c()], location)])
            expected = np.full(shape, fill_value, dtype=dtype)
            for sel, value in writes:
                store.write_array(NODE, sel, value)
                expected[sel] = value
            np.testing.assert_array_equal(store.read_array(NODE), expected)
            out.append((shards_of(store), bool(used)))
    (direct_shards, direct_used), (python_shards, python_used) = out
    assert not python_used
    return direct_shards, python_shards, direct_used


@pytest.mark.parametrize("n_threads", [1, 2, 3, 8])
@pytest.mark.parametrize("location", ["start", "end"])
@pytest.mark.parametrize("checksum", [False, True])
def test_whole_array_writes_equal_the_python_way(monkeypatch, threads, n_threads, location,
                                                 checksum):
    threads(n_threads)
    data = smooth((64, 64, 32))
    data[:16, :16, :16] = 0  # an inner chunk of fill: left out
    direct, python, used = write_both_ways(
        monkeypatch, data.shape, (32, 32, 32), (16, 16, 16), [((slice(None),) * 3, data)],
        checksum=checksum, location=location)
    assert used
    assert direct == python
    assert len(direct) == 4


@pytest.mark.parametrize("n_threads", [1, 2, 4])
def test_one_shard_split_among_threads(monkeypatch, threads, n_threads):
    # One shard, several threads: the shard is compressed in pieces, then joined.
    threads(n_threads)
    data = smooth((64, 64), "float64")
    direct, python, used = write_both_ways(monkeypatch, data.shape, (64, 64), (8, 16),
                                           [((slice(None),) * 2, data)],
                                           dtype="float64")
    assert used and direct == python


@pytest.mark.parametrize("location", ["start", "end"])
def test_writes_that_keep_stored_inner_chunks(monkeypatch, threads, location):
    threads(2)
    data = smooth((48, 48), "float64", seed=1)
    writes = [((slice(None),) * 2, data),
              # Whole inner chunks of two shards: the others are copied as stored.
              ((slice(8, 24), slice(0, 16)), smooth((16, 16), "float64", seed=2)),
              # Back to fill: those inner chunks leave the shard.
              ((slice(0, 8), slice(0, 48)), np.float64(0)),
              # Partial inner chunks: the python-zstandard way for those shards.
              ((slice(3, 5), slice(30, 40)), np.float64(7))]
    direct, python, used = write_both_ways(monkeypatch, data.shape, (24, 24), (8, 8), writes,
                                           location=location, dtype="float64")
    assert used and direct == python


def test_all_fill_shards_are_erased(monkeypatch, threads):
    threads(2)
    data = smooth((32, 32), "float64")
    writes = [((slice(None),) * 2, data), ((slice(0, 16), slice(None)), np.float64(5))]
    direct, python, used = write_both_ways(monkeypatch, data.shape, (16, 16), (8, 8), writes,
                                           fill_value=5, dtype="float64")
    assert used and direct == python
    assert sorted(direct) == ["a/c/1/0", "a/c/1/1"]


def test_piece_checks_sizes():
    ctx = zstd_kernel.Context(1, False)
    piece = zstd_kernel.ShardPiece(1, 16, 0, 4)
    with pytest.raises(ValueError):
        piece.add(ctx, bytes(32), [0, 1], b"\0\0\0\0")     # more than room for
    with pytest.raises(ValueError):
        piece.add(ctx, bytes(20), [0], b"\0\0\0\0")        # not one chunk
    piece.add(ctx, bytes(range(16)), [3], b"\0")
    stored = bytes(range(100))
    piece.add_stored(5, stored)   # past the frames' room: the buffer grows
    piece.add_stored(6, None)
    assert piece.positions == [3, 5, 6] and piece.sizes[1:] == [100, None]
    shard = zstd_kernel.finish_shard([piece], 8, 4, False, lambda e: b"INDX")
    frame = shard[:piece.sizes[0]]
    assert zstandard.ZstdDecompressor().decompress(frame) == bytes(range(16))
    assert shard[piece.sizes[0]:] == stored + b"INDX"
    piece = zstd_kernel.ShardPiece(1, 16, 0, 4)
    piece.add_stored(0, b"x")
    with pytest.raises(ValueError):
        zstd_kernel.finish_shard([piece], 8, 4, False, lambda e: b"TOO LONG")
    piece = zstd_kernel.ShardPiece(1, 16)   # no room left for the index
    piece.add_stored(0, b"x")
    with pytest.raises(ValueError):
        zstd_kernel.finish_shard([piece], 8, 4, False, lambda e: b"INDX")


@pytest.mark.parametrize("location", ["start", "end"])
def test_steps_taken_from_the_back_join_their_shard_in_order(monkeypatch, threads, location):
    # Owners stop after one step each, so every shard is finished by a
    # thread taking its steps from the back into a piece of its own.
    threads(1)
    real_take = _DirectWork.take
    taken = []

    def take(self, job, owner):
        if owner and job.front >= 1:
            return None
        step = real_take(self, job, owner)
        taken.append((job.shard, owner, step is not None))
        return step

    monkeypatch.setattr(_DirectWork, "take", take)
    data = smooth((64, 48), "float64", seed=3)
    data[8:16, 0:16] = 0   # an inner chunk of fill inside a stolen run
    writes = [((slice(None),) * 2, data),
              # kept chunks (stored bytes) among the stolen steps
              ((slice(0, 32), slice(0, 16)), smooth((32, 16), "float64", seed=4))]
    direct, python, used = write_both_ways(monkeypatch, data.shape, (32, 48), (8, 16), writes,
                                           location=location, dtype="float64")
    assert used and direct == python
    assert any(not owner and got for _, owner, got in taken)


def test_direct_work_hands_out_each_step_once():
    jobs = [_DirectShard(k, [], [([p], [p]) for p in range(n)]) for k, n in enumerate((3, 5))]
    work = _DirectWork(jobs)
    assert (work.n_steps, work.n_chunks) == (8, 8)
    a, owner, steps = work.claim()
    assert (a.shard, owner, len(steps)) == (0, True, 3)
    b, owner, steps = work.claim()
    assert (b.shard, owner, len(steps)) == (1, True, 5)
    assert work.take(b, True) == ([0], [0])
    # Every shard claimed: a thief gets the one with most steps left, from the back.
    c, owner, steps = work.claim()
    assert (c.shard, owner, len(steps)) == (1, False, 4)
    assert work.take(c, False) == ([4], [4])
    got = [work.take(a, True) for _ in range(3)] + [work.take(b, True) for _ in range(3)]
    assert got == [([0], [0]), ([1], [1]), ([2], [2]), ([1], [1]), ([2], [2]), ([3], [3])]
    assert work.take(a, True) is None and work.take(c, False) is None
    assert work.claim() is None
    assert _DirectWork([]).claim() is None


def test_the_last_step_is_halved_while_two_threads_work_on_the_shard():
    steps = [([0, 1, 2, 3], [10, 11, 12, 13]), ([4, 5, 6, 7, 8, 9, 10, 11], list(range(14, 22)))]
    job = _DirectShard(0, [], steps)
    work = _DirectWork([job])
    assert work.claim()[1] is True
    assert work.take(job, True) == ([0, 1, 2, 3], [10, 11, 12, 13])
    # Alone on the shard, the owner takes the last step whole ...
    alone = _DirectWork([_DirectShard(0, [], [(list(p), list(i)) for p, i in steps])])
    first = alone.claim()[0]
    alone.take(first, True)
    assert alone.take(first, True) == (steps[1][0], steps[1][1])
    # ... but with a thief on it, each taker gets half of what is left.
    thief_job, owner, _ = work.claim()
    assert thief_job is job and owner is False and job.working == 2
    assert work.take(job, False) == ([8, 9, 10, 11], [18, 19, 20, 21])
    assert work.take(job, True) == ([4, 5], [14, 15])
    assert work.take(job, False) == ([7], [17])
    assert work.take(job, True) == ([6], [16])  # one chunk is not split
    assert work.take(job, True) is None and work.take(job, False) is None
    # Only the last thread to let go of a shard with nothing left finishes it.
    assert work.release(job) is False
    assert work.release(job) is True


def test_a_shard_is_not_finished_while_steps_are_left():
    job = _DirectShard(0, [], [([0], [0]), ([1], [1])])
    work = _DirectWork([job])
    work.claim()
    work.take(job, True)
    assert work.release(job) is False  # its owner gave up with a step left
    thief, owner, steps = work.claim()
    assert thief is job and owner is False and len(steps) == 1
    assert work.take(job, False) == ([1], [1])
    assert work.take(job, False) is None
    assert work.release(job) is True


def test_every_kept_and_written_chunk_survives_halving(monkeypatch, threads):
    # Two threads, one shard of many written chunks and some kept ones: the
    # second thread steals from the back, the last step gets halved.
    threads(2)
    monkeypatch.setattr(_sharded, "_DIRECT_GROUP_BYTES", 8 * 8 * 16 * 8)
    data = smooth((64, 96), "float64", seed=5)
    writes = [((slice(None),) * 2, data),
              ((slice(0, 64), slice(0, 48)), smooth((64, 48), "float64", seed=6))]
    direct, python, used = write_both_ways(monkeypatch, data.shape, (64, 96), (8, 16), writes,
                                           dtype="float64")
    assert used and direct == python


def test_finish_shard_puts_stolen_frames_in_position_order():
    ctx = zstd_kernel.Context(1, False)
    chunks = [bytes([k]) * 16 for k in range(1, 6)]
    owner = zstd_kernel.ShardPiece(5, 16, 0, 4)
    owner.add(ctx, chunks[0] + chunks[1], [0, 1], b"\0")
    thief = zstd_kernel.ShardPiece(3, 16)
    thief.add(ctx, chunks[4], [4], b"\0")
    thief.add_stored(3, b"kept")
    other = zstd_kernel.ShardPiece(1, 16)
    other.add(ctx, chunks[2], [2], b"\0")
    seen = []
    shard = zstd_kernel.finish_shard([owner, thief, other], 6, 4, False,
                                     lambda e: seen.append(e.copy()) or b"INDX")
    entries = seen[0].reshape(6, 2)
    assert list(entries[:, 0]) == sorted(entries[:5, 0]) + [2**64 - 1]
    d = zstandard.ZstdDecompressor()
    for p in (0, 1, 2, 4):
        offset, size = entries[p]
        assert d.decompress(shard[offset:offset + size]) == chunks[p]
    assert shard[entries[3, 0]:entries[3, 0] + 4] == b"kept"
    assert shard.endswith(b"INDX") and len(shard) == int(entries[4].sum()) + 4
