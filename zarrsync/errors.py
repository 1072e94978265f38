"""The zarrsync exception tree.

Every exception derives from :class:`ZarrSyncError` and from the builtin a
caller would catch for the same mistake, so ``except KeyError`` and
``except zarrsync.KeyNotFound`` both work. This module imports nothing from
zarrsync.
"""

__all__ = [
    "ZarrSyncError",
    "KeyNotFound",
    "ParseError",
    "InvalidArraySlice",
    "InvalidDataType",
    "InvalidResizeShape",
    "NodeInvariant",
    "CannotRenameRoot",
    "NodeExists",
    "CodecError",
    "ArrayToBytesInvariant",
    "BytesToBytesInvariant",
    "InvalidCodecOrdering",
    "InvalidTransposeOrder",
    "InvalidShardingChunkShape",
    "InvalidZstdLevel",
    "ChecksumMismatch",
    "StoreError",
    "ReadOnlyStoreError",
]


def short_repr(value, limit=80):
    """``repr(value)`` cut to ``limit`` characters: a message about hostile
    input stays one readable line whatever the input holds."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class ZarrSyncError(Exception):
    """Base class of every error zarrsync raises."""


class KeyNotFound(ZarrSyncError, KeyError):
    """A node or key is not a member of the store."""

    def __str__(self):
        # KeyError quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class ParseError(ZarrSyncError, ValueError):
    """A metadata document (or a part of it) is not valid Zarr v3."""


class InvalidArraySlice(ZarrSyncError, IndexError):
    """A selection is out of bounds, or data does not match its shape."""


class InvalidDataType(ZarrSyncError, TypeError):
    """Data (or a requested dtype) does not match the array's data type."""


class InvalidResizeShape(ZarrSyncError, ValueError):
    """A new shape for ``reshape`` is not valid for the array."""


class NodeInvariant(ZarrSyncError, ValueError):
    """A node name or path breaks the Zarr v3 node-name rules."""


class CannotRenameRoot(ZarrSyncError, ValueError):
    """The root group has no name to change."""


class NodeExists(ZarrSyncError, FileExistsError):
    """A node is already at the path an operation wants to create."""


class CodecError(ZarrSyncError, ValueError):
    """A codec is misconfigured, a chain is invalid, or a chunk fails to decode."""


class ArrayToBytesInvariant(CodecError):
    """A codec chain does not hold exactly one array->bytes codec."""


# The seed's older name for the same condition: one class, two names.
BytesToBytesInvariant = ArrayToBytesInvariant


class InvalidCodecOrdering(CodecError):
    """Codecs are not in the order array->array*, array->bytes, bytes->bytes*."""


class InvalidTransposeOrder(CodecError):
    """A transpose order is not a permutation of the chunk's dimensions."""


class InvalidShardingChunkShape(CodecError):
    """A sharding inner chunk shape does not divide the shard shape."""


class InvalidZstdLevel(CodecError):
    """A zstd level is outside -131072..22."""


class ChecksumMismatch(CodecError):
    """A crc32c checksum stored with a chunk does not match its bytes."""


class StoreError(ZarrSyncError, OSError):
    """A storage backend failed (bad key, I/O failure)."""


class ReadOnlyStoreError(StoreError, PermissionError):
    """A write was attempted on a store opened read-only."""
