"""Compare zarrsync with zarr-python (two pipelines), zarrs and tensorstore in one run.

Every implementation works on the same data, and each timing is the median of
``--repeats`` rounds; a round runs every implementation once, in an order that
rotates from round to round, so a slow spell of a shared machine falls on all
of them alike. Each implementation runs every workload once before the rounds
(a warm-up, not timed). The table gives MB/s (or ops/s, steps/s, million
strings/s) and the ratio of zarrsync's speed to the fastest other
implementation (> 1: zarrsync is faster).

    python benchmarks/compare.py                  # full sizes
    python benchmarks/compare.py --quick          # small sizes, a smoke run
    python benchmarks/compare.py --only W5        # just the rows whose label matches
    python benchmarks/compare.py --json docs/performance.json   # also write the results

Columns, in this order:

* zarrsync: a ``zarrsync.MemoryStore``, driven through the public API only, so
  this script runs unchanged against older and newer zarrsync builds.
* zarr-python: zarr-python (>= 3.4) with its default ``BatchedCodecPipeline``,
  on a ``zarr.storage.MemoryStore``.
* zarr-python fused: the same with ``zarr.core.codec_pipeline.FusedCodecPipeline``
  (``codec_pipeline.path``), set while an array is created or resized.
* zarrs: zarr-python with the zarrs (Rust) codec pipeline. That pipeline cannot
  use zarr-python's MemoryStore, so it runs on a LocalStore in a temporary
  directory (under /dev/shm when it exists), removed afterwards. It runs in
  zarrs-python's strict mode: what its pipeline cannot do (strings, strided
  selections) is n/a instead of silently falling back to zarr-python's pipeline.
* tensorstore: its zarr3 driver on a ``memory://`` kvstore; it cannot hold the
  string data type.

Each zarr-python-based array is checked to really use its column's pipeline.

W9 and W10 use the ``blosc`` codec (lz4 and zstd inside, level 5, byte shuffle);
W11 reads a Zarr v2 array (blosc lz4, as zarr-python 2 wrote by default) that
zarr-python writes once, each implementation opening a copy of its keys and
bytes (``open_v2``). A cell that fails is "error" in the table, its exception in
the notes below it; the row's other cells still run (the exit status is then 1).

Writes start fresh: every write row (W1-W4, W6, W9, W10, strings) writes into a
newly created array in each timed repeat. The array (for zarrs, its new directory) is
made just before the timed call, after the implementation's previous array is
freed (for zarrs, its directory removed); only the write is timed. The one
"W1 raw rewrite" row shows the other case: it overwrites the same existing
array every repeat.

After the table come physical limits measured in the same run, each on one
thread and on all cores, with the page faults of one run: memcpy of the W1
bytes, into a reused buffer and into a new array (what a read that returns a
new array pays at least); the fill of fresh memory (the W1 bytes copied into
newly mapped 1 MiB pieces: what a write into a fresh in-memory array pays
when its memory comes new from the kernel); zstd(1) compress and decompress
of the W2 chunks with python-zstandard and with the system libzstd (through
ctypes, into reused buffers and into a new array); gzip(1) compress and
decompress of the W3 chunks (isal when installed, else zlib); blosc-lz4 and
blosc-zstd compress and decompress of the same chunks with numcodecs.
Workloads W1..W11 are described in docs/performance.md;
``benchmarks/plot_compare.py`` turns the JSON into the chart and the table of
that page.
"""

import argparse
import contextlib
import ctypes
import ctypes.util
import dataclasses
import datetime
import functools
import gc
import importlib.metadata
import json
import mmap
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import zstandard

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (
    footnotes,
    format_speed,
    limits_table,
    machine_line,
    markdown_table,
    short_strings,
    smooth_field,
)

import zarrsync as zs
from zarrsync.codecs import Blosc, Bytes, Crc32c, Gzip, ShardingIndexed, VlenUtf8, Zstd

IMPLEMENTATION_ORDER = ("zarrsync", "zarr-python", "zarr-python fused", "zarrs", "tensorstore")
#: The blosc codecs of W9 and W10: cname, level 5, byte shuffle, typesize the data
#: type's item size, blocksize 0 (blosc chooses). Zarr v2's default compressor
#: (zarr-python 2) was the lz4 one, W11's.
BLOSC = {"blosc-lz4": "lz4", "blosc-zstd": "zstd"}
BLOSC_LEVEL = 5
ZARRSYNC_CODECS = {"raw": [Bytes()], "zstd1": [Bytes(), Zstd(level=1, checksum=False)],
                   "gzip1": [Bytes(), Gzip(level=1)],
                   # typesize None: the data type's item size, when bound to the array
                   **{codec: [Bytes(), Blosc(cname=cname, clevel=BLOSC_LEVEL, shuffle="shuffle")]
                      for codec, cname in BLOSC.items()}}
FUSED_CONFIG = {"codec_pipeline.path": "zarr.core.codec_pipeline.FusedCodecPipeline"}
#: How zarrs-python is switched on (its README): the pipeline class by path; strict
#: mode raises where it would otherwise fall back to zarr-python's own pipeline.
ZARRS_CONFIG = {"codec_pipeline.path": "zarrs.ZarrsCodecPipeline",
                "codec_pipeline.strict": True}


def is_string(dtype):
    return np.dtype(dtype).kind == "T"


# -- implementations --------------------------------------------------------------
# Each adapter: create(shape, chunks, dtype, codec) -> handle; write(h, sel, data);
# read(h, sel) -> ndarray; resize(h, shape); open_v2(stored) -> handle of the Zarr v2
# array "a" whose {key: bytes} ``stored`` holds. codec is "raw", "zstd1", "gzip1",
# "blosc-lz4", "blosc-zstd", or
# ("sharded", inner): chunks are then the shard shape, inner chunks zstd(1) and
# the shard index bytes + crc32c. String data (StringDType) uses vlen-utf8 where
# numbers use bytes; ``strings`` says whether an implementation can hold it.
# ``unsupported`` lists the exceptions that mean "cannot run this" (n/a). Dropping
# the last reference to a handle frees its array.

