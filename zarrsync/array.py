"""``Array``: a NumPy-like view of one array node in a store.

Indexing follows NumPy: slices are clipped to the shape and may have
negative steps, and ``arr[sel] = x`` casts ``x`` within its kind as NumPy
assignment does (``same_kind``). The view reads its metadata from the store
on each use, so it always reflects the stored array.
"""

from collections.abc import MutableMapping

import numpy as np

from .dtypes import coerce_vlen, is_vlen
from .errors import InvalidArraySlice, InvalidDataType
from .indexing import expand_selection, normalize_selection
from .nodes import ArrayNode

__all__ = ["Array"]


class Attributes(MutableMapping):
    """The user attributes of a node; changes are written to the store at once.

    Pickles with its store (see ``Array``). Changes on a read-only store
    raise ``ReadOnlyStoreError``.
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
        return dict(self._read())

    def __repr__(self):
        return f"Attributes({self._read()!r})"


class Array:
    """A view of array ``node`` in ``store`` with NumPy indexing.

    Parameters
    ----------
    store : zarrsync.storage.Store
    node : ArrayNode or str
        The array node, or its absolute path.

    Notes
    -----
    The view pickles, with its store, at any point of its life (the store
    stores its buffered chunks first): a dask worker in another process
    reads and writes the same array, except on a ``MemoryStore``, of which
    it gets a copy; a ``ZipStore`` open for writing raises ``StoreError``
    (share one opened with mode "r"). Writes (``arr[...] = x``, ``resize``, ``attrs``) on a
    store opened read-only raise ``ReadOnlyStoreError``.

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
    """

    def __init__(self, store, node):
        if isinstance(node, str):
            node = ArrayNode.of_path(node)
        self.store = store
        self.node = node
        self.store.array_metadata(node)  # KeyNotFound now rather than on first use

    @property
    def metadata(self):
        return self.store.array_metadata(self.node)

    @property
    def shape(self):
        return self.metadata.shape

    @property
    def dtype(self):
        return self.metadata.dtype

    @property
    def chunks(self):
        return self.metadata.chunks

    @property
    def ndim(self):
        return len(self.metadata.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def fill_value(self):
        return self.metadata.fill_value

    @property
    def attrs(self):
        """The array's attributes, a mutable mapping written through to the store."""
        return Attributes(self.store, self.node)

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

    def __setitem__(self, selection, value):
        if self.store.read_only:
            self.store._refuse_writes("assign to Array", f"{self.node.path} (arr[...] = x)")
        dtype = self.dtype
        sel, flip = self._positive(selection)
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
        if flip:
            try:
                value = np.flip(np.broadcast_to(value, self._selection_shape(sel)), flip)
            except ValueError:
                raise InvalidArraySlice(f"data of shape {value.shape} does not match "
                                        f"the selection") from None
        self.store.write_array(self.node, sel, value)

    def _selection_shape(self, sel):
        return normalize_selection(sel, self.shape).out_shape

    def __array__(self, dtype=None, copy=None):
        data = self[...]
        return data if dtype is None else data.astype(dtype)

    def resize(self, shape):
        """Resize to ``shape`` (``reshape`` of the store API)."""
        self.store._refuse_writes("resize Array", self.node.path)
        self.store.reshape(self.node, shape)

    def __repr__(self):
        meta = self.metadata
        return (f"<zarrsync.Array {self.node.path} shape={meta.shape} "
                f"chunks={meta.chunks} dtype={meta.dtype}>")
