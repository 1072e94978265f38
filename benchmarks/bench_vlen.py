"""Variable-length strings: 1,000,000 short strings (mean 12 characters) in
chunks of 100,000, vlen-utf8 + zstd(1); plain and sharded, full and partial."""

import numpy as np

import zarrsync as zs
from zarrsync.codecs import ShardingIndexed, VlenUtf8, Zstd

from .common import short_strings

N = 1_000_000
CHUNK = 100_000


def _string_array(sharded):
    store = zs.MemoryStore()
    node = zs.ArrayNode.of_path("/s")
    if sharded:
        codecs = [ShardingIndexed((CHUNK // 10,), codecs=[VlenUtf8(), Zstd(level=1)])]
    else:
        codecs = [VlenUtf8(), Zstd(level=1)]
    store.create_array(node, shape=(N,), chunks=(CHUNK,), dtype="string", codecs=codecs)
    return store, node


class Strings:
    """Full writes and reads, and 100 random 100-element reads."""

    params = (False, True)
    param_names = ("sharded",)

    def setup(self, sharded):
        self.data = short_strings(N)
        self.store, self.node = _string_array(sharded)
        self.store.write_array(self.node, ..., self.data)
        self.starts = np.random.default_rng(0).integers(0, N - 100, 100)

    def time_write(self, sharded):
        self.store.write_array(self.node, ..., self.data)

    def time_read(self, sharded):
        self.store.read_array(self.node)

    def peakmem_read(self, sharded):
        self.store.read_array(self.node)

    def time_100_small_reads(self, sharded):
        read, node = self.store.read_array, self.node
        for s in self.starts:
            read(node, slice(int(s), int(s) + 100))


class Bytes:
    """The same workload as variable-length bytes (object arrays of bytes)."""

    def setup(self):
        self.data = np.array([s.encode() for s in short_strings(N // 4).tolist()], dtype=object)
        self.store = zs.MemoryStore()
        self.node = zs.ArrayNode.of_path("/b")
        self.store.create_array(self.node, shape=self.data.shape, chunks=(CHUNK,),
                                dtype="bytes")
        self.store.write_array(self.node, ..., self.data)

    def time_write(self):
        self.store.write_array(self.node, ..., self.data)

    def time_read(self):
        self.store.read_array(self.node)
