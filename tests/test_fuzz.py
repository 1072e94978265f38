"""Fuzzing: hostile metadata, chunks, shard indexes and zip archives.

Each target starts from valid stores that zarrsync writes (``SEEDS``),
damages one part of them with mutations that Hypothesis draws, and runs the
public calls a reader (and a writer) would make on the result. The only
exceptions allowed out are ``zarrsync.errors.ZarrSyncError``s; a damaged
input may also read without error (a flipped bit in raw data is still data),
except where a checksum protects it.

Bounds: while a target runs, the process may not map more than
``MEMORY_HEADROOM`` bytes beyond what it had (``RLIMIT_AS``), so an input
that makes zarrsync allocate without bound fails the run as a ``MemoryError``,
and a watchdog ends the run with every thread's stack if one example hangs
(run with ``-s`` to see them: pytest captures stderr).

CI runs ``CI_EXAMPLES`` examples per target.
A long local run, as documented in ``docs/reliability.md``::

    python -m pytest tests/test_fuzz.py --fuzz-examples 100000 -p no:cacheprovider -s

(``-s`` shows how many inputs each target ran.)
"""

import contextlib
import faulthandler
import io
import json
import os
import struct
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zarrsync as zs
from zarrsync import ArrayNode, GroupNode, ZarrSyncError
from zarrsync import codecs as zc

#: Most bytes a target may map beyond what the process held before it.
MEMORY_HEADROOM = 1536 << 20
#: Most decoded bytes per chunk while fuzzing (far below the headroom).
MAX_CHUNK_BYTES = 64 << 20
#: Examples per target without ``--fuzz-examples`` (a few seconds each).
CI_EXAMPLES = 300
#: Seconds one example may take before the watchdog ends the run.
HANG_SECONDS = 120


# -- seeds: valid stores ------------------------------------------------------------------

def _codec_chains():
    """name -> (dtype, shape, chunks, codecs): one array per codec and layout."""
    shard = zc.ShardingIndexed(chunk_shape=(2, 3), codecs=[zc.Bytes(), zc.Zstd(level=1)],
                        index_codecs=[zc.Bytes(), zc.Crc32c()])
    shard_start = zc.ShardingIndexed(chunk_shape=(3, 2), codecs=[zc.Bytes(), zc.Gzip(level=1)],
                              index_location="start")
    return {
        "raw": ("int32", (6, 5), (3, 5), [zc.Bytes()]),
        "big": ("float64", (6, 5), (4, 2), [zc.Bytes(endian="big")]),
        "zstd": ("uint16", (7, 4), (3, 4), [zc.Bytes(), zc.Zstd(level=3)]),
        "zstd_sum": ("int64", (5,), (2,), [zc.Bytes(), zc.Zstd(level=1, checksum=True)]),
        "gzip": ("float32", (6, 5), (3, 3), [zc.Bytes(), zc.Gzip(level=1)]),
        "crc": ("int16", (6, 5), (3, 5), [zc.Bytes(), zc.Crc32c()]),
        "gzip_crc": ("uint8", (9,), (4,), [zc.Bytes(), zc.Gzip(level=1), zc.Crc32c()]),
        "transpose": ("complex64", (4, 6), (2, 3),
                      [zc.Transpose(order=(1, 0)), zc.Bytes(), zc.Zstd(level=1)]),
        "bool": ("bool", (10,), (4,), [zc.Bytes()]),
        "shard": ("int32", (6, 6), (4, 6), [shard]),
        "shard_start": ("uint32", (6, 4), (6, 4), [shard_start]),
        "utf8": ("string", (5,), (2,), [zc.VlenUtf8(), zc.Zstd(level=1)]),
        "vbytes": ("bytes", (4,), (3,), [zc.VlenBytes(), zc.Gzip(level=1)]),
        "scalar": ("float32", (), (), [zc.Bytes(), zc.Crc32c()]),
        "blosc": ("int32", (6, 5), (3, 5), [zc.Bytes(), zc.Blosc(cname="lz4", clevel=1)]),
        "nc_zlib": ("uint16", (7, 4), (3, 4), [zc.Bytes(), zc.numcodecs_codec("zlib", level=1)]),
        "nc_delta": ("int16", (9,), (4,), [zc.numcodecs_codec("delta", dtype="<i2"), zc.Bytes(),
                                           zc.Blosc(cname="zstd", clevel=1)]),
    }


