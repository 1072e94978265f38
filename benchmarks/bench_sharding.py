"""Sharded arrays: full write, full read, and random single-inner-chunk reads."""

import numpy as np

import zarrsync as zs
from zarrsync.codecs import Bytes, Crc32c, ShardingIndexed, Zstd

from .common import smooth_field


def _sharded_array(n=128, shard=64, inner=16):
    store = zs.MemoryStore()
    node = zs.ArrayNode.of_path("/s")
    codec = ShardingIndexed((inner,) * 3, codecs=[Bytes(), Zstd(level=1)],
                            index_codecs=[Bytes(), Crc32c()])
    store.create_array(node, shape=(n,) * 3, chunks=(shard,) * 3, dtype="float32",
                       codecs=[codec])
    return store, node


class Sharded:
    """128^3 float32, shards 64^3, inner chunks 16^3, inner zstd(1), index crc32c:
    compare.py's W4 (full write, full read) and W5 (2000 random 1x1x32 reads) at
    its --quick size."""

    def setup(self):
        self.data = smooth_field((128, 128, 128))
        self.store, self.node = _sharded_array()
        self.store.write_array(self.node, ..., self.data)
        rng = np.random.default_rng(0)
        self.points = rng.integers(0, 128 // 16, (2000, 3)) * 16
        rng = np.random.default_rng(0)  # the selections of compare.py's W5
        ij = rng.integers(0, 128, (2000, 2))
        k = rng.integers(0, 128 // 32, 2000) * 32
        self.columns = [(int(i), int(j), slice(int(k0), int(k0) + 32))
                        for (i, j), k0 in zip(ij, k)]

    def time_full_write(self):
        self.store.write_array(self.node, ..., self.data)

    def time_full_read(self):
        self.store.read_array(self.node)

    def time_2000_inner_chunk_reads(self):
        read, node = self.store.read_array, self.node
        for i, j, k in self.points:
            read(node, (slice(i, i + 16), slice(j, j + 16), slice(k, k + 16)))

    def time_2000_1x1x32_reads(self):
        read, node = self.store.read_array, self.node
        for sel in self.columns:
            read(node, sel)
