# Shared inline helpers for the zarrsync kernels.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

cdef extern from *:
    """
    #include <stdint.h>
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    /* Ask for transparent huge pages on a new buffer of 4 MiB or more, as
       NumPy's allocator does for arrays: filling it then takes a page fault
       per 2 MiB instead of per 4 KiB (where the kernel allows it). */
    static CYTHON_INLINE void zs_advise_hugepages(void* p, size_t size) {
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (size >= ((size_t)1 << 22)) {
            uintptr_t start = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
            uintptr_t end = ((uintptr_t)p + size) & ~(uintptr_t)4095;
            if (end > start) madvise((void*)start, end - start, MADV_HUGEPAGE);
        }
    #endif
    }
    """
    void advise_hugepages "zs_advise_hugepages"(void* p, size_t size) noexcept nogil

# One fused word type: byte-moving kernels dispatch on itemsize and move
# whole words, never per-dtype code.
ctypedef fused word_t:
    uint8_t
    uint16_t
    uint32_t
    uint64_t

# The deepest array any kernel accepts (NumPy's own limit is 64).
cdef enum:
    MAX_NDIM = 64

cdef inline Py_ssize_t ceildiv(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    # a >= 0, b > 0 (setup.py turns on cdivision: C truncation, not floor).
    return (a + b - 1) // b

cdef inline void store_le32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = v & 0xff
    p[1] = (v >> 8) & 0xff
    p[2] = (v >> 16) & 0xff
    p[3] = (v >> 24) & 0xff

cdef inline uint32_t load_le32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0]) | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)

cdef inline void store_le64(uint8_t* p, uint64_t v) noexcept nogil:
    cdef int i
    for i in range(8):
        p[i] = (v >> (8 * i)) & 0xff

cdef inline uint64_t load_le64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v |= (<uint64_t>p[i]) << (8 * i)
    return v
