"""zarrsync: a fast, faithful Zarr v3 implementation with Cython kernels.

The public API is described in ``docs/api.md`` (and built into the docs site).
"""

from . import codecs, config, errors, metadata, storage
from .array import Array
from .errors import (ArrayToBytesInvariant, BytesToBytesInvariant, CannotRenameRoot,
                     ChecksumMismatch, CodecError, InvalidArraySlice, InvalidCodecOrdering,
                     InvalidDataType, InvalidResizeShape, InvalidShardingChunkShape,
                     InvalidTransposeOrder, InvalidZstdLevel, KeyNotFound, NodeExists,
                     NodeInvariant, ParseError, ReadOnlyStoreError, StoreError,
                     ZarrSyncError)
from .group import Group, open, open_array, open_group
from .metadata import ArrayMetadata, GroupMetadata
from .nodes import ArrayNode, GroupNode
from .storage import FilesystemStore, MemoryStore, ObjectStore, Store, ZipStore, open_store

__version__ = "0.1.0"

__all__ = [
    "Array", "Group", "open_group", "open_array", "open",
    "ArrayMetadata", "GroupMetadata", "ArrayNode", "GroupNode",
    "MemoryStore", "FilesystemStore", "ZipStore", "ObjectStore", "Store", "open_store",
    "codecs", "config", "errors", "metadata", "storage",
    "ZarrSyncError", "KeyNotFound", "ParseError", "InvalidArraySlice", "InvalidDataType",
    "InvalidResizeShape", "NodeInvariant", "CannotRenameRoot", "NodeExists", "CodecError",
    "ArrayToBytesInvariant", "BytesToBytesInvariant", "InvalidCodecOrdering",
    "InvalidTransposeOrder", "InvalidShardingChunkShape", "InvalidZstdLevel",
    "ChecksumMismatch", "StoreError", "ReadOnlyStoreError",
]
