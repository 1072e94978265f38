"""An in-memory store: a dict of keys to bytes, behind a lock.

The seed's ``create ()``. Safe to use from several threads at once: every
method holds the store's lock for the dict work it does.
"""

import threading

from ._base import Store

__all__ = ["MemoryStore"]


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

    Notes
    -----
    Always read-write (``mode`` is "a"). The store pickles as a copy of its
    contents (buffered chunks stored first): in another process it is an
    independent store, and writes there are not seen here, nor the other way.

    Examples
    --------
    >>> import zarrsync as zs
    >>> store = zs.MemoryStore()
    >>> store.create_group(zs.GroupNode.root(), attrs={"title": "demo"})
    >>> store.group_exists(zs.GroupNode.root())
    True
    """

    returns_stored_objects = True
    knows_sizes = True
    buffers_writes = True

    def __init__(self, store_dict=None):
        self._data = {}
        self._lock = threading.RLock()
        if store_dict:
            for key, value in store_dict.items():
                self.set(key, value)

    def __getstate__(self):
        # A copy of the contents: the dict may change while it is pickled.
        state = super().__getstate__()
        state["_data"] = self.to_dict()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

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

    def set(self, key, value):
        if not isinstance(key, str):
            raise TypeError(f"store keys are str, got {type(key).__name__}")
        if not isinstance(value, bytes):
            value = bytes(value)
        # Under the lock: listing iterates the dict, and an insert from
        # another thread mid-iteration raises "dictionary changed size".
        with self._lock:
            self._data[key] = value

    def set_many(self, keys, values):
        # One pass under the lock, not a call and a lock per chunk; a
        # subclass that overrides set or erase still sees every chunk.
        cls = type(self)
        if cls.set is not MemoryStore.set or cls.erase is not MemoryStore.erase:
            return super().set_many(keys, values)
        data = self._data
        with self._lock:
            for key, value in zip(keys, values):
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value if isinstance(value, bytes) else bytes(value)

    def erase(self, key):
        with self._lock:
            self._data.pop(key, None)

    def erase_prefix(self, prefix):
        with self._lock:
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
