"""N-dimensional copies between strided buffers, by per-axis byte offsets.

Compiled because every read and write moves each element of a chunk through
here; a Python or per-element NumPy loop would dominate small-chunk work.
Callers pass, per axis, the byte offsets of the elements to visit (so one
routine serves slices, integer lists, transposes and broadcasts) and
guarantee that every offset stays inside its buffer.
"""

from libc.string cimport memcpy
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release, PyBUF_STRIDES,
                             PyBUF_WRITABLE)

from zarrsync._kernels.common cimport word_t, MAX_NDIM


cdef extern from *:
    """
    #include <string.h>
    #if defined(__SSE2__) || defined(_M_X64)
    #include <emmintrin.h>
    /* memcpy with non-temporal stores: the destination lines are written
       without being read into the cache first (no read-for-ownership) and do
       not evict what the cache holds. */
    static void zs_stream_copy(char* dst, const char* src, size_t n) {
        /* Only whole cache lines are streamed: a partly streamed line costs
           a read-modify-write in memory (NumPy's large arrays start 16
           bytes into a page, so a row rarely starts on a line). */
        size_t head = (64 - ((size_t)dst & 63)) & 63, k;
        if (n < 64 + head) { memcpy(dst, src, n); return; }
        memcpy(dst, src, head);
        dst += head; src += head; n -= head;
        for (k = 0; k + 64 <= n; k += 64) {
            __m128i a = _mm_loadu_si128((const __m128i*)(src + k));
            __m128i b = _mm_loadu_si128((const __m128i*)(src + k + 16));
            __m128i c = _mm_loadu_si128((const __m128i*)(src + k + 32));
            __m128i d = _mm_loadu_si128((const __m128i*)(src + k + 48));
            _mm_stream_si128((__m128i*)(dst + k), a);
            _mm_stream_si128((__m128i*)(dst + k + 16), b);
            _mm_stream_si128((__m128i*)(dst + k + 32), c);
            _mm_stream_si128((__m128i*)(dst + k + 48), d);
        }
        memcpy(dst + k, src + k, n - k);
    }
    /* Streamed stores are weakly ordered: fence them before anyone else
       may read what was written. */
    static void zs_stream_fence(void) { _mm_sfence(); }
    #else
    static void zs_stream_copy(char* dst, const char* src, size_t n) { memcpy(dst, src, n); }
    static void zs_stream_fence(void) { }
    #endif
    """
    void zs_stream_copy(char* dst, const char* src, size_t n) noexcept nogil
    void zs_stream_fence() noexcept nogil

cdef enum:
    CACHE_LINE = 64


cdef int get_strided_buffer(object obj, Py_buffer* view, bint writable) except -1:
    """Acquire a strided buffer of ``obj`` (the caller releases it)."""
    cdef int flags = PyBUF_STRIDES
    if writable:
        flags |= PyBUF_WRITABLE
    PyObject_GetBuffer(obj, view, flags)
    if view.ndim > MAX_NDIM:
        PyBuffer_Release(view)
        raise ValueError(f"arrays of more than {MAX_NDIM} dimensions are not supported")
    return 0


cdef inline void _copy_run(const char* src, char* dst, const Py_ssize_t* so,
                           const Py_ssize_t* do, Py_ssize_t n, word_t* tag) noexcept nogil:
    # One innermost run, element by element, as whole words.
    cdef Py_ssize_t k
    for k in range(n):
        (<word_t*>(dst + do[k]))[0] = (<const word_t*>(src + so[k]))[0]


cdef inline bint _is_run(const Py_ssize_t* off, Py_ssize_t n, Py_ssize_t step) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(1, n):
        if off[k] - off[k - 1] != step:
            return False
    return True


cdef bint _whole_lines(const char* dst, int last, const Py_ssize_t* counts,
                      const Py_ssize_t** dst_off, Py_ssize_t run_bytes) noexcept nogil:
    # True if every contiguous run to write starts and ends on a cache line.
    cdef int d
    cdef Py_ssize_t k
    if (<uintptr_t>(dst + dst_off[last][0])) % CACHE_LINE or run_bytes % CACHE_LINE:
        return False
    for d in range(last):
        for k in range(counts[d]):
            if dst_off[d][k] % CACHE_LINE:
                return False
    return True


cdef int copy_nd(const char* src, char* dst, int ndim, const Py_ssize_t* counts,
                 const Py_ssize_t** src_off, const Py_ssize_t** dst_off,
                 Py_ssize_t itemsize, bint stream) noexcept nogil:
    """Copy the elements ``src[src_off[0][i0] + ... ]`` to ``dst[dst_off[0][i0] + ...]``.

    ``counts[d]`` is the number of offsets along axis ``d``. The innermost
    axis is moved with one ``memcpy`` when it is contiguous on both sides.
    ``stream``: write contiguous runs with non-temporal stores, for a
    destination too large to stay in cache: its lines are then not read
    before they are written. Ignored unless every run covers whole cache
    lines (see ``memory.pyx``).
    """
    cdef Py_ssize_t idx[MAX_NDIM]
    cdef Py_ssize_t sbase[MAX_NDIM + 1]
    cdef Py_ssize_t dbase[MAX_NDIM + 1]
    cdef int d, last
    cdef Py_ssize_t n, k
    cdef const Py_ssize_t* so
    cdef const Py_ssize_t* do
    cdef bint contiguous
    cdef uint8_t* t1 = NULL
    cdef uint16_t* t2 = NULL
    cdef uint32_t* t4 = NULL
    cdef uint64_t* t8 = NULL

    if ndim == 0:
        memcpy(dst, src, itemsize)
        return 0
    for d in range(ndim):
        if counts[d] == 0:
            return 0
    last = ndim - 1
    n = counts[last]
    so = src_off[last]
    do = dst_off[last]
    contiguous = _is_run(so, n, itemsize) and _is_run(do, n, itemsize)
    stream = stream and contiguous and _whole_lines(dst, last, counts, dst_off, n * itemsize)

    for d in range(last):
        idx[d] = 0
    sbase[0] = 0
    dbase[0] = 0
    d = 0
    while True:
        # Descend to the innermost axis, accumulating base offsets.
        while d < last:
            sbase[d + 1] = sbase[d] + src_off[d][idx[d]]
            dbase[d + 1] = dbase[d] + dst_off[d][idx[d]]
            d += 1
        if contiguous:
            if stream:
                zs_stream_copy(dst + dbase[last] + do[0], src + sbase[last] + so[0], n * itemsize)
            else:
                memcpy(dst + dbase[last] + do[0], src + sbase[last] + so[0], n * itemsize)
        elif itemsize == 1:
            _copy_run(src + sbase[last], dst + dbase[last], so, do, n, t1)
        elif itemsize == 2:
            _copy_run(src + sbase[last], dst + dbase[last], so, do, n, t2)
        elif itemsize == 4:
            _copy_run(src + sbase[last], dst + dbase[last], so, do, n, t4)
        elif itemsize == 8:
            _copy_run(src + sbase[last], dst + dbase[last], so, do, n, t8)
        else:
            for k in range(n):
                memcpy(dst + dbase[last] + do[k], src + sbase[last] + so[k], itemsize)
        # Odometer step over the outer axes.
        d = last - 1
        while d >= 0:
            idx[d] += 1
            if idx[d] < counts[d]:
                break
            idx[d] = 0
            d -= 1
        if d < 0:
            if stream:
                zs_stream_fence()
            return 0
