"""Interoperability with zarr-python: the same bytes, read by either library.

Every test moves the raw ``key -> bytes`` contents of one library's in-memory
store into the other's and checks that the data (bit for bit: NaN payloads,
-0.0, every integer) and the metadata (shape, chunk shape, data type, fill
value bits, codecs, attributes, dimension names, chunk key encoding) come
back identical. Both libraries also write the same ``zarr.json`` documents
(equal as JSON) and, for chains without a compressor, the same chunk keys and
chunk bytes. ``tests/fixtures/`` holds stores written by a pinned zarr-python
(see ``tests/fixtures/generate.py``), read here by zarrsync and compared with
what zarrsync writes for the same recipe.

Known zarr-python 3.1 behaviours the tests allow for, each where it matters:

* it writes every NaN fill value as ``"NaN"`` (``float_to_json_v3``), so a
  NaN with a payload or a sign loses them; zarrsync writes the spec's
  ``"0x..."`` form, the only lossless one;
* it parses ``"0x..."`` through a Python ``float`` (``float_from_json_v3``),
  so it reads float16 payloads and signalling NaNs as other NaNs;
* it stores no chunk that ``NDBuffer.all_equal`` finds equal to the fill
  value, comparing with ``array_equal(equal_nan=True)`` except for a float
  zero fill value: with a NaN fill value a chunk of NaNs with other bits,
  or a complex chunk with a NaN in one part, is dropped and reads back as
  the fill value (and so is a complex chunk of -0.0 with fill value 0);
  ``zarr_python_model`` replays this, so zarrsync must read exactly what
  zarr-python kept, and zarr-python's losses are never blamed on zarrsync;
* it writes gzip members with the current time and OS 255 in the header,
  so gzip chunk bytes differ from zarrsync's (``mtime=0``) though they
  decode to the same bytes.

Spec: https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html
"""

import importlib.util
import itertools
import json
import pathlib
import zipfile

import numpy as np
import pytest

import zarrsync as zs
from interop_matrix import cell, codec_label, dtype_label
from zarrsync import ArrayNode, GroupNode

zarr = pytest.importorskip("zarr")

from zarr.codecs import (BytesCodec, Crc32cCodec, GzipCodec,  # noqa: E402
                         ShardingCodec, TransposeCodec, ZstdCodec)
from zarr.core.buffer.cpu import Buffer  # noqa: E402

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
          "uint64", "float16", "float32", "float64", "complex64", "complex128"]
ENDIANS = ["little", "big"]
# (chunk_key_encoding name, separator)
KEY_ENCODINGS = [("default", "/"), ("default", "."), ("v2", "."), ("v2", "/")]

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


# -- codec chains as spec JSON --------------------------------------------------------

def c_bytes(endian="little"):
    return {"name": "bytes", "configuration": {"endian": endian}}


def c_transpose(*order):
    return {"name": "transpose", "configuration": {"order": list(order)}}


def c_gzip(level):
    return {"name": "gzip", "configuration": {"level": level}}


def c_zstd(level, checksum=False):
    return {"name": "zstd", "configuration": {"level": level, "checksum": checksum}}


C_CRC32C = {"name": "crc32c"}


def chains_2d(endian):
    b = c_bytes(endian)
    return [
        [b],
        [b, c_gzip(1)],
        [b, c_zstd(0)],
        [c_transpose(1, 0), b],
        [b, C_CRC32C],
        [c_transpose(1, 0), b, c_zstd(-3, True), C_CRC32C],
        [b, c_gzip(9), C_CRC32C],
    ]


def chains_3d(endian):
    b = c_bytes(endian)
    return [
        [b],
        [c_transpose(2, 0, 1), b],
        [c_transpose(1, 2, 0), b, C_CRC32C],
        [c_transpose(0, 1, 2), b],
        [c_transpose(2, 1, 0), c_transpose(1, 0, 2), b],
        [b, c_gzip(0)],
        [b, c_gzip(1)],
        [b, c_gzip(5)],
        [b, c_gzip(9)],
        [b, c_zstd(-131072)],
        [b, c_zstd(-7, True)],
        [b, c_zstd(0)],
        [b, c_zstd(1, True)],
        [b, c_zstd(3)],
        [b, c_zstd(22, True)],
        [b, C_CRC32C],
        [b, c_gzip(3), C_CRC32C],
        [b, C_CRC32C, c_zstd(2, True)],
        [b, c_zstd(1), c_gzip(2)],
        [c_transpose(2, 1, 0), b, c_gzip(4), c_zstd(-1, True), C_CRC32C],
        [b, C_CRC32C, C_CRC32C],
    ]


def c_sharding(chunk_shape, codecs, index_codecs, index_location="end"):
    return {"name": "sharding_indexed", "configuration": {
        "chunk_shape": list(chunk_shape), "codecs": codecs, "index_codecs": index_codecs,
        "index_location": index_location}}


def has_compressor(chain):
    """True if chunk bytes may depend on the library (compressors; shard layout)."""
    return any(c["name"] in ("gzip", "zstd", "sharding_indexed") for c in chain)


def zarr_codec_args(chain):
    """zarr-python's ``filters`` / ``serializer`` / ``compressors`` for a spec chain."""
    filters, serializer, compressors = [], None, []
    for c in chain:
        cfg = c.get("configuration", {})
        if c["name"] == "transpose":
            filters.append(TransposeCodec(order=cfg["order"]))
        elif c["name"] == "bytes":
            serializer = BytesCodec(endian=cfg.get("endian"))
        elif c["name"] == "gzip":
            compressors.append(GzipCodec(level=cfg["level"]))
        elif c["name"] == "zstd":
            compressors.append(ZstdCodec(level=cfg["level"], checksum=cfg["checksum"]))
        elif c["name"] == "crc32c":
            compressors.append(Crc32cCodec())
        elif c["name"] == "sharding_indexed":
            serializer = ShardingCodec.from_dict(c)
        else:  # pragma: no cover
            raise AssertionError(c)
    return {"filters": filters or None, "serializer": serializer,
            "compressors": compressors or None}


# -- values ---------------------------------------------------------------------------

def from_bits(dtype, *bits):
    """A scalar of ``dtype`` with exactly these bits (complex: real bits, imag bits)."""
    dt = np.dtype(dtype)
    unit = dt.itemsize // 2 if dt.kind == "c" else dt.itemsize
    return np.array(bits, dtype=f"u{unit}").view(dt)[0]


# Quiet NaNs with a payload, and signalling NaNs, per float width.
NAN_PAYLOAD = {2: 0x7E01, 4: 0x7FC00001, 8: 0x7FF8000000000001}
NAN_NEGATIVE = {2: 0xFE00, 4: 0xFFC00000, 8: 0xFFF8000000000000}
NAN_SIGNALLING = {2: 0x7C01, 4: 0x7F800001, 8: 0x7FF0000000000001}
NAN_CANONICAL = {2: 0x7E00, 4: 0x7FC00000, 8: 0x7FF8000000000000}


def special_values(dtype):
    """Values every round trip must keep bit for bit."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return [True, False]
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return [info.min, info.max, 0, 1, info.max // 3]
    if dt.kind == "f":
        w = dt.itemsize
        info = np.finfo(dt)
        return [np.nan, -0.0, 0.0, np.inf, -np.inf, from_bits(dt, NAN_PAYLOAD[w]),
                from_bits(dt, NAN_NEGATIVE[w]), from_bits(dt, NAN_SIGNALLING[w]),
                info.smallest_subnormal, info.max, info.min]
    part = np.dtype(f"f{dt.itemsize // 2}")
    w = part.itemsize
    return [complex(np.nan, 0), complex(-0.0, np.inf), complex(-np.inf, -0.0),
            from_bits(dt, NAN_PAYLOAD[w], NAN_SIGNALLING[w]),
            from_bits(dt, 0, NAN_NEGATIVE[w]), 1.5 - 2.25j]


def bit_pattern_data(dtype, shape, seed):
    """Random bit patterns of ``dtype`` (every NaN, subnormal, ...), specials first."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape, dtype=np.int64))
    if dt.kind == "b":
        flat = rng.integers(0, 2, size=n).astype(bool)
    else:
        flat = rng.integers(0, 256, size=n * dt.itemsize, dtype=np.uint8).view(dt).copy()
    specials = np.array(special_values(dt), dtype=dt)[:n]
    flat[:len(specials)] = specials
    return flat.reshape(shape)


