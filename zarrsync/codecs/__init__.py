"""Zarr v3 codecs and the registry that builds them from their JSON form."""

from ..errors import CodecError
from ._bytes import Bytes
from ._chain import (ArrayToArrayCodec, ArrayToBytesCodec, BytesToBytesCodec, Codec,
                     CodecChain)
from ._crc32c import Crc32c
from ._gzip import Gzip
from ._sharding import ShardingIndexed
from ._transpose import Transpose
from ._vlen import VlenBytes, VlenUtf8, is_vlen
from ._zstd import Zstd

__all__ = ["Codec", "ArrayToArrayCodec", "ArrayToBytesCodec", "BytesToBytesCodec",
           "CodecChain", "Bytes", "Transpose", "Gzip", "Zstd", "Crc32c", "ShardingIndexed",
           "VlenUtf8", "VlenBytes", "from_dict", "register_codec", "parse_codecs",
           "default_codecs"]

_REGISTRY = {}


def register_codec(cls):
    """Make ``cls`` (a Codec subclass with a ``name``) known to ``from_dict``."""
    _REGISTRY[cls.name] = cls
    return cls


for _cls in (Bytes, Transpose, Gzip, Zstd, Crc32c, ShardingIndexed, VlenUtf8, VlenBytes):
    register_codec(_cls)


def from_dict(d):
    """Build a codec from its JSON form: ``{"name": ..., "configuration": {...}}``.

    A bare string is taken as a codec name with no configuration.
    """
    if isinstance(d, Codec):
        return d
    if isinstance(d, str):
        d = {"name": d}
    if not isinstance(d, dict) or "name" not in d:
        raise CodecError(f"a codec must be an object with a 'name', got {d!r}")
    extra = set(d) - {"name", "configuration", "must_understand"}
    if extra:
        raise CodecError(f"codec {d['name']!r} has unknown fields {sorted(extra)}")
    cls = _REGISTRY.get(d["name"])
    if cls is None:
        raise CodecError(f"unknown codec {d['name']!r}")
    configuration = d.get("configuration", {})
    if not isinstance(configuration, dict):
        raise CodecError(f"codec {d['name']!r} configuration must be an object")
    return cls.from_config(configuration)


def parse_codecs(codecs):
    """A list of codec objects from codec objects and/or JSON dicts."""
    if isinstance(codecs, (Codec, dict, str)):
        codecs = [codecs]
    return [from_dict(c) for c in codecs]


def default_codecs(dtype):
    """zarr-python's default chain: bytes (vlen-utf8 for ``string``, vlen-bytes
    for ``bytes``), then zstd(level 0)."""
    return [default_array_bytes(dtype), Zstd(level=0, checksum=False)]


def default_array_bytes(dtype):
    """The array->bytes codec zarr-python picks for ``dtype``."""
    if is_vlen(dtype):
        return VlenUtf8() if dtype.kind == "T" else VlenBytes()
    return Bytes("little")
