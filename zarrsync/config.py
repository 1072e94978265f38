"""Every tuning number of zarrsync, in one place.

The chunks of one ``read_array``/``write_array`` call are independent work;
with more than one thread they run on a shared pool (``zarrsync.scheduler``).
The settings below decide how that work is split and which fast paths run.
None is read from the environment: change them with ``set``, which also
works as a context manager that restores the old values::

    import zarrsync
    zarrsync.config.set(threads=1)
    with zarrsync.config.set(fast_paths=False):
        ...  # every native fast path off, for this block only

Settings
--------
threads : int, default ``os.cpu_count()``
    Threads one call may use (1 runs every chunk on the calling thread).
parallel_min_bytes : int, default 1 MiB
    A call with less work than this runs on the calling thread: a thread
    hop costs more than it saves.
parallel_min_chunk_bytes : int, default 64 KiB
    So does a call whose chunks are smaller than this each, unless they
    are handled in batches: per chunk, Python work under the GIL then
    outweighs the codec work the threads would share.
tasks_per_thread : int, default 4
    A call splits its chunks into about this many tasks per thread, taken
    by threads as they come free, so that one thread slowed down (by
    another process, say) does not hold up the call.
task_bytes : int, default 4 MiB
    The most bytes of decoded chunks one task handles; a batch of small
    chunks is gathered, encoded or decoded together up to this size.
encode_batch_bytes : int, default 1 MiB
    Chunks compressed together in one call without the GIL write their
    frames into a thread's scratch buffer of about this size.
walk_chunks : int, default 64
    Whole chunks side by side in a written value are copied row by row
    across up to this many chunks at once (``ChunkPlan.scatter_many``).
write_buffer_bytes : int, default 64 MiB
    Stores that buffer partly written chunks (``Store.buffers_writes``)
    buffer those of one write only up to this many decoded bytes.
scratch_keep_bytes : int, default 8 MiB
    Each thread keeps its scratch buffers (chunks gathered, encoded or
    decoded) between calls up to this many bytes in all; beyond it a buffer
    is freed after each use. This is all the memory zarrsync keeps per
    thread, whatever the arrays.
cached_arrays : int, default 256
    Each store object keeps the parsed metadata of at most this many arrays
    (dropped with the array when it is erased); beyond it the oldest half
    is dropped.
cached_shard_index_bytes : int, default 16 MiB
    Each store object whose values carry versions (``ObjectStore``: ETags)
    keeps the indexes of the shards it read, up to this many bytes in all
    (beyond it the oldest half is dropped; 0 keeps none). Inner chunks of a
    known shard are then read in one request, on the condition that the
    shard is still the version the index came from.
copy_block_bytes : int, default 32 MiB
    ``zarrsync copy`` moves an array in blocks of whole destination chunks
    (shards when sharded) of at most this many decoded bytes (one chunk or
    shard when that is larger): with ``copy_blocks_in_flight`` it bounds the
    memory a copy takes, whatever the array's size.
copy_blocks_in_flight : int, default 2
    ``zarrsync copy`` holds at most this many blocks at once: one is read
    while another is written.
stream_min_bytes : int, default 4 MiB
    Read outputs of this size or more are allocated on a cache line and
    written with non-temporal stores (a fast path).
max_chunk_bytes : int, default ``min(4 GiB, physical memory)``
    The most bytes one chunk may decode to (the inner chunk of a sharded
    array read in parts). Metadata that declares larger chunks is a
    ``ParseError``, and a variable-length chunk (strings, bytes) that would
    decode to more is a ``CodecError``: data from elsewhere cannot make a
    read allocate without bound. Raise it for data with larger chunks.
max_document_bytes : int, default 256 MiB
    The largest metadata document (``zarr.json``) zarrsync parses; a
    larger one is a ``ParseError``, refused before it is read.
fast_paths : bool, default True
    Use the native fast paths: zstd through the system's libzstd without
    the GIL (numcodecs' zstd otherwise), aligned outputs and non-temporal
    stores. Off, every result is the same, by the portable routes.
"""

import contextlib
import operator
import os

import numpy as np

__all__ = ["get", "set", "get_threads", "set_threads", "DEFAULTS"]

def _physical_memory():
    """The machine's physical memory in bytes (1 TiB where the system cannot say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 1 << 40


#: The default of every setting.
DEFAULTS = {
    "threads": os.cpu_count() or 1,
    "parallel_min_bytes": 1 << 20,
    "parallel_min_chunk_bytes": 1 << 16,
    "tasks_per_thread": 4,
    "task_bytes": 4 << 20,
    "encode_batch_bytes": 1 << 20,
    "walk_chunks": 64,
    "write_buffer_bytes": 64 << 20,
    "scratch_keep_bytes": 8 << 20,
    "cached_arrays": 256,
    "cached_shard_index_bytes": 16 << 20,
    "copy_block_bytes": 32 << 20,
    "copy_blocks_in_flight": 2,
    "stream_min_bytes": 4 << 20,
    "max_chunk_bytes": min(4 << 30, _physical_memory()),
    "max_document_bytes": 256 << 20,
    "fast_paths": True,
}

_values = dict(DEFAULTS)


def get(name):
    """The current value of setting ``name``."""
    try:
        return _values[name]
    except KeyError:
        raise KeyError(f"no setting {name!r}; settings are {sorted(DEFAULTS)}") from None


def _checked(name, value):
    if name not in DEFAULTS:
        raise KeyError(f"no setting {name!r}; settings are {sorted(DEFAULTS)}")
    if name == "fast_paths":
        if not isinstance(value, bool):
            raise ValueError(f"fast_paths must be True or False, got {value!r}")
        return value
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)  # NumPy integers too
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    least = 1 if name in ("threads", "tasks_per_thread", "task_bytes", "cached_arrays",
                          "copy_block_bytes", "copy_blocks_in_flight",
                          "max_chunk_bytes", "max_document_bytes") else 0
    if value < least:
        raise ValueError(f"{name} must be >= {least}, got {value}")
    return value


class _Restore(contextlib.AbstractContextManager):
    """What ``set`` returns: leaving a ``with`` block puts the old values back."""

    def __init__(self, old):
        self._old = old

    def __exit__(self, *exc):
        _values.update(self._old)
        return False


def set(**values):
    """Change settings; also a context manager that restores them on exit.

    Raises ``KeyError`` for an unknown name and ``ValueError`` for a value
    out of range; nothing changes then.
    """
    checked = {name: _checked(name, value) for name, value in values.items()}
    old = {name: _values[name] for name in checked}
    _values.update(checked)
    return _Restore(old)


def get_threads():
    """The number of threads a call may use (default ``os.cpu_count()``)."""
    return _values["threads"]


def set_threads(n):
    """Use ``n`` threads (``n >= 1``; 1 runs every chunk on the calling thread)."""
    set(threads=n)