def fill_values(dtype):
    """Fill values in every JSON encoding the spec has for ``dtype``."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return [False, True]
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return [0, 7, info.max, info.min if dt.kind == "i" else info.max - 1]
    if dt.kind == "f":
        w = dt.itemsize
        return [0.0, 1.5, -0.0, np.nan, np.inf, -np.inf, dt.type(0.1),
                from_bits(dt, NAN_PAYLOAD[w]), from_bits(dt, NAN_NEGATIVE[w]),
                from_bits(dt, NAN_SIGNALLING[w]), np.finfo(dt).smallest_subnormal]
    w = dt.itemsize // 2
    return [0j, 1.5 - 2j, complex(np.nan, 0), complex(np.inf, -np.inf),
            complex(-0.0, np.nan), from_bits(dt, NAN_PAYLOAD[w], 0),
            from_bits(dt, NAN_CANONICAL[w], NAN_NEGATIVE[w])]


def fill_scalar(value, dtype):
    """``value`` as a scalar of ``dtype``, without routing NaN bits through a float."""
    dt = np.dtype(dtype)
    if isinstance(value, np.generic) and value.dtype == dt:
        return value
    return np.array(value, dtype=dt)[()]


def float_parts_bits(value, dtype):
    """The unsigned bit patterns of the float parts of ``value`` (one, or two for complex)."""
    dt = np.dtype(dtype)
    unit = dt.itemsize // 2 if dt.kind == "c" else dt.itemsize
    return [int(b) for b in np.array(fill_scalar(value, dt)).reshape(1).view(f"u{unit}")]


def nans_are_canonical(value, dtype):
    """False if a float part of ``value`` is a NaN other than the canonical one.

    The spec's "NaN" means the canonical NaN only, so such a value needs the
    "0x..." form; zarr-python writes "NaN" for it anyway.
    """
    dt = np.dtype(dtype)
    if dt.kind not in "fc":
        return True
    w = dt.itemsize // 2 if dt.kind == "c" else dt.itemsize
    parts = np.array(fill_scalar(value, dt)).reshape(1)
    parts = parts.view(f"f{w}")
    bits = float_parts_bits(value, dt)
    return all(not np.isnan(p) or b == NAN_CANONICAL[w] for p, b in zip(parts, bits))


def zarr_python_reads_hex_exactly(value, dtype):
    """zarr-python 3.1 parses "0x..." via a Python float: float16 payloads and
    signalling NaNs come back as other NaNs (``float_from_json_v3``)."""
    dt = np.dtype(dtype)
    if nans_are_canonical(value, dt):
        return True
    w = dt.itemsize // 2 if dt.kind == "c" else dt.itemsize
    return w != 2 and all(b != NAN_SIGNALLING[w] for b in float_parts_bits(value, dt))


# -- comparisons ----------------------------------------------------------------------

def native(dt):
    dt = np.dtype(dt)
    return dt.newbyteorder("=") if dt.byteorder not in ("=", "|") else dt


def bit_rows(x):
    """``x`` in native byte order as an (n, itemsize) uint8 matrix."""
    x = np.asarray(x)
    x = np.ascontiguousarray(x.astype(native(x.dtype), copy=False))
    return x.reshape(-1).view(np.uint8).reshape(-1, x.dtype.itemsize)


def assert_same_bits(actual, expected, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert native(actual.dtype) == native(expected.dtype), (
        f"{what}: dtype {actual.dtype} != {expected.dtype}")
    a, e = bit_rows(actual), bit_rows(expected)
    bad = np.flatnonzero((a != e).any(axis=1))
    if bad.size:
        shown = [(np.unravel_index(i, actual.shape), a[i].tobytes().hex(),
                  e[i].tobytes().hex()) for i in bad[:5]]
        raise AssertionError(f"{what}: {bad.size} elements differ in their bits "
                             f"(index, got, expected): {shown}")


def canon(doc):
    """A JSON text for comparing documents: sorted keys, tuples as lists, NaN as NaN."""
    return json.dumps(doc, sort_keys=True, allow_nan=True)


def without_fill(doc):
    return {k: v for k, v in doc.items() if k != "fill_value"}


def fill_json(value, dtype, lossless=True):
    """The spec's JSON form of fill value ``value``.

    A NaN part is "NaN" when it has the canonical bits, else the "0x..." form
    of its bits (the only lossless one); with ``lossless=False`` every NaN is
    "NaN", as zarr-python 3.1 writes it.
    """
    dt = np.dtype(dtype)
    value = fill_scalar(value, dt)
    if dt.kind == "b":
        return bool(value)
    if dt.kind in "iu":
        return int(value)
    w = dt.itemsize // 2 if dt.kind == "c" else dt.itemsize
    parts = np.array(value).reshape(1).view(f"f{w}")
    forms = []
    for p, b in zip(parts, float_parts_bits(value, dt)):
        if np.isnan(p):
            forms.append("NaN" if b == NAN_CANONICAL[w] or not lossless
                         else "0x" + format(b, f"0{2 * w}x"))
        elif np.isinf(p):
            forms.append("Infinity" if p > 0 else "-Infinity")
        else:
            forms.append(float(p))
    return forms if dt.kind == "c" else forms[0]


# -- moving bytes between the libraries -----------------------------------------------

def zarr_store_from(zs_store):
    """A zarr-python MemoryStore holding a copy of a zarrsync store's key -> bytes."""
    return zarr.storage.MemoryStore(
        {k: Buffer.from_bytes(v) for k, v in zs_store.to_dict().items()})


def zarr_bytes(zstore):
    """The key -> bytes contents of a zarr-python MemoryStore."""
    return {k: v.to_bytes() for k, v in zstore._store_dict.items()}


def zs_store_from(zstore):
    """A zarrsync MemoryStore holding a copy of a zarr-python store's key -> bytes."""
    return zs.MemoryStore(zarr_bytes(zstore))


def doc_of(contents, key):
    return json.loads(contents[key])


def chunk_grid(shape, chunks):
    """``(chunk_coords, region)`` of every chunk of a regular grid."""
    counts = [-(-s // c) for s, c in zip(shape, chunks)]
    for coords in itertools.product(*map(range, counts)):
        yield coords, tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, chunks))


def chunk_key(case, coords):
    """Spec chunk key encodings: default ``c/1/2`` (``c`` for 0-d), v2 ``1.2`` (``0``)."""
    if case.encoding == "v2":
        return case.node.key + "/" + (case.separator.join(map(str, coords)) or "0")
    return case.node.key + "/c" + "".join(case.separator + str(c) for c in coords)


def zarr_python_all_equal(chunk, fill_value):
    """zarr-python 3.1's test for a chunk it does not store (``NDBuffer.all_equal``).

    Bit patterns only for a float zero fill value; otherwise ``array_equal``
    with ``equal_nan``: with a NaN fill value a chunk of NaNs with any bits
    (for complex, a NaN in either part) counts as empty, and so does a
    complex chunk of -0.0 with fill value 0.
    """
    fill = np.asarray(fill_value)
    if fill.dtype.kind == "f" and fill == 0.0:
        return is_fill(chunk, fill_value)
    return bool(np.array_equal(chunk, np.broadcast_to(fill, chunk.shape), equal_nan=True))


def zarr_python_model(case, stored_fill):
    """What zarr-python 3.1 leaves in its store after ``case.writes()``.

    Returns ``(data, keys)``: the array as read from the store afterwards and
    the chunk keys it stored. zarr-python stores no chunk that its
    ``all_equal`` calls empty, so a chunk that passes through such a state
    loses its data (later partial writes start again from the fill value).
    Chunks it did not store read as ``stored_fill``, the fill value of the
    document, which may differ from the one the array was created with when
    that is a NaN with a payload (zarr-python writes it as "NaN").
    """
    model = np.full(case.shape, case.fill_value, dtype=case.dtype)
    stored = set()
    for sel, value in case.writes():
        touched = np.zeros(case.shape, dtype=bool)
        touched[sel] = True
        model[sel] = value
        for coords, region in chunk_grid(case.shape, case.chunks):
            if not touched[region].any():
                continue
            key = chunk_key(case, coords)
            if zarr_python_all_equal(model[region], case.fill_value):
                model[region] = case.fill_value
                stored.discard(key)
            else:
                stored.add(key)
    for coords, region in chunk_grid(case.shape, case.chunks):
        if chunk_key(case, coords) not in stored:
            model[region] = stored_fill
    return model, stored


