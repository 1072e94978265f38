"""Every hierarchy operation of the seed, written once over the key-value interface.

``Store`` (in ``_base``) inherits from ``Hierarchy``; a backend provides
``get``, ``get_partial_values``, ``set``, ``erase``, ``erase_prefix``,
``list_prefix`` and ``list_dir``, and this module does the rest: node
documents, chunk planning, encoding and decoding.
"""

import contextlib
import threading

import numpy as np

from .._kernels import memory, transform
from ..codecs._vlen import all_fill, coerce_vlen, fill_array, is_vlen, new_filled
from .. import config
from ..config import run_chunks
from ..errors import (
    CannotRenameRoot,
    InvalidArraySlice,
    InvalidDataType,
    InvalidResizeShape,
    KeyNotFound,
    NodeExists,
    NodeInvariant,
)
from ..indexing import CoveredScatter, ElementPlan, normalize_selection
from ..metadata import (
    ArrayMetadata,
    GroupMetadata,
    _load_json,
    dtype_name,
    node_type_of,
    parse_dtype,
)
from ..nodes import ArrayNode, GroupNode, validate_name
from . import _buffer
from ._sharded import ShardLayout

__all__ = ["Hierarchy"]

_N_CHUNK_LOCKS = 64
_LOCKS_GUARD = threading.Lock()

# Small whole chunks are compressed in batches (_write_small_chunks_at_once)
# when a write covers at least this many, holding at most this many raw bytes
# in a batch.
_MIN_BATCHED_CHUNKS = 32
_MAX_BATCH_BYTES = 16 << 20
#: A box of uncompressed chunks is copied in this many parts per thread.
_PARTS_PER_THREAD = 4
#: The most bytes of chunks ``_write_covered_in_groups`` gathers together.
_GROUP_BYTES = 4 << 20

# Which Python value kinds a data type accepts on write (NumPy kind letters).
_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf", "c": "iufc"}