def _v2_chains():
    """name -> (dtype, shape, chunks, codecs, separator) of the Zarr v2 arrays."""
    return {
        "zstd_f": ("int32", (6, 5), (4, 2), [zc.Transpose((1, 0)), zc.Bytes("big"),
                                             zc.Zstd(level=1)], "."),
        "blosc": ("float64", (7,), (3,), [zc.Bytes(), zc.Blosc(cname="zstd", clevel=1)], "/"),
        "delta_zlib": ("int16", (9,), (4,), [zc.numcodecs_codec("delta", dtype="<i2"),
                                             zc.Bytes(), zc.numcodecs_codec("zlib", level=1)],
                       "."),
        "utf8": ("string", (5,), (2,), [zc.VlenUtf8(), zc.Blosc(cname="lz4", clevel=1)], "."),
        "raw": ("uint8", (3, 3), (2, 2), [zc.Bytes(None)], "/"),
    }


def _values(dtype, shape):
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == "string":
        return np.array([f"s{i}é" * (i % 3) for i in range(n)], dtype=object).reshape(shape)
    if dtype == "bytes":
        return np.array([bytes(range(i % 7)) for i in range(n)], dtype=object).reshape(shape)
    return (np.arange(1, n + 1) % 7).astype(dtype).reshape(shape)


def build_seed():
    """A MemoryStore holding groups /g and /g/h and one written array per chain."""
    store = zs.MemoryStore()
    store.create_group(GroupNode.of_path("/g/h"), attrs={"title": "seed", "n": [1, 2]})
    for name, (dtype, shape, chunks, codecs) in _codec_chains().items():
        node = ArrayNode.of_path(f"/g/{name}")
        store.create_array(node, shape=shape, chunks=chunks, dtype=dtype, codecs=codecs,
                           dimension_names=[f"d{i}" for i in range(len(shape))] or None,
                           attributes={"units": "m"})
        store.write_array(node, ..., _values(dtype, shape))
    # Zarr v2 beside them: .zgroup, .zarray, .zattrs, and a .zmetadata at /v2.
    store.create_group(GroupNode.of_path("/v2/sub"), attrs={"k": 1}, zarr_format=2)
    for name, (dtype, shape, chunks, codecs, sep) in _v2_chains().items():
        node = ArrayNode.of_path(f"/v2/{name}")
        store.create_array(node, shape=shape, chunks=chunks, dtype=dtype, codecs=codecs,
                           separator=sep, attributes={"units": "s"}, zarr_format=2)
        store.write_array(node, ..., _values(dtype, shape))
    store.consolidate_metadata(GroupNode.of_path("/v2"))
    return store.to_dict()


def _is_document(key):
    return key.rpartition("/")[2] in ("zarr.json", ".zarray", ".zattrs", ".zgroup",
                                      ".zmetadata")


SEED = build_seed()
ARRAY_NAMES = sorted(_codec_chains())
#: Every array of the seed, by key.
ARRAY_KEYS = [f"g/{n}" for n in ARRAY_NAMES] + [f"v2/{n}" for n in sorted(_v2_chains())]
CHUNK_KEYS = sorted(k for k in SEED if not _is_document(k))
DOCUMENT_KEYS = sorted(k for k in SEED if _is_document(k))
SHARD_KEYS = sorted(k for k in CHUNK_KEYS if k.startswith(("g/shard/", "g/shard_start/")))
#: Arrays whose stored chunks end in a crc32c of their bytes: any change is an error.
CRC_PROTECTED = ("g/crc/", "g/gzip_crc/", "g/scalar/")
#: Arrays whose chunks hold a checksum of their decoded content (gzip's CRC-32,
#: or crc32c): a changed chunk reads as an error or as the original data,
#: never as other values.
#: (Not zstd's optional checksum: the damage may clear the frame's flag for it.)
CONTENT_CHECKED = CRC_PROTECTED + ("g/gzip/", "g/vbytes/", "g/shard_start/")


