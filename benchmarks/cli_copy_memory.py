"""Peak memory of ``zarrsync copy`` on an array larger than the budget.

The main script writes gigabytes: run it by hand::

    python benchmarks/cli_copy_memory.py            # 2 GiB, in a temporary folder
    python benchmarks/cli_copy_memory.py --gib 4 --dir /scratch

It writes a float32 array of ``--gib`` GiB (a smooth field plus noise, which
compresses somewhat) chunk by chunk to a ``FilesystemStore``, holding one
chunk at a time, then runs ``python -P -m zarrsync copy SRC DST --chunks ...
--codecs ...`` as a subprocess, re-chunking and re-encoding every chunk. It
prints the child's peak resident memory (``getrusage(RUSAGE_CHILDREN)``, the
largest of the children this script waited for: only the copy), the
throughput, and whether the peak is under the budget (300 MiB by default).

``CliCopy`` is the asv form at 512 MiB: ``peakmem_copy`` runs the copy in the
benchmark's process (``zarrsync.cli.main``), from a source written once in
``setup_cache``.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import zarrsync as zs
from zarrsync import ArrayNode, GroupNode
from zarrsync.codecs import Bytes, Zstd

SRC_CHUNKS = (64, 256, 256)                  # 16 MiB of float32 per chunk
DST_CHUNKS = (128, 128, 128)                 # 8 MiB per chunk
DST_CODECS = [{"name": "bytes", "configuration": {"endian": "little"}},
              {"name": "zstd", "configuration": {"level": 3}}]


def write_source(path, gib):
    """A ``gib`` GiB float32 array at /data/field, written one chunk at a time."""
    plane = 512
    depth = int(gib * (1 << 30) // (plane * plane * 4))
    shape = (depth, plane, plane)
    store = zs.FilesystemStore(path, mode="w")
    store.create_group(GroupNode.root(), {"benchmark": "cli_copy_memory"})
    node = ArrayNode.of_path("/data/field")
    store.create_array(node, shape=shape, chunks=SRC_CHUNKS, dtype="float32",
                       codecs=[Bytes(), Zstd(level=1)], dimension_names=["z", "y", "x"])
    rng = np.random.default_rng(0)
    y, x = np.meshgrid(np.linspace(0, 6, SRC_CHUNKS[1]), np.linspace(0, 6, SRC_CHUNKS[2]),
                       indexing="ij")
    base = (np.sin(y) * np.cos(x) * 100).astype("float32")
    noise = rng.normal(0, 0.05, SRC_CHUNKS).astype("float32")
    chunk = np.empty(SRC_CHUNKS, dtype="float32")
    for z0 in range(0, shape[0], SRC_CHUNKS[0]):
        for y0 in range(0, plane, SRC_CHUNKS[1]):
            for x0 in range(0, plane, SRC_CHUNKS[2]):
                np.add(base, noise, out=chunk)
                chunk += np.float32(z0 + y0 / 7 + x0 / 13)
                n = min(SRC_CHUNKS[0], shape[0] - z0)
                store.write_array(node, (slice(z0, z0 + n), slice(y0, y0 + SRC_CHUNKS[1]),
                                         slice(x0, x0 + SRC_CHUNKS[2])), chunk[:n])
    return shape, int(np.prod(shape)) * 4


class CliCopy:
    """``zarrsync copy`` of a 512 MiB float32 array, re-chunked and re-encoded."""

    timeout = 600

    def setup_cache(self):
        try:
            from zarrsync.cli import main  # noqa: F401  (commits before the command skip)
        except ImportError:
            raise NotImplementedError("no zarrsync.cli") from None
        src = os.path.abspath("cli_copy_src.zarr")
        write_source(src, 0.5)
        return src

    def setup(self, src):
        self.dst = tempfile.mkdtemp(prefix="zarrsync-cli-copy-")

    def teardown(self, src):
        shutil.rmtree(self.dst, ignore_errors=True)

    def peakmem_copy(self, src):
        from zarrsync.cli import main
        code = main(["copy", src, self.dst, "--overwrite", "--no-progress", "--chunks",
                     ",".join(map(str, DST_CHUNKS)), "--codecs", json.dumps(DST_CODECS)])
        assert code == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0, help="array size in GiB")
    parser.add_argument("--dir", default=None, help="where to write (a temporary folder)")
    parser.add_argument("--budget-mib", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    parser.add_argument("--source", default=None,
                        help="copy this existing source (kept from an earlier --keep run)")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="zarrsync-cli-copy-", dir=args.dir)
    src, dst = os.path.join(root, "src.zarr"), os.path.join(root, "dst.zarr")
    try:
        t0 = time.perf_counter()
        if args.source:
            src = args.source
            shape = zs.FilesystemStore(src, mode="r").array_metadata(
                ArrayNode.of_path("/data/field")).shape
            nbytes = int(np.prod(shape)) * 4
        else:
            shape, nbytes = write_source(src, args.gib)
        print(f"source: float32{list(shape)}, {nbytes / 2**30:.2f} GiB, chunks "
              f"{list(SRC_CHUNKS)}, written in {time.perf_counter() - t0:.1f} s")
        cmd = [sys.executable, "-P", "-m", "zarrsync", "copy", src, dst,
               "--chunks", ",".join(map(str, DST_CHUNKS)), "--codecs", json.dumps(DST_CODECS),
               "--json", "--no-progress"]
        print("command:", " ".join(cmd[:9]), "--codecs", repr(cmd[10]), *cmd[11:])
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if out.returncode:
            sys.exit(f"copy failed ({out.returncode}): {out.stderr.strip()}")
        summary = json.loads(out.stdout)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        stored = sum(os.path.getsize(os.path.join(d, f))
                     for d, _, files in os.walk(dst) for f in files)
        print(f"copied {summary['chunks']} chunks, {nbytes / 2**30:.2f} GiB in {seconds:.1f} s "
              f"(process), {summary['seconds']:.1f} s (command): "
              f"{nbytes / 1e6 / summary['seconds']:.0f} MB/s; {stored / 2**20:.0f} MiB stored")
        print(f"peak RSS of the copy: {peak_mib:.0f} MiB "
              f"({'under' if peak_mib < args.budget_mib else 'OVER'} {args.budget_mib:.0f} MiB)")
        # The copy reads back equal: spot-check one block of each end.
        a, b = zs.FilesystemStore(src, mode="r"), zs.FilesystemStore(dst, mode="r")
        node = ArrayNode.of_path("/data/field")
        for sel in ((slice(0, 100), slice(0, 300), slice(200, 512)),
                    (slice(shape[0] - 70, shape[0]), slice(100, 512), slice(0, 150))):
            assert np.array_equal(a.read_array(node, sel), b.read_array(node, sel))
        return 0 if peak_mib < args.budget_mib else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
