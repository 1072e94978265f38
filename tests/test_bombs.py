"""Decompression bombs and hostile shard indexes: reads stay within the bound.

Every decode is bounded by the size the array's metadata declares for the
chunk (``codecs._base``: bounded decoding): a stored value that would
decode to more is a ``CodecError`` naming the chunk, raised before the read
allocates much more than that size. Each case here builds an array of two
chunks on disk, the first good and the second a bomb (1 GiB of zeros in a
few KiB or MiB, or a shard index pointing at a 512 MiB hole), and reads the
bomb through ``store.read_array`` in a fresh interpreter, so that its peak
resident memory (``ru_maxrss``) is that read's alone: the child reads the
good chunk first (imports, scratch buffers, codec contexts), notes its peak,
reads the bomb, and reports how far the peak grew. Each case runs with the
fast paths on and off (the portable routes).

The bombs are made without holding what they decode to: gzip members from
ISA-L fed 1 MiB of zeros at a time, zstd frames written out by hand from
RLE blocks (RFC 8878), checked against python-zstandard on a small size.
"""

import json
import subprocess
import sys
import zlib

import crc32c
import numpy as np
import pytest
import zstandard
from isal import isal_zlib

import zarrsync as zs
from zarrsync import ArrayNode
from zarrsync.codecs import (Blosc, Bytes, Crc32c, Gzip, ShardingIndexed, VlenBytes, VlenUtf8,
                             Zstd, numcodecs_codec)

#: What every bomb decodes to.
BOMB_BYTES = 1 << 30
#: The chunk size of the fixed-size arrays, and the bound set for variable-length ones.
CHUNK_BYTES = 2 << 20
#: How far a read's peak memory may grow beyond the size it is bounded by.
SLACK = 8 << 20

NODE = ArrayNode.of_path("/a")


# -- bombs ----------------------------------------------------------------------------

def gzip_bomb(n=BOMB_BYTES):
    """One gzip member of ``n`` zeros (about 1 MiB per GiB)."""
    c = isal_zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    return b"".join([c.compress(zeros) for _ in range(n >> 20)] + [c.flush()])


def zlib_bomb(n=BOMB_BYTES):
    """One zlib stream of ``n`` zeros, as numcodecs' zlib writes them."""
    c = zlib.compressobj(1)
    zeros = bytes(1 << 20)
    return b"".join([c.compress(zeros) for _ in range(n >> 20)] + [c.flush()])


def blosc_bomb(n=BOMB_BYTES):
    """A blosc chunk whose header states ``n`` bytes, stored as is
    (memcpyed flag), holding only 64
    (https://github.com/Blosc/c-blosc/blob/main/README_CHUNK_FORMAT.rst)."""
    body = bytes(64)
    return (bytes([2, 1, 0x03, 1]) + n.to_bytes(4, "little") + n.to_bytes(4, "little")
            + (16 + len(body)).to_bytes(4, "little") + body)


ZSTD_MAGIC = (0xFD2FB528).to_bytes(4, "little")
RLE_BLOCK = 128 << 10


def zstd_bomb(n=BOMB_BYTES, declared=None, byte=0):
    """A zstd frame of ``n`` copies of ``byte`` in RLE blocks of 128 KiB
    (https://www.rfc-editor.org/rfc/rfc8878#section-3.1.1), declaring the
    content size ``declared`` (default ``n``; ``False``: none) in 8 bytes."""
    declared = n if declared is None else declared
    # Frame header descriptor: an 8-byte content size or none, then a
    # window descriptor of 128 KiB (exponent 7).
    header = ZSTD_MAGIC + (bytes([0xC0, 0x38]) + declared.to_bytes(8, "little")
                           if declared is not False else bytes([0x00, 0x38]))
    blocks = []
    for start in range(0, n, RLE_BLOCK):
        size = min(RLE_BLOCK, n - start)
        last = start + size >= n
        blocks.append(((size << 3) | (1 << 1) | last).to_bytes(3, "little") + bytes([byte]))
    if not blocks:
        blocks.append((1).to_bytes(3, "little"))   # one empty raw block
    return header + b"".join(blocks)


def with_crc32c(data):
    return data + crc32c.crc32c(data).to_bytes(4, "little")


def shard(chunks):
    """A shard of ``chunks``, its index at the end (``bytes`` and ``crc32c``)."""
    entries, pos = [], 0
    for c in chunks:
        entries += [pos, len(c)]
        pos += len(c)
    return b"".join(chunks) + with_crc32c(np.array(entries, dtype="<u8").tobytes())


