"""The ``sharding_indexed`` codec: many inner chunks stored in one shard.

https://zarr-specs.readthedocs.io/en/latest/v3/codecs/sharding-indexed/index.html
A shard is the array's (outer) chunk. It is cut into inner chunks of
``chunk_shape``, each encoded with ``codecs``; the encoded inner chunks are
laid out one after another, and an index of ``(offset, nbytes)`` uint64
pairs (C order over the inner grid, encoded with ``index_codecs``) sits at
the start or the end. Inner chunks equal to the fill value are left out
(their index entry is ``2**64 - 1`` twice).

Reading a few inner chunks needs only the index and those chunks' byte
ranges; ``storage`` does that through ``index_range``/``read_index`` when
sharding is the array's whole codec chain. ``decode``/``encode`` handle a
whole shard (nested sharding, or a chain with other codecs around it).
"""

import numpy as np

from .._kernels import shard as shard_kernels
from .._kernels import transform
from .._kernels.indexing import ChunkPlan
from ..errors import CodecError, InvalidShardingChunkShape
from ..indexing import ElementPlan
from ._bytes import Bytes
from ._chain import ArrayToBytesCodec, CodecChain
from ._crc32c import Crc32c
from ._vlen import all_fill, fill_array, is_vlen

EMPTY = 2**64 - 1
_INDEX_DTYPE = np.dtype("uint64")


def _where(key):
    # Whole-shard decoding has no key; the chain names the chunk around it.
    return f"shard {key!r}: " if key else ""


