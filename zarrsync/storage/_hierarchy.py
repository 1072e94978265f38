"""Every hierarchy operation of the seed, written once over the key-value interface.

Each ``Store`` object delegates its hierarchy methods to one ``Hierarchy``,
made on first use. It keeps the node documents, and gives the pipeline its
``ChunkIO``: the store's key-value methods and capabilities, plus what it
needs to be safe with several writers in the process (striped chunk locks)
and the write buffer. What it keeps is bounded: a cache of parsed array
metadata (dropped with the node), the locks, and the buffered chunks of
stores that buffer writes.

Consolidated metadata (a group's copy of the documents below it) is kept
fresh here: every change to a node below a group holding a copy retracts
the node's entries from the copy, changes the node, then publishes the new
entries (``_retract`` / ``_publish``), so a crash at any point leaves every
entry equal to its node's own document, at worst with entries missing.
Listings use the copy; a node's metadata always comes from its own document.

Zarr v2 nodes go through the same methods: a node is v3 if its ``zarr.json``
exists, else v2 if its ``.zarray`` (an array) or ``.zgroup`` (a group) does,
as zarr-python looks for them. A v2 group's consolidated copy is its
``.zmetadata``. Each copy holds the nodes of its own format only.
"""

import contextlib
import threading

import numpy as np

from .. import config, pipeline
from .._zarr2 import ZARRAY, ZATTRS, ZGROUP, ZMETADATA
from ..dtypes import coerce_value, dtype_name, parse_dtype
from ..errors import (CannotRenameRoot, InvalidArraySlice, InvalidDataType,
                      InvalidResizeShape, KeyNotFound, NodeExists, NodeInvariant, ParseError,
                      ZarrSyncError)
from ..indexing import normalize_selection
from ..metadata import (ArrayMetadata, ChunkKeyEncoding, GroupMetadata, check_document_size,
                        dump_json, load_json, node_type_of)
from ..nodes import ArrayNode, GroupNode, validate_name
from ._buffer import WriteBuffer

__all__ = ["Hierarchy"]

_N_CHUNK_LOCKS = 64

#: What error messages call the array whose ``zarr.json`` is at the store's root.
_ROOT_ARRAY = "the root array / (zarr.json at the store's root)"


def _relative(holder, node):
    """The path of ``node`` relative to group ``holder`` above it (``"a/b"``)."""
    return node.key[len(holder.key) + 1:] if holder.key else node.key


def _node_at(holder, relative, meta):
    """The node of a consolidated entry, or ``None`` if zarrsync cannot address
    its name (written by another tool)."""
    path = holder.path.rstrip("/") + "/" + relative
    try:
        return (ArrayNode.of_path(path) if isinstance(meta, ArrayMetadata)
                else GroupNode.of_path(path))
    except NodeInvariant:
        return None


def _entry(meta):
    """A node's metadata as a consolidated entry: a v3 group's in zarr-python's
    form, with an empty block of its own (its nodes are listed flat above it)."""
    if isinstance(meta, GroupMetadata):
        return GroupMetadata(meta.attributes, meta.extra,
                             consolidated={} if meta.zarr_format == 3 else None,
                             zarr_format=meta.zarr_format)
    return meta


def _chunk_prefix(node):
    """The key prefix of the keys inside ``node``: its chunks, and its v2
    documents. Its key and "/", or ``""`` for the root (the root array's
    chunk keys, such as ``"c/0/0"``, are at the root)."""
    return node.key + "/" if node.key else ""


def _v2_key(node, name):
    """The key of ``node``'s v2 document ``name`` (``.zarray``, ``.zattrs``, ...)."""
    return _chunk_prefix(node) + name


def _node_path(key, suffix):
    """The node path of a document key such as ``"a/b/.zarray"`` (``"/"`` at the root)."""
    return "/" + key[:-len(suffix)].rstrip("/")


_DOCUMENT_NAMES = ("zarr.json", ZARRAY, ZGROUP)


