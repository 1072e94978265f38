"""Element framing for the ``vlen-utf8`` and ``vlen-bytes`` codecs.

Compiled because a chunk of strings holds up to millions of elements, and
every one needs its length written or read and checked; a Python loop per
element is what makes zarr-python's string chunks slow.

Format (https://github.com/zarr-developers/zarr-extensions/tree/main/codecs/vlen-utf8,
the same for ``vlen-bytes``; numcodecs' VLenUTF8 layout): a u32 little-endian
element count, then for each element in C order a u32 little-endian byte
count followed by that many bytes (UTF-8 for strings).

Strings live in NumPy ``StringDType`` arrays (NEP 55), whose elements are
reachable only through NumPy's C API (``NpyString_load``/``NpyString_pack``);
this is the one kernel that includes NumPy's headers, and it never creates
a Python ``str``. Bytes live in object arrays of ``bytes``.

Callers guarantee: arrays are 1-D and C-contiguous, string arrays have a
``StringDType`` without an NA object, ``out`` arrays are freshly allocated
(``numpy.empty``). Kernels raise ``ValueError`` (bad frame, invalid UTF-8)
or ``TypeError`` (an element that is not ``bytes``); the codecs re-raise
them naming the chunk key.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport PyObject

from zarrsync._kernels.common cimport store_le32, load_le32

import numpy as np

cdef extern from "Python.h":
    bint PyBytes_Check(PyObject* o)

cdef extern from "numpy/arrayobject.h":
    ctypedef struct PyArrayObject:
        pass
    ctypedef struct PyArray_Descr:
        pass
    ctypedef struct PyArray_StringDTypeObject:
        pass
    ctypedef struct npy_string_allocator:
        pass
    ctypedef struct npy_packed_static_string:
        pass
    ctypedef struct npy_static_string:
        size_t size
        const char* buf

    char* PyArray_BYTES(PyArrayObject* arr)
    PyArray_Descr* PyArray_DESCR(PyArrayObject* arr)
    Py_ssize_t PyArray_ITEMSIZE(PyArrayObject* arr)
    int _import_array() except -1

    int NpyString_load(npy_string_allocator* allocator,
                       const npy_packed_static_string* packed,
                       npy_static_string* unpacked) noexcept nogil
    int NpyString_pack(npy_string_allocator* allocator, npy_packed_static_string* packed,
                       const char* buf, size_t size) noexcept nogil
    npy_string_allocator* NpyString_acquire_allocator(
        const PyArray_StringDTypeObject* descr) noexcept nogil
    void NpyString_release_allocator(npy_string_allocator* allocator) noexcept nogil

_import_array()

_STRING_DTYPE = np.dtypes.StringDType

cdef uint64_t MAX_LEN = 0xFFFFFFFFULL

# Error codes of the nogil loops (reported with the element number).
cdef enum:
    OK = 0
    E_HEADER = 1      # fewer than 4 bytes: no element count
    E_COUNT = 2       # element count differs from the chunk's
    E_LENGTH = 3      # an element's length prefix runs past the end
    E_PAYLOAD = 4     # an element's bytes run past the end
    E_TRAILING = 5    # bytes left after the last element
    E_UTF8 = 6        # invalid UTF-8
    E_NOMEM = 7
    E_TOO_LONG = 8    # an element of 2**32 bytes or more
    E_NA = 9          # a missing (NA) string


cdef inline bint _valid_utf8(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    # Strict UTF-8 as Python's decoder: no overlong forms, no surrogates,
    # nothing above U+10FFFF (https://www.rfc-editor.org/rfc/rfc3629#section-4).
    cdef Py_ssize_t i = 0
    cdef uint64_t w
    cdef uint8_t c, c1
    while i < n:
        if i + 8 <= n:
            memcpy(&w, s + i, 8)
            if (w & 0x8080808080808080ULL) == 0:
                i += 8
                continue
        c = s[i]
        if c < 0x80:
            i += 1
        elif c < 0xC2:
            return False
        elif c < 0xE0:
            if i + 1 >= n or (s[i + 1] & 0xC0) != 0x80:
                return False
            i += 2
        elif c < 0xF0:
            if i + 2 >= n:
                return False
            c1 = s[i + 1]
            if (c1 & 0xC0) != 0x80 or (s[i + 2] & 0xC0) != 0x80:
                return False
            if (c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 >= 0xA0):
                return False
            i += 3
        elif c < 0xF5:
            if i + 3 >= n:
                return False
            c1 = s[i + 1]
            if ((c1 & 0xC0) != 0x80 or (s[i + 2] & 0xC0) != 0x80
                    or (s[i + 3] & 0xC0) != 0x80):
                return False
            if (c == 0xF0 and c1 < 0x90) or (c == 0xF4 and c1 >= 0x90):
                return False
            i += 4
        else:
            return False
    return True


cdef int _walk(const uint8_t* p, Py_ssize_t size, Py_ssize_t count,
               npy_string_allocator* allocator, char* out, Py_ssize_t stride,
               Py_ssize_t* where) noexcept nogil:
    # Check the frame of ``count`` elements and, when ``out`` is not NULL,
    # pack each element (after checking its UTF-8) into ``out``.
    cdef Py_ssize_t pos = 4, i
    cdef uint64_t n
    if size < 4:
        return E_HEADER
    if load_le32(p) != <uint64_t>count:
        where[0] = load_le32(p)
        return E_COUNT
    for i in range(count):
        where[0] = i
        if size - pos < 4:
            return E_LENGTH
        n = load_le32(p + pos)
        pos += 4
        if n > <uint64_t>(size - pos):
            return E_PAYLOAD
        if out != NULL:
            if not _valid_utf8(p + pos, <Py_ssize_t>n):
                return E_UTF8
            if NpyString_pack(allocator, <npy_packed_static_string*>(out + i * stride),
                              <const char*>(p + pos), n) < 0:
                return E_NOMEM
        pos += n
    where[0] = size - pos
    if pos != size:
        return E_TRAILING
    return OK


cdef object _frame_error(int code, Py_ssize_t where, Py_ssize_t count, Py_ssize_t size):
    if code == E_HEADER:
        return ValueError(f"a vlen frame needs a 4-byte element count, got {size} bytes")
    if code == E_COUNT:
        return ValueError(f"the frame holds {where} elements, the chunk has {count}")
    if code == E_LENGTH:
        return ValueError(f"element {where}: its length prefix runs past the end of the "
                          f"{size}-byte frame")
    if code == E_PAYLOAD:
        return ValueError(f"element {where}: its length runs past the end of the "
                          f"{size}-byte frame")
    if code == E_TRAILING:
        return ValueError(f"{where} bytes follow the last of {count} elements")
    if code == E_UTF8:
        return ValueError(f"element {where} is not valid UTF-8")
    if code == E_NOMEM:
        return MemoryError()
    if code == E_TOO_LONG:
        return ValueError(f"element {where} has 2**32 bytes or more; the vlen format "
                          f"stores lengths as u32")
    if code == E_NA:
        return ValueError(f"element {where} is a missing (NA) string")
    return ValueError(f"vlen error {code}")


cdef int _check_strings(object arr) except -1:
    if not isinstance(arr.dtype, _STRING_DTYPE):
        raise TypeError(f"expected a StringDType array, got {arr.dtype}")
    if arr.ndim != 1 or not arr.flags.c_contiguous:
        raise ValueError("expected a 1-D C-contiguous array")
    return 0


cdef int _frame_strings(const PyArray_StringDTypeObject* descr, const char* data,
                        Py_ssize_t stride, Py_ssize_t count, uint8_t** frame,
                        Py_ssize_t* frame_size, Py_ssize_t* where) noexcept nogil:
    # One pass sizes the frame, one fills it, with the allocator held
    # throughout (so a concurrent writer cannot change a length in between).
    cdef npy_string_allocator* allocator = NpyString_acquire_allocator(descr)
    cdef npy_static_string s
    cdef Py_ssize_t i, total = 4
    cdef uint8_t* p
    cdef int r, code = OK
    for i in range(count):
        r = NpyString_load(allocator, <const npy_packed_static_string*>(data + i * stride), &s)
        if r != 0 or s.size > MAX_LEN:
            code = E_NA if r == 1 else (E_NOMEM if r != 0 else E_TOO_LONG)
            where[0] = i
            break
        total += 4 + <Py_ssize_t>s.size
    if code == OK:
        frame[0] = <uint8_t*>malloc(total)
        if frame[0] == NULL:
            code = E_NOMEM
    if code == OK:
        p = frame[0]
        store_le32(p, <uint32_t>count)
        p += 4
        for i in range(count):
            NpyString_load(allocator, <const npy_packed_static_string*>(data + i * stride), &s)
            store_le32(p, <uint32_t>s.size)
            if s.size:
                memcpy(p + 4, s.buf, s.size)
            p += 4 + s.size
        frame_size[0] = total
    NpyString_release_allocator(allocator)
    return code


def encode_strings(arr):
    """The vlen frame of the 1-D C-contiguous ``StringDType`` array ``arr`` (``bytes``)."""
    _check_strings(arr)
    cdef Py_ssize_t count = arr.shape[0], size = 0, where = 0
    cdef const char* data = PyArray_BYTES(<PyArrayObject*>arr)
    cdef Py_ssize_t stride = PyArray_ITEMSIZE(<PyArrayObject*>arr)
    cdef const PyArray_StringDTypeObject* descr = \
        <const PyArray_StringDTypeObject*>PyArray_DESCR(<PyArrayObject*>arr)
    cdef uint8_t* frame = NULL
    cdef int code
    if <uint64_t>count > MAX_LEN:
        raise ValueError(f"a chunk of {count} elements exceeds the u32 element count")
    with nogil:
        code = _frame_strings(descr, data, stride, count, &frame, &size, &where)
    try:
        if code != OK:
            raise _frame_error(code, where, count, 0)
        return PyBytes_FromStringAndSize(<char*>frame, size)
    finally:
        free(frame)


def decode_strings(const uint8_t[::1] frame, out):
    """Decode a vlen-utf8 ``frame`` into ``out``, a new 1-D ``StringDType`` array.

    Raises ``ValueError`` if the frame does not hold exactly ``len(out)``
    elements that end exactly at its end, or if an element is not valid UTF-8.
    """
    _check_strings(out)
    cdef Py_ssize_t count = out.shape[0], where = 0, size = frame.shape[0]
    cdef char* data = PyArray_BYTES(<PyArrayObject*>out)
    cdef Py_ssize_t stride = PyArray_ITEMSIZE(<PyArrayObject*>out)
    cdef const PyArray_StringDTypeObject* descr = \
        <const PyArray_StringDTypeObject*>PyArray_DESCR(<PyArrayObject*>out)
    cdef npy_string_allocator* allocator
    cdef const uint8_t* p = &frame[0] if size else NULL
    cdef int code
    with nogil:
        if size < 4:
            code = E_HEADER
        else:
            allocator = NpyString_acquire_allocator(descr)
            code = _walk(p, size, count, allocator, data, stride, &where)
            NpyString_release_allocator(allocator)
    if code != OK:
        raise _frame_error(code, where, count, size)


def encode_bytes(object[::1] arr):
    """The vlen frame of a 1-D object array of ``bytes`` (``bytes``).

    Raises ``TypeError`` naming the first element that is not ``bytes``.
    """
    cdef Py_ssize_t count = arr.shape[0], i, total = 4, n
    cdef object item
    cdef uint8_t* p
    cdef uint8_t* end
    if <uint64_t>count > MAX_LEN:
        raise ValueError(f"a chunk of {count} elements exceeds the u32 element count")
    for i in range(count):
        item = arr[i]
        if not PyBytes_Check(<PyObject*>item):
            raise TypeError(f"element {i} is {type(item).__name__}, not bytes")
        n = PyBytes_GET_SIZE(item)
        if <uint64_t>n > MAX_LEN:
            raise _frame_error(E_TOO_LONG, i, count, 0)
        total += 4 + n
    out = PyBytes_FromStringAndSize(NULL, total)
    p = <uint8_t*>PyBytes_AS_STRING(out)
    end = p + total
    store_le32(p, <uint32_t>count)
    p += 4
    for i in range(count):
        item = arr[i]
        # Elements are immutable bytes, but another thread could replace one
        # between the passes.
        if not PyBytes_Check(<PyObject*>item) or PyBytes_GET_SIZE(item) > end - p - 4:
            raise RuntimeError("the array changed while it was encoded")
        n = PyBytes_GET_SIZE(item)
        store_le32(p, <uint32_t>n)
        if n:
            memcpy(p + 4, PyBytes_AS_STRING(item), n)
        p += 4 + n
    if p != end:
        raise RuntimeError("the array changed while it was encoded")
    return out


def decode_bytes(const uint8_t[::1] frame, object[::1] out):
    """Decode a vlen-bytes ``frame`` into ``out``, a new 1-D object array.

    Raises ``ValueError`` if the frame does not hold exactly ``len(out)``
    elements that end exactly at its end.
    """
    cdef Py_ssize_t count = out.shape[0], where = 0, size = frame.shape[0], i, pos = 4
    cdef const uint8_t* p = &frame[0] if size else NULL
    cdef int code
    cdef uint32_t n
    # Check the whole frame first (no objects yet), then build the elements.
    with nogil:
        code = E_HEADER if size < 4 else _walk(p, size, count, NULL, NULL, 0, &where)
    if code != OK:
        raise _frame_error(code, where, count, size)
    for i in range(count):
        n = load_le32(p + pos)
        out[i] = PyBytes_FromStringAndSize(<const char*>(p + pos + 4), n)
        pos += 4 + n


def first_missing(arr):
    """The position of the first missing (NA) element of the 1-D C-contiguous
    ``StringDType`` array ``arr``, or -1 if there is none."""
    _check_strings(arr)
    cdef Py_ssize_t count = arr.shape[0], i, found = -1
    cdef char* data = PyArray_BYTES(<PyArrayObject*>arr)
    cdef Py_ssize_t stride = PyArray_ITEMSIZE(<PyArrayObject*>arr)
    cdef const PyArray_StringDTypeObject* descr = \
        <const PyArray_StringDTypeObject*>PyArray_DESCR(<PyArrayObject*>arr)
    cdef npy_string_allocator* allocator
    cdef npy_static_string s
    with nogil:
        allocator = NpyString_acquire_allocator(descr)
        for i in range(count):
            if NpyString_load(allocator, <const npy_packed_static_string*>(data + i * stride),
                              &s) != 0:
                found = i
                break
        NpyString_release_allocator(allocator)
    return found


def first_not_bytes(object[::1] arr):
    """The position of the first element of the 1-D object array ``arr`` that is
    not ``bytes``, or -1 if there is none."""
    cdef Py_ssize_t i
    cdef object item
    for i in range(arr.shape[0]):
        item = arr[i]
        if not PyBytes_Check(<PyObject*>item):
            return i
    return -1
