"""Compiled kernels (Cython). They import only libc/cpython (and, in ``vlen``,
NumPy's C API for StringDType elements), never zarrsync."""
