"""The ``vlen-utf8`` and ``vlen-bytes`` codecs.

https://github.com/zarr-developers/zarr-extensions/tree/main/codecs/vlen-utf8
https://github.com/zarr-developers/zarr-extensions/tree/main/codecs/vlen-bytes
A chunk is a u32 little-endian element count, then per element (C order) a
u32 little-endian byte count and the bytes: UTF-8 for the ``string`` data
type (NumPy ``StringDType`` arrays), raw bytes for ``bytes`` (object arrays
of ``bytes``). ``_kernels.vlen`` does the per-element work.

The elements of these arrays are references, not raw bytes: the pipeline
copies them with NumPy indexing (``indexing.ElementPlan``) and compares them
by value (``dtypes.all_fill``).
"""

import numpy as np

from .._kernels import vlen as vlen_kernels
from ..dtypes import BYTES_DTYPE, STRING_DTYPE, coerce_vlen
from ..errors import CodecError, InvalidDataType
from ._base import ArrayToBytesCodec

__all__ = ["VlenUtf8", "VlenBytes"]


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

    def v2_config(self):
        return {"id": self.name}   # numcodecs' object codec of the same name and format

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
