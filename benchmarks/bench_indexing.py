"""Chunk planning and strided/orthogonal selections (public API only)."""

import numpy as np

import zarrsync as zs
from zarrsync.codecs import Bytes

from .common import smooth_field


class Selections:
    """Reads of a 256x256x64 raw float32 array in 32^3 chunks."""

    params = ("full", "strided", "orthogonal", "column")
    param_names = ("selection",)

    def setup(self, selection):
        self.store = zs.MemoryStore()
        self.node = zs.ArrayNode.of_path("/a")
        data = smooth_field((256, 256, 64))
        self.store.create_array(self.node, shape=data.shape, chunks=(32, 32, 32),
                                dtype="float32", codecs=[Bytes()])
        self.store.write_array(self.node, ..., data)
        rng = np.random.default_rng(0)
        self.selection = {
            "full": ...,
            "strided": (slice(None, None, 4),) * 3,
            "orthogonal": (sorted(rng.choice(256, 50, replace=False)),
                           list(rng.integers(0, 256, 50)), slice(None)),
            "column": (100, 100, slice(None)),
        }[selection]

    def time_read(self, selection):
        self.store.read_array(self.node, self.selection)


class Transpose:
    """Write and read through a transpose codec (64^3 chunks of float64)."""

    def setup(self):
        self.store = zs.MemoryStore()
        self.node = zs.ArrayNode.of_path("/t")
        self.data = smooth_field((128, 128, 128), "float64")
        self.store.create_array(self.node, shape=self.data.shape, chunks=(64, 64, 64),
                                dtype="float64",
                                codecs=[zs.codecs.Transpose((2, 0, 1)), Bytes("big")])
        self.store.write_array(self.node, ..., self.data)

    def time_write(self):
        self.store.write_array(self.node, ..., self.data)

    def time_read(self):
        self.store.read_array(self.node)