class ZarrSync:
    name = "zarrsync"
    strings = True
    no_strings = ""
    unsupported = ()
    unsupported_note = ""

    def create(self, shape, chunks, dtype, codec):
        store = zs.MemoryStore()
        node = zs.ArrayNode.of_path("/a")
        if isinstance(codec, tuple):
            codecs = [ShardingIndexed(codec[1], [Bytes(), Zstd(level=1, checksum=False)],
                                      [Bytes(), Crc32c()])]
        else:
            codecs = ZARRSYNC_CODECS[codec]
        if is_string(dtype):
            codecs = [VlenUtf8() if isinstance(c, Bytes) else c for c in codecs]
        store.create_array(node, shape=shape, chunks=chunks, dtype=dtype, codecs=codecs,
                           fill_value="" if is_string(dtype) else 0)
        return store, node

    def write(self, h, sel, data):
        h[0].write_array(h[1], sel, data)

    def read(self, h, sel):
        return h[0].read_array(h[1], sel)

    def resize(self, h, shape):
        h[0].reshape(h[1], shape)

    def open_v2(self, stored):
        """The Zarr v2 array "a" whose keys and bytes ``stored`` holds (as
        zarr-python wrote them), copied into a new store."""
        store = zs.MemoryStore()
        for key, value in stored.items():
            store.set(key, value)
        return store, zs.ArrayNode.of_path("/a")

    def close(self):
        pass


class ZarrPython:
    """zarr-python with its default (BatchedCodecPipeline) pipeline on a MemoryStore."""

    name = "zarr-python"
    strings = True
    no_strings = ""
    unsupported = ()
    unsupported_note = ""

    def __init__(self):
        import zarr
        from zarr.core.codec_pipeline import BatchedCodecPipeline
        self.zarr = zarr
        self.pipeline = BatchedCodecPipeline

    def _store(self, stored=None):
        """A new store, holding the keys and bytes of ``stored`` if given."""
        if stored is None:
            return self.zarr.storage.MemoryStore()
        from zarr.core.buffer import default_buffer_prototype
        buffer = default_buffer_prototype().buffer
        return self.zarr.storage.MemoryStore(
            {key: buffer.from_bytes(value) for key, value in stored.items()})

    def _config(self):
        """The configuration every array of this column is created and resized under."""
        return contextlib.nullcontext()

    def _check(self, arr):
        """Fail loudly if the array does not use the pipeline this column is about."""
        pipeline = arr._async_array.codec_pipeline
        if type(pipeline) is not self.pipeline:
            raise RuntimeError(f"{self.name}: the array uses {type(pipeline)}, "
                               f"expected {self.pipeline}")

    def create(self, shape, chunks, dtype, codec):
        from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec
        fill_value = "" if is_string(dtype) else 0
        with self._config():
            if isinstance(codec, tuple):
                arr = self.zarr.create_array(self._store(), shape=shape, shards=chunks,
                                             chunks=codec[1], dtype=dtype,
                                             compressors=[ZstdCodec(level=1)],
                                             fill_value=fill_value)
            else:
                if codec in BLOSC:
                    compressors = [BloscCodec(cname=BLOSC[codec], clevel=BLOSC_LEVEL,
                                              shuffle="shuffle",
                                              typesize=np.dtype(dtype).itemsize)]
                else:
                    compressors = {"raw": None, "zstd1": [ZstdCodec(level=1)],
                                   "gzip1": [GzipCodec(level=1)]}[codec]
                arr = self.zarr.create_array(self._store(), shape=shape, chunks=chunks,
                                             dtype=dtype, compressors=compressors,
                                             fill_value=fill_value)
        self._check(arr)
        return arr

    def write(self, h, sel, data):
        h[sel] = data

    def read(self, h, sel):
        return h[sel]

    def resize(self, h, shape):
        with self._config():
            h.resize(shape)
        self._check(h)

    def open_v2(self, stored):
        with self._config():
            arr = self.zarr.open_array(self._store(stored), path="a", mode="r")
        self._check(arr)
        return arr

    def close(self):
        pass


class ZarrPythonFused(ZarrPython):
    """zarr-python with its FusedCodecPipeline (zarr >= 3.4) on a MemoryStore.

    The pipeline class is read from zarr's configuration when an array object is
    made (create, resize), so only those calls run inside ``config.set``.
    """

    name = "zarr-python fused"

    def __init__(self):
        from zarr.core.codec_pipeline import FusedCodecPipeline
        super().__init__()
        self.pipeline = FusedCodecPipeline

    def _config(self):
        return self.zarr.config.set(FUSED_CONFIG)


