"""Command line: ``python -m zarrsync demo``.

The demo builds an in-memory Zarr v3 hierarchy of groups and arrays with
several codecs, writes it, reads it back (checking every value), prints the
tree with shapes, chunks, codecs and stored bytes, and reports read/write
throughput as the median of a few repeats.
"""

import argparse
import statistics
import sys
import time

import numpy as np

from . import __version__
from .codecs import Bytes, Crc32c, Gzip, Transpose, Zstd
from .nodes import ArrayNode, GroupNode
from .storage import MemoryStore


def _field(shape, dtype, seed):
    """A smooth field plus small noise: data that compresses like real fields."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 3, n) for n in shape], indexing="ij")
    smooth = sum(np.sin(g * (i + 1)) for i, g in enumerate(grids))
    return (smooth * 10 + rng.normal(0, 0.01, shape)).astype(dtype)


def _demo_arrays():
    """(path, create_array kwargs, data) of the demo hierarchy."""
    rng = np.random.default_rng(0)
    temp = _field((64, 128, 128), "float32", 1)
    precip = np.abs(_field((64, 128, 128), "float64", 2))
    land = _field((128, 128), "float32", 3) > 0
    counts = rng.integers(0, 1000, (500, 300), dtype="int16")
    spectrum = (_field((256, 64), "float64", 4) + 1j * _field((256, 64), "float64", 5))
    return [
        ("/climate/daily/temperature",
         dict(chunks=(16, 64, 64), fill_value=float("nan"),
              codecs=[Bytes(), Zstd(level=1)], dimension_names=["time", "lat", "lon"],
              attributes={"units": "K"}), temp),
        ("/climate/daily/precipitation",
         dict(chunks=(16, 64, 64), codecs=[Bytes(), Gzip(level=1)],
              dimension_names=["time", "lat", "lon"], attributes={"units": "mm"}), precip),
        ("/climate/land_mask",
         dict(chunks=(64, 64), codecs=[Bytes(), Zstd(level=3, checksum=True)]), land),
        ("/stations/counts",
         dict(chunks=(100, 100), fill_value=-1,
              codecs=[Transpose((1, 0)), Bytes("big"), Crc32c()]), counts),
        ("/stations/spectrum",
         dict(chunks=(64, 64), codecs=[Bytes(), Zstd(level=1), Crc32c()],
              separator=".", chunk_key_encoding="v2"), spectrum),
    ]


def _median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _stored_bytes(store, node):
    prefix = node.key + "/"
    keys = [k for k in store.list_prefix(prefix) if not k.endswith("zarr.json")]
    return len(keys), sum(len(store.get(k)) for k in keys)


def _print_tree(store, group, depth, out):
    arrays, groups = store.find_child_nodes(group)
    for child in sorted(arrays + groups, key=lambda n: n.path):
        pad = "  " * depth
        if isinstance(child, GroupNode):
            print(f"{pad}{child.name}/", file=out)
            _print_tree(store, child, depth + 1, out)
        else:
            meta = store.array_metadata(child)
            nchunks, nbytes = _stored_bytes(store, child)
            raw = int(np.prod(meta.shape)) * meta.dtype.itemsize
            codecs = "+".join(c.name for c in meta.codecs)
            print(f"{pad}{child.name}  {meta.data_type}{list(meta.shape)} "
                  f"chunks={list(meta.chunks)} codecs={codecs}  "
                  f"{nchunks} chunks, {nbytes / 1e6:.2f} MB stored "
                  f"({raw / max(nbytes, 1):.1f}x)", file=out)


def demo(repeats=3, out=sys.stdout):
    """Run the demonstration; returns 0 when every value read back matches."""
    print(f"zarrsync {__version__}: an in-memory Zarr v3 hierarchy\n", file=out)
    store = MemoryStore()
    store.create_group(GroupNode.root(), attrs={"title": "zarrsync demo"})
    arrays = _demo_arrays()
    nodes = []
    for path, kwargs, data in arrays:
        node = ArrayNode.of_path(path)
        store.create_array(node, shape=data.shape, dtype=data.dtype, **kwargs)
        nodes.append(node)

    total = sum(d.nbytes for _, _, d in arrays)

    def write_all():
        for node, (_, _, data) in zip(nodes, arrays):
            store.write_array(node, ..., data)

    def read_all():
        return [store.read_array(node) for node in nodes]

    t_write = _median_seconds(write_all, repeats)
    t_read = _median_seconds(read_all, repeats)

    ok = True
    for node, (_, _, data), back in zip(nodes, arrays, read_all()):
        if not np.array_equal(back, data, equal_nan=data.dtype.kind in "fc"):
            print(f"MISMATCH in {node.path}", file=out)
            ok = False

    # A partial, strided read and an unaligned write, as a simulation would do.
    temp = nodes[0]
    store.write_array(temp, (slice(3, 5), slice(10, 90), 7), np.float32(0.5))
    window = store.read_array(temp, (slice(0, 64, 8), 20, slice(None, None, 16)))

    print("tree:", file=out)
    _print_tree(store, GroupNode.root(), 1, out)
    arrays_found, groups_found = store.find_all_nodes()
    print(f"\n{len(arrays_found)} arrays, {len(groups_found)} groups, "
          f"{len(store)} keys in the store", file=out)
    print(f"strided read (0:64:8, 20, ::16) of temperature -> shape {window.shape}", file=out)
    print(f"\nthroughput over {total / 1e6:.1f} MB of array data "
          f"(median of {repeats}):", file=out)
    print(f"  write {total / t_write / 1e6:8.1f} MB/s", file=out)
    print(f"  read  {total / t_read / 1e6:8.1f} MB/s", file=out)
    print("\nall values read back exactly" if ok else "\nREAD-BACK FAILED", file=out)
    return 0 if ok else 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m zarrsync")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="build, write, read and list an in-memory hierarchy")
    p_demo.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.repeats)
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
