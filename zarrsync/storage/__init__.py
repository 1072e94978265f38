"""Stores: the abstract key-value ``Store`` and its backends."""

from ._base import Store
from ._memory import MemoryStore

__all__ = ["Store", "MemoryStore"]
