"""Whole-chunk transforms: byte swapping, transposition, fill checks, crc32c framing.

Compiled because each touches every byte of a chunk on every encode or
decode. Callers pass contiguous byte views (``const uint8_t[::1]`` for
inputs) or buffers of matching shape and itemsize; the wrappers check
sizes and release the GIL around each loop.
"""

from libc.string cimport memcpy, memcmp
from libc.stdlib cimport malloc, free
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.buffer cimport PyBuffer_Release

from zarrsync._kernels.common cimport word_t, MAX_NDIM, store_le32, load_le32
from zarrsync._kernels.copy cimport copy_nd, get_strided_buffer


cdef inline uint16_t _bswap16(uint16_t v) noexcept nogil:
    return <uint16_t>((v >> 8) | (v << 8))

cdef inline uint32_t _bswap32(uint32_t v) noexcept nogil:
    return (((v & 0xff) << 24) | ((v & 0xff00) << 8)
            | ((v >> 8) & 0xff00) | (v >> 24))

cdef inline uint64_t _bswap64(uint64_t v) noexcept nogil:
    return ((<uint64_t>_bswap32(<uint32_t>v) << 32)
            | _bswap32(<uint32_t>(v >> 32)))


cdef void _byteswap(uint8_t* buf, Py_ssize_t nbytes, Py_ssize_t unit) noexcept nogil:
    cdef Py_ssize_t k, n = nbytes // unit
    cdef uint16_t v2
    cdef uint32_t v4
    cdef uint64_t v8
    # memcpy keeps unaligned buffers (bytes objects, slices) legal.
    if unit == 2:
        for k in range(n):
            memcpy(&v2, buf + 2 * k, 2)
            v2 = _bswap16(v2)
            memcpy(buf + 2 * k, &v2, 2)
    elif unit == 4:
        for k in range(n):
            memcpy(&v4, buf + 4 * k, 4)
            v4 = _bswap32(v4)
            memcpy(buf + 4 * k, &v4, 4)
    elif unit == 8:
        for k in range(n):
            memcpy(&v8, buf + 8 * k, 8)
            v8 = _bswap64(v8)
            memcpy(buf + 8 * k, &v8, 8)


def byteswap(uint8_t[::1] buf, Py_ssize_t unit):
    """Reverse the bytes of every ``unit``-byte word of ``buf`` in place.

    ``unit`` is 1 (nothing to do), 2, 4 or 8; complex numbers are swapped
    per component, so callers pass half the complex itemsize.
    """
    if unit not in (1, 2, 4, 8):
        raise ValueError(f"byteswap unit must be 1, 2, 4 or 8, got {unit}")
    if buf.shape[0] % unit:
        raise ValueError(f"buffer of {buf.shape[0]} bytes is not a whole number of {unit}-byte words")
    if unit == 1 or buf.shape[0] == 0:
        return
    with nogil:
        _byteswap(&buf[0], buf.shape[0], unit)


