"""Memory for reads and writes that does not cost new pages: NumPy arrays
whose data starts on a cache line, and ``bytes`` objects filled again.

A read copies each chunk into the output array in runs (a 64^3 float32
chunk of a 256^3 array is 4096 runs of 256 bytes). For a large output those
runs are written with non-temporal stores (``copy.pyx``), which pays only
when every run covers whole 64-byte lines: a partly streamed line costs a
read-modify-write in memory, and NumPy's large arrays start 16 bytes past a
page boundary. ``empty`` allocates through a NumPy memory handler (NEP 49)
that aligns the data to 64 bytes; the array is an ordinary array that owns
its data (``flags.owndata``), and NumPy frees it through the same handler,
which keeps the last freed block of 4 MiB to 256 MiB for the next array of
nearly its size (``drop_kept_block`` frees it).

Writes of uncompressed chunks fill new ``bytes`` objects; ``replace_value``,
``reuse_later`` and ``new_bytes`` (at the end of this file) let a store
hand back a replaced chunk nothing else references, to be filled by the
next chunk of its size instead of freed.
"""

import numpy

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.object cimport PyObject

from zarrsync._kernels.common cimport advise_hugepages  # emits zs_advise_hugepages, used below

cdef extern from "numpy/arrayobject.h":
    int _import_array() except -1
    object PyDataMem_SetHandler(object handler)

cdef extern from "Python.h":
    object PyCapsule_New(void* pointer, const char* name, void* destructor)

