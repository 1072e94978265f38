"""dask helpers: read a zarrsync ``Array`` as a dask array, and store a dask
array into one without losing data.

``import zarrsync`` does not import dask; this module does (import it as
``import zarrsync.dask``). See ``docs/dask.md`` for the guide.

Why ``store`` exists
--------------------
A write that covers a chunk only in part is a read-modify-write of that
chunk: zarrsync reads the chunk, changes the covered elements and writes the
whole chunk back. Inside one process a lock per chunk serialises these, but
processes (``dask.distributed`` workers, the ``"processes"`` scheduler) share
no lock: when two of them update the same chunk at the same time, the one
that writes last wins, and the other's elements are lost.
``dask.array.store(darr, arr, lock=False)`` does exactly this when the dask
blocks are not aligned to the storage chunks. ``zarrsync.dask.store``
rechunks ``darr`` first so that every storage chunk is written by one task
only; then no two writers ever share a chunk, with any scheduler.

For a sharded array the storage chunk is the shard (the outer chunk,
``array.chunks``): all inner chunks of a shard live in one stored object.
"""

import uuid

import numpy as np

import dask.array as da
from dask.base import tokenize

from .array import Array

__all__ = ["to_dask", "store", "aligned_chunks", "is_aligned"]


# -- reading ------------------------------------------------------------------------------

def _store_identity(store):
    """What names ``store`` in a dask token: its location where it has one."""
    tokenize_method = getattr(store, "__dask_tokenize__", None)
    if tokenize_method is not None:
        return tokenize_method()
    description = store._description()
    if description == type(store).__name__:
        # No location (a MemoryStore): this object is the data.
        return (description, id(store))
    return description


def _token(array):
    meta = array.metadata
    return tokenize(_store_identity(array.store), array.node.path, meta.to_json())


def to_dask(array, chunks=None, *, name=None, inline_array=False, **kwargs):
    """``array`` (a ``zarrsync.Array``) as a lazy ``dask.array.Array``.

    Parameters
    ----------
    array : zarrsync.Array
    chunks : optional
        The dask chunks. By default the storage chunks (for a sharded array,
        the shards), so that each task reads whole stored objects. ``"auto"``
        lets dask pick a size, in multiples of the storage chunks. Any other
        value is passed to ``dask.array.from_array``.
    name : str or False, optional
        The dask name. By default ``"zarrsync-<token>"``, where the token is
        computed from the store's location, the node's path, the array's
        metadata and the chunks: two views of one array get the same name. The token does
        not see the data: if the data changes between computations on a
        cluster that holds persisted results of the old name, pass
        ``name=False`` (a random name) or your own.
    inline_array : bool
        As for ``dask.array.from_array``.
    **kwargs
        Passed to ``dask.array.from_array``.
    """
    if not isinstance(array, Array):
        raise TypeError(f"to_dask takes a zarrsync.Array, not {type(array).__name__}")
    meta = array.metadata
    storage_chunks = tuple(meta.chunks)
    if chunks is None:
        chunks = storage_chunks
    # Normalized here, not by from_array, because the name must depend on them:
    # two views of one array with other chunks are different dask arrays.
    chunks = da.core.normalize_chunks(
        chunks, tuple(meta.shape), dtype=meta.dtype,
        previous_chunks=kwargs.pop("previous_chunks", storage_chunks))
    if name is None:
        name = "zarrsync-" + tokenize(_token(array), chunks)
    ndim = len(meta.shape)
    kwargs.setdefault("meta", np.empty((0,) * ndim, dtype=meta.dtype))
    # No lock: zarrsync reads are thread-safe, and workers read on their own.
    return da.from_array(array, chunks=chunks, name=name, lock=False,
                         inline_array=inline_array, **kwargs)


# -- aligning -----------------------------------------------------------------------------

def _axis_boundaries(offset, chunks):
    """The interior block boundaries of one axis, in array coordinates."""
    bounds, position = [], offset
    for size in chunks[:-1]:
        position += size
        bounds.append(position)
    return bounds


def is_aligned(chunks, storage_chunks, offsets=None):
    """True if no two blocks of ``chunks`` (dask's tuple of tuples) share a
    storage chunk when the blocks are written at ``offsets`` (the region's
    start; zeros by default): every interior block boundary falls on a
    multiple of the storage chunk shape. Empty blocks count as boundaries too,
    harmlessly (they write nothing)."""
    offsets = (0,) * len(chunks) if offsets is None else offsets
    for axis_chunks, c, o in zip(chunks, storage_chunks, offsets):
        position = o
        for size in axis_chunks[:-1]:
            position += size
            if size and position % c:
                return False
    return True


