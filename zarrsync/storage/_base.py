"""The abstract key-value store of the Zarr v3 spec, which every backend fills in.

https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#abstract-store-interface
A backend implements the seven methods below and inherits every hierarchy
method (``create_array``, ``read_array``, ...) from ``Hierarchy``.
"""

from abc import ABCMeta, abstractmethod

from ._buffer import watch_key_value_methods
from ._hierarchy import Hierarchy

__all__ = ["Store"]


class Store(Hierarchy, metaclass=ABCMeta):
    """Base class of zarrsync stores.

    Keys are ``str`` such as ``"zarr.json"`` or ``"grp/arr/c/0/1"``; values
    are ``bytes``.
    """

    #: True for backends whose values other processes may replace while this
    #: one reads. A backend that sets it must serve the ranges of one key in
    #: one ``get_partial_values`` call from a single version of the value.
    shared_between_processes = False

    #: Keep chunks that ``write_array`` writes only partly decoded in memory
    #: until they are done (see ``zarrsync.storage._buffer``): appends of one
    #: time step then encode each chunk once, not once per step. Reads through
    #: this object always see buffered data; other processes see it after
    #: ``flush()``. Settable per store object.
    buffers_writes = False

    #: True for backends whose ``get`` returns the stored ``bytes`` object
    #: itself, which a rewrite replaces and nothing changes in place: a
    #: sharded read then takes a shard's index and chunks from that one
    #: object, and may reuse the index it checked while the object stays
    #: (``_recall``/``_remember``).
    _get_returns_stored_object = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        watch_key_value_methods(cls)

    @abstractmethod
    def get(self, key):
        """The value at ``key`` as ``bytes``, or ``None`` if absent."""

    def _set_many(self, keys, values, reuse_size=0):
        """Store each of ``values`` at its key (erase the key for ``None``).

        Returns the replaced values of ``reuse_size`` bytes that nothing else
        references any more (a backend holding values as objects may tell),
        for the caller to fill again (``_kernels.memory.reuse_later``).
        """
        for key, value in zip(keys, values):
            if value is None:
                self.erase(key)
            else:
                self.set(key, value)
        return ()

    @abstractmethod
    def get_partial_values(self, key_ranges):
        """One ``bytes`` (or ``None`` if the key is absent) per ``(key, offset, length)``.

        ``length=None`` reads to the end; a negative ``offset`` counts from the end.
        """

    @abstractmethod
    def set(self, key, value):
        """Store ``value`` (bytes-like) at ``key``, replacing any old value."""

    @abstractmethod
    def erase(self, key):
        """Delete ``key``; no error if it is absent."""

    @abstractmethod
    def erase_prefix(self, prefix):
        """Delete every key that starts with ``prefix``."""

    @abstractmethod
    def list_prefix(self, prefix):
        """Every key that starts with ``prefix``."""

    @abstractmethod
    def list_dir(self, prefix):
        """``(keys, prefixes)`` one level below ``prefix``.

        ``prefix`` is ``""`` or ends with ``"/"``. ``keys`` are the names of
        values directly under it, ``prefixes`` the names of the next level of
        "directories" (both without ``prefix`` and without a trailing "/").
        """

    # Optional overrides: defaults built on the methods above.

    def get_ranges_view(self, key_ranges):
        """As ``get_partial_values``, but each value may be any bytes-like
        object (a ``memoryview`` of the stored value, not a copy).

        Sharded reads fetch inner chunks through this; backends that hold
        values in memory override it to skip a copy of every range.
        """
        return self.get_partial_values(key_ranges)

    def get_many(self, keys):
        """Values (or ``None``) for several keys; backends may batch this."""
        return [self.get(k) for k in keys]

    def getsize(self, key):
        """The size in bytes of the value at ``key``, or ``None`` if absent.

        Backends with a cheaper way (a file's size) override this. Sharded
        reads ask for a shard's size only when it is overridden: this default
        reads the whole value.
        """
        value = self.get(key)
        return None if value is None else len(value)

    def move_prefix(self, old, new):
        """Move every key under ``old`` to the same name under ``new``.

        The default copies everything first and deletes the old keys last, so
        a failure leaves every value reachable under at least one prefix.
        """
        keys = self.list_prefix(old)
        for key in keys:
            value = self.get(key)
            if value is not None:
                self.set(new + key[len(old):], value)
        for key in keys:
            self.erase(key)

    def close(self):
        """Store the buffered chunks (``flush``); backends also release resources."""
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
