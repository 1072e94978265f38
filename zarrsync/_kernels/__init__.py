"""Compiled kernels (Cython). They import only libc/cpython, never zarrsync."""