# -- the calls every target makes ---------------------------------------------------------

def _window(shape):
    """A small selection at the start and one at the end of every axis."""
    head = tuple(slice(0, min(n, 3)) for n in shape)
    tail = tuple(slice(max(0, n - 2), n) for n in shape)
    return head, tail


def exercise(store, write=True):
    """The public calls a reader and a writer make; returns how many failed cleanly."""
    failures = 0

    def attempt(call, *args):
        nonlocal failures
        try:
            return call(*args)
        except ZarrSyncError:
            failures += 1
            return None

    listed = attempt(store.find_all_nodes)
    arrays = list(listed[0]) if listed else []
    arrays += [ArrayNode.of_path(f"/{k}") for k in ARRAY_KEYS]
    attempt(store.find_child_nodes, GroupNode.of_path("/g"))
    attempt(store.find_child_nodes, GroupNode.of_path("/v2"))
    for group in ("/", "/g", "/g/h", "/v2", "/v2/sub"):
        attempt(store.group_metadata, GroupNode.of_path(group))
        attempt(store.group_exists, GroupNode.of_path(group))
    for node in dict.fromkeys(arrays):
        meta = attempt(store.array_metadata, node)
        attempt(store.array_exists, node)
        if meta is None:
            continue
        for selection in _window(meta.shape):
            attempt(store.read_array, node, selection)
        if write:
            head = _window(meta.shape)[0]
            value = attempt(store.read_array, node, head)
            if value is not None:
                attempt(store.write_array, node, head, value)
                attempt(store.read_array, node, head)
            attempt(store.set_attributes, node, {"touched": True})
    return failures


@contextlib.contextmanager
def bounded():
    """Limit the address space to what the process maps now plus the headroom,
    and end the run with a traceback if one example hangs."""
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    limits = None
    if sys.platform.startswith("linux"):
        import resource
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limits = resource.getrlimit(resource.RLIMIT_AS)
        hard = limits[1]
        soft = mapped + MEMORY_HEADROOM
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    try:
        with zs.config.set(max_chunk_bytes=MAX_CHUNK_BYTES):
            yield
    finally:
        if limits is not None:
            resource.setrlimit(resource.RLIMIT_AS, limits)
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def _bounded_run():
    # Start the thread pool first: its stacks are mapped once, outside the bound.
    store = zs.MemoryStore(SEED)
    exercise(store, write=False)
    with zs.config.set(parallel_min_bytes=0, parallel_min_chunk_bytes=0):
        exercise(store, write=False)
    with bounded():
        yield


@pytest.fixture
def examples(request):
    """``--fuzz-examples``, or None for ``CI_EXAMPLES``."""
    return request.config.getoption("--fuzz-examples")


def run_target(examples, strategy, check):
    """Run ``check`` on ``examples`` draws of ``strategy`` (``CI_EXAMPLES`` if None)."""
    count = 0

    @settings(deadline=None, suppress_health_check=list(HealthCheck),
              max_examples=examples or CI_EXAMPLES)
    @given(strategy)
    def target(case):
        nonlocal count
        count += 1
        if count % 10_000 == 0:  # progress of long runs, shown with pytest -s
            print(f"{count} inputs", flush=True)
        # Re-armed per example: the watchdog bounds one input, not the whole run.
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
        check(case)
    target()
    print(f"{check.__qualname__.split('.')[0]}: {count} inputs, every error a "
          f"ZarrSyncError")  # shown with pytest -s, for the long runs


# -- mutations ----------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans()
                | st.integers(min_value=-(1 << 70), max_value=1 << 70)
                | st.sampled_from([0, 1, -1, 2 ** 31, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64,
                                   -(2 ** 63), 10 ** 30])
                | st.floats(allow_nan=True, allow_infinity=True)
                | st.text(max_size=8)
                | st.sampled_from(["NaN", "Infinity", "-Infinity", "0x7fc00000", "", "int32",
                                   "float64", "string", "regular", "default", "v2", "/", ".",
                                   "bytes", "zstd", "gzip", "crc32c", "transpose", "little",
                                   "big", "sharding_indexed", "array", "group", "end",
                                   "start", "vlen-utf8", "vlen-bytes"]))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "configuration", "level", "endian", "order",
                         "chunk_shape", "codecs", "index_codecs", "separator",
                         "must_understand", "checksum", "x"]) | st.text(max_size=4),
        inner, max_size=4),
    max_leaves=12)


