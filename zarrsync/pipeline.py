"""The one chunk pipeline: every read and write of array data goes through here.

A call plans the chunks its selection touches (``indexing.ChunkPlan``) on
the grid its data moves on: the array's chunk grid, or, when the array's
codec holds inner chunks that can be read and written one by one
(``CodecChain.inner_chunks``: sharding), the inner grid. It classifies those
chunks once, picks one step per class from what the codec chain can do, and
runs the steps as the tasks of one scheduler call::

    read    stored chunk    -> decode step -> copy into the output
            absent chunk    -> copy the fill value into the output
    write   covered chunk   -> gathered from the value with its neighbours
                               -> encode step -> stored
            edge or partial -> read, modify, encode, store (or keep it in
                               the store's write buffer)

The steps, by what the chain can do (``_step_kind``):

    raw     chunks are stored as they lie in memory, uncompressed: the stored
            bytes are the chunk (one copy each way)
    bytes   stored as they lie in memory, then bytes->bytes codecs: a batch
            of chunks is encoded or decoded in one call without the GIL when
            the chain offers a ``native()`` codec, else each chunk is encoded
            from or decoded into this thread's scratch buffer
    array   anything else (transposes, byte swaps, strings): a chunk array

A sharded array's inner chunks take the same steps with the inner chain;
each shard is then built by its codec's ``assemble`` and stored whole.
Stores reach the pipeline through a ``ChunkIO`` (see ``storage``): keyed
reads and writes, byte ranges, chunk locks, the write buffer and the
store's declared capabilities.
"""

import functools
import math
import queue
import threading

import numpy as np

from . import _scratch, config, scheduler
from ._kernels import memory, native as native_kernels, transform
from .dtypes import all_fill, fill_array, fill_bytes, is_vlen, new_filled
from .indexing import COVERED, EDGE, PARTIAL

__all__ = ["ArrayLayout", "read", "write", "new_output"]


class ArrayLayout:
    """What reading and writing one array needs, derived once from its metadata.

    Parameters
    ----------
    meta : ArrayMetadata
    prefix : str
        The store key prefix of the array's chunks (its node key and "/").

    The *unit* is the chunk the data moves in: the array's chunk, or the
    inner chunk of a codec with ``inner_chunks`` (whose chunks, ``outer``,
    are then built from units).
    """

    def __init__(self, meta, prefix):
        self.meta = meta
        self.prefix = prefix
        self.shape = meta.shape
        self.dtype = meta.dtype
        self.vlen = is_vlen(meta.dtype)
        self.fill = fill_array(meta.fill_value, meta.dtype)
        self.fill_bytes = None if self.vlen else fill_bytes(self.fill)
        #: The codec that reads and writes the array's chunks in parts, or None.
        self.inner = meta.chain.inner_chunks
        self.chain = self.inner.inner if self.inner is not None else meta.chain
        self.unit_shape = self.inner.chunk_shape if self.inner is not None else meta.chunks
        self.unit_nbytes = int(np.prod(self.unit_shape, dtype=np.int64)) * meta.dtype.itemsize
        self.steps = _step_kind(self.chain)

    def per_unit_python(self, decoding):
        """True if this call's steps cross into Python once per unit (no
        batch kernel for ``decoding``, or else encoding): then small units
        are not worth a thread each."""
        if self.steps != "bytes":
            return self.steps == "array"
        chain = self.chain
        return (chain.native_decoder(self.unit_nbytes) if decoding else chain.native()) is None

    def key(self, coords):
        """The store key of the (outer) chunk at grid ``coords``."""
        return self.meta.key_encoding.key(self.prefix, coords)

    def keys(self, plan):
        """The store key of every chunk of ``plan`` (a plan on the chunk grid)."""
        return self.meta.key_encoding.keys(self.prefix, plan)

    def plan(self, sel):
        """The plan of normalised selection ``sel`` on the unit grid."""
        return sel.plan(self.shape, self.unit_shape, self.vlen)

    def new_unit(self):
        """A writable unit holding the fill value everywhere."""
        return new_filled(self.unit_shape, self.fill)

    def writable_unit(self, stored, name):
        """The unit stored as ``stored`` (``None``: absent), decoded into a new
        C-contiguous writable array."""
        if stored is None:
            return self.new_unit()
        chain = self.chain
        if self.vlen:
            return np.array(chain.decode(stored, name), order="C")
        unit = np.empty(self.unit_shape, dtype=self.dtype)
        if chain.stores_raw:
            buf = unit.reshape(-1).view(np.uint8)
            raw = chain.decode_raw(stored, buf, name)
            if not chain.decodes_into:
                buf[:] = np.frombuffer(raw, dtype=np.uint8)
        else:
            transform.copy_into(chain.decode(stored, name), unit)
        return unit

    def encode_unit(self, unit):
        """``unit``'s stored bytes, or ``None`` when it is all fill value."""
        return None if all_fill(unit, self.fill) else self.chain.encode(unit)


