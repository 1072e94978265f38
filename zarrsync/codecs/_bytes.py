"""The ``bytes`` codec: array <-> bytes in little- or big-endian order.

https://zarr-specs.readthedocs.io/en/latest/v3/codecs/bytes/index.html
"""

import math
import sys

import numpy as np

from .._kernels import transform
from ..errors import CodecError
from ._base import ArrayToBytesCodec

NATIVE_ENDIAN = sys.byteorder


def swap_unit(dtype):
    """The word size whose bytes an endian change reverses (complex: per part)."""
    return dtype.itemsize // 2 if dtype.kind == "c" else dtype.itemsize


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
            raise CodecError(f"unknown bytes codec configuration: {sorted(configuration)}")
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
        if dtype.itemsize == 1:
            # As zarr-python: one-byte types have no byte order to record.
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
        return self.endian is not None and self.endian != NATIVE_ENDIAN and dtype.itemsize > 1

    def encode(self, array):
        if not array.dtype.isnative:  # work from this machine's byte order
            array = array.astype(array.dtype.newbyteorder("="))
        swap = self.needs_swap(array.dtype)
        if array.flags.c_contiguous and not swap:
            return memoryview(array.reshape(-1).view(np.uint8))
        out = np.empty(array.shape, dtype=array.dtype)
        transform.copy_into(array, out, swap_unit(array.dtype) if swap else 1)
        return memoryview(out.reshape(-1).view(np.uint8))

    def decode(self, data, shape, dtype):
        expected = self.encoded_size(shape, dtype)
        if len(data) != expected:
            raise CodecError(f"bytes codec: expected {expected} bytes for shape "
                             f"{tuple(shape)} of {dtype.name}, got {len(data)}")
        if self.needs_swap(dtype):
            buf = np.frombuffer(data, dtype=np.uint8).copy()
            transform.byteswap(buf, swap_unit(dtype))
            return buf.view(dtype).reshape(shape)
        return np.frombuffer(data, dtype=dtype).reshape(shape)