def _paths(doc, prefix=()):
    """Every path (tuple of keys and indexes) into a JSON document."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, prefix + (i,))


def _replace(doc, path, make):
    if not path:
        return make(doc)
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        out = dict(doc)
    else:
        out = list(doc)
    out[head] = _replace(doc[head], rest, make)
    return out


@st.composite
def structural_mutations(draw, doc):
    """The JSON text of ``doc`` with one to three of its values replaced,
    removed, added to, or nested deeply in arrays."""
    nests = []  # (marker, depth, the nested value's JSON text)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(doc))))
        kind = draw(st.sampled_from(["replace", "delete", "add", "nest", "grow"]))
        if kind == "replace":
            new = draw(json_values)
            doc = _replace(doc, path, lambda _old, new=new: new)
        elif kind == "delete" and path:
            parent, last = path[:-1], path[-1]

            def drop(old, last=last):
                old = dict(old) if isinstance(old, dict) else list(old)
                del old[last]
                return old
            doc = _replace(doc, parent, drop)
        elif kind == "add":
            key, new = draw(st.text(max_size=6)), draw(json_values)
            doc = _replace(doc, path, lambda old, key=key, new=new:
                           {**old, key: new} if isinstance(old, dict) else
                           (old + [new] if isinstance(old, list) else [old, new]))
        elif kind == "nest":
            # A marker string now, spliced into the text at the end: the
            # nested value is deeper than Python's json module can write.
            depth = draw(st.sampled_from([2, 50, 900, 5000, 100_000]))
            marker = f"@@nest{len(nests)}@@"

            def nest(old, marker=marker, depth=depth):
                nests.append((marker, depth, json.dumps(old)))
                return marker
            doc = _replace(doc, path, nest)
        else:  # grow: a large number where a size goes
            big = draw(st.sampled_from([2 ** 31, 2 ** 40, 2 ** 62, 2 ** 63 - 1, 2 ** 64,
                                        10 ** 20, 2 ** 20, 2 ** 30 + 1]))
            doc = _replace(doc, path, lambda old, big=big:
                           [big] * len(old) if isinstance(old, list) else big)
    text = json.dumps(doc)
    for marker, depth, inner in reversed(nests):
        text = text.replace(json.dumps(marker), "[" * depth + inner + "]" * depth)
    return text.encode()


@st.composite
def byte_mutations(draw, data, max_edits=4):
    """``data`` with a few bytes flipped, cut out, inserted or overwritten."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "overwrite", "truncate",
                                     "extend"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            i = min(at, len(data) - 1)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "overwrite":
            new = draw(st.binary(min_size=1, max_size=16)
                       | st.sampled_from([b"\xff" * 8, b"\x00" * 8, b"\x7f" + b"\xff" * 7]))
            data[at:at + len(new)] = new
        elif kind == "truncate":
            del data[at:]
        else:
            data += draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


# -- targets ------------------------------------------------------------------------------

@st.composite
def damaged_documents(draw):
    key = draw(st.sampled_from(DOCUMENT_KEYS))
    doc = json.loads(SEED[key])
    if draw(st.booleans()):
        text = draw(structural_mutations(doc))
    else:
        text = draw(byte_mutations(SEED[key]))
    return key, text


def seed_with(case):
    """A copy of the seed store with ``case = (key, value)`` replacing one value."""
    key, value = case
    store = zs.MemoryStore(SEED)
    store.set(key, value)
    return store


def test_fuzz_metadata_documents(examples):
    """A damaged ``zarr.json`` of a group or an array."""
    run_target(examples, damaged_documents(), lambda case: exercise(seed_with(case)))


