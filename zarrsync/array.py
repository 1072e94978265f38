"""``Array``: a NumPy-like view of one array node in a store.

Indexing follows NumPy: slices are clipped to the shape and may have
negative steps, and ``arr[sel] = x`` casts ``x`` within its kind as NumPy
assignment does (``same_kind``). The view reads its metadata from the store
on each use, so it always reflects the stored array. ``Array.info`` is an
``ArrayInfo``: a summary of the array and of what it takes in the store.
"""

import html
import json
from collections.abc import MutableMapping

import numpy as np

from .dtypes import coerce_vlen, is_vlen
from .errors import (InvalidArraySlice, InvalidDataType, InvalidResizeShape, NodeInvariant,
                     ParseError)
from .indexing import expand_selection, normalize_selection
from .metadata import encode_fill_value
from .nodes import ArrayNode

__all__ = ["Array", "ArrayInfo", "Attributes"]


def _printable(text):
    """``text`` with each unprintable character written as its escape (a
    newline as backslash-n): names come from the store, and printing one in a
    terminal must not start a new line or send a control sequence."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _data_type_text(meta):
    """A short name for the array's data type: the Zarr name where it is a
    string (``"float32"``, ``"string"``), else NumPy's (``"datetime64[ns]"``)."""
    name = meta.data_type
    return name if isinstance(name, str) else str(meta.dtype)


class Attributes(MutableMapping):
    """The user attributes of a node; changes are written to the store at once.

    A mutable mapping over the node's ``attributes``: every read asks the
    store, and every change rewrites the node's metadata document (and any
    consolidated copy above it). Pickles with its store (see ``Array``).
    Changes on a read-only store raise ``ReadOnlyStoreError``.

    Parameters
    ----------
    store : zarrsync.storage.Store
    node : ArrayNode or GroupNode
    """

    def __init__(self, store, node):
        self._store = store
        self._node = node

    def _read(self):
        if isinstance(self._node, ArrayNode):
            return self._store.array_metadata(self._node).attributes
        return self._store.group_metadata(self._node).attributes

    def __getitem__(self, key):
        return self._read()[key]

    def __setitem__(self, key, value):
        if self._store.read_only:
            self._store._refuse_writes(f"set attrs[{key!r}] of", self._node.path)
        attrs = dict(self._read())
        attrs[key] = value
        self._store.set_attributes(self._node, attrs)

    def __delitem__(self, key):
        if self._store.read_only:
            self._store._refuse_writes(f"delete attrs[{key!r}] of", self._node.path)
        attrs = dict(self._read())
        del attrs[key]
        self._store.set_attributes(self._node, attrs)

    def __iter__(self):
        return iter(self._read())

    def __len__(self):
        return len(self._read())

    def asdict(self):
        """The attributes as a new ``dict``."""
        return dict(self._read())

    def __repr__(self):
        return f"Attributes({self._read()!r})"


class NodeView:
    """What the ``Array`` and ``Group`` views share: a store and a node in it.

    The view holds nothing else; every property reads the store.
    """

    _node_class = None   # ArrayNode or GroupNode

    def __init__(self, store, node):
        if isinstance(node, str):
            node = self._node_class.of_path(node)
        if not isinstance(node, self._node_class):
            kind = self._node_class.__name__
            raise NodeInvariant(f"expected {'an' if kind[0] == 'A' else 'a'} {kind} or a "
                                f"path, got {type(node).__name__}")
        self.store = store
        self.node = node
        self.metadata   # noqa: B018 -- KeyNotFound now rather than on first use

    @classmethod
    def _existing(cls, store, node):
        """The view of a node the caller has just found or made (no check)."""
        view = object.__new__(cls)
        view.store = store
        view.node = node
        return view

    @property
    def path(self):
        """The node's absolute path in its store, such as ``"/group/temp"`` (``"/"``
        for the root)."""
        return self.node.path

    @property
    def name(self):
        """The node's name: the last part of its path (``""`` for the root)."""
        return self.node.name

    @property
    def zarr_format(self):
        """The node's Zarr format: 3, or 2 for a ``.zarray`` / ``.zgroup`` node."""
        return self.metadata.zarr_format

    @property
    def attrs(self):
        """The node's attributes, a mutable mapping written through to the store."""
        return Attributes(self.store, self.node)


