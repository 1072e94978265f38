"""An xarray backend: ``xarray.open_dataset(url, engine="zarrsync")``.

It opens Zarr v2 and v3 hierarchies lazily through zarrsync and hands
dimensions, attributes, fill values and CF encodings to xarray the way
xarray's own ``engine="zarr"`` does, so that both give identical datasets:

* dimensions come from v3 ``dimension_names`` or v2 ``_ARRAY_DIMENSIONS``
  (which is hidden from the attributes, as are v2 ``_nc*`` attributes);
* Zarr v2: the array's ``fill_value`` (unless null) becomes the ``_FillValue``
  attribute, which CF decoding turns into a mask;
* Zarr v3: the ``fill_value`` goes to ``encoding["fill_value"]`` and only a
  ``_FillValue`` attribute (base64 for floats, as xarray writes it) masks;
* ``encoding`` gets ``chunks``, ``preferred_chunks`` (used by dask's
  ``chunks={}``), ``shards`` and, for NumPy ``StringDType``, ``dtype``;
  CF decoding (times, scale/offset, coordinates) is xarray's own
  (``StoreBackendEntrypoint``).

Nothing is read until a variable is indexed or loaded; each indexing request
is one ``Store.read_array`` call (orthogonal indexing: ints, slices and
integer lists on any number of axes). The data store and its arrays pickle
(they hold a zarrsync store and nodes, not open files), so they can be sent
to dask.distributed workers.

Registered with xarray through the ``xarray.backends`` entry point
``zarrsync`` (``pyproject.toml``).
"""

import asyncio
import base64
import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from xarray.backends import BackendArray, BackendEntrypoint
from xarray.backends.common import AbstractDataStore
from xarray.backends.store import StoreBackendEntrypoint
from xarray.core import indexing
from xarray.core.utils import FrozenDict
from xarray.core.variable import Variable

from .metadata import ArrayMetadata
from .nodes import ArrayNode, GroupNode
from .storage import Store, open_store

__all__ = ["ZarrsyncBackendEntrypoint", "ZarrsyncDataStore", "ZarrsyncBackendArray"]

#: xarray's v2 dimension attribute.
DIMENSION_KEY = "_ARRAY_DIMENSIONS"

#: Names whose presence marks a Zarr hierarchy (for ``guess_can_open``).
_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray", ".zmetadata", ".zattrs")


def _group_node(group):
    """The ``GroupNode`` that xarray's ``group=`` names (``None``, ``"/"``,
    ``"a/b"`` or ``"/a/b"``)."""
    if isinstance(group, GroupNode):
        return group
    if group is None:
        return GroupNode.root()
    path = "/" + str(group).strip("/")
    return GroupNode.root() if path == "/" else GroupNode.of_path(path)


def _decode_fill_attr(value, dtype):
    """A v3 ``_FillValue`` attribute as xarray writes it (``FillValueCoder``):
    floats as base64 little-endian doubles, complex as two of them, bytes as
    base64, others as JSON values."""
    kind = dtype.kind
    if kind in "TU":
        return str(value)
    if kind == "S":
        return base64.standard_b64decode(value)
    if kind == "f":
        if not isinstance(value, (str, bytes)):
            raise TypeError(f"Failed to decode fill_value: expected str or bytes for dtype "
                            f"{dtype}, got {type(value).__name__}")
        return struct.unpack("<d", base64.standard_b64decode(value))[0]
    if kind == "c":
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise TypeError(f"Failed to decode fill_value: expected a 2-element list for "
                            f"dtype {dtype}, got {type(value).__name__}")
        real = struct.unpack("<d", base64.standard_b64decode(value[0]))[0]
        imag = struct.unpack("<d", base64.standard_b64decode(value[1]))[0]
        return complex(real, imag)
    if kind == "b":
        return bool(value)
    if kind in "iu":
        if not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"Failed to decode fill_value: expected int or float for dtype "
                            f"{dtype}, got {type(value).__name__}")
        return int(value)
    if kind == "O":
        # zarrsync's bytes arrays (object dtype): xarray writes bytes fills as base64.
        if isinstance(value, str):
            return base64.standard_b64decode(value)
        return value
    raise ValueError(f"Failed to decode fill_value. Unsupported dtype {dtype}")


def _inner_chunks_and_shards(meta):
    """``(chunks, shards)`` as zarr-python reports them: for a sharded array
    the inner chunk shape and the shard shape, else the chunk shape and None."""
    codecs = meta.codecs
    for codec in codecs:
        if getattr(codec, "name", None) == "sharding_indexed":
            inner = getattr(codec, "chunk_shape", None)
            if inner is not None:
                return tuple(int(n) for n in inner), tuple(meta.chunks)
    return tuple(meta.chunks), None


