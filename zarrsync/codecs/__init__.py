"""Zarr v3 codecs and the registry that builds them from their JSON form."""

from ._base import ArrayToArrayCodec, ArrayToBytesCodec, BytesToBytesCodec, Codec
from ._blosc import Blosc
from ._bytes import Bytes
from ._chain import CodecChain
from ._crc32c import Crc32c
from ._defaults import default_array_bytes, default_codecs
from ._gzip import Gzip
from ._numcodecs import NumcodecsArrayToArray, NumcodecsBytesToBytes, factories, numcodecs_codec
from ._registry import from_dict, parse_codecs, register_codec
from ._sharding import ShardingIndexed
from ._transpose import Transpose
from ._vlen import VlenBytes, VlenUtf8
from ._zstd import Zstd

__all__ = ["Codec", "ArrayToArrayCodec", "ArrayToBytesCodec", "BytesToBytesCodec",
           "CodecChain", "Bytes", "Transpose", "Gzip", "Zstd", "Crc32c", "Blosc",
           "ShardingIndexed", "VlenUtf8", "VlenBytes", "NumcodecsBytesToBytes",
           "NumcodecsArrayToArray", "numcodecs_codec", "from_dict", "register_codec",
           "parse_codecs", "default_codecs", "default_array_bytes"]

for _cls in (Bytes, Transpose, Gzip, Zstd, Crc32c, Blosc, ShardingIndexed, VlenUtf8, VlenBytes):
    register_codec(_cls)
# The numcodecs.<id> names: one entry each, built by the two generic adapters.
for _factory in factories():
    register_codec(_factory)
