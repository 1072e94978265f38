"""The zstd frames zarrsync writes for whole chunks.

``Zstd.encode`` compresses through ``_kernels.zstd.Context`` (libzstd called
from Cython: imagecodecs' copy or python-zstandard's) when that library is
loaded, with zstd 1.5.7's block pre-splitter turned off; python-zstandard's
``ZstdCompressor`` otherwise.
Both are valid frames of the same level that any zstd decoder reads, and
they differ only in where blocks end.
"""

import tracemalloc

import numpy as np
import pytest
import zstandard

import zarrsync as zs
from zarrsync import ArrayNode
from zarrsync._kernels import zstd as zstd_kernel
from zarrsync.codecs import Bytes, Crc32c, Zstd
from zarrsync.codecs._zstd import native_available

pytestmark = pytest.mark.skipif(not native_available(),
                                reason="no libzstd with exported symbols to call")

BLOCK = 128 * 1024
NODE = ArrayNode.of_path("/a")


def frame_blocks(frame):
    """The number of blocks in one zstd frame (RFC 8878, section 3.1.1)."""
    descriptor = frame[4]
    content_size_flag, single_segment = descriptor >> 6, (descriptor >> 5) & 1
    pos = (5 + (not single_segment) + (0, 1, 2, 4)[descriptor & 3]
           + (single_segment, 2, 4, 8)[content_size_flag])
    blocks = 0
    while True:
        header = int.from_bytes(frame[pos:pos + 3], "little")
        pos += 3 + (1 if (header >> 1) & 3 == 1 else header >> 3)  # RLE blocks: one byte
        blocks += 1
        if header & 1:
            break
    assert pos == len(frame) - 4 * ((descriptor >> 2) & 1)  # then only the checksum
    return blocks


def regimes(n_parts=32, seed=0):
    """1 MiB whose statistics change every 32 KiB (where the pre-splitter cuts)."""
    rng = np.random.default_rng(seed)
    parts = [rng.normal(0, 1, 8192).astype("float32").tobytes() if k % 2
             else (np.arange(32768) % 7).astype("uint8").tobytes() for k in range(n_parts)]
    return b"".join(parts)


def smooth(shape, seed=0):
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).sum(axis=0)
    return (np.sin(grid / 7.0) + rng.normal(0, 1e-3, shape)).astype("float32")


@pytest.mark.parametrize("level,checksum", [(1, False), (1, True), (3, False), (-5, True)])
def test_frames_have_whole_blocks_and_decode(level, checksum):
    data = regimes()
    frame = zstd_kernel.Context(level, checksum).compress(data)
    assert frame_blocks(frame) == len(data) // BLOCK
    params = zstandard.get_frame_parameters(frame)
    assert params.content_size == len(data)
    assert params.has_checksum == checksum
    assert zstandard.ZstdDecompressor().decompress(frame) == data


@pytest.mark.parametrize("level,checksum", [(1, False), (1, True), (9, False)])
def test_presplit_frames_equal_python_zstandard(level, checksum):
    data = regimes()
    frame = zstd_kernel.Context(level, checksum, presplit=True).compress(data)
    assert frame == zstandard.ZstdCompressor(level=level, write_checksum=checksum).compress(data)
    if zstd_kernel.version() >= 10507 and level == 1:
        # The data really is split there, so the default above is a real difference.
        assert frame_blocks(frame) > len(data) // BLOCK


@pytest.mark.parametrize("nbytes", [0, 1, 1000, BLOCK - 4, BLOCK])
def test_frames_of_one_block_do_not_depend_on_presplit(nbytes):
    data = regimes()[:nbytes]
    expected = zstandard.ZstdCompressor(level=1).compress(data)
    assert zstd_kernel.Context(1, False).compress(data) == expected
    assert zstd_kernel.Context(1, False, presplit=True).compress(data) == expected


def test_codec_encodes_with_the_context():
    data = smooth((64, 64, 64)).tobytes()
    codec = Zstd(level=1)
    frame = codec.encode(data)
    assert frame == zstd_kernel.Context(1, False).compress(data)
    assert codec.decode(frame, len(data)) == data


def traced_bytes_of(make):
    """(result of make(), bytes tracemalloc sees allocated for it)."""
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        result = make()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return result, grown


def test_a_small_frame_gives_back_the_rest_of_its_block():
    data = bytes(1 << 20)  # compresses to a few dozen bytes
    ctx = zstd_kernel.Context(1, False)
    frame, held = traced_bytes_of(lambda: ctx.compress(data))
    assert zstandard.ZstdDecompressor().decompress(frame) == data
    assert held < len(frame) + 4096


