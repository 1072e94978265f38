"""The ``sharding_indexed`` codec: many inner chunks stored in one shard.

https://zarr-specs.readthedocs.io/en/latest/v3/codecs/sharding-indexed/index.html
A shard is the array's (outer) chunk. It is cut into inner chunks of
``chunk_shape``, each encoded with ``codecs``; the encoded inner chunks are
laid out one after another, and an index of ``(offset, nbytes)`` uint64
pairs (C order over the inner grid, encoded with ``index_codecs``) sits at
the start or the end. Inner chunks equal to the fill value are left out
(their index entry is ``2**64 - 1`` twice).

Its capability ``inner_chunks()``: the pipeline reads and writes a sharded
array on its inner grid. ``group`` maps inner chunks to their shards,
``read_inner`` fetches a shard's index and only the inner chunks needed,
``read_kept`` what a rewrite of a shard keeps, and ``assemble`` builds a
shard from its encoded inner chunks (the one place shards are built).
``decode`` and ``encode`` handle a whole shard (nested sharding, or a chain
with bytes->bytes codecs after sharding).

The reads go through a source with the pipeline's ``ChunkIO`` interface
(``get``, ``get_ranges``, ``size``, ``lock``, and its declared capabilities).
"""

import numpy as np

from .._kernels import shard as shard_kernels
from ..dtypes import all_fill, coerce_fill_value, fill_array, is_vlen
from ..errors import CodecError, InvalidShardingChunkShape
from ..indexing import ChunkPlan, ElementPlan
from ._base import ArrayToBytesCodec
from ._bytes import Bytes
from ._chain import CodecChain
from ._crc32c import Crc32c
from ._defaults import default_array_bytes
from ._registry import parse_codecs

__all__ = ["ShardingIndexed", "EMPTY", "ShardChanged"]

EMPTY = 2**64 - 1
_INDEX_DTYPE = np.dtype("uint64")
#: A shard another process keeps replacing while it is read is read again
#: at most this many times.
_SHARD_READ_ATTEMPTS = 20


def _where(key):
    # Whole-shard decoding has no key; the chain names the chunk around it.
    return f"shard {key!r}: " if key else ""