def _orthogonal(values, selection):
    """``values[selection]`` with each axis indexed on its own (ints, slices
    and integer arrays), as ``Store.read_array`` reads it."""
    for axis in reversed(range(len(selection))):
        values = values[(slice(None),) * axis + (selection[axis],)]
    return values


class _ReadsAhead:
    """Reads of whole arrays started together while a dataset opens, each
    taken by the first read of all of its array (from any copy of it); reads
    of parts before that are answered from it too."""

    def __init__(self):
        self._started = {}
        self._lock = threading.Lock()

    def __getstate__(self):
        return {}   # reads in flight stay in this process

    def __setstate__(self, state):
        self.__init__()

    def start(self, store, nodes):
        """Start reading all of each of ``nodes``, every one at once."""
        if not nodes:
            return
        pool = ThreadPoolExecutor(len(nodes))
        with self._lock:
            for node in nodes:
                self._started[node.path] = pool.submit(store.read_array, node, Ellipsis)
        pool.shutdown(wait=False)   # its threads end with the reads

    def started(self, node, take=False):
        """The read started for ``node`` (a future), or None; ``take``: hand
        it over (later calls get None)."""
        with self._lock:
            return (self._started.pop if take else self._started.get)(node.path, None)

    def clear(self):
        with self._lock:
            self._started.clear()


class ZarrsyncBackendArray(BackendArray):
    """A lazily read zarrsync array: each indexing request is one
    ``store.read_array`` call with an orthogonal selection."""

    __slots__ = ("store", "node", "shape", "dtype", "ahead")

    def __init__(self, store, node, shape, dtype, ahead=None):
        self.store = store
        self.node = node
        self.shape = tuple(shape)
        self.dtype = dtype
        #: The ``_ReadsAhead`` of the dataset being opened, or None.
        self.ahead = ahead

    def __getstate__(self):
        # Copies share ``ahead`` (xarray copies variables while it opens);
        # pickles get an empty one.
        return {"store": self.store, "node": self.node, "shape": self.shape,
                "dtype": self.dtype, "ahead": self.ahead}

    def __setstate__(self, state):
        for key, value in state.items():
            setattr(self, key, value)

    def _read(self, key):
        # ``key``: ints, slices with a positive step, and sorted 1-D int arrays.
        whole = len(key) == len(self.shape) and all(
            type(k) is slice and k.indices(n) == (0, n, 1) for k, n in zip(key, self.shape))
        selection = Ellipsis if whole else tuple(
            k if isinstance(k, (slice, np.ndarray)) else int(k) for k in key)
        started = self.ahead.started(self.node, take=whole) if self.ahead is not None else None
        if started is not None:
            try:
                values = started.result()
            except Exception:  # noqa: BLE001 -- the read below says what is wrong
                pass
            else:
                # Parts (CF decoding looks at a time axis's first and last
                # values) are copies; the whole read is handed over once.
                return values if whole else np.array(_orthogonal(values, selection))
        return self.store.read_array(self.node, selection)

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._read)

    async def async_getitem(self, key):
        """``self[key]`` on a thread, not blocking the event loop: with it,
        ``Dataset.load_async()`` reads every variable at the same time."""
        return await asyncio.to_thread(self.__getitem__, key)

    def get_array(self):
        """All of the array, read now."""
        return self.store.read_array(self.node, Ellipsis)


