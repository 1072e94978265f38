"""The ``gzip`` codec (RFC 1952), through the standard library's zlib.

https://zarr-specs.readthedocs.io/en/latest/v3/codecs/gzip/index.html
"""

import zlib

from ..errors import CodecError
from ._chain import BytesToBytesCodec

_GZIP_WBITS = 16 + zlib.MAX_WBITS   # write a gzip header (mtime 0: reproducible bytes)
_AUTO_WBITS = 32 + zlib.MAX_WBITS   # read gzip or zlib headers


class Gzip(BytesToBytesCodec):
    """Gzip compression.

    Parameters
    ----------
    level : int
        0 (store) to 9 (smallest).
    """

    name = "gzip"

    def __init__(self, level=5):
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
            raise CodecError(f"gzip level must be an integer in 0..9, got {level!r}")
        self.level = level

    @classmethod
    def from_config(cls, configuration):
        configuration = dict(configuration or {})
        if "level" not in configuration:
            raise CodecError("gzip codec needs a 'level'")
        level = configuration.pop("level")
        if configuration:
            raise CodecError(f"unknown gzip configuration: {sorted(configuration)}")
        return cls(level)

    def to_dict(self):
        return {"name": "gzip", "configuration": {"level": self.level}}

    def encode(self, data):
        compressor = zlib.compressobj(self.level, zlib.DEFLATED, _GZIP_WBITS)
        return compressor.compress(data) + compressor.flush()

    def decode(self, data, size_hint=None):
        parts = []
        data = memoryview(data)
        # Concatenated gzip members decode to the concatenation (RFC 1952).
        while len(data):
            d = zlib.decompressobj(_AUTO_WBITS)
            parts.append(d.decompress(data))
            if not d.eof:
                raise CodecError("gzip data is truncated")
            data = memoryview(d.unused_data)
        return parts[0] if len(parts) == 1 else b"".join(parts)