def zarrsync_keys(case):
    """The chunk keys zarrsync stores: every chunk written and not all fill value bits."""
    model = case.expected()
    touched = np.zeros(case.shape, dtype=bool)
    for sel, _ in case.writes():
        touched[sel] = True
    return {chunk_key(case, coords) for coords, region in chunk_grid(case.shape, case.chunks)
            if touched[region].any() and not is_fill(model[region], case.fill_value)}


def is_fill(x, fill_value):
    """True if every element of ``x`` has exactly the bits of ``fill_value``."""
    x = np.asarray(x)
    return bool((bit_rows(x) == bit_rows(np.array(fill_value, dtype=x.dtype))).all())


def absent_chunks(case, keys):
    """``(key, region)`` of each chunk of the array with no key in ``keys``."""
    for coords, region in chunk_grid(case.shape, case.chunks):
        key = chunk_key(case, coords)
        if key not in keys:
            yield key, region


# -- one array, written by either library ---------------------------------------------

class Case:
    """One array configuration plus a sequence of writes."""

    def __init__(self, dtype, shape, chunks, chain, fill_value=None, encoding=("default", "/"),
                 dimension_names=None, attributes=None, pieces=(), seed=0, path="/grp/arr",
                 label=None):
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)
        self.chunks = tuple(chunks)
        self.chain = chain
        self.fill_value = fill_scalar(0 if fill_value is None else fill_value, self.dtype)
        self.encoding, self.separator = encoding
        self.dimension_names = dimension_names
        self.attributes = attributes if attributes is not None else {}
        self.pieces = list(pieces)
        self.seed = seed
        self.node = ArrayNode.of_path(path)
        self.label = label

    def writes(self):
        """``(selection, value)`` for each piece, deterministic."""
        out = []
        for i, sel in enumerate(self.pieces):
            probe = np.empty(self.shape, dtype=np.uint8)[sel]
            out.append((sel, bit_pattern_data(self.dtype, probe.shape, self.seed * 101 + i)))
        return out

    def expected(self):
        """The numpy model: fill value everywhere, then every write in order."""
        model = np.full(self.shape, self.fill_value, dtype=self.dtype)
        for sel, value in self.writes():
            model[sel] = value
        return model

    def write_zarrsync(self):
        store = zs.MemoryStore()
        store.create_array(self.node, shape=self.shape, chunks=self.chunks, dtype=self.dtype,
                           fill_value=self.fill_value, codecs=self.chain,
                           dimension_names=self.dimension_names, attributes=self.attributes,
                           chunk_key_encoding=self.encoding, separator=self.separator)
        for sel, value in self.writes():
            store.write_array(self.node, sel, value)
        return store

    def write_zarr(self):
        zstore = zarr.storage.MemoryStore({})
        za = zarr.create_array(
            zstore, name=self.node.key, shape=self.shape, chunks=self.chunks,
            dtype=self.dtype.name, fill_value=self.fill_value,
            dimension_names=self.dimension_names, attributes=self.attributes,
            chunk_key_encoding={"name": self.encoding, "separator": self.separator},
            **zarr_codec_args(self.chain))
        for sel, value in self.writes():
            za[sel] = value
        return zstore

    def __repr__(self):
        return self.label or f"{self.dtype.name}-{self.shape}"


def check_zarr_reads_zarrsync(case):
    """zarrsync writes; zarr-python reads the same bytes: data and metadata."""
    store = case.write_zarrsync()
    meta = store.array_metadata(case.node)
    za = zarr.open_array(zarr_store_from(store), path=case.node.key, mode="r")

    assert tuple(za.shape) == meta.shape == case.shape
    assert tuple(za.metadata.chunk_grid.chunk_shape) == meta.chunks == case.chunks
    assert native(za.dtype) == meta.dtype == case.dtype
    assert za.metadata.dimension_names == (
        None if case.dimension_names is None else tuple(case.dimension_names))
    assert canon(za.attrs.asdict()) == canon(case.attributes)
    assert canon([c.to_dict() for c in za.metadata.codecs]) == canon(
        [c.to_dict() for c in meta.codecs])
    assert za.metadata.chunk_key_encoding.to_dict() == {
        "name": case.encoding, "configuration": {"separator": case.separator}}
    # The whole document as zarr-python understood it; it re-encodes a NaN
    # fill value with a payload as "NaN", checked bit for bit below instead.
    zarr_doc, zs_doc = za.metadata.to_dict(), meta.to_dict()
    if nans_are_canonical(case.fill_value, case.dtype):
        assert canon(zarr_doc) == canon(zs_doc)
    else:
        assert canon(without_fill(zarr_doc)) == canon(without_fill(zs_doc))

    expected = case.expected()
    if zarr_python_reads_hex_exactly(case.fill_value, case.dtype):
        assert_same_bits(za.fill_value, case.fill_value, "zarr-python's fill value")
        assert_same_bits(za[...], expected, "zarr-python reading zarrsync's chunks")
    else:
        # zarr-python reads this "0x..." fill value as another NaN; chunks
        # zarrsync stored still read back bit for bit.
        assert np.isnan(za.fill_value)
        lossy = expected.copy()
        for _, region in absent_chunks(case, set(store.to_dict())):
            lossy[region] = za.fill_value
        assert_same_bits(za[...], lossy, "zarr-python reading zarrsync's chunks")
    # zarrsync reads its own bytes the same way.
    assert_same_bits(store.read_array(case.node), expected, "zarrsync reading its own chunks")


def check_zarrsync_reads_zarr(case):
    """zarr-python writes; zarrsync reads the same bytes: data and metadata."""
    zstore = case.write_zarr()
    contents = zarr_bytes(zstore)
    store = zs.MemoryStore(contents)
    meta = store.array_metadata(case.node)
    zdoc = doc_of(contents, case.node.metadata_key)

    assert meta.shape == case.shape and meta.chunks == case.chunks
    assert meta.dtype == case.dtype
    assert meta.chunk_key_encoding == case.encoding and meta.separator == case.separator
    assert meta.dimension_names == (
        None if case.dimension_names is None else tuple(case.dimension_names))
    assert canon(meta.attributes) == canon(case.attributes)
    assert canon(meta.to_dict()) == canon(zdoc), "zarrsync changed zarr-python's document"

    za = zarr.open_array(zstore, path=case.node.key, mode="r")
    assert_same_bits(meta.fill_value, za.fill_value, "zarrsync's fill value")
    if nans_are_canonical(case.fill_value, case.dtype):
        assert_same_bits(meta.fill_value, case.fill_value, "zarrsync's fill value")
    else:  # zarr-python wrote "NaN" for it
        assert canon(fill_json(meta.fill_value, case.dtype)) == canon(
            fill_json(case.fill_value, case.dtype, lossless=False))
    from_zarr = za[...]
    got = store.read_array(case.node)
    assert_same_bits(got, from_zarr, "zarrsync reading zarr-python's chunks")
    # zarr-python's own losses (chunks it took for empty) are modelled, so
    # this pins both what zarr-python stored and that zarrsync reads all of it.
    expected, stored = zarr_python_model(case, meta.fill_value)
    assert {k for k in contents if not k.endswith("zarr.json")} == stored
    assert_same_bits(got, expected, "zarrsync reading zarr-python's chunks")


