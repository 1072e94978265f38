"""Codecs that kernels call without the GIL, and the batch encoder over them.

Compiled because a batch of chunks is encoded in one call that takes the
GIL once, instead of crossing into Python per chunk (thousands of small
chunks, or the inner chunks of a shard). Callers guarantee that a
``NativeCodec`` is used by one thread at a time.
"""

from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize

from zarrsync._kernels.transform cimport bytes_all_equal

import numpy


cdef class NativeCodec:
    """Base class: encodes and decodes nothing (every call fails)."""

    cdef Py_ssize_t encode_bound(self, Py_ssize_t n) noexcept nogil:
        return n

    cdef Py_ssize_t encode_into(self, const char* src, Py_ssize_t n, char* dst,
                                Py_ssize_t capacity) noexcept nogil:
        return -1

    cdef Py_ssize_t decode_into(self, const char* src, Py_ssize_t n, char* dst,
                                Py_ssize_t capacity) noexcept nogil:
        return -1

    def bound(self, Py_ssize_t n):
        """The most bytes ``encode_many`` writes for one ``n``-byte chunk."""
        return self.encode_bound(n)


def encode_many(NativeCodec codec, src, Py_ssize_t chunk_nbytes, fill, scratch):
    """Encode the chunks lying one after another in ``src`` (``chunk_nbytes``
    each): a list holding each one's encoding as a new ``bytes``, or ``None``
    for a chunk whose every element has the bits of ``fill`` (one element).

    The chunks are encoded into ``scratch`` (at least ``codec.bound`` bytes
    per chunk), then copied into their ``bytes``: both in GIL-free
    stretches, so that threads encoding batches do not wait on each other.
    Raises ``ValueError`` for a ``scratch`` too small, and ``RuntimeError``
    naming the chunk the codec failed on.
    """
    cdef Py_buffer sv, fv, dv
    cdef Py_ssize_t count, bound, item, k, failed = -1
    cdef char** targets = NULL
    PyObject_GetBuffer(src, &sv, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(fill, &fv, PyBUF_SIMPLE)
        try:
            PyObject_GetBuffer(scratch, &dv, PyBUF_SIMPLE | PyBUF_WRITABLE)
            try:
                item = fv.len
                if chunk_nbytes <= 0 or sv.len % chunk_nbytes:
                    raise ValueError(f"src holds {sv.len} bytes, not whole chunks of "
                                     f"{chunk_nbytes}")
                if item <= 0 or chunk_nbytes % item:
                    raise ValueError(f"a chunk of {chunk_nbytes} bytes is not whole "
                                     f"{item}-byte elements")
                count = sv.len // chunk_nbytes
                bound = codec.encode_bound(chunk_nbytes)
                if dv.len < count * bound:
                    raise ValueError(f"scratch holds {dv.len} bytes, {count} chunks may need "
                                     f"{count * bound}")
                sizes = numpy.empty(count, dtype=numpy.int64)
                failed = _encode_all(codec, <const char*>sv.buf, chunk_nbytes, count,
                                     <const uint8_t*>fv.buf, item, <char*>dv.buf, sizes)
                if failed >= 0:
                    raise RuntimeError(f"the codec failed on chunk {failed} of the batch")
                # New bytes objects that nobody else holds yet: filling them is safe.
                frames = [None if size < 0 else PyBytes_FromStringAndSize(NULL, size)
                          for size in sizes.tolist()]
                targets = <char**>malloc(max(count, 1) * sizeof(char*))
                if targets == NULL:
                    raise MemoryError()
                for k in range(count):
                    targets[k] = NULL if frames[k] is None else PyBytes_AS_STRING(frames[k])
                _copy_out(<const char*>dv.buf, targets, sizes)
            finally:
                free(targets)
                PyBuffer_Release(&dv)
        finally:
            PyBuffer_Release(&fv)
    finally:
        PyBuffer_Release(&sv)
    return frames


cdef Py_ssize_t _encode_all(NativeCodec codec, const char* src, Py_ssize_t n,
                            Py_ssize_t count, const uint8_t* fill, Py_ssize_t item,
                            char* dst, int64_t[::1] sizes):
    # Each chunk's encoding after the last one's; -1 when all are done, else
    # the chunk the codec failed on.
    cdef Py_ssize_t k, written, pos = 0
    cdef Py_ssize_t bound = codec.encode_bound(n)
    with nogil:
        for k in range(count):
            if bytes_all_equal(<const uint8_t*>(src + k * n), n // item, fill, item):
                sizes[k] = -1
                continue
            written = codec.encode_into(src + k * n, n, dst + pos, bound)
            if written < 0:
                return k
            sizes[k] = written
            pos += written
    return -1


cdef void _copy_out(const char* encoded, char** targets, int64_t[::1] sizes):
    cdef Py_ssize_t k, pos = 0
    with nogil:
        for k in range(sizes.shape[0]):
            if sizes[k] >= 0:
                memcpy(targets[k], encoded + pos, sizes[k])
                pos += sizes[k]
