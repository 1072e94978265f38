"""An in-memory store: a dict of keys to bytes, behind a lock.

The seed's ``create ()``. Safe to use from several threads at once: every
method holds the store's lock for the dict work it does.
"""

import threading

from .._kernels import memory
from ._base import Store

__all__ = ["MemoryStore"]

#: At most this many remembered facts (checked shard indexes); beyond it the
#: oldest half is forgotten, so a scan of a huge array keeps little alive.
_MAX_FACTS = 1024


def _slice(value, offset, length):
    if offset < 0:
        offset = max(0, len(value) + offset)
    end = len(value) if length is None else min(len(value), offset + length)
    return value[offset:end]


class MemoryStore(Store):
    """A Zarr v3 hierarchy held in memory.

    Parameters
    ----------
    store_dict : dict, optional
        Initial ``{key: bytes}`` contents (copied).

    Examples
    --------
    >>> import zarrsync as zs
    >>> store = zs.MemoryStore()
    >>> store.create_group(zs.GroupNode.root(), attrs={"title": "demo"})
    >>> store.group_exists(zs.GroupNode.root())
    True
    """

    buffers_writes = True
    _get_returns_stored_object = True

    def __init__(self, store_dict=None):
        self._data = {}
        self._lock = threading.RLock()
        # key -> (stored value, owner, fact): what an owner derived from the
        # value (a shard's checked index). A hit needs the very same object,
        # so a stale entry is never used; set and erase drop entries only so
        # that a replaced value is not kept alive.
        self._facts = {}
        if store_dict:
            for key, value in store_dict.items():
                self.set(key, value)

    def get(self, key):
        return self._data.get(key)

    def get_many(self, keys):
        data = self._data
        return [data.get(k) for k in keys]

    def getsize(self, key):
        value = self._data.get(key)
        return None if value is None else len(value)

    def get_partial_values(self, key_ranges):
        out = []
        for key, offset, length in key_ranges:
            value = self._data.get(key)
            out.append(None if value is None else _slice(value, offset, length))
        return out

    def get_ranges_view(self, key_ranges):
        out = []
        for key, offset, length in key_ranges:
            value = self._data.get(key)
            out.append(None if value is None else _slice(memoryview(value), offset, length))
        return out

    def _recall(self, key, value, owner):
        """The fact ``owner`` remembered for ``value``, the object now at ``key``, or None."""
        hit = self._facts.get(key)
        if hit is not None and hit[0] is value and hit[1] is owner:
            return hit[2]
        return None

    def _remember(self, key, value, owner, fact):
        """Remember ``fact`` (small) derived by ``owner`` from ``value``, got from ``key``."""
        with self._lock:
            # A value replaced meanwhile is not kept alive by its fact.
            if self._data.get(key) is not value:
                return
            facts = self._facts
            if len(facts) >= _MAX_FACTS:
                for old in list(facts)[:_MAX_FACTS // 2]:
                    del facts[old]
            facts[key] = (value, owner, fact)

    def set(self, key, value):
        if not isinstance(key, str):
            raise TypeError(f"store keys are str, got {type(key).__name__}")
        if not isinstance(value, bytes):
            value = bytes(value)
        # Under the lock: listing iterates the dict, and an insert from
        # another thread mid-iteration raises "dictionary changed size".
        with self._lock:
            self._data[key] = value
            self._facts.pop(key, None)

    def _set_many(self, keys, values, reuse_size=0):
        # For internal writers only: keys are str and values bytes or None.
        # One pass under the lock, not a call and a lock per chunk; a
        # subclass that overrides set or erase still sees every chunk.
        cls = type(self)
        if cls.set is not MemoryStore.set or cls.erase is not MemoryStore.erase:
            return super()._set_many(keys, values, reuse_size)
        reusable = []
        data, facts = self._data, self._facts
        with self._lock:
            for key, value in zip(keys, values):
                facts.pop(key, None)
                if value is None:
                    data.pop(key, None)
                elif reuse_size:
                    old = memory.replace_value(data, key, value, reuse_size)
                    if old is not None:
                        reusable.append(old)
                else:
                    data[key] = value
        return reusable

    def erase(self, key):
        with self._lock:
            self._data.pop(key, None)
            self._facts.pop(key, None)

    def erase_prefix(self, prefix):
        with self._lock:
            self._facts.clear()
            if not prefix:
                self._data.clear()
                return
            for key in [k for k in self._data if k.startswith(prefix)]:
                del self._data[key]

    def list_prefix(self, prefix):
        with self._lock:
            return sorted(k for k in self._data if k.startswith(prefix))

    def list_dir(self, prefix):
        keys, prefixes = set(), set()
        n = len(prefix)
        with self._lock:
            for k in self._data:
                if k.startswith(prefix):
                    head, sep, _ = k[n:].partition("/")
                    (prefixes if sep else keys).add(head)
        return sorted(keys), sorted(prefixes)

    def move_prefix(self, old, new):
        with self._lock:
            self._facts.clear()
            moved = {new + k[len(old):]: v for k, v in self._data.items() if k.startswith(old)}
            for k in [k for k in self._data if k.startswith(old)]:
                del self._data[k]
            self._data.update(moved)

    def to_dict(self):
        """A copy of the contents as ``{key: bytes}`` (buffered chunks stored first)."""
        self.flush()
        with self._lock:
            return dict(self._data)

    def __len__(self):
        self.flush()
        return len(self._data)

    def __repr__(self):
        return f"MemoryStore({len(self._data)} keys)"
