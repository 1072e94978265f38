"""Whole-array and many-small-write workloads on MemoryStore (public API only)."""

import numpy as np

import zarrsync as zs
from zarrsync.codecs import Bytes, Gzip, Zstd

from .common import smooth_field

CODECS = {
    "raw": lambda: [Bytes()],
    "zstd1": lambda: [Bytes(), Zstd(level=1)],
    "gzip1": lambda: [Bytes(), Gzip(level=1)],
}


class FullArray:
    """128^3 float32 in 32^3 chunks: full write and full read (compare.py's W1 raw,
    W2 zstd1, W3 gzip1 at its --quick size), and a read of every 4th element
    along each axis (W8 with zstd1)."""

    params = tuple(CODECS)
    param_names = ("codecs",)

    def setup(self, codecs):
        self.data = smooth_field((128, 128, 128))
        self.store = zs.MemoryStore()
        self.node = zs.ArrayNode.of_path("/a")
        self.store.create_array(self.node, shape=self.data.shape, chunks=(32, 32, 32),
                                dtype="float32", codecs=CODECS[codecs]())
        self.store.write_array(self.node, ..., self.data)

    def time_write(self, codecs):
        self.store.write_array(self.node, ..., self.data)

    def time_read(self, codecs):
        self.store.read_array(self.node)

    def time_read_strided(self, codecs):
        self.store.read_array(self.node, (slice(None, None, 4),) * 3)

    def peakmem_read(self, codecs):
        self.store.read_array(self.node)


class SmallChunks:
    """256x256 float64 in 8x8 chunks (1024 chunks per call), zstd(1): W6 at --quick size."""

    def setup(self):
        self.data = smooth_field((256, 256), "float64")
        self.store = zs.MemoryStore()
        self.node = zs.ArrayNode.of_path("/a")
        self.store.create_array(self.node, shape=self.data.shape, chunks=(8, 8),
                                dtype="float64", codecs=[Bytes(), Zstd(level=1)])
        self.store.write_array(self.node, ..., self.data)

    def time_write(self):
        self.store.write_array(self.node, ..., self.data)

    def time_read(self):
        self.store.read_array(self.node)


class Append:
    """A simulation appending 64 time steps of 128x128 float32 (chunks of 8 steps,
    zstd(1)); each step grows the array by one and writes one slab: W7 at --quick size."""

    def setup(self):
        self.slab = smooth_field((128, 128))
        self.node = zs.ArrayNode.of_path("/a")

    def time_append(self):
        store = zs.MemoryStore()
        store.create_array(self.node, shape=(0, 128, 128), chunks=(8, 128, 128),
                           dtype="float32", codecs=[Bytes(), Zstd(level=1)])
        for step in range(64):
            store.reshape(self.node, (step + 1, 128, 128))
            store.write_array(self.node, (step,), self.slab)


class PointReads:
    """200 single-element reads from a 128^3 zstd array."""

    def setup(self):
        self.store = zs.MemoryStore()
        self.node = zs.ArrayNode.of_path("/a")
        data = smooth_field((128, 128, 128))
        self.store.create_array(self.node, shape=data.shape, chunks=(32, 32, 32),
                                dtype="float32", codecs=[Bytes(), Zstd(level=1)])
        self.store.write_array(self.node, ..., data)
        self.points = np.random.default_rng(0).integers(0, 128, (200, 3))

    def time_point_reads(self):
        for i, j, k in self.points:
            self.store.read_array(self.node, (int(i), int(j), int(k)))
