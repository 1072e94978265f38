"""Shard index checks and shard assembly for the ``sharding_indexed`` codec.

Compiled because a shard holds many inner chunks and both building a shard
(placing every encoded inner chunk and recording its offset) and checking
an index read from storage (every entry in bounds) run over all of them.
https://zarr-specs.readthedocs.io/en/latest/v3/codecs/sharding-indexed/index.html

The index is a flat array of ``(offset, nbytes)`` uint64 pairs, one pair per
inner chunk in C order; both values ``2**64 - 1`` mark an empty inner chunk.
"""

from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from libc.stdint cimport uint8_t, uint64_t
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize

from zarrsync._kernels.common cimport advise_hugepages

cdef uint64_t EMPTY = 0xFFFFFFFFFFFFFFFFULL


def check_index(const uint64_t[::1] entries, uint64_t data_start, uint64_t data_end,
                uint64_t max_nbytes=EMPTY):
    """Return -1 if every entry is empty or lies in ``[data_start, data_end)``
    and holds at most ``max_nbytes`` bytes, else the number of the first
    inner chunk whose entry does not."""
    cdef Py_ssize_t k, n = entries.shape[0] // 2
    cdef uint64_t off, size
    cdef Py_ssize_t bad = -1
    with nogil:
        for k in range(n):
            off = entries[2 * k]
            size = entries[2 * k + 1]
            if off == EMPTY and size == EMPTY:
                continue
            if (off < data_start or off > data_end or size > data_end - off
                    or size > max_nbytes):
                bad = k
                break
    return bad


def shard_layout(list chunks, uint64_t[::1] entries, Py_ssize_t index_size,
                 bint index_at_start):
    """Place encoded inner chunks (``bytes``-like, or ``None`` for empty) one after another.

    Fills ``entries`` with each chunk's ``(offset, nbytes)`` (the empty marker
    for ``None``), leaving ``index_size`` bytes for the index at the start or
    the end, and returns the shard's total size.
    """
    cdef Py_ssize_t n = len(chunks), k, nbytes
    cdef Py_ssize_t pos = index_size if index_at_start else 0
    if entries.shape[0] != 2 * n:
        raise ValueError(f"entries must hold {2 * n} values, got {entries.shape[0]}")
    for k in range(n):
        c = chunks[k]
        if c is None:
            entries[2 * k] = EMPTY
            entries[2 * k + 1] = EMPTY
            continue
        nbytes = len(c)
        entries[2 * k] = pos
        entries[2 * k + 1] = nbytes
        pos += nbytes
    return pos if index_at_start else pos + index_size


def join_shard(list chunks, const uint8_t[::1] index, Py_ssize_t total, bint index_at_start):
    """The shard as one new ``bytes``: the chunks in order (``None`` skipped)
    and the encoded ``index`` at the start or the end.

    ``total`` is ``shard_layout``'s result for the same chunks. The copies
    run without the GIL, so shards of one call assemble in parallel.
    """
    cdef Py_ssize_t n = len(chunks), k, m = 0, pos
    cdef Py_ssize_t index_size = index.shape[0]
    cdef uint8_t* p
    cdef Py_buffer* views = <Py_buffer*>malloc(max(n, 1) * sizeof(Py_buffer))
    if views == NULL:
        raise MemoryError()
    try:
        for k in range(n):
            c = chunks[k]
            if c is None:
                continue
            PyObject_GetBuffer(c, &views[m], PyBUF_SIMPLE)
            m += 1
        pos = index_size if index_at_start else 0
        for k in range(m):
            pos += views[k].len
        if pos + (0 if index_at_start else index_size) != total:
            raise ValueError(f"chunks and index hold {pos} bytes, the layout {total}")
        out = PyBytes_FromStringAndSize(NULL, total)
        # A new bytes object nobody else holds yet: filling it in place is safe.
        p = <uint8_t*>PyBytes_AS_STRING(out)
        with nogil:
            advise_hugepages(p, total)  # a large new shard: fewer page faults
            pos = index_size if index_at_start else 0
            for k in range(m):
                memcpy(p + pos, views[k].buf, views[k].len)
                pos += views[k].len
            if index_size:
                memcpy(p + (0 if index_at_start else pos), &index[0], index_size)
        return out
    finally:
        for k in range(m):
            PyBuffer_Release(&views[k])
        free(views)
