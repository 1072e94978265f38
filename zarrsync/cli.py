"""The ``zarrsync`` command (also ``python -m zarrsync``).

``tree``, ``info``, ``copy``, ``consolidate``, ``check`` and ``demo``; the
guide is ``docs/cli.md``. Each command parses its arguments, opens stores
with ``open_store`` and calls the public API (the hierarchy methods of the
stores, ``open_group``/``open`` and the views' ``tree()``/``info``). Copy and
check add only what a command line needs: which blocks move, in what order,
how many at once, and what to report. Errors that a user can cause (a
missing path, a bad argument, a damaged store) end the command with one
line on stderr, never a traceback.
"""

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import threading
import time

import numpy as np

from . import __version__, config, scheduler
from .codecs import Bytes, Crc32c, Gzip, Transpose, Zstd, parse_codecs
from .dtypes import all_fill, fill_array
from .errors import CodecError, InvalidDataType, ParseError, ZarrSyncError
from .metadata import ArrayMetadata, node_type_of
from .nodes import ArrayNode, GroupNode
from .storage import MemoryStore, open_store

__all__ = ["main", "demo"]

_EXIT_CODES = """\
exit codes:
  0  success (check: every chunk and document decodes)
  1  the command failed (one line on stderr), or check found broken chunks
     or unreadable metadata documents
  2  usage error (unknown command, bad option or option value)

URLs: a folder path, a .zip file, file://, memory://, s3://bucket/prefix,
gs://, az://, http(s)://. Object store credentials and endpoints come from
the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), as for every
AWS tool.
"""

_METADATA_NAMES = ("zarr.json", ".zarray", ".zgroup")


class CommandError(Exception):
    """A failure the command reports as one line on stderr (exit code 1)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line: ``zarrsync: error: ...``."""

    def error(self, message):
        self.exit(2, f"zarrsync: error: {message} (see '{self.prog} --help')\n")


# -- argument values ----------------------------------------------------------------------

def _shape_arg(text):
    """``--chunks 100,200``: positive integers separated by commas."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected positive integers separated by commas, such as 100,200; got {text!r}")
    return values


def _shards_arg(text):
    """``--shards 1000,1000`` or ``--shards none`` (no sharding)."""
    if text.strip().lower() == "none":
        return "none"
    return _shape_arg(text)


def _codecs_arg(text):
    """``--codecs '[{"name": "bytes"}, ...]'``: a codec list as in ``zarr.json``,
    checked by zarrsync's codec registry."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text!r}") from None
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not doc:
        raise argparse.ArgumentTypeError(f"expected a JSON list of codecs, got {text!r}")
    try:
        parse_codecs(doc)
    except (ZarrSyncError, ValueError, TypeError) as e:
        raise argparse.ArgumentTypeError(_one_line(e)) from None
    return doc


