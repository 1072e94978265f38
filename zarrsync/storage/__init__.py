"""Stores: the abstract key-value ``Store`` and its backends."""

from ._base import Store
from ._filesystem import FilesystemStore
from ._memory import MemoryStore
from ._object import ObjectStore
from ._open import open_store
from ._zip import ZipStore

__all__ = ["Store", "MemoryStore", "FilesystemStore", "ZipStore", "ObjectStore", "open_store"]
