"""The codecs zarr-python picks when none are given."""

from ..dtypes import is_vlen
from ._bytes import Bytes
from ._vlen import VlenBytes, VlenUtf8
from ._zstd import Zstd

__all__ = ["default_codecs", "default_array_bytes"]


def default_array_bytes(dtype):
    """The array->bytes codec zarr-python picks for ``dtype``: bytes, or
    vlen-utf8 for ``string`` and vlen-bytes for ``bytes``."""
    if is_vlen(dtype):
        return VlenUtf8() if dtype.kind == "T" else VlenBytes()
    return Bytes("little")


def default_codecs(dtype):
    """zarr-python's default chain: the array->bytes codec, then zstd(level 0)."""
    return [default_array_bytes(dtype), Zstd(level=0, checksum=False)]