def _count(n, noun):
    """``"1 array"``, ``"2 arrays"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _one_line(error):
    text = str(error) or type(error).__name__
    return " ".join(text.split())


def _node_path(path):
    """``--path`` as a node path ("/", "/a/b")."""
    path = "/" + (path or "").strip("/")
    try:
        GroupNode.of_path(path)
    except ZarrSyncError as e:
        raise CommandError(f"--path {path!r}: {_one_line(e)}") from None
    return path


def _open_existing(url, mode="r"):
    """The store at ``url``, which must exist."""
    local = _local_path(url)
    if local is not None and not os.path.exists(local):
        raise CommandError(f"{url}: no such file or folder")
    if local is not None and local.lower().endswith(".zip") and mode != "r":
        mode = "a"   # a ZipStore takes r, w and a
    return open_store(url, mode=mode)


def _local_path(url):
    """The file system path ``url`` names, or None for other URLs."""
    url = os.fspath(url)
    if url.startswith("file://"):
        return url[len("file://"):]
    if "://" in url:
        return None
    return url


def _emit_json(doc):
    print(json.dumps(doc, indent=2, default=str))


# -- progress -----------------------------------------------------------------------------

class _Progress:
    """A tqdm bar on stderr when it is a terminal and not turned off; thread-safe."""

    def __init__(self, enabled, total, unit, desc):
        self.lock = threading.Lock()
        self.chunks = 0
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm
            scaled = unit == "B"
            try:
                size = os.get_terminal_size(sys.stderr.fileno())
            except OSError:
                size = os.terminal_size((0, 0))
            # A terminal that reports no size (a bare pseudo-terminal) gets 80x24:
            # tqdm draws nothing on one it thinks has no rows.
            sized = size.columns > 0 and size.lines > 0
            self.bar = tqdm(total=total, unit=unit, unit_scale=scaled,
                            unit_divisor=1024 if scaled else 1000, desc=desc,
                            file=sys.stderr, dynamic_ncols=sized,
                            ncols=None if sized else 80, nrows=None if sized else 24,
                            leave=True)

    def add(self, amount, chunks):
        with self.lock:
            self.chunks += chunks
            if self.bar is not None:
                self.bar.set_postfix(chunks=self.chunks, refresh=False)
                self.bar.update(amount)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# -- tree and info ------------------------------------------------------------------------

def _cmd_tree(args):
    import zarrsync
    path = _node_path(args.path)
    _open_existing(args.url)   # a missing path is one line, before any other error
    grp = zarrsync.open_group(args.url, path=path, mode="r")
    tree = grp.tree()
    if args.json:
        _emit_json(tree.to_dict())
    else:
        print(str(tree))
    return 0


def _cmd_info(args):
    import zarrsync
    path = _node_path(args.path)
    _open_existing(args.url)
    node = zarrsync.open(args.url, path=path, mode="r")
    if isinstance(node, zarrsync.Array):
        info = node.info
        if args.json:
            _emit_json(info.to_dict())
        else:
            print(str(info))
        return 0
    summary = _group_summary(node, path)
    if args.json:
        _emit_json(summary)
    else:
        print(f"Type               : group\n"
              f"Path               : {summary['path']}\n"
              f"Store              : {node.store!r}\n"
              f"Zarr format        : {summary['zarr_format']}\n"
              f"Arrays             : {', '.join(summary['arrays']) or '(none)'}\n"
              f"Groups             : {', '.join(summary['groups']) or '(none)'}\n"
              f"Consolidated       : {'yes' if summary['consolidated'] else 'no'}\n"
              f"Attributes         : {json.dumps(summary['attributes'], default=str)}")
    return 0


def _group_summary(grp, path):
    """What ``info`` says about a group: its members, format and attributes,
    from the group's store (as its view reads them)."""
    store, node = grp.store, GroupNode.of_path(path)
    meta = store.group_metadata(node)
    arrays, groups = store.find_child_nodes(node)
    return {"node_type": "group", "path": path, "zarr_format": meta.zarr_format,
            "arrays": [a.name for a in arrays], "groups": [g.name for g in groups],
            "consolidated": meta.consolidated is not None,
            "attributes": dict(meta.attributes)}


# -- consolidate --------------------------------------------------------------------------

def _cmd_consolidate(args):
    path = _node_path(args.path)
    store = _open_existing(args.url, mode="r+")
    try:
        group = GroupNode.of_path(path)
        if not store.group_exists(group):
            raise CommandError(f"{args.url}: no group at {path}")
        store.consolidate_metadata(group)
        meta = store.group_metadata(group)
    finally:
        store.close()
    key = (group.metadata_key if meta.zarr_format == 3
           else (group.key + "/" if group.key else "") + ".zmetadata")
    nodes = len(meta.consolidated or {})
    if args.json:
        _emit_json({"command": "consolidate", "url": str(args.url), "path": path,
                    "zarr_format": meta.zarr_format, "key": key, "nodes": nodes})
    else:
        print(f"consolidated the metadata of {nodes} nodes below {path} into {key}")
    return 0


# -- copy ---------------------------------------------------------------------------------

def _walk(store, group):
    """``(arrays, groups)`` of ``group`` and everything below it."""
    arrays, groups = [], [group]
    child_arrays, child_groups = store.find_child_nodes(group)
    arrays.extend(child_arrays)
    for child in child_groups:
        a, g = _walk(store, child)
        arrays.extend(a)
        groups.extend(g)
    return arrays, groups


def _relocated(node, base, cls):
    """``node`` (below ``base``, a path) as a node of the destination's root."""
    rel = node.path[len(base):] if base != "/" else node.path
    return cls.of_path("/" + rel.strip("/"))


