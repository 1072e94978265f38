"""The two zstd decoders zarrsync chooses between, on the same frames.

``python -P benchmarks/zstd_routes.py`` decodes chunks of several kinds of
data, each compressed at level 1 (``zstandard``, content size recorded), with

* the system's libzstd through zarrsync's native context
  (``_kernels.zstd.ZstdContext.decompress_into``, one call per chunk from
  Python: an upper bound on what the batch kernel pays), and
* the zstd that the ``zstandard`` package carries, the way zarrsync calls it
  for large chunks (``Zstd._bundled_into``: the frames' headers checked, then
  a stream reader straight into the output),

into one reused output, and prints the median microseconds per chunk of 7
rounds and their ratio (bundled / system: below 1, the bundled zstd is
faster). The first table varies the kind of data at 1 MiB chunks, the second
the chunk size for two kinds; ``BUNDLED_MIN_BYTES`` (in
``zarrsync/codecs/_zstd.py``) is where the second table's float rows cross.
Measurements go to docs/performance.md.
"""

import statistics
import time

import numpy as np
import zstandard

from zarrsync._kernels import zstd as libzstd
from zarrsync.codecs import _zstd

ROUNDS = 7


def _kinds(nbytes, rng):
    """name -> function(k) giving chunk k's bytes (``nbytes`` each)."""
    side = int((nbytes // 4) ** 0.5)
    y, x = np.mgrid[0:side, 0:side]

    def sized(array):
        raw = np.ascontiguousarray(array).tobytes()[:nbytes]
        return raw + bytes(nbytes - len(raw))

    return {
        "float32 random walk along rows": lambda k: sized(
            rng.standard_normal((side, side)).astype("f4").cumsum(axis=1)),
        "float32 random walk, whole chunk": lambda k: sized(
            rng.standard_normal(nbytes // 4).astype("f4").cumsum()),
        "float32 smooth field": lambda k: sized(
            (np.sin(x / 50 + k) * np.cos(y / 30) * 300 + 15).astype("f4")),
        "float32 smooth field + noise": lambda k: sized(
            (np.sin(x / 50 + k) * 300 + rng.standard_normal((side, side))).astype("f4")),
        "float32 noise": lambda k: sized(rng.standard_normal(nbytes // 4).astype("f4")),
        "int16, 95% zeros": lambda k: sized(
            ((rng.random(nbytes // 2) < 0.05) * rng.integers(0, 1000, nbytes // 2)).astype("i2")),
        "uint8 image": lambda k: sized(
            ((np.sin(x / 20 + k) + 1) * 100 + rng.integers(0, 20, (side, side))).astype("u1")
            .repeat(4)),
    }


def _median_us(fn, count):
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / count * 1e6


def _compare(frames, nbytes):
    """(system µs, bundled µs, compression ratio) per chunk of ``frames``."""
    out = np.empty(nbytes, "u1")
    context = libzstd.ZstdContext(1, False)
    codec = _zstd.Zstd(1)

    def system():
        for frame in frames:
            context.decompress_into(frame, out)

    def bundled():
        for frame in frames:
            codec._bundled_into(memoryview(frame), out, nbytes)

    ratio = nbytes * len(frames) / sum(map(len, frames))
    return _median_us(system, len(frames)), _median_us(bundled, len(frames)), ratio


def _frames(make, count, nbytes):
    compressor = zstandard.ZstdCompressor(level=1, write_content_size=True)
    return [compressor.compress(make(k)) for k in range(count)]


def main():
    native = _zstd.native_library()
    if native is None:
        raise SystemExit("no system libzstd loads here: only one route to compare")
    print(f"system libzstd {native[0]} {native[1]}; zstandard {zstandard.__version__} carrying "
          f"zstd {'.'.join(map(str, zstandard.ZSTD_VERSION))}; zarrsync's "
          f"BUNDLED_MIN_BYTES = {_zstd.BUNDLED_MIN_BYTES}; median of {ROUNDS} rounds\n")
    rng = np.random.default_rng(0)
    nbytes = 1 << 20
    print("| data, 1 MiB chunks, zstd level 1 | compression | system µs | bundled µs | "
          "bundled / system |")
    print("|---|---:|---:|---:|---:|")
    for name, make in _kinds(nbytes, rng).items():
        system, bundled, ratio = _compare(_frames(make, 32, nbytes), nbytes)
        print(f"| {name} | {ratio:.2f}x | {system:.0f} | {bundled:.0f} | {bundled / system:.2f} |")
    print("\n| data | chunk | system µs | bundled µs | bundled / system |")
    print("|---|---:|---:|---:|---:|")
    for name in ("float32 random walk along rows", "int16, 95% zeros"):
        for size in (16 << 10, 64 << 10, 256 << 10, 1 << 20):
            make = _kinds(size, rng)[name]
            count = max(16, (16 << 20) // size)
            system, bundled, _ = _compare(_frames(make, count, size), size)
            print(f"| {name} | {size >> 10} KiB | {system:.1f} | {bundled:.1f} | "
                  f"{bundled / system:.2f} |")


if __name__ == "__main__":
    main()
