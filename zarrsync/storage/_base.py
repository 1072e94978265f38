"""The abstract key-value store of the Zarr v3 spec, which every backend fills in.

https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#abstract-store-interface
A backend implements the seven key-value methods and declares what it can
do (the capability attributes below). Every hierarchy method
(``create_array``, ``read_array``, ...) is written once, in ``Hierarchy``,
which each store object delegates to.
"""

from abc import ABCMeta, abstractmethod
from concurrent.futures import Future

from ..errors import ReadOnlyStoreError
from ..nodes import GroupNode
from ._buffer import watch_key_value_methods
from ._chunks import stored_chunks
from ._hierarchy import Hierarchy

__all__ = ["Pending", "Store"]


def _path_of(node):
    """A node's path for messages (whatever the caller passed, if it is no node)."""
    path = getattr(node, "path", None)
    return path if isinstance(path, str) else repr(node)


class Pending:
    """A read started ahead (``get_many_ahead``, ``get_partial_values_ahead``).

    Call it to wait for the values (or the read's error);
    ``add_done_callback(fn)`` calls ``fn()`` once they have come, at once if
    they have (so that a caller can take reads in the order they finish).
    """

    __slots__ = ("_future", "_finish")

    def __init__(self, future, finish=None):
        self._future = future
        self._finish = finish

    @classmethod
    def ready(cls, values):
        """A read that is already done: ``values``."""
        future = Future()
        future.set_result(values)
        return cls(future)

    def __call__(self):
        result = self._future.result()
        return result if self._finish is None else self._finish(result)

    def add_done_callback(self, fn):
        self._future.add_done_callback(lambda _future: fn())