def shm_dir():
    """/dev/shm when it exists (a tmpfs: no disk in the timings), else tempfile's default."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class Zarrs(ZarrPython):
    """zarr-python with the zarrs codec pipeline, on a LocalStore in a temporary directory.

    As for the fused column, only array creation and resizing run inside
    ``config.set``. Strict mode turns zarrs-python's silent fallback to
    zarr-python's own pipeline into an error (n/a here), and every array is
    checked to hold a ZarrsCodecPipeline with a Rust implementation (on a
    MemoryStore, for example, zarr-python would quietly make a
    BatchedCodecPipeline instead).
    """

    name = "zarrs"
    strings = False  # strict mode: the zarrs pipeline rejects variable-length types
    no_strings = "its pipeline has no variable-length strings (UnsupportedDataTypeError)"
    unsupported_note = " (strict mode; zarrs-python would fall back to zarr-python's pipeline)"

    def __init__(self):
        import zarrs
        import zarrs.pipeline
        super().__init__()
        self.zarrs = zarrs
        self.unsupported = (zarrs.DiscontiguousArrayError, zarrs.UnsupportedVIndexingError,
                            zarrs.pipeline.UnsupportedDataTypeError,
                            zarrs.pipeline.UnsupportedMetadataError)
        self.root = tempfile.mkdtemp(prefix="zarrsync-compare-zarrs-", dir=shm_dir())
        self.count = 0
        self.last = None

    def _store(self, stored=None):
        # One array lives at a time: drop the previous one so the tmpfs does not fill up
        # and every new array starts in an empty directory.
        if self.last is not None:
            shutil.rmtree(self.last, ignore_errors=True)
        self.count += 1
        self.last = os.path.join(self.root, f"a{self.count}")
        for key, value in (stored or {}).items():
            path = os.path.join(self.last, *key.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(value)
        return self.zarr.storage.LocalStore(self.last)

    def _config(self):
        return self.zarr.config.set(ZARRS_CONFIG)

    def _check(self, arr):
        pipeline = arr._async_array.codec_pipeline
        if not isinstance(pipeline, self.zarrs.ZarrsCodecPipeline) or pipeline.impl is None:
            raise RuntimeError(f"zarrs: the array uses {type(pipeline)}, not the zarrs pipeline")

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)


class TensorStore:
    name = "tensorstore"
    strings = False
    no_strings = "no string data type in its zarr3 driver"
    unsupported = ()
    unsupported_note = ""

    def __init__(self):
        import tensorstore
        self.ts = tensorstore

    def create(self, shape, chunks, dtype, codec):
        codecs = [{"name": "bytes", "configuration": {"endian": "little"}}]
        zstd = {"name": "zstd", "configuration": {"level": 1, "checksum": False}}
        if codec == "zstd1":
            codecs.append(zstd)
        elif codec == "gzip1":
            codecs.append({"name": "gzip", "configuration": {"level": 1}})
        elif codec in BLOSC:
            codecs.append({"name": "blosc", "configuration": {
                "cname": BLOSC[codec], "clevel": BLOSC_LEVEL, "shuffle": "shuffle",
                "typesize": np.dtype(dtype).itemsize, "blocksize": 0}})
        elif isinstance(codec, tuple):
            codecs = [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": list(codec[1]), "codecs": codecs + [zstd],
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                 {"name": "crc32c"}],
                "index_location": "end"}}]
        spec = {
            "driver": "zarr3", "kvstore": "memory://",
            "metadata": {"shape": list(shape), "data_type": np.dtype(dtype).name,
                         "chunk_grid": {"name": "regular",
                                        "configuration": {"chunk_shape": list(chunks)}},
                         "codecs": codecs, "fill_value": 0},
        }
        # No context given: each array gets a new one, so a memory kvstore of its own.
        return self.ts.open(spec, create=True, delete_existing=True).result()

    def write(self, h, sel, data):
        h[sel].write(data).result()

    def read(self, h, sel):
        return h[sel].read().result()

    def resize(self, h, shape):
        return h.resize(exclusive_max=shape, resize_metadata_only=False).result()

    def open_v2(self, stored):
        """Its ``zarr`` (v2) driver on a memory kvstore of a new context, filled first."""
        context = self.ts.Context()
        kv = self.ts.KvStore.open({"driver": "memory"}, context=context).result()
        for key, value in stored.items():
            kv.write(key, value).result()
        return self.ts.open({"driver": "zarr", "kvstore": {"driver": "memory", "path": "a/"},
                             "open": True}, context=context, read=True).result()

    def close(self):
        pass


def available_implementations(skip=()):
    """The adapters to run, and {name: why} for the ones left out."""
    impls, skipped = [ZarrSync()], {}
    for cls in (ZarrPython, ZarrPythonFused, Zarrs, TensorStore):
        if cls.name in skip:
            skipped[cls.name] = "left out with --skip"
        else:
            try:
                impls.append(cls())
            except ImportError as e:
                skipped[cls.name] = f"not importable ({e})"
        if cls.name in skipped:
            print(f"({cls.name}: {skipped[cls.name]}: skipped)")
    return impls, skipped


# -- workloads --------------------------------------------------------------------

def median_time(fn, repeats):
    """Median seconds of ``repeats`` calls of fn() after one warm-up call; what fn
    returns is dropped after the clock stops, so freeing it is not timed."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        kept = fn()
        times.append(time.perf_counter() - t0)
        del kept
    return statistics.median(times)


def sizes(quick):
    """The sizes of the workloads (``--quick`` shrinks them)."""
    return {
        "n": 128 if quick else 256,             # W1-W3, W8: n^3 float32
        "chunk": 32 if quick else 64,           # ... in chunk^3 chunks
        "shard": 64 if quick else 128,          # W4, W5
        "inner": 16 if quick else 32,
        "small": 256 if quick else 512,         # W6: small^2 float64 in 8x8 chunks
        "steps": 64 if quick else 256,          # W7
        "strings": 200_000 if quick else 1_000_000,
        "string_chunk": 20_000 if quick else 100_000,
    }