def _aligned_axis(offset, length, c, typical):
    """Block sizes for ``length`` elements written at ``offset``: boundaries
    on multiples of ``b`` (a multiple of the storage chunk ``c`` near the
    dask block size ``typical``, at least ``c``)."""
    if length == 0:
        return (0,)
    b = c * max(1, typical // c)
    sizes, start, end = [], offset, offset + length
    while start < end:
        stop = min((start // b + 1) * b, end)
        sizes.append(stop - start)
        start = stop
    return tuple(sizes)


def aligned_chunks(chunks, storage_chunks, offsets=None):
    """Dask chunks for writing blocks of ``chunks`` into storage chunks
    ``storage_chunks`` at ``offsets`` (the region's start; zeros by default),
    such that no two blocks share a storage chunk.

    An axis that is already aligned keeps its blocks. Any other axis gets
    blocks whose boundaries fall on multiples of ``b``, the largest multiple
    of the storage chunk that is not larger than the largest dask block on
    that axis (or the storage chunk itself, if that is larger): blocks stay
    about as big as before, and never bigger than one storage chunk or one
    original block, whichever is larger. Only the first and the last block
    of an axis may be smaller (the region's edges, the array's end).
    """
    ndim = len(chunks)
    offsets = (0,) * ndim if offsets is None else tuple(offsets)
    if len(storage_chunks) != ndim or len(offsets) != ndim:
        raise ValueError(f"chunks of rank {ndim}, storage chunks of rank "
                         f"{len(storage_chunks)} and offsets of rank {len(offsets)} differ")
    out = []
    for axis_chunks, c, o in zip(chunks, storage_chunks, offsets):
        axis_chunks = tuple(axis_chunks)
        if is_aligned((axis_chunks,), (c,), (o,)):
            out.append(axis_chunks)
        else:
            out.append(_aligned_axis(o, sum(axis_chunks), c, max(axis_chunks)))
    return tuple(out)


# -- writing ------------------------------------------------------------------------------

class _Target:
    """The write target handed to ``dask.array.store``: the array, plus a
    flush after each write through an unpickled copy (a dask worker's, in
    another process or not). A store that buffers partly written chunks
    (``buffers_writes``) must not keep them in such a copy, where nobody
    would ever flush them."""

    def __init__(self, array):
        self.array = array
        self.copy = False
        self.token = uuid.uuid4().hex  # a store is a side effect: never merge two

    def __getstate__(self):
        return {"array": self.array, "token": self.token}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.copy = True

    def __dask_tokenize__(self):
        return ("zarrsync-store-target", self.token)

    @property
    def shape(self):
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def ndim(self):
        return self.array.ndim

    def __setitem__(self, selection, value):
        self.array[selection] = value
        zstore = self.array.store
        if self.copy and zstore.buffers_writes:
            zstore.flush()

    def __getitem__(self, selection):
        return self.array[selection]

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.array, dtype=dtype)


def _region_offsets(region, shape):
    """The start of ``region`` (a tuple of step-1 slices, or None) on each axis,
    and the region's shape."""
    if region is None:
        return (0,) * len(shape), tuple(shape)
    if not isinstance(region, tuple):
        region = (region,)
    if len(region) > len(shape) or not all(isinstance(s, slice) for s in region):
        raise ValueError(f"region must be a tuple of at most {len(shape)} slices, "
                         f"got {region!r}")
    region = region + (slice(None),) * (len(shape) - len(region))
    starts, sizes = [], []
    for s, n in zip(region, shape):
        start, stop, step = s.indices(n)
        if step != 1:
            raise ValueError(f"region slices must have step 1, got {s!r}")
        starts.append(start)
        sizes.append(max(0, stop - start))
    return tuple(starts), tuple(sizes)


def store(darr, array, *, region=None, compute=True, return_stored=False, **kwargs):
    """Write the dask array ``darr`` into ``array`` (a ``zarrsync.Array``),
    safely with any dask chunking and any scheduler.

    ``darr`` is rechunked (``aligned_chunks``) so that every storage chunk of
    ``array`` (every shard, for a sharded array) is written by exactly one
    task; the blocks are then stored with ``dask.array.store(..., lock=False)``.
    No lock is needed, between threads or between worker processes, and no
    write is lost. Chunks that are already aligned are left as they are.

    Parameters
    ----------
    darr : dask.array.Array or array-like
        An array-like that is not a dask array is wrapped with
        ``dask.array.asarray``.
    array : zarrsync.Array
        The target; it must exist, with ``darr``'s shape (or the region's).
    region : tuple of slice, optional
        Where in ``array`` to write (step 1); blocks are aligned to the
        storage chunks in the array's coordinates.
    compute : bool
        If False, return a ``dask.delayed.Delayed`` (or, with
        ``return_stored``, a dask array) that writes when computed.
    return_stored : bool
        As for ``dask.array.store``: return a dask array that reads the
        stored data back.
    **kwargs
        Passed to ``dask.array.store`` (and to ``compute``), e.g.
        ``scheduler="threads"``. ``lock`` is not accepted: none is needed.

    Returns
    -------
    None, a ``Delayed``, or a dask array, as ``dask.array.store``.
    """
    if not isinstance(array, Array):
        raise TypeError(f"store writes into a zarrsync.Array, not {type(array).__name__}")
    if "lock" in kwargs:
        raise TypeError("zarrsync.dask.store takes no lock: it aligns the writes to the "
                        "storage chunks, so that no two tasks write the same chunk")
    if "regions" in kwargs:
        raise TypeError("zarrsync.dask.store takes region=, one tuple of slices")
    if not isinstance(darr, da.Array):
        darr = da.asarray(darr)
    meta = array.metadata
    offsets, target_shape = _region_offsets(region, meta.shape)
    if any(np.isnan(s) for s in darr.shape):
        raise ValueError("darr has unknown chunk sizes: call darr.compute_chunk_sizes() "
                         "first")
    if tuple(darr.shape) != target_shape:
        what = "the region" if region is not None else "the array"
        raise ValueError(f"cannot store an array of shape {tuple(darr.shape)} into "
                         f"{what} of shape {target_shape}")
    chunks = aligned_chunks(darr.chunks, meta.chunks, offsets)
    if chunks != darr.chunks:
        darr = darr.rechunk(chunks)
    regions = None
    if region is not None:
        regions = tuple(slice(o, o + n) for o, n in zip(offsets, target_shape))
    return da.store(darr, _Target(array), lock=False, regions=regions, compute=compute,
                    return_stored=return_stored, **kwargs)

