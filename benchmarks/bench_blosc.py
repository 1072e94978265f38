"""Blosc (lz4 and zstd inside, byte shuffle) on MemoryStore: compare.py's W9, W10
and W11 at its --quick size."""

import zarrsync as zs
from zarrsync.codecs import Blosc, Bytes

from .common import smooth_field

CNAMES = ("lz4", "zstd")


class BloscFullArray:
    """128^3 float32 in 32^3 chunks, ``bytes`` + ``blosc`` (level 5, byte shuffle,
    typesize 4, blocksize 0): full write and full read (compare.py's W9
    blosc-lz4 and W10 blosc-zstd at its --quick size; as in ``bench_stores``,
    the write overwrites one existing array)."""

    params = CNAMES
    param_names = ("cname",)

    def setup(self, cname):
        self.data = smooth_field((128, 128, 128))
        self.store = zs.MemoryStore()
        self.node = zs.ArrayNode.of_path("/a")
        self.store.create_array(self.node, shape=self.data.shape, chunks=(32, 32, 32),
                                dtype="float32",
                                codecs=[Bytes(), Blosc(cname=cname, clevel=5, shuffle="shuffle")])
        self.store.write_array(self.node, ..., self.data)

    def time_write(self, cname):
        self.store.write_array(self.node, ..., self.data)

    def time_read(self, cname):
        self.store.read_array(self.node)

    def peakmem_read(self, cname):
        self.store.read_array(self.node)


class ZarrV2Read:
    """A Zarr v2 array (``a/.zarray``, chunks ``a/0.0.0``...) of 128^3 float32 in
    32^3 chunks, compressor blosc lz4 level 5 with byte shuffle (zarr-python 2's
    default), as zarr-python writes it, read whole: compare.py's W11 at its --quick
    size. Needs zarr-python to make the array; skipped without it, and fails
    while zarrsync cannot read Zarr v2."""

    def setup(self):
        try:
            import numcodecs
            import zarr
        except ImportError:
            raise NotImplementedError("zarr-python is needed to write the v2 array") from None
        data = smooth_field((128, 128, 128))
        kept = {}
        arr = zarr.create_array(zarr.storage.MemoryStore(kept), name="a", shape=data.shape,
                                chunks=(32, 32, 32), dtype=data.dtype, zarr_format=2,
                                fill_value=0,
                                compressors=numcodecs.Blosc(cname="lz4", clevel=5,
                                                            shuffle=numcodecs.Blosc.SHUFFLE))
        arr[...] = data
        self.store = zs.MemoryStore()
        for key, value in kept.items():
            self.store.set(key, value.to_bytes())
        self.node = zs.ArrayNode.of_path("/a")

    def time_read(self):
        self.store.read_array(self.node)
