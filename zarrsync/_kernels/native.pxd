# A bytes->bytes codec that kernels call without the GIL: one object per
# thread (its library context is not thread-safe), subclassed per library.
cdef class NativeCodec:
    # Bytes ``encode_into`` may write for ``n`` input bytes.
    cdef Py_ssize_t encode_bound(self, Py_ssize_t n) noexcept nogil
    # Encode or decode ``src[:n]`` into ``dst[:capacity]``: the number of
    # bytes written, or -1 for a failure (the Python path gives its reason).
    cdef Py_ssize_t encode_into(self, const char* src, Py_ssize_t n, char* dst,
                                Py_ssize_t capacity) noexcept nogil
    cdef Py_ssize_t decode_into(self, const char* src, Py_ssize_t n, char* dst,
                                Py_ssize_t capacity) noexcept nogil