def copy_into(src, dst, Py_ssize_t swap_unit=1):
    """Copy the strided array ``src`` into ``dst`` (same shape and itemsize).

    This is the transpose kernel: pass a transposed view as ``src`` and a
    C-contiguous array as ``dst``. With ``swap_unit`` > 1 and a contiguous
    ``dst``, the copied bytes are then swapped in ``swap_unit`` words.
    """
    cdef Py_buffer sv, dv
    cdef Py_ssize_t* offsets = NULL
    cdef const Py_ssize_t* soff[MAX_NDIM]
    cdef const Py_ssize_t* doff[MAX_NDIM]
    cdef Py_ssize_t counts[MAX_NDIM]
    cdef Py_ssize_t total = 0, pos, k, nbytes
    cdef int d, ndim
    get_strided_buffer(src, &sv, False)
    try:
        get_strided_buffer(dst, &dv, True)
        try:
            ndim = sv.ndim
            if dv.ndim != ndim or sv.itemsize != dv.itemsize:
                raise ValueError("copy_into needs arrays of equal rank and itemsize")
            for d in range(ndim):
                if sv.shape[d] != dv.shape[d]:
                    raise ValueError(f"copy_into shape mismatch on axis {d}: "
                                     f"{sv.shape[d]} vs {dv.shape[d]}")
                counts[d] = sv.shape[d]
                total += sv.shape[d]
            offsets = <Py_ssize_t*>malloc((2 * total + 1) * sizeof(Py_ssize_t))
            if offsets == NULL:
                raise MemoryError()
            pos = 0
            for d in range(ndim):
                soff[d] = offsets + pos
                doff[d] = offsets + total + pos
                for k in range(counts[d]):
                    offsets[pos + k] = k * sv.strides[d]
                    offsets[total + pos + k] = k * dv.strides[d]
                pos += counts[d]
            nbytes = dv.len
            with nogil:
                copy_nd(<const char*>sv.buf, <char*>dv.buf, ndim, counts, soff, doff,
                        sv.itemsize, False)
            if swap_unit > 1:
                if not (dst.flags.c_contiguous):
                    raise ValueError("byte swapping needs a C-contiguous destination")
                with nogil:
                    _byteswap(<uint8_t*>dv.buf, nbytes, swap_unit)
        finally:
            PyBuffer_Release(&dv)
    finally:
        PyBuffer_Release(&sv)
        free(offsets)


cdef bint _all_equal_words(const uint8_t* buf, Py_ssize_t n, word_t pattern) noexcept nogil:
    cdef Py_ssize_t k
    cdef word_t v
    for k in range(n):
        memcpy(&v, buf + k * sizeof(word_t), sizeof(word_t))
        if v != pattern:
            return False
    return True


cdef bint bytes_all_equal(const uint8_t* buf, Py_ssize_t n, const uint8_t* pattern,
                          Py_ssize_t size) noexcept nogil:
    """True if each of the ``n`` ``size``-byte elements at ``buf`` has ``pattern``'s bits."""
    cdef Py_ssize_t k
    cdef uint16_t p2
    cdef uint32_t p4
    cdef uint64_t p8
    if size == 1:
        return _all_equal_words(buf, n, pattern[0])
    if size == 2:
        memcpy(&p2, pattern, 2)
        return _all_equal_words(buf, n, p2)
    if size == 4:
        memcpy(&p4, pattern, 4)
        return _all_equal_words(buf, n, p4)
    if size == 8:
        memcpy(&p8, pattern, 8)
        return _all_equal_words(buf, n, p8)
    for k in range(n):
        if memcmp(buf + k * size, pattern, size) != 0:
            return False
    return True


def all_equal(const uint8_t[::1] buf, const uint8_t[::1] pattern):
    """True if every ``len(pattern)``-byte element of ``buf`` has the pattern's bits.

    Bitwise, so ``-0.0`` differs from ``0.0`` and a chunk is only treated
    as "all fill value" when storing nothing loses nothing.
    """
    cdef Py_ssize_t size = pattern.shape[0], n
    cdef bint result
    if size == 0 or buf.shape[0] % size:
        raise ValueError("buffer is not a whole number of pattern-sized elements")
    n = buf.shape[0] // size
    if n == 0:
        return True
    with nogil:
        result = bytes_all_equal(&buf[0], n, &pattern[0], size)
    return result


def append_crc32c(const uint8_t[::1] data, uint32_t checksum):
    """Return ``data`` followed by ``checksum`` as 4 little-endian bytes."""
    cdef Py_ssize_t n = data.shape[0]
    out = PyBytes_FromStringAndSize(NULL, n + 4)
    cdef uint8_t* p = <uint8_t*>PyBytes_AS_STRING(out)
    with nogil:
        if n:
            memcpy(p, &data[0], n)
        store_le32(p + n, checksum)
    return out


def stored_crc32c(const uint8_t[::1] data):
    """The little-endian checksum in the last 4 bytes of ``data``."""
    if data.shape[0] < 4:
        raise ValueError(f"a crc32c-framed value needs at least 4 bytes, got {data.shape[0]}")
    return load_le32(&data[data.shape[0] - 4])
