"""gzip members decompressed by libdeflate, into a buffer the caller reuses.

libdeflate decodes deflate faster than ISA-L on the chunks zarrsync
benchmarks (W3: 64 chunks of 64^3 float32, ~25% less CPU), but Python
packages give it only through calls that return a new ``bytes`` sized from
the member's trailer, and that do not say where the member ended. Here the
library's ``libdeflate_gzip_decompress_ex`` is called directly: the output
goes into the caller's buffer and a member is accepted only when it fills
the whole input, so several members, trailing bytes and damaged data are
all left to the codec's other path (which reads them or names the error).

libdeflate is not linked at build time: ``load`` opens a shared library
that exports its API (the ``deflate`` package's extension module does) and
looks the three functions up.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.pycapsule cimport PyCapsule_New

from zarrsync._kernels.decoder cimport RAW_DECODER_CAPSULE, RawDecoder
from zarrsync._kernels.dynlib cimport open_symbols

cdef extern from *:
    """
    typedef void* (*zs_alloc_decompressor_t)(void);
    typedef void (*zs_free_decompressor_t)(void*);
    typedef int (*zs_gzip_decompress_ex_t)(void*, const void*, size_t, void*, size_t,
                                           size_t*, size_t*);
    """
    ctypedef void* (*zs_alloc_decompressor_t)() noexcept nogil
    ctypedef void (*zs_free_decompressor_t)(void*) noexcept nogil
    ctypedef int (*zs_gzip_decompress_ex_t)(void*, const void*, size_t, void*, size_t,
                                            size_t*, size_t*) noexcept nogil

# enum libdeflate_result (libdeflate.h): 0 is LIBDEFLATE_SUCCESS.
cdef enum:
    LIBDEFLATE_SUCCESS = 0

cdef zs_alloc_decompressor_t _alloc = NULL
cdef zs_free_decompressor_t _free = NULL
cdef zs_gzip_decompress_ex_t _gzip_decompress_ex = NULL


def load(path):
    """Use the libdeflate functions exported by the shared library at ``path``;
    True if they were found (the first library that loads stays in use)."""
    global _alloc, _free, _gzip_decompress_ex
    if _gzip_decompress_ex != NULL:
        return True
    cdef void* found[3]
    if not open_symbols(path, (b"libdeflate_alloc_decompressor", b"libdeflate_free_decompressor",
                               b"libdeflate_gzip_decompress_ex"), found):
        return False
    _alloc = <zs_alloc_decompressor_t>found[0]
    _free = <zs_free_decompressor_t>found[1]
    _gzip_decompress_ex = <zs_gzip_decompress_ex_t>found[2]
    return True


def loaded():
    """True once ``load`` has found libdeflate."""
    return _gzip_decompress_ex != NULL


cdef class Inflater:
    """One libdeflate decompressor, for one thread at a time."""

    cdef void* d
    cdef RawDecoder raw

    def __cinit__(self):
        if _gzip_decompress_ex == NULL:
            raise RuntimeError("libdeflate is not loaded")
        self.d = _alloc()
        if self.d == NULL:
            raise MemoryError()
        self.raw.decode = _raw_gzip_member
        self.raw.state = self.d

    def raw_decoder(self):
        """``gzip_member_into`` for ``ChunkPlan.gather_decoded_many``: a capsule
        of this decompressor's ``RawDecoder`` (see ``decoder.pxd``), valid
        while it lives."""
        return PyCapsule_New(&self.raw, RAW_DECODER_CAPSULE, NULL)

    def __dealloc__(self):
        if self.d != NULL:
            _free(self.d)

    def gzip_member_into(self, data, out):
        """Decode ``data`` into the writable buffer ``out`` if it is exactly one
        whole gzip member (header, deflate stream, matching CRC-32 and size,
        nothing after it) holding at most ``len(out)`` bytes: the number of
        bytes written. -1 otherwise, with ``out`` in an unspecified state."""
        cdef Py_buffer src, dst
        cdef Py_ssize_t written
        PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
        try:
            PyObject_GetBuffer(out, &dst, PyBUF_SIMPLE | PyBUF_WRITABLE)
            try:
                with nogil:
                    written = _raw_gzip_member(self.d, src.buf, src.len, dst.buf, dst.len)
            finally:
                PyBuffer_Release(&dst)
        finally:
            PyBuffer_Release(&src)
        return written


cdef Py_ssize_t _raw_gzip_member(void* d, const void* src, size_t n, void* dst,
                                 size_t capacity) noexcept nogil:
    # One whole gzip member of src decoded into dst by decompressor d, or -1.
    cdef size_t used_in = 0, written = 0
    cdef int result = _gzip_decompress_ex(d, src, n, dst, capacity, &used_in, &written)
    if result != LIBDEFLATE_SUCCESS or used_in != n:
        return -1
    return <Py_ssize_t>written
