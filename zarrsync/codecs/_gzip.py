"""The ``gzip`` codec (RFC 1952), through ISA-L.

https://zarr-specs.readthedocs.io/en/latest/v3/codecs/gzip/index.html
Chunks are compressed and decompressed by ISA-L (python-isal), many times
faster than the standard library's zlib at compressing
(docs/performance.md has the figures). ISA-L has levels 0..3, and its level
0 is its fastest compressing level, so Zarr's levels map as:

    Zarr level   0            1-3       4-6       7-9
    written by   zlib, store  ISA-L 1   ISA-L 2   ISA-L 3

Members are written with mtime 0, so a chunk's bytes are reproducible.
Reading takes one or more gzip members (or zlib streams), member by member,
and never produces more than the size the array's metadata implies: ISA-L's
decompressor stops at that size plus one byte (``max_length``), so a member
holding more is refused before it is inflated further.
"""

import zlib

from isal import igzip_lib, isal_zlib

from ..errors import CodecError
from ._base import BytesToBytesCodec

__all__ = ["Gzip", "GzipDataError"]

_GZIP_WBITS = 16 + zlib.MAX_WBITS   # write a gzip header (mtime 0: reproducible bytes)
_GZIP_MAGIC = b"\x1f\x8b"

#: The Zarr level (index) as an ISA-L level; 0 is written by zlib instead.
_ISAL_LEVEL = (None, 1, 1, 1, 2, 2, 2, 3, 3, 3)


class GzipDataError(CodecError, zlib.error):
    """Gzip data that could not be decoded (corrupt, or not gzip at all).

    Also a ``zlib.error``, as the codec raised before it had other libraries.
    """


def _members(data, limit):
    """Every gzip (or zlib) member of ``data`` decoded and joined, by ISA-L:
    at most ``limit`` bytes (``None``: no limit)."""
    parts, produced = [], 0
    view = memoryview(data).cast("B")
    while len(view):
        flag = igzip_lib.DECOMP_GZIP if view[:2] == _GZIP_MAGIC else igzip_lib.DECOMP_ZLIB
        d = igzip_lib.IgzipDecompressor(flag=flag)
        try:
            # One byte more than the room left shows a member that holds too much.
            out = d.decompress(view, -1 if limit is None else limit - produced + 1)
        except igzip_lib.IsalError as e:
            raise GzipDataError(f"gzip data could not be decoded: {e}") from None
        produced += len(out)
        if limit is not None and produced > limit:
            raise CodecError(f"gzip data decodes to more than the {limit} bytes expected")
        if not d.eof:
            raise CodecError("gzip data is truncated")
        parts.append(out)
        view = memoryview(d.unused_data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


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
            raise CodecError(f"gzip codec configuration needs a 'level' (an integer in 0..9), "
                             f"got the fields {sorted(configuration)}")
        level = configuration.pop("level")
        if configuration:
            raise CodecError(f"unknown gzip configuration fields {sorted(configuration)}; "
                             f"expected only level")
        return cls(level)

    def to_dict(self):
        return {"name": "gzip", "configuration": {"level": self.level}}

    def v2_config(self):
        return {"id": "gzip", "level": self.level}

    def encode(self, data):
        if self.level == 0:
            return zlib.compress(data, 0, _GZIP_WBITS)
        return isal_zlib.compress(data, _ISAL_LEVEL[self.level], _GZIP_WBITS)

    decodes_bounded = True

    def max_encoded_size(self, size):
        # Above zlib's deflateBound for any settings (fixed Huffman blocks,
        # about 13% over) with room for a header's optional fields.
        return size + (size >> 3) + (size >> 7) + (64 << 10)

    def decode(self, data, max_size=None):
        return _members(data, max_size)