# -- steps ---------------------------------------------------------------------------

def _step_kind(chain):
    """The kind of steps ``chain`` takes (see the module docstring): ``"raw"``,
    ``"bytes"`` (``native`` batches whenever ``chain.native()`` is there at
    run time) or ``"array"``."""
    if not chain.stores_raw:
        return "array"
    return "bytes" if chain.bytes_bytes else "raw"


class _Read:
    """Decoding the stored units of one read into its output."""

    def __init__(self, layout, plan, out, sources, name_of):
        self.layout = layout
        self.plan = plan
        self.out = out
        self.sources = sources
        self.name_of = name_of
        self.chain = layout.chain
        self.stream = (config.get("fast_paths") and not layout.vlen
                       and out.nbytes >= config.get("stream_min_bytes"))

    def fill(self, indices):
        fill = np.broadcast_to(self.layout.fill, self.layout.unit_shape)
        for i in indices:
            self.plan.gather(i, fill, self.out, self.stream)

    def decode(self, indices):
        """Decode the stored units ``indices`` into the output."""
        kind = self.layout.steps
        if kind == "raw":
            self._raw(indices)
        elif kind == "bytes":
            self._batched(indices)
        else:
            self._array(indices)

    def _raw(self, indices):
        sources = [self.sources[i] for i in indices]
        failed = self.plan.gather_many(np.asarray(indices, dtype=np.int64), sources, self.out,
                                       None, None, self.stream)
        if failed >= 0:
            self._each(indices[failed:failed + 1])  # raises, naming the chunk

    def _batched(self, indices):
        codec = self.chain.native_decoder(self.layout.unit_nbytes)
        if codec is None:  # fast paths off, the codec's library is missing, or slower
            return self._each(indices)
        scratch = _scratch.buffer("decoded", self.layout.unit_nbytes)
        batch = np.asarray(indices, dtype=np.int64)
        while len(batch):
            failed = self.plan.gather_many(batch, [self.sources[i] for i in batch], self.out,
                                           codec, scratch, self.stream)
            if failed < 0:
                return
            # The portable route decodes it or names what is wrong with it.
            self._each(batch[failed:failed + 1])
            batch = batch[failed + 1:]

    def _each(self, indices):
        n = self.layout.unit_nbytes
        scratch = _scratch.buffer("decoded", n)
        # Where a chunk lies in the output as one run, it is decoded in place
        # (a NumPy view: datetimes have no buffer format for a memoryview).
        flat = (self.out.reshape(-1).view(np.uint8)
                if self.chain.decodes_into and self.out.flags.c_contiguous else None)
        for i in indices:
            offset = -1 if flat is None else self.plan.contiguous_offset(i, self.out)
            if offset >= 0:
                self.chain.decode_raw(self.sources[i], flat[offset:offset + n], self.name_of(i))
                continue
            raw = self.chain.decode_raw(self.sources[i], scratch, self.name_of(i))
            self.plan.gather_raw(i, raw, self.out, self.stream)

    def _array(self, indices):
        for i in indices:
            self.plan.gather(i, self.chain.decode(self.sources[i], self.name_of(i)), self.out,
                             self.stream)


