"""zstd through the system's libzstd, callable without the GIL.

Compiled so that batch kernels (``native.encode_many``,
``indexing.ChunkPlan.gather_many``) compress and decompress many chunks in
one GIL-free stretch, into buffers the caller reuses. libzstd is not linked
at build time: ``load`` opens it by its documented soname, checks its
version and looks up functions of zstd's stable API only
(https://facebook.github.io/zstd/zstd_manual.html). Where it does not load,
zarrsync uses numcodecs' zstd instead. Callers guarantee that a context is
used by one thread at a time.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer

from zarrsync._kernels.dynlib cimport open_symbols
from zarrsync._kernels.native cimport NativeCodec

cdef extern from *:
    """
    typedef void* (*zs_create_ctx_t)(void);
    typedef size_t (*zs_free_ctx_t)(void*);
    typedef size_t (*zs_set_parameter_t)(void*, int, int);
    typedef size_t (*zs_transform_t)(void*, void*, size_t, const void*, size_t);
    typedef size_t (*zs_compress_bound_t)(size_t);
    typedef unsigned (*zs_is_error_t)(size_t);
    typedef const char* (*zs_error_name_t)(size_t);
    typedef unsigned (*zs_version_number_t)(void);
    """
    ctypedef void* (*zs_create_ctx_t)() noexcept nogil
    ctypedef size_t (*zs_free_ctx_t)(void*) noexcept nogil
    ctypedef size_t (*zs_set_parameter_t)(void*, int, int) noexcept nogil
    # ZSTD_compress2 and ZSTD_decompressDCtx: (context, dst, capacity, src, size).
    ctypedef size_t (*zs_transform_t)(void*, void*, size_t, const void*, size_t) noexcept nogil
    ctypedef size_t (*zs_compress_bound_t)(size_t) noexcept nogil
    ctypedef unsigned (*zs_is_error_t)(size_t) noexcept nogil
    ctypedef const char* (*zs_error_name_t)(size_t) noexcept nogil
    ctypedef unsigned (*zs_version_number_t)() noexcept nogil

# ZSTD_cParameter values of the stable API (zstd.h).
cdef enum:
    ZSTD_c_compressionLevel = 100
    ZSTD_c_contentSizeFlag = 200
    ZSTD_c_checksumFlag = 201

#: Sonames tried by ``load``: Linux, then macOS.
SONAMES = ("libzstd.so.1", "libzstd.1.dylib")
#: ``ZSTD_compress2`` and ``ZSTD_CCtx_setParameter`` are stable from 1.4.0 on.
MIN_VERSION = 10400

cdef zs_create_ctx_t _create_cctx = NULL
cdef zs_free_ctx_t _free_cctx = NULL
cdef zs_set_parameter_t _set_parameter = NULL
cdef zs_transform_t _compress2 = NULL
cdef zs_create_ctx_t _create_dctx = NULL
cdef zs_free_ctx_t _free_dctx = NULL
cdef zs_transform_t _decompress_dctx = NULL
cdef zs_compress_bound_t _compress_bound = NULL
cdef zs_is_error_t _is_error = NULL
cdef zs_error_name_t _error_name = NULL
cdef unsigned _version = 0
cdef str _soname = None


def load(sonames=SONAMES):
    """Open the first of ``sonames`` that is a libzstd of ``MIN_VERSION`` or
    newer with every function used here; its ``ZSTD_versionNumber()`` (such
    as 10504), or 0 if none is. The first library loaded stays in use."""
    global _create_cctx, _free_cctx, _set_parameter, _compress2, _create_dctx, _free_dctx
    global _decompress_dctx, _compress_bound, _is_error, _error_name, _version, _soname
    cdef void* found[11]
    if _version:
        return _version
    for name in sonames:
        if not open_symbols(name, (b"ZSTD_versionNumber", b"ZSTD_createCCtx", b"ZSTD_freeCCtx",
                                   b"ZSTD_CCtx_setParameter", b"ZSTD_compress2",
                                   b"ZSTD_createDCtx", b"ZSTD_freeDCtx",
                                   b"ZSTD_decompressDCtx", b"ZSTD_compressBound",
                                   b"ZSTD_isError", b"ZSTD_getErrorName"), found):
            continue
        version = (<zs_version_number_t>found[0])()
        if version < MIN_VERSION:
            continue
        _create_cctx = <zs_create_ctx_t>found[1]
        _free_cctx = <zs_free_ctx_t>found[2]
        _set_parameter = <zs_set_parameter_t>found[3]
        _compress2 = <zs_transform_t>found[4]
        _create_dctx = <zs_create_ctx_t>found[5]
        _free_dctx = <zs_free_ctx_t>found[6]
        _decompress_dctx = <zs_transform_t>found[7]
        _compress_bound = <zs_compress_bound_t>found[8]
        _is_error = <zs_is_error_t>found[9]
        _error_name = <zs_error_name_t>found[10]
        _version = version
        _soname = name
        return version
    return 0


def version():
    """``ZSTD_versionNumber()`` of the loaded library, 0 before ``load`` succeeds."""
    return _version


def soname():
    """The soname the library was loaded by, or ``None``."""
    return _soname


class ZstdError(Exception):
    """libzstd returned an error code; the message is its name for it."""


cdef class ZstdContext(NativeCodec):
    """A compression and a decompression context of the loaded libzstd.

    Frames record the content size, as zarr-python's (numcodecs') do, and a
    content checksum when ``checksum``.
    """

    cdef void* cctx
    cdef void* dctx
    cdef readonly int level
    cdef readonly bint checksum

    def __cinit__(self, int level, bint checksum):
        if not _version:
            raise RuntimeError("libzstd is not loaded")
        self.cctx = _create_cctx()
        self.dctx = _create_dctx()
        if self.cctx == NULL or self.dctx == NULL:
            raise MemoryError()
        _check(_set_parameter(self.cctx, ZSTD_c_contentSizeFlag, 1))
        self.configure(level, checksum)

    def configure(self, int level, bint checksum):
        """Compress at ``level``, with or without checksums, from now on."""
        _check(_set_parameter(self.cctx, ZSTD_c_compressionLevel, level))
        _check(_set_parameter(self.cctx, ZSTD_c_checksumFlag, checksum))
        self.level = level
        self.checksum = checksum

    def __dealloc__(self):
        if self.cctx != NULL:
            _free_cctx(self.cctx)
        if self.dctx != NULL:
            _free_dctx(self.dctx)

    cdef Py_ssize_t encode_bound(self, Py_ssize_t n) noexcept nogil:
        return <Py_ssize_t>_compress_bound(<size_t>n)

    cdef Py_ssize_t encode_into(self, const char* src, Py_ssize_t n, char* dst,
                                Py_ssize_t capacity) noexcept nogil:
        cdef size_t written = _compress2(self.cctx, dst, <size_t>capacity, src, <size_t>n)
        return -1 if _is_error(written) else <Py_ssize_t>written

    cdef Py_ssize_t decode_into(self, const char* src, Py_ssize_t n, char* dst,
                                Py_ssize_t capacity) noexcept nogil:
        # Bounded by ``capacity``: a frame that holds more fails, allocating nothing.
        cdef size_t written = _decompress_dctx(self.dctx, dst, <size_t>capacity, src, <size_t>n)
        return -1 if _is_error(written) else <Py_ssize_t>written

    def compress_into(self, data, out):
        """Compress ``data`` into one frame in the writable buffer ``out`` (at
        least ``bound(len(data))`` bytes); the frame's size."""
        return _into(_compress2, self.cctx, data, out)

    def decompress_into(self, data, out):
        """Decompress the frames in ``data`` into the writable buffer ``out``;
        the number of bytes written. ``ZstdError`` if ``data`` is not whole
        zstd frames or they hold more than ``len(out)`` bytes."""
        return _into(_decompress_dctx, self.dctx, data, out)


cdef size_t _into(zs_transform_t transform, void* ctx, data, out) except? 0:
    # ``transform(ctx, out, data)`` between the two buffers, without the GIL.
    cdef Py_buffer src, dst
    cdef size_t written
    PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(out, &dst, PyBUF_SIMPLE | PyBUF_WRITABLE)
        try:
            with nogil:
                written = transform(ctx, dst.buf, <size_t>dst.len, src.buf, <size_t>src.len)
        finally:
            PyBuffer_Release(&dst)
    finally:
        PyBuffer_Release(&src)
    _check(written)
    return written


cdef int _check(size_t code) except -1:
    if _is_error(code):
        raise ZstdError(_error_name(code).decode())
    return 0