def test_handmade_zstd_frames_are_valid():
    for n in (0, 1, RLE_BLOCK, RLE_BLOCK + 5, 3 * RLE_BLOCK):
        d = zstandard.ZstdDecompressor()
        assert d.decompress(zstd_bomb(n, byte=7)) == bytes([7]) * n
        assert d.decompressobj().decompress(zstd_bomb(n, declared=False, byte=7)) == \
            bytes([7]) * n
        assert zstandard.get_frame_parameters(zstd_bomb(n)).content_size == n


def test_gzip_bomb_is_valid():
    assert zlib.decompress(gzip_bomb(4 << 20), 16 + zlib.MAX_WBITS) == bytes(4 << 20)


def test_zlib_bomb_is_valid():
    assert zlib.decompress(zlib_bomb(4 << 20)) == bytes(4 << 20)


# -- the arrays, each with a good chunk and a bomb -----------------------------------
#
# A case builds its array in ``store`` (a FilesystemStore at ``path``) and
# returns ``(bound, config, key, bomb)``: the size the bomb's decode is
# bounded by, the settings the reader uses, the key its error must name, and
# the ``[start, stop)`` of the array it lies in. ``[0, stop - start)`` is good.

def random_bytes(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


def fixed(codecs, bomb):
    """Two 2 MiB uint8 chunks with ``codecs``; chunk 1 is ``bomb()``."""
    def build(store, path):
        store.create_array(NODE, shape=(2 * CHUNK_BYTES,), chunks=(CHUNK_BYTES,),
                           dtype="uint8", codecs=codecs)
        store.write_array(NODE, ..., random_bytes(2 * CHUNK_BYTES, 0))
        store.set("a/c/1", bomb())
        return CHUNK_BYTES, {}, "a/c/1", [CHUNK_BYTES, 2 * CHUNK_BYTES]
    return build


def vlen(kind, codecs, bomb):
    """Two chunks of 1000 strings (or bytes) with ``codecs``; chunk 1 is
    ``bomb()``, read with ``max_chunk_bytes`` 2 MiB."""
    def build(store, path):
        store.create_array(NODE, shape=(2000,), chunks=(1000,), dtype=kind, codecs=codecs)
        values = np.array([f"element {i}" * 20 for i in range(2000)],
                          dtype=np.dtypes.StringDType())
        if kind == "bytes":
            values = np.array([v.encode() for v in values], dtype=object)
        store.write_array(NODE, ..., values)
        store.set("a/c/1", bomb())
        return CHUNK_BYTES, {"max_chunk_bytes": CHUNK_BYTES}, "a/c/1", [1000, 2000]
    return build


def sharded(inner_codecs, encode, bomb):
    """One shard of two 2 MiB inner chunks with ``inner_codecs``: inner
    chunk 0 is ``encode`` of good data, inner chunk 1 is ``bomb()``."""
    def build(store, path):
        store.create_array(NODE, shape=(2 * CHUNK_BYTES,), chunks=(2 * CHUNK_BYTES,),
                           dtype="uint8", codecs=[ShardingIndexed((CHUNK_BYTES,),
                                                                  inner_codecs)])
        good = encode(random_bytes(CHUNK_BYTES, 1).tobytes())
        store.set("a/c/0", shard([good, bomb()]))
        return CHUNK_BYTES, {}, "a/c/0", [CHUNK_BYTES, 2 * CHUNK_BYTES]
    return build


def hostile_index(store, path):
    """Two shards of two 2 MiB inner chunks (zstd); shard 1's index puts its
    inner chunk 1 in a 512 MiB stretch of the shard: a hole in a sparse
    file, so nothing on disk."""
    store.create_array(NODE, shape=(4 * CHUNK_BYTES,), chunks=(2 * CHUNK_BYTES,),
                       dtype="uint8", codecs=[ShardingIndexed((CHUNK_BYTES,),
                                                              [Bytes(), Zstd(1)])])
    store.write_array(NODE, ..., random_bytes(4 * CHUNK_BYTES, 1))
    good = zstandard.ZstdCompressor().compress(random_bytes(CHUNK_BYTES, 1).tobytes())
    hole = 512 << 20
    entries = np.array([0, len(good), len(good), hole], dtype="<u8").tobytes()
    with open(path / "a" / "c" / "1", "wb") as f:
        f.write(good)
        f.seek(len(good) + hole)
        f.write(with_crc32c(entries))
    return CHUNK_BYTES, {}, "a/c/1", [3 * CHUNK_BYTES, 4 * CHUNK_BYTES]


def sharded_then(codec, bomb):
    """Shards of two 2 MiB inner chunks, compressed whole by ``codec`` after
    the sharding codec; shard 1 is ``bomb()``."""
    def build(store, path):
        store.create_array(NODE, shape=(4 * CHUNK_BYTES,), chunks=(2 * CHUNK_BYTES,),
                           dtype="uint8", codecs=[ShardingIndexed((CHUNK_BYTES,)), codec])
        store.write_array(NODE, ..., random_bytes(4 * CHUNK_BYTES, 2))
        store.set("a/c/1", bomb())
        # A shard holds its index (two entries and a crc32c) and two inner chunks at most.
        return 2 * CHUNK_BYTES + 36, {}, "a/c/1", [2 * CHUNK_BYTES, 3 * CHUNK_BYTES]
    return build


CASES = {
    "gzip": fixed([Bytes(), Gzip(1)], gzip_bomb),
    "zstd": fixed([Bytes(), Zstd(1)], zstd_bomb),
    "zstd-no-content-size": fixed([Bytes(), Zstd(1)], lambda: zstd_bomb(declared=False)),
    "zstd-lying-content-size": fixed([Bytes(), Zstd(1)],
                                     lambda: zstd_bomb(declared=CHUNK_BYTES)),
    "gzip-crc32c": fixed([Bytes(), Gzip(1), Crc32c()], lambda: with_crc32c(gzip_bomb())),
    "zstd-crc32c": fixed([Bytes(), Zstd(1), Crc32c()], lambda: with_crc32c(zstd_bomb())),
    # crc32c inside zstd: the frame holds the bomb.
    "crc32c-zstd": fixed([Bytes(), Crc32c(), Zstd(1)], zstd_bomb),
    # gzip after zstd: bounded by what zstd may store of a chunk.
    "zstd-gzip": fixed([Bytes(), Zstd(1), Gzip(1)], gzip_bomb),
    "vlen-utf8-zstd": vlen("string", [VlenUtf8(), Zstd(1)], zstd_bomb),
    "vlen-utf8-zstd-no-content-size": vlen("string", [VlenUtf8(), Zstd(1)],
                                           lambda: zstd_bomb(declared=False)),
    "vlen-bytes-gzip": vlen("bytes", [VlenBytes(), Gzip(1)], gzip_bomb),
    "vlen-bytes-zstd-crc32c": vlen("bytes", [VlenBytes(), Zstd(1), Crc32c()],
                                   lambda: with_crc32c(zstd_bomb())),
    "sharded-zstd": sharded([Bytes(), Zstd(1)], zstandard.ZstdCompressor().compress,
                            zstd_bomb),
    "sharded-gzip": sharded([Bytes(), Gzip(1)],
                            lambda raw: isal_zlib.compress(raw, 1, 16 + zlib.MAX_WBITS),
                            gzip_bomb),
    "hostile-shard-index": hostile_index,
    "sharded-then-zstd": sharded_then(Zstd(1), zstd_bomb),
    "sharded-then-gzip": sharded_then(Gzip(1), gzip_bomb),
    "blosc": fixed([Bytes(), Blosc()], blosc_bomb),
    "numcodecs-zlib": fixed([Bytes(), numcodecs_codec("zlib", level=1)], zlib_bomb),
}


#: The child: read the good chunk, note the peak, read the bomb, report.
CHILD = r"""
import json, resource, sys
args = json.loads(sys.argv[1])
import zarrsync as zs
zs.config.set(fast_paths=args["fast"], threads=1, **args["config"])
store = zs.FilesystemStore(args["root"])
node = zs.ArrayNode.of_path("/a")
scale = 1 if sys.platform == "darwin" else 1024   # ru_maxrss: bytes on macOS, else KiB
store.read_array(node, (slice(*args["good"]),))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
try:
    store.read_array(node, (slice(*args["bomb"]),))
    error = None
except Exception as e:
    error = {"type": type(e).__name__, "codec_error": isinstance(e, zs.CodecError),
             "message": str(e)}
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
print(json.dumps({"grew": after - before, "error": error}))
"""


def read_in_child(root, fast, config, good, bomb):
    args = json.dumps({"root": str(root), "fast": fast, "config": config,
                       "good": good, "bomb": bomb})
    result = subprocess.run([sys.executable, "-P", "-c", CHILD, args], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def check(report, bound, key):
    error = report["error"]
    assert error is not None, "the bomb was read without an error"
    assert error["codec_error"], error
    assert key in error["message"], error
    assert report["grew"] < bound + SLACK, (
        f"the read grew the peak by {report['grew'] / 2**20:.1f} MiB for a chunk bounded "
        f"at {bound / 2**20:.1f} MiB: {error['message']}")


@pytest.mark.parametrize("fast", [True, False], ids=["fast-paths", "portable"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bomb_is_refused_within_the_bound(tmp_path, case, fast):
    bound, config, key, (start, stop) = CASES[case](zs.FilesystemStore(tmp_path), tmp_path)
    report = read_in_child(tmp_path, fast, config, [0, stop - start], [start, stop])
    check(report, bound, key)
