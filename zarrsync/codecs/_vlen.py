"""The ``vlen-utf8`` and ``vlen-bytes`` codecs, and helpers for their data types.

https://github.com/zarr-developers/zarr-extensions/tree/main/codecs/vlen-utf8
https://github.com/zarr-developers/zarr-extensions/tree/main/codecs/vlen-bytes
A chunk is a u32 little-endian element count, then per element (C order) a
u32 little-endian byte count and the bytes: UTF-8 for the ``string`` data
type (NumPy ``StringDType`` arrays), raw bytes for ``bytes`` (object arrays
of ``bytes``). ``_kernels.vlen`` does the per-element work.

The elements of these arrays are references, not raw bytes, so the storage
layer copies them with NumPy indexing (``indexing.ElementPlan``), compares
them by value for the "all fill value" check (``all_fill``) and builds fill
chunks with ``new_filled``; the helpers below keep the fill value intact
(NumPy drops trailing NULs when it turns a ``str`` or ``bytes`` scalar into a
fixed-width array on the way).
"""

import numpy as np

from .._kernels import vlen as vlen_kernels
from ..errors import CodecError, InvalidDataType
from ._chain import ArrayToBytesCodec

__all__ = ["VlenUtf8", "VlenBytes", "STRING_DTYPE", "BYTES_DTYPE", "is_vlen",
           "fill_array", "new_filled", "all_fill", "coerce_vlen"]

#: NumPy's variable-width string type: the ``string`` data type in memory.
STRING_DTYPE = np.dtypes.StringDType()
#: Object arrays of ``bytes``: the ``bytes`` data type in memory.
BYTES_DTYPE = np.dtype(object)


def is_vlen(dtype):
    """True for the variable-length data types (``string`` and ``bytes``)."""
    return dtype.kind in "TO"


def fill_array(value, dtype):
    """A 0-d array of ``dtype`` holding exactly ``value``."""
    out = np.empty((), dtype=dtype)
    out[()] = value
    return out


def new_filled(shape, fill):
    """A new C-contiguous array of ``shape`` with every element ``fill`` (a 0-d array)."""
    out = np.empty(shape, dtype=fill.dtype)
    out[...] = fill
    return out


def all_fill(chunk, fill):
    """True if every element of ``chunk`` equals ``fill`` (a 0-d array of its dtype)."""
    if chunk.size == 0:
        return True
    value = fill[()]
    # Most chunks that hold data differ at their first element.
    if chunk.flat[0] != value:
        return False
    return bool((chunk == fill).all())


def coerce_vlen(x, dtype):
    """``x`` as an array of the vlen ``dtype``; ``InvalidDataType`` if it is not text
    (``string``) or ``bytes`` (``bytes``).

    ``string`` takes ``StringDType``, ``str_`` (``U``) and object arrays of
    ``str``, and ``str`` scalars and (nested) lists; ``bytes`` takes object
    arrays of ``bytes`` and ``bytes`` scalars and lists.
    """
    if dtype.kind == "T":
        if isinstance(x, np.ndarray) and x.dtype.kind in "TU":
            if hasattr(x.dtype, "na_object"):
                # A StringDType with missing values: cast would turn NA into text.
                missing = vlen_kernels.first_missing(np.ascontiguousarray(x).reshape(-1))
                if missing >= 0:
                    raise InvalidDataType(f"element {missing} of the data is missing "
                                          f"({x.dtype.na_object!r}); a string array holds "
                                          f"only strings")
            return x if x.dtype == STRING_DTYPE else x.astype(STRING_DTYPE)
        if isinstance(x, str):
            return fill_array(x, STRING_DTYPE)
        if isinstance(x, np.ndarray) and x.dtype.kind != "O":
            raise InvalidDataType(f"data of dtype {x.dtype} cannot be written to a "
                                  f"string array")
        try:
            # coerce=False: a non-str element raises rather than becoming str(obj).
            return np.asarray(x, dtype=np.dtypes.StringDType(coerce=False)).astype(
                STRING_DTYPE)
        except (ValueError, TypeError) as e:
            raise InvalidDataType(f"only str data can be written to a string array: "
                                  f"{e}") from None
    if isinstance(x, bytes):
        return fill_array(x, BYTES_DTYPE)
    if isinstance(x, np.ndarray) and x.dtype.kind != "O":
        raise InvalidDataType(f"data of dtype {x.dtype} cannot be written to a bytes "
                              f"array (use an object array of bytes)")
    if isinstance(x, (str, np.generic)):
        raise InvalidDataType(f"{type(x).__name__} data cannot be written to a bytes array")
    try:
        values = np.asarray(x, dtype=BYTES_DTYPE)
    except (ValueError, TypeError) as e:
        raise InvalidDataType(f"cannot write {type(x).__name__} data: {e}") from None
    flat = np.ascontiguousarray(values).reshape(-1)
    bad = vlen_kernels.first_not_bytes(flat)
    if bad >= 0:
        raise InvalidDataType(f"only bytes can be written to a bytes array, got "
                              f"{type(flat[bad]).__name__} {flat[bad]!r:.40}")
    return values


class _Vlen(ArrayToBytesCodec):
    """Shared configuration handling of the two vlen codecs."""

    dtype = None

    @classmethod
    def from_config(cls, configuration):
        if configuration:
            raise CodecError(f"{cls.name} takes no configuration, got {configuration!r}")
        return cls()

    def to_dict(self):
        return {"name": self.name, "configuration": {}}

    def evolve(self, dtype, chunk_shape, fill_value=None):
        if dtype != self.dtype:
            want = "string" if self.dtype.kind == "T" else "bytes"
            raise CodecError(f"the {self.name} codec encodes the {want} data type only, "
                             f"not {dtype}")
        return self

    def encoded_size(self, shape, dtype):
        return None


class VlenUtf8(_Vlen):
    """Serialise a ``string`` chunk (``StringDType``) as length-prefixed UTF-8."""

    name = "vlen-utf8"
    dtype = STRING_DTYPE

    def encode(self, array):
        array = np.asarray(array)
        if array.dtype != STRING_DTYPE:
            array = coerce_vlen(array, STRING_DTYPE)
        return vlen_kernels.encode_strings(np.ascontiguousarray(array).reshape(-1))

    def decode(self, data, shape, dtype):
        out = np.empty(int(np.prod(shape, dtype=np.int64)), dtype=STRING_DTYPE)
        try:
            vlen_kernels.decode_strings(data, out)
        except ValueError as e:
            raise CodecError(f"vlen-utf8: {e}") from None
        return out.reshape(shape)


class VlenBytes(_Vlen):
    """Serialise a ``bytes`` chunk (object array of ``bytes``) as length-prefixed bytes."""

    name = "vlen-bytes"
    dtype = BYTES_DTYPE

    def encode(self, array):
        flat = np.ascontiguousarray(array, dtype=BYTES_DTYPE).reshape(-1)
        try:
            return vlen_kernels.encode_bytes(flat)
        except TypeError as e:
            raise InvalidDataType(f"vlen-bytes: {e}") from None

    def decode(self, data, shape, dtype):
        out = np.empty(int(np.prod(shape, dtype=np.int64)), dtype=BYTES_DTYPE)
        try:
            vlen_kernels.decode_bytes(data, out)
        except ValueError as e:
            raise CodecError(f"vlen-bytes: {e}") from None
        return out.reshape(shape)