def workloads(quick):
    """(id, label, kind, codec, data, chunks, extra) for every row, in table order."""
    s = sizes(quick)
    n, chunk = s["n"], s["chunk"]
    field = smooth_field((n, n, n))
    small = smooth_field((s["small"],) * 2, "float64")
    slab = smooth_field((n, n))
    out = []
    for wid, codec in (("W1", "raw"), ("W2", "zstd1"), ("W3", "gzip1")):
        for kind in ("write", "read"):
            out.append((wid, f"{codec} {kind} {n}^3/{chunk}^3", kind, codec, field,
                        (chunk,) * 3, None))
        if wid == "W1":
            out.append((wid, f"raw rewrite {n}^3/{chunk}^3 (same array each repeat)",
                        "rewrite", codec, field, (chunk,) * 3, None))
    shard, inner = s["shard"], s["inner"]
    sharded = ("sharded", (inner,) * 3)
    for kind in ("write", "read"):
        out.append(("W4", f"sharded {kind} {n}^3/{shard}^3/{inner}^3", kind, sharded, field,
                    (shard,) * 3, None))
    out.append(("W5", "2000 reads 1x1x32 (sharded)", "points", sharded, field, (shard,) * 3,
                2000))
    for kind in ("write", "read"):
        out.append(("W6", f"8x8 chunks {kind} {s['small']}^2 f64", kind, "zstd1", small,
                    (8, 8), None))
    out.append(("W7", f"append {s['steps']} steps {n}^2", "append", "zstd1", slab, (8, n, n),
                s["steps"]))
    out.append(("W8", f"strided read ::4 {n}^3/{chunk}^3 zstd", "strided", "zstd1", field,
                (chunk,) * 3, None))
    for wid, codec in (("W9", "blosc-lz4"), ("W10", "blosc-zstd")):
        for kind in ("write", "read"):
            out.append((wid, f"{codec} {kind} {n}^3/{chunk}^3", kind, codec, field,
                        (chunk,) * 3, None))
    out.append(("W11", f"zarr v2 read {n}^3/{chunk}^3 blosc-lz4", "v2read", "blosc-lz4", field,
                (chunk,) * 3, None))
    n_str, str_chunk = s["strings"], s["string_chunk"]
    text = short_strings(n_str)
    label = f"{n_str // 1000}k strings/{str_chunk // 1000}k"
    for kind in ("write", "read"):
        out.append(("S", f"strings {kind} {label}", kind, "zstd1", text, (str_chunk,), None))
    return out


def row_label(wl):
    return f"{wl[0]} {wl[1]}"


def do_nothing():
    pass


@dataclasses.dataclass
class Task:
    """One workload on one implementation: ``setup()`` (not timed) before every
    ``run()`` (timed); ``check()`` once after the warm-up run."""

    run: Callable[[], object]
    amount: float  # what one run does, in the unit's terms (bytes, strings, ops, steps)
    unit: str
    setup: Callable[[], None] = do_nothing
    check: Callable[[], None] = do_nothing


_V2_STORED = {}


def zarr_v2_stored(data, chunks, codec):
    """``{key: bytes}`` of a Zarr v2 array "a" holding ``data``, as zarr-python
    writes it (``.zarray``, ``.zattrs``, chunks ``a/0.0.0``...), compressor numcodecs'
    Blosc (``codec`` is a key of ``BLOSC``) with level 5 and byte shuffle: the
    default compressor of zarr-python 2. Made once per array and kept."""
    key = (id(data), chunks, codec)
    if key not in _V2_STORED:
        import numcodecs
        import zarr
        kept = {}
        store = zarr.storage.MemoryStore(kept)
        arr = zarr.create_array(store, name="a", shape=data.shape, chunks=chunks,
                                dtype=data.dtype, zarr_format=2, fill_value=0,
                                compressors=numcodecs.Blosc(cname=BLOSC[codec],
                                                            clevel=BLOSC_LEVEL,
                                                            shuffle=numcodecs.Blosc.SHUFFLE))
        arr[...] = data
        stored = {k: v.to_bytes() for k, v in kept.items()}
        if "a/.zarray" not in stored or "a/0.0.0" not in stored:
            raise RuntimeError(f"zarr-python did not write a Zarr v2 array: {sorted(stored)[:5]}")
        _V2_STORED[key] = (data, stored)  # data kept alive: its id stays its own
    return _V2_STORED[key][1]


def check_read(impl, h, sel, expected):
    if not np.array_equal(np.asarray(impl.read(h, sel)), expected):
        raise RuntimeError(f"{impl.name}: read back differs from what was written")