def _sharding_of(meta):
    """The sharding codec if ``meta``'s chain is exactly one ``sharding_indexed``."""
    if len(meta.codecs) == 1 and meta.codecs[0].name == "sharding_indexed":
        return meta.codecs[0]
    return None


def _layout(meta, args, zarr_format, notes, unsuited, path):
    """``(chunks, codecs)`` of the destination array for source metadata ``meta``
    (a note in ``notes`` for each option that does not apply to it, and the
    reason in ``unsuited`` when ``--codecs`` do not suit it)."""
    codecs = [c.to_dict() for c in meta.codecs]
    sharding = _sharding_of(meta)
    chunks_arg = args.chunks
    shards_arg = args.shards
    rank = len(meta.shape)
    if chunks_arg is not None and len(chunks_arg) != rank:
        notes.append(f"{path}: rank {rank}, --chunks has {len(chunks_arg)} values: "
                     f"its chunks are kept")
        chunks_arg = None
    if shards_arg not in (None, "none") and len(shards_arg) != rank:
        notes.append(f"{path}: rank {rank}, --shards has {len(shards_arg)} values: "
                     f"its shards are kept")
        shards_arg = None
    if rank == 0:
        shards_arg = None   # nothing to shard
    if (chunks_arg is None and shards_arg is None and args.codecs is None
            and not (zarr_format == 2 and sharding is not None)):
        return tuple(meta.chunks), codecs        # as the source stores it
    user = args.codecs
    if user is not None and any(c.get("name") == "sharding_indexed" for c in user):
        # The user's chain is the whole chain, sharding included.
        return tuple(chunks_arg or meta.chunks), user
    if sharding is not None:
        conf = sharding.to_dict()["configuration"]
        inner_chunks, inner_codecs = tuple(sharding.chunk_shape), conf["codecs"]
        index = {"index_codecs": conf["index_codecs"], "index_location": conf["index_location"]}
        shards = tuple(meta.chunks)
    else:
        inner_chunks, inner_codecs, index, shards = tuple(meta.chunks), codecs, {}, None
    chunks = chunks_arg or inner_chunks
    if zarr_format == 2 and shards_arg not in (None, "none"):
        notes.append(f"{path}: Zarr v2 has no sharding: --shards does not apply")
    if shards_arg == "none" or zarr_format == 2:
        shards = None
    elif shards_arg is not None:
        shards = shards_arg
    if user is not None:
        reason = _unsuitable(user, meta, chunks)
        if reason is None:
            inner_codecs = user
        else:
            notes.append(f"{path}: --codecs do not suit its data type {meta.data_type} "
                         f"({reason}): its codecs are kept")
            unsuited.append(reason)
    if shards is None:
        return chunks, inner_codecs
    return shards, [{"name": "sharding_indexed",
                     "configuration": {"chunk_shape": list(chunks), "codecs": inner_codecs,
                                       **index}}]


def _unsuitable(codecs, meta, chunks):
    """Why codec list ``codecs`` cannot encode ``meta``'s data type, or None."""
    try:
        ArrayMetadata(meta.shape, chunks, meta.data_type, meta.fill_value, codecs)
    except (CodecError, InvalidDataType) as e:
        return _one_line(e)
    except ParseError:
        return None   # something else is wrong: planning the array names it
    return None


def _open_destination(src_url, dst_url, overwrite):
    src_local, dst_local = _local_path(src_url), _local_path(dst_url)
    if src_local is not None and dst_local is not None:
        a, b = os.path.realpath(src_local), os.path.realpath(dst_local)
        if a == b or b.startswith(a.rstrip(os.sep) + os.sep) or a.startswith(
                b.rstrip(os.sep) + os.sep):
            raise CommandError(f"the destination {dst_url} is the source or lies inside "
                               f"it (or the other way round)")
    elif str(src_url).rstrip("/") == str(dst_url).rstrip("/"):
        raise CommandError(f"the destination {dst_url} is the source")
    if overwrite:
        return open_store(dst_url, mode="w")
    refusal = (f"the destination {dst_url} exists and is not empty "
               f"(--overwrite replaces it)")
    if dst_local is not None and dst_local.lower().endswith(".zip"):
        if os.path.exists(dst_local) and (os.path.isdir(dst_local)
                                          or os.path.getsize(dst_local) > 0):
            raise CommandError(refusal)
        return open_store(dst_url, mode="w")
    store = open_store(dst_url, mode="a")
    keys, prefixes = store.list_dir("")
    if keys or prefixes:
        raise CommandError(refusal)
    return store


