"""The gzip codec under each deflate backend (isal, zlib-ng, zlib).

Every test that takes the ``backend`` fixture runs once per backend, with
that backend switched on for the whole process (``_gzip.set_backend``) and
the previous one restored after; a backend whose package does not import is
skipped, with the reason. What each backend writes must be one gzip member
(RFC 1952) with mtime 0 that the standard library, numcodecs, zarr-python,
tensorstore and zarrs read; what any gzip or zlib writer wrote must decode
through it; bad data must raise ``CodecError``.
"""

import gzip as gzip_module
import importlib
import importlib.util
import io
import os
import pickle
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import zarrsync as zs
from zarrsync import ArrayNode
from zarrsync.codecs import Bytes, CodecChain, Crc32c, Gzip, _gzip
from zarrsync.errors import CodecError

PACKAGES = {"isal": "isal", "zlib-ng": "zlib_ng", "zlib": "zlib"}


def _backend_param(name):
    try:
        importlib.import_module(PACKAGES[name])
    except ImportError as e:
        return pytest.param(name, marks=pytest.mark.skip(
            reason=f"gzip backend {name!r}: package {PACKAGES[name]!r} is not importable ({e})"))
    return name


@pytest.fixture(params=[_backend_param(n) for n in _gzip.BACKENDS])
def backend(request):
    previous = _gzip.set_backend(request.param)
    assert _gzip.BACKEND == request.param
    yield request.param
    _gzip.set_backend(previous)


def payloads():
    """Incompressible, compressible and tiny inputs; the big ones span many
    65535-byte stored blocks and several deflate blocks."""
    rng = np.random.default_rng(7)
    smooth = (np.sin(np.linspace(0, 20, 50_000)) + rng.normal(0, 1e-3, 50_000)).astype("f4")
    return {
        "random": rng.integers(0, 256, 200_003, dtype=np.uint8).tobytes(),
        "small-alphabet": rng.integers(0, 8, 150_000, dtype=np.uint8).tobytes(),
        "smooth-float32": smooth.tobytes(),
        "zeros": bytes(70_000),
        "one-byte": b"x",
        "empty": b"",
    }


PAYLOADS = payloads()


def members(data):
    """The gzip members of ``data``, decoded one by one by the standard library."""
    out = []
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out.append(d.decompress(data))
        assert d.eof
        data = d.unused_data
    return out


# -- what each backend writes ---------------------------------------------------------