class Array(NodeView):
    """A view of array ``node`` in ``store`` with NumPy indexing.

    Parameters
    ----------
    store : zarrsync.storage.Store
    node : ArrayNode or str
        The array node, or its absolute path.

    Raises
    ------
    KeyNotFound
        If no array is at ``node`` in ``store``.

    See Also
    --------
    open_array, open : open an array by path or URL.

    Notes
    -----
    The view pickles, with its store, at any point of its life (the store
    stores its buffered chunks first): a dask worker in another process
    reads and writes the same array, except on a ``MemoryStore``, of which
    it gets a copy; a ``ZipStore`` open for writing raises ``StoreError``
    (share one opened with mode "r"). Writes (``arr[...] = x``, ``resize``,
    ``append``, ``attrs``) on a store opened read-only raise
    ``ReadOnlyStoreError``.

    Examples
    --------
    >>> import numpy as np, zarrsync as zs
    >>> store = zs.MemoryStore()
    >>> node = zs.ArrayNode.of_path("/a")
    >>> store.create_array(node, shape=(4, 4), chunks=(2, 2), dtype="int32")
    >>> arr = zs.Array(store, node)
    >>> arr[1:3, ::-1] = np.arange(8, dtype="int32").reshape(2, 4)
    >>> arr[2]
    array([7, 6, 5, 4], dtype=int32)
    >>> arr.append(np.ones((1, 4), dtype="int32"))
    (5, 4)
    """

    _node_class = ArrayNode

    @property
    def metadata(self):
        """The array's ``ArrayMetadata``, read from the store."""
        return self.store.array_metadata(self.node)

    @property
    def shape(self):
        """The array's shape, a tuple of int."""
        return self.metadata.shape

    @property
    def dtype(self):
        """The array's data type, a ``numpy.dtype``."""
        return self.metadata.dtype

    @property
    def chunks(self):
        """The shape of the chunks of the array's chunk grid (of its shards, if
        it is sharded): a tuple of int."""
        return self.metadata.chunks

    @property
    def ndim(self):
        """The number of dimensions."""
        return len(self.metadata.shape)

    @property
    def size(self):
        """The number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self):
        """The size of the array's data in memory, as NumPy counts it:
        ``size * dtype.itemsize``."""
        meta = self.metadata
        return int(np.prod(meta.shape, dtype=np.int64)) * meta.dtype.itemsize

    @property
    def fill_value(self):
        """The value of elements never written."""
        return self.metadata.fill_value

    @property
    def info(self):
        """A summary of the array and of what it takes in the store: an ``ArrayInfo``.

        Reading it lists the array's stored chunks (one listing, and one size
        request per chunk on backends that cannot tell sizes from a listing).
        """
        return ArrayInfo(self)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def _positive(self, selection):
        """Rewrite negative-step slices as positive ones; return the axes to flip."""
        shape = self.shape
        sel = expand_selection(selection, len(shape))
        out, flip, out_axis = [], [], 0
        for s, n in zip(sel, shape):
            if isinstance(s, slice):
                start, stop, step = s.indices(n)
                if step < 0:
                    count = len(range(start, stop, step))
                    last = start + (count - 1) * step
                    s = slice(last, start + 1, -step) if count else slice(0, 0, 1)
                    flip.append(out_axis)
                else:
                    s = slice(start, stop, step)
                out_axis += 1
            elif isinstance(s, (list, tuple, np.ndarray, range)):
                out_axis += 1
            out.append(s)
        return tuple(out), tuple(flip)

    def __getitem__(self, selection):
        sel, flip = self._positive(selection)
        data = self.store.read_array(self.node, sel)
        return np.flip(data, flip).copy() if flip else data

    @staticmethod
    def _coerce(value, dtype):
        """``value`` as an array of ``dtype``, cast as NumPy assignment casts
        (``same_kind``); ``InvalidDataType`` if it cannot be."""
        if is_vlen(dtype):
            # str/bytes: no casting between kinds, and no detour through a
            # fixed-width array (which would drop trailing NULs).
            value = coerce_vlen(value, dtype)
        elif (isinstance(value, (bool, int, float, complex)) and not isinstance(value, np.generic)
                and np.result_type(value, dtype) == dtype):
            # A Python scalar is "weak" (NEP 50): it takes the array's type, so
            # ``arr[...] = 0`` works on a uint8 array as in NumPy.
            try:
                value = np.asarray(value, dtype=dtype)
            except OverflowError as e:
                raise InvalidDataType(f"{value!r} does not fit {dtype}: {e}") from None
        value = np.asarray(value)
        if value.dtype != dtype:
            if not np.can_cast(value.dtype, dtype, casting="same_kind"):
                raise InvalidDataType(f"cannot assign {value.dtype} data to an array of "
                                      f"{dtype} (casting must be 'same_kind')")
            value = value.astype(dtype)
        return value

    def __setitem__(self, selection, value):
        if self.store.read_only:
            self.store._refuse_writes("assign to Array", f"{self.node.path} (arr[...] = x)")
        sel, flip = self._positive(selection)
        value = self._coerce(value, self.dtype)
        if flip:
            wanted = self._selection_shape(sel)
            try:
                value = np.flip(np.broadcast_to(value, wanted), flip)
            except ValueError:
                raise InvalidArraySlice(f"data of shape {value.shape} does not match the "
                                        f"selection shape {tuple(wanted)}") from None
        self.store.write_array(self.node, sel, value)

    def _selection_shape(self, sel):
        return normalize_selection(sel, self.shape).out_shape

    def __array__(self, dtype=None, copy=None):
        data = self[...]
        return data if dtype is None else data.astype(dtype)

    def resize(self, shape):
        """Resize to ``shape`` (``reshape`` of the store API).

        Parameters
        ----------
        shape : sequence of int
            The new shape, of the same rank. Chunks wholly outside it are
            erased; growing shows fill values in the new region.

        Raises
        ------
        InvalidResizeShape
            If the rank differs or a length is negative.
        """
        self.store._refuse_writes("resize Array", self.node.path)
        self.store.reshape(self.node, shape)

    def append(self, data, axis=0):
        """Grow the array along ``axis`` by the length of ``data``, and write ``data`` there.

        Parameters
        ----------
        data : array_like
            Data of the array's rank whose other axes have the array's lengths.
            It is cast to the array's data type as ``arr[...] = data`` casts.
        axis : int, default 0
            The axis to grow; negative values count from the end.

        Returns
        -------
        tuple of int
            The new shape.

        Raises
        ------
        InvalidResizeShape
            If the array is 0-d, ``axis`` is out of range, or ``data``'s rank
            or other axes do not match the array's.
        InvalidDataType
            If ``data`` cannot be cast to the array's data type.
        ReadOnlyStoreError
            If the store is read-only.

        Notes
        -----
        Everything is checked before the array changes: a failed check leaves
        it as it was. If writing the data fails, the array is resized back.
        Appends to one array must not run at the same time (each reads the
        shape, then resizes).

        Examples
        --------
        >>> import numpy as np, zarrsync as zs
        >>> store = zs.MemoryStore()
        >>> store.create_array(zs.ArrayNode.of_path("/t"), shape=(0, 3), chunks=(4, 3),
        ...                    dtype="float64")
        >>> arr = zs.Array(store, "/t")
        >>> arr.append(np.zeros((2, 3)))
        (2, 3)
        >>> arr.append(np.ones((5, 2)), axis=1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        zarrsync.errors.InvalidResizeShape: cannot append data of shape (5, 2) ...
        """
        self.store._refuse_writes("append to Array", self.node.path)
        meta = self.metadata
        shape, path = tuple(meta.shape), self.node.path
        ndim = len(shape)
        if ndim == 0:
            raise InvalidResizeShape(f"cannot append to the 0-d array {path}: it has no "
                                     f"axis to grow")
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise InvalidResizeShape(f"axis must be an int, got {axis!r}")
        if not -ndim <= axis < ndim:
            raise InvalidResizeShape(f"axis {axis} is out of range for the {ndim}-d "
                                     f"array {path}")
        axis = int(axis) % ndim
        value = self._coerce(data, meta.dtype)
        expected = tuple("*" if d == axis else str(n) for d, n in enumerate(shape))
        if value.ndim != ndim or any(v != n for d, (v, n) in enumerate(zip(value.shape, shape))
                                     if d != axis):
            raise InvalidResizeShape(
                f"cannot append data of shape {value.shape} along axis {axis} to array "
                f"{path} of shape {shape}: the other axes must match, expected shape "
                f"({', '.join(expected)}{',' if ndim == 1 else ''})")
        grow = value.shape[axis]
        if grow == 0:
            return shape
        new_shape = shape[:axis] + (shape[axis] + grow,) + shape[axis + 1:]
        try:
            meta.with_shape(new_shape)  # the new extent must be one the metadata allows
        except ParseError as e:
            raise InvalidResizeShape(f"cannot append {grow} along axis {axis} to array "
                                     f"{path} of shape {shape}: {e}") from None
        self.store.reshape(self.node, new_shape)
        region = tuple(slice(shape[axis], None) if d == axis else slice(None)
                       for d in range(ndim))
        try:
            self.store.write_array(self.node, region, value)
        except BaseException:
            self.store.reshape(self.node, shape)  # nothing appended: the old shape again
            raise
        return new_shape

    def __repr__(self):
        meta = self.metadata
        return (f"<zarrsync.Array {_printable(self.node.path)} shape={meta.shape} "
                f"chunks={meta.chunks} dtype={_data_type_text(meta)}>")


def _nbytes_text(n):
    """``"1234567 (1.2 MiB)"``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n} ({n / size:.1f} {unit})"
    return f"{n}"


