"""New NumPy arrays whose data starts on a cache line.

A read copies each chunk into the output array in runs (a 64^3 float32
chunk of a 256^3 array is 4096 runs of 256 bytes). For a large output those
runs are written with non-temporal stores (``copy.pyx``), which pays only
when every run covers whole 64-byte lines: a partly streamed line costs a
read-modify-write in memory, and NumPy's large arrays start 16 bytes past a
page boundary. ``empty`` allocates through a NumPy memory handler (NEP 49)
that aligns the data to 64 bytes; the array is an ordinary array that owns
its data (``flags.owndata``), and NumPy frees it through the same handler.
"""

import numpy

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
    /* Before the aligned data: the size asked for, then the pointer malloc gave. */
    #define ZS_HEADER (sizeof(size_t) + sizeof(void*))

    static void* zs_place(char* raw, size_t size) {
        char* p;
        if (raw == NULL) return NULL;
        p = (char*)(((uintptr_t)raw + ZS_HEADER + ZS_ALIGN - 1) & ~(uintptr_t)(ZS_ALIGN - 1));
        memcpy(p - sizeof(void*), &raw, sizeof(void*));
        memcpy(p - ZS_HEADER, &size, sizeof(size_t));
        /* As NumPy's own allocator does. */
        zs_advise_hugepages(p, size);
        return p;
    }

    static void* zs_raw(void* p) {
        void* raw;
        memcpy(&raw, (char*)p - sizeof(void*), sizeof(void*));
        return raw;
    }

    static void* zs_malloc(void* ctx, size_t size) {
        if (size > SIZE_MAX - ZS_HEADER - ZS_ALIGN) return NULL;
        return zs_place((char*)malloc(size + ZS_HEADER + ZS_ALIGN), size);
    }

    static void* zs_calloc(void* ctx, size_t nelem, size_t elsize) {
        size_t size;
        if (elsize && nelem > (SIZE_MAX - ZS_HEADER - ZS_ALIGN) / elsize) return NULL;
        size = nelem * elsize;
        return zs_place((char*)calloc(1, size + ZS_HEADER + ZS_ALIGN), size);
    }

    static void zs_free(void* ctx, void* p, size_t size) {
        if (p != NULL) free(zs_raw(p));
    }

    static void* zs_realloc(void* ctx, void* p, size_t new_size) {
        size_t old_size;
        void* q;
        if (p == NULL) return zs_malloc(ctx, new_size);
        q = zs_malloc(ctx, new_size);
        if (q == NULL) return NULL;  /* p stays valid, as realloc's contract says */
        memcpy(&old_size, (char*)p - ZS_HEADER, sizeof(size_t));
        memcpy(q, p, old_size < new_size ? old_size : new_size);
        zs_free(ctx, p, old_size);
        return q;
    }

    static PyDataMem_Handler zs_aligned_handler = {
        "zarrsync_cacheline_aligned", 1,
        {NULL, zs_malloc, zs_calloc, zs_realloc, zs_free}
    };
    """
    void* zs_aligned_handler_address "(&zs_aligned_handler)"

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
    """``numpy.empty(shape, dtype)`` with the data aligned to ``ALIGNMENT`` bytes."""
    previous = PyDataMem_SetHandler(_HANDLER)
    try:
        return numpy.empty(shape, dtype)
    finally:
        PyDataMem_SetHandler(previous)


def new_output(shape, dtype):
    """A new array for the result of a read: ``empty`` for ``STREAM_MIN_BYTES``
    and more, else ``numpy.empty``."""
    dtype = numpy.dtype(dtype)
    n = dtype.itemsize
    for extent in shape:
        n *= extent
    return empty(shape, dtype) if n >= STREAM_MIN_BYTES else numpy.empty(shape, dtype)
