cdef int copy_nd(const char* src, char* dst, int ndim, const Py_ssize_t* counts,
                 const Py_ssize_t** src_off, const Py_ssize_t** dst_off,
                 Py_ssize_t itemsize, bint stream) noexcept nogil

cdef int get_strided_buffer(object obj, Py_buffer* view, bint writable) except -1