def _json_text(value):
    return json.dumps(value, ensure_ascii=False)


def _codec_text(doc):
    """A codec's spec document as one line: ``zstd(level=0, checksum=false)``."""
    config = doc.get("configuration") or {}
    parts = []
    for key, value in config.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v
                                                     for v in value):
            text = "[" + ", ".join(_codec_text(v) for v in value) + "]"
        else:
            text = _json_text(value)
        parts.append(f"{key}={text}")
    return f"{doc['name']}({', '.join(parts)})"


def _fill_text(value):
    if isinstance(value, (str, bytes)):
        return repr(value)
    return str(value)


class ArrayInfo:
    """A summary of an array and of what it takes in its store (``Array.info``).

    ``str()`` (and ``repr``) is a readable table, one field a line;
    ``to_dict()`` gives the same fields as JSON-able values. The fields are
    read once, when the object is made.

    Parameters
    ----------
    array : Array

    Attributes
    ----------
    path : str
        The array's path in the store.
    store : str
        The store's ``repr``.
    zarr_format : int
        3, or 2 for a ``.zarray`` array.
    data_type : str or dict
        The Zarr data type, as the metadata document writes it.
    shape : tuple of int
    chunk_shape : tuple of int
        The shape of the chunks the data is encoded in: for a sharded array,
        the inner chunks of each shard.
    shard_shape : tuple of int or None
        The shard shape (the array's chunk grid), or ``None`` if the array is
        not sharded.
    fill_value : scalar
    codecs : list of dict
        The codec chain as spec documents.
    chunk_key_encoding : dict
    dimension_names : tuple of (str or None), or None
    read_only : bool
        Whether the store is open read-only.
    nchunks : int
        The number of chunks in the chunk grid (of shards, if sharded).
    nchunks_stored : int
        How many of them the store holds (chunks equal to the fill value
        everywhere are not stored).
    nbytes : int or None
        The size of the whole array's data uncompressed (``None`` for
        variable-length data types, whose size depends on the values).
    nbytes_stored : int
        The total size of the stored chunk objects (metadata documents not
        included).
    compression_ratio : float or None
        ``nbytes / nbytes_stored``; ``None`` if either is unknown or zero.
    """

    def __init__(self, array):
        meta = array.metadata
        stored = array.store.stored_chunks(array.node)
        self.path = array.node.path
        self.store = repr(array.store)
        self.zarr_format = meta.zarr_format
        self.data_type = meta.data_type
        self._data_type_text = _data_type_text(meta)
        self.shape = tuple(meta.shape)
        inner = meta.chain.inner_chunks   # the codec that holds inner chunks: sharding
        self.chunk_shape = tuple(inner.chunk_shape) if inner is not None else tuple(meta.chunks)
        self.shard_shape = tuple(meta.chunks) if inner is not None else None
        self.fill_value = meta.fill_value
        self._fill_json = encode_fill_value(meta.fill_value, meta.dtype)
        self.codecs = [c.to_dict() for c in meta.codecs]
        self.chunk_key_encoding = meta.key_encoding.to_dict()
        self.dimension_names = meta.dimension_names
        self.read_only = bool(array.store.read_only)
        self.nchunks = int(np.prod([-(-s // c) for s, c in zip(meta.shape, meta.chunks)],
                                   dtype=np.int64))
        self.nchunks_stored = len(stored)
        self.nbytes_stored = sum(c.nbytes for c in stored)
        self.nbytes = (None if is_vlen(meta.dtype) else
                       int(np.prod(meta.shape, dtype=np.int64)) * meta.dtype.itemsize)
        self.compression_ratio = (self.nbytes / self.nbytes_stored
                                  if self.nbytes and self.nbytes_stored else None)

    def _rows(self):
        """``[(label, text)]``: the fields as ``str()`` shows them."""
        sharded = self.shard_shape is not None
        encoding = self.chunk_key_encoding
        rows = [
            ("Path", _printable(self.path)),
            ("Store", _printable(self.store)),
            ("Zarr format", str(self.zarr_format)),
            ("Data type", self._data_type_text),
            ("Shape", str(self.shape)),
            ("Chunk shape", str(self.chunk_shape)),
        ]
        if sharded:
            rows.append(("Shard shape", str(self.shard_shape)))
        rows += [
            ("Fill value", _fill_text(self.fill_value)),
            ("Codecs", ", ".join(_codec_text(c) for c in self.codecs)),
            ("Chunk key encoding", f"{encoding['name']} (separator "
                                   f"{encoding['configuration']['separator']!r})"),
            ("Dimension names", "None" if self.dimension_names is None else
             _printable(", ".join("None" if n is None else n for n in self.dimension_names))),
            ("Read-only", str(self.read_only)),
            ("Shards stored" if sharded else "Chunks stored",
             f"{self.nchunks_stored} of {self.nchunks}"),
            ("Uncompressed bytes", "unknown (variable-length data type)"
             if self.nbytes is None else _nbytes_text(self.nbytes)),
            ("Stored bytes", _nbytes_text(self.nbytes_stored)),
            ("Compression ratio", "n/a" if self.compression_ratio is None
             else f"{self.compression_ratio:.2f}"),
        ]
        return rows

    def __str__(self):
        rows = self._rows()
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}} : {text}" for label, text in rows)

    __repr__ = __str__

    def _repr_html_(self):
        cells = "".join(f"<tr><th style=\"text-align: left\">{html.escape(label)}</th>"
                        f"<td style=\"text-align: left\">{html.escape(text)}</td></tr>"
                        for label, text in self._rows())
        return f"<table class=\"zarrsync-array-info\">{cells}</table>"

    def to_dict(self):
        """The fields as a dict of JSON-able values (``fill_value`` and
        ``data_type`` as the metadata document writes them)."""
        return {
            "path": self.path,
            "store": self.store,
            "zarr_format": self.zarr_format,
            "data_type": self.data_type,
            "shape": list(self.shape),
            "chunk_shape": list(self.chunk_shape),
            "shard_shape": None if self.shard_shape is None else list(self.shard_shape),
            "fill_value": self._fill_json,
            "codecs": self.codecs,
            "chunk_key_encoding": self.chunk_key_encoding,
            "dimension_names": (None if self.dimension_names is None
                                else list(self.dimension_names)),
            "read_only": self.read_only,
            "nchunks": self.nchunks,
            "nchunks_stored": self.nchunks_stored,
            "nbytes": self.nbytes,
            "nbytes_stored": self.nbytes_stored,
            "compression_ratio": self.compression_ratio,
        }