class Store(metaclass=ABCMeta):
    """Base class of zarrsync stores.

    Keys are ``str`` such as ``"zarr.json"`` or ``"grp/arr/c/0/1"``; values
    are ``bytes``. A subclass implements ``get``, ``get_partial_values``,
    ``set``, ``erase``, ``erase_prefix``, ``list_prefix`` and ``list_dir``;
    it may override ``get_many``, ``set_many``, ``getsize`` and
    ``move_prefix`` where it has a better way, and sets the capability
    attributes that hold for it.

    A backend that can be opened read-only overrides ``read_only`` (and
    ``mode``); every hierarchy write method then raises
    ``ReadOnlyStoreError`` naming the call before touching anything, and the
    backend's own ``set``, ``erase``, ... call ``_refuse_writes``.
    """

    #: ``get`` returns the stored ``bytes`` object itself, which a rewrite
    #: replaces and nothing changes in place: readers may take views of it
    #: (a sharded read slices its inner chunks out of the one value).
    returns_stored_objects = False

    #: ``getsize`` answers without reading the value.
    knows_sizes = False

    #: Other processes may replace values while this one reads. Such a
    #: backend serves the ranges of one key in one ``get_partial_values``
    #: call from a single version of the value.
    shared_between_processes = False

    #: Each value has a version (an object store's ETag):
    #: ``get_ranges_versioned(key, ranges)`` returns ``(values, size, version)``
    #: in one round trip, and ``get_ranges_if(key, ranges, version)`` reads only
    #: while the value is still that version (``None`` otherwise). A sharded
    #: read then keeps the index it read and fetches inner chunks in one request.
    versions_values = False

    #: ``get_partial_values_ahead`` and ``get_many_ahead`` run in the
    #: background, first come first served: a read then checks an array's
    #: metadata document while it reads the chunks with the layout that
    #: document had last time (and reads again if it changed), one round trip
    #: instead of two on a remote store, and decodes the chunks that have
    #: come while the others are still on their way.
    reads_ahead = False

    #: Keep chunks that ``write_array`` writes only partly decoded in memory
    #: until they are done (see ``zarrsync.storage._buffer``): appends of one
    #: time step then encode each chunk once, not once per step. Reads through
    #: this object always see buffered data; other processes see it after
    #: ``flush()``. Settable per store object.
    buffers_writes = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        watch_key_value_methods(cls)

    @property
    def _hierarchy(self):
        engine = self.__dict__.get("_zs_hierarchy")
        if engine is None:
            engine = self.__dict__.setdefault("_zs_hierarchy", Hierarchy(self))
        return engine

    def __getstate__(self):
        # Another process gets the stored data, not this one's locks and caches.
        self.flush()
        state = dict(self.__dict__)
        state.pop("_zs_hierarchy", None)
        return state

    # -- read-only stores -----------------------------------------------------------------

    @property
    def read_only(self):
        """True if every write method raises ``ReadOnlyStoreError`` (a store opened with
        mode "r"); False for backends without modes."""
        return False

    @property
    def mode(self):
        """The mode the store was opened with; "r" or "a" for backends without modes."""
        return "r" if self.read_only else "a"

    def _description(self):
        """How error messages name this store (its class, and its path if it has one)."""
        return type(self).__name__

    def _refuse_writes(self, call, target=None):
        """Raise ``ReadOnlyStoreError`` naming the public ``call`` (and the node, key or
        prefix ``target``) if the store is read-only."""
        if self.read_only:
            what = f"{call} {target}" if target is not None else call
            raise ReadOnlyStoreError(f"cannot {what}: {self._description()} is open "
                                     f"read-only (mode {self.mode!r})")

    # -- the key-value interface ----------------------------------------------------------

    @abstractmethod
    def get(self, key):
        """The value at ``key`` as ``bytes``, or ``None`` if absent."""

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

    def get_many(self, keys):
        """Values (or ``None``) for several keys; backends may batch this."""
        return [self.get(k) for k in keys]

    def list_prefix_sizes(self, prefix):
        """``[(key, size)]`` for the keys under ``prefix`` (a key erased
        meanwhile is left out); backends whose listing gives sizes override it."""
        sizes = ((key, self.getsize(key)) for key in self.list_prefix(prefix))
        return [(key, size) for key, size in sizes if size is not None]

    def get_many_ahead(self, keys, buffers=False):
        """Start ``get_many(keys)``: a ``Pending`` (see
        ``get_partial_values_ahead``). ``buffers``: the values may be any
        read-only objects with the buffer protocol (a client's own, not
        copied into ``bytes``)."""
        return Pending.ready(self.get_many(keys))

    def get_partial_values_ahead(self, key_ranges):
        """Start ``get_partial_values(key_ranges)``: a ``Pending``, which waits
        for the values when called. A backend with ``reads_ahead`` runs the
        requests while the caller does other work; this default reads at once."""
        return Pending.ready(self.get_partial_values(key_ranges))

    def set_many(self, keys, values):
        """Store each of ``values`` at its key of ``keys``; ``None`` erases the key."""
        if self.read_only:
            keys = list(keys)
            shown = repr(keys) if len(keys) <= 3 else repr(keys[:3])[:-1] + ", ...]"
            self._refuse_writes("set_many", shown)
        for key, value in zip(keys, values):
            if value is None:
                self.erase(key)
            else:
                self.set(key, value)

    def getsize(self, key):
        """The size in bytes of the value at ``key``, or ``None`` if absent.

        Backends with a cheaper way (a file's size) override this and set
        ``knows_sizes``; this default reads the whole value.
        """
        value = self.get(key)
        return None if value is None else len(value)

    def move_prefix(self, old, new):
        """Move every key under ``old`` to the same name under ``new``.

        The default copies everything first and deletes the old keys last, so
        a failure leaves every value reachable under at least one prefix.
        """
        self._refuse_writes("move_prefix", f"{old!r} to {new!r}")
        keys = self.list_prefix(old)
        for key in keys:
            value = self.get(key)
            if value is not None:
                self.set(new + key[len(old):], value)
        for key in keys:
            self.erase(key)

    # -- the hierarchy (``Hierarchy`` does the work) ---------------------------------------

    def create_group(self, node, attrs=None, *, zarr_format=None):
        """Create group ``node`` with attributes ``attrs`` (and any missing ancestor).

        A no-op if the group already exists; ``NodeExists`` if an array is
        at that path or above it. ``zarr_format`` (2 or 3) is the format of
        the groups it makes; by default that of the nearest group above
        ``node``, or 3 in a store with none.
        """
        self._refuse_writes("create_group", _path_of(node))
        return self._hierarchy.create_group(node, attrs, zarr_format)

    def create_array(self, node, *, shape, chunks, dtype, fill_value=None, codecs=None,
                     dimension_names=None, attributes=None, separator=None,
                     chunk_key_encoding=None, overwrite=False, zarr_format=3):
        """Create array ``node``.

        Parameters
        ----------
        node : ArrayNode
            ``ArrayNode.root()`` makes the array the whole store (``zarr.json``
            at its root): ``NodeExists`` if the store holds any node, and
            ``overwrite=True`` clears the store first. Any other node raises
            ``NodeExists`` in a store that is a root array.
        shape, chunks : sequence of int
            Array shape and (regular grid) chunk shape, of equal rank.
        dtype : str or numpy.dtype
            A Zarr v3 data type (``"float32"``, ``numpy.int16``, ``"string"``, ...).
        fill_value : scalar, optional
            The value of never-written elements; ``None`` means the data type's zero.
        codecs : list of Codec or dict, optional
            The codec chain; default ``[Bytes(), Zstd()]`` as zarr-python.
        dimension_names : list of (str or None), optional
            For ``zarr_format=2``, stored as xarray does: in the attribute
            ``_ARRAY_DIMENSIONS`` (strings only).
        attributes : dict, optional
        separator : {"/", "."}, optional
            The chunk key separator: ``"/"`` by default, or for
            ``zarr_format=2`` the ``dimension_separator``, ``"."`` by default.
        chunk_key_encoding : {"default", "v2"}, optional
            ``"default"`` by default; Zarr v2 arrays always use ``"v2"``.
        overwrite : bool
            Erase a node already at this path instead of raising ``NodeExists``.
        zarr_format : {3, 2}
            ``2`` writes a Zarr v2 array (``.zarray`` and ``.zattrs``), for
            readers that know only v2. Its codecs must be ones v2 can express:
            an optional first ``Transpose`` reversing the axes (v2's order
            "F"), numcodecs filters, ``Bytes`` (or the vlen codecs for strings
            and bytes) and bytes->bytes codecs, the last of which is the
            compressor; others raise ``CodecError``. Missing groups above it
            are made as Zarr v2 groups.

        Raises
        ------
        NodeExists, ParseError, InvalidDataType, ArrayToBytesInvariant,
        InvalidCodecOrdering, InvalidTransposeOrder, InvalidShardingChunkShape,
        InvalidZstdLevel, CodecError
        """
        self._refuse_writes("create_array", _path_of(node))
        return self._hierarchy.create_array(
            node, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill_value,
            codecs=codecs, dimension_names=dimension_names, attributes=attributes,
            separator=separator, chunk_key_encoding=chunk_key_encoding, overwrite=overwrite,
            zarr_format=zarr_format)

    def array_metadata(self, node):
        """The ``ArrayMetadata`` of ``node``; ``KeyNotFound`` if it is not an array here."""
        return self._hierarchy.array_layout(node).meta

    def group_metadata(self, node):
        """The ``GroupMetadata`` of ``node``; ``KeyNotFound`` if it is not a group here."""
        return self._hierarchy.group_metadata(node)

    def find_child_nodes(self, group):
        """``(arrays, groups)``: the nodes directly inside ``group``, sorted by path.

        Empty lists if the group has no children or is not in the store;
        ``ParseError`` if a child's ``node_type`` is invalid. If the group, or
        a group above it, holds consolidated metadata, the nearest such copy
        answers without listing the store.
        """
        return self._hierarchy.find_child_nodes(group)

    def find_all_nodes(self):
        """``(arrays, groups)``: every node in the store, sorted by path (the root
        group included; ``([ArrayNode.root()], [])`` for a store that is one array).

        If the root group holds consolidated metadata, that copy answers
        without listing the store (as zarr-python's consolidated open does).
        """
        return self._hierarchy.find_all_nodes()

    def erase_group_node(self, node):
        """Erase group ``node`` and everything under it; a no-op if it is absent.

        ``GroupNode.root()`` erases every key of the store, unless the store is
        a root array (no group: a no-op; ``erase_array_node`` erases it).
        """
        self._refuse_writes("erase_group_node", _path_of(node))
        self._hierarchy.erase_group_node(node)

    def erase_array_node(self, node):
        """Erase array ``node`` and its chunks; a no-op if it is absent.

        For ``ArrayNode.root()``: its ``zarr.json`` and the keys its chunk key
        encoding makes at the root, and no other key.
        """
        self._refuse_writes("erase_array_node", _path_of(node))
        self._hierarchy.erase_array_node(node)

    def erase_all_nodes(self):
        """Delete every node (and every key) of the store."""
        self._refuse_writes("erase_all_nodes", None)
        self._hierarchy.erase_all_nodes()

    def group_exists(self, node):
        """True if ``node`` is a group of this store.

        ``GroupNode.root()`` is one only if the store's root ``zarr.json`` is a
        group document: False in an empty store, and in a store that is a root array.
        """
        return self._hierarchy.group_exists(node)

    def array_exists(self, node):
        """True if ``node`` is an array of this store."""
        return self._hierarchy.array_exists(node)

    def rename_group(self, node, new_name):
        """Rename group ``node`` (and move everything under it) to ``new_name``.

        Returns the new ``GroupNode``. Raises ``KeyNotFound``,
        ``CannotRenameRoot``, ``NodeInvariant`` or ``NodeExists``.
        """
        self._refuse_writes("rename_group", _path_of(node))
        return self._hierarchy.rename_group(node, new_name)

    def rename_array(self, node, new_name):
        """Rename array ``node`` (and move its chunks) to ``new_name``; returns the new node.

        ``CannotRenameRoot`` for ``ArrayNode.root()``.
        """
        self._refuse_writes("rename_array", _path_of(node))
        return self._hierarchy.rename_array(node, new_name)

    def set_attributes(self, node, attributes):
        """Replace the user attributes of array or group ``node``."""
        self._refuse_writes("set_attributes", _path_of(node))
        self._hierarchy.set_attributes(node, attributes)

    def consolidate_metadata(self, group=GroupNode.root()):
        """Write the metadata of every node below ``group`` into its ``zarr.json``.

        The group's document gets zarr-python's ``consolidated_metadata`` block
        (``"kind": "inline"``, each node's document by its path relative to the
        group), built by listing the store. zarrsync keeps the block fresh:
        every change it makes below the group updates it in the same call.
        Listings (``find_all_nodes``, ``find_child_nodes``) then come from the
        block without listing the store; node metadata always comes from the
        node's own ``zarr.json``.

        Raises ``KeyNotFound`` if ``group`` is not a group of the store, and
        ``ParseError`` if a node's document below it is invalid.
        """
        self._refuse_writes("consolidate_metadata", _path_of(group))
        self._hierarchy.consolidate_metadata(group)

    def read_array(self, node, selection=Ellipsis, dtype=None):
        """Read ``selection`` of array ``node`` into a new ``numpy.ndarray``.

        Raises ``KeyNotFound``, ``InvalidDataType`` (``dtype`` given and not
        the array's) or ``InvalidArraySlice`` (selection out of bounds).
        """
        return self._hierarchy.read_array(node, selection, dtype)

    def stored_chunks(self, node):
        """The chunks of array ``node`` present in the store, with their sizes.

        Returns a list of ``StoredChunk`` ``(chunk_coords, key, nbytes)``
        sorted by ``chunk_coords``: one per stored chunk object (per shard
        for a sharded array), found by listing the array's keys. Metadata
        documents and keys outside the chunk grid are not chunks. Raises
        ``KeyNotFound`` if ``node`` is not an array of the store.
        """
        return stored_chunks(self, node)

    def write_array(self, node, selection, x):
        """Write ``x`` to ``selection`` of array ``node``.

        ``x`` must have the array's data type (Python scalars and lists are
        converted when they fit) and broadcast to the selection's shape.
        Chunks that end up all fill value are erased rather than stored.
        Raises ``KeyNotFound``, ``InvalidDataType`` or ``InvalidArraySlice``.
        """
        self._refuse_writes("write_array", _path_of(node))
        self._hierarchy.write_array(node, selection, x)

    def reshape(self, node, shape):
        """Resize array ``node`` to ``shape`` (same rank).

        Chunks wholly outside the new shape are erased, and the part of a
        boundary chunk that falls outside is reset to the fill value, so
        growing the array again shows fill values there, never old data.
        Raises ``KeyNotFound`` or ``InvalidResizeShape``.
        """
        self._refuse_writes("reshape", _path_of(node))
        self._hierarchy.reshape(node, shape)

    def flush(self):
        """Encode and store every chunk held in the write buffer.

        Only stores whose ``buffers_writes`` is true hold any; reads through
        this object see buffered data without it. Call it before another
        process reads the store.
        """
        engine = self.__dict__.get("_zs_hierarchy")
        if engine is not None:
            engine.flush()

    def close(self):
        """Store the buffered chunks (``flush``); backends also release resources."""
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
