"""NumPy arrays whose data starts on a cache line (a huge page when large),
for large read outputs.

A read copies each chunk into its output array in runs (a 64^3 float32
chunk of a 256^3 array is 4096 runs of 256 bytes). For a large output those
runs may be written with non-temporal stores (``copy.pyx``), which pays only
when every run covers whole 64-byte lines: a partly streamed line costs a
read-modify-write in memory, and NumPy's large arrays start 16 bytes past a
page. ``empty`` allocates through a NumPy memory handler (NEP 49) that
aligns the data to 64 bytes; the array is an ordinary array that owns its
data, and NumPy frees it through the same handler. Nothing is kept after
an array is freed.
"""

import numpy

from cpython.pycapsule cimport PyCapsule_New

from zarrsync._kernels.common cimport advise_hugepages  # emits zs_advise_hugepages, used below

cdef extern from "numpy/arrayobject.h":
    int _import_array() except -1
    object PyDataMem_SetHandler(object handler)

cdef extern from *:
    """
    #include <stdint.h>
    #include <stdlib.h>
    #include <string.h>
    #include <numpy/ndarraytypes.h>

    #define ZS_ALIGN 64
    /* Before the aligned data: the size in use, then the pointer malloc gave. */
    #define ZS_HEADER (sizeof(size_t) + sizeof(void*))
    #define ZS_SIZE_AT(p) ((char*)(p) - ZS_HEADER)
    #define ZS_RAW_AT(p) ((char*)(p) - sizeof(void*))

    /* Large blocks start on a 2 MiB boundary, so that transparent huge pages
       cover all of them: a block malloc maps afresh starts just past a 4 KiB
       page, and the 2 MiB stretches at either end would fault in 4 KiB pages. */
    #define ZS_HUGE_ALIGN ((size_t)1 << 21)
    #define ZS_HUGE_MIN ((size_t)1 << 22)
    static size_t zs_alignment(size_t size) {
        return size >= ZS_HUGE_MIN ? ZS_HUGE_ALIGN : ZS_ALIGN;
    }

    static void* zs_place(char* raw, size_t size) {
        char* p;
        size_t align = zs_alignment(size);
        if (raw == NULL) return NULL;
        p = (char*)(((uintptr_t)raw + ZS_HEADER + align - 1) & ~(uintptr_t)(align - 1));
        memcpy(ZS_RAW_AT(p), &raw, sizeof(void*));
        memcpy(ZS_SIZE_AT(p), &size, sizeof size);
        /* As NumPy's own allocator does. */
        zs_advise_hugepages(p, size);
        return p;
    }

    static void zs_free(void* ctx, void* p, size_t size) {
        void* raw;
        if (p == NULL) return;
        memcpy(&raw, ZS_RAW_AT(p), sizeof(void*));
        free(raw);
    }

    static void* zs_malloc(void* ctx, size_t size) {
        if (size > SIZE_MAX - ZS_HEADER - ZS_HUGE_ALIGN) return NULL;
        return zs_place((char*)malloc(size + ZS_HEADER + zs_alignment(size)), size);
    }

    static void* zs_calloc(void* ctx, size_t nelem, size_t elsize) {
        size_t size;
        if (elsize && nelem > (SIZE_MAX - ZS_HEADER - ZS_HUGE_ALIGN) / elsize) return NULL;
        size = nelem * elsize;
        return zs_place((char*)calloc(1, size + ZS_HEADER + zs_alignment(size)), size);
    }

    static void* zs_realloc(void* ctx, void* p, size_t new_size) {
        size_t old_size;
        void* q;
        if (p == NULL) return zs_malloc(ctx, new_size);
        q = zs_malloc(ctx, new_size);
        if (q == NULL) return NULL;  /* p stays valid, as realloc's contract says */
        memcpy(&old_size, ZS_SIZE_AT(p), sizeof old_size);
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

_HANDLER = PyCapsule_New(zs_aligned_handler_address, "mem_handler", NULL)


def empty(shape, dtype):
    """``numpy.empty(shape, dtype)`` with the data aligned to ``ALIGNMENT`` bytes."""
    previous = PyDataMem_SetHandler(_HANDLER)
    try:
        return numpy.empty(shape, dtype)
    finally:
        PyDataMem_SetHandler(previous)
