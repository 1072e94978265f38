"""Compare zarrsync with zarr-python (and tensorstore, when importable) in one run.

Every implementation works on the same data, in memory, and each timing is
the median of ``--repeats`` runs. The table gives MB/s (or ops/s) and the
ratio of zarrsync's speed to the fastest other implementation (> 1: zarrsync
is faster). A NumPy copy of the same bytes is printed as a physical limit.

    python benchmarks/compare.py            # full sizes
    python benchmarks/compare.py --quick    # small sizes, a smoke run
    python benchmarks/compare.py --only strings   # just the rows whose label matches

String rows (1,000,000 short strings, vlen-utf8 + zstd(1)) give million
strings per second; tensorstore cannot hold the string data type.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import short_strings, smooth_field  # noqa: E402

import zarrsync as zs  # noqa: E402
from zarrsync.codecs import (Bytes, Crc32c, Gzip, ShardingIndexed, VlenUtf8,  # noqa: E402
                             Zstd)


def is_string(dtype):
    return np.dtype(dtype).kind == "T"


# -- implementations --------------------------------------------------------------
# Each adapter: create(shape, chunks, dtype, codec) -> handle; write(h, sel, data);
# read(h, sel) -> ndarray; resize(h, shape). codec is "raw", "zstd1", "gzip1", or
# ("sharded", inner): chunks are then the shard shape, inner chunks zstd(1) and
# the shard index bytes + crc32c. String data (StringDType) uses vlen-utf8 where
# numbers use bytes; ``strings`` says whether an implementation can hold it.

class ZarrSync:
    name = "zarrsync"
    strings = True
    CODECS = {"raw": [Bytes()], "zstd1": [Bytes(), Zstd(level=1)],
              "gzip1": [Bytes(), Gzip(level=1)]}

    def create(self, shape, chunks, dtype, codec):
        store = zs.MemoryStore()
        node = zs.ArrayNode.of_path("/a")
        if isinstance(codec, tuple):
            codecs = [ShardingIndexed(codec[1], [Bytes(), Zstd(level=1)], [Bytes(), Crc32c()])]
        else:
            codecs = self.CODECS[codec]
        if is_string(dtype):
            codecs = [VlenUtf8() if isinstance(c, Bytes) else c for c in codecs]
        store.create_array(node, shape=shape, chunks=chunks, dtype=dtype, codecs=codecs)
        return store, node

    def write(self, h, sel, data):
        h[0].write_array(h[1], sel, data)

    def read(self, h, sel):
        return h[0].read_array(h[1], sel)

    def resize(self, h, shape):
        h[0].reshape(h[1], shape)


class ZarrPython:
    name = "zarr-python"
    strings = True

    def __init__(self):
        import zarr
        self.zarr = zarr

    def create(self, shape, chunks, dtype, codec):
        from zarr.codecs import GzipCodec, ZstdCodec
        if isinstance(codec, tuple):
            return self.zarr.create_array(self.zarr.storage.MemoryStore(), shape=shape,
                                          shards=chunks, chunks=codec[1], dtype=dtype,
                                          compressors=[ZstdCodec(level=1)],
                                          fill_value="" if is_string(dtype) else 0)
        compressors = {"raw": None, "zstd1": [ZstdCodec(level=1)],
                       "gzip1": [GzipCodec(level=1)]}[codec]
        return self.zarr.create_array(self.zarr.storage.MemoryStore(), shape=shape,
                                      chunks=chunks, dtype=dtype, compressors=compressors,
                                      fill_value="" if is_string(dtype) else 0)

    def write(self, h, sel, data):
        h[sel] = data

    def read(self, h, sel):
        return h[sel]

    def resize(self, h, shape):
        h.resize(shape)


class TensorStore:
    name = "tensorstore"
    strings = False  # no string data type in its zarr3 driver

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
        return self.ts.open(spec, create=True, delete_existing=True).result()

    def write(self, h, sel, data):
        h[sel].write(data).result()

    def read(self, h, sel):
        return h[sel].read().result()

    def resize(self, h, shape):
        return h.resize(exclusive_max=shape, resize_metadata_only=False).result()


def available_implementations():
    impls = [ZarrSync()]
    for cls in (ZarrPython, TensorStore):
        try:
            impls.append(cls())
        except ImportError:
            print(f"({cls.name} is not importable: skipped)")
    return impls


# -- workloads --------------------------------------------------------------------

def median_time(fn, repeats):
    fn()  # warm-up (imports, thread pools, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def workloads(quick):
    n = 128 if quick else 256
    chunk = 32 if quick else 64
    field = smooth_field((n, n, n))
    small = smooth_field((256, 256) if quick else (512, 512), "float64")
    slab = smooth_field((n, n))
    steps = 64 if quick else 256
    out = []
    for codec in ("raw", "zstd1", "gzip1"):
        out.append((f"{codec} write {n}^3/{chunk}^3", "write", codec, field, (chunk,) * 3))
        out.append((f"{codec} read {n}^3/{chunk}^3", "read", codec, field, (chunk,) * 3))
    shard, inner = (64, 16) if quick else (128, 32)
    sharded = ("sharded", (inner,) * 3)
    out.append((f"sharded write {shard}^3/{inner}^3", "write", sharded, field, (shard,) * 3))
    out.append((f"sharded read {shard}^3/{inner}^3", "read", sharded, field, (shard,) * 3))
    out.append(("2000 point reads 1x1x32", "points", sharded, field, (shard,) * 3))
    out.append(("8x8 chunks write", "write", "zstd1", small, (8, 8)))
    out.append(("8x8 chunks read", "read", "zstd1", small, (8, 8)))
    out.append((f"append {steps} steps", "append", "zstd1", slab, (8, n, n), steps))
    out.append(("strided read ::4", "strided", "zstd1", field, (chunk,) * 3))
    n_str, str_chunk = (200_000, 20_000) if quick else (1_000_000, 100_000)
    text = short_strings(n_str)
    label = f"{n_str // 1000}k strings/{str_chunk // 1000}k"
    out.append((f"strings write {label}", "write", "zstd1", text, (str_chunk,)))
    out.append((f"strings read {label}", "read", "zstd1", text, (str_chunk,)))
    return out


def run_workload(impl, wl, repeats):
    label, kind, codec, data, chunks = wl[:5]
    if kind == "append":
        steps = wl[5]

        def append():
            h = impl.create((0,) + data.shape, chunks, data.dtype, codec)
            for t in range(steps):
                impl.resize(h, (t + 1,) + data.shape)
                impl.write(h, t, data)
        return median_time(append, repeats), steps, "steps/s"
    h = impl.create(data.shape, chunks, data.dtype, codec)
    impl.write(h, (slice(None),) * data.ndim, data)
    amount, unit = (data.size, "Mstr/s") if is_string(data.dtype) else (data.nbytes, "MB/s")
    if kind == "write":
        t = median_time(lambda: impl.write(h, (slice(None),) * data.ndim, data), repeats)
        return t, amount, unit
    if kind == "read":
        t = median_time(lambda: impl.read(h, (slice(None),) * data.ndim), repeats)
        return t, amount, unit
    if kind == "points":
        rng = np.random.default_rng(0)
        n = data.shape[0]
        starts = rng.integers(0, n, (2000, 2))
        k0 = rng.integers(0, n // 32, 2000) * 32
        sels = [(int(i), int(j), slice(int(k), int(k) + 32)) for (i, j), k in zip(starts, k0)]

        def points():
            for sel in sels:
                impl.read(h, sel)
        return median_time(points, repeats), len(sels), "ops/s"
    if kind == "strided":
        sel = (slice(None, None, 4),) * data.ndim
        t = median_time(lambda: impl.read(h, sel), repeats)
        return t, data.nbytes, "MB/s"
    raise ValueError(kind)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="run the rows whose label contains this")
    args = parser.parse_args(argv)

    impls = available_implementations()
    names = [i.name for i in impls]
    print(f"\nmedians of {args.repeats} runs, in memory; ratio = zarrsync speed / "
          f"fastest other\n")
    print("| workload | " + " | ".join(names) + " | ratio |")
    print("|---|" + "---|" * len(names) + "---|")
    for wl in workloads(args.quick):
        if args.only not in wl[0]:
            continue
        speeds = {}
        unit = ""
        for impl in impls:
            if is_string(wl[3].dtype) and not impl.strings:
                continue
            t, amount, unit = run_workload(impl, wl, args.repeats)
            speeds[impl.name] = amount / t / (1e6 if unit in ("MB/s", "Mstr/s") else 1)
        others = [v for k, v in speeds.items() if k != "zarrsync"]
        ratio = speeds["zarrsync"] / max(others) if others else float("nan")
        cells = " | ".join(f"{speeds[n]:.1f} {unit}" if n in speeds else "n/a" for n in names)
        print(f"| {wl[0]} | {cells} | {ratio:.2f}x |")

    data = smooth_field((256, 256, 256) if not args.quick else (128, 128, 128))
    dst = np.empty_like(data)
    t = median_time(lambda: np.copyto(dst, data), args.repeats)
    print(f"\nlimit: NumPy copy of {data.nbytes / 1e6:.0f} MB: {data.nbytes / t / 1e6:.0f} MB/s")


if __name__ == "__main__":
    main()
