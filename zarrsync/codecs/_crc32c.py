"""The ``crc32c`` codec: a 4-byte little-endian CRC-32C after the data.

https://zarr-specs.readthedocs.io/en/latest/v3/codecs/crc32c/index.html
"""

import crc32c as _crc32c_lib

from .._kernels import transform
from ..errors import ChecksumMismatch, CodecError
from ._base import BytesToBytesCodec


class Crc32c(BytesToBytesCodec):
    """Append a CRC-32C checksum on encode; verify and strip it on decode."""

    name = "crc32c"

    @classmethod
    def from_config(cls, configuration):
        if configuration:
            raise CodecError(f"crc32c takes no configuration, got the fields "
                             f"{sorted(configuration)}")
        return cls()

    def to_dict(self):
        return {"name": "crc32c"}

    def v2_config(self):
        return {"id": "crc32c"}   # numcodecs' CRC32C: the same four bytes at the end

    def size_after_encode(self, size):
        return size + 4

    def encode(self, data):
        return transform.append_crc32c(data, _crc32c_lib.crc32c(data))

    #: Decoding takes a view of the input: it allocates nothing.
    decodes_bounded = True

    def decode(self, data, max_size=None):
        view = memoryview(data)
        if len(view) < 4:
            raise CodecError(f"crc32c: a framed value needs at least 4 bytes, got {len(view)}")
        if max_size is not None and len(view) - 4 > max_size:
            raise CodecError(f"crc32c: the data holds {len(view) - 4} bytes and a checksum, "
                             f"more than the {max_size} bytes expected")
        stored = transform.stored_crc32c(view)
        payload = view[:-4]
        actual = _crc32c_lib.crc32c(payload)
        if actual != stored:
            raise ChecksumMismatch(
                f"crc32c mismatch: stored {stored:#010x}, computed {actual:#010x}")
        return payload