def check_same_documents_and_chunks(case):
    """Both libraries write equal zarr.json documents and the same chunk keys."""
    ours = case.write_zarrsync().to_dict()
    theirs = zarr_bytes(case.write_zarr())
    chunk_keys = {k for k in ours if not k.endswith("zarr.json")}
    assert chunk_keys == zarrsync_keys(case), "zarrsync stored other chunks than written"
    theirs_model, theirs_keys = zarr_python_model(case, case.fill_value)
    assert {k for k in theirs if not k.endswith("zarr.json")} == theirs_keys
    assert {k for k in ours if k.endswith("zarr.json")} == {
        k for k in theirs if k.endswith("zarr.json")}
    # Chunks where zarr-python lost data hold other bytes; every other one must match.
    model = case.expected()
    lost = {chunk_key(case, coords) for coords, region in chunk_grid(case.shape, case.chunks)
            if not (bit_rows(model[region]) == bit_rows(theirs_model[region])).all()}
    for key in sorted(set(ours) & set(theirs)):
        if key.endswith("zarr.json"):
            mine, other = doc_of(ours, key), doc_of(theirs, key)
            assert list(mine) == list(other), f"{key}: field order differs"
            if key == case.node.metadata_key:
                # As text, so -0.0 and 0.0 differ.
                assert canon(mine["fill_value"]) == canon(fill_json(case.fill_value, case.dtype))
                assert canon(other["fill_value"]) == canon(
                    fill_json(case.fill_value, case.dtype, lossless=False))
                if not nans_are_canonical(case.fill_value, case.dtype):
                    # zarr-python writes "NaN" and loses the payload; zarrsync keeps the bits.
                    mine, other = without_fill(mine), without_fill(other)
            assert canon(mine) == canon(other), f"{key}: documents differ"
        elif not has_compressor(case.chain) and key not in lost:
            assert ours[key] == theirs[key], f"chunk {key}: bytes differ"


# -- the dtype x endian x chunk key encoding grid -------------------------------------

DIM_NAMES_2D = [None, ["y", "x"], [None, "x"], ["\u00fcber", None], [None, None]]
ATTRIBUTES = [
    {},
    {"units": "m/s", "scale": 0.5, "valid": [0, 10]},
    {"t\u00eftle": "\u65e5\u672c\u8a9e \u2603 \U0001F600", "nested": {"a": [1, None, True, "x"]}},
    {"big": 2**63 - 1, "neg": -(2**63), "nan": float("nan"), "inf": float("-inf")},
]
PIECES_2D = [(slice(1, 4), slice(0, 3)), (slice(3, 6), slice(1, 3)), (slice(6, 7), slice(0, 1))]


def grid_cases():
    cases = []
    for d, dtype in enumerate(DTYPES):
        fills = fill_values(dtype)
        for j, (endian, (encoding, sep)) in enumerate(itertools.product(ENDIANS, KEY_ENCODINGS)):
            chains = chains_2d(endian)
            k = d + j
            cases.append(Case(
                dtype, (7, 5), (3, 2), chains[k % len(chains)], fills[k % len(fills)],
                (encoding, sep), DIM_NAMES_2D[k % len(DIM_NAMES_2D)],
                ATTRIBUTES[k % len(ATTRIBUTES)], PIECES_2D, seed=d * 8 + j,
                label=f"{dtype}-{endian}-{encoding}{sep}-chain{k % len(chains)}"))
    return cases


GRID = grid_cases()


@pytest.mark.parametrize("case", GRID, ids=repr)
def test_zarr_python_reads_zarrsync(case):
    check_zarr_reads_zarrsync(case)


@pytest.mark.parametrize("case", GRID, ids=repr)
def test_zarrsync_reads_zarr_python(case):
    check_zarrsync_reads_zarr(case)


@pytest.mark.parametrize("case", GRID, ids=repr)
def test_same_documents_and_chunks(case):
    check_same_documents_and_chunks(case)


# -- every codec chain, 3-D, over rotating dtypes -------------------------------------

PIECES_3D = [(slice(0, 3), slice(1, 4), slice(0, 2)), (slice(2, 5), 0, slice(1, 3)),
             (4, slice(3, 4), 2)]


