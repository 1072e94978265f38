"""Reads and writes of arrays whose whole codec chain is ``sharding_indexed``.

Such an array is planned on its inner chunk grid: every inner chunk is an
independent work item, located by its shard's key and the shard index. A
read fetches each touched shard's index, then only the byte ranges of the
inner chunks it needs. A write rebuilds each touched shard whole, reusing
the stored bytes of inner chunks it does not touch, decoding only inner
chunks it changes partly, and fetching nothing when it covers the shard.
https://zarr-specs.readthedocs.io/en/latest/v3/codecs/sharding-indexed/index.html
"""

import threading

import numpy as np

from .._kernels import zstd as zstd_kernel
from ..codecs._sharding import EMPTY, ShardingIndexed
from ..codecs._vlen import fill_array, is_vlen, new_filled
from ..codecs._zstd import Zstd, native_available
from ..config import get_threads, run_batches, run_chunks
from ..errors import CodecError
from ..indexing import ChunkPlan, ElementPlan

__all__ = ["ShardLayout"]


def _knows_sizes(store):
    """True if ``store`` overrides ``Store.getsize`` (whose default reads the value)."""
    from ._base import Store  # _base imports this module through _hierarchy
    return type(store).getsize is not Store.getsize


class ShardLayout:
    """How the inner chunks of one sharded array map to shards."""

    def __init__(self, meta):
        codec = meta.chain.array_bytes
        self.codec = codec
        self.shape = meta.shape
        self.inner_shape = codec.chunk_shape
        self.per_shard = np.array(codec.chunks_per_shard, dtype=np.int64)
        self.n_inner = codec.n_inner
        inner_grid = [-(-s // c) for s, c in zip(meta.shape, self.inner_shape)]
        self.inner_grid = np.array(inner_grid, dtype=np.int64)
        self.shard_grid = tuple(-(-s // c) for s, c in zip(meta.shape, meta.chunks))
        # Inner chunks with a coordinate below this on every axis lie wholly inside the array.
        self.inner_full = np.array([s // c for s, c in zip(meta.shape, self.inner_shape)],
                                   dtype=np.int64)
        self.dtype = meta.dtype
        # A 0-d array holding the exact fill value (bits, or the string itself).
        self.fill_0d = fill_array(meta.fill_value, meta.dtype)
        self.fill_inner = np.broadcast_to(self.fill_0d, self.inner_shape)
        # string and bytes: elements are references, copied with NumPy indexing.
        self.vlen = is_vlen(meta.dtype)
        self.fill_bytes = None if self.vlen else self.fill_0d.reshape(1).view(np.uint8)
        # Bytes of one decoded inner chunk: how the thread pool sizes the work.
        self.inner_nbytes = int(np.prod(self.inner_shape, dtype=np.int64)) * self.dtype.itemsize
        self._local = threading.local()  # each thread's gather buffer (_direct_worker)

    @staticmethod
    def applies_to(chain):
        """True when ``chain`` is ``sharding_indexed`` alone (byte ranges are then valid)."""
        return (isinstance(chain.array_bytes, ShardingIndexed) and not chain.array_array
                and not chain.bytes_bytes)

    def plan(self, sel):
        plan = ChunkPlan(self.shape, self.inner_shape, sel.axes)
        return ElementPlan(plan) if self.vlen else plan

    def group_by_shard(self, plan):
        """``[(shard_coords, plan_indices, inner_positions, inner_coords), ...]``.

        ``inner_positions`` are C-order positions in the shard index.
        """
        ndim = len(self.shape)
        if plan.nchunks == 1:  # point writes: skip the array work below
            coords = plan.chunk_coords(0)
            shard, position = self.locate(coords)
            return [(shard, [0], [position], np.array([coords], dtype=np.int64))]
        coords = np.empty(plan.nchunks * ndim, dtype=np.int64)
        plan.coords_into(coords)
        coords = coords.reshape(plan.nchunks, ndim)
        shard_coords = coords // self.per_shard
        if ndim:
            within = coords - shard_coords * self.per_shard
            positions = np.ravel_multi_index(within.T, tuple(self.per_shard))
            shard_ids = np.ravel_multi_index(shard_coords.T, self.shard_grid)
        else:
            positions = np.zeros(plan.nchunks, dtype=np.int64)
            shard_ids = np.zeros(plan.nchunks, dtype=np.int64)
        order = np.argsort(shard_ids, kind="stable")
        bounds = np.flatnonzero(np.diff(shard_ids[order])) + 1
        groups = []
        for run in np.split(order, bounds):
            first = run[0]
            groups.append((tuple(int(c) for c in shard_coords[first]), run.tolist(),
                           positions[run].tolist(), coords[run]))
        return groups

    def locate(self, inner_coords):
        """``(shard_coords, position)`` of the inner chunk at ``inner_coords``."""
        shard, position = [], 0
        for c, n in zip(inner_coords, self.codec.chunks_per_shard):
            shard.append(c // n)
            position = position * n + c % n
        return tuple(shard), position

    def inner_in_array(self, shard_coords):
        """How many inner chunks of the shard intersect the array."""
        starts = np.array(shard_coords, dtype=np.int64) * self.per_shard
        return int(np.prod(np.minimum(self.per_shard, self.inner_grid - starts)))

    def read_entries(self, store, key):
        """``(entries, size, raw_index)``: the checked index entries of shard
        ``key``, its size in bytes and the index as stored, or ``(None, None,
        None)`` if it is absent.

        ``size`` is ``None`` when the backend has no ``getsize`` of its own:
        ``Store.getsize`` would read the whole shard, so the entries are then
        checked against the shard's end as their ranges are read (``fetch``).
        """
        offset, length = self.codec.index_range()
        raw_index = store.get_ranges_view([(key, offset, length)])[0]
        if raw_index is None:
            return None, None, None
        size = None
        if _knows_sizes(store):
            size = store.getsize(key)
            if size is None:
                return None, None, None  # erased between the two calls
        return self.codec.read_index(raw_index, size, key), size, raw_index

    def fetch(self, store, key, entries, positions, size, raw_index=None):
        """The stored bytes of the inner chunks at ``positions`` (all non-empty).

        With ``raw_index``, the index is read again in the same batch (one
        version of the value, for the backends that may be rewritten by other
        processes) and ``ShardChanged`` is raised if it is no longer the one
        the positions came from.
        """
        ranges = [(key, int(entries[2 * p]), int(entries[2 * p + 1])) for p in positions]
        if raw_index is not None:
            offset, length = self.codec.index_range()
            ranges_and_index = ranges + [(key, offset, length)]
            *values, again = store.get_ranges_view(ranges_and_index)
            if again is None or bytes(again) != bytes(raw_index):
                raise ShardChanged(key)
            return self._checked(key, ranges, values)
        probe = []
        if size is None and ranges and self.codec.index_location == "end":
            # The shard's size is unknown: the chunks must end before the index,
            # so the byte index_size - 1 after the furthest end must exist.
            last = max(offset + nbytes for _, offset, nbytes in ranges)
            probe = [(key, last + self.codec.index_size - 1, 1)]
        values = store.get_ranges_view(ranges + probe)
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

    def read(self, store, state, sel, out):
        """Read selection ``sel`` into ``out`` (the selection's full-rank shape)."""
        plan = self.plan(sel)
        if plan.nchunks == 1:
            self._read_one(store, state, plan, out)
            return
        if not plan.nchunks:
            return
        # Fetch shard by shard (each under its lock), then decode every stored
        # inner chunk of the call on the pool.
        work, values, names = [], [], []
        for shard_coords, indices, positions, _ in self.group_by_shard(plan):
            key = state.chunk_key(shard_coords)
            entries, stored, shard_values = self._read_shard(store, key, positions, indices)
            if entries is None:
                for i in indices:
                    plan.gather(i, self.fill_inner, out)
                continue
            for i, p in zip(indices, positions):
                if entries[2 * p] == EMPTY:
                    plan.gather(i, self.fill_inner, out)
            work.extend(i for i, _ in stored)
            names.extend((key, p) for _, p in stored)
            values.extend(shard_values)
        inner = self.codec.inner
        indices = np.array(work, dtype=np.int64)

        # Batches of inner chunks, each decoded in one call without the GIL
        # where the codec allows (``gather_stored_many``).
        def read_batch(lo, hi):
            def name_of(k):
                key, p = names[lo + k]
                return f"{key} (inner chunk {p})"

            inner.gather_stored_many(plan, indices[lo:hi], values[lo:hi], out, name_of)

        run_batches(read_batch, len(work), len(work) * self.inner_nbytes)

    def _read_one(self, store, state, plan, out):
        """``read`` of a plan of one inner chunk (point reads): no grouping, no pool."""
        shard, position = self.locate(plan.chunk_coords(0))
        key = state.chunk_key(shard)
        _, _, values = self._read_shard(store, key, (position,), (0,))
        if values:
            self.codec.inner.gather_stored(plan, 0, values[0], out,
                                           f"{key} (inner chunk {position})")
        else:
            plan.gather(0, self.fill_inner, out)

    def _read_shard(self, store, key, positions, indices):
        """``(entries, [(plan index, position)], values)`` of one shard's needed
        inner chunks; ``entries`` is None when the shard is absent."""
        if store._get_returns_stored_object:
            return self._read_stored_object(store, key, positions, indices)
        confirm = getattr(store, "shared_between_processes", False)
        error = None
        for _ in range(_SHARD_READ_ATTEMPTS):
            # Under the shard's lock: a rewrite by this store object cannot pair
            # an old index with new bytes. Other processes: ``confirm`` re-reads
            # the index with the chunks, and a changed shard is read again; an
            # index that does not fit the size (read in another call) may be a
            # rewrite too, so it only counts once it persists.
            with store._chunk_lock(key):
                try:
                    entries, size, raw_index = self.read_entries(store, key)
                except CodecError as e:
                    if not confirm:
                        raise
                    error = e
                    continue
                if entries is None:
                    return None, [], []
                stored = [(i, p) for i, p in zip(indices, positions) if entries[2 * p] != EMPTY]
                try:
                    values = self.fetch(store, key, entries, [p for _, p in stored], size,
                                        raw_index if confirm else None)
                except ShardChanged:
                    continue
            return entries, stored, values
        if error is not None:
            raise error
        raise CodecError(f"shard {key!r} kept changing while it was read "
                         f"({_SHARD_READ_ATTEMPTS} attempts)")

    def _read_stored_object(self, store, key, positions, indices):
        """``_read_shard`` for a store whose ``get`` returns the stored object.

        The index and the chunks are views of that one immutable value, so
        they cannot come from two versions of the shard (no lock needed), and
        the index checked against it is reused while the store holds it.
        """
        value = store.get(key)
        if value is None:
            return None, [], []
        view = memoryview(value)
        # Only an immutable value can be trusted not to change after the check;
        # and only small indexes are kept (as lists, ~70 bytes an inner chunk).
        cacheable = type(value) is bytes and self.n_inner <= _MAX_REMEMBERED_INNER
        entries = store._recall(key, value, self) if cacheable else None
        if entries is None:
            offset, length = self.codec.index_range()
            raw_index = view[offset:] if length is None else view[offset:offset + length]
            # A list: its items are Python ints, cheaper to use than NumPy scalars.
            entries = self.codec.read_index(raw_index, len(value), key).tolist()
            if cacheable:
                store._remember(key, value, self, entries)
        stored, values = [], []
        for i, p in zip(indices, positions):
            offset = entries[2 * p]
            if offset != EMPTY:
                stored.append((i, p))
                values.append(view[offset:offset + entries[2 * p + 1]])
        return entries, stored, values

    def _new_inner(self, inner_coords):
        if np.any(inner_coords >= self.inner_full):
            return new_filled(self.inner_shape, self.fill_0d)
        return np.empty(self.inner_shape, dtype=self.dtype)

    def _writable_inner(self, value, key, position):
        if value is None:
            return new_filled(self.inner_shape, self.fill_0d)
        decoded = self.codec.inner.decode(value, f"{key} (inner chunk {position})")
        return np.array(decoded, dtype=self.dtype, order="C")

    def write(self, store, state, sel, value):
        """Write ``value`` (broadcast to the selection's full-rank shape) to ``sel``.

        Holds the locks of every touched shard while it reads their kept
        inner chunks, encodes the written ones (all shards' inner chunks on
        the pool at once), assembles each shard (on the pool too) and stores it.
        A shard whose written inner chunks are all whole goes the direct way
        when the inner chain is zstd alone: libzstd compresses its inner
        chunks into the shard's own buffer (``_direct_worker``), with no
        ``bytes`` per chunk and no copy into the shard.
        """
        plan = self.plan(sel)
        if not plan.nchunks:
            return
        groups = self.group_by_shard(plan)
        keys = [state.chunk_key(g[0]) for g in groups]
        zstd = self._direct_zstd()
        with store._chunk_locks(keys):
            shards, items, direct = [], [], []
            for key, (shard_coords, indices, positions, inner_coords) in zip(keys, groups):
                encoded, old = self._kept_inner(store, key, shard_coords, plan, indices,
                                                positions)
                if zstd is not None and not old and all(
                        plan.covers_inner_chunk(i) for i in indices):
                    direct.append((len(shards), indices, positions))
                else:
                    items.extend((i, p, c, key, encoded, old) for i, p, c
                                 in zip(indices, positions, inner_coords))
                shards.append(encoded)
            work = _DirectWork(self._direct_shards(direct, shards))

            inner = self.codec.inner
            compressed = bool(inner.bytes_bytes)

            def encode_inner(k):
                i, p, c, key, encoded, old = items[k]
                if inner.native_bytes and plan.covers_inner_chunk(i):
                    encoded[p] = inner.encode_covered(plan, i, value, self.fill_bytes)
                    return
                if plan.is_complete(i):
                    chunk = self._new_inner(c)
                else:
                    chunk = self._writable_inner(old.get(p), key, p)
                plan.scatter(i, value, chunk)
                encoded[p] = self.codec.encode_inner(chunk)

            def encode(k):
                if k < len(items):
                    encode_inner(k)
                else:
                    self._direct_worker(zstd, plan, value, work)

            n_encoded = len(items) + work.n_chunks
            run_chunks(encode, len(items) + min(get_threads(), work.n_steps),
                       n_encoded * self.inner_nbytes if compressed else 0)
            # Direct shards were finished by the thread that compressed their last frame.
            assembled = [None] * len(shards)
            for job in work.shards:
                assembled[job.shard] = job.finished
            direct_shards = {job.shard for job in work.shards}
            rest = [k for k in range(len(shards)) if k not in direct_shards]

            def assemble(k):
                assembled[rest[k]] = self.codec.assemble(shards[rest[k]])

            run_chunks(assemble, len(rest), len(items) * self.inner_nbytes)
            for key, shard in zip(keys, assembled):
                if shard is None:
                    store.erase(key)
                else:
                    store.set(key, shard)

    # -- the direct way: zstd frames compressed into the shard's buffer -----------

    def _direct_zstd(self):
        """The inner chain's ``Zstd`` codec if whole inner chunks can be
        compressed straight into their shard (``_kernels.zstd``), else ``None``."""
        inner = self.codec.inner
        if not inner.native_bytes or len(inner.bytes_bytes) != 1:
            return None
        codec = inner.bytes_bytes[0]
        if not isinstance(codec, Zstd) or not native_available():
            return None
        return codec

    def _direct_shards(self, direct, shards):
        """``[_DirectShard, ...]`` for the shards written the direct way
        (``direct``: ``(shard, plan indices, positions)``), in shard order."""
        group = max(1, _DIRECT_GROUP_BYTES // self.inner_nbytes)
        jobs = []
        for k, indices, positions in direct:
            kept = shards[k]
            order = dict(zip(positions, indices))
            run = sorted(set(order) | {p for p, c in enumerate(kept) if c is not None})
            steps = []
            for p in run:
                i = order.get(p)
                last = steps[-1] if steps else None
                if (i is None or last is None or last[1] is None
                        or len(last[0]) == group):
                    steps.append(([p], None if i is None else [i]))
                else:
                    last[0].append(p)
                    last[1].append(i)
            jobs.append(_DirectShard(k, kept, steps))
        return jobs

    def _direct_worker(self, zstd, plan, value, work):
        """Take direct shards and their steps from ``work`` until none is left:
        a shard nobody has started is this thread's own (frames go into its
        buffer, from the front); then steps from the back of the shard with
        most left, into a piece of this thread's own. The thread that leaves
        a shard last, with all its steps done, finishes it (``job.finished``:
        its bytes, ``None`` if it holds no inner chunk)."""
        ctx = zstd.native_context()
        n = self.inner_nbytes
        raw = getattr(self._local, "raw", None)
        group = max(1, _DIRECT_GROUP_BYTES // n)
        if raw is None or len(raw) != group * n:
            raw = self._local.raw = memoryview(bytearray(group * n))
        index_size = self.codec.index_size
        lead = index_size if self.codec.index_location == "start" else 0
        while (claim := work.claim()) is not None:
            job, owner, steps = claim
            written = sum(len(ps) for ps, indices in steps if indices is not None)
            stored = sum(len(job.kept[ps[0]]) for ps, indices in steps
                         if indices is None and job.kept[ps[0]] is not None)
            if owner:
                piece = job.owner = zstd_kernel.ShardPiece(written, n, lead, index_size - lead,
                                                           stored)
            else:
                piece = zstd_kernel.ShardPiece(written, n, 0, 0, stored)
                job.stolen.append(piece)
            while (step := work.take(job, owner)) is not None:
                positions, indices = step
                if indices is None:
                    piece.add_stored(positions[0], job.kept[positions[0]])
                    continue
                buf = raw[:len(indices) * n]
                plan.scatter_many_to_bytes(np.array(indices, dtype=np.int64), value, buf)
                try:
                    piece.add(ctx, buf, positions, self.fill_bytes)
                except zstd_kernel.ZstdFailed as e:
                    raise CodecError(f"zstd could not compress an inner chunk: {e}") from None
            if work.release(job):
                # The shard's last frame is in: join and index it here, while
                # other threads still compress, instead of in a pass of its own.
                job.finished = zstd_kernel.finish_shard(
                    [job.owner, *job.stolen], self.n_inner, index_size,
                    self.codec.index_location == "start", self.codec.encode_index)

    def _kept_inner(self, store, key, shard_coords, plan, indices, positions):
        """``(encoded, old)`` for a shard about to be rewritten.

        ``encoded`` lists the shard's inner chunks, holding the stored bytes
        of those this write does not touch (``None`` elsewhere); ``old`` maps
        the positions this write changes only partly to their stored bytes.
        A write covering the whole shard reads nothing.
        """
        encoded = [None] * self.n_inner
        complete = {p: plan.is_complete(i) for i, p in zip(indices, positions)}
        if len(indices) == self.inner_in_array(shard_coords) and all(complete.values()):
            return encoded, {}
        entries, size, _ = self.read_entries(store, key)
        if entries is None:
            return encoded, {}
        keep = [p for p in range(self.n_inner)
                if entries[2 * p] != EMPTY and not complete.get(p, False)]
        old = dict(zip(keep, self.fetch(store, key, entries, keep, size)))
        for p, stored in list(old.items()):
            if p not in complete:
                encoded[p] = stored  # untouched: reuse the stored bytes
                del old[p]
        return encoded, old


class _DirectShard:
    """A shard written the direct way.

    ``steps`` are its inner chunks in shard order, as they are compressed:
    ``(positions, plan indices)`` for a run of written chunks (one call to
    libzstd), ``([position], None)`` for a chunk kept as stored
    (``kept[position]``, ``None`` if empty). The thread that claims the
    shard takes steps from the front into ``owner``, the shard's own
    buffer; threads with nothing else left take them from the back into
    ``stolen`` pieces, joined in after the owner's frames. ``working``
    counts the threads that hold a piece of it; ``finished`` is the shard's
    bytes once the last of them has finished it.
    """

    __slots__ = ("shard", "kept", "steps", "front", "back", "owner", "stolen", "working",
                 "finished")

    def __init__(self, shard, kept, steps):
        self.shard = shard
        self.kept = kept
        self.steps = steps
        self.front = 0
        self.back = len(steps)
        self.owner = None
        self.stolen = []
        self.working = 0
        self.finished = None


class _DirectWork:
    """The steps of the direct shards of one write, handed to threads.

    Each shard has one owner, so a shard's frames are mostly compressed
    straight into its own buffer; a thread that finds every shard claimed
    helps the one with most steps left instead of waiting, so no thread
    idles while another still has a shard to finish (shards are few and
    large, and unequally fast to compress). The last step of a shard that
    two threads work on is halved as it is taken, so they end together
    rather than one waiting out the other's whole step.
    """

    def __init__(self, shards):
        self.shards = shards
        self.n_steps = sum(len(job.steps) for job in shards)
        self.n_chunks = sum(len(step[0]) for job in shards for step in job.steps)
        self._lock = threading.Lock()
        self._claimed = 0

    def claim(self):
        """``(shard, True, steps)`` for a shard nobody has claimed, else
        ``(shard, False, steps)`` for the one with most steps left (``steps``:
        those still untaken, the most the caller can get), or ``None``.
        The caller works on the shard until ``release``."""
        with self._lock:
            if self._claimed < len(self.shards):
                job = self.shards[self._claimed]
                self._claimed += 1
                job.working += 1
                return job, True, job.steps[job.front:job.back]
            if not self.shards:
                return None
            job = max(self.shards, key=lambda j: j.back - j.front)
            if job.back <= job.front:
                return None
            job.working += 1
            return job, False, job.steps[job.front:job.back]

    def take(self, job, owner):
        """The next step of ``job`` from the front (owner) or back, or ``None``;
        the first or second half of the last one while another thread also
        works on the shard."""
        with self._lock:
            if job.front >= job.back:
                return None
            if job.back - job.front == 1 and job.working > 1:
                positions, indices = job.steps[job.front]
                if indices is not None and len(indices) > 1:
                    half = len(indices) // 2
                    if owner:
                        job.steps[job.front] = (positions[half:], indices[half:])
                        return positions[:half], indices[:half]
                    job.steps[job.front] = (positions[:half], indices[:half])
                    return positions[half:], indices[half:]
            if owner:
                job.front += 1
                return job.steps[job.front - 1]
            job.back -= 1
            return job.steps[job.back]

    def release(self, job):
        """The caller is done with ``job``: True if it was the last thread on
        it and no step is left, so that it must finish the shard."""
        with self._lock:
            job.working -= 1
            return job.working == 0 and job.front >= job.back


#: Inner chunks are gathered and compressed this many bytes at a time on the
#: direct way: one Python call per group, and the group stays in the L2 cache.
_DIRECT_GROUP_BYTES = 1 << 20


class ShardChanged(Exception):
    """A shard was replaced (by another process) between reading its index and its chunks."""


_SHARD_READ_ATTEMPTS = 20

# Shards of more inner chunks than this have their index checked on every read.
_MAX_REMEMBERED_INNER = 1024
