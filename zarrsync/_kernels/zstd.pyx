"""zstd frames compressed by libzstd called from Cython, without the GIL.

``Context.compress`` makes one frame (``Zstd.encode``). For shards,
python-zstandard would return one new ``bytes`` per frame, and a shard
writer would then copy every frame again into the shard; here libzstd
compresses each inner chunk directly at its place in the shard being built,
with one context per thread, and the caller crosses into Python once per
group of chunks, not once per chunk. Frames record the source size
(``ZSTD_compress2``); they are those of ``zstandard.ZstdCompressor(level,
write_checksum=checksum).compress(chunk)`` except that zstd 1.5.7's block
pre-splitter is off (``Context``).

``DContext.decompress_into`` decompresses into a buffer the caller reuses.

libzstd is not linked at build time (no headers or library needed): ``load``
opens a shared library that exports the zstd API (imagecodecs' bundled
libzstd, python-zstandard's cffi backend module or a system libzstd) and
looks the few functions up;
``load_decoder`` may take decompression from another one. Without any,
``zarrsync`` keeps using python-zstandard.
"""

from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from cpython.buffer cimport (PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.object cimport PyObject
from cpython.pycapsule cimport PyCapsule_New

from zarrsync._kernels.common cimport advise_hugepages
from zarrsync._kernels.decoder cimport RAW_DECODER_CAPSULE, RawDecoder
from zarrsync._kernels.dynlib cimport open_symbols
from zarrsync._kernels.transform cimport bytes_all_equal

cdef extern from "Python.h":
    int _PyBytes_Resize(PyObject** bytes, Py_ssize_t newsize) except -1
    void Py_INCREF_raw "Py_INCREF"(PyObject*)
    void Py_DECREF_raw "Py_DECREF"(PyObject*)
    void Py_SET_SIZE(object, Py_ssize_t)

cdef extern from *:
    """
    typedef void* (*zs_create_cctx_t)(void);
    typedef size_t (*zs_free_cctx_t)(void*);
    typedef size_t (*zs_set_parameter_t)(void*, int, int);
    typedef size_t (*zs_compress2_t)(void*, void*, size_t, const void*, size_t);
    typedef size_t (*zs_compress_bound_t)(size_t);
    typedef unsigned (*zs_is_error_t)(size_t);
    typedef const char* (*zs_error_name_t)(size_t);
    typedef unsigned (*zs_version_number_t)(void);
    typedef void* (*zs_create_dctx_t)(void);
    typedef size_t (*zs_free_dctx_t)(void*);
    typedef size_t (*zs_decompress_dctx_t)(void*, void*, size_t, const void*, size_t);
    """
    ctypedef void* (*zs_create_cctx_t)() noexcept nogil
    ctypedef size_t (*zs_free_cctx_t)(void*) noexcept nogil
    ctypedef size_t (*zs_set_parameter_t)(void*, int, int) noexcept nogil
    ctypedef size_t (*zs_compress2_t)(void*, void*, size_t, const void*, size_t) noexcept nogil
    ctypedef size_t (*zs_compress_bound_t)(size_t) noexcept nogil
    ctypedef unsigned (*zs_is_error_t)(size_t) noexcept nogil
    ctypedef const char* (*zs_error_name_t)(size_t) noexcept nogil
    ctypedef unsigned (*zs_version_number_t)() noexcept nogil
    ctypedef void* (*zs_create_dctx_t)() noexcept nogil
    ctypedef size_t (*zs_free_dctx_t)(void*) noexcept nogil
    ctypedef size_t (*zs_decompress_dctx_t)(void*, void*, size_t, const void*,
                                            size_t) noexcept nogil

# ZSTD_cParameter values (zstd.h, stable API).
cdef enum:
    ZSTD_c_compressionLevel = 100
    ZSTD_c_contentSizeFlag = 200
    ZSTD_c_checksumFlag = 201
    # ZSTD_c_experimentalParam20 (zstd.h, 1.5.7 and later): 1 = no pre-splitting.
    ZSTD_c_blockSplitterLevel = 1017

#: The first libzstd with a block pre-splitter (``ZSTD_c_blockSplitterLevel``).
cdef unsigned PRESPLIT_VERSION = 10507

cdef uint64_t EMPTY = 0xFFFFFFFFFFFFFFFFULL

cdef zs_create_cctx_t _create_cctx = NULL
cdef zs_free_cctx_t _free_cctx = NULL
cdef zs_set_parameter_t _set_parameter = NULL
cdef zs_compress2_t _compress2 = NULL
cdef zs_compress_bound_t _compress_bound = NULL
cdef zs_is_error_t _is_error = NULL
cdef zs_error_name_t _error_name = NULL
cdef zs_create_dctx_t _create_dctx = NULL
cdef zs_free_dctx_t _free_dctx = NULL
cdef zs_decompress_dctx_t _decompress_dctx = NULL
cdef zs_is_error_t _dec_is_error = NULL
cdef zs_error_name_t _dec_error_name = NULL
#: ``ZSTD_versionNumber()`` of the library that decompresses (``load_decoder``).
cdef unsigned _decoder_version = 0

#: The loaded library's ``ZSTD_versionNumber()`` (e.g. 10507), 0 before ``load``.
cdef unsigned _version = 0


def load(path):
    """Use the zstd functions exported by the shared library at ``path``.

    Returns its ``ZSTD_versionNumber()``, or 0 (nothing changed) if it cannot
    be opened, lacks a function, or predates ``ZSTD_compress2`` (1.4.0).
    The first library that loads stays in use.
    """
    global _create_cctx, _free_cctx, _set_parameter, _compress2, _compress_bound
    global _is_error, _error_name, _version
    if _version:
        return _version
    cdef void* found[8]
    if not open_symbols(path, (b"ZSTD_createCCtx", b"ZSTD_freeCCtx", b"ZSTD_CCtx_setParameter",
                               b"ZSTD_compress2", b"ZSTD_compressBound", b"ZSTD_isError",
                               b"ZSTD_getErrorName", b"ZSTD_versionNumber"), found):
        return 0
    cdef unsigned version = (<zs_version_number_t>found[7])()
    # It decompresses too, unless another library was chosen for that first.
    if version < 10400 or not (_decoder_version or load_decoder(path)):
        return 0
    _create_cctx = <zs_create_cctx_t>found[0]
    _free_cctx = <zs_free_cctx_t>found[1]
    _set_parameter = <zs_set_parameter_t>found[2]
    _compress2 = <zs_compress2_t>found[3]
    _compress_bound = <zs_compress_bound_t>found[4]
    _is_error = <zs_is_error_t>found[5]
    _error_name = <zs_error_name_t>found[6]
    _version = version
    return version


def load_decoder(path, unsigned min_version=10400):
    """Decompress with the shared library at ``path`` (a system libzstd, say)
    from now on, the library ``load`` opened still compressing; returns its
    ``ZSTD_versionNumber()``, or 0 (nothing changed) if it cannot be opened,
    lacks a function or is older than ``min_version``. Contexts made before
    keep the library they were made with. Decoding does not depend on the
    library (a frame has one content), its speed does: Debian's libzstd
    1.5.4 decoded the W2 frames ~10% faster than python-zstandard's 1.5.7.
    """
    global _create_dctx, _free_dctx, _decompress_dctx, _decoder_version
    global _dec_is_error, _dec_error_name
    cdef void* found[6]
    if not open_symbols(path, (b"ZSTD_createDCtx", b"ZSTD_freeDCtx", b"ZSTD_decompressDCtx",
                               b"ZSTD_isError", b"ZSTD_getErrorName", b"ZSTD_versionNumber"),
                        found):
        return 0
    cdef unsigned version = (<zs_version_number_t>found[5])()
    if version < min_version:
        return 0
    _create_dctx = <zs_create_dctx_t>found[0]
    _free_dctx = <zs_free_dctx_t>found[1]
    _decompress_dctx = <zs_decompress_dctx_t>found[2]
    _dec_is_error = <zs_is_error_t>found[3]
    _dec_error_name = <zs_error_name_t>found[4]
    _decoder_version = version
    return version


def version():
    """``ZSTD_versionNumber()`` of the library in use, or 0 if none is loaded."""
    return _version


def decoder_version():
    """``ZSTD_versionNumber()`` of the library that decompresses, or 0."""
    return _decoder_version


cdef class Context:
    """One compression context (``ZSTD_CCtx``) at a level, for one thread at a time.

    zstd 1.5.7 added a pre-splitter that may cut a full 128 KiB block in
    smaller ones before compressing it; every block then pays for its own
    literal statistics and Huffman table. On chunks of smooth fields plus
    noise (``benchmarks/compare.py`` W2) it cost ~9% of level 1's
    compression time and made the frames slightly larger, so contexts turn
    it off unless ``presplit``: frames are then block for block those of
    zstd 1.4-1.5.6 at the same level. It never splits the first block, so
    chunks of up to 128 KiB get the same frames either way.
    """

    cdef void* cctx

    def __cinit__(self, int level, bint checksum, bint presplit=False):
        if not _version:
            raise RuntimeError("no zstd library is loaded")
        self.cctx = _create_cctx()
        if self.cctx == NULL:
            raise MemoryError()
        _check(_set_parameter(self.cctx, ZSTD_c_compressionLevel, level))
        _check(_set_parameter(self.cctx, ZSTD_c_checksumFlag, checksum))
        _check(_set_parameter(self.cctx, ZSTD_c_contentSizeFlag, 1))
        if _version >= PRESPLIT_VERSION and not presplit:
            _check(_set_parameter(self.cctx, ZSTD_c_blockSplitterLevel, 1))

    def __dealloc__(self):
        if self.cctx != NULL:
            _free_cctx(self.cctx)

    def compress(self, data):
        """One frame holding ``data``, as a new ``bytes``."""
        cdef Py_buffer view
        cdef size_t n, cap
        cdef char* dst
        cdef PyObject* raw
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            cap = _compress_bound(view.len)
            out = PyBytes_FromStringAndSize(NULL, cap)
            dst = PyBytes_AS_STRING(out)
            with nogil:
                n = _compress2(self.cctx, dst, cap, view.buf, view.len)
            _check(n)
        finally:
            PyBuffer_Release(&view)
        if cap - n <= cap // 8:
            # Keep the whole block: shrinking it costs more than the little it
            # frees. glibc serves a large block from a fresh mapping until it
            # has seen one of that size freed; a block cut to the frame's size
            # never is, so every new frame would land on new pages (measured:
            # ~230 page faults per 1 MiB chunk of W2, the write 15% slower).
            dst[n] = 0
            Py_SET_SIZE(out, n)
            return out
        raw = <PyObject*>out
        Py_INCREF_raw(raw)
        out = None  # now our reference is the only one
        return _resize_owned(raw, n)


ctypedef struct zs_dstate:
    void* dctx
    zs_decompress_dctx_t decompress
    zs_is_error_t is_error


cdef class DContext:
    """One decompression context (``ZSTD_DCtx``), for one thread at a time.

    It decompresses into a buffer the caller reuses, where python-zstandard
    returns a new ``bytes`` per frame: W8 (a strided read, all decompression)
    took ~8% less CPU.
    """

    # The context and the functions of the library that made it
    # (``load_decoder`` may change library), reachable without the GIL.
    cdef zs_dstate d
    cdef zs_free_dctx_t free_dctx
    cdef zs_error_name_t error_name
    cdef RawDecoder raw

    def __cinit__(self):
        if not _decoder_version:
            raise RuntimeError("no zstd library is loaded")
        self.free_dctx = _free_dctx
        self.d.decompress = _decompress_dctx
        self.d.is_error = _dec_is_error
        self.error_name = _dec_error_name
        self.d.dctx = _create_dctx()
        if self.d.dctx == NULL:
            raise MemoryError()
        self.raw.decode = _raw_decompress
        self.raw.state = &self.d

    def raw_decoder(self):
        """``decompress_into`` for ``ChunkPlan.gather_decoded_many``: a capsule
        of this context's ``RawDecoder`` (see ``decoder.pxd``), valid while
        this context lives."""
        return PyCapsule_New(&self.raw, RAW_DECODER_CAPSULE, NULL)

    def __dealloc__(self):
        if self.d.dctx != NULL:
            self.free_dctx(self.d.dctx)

    def decompress_into(self, data, out):
        """Decompress the frames in ``data`` into the writable buffer ``out``;
        the number of bytes written. ``ZstdFailed`` if they are not whole
        zstd frames or hold more than ``len(out)`` bytes."""
        cdef Py_buffer src, dst
        cdef size_t n
        PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
        try:
            PyObject_GetBuffer(out, &dst, PyBUF_SIMPLE | PyBUF_WRITABLE)
            try:
                with nogil:
                    n = self.d.decompress(self.d.dctx, dst.buf, dst.len, src.buf, src.len)
            finally:
                PyBuffer_Release(&dst)
        finally:
            PyBuffer_Release(&src)
        if self.d.is_error(n):
            raise ZstdFailed(self.error_name(n).decode())
        return n


cdef Py_ssize_t _raw_decompress(void* state, const void* src, size_t n, void* dst,
                                size_t capacity) noexcept nogil:
    # A DContext's RawDecoder: its decompress_into without the GIL; -1 for an
    # error, whose name decompress_into gives when the caller retries there.
    cdef zs_dstate* d = <zs_dstate*>state
    cdef size_t written = d.decompress(d.dctx, dst, capacity, src, n)
    if d.is_error(written):
        return -1
    return <Py_ssize_t>written


class ZstdFailed(Exception):
    """libzstd returned an error code (its name is the message)."""


cdef int _check(size_t code) except -1:
    if _is_error(code):
        raise ZstdFailed(_error_name(code).decode())
    return 0


cdef class ShardPiece:
    """Frames of some of a shard's inner chunks, laid out one after another in
    one buffer, with each one's position in the shard and size.

    ``lead`` and ``tail`` bytes are left free before and after the frames
    (the shard index), so a shard is finished in its own piece's buffer.
    (Compressing into a reused per-thread buffer and copying out the frames
    measured slower: the copy costs more than the fresh pages it saves.)
    """

    cdef object buf           # bytes; filled in place while only this object holds it
    cdef uint8_t* data
    cdef Py_ssize_t capacity
    cdef Py_ssize_t lead, tail, pos
    cdef readonly Py_ssize_t chunk_nbytes
    cdef readonly list positions
    cdef readonly list sizes

    def __init__(self, Py_ssize_t n_chunks, Py_ssize_t chunk_nbytes, Py_ssize_t lead=0,
                 Py_ssize_t tail=0, Py_ssize_t extra=0):
        if not _version:
            raise RuntimeError("no zstd library is loaded")
        self.chunk_nbytes = chunk_nbytes
        self.lead = lead
        self.tail = tail
        self.pos = lead
        # Room for ``n_chunks`` frames of the worst case, and ``extra`` bytes
        # of stored chunks (``add_stored``).
        self.capacity = (lead + n_chunks * <Py_ssize_t>_compress_bound(chunk_nbytes) + extra
                         + tail)
        self.buf = PyBytes_FromStringAndSize(NULL, self.capacity)
        self.data = <uint8_t*>PyBytes_AS_STRING(self.buf)
        advise_hugepages(self.data, self.capacity)
        self.positions = []
        self.sizes = []

    @property
    def nbytes(self):
        """Bytes of frames held."""
        return self.pos - self.lead

    def add(self, Context ctx, raw, positions, fill):
        """Compress the chunks in ``raw`` (``len(positions)`` chunks of
        ``chunk_nbytes`` each, in order) and append their frames; a chunk
        whose every element has the bits of ``fill`` is recorded as empty
        (size ``None``) instead."""
        cdef Py_buffer rv, fv
        cdef Py_ssize_t k, done = 0, count = len(positions), n = self.chunk_nbytes
        cdef Py_ssize_t item, room, pos = self.pos, end = self.capacity - self.tail
        cdef const uint8_t* src
        cdef uint8_t* dst = self.data
        cdef size_t code = 0
        cdef size_t* written
        PyObject_GetBuffer(raw, &rv, PyBUF_SIMPLE)
        try:
            PyObject_GetBuffer(fill, &fv, PyBUF_SIMPLE)
            try:
                item = fv.len
                if rv.len != count * n:
                    raise ValueError(f"raw holds {rv.len} bytes, {count} chunks {count * n}")
                if item <= 0 or n % item:
                    raise ValueError(f"a chunk of {n} bytes is not whole {item}-byte elements")
                room = end - pos
                if room < count * <Py_ssize_t>_compress_bound(n):
                    raise ValueError("the piece is full")
                written = <size_t*>malloc(max(count, 1) * sizeof(size_t))
                if written == NULL:
                    raise MemoryError()
                try:
                    # One GIL-free stretch for the whole group; 0 bytes: all fill.
                    with nogil:
                        while done < count:
                            src = <const uint8_t*>rv.buf + done * n
                            if bytes_all_equal(src, n // item, <const uint8_t*>fv.buf, item):
                                written[done] = 0
                            else:
                                code = _compress2(ctx.cctx, dst + pos, end - pos, src, n)
                                if _is_error(code):
                                    break
                                written[done] = code
                                pos += code
                            done += 1
                    for k in range(done):
                        self.positions.append(positions[k])
                        self.sizes.append(written[k] if written[k] else None)
                    self.pos = pos
                    if done < count:
                        _check(code)
                finally:
                    free(written)
            finally:
                PyBuffer_Release(&fv)
        finally:
            PyBuffer_Release(&rv)

    def add_stored(self, position, data):
        """Append an already encoded inner chunk (``None``: empty) as it is."""
        cdef Py_buffer view
        if data is None:
            self.positions.append(position)
            self.sizes.append(None)
            return
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if self.capacity - self.tail - self.pos < view.len:
                self._grow(view.len)
            memcpy(self.data + self.pos, view.buf, view.len)
            self.pos += view.len
        finally:
            PyBuffer_Release(&view)
        self.positions.append(position)
        self.sizes.append(view.len)

    cdef void _release(self):
        # The piece is used up: it no longer holds its buffer.
        self.buf = None
        self.data = NULL
        self.capacity = 0

    cdef int _grow(self, Py_ssize_t extra) except -1:
        cdef PyObject* raw = <PyObject*>self.buf
        Py_INCREF_raw(raw)
        self.buf = None  # now our reference is the only one
        self.buf = _resize_owned(raw, self.capacity + extra)
        self.data = <uint8_t*>PyBytes_AS_STRING(self.buf)
        self.capacity += extra
        return 0


cdef object _resize_owned(PyObject* raw, Py_ssize_t size):
    # ``raw``'s one reference is ours; _PyBytes_Resize needs it to be the only one.
    _PyBytes_Resize(&raw, size)
    result = <object>raw
    Py_DECREF_raw(raw)
    return result


def finish_shard(list pieces, Py_ssize_t n_inner, Py_ssize_t index_size, bint index_at_start,
                 encode_index):
    """The shard made of ``pieces``, or ``None`` if it holds no inner chunk.

    ``pieces[0]`` is the shard's own buffer, with room for the index (its
    ``lead`` or ``tail``); the frames of any further pieces (inner chunks
    other threads took from the end of the shard) are copied in after its
    own, in shard position order, so the frames of a shard written in
    position order stay in that order. ``encode_index(entries)`` gets the
    flat ``(offset, nbytes)`` uint64 array (``2 * n_inner`` values, empty
    entries ``2**64 - 1``) and returns the encoded index of ``index_size``
    bytes, which is written in before the unused end is cut off. Pieces are
    used up.
    """
    import numpy
    cdef ShardPiece owner = pieces[0]
    cdef ShardPiece piece
    cdef Py_ssize_t offset, total, moved_bytes = 0, size
    cdef Py_buffer iv
    cdef PyObject* raw
    if owner.lead != (index_size if index_at_start else 0) or owner.tail < (
            0 if index_at_start else index_size):
        raise ValueError("the piece has no room for the index")
    moved = []
    for piece in pieces[1:]:
        offset = piece.lead
        for p, nbytes in zip(piece.positions, piece.sizes):
            if nbytes is not None:
                moved.append((p, offset, nbytes, piece))
                offset += <Py_ssize_t>nbytes
                moved_bytes += <Py_ssize_t>nbytes
    if moved:
        moved.sort(key=_first)
        if owner.capacity - owner.tail - owner.pos < moved_bytes:
            owner._grow(moved_bytes)
        for p, offset, nbytes, piece in moved:
            size = nbytes
            memcpy(owner.data + owner.pos, piece.data + offset, size)
            owner.pos += size
            owner.positions.append(p)
            owner.sizes.append(nbytes)
        for piece in pieces[1:]:
            piece._release()
    entries_array = numpy.full(2 * n_inner, EMPTY, dtype=numpy.uint64)
    cdef uint64_t[::1] entries = entries_array
    cdef bint any_stored = False
    offset = owner.lead
    for p, nbytes in zip(owner.positions, owner.sizes):
        if nbytes is None:
            continue
        entries[2 * <Py_ssize_t>p] = offset
        entries[2 * <Py_ssize_t>p + 1] = <Py_ssize_t>nbytes
        offset += <Py_ssize_t>nbytes
        any_stored = True
    if not any_stored:
        return None
    total = offset if index_at_start else offset + index_size
    index = encode_index(entries_array)
    PyObject_GetBuffer(index, &iv, PyBUF_SIMPLE)
    try:
        if iv.len != index_size:
            raise ValueError(f"the encoded index has {iv.len} bytes, expected {index_size}")
        memcpy(owner.data + (0 if index_at_start else owner.pos), iv.buf, index_size)
    finally:
        PyBuffer_Release(&iv)
    raw = <PyObject*>owner.buf
    Py_INCREF_raw(raw)
    owner._release()  # now our reference is the only one
    return _resize_owned(raw, total)


def _first(item):
    return item[0]