def prepare_workload(impl, wl):
    """The ``Task`` that does workload ``wl`` on ``impl``."""
    _, _, kind, codec, data, chunks, extra = wl
    if kind == "append":
        steps = extra

        def append():
            h = impl.create((0,) + data.shape, chunks, data.dtype, codec)
            for t in range(steps):
                impl.resize(h, (t + 1,) + data.shape)
                impl.write(h, t, data)
        return Task(append, steps, "steps/s")
    everything = (slice(None),) * data.ndim
    amount, unit = (data.size, "Mstr/s") if is_string(data.dtype) else (data.nbytes, "MB/s")
    if kind == "write":
        current = {}

        def new_array():
            current.clear()  # free the previous array before making the next,
            gc.collect()     # also when it sits in a reference cycle
            current["h"] = impl.create(data.shape, chunks, data.dtype, codec)
        return Task(lambda: impl.write(current["h"], everything, data), amount, unit,
                    setup=new_array,
                    check=lambda: check_read(impl, current["h"], everything, data))
    if kind == "v2read":
        h = impl.open_v2(zarr_v2_stored(data, chunks, codec))
        return Task(lambda: impl.read(h, everything), amount, unit,
                    check=lambda: check_read(impl, h, everything, data))
    h = impl.create(data.shape, chunks, data.dtype, codec)
    impl.write(h, everything, data)
    if kind == "rewrite":
        return Task(lambda: impl.write(h, everything, data), amount, unit,
                    check=lambda: check_read(impl, h, everything, data))
    if kind == "read":
        return Task(lambda: impl.read(h, everything), amount, unit,
                    check=lambda: check_read(impl, h, everything, data))
    if kind == "points":
        rng = np.random.default_rng(0)
        n = data.shape[0]
        starts = rng.integers(0, n, (extra, 2))
        k0 = rng.integers(0, n // 32, extra) * 32
        sels = [(int(i), int(j), slice(int(k), int(k) + 32)) for (i, j), k in zip(starts, k0)]

        def points():
            for sel in sels:
                impl.read(h, sel)
        return Task(points, len(sels), "ops/s")
    if kind == "strided":
        sel = (slice(None, None, 4),) * data.ndim
        # MB/s of the whole array: every chunk is decoded for a ::4 selection.
        return Task(lambda: impl.read(h, sel), data.nbytes, "MB/s",
                    check=lambda: check_read(impl, h, sel, data[sel]))
    raise ValueError(kind)


def interleaved_medians(tasks, repeats):
    """``{name: median seconds}`` of ``repeats`` rounds; each round times every
    ``tasks[name].run`` once (after its untimed ``setup``), starting one further
    along each round, so a slow spell of a shared machine (CPU time stolen for
    seconds at a time) falls on every implementation alike instead of on
    whichever ran then. The caller has run each once already (imports, thread
    pools, caches)."""
    names = list(tasks)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            tasks[name].setup()
            t0 = time.perf_counter()
            tasks[name].run()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def speed_of(seconds, amount, unit):
    return amount / seconds / (1e6 if unit in ("MB/s", "Mstr/s") else 1)


# -- physical limits -------------------------------------------------------------

FRESH_PIECE = 1 << 20  # the size of a full-size W1 chunk (64^3 float32)


def load_libzstd():
    """The system libzstd through ctypes (CDLL calls release the GIL), or None."""
    path = ctypes.util.find_library("zstd")
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    size_t, void_p = ctypes.c_size_t, ctypes.c_void_p
    lib.ZSTD_versionString.restype = ctypes.c_char_p
    lib.ZSTD_compressBound.restype = size_t
    lib.ZSTD_compressBound.argtypes = [size_t]
    lib.ZSTD_createCCtx.restype = void_p
    lib.ZSTD_freeCCtx.argtypes = [void_p]
    lib.ZSTD_compressCCtx.restype = size_t
    lib.ZSTD_compressCCtx.argtypes = [void_p, void_p, size_t, void_p, size_t, ctypes.c_int]
    lib.ZSTD_createDCtx.restype = void_p
    lib.ZSTD_freeDCtx.argtypes = [void_p]
    lib.ZSTD_decompressDCtx.restype = size_t
    lib.ZSTD_decompressDCtx.argtypes = [void_p, void_p, size_t, ctypes.c_char_p, size_t]
    lib.ZSTD_isError.restype = ctypes.c_uint
    lib.ZSTD_isError.argtypes = [size_t]
    lib.ZSTD_getErrorName.restype = ctypes.c_char_p
    lib.ZSTD_getErrorName.argtypes = [size_t]
    lib.path = path
    return lib


def zstd_checked(lib, result, call):
    """A libzstd size result, or a RuntimeError if it is an error code."""
    if lib.ZSTD_isError(result):
        raise RuntimeError(f"{call}: {lib.ZSTD_getErrorName(result).decode()}")
    return result


def gil_overlap(part, seconds=0.3):
    """The fraction of thread 0's calls of part(0) that overlapped thread 1's calls of
    part(1), with the GIL switch interval raised so that a call holding the GIL
    cannot be interleaved: ~0 if the call holds the GIL, near 1 if it releases it,
    however many cores are free."""
    spans = ([], [])

    def run(t):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(spans[t]) < 3:
            a = time.perf_counter()
            part(t)
            spans[t].append((a, time.perf_counter()))
    old = sys.getswitchinterval()
    sys.setswitchinterval(60.0)
    try:
        threads = [threading.Thread(target=run, args=(t,)) for t in (0, 1)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)
    both = sum(max(0.0, min(b0, b1) - max(a0, a1)) for a0, b0 in spans[0] for a1, b1 in spans[1])
    return both / sum(b - a for a, b in spans[0])


def minor_page_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def chunks_of(field, chunk):
    """The chunk^3 blocks of a cube, each C-contiguous (what a chunk encoder gets)."""
    n = field.shape[0]
    return [np.ascontiguousarray(field[i:i + chunk, j:j + chunk, k:k + chunk])
            for i in range(0, n, chunk) for j in range(0, n, chunk)
            for k in range(0, n, chunk)]


class LimitMeter:
    """Times one limit on one thread and on ``threads`` threads of one pool."""

    def __init__(self, pool, threads, repeats):
        self.pool, self.threads, self.repeats = pool, threads, repeats

    def __call__(self, label, nbytes, one, part, setup=None, **extra):
        """one(): all the work on this thread; part(i): thread i's share of it,
        after setup() (on this thread, timed) where the threads share something
        made anew each run."""
        def many():
            if setup is not None:
                setup()
            return list(self.pool.map(part, range(self.threads)))
        t1 = median_time(one, self.repeats)
        tn = median_time(many, self.repeats)
        # Did the threads really run at once? Process CPU time over wall time of
        # the all-thread runs: ~1 if serialised, up to `threads` if not, but less
        # when other processes hold cores; gil_overlap() tells even then.
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(max(self.repeats, 3)):
            many()
        busy = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        faults = []
        for work in (one, many):
            before = minor_page_faults()
            work()
            faults.append(minor_page_faults() - before)
        return dict(label=label, unit="MB/s", bytes=nbytes, threads=self.threads,
                    one_thread=nbytes / t1 / 1e6, all_threads=nbytes / tn / 1e6,
                    scaling=t1 / tn, cpu_per_wall=busy, page_faults_one_thread=faults[0],
                    page_faults_all_threads=faults[1],
                    gil_overlap=gil_overlap(part) if self.threads > 1 else None, **extra)


def memory_limits(limit, field, n):
    """memcpy of the W1 bytes into one reused buffer, and into fresh 1 MiB pieces."""
    threads = limit.threads
    src = field.reshape(-1)
    dst = np.empty_like(src)
    bounds = np.linspace(0, src.size, threads + 1).astype(int)

    def copy_part(i):
        np.copyto(dst[bounds[i]:bounds[i + 1]], src[bounds[i]:bounds[i + 1]])
    out = [limit(f"memcpy of the W1 bytes ({n}^3 float32), numpy.copyto", src.nbytes,
                 lambda: np.copyto(dst, src), copy_part)]
    if not np.array_equal(dst, src):
        raise RuntimeError("memcpy limit: the copy differs")

    # What a read that returns a new array must do at least: fill its fresh pages
    # (numpy.empty maps a block this large afresh each time, as a read's output).
    fresh = {}

    def new_array():
        fresh["out"] = np.empty_like(src)

    def copy_into_new(i):
        np.copyto(fresh["out"][bounds[i]:bounds[i + 1]], src[bounds[i]:bounds[i + 1]])

    def copy_all_into_new():
        new_array()
        np.copyto(fresh["out"], src)
    out.append(limit(f"copy of the W1 bytes into a new array (numpy.empty + copyto), as a "
                     f"read returns one", src.nbytes, copy_all_into_new, copy_into_new,
                     setup=new_array))
    fresh.clear()

    flat = src.view(np.uint8)
    offsets = range(0, flat.size, FRESH_PIECE)

    def fill_fresh(at_offsets):
        # Anonymous maps, not np.empty: malloc would hand back pages this process has
        # touched already (no faults), and bytearray would zero-fill them first.
        pieces = []
        for at in at_offsets:
            piece = mmap.mmap(-1, min(FRESH_PIECE, flat.size - at))
            np.copyto(np.frombuffer(piece, np.uint8), flat[at:at + FRESH_PIECE])
            pieces.append(piece)
        return pieces  # unmapped when the caller drops them, after the clock stops
    pieces = fill_fresh(offsets)
    if b"".join(pieces) != flat.tobytes():
        raise RuntimeError("fresh-memory limit: the copy differs")
    del pieces
    out.append(limit(f"fill of fresh memory: the W1 bytes copied into newly mapped "
                     f"{FRESH_PIECE >> 20} MiB pieces (anonymous mmap + numpy.copyto), "
                     f"unmapped after each run", flat.nbytes,
                     lambda: fill_fresh(offsets), lambda i: fill_fresh(offsets[i::threads])))
    return out


def zstd_limits(limit, blocks, chunk):
    """zstd(1) compress and decompress of the W2 chunks: python-zstandard, then the
    system libzstd through ctypes into reused buffers (if it loads)."""
    threads = limit.threads
    raw = sum(b.nbytes for b in blocks)
    expected = np.concatenate([b.reshape(-1).view(np.uint8) for b in blocks])
    what = f"the {len(blocks)} W2 chunks ({chunk}^3 float32)"

    compressors = [zstandard.ZstdCompressor(level=1, write_content_size=True)
                   for _ in range(threads)]
    frames = [compressors[0].compress(b) for b in blocks]
    ratio = raw / sum(len(f) for f in frames)
    package = (f"python-zstandard {zstandard.__version__}, "
               f"zstd {'.'.join(map(str, zstandard.ZSTD_VERSION))}")
    out = [limit(f"zstd(1) compress of {what}, {package}", raw,
                 lambda: [compressors[0].compress(b) for b in blocks],
                 lambda i: [compressors[i].compress(b) for b in blocks[i::threads]],
                 compression_ratio=ratio)]
    decompressors = [zstandard.ZstdDecompressor() for _ in range(threads)]
    if b"".join(decompressors[0].decompress(f) for f in frames) != expected.tobytes():
        raise RuntimeError("python-zstandard: the decompressed frames differ from the chunks")
    out.append(limit(f"zstd decompress of those frames, {package} (a new bytes object "
                     f"per chunk)", raw,
                     lambda: [decompressors[0].decompress(f) for f in frames],
                     lambda i: [decompressors[i].decompress(f) for f in frames[i::threads]],
                     compression_ratio=ratio))

    lib = load_libzstd()
    if lib is None:
        return out
    version = lib.ZSTD_versionString().decode()
    bound = lib.ZSTD_compressBound(max(b.nbytes for b in blocks))
    sources = [(b.ctypes.data, b.nbytes) for b in blocks]
    cctxs = [lib.ZSTD_createCCtx() for _ in range(threads)]
    dctxs = [lib.ZSTD_createDCtx() for _ in range(threads)]
    try:
        frame_buffers = [np.empty(bound, np.uint8) for _ in range(threads)]

        def compress(i, indices):
            """Compresses each chunk into thread i's reused buffer; the last frame's size."""
            cctx, dst = cctxs[i], frame_buffers[i].ctypes.data
            size = 0
            for k in indices:
                size = zstd_checked(lib, lib.ZSTD_compressCCtx(cctx, dst, bound, *sources[k], 1),
                                    "ZSTD_compressCCtx")
            return size
        lib_frames = []
        for k in range(len(blocks)):
            size = compress(0, [k])
            lib_frames.append(frame_buffers[0][:size].tobytes())
        lib_ratio = raw / sum(len(f) for f in lib_frames)
        out.append(limit(f"zstd(1) compress of {what} into a reused buffer, libzstd "
                         f"{version} via ctypes ({lib.path})", raw,
                         lambda: compress(0, range(len(blocks))),
                         lambda i: compress(i, range(i, len(blocks), threads)),
                         compression_ratio=lib_ratio))

        # Each frame decompresses into its place in one reused buffer, as into an array.
        decompressed = np.empty(raw, dtype=np.uint8)
        offsets = np.cumsum([0] + [b.nbytes for b in blocks]).tolist()

        def decompress(i, indices):
            for k in indices:
                capacity = offsets[k + 1] - offsets[k]
                size = zstd_checked(lib, lib.ZSTD_decompressDCtx(
                    dctxs[i], decompressed.ctypes.data + offsets[k], capacity,
                    lib_frames[k], len(lib_frames[k])), "ZSTD_decompressDCtx")
                if size != capacity:
                    raise RuntimeError(f"ZSTD_decompressDCtx: {size} bytes, not {capacity}")
        out.append(limit(f"zstd decompress of those frames into a reused buffer, libzstd "
                         f"{version} via ctypes", raw,
                         lambda: decompress(0, range(len(blocks))),
                         lambda i: decompress(i, range(i, len(blocks), threads)),
                         compression_ratio=lib_ratio))
        if not np.array_equal(decompressed, expected):
            raise RuntimeError("libzstd: the decompressed frames differ from the chunks")

        def new_array():
            # As a read returns a new array, whose pages are faulted in too.
            nonlocal decompressed
            decompressed = np.empty(raw, dtype=np.uint8)

        def decompress_all_into_new():
            new_array()
            decompress(0, range(len(blocks)))
        out.append(limit(f"zstd decompress of those frames into a new array (numpy.empty), "
                         f"libzstd {version} via ctypes", raw, decompress_all_into_new,
                         lambda i: decompress(i, range(i, len(blocks), threads)),
                         setup=new_array, compression_ratio=lib_ratio))
    finally:
        for cctx in cctxs:
            lib.ZSTD_freeCCtx(cctx)
        for dctx in dctxs:
            lib.ZSTD_freeDCtx(dctx)
    return out


def gzip_limits(limit, blocks, chunk):
    """gzip(1) compress and decompress (isal, else zlib) of the W3 chunks."""
    threads = limit.threads
    try:
        from isal import isal_zlib
        compress = functools.partial(isal_zlib.compress, level=1, wbits=31)
        compressor = f"isal {version_of('isal')}, isal_zlib.compress(data, 1, 31)"
    except ImportError:
        compress = functools.partial(zlib.compress, level=1, wbits=31)
        compressor = f"zlib {zlib.ZLIB_RUNTIME_VERSION}, zlib.compress(data, 1, 31)"
    try:
        from isal import isal_zlib
        decompress = functools.partial(isal_zlib.decompress, wbits=31)
        decompressor = f"isal {version_of('isal')}, isal_zlib.decompress(data, 31)"
    except ImportError:
        decompress = functools.partial(zlib.decompress, wbits=31)
        decompressor = f"zlib {zlib.ZLIB_RUNTIME_VERSION}, zlib.decompress(data, 31)"
    raw = sum(b.nbytes for b in blocks)
    members = [compress(b) for b in blocks]
    ratio = raw / sum(len(m) for m in members)
    if b"".join(decompress(m) for m in members) != b"".join(b.tobytes() for b in blocks):
        raise RuntimeError("gzip: the decompressed members differ from the chunks")
    what = f"the {len(blocks)} W3 chunks ({chunk}^3 float32, the same as W2's)"
    return [
        limit(f"gzip(1) compress of {what}, {compressor}", raw,
              lambda: [compress(b) for b in blocks],
              lambda i: [compress(b) for b in blocks[i::threads]], compression_ratio=ratio),
        limit(f"gzip decompress of those members, {decompressor}", raw,
              lambda: [decompress(m) for m in members],
              lambda i: [decompress(m) for m in members[i::threads]], compression_ratio=ratio),
    ]


def blosc_limits(limit, blocks, chunk):
    """blosc compress and decompress of the W9/W10 chunks with numcodecs (the c-blosc
    that zarrsync and zarr-python call), each call on one thread: numcodecs'
    ``use_threads`` is False meanwhile (blosc's own threads off, as when zarr is
    imported), else calls from the main thread would use blosc's thread pool."""
    try:
        from numcodecs import blosc
    except ImportError:
        return []
    threads = limit.threads
    raw = sum(b.nbytes for b in blocks)
    expected = np.concatenate([b.reshape(-1).view(np.uint8) for b in blocks])
    offsets = np.cumsum([0] + [b.nbytes for b in blocks]).tolist()
    decompressed = np.empty(raw, dtype=np.uint8)
    package = f"numcodecs {version_of('numcodecs')}, c-blosc {blosc.VERSION_STRING}"
    what = f"the {len(blocks)} W9 chunks ({chunk}^3 float32)"
    out = []
    old = blosc.use_threads
    blosc.use_threads = False
    try:
        for codec, cname in BLOSC.items():
            name = cname.encode()

            def compress(indices, name=name):
                return [blosc.compress(blocks[k], name, BLOSC_LEVEL, blosc.SHUFFLE, 0)
                        for k in indices]
            frames = compress(range(len(blocks)))
            ratio = raw / sum(len(f) for f in frames)
            out.append(limit(f"{codec} ({BLOSC_LEVEL}, byte shuffle) compress of {what}, "
                             f"{package} (a new bytes per chunk)", raw,
                             lambda: compress(range(len(blocks))),
                             lambda i: compress(range(i, len(blocks), threads)),
                             compression_ratio=ratio))

            def decompress(indices, frames=frames):
                for k in indices:
                    blosc.decompress(frames[k], decompressed[offsets[k]:offsets[k + 1]])
            decompress(range(len(blocks)))
            if not np.array_equal(decompressed, expected):
                raise RuntimeError(f"numcodecs {codec}: the decompressed chunks differ")
            out.append(limit(f"{codec} decompress of those chunks into a reused buffer, "
                             f"{package}", raw,
                             lambda: decompress(range(len(blocks))),
                             lambda i: decompress(range(i, len(blocks), threads)),
                             compression_ratio=ratio))
    finally:
        blosc.use_threads = old
    return out


def measure_limits(quick, repeats):
    """Every physical limit, each on one thread and on os.cpu_count() threads; MB/s of
    uncompressed bytes."""
    s = sizes(quick)
    n, chunk = s["n"], s["chunk"]
    threads = os.cpu_count() or 1
    field = smooth_field((n, n, n))
    blocks = chunks_of(field, chunk)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        limit = LimitMeter(pool, threads, repeats)
        return (memory_limits(limit, field, n) + zstd_limits(limit, blocks, chunk)
                + gzip_limits(limit, blocks, chunk) + blosc_limits(limit, blocks, chunk))


# -- output ----------------------------------------------------------------------

def version_of(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit():
    """The commit of the checkout this script is in, "+dirty" if it has changes."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                              capture_output=True, text=True, check=True).stdout.strip()
        # docs/ holds this script's own output (performance.json): changes
        # there do not make the measured code differ from the commit.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no",
                                "--", ":/", ":(exclude,top)docs"],
                               cwd=here, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def cpu_ticks():
    """``(steal, total)`` CPU ticks of the whole machine from /proc/stat, or None.

    Steal is time the hypervisor gave this virtual machine's CPUs to others:
    on a shared host it makes every figure of a run lower and noisier.
    """
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def stolen_share(start, end):
    if start is None or end is None or end[1] <= start[1]:
        return None
    return (end[0] - start[0]) / (end[1] - start[1])


def machine_info():
    others = ("zarr", "zarrs", "tensorstore", "numpy", "numcodecs", "zstandard", "isal")
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "versions": {"zarrsync": zs.__version__, **{d: version_of(d) for d in others}},
        "zarrsync_commit": git_commit(),
        # The build measured: not necessarily the checkout of zarrsync_commit.
        "zarrsync_module": os.path.dirname(os.path.abspath(zs.__file__)),
    }


def print_results(results):
    print(markdown_table(results))
    print()
    for note in footnotes(results):
        print(f"* {note}")
    if results["limits"]:
        print("\nphysical limits, same run:\n")
        print(limits_table(results))
    print(f"\nmachine: {machine_line(results['machine'])}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="run the rows whose label contains this")
    parser.add_argument("--skip", action="append", default=[],
                        choices=list(IMPLEMENTATION_ORDER[1:]), help="leave out an implementation")
    parser.add_argument("--no-limits", action="store_true", help="skip the physical limits")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    parser.add_argument("--s3", action="store_true",
                        help="also run the object store rows (benchmarks/object_store_bench.py)")
    parser.add_argument("--xarray", action="store_true",
                        help="also run the xarray rows (benchmarks/xarray_bench.py)")
    args = parser.parse_args(argv)

    impls, skipped = available_implementations(args.skip)
    try:
        return run(args, argv, impls, skipped)
    finally:
        for impl in impls:
            impl.close()  # the zarrs column's temporary directory


def run(args, argv, impls, skipped):
    names = list(IMPLEMENTATION_ORDER)  # a fixed set of columns: n/a for those skipped
    zarrs_root = next((os.path.dirname(i.root) for i in impls if i.name == "zarrs"), None)
    results = {
        "implementations": names,
        "skipped": skipped,
        "rows": [],
        "limits": [],
        "repeats": args.repeats,
        "quick": args.quick,
        "fresh_writes": True,  # write rows write into a new array each repeat
        "command": "python benchmarks/compare.py" + (f" {shlex.join(argv)}" if argv else ""),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "zarrs_store_dir": zarrs_root,
    }
    print(f"\nmedians of {args.repeats} rounds (each runs every implementation once, in "
          f"rotating order; writes into a fresh array each time); ratio = zarrsync speed / "
          f"fastest other\n", flush=True)
    ticks_at_start = cpu_ticks()
    failed = False
    for wl in workloads(args.quick):
        label = row_label(wl)
        if args.only not in label:
            continue
        row = {"id": wl[0], "label": label, "unit": "", "speeds": dict.fromkeys(names),
               "ratio": None, "notes": {}, "errors": {}}
        tasks = {}
        for impl in impls:
            if is_string(wl[4].dtype) and not impl.strings:
                row["notes"][impl.name] = impl.no_strings
                continue
            try:
                task = prepare_workload(impl, wl)
                row["unit"] = task.unit
                # The warm-up; what an implementation cannot do fails here.
                task.setup()
                task.run()
                task.check()
            except impl.unsupported as e:
                why = type(e).__name__ + (f": {e}" if str(e) else "")
                row["notes"][impl.name] = why + impl.unsupported_note
                continue
            except Exception as e:  # noqa: BLE001 -- report it, go on with the other cells
                row["errors"][impl.name] = f"{type(e).__name__}: {e}"
                failed = True
                continue
            tasks[impl.name] = task
        for name, t in interleaved_medians(tasks, args.repeats).items():
            row["speeds"][name] = speed_of(t, tasks[name].amount, row["unit"])
        tasks.clear()  # free this workload's arrays before the next one
        gc.collect()
        mine = row["speeds"].get("zarrsync")
        others = [v for k, v in row["speeds"].items() if k != "zarrsync" and v is not None]
        row["ratio"] = mine / max(others) if mine is not None and others else None
        results["rows"].append(row)
        cells = " | ".join("error" if n in row["errors"] else
                           format_speed(row["speeds"][n], row["unit"]) for n in names)
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        print(f"  {label}: {cells} | {ratio}", file=sys.stderr, flush=True)
    if args.s3:
        import object_store_bench
        results["s3"] = object_store_bench.rows(args.quick, args.repeats, args.only)
        object_store_bench.print_rows(results["s3"])
    if args.xarray:
        import xarray_bench
        results["xarray"] = xarray_bench.rows(args.quick, args.repeats, args.only)
        xarray_bench.print_rows(results["xarray"])
    if not args.no_limits:
        results["limits"] = measure_limits(args.quick, args.repeats)
    results["machine"]["cpu_stolen"] = stolen_share(ticks_at_start, cpu_ticks())
    print_results(results)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
        print(f"\nwrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