class Hierarchy:
    """The hierarchy operations of one store (Zarr v3 and v2), and its ``ChunkIO``."""

    def __init__(self, store):
        self.store = store
        # Striped locks make a partial chunk update (read, modify, write)
        # atomic against other writers through this store object.
        # Re-entrant: flushing the write buffer from a key-value call may
        # need a stripe the thread holds.
        self._stripes = [threading.RLock() for _ in range(_N_CHUNK_LOCKS)]
        self._layouts = {}  # metadata key -> (its bytes, ArrayLayout)
        self._shard_indexes = {}  # shard key -> (version, size, index entries)
        self._shard_index_bytes = 0
        self._index_lock = threading.Lock()
        self.buffer = WriteBuffer(self._store_buffered, self.lock)

    # -- ChunkIO: what the pipeline reads and writes through -------------------------------

    @property
    def returns_stored_objects(self):
        return self.store.returns_stored_objects

    @property
    def knows_sizes(self):
        return self.store.knows_sizes

    @property
    def shared_between_processes(self):
        return self.store.shared_between_processes

    def get(self, key):
        return self.store.get(key)

    def get_many(self, keys):
        return self.store.get_many(keys)

    @property
    def reads_ahead(self):
        return self.store.reads_ahead

    def get_many_ahead(self, keys, buffers=False):
        return self.store.get_many_ahead(keys, buffers=buffers)

    def get_ranges(self, key_ranges):
        return self.store.get_partial_values(key_ranges)

    @property
    def versions_values(self):
        return self.store.versions_values

    def get_ranges_versioned(self, key, ranges):
        return self.store.get_ranges_versioned(key, ranges)

    def get_ranges_if(self, key, ranges, version):
        return self.store.get_ranges_if(key, ranges, version)

    def shard_index(self, key):
        """``(version, size, entries)`` of shard ``key`` as last read, or ``None``."""
        return self._shard_indexes.get(key)

    def keep_shard_index(self, key, version, size, entries):
        """Keep a shard's checked index, up to ``cached_shard_index_bytes`` in all
        (the oldest half dropped beyond it)."""
        most = config.get("cached_shard_index_bytes")
        if entries.nbytes > most // 2:
            return
        with self._index_lock:
            indexes = self._shard_indexes
            if self._shard_index_bytes + entries.nbytes > most:
                for old in list(indexes)[:max(1, len(indexes) // 2)]:
                    self._shard_index_bytes -= indexes.pop(old)[2].nbytes
            old = indexes.pop(key, None)
            if old is not None:
                self._shard_index_bytes -= old[2].nbytes
            indexes[key] = (version, size, entries)
            self._shard_index_bytes += entries.nbytes

    def drop_shard_index(self, key):
        with self._index_lock:
            old = self._shard_indexes.pop(key, None)
            if old is not None:
                self._shard_index_bytes -= old[2].nbytes

    def size(self, key):
        """The size of the value at ``key``, or ``None`` if absent or unknown
        without reading it (``knows_sizes`` tells which)."""
        return self.store.getsize(key) if self.store.knows_sizes else None

    def lock(self, key):
        """The lock that serialises updates of chunk ``key``."""
        return self._stripes[hash(key) % _N_CHUNK_LOCKS]

    @contextlib.contextmanager
    def locks(self, keys):
        """Hold the locks of every chunk in ``keys`` (taken in one global order,
        so two callers with overlapping keys cannot deadlock)."""
        held = [self._stripes[s] for s in sorted({hash(k) % _N_CHUNK_LOCKS for k in keys})]
        for lock in held:
            lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(held):
                lock.release()

    def store_chunks(self, keys, values):
        """Store each chunk under its lock (``None`` erases the key)."""
        with self.locks(keys):
            self.store.set_many(keys, values)

    def put(self, keys, values):
        """``store_chunks`` for a caller that holds the chunks' locks."""
        self.store.set_many(keys, values)

    def write_buffer(self, layout, keys, nbytes):
        """The buffer for a write of ``keys`` whose partial chunks hold
        ``nbytes`` decoded, or ``None`` to store them at once.

        Flushes the array's buffered chunks that this write does not touch:
        a simulation moves on to the next chunk once the current one is done.
        """
        if not self.store.buffers_writes:
            return None
        if self.buffer.pending:
            touched = set(keys)
            prefix = layout.prefix
            self.buffer.flush(lambda k: k.startswith(prefix) and k not in touched)
        return self.buffer if nbytes <= config.get("write_buffer_bytes") else None

    def _store_buffered(self, key, layout, chunk):
        self.store.set_many([key], [layout.encode_unit(chunk)])

    def flush(self):
        """Encode and store every buffered chunk."""
        self.buffer.flush()

    # -- documents --------------------------------------------------------------------------

    def _documents(self, keys):
        """The metadata documents at ``keys`` (``None`` where absent), each read
        only up to ``max_document_bytes`` (one byte more tells a larger one)."""
        limit = config.get("max_document_bytes")
        raws = self.store.get_partial_values([(key, 0, limit + 1) for key in keys])
        for key, raw in zip(keys, raws):
            if raw is not None:
                check_document_size(len(raw), key)
        return raws

    def _document(self, key):
        return self._documents([key])[0]

    def _kinds(self, nodes):
        """``(kind, zarr_format)`` at each node's path: ``("array" | "group", 3 | 2)``,
        or ``(None, None)``. v3 first, as zarr-python looks."""
        out = []
        missing = []
        for node, raw in zip(nodes, self._documents([n.metadata_key for n in nodes])):
            if raw is None:
                missing.append(len(out))
                out.append((None, None))
            else:
                out.append((node_type_of(raw, node.metadata_key), 3))
        if missing:
            keys = [_v2_key(nodes[i], name) for i in missing for name in (ZARRAY, ZGROUP)]
            raws = self._documents(keys)
            for j, i in enumerate(missing):
                if raws[2 * j] is not None:
                    out[i] = ("array", 2)
                elif raws[2 * j + 1] is not None:
                    out[i] = ("group", 2)
        return out

    def _node_type(self, node):
        """``"array"``, ``"group"`` or ``None`` for the node's path."""
        return self._kinds([node])[0][0]

    def array_layout(self, node):
        """The ``pipeline.ArrayLayout`` of array ``node`` (cached per document)."""
        if not isinstance(node, ArrayNode):
            raise NodeInvariant(f"expected an ArrayNode, got {type(node).__name__}")
        key = node.metadata_key
        raw = self._document(key)
        if raw is None:
            return self._v2_layout(node)
        hit = self._layouts.get(key)
        if hit is not None and hit[1] is not None and (hit[0] is raw or hit[0] == raw):
            return hit[1]
        return self._parse_layout(node, key, raw)

    def _parse_layout(self, node, key, raw):
        doc = load_json(raw, key)
        if doc.get("node_type") == "group":
            raise KeyNotFound(f"{node.path} is a group, not an array")
        return self._remember(key, node, raw, ArrayMetadata.from_dict(doc, key))

    def _v2_layout(self, node):
        """``array_layout`` of a node with no ``zarr.json``: a v2 array, or none."""
        key, attrs_key = _v2_key(node, ZARRAY), _v2_key(node, ZATTRS)
        raw, attrs, group = self._documents([key, attrs_key, _v2_key(node, ZGROUP)])
        if raw is None:
            if group is not None:
                raise KeyNotFound(f"{node.path} is a Zarr v2 group, not an array")
            raise KeyNotFound(f"array {node.path} is not a member of the store")
        hit = self._layouts.get(key)
        if hit is not None and hit[0] == (raw, attrs):
            return hit[1]
        meta = ArrayMetadata.from_v2(load_json(raw, key), None if attrs is None
                                     else load_json(attrs, attrs_key), key)
        return self._remember(key, node, (raw, attrs), meta)

    def _remember(self, key, node, raw, meta):
        layout = None if meta is None else pipeline.ArrayLayout(meta, _chunk_prefix(node))
        layouts = self._layouts
        most = config.get("cached_arrays")
        if len(layouts) >= most:
            for old in list(layouts)[:max(1, most // 2)]:
                layouts.pop(old, None)
        layouts[key] = (raw, layout)
        return layout

    def _forget(self, prefix):
        """Drop the cached metadata and shard indexes of every node under key ``prefix``."""
        for key in [k for k in list(self._layouts) if k.startswith(prefix)]:
            self._layouts.pop(key, None)
        for key in [k for k in list(self._shard_indexes) if k.startswith(prefix)]:
            self.drop_shard_index(key)

    def _set_document(self, node, meta):
        """Store ``node``'s documents for ``meta``; returns what ``array_layout``
        reads back (``zarr.json``, or v2 ``(.zarray, .zattrs)``)."""
        if meta.zarr_format == 3:
            raw = meta.to_json().encode("utf-8")
            self.store.set(node.metadata_key, raw)
            return raw
        # The attributes first: the node appears with them when its
        # .zarray / .zgroup lands, and .zmetadata follows what it describes.
        attrs = dump_json(meta.attributes).encode("utf-8")
        raw = meta.to_json().encode("utf-8")
        self.store.set(_v2_key(node, ZATTRS), attrs)
        if isinstance(meta, ArrayMetadata):
            self.store.set(_v2_key(node, ZARRAY), raw)
            return raw, attrs
        self.store.set(_v2_key(node, ZGROUP), raw)
        if meta.consolidated is not None:
            self.store.set(_v2_key(node, ZMETADATA),
                           dump_json(meta.zmetadata_dict()).encode("utf-8"))
        return raw, attrs

    def _set_array_document(self, node, meta):
        """Store an array's document and cache its layout (no re-parse on next use)."""
        key = node.metadata_key if meta.zarr_format == 3 else _v2_key(node, ZARRAY)
        self._remember(key, node, self._set_document(node, meta), meta)

    def _check_ancestors(self, node):
        ancestors = node.ancestors()
        for anc, (kind, _) in zip(ancestors, self._kinds(ancestors)):
            if kind == "array":
                what = _ROOT_ARRAY if anc.is_root() else anc.path
                raise NodeExists(f"cannot create {node.path}: {what} is an array, "
                                 f"and an array holds no nodes")

    def _check_root_array_room(self, node):
        """``NodeExists`` unless the store is empty of nodes, as a root array
        needs: it is the whole store, so no group, not even the root, may exist."""
        existing = self._node_type(GroupNode.root())
        if existing is not None:
            found = ("a root array already exists" if existing == "array"
                     else "the store holds the root group /")
            raise NodeExists(f"cannot create the root array {node.path}: {found} "
                             f"(zarr.json at the store's root)")
        for key in self.store.list_prefix(""):
            for name in _DOCUMENT_NAMES:
                if key.endswith("/" + name):
                    raise NodeExists(f"cannot create the root array {node.path}, which must "
                                     f"be the whole store: the store already holds the node "
                                     f"{_node_path(key, name)}")

    def _erase_root_array(self, encoding, ndim):
        """Erase the root array's document and its chunks (the keys that its
        chunk key ``encoding`` makes at rank ``ndim``), and no other key."""
        if encoding.name == "default" and encoding.separator == "/" and ndim:
            self.store.erase_prefix("c/")
        else:
            for key in self.store.list_prefix(""):
                if encoding.coords("", key, ndim) is not None:
                    self.store.erase(key)
        for key in ("zarr.json", ZARRAY, ZATTRS):
            self.store.erase(key)
            self._forget(key)

    def _create_ancestors(self, node, zarr_format):
        """Create the missing groups above ``node``, in ``zarr_format``; returns
        ``{group: metadata}`` of those it made."""
        made = {}
        ancestors = node.ancestors()
        for anc, (kind, _) in zip(ancestors, self._kinds(ancestors)):
            if kind is None:
                made[anc] = GroupMetadata(zarr_format=zarr_format)
                self._set_document(anc, made[anc])
        return made

    # -- consolidated metadata --------------------------------------------------------------

    def _holders(self, node):
        """``[(group, GroupMetadata)]``: the groups above ``node`` that hold
        consolidated metadata, root first (``ParseError`` if a copy is bad)."""
        return self._copies(node.ancestors())

    def _copies(self, groups, documents=None):
        """``[(group, GroupMetadata)]`` of those of ``groups`` that hold
        consolidated metadata (in their ``zarr.json``, or a v2 ``.zmetadata``);
        ``documents`` (a dict) gets the ``zarr.json`` documents read on the way."""
        keys = [k for g in groups for k in (g.metadata_key, _v2_key(g, ZMETADATA))]
        raws = self._documents(keys)
        if documents is not None:
            documents.update(zip(keys[::2], raws[::2]))
        out = []
        for i, group in enumerate(groups):
            raw, zmetadata = raws[2 * i], raws[2 * i + 1]
            if raw is not None:
                doc = load_json(raw, group.metadata_key)
                if (doc.get("node_type") == "group"
                        and doc.get("consolidated_metadata") is not None):
                    out.append((group, GroupMetadata.from_dict(doc, group.metadata_key)))
            elif zmetadata is not None:
                try:
                    meta = self.group_metadata(group)
                except KeyNotFound:
                    continue   # a .zmetadata with no group: no copy zarrsync keeps
                out.append((group, meta))
        return out

    def _retract(self, holders, node, subtree):
        """Drop ``node``'s entry (and with ``subtree`` every entry below it) from
        each holder's copy, before the node changes; returns, per holder, the
        dropped entries by path relative to ``node`` (``""`` for itself)."""
        dropped = []
        for holder, meta in holders:
            rel = _relative(holder, node)
            gone = {p: m for p, m in meta.consolidated.items()
                    if p == rel or (subtree and p.startswith(rel + "/"))}
            for p in gone:
                del meta.consolidated[p]
            if gone:
                self._set_document(holder, meta)
            dropped.append({p[len(rel) + 1:] if p != rel else "": m for p, m in gone.items()})
        return dropped

    def _publish(self, holders, entries):
        """Add ``entries`` (``{node: metadata}``) to each holder's copy, after the
        nodes are written."""
        if not entries:
            return
        for holder, meta in holders:
            # A group made above a holder (whose own parent was missing) is no entry of it.
            inside = holder.key + "/" if holder.key else ""
            below = [n for n in entries if n.key.startswith(inside) and n.key != holder.key
                     and entries[n].zarr_format == meta.zarr_format]
            for node in below:
                meta.consolidated[_relative(holder, node)] = _entry(entries[node])
            if below:
                self._set_document(holder, meta)

    def _nearest_copy(self, group):
        """``(holder, consolidated)`` of the nearest group at or above ``group``
        holding consolidated metadata, ``(None, None)`` if none, or ``None`` if
        ``group`` is not a group of the store."""
        raws = {}
        copies = self._copies([*group.ancestors(), group], raws)
        # The group's own zarr.json came with the copies; v2 groups need a look.
        raw = raws.get(group.metadata_key)
        kind = (node_type_of(raw, group.metadata_key) if raw is not None
                else self._node_type(group))
        if kind != "group":
            return None
        if not copies:
            return None, None
        holder, meta = copies[-1]
        return holder, meta.consolidated

    def consolidate_metadata(self, group):
        """Store the documents of every node below ``group`` (found by listing the
        store, never from an older copy) as its consolidated metadata."""
        if not isinstance(group, GroupNode):
            raise NodeInvariant(f"expected a GroupNode, got {type(group).__name__}")
        meta = self.group_metadata(group)
        prefix = _chunk_prefix(group)
        # A copy holds the nodes of its group's format: zarr.json, or .zarray / .zgroup.
        names = ("zarr.json",) if meta.zarr_format == 3 else (ZARRAY, ZGROUP)
        keys = sorted((k for k in self.store.list_prefix(prefix)
                       if any(k == prefix + n or k.endswith("/" + n) for n in names)),
                      key=lambda k: k.count("/"))
        found = {}
        arrays = set()
        for key, raw in zip(keys, self._documents(keys)):
            name = key.rpartition("/")[2]
            rel = key[len(prefix):-len(name)].rstrip("/")
            parts = rel.split("/")
            if raw is None or not rel or rel in found or any(
                    "/".join(parts[:i]) in arrays for i in range(1, len(parts))):
                continue  # the group itself, or a key inside an array (no node)
            if meta.zarr_format == 2:
                try:
                    node = (ArrayNode.of_path if name == ZARRAY else GroupNode.of_path)(
                        group.path.rstrip("/") + "/" + rel)
                except NodeInvariant:
                    continue  # a name zarrsync cannot address (written by another tool)
                if self._kinds([node])[0] != ("array" if name == ZARRAY else "group", 2):
                    continue  # a v3 node there (zarr.json wins), or a .zarray beside
                found[rel] = (self.array_layout(node).meta if name == ZARRAY
                              else _entry(self.group_metadata(node)))
                if name == ZARRAY:
                    arrays.add(rel)
                continue
            doc = load_json(raw, key)
            if doc.get("node_type") == "array":
                found[rel] = ArrayMetadata.from_dict(doc, key)
                arrays.add(rel)
            else:
                found[rel] = _entry(GroupMetadata.from_dict(doc, key))
        meta.consolidated = found
        self._set_document(group, meta)

    # -- nodes ------------------------------------------------------------------------------

    def create_group(self, node, attrs=None, zarr_format=None):
        if not isinstance(node, GroupNode):
            raise NodeInvariant(f"expected a GroupNode, got {type(node).__name__}")
        GroupMetadata(attrs, zarr_format=zarr_format or 3)  # bad arguments fail first
        ancestors = node.ancestors()
        kinds = self._kinds([*ancestors, node])
        existing = kinds[-1][0]
        if existing == "group":
            return
        if existing == "array":
            what = _ROOT_ARRAY if node.is_root() else f"an array at {node.path}"
            raise NodeExists(f"cannot create group {node.path}: {what} already exists")
        self._check_ancestors(node)
        if zarr_format is None:
            # The format of the nearest group above it (v3 in an empty store).
            zarr_format = next((fmt for _, fmt in reversed(kinds[:-1]) if fmt is not None), 3)
        meta = GroupMetadata(attrs, zarr_format=zarr_format)
        holders = self._holders(node)
        made = self._create_ancestors(node, zarr_format)
        self._set_document(node, meta)
        self._publish(holders, {**made, node: meta})

    def create_array(self, node, *, shape, chunks, dtype, fill_value, codecs,
                     dimension_names, attributes, separator, chunk_key_encoding, overwrite,
                     zarr_format=3):
        if not isinstance(node, ArrayNode):
            raise NodeInvariant(f"expected an ArrayNode, got {type(node).__name__}")
        if zarr_format == 2:
            if chunk_key_encoding not in (None, "v2"):
                raise ParseError(f"a Zarr v2 array uses the 'v2' chunk key encoding, not "
                                 f"{chunk_key_encoding!r}")
            chunk_key_encoding, separator = "v2", separator or "."
        else:   # API.md: "/" is the separator of either encoding unless given
            chunk_key_encoding, separator = chunk_key_encoding or "default", separator or "/"
        meta = ArrayMetadata(shape, chunks, dtype, fill_value, codecs, attributes,
                             dimension_names, chunk_key_encoding, separator,
                             zarr_format=zarr_format)
        if node.is_root():
            # The root array is the whole store: overwriting it clears the store.
            if overwrite:
                self.erase_all_nodes()
            else:
                self._check_root_array_room(node)
                # Stale chunks that no zarr.json claims must not show through.
                self._erase_root_array(meta.key_encoding, meta.ndim)
            self._set_array_document(node, meta)
            return
        existing = self._node_type(node)
        if existing is not None and not overwrite:
            raise NodeExists(f"cannot create array {node.path}: "
                             f"{'an array' if existing == 'array' else 'a group'} "
                             f"already exists there")
        self._check_ancestors(node)
        holders = self._holders(node)
        self._retract(holders, node, subtree=True)
        # Clear the old node, or stale chunks no zarr.json claims, before writing.
        self._erase_prefix(node.key + "/")
        made = self._create_ancestors(node, zarr_format)
        self._set_array_document(node, meta)
        self._publish(holders, {**made, node: meta})

    def group_metadata(self, node):
        if not isinstance(node, GroupNode):
            raise NodeInvariant(f"expected a GroupNode, got {type(node).__name__}")
        raw = self._document(node.metadata_key)
        if raw is None:
            return self._v2_group_metadata(node)
        doc = load_json(raw, node.metadata_key)
        if doc.get("node_type") == "array":
            raise KeyNotFound(f"{node.path} is an array, not a group")
        return GroupMetadata.from_dict(doc, node.metadata_key)

    def _v2_group_metadata(self, node):
        """``group_metadata`` of a node with no ``zarr.json``: a v2 group, or none."""
        keys = [_v2_key(node, name) for name in (ZGROUP, ZATTRS, ZMETADATA, ZARRAY)]
        zgroup, attrs, zmetadata, zarray = self._documents(keys)
        if zgroup is None:
            if zarray is not None:
                raise KeyNotFound(f"{node.path} is a Zarr v2 array, not a group")
            raise KeyNotFound(f"group {node.path} is not a member of the store")
        return GroupMetadata.from_v2(
            load_json(zgroup, keys[0]), None if attrs is None else load_json(attrs, keys[1]),
            None if zmetadata is None else load_json(zmetadata, keys[2]), keys[0])

    def find_child_nodes(self, group):
        if not isinstance(group, GroupNode):
            raise NodeInvariant(f"expected a GroupNode, got {type(group).__name__}")
        nearest = self._nearest_copy(group)
        if nearest is None:
            return [], []
        holder, consolidated = nearest
        if holder is not None:
            return self._children_from_copy(group, holder, consolidated)
        prefix = _chunk_prefix(group)
        _, names = self.store.list_dir(prefix)
        keys = [f"{prefix}{name}/{doc}" for name in names for doc in _DOCUMENT_NAMES]
        raws = self._documents(keys)
        arrays, groups = [], []
        for i, name in enumerate(names):
            zarr_json, zarray, zgroup = raws[3 * i:3 * i + 3]
            if zarr_json is not None:
                kind = node_type_of(zarr_json, keys[3 * i])
            elif zarray is not None or zgroup is not None:
                kind = "array" if zarray is not None else "group"
            else:
                continue
            try:
                child = (ArrayNode(group, name) if kind == "array"
                         else GroupNode.create(group, name))
            except NodeInvariant:
                continue  # a name zarrsync cannot address (written by another tool)
            (arrays if kind == "array" else groups).append(child)
        return sorted(arrays), sorted(groups)

    def _children_from_copy(self, group, holder, consolidated):
        """``find_child_nodes`` answered from ``holder``'s consolidated copy."""
        below = _relative(holder, group) + "/" if group != holder else ""
        arrays, groups = [], []
        for rel, meta in consolidated.items():
            if rel.startswith(below) and "/" not in rel[len(below):]:
                child = _node_at(holder, rel, meta)
                if child is not None:
                    (arrays if isinstance(child, ArrayNode) else groups).append(child)
                    self._keep_unverified(child, meta)
        return sorted(arrays), sorted(groups)

    def _keep_unverified(self, node, meta):
        """On a store that reads ahead, keep the layout a consolidated copy gives
        for ``node``'s first read, which checks it against the array's own
        document while it reads the chunks (and reads again if they differ)."""
        if (self.store.reads_ahead and isinstance(node, ArrayNode) and meta.zarr_format == 3
                and node.metadata_key not in self._layouts
                and len(self._layouts) < config.get("cached_arrays")):
            self._layouts[node.metadata_key] = (None, pipeline.ArrayLayout(
                meta, _chunk_prefix(node)))

    def find_all_nodes(self):
        root = GroupNode.root()
        copies = self._copies([root])
        if copies:
            copy = copies[0][1].consolidated
            nodes = []
            for rel, meta in copy.items():
                node = _node_at(root, rel, meta)
                if node is not None:
                    nodes.append(node)
                    self._keep_unverified(node, meta)
            return (sorted(n for n in nodes if isinstance(n, ArrayNode)),
                    sorted([root] + [n for n in nodes if isinstance(n, GroupNode)]))
        v3, v2 = [], {}
        for key in self.store.list_prefix(""):
            name = key.rpartition("/")[2]
            if name == "zarr.json":
                v3.append(key)
            elif name in (ZARRAY, ZGROUP):
                path = _node_path(key, name)
                if v2.get(path) != ZARRAY:   # a .zarray beside a .zgroup wins, as in _kinds
                    v2[path] = name
        kinds = {}
        for key, raw in zip(v3, self._documents(v3)):
            if raw is not None:
                kinds[_node_path(key, "zarr.json")] = node_type_of(raw, key)
                if self.store.reads_ahead and kinds[_node_path(key, "zarr.json")] == "array":
                    # Kept unparsed: the first read of the array checks it
                    # while it reads the chunks, as for an array read before.
                    self._remember(key, None, raw, None)
        for path, name in v2.items():
            kinds.setdefault(path, "array" if name == ZARRAY else "group")  # v3 first
        arrays, groups = [], []
        for path, kind in kinds.items():
            try:
                node = ArrayNode.of_path(path) if kind == "array" else GroupNode.of_path(path)
            except NodeInvariant:
                continue  # a name zarrsync cannot address (written by another tool)
            (arrays if kind == "array" else groups).append(node)
        return sorted(arrays), sorted(groups)

    def _erase_prefix(self, prefix):
        self.store.erase_prefix(prefix)
        self._forget(prefix)

    def erase_group_node(self, node):
        if not isinstance(node, GroupNode):
            raise NodeInvariant(f"expected a GroupNode, got {type(node).__name__}")
        if node.is_root():
            try:
                kind = self._node_type(node)
            except ParseError:
                kind = None  # an unreadable root document goes with everything else
            if kind != "array":  # a root array is no group: erase_array_node erases it
                self.erase_all_nodes()
        elif self._node_type(node) != "array":
            self._retract(self._holders(node), node, subtree=True)
            self._erase_prefix(node.key + "/")

    def erase_array_node(self, node):
        if not isinstance(node, ArrayNode):
            raise NodeInvariant(f"expected an ArrayNode, got {type(node).__name__}")
        if not node.is_root():
            if self._node_type(node) != "group":
                self._retract(self._holders(node), node, subtree=True)
                self._erase_prefix(node.key + "/")
            return
        if self._node_type(node) != "array":
            return  # a root group is no array: erase_group_node erases it
        try:
            meta = self.array_layout(node).meta
        except ParseError:
            # An unreadable document: erase the keys a default encoding makes.
            self.store.erase("c")
            self._erase_root_array(ChunkKeyEncoding(), 1)
            self._erase_root_array(ChunkKeyEncoding("v2"), 1)
            return
        self._erase_root_array(meta.key_encoding, meta.ndim)

    def erase_all_nodes(self):
        self._erase_prefix("")

    def group_exists(self, node):
        # GroupNode.root() exists only if the root zarr.json is a group document
        # (False in an empty store, and in a store that is a root array).
        return isinstance(node, GroupNode) and self._node_type(node) == "group"

    def array_exists(self, node):
        return isinstance(node, ArrayNode) and self._node_type(node) == "array"

    def _rename(self, node, new_name, kind):
        if node.parent is None:
            raise CannotRenameRoot(f"the root {kind} / cannot be renamed: it has no parent "
                                   f"group to hold another name")
        validate_name(new_name)
        if self._node_type(node) != kind:
            raise KeyNotFound(f"{kind} {node.path} is not a member of the store")
        new = type(node).create(node.parent, new_name)
        if new == node:
            return new
        existing = self._node_type(new)
        if existing is not None:
            raise NodeExists(f"cannot rename {node.path}: {'an' if existing == 'array' else 'a'} "
                             f"{existing} already exists at {new.path}")
        holders = self._holders(node)
        dropped = self._retract(holders, node, subtree=True)
        self.store.move_prefix(node.key + "/", new.key + "/")
        self._forget(node.key + "/")
        # The moved documents are the dropped entries, under the new name.
        for (holder, meta), entries in zip(holders, dropped):
            base = _relative(holder, new)
            for rel, entry in entries.items():
                meta.consolidated[base + "/" + rel if rel else base] = entry
            if entries:
                self._set_document(holder, meta)
        return new

    def rename_group(self, node, new_name):
        if not isinstance(node, GroupNode):
            raise NodeInvariant(f"expected a GroupNode, got {type(node).__name__}")
        return self._rename(node, new_name, "group")

    def rename_array(self, node, new_name):
        if not isinstance(node, ArrayNode):
            raise NodeInvariant(f"expected an ArrayNode, got {type(node).__name__}")
        return self._rename(node, new_name, "array")

    def set_attributes(self, node, attributes):
        if isinstance(node, ArrayNode):
            meta = self.array_layout(node).meta
            new = meta.with_shape(meta.shape)
            new.attributes = GroupMetadata(attributes).attributes
            holders = self._holders(node)
            self._retract(holders, node, subtree=False)
            self._set_array_document(node, new)
        else:
            new = self.group_metadata(node)  # keeps the group's own consolidated copy
            new.attributes = GroupMetadata(attributes).attributes
            holders = self._holders(node)
            self._retract(holders, node, subtree=False)
            if new.zarr_format == 2 and new.consolidated is not None:
                # Its .zmetadata repeats its .zattrs, and the two files cannot
                # change at once: drop the copy until both are written.
                self.store.erase(_v2_key(node, ZMETADATA))
            self._set_document(node, new)
        self._publish(holders, {node: new})

    # -- data -------------------------------------------------------------------------------

    def read_array(self, node, selection, dtype):
        key = node.metadata_key
        hit = self._layouts.get(key) if self.store.reads_ahead else None
        if hit is not None and hit[1] is None:   # a document found by find_all_nodes
            try:
                hit = (hit[0], self._parse_layout(node, key, hit[0]))
            except ZarrSyncError:
                hit = None   # read it again below, and say what is wrong with it
        if hit is None:
            return self._read_array(node, self.array_layout(node), selection, dtype)
        # The document is read while the chunks are, with the layout it had last
        # time: one round trip on a remote store. If it changed, read again.
        pending = self.store.get_partial_values_ahead(
            [(key, 0, config.get("max_document_bytes") + 1)])
        try:
            out, failure = self._read_array(node, hit[1], selection, dtype), None
        except Exception as e:   # noqa: BLE001 -- it counts only if the layout held
            out, failure = None, e
        raw = pending()[0]
        if raw is None:   # gone, or a v2 array now: look again
            return self._read_array(node, self.array_layout(node), selection, dtype)
        if raw != hit[0] and not self._confirms(node, key, raw, hit):
            # Changed meanwhile: read again with the document just read.
            check_document_size(len(raw), key)
            return self._read_array(node, self._parse_layout(node, key, raw), selection, dtype)
        if failure is not None:
            raise failure
        return out

    def _confirms(self, node, key, raw, hit):
        """Whether document ``raw`` says what the unverified layout of ``hit``
        (from a consolidated copy) said; it is then kept with its document."""
        if hit[0] is not None:
            return False
        try:
            check_document_size(len(raw), key)
            return self._parse_layout(node, key, raw).meta == hit[1].meta
        except ZarrSyncError:
            return False   # read again below, and say what is wrong with it

    def _read_array(self, node, layout, selection, dtype):
        meta = layout.meta
        if dtype is not None and parse_dtype(dtype, object_as_bytes=True) != meta.dtype:
            raise InvalidDataType(f"array {node.path} holds {meta.data_type}, not "
                                  f"{dtype_name(parse_dtype(dtype, object_as_bytes=True))}")
        sel = normalize_selection(selection, meta.shape)
        out = pipeline.read(self, layout, sel)
        # Integer indices drop their axes; ``out`` itself when nothing is dropped.
        return out if out.shape == sel.out_shape else out.reshape(sel.out_shape)

    def write_array(self, node, selection, x):
        layout = self.array_layout(node)
        meta = layout.meta
        value = coerce_value(x, meta.dtype)
        sel = normalize_selection(selection, meta.shape)
        try:
            value = np.broadcast_to(value, sel.out_shape).reshape(sel.full_shape)
        except ValueError:
            raise InvalidArraySlice(f"data of shape {value.shape} does not match the "
                                    f"selection shape {sel.out_shape}") from None
        pipeline.write(self, layout, sel, value)

    def reshape(self, node, shape):
        layout = self.array_layout(node)
        meta = layout.meta
        try:
            shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise InvalidResizeShape(f"a shape must be a sequence of ints, got {shape!r}") from None
        if len(shape) != len(meta.shape):
            raise InvalidResizeShape(f"cannot resize array {node.path} to {shape}: expected "
                                     f"{len(meta.shape)} dimensions (its rank), got {len(shape)}")
        if any(s < 0 for s in shape):
            raise InvalidResizeShape(f"cannot resize array {node.path} to {shape}: sizes must "
                                     f"be >= 0")
        try:
            resized = meta.with_shape(shape)
        except ParseError as e:
            raise InvalidResizeShape(f"cannot resize array {node.path} to {shape}: {e}") from None
        holders = self._holders(node)
        self._retract(holders, node, subtree=False)
        shrunk = [d for d, (new, old) in enumerate(zip(shape, meta.shape)) if new < old]
        for d in shrunk:
            # The boundary chunks keep their part inside the new shape; the
            # rest of them becomes fill value (old data must not reappear).
            new, chunk = shape[d], meta.chunks[d]
            end = min(meta.shape[d], -(-new // chunk) * chunk)
            if end > new:
                region = [slice(None)] * len(shape)
                region[d] = slice(new, end)
                self.write_array(node, tuple(region), layout.fill)
        if shrunk:
            encoding = meta.key_encoding
            for key in self.store.list_prefix(layout.prefix):
                coords = encoding.coords(layout.prefix, key, len(shape))
                if coords is not None and any(c * n >= s for c, n, s in
                                              zip(coords, meta.chunks, shape)):
                    self.store.erase(key)
        self._set_array_document(node, resized)
        self._publish(holders, {node: resized})