@st.composite
def damaged_chunks(draw):
    key = draw(st.sampled_from(CHUNK_KEYS))
    return key, draw(byte_mutations(SEED[key]))


def _crc_matches(data):
    """True if ``data`` ends in the crc32c of the rest: a change the checksum
    cannot see (four 0xff bytes are their own crc32c, for one)."""
    import crc32c
    return len(data) >= 4 and crc32c.crc32c(data[:-4]) == int.from_bytes(data[-4:], "little")


def test_fuzz_chunks(examples):
    """A damaged chunk (or shard) of each codec chain; where checksums guard
    it, it never reads as other values."""
    def check(case):
        key, data = case
        store = seed_with(case)
        node = ArrayNode.of_path("/" + next(a for a in ARRAY_KEYS if key.startswith(a + "/")))
        if key.startswith(CRC_PROTECTED) and not _crc_matches(data) and data != SEED[key]:
            with pytest.raises(ZarrSyncError):
                store.read_array(node)
        if key.startswith(CONTENT_CHECKED) and not (key.startswith(CRC_PROTECTED)
                                                    and _crc_matches(data)):
            try:
                got = store.read_array(node)
            except ZarrSyncError:
                pass
            else:
                want = zs.MemoryStore(SEED).read_array(node)
                assert got.dtype == want.dtype and np.array_equal(got, want)
        exercise(store)
    run_target(examples, damaged_chunks(), check)


def _index_span(key):
    """``(start, length)`` of the shard index inside the shard at ``key``."""
    meta = zs.MemoryStore(SEED).array_metadata(ArrayNode.of_path("/" + key.split("/c")[0]))
    sharding = meta.codecs[0]
    n = int(np.prod([c // i for c, i in zip(meta.chunks, sharding.chunk_shape)]))
    size = 16 * n + (4 if any(c.name == "crc32c" for c in sharding.index_codecs) else 0)
    start = 0 if sharding.index_location == "start" else len(SEED[key]) - size
    return start, size


index_words = st.sampled_from([0, 1, 7, 16, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1,
                               2 ** 64 - 2]) | st.integers(0, 2 ** 64 - 1) | st.integers(0, 512)


@st.composite
def damaged_shard_indexes(draw):
    key = draw(st.sampled_from(SHARD_KEYS))
    start, size = _index_span(key)
    data = bytearray(SEED[key])
    for _ in range(draw(st.integers(1, 4))):
        word = draw(st.integers(0, (size - 4 if size % 16 else size) // 8 - 1))
        struct.pack_into("<Q", data, start + 8 * word, draw(index_words))
    if size % 16 and draw(st.booleans()):  # fix the checksum so the index is believed
        import crc32c
        body = bytes(data[start:start + size - 4])
        struct.pack_into("<I", data, start + size - 4, crc32c.crc32c(body))
    return key, bytes(data)


def test_fuzz_shard_indexes(examples):
    """A shard whose index points anywhere: past the end, overlapping, huge."""
    run_target(examples, damaged_shard_indexes(), lambda case: exercise(seed_with(case)))


def _zip_of(seed, compression):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for key, value in sorted(seed.items()):
            zf.writestr(key, value)
    return out.getvalue()


SEED_ZIPS = [_zip_of(SEED, zipfile.ZIP_STORED), _zip_of(SEED, zipfile.ZIP_DEFLATED)]


@st.composite
def damaged_zips(draw):
    data = draw(st.sampled_from(SEED_ZIPS))
    tail = draw(st.booleans())  # the central directory sits at the end
    if tail:
        cut = len(data) - draw(st.integers(1, min(len(data), 2048)))
        return data[:cut] + draw(byte_mutations(data[cut:]))
    return draw(byte_mutations(data, max_edits=8))


def test_fuzz_zip_archives(examples, tmp_path):
    """A damaged zip archive: entries, local headers and the central directory."""
    path = tmp_path / "fuzz.zip"

    def check(data):
        path.write_bytes(data)
        try:
            store = zs.ZipStore(path, mode="r")
        except ZarrSyncError:
            return
        with store:
            exercise(store, write=False)
    run_target(examples, damaged_zips(), check)