class _ArrayState:
    """What every read and write of one array needs, derived once from its metadata."""

    __slots__ = ("meta", "chain", "prefix", "separator", "v2", "fill_array",
                 "fill_bytes", "full_chunks", "sharded", "vlen", "chunk_nbytes")

    def __init__(self, node, meta):
        self.meta = meta
        self.chain = meta.chain
        self.prefix = node.key + "/"
        self.separator = meta.separator
        self.v2 = meta.chunk_key_encoding == "v2"
        # string and bytes: elements are references, copied and compared by value.
        self.vlen = is_vlen(meta.dtype)
        if self.vlen:
            self.fill_array = fill_array(meta.fill_value, meta.dtype)
            self.fill_bytes = None
        else:
            self.fill_array = np.array(meta.fill_value, dtype=meta.dtype)
            self.fill_bytes = self.fill_array.reshape(1).view(np.uint8)
        # Chunks with a coordinate below this on every axis lie wholly inside the array.
        self.full_chunks = tuple(s // c for s, c in zip(meta.shape, meta.chunks))
        self.chunk_nbytes = int(np.prod(meta.chunks, dtype=np.int64)) * meta.dtype.itemsize
        # Sharding alone: plan on the inner grid, read byte ranges (see _sharded).
        self.sharded = ShardLayout(meta) if ShardLayout.applies_to(meta.chain) else None

    def chunk_key(self, coords):
        """The store key of the chunk at grid ``coords``."""
        if not coords:
            return self.prefix + ("0" if self.v2 else "c")
        joined = self.separator.join(map(str, coords))
        return self.prefix + (joined if self.v2 else "c" + self.separator + joined)

    def is_edge(self, coords):
        return any(c >= f for c, f in zip(coords, self.full_chunks))

    def new_chunk(self, edge):
        """A writable chunk; edge chunks start as the fill value (their padding is stored)."""
        if edge:
            return new_filled(self.meta.chunks, self.fill_array)
        return np.empty(self.meta.chunks, dtype=self.meta.dtype)

    def writable_chunk(self, raw, key):
        """The decoded chunk at ``key`` as a new C-contiguous writable array."""
        if raw is None:
            return new_filled(self.meta.chunks, self.fill_array)
        decoded = self.chain.decode(raw, key)
        if self.vlen:
            return np.array(decoded, order="C")
        chunk = np.empty(self.meta.chunks, dtype=self.meta.dtype)
        transform.copy_into(decoded, chunk)
        return chunk

    def chunk_coords(self, key):
        """The grid coordinates encoded in a chunk ``key``, or None if it is no chunk key."""
        rest = key[len(self.prefix):]
        ndim = len(self.meta.shape)
        if not self.v2:
            if ndim == 0:
                return () if rest == "c" else None
            if not rest.startswith("c" + self.separator):
                return None
            rest = rest[2:]
        elif ndim == 0:
            return () if rest == "0" else None
        parts = rest.split(self.separator)
        if len(parts) != ndim or not all(p.isdigit() for p in parts):
            return None
        return tuple(int(p) for p in parts)


class Hierarchy:
    """The Zarr v3 hierarchy operations, over the abstract key-value methods."""

    # -- internal helpers -------------------------------------------------------------

    def _lock_stripes(self):
        # Striped locks make a partial chunk update (read, modify, write) atomic
        # against other writers of this store object. Re-entrant: flushing the
        # write buffer from a key-value call may need a stripe the thread holds.
        locks = self.__dict__.get("_zs_chunk_locks")
        if locks is None:
            with _LOCKS_GUARD:
                locks = self.__dict__.setdefault(
                    "_zs_chunk_locks", [threading.RLock() for _ in range(_N_CHUNK_LOCKS)])
        return locks

    def _chunk_lock(self, key):
        """The lock that serialises updates of chunk ``key`` (``write_array``
        indexes the stripes itself, the same way)."""
        return self._lock_stripes()[hash(key) % _N_CHUNK_LOCKS]

    @contextlib.contextmanager
    def _chunk_locks(self, keys):
        """Hold the locks of every chunk in ``keys`` (taken in one global order,
        so two callers with overlapping keys cannot deadlock)."""
        stripes = self._lock_stripes()
        held = [stripes[s] for s in sorted({hash(k) % _N_CHUNK_LOCKS for k in keys})]
        for lock in held:
            lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(held):
                lock.release()

    def _node_type(self, node):
        """``"array"``, ``"group"`` or ``None`` for the node's path."""
        raw = self.get(node.metadata_key)
        if raw is None:
            return None
        return node_type_of(raw, node.metadata_key)

    def _array_state(self, node):
        if not isinstance(node, ArrayNode):
            raise NodeInvariant(f"expected an ArrayNode, got {type(node).__name__}")
        key = node.metadata_key
        raw = self.get(key)
        if raw is None:
            raise KeyNotFound(f"array {node.path} is not a member of the store")
        cache = self.__dict__.setdefault("_zs_meta_cache", {})
        hit = cache.get(key)
        if hit is not None and (hit[0] is raw or hit[0] == raw):
            return hit[1]
        doc = _load_json(raw, key)
        if doc.get("node_type") == "group":
            raise KeyNotFound(f"{node.path} is a group, not an array")
        state = _ArrayState(node, ArrayMetadata.from_dict(doc, key))
        cache[key] = (raw, state)
        return state

    def _set_document(self, node, meta):
        raw = meta.to_json().encode("utf-8")
        self.set(node.metadata_key, raw)
        return raw

    def _set_array_document(self, node, meta):
        """Store an array's document and remember its state (no re-parse on next use)."""
        raw = self._set_document(node, meta)
        cache = self.__dict__.setdefault("_zs_meta_cache", {})
        cache[node.metadata_key] = (raw, _ArrayState(node, meta))

    def _check_ancestors(self, node):
        for anc in node.ancestors():
            if self._node_type(anc) == "array":
                raise NodeExists(f"cannot create {node.path}: {anc.path} is an array")

    def _create_ancestors(self, node):
        for anc in node.ancestors():
            if self._node_type(anc) is None:
                self._set_document(anc, GroupMetadata())

    # -- write buffer (see _buffer) -----------------------------------------------------

    def flush(self):
        """Encode and store every chunk held in the write buffer.

        Only stores whose ``buffers_writes`` is true hold any; reads through
        this object see buffered data without it. Call it before another
        process reads the store.
        """
        self._flush_pending(lambda key: True)

    def _flush_pending(self, selected):
        pending = self.__dict__.get("_zs_pending")
        if not pending:
            return
        for key in [k for k in list(pending) if selected(k)]:
            with self._chunk_lock(key):
                entry = pending.pop(key, None)
                if entry is None:
                    continue
                try:
                    self._store_chunk(entry[0], key, entry[1])
                except BaseException:
                    pending.setdefault(key, entry)  # nothing lost: still buffered
                    raise

    def _pending_flush_keys(self, keys):
        keys = set(keys)
        self._flush_pending(keys.__contains__)

    def _pending_flush_prefixes(self, prefixes):
        prefixes = tuple(prefixes)
        self._flush_pending(lambda key: key.startswith(prefixes))

    def _pending_drop_keys(self, keys):
        pending = self.__dict__["_zs_pending"]
        for key in keys:
            pending.pop(key, None)

    def _pending_drop_prefixes(self, prefixes):
        prefixes = tuple(prefixes)
        self._pending_drop_keys([k for k in list(self.__dict__["_zs_pending"])
                                 if k.startswith(prefixes)])

    def _store_chunk(self, state, key, chunk):
        """Encode and store one chunk, or erase it when it is all fill value."""
        if (all_fill(chunk, state.fill_array) if state.vlen
                else transform.all_equal(chunk.reshape(-1).view(np.uint8), state.fill_bytes)):
            self.erase(key)
        else:
            self.set(key, state.chain.encode(chunk))

    @staticmethod
    def _coerce_value(x, dtype):
        """``x`` as an array of ``dtype``; ``InvalidDataType`` if its type differs."""
        if is_vlen(dtype):
            return coerce_vlen(x, dtype)
        if isinstance(x, (np.ndarray, np.generic)):
            if x.dtype.kind not in "biufc" or parse_dtype(x.dtype) != dtype:
                raise InvalidDataType(f"data of dtype {x.dtype} cannot be written to an "
                                      f"array of {dtype}")
            if x.dtype != dtype:  # same type, other byte order
                x = x.astype(dtype)
            return np.asarray(x)
        try:
            probe = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise InvalidDataType(f"cannot write {type(x).__name__} data: {e}") from None
        if probe.dtype.kind not in _ACCEPTED_KINDS[dtype.kind]:
            raise InvalidDataType(f"{probe.dtype.kind!r}-kind data ({type(x).__name__}) "
                                  f"cannot be written to an array of {dtype}")
        try:
            return np.asarray(x, dtype=dtype)
        except (OverflowError, ValueError) as e:
            raise InvalidDataType(f"data does not fit {dtype}: {e}") from None

    # -- nodes ----------------------------------------------------------------------

    def create_group(self, node, attrs=None):
        """Create group ``node`` with attributes ``attrs`` (and any missing ancestor).

        A no-op if the group already exists; ``NodeExists`` if an array is
        at that path or above it.
        """
        if not isinstance(node, GroupNode):
            raise NodeInvariant(f"expected a GroupNode, got {type(node).__name__}")
        meta = GroupMetadata(attrs)
        existing = self._node_type(node)
        if existing == "group":
            return
        if existing == "array":
            raise NodeExists(f"an array already exists at {node.path}")
        self._check_ancestors(node)
        self._create_ancestors(node)
        self._set_document(node, meta)

    def create_array(self, node, *, shape, chunks, dtype, fill_value=None, codecs=None,
                     dimension_names=None, attributes=None, separator="/",
                     chunk_key_encoding="default", overwrite=False):
        """Create array ``node``.

        Parameters
        ----------
        node : ArrayNode
        shape, chunks : sequence of int
            Array shape and (regular grid) chunk shape, of equal rank.
        dtype : str or numpy.dtype
            A Zarr v3 core data type (``"float32"``, ``numpy.int16``, ...).
        fill_value : scalar, optional
            The value of never-written elements; ``None`` means zero.
        codecs : list of Codec or dict, optional
            The codec chain; default ``[Bytes(), Zstd()]`` as zarr-python.
        dimension_names : list of (str or None), optional
        attributes : dict, optional
        separator : {"/", "."}
        chunk_key_encoding : {"default", "v2"}
        overwrite : bool
            Erase a node already at this path instead of raising ``NodeExists``.

        Raises
        ------
        NodeExists, ParseError, InvalidDataType, ArrayToBytesInvariant,
        InvalidCodecOrdering, InvalidTransposeOrder, InvalidShardingChunkShape,
        InvalidZstdLevel
        """
        if not isinstance(node, ArrayNode):
            raise NodeInvariant(f"expected an ArrayNode, got {type(node).__name__}")
        meta = ArrayMetadata(shape, chunks, dtype, fill_value, codecs, attributes,
                             dimension_names, chunk_key_encoding, separator)
        existing = self._node_type(node)
        if existing is not None and not overwrite:
            raise NodeExists(f"a {existing} already exists at {node.path}")
        self._check_ancestors(node)
        # Clear the old node, or stale chunks no zarr.json claims, before writing.
        self.erase_prefix(node.key + "/")
        self._create_ancestors(node)
        self._set_document(node, meta)

    def array_metadata(self, node):
        """The ``ArrayMetadata`` of ``node``; ``KeyNotFound`` if it is not an array here."""
        return self._array_state(node).meta

    def group_metadata(self, node):
        """The ``GroupMetadata`` of ``node``; ``KeyNotFound`` if it is not a group here."""
        if not isinstance(node, GroupNode):
            raise NodeInvariant(f"expected a GroupNode, got {type(node).__name__}")
        raw = self.get(node.metadata_key)
        if raw is None:
            raise KeyNotFound(f"group {node.path} is not a member of the store")
        doc = _load_json(raw, node.metadata_key)
        if doc.get("node_type") == "array":
            raise KeyNotFound(f"{node.path} is an array, not a group")
        return GroupMetadata.from_dict(doc, node.metadata_key)

    def _child_node(self, parent, name, raw, key):
        kind = node_type_of(raw, key)
        try:
            return ArrayNode(parent, name) if kind == "array" else GroupNode.create(parent, name)
        except NodeInvariant:
            return None  # a name zarrsync cannot address (written by another tool)

    def find_child_nodes(self, group):
        """``(arrays, groups)``: the nodes directly inside ``group``, sorted by path.

        Empty lists if the group has no children or is not in the store;
        ``ParseError`` if a child's ``node_type`` is invalid.
        """
        if not isinstance(group, GroupNode):
            raise NodeInvariant(f"expected a GroupNode, got {type(group).__name__}")
        if self._node_type(group) != "group":
            return [], []
        prefix = group.key + "/" if group.key else ""
        _, names = self.list_dir(prefix)
        keys = [prefix + name + "/zarr.json" for name in names]
        arrays, groups = [], []
        for name, key, raw in zip(names, keys, self.get_many(keys)):
            if raw is None:
                continue
            child = self._child_node(group, name, raw, key)
            if child is not None:
                (arrays if isinstance(child, ArrayNode) else groups).append(child)
        return sorted(arrays), sorted(groups)

    def find_all_nodes(self):
        """``(arrays, groups)``: every node in the store (the root group included)."""
        keys = [k for k in self.list_prefix("")
                if k == "zarr.json" or k.endswith("/zarr.json")]
        arrays, groups = [], []
        for key, raw in zip(keys, self.get_many(keys)):
            if raw is None:
                continue
            kind = node_type_of(raw, key)
            path = "/" + key[:-len("zarr.json")].rstrip("/")
            try:
                node = ArrayNode.of_path(path) if kind == "array" else GroupNode.of_path(path)
            except NodeInvariant:
                continue  # a root array or a name zarrsync cannot address
            (arrays if kind == "array" else groups).append(node)
        return sorted(arrays), sorted(groups)

    def erase_group_node(self, node):
        """Erase group ``node`` and everything under it; a no-op if it is absent."""
        if not isinstance(node, GroupNode):
            raise NodeInvariant(f"expected a GroupNode, got {type(node).__name__}")
        if node.is_root():
            self.erase_all_nodes()
        elif self._node_type(node) != "array":
            self.erase_prefix(node.key + "/")

    def erase_array_node(self, node):
        """Erase array ``node`` and its chunks; a no-op if it is absent."""
        if not isinstance(node, ArrayNode):
            raise NodeInvariant(f"expected an ArrayNode, got {type(node).__name__}")
        if self._node_type(node) != "group":
            self.erase_prefix(node.key + "/")

    def erase_all_nodes(self):
        """Delete every node (and every key) of the store."""
        self.erase_prefix("")

    def group_exists(self, node):
        """True if ``node`` is a group of this store."""
        return isinstance(node, GroupNode) and self._node_type(node) == "group"

    def array_exists(self, node):
        """True if ``node`` is an array of this store."""
        return isinstance(node, ArrayNode) and self._node_type(node) == "array"

    def _rename(self, node, new_name, kind):
        if node.parent is None:
            raise CannotRenameRoot("the root group cannot be renamed")
        validate_name(new_name)
        if self._node_type(node) != kind:
            raise KeyNotFound(f"{kind} {node.path} is not a member of the store")
        new = type(node).create(node.parent, new_name)
        if new == node:
            return new
        existing = self._node_type(new)
        if existing is not None:
            raise NodeExists(f"cannot rename {node.path}: a {existing} exists at {new.path}")
        self.move_prefix(node.key + "/", new.key + "/")
        return new

    def rename_group(self, node, new_name):
        """Rename group ``node`` (and move everything under it) to ``new_name``.

        Returns the new ``GroupNode``. Raises ``KeyNotFound``,
        ``CannotRenameRoot``, ``NodeInvariant`` or ``NodeExists``.
        """
        if not isinstance(node, GroupNode):
            raise NodeInvariant(f"expected a GroupNode, got {type(node).__name__}")
        return self._rename(node, new_name, "group")

    def rename_array(self, node, new_name):
        """Rename array ``node`` (and move its chunks) to ``new_name``; returns the new node."""
        if not isinstance(node, ArrayNode):
            raise NodeInvariant(f"expected an ArrayNode, got {type(node).__name__}")
        return self._rename(node, new_name, "array")

    def set_attributes(self, node, attributes):
        """Replace the user attributes of array or group ``node``."""
        if isinstance(node, ArrayNode):
            meta = self._array_state(node).meta
            new = meta.with_shape(meta.shape)
            new.attributes = GroupMetadata(attributes).attributes
        else:
            new = self.group_metadata(node)
            new.attributes = GroupMetadata(attributes).attributes
        self._set_document(node, new)

    # -- data -------------------------------------------------------------------------

    def read_array(self, node, selection=Ellipsis, dtype=None):
        """Read ``selection`` of array ``node`` into a new ``numpy.ndarray``.

        Raises ``KeyNotFound``, ``InvalidDataType`` (``dtype`` given and not
        the array's) or ``InvalidArraySlice`` (selection out of bounds).
        """
        state = self._array_state(node)
        meta = state.meta
        if dtype is not None and parse_dtype(dtype, object_as_bytes=True) != meta.dtype:
            raise InvalidDataType(f"array {node.path} holds {meta.data_type}, not "
                                  f"{dtype_name(parse_dtype(dtype, object_as_bytes=True))}")
        sel = normalize_selection(selection, meta.shape)
        out = memory.new_output(sel.full_shape, meta.dtype)
        if state.sharded is not None:
            state.sharded.read(self, state, sel, out)
            return _as_selected(out, sel)
        plan = sel.plan(meta.shape, meta.chunks)
        if state.vlen:
            plan = ElementPlan(plan)
        if plan.nchunks:
            keys = plan.chunk_keys(state.prefix, state.separator, state.v2)
            values = self.get_many(keys)
            fill_chunk = np.broadcast_to(state.fill_array, meta.chunks)
            chain = state.chain
            # The work is decoding whole chunks when compressed, even for a
            # strided selection that keeps few of their elements.
            work = plan.nchunks * state.chunk_nbytes if chain.bytes_bytes else out.nbytes
            if chain.bytes_bytes and plan.nchunks > 1:
                self._read_in_batches(plan, keys, values, fill_chunk, chain, out, work)
                return _as_selected(out, sel)

            def read_chunk(i):
                raw = values[i]
                if raw is None:
                    plan.gather(i, fill_chunk, out)
                else:
                    chain.gather_stored(plan, i, raw, out, keys[i])

            run_chunks(read_chunk, plan.nchunks, work)
        return _as_selected(out, sel)

    @staticmethod
    def _read_in_batches(plan, keys, values, fill_chunk, chain, out, work):
        """``read_array``'s decoding of compressed chunks: in batches, each
        decoded in one call without the GIL where the chain allows
        (``gather_stored_many``), several per thread (``config.run_batches``).
        Decoded one chunk per Python call (a GIL hand-off each), a W4 read
        right after zarr-python's kept its two threads busy 75-86% of the
        time (95% after tensorstore's), and 8x8 chunks (W6) were read on
        one thread."""
        # Sorted out once here, not per batch on the pool (where Python work
        # queues for the GIL): which chunks are stored, which are absent.
        stored = [i for i, value in enumerate(values) if value is not None]
        if len(stored) < plan.nchunks:
            absent = [i for i, value in enumerate(values) if value is None]
            run_chunks(lambda k: plan.gather(absent[k], fill_chunk, out), len(absent),
                       work * len(absent) // plan.nchunks)
        indices = np.array(stored, dtype=np.int64)
        datas = [values[i] for i in stored]

        def read_batch(lo, hi):
            chain.gather_stored_many(plan, indices[lo:hi], datas[lo:hi], out,
                                     lambda k: keys[stored[lo + k]])

        config.run_batches(read_batch, len(stored), work * len(stored) // plan.nchunks)

    def write_array(self, node, selection, x):
        """Write ``x`` to ``selection`` of array ``node``.

        ``x`` must have the array's data type (Python scalars and lists are
        converted when they fit) and broadcast to the selection's shape.
        Chunks that end up all fill value are erased rather than stored.
        Raises ``KeyNotFound``, ``InvalidDataType`` or ``InvalidArraySlice``.
        """
        state = self._array_state(node)
        meta = state.meta
        value = self._coerce_value(x, meta.dtype)
        sel = normalize_selection(selection, meta.shape)
        try:
            value = np.broadcast_to(value, sel.out_shape).reshape(sel.full_shape)
        except ValueError:
            raise InvalidArraySlice(f"data of shape {value.shape} does not match the "
                                    f"selection shape {sel.out_shape}") from None
        if state.sharded is not None:
            state.sharded.write(self, state, sel, value)
            return
        plan = sel.plan(meta.shape, meta.chunks)
        if state.vlen:
            plan = ElementPlan(plan)
        if not plan.nchunks:
            return
        keys = plan.chunk_keys(state.prefix, state.separator, state.v2)
        pending = self._write_buffer(state, plan, keys)
        chain = state.chain
        native = chain.native_bytes
        compressed = bool(chain.bytes_bytes)

        stripes = self._lock_stripes()

        def write_chunk(i):
            key = keys[i]
            with stripes[hash(key) % _N_CHUNK_LOCKS]:
                complete = plan.is_complete(i)
                edge = complete and state.is_edge(plan.chunk_coords(i))
                if complete:
                    chunk = state.new_chunk(edge)
                else:
                    buffered = pending.get(key) if pending is not None else None
                    if buffered is not None and buffered[0].chain is state.chain:
                        plan.scatter(i, value, buffered[1])
                        return
                    chunk = state.writable_chunk(self.get(key), key)
                plan.scatter(i, value, chunk)
                # Edge chunks are buffered even when written whole: a growing
                # array writes into them again.
                if pending is not None and (edge or not complete):
                    pending[key] = (state, chunk)
                else:
                    self._store_chunk(state, key, chunk)

        if native:
            # Whole chunks go straight from the value into their encoding (no
            # chunk array). Names are bound once: thousands of small chunks run this.
            covers, encode_covered, fill_bytes = (plan.covers_inner_chunk,
                                                  chain.encode_covered, state.fill_bytes)
            if (self._write_covered_in_value_order(state, plan, keys, value)
                    or self._write_small_chunks_at_once(state, plan, keys, value)
                    or self._write_covered_in_groups(state, plan, keys, value)):
                # The covered chunks are stored; the others take the chunk path.
                rest = plan.covered_chunks(False).tolist()
                partial_chunk = write_chunk
                run_chunks(lambda k: partial_chunk(rest[k]), len(rest), 0)
                return
            partial_chunk = write_chunk

            def write_chunk(i):
                if not covers(i):
                    return partial_chunk(i)
                key = keys[i]
                with stripes[hash(key) % _N_CHUNK_LOCKS]:
                    encoded = encode_covered(plan, i, value, fill_bytes)
                    if encoded is None:
                        self.erase(key)
                    else:
                        self.set(key, encoded)

        # Uncompressed writes through a chunk array (byte swap, transpose) copy
        # with the GIL held in NumPy: measured slower on two threads. The
        # native route copies without it, and codecs release it.
        nbytes = int(np.prod(sel.full_shape, dtype=np.int64)) * meta.dtype.itemsize
        run_chunks(write_chunk, plan.nchunks, nbytes if compressed or native else 0)

    def _write_covered_in_value_order(self, state, plan, keys, value):
        """Store every chunk ``plan`` covers, copied in one walk over ``value``,
        if the chain stores them uncompressed; True if it did (the caller
        then writes only the others).

        The copy is all the work of such chunks, and reading ``value`` row
        after row is faster than reading each chunk's strided region
        (``CoveredScatter``). Boxes of at most ``_MAX_BATCH_BYTES`` of new
        chunks are copied (their rows split between the threads) and
        stored one after the other, so a large write holds at most one box
        beyond the store.
        """
        if state.chain.bytes_bytes or plan.count_inner_covered() < 2:
            return False
        job = CoveredScatter(plan, value)
        if not job.usable:
            return False
        fill_bytes = state.fill_bytes
        threads = config.get_threads()
        for box in job.boxes(_MAX_BATCH_BYTES):
            chunks = job.new_chunks(box, memory.new_bytes)
            nbytes = len(chunks) * job.chunk_nbytes
            # More parts than threads, taken as threads come free: a thread
            # slowed down (by the hypervisor, say) does not hold up the box.
            parts = _PARTS_PER_THREAD * threads if nbytes >= config.MIN_PARALLEL_BYTES else 1
            # A box this large is not read back from the caches: stream it.
            stream = nbytes >= memory.STREAM_MIN_BYTES
            run_chunks(lambda part: job.copy(box, chunks, part, parts, stream), parts, nbytes)
            self._store_whole_chunks(
                [keys[i] for i in job.box_chunks(box).tolist()],
                [None if transform.all_equal(c, fill_bytes) else c for c in chunks],
                reuse_size=job.chunk_nbytes)
        return True

    def _write_small_chunks_at_once(self, state, plan, keys, value):
        """Store every chunk ``plan`` covers in one batch, if they are many and
        small; True if it did (the caller then writes only the others).

        Chunks under ``MIN_PARALLEL_CHUNK_BYTES`` are not worth a thread hop
        each, and their Python round trip costs about what compressing them
        does. Here they are copied into one buffer and compressed by one call
        on every thread without the GIL (``CodecChain.encode_covered_many``);
        then they are stored in one pass under their chunk locks.
        """
        chain = state.chain
        if (state.chunk_nbytes >= config.MIN_PARALLEL_CHUNK_BYTES or not chain.encodes_many
                or plan.count_inner_covered() < _MIN_BATCHED_CHUNKS):
            return False
        covered = plan.covered_chunks()
        per_batch = max(1, _MAX_BATCH_BYTES // state.chunk_nbytes)
        for start in range(0, len(covered), per_batch):
            indices = covered[start:start + per_batch]
            frames = chain.encode_covered_many(plan, indices, value, state.fill_bytes,
                                               config.get_threads())
            self._store_whole_chunks([keys[i] for i in indices.tolist()], frames)
        return True

    def _write_covered_in_groups(self, state, plan, keys, value):
        """Encode and store every chunk ``plan`` covers, a few neighbours at
        a time, if the chain compresses them; True if it did (the caller
        then writes only the others).

        Gathering a 64^3 float32 chunk alone reads 256-byte runs a row of
        the value apart; a group of chunks side by side is gathered in one
        walk over their rows (``CodecChain.encode_covered_group``), in runs
        as long as the group is wide. Groups of at most ``_GROUP_BYTES``,
        with several threads at least ``_PARTS_PER_THREAD`` groups per
        thread, go to the threads.
        """
        chain = state.chain
        if not chain.bytes_bytes:
            return False
        covered = plan.covered_chunks()
        threads = config.get_threads()
        parts = _PARTS_PER_THREAD * threads if threads > 1 else 1
        per_group = min(_GROUP_BYTES // state.chunk_nbytes, -(-len(covered) // parts))
        if per_group < 2:
            return False
        groups = [covered[k:k + per_group] for k in range(0, len(covered), per_group)]
        encode_group, fill_bytes = chain.encode_covered_group, state.fill_bytes

        def write_group(g):
            indices = groups[g]
            self._store_whole_chunks([keys[i] for i in indices.tolist()],
                                     encode_group(plan, indices, value, fill_bytes))

        run_chunks(write_group, len(groups), len(covered) * state.chunk_nbytes)
        return True

    def _store_whole_chunks(self, keys, values, reuse_size=0):
        """Store each encoded chunk of ``values`` at its key of ``keys`` (erase
        the key for ``None``: all fill value), under the chunks' locks.

        With ``reuse_size``, replaced values of that many bytes that nothing
        else references are kept to be filled again (``memory.new_bytes``)
        instead of freed: new chunks then land on pages already mapped.
        """
        with self._chunk_locks(keys):
            for old in self._set_many(keys, values, reuse_size):
                memory.reuse_later(old)

    def _write_buffer(self, state, plan, keys):
        """The buffer for this write's partial chunks, or ``None`` to write them through.

        Flushes the array's buffered chunks that this write does not touch:
        a simulation moves on to the next chunk once the current one is done.
        """
        if not getattr(self, "buffers_writes", False) or state.sharded is not None:
            return None
        pending = self.__dict__.get("_zs_pending")
        if pending:
            touched = set(keys)
            prefix = state.prefix
            self._flush_pending(lambda k: k.startswith(prefix) and k not in touched)
        # Chunks written whole and lying inside the array are stored at once.
        buffered = plan.nchunks - plan.count_inner_covered()
        if buffered * state.chunk_nbytes > _buffer.MAX_BUFFERED_BYTES:
            return None
        if pending is None:
            pending = self.__dict__.setdefault("_zs_pending", {})
        return pending

    def reshape(self, node, shape):
        """Resize array ``node`` to ``shape`` (same rank).

        Chunks wholly outside the new shape are erased, and the part of a
        boundary chunk that falls outside is reset to the fill value, so
        growing the array again shows fill values there, never old data.
        Raises ``KeyNotFound`` or ``InvalidResizeShape``.
        """
        state = self._array_state(node)
        meta = state.meta
        try:
            shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise InvalidResizeShape(f"a shape must be a sequence of ints, got {shape!r}") from None
        if len(shape) != len(meta.shape):
            raise InvalidResizeShape(f"array {node.path} has rank {len(meta.shape)}; "
                                     f"cannot resize to {shape}")
        if any(s < 0 for s in shape):
            raise InvalidResizeShape(f"a shape must not be negative: {shape}")
        shrunk = [d for d, (new, old) in enumerate(zip(shape, meta.shape)) if new < old]
        if shrunk:
            for key in self.list_prefix(state.prefix):
                coords = state.chunk_coords(key)
                if coords is None:
                    continue
                starts = [c * n for c, n in zip(coords, meta.chunks)]
                if any(start >= s for start, s in zip(starts, shape)):
                    self.erase(key)
                    continue
                cut = [d for d in shrunk if starts[d] + meta.chunks[d] > shape[d]]
                if cut:
                    with self._chunk_lock(key):
                        chunk = state.writable_chunk(self.get(key), key)
                        for d in cut:
                            region = [slice(None)] * len(shape)
                            region[d] = slice(shape[d] - starts[d], None)
                            chunk[tuple(region)] = (state.fill_array if state.vlen
                                                    else meta.fill_value)
                        self._store_chunk(state, key, chunk)
        self._set_array_document(node, meta.with_shape(shape))


def _as_selected(out, sel):
    """The output of a read in the selection's shape (integer indices drop
    their axes); ``out`` itself, which owns its data, when nothing is dropped."""
    return out if out.shape == sel.out_shape else out.reshape(sel.out_shape)