class ShardingIndexed(ArrayToBytesCodec):
    """Store the inner chunks of each shard, with an index, in one value.

    Parameters
    ----------
    chunk_shape : sequence of int
        The inner chunk shape; it must divide the shard (outer chunk) shape.
    codecs : list of Codec or dict, optional
        The inner chunks' chain; default ``[Bytes()]``.
    index_codecs : list, optional
        The index's chain: ``bytes`` optionally followed by ``crc32c``;
        default ``[Bytes(), Crc32c()]`` as zarr-python.
    index_location : {"end", "start"}
    """

    name = "sharding_indexed"

    def __init__(self, chunk_shape, codecs=None, index_codecs=None, index_location="end"):
        from . import parse_codecs  # the registry imports this module
        try:
            chunk_shape = tuple(chunk_shape)
        except TypeError:
            raise InvalidShardingChunkShape(
                f"sharding chunk_shape must be a list of integers, got {chunk_shape!r}") from None
        if not chunk_shape or not all(
                isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1
                for n in chunk_shape):
            raise InvalidShardingChunkShape(
                f"sharding chunk_shape must be positive integers, got {list(chunk_shape)!r}")
        self.chunk_shape = tuple(int(n) for n in chunk_shape)
        self.codecs = tuple(parse_codecs(codecs if codecs is not None else [Bytes()]))
        # No inner codecs given: evolve() picks the data type's array->bytes codec.
        self._default_codecs = codecs is None
        self.index_codecs = tuple(parse_codecs(
            index_codecs if index_codecs is not None else [Bytes(), Crc32c()]))
        if index_location not in ("start", "end"):
            raise CodecError(f"sharding index_location must be 'start' or 'end', "
                             f"got {index_location!r}")
        self.index_location = index_location
        # Set by evolve() for one array: shard shape, inner chain, index chain.
        self.shard_shape = None
        self.inner = None
        self.index_chain = None
        self.chunks_per_shard = None
        self.index_size = None
        self.fill_value = None

    @classmethod
    def from_config(cls, configuration):
        configuration = dict(configuration or {})
        if "chunk_shape" not in configuration:
            raise InvalidShardingChunkShape("sharding_indexed needs a 'chunk_shape'")
        chunk_shape = configuration.pop("chunk_shape")
        codecs = configuration.pop("codecs", None)
        index_codecs = configuration.pop("index_codecs", None)
        index_location = configuration.pop("index_location", "end")
        if configuration:
            raise CodecError(f"unknown sharding_indexed configuration: {sorted(configuration)}")
        return cls(chunk_shape, codecs, index_codecs, index_location)

    def to_dict(self):
        inner = self.inner.codecs if self.inner is not None else self.codecs
        index = self.index_chain.codecs if self.index_chain is not None else self.index_codecs
        return {"name": "sharding_indexed", "configuration": {
            "chunk_shape": list(self.chunk_shape),
            "codecs": [c.to_dict() for c in inner],
            "index_codecs": [c.to_dict() for c in index],
            "index_location": self.index_location,
        }}

    def evolve(self, dtype, chunk_shape, fill_value=None):
        shard_shape = tuple(chunk_shape)
        if len(shard_shape) != len(self.chunk_shape):
            raise InvalidShardingChunkShape(
                f"sharding chunk_shape {list(self.chunk_shape)} has rank "
                f"{len(self.chunk_shape)}, the shard shape {list(shard_shape)} has rank "
                f"{len(shard_shape)}")
        if any(s % c for s, c in zip(shard_shape, self.chunk_shape)):
            raise InvalidShardingChunkShape(
                f"sharding chunk_shape {list(self.chunk_shape)} does not divide the shard "
                f"shape {list(shard_shape)}")
        codecs = self.codecs
        if self._default_codecs and is_vlen(dtype):
            from . import default_array_bytes  # the registry imports this module
            codecs = (default_array_bytes(dtype),)
        bound = ShardingIndexed(self.chunk_shape, codecs, self.index_codecs,
                                self.index_location)
        bound.shard_shape = shard_shape
        if is_vlen(dtype):
            bound.fill_value = fill_array(
                fill_value if fill_value is not None else ("" if dtype.kind == "T" else b""),
                dtype)
        else:
            bound.fill_value = np.array(
                0 if fill_value is None else fill_value, dtype=dtype)
        bound.inner = CodecChain(codecs, dtype, self.chunk_shape, bound.fill_value[()])
        bound.chunks_per_shard = tuple(s // c for s, c in zip(shard_shape, self.chunk_shape))
        try:
            bound.index_chain = CodecChain(self.index_codecs, _INDEX_DTYPE,
                                           bound.chunks_per_shard + (2,))
        except CodecError as e:
            # Keep the class (ArrayToBytesInvariant, InvalidCodecOrdering, ...).
            raise type(e)(f"sharding index_codecs: {e}") from e
        size = bound.index_chain.array_bytes.encoded_size(bound.index_chain.encoded_shape,
                                                          _INDEX_DTYPE)
        for c in bound.index_chain.bytes_bytes:
            size = None if size is None else c.size_after_encode(size)
        if size is None or bound.index_chain.array_array:
            raise CodecError("sharding index_codecs must have a fixed encoded size "
                             "(bytes, optionally followed by crc32c)")
        bound.index_size = size
        return bound

    def _require_bound(self):
        if self.inner is None:
            raise CodecError("sharding_indexed is used before being bound to an array")

    @property
    def n_inner(self):
        return int(np.prod(self.chunks_per_shard, dtype=np.int64))

    def _inner_plan(self):
        plan = ChunkPlan(self.shard_shape, self.chunk_shape,
                         [(0, 1, n) for n in self.shard_shape])
        return ElementPlan(plan) if is_vlen(self.fill_value.dtype) else plan

    # -- the index ------------------------------------------------------------------

    def index_range(self):
        """``(offset, length)`` of the index within a shard, for a byte-range read."""
        self._require_bound()
        if self.index_location == "start":
            return 0, self.index_size
        return -self.index_size, None

    def read_index(self, raw_index, shard_size, key=""):
        """Decode and check a shard's index; returns flat ``(offset, nbytes)`` uint64 pairs.

        Raises ``CodecError`` (``ChecksumMismatch`` for a crc32c failure)
        naming ``key`` when the index is damaged or points outside the shard.
        ``shard_size=None`` (a store that cannot tell it without reading the
        whole shard) checks only what the index alone shows: no entry starts
        before the data, none wraps around; the caller checks the ends when it
        reads the ranges (``storage._sharded``).
        """
        if raw_index is None or len(raw_index) != self.index_size:
            raise CodecError(f"{_where(key)}the index needs {self.index_size} bytes, "
                             f"got {0 if raw_index is None else len(raw_index)}")
        entries = np.ascontiguousarray(
            self.index_chain.decode(raw_index, f"{key} (shard index)"), dtype=_INDEX_DTYPE
        ).reshape(-1)
        start = self.index_size if self.index_location == "start" else 0
        if shard_size is None:
            end = EMPTY
        elif self.index_location == "start":
            end = shard_size
        else:
            end = shard_size - self.index_size
        bad = shard_kernels.check_index(entries, start, max(start, end))
        if bad >= 0:
            where = "its data" if shard_size is None else f"the shard's {shard_size} bytes"
            raise CodecError(
                f"{_where(key)}index entry {bad} (offset {int(entries[2 * bad])}, "
                f"nbytes {int(entries[2 * bad + 1])}) lies outside {where}")
        return entries

    # -- whole shards ---------------------------------------------------------------

    def decode(self, data, shape, dtype):
        self._require_bound()
        data = memoryview(data)
        size = len(data)
        if size < self.index_size:
            raise CodecError(f"a shard needs at least {self.index_size} bytes, got {size}")
        off, length = self.index_range()
        raw_index = data[off:] if length is None else data[off:off + length]
        entries = self.read_index(raw_index, size)
        out = np.empty(self.shard_shape, dtype=dtype)
        plan = self._inner_plan()
        fill = np.broadcast_to(self.fill_value, self.chunk_shape)
        for i in range(plan.nchunks):
            o, n = int(entries[2 * i]), int(entries[2 * i + 1])
            if o == EMPTY:
                plan.gather(i, fill, out)
            else:
                plan.gather(i, self.inner.decode(data[o:o + n], f"inner chunk {i}"), out)
        return out

    def encode_inner(self, chunk):
        """Encoded bytes of one inner chunk, or ``None`` if it is all fill value."""
        if is_vlen(chunk.dtype):
            if all_fill(chunk, self.fill_value):
                return None
        elif transform.all_equal(chunk.reshape(-1).view(np.uint8),
                                 self.fill_value.reshape(1).view(np.uint8)):
            return None
        return self.inner.encode(chunk)

    def assemble(self, encoded):
        """One shard from the encoded inner chunks (C order; ``None`` = empty),
        or ``None`` when every inner chunk is empty."""
        if all(c is None for c in encoded):
            return None
        entries = np.empty(2 * len(encoded), dtype=_INDEX_DTYPE)
        at_start = self.index_location == "start"
        encoded = list(encoded)
        total = shard_kernels.shard_layout(encoded, entries, self.index_size, at_start)
        return shard_kernels.join_shard(encoded, self.encode_index(entries), total, at_start)

    def encode_index(self, entries):
        """The encoded shard index of flat ``(offset, nbytes)`` uint64 ``entries``."""
        return self.index_chain.encode(entries.reshape(self.chunks_per_shard + (2,)))

    def encode(self, array):
        self._require_bound()
        plan = self._inner_plan()
        encoded = []
        chunk = np.empty(self.chunk_shape, dtype=array.dtype)
        for i in range(plan.nchunks):
            plan.scatter(i, array, chunk)
            encoded.append(self.encode_inner(chunk))
        shard = self.assemble(encoded)
        if shard is None:
            # Every inner chunk is fill: an index of empty entries (the store
            # layer erases such shards; nested shards still need bytes).
            entries = np.full(2 * len(encoded), EMPTY, dtype=_INDEX_DTYPE)
            return self.encode_index(entries)
        return shard