cdef extern from *:
    """
    #include <stdint.h>
    #include <stdlib.h>
    #include <string.h>
    #include <numpy/ndarraytypes.h>

    #define ZS_ALIGN 64
    /* Before the aligned data: the size in use, the capacity, then the
       pointer malloc gave. */
    #define ZS_HEADER (2 * sizeof(size_t) + sizeof(void*))
    #define ZS_SIZE_AT(p) ((char*)(p) - ZS_HEADER)
    #define ZS_CAPACITY_AT(p) ((char*)(p) - ZS_HEADER + sizeof(size_t))
    #define ZS_RAW_AT(p) ((char*)(p) - sizeof(void*))

    static size_t zs_load(const char* at) { size_t v; memcpy(&v, at, sizeof v); return v; }
    static void zs_store(char* at, size_t v) { memcpy(at, &v, sizeof v); }

    static void* zs_place(char* raw, size_t size) {
        char* p;
        if (raw == NULL) return NULL;
        p = (char*)(((uintptr_t)raw + ZS_HEADER + ZS_ALIGN - 1) & ~(uintptr_t)(ZS_ALIGN - 1));
        memcpy(ZS_RAW_AT(p), &raw, sizeof(void*));
        zs_store(ZS_SIZE_AT(p), size);
        zs_store(ZS_CAPACITY_AT(p), size);
        /* As NumPy's own allocator does. */
        zs_advise_hugepages(p, size);
        return p;
    }

    static void zs_release(void* p) {
        void* raw;
        memcpy(&raw, ZS_RAW_AT(p), sizeof(void*));
        free(raw);
    }

    /* One freed block of 4 MiB .. 256 MiB is kept for the next allocation
       of nearly its size: a loop reading arrays of one shape then writes
       into pages the kernel already handed out, instead of having every
       new page zeroed and mapped on first touch (on this kind of machine,
       most of the time of reading an uncompressed array). A block that does
       not fit the next request is freed. */
    #define ZS_KEEP_MIN ((size_t)1 << 22)
    #define ZS_KEEP_MAX ((size_t)1 << 28)
    #if defined(__GNUC__) || defined(__clang__)
    static void* zs_kept = NULL;
    static void* zs_swap_kept(void* p) {
        return __atomic_exchange_n(&zs_kept, p, __ATOMIC_ACQ_REL);
    }
    #else
    static void* zs_swap_kept(void* p) { return p; }  /* no atomics: keep nothing */
    #endif

    static void* zs_take_kept(size_t size) {
        void* p;
        size_t capacity;
        if (size < ZS_KEEP_MIN || size > ZS_KEEP_MAX) return NULL;
        p = zs_swap_kept(NULL);
        if (p == NULL) return NULL;
        capacity = zs_load(ZS_CAPACITY_AT(p));
        if (size <= capacity && capacity - size <= capacity / 8) {
            zs_store(ZS_SIZE_AT(p), size);
            return p;
        }
        zs_release(p);
        return NULL;
    }

    static void zs_free(void* ctx, void* p, size_t size) {
        size_t capacity;
        if (p == NULL) return;
        capacity = zs_load(ZS_CAPACITY_AT(p));
        if (capacity >= ZS_KEEP_MIN && capacity <= ZS_KEEP_MAX) {
            p = zs_swap_kept(p);
            if (p == NULL) return;
        }
        zs_release(p);
    }

    static void* zs_malloc(void* ctx, size_t size) {
        void* p = zs_take_kept(size);
        if (p != NULL) return p;
        if (size > SIZE_MAX - ZS_HEADER - ZS_ALIGN) return NULL;
        return zs_place((char*)malloc(size + ZS_HEADER + ZS_ALIGN), size);
    }

    static void* zs_calloc(void* ctx, size_t nelem, size_t elsize) {
        size_t size;
        if (elsize && nelem > (SIZE_MAX - ZS_HEADER - ZS_ALIGN) / elsize) return NULL;
        size = nelem * elsize;
        return zs_place((char*)calloc(1, size + ZS_HEADER + ZS_ALIGN), size);
    }

    static void* zs_realloc(void* ctx, void* p, size_t new_size) {
        size_t old_size;
        void* q;
        if (p == NULL) return zs_malloc(ctx, new_size);
        q = zs_malloc(ctx, new_size);
        if (q == NULL) return NULL;  /* p stays valid, as realloc's contract says */
        old_size = zs_load(ZS_SIZE_AT(p));
        memcpy(q, p, old_size < new_size ? old_size : new_size);
        zs_free(ctx, p, old_size);
        return q;
    }

    /* The capacity of the kept block (0: none). */
    static size_t zs_kept_capacity(void) {
        void* p = zs_swap_kept(NULL);
        size_t capacity = p == NULL ? 0 : zs_load(ZS_CAPACITY_AT(p));
        void* other = p == NULL ? NULL : zs_swap_kept(p);
        if (other != NULL) zs_release(other);
        return capacity;
    }

    /* Free the kept block, if any. */
    static void zs_drop_kept(void) {
        void* p = zs_swap_kept(NULL);
        if (p != NULL) zs_release(p);
    }

    static PyDataMem_Handler zs_aligned_handler = {
        "zarrsync_cacheline_aligned", 1,
        {NULL, zs_malloc, zs_calloc, zs_realloc, zs_free}
    };
    """
    void* zs_aligned_handler_address "(&zs_aligned_handler)"
    void zs_drop_kept() noexcept nogil
    size_t zs_kept_capacity() noexcept nogil

_import_array()

#: The byte boundary ``empty`` aligns array data to.
ALIGNMENT = 64

#: Outputs of at least this many bytes are aligned by ``new_output`` and
#: written past the cache by the gathers of ``indexing.ChunkPlan``: larger
#: than the per-core caches, so unlikely to be read back from them; smaller
#: outputs are likelier to be used while still cached.
STREAM_MIN_BYTES = 1 << 22

_HANDLER = PyCapsule_New(zs_aligned_handler_address, "mem_handler", NULL)


def empty(shape, dtype):
    """``numpy.empty(shape, dtype)`` with the data aligned to ``ALIGNMENT`` bytes.

    When such an array of 4 MiB to 256 MiB is freed, its memory is kept for
    the next one of nearly its size (at most one block; ``drop_kept_block``
    frees it), so a loop of reads of one shape does not pay for new pages.
    """
    previous = PyDataMem_SetHandler(_HANDLER)
    try:
        return numpy.empty(shape, dtype)
    finally:
        PyDataMem_SetHandler(previous)


def drop_kept_block():
    """Free the block kept from the last freed large output (see ``empty``)."""
    zs_drop_kept()


def kept_bytes():
    """The size of the block kept for the next large output (0: none)."""
    return zs_kept_capacity()


