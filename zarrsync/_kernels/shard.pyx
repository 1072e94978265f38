"""Shard index checks and shard assembly for the ``sharding_indexed`` codec.

Compiled because a shard holds many inner chunks and both building a shard
(placing every encoded inner chunk and recording its offset) and checking
an index read from storage (every entry in bounds) run over all of them.
https://zarr-specs.readthedocs.io/en/latest/v3/codecs/sharding-indexed/index.html

The index is a flat array of ``(offset, nbytes)`` uint64 pairs, one pair per
inner chunk in C order; both values ``2**64 - 1`` mark an empty inner chunk.
"""

from libc.string cimport memcpy
from libc.stdint cimport uint8_t, uint64_t
from cpython.bytearray cimport PyByteArray_FromStringAndSize, PyByteArray_AS_STRING

cdef uint64_t EMPTY = 0xFFFFFFFFFFFFFFFFULL


def check_index(const uint64_t[::1] entries, uint64_t data_start, uint64_t data_end):
    """Return -1 if every entry is empty or lies in ``[data_start, data_end)``,
    else the number of the first inner chunk whose entry does not."""
    cdef Py_ssize_t k, n = entries.shape[0] // 2
    cdef uint64_t off, size
    cdef Py_ssize_t bad = -1
    with nogil:
        for k in range(n):
            off = entries[2 * k]
            size = entries[2 * k + 1]
            if off == EMPTY and size == EMPTY:
                continue
            if off < data_start or off > data_end or size > data_end - off:
                bad = k
                break
    return bad


def assemble_shard(list chunks, uint64_t[::1] entries, Py_ssize_t index_size,
                   bint index_at_start):
    """Lay out encoded inner chunks (``bytes`` or ``None`` for empty) in one buffer.

    Fills ``entries`` with each chunk's ``(offset, nbytes)`` (the empty
    marker for ``None``) and returns a ``bytearray`` with ``index_size``
    zero bytes reserved at the start or the end for the encoded index.
    """
    cdef Py_ssize_t n = len(chunks), k, total = index_size
    cdef Py_ssize_t pos
    cdef const uint8_t[::1] view
    if entries.shape[0] != 2 * n:
        raise ValueError(f"entries must hold {2 * n} values, got {entries.shape[0]}")
    for k in range(n):
        c = chunks[k]
        if c is not None:
            total += len(c)
    out = PyByteArray_FromStringAndSize(NULL, total)
    cdef uint8_t* p = <uint8_t*>PyByteArray_AS_STRING(out)
    pos = index_size if index_at_start else 0
    for k in range(n):
        c = chunks[k]
        if c is None:
            entries[2 * k] = EMPTY
            entries[2 * k + 1] = EMPTY
            continue
        view = c
        entries[2 * k] = pos
        entries[2 * k + 1] = view.shape[0]
        if view.shape[0]:
            memcpy(p + pos, &view[0], view.shape[0])
        pos += view.shape[0]
    # Reserved index bytes: zero until the caller writes the encoded index.
    cdef Py_ssize_t istart = 0 if index_at_start else total - index_size
    for k in range(index_size):
        p[istart + k] = 0
    return out
