"""Selection-to-chunk intersection over a regular chunk grid.

Compiled because a read or write must find, for every chunk it touches,
the chunk's coordinates and the matching regions inside the chunk and the
output, and then move the elements between them; doing this per chunk (or
per element) in Python is what makes small-chunk workloads slow.

Model (after zarr-python's per-axis indexers): each axis is intersected
with the grid on its own, giving "groups" (one per chunk touched along the
axis); the chunks of a call are the Cartesian product of the groups, in C
order. Callers guarantee that selections are normalised and in bounds:
a slice as ``(start, step, count)`` with ``step >= 1`` and every element in
``[0, shape)``, or an int64 array of in-bounds indices.
"""

from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy, memset
from libc.stdint cimport uint8_t, int64_t
from cpython.buffer cimport (PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.pycapsule cimport PyCapsule_GetPointer

from zarrsync._kernels.common cimport MAX_NDIM, ceildiv
from zarrsync._kernels.decoder cimport RAW_DECODER_CAPSULE, RawDecoder
from zarrsync._kernels.copy cimport copy_nd, get_strided_buffer
from zarrsync._kernels.memory import STREAM_MIN_BYTES as _STREAM_MIN_BYTES

import numpy

# Gathers into an output of at least this many bytes stream their stores
# (see memory.new_output).
cdef Py_ssize_t STREAM_MIN_BYTES = _STREAM_MIN_BYTES
# ``scatter_many_to_bytes`` walks the rows of at most this many chunks at a
# time: enough for a row of small chunks, few enough that the rows it reads
# together stay close in the value.
cdef Py_ssize_t ROW_WALK_CHUNKS = 64

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* Streaming the rows of a chunk whose data does not start on a cache
       line. Each row is a whole number of lines long, so every row starts
       at the same offset m into a line: its first 64 - m bytes complete the
       line the previous row of the chunk ended in. The last m bytes of a row
       are held back (``zs_pending``) and streamed together with the start
       of the next row as one whole line, so every line but the chunk's
       first and last is written whole with non-temporal stores (a partly
       streamed line costs a read-modify-write in memory). */
    typedef struct { unsigned char bytes[64]; char* line; int held; } zs_pending;
    #if defined(__SSE2__) || defined(_M_X64)
    #include <emmintrin.h>
    #define ZS_CAN_STREAM_ROWS 1
    static inline void zs_pending_flush(zs_pending* p) {
        if (p->held) memcpy(p->line, p->bytes, (size_t)p->held);
        p->held = 0;
    }
    static inline void zs_stream_line(char* dst, const unsigned char* src) {
        __m128i a = _mm_loadu_si128((const __m128i*)src);
        __m128i b = _mm_loadu_si128((const __m128i*)(src + 16));
        __m128i c = _mm_loadu_si128((const __m128i*)(src + 32));
        __m128i d = _mm_loadu_si128((const __m128i*)(src + 48));
        _mm_stream_si128((__m128i*)dst, a);
        _mm_stream_si128((__m128i*)(dst + 16), b);
        _mm_stream_si128((__m128i*)(dst + 32), c);
        _mm_stream_si128((__m128i*)(dst + 48), d);
    }
    /* Under 64 bytes, for the two ends of each row: in 16-byte pieces when
       n is a whole number of them (bytes data is 16-byte aligned, so the
       offsets into a line are), inline rather than a call to memcpy. */
    static inline void zs_copy_short(void* dst, const void* src, size_t n) {
        size_t i;
        if (n & 15) {
            memcpy(dst, src, n);
            return;
        }
        for (i = 0; i < n; i += 16)
            _mm_storeu_si128((__m128i*)((char*)dst + i),
                             _mm_loadu_si128((const __m128i*)((const char*)src + i)));
    }
    /* Rows are streamed from the value in its own order, so the next ones
       follow in memory: asking for the value 2 KiB ahead of each row kept
       one thread's W1 write from waiting on its loads (56% of its samples):
       0.52 -> 0.69 of np.copyto's speed on one thread; 1024-8192 did alike.
       A prefetch past the value's end is only a hint, never a fault. */
    #ifndef ZS_PREFETCH
    #define ZS_PREFETCH 2048
    #endif
    /* n is a multiple of 64; every streamed line starts on a line boundary. */
    static inline void zs_stream_row(zs_pending* p, char* dst, const char* src, size_t n) {
        size_t m = (uintptr_t)dst & 63, k = 0, j;
        if (m) {
            char* line = dst - m;
            if (p->held == (int)m && p->line == line) {
                zs_copy_short(p->bytes + m, src, 64 - m);
                zs_stream_line(line, p->bytes);
                p->held = 0;
            } else {
                zs_pending_flush(p);
                zs_copy_short(dst, src, 64 - m);
            }
            k = 64 - m;
        } else {
            zs_pending_flush(p);
        }
        for (j = 0; j < n; j += 64) _mm_prefetch(src + j + ZS_PREFETCH, _MM_HINT_T0);
        for (; k + 64 <= n; k += 64) zs_stream_line(dst + k, (const unsigned char*)src + k);
        if (k < n) {
            p->line = dst + k;
            p->held = (int)(n - k);
            zs_copy_short(p->bytes, src + k, n - k);
        }
    }
    static inline void zs_rows_fence(void) { _mm_sfence(); }
    #else
    #define ZS_CAN_STREAM_ROWS 0
    static inline void zs_pending_flush(zs_pending* p) { (void)p; }
    static inline void zs_stream_row(zs_pending* p, char* dst, const char* src, size_t n) {
        (void)p; memcpy(dst, src, n);
    }
    static inline void zs_rows_fence(void) { }
    #endif
    """
    ctypedef struct zs_pending:
        int held
    bint ZS_CAN_STREAM_ROWS
    void zs_pending_flush(zs_pending* p) noexcept nogil
    void zs_stream_row(zs_pending* p, char* dst, const char* src, size_t n) noexcept nogil
    void zs_rows_fence() noexcept nogil


cdef class ChunkPlan:
    """Every chunk a selection touches, and how to move data to and from it.

    Parameters
    ----------
    shape, chunk_shape : sequence of int
        The array shape and the regular chunk shape (same rank).
    axes : sequence
        Per axis, a ``(start, step, count)`` tuple or a 1-D int64 array.

    The plan is immutable once built, so several threads may call
    ``gather``/``scatter`` on it at once (each call uses its own scratch).
    """
    cdef readonly int ndim
    cdef readonly Py_ssize_t nchunks
    cdef Py_ssize_t shape[MAX_NDIM]
    cdef Py_ssize_t chunk_shape[MAX_NDIM]
    cdef Py_ssize_t sel_shape[MAX_NDIM]
    cdef Py_ssize_t ngroups[MAX_NDIM]
    cdef Py_ssize_t grp_base[MAX_NDIM]
    # Per group (all axes concatenated):
    cdef Py_ssize_t* g_chunk
    cdef Py_ssize_t* g_count
    cdef Py_ssize_t* g_in_first
    cdef Py_ssize_t* g_in_step
    cdef Py_ssize_t* g_out_first
    cdef Py_ssize_t* g_explicit    # start into ex_in/ex_out, or -1 if arithmetic
    cdef uint8_t* g_complete
    # Explicit (integer-list) positions, sorted by chunk, all axes concatenated:
    cdef Py_ssize_t* ex_in
    cdef Py_ssize_t* ex_out
    cdef Py_ssize_t max_count       # largest group count on any axis (scratch sizing)

    def __cinit__(self):
        self.g_chunk = NULL
        self.ex_in = NULL

    def __dealloc__(self):
        free(self.g_chunk)
        free(self.ex_in)

    def __init__(self, shape, chunk_shape, axes):
        cdef int d, ndim = len(shape)
        cdef Py_ssize_t total_groups = 0, total_explicit = 0, bound, nch
        cdef Py_ssize_t[:] idx_view
        if ndim > MAX_NDIM:
            raise ValueError(f"rank {ndim} exceeds the supported {MAX_NDIM}")
        if len(chunk_shape) != ndim or len(axes) != ndim:
            raise ValueError("shape, chunk_shape and axes must have the same length")
        self.ndim = ndim
        for d in range(ndim):
            self.shape[d] = shape[d]
            self.chunk_shape[d] = chunk_shape[d]
            if self.chunk_shape[d] <= 0 or self.shape[d] < 0:
                raise ValueError("chunk sizes must be positive and shape non-negative")
        # Upper bounds on groups, to allocate once.
        for d in range(ndim):
            ax = axes[d]
            nch = ceildiv(self.shape[d], self.chunk_shape[d])
            if isinstance(ax, tuple):
                count = ax[2]
                self.sel_shape[d] = count
            else:
                count = len(ax)
                self.sel_shape[d] = count
                total_explicit += count
            bound = min(count, nch)
            self.grp_base[d] = total_groups
            total_groups += bound
        cdef Py_ssize_t G = total_groups + 1
        self.g_chunk = <Py_ssize_t*>malloc(6 * G * sizeof(Py_ssize_t) + G)
        self.ex_in = <Py_ssize_t*>malloc((2 * total_explicit + 1) * sizeof(Py_ssize_t))
        if self.g_chunk == NULL or self.ex_in == NULL:
            raise MemoryError()
        self.g_count = self.g_chunk + G
        self.g_in_first = self.g_chunk + 2 * G
        self.g_in_step = self.g_chunk + 3 * G
        self.g_out_first = self.g_chunk + 4 * G
        self.g_explicit = self.g_chunk + 5 * G
        self.g_complete = <uint8_t*>(self.g_chunk + 6 * G)
        self.ex_out = self.ex_in + total_explicit

        cdef Py_ssize_t ex_pos = 0
        self.max_count = 1
        self.nchunks = 1
        for d in range(ndim):
            ax = axes[d]
            if isinstance(ax, tuple):
                self.ngroups[d] = self._group_slice(d, ax[0], ax[1], ax[2])
            else:
                self.ngroups[d] = self._group_explicit(d, ax, ex_pos)
                ex_pos += len(ax)
            self.nchunks *= self.ngroups[d]

    cdef Py_ssize_t _group_slice(self, int d, Py_ssize_t start, Py_ssize_t step,
                                 Py_ssize_t count) except -1:
        cdef Py_ssize_t cl = self.chunk_shape[d], j = 0, j1, x, c, valid, n
        cdef Py_ssize_t g = self.grp_base[d], ng = 0
        if step < 1:
            raise ValueError("slice step must be >= 1")
        if count > 0 and (start < 0 or start + (count - 1) * step >= self.shape[d]):
            raise ValueError("slice out of bounds")
        while j < count:
            x = start + j * step
            c = x // cl
            j1 = ceildiv((c + 1) * cl - start, step)
            if j1 > count:
                j1 = count
            n = j1 - j
            valid = min(cl, self.shape[d] - c * cl)
            self.g_chunk[g] = c
            self.g_count[g] = n
            self.g_in_first[g] = x - c * cl
            self.g_in_step[g] = step
            self.g_out_first[g] = j
            self.g_explicit[g] = -1
            self.g_complete[g] = (x - c * cl == 0 and n == valid and (step == 1 or n == 1))
            if n > self.max_count:
                self.max_count = n
            g += 1
            ng += 1
            j = j1
        return ng

    cdef Py_ssize_t _group_explicit(self, int d, object indices, Py_ssize_t ex_pos) except -1:
        cdef const int64_t[::1] idx = indices
        cdef Py_ssize_t m = idx.shape[0], k, c, cl = self.chunk_shape[d]
        cdef Py_ssize_t nch = ceildiv(self.shape[d], cl)
        cdef Py_ssize_t g = self.grp_base[d], ng = 0, start, valid, distinct, e
        cdef Py_ssize_t* counts = NULL
        cdef uint8_t* seen = NULL
        cdef Py_ssize_t* ex_in = self.ex_in + ex_pos
        cdef Py_ssize_t* ex_out = self.ex_out + ex_pos
        for k in range(m):
            if idx[k] < 0 or idx[k] >= self.shape[d]:
                raise ValueError("index out of bounds")
        if m == 0:
            return 0
        # Stable counting sort of positions by chunk: O(m + chunks on the axis).
        counts = <Py_ssize_t*>calloc(nch + 1, sizeof(Py_ssize_t))
        seen = <uint8_t*>calloc(cl, 1)
        if counts == NULL or seen == NULL:
            free(counts)
            free(seen)
            raise MemoryError()
        try:
            for k in range(m):
                counts[idx[k] // cl + 1] += 1
            for c in range(nch):
                counts[c + 1] += counts[c]
            for k in range(m):
                c = idx[k] // cl
                ex_in[counts[c]] = idx[k] - c * cl
                ex_out[counts[c]] = k
                counts[c] += 1
            # counts[c] is now the end of chunk c's run.
            start = 0
            for c in range(nch):
                if counts[c] == start:
                    continue
                valid = min(cl, self.shape[d] - c * cl)
                distinct = 0
                for e in range(start, counts[c]):
                    if not seen[ex_in[e]]:
                        seen[ex_in[e]] = 1
                        distinct += 1
                for e in range(start, counts[c]):
                    seen[ex_in[e]] = 0
                self.g_chunk[g] = c
                self.g_count[g] = counts[c] - start
                self.g_in_first[g] = 0
                self.g_in_step[g] = 0
                self.g_out_first[g] = 0
                self.g_explicit[g] = ex_pos + start
                self.g_complete[g] = distinct == valid
                if counts[c] - start > self.max_count:
                    self.max_count = counts[c] - start
                g += 1
                ng += 1
                start = counts[c]
        finally:
            free(counts)
            free(seen)
        return ng

    cdef inline void _groups_of(self, Py_ssize_t i, Py_ssize_t* groups) noexcept nogil:
        cdef int d
        for d in range(self.ndim - 1, -1, -1):
            groups[d] = self.grp_base[d] + i % self.ngroups[d]
            i //= self.ngroups[d]

    @property
    def selection_shape(self):
        """The full-rank shape of the selection (int-selected axes have length 1)."""
        return tuple(self.sel_shape[d] for d in range(self.ndim))

    def chunk_coords(self, Py_ssize_t i):
        """The grid coordinates of chunk ``i`` of the plan."""
        cdef Py_ssize_t groups[MAX_NDIM]
        self._check(i)
        self._groups_of(i, groups)
        return tuple(self.g_chunk[groups[d]] for d in range(self.ndim))

    def coords_into(self, int64_t[::1] out):
        """Write every chunk's coordinates into ``out`` (``nchunks * ndim`` values, C order)."""
        cdef Py_ssize_t i
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef int d
        if out.shape[0] != self.nchunks * self.ndim:
            raise ValueError(f"out must hold {self.nchunks * self.ndim} values, "
                             f"got {out.shape[0]}")
        with nogil:
            for i in range(self.nchunks):
                self._groups_of(i, groups)
                for d in range(self.ndim):
                    out[i * self.ndim + d] = self.g_chunk[groups[d]]

    def is_complete(self, Py_ssize_t i):
        """True if the selection covers every in-bounds element of chunk ``i``."""
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef int d
        self._check(i)
        self._groups_of(i, groups)
        for d in range(self.ndim):
            if not self.g_complete[groups[d]]:
                return False
        return True

    def complete_flags(self):
        """A list of ``is_complete(i)`` for every chunk, in plan order."""
        return [self.is_complete(i) for i in range(self.nchunks)]

    def chunk_keys(self, str prefix, str separator, bint v2):
        """Store keys of every chunk, in plan order.

        ``default`` encoding: ``prefix + "c" + sep + "1" + sep + "2"`` ("c"
        alone for rank 0); ``v2``: ``prefix + "1" + sep + "2"`` ("0" for rank 0).
        https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#chunk-key-encoding
        """
        cdef Py_ssize_t i
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef int d
        keys = []
        head = prefix if v2 else prefix + "c"
        if self.ndim == 0:
            return [prefix + ("0" if v2 else "c")] * self.nchunks
        for i in range(self.nchunks):
            self._groups_of(i, groups)
            parts = [str(self.g_chunk[groups[d]]) for d in range(self.ndim)]
            if v2:
                keys.append(head + separator.join(parts))
            else:
                keys.append(head + separator + separator.join(parts))
        return keys

    cdef int _check(self, Py_ssize_t i) except -1:
        if i < 0 or i >= self.nchunks:
            raise IndexError(f"chunk {i} is not in a plan of {self.nchunks} chunks")
        return 0

    cdef void _offsets(self, Py_ssize_t* groups, int d, bint chunk_side,
                       Py_ssize_t stride, Py_ssize_t* out) noexcept nogil:
        # Byte offsets along axis d of one group, on the chunk side (in-chunk
        # positions) or the selection side (output positions).
        cdef Py_ssize_t g = groups[d], k, n = self.g_count[g], e = self.g_explicit[g]
        if e >= 0:
            if chunk_side:
                for k in range(n):
                    out[k] = self.ex_in[e + k] * stride
            else:
                for k in range(n):
                    out[k] = self.ex_out[e + k] * stride
        elif chunk_side:
            for k in range(n):
                out[k] = (self.g_in_first[g] + k * self.g_in_step[g]) * stride
        else:
            for k in range(n):
                out[k] = (self.g_out_first[g] + k) * stride

    cdef int _move(self, Py_ssize_t i, object src, object dst, bint src_is_chunk) except -1:
        cdef Py_buffer sv, dv
        self._check(i)
        get_strided_buffer(src, &sv, False)
        try:
            get_strided_buffer(dst, &dv, True)
            try:
                self._check_operand(&sv, src_is_chunk, "source")
                self._check_operand(&dv, not src_is_chunk, "destination")
                self._copy(i, &sv, &dv, src_is_chunk,
                           src_is_chunk and dv.len >= STREAM_MIN_BYTES)
            finally:
                PyBuffer_Release(&dv)
        finally:
            PyBuffer_Release(&sv)
        return 0

    cdef int _copy(self, Py_ssize_t i, Py_buffer* sv, Py_buffer* dv,
                   bint src_is_chunk, bint stream) except -1:
        # Move chunk i's elements between two checked buffers, without the GIL.
        cdef Py_ssize_t* scratch
        if sv.itemsize != dv.itemsize:
            raise ValueError(f"itemsize mismatch: {sv.itemsize} vs {dv.itemsize}")
        scratch = <Py_ssize_t*>malloc(self._offsets_needed(i) * sizeof(Py_ssize_t))
        if scratch == NULL:
            raise MemoryError()
        with nogil:
            self._copy_with(i, sv, dv, src_is_chunk, stream, scratch)
        free(scratch)
        return 0

    cdef Py_ssize_t _offsets_needed(self, Py_ssize_t i) noexcept nogil:
        # Offsets _copy_with needs room for to move chunk i.
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef Py_ssize_t total = 0
        cdef int d
        self._groups_of(i, groups)
        for d in range(self.ndim):
            total += self.g_count[groups[d]]
        return 2 * total + 1

    cdef void _copy_with(self, Py_ssize_t i, Py_buffer* sv, Py_buffer* dv, bint src_is_chunk,
                         bint stream, Py_ssize_t* scratch) noexcept nogil:
        # _copy's work, with room for _offsets_needed(i) offsets in scratch.
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef Py_ssize_t counts[MAX_NDIM]
        cdef const Py_ssize_t* soff[MAX_NDIM]
        cdef const Py_ssize_t* doff[MAX_NDIM]
        cdef int d, ndim = self.ndim
        cdef Py_ssize_t pos = 0, total = 0
        self._groups_of(i, groups)
        for d in range(ndim):
            counts[d] = self.g_count[groups[d]]
            total += counts[d]
        for d in range(ndim):
            soff[d] = scratch + pos
            doff[d] = scratch + total + pos
            self._offsets(groups, d, src_is_chunk, sv.strides[d], scratch + pos)
            self._offsets(groups, d, not src_is_chunk, dv.strides[d], scratch + total + pos)
            pos += counts[d]
        copy_nd(<const char*>sv.buf, <char*>dv.buf, ndim, counts, soff, doff, sv.itemsize,
                stream)

    cdef bint _lies_inside(self, Py_ssize_t* groups) noexcept nogil:
        cdef int d
        for d in range(self.ndim):
            if (self.g_chunk[groups[d]] + 1) * self.chunk_shape[d] > self.shape[d]:
                return False
        return True

    def covers_inner_chunk(self, Py_ssize_t i):
        """True if the selection covers all of chunk ``i`` and the chunk lies
        wholly inside the array (no edge padding): every element is written."""
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef int d
        self._check(i)
        self._groups_of(i, groups)
        for d in range(self.ndim):
            if not self.g_complete[groups[d]]:
                return False
        return self._lies_inside(groups)

    def count_inner_covered(self):
        """How many chunks ``covers_inner_chunk`` holds for (without visiting each)."""
        cdef Py_ssize_t total = 1, n, g
        cdef int d
        for d in range(self.ndim):
            n = 0
            for g in range(self.grp_base[d], self.grp_base[d] + self.ngroups[d]):
                if _covers_chunk(self, d, g):
                    n += 1
            total *= n
        return total

    cdef Py_ssize_t _c_order(self, Py_buffer* chunk, Py_ssize_t itemsize, Py_ssize_t* shape,
                             Py_ssize_t* strides) noexcept nogil:
        # Describe in ``chunk`` (all but its ``buf``) one C-contiguous chunk of
        # ``itemsize``-byte elements, with room ``shape`` and ``strides``;
        # returns its size in bytes.
        cdef int d
        cdef Py_ssize_t nbytes = itemsize
        for d in range(self.ndim - 1, -1, -1):
            shape[d] = self.chunk_shape[d]
            strides[d] = nbytes
            nbytes *= self.chunk_shape[d]
        chunk.ndim = self.ndim
        chunk.itemsize = itemsize
        chunk.shape = shape
        chunk.strides = strides
        return nbytes

    def gather_raw(self, Py_ssize_t i, data, out):
        """Like ``gather``, from ``data``: the chunk's elements as contiguous
        bytes in C order and native byte order (a decoded chunk, not copied first)."""
        cdef Py_buffer sv, dv
        cdef Py_buffer raw
        cdef Py_ssize_t shape[MAX_NDIM]
        cdef Py_ssize_t strides[MAX_NDIM]
        cdef Py_ssize_t nbytes
        self._check(i)
        get_strided_buffer(out, &dv, True)
        try:
            self._check_operand(&dv, False, "destination")
            nbytes = self._c_order(&sv, dv.itemsize, shape, strides)
            PyObject_GetBuffer(data, &raw, PyBUF_SIMPLE)
            try:
                if raw.len != nbytes:
                    raise ValueError(f"a chunk holds {nbytes} bytes, got {raw.len}")
                sv.buf = raw.buf
                self._copy(i, &sv, &dv, True, dv.len >= STREAM_MIN_BYTES)
            finally:
                PyBuffer_Release(&raw)
        finally:
            PyBuffer_Release(&dv)

    def gather_decoded_many(self, const int64_t[::1] indices, list frames, Py_ssize_t start,
                            out, decoder, scratch):
        """``gather_raw`` of chunk ``indices[k]`` from ``frames[k]`` decoded, for
        every ``k`` from ``start`` on, in one call that holds the GIL only to
        set up: a thread decoding many chunks does not hand the GIL back and
        forth with the others once per chunk.

        ``decoder`` is an object with ``raw_decoder()`` (``decoder.pxd``);
        each chunk is decoded into ``scratch``, a writable buffer of at least
        one chunk's bytes, then copied into ``out``. Returns -1 when every
        chunk is done, else the first ``k`` the decoder refused or that did
        not decode to exactly one chunk's bytes: the chunks before it are in
        ``out``, it and those after it are not (the caller decodes it through
        Python, which names the error, and may call again from ``k + 1``).
        """
        cdef Py_buffer sv, dv, scr
        cdef Py_buffer* src = NULL
        cdef Py_ssize_t shape[MAX_NDIM]
        cdef Py_ssize_t strides[MAX_NDIM]
        cdef Py_ssize_t nbytes, k, count = indices.shape[0], need = 1, acquired = 0
        cdef Py_ssize_t failed = -1, written
        cdef Py_ssize_t* offsets = NULL
        cdef RawDecoder* dec
        cdef bint stream
        if len(frames) != count:
            raise ValueError(f"{count} chunk indices but {len(frames)} frames")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        capsule = decoder.raw_decoder()  # valid while ``decoder`` is referenced here
        dec = <RawDecoder*>PyCapsule_GetPointer(capsule, RAW_DECODER_CAPSULE)
        for k in range(start, count):
            self._check(indices[k])
            need = max(need, self._offsets_needed(indices[k]))
        get_strided_buffer(out, &dv, True)
        try:
            self._check_operand(&dv, False, "destination")
            nbytes = self._c_order(&sv, dv.itemsize, shape, strides)
            PyObject_GetBuffer(scratch, &scr, PyBUF_SIMPLE | PyBUF_WRITABLE)
            try:
                if scr.len < nbytes:
                    raise ValueError(f"scratch holds {scr.len} bytes, a chunk {nbytes}")
                if count > start:
                    src = <Py_buffer*>malloc((count - start) * sizeof(Py_buffer))
                offsets = <Py_ssize_t*>malloc(need * sizeof(Py_ssize_t))
                if offsets == NULL or (count > start and src == NULL):
                    raise MemoryError()
                for k in range(start, count):
                    PyObject_GetBuffer(frames[k], &src[acquired], PyBUF_SIMPLE)
                    acquired += 1
                sv.buf = scr.buf
                stream = dv.len >= STREAM_MIN_BYTES
                with nogil:
                    for k in range(start, count):
                        written = dec.decode(dec.state, src[k - start].buf,
                                             <size_t>src[k - start].len, scr.buf, <size_t>nbytes)
                        if written != nbytes:
                            failed = k
                            break
                        self._copy_with(indices[k], &sv, &dv, True, stream, offsets)
            finally:
                for k in range(acquired):
                    PyBuffer_Release(&src[k])
                free(src)
                free(offsets)
                PyBuffer_Release(&scr)
        finally:
            PyBuffer_Release(&dv)
        return failed

    def scatter_to_bytes(self, Py_ssize_t i, value, out=None):
        """Chunk ``i`` as bytes in C order and native byte order, copied from
        ``value`` (selection shape, any strides) in one pass.

        Into a new ``bytes`` (a chunk stored uncompressed: one copy, no chunk
        array), or into ``out``, a writable buffer of exactly the chunk's size
        that is returned (a scratch buffer reused for compressed chunks).
        Only for a chunk this selection covers that lies wholly inside the
        array, so every byte is written (``ValueError`` otherwise).
        """
        cdef Py_buffer sv, dv, ov
        cdef Py_ssize_t shape[MAX_NDIM]
        cdef Py_ssize_t strides[MAX_NDIM]
        cdef Py_ssize_t nbytes
        if not self.covers_inner_chunk(i):
            raise ValueError(f"chunk {i} is not wholly covered by the selection")
        get_strided_buffer(value, &sv, False)
        try:
            self._check_operand(&sv, False, "source")
            nbytes = self._c_order(&dv, sv.itemsize, shape, strides)
            if out is None:
                out = PyBytes_FromStringAndSize(NULL, nbytes)
                # A new bytes object nobody else holds yet: filling it in place is safe.
                dv.buf = PyBytes_AS_STRING(out)
                self._copy(i, &sv, &dv, False, False)
            else:
                PyObject_GetBuffer(out, &ov, PyBUF_SIMPLE | PyBUF_WRITABLE)
                try:
                    if ov.len != nbytes:
                        raise ValueError(f"out holds {ov.len} bytes, a chunk {nbytes}")
                    dv.buf = ov.buf
                    self._copy(i, &sv, &dv, False, False)
                finally:
                    PyBuffer_Release(&ov)
        finally:
            PyBuffer_Release(&sv)
        return out

    def covered_chunks(self, bint covered=True):
        """The plan indices ``i`` for which ``covers_inner_chunk(i) == covered``,
        in plan order, as an int64 array."""
        cdef Py_ssize_t i, n = 0
        cdef Py_ssize_t count = self.count_inner_covered()
        out = numpy.empty(count if covered else self.nchunks - count, dtype=numpy.int64)
        cdef int64_t[::1] view = out
        for i in range(self.nchunks):
            if self.covers_inner_chunk(i) == covered:
                view[n] = i
                n += 1
        return out

    def scatter_many_to_bytes(self, const int64_t[::1] indices, value, out):
        """``scatter_to_bytes`` for many chunks into one buffer: chunk
        ``indices[k]`` goes to bytes ``k * n .. (k + 1) * n`` of ``out``, a
        writable buffer of ``len(indices) * n`` bytes (``n``: one chunk's
        bytes). Every chunk must be one ``covers_inner_chunk`` holds for.
        One call for thousands of small chunks instead of one each."""
        cdef Py_buffer sv, dv, ov
        cdef Py_ssize_t shape[MAX_NDIM]
        cdef Py_ssize_t strides[MAX_NDIM]
        cdef Py_ssize_t nbytes, k, count = indices.shape[0], need = 1
        cdef Py_ssize_t* scratch
        cdef Py_ssize_t* origins
        for k in range(count):
            if not self.covers_inner_chunk(indices[k]):
                raise ValueError(f"chunk {indices[k]} is not wholly covered by the selection")
        get_strided_buffer(value, &sv, False)
        try:
            self._check_operand(&sv, False, "source")
            nbytes = self._c_order(&dv, sv.itemsize, shape, strides)
            PyObject_GetBuffer(out, &ov, PyBUF_SIMPLE | PyBUF_WRITABLE)
            try:
                if ov.len != nbytes * count:
                    raise ValueError(f"out holds {ov.len} bytes, {count} chunks "
                                     f"{nbytes * count}")
                if self._rows_walkable(indices, &sv):
                    origins = <Py_ssize_t*>malloc(count * sizeof(Py_ssize_t))
                    if origins == NULL:
                        raise MemoryError()
                    with nogil:
                        for k in range(count):
                            origins[k] = self._origin_in_value(indices[k], &sv)
                        k = 0
                        while k < count:
                            self._walk_rows(<const char*>sv.buf, origins + k, &sv,
                                            <char*>ov.buf + k * nbytes, nbytes,
                                            min(ROW_WALK_CHUNKS, count - k))
                            k += ROW_WALK_CHUNKS
                    free(origins)
                    return
                for k in range(count):
                    need = max(need, self._offsets_needed(indices[k]))
                scratch = <Py_ssize_t*>malloc(need * sizeof(Py_ssize_t))
                if scratch == NULL:
                    raise MemoryError()
                with nogil:  # once for all chunks: the GIL is not handed back and forth
                    for k in range(count):
                        dv.buf = <char*>ov.buf + k * nbytes
                        self._copy_with(indices[k], &sv, &dv, False, False, scratch)
                free(scratch)
            finally:
                PyBuffer_Release(&ov)
        finally:
            PyBuffer_Release(&sv)

    cdef bint _rows_walkable(self, const int64_t[::1] indices, Py_buffer* sv) noexcept:
        # True if the covered chunks ``indices`` can be copied row by row
        # across chunks (``_walk_rows``): rows contiguous in the value, and
        # every chunk selected by a slice of step 1 on every axis (an index
        # array may reorder a chunk's elements).
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef Py_ssize_t k
        cdef int d
        if sv.strides[self.ndim - 1] != sv.itemsize:
            return False
        for k in range(indices.shape[0]):
            self._groups_of(indices[k], groups)
            for d in range(self.ndim):
                if self.g_explicit[groups[d]] >= 0 or self.g_in_step[groups[d]] != 1:
                    return False
        return True

    cdef Py_ssize_t _origin_in_value(self, Py_ssize_t i, Py_buffer* sv) noexcept nogil:
        # Byte offset in the value of covered chunk i's first element.
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef Py_ssize_t origin = 0
        cdef int d
        self._groups_of(i, groups)
        for d in range(self.ndim):
            origin += self.g_out_first[groups[d]] * sv.strides[d]
        return origin

    cdef void _walk_rows(self, const char* src, const Py_ssize_t* origins, Py_buffer* sv,
                         char* dst, Py_ssize_t nbytes, Py_ssize_t count) noexcept nogil:
        # Copy ``count`` whole chunks (first elements at ``origins`` in the
        # value) into ``dst``, one after the other in C order: row r of every
        # chunk, then row r + 1. Chunks next to each other in the value then
        # read it in long runs, each line once, rather than one chunk's short
        # runs far apart per pass (W4's 32^3 inner chunks of a 256^3 array:
        # 128-byte runs at 1 KiB; their gather ran at half its speed from
        # the caches).
        cdef int d, last = self.ndim - 1
        cdef Py_ssize_t idx[MAX_NDIM]
        cdef Py_ssize_t run = self.chunk_shape[last] * sv.itemsize
        cdef Py_ssize_t rows = 1, r, k, s_row, d_row = 0
        for d in range(last):
            rows *= self.chunk_shape[d]
            idx[d] = 0
        for r in range(rows):
            s_row = 0
            for d in range(last):
                s_row += idx[d] * sv.strides[d]
            for k in range(count):
                memcpy(dst + k * nbytes + d_row, src + origins[k] + s_row, run)
            d_row += run
            d = last - 1
            while d >= 0:
                idx[d] += 1
                if idx[d] < self.chunk_shape[d]:
                    break
                idx[d] = 0
                d -= 1

    cdef int _check_operand(self, Py_buffer* v, bint is_chunk, str role) except -1:
        cdef int d
        if v.ndim != self.ndim:
            raise ValueError(f"{role} has rank {v.ndim}, the plan has rank {self.ndim}")
        for d in range(self.ndim):
            expected = self.chunk_shape[d] if is_chunk else self.sel_shape[d]
            if v.shape[d] != expected:
                raise ValueError(f"{role} has length {v.shape[d]} on axis {d}, "
                                 f"expected {expected}")
        return 0

    def element_index(self, Py_ssize_t i):
        """``(chunk_side, selection_side)``: chunk ``i``'s positions per axis.

        Each side holds one entry per axis: a ``slice``, or for an
        integer-list axis a ``bytearray`` of native ``Py_ssize_t`` positions
        (read it with ``numpy.frombuffer(b, numpy.intp)``). For arrays whose
        elements are not raw bytes (object, StringDType), which ``gather`` and
        ``scatter`` cannot move; the positions pair up in order.
        """
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef Py_ssize_t g, n, e, first, step
        cdef int d
        self._check(i)
        self._groups_of(i, groups)
        chunk_side, sel_side = [], []
        for d in range(self.ndim):
            g = groups[d]
            n = self.g_count[g]
            e = self.g_explicit[g]
            if e >= 0:
                chunk_side.append(bytearray((<char*>(self.ex_in + e))[:n * sizeof(Py_ssize_t)]))
                sel_side.append(bytearray((<char*>(self.ex_out + e))[:n * sizeof(Py_ssize_t)]))
            else:
                first = self.g_in_first[g]
                step = self.g_in_step[g]
                chunk_side.append(slice(first, first + (n - 1) * step + 1, step))
                sel_side.append(slice(self.g_out_first[g], self.g_out_first[g] + n))
        return tuple(chunk_side), tuple(sel_side)

    def gather(self, Py_ssize_t i, chunk, out):
        """Copy chunk ``i``'s selected elements from ``chunk`` into ``out``.

        ``chunk`` has the chunk shape (any strides: a transposed or broadcast
        view is fine); ``out`` is writable with the selection shape.
        """
        self._move(i, chunk, out, True)

    def scatter(self, Py_ssize_t i, value, chunk):
        """Copy the elements of ``value`` (selection shape, any strides) that
        fall in chunk ``i`` into the writable ``chunk``."""
        self._move(i, value, chunk, False)


cdef inline bint _covers_chunk(ChunkPlan plan, int d, Py_ssize_t g) noexcept:
    # Group g of axis d covers its whole chunk, which lies inside the array.
    return plan.g_complete[g] and (plan.g_chunk[g] + 1) * plan.chunk_shape[d] <= plan.shape[d]


cdef class CoveredScatter:
    """Every chunk a write covers, copied from the written value in the
    value's own order rather than chunk by chunk.

    For uncompressed chunks, where the copy is the whole cost of a write.
    Copying one chunk at a time reads its region of a C-ordered value as
    short strided runs (256 bytes out of every 1 KiB for 64^3 float32
    chunks of a 256^3 array); walking the value row after row instead
    reads it sequentially and writes a few chunks at a time (a C test of
    that pattern: ~10.5 vs ~7.8 GB/s on two cores).

    The covered chunks form a grid: per axis, the plan's groups that cover
    a whole chunk lying inside the array ("slots"). The copy works on
    boxes of that grid (``boxes``) so that at most one box of new chunks is
    held at a time, and ``copy`` splits one box's rows between threads.

    ``usable`` is false (use ``ChunkPlan.scatter_to_bytes`` instead) for a
    rank-0 plan, no covered chunk, a value whose innermost axis is not
    contiguous, an integer list on the innermost axis, or one that repeats
    an index of a covered chunk.
    """
    cdef ChunkPlan plan
    cdef Py_buffer src
    cdef bint has_src
    cdef readonly bint usable
    cdef readonly Py_ssize_t chunk_nbytes
    cdef int ndim
    cdef Py_ssize_t nslots[MAX_NDIM]
    # Per axis, per position (slot * chunk length + position in the chunk):
    # its byte offset in the value and in a chunk; and per slot its plan group.
    cdef Py_ssize_t* pos_src[MAX_NDIM]
    cdef Py_ssize_t* pos_dst[MAX_NDIM]
    cdef Py_ssize_t* slot_group[MAX_NDIM]
    cdef Py_ssize_t* scratch

    def __cinit__(self):
        self.has_src = False
        self.scratch = NULL

    def __dealloc__(self):
        free(self.scratch)
        if self.has_src:
            PyBuffer_Release(&self.src)

    def __init__(self, ChunkPlan plan, value):
        cdef int d, last
        cdef Py_ssize_t g, s, total = 0, used = 0, cl
        cdef Py_ssize_t cstride[MAX_NDIM]
        cdef Py_ssize_t groups[MAX_NDIM]
        self.plan = plan
        self.ndim = plan.ndim
        self.usable = False
        if plan.ndim == 0 or plan.count_inner_covered() == 0:
            return
        get_strided_buffer(value, &self.src, False)
        self.has_src = True
        plan._check_operand(&self.src, False, "source")
        last = plan.ndim - 1
        if self.src.strides[last] != self.src.itemsize and self.src.shape[last] > 1:
            return
        self.chunk_nbytes = self.src.itemsize
        for d in range(last, -1, -1):
            cstride[d] = self.chunk_nbytes
            self.chunk_nbytes *= plan.chunk_shape[d]
        for d in range(plan.ndim):
            self.nslots[d] = 0
            for g in range(plan.grp_base[d], plan.grp_base[d] + plan.ngroups[d]):
                if _covers_chunk(plan, d, g):
                    if d == last and plan.g_explicit[g] >= 0:
                        return  # runs must be contiguous in the chunk too
                    if plan.g_count[g] != plan.chunk_shape[d]:
                        return  # a repeated index: one position per element only
                    self.nslots[d] += 1
            total += self.nslots[d] * (2 * plan.chunk_shape[d] + 1)
        self.scratch = <Py_ssize_t*>malloc(total * sizeof(Py_ssize_t))
        if self.scratch == NULL:
            raise MemoryError()
        for d in range(plan.ndim):
            cl = plan.chunk_shape[d]
            self.pos_src[d] = self.scratch + used
            self.pos_dst[d] = self.scratch + used + self.nslots[d] * cl
            self.slot_group[d] = self.scratch + used + 2 * self.nslots[d] * cl
            used += self.nslots[d] * (2 * cl + 1)
            s = 0
            for g in range(plan.grp_base[d], plan.grp_base[d] + plan.ngroups[d]):
                if _covers_chunk(plan, d, g):
                    groups[d] = g
                    plan._offsets(groups, d, False, self.src.strides[d], self.pos_src[d] + s * cl)
                    plan._offsets(groups, d, True, cstride[d], self.pos_dst[d] + s * cl)
                    self.slot_group[d][s] = g
                    s += 1
        self.usable = True

    def boxes(self, Py_ssize_t max_bytes):
        """``[(lo0, hi0, lo1, hi1), ...]``: slot ranges on the first two axes
        (``lo1``/``hi1`` unused at rank 1) that together cover every covered
        chunk, each box holding at most ``max_bytes`` of chunks (or one row
        of chunks along the remaining axes, if that is more)."""
        cdef Py_ssize_t per, rest = 1, step, s0, s1
        cdef int d
        if not self.usable:
            raise ValueError("no covered chunks to copy this way")
        out = []
        if self.ndim == 1:
            step = max(1, max_bytes // self.chunk_nbytes)
            for s0 in range(0, self.nslots[0], step):
                out.append((s0, min(s0 + step, self.nslots[0]), 0, 1))
            return out
        for d in range(2, self.ndim):
            rest *= self.nslots[d]
        per = rest * self.chunk_nbytes
        step = max(1, max_bytes // per)
        for s0 in range(self.nslots[0]):
            for s1 in range(0, self.nslots[1], step):
                out.append((s0, s0 + 1, s1, min(s1 + step, self.nslots[1])))
        return out

    cdef Py_ssize_t _box_extents(self, tuple box, Py_ssize_t* lo, Py_ssize_t* ext) except -1:
        # Slot ranges of a box per axis; returns how many chunks it holds.
        cdef int d
        cdef Py_ssize_t n = 1
        lo0, hi0, lo1, hi1 = box
        for d in range(self.ndim):
            lo[d] = 0
            ext[d] = self.nslots[d]
        lo[0] = lo0
        ext[0] = hi0 - lo0
        if self.ndim > 1:
            lo[1] = lo1
            ext[1] = hi1 - lo1
        for d in range(self.ndim):
            if lo[d] < 0 or ext[d] < 1 or lo[d] + ext[d] > self.nslots[d]:
                raise ValueError(f"box {box} is not within the covered chunks")
            n *= ext[d]
        return n

    def box_chunks(self, tuple box):
        """The plan indices of the chunks in ``box``, in the order ``copy`` fills them."""
        cdef Py_ssize_t lo[MAX_NDIM]
        cdef Py_ssize_t ext[MAX_NDIM]
        cdef Py_ssize_t idx[MAX_NDIM]
        cdef Py_ssize_t n = self._box_extents(box, lo, ext), k, i, mult
        cdef int d
        out = numpy.empty(n, dtype=numpy.int64)
        cdef int64_t[::1] view = out
        for d in range(self.ndim):
            idx[d] = lo[d]
        for k in range(n):
            i = 0
            mult = 1
            for d in range(self.ndim - 1, -1, -1):
                i += (self.slot_group[d][idx[d]] - self.plan.grp_base[d]) * mult
                mult *= self.plan.ngroups[d]
            view[k] = i
            d = self.ndim - 1
            while d >= 0:
                idx[d] += 1
                if idx[d] < lo[d] + ext[d]:
                    break
                idx[d] = lo[d]
                d -= 1
        return out

    def new_chunks(self, tuple box, make=None):
        """Unfilled ``bytes`` for the chunks of ``box`` (for ``copy``): new
        ones, or ``make(chunk_nbytes)`` each (which must return a ``bytes``
        nobody else holds)."""
        cdef Py_ssize_t lo[MAX_NDIM]
        cdef Py_ssize_t ext[MAX_NDIM]
        cdef Py_ssize_t n = self._box_extents(box, lo, ext)
        if make is not None:
            return [make(self.chunk_nbytes) for _ in range(n)]
        return [PyBytes_FromStringAndSize(NULL, self.chunk_nbytes) for _ in range(n)]

    def copy(self, tuple box, list chunks, Py_ssize_t part=0, Py_ssize_t parts=1,
             bint stream=False):
        """Fill ``chunks`` (from ``new_chunks(box)``; nobody else may hold
        them yet) with their elements of the value: share ``part`` of
        ``parts`` (rows of the first axis), so threads can split a box.

        ``stream``: write with non-temporal stores where the rows allow it
        (a whole number of cache lines each, at rank 2 and more), for a box
        too large to be read back from the caches anyway. A cache line two
        parts share (where one part's rows end and the next one's begin) is
        written with ordinary stores.
        """
        cdef Py_ssize_t lo[MAX_NDIM]
        cdef Py_ssize_t ext[MAX_NDIM]
        cdef Py_ssize_t n = self._box_extents(box, lo, ext), k
        cdef char** targets
        if not 0 <= part < parts:
            raise ValueError(f"part {part} of {parts}")
        if len(chunks) != n:
            raise ValueError(f"box {box} holds {n} chunks, got {len(chunks)}")
        for chunk in chunks:
            if type(chunk) is not bytes or len(<bytes>chunk) != self.chunk_nbytes:
                raise ValueError(f"chunks must be bytes of {self.chunk_nbytes}")
        targets = <char**>malloc(n * sizeof(char*))
        if targets == NULL:
            raise MemoryError()
        cdef zs_pending* pending = NULL
        cdef Py_ssize_t run = self.plan.chunk_shape[self.ndim - 1] * self.src.itemsize
        stream = stream and ZS_CAN_STREAM_ROWS and self.ndim > 1 and run % 64 == 0
        for k in range(n):
            targets[k] = PyBytes_AS_STRING(chunks[k])
        if stream:
            pending = <zs_pending*>calloc(n, sizeof(zs_pending))
            if pending == NULL:
                free(targets)
                raise MemoryError()
        with nogil:
            self._walk(targets, lo, ext, part, parts, pending)
            if pending != NULL:
                for k in range(n):
                    zs_pending_flush(&pending[k])
                zs_rows_fence()
        free(pending)
        free(targets)

    cdef void _walk(self, char** targets, Py_ssize_t* lo, Py_ssize_t* ext,
                    Py_ssize_t part, Py_ssize_t parts, zs_pending* pending) noexcept nogil:
        # Visit the box's positions in C order of the value; one memcpy per
        # chunk-wide run of the innermost axis.
        cdef int d, last = self.ndim - 1
        cdef Py_ssize_t start[MAX_NDIM]
        cdef Py_ssize_t end[MAX_NDIM]
        cdef Py_ssize_t idx[MAX_NDIM]
        cdef Py_ssize_t mult[MAX_NDIM]
        cdef Py_ssize_t sbase[MAX_NDIM + 1]
        cdef Py_ssize_t dbase[MAX_NDIM + 1]
        cdef Py_ssize_t obase[MAX_NDIM + 1]
        cdef Py_ssize_t s, first, count, k, cl, run
        cdef const char* src = <const char*>self.src.buf
        for d in range(self.ndim):
            cl = self.plan.chunk_shape[d]
            start[d] = lo[d] * cl
            end[d] = (lo[d] + ext[d]) * cl
        # The share of this part: rows of axis 0, or slots at rank 1.
        if last == 0:
            first, count = lo[0], ext[0]
        else:
            first, count = start[0], end[0] - start[0]
        k = first + count * part // parts
        count = first + count * (part + 1) // parts
        first = k
        if count <= first:
            return
        start[0], end[0] = first, count
        mult[last] = 1
        for d in range(last - 1, -1, -1):
            mult[d] = mult[d + 1] * ext[d + 1]
        for d in range(self.ndim):
            idx[d] = start[d]
        cl = self.plan.chunk_shape[last]
        run = cl * self.src.itemsize
        sbase[0] = dbase[0] = obase[0] = 0
        d = 0
        while True:
            while d < last:
                k = idx[d]
                sbase[d + 1] = sbase[d] + self.pos_src[d][k]
                dbase[d + 1] = dbase[d] + self.pos_dst[d][k]
                obase[d + 1] = obase[d] + (k // self.plan.chunk_shape[d] - lo[d]) * mult[d]
                d += 1
            if last == 0:
                for s in range(start[0], end[0]):
                    memcpy(targets[s - lo[0]], src + self.pos_src[0][s * cl], run)
                return
            if pending != NULL:
                for s in range(lo[last], lo[last] + ext[last]):
                    k = obase[last] + s - lo[last]
                    zs_stream_row(&pending[k], targets[k] + dbase[last],
                                  src + sbase[last] + self.pos_src[last][s * cl], run)
            else:
                for s in range(lo[last], lo[last] + ext[last]):
                    memcpy(targets[obase[last] + s - lo[last]] + dbase[last],
                           src + sbase[last] + self.pos_src[last][s * cl], run)
            d = last - 1
            while d >= 0:
                idx[d] += 1
                if idx[d] < end[d]:
                    break
                idx[d] = start[d]
                d -= 1
            if d < 0:
                return