def new_output(shape, dtype):
    """A new array for the result of a read: ``empty`` for ``STREAM_MIN_BYTES``
    and more, else ``numpy.empty``."""
    dtype = numpy.dtype(dtype)
    n = dtype.itemsize
    for extent in shape:
        n *= extent
    return empty(shape, dtype) if n >= STREAM_MIN_BYTES else numpy.empty(shape, dtype)


# -- bytes objects filled again instead of freed ------------------------------------
# A write of uncompressed chunks makes a new ``bytes`` per chunk, and the
# stored one it replaces is freed. glibc hands large freed blocks back to
# the kernel, so the next write's chunks land on new pages, each zeroed and
# mapped on first touch: on this kind of machine about a quarter of the CPU
# time of rewriting an uncompressed array. A replaced chunk that nothing
# else references is instead kept and filled again by the next new chunk of
# its size.

cdef extern from *:
    """
    /* A bytes object of exactly ``size`` bytes held by ``owners`` references
       only, whose hash was never computed (the cached hash, just before the
       data, would go stale when the data is filled again). Were that field
       ever dropped from the layout, the word before the data would be the
       size, never -1, and nothing would be reused. */
    static int zs_bytes_reusable(PyObject* o, Py_ssize_t size, Py_ssize_t owners) {
    #ifdef Py_GIL_DISABLED
        (void)o; (void)size; (void)owners;
        return 0;  /* reference counts alone do not prove sole ownership there */
    #else
        Py_hash_t hash;
        if (!PyBytes_CheckExact(o) || PyBytes_GET_SIZE(o) != size || Py_REFCNT(o) != owners)
            return 0;
        memcpy(&hash, PyBytes_AS_STRING(o) - sizeof(Py_hash_t), sizeof hash);
        return hash == -1;
    #endif
    }
    """
    bint zs_bytes_reusable(PyObject* o, Py_ssize_t size, Py_ssize_t owners) noexcept

cdef extern from "Python.h":
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL
    void Py_INCREF_raw "Py_INCREF"(PyObject*)
    void Py_DECREF_raw "Py_DECREF"(PyObject*)


def replace_value(dict data, key, value, Py_ssize_t reusable_size):
    """``data[key] = value``; returns the value it replaced if that was a
    ``bytes`` of ``reusable_size`` bytes referenced by ``data`` alone (so
    now by the caller alone: free to be filled again), else ``None``."""
    cdef PyObject* old = PyDict_GetItemWithError(data, key)
    if old == NULL or not zs_bytes_reusable(old, reusable_size, 1):
        data[key] = value
        return None
    Py_INCREF_raw(old)  # ours, before the dict lets go of its own
    try:
        data[key] = value
        result = <object>old
    finally:
        Py_DECREF_raw(old)
    return result


#: At most this many bytes of ``bytes`` objects are kept for reuse, all sizes together.
REUSE_MAX_BYTES = 1 << 24

cdef dict _reusable = {}   # size -> [bytes, ...]
cdef Py_ssize_t _reusable_total = 0


def reuse_later(obj):
    """Keep ``obj``, a ``bytes`` its caller alone holds (from ``replace_value``),
    for a later ``new_bytes`` of its size; beyond ``REUSE_MAX_BYTES`` it is
    dropped."""
    global _reusable_total
    if type(obj) is not bytes:
        return
    cdef Py_ssize_t size = len(obj)
    if _reusable_total + size > REUSE_MAX_BYTES:
        return
    _reusable.setdefault(size, []).append(obj)
    _reusable_total += size


def new_bytes(Py_ssize_t size):
    """A ``bytes`` of ``size`` bytes, with undefined contents, to be filled
    before anyone else sees it: a kept one (``reuse_later``) that nothing
    else references, else a new one."""
    global _reusable_total
    kept = _reusable.get(size)
    while kept:
        obj = kept.pop()
        _reusable_total -= size
        # The list's reference is now ``obj``'s; any other means it is shared.
        if zs_bytes_reusable(<PyObject*>obj, size, 1):
            return obj
    return PyBytes_FromStringAndSize(NULL, size)


def reusable_total():
    """Bytes held by ``bytes`` objects kept for reuse (``reuse_later``)."""
    return _reusable_total


def drop_reusable():
    """Free every ``bytes`` kept for reuse."""
    global _reusable_total
    _reusable.clear()
    _reusable_total = 0