def test_a_frame_nearly_as_large_as_its_block_keeps_it():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()  # incompressible
    ctx = zstd_kernel.Context(1, False)
    frame, held = traced_bytes_of(lambda: ctx.compress(data))
    # Kept whole, and still an ordinary bytes object of the frame's length.
    assert len(frame) <= held < len(frame) + len(frame) // 8 + 4096
    assert frame == bytes(bytearray(frame)) and hash(frame) == hash(bytes(bytearray(frame)))
    assert frame + b"x" == bytes(bytearray(frame)) + b"x"
    assert zstandard.ZstdDecompressor().decompress(frame) == data


@pytest.mark.parametrize("checksum", [False, True])
def test_zarr_python_reads_chunks_of_several_blocks(tmp_path, checksum):
    zarr = pytest.importorskip("zarr")
    values = smooth((128, 64, 64))
    values[64:] = np.round(values[64:], 1)  # another regime in the second chunk
    store = zs.FilesystemStore(str(tmp_path))
    store.create_array(NODE, shape=values.shape, chunks=(64, 64, 64), dtype="float32",
                       codecs=[Bytes(), Zstd(level=1, checksum=checksum)])
    store.write_array(NODE, ..., values)
    frame = store.get("a/c/0/0/0")
    assert frame_blocks(bytes(frame)) == 8
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a"), mode="r")[...], values)


# -- decompression into a reused buffer ------------------------------------------------

def frames_of_every_kind():
    """(name, stored bytes, decoded bytes): frames as other writers make them."""
    data = regimes()
    small = data[:5000]
    plain = zstandard.ZstdCompressor(level=3)
    return [
        ("with content size", plain.compress(data), data),
        ("no content size", zstandard.ZstdCompressor(write_content_size=False).compress(data),
         data),
        ("checksum", zstandard.ZstdCompressor(write_checksum=True).compress(data), data),
        ("streamed", b"".join(zstandard.ZstdCompressor().read_to_iter(
            __import__("io").BytesIO(data), read_size=7777)), data),
        ("two frames", plain.compress(small[:2000]) + plain.compress(small[2000:]), small),
        ("empty", plain.compress(b""), b""),
    ]


@pytest.mark.parametrize("name,frame,data", frames_of_every_kind(),
                         ids=[f[0] for f in frames_of_every_kind()])
def test_decode_into_reads_what_python_zstandard_reads(name, frame, data):
    codec = Zstd()
    assert codec.decodes_into
    out = bytearray(len(data))
    assert codec.decode_into(frame, out) == len(data)
    assert out == data
    if name != "two frames":  # python-zstandard decodes one frame per call
        assert zstandard.ZstdDecompressor().decompressobj().decompress(frame) == data


