"""Stores: the abstract key-value ``Store`` and its backends."""

from ._base import Store
from ._filesystem import FilesystemStore
from ._memory import MemoryStore
from ._zip import ZipStore

__all__ = ["Store", "MemoryStore", "FilesystemStore", "ZipStore"]
