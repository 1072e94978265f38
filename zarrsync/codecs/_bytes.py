"""The ``bytes`` codec: array <-> bytes in little- or big-endian order.

https://zarr-specs.readthedocs.io/en/latest/v3/codecs/bytes/index.html
"""

import math
import sys

import numpy as np

from .._kernels import transform
from ..dtypes import low_complex_name
from ..errors import CodecError
from ._base import ArrayToBytesCodec

NATIVE_ENDIAN = sys.byteorder


def swap_unit(dtype):
    """The word size whose bytes an endian change reverses (complex: per part;
    fixed_length_utf32: per code point); 1 for types with no byte order
    (one-byte types, null_terminated_bytes, raw_bytes) and 0 for structs,
    whose fields NumPy swaps one by one (complex types of low-precision
    floats: per part, as complex)."""
    if low_complex_name(dtype):
        return dtype.itemsize // 2
    if dtype.fields is not None:
        return 0
    if dtype.kind in "SV" and dtype.type.__module__ == "numpy":
        return 1
    if dtype.kind == "U":
        return 4
    return dtype.itemsize // 2 if dtype.kind == "c" else dtype.itemsize


def _has_byte_order(dtype):
    if dtype.fields is not None and not low_complex_name(dtype):
        return any(_has_byte_order(dtype.fields[n][0]) for n in dtype.names)
    return swap_unit(dtype) > 1


class Bytes(ArrayToBytesCodec):
    """Serialise a chunk as its raw elements in C order.

    Parameters
    ----------
    endian : {"little", "big", None}
        Byte order on disk; ``None`` is allowed only for one-byte data types.
    """

    name = "bytes"

    def __init__(self, endian="little"):
        if endian not in ("little", "big", None):
            raise CodecError(f"bytes codec endian must be 'little' or 'big', got {endian!r}")
        self.endian = endian

    @classmethod
    def from_config(cls, configuration):
        configuration = dict(configuration or {})
        endian = configuration.pop("endian", None)
        if configuration:
            raise CodecError(f"unknown bytes codec configuration fields {sorted(configuration)}; "
                             f"expected only endian")
        return cls(endian)

    def to_dict(self):
        if self.endian is None:
            return {"name": "bytes"}
        return {"name": "bytes", "configuration": {"endian": self.endian}}

    def evolve(self, dtype, chunk_shape, fill_value=None):
        if dtype.kind in "TO":
            name = "string" if dtype.kind == "T" else "bytes"
            codec = "vlen-utf8" if dtype.kind == "T" else "vlen-bytes"
            raise CodecError(f"the bytes codec cannot encode the variable-length {name} "
                             f"data type; use {codec}")
        if dtype.fields is not None and not low_complex_name(dtype):
            # zarr-python 3.4 writes an endian for every struct, 3.1 none (read as little).
            return self
        if not _has_byte_order(dtype):
            # As zarr-python: one-byte, null_terminated_bytes and raw_bytes types
            # have no byte order to record.
            return self if self.endian is None else Bytes(None)
        if self.endian is None:
            raise CodecError(f"bytes codec needs an endian for data type {dtype.name}")
        return self

    def encoded_size(self, shape, dtype):
        return math.prod(shape) * dtype.itemsize

    def stores_raw(self, dtype):
        return not self.needs_swap(dtype)

    def needs_swap(self, dtype):
        """True if stored bytes of ``dtype`` differ from this machine's (byte order)."""
        endian = self.endian
        if endian is None and dtype.fields is not None and not low_complex_name(dtype):
            endian = "little"  # zarr-python 3.1 writes structs without an endian
        return endian is not None and endian != NATIVE_ENDIAN and _has_byte_order(dtype)

    def encode(self, array):
        if not array.dtype.isnative:  # work from this machine's byte order
            array = array.astype(array.dtype.newbyteorder("="))
        swap = self.needs_swap(array.dtype)
        if array.flags.c_contiguous and not swap:
            return memoryview(array.reshape(-1).view(np.uint8))
        if swap and not swap_unit(array.dtype):
            stored = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("S"))
            return memoryview(stored.reshape(-1).view(np.uint8))
        out = np.empty(array.shape, dtype=array.dtype)
        transform.copy_into(array, out, swap_unit(array.dtype) if swap else 1)
        return memoryview(out.reshape(-1).view(np.uint8))

    def decode(self, data, shape, dtype):
        expected = self.encoded_size(shape, dtype)
        if len(data) != expected:
            raise CodecError(f"bytes codec: expected {expected} bytes for shape "
                             f"{tuple(shape)} of {dtype.name}, got {len(data)}")
        if self.needs_swap(dtype) and not swap_unit(dtype):
            return np.frombuffer(data, dtype=dtype.newbyteorder("S")).astype(dtype).reshape(
                shape)
        if self.needs_swap(dtype):
            buf = np.frombuffer(data, dtype=np.uint8).copy()
            transform.byteswap(buf, swap_unit(dtype))
            return buf.view(dtype).reshape(shape)
        return np.frombuffer(data, dtype=dtype).reshape(shape)