class _Encode:
    """Encoding units that a write covers, straight from the written value."""

    def __init__(self, layout, plan, value):
        self.layout = layout
        self.plan = plan
        self.value = value
        self.chain = layout.chain

    def covered(self, indices):
        """The stored bytes (``None``: all fill value) of covered units ``indices``."""
        kind = self.layout.steps
        if kind == "raw":
            return self._raw(indices)
        if kind == "bytes":
            return self._batched(indices)
        return self._array(indices)

    def _raw(self, indices):
        units = self.plan.scatter_many_to_bytes(np.asarray(indices, dtype=np.int64), self.value,
                                                config.get("walk_chunks"))
        pattern = self.layout.fill_bytes
        return [None if transform.all_equal(u, pattern) else u for u in units]

    def _gathered(self, indices):
        # The units, one after another in this thread's scratch buffer.
        n = self.layout.unit_nbytes * len(indices)
        view = memoryview(_scratch.buffer("gathered", n))[:n]
        self.plan.scatter_many(np.asarray(indices, dtype=np.int64), self.value, view,
                               config.get("walk_chunks"))
        return view

    def _batched(self, indices):
        codec = self.chain.native()
        if codec is None:
            return self._each(indices)
        # A few units at a time, each batch gathered just before it is
        # compressed: it is still in the cache then.
        n = self.layout.unit_nbytes
        per_call = max(1, config.get("encode_batch_bytes") // n)
        scratch = _scratch.buffer("encoded", codec.bound(n) * min(per_call, len(indices)))
        encoded = []
        for start in range(0, len(indices), per_call):
            batch = indices[start:start + per_call]
            try:
                encoded += native_kernels.encode_many(codec, self._gathered(batch), n,
                                                      self.layout.fill_bytes, scratch)
            except RuntimeError:
                return self._each(indices)  # the portable route names what failed
        return encoded

    def _each(self, indices):
        n = self.layout.unit_nbytes
        gathered = self._gathered(indices)
        pattern = self.layout.fill_bytes
        encoded = []
        for k in range(len(indices)):
            raw = gathered[k * n:(k + 1) * n]
            encoded.append(None if transform.all_equal(raw, pattern)
                           else self.chain.encode_raw(raw))
        return encoded

    def _array(self, indices):
        layout = self.layout
        encoded = []
        for i in indices:
            unit = np.empty(layout.unit_shape, dtype=layout.dtype)
            self.plan.scatter(i, self.value, unit)
            encoded.append(layout.encode_unit(unit))
        return encoded

    def rewritten(self, i, cls, stored, name):
        """Unit ``i`` of class ``cls`` (``EDGE`` or ``PARTIAL``) with the
        value written into it: a writable array, from ``stored`` (its stored
        bytes or ``None``) when partial."""
        layout = self.layout
        unit = layout.new_unit() if cls == EDGE else layout.writable_unit(stored, name)
        self.plan.scatter(i, self.value, unit)
        return unit


# -- splitting into tasks --------------------------------------------------------------

def _split(indices, unit_nbytes, min_tasks=1):
    """``indices`` cut into consecutive runs of at most ``config.task_bytes``
    of units each, and into at least ``min_tasks`` runs (where there are enough)."""
    n = len(indices)
    if not n:
        return []
    n_tasks = max(-(-n // max(1, config.get("task_bytes") // unit_nbytes)), min(n, min_tasks))
    return [indices[n * t // n_tasks:n * (t + 1) // n_tasks] for t in range(n_tasks)]


def _tasks_wanted(work):
    """How many tasks a call with ``work`` bytes should make at least: a few
    per thread when it is worth the pool (``config.tasks_per_thread``), else one."""
    if work < config.get("parallel_min_bytes"):
        return 1
    return config.get("threads") * config.get("tasks_per_thread")


def _interleaved(tasks):
    """``tasks`` dealt out in ``threads`` stripes (the first task of each
    stripe, then the second of each, ...): threads starting together then
    work on distant parts of the output, and do not wait on each other for
    its new pages (each is zeroed by the first thread to touch it, holding a
    lock the others then wait on)."""
    stripes = min(config.get("threads"), len(tasks))
    if stripes < 2:
        return tasks
    bounds = [len(tasks) * k // stripes for k in range(stripes + 1)]
    parts = [tasks[bounds[k]:bounds[k + 1]] for k in range(stripes)]
    return [part[j] for j in range(len(parts[-1])) for part in parts if j < len(part)]


def _parallel(work, n_tasks):
    """True if ``n_tasks`` tasks sharing ``work`` bytes should go to the pool."""
    return scheduler.worth_threads(work, max(n_tasks, 1))


# -- read ------------------------------------------------------------------------------

def new_output(shape, dtype):
    """A new array for the result of a read: aligned to a cache line when it
    is large (its copies may then stream, see ``_kernels.memory``)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if (config.get("fast_paths") and not is_vlen(dtype)
            and nbytes >= config.get("stream_min_bytes")):
        return memory.empty(shape, dtype)
    return np.empty(shape, dtype)


def read(io, layout, sel):
    """Read normalised selection ``sel`` of the array ``layout`` describes
    into a new array of the selection's full-rank shape."""
    out = new_output(sel.full_shape, layout.dtype)
    plan = layout.plan(sel)
    if not plan.nchunks:
        return out
    if layout.inner is None:
        return _read_chunks(io, layout, plan, out)
    sources, name_of = _read_inner(io, layout, plan)
    reader = _Read(layout, plan, out, sources, name_of)
    if plan.nchunks == 1:  # a point read: nothing to share out
        (reader.fill if sources[0] is None else reader.decode)([0])
        return out
    stored = [i for i, s in enumerate(sources) if s is not None]
    absent = [i for i, s in enumerate(sources) if s is None]
    # Compressed units are decoded whole, however few elements the selection keeps.
    work = out.nbytes if layout.steps == "raw" else plan.nchunks * layout.unit_nbytes
    wanted = _tasks_wanted(work)
    decodes = _interleaved(_split(stored, layout.unit_nbytes, wanted))
    tasks = decodes + _split(absent, layout.unit_nbytes, wanted)

    def task(t):
        (reader.decode if t < len(decodes) else reader.fill)(tasks[t])

    units_per_task = plan.nchunks if layout.per_unit_python(decoding=True) else len(tasks)
    scheduler.run(task, len(tasks), _parallel(work, units_per_task))
    return out


def _read_chunks(io, layout, plan, out):
    """``read`` of an unsharded array: each task reads its chunks and decodes
    them, so reading the stored bytes overlaps decoding (small chunks, and
    a store that holds its values in memory, are read all at once first). On a store whose
    requests run in the background (an object store), every task's chunks
    are requested at the start, in task order, and each task decodes the
    group of chunks that came first of those not yet taken, while later
    ones are still on their way."""
    keys = layout.keys(plan)
    sources = [None] * plan.nchunks
    reader = _Read(layout, plan, out, sources, keys.__getitem__)
    work = out.nbytes if layout.steps == "raw" else plan.nchunks * layout.unit_nbytes
    groups = _interleaved(_split(list(range(plan.nchunks)), layout.unit_nbytes,
                                 _tasks_wanted(work)))
    arriving = ([io.get_many_ahead([keys[i] for i in group], buffers=not layout.vlen)
                 for group in groups]
                if io.reads_ahead and len(groups) > 1 else None)
    # Small chunks, or values in memory: one thread reads them all first
    # (threads taking turns at the GIL per small file cost more than they save).
    in_tasks = arriving is not None or (
        not io.returns_stored_objects
        and layout.unit_nbytes >= config.get("parallel_min_chunk_bytes"))
    if not in_tasks:
        sources[:] = io.get_many(keys)
    if arriving is not None:
        # Tasks take the groups in the order their values come (answers come
        # in any order): no thread waits for one group while another is here.
        finished = queue.SimpleQueue()
        for t, pending in enumerate(arriving):
            pending.add_done_callback(functools.partial(finished.put, t))

    def task(t):
        if arriving is not None:
            t = finished.get()
        group = groups[t]
        if in_tasks:
            values = (arriving[t]() if arriving is not None
                      else io.get_many([keys[i] for i in group]))
            for i, value in zip(group, values):
                sources[i] = value
        stored = [i for i in group if sources[i] is not None]
        if stored:
            reader.decode(stored)
        if len(stored) < len(group):
            reader.fill([i for i in group if sources[i] is None])

    units_per_task = plan.nchunks if layout.per_unit_python(decoding=True) else len(groups)
    try:
        scheduler.run(task, len(groups), _parallel(work, units_per_task))
    finally:
        for result in arriving or ():   # every request ends before the read does
            try:
                result()
            except Exception:   # noqa: BLE001 -- the first failure is already raised
                pass
    return out


def _read_inner(io, layout, plan):
    """``(sources, name_of)`` of a plan on the inner grid: each inner chunk's
    stored bytes (``None`` when empty or its shard is absent), read shard by
    shard through the codec's partial access."""
    inner = layout.inner
    sources = [None] * plan.nchunks
    where = [None] * plan.nchunks
    for shard, indices, positions in inner.group(plan):
        key = layout.key(shard)
        for i, p, value in zip(indices, positions, inner.read_inner(io, key, positions)):
            sources[i] = value
            where[i] = (key, p)

    def name_of(i):
        key, p = where[i]
        return f"{key} (inner chunk {p})"

    return sources, name_of


# -- write -----------------------------------------------------------------------------

def write(io, layout, sel, value):
    """Write ``value`` (broadcast to the full-rank shape of normalised
    selection ``sel``) to the array ``layout`` describes."""
    plan = layout.plan(sel)
    if not plan.nchunks:
        return
    classes = plan.classify()
    if layout.inner is None:
        _write_chunks(io, layout, plan, classes, value)
    else:
        _write_shards(io, layout, plan, classes, value)


def _write_chunks(io, layout, plan, classes, value):
    keys = layout.keys(plan)
    encode = _Encode(layout, plan, value)
    covered = np.flatnonzero(classes == COVERED).tolist()
    others = np.flatnonzero(classes != COVERED).tolist()
    buffer = io.write_buffer(layout, keys, len(others) * layout.unit_nbytes)
    work = plan.nchunks * layout.unit_nbytes
    groups = _split(covered, layout.unit_nbytes, _tasks_wanted(work))

    def task(t):
        if t < len(groups):
            group = groups[t]
            io.store_chunks([keys[i] for i in group], encode.covered(group))
            return
        i = others[t - len(groups)]
        key = keys[i]
        with io.lock(key):
            unit = buffer.take(key, layout) if buffer is not None else None
            if unit is not None:
                plan.scatter(i, value, unit)
            else:
                unit = encode.rewritten(i, classes[i], None if classes[i] == EDGE
                                        else io.get(key), key)
            if buffer is not None:
                buffer.keep(key, layout, unit)
            else:
                io.put([key], [layout.encode_unit(unit)])

    n_tasks = len(groups) + len(others)
    per_unit = plan.nchunks if layout.per_unit_python(decoding=False) else n_tasks
    scheduler.run(task, n_tasks, _parallel(work, per_unit))


class _ShardWrite:
    """One shard being rewritten: its inner chunks' stored bytes by position,
    and the tasks still to finish before it is built."""

    __slots__ = ("key", "slots", "kept", "unfinished", "failed", "lock")

    def __init__(self, key, n_inner, kept):
        self.key = key
        self.slots = [None] * n_inner
        for p, stored in kept.items():
            self.slots[p] = stored
        self.kept = kept
        self.unfinished = 0
        self.failed = False
        self.lock = threading.Lock()

    def finish_task(self, ok):
        """True for the caller that finished the shard's last task, when
        every task succeeded (a shard with a failed task is never stored)."""
        with self.lock:
            self.failed = self.failed or not ok
            self.unfinished -= 1
            return self.unfinished == 0 and not self.failed


def _write_shards(io, layout, plan, classes, value):
    """Write through partial access: the inner chunks of every touched shard
    are encoded as units (all shards' on the pool at once), and each shard
    is built and stored by the task that finishes it. The shards' locks are
    held throughout, so a shard is rewritten whole against other writers."""
    inner = layout.inner
    encode = _Encode(layout, plan, value)
    groups = inner.group(plan)
    keys = [layout.key(shard) for shard, _, _ in groups]
    work = plan.nchunks * layout.unit_nbytes
    per_shard = -(-_tasks_wanted(work) // len(groups))  # the call's tasks, shared by its shards
    with io.locks(keys):
        tasks = []  # (shard, plan indices, positions, covered?)
        for key, (shard_coords, indices, positions) in zip(keys, groups):
            kinds = classes[indices]
            replaced = [p for p, c in zip(positions, kinds) if c != PARTIAL]
            whole = (len(replaced) == inner.count_in_array(shard_coords, layout.shape))
            shard = _ShardWrite(key, inner.n_inner,
                                {} if whole else inner.read_kept(io, key, replaced))
            covered = [k for k, c in enumerate(kinds) if c == COVERED]
            before = len(tasks)
            for run in _split(covered, layout.unit_nbytes, per_shard):
                tasks.append((shard, [indices[k] for k in run], [positions[k] for k in run],
                              True))
            for k, c in enumerate(kinds):
                if c != COVERED:
                    tasks.append((shard, [indices[k]], [positions[k]], False))
            shard.unfinished = len(tasks) - before

        def task(t):
            shard, indices, positions, covered = tasks[t]
            ok = False
            try:
                if covered:
                    for p, encoded in zip(positions, encode.covered(indices)):
                        shard.slots[p] = encoded
                else:
                    i, p = indices[0], positions[0]
                    unit = encode.rewritten(i, classes[i], shard.kept.get(p),
                                            f"{shard.key} (inner chunk {p})")
                    shard.slots[p] = layout.encode_unit(unit)
                ok = True
            finally:
                if shard.finish_task(ok):
                    io.put([shard.key], [inner.assemble(shard.slots)])

        per_unit = plan.nchunks if layout.per_unit_python(decoding=False) else len(tasks)
        scheduler.run(task, len(tasks), _parallel(work, per_unit))