class ShardChanged(Exception):
    """A shard was replaced (by another process) between reading its index and its chunks."""


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
            raise InvalidShardingChunkShape(f"sharding_indexed configuration needs a "
                                            f"'chunk_shape', got the fields "
                                            f"{sorted(configuration)}")
        chunk_shape = configuration.pop("chunk_shape")
        codecs = configuration.pop("codecs", None)
        index_codecs = configuration.pop("index_codecs", None)
        index_location = configuration.pop("index_location", "end")
        if configuration:
            raise CodecError(f"unknown sharding_indexed configuration fields "
                             f"{sorted(configuration)}; expected chunk_shape, codecs, "
                             f"index_codecs, index_location")
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
            codecs = (default_array_bytes(dtype),)
        bound = ShardingIndexed(self.chunk_shape, codecs, self.index_codecs,
                                self.index_location)
        bound.shard_shape = shard_shape
        if fill_value is None:
            fill_value = coerce_fill_value(None, dtype)  # the data type's zero
        bound.fill_value = fill_array(fill_value, dtype)
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

    def max_encoded_size(self, shape, dtype):
        """The index and every inner chunk at the most its codecs store."""
        if self.inner is None:
            return None
        return self.index_size + self.n_inner * self.inner.limits()[2]

    def _require_bound(self):
        if self.inner is None:
            raise CodecError("sharding_indexed is used before being bound to an array")

    def inner_chunks(self):
        return self if self.inner is not None else None

    @property
    def n_inner(self):
        """Inner chunks per shard."""
        return int(np.prod(self.chunks_per_shard, dtype=np.int64))

    def _inner_plan(self):
        plan = ChunkPlan(self.shard_shape, self.chunk_shape,
                         [(0, 1, n) for n in self.shard_shape])
        return ElementPlan(plan) if is_vlen(self.fill_value.dtype) else plan

    # -- inner chunks and their shards ---------------------------------------------

    def locate(self, inner_coords):
        """``(shard_coords, position)`` of the inner chunk at ``inner_coords``
        (its position: C order in the shard's index)."""
        shard, position = [], 0
        for c, n in zip(inner_coords, self.chunks_per_shard):
            shard.append(c // n)
            position = position * n + c % n
        return tuple(shard), position

    def group(self, plan):
        """``[(shard_coords, plan_indices, positions), ...]``: the chunks of
        ``plan`` (planned on the inner grid) by shard, in shard order."""
        if plan.nchunks == 1:  # point reads: skip the array work below
            shard, position = self.locate(plan.chunk_coords(0))
            return [(shard, [0], [position])]
        ndim = plan.ndim
        per_shard = np.array(self.chunks_per_shard, dtype=np.int64)
        coords = np.empty(plan.nchunks * ndim, dtype=np.int64)
        plan.coords_into(coords)
        coords = coords.reshape(plan.nchunks, ndim)
        shard_coords = coords // per_shard
        if ndim:
            within = coords - shard_coords * per_shard
            positions = np.ravel_multi_index(within.T, self.chunks_per_shard)
            top = shard_coords.max(axis=0) + 1
            shard_ids = np.ravel_multi_index(shard_coords.T, tuple(top))
        else:
            positions = np.zeros(plan.nchunks, dtype=np.int64)
            shard_ids = np.zeros(plan.nchunks, dtype=np.int64)
        order = np.argsort(shard_ids, kind="stable")
        bounds = np.flatnonzero(np.diff(shard_ids[order])) + 1
        return [(tuple(shard_coords[run[0]].tolist()), run.tolist(), positions[run].tolist())
                for run in np.split(order, bounds)]

    def count_in_array(self, shard_coords, shape):
        """How many inner chunks of shard ``shard_coords`` of an array of
        ``shape`` intersect the array."""
        n = 1
        for c, per, inner, extent in zip(shard_coords, self.chunks_per_shard,
                                         self.chunk_shape, shape):
            grid = -(-extent // inner)
            n *= max(0, min(per, grid - c * per))
        return n

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
        reads the ranges (``_fetch``).
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
        # No inner chunk may be larger than its codecs can make of one: a
        # byte range read is then never larger than that either.
        most = self.inner.limits()[2]
        bad = shard_kernels.check_index(entries, start, max(start, end), min(most, EMPTY))
        if bad >= 0:
            offset, nbytes = int(entries[2 * bad]), int(entries[2 * bad + 1])
            if nbytes > most and not (offset == EMPTY and nbytes == EMPTY):
                raise CodecError(
                    f"{_where(key)}index entry {bad} (offset {offset}, nbytes {nbytes}) "
                    f"declares an inner chunk of {nbytes} bytes, more than the {most} "
                    f"bytes its codecs store at most")
            where = "its data" if shard_size is None else f"the shard's {shard_size} bytes"
            raise CodecError(
                f"{_where(key)}index entry {bad} (offset {offset}, "
                f"nbytes {nbytes}) lies outside {where}")
        return entries

    # -- reading parts of shards ---------------------------------------------------

    def read_inner(self, source, key, positions):
        """The stored bytes of the inner chunks at ``positions`` of shard
        ``key`` (``None`` for an empty one, all ``None`` if the shard is absent)."""
        entries, values = self._read(source, key, positions)
        if entries is None:
            return [None] * len(positions)
        out, stored = [], iter(values)
        for p in positions:
            out.append(None if entries[2 * p] == EMPTY else next(stored))
        return out

    def read_kept(self, source, key, rewritten):
        """``{position: stored bytes}`` of every inner chunk of shard ``key``
        that is not empty and not in ``rewritten`` (positions a write replaces
        whole): what a rewrite of the shard keeps or changes in part."""
        entries, values = self._read(source, key, None, set(rewritten))
        if entries is None:
            return {}
        return dict(values)

    def _read(self, source, key, positions, rewritten=None):
        """``(entries, values)``: the checked index of shard ``key`` (``None``
        if absent) and the stored bytes of its non-empty inner chunks at
        ``positions``; or, with ``positions=None``, ``(position, bytes)``
        pairs of every non-empty one not in ``rewritten``."""
        if source.returns_stored_objects:
            return self._read_stored_object(source, key, positions, rewritten)
        if source.versions_values:
            return self._read_versioned(source, key, positions, rewritten)
        confirm = source.shared_between_processes
        error = None
        for _ in range(_SHARD_READ_ATTEMPTS):
            # Under the shard's lock: a rewrite through the same store object
            # cannot pair an old index with new bytes. Other processes:
            # ``confirm`` reads the index again with the chunks, and a changed
            # shard is read again; an index that does not fit the size (read
            # in another call) may be a rewrite too, so it counts once it persists.
            with source.lock(key):
                try:
                    entries, size, raw_index = self._read_entries(source, key)
                except CodecError as e:
                    if not confirm:
                        raise
                    error = e
                    continue
                if entries is None:
                    return None, []
                wanted = self._wanted(entries, positions, rewritten)
                try:
                    values = self._fetch(source, key, entries, wanted, size,
                                         raw_index if confirm else None)
                except ShardChanged:
                    continue
            if positions is None:
                return entries, list(zip(wanted, values))
            return entries, values
        if error is not None:  # the same class (ChecksumMismatch, say), said to persist
            raise type(error)(f"{error} (read {_SHARD_READ_ATTEMPTS} times: the shard is "
                              f"damaged, or kept changing while it was read)")
        raise CodecError(f"shard {key!r} kept changing while it was read "
                         f"({_SHARD_READ_ATTEMPTS} attempts)")

    def _read_versioned(self, source, key, positions, rewritten):
        """``_read`` for a source whose values carry versions: the index comes
        with the shard's size and version in one request (or is the one kept
        from an earlier read), and the inner chunks are read only while the
        shard is still that version, so they match the index."""
        offset, length = self.index_range()
        for _ in range(_SHARD_READ_ATTEMPTS):
            kept = source.shard_index(key)
            if kept is None:
                raw, size, version = source.get_ranges_versioned(key, [(offset, length)])
                if raw is None:
                    return None, []
                # One response: the index is the shard's own, so damage is not a race.
                entries = self.read_index(raw[0], size, key)
                source.keep_shard_index(key, version, size, entries)
            else:
                version, size, entries = kept
            wanted = self._wanted(entries, positions, rewritten)
            ranges = [(key, int(entries[2 * p]), int(entries[2 * p + 1])) for p in wanted]
            if ranges:
                values = source.get_ranges_if(key, [r[1:] for r in ranges], version)
            else:   # a kept index alone does not show the shard is still that version
                values = [] if kept is None else None
            if values is None:   # rewritten or erased since: read the index again
                source.drop_shard_index(key)
                continue
            values = self._checked(key, ranges, values)
            return entries, (list(zip(wanted, values)) if positions is None else values)
        raise CodecError(f"shard {key!r} kept changing while it was read "
                         f"({_SHARD_READ_ATTEMPTS} attempts)")

    def _wanted(self, entries, positions, rewritten):
        # The non-empty positions to fetch: of ``positions``, or every one
        # not in ``rewritten``.
        if positions is None:
            return [p for p in range(self.n_inner)
                    if entries[2 * p] != EMPTY and p not in rewritten]
        return [p for p in positions if entries[2 * p] != EMPTY]

    def _read_entries(self, source, key):
        """``(entries, size, raw_index)``: the checked index entries of shard
        ``key``, its size in bytes and the index as stored, or ``(None, None,
        None)`` if it is absent.

        ``size`` is ``None`` when the source cannot tell it without reading
        the shard: the entries are then checked against the shard's end as
        their ranges are read (``_fetch``).
        """
        offset, length = self.index_range()
        raw_index = source.get_ranges([(key, offset, length)])[0]
        if raw_index is None:
            return None, None, None
        size = source.size(key)
        if size is None and source.knows_sizes:
            return None, None, None  # erased between the two calls
        return self.read_index(raw_index, size, key), size, raw_index

    def _fetch(self, source, key, entries, positions, size, raw_index=None):
        """The stored bytes of the inner chunks at ``positions`` (all non-empty).

        With ``raw_index``, the index is read again in the same call (one
        version of the value, for sources that other processes may rewrite)
        and ``ShardChanged`` is raised if it is no longer the one the
        positions came from.
        """
        ranges = [(key, int(entries[2 * p]), int(entries[2 * p + 1])) for p in positions]
        if raw_index is not None:
            offset, length = self.index_range()
            *values, again = source.get_ranges(ranges + [(key, offset, length)])
            if again is None or bytes(again) != bytes(raw_index):
                raise ShardChanged(key)
            return self._checked(key, ranges, values)
        probe = []
        if size is None and ranges and self.index_location == "end":
            # The shard's size is unknown: the chunks must end before the index,
            # so the byte index_size - 1 after the furthest end must exist.
            last = max(offset + nbytes for _, offset, nbytes in ranges)
            probe = [(key, last + self.index_size - 1, 1)]
        values = source.get_ranges(ranges + probe)
        if probe:
            tail = values.pop()
            if tail is None or len(tail) != 1:
                raise CodecError(f"shard {key!r}: an index entry points past the data, "
                                 f"into the index or beyond the shard")
        return self._checked(key, ranges, values)

    @staticmethod
    def _checked(key, ranges, values):
        for (_, offset, nbytes), value in zip(ranges, values):
            if value is None or len(value) != nbytes:
                raise CodecError(f"shard {key!r}: the inner chunk at bytes {offset}..."
                                 f"{offset + nbytes} could not be read (truncated shard)")
        return values

    def _read_stored_object(self, source, key, positions, rewritten):
        """``_read`` for a source whose ``get`` returns the stored, immutable
        object: the index and the chunks are views of that one value, so
        they cannot come from two versions of the shard."""
        value = source.get(key)
        if value is None:
            return None, []
        view = memoryview(value)
        offset, length = self.index_range()
        raw_index = view[offset:] if length is None else view[offset:offset + length]
        entries = self.read_index(raw_index, len(view), key).tolist()
        wanted = self._wanted(entries, positions, rewritten)
        values = [view[entries[2 * p]:entries[2 * p] + entries[2 * p + 1]] for p in wanted]
        if positions is None:
            return entries, list(zip(wanted, values))
        return entries, values

    # -- whole shards ---------------------------------------------------------------

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

    def decode(self, data, shape, dtype):
        self._require_bound()
        data = memoryview(data)
        size = len(data)
        if size < self.index_size:
            raise CodecError(f"a shard needs at least {self.index_size} bytes, got {size}")
        offset, length = self.index_range()
        raw_index = data[offset:] if length is None else data[offset:offset + length]
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

    def encode(self, array):
        self._require_bound()
        plan = self._inner_plan()
        encoded = []
        chunk = np.empty(self.chunk_shape, dtype=array.dtype)
        for i in range(plan.nchunks):
            plan.scatter(i, array, chunk)
            encoded.append(None if all_fill(chunk, self.fill_value) else self.inner.encode(chunk))
        shard = self.assemble(encoded)
        if shard is None:
            # Every inner chunk is fill: an index of empty entries (the
            # pipeline erases such shards; nested shards still need bytes).
            entries = np.full(2 * len(encoded), EMPTY, dtype=_INDEX_DTYPE)
            return self.encode_index(entries)
        return shard
