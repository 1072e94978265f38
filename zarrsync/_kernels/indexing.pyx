"""Selection-to-chunk intersection over a regular chunk grid, and the copies
between chunks and selections.

Compiled because a read or write must find, for every chunk it touches,
the chunk's coordinates and the matching regions inside the chunk and the
selection, and then move the elements between them; doing this per chunk
(or per element) in Python is what makes small-chunk workloads slow.

Model (after zarr-python's per-axis indexers): each axis is intersected
with the grid on its own, giving "groups" (one per chunk touched along the
axis); the chunks of a call are the Cartesian product of the groups, in C
order. Callers guarantee that selections are normalised and in bounds:
a slice as ``(start, step, count)`` with ``step >= 1`` and every element in
``[0, shape)``, or an int64 array of in-bounds indices.
"""

from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy
from libc.stdint cimport uint8_t, int64_t
from cpython.buffer cimport (PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize

from zarrsync._kernels.common cimport MAX_NDIM, ceildiv
from zarrsync._kernels.copy cimport copy_nd, get_strided_buffer
from zarrsync._kernels.native cimport NativeCodec

import numpy

# ``ChunkPlan.classify`` values.
cdef enum:
    CLASS_COVERED = 0  # the selection covers the whole chunk, which lies inside the array
    CLASS_EDGE = 1     # it covers every element of a chunk that reaches past the array
    CLASS_PARTIAL = 2  # it covers part of the chunk

COVERED = CLASS_COVERED
EDGE = CLASS_EDGE
PARTIAL = CLASS_PARTIAL


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

    def classify(self):
        """A uint8 array with each chunk's class, in plan order: ``COVERED``,
        ``EDGE`` or ``PARTIAL``."""
        cdef Py_ssize_t i
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef int d
        cdef bint complete
        out = numpy.empty(self.nchunks, dtype=numpy.uint8)
        cdef uint8_t[::1] view = out
        with nogil:
            for i in range(self.nchunks):
                self._groups_of(i, groups)
                complete = True
                for d in range(self.ndim):
                    if not self.g_complete[groups[d]]:
                        complete = False
                        break
                if not complete:
                    view[i] = CLASS_PARTIAL
                elif self._lies_inside(groups):
                    view[i] = CLASS_COVERED
                else:
                    view[i] = CLASS_EDGE
        return out

    def format_keys(self, str head, str separator):
        """``head`` followed by each chunk's coordinates joined by ``separator``,
        in plan order (the chunk key encoding decides ``head``)."""
        cdef Py_ssize_t i
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef int d
        keys = []
        for i in range(self.nchunks):
            self._groups_of(i, groups)
            keys.append(head + separator.join([str(self.g_chunk[groups[d]])
                                               for d in range(self.ndim)]))
        return keys

    cdef int _check(self, Py_ssize_t i) except -1:
        if i < 0 or i >= self.nchunks:
            raise IndexError(f"chunk {i} is not in a plan of {self.nchunks} chunks")
        return 0

    cdef bint _lies_inside(self, Py_ssize_t* groups) noexcept nogil:
        cdef int d
        for d in range(self.ndim):
            if (self.g_chunk[groups[d]] + 1) * self.chunk_shape[d] > self.shape[d]:
                return False
        return True

    cdef bint _covers(self, Py_ssize_t i) noexcept nogil:
        # The selection covers all of chunk i, which lies inside the array.
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef int d
        self._groups_of(i, groups)
        for d in range(self.ndim):
            if not self.g_complete[groups[d]]:
                return False
        return self._lies_inside(groups)

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

    cdef Py_ssize_t _contiguous_offset(self, Py_ssize_t i, Py_buffer* dv) noexcept nogil:
        # The byte offset in ``dv`` of chunk i's elements when they lie there
        # as one run in C order (the chunk covered by unit steps), else -1:
        # the chunk can then be decoded straight into its place.
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef Py_ssize_t expected = dv.itemsize, offset = 0, g
        cdef int d
        if not self._covers(i):
            return -1
        self._groups_of(i, groups)
        for d in range(self.ndim - 1, -1, -1):
            g = groups[d]
            if self.g_explicit[g] >= 0:
                return -1
            if self.chunk_shape[d] > 1:
                if dv.strides[d] != expected:
                    return -1
                expected *= self.chunk_shape[d]
            offset += self.g_out_first[g] * dv.strides[d]
        return offset

    def contiguous_offset(self, Py_ssize_t i, out):
        """The byte offset in ``out`` (selection shape) where chunk ``i``'s
        elements lie as one run in C order, so that the chunk can be decoded
        straight into them; -1 if they do not."""
        cdef Py_buffer dv
        self._check(i)
        get_strided_buffer(out, &dv, False)
        try:
            self._check_operand(&dv, False, "destination")
            return self._contiguous_offset(i, &dv)
        finally:
            PyBuffer_Release(&dv)

    cdef Py_ssize_t _offsets_needed(self, Py_ssize_t i) noexcept nogil:
        # Offsets _copy_with needs room for to move chunk i.
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef Py_ssize_t total = 0
        cdef int d
        self._groups_of(i, groups)
        for d in range(self.ndim):
            total += self.g_count[groups[d]]
        return 2 * total + 1

    cdef Py_ssize_t _most_offsets_needed(self, const int64_t[::1] indices) except -1:
        cdef Py_ssize_t k, need = 1
        for k in range(indices.shape[0]):
            self._check(indices[k])
            need = max(need, self._offsets_needed(indices[k]))
        return need

    cdef void _copy_with(self, Py_ssize_t i, Py_buffer* sv, Py_buffer* dv, bint src_is_chunk,
                         bint stream, Py_ssize_t* scratch) noexcept nogil:
        # Move chunk i's elements between two checked buffers, with room for
        # _offsets_needed(i) offsets in scratch.
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

    cdef int _copy(self, Py_ssize_t i, Py_buffer* sv, Py_buffer* dv,
                   bint src_is_chunk, bint stream) except -1:
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

    cdef int _move(self, Py_ssize_t i, object src, object dst, bint src_is_chunk,
                   bint stream) except -1:
        cdef Py_buffer sv, dv
        self._check(i)
        get_strided_buffer(src, &sv, False)
        try:
            get_strided_buffer(dst, &dv, True)
            try:
                self._check_operand(&sv, src_is_chunk, "source")
                self._check_operand(&dv, not src_is_chunk, "destination")
                self._copy(i, &sv, &dv, src_is_chunk, stream)
            finally:
                PyBuffer_Release(&dv)
        finally:
            PyBuffer_Release(&sv)
        return 0

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

    # -- chunk arrays --------------------------------------------------------------

    def gather(self, Py_ssize_t i, chunk, out, bint stream=False):
        """Copy chunk ``i``'s selected elements from ``chunk`` into ``out``.

        ``chunk`` has the chunk shape (any strides: a transposed or broadcast
        view is fine); ``out`` is writable with the selection shape.
        ``stream``: write with non-temporal stores where whole cache lines
        allow it (for an output too large to stay in the caches).
        """
        self._move(i, chunk, out, True, stream)

    def scatter(self, Py_ssize_t i, value, chunk):
        """Copy the elements of ``value`` (selection shape, any strides) that
        fall in chunk ``i`` into the writable ``chunk``."""
        self._move(i, value, chunk, False, False)

    # -- chunks as raw bytes (C order, native byte order) ---------------------------

    def gather_raw(self, Py_ssize_t i, data, out, bint stream=False):
        """``gather`` from ``data``: the chunk's elements as contiguous bytes
        in C order and native byte order (a decoded chunk, not copied first)."""
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
                self._copy(i, &sv, &dv, True, stream)
            finally:
                PyBuffer_Release(&raw)
        finally:
            PyBuffer_Release(&dv)

    def gather_many(self, const int64_t[::1] indices, list sources, out, NativeCodec codec,
                    scratch, bint stream=False):
        """``gather_raw`` of chunk ``indices[k]`` from ``sources[k]`` for every
        ``k``, in one call that holds the GIL only to set up: a thread doing
        many chunks does not hand the GIL back and forth once per chunk.

        Without ``codec`` each source is the chunk's raw bytes. With one, each
        is decoded by ``codec`` straight into ``out`` where the chunk lies
        there as one run (``contiguous_offset``), else into ``scratch`` (a
        writable buffer of at least one chunk's bytes) first. Returns -1 when every chunk is done,
        else the first ``k`` whose source was not exactly one chunk's bytes
        or did not decode to them: the chunks before it are in ``out``, those
        after it are not, and it may be, in part (when decoded in place).
        """
        cdef Py_buffer sv, dv, scr
        cdef Py_buffer* src = NULL
        cdef Py_ssize_t shape[MAX_NDIM]
        cdef Py_ssize_t strides[MAX_NDIM]
        cdef Py_ssize_t nbytes, k, count = indices.shape[0], acquired = 0
        cdef Py_ssize_t failed = -1, written, direct
        cdef Py_ssize_t* offsets = NULL
        cdef bint has_scratch = False
        if len(sources) != count:
            raise ValueError(f"{count} chunk indices but {len(sources)} sources")
        need = self._most_offsets_needed(indices)
        get_strided_buffer(out, &dv, True)
        try:
            self._check_operand(&dv, False, "destination")
            nbytes = self._c_order(&sv, dv.itemsize, shape, strides)
            if codec is not None:
                PyObject_GetBuffer(scratch, &scr, PyBUF_SIMPLE | PyBUF_WRITABLE)
                has_scratch = True
                if scr.len < nbytes:
                    raise ValueError(f"scratch holds {scr.len} bytes, a chunk {nbytes}")
            src = <Py_buffer*>malloc(max(count, 1) * sizeof(Py_buffer))
            offsets = <Py_ssize_t*>malloc(need * sizeof(Py_ssize_t))
            if offsets == NULL or src == NULL:
                raise MemoryError()
            for k in range(count):
                PyObject_GetBuffer(sources[k], &src[k], PyBUF_SIMPLE)
                acquired += 1
            with nogil:
                for k in range(count):
                    if codec is None:
                        if src[k].len != nbytes:
                            failed = k
                            break
                        sv.buf = src[k].buf
                    else:
                        direct = self._contiguous_offset(indices[k], &dv)
                        written = codec.decode_into(
                            <const char*>src[k].buf, src[k].len,
                            <char*>scr.buf if direct < 0 else <char*>dv.buf + direct, nbytes)
                        if written != nbytes:
                            failed = k
                            break
                        if direct >= 0:
                            continue
                        sv.buf = scr.buf
                    self._copy_with(indices[k], &sv, &dv, True, stream, offsets)
        finally:
            for k in range(acquired):
                PyBuffer_Release(&src[k])
            free(src)
            free(offsets)
            if has_scratch:
                PyBuffer_Release(&scr)
            PyBuffer_Release(&dv)
        return failed

    def scatter_many(self, const int64_t[::1] indices, value, dest, Py_ssize_t walk_chunks):
        """Chunk ``indices[k]`` as raw bytes, copied from ``value`` into bytes
        ``k * n .. (k + 1) * n`` of ``dest`` (``n``: one chunk's bytes), a
        writable buffer of ``len(indices) * n`` bytes. Every chunk must be
        ``COVERED`` (so every byte is written). ``walk_chunks``: see
        ``scatter_many_to_bytes``."""
        cdef Py_buffer sv, ov
        cdef Py_ssize_t nbytes, k, count = indices.shape[0]
        cdef char** targets = NULL
        get_strided_buffer(value, &sv, False)
        try:
            nbytes = self._covered_chunk_nbytes(indices, &sv)
            PyObject_GetBuffer(dest, &ov, PyBUF_SIMPLE | PyBUF_WRITABLE)
            try:
                if ov.len != nbytes * count:
                    raise ValueError(f"dest holds {ov.len} bytes, {count} chunks "
                                     f"{nbytes * count}")
                targets = <char**>malloc(max(count, 1) * sizeof(char*))
                if targets == NULL:
                    raise MemoryError()
                for k in range(count):
                    targets[k] = <char*>ov.buf + k * nbytes
                self._scatter_into(indices, &sv, targets, nbytes, walk_chunks)
            finally:
                free(targets)
                PyBuffer_Release(&ov)
        finally:
            PyBuffer_Release(&sv)

    def scatter_many_to_bytes(self, const int64_t[::1] indices, value, Py_ssize_t walk_chunks):
        """``scatter_many`` into a new ``bytes`` per chunk: a list of them.

        For chunks stored as their raw bytes, the copy is the whole write.
        Where ``value``'s rows are contiguous and each chunk is selected by
        step-1 slices, row ``r`` of up to ``walk_chunks`` chunks is copied,
        then row ``r + 1``: chunks side by side in ``value`` then read it in
        runs as long as they are wide together, instead of one chunk's short
        runs far apart.
        """
        cdef Py_buffer sv
        cdef Py_ssize_t nbytes, k, count = indices.shape[0]
        cdef char** targets = NULL
        get_strided_buffer(value, &sv, False)
        try:
            nbytes = self._covered_chunk_nbytes(indices, &sv)
            # New bytes objects that nobody else holds yet: filling them is safe.
            chunks = [PyBytes_FromStringAndSize(NULL, nbytes) for _ in range(count)]
            targets = <char**>malloc(max(count, 1) * sizeof(char*))
            if targets == NULL:
                raise MemoryError()
            for k in range(count):
                targets[k] = PyBytes_AS_STRING(chunks[k])
            self._scatter_into(indices, &sv, targets, nbytes, walk_chunks)
        finally:
            free(targets)
            PyBuffer_Release(&sv)
        return chunks

    cdef Py_ssize_t _covered_chunk_nbytes(self, const int64_t[::1] indices,
                                          Py_buffer* sv) except -1:
        # One chunk's bytes, after checking the value and that every chunk is covered.
        cdef Py_ssize_t k, nbytes = sv.itemsize
        cdef int d
        self._check_operand(sv, False, "source")
        for k in range(indices.shape[0]):
            self._check(indices[k])
            if not self._covers(indices[k]):
                raise ValueError(f"chunk {indices[k]} is not wholly covered by the selection")
        for d in range(self.ndim):
            nbytes *= self.chunk_shape[d]
        return nbytes

    cdef int _scatter_into(self, const int64_t[::1] indices, Py_buffer* sv, char** targets,
                           Py_ssize_t nbytes, Py_ssize_t walk_chunks) except -1:
        # Copy covered chunk indices[k] from the value into targets[k], for every k.
        cdef Py_buffer dv
        cdef Py_ssize_t shape[MAX_NDIM]
        cdef Py_ssize_t strides[MAX_NDIM]
        cdef Py_ssize_t k, count = indices.shape[0], need
        cdef Py_ssize_t* scratch
        if walk_chunks >= 1 and self._rows_walkable(indices, sv):
            scratch = <Py_ssize_t*>malloc(max(count, 1) * sizeof(Py_ssize_t))
            if scratch == NULL:
                raise MemoryError()
            with nogil:
                for k in range(count):
                    scratch[k] = self._origin_in_value(indices[k], sv)
                k = 0
                while k < count:
                    self._walk_rows(<const char*>sv.buf, scratch + k, sv, targets + k,
                                    min(walk_chunks, count - k))
                    k += walk_chunks
            free(scratch)
            return 0
        need = self._most_offsets_needed(indices)
        self._c_order(&dv, sv.itemsize, shape, strides)
        scratch = <Py_ssize_t*>malloc(need * sizeof(Py_ssize_t))
        if scratch == NULL:
            raise MemoryError()
        with nogil:  # once for all chunks: the GIL is not handed back and forth
            for k in range(count):
                dv.buf = targets[k]
                self._copy_with(indices[k], sv, &dv, False, False, scratch)
        free(scratch)
        return 0

    cdef bint _rows_walkable(self, const int64_t[::1] indices, Py_buffer* sv) noexcept:
        # True if the covered chunks ``indices`` can be copied row by row
        # across chunks (``_walk_rows``): rows contiguous in the value, and
        # every chunk selected by a slice of step 1 on every axis (an index
        # array may reorder or repeat a chunk's elements).
        cdef Py_ssize_t groups[MAX_NDIM]
        cdef Py_ssize_t k
        cdef int d
        if self.ndim == 0 or sv.strides[self.ndim - 1] != sv.itemsize:
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
                         char** targets, Py_ssize_t count) noexcept nogil:
        # Copy ``count`` whole chunks (first elements at ``origins`` in the
        # value) to ``targets`` in C order: row r of every chunk, then row r + 1.
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
                memcpy(targets[k] + d_row, src + origins[k] + s_row, run)
            d_row += run
            d = last - 1
            while d >= 0:
                idx[d] += 1
                if idx[d] < self.chunk_shape[d]:
                    break
                idx[d] = 0
                d -= 1

    # -- elements that are references (object, StringDType) -------------------------

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