def corrupt_frames():
    data = regimes()[:200_000]
    good = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    flipped = bytearray(good)
    flipped[-2] ^= 0xFF  # in the checksum
    return data, [("truncated", good[:len(good) // 2]), ("checksum", bytes(flipped)),
                  ("not zstd", b"\x00" * 64)]


@pytest.mark.parametrize("case", range(3))
def test_decode_into_rejects_what_is_not_a_whole_frame(case):
    data, cases = corrupt_frames()
    _, frame = cases[case]
    with pytest.raises(zs.errors.CodecError, match="zstd"):
        Zstd().decode_into(frame, bytearray(len(data)))


def test_decode_into_rejects_frames_larger_than_the_buffer():
    data = regimes()[:10_000]
    with pytest.raises(zs.errors.CodecError, match="zstd"):
        Zstd().decode_into(zstandard.ZstdCompressor().compress(data), bytearray(9_999))


@pytest.mark.parametrize("codecs", [[Bytes(), Zstd(1)], [Bytes(), Zstd(1), Crc32c()],
                                    [Bytes(), Crc32c(), Zstd(1)]],
                         ids=["zstd", "zstd-crc32c", "crc32c-zstd"])
def test_reads_of_several_chunks_do_not_share_the_buffer(codecs):
    values = smooth((4, 32, 32)) * np.arange(1, 5, dtype="float32")[:, None, None]
    store = zs.MemoryStore()
    store.create_array(NODE, shape=values.shape, chunks=(1, 32, 32), dtype="float32",
                       codecs=codecs)
    store.write_array(NODE, ..., values)
    reads = [store.read_array(NODE, k) for k in range(4)]
    for k in range(4):
        np.testing.assert_array_equal(reads[k], values[k])
    np.testing.assert_array_equal(store.read_array(NODE, (slice(None), 3, slice(None, None, 5))),
                                  values[:, 3, ::5])


def test_no_frames_decode_to_nothing():
    assert Zstd().decode_into(b"", bytearray(10)) == 0


@pytest.mark.parametrize("keep", [10, -1, -32])
def test_a_chunk_of_the_wrong_size_is_an_error_naming_it(keep):
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(64,), chunks=(32,), dtype="float32",
                       codecs=[Bytes(), Zstd(1)])
    store.write_array(NODE, ..., np.arange(64, dtype="float32"))
    raw = np.arange(32 + keep, dtype="float32").tobytes()  # more, fewer or no elements
    store.set("a/c/1", zstandard.ZstdCompressor().compress(raw) if raw else b"")
    with pytest.raises(zs.errors.CodecError, match="a/c/1"):
        store.read_array(NODE)
    np.testing.assert_array_equal(store.read_array(NODE, slice(0, 32)), np.arange(32))


CHILD = """
import ctypes, json
from zarrsync.codecs._zstd import SYSTEM_DECODERS, native_available
from zarrsync._kernels import zstd
native_available()
system = 0
for name in SYSTEM_DECODERS:
    try:
        system = ctypes.CDLL(name).ZSTD_versionNumber()
        break
    except OSError:
        pass
print(json.dumps([zstd.version(), zstd.decoder_version(), system]))
"""


@pytest.mark.parametrize("choice", ["system", "bundled"])
def test_which_library_decompresses(choice):
    import json
    import os
    import subprocess
    import sys
    env = dict(os.environ, ZARRSYNC_ZSTD_DECODER=choice)
    out = subprocess.run([sys.executable, "-P", "-c", CHILD], env=env, capture_output=True,
                         text=True, check=True).stdout
    bundled, decoder, system = json.loads(out)
    if choice == "system" and system >= 10504:
        assert decoder == system
    else:
        assert decoder == bundled


ENCODER_CHILD = """
import hashlib, json
import numpy as np
from zarrsync.codecs import Zstd
from zarrsync.codecs._zstd import encoder_library
rng = np.random.default_rng(0)
field = (np.sin(np.arange(1 << 18) / 50.0) + rng.normal(0, 1e-3, 1 << 18)).astype("float32")
frames = [Zstd(level, checksum).encode(data) for level, checksum in ((1, False), (1, True), (3, False))
          for data in (field.tobytes(), field[:32768].tobytes(), b"", bytes(1000))]
print(json.dumps([encoder_library(), hashlib.sha256(b"".join(frames)).hexdigest()]))
"""


def run_encoder_child(encoder):
    import json
    import os
    import subprocess
    import sys
    env = dict(os.environ, ZARRSYNC_ZSTD_ENCODER=encoder)
    done = subprocess.run([sys.executable, "-P", "-c", ENCODER_CHILD], env=env,
                          capture_output=True, text=True)
    return done, (json.loads(done.stdout) if done.returncode == 0 else None)


def installed_encoders():
    from zarrsync.codecs._zstd import ENCODERS
    return [name for name, where in ENCODERS.items() if where()]


def test_the_preferred_installed_encoder_compresses():
    from zarrsync.codecs._zstd import ENCODERS, encoder_library
    first = installed_encoders()[0]
    assert encoder_library() in ENCODERS[first]()
    _, (path, _) = run_encoder_child("")
    assert path == encoder_library()


def test_every_installed_encoder_writes_the_same_frames():
    """imagecodecs' libzstd and python-zstandard's compress byte for byte alike
    (pre-splitter off), so which one is installed never changes a stored chunk."""
    names = installed_encoders()
    results = [run_encoder_child(name)[1] for name in names]
    paths = [path for path, _ in results]
    assert len(set(paths)) == len(names)  # each really ran its own library
    assert len({digest for _, digest in results}) == 1


def test_an_unknown_encoder_is_an_error_at_import():
    done, _ = run_encoder_child("lz4")
    assert done.returncode != 0 and "ZARRSYNC_ZSTD_ENCODER='lz4'" in done.stderr


def test_an_encoder_that_is_not_installed_is_an_error(monkeypatch):
    from zarrsync.codecs import _zstd
    monkeypatch.setenv("ZARRSYNC_ZSTD_ENCODER", "imagecodecs")
    monkeypatch.setitem(_zstd.ENCODERS, "imagecodecs", lambda: [])
    with pytest.raises(ImportError, match="'imagecodecs': its library is not installed"):
        _zstd._requested_encoder()


FAILED_LOAD_CHILD = """
from zarrsync.codecs import _zstd
_zstd.ENCODERS["zstandard"] = lambda: ["/nonexistent/libzstd.so"]
for attempt in range(2):  # no silent fallback on a second call either
    try:
        _zstd.native_available()
    except ImportError as e:
        print(e)
"""


def test_an_encoder_that_does_not_load_is_an_error_every_time():
    import os
    import subprocess
    import sys
    env = dict(os.environ, ZARRSYNC_ZSTD_ENCODER="zstandard")
    out = subprocess.run([sys.executable, "-P", "-c", FAILED_LOAD_CHILD], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["ZARRSYNC_ZSTD_ENCODER='zstandard': its library does not load"] * 2