def chain_cases():
    """Every chain with every data type; endian and key encoding rotate."""
    cases = []
    n = len(chains_3d("little"))
    for i in range(n):
        for d, dtype in enumerate(DTYPES):
            endian = ENDIANS[(i + d) % 2]
            encoding = KEY_ENCODINGS[(i + d // 2) % len(KEY_ENCODINGS)]
            chain = chains_3d(endian)[i]
            fills = fill_values(dtype)
            names = chain_names(chain)
            cases.append(Case(
                dtype, (5, 4, 3), (2, 3, 2), chain, fills[(i + d) % len(fills)], encoding,
                [None, "b", "c"] if (i + d) % 3 == 0 else None, {"chain": names}, PIECES_3D,
                seed=1000 + 14 * i + d,
                label=f"{names}-{dtype}-{endian}-{encoding[0]}{encoding[1]}"))
    return cases


def chain_names(chain):
    parts = []
    for c in chain:
        cfg = c.get("configuration", {})
        if c["name"] == "transpose":
            parts.append("T" + "".join(map(str, cfg["order"])))
        elif c["name"] == "bytes":
            parts.append("bytes")
        elif c["name"] == "gzip":
            parts.append(f"gzip{cfg['level']}")
        elif c["name"] == "zstd":
            parts.append(f"zstd{cfg['level']}{'c' if cfg['checksum'] else ''}")
        else:
            parts.append(c["name"])
    return "+".join(parts)


CHAINS = chain_cases()


@pytest.mark.parametrize("case", CHAINS, ids=repr)
def test_codec_chain_zarr_python_reads_zarrsync(case):
    check_zarr_reads_zarrsync(case)


@pytest.mark.parametrize("case", CHAINS, ids=repr)
def test_codec_chain_zarrsync_reads_zarr_python(case):
    check_zarrsync_reads_zarr(case)


@pytest.mark.parametrize("case", CHAINS, ids=repr)
def test_codec_chain_same_documents_and_chunks(case):
    check_same_documents_and_chunks(case)


@pytest.mark.parametrize("dtype", DTYPES)
def test_default_codecs_match_zarr_python(dtype):
    """No codecs given: both libraries pick bytes (little) + zstd level 0."""
    store = zs.MemoryStore()
    store.create_array(ArrayNode.of_path("/a"), shape=(6,), chunks=(4,), dtype=dtype)
    zstore = zarr.storage.MemoryStore({})
    zarr.create_array(zstore, name="a", shape=(6,), chunks=(4,), dtype=dtype)
    ours, theirs = store.to_dict(), zarr_bytes(zstore)
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        assert canon(doc_of(ours, key)) == canon(doc_of(theirs, key)), key


@pytest.mark.parametrize("dtype", ["uint8", "int8", "bool"])
@pytest.mark.parametrize("endian", ["little", "big", None])
def test_one_byte_types_have_no_endian(dtype, endian):
    """For one-byte types the bytes codec has no configuration in either library."""
    chain = [{"name": "bytes"} if endian is None else c_bytes(endian)]
    case = Case(dtype, (5,), (2,), chain, pieces=[slice(1, 4)], label=dtype)
    check_same_documents_and_chunks(case)
    doc = doc_of(case.write_zarrsync().to_dict(), case.node.metadata_key)
    assert doc["codecs"] == [{"name": "bytes"}]
    check_zarr_reads_zarrsync(case)
    check_zarrsync_reads_zarr(case)


# -- fill values ----------------------------------------------------------------------

def fill_cases():
    cases = []
    for dtype in DTYPES:
        dt = np.dtype(dtype)
        for i, fv in enumerate(fill_values(dtype)):
            endian = ENDIANS[i % 2]
            cases.append(Case(dtype, (5, 3), (2, 2), [c_bytes(endian), C_CRC32C], fv,
                              KEY_ENCODINGS[i % 4], pieces=[(slice(0, 2), slice(0, 2))],
                              seed=i, label=f"{dtype}-{i}-{bits_label(fv, dt)}"))
    return cases


def bits_label(value, dt):
    if dt.kind in "fc":
        return "_".join(f"{b:x}" for b in float_parts_bits(value, dt))
    return str(value)


FILLS = fill_cases()


@pytest.mark.parametrize("case", FILLS, ids=repr)
def test_fill_value(case):
    """Every fill value encoding, both directions, read through unwritten chunks too."""
    check_same_documents_and_chunks(case)
    check_zarr_reads_zarrsync(case)
    check_zarrsync_reads_zarr(case)


@pytest.mark.parametrize("dtype, bits", [
    ("float16", (NAN_PAYLOAD[2],)), ("float16", (NAN_SIGNALLING[2],)),
    ("float16", (NAN_NEGATIVE[2],)),
    ("float32", (NAN_PAYLOAD[4],)), ("float32", (NAN_SIGNALLING[4],)),
    ("float32", (NAN_NEGATIVE[4],)),
    ("float64", (NAN_PAYLOAD[8],)), ("float64", (NAN_SIGNALLING[8],)),
    ("float64", (NAN_NEGATIVE[8],)),
    ("complex64", (NAN_PAYLOAD[4], NAN_SIGNALLING[4])),
    ("complex128", (NAN_CANONICAL[8], NAN_NEGATIVE[8])),
])
def test_nan_with_payload_is_written_as_hex(dtype, bits):
    """Spec: a NaN other than the canonical one has only the "0x..." form."""
    value = from_bits(dtype, *bits)
    store = zs.MemoryStore()
    node = ArrayNode.of_path("/a")
    store.create_array(node, shape=(3,), chunks=(2,), dtype=dtype, fill_value=value)
    doc = json.loads(store.get(node.metadata_key))
    width = np.dtype(dtype).itemsize // len(bits)
    forms = ["NaN" if b == NAN_CANONICAL[width] else "0x" + format(b, f"0{2 * width}x")
             for b in bits]
    assert doc["fill_value"] == (forms if len(bits) == 2 else forms[0])
    assert_same_bits(store.array_metadata(node).fill_value, value, "parsed fill value")
    assert_same_bits(store.read_array(node), np.full(3, value), "fill read back")


@pytest.mark.parametrize("dtype, fill_json, expected_bits", [
    ("float32", "0x3fc00000", (0x3FC00000,)),
    ("float64", "0x4000000000000000", (0x4000000000000000,)),
    ("float16", "0x3c00", (0x3C00,)),
    ("float32", "-Infinity", (0xFF800000,)),
    ("float64", 1e300, (0x7E37E43C8800759C,)),
    ("complex64", ["0x7fc00001", "Infinity"], (0x7FC00001, 0x7F800000)),
    ("complex128", [1.5, "0x8000000000000000"], (0x3FF8000000000000, 0x8000000000000000)),
])
def test_fill_value_json_forms_read_alike(dtype, fill_json, expected_bits):
    """Documents using other spec forms of a fill value mean the same to both readers."""
    store = zs.MemoryStore()
    node = ArrayNode.of_path("/a")
    store.create_array(node, shape=(3,), chunks=(2,), dtype=dtype)
    doc = json.loads(store.get(node.metadata_key))
    doc["fill_value"] = fill_json
    store.set(node.metadata_key, json.dumps(doc).encode())
    expected = from_bits(dtype, *expected_bits)
    assert_same_bits(store.array_metadata(node).fill_value, expected, "zarrsync")
    assert_same_bits(store.read_array(node), np.full(3, expected), "zarrsync")
    za = zarr.open_array(zarr_store_from(store), path="a", mode="r")
    assert_same_bits(za.fill_value, expected, "zarr-python")
    assert_same_bits(za[...], np.full(3, expected), "zarr-python")


DOC_VARIANTS = {
    # Optional fields left out, or defaults spelled differently (spec-valid documents
    # that zarr-python does not write itself).
    "no-chunk-key-configuration": lambda d: d["chunk_key_encoding"].pop("configuration"),
    "default-encoding-no-configuration": lambda d: d.__setitem__(
        "chunk_key_encoding", {"name": "default"}),
    "no-attributes": lambda d: d.pop("attributes"),
    "no-dimension-names": lambda d: d.pop("dimension_names"),
    "no-storage-transformers": lambda d: d.pop("storage_transformers"),
    "extension-must-understand-false": lambda d: d.__setitem__(
        "my_extension", {"must_understand": False, "value": [1, 2]}),
}


@pytest.mark.parametrize("variant", sorted(DOC_VARIANTS))
def test_document_variants_read_alike(variant):
    """Both readers agree on spec-valid documents neither library writes."""
    case = Case("int16", (5, 4), (2, 3), [c_bytes("big")], 7, ("v2", "/"),
                dimension_names=["a", None], attributes={"x": 1},
                pieces=[(slice(0, 3), slice(1, 4))], seed=9)
    contents = case.write_zarrsync().to_dict()
    doc = doc_of(contents, case.node.metadata_key)
    DOC_VARIANTS[variant](doc)
    contents[case.node.metadata_key] = json.dumps(doc).encode()
    store = zs.MemoryStore(contents)
    meta = store.array_metadata(case.node)
    za = zarr.open_array(zarr_store_from(store), path=case.node.key, mode="r")
    encoding = za.metadata.chunk_key_encoding.to_dict()
    assert (meta.chunk_key_encoding, meta.separator) == (
        encoding["name"], encoding["configuration"]["separator"])
    assert meta.dimension_names == za.metadata.dimension_names
    assert canon(meta.attributes) == canon(za.attrs.asdict())
    assert_same_bits(store.read_array(case.node), za[...], variant)


# -- shapes, partial writes, selections -----------------------------------------------

def shape_cases():
    out = []
    specs = [
        # (shape, chunks, pieces)
        ((), (), [()], "0d"),
        ((), (), [], "0d-unwritten"),
        ((0,), (3,), [], "len0"),
        ((0, 4), (2, 2), [], "0x4"),
        ((4, 0, 2), (3, 1, 2), [], "4x0x2"),
        ((3,), (10,), [slice(1, 2)], "chunk-larger-than-shape"),
        ((1,), (1,), [slice(None)], "single"),
        ((13,), (4,), [slice(1, 2), slice(5, 11), slice(12, 13)], "1d-unaligned"),
        ((11, 13), (4, 5), [(slice(1, 10), slice(2, 12)), (slice(0, 4), slice(10, 13)),
                            (slice(3, 5), slice(0, 13)), (10, 12)], "2d-unaligned"),
        ((4, 5, 6, 3), (3, 2, 4, 2), [(slice(1, 3), slice(None), slice(2, 5), 1),
                                      (3, 4, 5, slice(None))], "4d"),
    ]
    i = 0
    for shape, chunks, pieces, name in specs:
        for dtype in ("float64", "int16", "complex64", "bool"):
            encoding = KEY_ENCODINGS[i % 4]
            endian = ENDIANS[i % 2]
            fv = fill_values(dtype)[1]
            out.append(Case(dtype, shape, chunks, [c_bytes(endian), c_gzip(1)], fv, encoding,
                            pieces=pieces, seed=i,
                            label=f"{name}-{dtype}-{encoding[0]}{encoding[1]}"))
            i += 1
    return out


SHAPES = shape_cases()


@pytest.mark.parametrize("case", SHAPES, ids=repr)
def test_shapes_and_partial_writes(case):
    check_same_documents_and_chunks(case)
    check_zarr_reads_zarrsync(case)
    check_zarrsync_reads_zarr(case)


def test_zero_dimensional_chunk_keys():
    """Spec: a 0-d array's one chunk is "c" (default encoding) or "0" (v2)."""
    for (encoding, sep), key in zip(KEY_ENCODINGS, ["c", "c", "0", "0"]):
        case = Case("int32", (), (), [c_bytes()], 3, (encoding, sep), pieces=[()], path="/s")
        ours = case.write_zarrsync().to_dict()
        assert sorted(ours) == sorted(["zarr.json", "s/zarr.json", "s/" + key])
        assert sorted(zarr_bytes(case.write_zarr())) == sorted(ours)


def test_many_overlapping_writes_both_ways():
    """Random overlapping, unaligned pieces written by one library and read by the other."""
    rng = np.random.default_rng(42)
    shape, chunks = (17, 9), (5, 4)
    pieces = []
    for _ in range(12):
        lo = [int(rng.integers(0, s)) for s in shape]
        hi = [int(rng.integers(a + 1, s + 1)) for a, s in zip(lo, shape)]
        pieces.append(tuple(slice(a, b) for a, b in zip(lo, hi)))
    for dtype in ("float32", "uint64"):
        case = Case(dtype, shape, chunks, [c_transpose(1, 0), c_bytes("big"), c_zstd(1)],
                    fill_values(dtype)[1], ("v2", "."), pieces=pieces, seed=7)
        check_zarr_reads_zarrsync(case)
        check_zarrsync_reads_zarr(case)
        # Same keys: both skip chunks left at the fill value.
        assert sorted(case.write_zarrsync().to_dict()) == sorted(zarr_bytes(case.write_zarr()))


SELECTIONS = [
    (slice(None), slice(None)),
    (slice(2, 9), slice(1, 4)),
    (3, slice(None)),
    (slice(None), -1),
    (-2, 3),
    (Ellipsis, slice(0, 7, 3)),
    (slice(1, 10, 4), slice(None, None, 2)),
    ([0, 3, 4, 9], slice(None)),
    ([1, 2], [0, 4, 5]),
    (slice(5, 5), slice(None)),
]


@pytest.mark.parametrize("sel", SELECTIONS, ids=repr)
def test_selections_of_zarr_python_array(sel):
    """zarrsync reads selections of a zarr-python array as zarr-python does."""
    case = Case("float32", (10, 7), (3, 4), [c_bytes("big"), c_gzip(2)], np.nan,
                ("default", "."), pieces=[(slice(1, 8), slice(0, 5))], seed=3)
    zstore = case.write_zarr()
    za = zarr.open_array(zstore, path=case.node.key, mode="r")
    store = zs_store_from(zstore)
    ortho = any(isinstance(s, list) for s in sel)
    expected = za.oindex[sel] if ortho else za[sel]
    assert_same_bits(store.read_array(case.node, sel), expected, f"selection {sel}")
    assert_same_bits(np.asarray(zs.Array(store, case.node)[sel]), expected, f"Array[{sel}]")


def test_zarr_python_writes_into_zarrsync_array():
    """Alternate writers on one store: zarrsync creates, zarr-python and zarrsync both write."""
    case = Case("int32", (9, 8), (4, 3), [c_bytes("big"), C_CRC32C], -1, ("v2", "/"),
                pieces=[(slice(0, 5), slice(1, 7))], seed=5)
    store = case.write_zarrsync()
    zstore = zarr_store_from(store)
    za = zarr.open_array(zstore, path=case.node.key, mode="r+")
    model = case.expected()
    za[4:9, 2:4] = np.arange(10, dtype=np.int32).reshape(5, 2)
    model[4:9, 2:4] = np.arange(10, dtype=np.int32).reshape(5, 2)
    store = zs_store_from(zstore)
    store.write_array(case.node, (slice(7, 9), slice(6, 8)), np.int32(99))
    model[7:9, 6:8] = 99
    za = zarr.open_array(zarr_store_from(store), path=case.node.key, mode="r")
    assert_same_bits(za[...], model, "zarr-python")
    assert_same_bits(store.read_array(case.node), model, "zarrsync")


def test_resize_both_ways():
    case = Case("float64", (10, 6), (4, 4), [c_bytes(), c_zstd(3)], -2.5, ("default", "/"),
                pieces=[(slice(None), slice(None))], seed=11)
    data = case.expected()

    # zarrsync shrinks, then grows: zarr-python sees fill values in the grown part.
    store = case.write_zarrsync()
    store.reshape(case.node, (5, 3))
    store.reshape(case.node, (12, 7))
    expected = np.full((12, 7), -2.5)
    expected[:5, :3] = data[:5, :3]
    za = zarr.open_array(zarr_store_from(store), path=case.node.key, mode="r")
    assert za.shape == (12, 7)
    assert_same_bits(za[...], expected, "zarr-python after zarrsync's reshape")

    # zarr-python resizes; zarrsync reads the same shape and the same elements.
    zstore = case.write_zarr()
    za = zarr.open_array(zstore, path=case.node.key, mode="r+")
    za.resize((5, 3))
    za.resize((7, 9))
    store = zs_store_from(zstore)
    assert store.array_metadata(case.node).shape == (7, 9)
    assert_same_bits(store.read_array(case.node), za[...], "zarrsync after zarr-python's resize")
    assert_same_bits(store.read_array(case.node)[:5, :3], data[:5, :3], "kept data")


# -- sharding_indexed ----------------------------------------------------------------

def sharding_chains(endian):
    b = c_bytes(endian)
    index = [c_bytes(), C_CRC32C]
    return [
        [c_sharding((2, 3), [b], index)],
        [c_sharding((2, 3), [b, c_gzip(1)], [c_bytes()], "start")],
        [c_sharding((2, 3), [c_transpose(1, 0), b, c_zstd(1, True), C_CRC32C], index)],
        # zarr-python checks the inner chunk shape against the untransposed chunk
        # shape, so it must divide both (4, 6) and (6, 4).
        [c_transpose(1, 0), c_sharding((2, 2), [b, C_CRC32C], index, "start")],
        [c_sharding((4, 3), [c_sharding((2, 3), [b], index)], index)],
        [c_sharding((2, 6), [b], index), c_gzip(2)],
        # A big-endian index, at the start, with and without its crc32c.
        [c_sharding((2, 3), [b, c_zstd(3)], [c_bytes("big"), C_CRC32C], "start")],
        [c_sharding((2, 2), [c_transpose(1, 0), b, c_gzip(1)], [c_bytes("big")])],
        # Nested, both indexes at the start; one inner chunk per outer shard.
        [c_sharding((4, 6), [c_sharding((2, 3), [b, C_CRC32C], index, "start")], index,
                    "start")],
    ]


def sharding_cases():
    cases = []
    for i in range(len(sharding_chains("little"))):
        for d, dtype in enumerate(("int16", "float64", "complex64", "bool", "uint32")):
            endian = ENDIANS[(i + d) % 2]
            encoding = KEY_ENCODINGS[(i + d) % 4]
            cases.append(Case(
                dtype, (10, 9), (4, 6), sharding_chains(endian)[i], fill_values(dtype)[1],
                encoding, pieces=[(slice(1, 7), slice(2, 8)), (9, slice(None))],
                seed=2000 + 5 * i + d, label=f"shard{i}-{dtype}-{endian}-{encoding[0]}"
                                             f"{encoding[1]}"))
    return cases


@pytest.mark.parametrize("case", sharding_cases(), ids=repr)
def test_sharding(case):
    check_same_documents_and_chunks(case)
    check_zarr_reads_zarrsync(case)
    check_zarrsync_reads_zarr(case)


def sharding_3d_cases():
    """3-D shards of 2x2x2 (or 1x4x1) inner chunks, edge shards on every axis."""
    b = c_bytes("big")
    chains = [
        [c_sharding((2, 2, 3), [b, c_zstd(0)], [c_bytes(), C_CRC32C], "end")],
        [c_sharding((2, 2, 3), [c_transpose(2, 0, 1), b, C_CRC32C], [c_bytes()], "start")],
        [c_sharding((4, 1, 6), [c_bytes(), c_gzip(5)], [c_bytes("big"), C_CRC32C], "start")],
    ]
    pieces = [(slice(0, 3), slice(1, 4), slice(0, 5)), (slice(4, 7), 3, slice(None)),
              (6, slice(None), 8)]
    return [Case(dtype, (7, 5, 9), (4, 4, 6), chain, fill_values(dtype)[2],
                 KEY_ENCODINGS[i], pieces=pieces, seed=2100 + i, label=f"shard3d{i}-{dtype}")
            for i, chain in enumerate(chains) for dtype in ("float32", "int64")]


@pytest.mark.parametrize("case", sharding_3d_cases(), ids=repr)
def test_sharding_3d(case):
    check_same_documents_and_chunks(case)
    check_zarr_reads_zarrsync(case)
    check_zarrsync_reads_zarr(case)


@pytest.mark.parametrize("location", ["start", "end"])
@pytest.mark.parametrize("index", [[c_bytes()], [c_bytes(), C_CRC32C]], ids=["bytes", "crc32c"])
def test_sharding_alternate_writers(location, index):
    """Partial writes by each library into the other's shards: zarrsync rebuilds a
    zarr-python shard keeping its untouched inner chunks' bytes, zarr-python
    rewrites zarrsync's; either reads every state exactly, whole and in parts."""
    chain = [c_sharding((2, 3), [c_transpose(1, 0), c_bytes(), c_zstd(1)], index, location)]
    case = Case("float32", (10, 9), (4, 6), chain, -1.0, ("default", "/"),
                pieces=[(slice(1, 7), slice(2, 8))], seed=2200)
    model = case.expected()
    store = zs_store_from(case.write_zarr())

    # zarrsync: one whole inner chunk, a row across shards, an edge shard.
    store.write_array(case.node, (slice(2, 4), slice(6, 9)), np.float32(5))
    store.write_array(case.node, (5, slice(None)), np.arange(9, dtype=np.float32))
    store.write_array(case.node, (slice(8, 10), slice(6, 9)), np.float32(6))
    model[2:4, 6:9] = 5
    model[5, :] = np.arange(9)
    model[8:10, 6:9] = 6
    for sel in [Ellipsis, (slice(1, 7), slice(2, 8)), (4, 5), (slice(None), 7),
                (slice(8, 10), slice(6, 9))]:
        assert_same_bits(store.read_array(case.node, sel), model[sel], f"zarrsync {sel}")
    zstore = zarr_store_from(store)
    za = zarr.open_array(zstore, path=case.node.key, mode="r+")
    assert_same_bits(za[...], model, "zarr-python reading zarrsync's rewrite")

    # zarr-python writes into zarrsync's shards; zarrsync reads and writes again.
    za[0:3, 4:9] = np.float32(2.5)
    za[9, 0:2] = np.float32(-1)   # back to the fill value
    model[0:3, 4:9] = 2.5
    model[9, 0:2] = -1
    store = zs_store_from(zstore)
    assert_same_bits(store.read_array(case.node), model, "zarrsync reading zarr-python's rewrite")
    assert_same_bits(store.read_array(case.node, (slice(0, 4), slice(3, 7))), model[0:4, 3:7],
                     "zarrsync partial read")
    # Everything in shard (0, 0) back to the fill value: zarrsync erases it.
    store.write_array(case.node, (slice(0, 4), slice(0, 6)), np.float32(-1))
    model[0:4, 0:6] = -1
    assert store.get(chunk_key(case, (0, 0))) is None
    za = zarr.open_array(zarr_store_from(store), path=case.node.key, mode="r")
    assert_same_bits(za[...], model, "zarr-python after zarrsync erased a shard")


@pytest.mark.parametrize("sel", SELECTIONS, ids=repr)
@pytest.mark.parametrize("location", ["start", "end"])
def test_selections_of_zarr_python_sharded_array(location, sel):
    """zarrsync reads parts of zarr-python's shards (index, then byte ranges)."""
    chain = [c_sharding((1, 2), [c_bytes("big"), c_gzip(2)], [c_bytes(), C_CRC32C], location)]
    case = Case("float32", (10, 7), (3, 4), chain, np.nan, ("default", "."),
                pieces=[(slice(1, 8), slice(0, 5))], seed=3)
    zstore = case.write_zarr()
    za = zarr.open_array(zstore, path=case.node.key, mode="r")
    store = zs_store_from(zstore)
    ortho = any(isinstance(s, list) for s in sel)
    expected = za.oindex[sel] if ortho else za[sel]
    assert_same_bits(store.read_array(case.node, sel), expected, f"selection {sel}")
    assert_same_bits(np.asarray(zs.Array(store, case.node)[sel]), expected, f"Array[{sel}]")


# -- consolidated metadata ------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_zarrsync_reads_consolidated_hierarchy():
    """zarr-python's consolidated_metadata field (must_understand: false) is tolerated."""
    zstore = build_zarr_hierarchy()
    zarr.consolidate_metadata(zstore)
    store = zs_store_from(zstore)
    assert "consolidated_metadata" in doc_of(store.to_dict(), "zarr.json")
    arrays, groups = store.find_all_nodes()
    assert ([a.path for a in arrays], [g.path for g in groups]) == zarr_tree(zstore)
    assert store.group_metadata(GroupNode.root()).attributes == {"root": True}
    assert store.group_metadata(GroupNode.of_path("/a")).attributes == {"level": 1}
    za = zarr.open_array(zstore, path="a/b/y", mode="r")
    assert_same_bits(store.read_array(ArrayNode.of_path("/a/b/y")), za[...], "/a/b/y")


# -- documents ------------------------------------------------------------------------

GROUP_ATTRIBUTES = ATTRIBUTES + [
    {"empty": {}, "list": [], "s": ""},
    {"\u00e9\u00e8": {"\u00fc": ["\u00e7", 1.25e-300, -0.0]}},
]


@pytest.mark.parametrize("attrs", GROUP_ATTRIBUTES, ids=range(len(GROUP_ATTRIBUTES)))
def test_group_documents_match(attrs):
    store = zs.MemoryStore()
    store.create_group(GroupNode.of_path("/g/h"), attrs=attrs)
    zstore = zarr.storage.MemoryStore({})
    zarr.create_group(zstore, path="g/h", attributes=attrs)
    ours, theirs = store.to_dict(), zarr_bytes(zstore)
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        assert list(doc_of(ours, key)) == list(doc_of(theirs, key)), key
        assert canon(doc_of(ours, key)) == canon(doc_of(theirs, key)), key
    assert canon(zs_store_from(zstore).group_metadata(GroupNode.of_path("/g/h")).attributes) \
        == canon(attrs)
    zg = zarr.open_group(zarr_store_from(store), path="g/h", mode="r")
    assert canon(zg.attrs.asdict()) == canon(attrs)


@pytest.mark.parametrize("names", [
    ["x", "y", "z"], [None, None, None], ["time", None, "\u00e9t\u00e9"], ["", "a", None],
    ["same", "same", "same"],
], ids=repr)
def test_dimension_names_documents_match(names):
    case = Case("int16", (2, 3, 4), (1, 2, 3), [c_bytes()], dimension_names=names,
                label=str(names))
    check_same_documents_and_chunks(case)
    check_zarr_reads_zarrsync(case)
    check_zarrsync_reads_zarr(case)


def test_attributes_update_documents_match():
    """set_attributes writes what zarr-python's attrs.put writes."""
    attrs = {"k\u00e9": [1, 2, {"x": None}]}
    store = zs.MemoryStore()
    node = ArrayNode.of_path("/a")
    store.create_array(node, shape=(4,), chunks=(2,), dtype="uint16", codecs=[c_bytes()])
    store.set_attributes(node, attrs)
    zstore = zarr.storage.MemoryStore({})
    za = zarr.create_array(zstore, name="a", shape=(4,), chunks=(2,), dtype="uint16",
                           compressors=None)
    za.attrs.put(attrs)
    ours, theirs = store.to_dict(), zarr_bytes(zstore)
    assert canon(doc_of(ours, "a/zarr.json")) == canon(doc_of(theirs, "a/zarr.json"))


# -- hierarchies ----------------------------------------------------------------------

def build_zarr_hierarchy():
    zstore = zarr.storage.MemoryStore({})
    root = zarr.open_group(zstore, mode="w", attributes={"root": True})
    a = root.create_group("a", attributes={"level": 1})
    b = a.create_group("b", attributes={"level": 2, "\u00fc": "\u00e9"})
    b.create_group("c")
    root.create_group("empty")
    root.create_group("\u00fcn\u00efc\u00f6de")
    a.create_array("x", shape=(4,), chunks=(2,), dtype="int8")
    b.create_array("y", shape=(2, 2), chunks=(1, 2), dtype="float32",
                   attributes={"units": "K"})
    root.create_array("z", shape=(), dtype="complex64", fill_value=1j)
    return zstore


def zarr_tree(zstore):
    """``(array paths, group paths)`` of a zarr-python hierarchy, zarrsync style."""
    root = zarr.open_group(zstore, mode="r")
    arrays, groups = [], ["/"]
    for name, node in root.members(max_depth=None):
        (arrays if isinstance(node, zarr.Array) else groups).append("/" + name)
    return sorted(arrays), sorted(groups)


def test_zarrsync_finds_zarr_python_hierarchy():
    zstore = build_zarr_hierarchy()
    store = zs_store_from(zstore)
    arrays, groups = store.find_all_nodes()
    assert ([a.path for a in arrays], [g.path for g in groups]) == zarr_tree(zstore)
    assert [a.path for a in arrays] == ["/a/b/y", "/a/x", "/z"]
    root = zarr.open_group(zstore, mode="r")
    for g in groups:
        zg = root if g.path == "/" else root[g.key]
        child_arrays, child_groups = store.find_child_nodes(g)
        z_arrays = sorted(g.path.rstrip("/") + "/" + n for n, _ in zg.arrays())
        z_groups = sorted(g.path.rstrip("/") + "/" + n for n, _ in zg.groups())
        assert [a.path for a in child_arrays] == z_arrays, g.path
        assert [c.path for c in child_groups] == z_groups, g.path
        assert canon(store.group_metadata(g).attributes) == canon(zg.attrs.asdict())
    y = ArrayNode.of_path("/a/b/y")
    assert canon(store.array_metadata(y).attributes) == canon({"units": "K"})
    assert_same_bits(store.read_array(ArrayNode.of_path("/z")), np.complex64(1j), "0-d fill")


def test_zarr_python_finds_zarrsync_hierarchy():
    store = zs.MemoryStore()
    store.create_group(GroupNode.root(), attrs={"root": True})
    store.create_group(GroupNode.of_path("/a/b/c"))
    store.create_group(GroupNode.of_path("/a"), attrs={"ignored": "a exists"})
    store.create_group(GroupNode.of_path("/\u00fcn\u00efc\u00f6de"), attrs={"k": "\u00e9"})
    store.create_array(ArrayNode.of_path("/a/x"), shape=(4,), chunks=(2,), dtype="int8")
    store.create_array(ArrayNode.of_path("/a/b/y"), shape=(2, 2), chunks=(1, 2),
                       dtype="float32", attributes={"units": "K"})
    store.create_array(ArrayNode.of_path("/new/deep/z"), shape=(), chunks=(), dtype="uint16")
    arrays, groups = store.find_all_nodes()
    zstore = zarr_store_from(store)
    assert zarr_tree(zstore) == ([a.path for a in arrays], [g.path for g in groups])
    root = zarr.open_group(zstore, mode="r")
    assert root.attrs.asdict() == {"root": True}
    assert root["a"].attrs.asdict() == {}
    assert root["\u00fcn\u00efc\u00f6de"].attrs.asdict() == {"k": "\u00e9"}
    assert root["a/b/y"].attrs.asdict() == {"units": "K"}
    assert root["new/deep/z"].shape == ()
    for g in groups:
        zg = root if g.path == "/" else root[g.key]
        child_arrays, child_groups = store.find_child_nodes(g)
        assert sorted(n for n, _ in zg.arrays()) == [a.name for a in child_arrays]
        assert sorted(n for n, _ in zg.groups()) == [c.name for c in child_groups]


def test_zarrsync_edits_zarr_python_hierarchy():
    """zarrsync adds, renames and erases nodes of a zarr-python hierarchy; zarr-python agrees."""
    store = zs_store_from(build_zarr_hierarchy())
    store.create_array(ArrayNode.of_path("/a/b/c/new"), shape=(3,), chunks=(2,),
                       dtype="uint16", fill_value=9, codecs=[c_bytes("big"), c_gzip(1)])
    store.write_array(ArrayNode.of_path("/a/b/c/new"), slice(0, 2), np.array([1, 2], "u2"))
    store.rename_group(GroupNode.of_path("/a/b"), "renamed")
    store.rename_array(ArrayNode.of_path("/a/x"), "x2")
    store.erase_group_node(GroupNode.of_path("/empty"))
    store.set_attributes(GroupNode.of_path("/a"), {"edited": "é"})
    zstore = zarr_store_from(store)
    arrays, groups = store.find_all_nodes()
    assert zarr_tree(zstore) == ([a.path for a in arrays], [g.path for g in groups])
    assert [a.path for a in arrays] == ["/a/renamed/c/new", "/a/renamed/y", "/a/x2", "/z"]
    root = zarr.open_group(zstore, mode="r")
    assert root["a"].attrs.asdict() == {"edited": "é"}
    assert root["a/renamed"].attrs.asdict() == {"level": 2, "ü": "é"}
    assert_same_bits(root["a/renamed/c/new"][...], np.array([1, 2, 9], "u2"), "new array")


def test_hierarchy_documents_match():
    """The same hierarchy built by both libraries: the same keys and equal documents."""
    ops = [
        ("group", "/", {"title": "t"}),
        ("group", "/a/b", {"x": [1, 2]}),
        ("array", "/a/b/arr", dict(shape=(3, 4), chunks=(2, 2), dtype="float64",
                                   fill_value=np.nan, attributes={"u": "\u00b0C"},
                                   dimension_names=["lat", None])),
        ("array", "/c/scalar", dict(shape=(), chunks=(), dtype="bool", fill_value=True)),
    ]
    store = zs.MemoryStore()
    zstore = zarr.storage.MemoryStore({})
    for kind, path, kw in ops:
        if kind == "group":
            store.create_group(GroupNode.of_path(path), attrs=kw)
            zarr.create_group(zstore, path=path.strip("/"), attributes=kw, overwrite=True)
        else:
            store.create_array(ArrayNode.of_path(path), codecs=[c_bytes(), c_gzip(6)], **kw)
            zarr.create_array(zstore, name=path.strip("/"), compressors=[GzipCodec(level=6)],
                              **kw)
    ours, theirs = store.to_dict(), zarr_bytes(zstore)
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        assert canon(doc_of(ours, key)) == canon(doc_of(theirs, key)), key


# -- pinned fixtures (written once by a pinned zarr-python; see fixtures/generate.py) ---

def _load_generator():
    spec = importlib.util.spec_from_file_location("zarrsync_fixture_generate",
                                                  FIXTURES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATE = _load_generator()
FIXTURE_ZIPS = sorted(FIXTURES.glob("zarr-python-*.zip"))


def _fixture_params():
    return [pytest.param(path, recipe, id=f"{path.stem}-{recipe['name']}")
            for path in FIXTURE_ZIPS for recipe in GENERATE.RECIPES]


def read_fixture(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist() if not name.endswith("/")}


def test_fixtures_exist():
    assert FIXTURE_ZIPS, "run tests/fixtures/generate.py"
    contents = read_fixture(FIXTURE_ZIPS[0])
    names = {r["name"] for r in GENERATE.RECIPES}
    arrays, _ = zs.MemoryStore(contents).find_all_nodes()
    assert {a.name for a in arrays} == names


@pytest.mark.parametrize("path, recipe", _fixture_params())
def test_pinned_fixture(path, recipe):
    """zarrsync reads a store written by the pinned zarr-python and writes it alike."""
    contents = read_fixture(path)
    store = zs.MemoryStore(contents)
    node = ArrayNode.of_path("/" + recipe["name"])
    expected = GENERATE.expected_data(recipe)
    assert_same_bits(store.read_array(node), expected, "zarrsync reading the fixture")
    meta = store.array_metadata(node)
    assert canon(meta.to_dict()) == canon(doc_of(contents, node.metadata_key))

    # zarrsync writing the same recipe: equal document, same chunk keys and,
    # with no compressor, the same chunk bytes.
    ours = zs.MemoryStore()
    ours.create_array(node, **GENERATE.create_kwargs(recipe))
    for sel, value in GENERATE.writes(recipe):
        ours.write_array(node, sel, value)
    mine = ours.to_dict()
    prefix = node.key + "/"
    fixture_keys = sorted(k for k in contents if k.startswith(prefix))
    assert sorted(k for k in mine if k.startswith(prefix)) == fixture_keys
    assert canon(doc_of(mine, node.metadata_key)) == canon(doc_of(contents, node.metadata_key))
    if not has_compressor(recipe["codecs"]):
        for key in fixture_keys:
            assert mine[key] == contents[key], key


def interop_cells(name, params):
    """The cells of docs/interop.md each test checks (tests/interop_matrix.py)."""
    names = {"test_zarr_python_reads_zarrsync": "write",
             "test_zarrsync_reads_zarr_python": "read",
             "test_codec_chain_zarr_python_reads_zarrsync": "write",
             "test_codec_chain_zarrsync_reads_zarr_python": "read"}
    if name not in names:
        return []
    case = params["case"]
    return [cell("zarr-python", 3, codec_label(case.chain), dtype_label(case.dtype),
                 names[name])]