def _block_shape(shape, dst_chunks, src_chunks, itemsize, budget):
    """The blocks ``copy`` moves: whole destination chunks (``dst_chunks``:
    shards when sharded) along every axis, or the rest of the axis, and at
    most ``budget`` bytes (at least one chunk). Where it fits, a block also
    holds whole source chunks, so that each source chunk is decoded once."""
    ndim = len(shape)
    unit = [min(c, n) if n else 1 for c, n in zip(dst_chunks, shape)]

    def nbytes(extents):
        return math.prod(extents) * itemsize

    for d in reversed(range(ndim)):
        aligned = min(math.lcm(dst_chunks[d], src_chunks[d]), shape[d] or 1)
        trial = unit[:d] + [aligned] + unit[d + 1:]
        if nbytes(trial) <= budget:
            unit = trial
    block = list(unit)
    for d in reversed(range(ndim)):
        others = nbytes(block[:d] + [1] + block[d + 1:])
        times = max(1, budget // max(1, others * unit[d]))
        block[d] = min(unit[d] * times, max(shape[d], 1))
    return tuple(block)


def _copy_array(src, snode, dst, dnode, progress, failed):
    """Copy the data of ``snode`` into the array ``dnode`` (already created)."""
    smeta, dmeta = src.array_metadata(snode), dst.array_metadata(dnode)
    shape = tuple(smeta.shape)
    if any(n == 0 for n in shape):
        return 0
    itemsize = smeta.dtype.itemsize
    block = _block_shape(shape, dmeta.chunks, smeta.chunks, itemsize, config.get("copy_block_bytes"))
    starts = [range(0, n, b) for n, b in zip(shape, block)]
    n_blocks = math.prod(len(r) for r in starts)
    fill = fill_array(smeta.fill_value, smeta.dtype)
    lanes = max(1, min(config.get("copy_blocks_in_flight"), config.get_threads(), n_blocks))
    skipped = [0] * lanes

    def lane(i):
        for origin in itertools.islice(itertools.product(*starts), i, None, lanes):
            if failed.is_set():
                return
            sel = tuple(slice(o, min(o + b, n)) for o, b, n in zip(origin, block, shape))
            extents = [s.stop - s.start for s in sel]
            chunks = math.prod(-(-e // c) for e, c in zip(extents, dmeta.chunks))
            try:
                data = src.read_array(snode, sel)
                if all_fill(data, fill):
                    skipped[i] += chunks   # nothing to store: never-written chunks stay absent
                else:
                    dst.write_array(dnode, sel, data)
                del data
            except Exception:
                failed.set()   # the other lanes stop at their next block
                raise
            progress.add(math.prod(extents) * itemsize, chunks)

    scheduler.run(lane, lanes, parallel=True)
    return sum(skipped)


def _plan_array(src, node, path, args, notes, unsuited):
    """``(node, source metadata, create_array keywords)`` of one array's copy;
    ``CommandError`` if its destination format cannot hold it."""
    meta = src.array_metadata(node)
    fmt = args.zarr_format or meta.zarr_format
    chunks, codecs = _layout(meta, args, fmt, notes, unsuited, node.path)
    attributes = dict(meta.attributes)
    names = meta.dimension_names
    if names is not None:
        # v2 keeps them in this attribute (xarray's), v3 in dimension_names.
        attributes.pop("_ARRAY_DIMENSIONS", None)
    if fmt == 2 and names is not None and any(n is None for n in names):
        names = None
    same_format = fmt == meta.zarr_format
    kwargs = dict(shape=meta.shape, chunks=chunks, dtype=meta.data_type,
                  fill_value=meta.fill_value, codecs=codecs, dimension_names=names,
                  attributes=attributes,
                  separator=meta.separator if same_format else None,
                  chunk_key_encoding=meta.chunk_key_encoding if same_format else None,
                  zarr_format=fmt)
    try:   # what create_array checks, before the destination is touched
        ArrayMetadata(kwargs["shape"], chunks, meta.data_type, meta.fill_value, codecs,
                      attributes, names, kwargs["chunk_key_encoding"] or
                      ("v2" if fmt == 2 else "default"), kwargs["separator"],
                      zarr_format=fmt)
    except (CodecError, ParseError) as e:
        hint = " (pass --codecs)" if fmt != meta.zarr_format and args.codecs is None else ""
        raise CommandError(f"{node.path}: cannot write it as Zarr v{fmt}: "
                           f"{_one_line(e)}{hint}") from None
    return node, meta, kwargs


def _cmd_copy(args):
    t0 = time.perf_counter()
    path = _node_path(args.path)
    if args.shards is not None and args.zarr_format == 2 and args.shards != "none":
        raise CommandError("--shards: Zarr v2 has no sharding")
    if args.shards is not None and any(c.get("name") == "sharding_indexed"
                                       for c in args.codecs or []):
        raise CommandError("--shards and a --codecs list that holds sharding_indexed both "
                           "say how to shard: give one of them")
    src = _open_existing(args.src)
    root_array = ArrayNode.of_path(path)
    if src.array_exists(root_array):
        arrays, groups = [root_array], []
    elif src.group_exists(GroupNode.of_path(path)):
        arrays, groups = _walk(src, GroupNode.of_path(path))
    else:
        raise CommandError(f"{args.src}: no group or array at {path}")
    notes, unsuited = [], []
    # Every array's metadata is settled before anything is written: a codec
    # that the format cannot express fails here, with the destination untouched.
    plans = [_plan_array(src, node, path, args, notes, unsuited) for node in arrays]
    if args.codecs is not None and arrays and len(unsuited) == len(arrays):
        raise CommandError(f"--codecs suit none of the arrays: {unsuited[0]}")
    dst = _open_destination(args.src, args.dst, args.overwrite)
    failed = threading.Event()
    total = sum(math.prod(meta.shape) * meta.dtype.itemsize for _, meta, _ in plans)
    progress = _Progress(args.progress, total, "B", "copy")
    skipped = 0
    consolidated = False
    try:
        for group in groups:
            meta = src.group_metadata(group)
            if group.path == path and meta.consolidated is not None:
                consolidated = True
            fmt = args.zarr_format or meta.zarr_format
            dst.create_group(_relocated(group, path, GroupNode), dict(meta.attributes),
                             zarr_format=fmt)
        for node, meta, kwargs in plans:
            dnode = _relocated(node, path, ArrayNode)
            dst.create_array(dnode, **kwargs)
            try:
                skipped += _copy_array(src, node, dst, dnode, progress, failed)
            except (ZarrSyncError, OSError, ValueError) as e:
                raise CommandError(f"copying {node.path}: {_one_line(e)}") from None
        if consolidated and groups:
            dst.consolidate_metadata(GroupNode.root())
    finally:
        progress.close()
        dst.close()   # a zip file is complete only once closed
        src.close()
    seconds = time.perf_counter() - t0
    rate = total / 1e6 / seconds if seconds > 0 else 0.0
    if args.json:
        _emit_json({"command": "copy", "source": str(args.src),
                    "destination": str(args.dst), "path": path,
                    "arrays": len(arrays), "groups": len(groups),
                    "chunks": progress.chunks, "chunks_skipped": skipped,
                    "bytes": total, "seconds": round(seconds, 4), "mb_per_s": round(rate, 2),
                    "consolidated": consolidated, "notes": notes})
    else:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"copied {_count(len(arrays), 'array')} and {_count(len(groups), 'group')}: "
              f"{_count(progress.chunks, 'chunk')} ({skipped} in blocks of only fill value, "
              f"skipped), "
              f"{total / 2**20:.1f} MiB in {seconds:.2f} s ({rate:.1f} MB/s)")
    return 0


# -- check --------------------------------------------------------------------------------

def _documents(store, prefix):
    """The metadata document keys under ``prefix`` (``zarr.json``, ``.zarray``, ``.zgroup``)."""
    keys = [k for k in store.list_prefix(prefix) if k.rpartition("/")[2] in _METADATA_NAMES]
    # Per node, zarr.json first: a node with both is v3, as reads see it.
    return sorted(keys, key=lambda k: (_node_of_document(k), not k.endswith("zarr.json")))


def _node_of_document(key):
    name = key.rpartition("/")[2]
    return "/" + key[:-len(name)].strip("/")


def _cmd_check(args):
    t0 = time.perf_counter()
    path = _node_path(args.path)
    store = _open_existing(args.url)
    base = GroupNode.of_path(path)
    prefix = base.key + "/" if base.key else ""
    docs = _documents(store, prefix)
    if path != "/" and not docs and not store.list_prefix(prefix):
        raise CommandError(f"{args.url}: no group or array at {path}")
    unreadable, arrays, groups = [], [], []
    seen = set()
    for key in docs:
        node_path = _node_of_document(key)
        if node_path in seen:
            continue   # a v3 node that also has v2 documents: v3 first, as reads do
        try:
            if key.endswith("zarr.json"):
                raw = store.get(key)
                if raw is None:
                    continue   # erased since the listing
                kind = node_type_of(raw, key)
            else:
                kind = "array" if key.endswith(".zarray") else "group"
            if kind == "array":
                node = ArrayNode.of_path(node_path)
                arrays.append((node, store.array_metadata(node)))
            else:
                node = GroupNode.of_path(node_path)
                store.group_metadata(node)
                groups.append(node)
            seen.add(node_path)
        except (ZarrSyncError, OSError, ValueError) as e:
            unreadable.append({"key": key, "error": f"{type(e).__name__}: {_one_line(e)}"})
    chunks = []
    for node, meta in arrays:
        try:
            for stored in store.stored_chunks(node):
                chunks.append((node, meta, stored))
        except (ZarrSyncError, OSError, ValueError) as e:
            unreadable.append({"key": node.metadata_key,
                               "error": f"{type(e).__name__}: {_one_line(e)}"})
    progress = _Progress(args.progress, len(chunks), "chunk", "check")
    broken = []
    lock = threading.Lock()

    def decode(i):
        node, meta, stored = chunks[i]
        sel = tuple(slice(c * n, min((c + 1) * n, s))
                    for c, n, s in zip(stored.chunk_coords, meta.chunks, meta.shape))
        try:
            store.read_array(node, sel)
        # Every failure to decode a stored chunk makes it broken: a checksum,
        # a codec's error, a truncated frame, a wrong size, a store's read error.
        except Exception as e:
            with lock:
                broken.append({"array": node.path, "key": stored.key,
                               "error": f"{type(e).__name__}: {_one_line(e)}"})
        progress.add(1, 1)

    try:
        scheduler.run(decode, len(chunks), parallel=True)
    finally:
        progress.close()
        store.close()
    broken.sort(key=lambda b: b["key"])
    seconds = time.perf_counter() - t0
    stored_bytes = sum(s.nbytes for _, _, s in chunks)
    ok = not broken and not unreadable
    if args.json:
        _emit_json({"command": "check", "url": str(args.url), "path": path, "ok": ok,
                    "arrays": len(arrays), "groups": len(groups), "chunks": len(chunks),
                    "stored_bytes": stored_bytes, "broken": broken,
                    "unreadable_metadata": unreadable, "seconds": round(seconds, 4)})
    else:
        for doc in unreadable:
            print(f"UNREADABLE {doc['key']}: {doc['error']}")
        for chunk in broken:
            print(f"BROKEN {chunk['key']}: {chunk['error']}")
        verdict = ("all decode" if ok else f"{_count(len(broken), 'broken chunk')}, "
                   f"{_count(len(unreadable), 'unreadable metadata document')}")
        print(f"checked {_count(len(arrays), 'array')} and {_count(len(groups), 'group')}, "
              f"{_count(len(chunks), 'chunk')} "
              f"({stored_bytes / 2**20:.1f} MiB stored) in {seconds:.2f} s: {verdict}")
    return 0 if ok else 1


# -- demo ---------------------------------------------------------------------------------

def _field(shape, dtype, seed):
    """A smooth field plus small noise: data that compresses like real fields."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 3, n) for n in shape], indexing="ij")
    smooth = sum(np.sin(g * (i + 1)) for i, g in enumerate(grids))
    return (smooth * 10 + rng.normal(0, 0.01, shape)).astype(dtype)


def _demo_arrays():
    """(path, create_array kwargs, data) of the demo hierarchy."""
    rng = np.random.default_rng(0)
    temp = _field((64, 128, 128), "float32", 1)
    precip = np.abs(_field((64, 128, 128), "float64", 2))
    land = _field((128, 128), "float32", 3) > 0
    counts = rng.integers(0, 1000, (500, 300), dtype="int16")
    spectrum = (_field((256, 64), "float64", 4) + 1j * _field((256, 64), "float64", 5))
    return [
        ("/climate/daily/temperature",
         dict(chunks=(16, 64, 64), fill_value=float("nan"),
              codecs=[Bytes(), Zstd(level=1)], dimension_names=["time", "lat", "lon"],
              attributes={"units": "K"}), temp),
        ("/climate/daily/precipitation",
         dict(chunks=(16, 64, 64), codecs=[Bytes(), Gzip(level=1)],
              dimension_names=["time", "lat", "lon"], attributes={"units": "mm"}), precip),
        ("/climate/land_mask",
         dict(chunks=(64, 64), codecs=[Bytes(), Zstd(level=3, checksum=True)]), land),
        ("/stations/counts",
         dict(chunks=(100, 100), fill_value=-1,
              codecs=[Transpose((1, 0)), Bytes("big"), Crc32c()]), counts),
        ("/stations/spectrum",
         dict(chunks=(64, 64), codecs=[Bytes(), Zstd(level=1), Crc32c()],
              separator=".", chunk_key_encoding="v2"), spectrum),
    ]


def _median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _stored_bytes(store, node):
    chunks = store.stored_chunks(node)
    return len(chunks), sum(c.nbytes for c in chunks)


def _print_tree(store, group, depth, out):
    arrays, groups = store.find_child_nodes(group)
    for child in sorted(arrays + groups, key=lambda n: n.path):
        pad = "  " * depth
        if isinstance(child, GroupNode):
            print(f"{pad}{child.name}/", file=out)
            _print_tree(store, child, depth + 1, out)
        else:
            meta = store.array_metadata(child)
            nchunks, nbytes = _stored_bytes(store, child)
            raw = int(np.prod(meta.shape)) * meta.dtype.itemsize
            codecs = "+".join(c.name for c in meta.codecs)
            print(f"{pad}{child.name}  {meta.data_type}{list(meta.shape)} "
                  f"chunks={list(meta.chunks)} codecs={codecs}  "
                  f"{nchunks} chunks, {nbytes / 1e6:.2f} MB stored "
                  f"({raw / max(nbytes, 1):.1f}x)", file=out)


def demo(repeats=3, out=None):
    """Run the demonstration; returns 0 when every value read back matches.

    It builds an in-memory Zarr v3 hierarchy of groups and arrays with several
    codecs, writes it, reads it back (checking every value), prints the tree
    with shapes, chunks, codecs and stored bytes, and reports read/write
    throughput as the median of ``repeats`` runs.
    """
    out = sys.stdout if out is None else out
    print(f"zarrsync {__version__}: an in-memory Zarr v3 hierarchy\n", file=out)
    store = MemoryStore()
    store.create_group(GroupNode.root(), attrs={"title": "zarrsync demo"})
    arrays = _demo_arrays()
    nodes = []
    for path, kwargs, data in arrays:
        node = ArrayNode.of_path(path)
        store.create_array(node, shape=data.shape, dtype=data.dtype, **kwargs)
        nodes.append(node)

    total = sum(d.nbytes for _, _, d in arrays)

    def write_all():
        for node, (_, _, data) in zip(nodes, arrays):
            store.write_array(node, ..., data)

    def read_all():
        return [store.read_array(node) for node in nodes]

    t_write = _median_seconds(write_all, repeats)
    t_read = _median_seconds(read_all, repeats)

    ok = True
    for node, (_, _, data), back in zip(nodes, arrays, read_all()):
        if not np.array_equal(back, data, equal_nan=data.dtype.kind in "fc"):
            print(f"MISMATCH in {node.path}", file=out)
            ok = False

    # A partial, strided read and an unaligned write, as a simulation would do.
    temp = nodes[0]
    store.write_array(temp, (slice(3, 5), slice(10, 90), 7), np.float32(0.5))
    window = store.read_array(temp, (slice(0, 64, 8), 20, slice(None, None, 16)))

    print("tree:", file=out)
    _print_tree(store, GroupNode.root(), 1, out)
    arrays_found, groups_found = store.find_all_nodes()
    print(f"\n{len(arrays_found)} arrays, {len(groups_found)} groups, "
          f"{len(store)} keys in the store", file=out)
    print(f"strided read (0:64:8, 20, ::16) of temperature -> shape {window.shape}", file=out)
    print(f"\nthroughput over {total / 1e6:.1f} MB of array data "
          f"(median of {repeats}):", file=out)
    print(f"  write {total / t_write / 1e6:8.1f} MB/s", file=out)
    print(f"  read  {total / t_read / 1e6:8.1f} MB/s", file=out)
    print("\nall values read back exactly" if ok else "\nREAD-BACK FAILED", file=out)
    return 0 if ok else 1


def _cmd_demo(args):
    return demo(args.repeats)


# -- the parser ---------------------------------------------------------------------------

def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser():
    """The ``zarrsync`` argument parser."""
    parser = _Parser(
        prog="zarrsync", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Inspect, copy, convert, consolidate and check Zarr v2 and v3 stores.",
        epilog=_EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"zarrsync {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")

    def command(name, help_text, func):
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=_EXIT_CODES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = command("tree", "print the hierarchy of groups and arrays", _cmd_tree)
    p.add_argument("url", help="the store: a folder, .zip, memory:// or object store URL")
    p.add_argument("--path", default="/", help="the group to start at (default /)")
    p.add_argument("--json", action="store_true", help="print the tree as JSON")

    p = command("info", "describe one array or group", _cmd_info)
    p.add_argument("url", help="the store")
    p.add_argument("path", help="the node's path inside the store, such as /group/array")
    p.add_argument("--json", action="store_true", help="print the description as JSON")

    p = command("copy", "copy a hierarchy (or one array) to another store, converting "
                "the format, codecs and chunks on the way", _cmd_copy)
    p.add_argument("src", help="the source store")
    p.add_argument("dst", help="the destination store (new, or empty; see --overwrite)")
    p.add_argument("--path", default="/",
                   help="copy the group or array at this path of the source; it becomes "
                        "the destination's root (default /)")
    p.add_argument("--codecs", type=_codecs_arg, metavar="JSON",
                   help="the codec list of every array whose data type suits it, as in "
                        "zarr.json's \"codecs\"")
    p.add_argument("--chunks", type=_shape_arg, metavar="N,N,..",
                   help="the new chunk shape (the inner chunk shape when sharded) of every "
                        "array of that rank")
    p.add_argument("--shards", type=_shards_arg, metavar="N,N,..",
                   help="the new shard shape of every array of that rank, or 'none' for no "
                        "sharding (default: as the source)")
    p.add_argument("--zarr-format", type=int, choices=(2, 3), dest="zarr_format",
                   help="the destination's Zarr format (default: each node's own)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a destination that is not empty")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_false", dest="progress",
                   help="no progress bar (there is none unless stderr is a terminal)")

    p = command("consolidate", "write the consolidated metadata of a group (v3: into its "
                "zarr.json; v2: .zmetadata)", _cmd_consolidate)
    p.add_argument("url", help="the store")
    p.add_argument("--path", default="/", help="the group (default /)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = command("check", "decode every stored chunk and metadata document; list the "
                "broken ones and exit 1 if there are any", _cmd_check)
    p.add_argument("url", help="the store")
    p.add_argument("--path", default="/", help="check only below this path (default /)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_false", dest="progress",
                   help="no progress bar (there is none unless stderr is a terminal)")

    p = command("demo", "build, write, read and list an in-memory hierarchy, with "
                "throughput figures", _cmd_demo)
    p.add_argument("--repeats", type=_positive_int, default=3,
                   help="runs of the write and read timings (their median is shown)")
    return parser


def main(argv=None):
    """Run the ``zarrsync`` command with ``argv`` (default ``sys.argv[1:]``);
    returns the exit code: 0 success, 1 failure or broken chunks found, 2
    usage error."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:   # --help, --version and usage errors
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader of stdout went away (``zarrsync tree ... | head``): stop
        # quietly, as the Python documentation advises for pipes.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (CommandError, ZarrSyncError, OSError, ValueError) as e:
        print(f"zarrsync: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("zarrsync: interrupted", file=sys.stderr)
        return 130
