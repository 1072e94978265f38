from libc.stdint cimport uint8_t

cdef bint bytes_all_equal(const uint8_t* buf, Py_ssize_t n, const uint8_t* pattern,
                          Py_ssize_t size) noexcept nogil