class ZarrsyncDataStore(AbstractDataStore):
    """The arrays and attributes of one group of a zarrsync store, for xarray.

    Parameters
    ----------
    store : zarrsync.Store
    group : GroupNode, str or None
    use_zarr_fill_value_as_mask : bool or None
        As for ``engine="zarr"``: None means True for Zarr v2 and False for v3.
    close_store : bool
        Whether ``close()`` closes the store (True when this backend opened it).
    """

    __slots__ = ("store", "group", "zarr_format", "_use_fill_as_mask", "_close_store",
                 "_arrays", "_group_attrs", "_metas", "_ahead")

    def __init__(self, store, group=None, use_zarr_fill_value_as_mask=None,
                 close_store=False, zarr_format=None):
        self.store = store
        self.group = _group_node(group)
        self._close_store = close_store
        self._ahead = _ReadsAhead()
        # Listed once (from consolidated metadata when present), as zarr's
        # ``cache_members``; on a store of round trips, while the group's own
        # metadata is read.
        pool = ThreadPoolExecutor(1) if store.reads_ahead else None
        children = pool.submit(store.find_child_nodes, self.group) if pool else None
        try:
            group_meta = store.group_metadata(self.group)
            arrays, _groups = (children.result() if children
                               else store.find_child_nodes(self.group))
        except KeyError as err:
            raise FileNotFoundError(
                f"no Zarr group {self.group.path!r} in {store!r}") from err
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        self.zarr_format = getattr(group_meta, "zarr_format", 3)
        if zarr_format is not None and int(zarr_format) != self.zarr_format:
            raise ValueError(f"zarr_format={zarr_format} was asked for, but group "
                             f"{self.group.path!r} is Zarr v{self.zarr_format}")
        self._group_attrs = {k: v for k, v in group_meta.attributes.items()
                             if not k.lower().startswith("_nc")}
        if use_zarr_fill_value_as_mask is None:
            use_zarr_fill_value_as_mask = self.zarr_format == 2
        self._use_fill_as_mask = bool(use_zarr_fill_value_as_mask)
        self._arrays = {node.name: node for node in arrays}
        # The group's consolidated metadata, where it holds some, gives every
        # array's metadata at once, as engine="zarr" takes it: no request per
        # variable (on an object store, a round trip each).
        copy = group_meta.consolidated or {}
        self._metas = {name: copy[name] for name in self._arrays
                       if isinstance(copy.get(name), ArrayMetadata)}

    def __getstate__(self):
        return {"store": self.store, "group": self.group, "zarr_format": self.zarr_format,
                "_use_fill_as_mask": self._use_fill_as_mask,
                "_close_store": self._close_store, "_arrays": self._arrays,
                "_group_attrs": self._group_attrs, "_metas": self._metas}

    def __setstate__(self, state):
        for key, value in state.items():
            setattr(self, key, value)
        self._ahead = _ReadsAhead()

    def read_indexes_ahead(self, skip=()):
        """Start reading every dimension coordinate (a 1-D array named after
        its dimension, which xarray reads while it opens, to index it) at
        once, on a store whose requests are round trips: one round trip for
        them all, not one after another. Only arrays whose metadata is known
        already (consolidated) are read ahead; ``skip``: names not to read.
        Returns the names whose reads started (taken by ``_read``, or
        dropped by ``forget_reads_ahead``)."""
        if not self.store.reads_ahead:
            return []
        wanted = []
        for name, meta in self._metas.items():
            try:
                dims, _ = self._dims_and_attrs(name, meta)
            except KeyError:
                continue
            if dims == (name,) and name not in skip:
                wanted.append(name)
        self._ahead.start(self.store, [self._arrays[name] for name in wanted])
        return wanted

    def forget_reads_ahead(self):
        """Drop the reads started ahead that nothing took: a variable read
        later is read then, as it is stored then."""
        self._ahead.clear()

    # -- the metadata of one array ---------------------------------------

    def _dims_and_attrs(self, name, meta):
        attributes = dict(meta.attributes)
        if meta.zarr_format == 3:
            dims = meta.dimension_names or ()
            if len(dims) != len(meta.shape) or any(d is None for d in dims):
                raise KeyError(
                    f"Zarr array {name!r} is missing the `dimension_names` metadata which "
                    "is required for xarray to determine variable dimensions.")
            return tuple(dims), attributes
        dims = meta.dimension_names
        if dims is None:
            raise KeyError(
                f"Zarr array {name!r} is missing the attribute `{DIMENSION_KEY}`, which is "
                "required for xarray to determine variable dimensions.")
        attributes = {k: v for k, v in attributes.items()
                      if k != DIMENSION_KEY and not k.lower().startswith("_nc")}
        return tuple(dims), attributes

    def _meta(self, name, node):
        meta = self._metas.get(name)
        return meta if meta is not None else self.store.array_metadata(node)

    def open_store_variable(self, name, node=None):
        node = self._arrays[name] if node is None else node
        meta = self._meta(name, node)
        dims, attributes = self._dims_and_attrs(name, meta)
        dtype = meta.dtype
        data = indexing.LazilyIndexedArray(
            ZarrsyncBackendArray(self.store, node, meta.shape, dtype, ahead=self._ahead))
        chunks, shards = _inner_chunks_and_shards(meta)
        encoding = {"chunks": chunks, "preferred_chunks": dict(zip(dims, chunks)),
                    "shards": shards}
        if dtype.kind == "T":
            encoding["dtype"] = dtype
        if self._use_fill_as_mask:
            if not getattr(meta, "fill_null", False) and meta.fill_value is not None:
                attributes["_FillValue"] = meta.fill_value
        else:
            if meta.zarr_format == 3:
                encoding["fill_value"] = meta.fill_value
            if "_FillValue" in attributes:
                attributes["_FillValue"] = _decode_fill_attr(attributes["_FillValue"], dtype)
        return Variable(dims, data, attributes, encoding)

    # -- AbstractDataStore ------------------------------------------------

    def get_variables(self):
        return FrozenDict((name, self.open_store_variable(name, node))
                          for name, node in self._arrays.items())

    def get_attrs(self):
        return dict(self._group_attrs)

    def get_dimensions(self):
        dimensions = {}
        for name, node in self._arrays.items():
            meta = self._meta(name, node)
            dims, _ = self._dims_and_attrs(name, meta)
            for d, s in zip(dims, meta.shape):
                if d in dimensions and dimensions[d] != s:
                    raise ValueError(f"found conflicting lengths for dimension {d} "
                                     f"({s} != {dimensions[d]})")
                dimensions[d] = s
        return dimensions

    def close(self):
        if self._close_store:
            self.store.close()