@pytest.mark.parametrize("level", range(10))
@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_round_trip_every_level(backend, level, name):
    data = PAYLOADS[name]
    encoded = Gzip(level).encode(data)
    assert isinstance(encoded, bytes)
    # One RFC 1952 member: magic, deflate, no flags, mtime 0.
    assert encoded[:4] == b"\x1f\x8b\x08\x00"
    assert encoded[4:8] == b"\x00\x00\x00\x00"
    assert members(encoded) == [data]
    assert struct.unpack("<II", encoded[-8:]) == (zlib.crc32(data), len(data))
    # Other readers.
    assert zlib.decompress(encoded, 16 + zlib.MAX_WBITS) == data
    assert gzip_module.decompress(encoded) == data
    numcodecs = pytest.importorskip("numcodecs")
    assert bytes(numcodecs.GZip(level).decode(encoded)) == data
    # Reproducible for a given backend.
    assert Gzip(level).encode(data) == encoded
    # Our own reader, without and with every kind of size hint.
    for hint in (None, len(data), len(data) // 2, len(data) + 1000, 1):
        assert bytes(Gzip(level).decode(encoded, hint)) == data
    # Compressed at all (zlib-ng's level 1 uses static Huffman codes: weakly).
    if level >= 1 and name == "small-alphabet":
        assert len(encoded) < len(data) * 0.8
    if level >= 1 and name == "zeros":
        assert len(encoded) < len(data) // 50


@pytest.mark.parametrize("name", ["random", "smooth-float32", "one-byte"])
def test_level_zero_stores(backend, name):
    """Level 0 writes stored (uncompressed) deflate blocks in every backend."""
    data = PAYLOADS[name]
    encoded = Gzip(0).encode(data)
    assert encoded[3] == 0            # no optional header fields: deflate starts at 10
    assert encoded[10] & 0b110 == 0   # BTYPE 00: a stored block
    assert len(data) < len(encoded) <= len(data) + 18 + 5 * (len(data) // 65535 + 2)
    assert Gzip(0).decode(encoded) == data


@pytest.mark.parametrize("level", [1, 5, 9])
def test_numcodecs_writes_backend_reads(backend, level):
    numcodecs = pytest.importorskip("numcodecs")
    for data in PAYLOADS.values():
        encoded = bytes(numcodecs.GZip(level).encode(data))
        assert bytes(Gzip().decode(encoded, len(data))) == data


def test_chain_round_trip(backend):
    """Through a codec chain, which passes the decoded size as a size hint."""
    rng = np.random.default_rng(3)
    chunk = np.cumsum(rng.normal(size=(64, 48)), axis=1)   # native float64
    for level in (0, 1, 4, 7, 9):
        chain = CodecChain([Bytes("big"), Gzip(level)], chunk.dtype, chunk.shape)
        encoded = chain.encode(chunk)
        assert gzip_module.decompress(encoded) == chunk.astype(">f8").tobytes()
        np.testing.assert_array_equal(chain.decode(encoded, "c/0/0"), chunk)


# -- what other writers wrote ---------------------------------------------------------

def gzip_with_every_header_field(data):
    """A member with FEXTRA, FNAME, FCOMMENT and FHCRC set, and a nonzero mtime."""
    header = b"\x1f\x8b\x08" + bytes([0b11110]) + struct.pack("<I", 1_700_000_000) + b"\x02\x03"
    header += struct.pack("<H", 6) + b"ab\x02\x00xy"   # FEXTRA: one subfield
    header += b"chunk.raw\x00" + b"a comment\x00"        # FNAME, FCOMMENT
    header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)  # FHCRC
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = c.compress(data) + c.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def gzipfile_with_name(data):
    buf = io.BytesIO()
    with gzip_module.GzipFile(filename="x.bin", mode="wb", fileobj=buf, mtime=123) as f:
        f.write(data)
    return buf.getvalue()


def other_writers(data):
    zc = zlib.compressobj(9, zlib.DEFLATED, 9)  # zlib header, 512-byte window
    return {
        "stdlib gzip, mtime 123": gzip_module.compress(data, mtime=123),
        "stdlib gzip level 0": gzip_module.compress(data, compresslevel=0),
        "GzipFile with FNAME": gzipfile_with_name(data),
        "every header field": gzip_with_every_header_field(data),
        "zlib header": zlib.compress(data),
        "zlib header, small window": zc.compress(data) + zc.flush(),
        "gzip small window": zlib.compress(data, 1, 16 + 9),
    }


@pytest.mark.parametrize("name", ["small-alphabet", "random", "one-byte", "empty"])
def test_reads_other_writers(backend, name):
    data = PAYLOADS[name]
    for writer, encoded in other_writers(data).items():
        for hint in (None, len(data)):
            assert bytes(Gzip().decode(encoded, hint)) == data, writer


def test_concatenated_members(backend):
    a, b = PAYLOADS["small-alphabet"], PAYLOADS["random"][:5000]
    parts = [gzip_module.compress(a), gzip_module.compress(b""), zlib.compress(b, 1, 31),
             Gzip(1).encode(b"tail"), zlib.compress(b"zlib-member")]
    both = b"".join(parts)
    expected = a + b + b"tail" + b"zlib-member"
    for hint in (None, len(expected), len(a), len(a) + len(b), 3):
        assert bytes(Gzip().decode(both, hint)) == expected
    # A member followed by a copy of itself: the concatenation, not the first.
    one = Gzip(1).encode(a)
    assert bytes(Gzip().decode(one + one, len(a))) == a + a
    assert bytes(Gzip().decode(one + gzip_module.compress(b""), len(a))) == a


def test_empty_input(backend):
    assert bytes(Gzip().decode(b"")) == b""
    assert bytes(Gzip().decode(Gzip().encode(b""), 0)) == b""


def test_bytes_like_inputs(backend):
    data = PAYLOADS["small-alphabet"]
    view = memoryview(np.frombuffer(data, dtype=np.uint8))
    encoded = Gzip(1).encode(view)
    assert gzip_module.decompress(encoded) == data
    assert bytes(Gzip().decode(memoryview(encoded))) == data
    assert bytes(Gzip().decode(bytearray(encoded), len(data))) == data


# -- bad data -------------------------------------------------------------------------

def test_truncated(backend):
    data = PAYLOADS["small-alphabet"]
    for encoded in (Gzip(1).encode(data), zlib.compress(data), Gzip(0).encode(data)):
        n = len(encoded)
        for cut in (1, 2, 5, 10, 11, n // 2, n - 8, n - 4, n - 1):
            for hint in (None, len(data)):
                with pytest.raises(CodecError, match="truncated"):
                    Gzip().decode(encoded[:cut], hint)
    # The second member cut short.
    with pytest.raises(CodecError, match="truncated"):
        Gzip().decode(Gzip(1).encode(b"abc") + Gzip(1).encode(data)[:-3])


def corruptions(encoded):
    flipped = bytearray(encoded)
    flipped[len(encoded) // 2] ^= 0x55
    return {
        "not gzip": b"this is not gzip data",
        "zeros": bytes(64),
        "bad method": encoded[:2] + b"\x07" + encoded[3:],
        "flipped deflate byte": bytes(flipped),
        "bad crc32": encoded[:-8] + struct.pack("<I", zlib.crc32(b"x")) + encoded[-4:],
        "bad length": encoded[:-4] + struct.pack("<I", 12345),
        "trailing garbage": encoded + b"junk!",
        "trailing zeros": encoded + bytes(8),
    }


def test_corrupt(backend):
    data = PAYLOADS["small-alphabet"]
    for what, bad in corruptions(Gzip(1).encode(data)).items():
        for hint in (None, len(data)):
            # Never the library's own error: a CodecError, and a zlib.error as before.
            with pytest.raises(_gzip.GzipDataError, match="could not be decoded") as info:
                Gzip().decode(bad, hint)
            assert isinstance(info.value, CodecError), what
            assert isinstance(info.value, zlib.error), what


def test_corrupt_through_chain(backend):
    chunk = np.arange(4096, dtype="<u2").reshape(64, 64)
    chain = CodecChain([Bytes("little"), Gzip(1)], chunk.dtype, chunk.shape)
    encoded = chain.encode(chunk)
    for bad in corruptions(encoded).values():
        with pytest.raises(CodecError, match="c/1/2.*could not be decoded"):
            chain.decode(bad, "c/1/2")
    with pytest.raises(CodecError, match="truncated"):
        chain.decode(encoded[:-1], "c/1/2")


# -- objects and threads --------------------------------------------------------------

def test_pickle_and_threads(backend):
    codec = pickle.loads(pickle.dumps(Gzip(2)))
    assert codec == Gzip(2)
    rng = np.random.default_rng(11)
    inputs = [rng.integers(0, 4 + i, 300_000, dtype=np.uint8).tobytes() for i in range(8)]

    def work(data):
        for _ in range(3):
            encoded = codec.encode(data)
            assert gzip_module.decompress(encoded) == data
            assert bytes(codec.decode(encoded, len(data))) == data
        return True

    with ThreadPoolExecutor(4) as pool:  # result() re-raises a thread's failure here
        assert all(f.result() for f in [pool.submit(work, d) for d in inputs])


# -- choosing a backend ---------------------------------------------------------------

def test_backend_names():
    assert _gzip.BACKENDS == ("isal", "zlib-ng", "zlib")
    available = _gzip.available_backends()
    assert "zlib" in available
    assert available == [n for n in _gzip.BACKENDS if n in available]
    with pytest.raises(ValueError, match="unknown gzip backend"):
        _gzip.set_backend("zstd")
    assert _gzip.BACKEND in available


def run_python(code, **env_extra):
    env = {k: v for k, v in os.environ.items() if k != "ZARRSYNC_GZIP"}
    env.update(env_extra)
    # -P: import the installed package, not the checkout's uncompiled source folder.
    return subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


# Make packages unimportable in a child process, then import the codec.
BLOCK = "import sys\nfor m in {blocked!r}: sys.modules[m] = None\n"
SHOW = "from zarrsync.codecs import _gzip\nprint(_gzip.BACKEND, *_gzip.available_backends())\n"


@pytest.mark.parametrize("blocked, expected", [
    ((), None),                          # the first available
    (("isal",), None),
    (("isal", "zlib_ng"), "zlib"),
])
def test_default_backend_is_first_available(blocked, expected):
    out = run_python(BLOCK.format(blocked=blocked) + SHOW)
    assert out.returncode == 0, out.stderr
    chosen, *available = out.stdout.split()
    assert chosen == available[0]
    assert not set(available) & {n for n, p in PACKAGES.items() if p in blocked}
    if expected:
        assert chosen == expected


@pytest.mark.parametrize("name", ["zlib", "zlib-ng", "isal"])
def test_environment_variable_chooses(name):
    if name != "zlib":
        pytest.importorskip(PACKAGES[name])
    out = run_python(SHOW, ZARRSYNC_GZIP=name)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == name


def test_environment_variable_unknown_name_fails():
    out = run_python("import zarrsync", ZARRSYNC_GZIP="deflate64")
    assert out.returncode != 0
    assert "ValueError" in out.stderr and "ZARRSYNC_GZIP='deflate64'" in out.stderr
    assert "isal, zlib-ng, zlib" in out.stderr


def test_environment_variable_unavailable_fails():
    out = run_python(BLOCK.format(blocked=("isal",)) + "import zarrsync", ZARRSYNC_GZIP="isal")
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "ZARRSYNC_GZIP='isal'" in out.stderr
    assert "needs the 'isal' package" in out.stderr


def test_empty_environment_variable_means_default():
    out = run_python(SHOW, ZARRSYNC_GZIP="")
    assert out.returncode == 0, out.stderr
    chosen, *available = out.stdout.split()
    assert chosen == available[0]


# -- reading into a reused buffer (libdeflate) ----------------------------------------

def _decoder_param(name):
    if name == "libdeflate" and importlib.util.find_spec("deflate") is None:
        return pytest.param(name, marks=pytest.mark.skip(
            reason="gzip decoder 'libdeflate': the 'deflate' package is not installed"))
    return name


@pytest.fixture(params=[_decoder_param(n) for n in ("libdeflate", "backend")])
def decoder(request):
    previous = _gzip.set_decoder(request.param)
    yield request.param
    _gzip.set_decoder(previous)


def decode_into(encoded, size):
    """(what decode_into returns, the buffer) for an output of ``size`` bytes."""
    out = bytearray(size)
    return Gzip().decode_into(encoded, out), out


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_decode_into_reads_every_writer(backend, decoder, name):
    data = PAYLOADS[name]
    for writer, encoded in other_writers(data).items():
        n, out = decode_into(encoded, len(data))
        assert n == len(data) and out == data, writer
        n, _ = decode_into(encoded, len(data) + 1)  # the chunk is shorter than the buffer
        assert n == len(data), writer
        if data:
            n, _ = decode_into(encoded, len(data) - 1)  # longer than the buffer
            assert n == len(data), writer


def test_decode_into_reads_several_members(backend, decoder):
    a = PAYLOADS["small-alphabet"]
    one = Gzip(1).encode(a)
    n, out = decode_into(one + one, 2 * len(a))
    assert n == 2 * len(a) and out == a + a
    # Two equal members are not one: never just the first, whatever the buffer.
    assert decode_into(one + one, len(a))[0] == 2 * len(a)
    n, out = decode_into(one + gzip_module.compress(b""), len(a))
    assert n == len(a) and out == a
    n, out = decode_into(zlib.compress(a), len(a))
    assert n == len(a) and out == a


def test_decode_into_rejects_bad_data(backend, decoder):
    data = PAYLOADS["small-alphabet"]
    encoded = Gzip(1).encode(data)
    for what, bad in corruptions(encoded).items():
        with pytest.raises(_gzip.GzipDataError, match="could not be decoded"):
            decode_into(bad, len(data))
    for cut in (1, 10, len(encoded) // 2, len(encoded) - 1):
        with pytest.raises(CodecError, match="truncated"):
            decode_into(encoded[:cut], len(data))


@pytest.mark.parametrize("codecs", [[Bytes(), Gzip(1)], [Bytes(), Gzip(1), Crc32c()]],
                         ids=["gzip", "gzip-crc32c"])
def test_reads_through_either_decoder(backend, decoder, codecs):
    values = field((40, 33, 17), "float32")
    store = zs.MemoryStore()
    node = ArrayNode.of_path("/a")
    store.create_array(node, shape=values.shape, chunks=(16, 16, 8), dtype="float32",
                       codecs=codecs)
    store.write_array(node, ..., values)
    np.testing.assert_array_equal(store.read_array(node), values)
    np.testing.assert_array_equal(store.read_array(node, (slice(3, None, 5), 7)),
                                  values[3::5, 7])
    if len(codecs) == 2:
        store.set("a/c/0/1/0", Gzip(1).encode(b"\0" * 100))  # a chunk of the wrong size
        with pytest.raises(CodecError, match="a/c/0/1/0"):
            store.read_array(node)
        store.set("a/c/0/1/0", b"not gzip at all")
        with pytest.raises(CodecError, match="a/c/0/1/0"):
            store.read_array(node)


SHOW_DECODER = "from zarrsync.codecs import _gzip\nprint(_gzip.DECODER)\n"


@pytest.mark.parametrize("blocked, env, expected", [
    ((), "", "libdeflate"),
    ((), "backend", "backend"),
    (("deflate",), "", "backend"),
])
def test_which_decoder(blocked, env, expected):
    if expected == "libdeflate":
        pytest.importorskip("deflate")
    out = run_python(BLOCK.format(blocked=blocked) + SHOW_DECODER, ZARRSYNC_GZIP_DECODER=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [expected]


@pytest.mark.parametrize("env, error", [("inflate64", "ValueError"),
                                        ("libdeflate", "ImportError")])
def test_decoder_environment_variable_errors(env, error):
    out = run_python(BLOCK.format(blocked=("deflate",)) + "import zarrsync",
                     ZARRSYNC_GZIP_DECODER=env)
    assert out.returncode != 0
    assert error in out.stderr and f"ZARRSYNC_GZIP_DECODER={env!r}" in out.stderr


# -- other Zarr implementations -------------------------------------------------------

def field(shape, dtype):
    rng = np.random.default_rng(5)
    grid = np.meshgrid(*[np.linspace(0, 3, n) for n in shape], indexing="ij")
    x = sum(np.sin(g * (i + 1)) for i, g in enumerate(grid)) + rng.normal(0, 1e-3, shape)
    if np.dtype(dtype).kind in "iu":
        x = x * 1000
    return x.astype(dtype)


# dtype, endian, shape, chunks, level: partial edge chunks, levels of each isal band.
ARRAYS = [
    ("float32", "little", (40, 33, 17), (16, 16, 8), 1),
    ("float64", "big", (37, 50), (16, 32), 5),
    ("int16", "little", (70, 9), (32, 4), 9),
    ("uint8", "little", (300,), (64,), 0),
]


def write_zarrsync(root, dtype, endian, shape, chunks, level):
    data = field(shape, dtype)
    store = zs.FilesystemStore(root)
    node = ArrayNode.of_path("/a")
    store.create_array(node, shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                       codecs=[{"name": "bytes", "configuration": {"endian": endian}},
                               {"name": "gzip", "configuration": {"level": level}}])
    store.write_array(node, Ellipsis, data)
    # Written by the backend under test (its bytes are reproducible).
    stored = first_chunk(root)
    assert stored == Gzip(level).encode(gzip_module.decompress(stored))
    return data


def first_chunk(root):
    return next(p for p in sorted((root / "a").rglob("*"))
                if p.is_file() and p.name != "zarr.json").read_bytes()


@pytest.mark.parametrize("dtype, endian, shape, chunks, level", ARRAYS)
def test_zarr_python_reads_zarrsync(backend, tmp_path, dtype, endian, shape, chunks, level):
    zarr = pytest.importorskip("zarr")
    data = write_zarrsync(tmp_path, dtype, endian, shape, chunks, level)
    za = zarr.open_array(zarr.storage.LocalStore(str(tmp_path), read_only=True), path="a",
                         mode="r")
    got = za[...]
    assert got.dtype == data.dtype
    np.testing.assert_array_equal(got, data)
    assert got.tobytes() == data.tobytes()


@pytest.mark.parametrize("dtype, endian, shape, chunks, level", ARRAYS)
def test_zarrsync_reads_zarr_python(backend, tmp_path, dtype, endian, shape, chunks, level):
    zarr = pytest.importorskip("zarr")
    from zarr.codecs import BytesCodec, GzipCodec
    data = field(shape, dtype)
    za = zarr.create_array(zarr.storage.LocalStore(str(tmp_path)), name="a", shape=shape,
                           chunks=chunks, dtype=dtype, fill_value=0,
                           serializer=BytesCodec(endian=endian),
                           compressors=[GzipCodec(level=level)])
    za[...] = data
    got = zs.FilesystemStore(tmp_path).read_array(ArrayNode.of_path("/a"))
    assert got.tobytes() == data.tobytes()
    assert first_chunk(tmp_path)[:2] == b"\x1f\x8b"


@pytest.mark.parametrize("dtype, endian, shape, chunks, level", ARRAYS[:2])
def test_tensorstore_reads_zarrsync(backend, tmp_path, dtype, endian, shape, chunks, level):
    ts = pytest.importorskip("tensorstore")
    data = write_zarrsync(tmp_path, dtype, endian, shape, chunks, level)
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{tmp_path}/a/"}},
                open=True, read=True).result()
    got = t.read().result()
    assert got.tobytes() == data.astype(got.dtype).tobytes()
    np.testing.assert_array_equal(got, data)


@pytest.mark.parametrize("dtype, endian, shape, chunks, level", ARRAYS[:2])
def test_zarrs_reads_zarrsync(backend, tmp_path, dtype, endian, shape, chunks, level):
    zarr = pytest.importorskip("zarr")
    zarrs = pytest.importorskip("zarrs")
    data = write_zarrsync(tmp_path, dtype, endian, shape, chunks, level)
    with zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline",
                          "codec_pipeline.strict": True}):
        za = zarr.open_array(zarr.storage.LocalStore(str(tmp_path)), path="a", mode="r")
        assert isinstance(za._async_array.codec_pipeline, zarrs.ZarrsCodecPipeline)
        got = za[...]
    np.testing.assert_array_equal(got, data)
    assert got.tobytes() == data.tobytes()