def _names(drop_variables):
    if drop_variables is None:
        return set()
    return {drop_variables} if isinstance(drop_variables, str) else set(drop_variables)


def _looks_like_zarr(path):
    text = str(path).rstrip("/")
    lowered = text.lower()
    if lowered.endswith((".zarr", ".zarr.zip")):
        return True
    base = lowered.rsplit("/", 1)[-1]
    if base in _ZARR_MARKERS:
        return True
    if "://" in text:
        return ".zarr/" in lowered + "/"
    try:
        return any(os.path.exists(os.path.join(text, m)) for m in _ZARR_MARKERS)
    except (OSError, ValueError):
        return False


class ZarrsyncBackendEntrypoint(BackendEntrypoint):
    """Open Zarr v2 and v3 hierarchies with zarrsync:
    ``xarray.open_dataset(path_or_url_or_store, engine="zarrsync")``.

    ``filename_or_obj`` is a local folder, a ``.zip`` file, a URL that
    ``zarrsync.open_store`` opens (``s3://``, ``gs://``, ``https://``, ...;
    ``storage_options`` are passed to it) or a ``zarrsync.Store``.
    """

    description = "Open Zarr v2 and v3 stores with zarrsync in xarray"
    url = "https://github.com/zarrsync/zarrsync/blob/main/docs/xarray.md"
    open_dataset_parameters = (
        "filename_or_obj", "mask_and_scale", "decode_times", "concat_characters",
        "decode_coords", "drop_variables", "use_cftime", "decode_timedelta", "group",
        "storage_options", "consolidated", "zarr_format", "use_zarr_fill_value_as_mask",
    )

    def guess_can_open(self, filename_or_obj):
        if isinstance(filename_or_obj, Store):
            return True
        if isinstance(filename_or_obj, (str, os.PathLike)):
            return _looks_like_zarr(os.fspath(filename_or_obj))
        return False

    def open_dataset(
        self,
        filename_or_obj,
        *,
        mask_and_scale=True,
        decode_times=True,
        concat_characters=True,
        decode_coords=True,
        drop_variables=None,
        use_cftime=None,
        decode_timedelta=None,
        group=None,
        storage_options=None,
        consolidated=None,
        zarr_format=None,
        use_zarr_fill_value_as_mask=None,
    ):
        # ``consolidated`` is accepted for compatibility with engine="zarr":
        # zarrsync uses consolidated metadata whenever the store holds it.
        del consolidated
        if isinstance(filename_or_obj, ZarrsyncDataStore):
            data_store = filename_or_obj
        else:
            given = isinstance(filename_or_obj, Store)
            if isinstance(filename_or_obj, (str, os.PathLike)):
                path = os.fspath(filename_or_obj)
                if "://" not in path and not os.path.exists(path):
                    raise FileNotFoundError(f"No such file or directory: {path!r}")
            store = open_store(filename_or_obj, mode="r", **(storage_options or {}))
            try:
                data_store = ZarrsyncDataStore(
                    store, group, use_zarr_fill_value_as_mask=use_zarr_fill_value_as_mask,
                    close_store=not given, zarr_format=zarr_format)
            except BaseException:
                if not given:
                    store.close()
                raise
        started = data_store.read_indexes_ahead(skip=_names(drop_variables))
        try:
            dataset = StoreBackendEntrypoint().open_dataset(
                data_store,
                mask_and_scale=mask_and_scale,
                decode_times=decode_times,
                concat_characters=concat_characters,
                decode_coords=decode_coords,
                drop_variables=drop_variables,
                use_cftime=use_cftime,
                decode_timedelta=decode_timedelta,
            )
            # Loaded here, as the reads started ahead arrive (xarray would read
            # them one after another to index them).
            for name in started:
                if name in dataset.variables:
                    dataset.variables[name].load()
            return dataset
        except BaseException:
            data_store.close()
            raise
        finally:
            data_store.forget_reads_ahead()
