"""Conformance with zarr-python and tensorstore, through files on disk.

At test time, in a temporary folder, zarr-python (``LocalStore``) and
tensorstore (``zarr3`` driver, ``file`` kvstore) each write one hierarchy.
It has three levels of nested groups under the root, with unicode
attributes, and arrays covering:

* every data type: the fourteen numeric core types in both hierarchies, and
  variable-length ``string`` and ``bytes`` from zarr-python
  (``test_variable_length_both_ways``; tensorstore has neither);
* fill values of every kind: NaN, +/-Infinity, -0.0, complex parts, integer
  extremes, and chunks that were never written;
* every codec (bytes in both byte orders, transpose, gzip, zstd with and
  without checksum, crc32c, sharding_indexed with its index at the start or
  end, nested, after a transpose and before a compressor);
* the "/" and "." separators of the default and the v2 chunk key encodings;
* dimension names, with nulls; 0-d arrays.

zarrsync (``FilesystemStore``) must read each one exactly: the nodes from
``find_all_nodes``, the metadata from ``array_metadata``, and the data from
``read_array``, for whole arrays and for strided sub-selections. Elements
are compared bit for bit. Then zarrsync writes each hierarchy again into a
new folder, in pieces that do not line up with the chunks. Both zarr-python
and tensorstore must read that back exactly, with the same chunk keys and
equal ``zarr.json`` documents.

Each writer also reads its own store first (``test_writer_reads_its_own_store``),
so a mismatch is blamed on the right library.

Behaviours of the other libraries the tests allow for, each where it matters:

* zarr-python 3.1 stores no (inner) chunk that its ``all_equal`` with
  ``equal_nan`` finds equal to a NaN fill value, so NaNs with other bits
  written alone into such a chunk read back as the fill value
  (``Recipe.expected("zarr-python")`` replays this);
* tensorstore leaves out ``attributes`` when empty, ``storage_transformers``,
  ``dimension_names`` when all are null, and the separator of a chunk key
  encoding when it is the default; zarr-python leaves out an empty
  ``dimension_names`` (0-d). zarrsync, like zarr-python, writes the bytes codec
  of one-byte types without ``endian``. ``full_doc`` and ``normal_codecs``
  spell these out before documents are compared;
* tensorstore refuses a bytes -> bytes codec after ``sharding_indexed``, so
  that array is written and read by zarr-python only.
"""

import itertools
import json
import os
import warnings

import numpy as np
import pytest
import tensorstore as ts
import zarr

import zarrsync as zs
from interop_matrix import cell, codec_label, dtype_label
from zarrsync import ArrayNode, GroupNode

from test_interop import (C_CRC32C, assert_same_bits, bit_pattern_data, c_bytes, c_gzip,
                          c_sharding, c_transpose, c_zstd, canon, chunk_grid, fill_json,
                          fill_scalar, zarr_codec_args, zarr_python_all_equal)

pytestmark = pytest.mark.filterwarnings("ignore:Combining a `sharding_indexed`")

WRITERS = ["zarr-python", "tensorstore"]

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
          "uint64", "float16", "float32", "float64", "complex64", "complex128"]
ENCODINGS = [("default", "/"), ("default", "."), ("v2", "."), ("v2", "/")]

# Three levels of nested groups under the root, each with unicode attributes.
GROUPS = {
    "": {"title": "conformance \u2603", "\u65e5\u672c\u8a9e": ["\u00e9", 1, None, True]},
    "g1": {"level": 1, "\u00fcmlaut": "\u00e4\u00f6\u00fc", "emoji": "\U0001F600"},
    "g1/g2": {"level": 2, "nested": {"\u0440\u0443\u0441": {"deep": [1.5, -2]}}},
    "g1/g2/g3": {},
}
GROUP_PATHS = list(GROUPS)

ARRAY_ATTRIBUTES = [
    {},
    {"units": "m/s\u00b2", "scale": 0.5, "valid_range": [0, 10]},
    {"t\u00eftle": "\u65e5\u672c\u8a9e \u2603 \U0001F600", "n": {"a": [1, None, True, "x"]}},
]
DIM_NAMES_2D = [["y", "x"], [None, "x"], None, [None, None], ["\u00fcber", None]]
DIM_NAMES_3D = [["z", None, "x"], None, [None, None, None]]


def special_fill(dtype, i):
    """A fill value of ``dtype``: the special ones (NaN, infinities, -0.0, extremes) first."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        fills = [True, False]
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        fills = [info.max, info.min, 7, 0]
    elif dt.kind == "f":
        fills = [np.nan, np.inf, -np.inf, -0.0, 1.5, 0.0]
    else:
        fills = [complex(np.nan, -np.inf), complex(np.inf, 0.0), complex(-0.0, np.nan),
                 1.5 - 2j, 0j]
    return fill_scalar(fills[i % len(fills)], dt)


class Recipe:
    """One array of the hierarchy: its metadata and the writes that fill it."""

    def __init__(self, name, group, dtype, shape, chunks, codecs, fill, encoding,
                 dimension_names, attributes, writes, seed,
                 libraries=("zarr-python", "tensorstore")):
        self.name = name
        self.libraries = libraries  # the other libraries that support this array
        self.group = group
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)
        self.chunks = tuple(chunks)
        self.codecs = codecs
        self.fill = fill_scalar(fill, self.dtype)
        self.encoding, self.separator = encoding
        self.dimension_names = dimension_names
        self.attributes = attributes
        self.writes = writes
        self.seed = seed

    @property
    def key(self):
        return f"{self.group}/{self.name}" if self.group else self.name

    @property
    def node(self):
        return ArrayNode.of_path("/" + self.key)

    def values(self):
        """``(selection, value)`` of each write, deterministic.

        Single elements get an ordinary value, not the NaN that leads the
        special values: zarr-python 3.1 drops a chunk its ``all_equal``
        (``equal_nan=True``) finds equal to a NaN fill value, so a lone NaN
        written into such a chunk would read back as the fill value's bits.
        """
        out = []
        for i, sel in enumerate(self.writes):
            shape = np.empty(self.shape, dtype=np.uint8)[sel].shape
            if int(np.prod(shape)) == 1:
                value = np.full(shape, True if self.dtype.kind == "b" else 3, self.dtype)
            else:
                value = bit_pattern_data(self.dtype, shape, self.seed * 31 + i)
            out.append((sel, value))
        return out

    def dimension_names_read(self, writer):
        """The dimension names as stored by ``writer``.

        tensorstore leaves the field out when every name is null, and
        zarr-python when the list is empty (0-d); both mean "no names".
        """
        names = self.dimension_names
        if names is None or not names:
            return None
        if writer == "tensorstore" and all(n is None for n in names):
            return None
        return tuple(names)

    def inner_chunk_shape(self):
        """The shape of the chunks codecs see one at a time, in array axes: the
        innermost sharding chunk shape, else the chunk shape."""
        shape, order = self.chunks, list(range(len(self.shape)))
        codecs = self.codecs
        while True:
            for c in codecs:
                if c["name"] == "transpose":
                    order = [order[i] for i in c["configuration"]["order"]]
                if c["name"] == "sharding_indexed":
                    break
            else:
                return shape
            inner = c["configuration"]["chunk_shape"]
            shape = tuple(inner[order.index(axis)] for axis in range(len(self.shape)))
            codecs = c["configuration"]["codecs"]

    def expected(self, writer=None):
        """The NumPy model: the fill value, then every write in order.

        For ``writer="zarr-python"`` it also replays zarr-python 3.1's loss:
        it stores no (inner) chunk its ``all_equal`` finds equal to the fill
        value, with ``equal_nan``, so such a chunk of NaNs with other bits
        (a payload, a sign) reads back as the fill value. zarrsync must read
        what was stored; it cannot know what zarr-python dropped.
        """
        model = np.full(self.shape, self.fill, dtype=self.dtype)
        for sel, value in self.values():
            model[sel] = value
            if writer != "zarr-python":
                continue
            touched = np.zeros(self.shape, dtype=bool)
            touched[sel] = True
            for _, region in chunk_grid(self.shape, self.inner_chunk_shape()):
                if touched[region].any() and zarr_python_all_equal(model[region], self.fill):
                    model[region] = self.fill
        return model

    def selections(self):
        """Strided and other sub-selections to read, as NumPy reads them."""
        if not self.shape:
            return [(), Ellipsis]
        first = [slice(None, None, 2), slice(1, None, 3), slice(-4, None, 2)]
        sels = [tuple(first[d % 3] for d in range(len(self.shape))),
                tuple(slice(1, None, 2) if d == 0 else 0 for d in range(len(self.shape))),
                (slice(None, None, self.shape[0] or 1),),
                ([self.shape[0] - 1, 0, 1],)]
        return sels

    def __repr__(self):
        return self.name


PIECES_2D = [(slice(1, 4), slice(0, 3)), (slice(3, 6), slice(1, 3)), (6, 0)]
PIECES_3D = [(slice(0, 3), slice(1, 4), slice(0, 5)), (slice(2, 5), 0, slice(1, 3)),
             (4, slice(3, 4), 2)]

LE, BE = c_bytes("little"), c_bytes("big")
INDEX = [c_bytes("little"), C_CRC32C]
CHAINS_2D = [
    [LE],
    [BE, c_gzip(1)],
    [c_transpose(1, 0), BE, c_zstd(3, True), C_CRC32C],
    [LE, C_CRC32C],
    [LE, c_zstd(0)],
]
# Every codec, for arrays of shape (5, 4, 6) and chunks (shards) of (2, 3, 4).
CHAINS_3D = {
    "bytes-le": [LE],
    "bytes-be": [BE],
    "transpose": [c_transpose(2, 0, 1), LE],
    "transpose2": [c_transpose(1, 2, 0), c_transpose(1, 0, 2), BE],
    "gzip1": [LE, c_gzip(1)],
    "gzip9": [BE, c_gzip(9)],
    "zstd0": [LE, c_zstd(0)],
    "zstd-checksum": [LE, c_zstd(5, True)],
    "zstd-negative": [BE, c_zstd(-2)],
    "crc32c": [LE, C_CRC32C],
    "all": [c_transpose(1, 2, 0), BE, c_zstd(-1, True), C_CRC32C],
    "gzip-crc32c": [LE, c_gzip(2), C_CRC32C],
    "shard-end": [c_sharding((1, 3, 2), [LE], INDEX)],
    "shard-start-gzip": [c_sharding((2, 3, 2), [BE, c_gzip(1)], INDEX, "start")],
    "shard-inner-chain": [c_sharding((1, 1, 4), [c_transpose(2, 1, 0), LE, c_zstd(1, True),
                                                 C_CRC32C], INDEX)],
    "shard-plain-index": [c_sharding((2, 1, 2), [BE], [c_bytes("big")], "start")],
    # zarr-python checks the inner chunk shape against the untransposed chunk
    # shape, so (1, 1, 2) divides both (2, 3, 4) and (3, 2, 4).
    "transpose-shard": [c_transpose(1, 0, 2), c_sharding((1, 1, 2), [LE, C_CRC32C], INDEX)],
    "shard-nested": [c_sharding((2, 3, 2), [c_sharding((1, 3, 1), [LE], INDEX)], INDEX)],
    "shard-gzip": [c_sharding((2, 3, 2), [LE], [c_bytes("little")]), c_gzip(2)],
}
# tensorstore 0.1 refuses a bytes -> bytes codec after sharding_indexed ("may be
# specified as inner codecs" instead); the spec allows it and zarr-python has it.
ONLY_ZARR_PYTHON = {"codec_shard-gzip"}


def recipes():
    out = []
    # Every data type, 2-D; chain, fill, encoding, names and group rotate.
    for d, dtype in enumerate(DTYPES):
        out.append(Recipe(
            f"dtype_{dtype}", GROUP_PATHS[d % 4], dtype, (7, 5), (3, 2),
            CHAINS_2D[d % len(CHAINS_2D)], special_fill(dtype, d), ENCODINGS[d % 4],
            DIM_NAMES_2D[d % len(DIM_NAMES_2D)], ARRAY_ATTRIBUTES[d % 3], PIECES_2D, seed=d))
    # Every codec, 3-D, over rotating data types.
    for i, (name, chain) in enumerate(CHAINS_3D.items()):
        dtype = DTYPES[(3 * i + 1) % len(DTYPES)]
        libraries = ("zarr-python",) if f"codec_{name}" in ONLY_ZARR_PYTHON else WRITERS
        out.append(Recipe(
            f"codec_{name}", GROUP_PATHS[(i + 1) % 4], dtype, (5, 4, 6), (2, 3, 4), chain,
            special_fill(dtype, i), ENCODINGS[(i + 1) % 4], DIM_NAMES_3D[i % 3],
            ARRAY_ATTRIBUTES[(i + 1) % 3], PIECES_3D, seed=100 + i, libraries=libraries))
    # Fill values read through chunks that were never written.
    for i, fill in enumerate([np.nan, np.inf, -np.inf]):
        out.append(Recipe(
            f"unwritten_{['nan', 'inf', 'neginf'][i]}", GROUP_PATHS[i + 1], "float64",
            (4, 6), (3, 4), [LE, C_CRC32C], fill, ENCODINGS[i], None, {}, [], seed=200 + i))
    out.append(Recipe("unwritten_complex", "g1/g2/g3", "complex64", (5,), (2,), [BE],
                      complex(np.nan, -np.inf), ("v2", "."), ["t"], {}, [slice(0, 1)],
                      seed=210))
    # 0-d arrays: the one chunk is "c" (default) or "0" (v2).
    out.append(Recipe("scalar", "g1", "float32", (), (), [LE, c_gzip(4)], -np.inf,
                      ("default", "/"), [], {"\u00b0": "\u00b0C"}, [()], seed=220))
    out.append(Recipe("scalar_v2", "", "uint16", (), (), [BE], 9, ("v2", "."), None, {},
                      [()], seed=221))
    out.append(Recipe("scalar_unwritten", "g1/g2", "complex128", (), (), [LE], 1.5 - 0.5j,
                      ("default", "."), [], {}, [], seed=222))
    return out


RECIPES = recipes()


def recipes_of(writer):
    return [r for r in RECIPES if writer in r.libraries]


def params(*libraries_of_case):
    """``(writer, recipe)`` or ``(writer, reader, recipe)`` for every combination the
    libraries involved support."""
    out = []
    for combo in itertools.product(*libraries_of_case, RECIPES):
        *libs, recipe = combo
        if all(lib in recipe.libraries for lib in libs):
            out.append(pytest.param(*combo, id="-".join(libs + [recipe.name])))
    return out


# -- writing the sources --------------------------------------------------------------

def write_zarr_python(root):
    """The hierarchy, written by zarr-python into folder ``root`` (or a zarr store)."""
    store = root if isinstance(root, zarr.abc.store.Store) else zarr.storage.LocalStore(str(root))
    for path, attrs in GROUPS.items():
        zarr.create_group(store, path=path, attributes=attrs, overwrite=False)
    for r in recipes_of("zarr-python"):
        za = zarr.create_array(
            store, name=r.key, shape=r.shape, chunks=r.chunks, dtype=r.dtype.name,
            fill_value=r.fill, dimension_names=r.dimension_names, attributes=r.attributes,
            chunk_key_encoding={"name": r.encoding, "separator": r.separator},
            **zarr_codec_args(r.codecs))
        for sel, value in r.values():
            za[sel] = value


def tensorstore_spec(root, key, **kw):
    return {"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{root}/{key}/"}, **kw}


def write_tensorstore(root):
    # tensorstore writes arrays only; the group documents are written as JSON.
    for path, attrs in GROUPS.items():
        folder = os.path.join(root, path)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "zarr.json"), "w", encoding="utf-8") as f:
            json.dump({"zarr_format": 3, "node_type": "group", "attributes": attrs}, f,
                      ensure_ascii=False)
    for r in recipes_of("tensorstore"):
        metadata = {
            "shape": list(r.shape),
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(r.chunks)}},
            "chunk_key_encoding": {"name": r.encoding,
                                   "configuration": {"separator": r.separator}},
            "data_type": r.dtype.name,
            "fill_value": fill_json(r.fill, r.dtype),
            "codecs": r.codecs,
            "attributes": r.attributes,
        }
        if r.dimension_names is not None:
            metadata["dimension_names"] = r.dimension_names
        t = ts.open(tensorstore_spec(root, r.key, metadata=metadata), create=True).result()
        for sel, value in r.values():
            t[sel].write(value).result()


WRITE = {"zarr-python": write_zarr_python, "tensorstore": write_tensorstore}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """writer -> the folder of the hierarchy it wrote."""
    out = {}
    for writer in WRITERS:
        root = tmp_path_factory.mktemp(f"{writer}-source")
        WRITE[writer](root)
        out[writer] = root
    return out


def unaligned_pieces(shape, chunks, seed):
    """Selections tiling ``shape`` in blocks one larger than a chunk, in random order."""
    if not shape:
        return [()]
    if 0 in shape:
        return []
    starts = [range(0, s, c + 1) for s, c in zip(shape, chunks)]
    pieces = [tuple(slice(a, min(a + c + 1, s)) for a, c, s in zip(corner, chunks, shape))
              for corner in itertools.product(*starts)]
    np.random.default_rng(seed).shuffle(pieces)
    return pieces


@pytest.fixture(scope="module")
def rewritten(sources, tmp_path_factory):
    """writer -> a folder where zarrsync wrote that writer's hierarchy again."""
    out = {}
    for writer, src_root in sources.items():
        src = zs.FilesystemStore(src_root)
        root = tmp_path_factory.mktemp(f"{writer}-rewritten-by-zarrsync")
        dst = zs.FilesystemStore(root)
        arrays, groups = src.find_all_nodes()
        for g in groups:
            dst.create_group(g, attrs=src.group_metadata(g).attributes)
        for node in arrays:
            meta = src.array_metadata(node)
            dst.create_array(node, shape=meta.shape, chunks=meta.chunks, dtype=meta.dtype,
                             fill_value=meta.fill_value, codecs=list(meta.codecs),
                             dimension_names=meta.dimension_names,
                             attributes=meta.attributes, separator=meta.separator,
                             chunk_key_encoding=meta.chunk_key_encoding)
            data = src.read_array(node)
            for sel in unaligned_pieces(meta.shape, meta.chunks, seed=len(node.path)):
                dst.write_array(node, sel, data[sel])
        out[writer] = root
    return out


# -- helpers --------------------------------------------------------------------------

def files_under(root):
    out = set()
    for folder, _, names in os.walk(root):
        for name in names:
            out.add(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    return out


def stored_chunk_keys(root, key):
    """The chunk keys stored for array ``key`` (every file in its folder but zarr.json)."""
    prefix = key + "/"
    return sorted(k for k in files_under(root)
                  if k.startswith(prefix) and k != prefix + "zarr.json")


def read_doc(root, key):
    with open(os.path.join(root, key), encoding="utf-8") as f:
        return json.load(f)


def normal_codecs(codecs, dtype):
    """``codecs`` as zarrsync and zarr-python write them: for one-byte data types the
    bytes codec has no ``endian`` (tensorstore keeps the one it was given)."""
    out = []
    for c in codecs:
        if c["name"] == "bytes" and np.dtype(dtype).itemsize == 1:
            c = {"name": "bytes"}
        elif c["name"] == "sharding_indexed":
            cfg = dict(c["configuration"])
            cfg["codecs"] = normal_codecs(cfg["codecs"], dtype)
            cfg.setdefault("index_location", "end")
            c = {"name": c["name"], "configuration": cfg}
        out.append(c)
    return out


def full_doc(doc):
    """An array document with the optional parts a writer may leave out spelled out.

    tensorstore leaves out ``attributes`` when empty, ``storage_transformers``,
    and the separator of a chunk key encoding when it is the default one.
    """
    doc = dict(doc)
    doc.setdefault("attributes", {})
    doc.setdefault("storage_transformers", [])
    encoding = dict(doc["chunk_key_encoding"])
    encoding.setdefault("configuration", {
        "separator": "/" if encoding["name"] == "default" else "."})
    doc["chunk_key_encoding"] = encoding
    doc["codecs"] = normal_codecs(doc["codecs"], doc["data_type"])
    return doc


def expected_tree(writer):
    arrays = sorted(ArrayNode.of_path("/" + r.key) for r in recipes_of(writer))
    groups = sorted(GroupNode.of_path("/" + p) if p else GroupNode.root() for p in GROUPS)
    return arrays, groups


def group_node(path):
    return GroupNode.of_path("/" + path) if path else GroupNode.root()


def read_with(reader, root, recipe, sel=Ellipsis):
    """What zarr-python or tensorstore reads for ``sel`` (basic or one int list)."""
    if reader == "zarr-python":
        za = zarr.open_array(zarr.storage.LocalStore(str(root), read_only=True),
                             path=recipe.key, mode="r")
        return np.asarray(za[sel])
    t = ts.open(tensorstore_spec(root, recipe.key), open=True, read=True).result()
    if sel is Ellipsis or sel == ():
        return t.read().result()
    # tensorstore takes a negative bound as an index, not as counting from the end.
    sel = tuple(slice(*s.indices(n)) if isinstance(s, slice) else s
                for s, n in zip(sel, recipe.shape))
    if any(isinstance(s, list) for s in sel):
        return t.oindex[sel].read().result()
    return t[sel].read().result()


# -- the writers read their own stores (premise) ---------------------------------------

@pytest.mark.parametrize("writer, recipe", params(WRITERS))
def test_writer_reads_its_own_store(sources, writer, recipe):
    assert_same_bits(read_with(writer, sources[writer], recipe), recipe.expected(writer),
                     f"{writer} reading its own {recipe.key}")


# -- zarrsync reads what they wrote ---------------------------------------------------

@pytest.mark.parametrize("writer", WRITERS)
def test_zarrsync_finds_every_node(sources, writer):
    store = zs.FilesystemStore(sources[writer])
    assert store.find_all_nodes() == expected_tree(writer)
    for path, attrs in GROUPS.items():
        g = group_node(path)
        assert store.group_exists(g)
        assert canon(store.group_metadata(g).attributes) == canon(attrs)
        child_arrays, child_groups = store.find_child_nodes(g)
        assert child_arrays == sorted(ArrayNode.of_path("/" + r.key)
                                      for r in recipes_of(writer) if r.group == path)
        assert child_groups == sorted(group_node(p) for p in GROUPS
                                      if p and p.rpartition("/")[0] == path)


@pytest.mark.parametrize("writer, recipe", params(WRITERS))
def test_zarrsync_reads_metadata(sources, writer, recipe):
    store = zs.FilesystemStore(sources[writer])
    meta = store.array_metadata(recipe.node)
    assert meta.shape == recipe.shape
    assert meta.chunks == recipe.chunks
    assert meta.dtype == recipe.dtype
    assert_same_bits(meta.fill_value, recipe.fill, "fill value")
    assert (meta.chunk_key_encoding, meta.separator) == (recipe.encoding, recipe.separator)
    assert meta.dimension_names == recipe.dimension_names_read(writer)
    assert canon(meta.attributes) == canon(recipe.attributes)
    assert canon([c.to_dict() for c in meta.codecs]) == canon(
        normal_codecs(recipe.codecs, recipe.dtype))
    # The whole document, as the writer wrote it.
    assert canon(meta.to_dict()) == canon(full_doc(read_doc(sources[writer],
                                                            recipe.node.metadata_key)))


@pytest.mark.parametrize("writer, recipe", params(WRITERS))
def test_zarrsync_reads_data(sources, writer, recipe):
    store = zs.FilesystemStore(sources[writer])
    expected = recipe.expected(writer)
    got = store.read_array(recipe.node)
    assert got.dtype == recipe.dtype
    assert_same_bits(got, expected, f"zarrsync reading {writer}'s {recipe.key}")
    for sel in recipe.selections():
        want = expected[sel]  # at most one int list: NumPy and orthogonal indexing agree
        assert_same_bits(store.read_array(recipe.node, sel), want,
                         f"zarrsync reading {writer}'s {recipe.key}[{sel}]")
        assert_same_bits(read_with(writer, sources[writer], recipe, sel), want,
                         f"{writer} reading its own {recipe.key}[{sel}]")


# -- they read what zarrsync wrote ----------------------------------------------------

READERS = ["zarr-python", "tensorstore"]


@pytest.mark.parametrize("writer, reader, recipe", params(WRITERS, READERS))
def test_reads_zarrsync_rewrite(rewritten, writer, reader, recipe):
    """zarrsync wrote ``writer``'s array again, in unaligned pieces; ``reader`` reads it."""
    root = rewritten[writer]
    expected = recipe.expected(writer)
    assert_same_bits(read_with(reader, root, recipe), expected,
                     f"{reader} reading zarrsync's copy of {writer}'s {recipe.key}")
    sel = recipe.selections()[0]
    assert_same_bits(read_with(reader, root, recipe, sel), expected[sel],
                     f"{reader} reading zarrsync's copy of {writer}'s {recipe.key}[{sel}]")
    if reader == "zarr-python":
        za = zarr.open_array(zarr.storage.LocalStore(str(root), read_only=True),
                             path=recipe.key, mode="r")
        assert za.shape == recipe.shape
        assert za.metadata.chunk_grid.chunk_shape == recipe.chunks
        assert_same_bits(za.fill_value, recipe.fill, "zarr-python's fill value")
        assert za.metadata.dimension_names == recipe.dimension_names_read(writer)
        assert canon(za.attrs.asdict()) == canon(recipe.attributes)
    else:
        t = ts.open(tensorstore_spec(root, recipe.key), open=True).result()
        assert t.shape == recipe.shape
        assert_same_bits(np.asarray(t.fill_value), recipe.fill, "tensorstore's fill value")
        names = recipe.dimension_names_read(writer) or [None] * len(recipe.shape)
        assert list(t.domain.labels) == [n or "" for n in names]
        meta = t.spec().to_json()["metadata"]
        assert canon(meta.get("attributes", {})) == canon(recipe.attributes)
        assert canon(normal_codecs(meta["codecs"], recipe.dtype)) == canon(
            normal_codecs(recipe.codecs, recipe.dtype))


@pytest.mark.parametrize("writer, recipe", params(WRITERS))
def test_rewrite_has_the_same_documents_and_chunk_keys(sources, rewritten, writer, recipe):
    src, dst = sources[writer], rewritten[writer]
    key = recipe.node.metadata_key
    assert canon(read_doc(dst, key)) == canon(full_doc(read_doc(src, key)))
    # Chunks that hold only the fill value are stored by none of the three.
    assert stored_chunk_keys(dst, recipe.key) == stored_chunk_keys(src, recipe.key)


@pytest.mark.parametrize("writer", WRITERS)
def test_zarr_python_finds_the_rewritten_hierarchy(rewritten, writer):
    root = rewritten[writer]
    zroot = zarr.open_group(zarr.storage.LocalStore(str(root), read_only=True), mode="r")
    arrays, groups = [], []
    for name, member in zroot.members(max_depth=None):
        (arrays if isinstance(member, zarr.Array) else groups).append(name)
    assert sorted(arrays) == sorted(r.key for r in recipes_of(writer))
    assert sorted(groups) == sorted(p for p in GROUPS if p)
    for path, attrs in GROUPS.items():
        g = zroot if not path else zroot[path]
        assert canon(g.attrs.asdict()) == canon(attrs)
    assert not any(".zarrsync-tmp" in f for f in files_under(root))


# -- zip files: the same hierarchies through zarr-python's ZipStore and zarrsync's ------

@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_zip_files_both_ways(rewritten, tmp_path):
    """zarr-python writes the hierarchy into a zip (rewriting chunks appends duplicate
    entries); zarrsync's ZipStore reads every array exactly. zarrsync copies its
    rewritten folder into a zip; zarr-python's ZipStore reads every array exactly."""
    theirs = tmp_path / "zarr-python.zip"
    zstore = zarr.storage.ZipStore(theirs, mode="w")
    write_zarr_python(zstore)
    zstore.close()
    with zs.ZipStore(theirs) as store:
        assert store.find_all_nodes() == expected_tree("zarr-python")
        for r in recipes_of("zarr-python"):
            assert_same_bits(store.read_array(r.node), r.expected("zarr-python"),
                             f"zarrsync's ZipStore reading {r.key}")

    ours = tmp_path / "zarrsync.zip"
    src = zs.FilesystemStore(rewritten["tensorstore"])
    with zs.ZipStore(ours, mode="w") as dst:
        for key in src.list_prefix(""):
            dst.set(key, src.get(key))
    zstore = zarr.storage.ZipStore(ours, mode="r")
    try:
        for r in recipes_of("tensorstore"):
            za = zarr.open_array(zstore, path=r.key, mode="r")
            assert_same_bits(za[...], r.expected("tensorstore"),
                             f"zarr-python's ZipStore reading {r.key}")
    finally:
        zstore.close()


# -- variable-length strings and bytes (zarr-python only: tensorstore has neither) ----

VLEN_VALUES = {
    "string": ["", "a", "\u00fcn\u00efc\u00f6de \u2603", "\U0001F600" * 3, "x" * 300,
               "tab\tnew\nline", "\x00nul", "\u65e5\u672c\u8a9e"],
    "bytes": [b"", b"a", b"\x00\xff\x00", bytes(range(256)), b"\xc3\xbc", b"z" * 300,
              b"\n", b"end"],
}


def vlen_expected(kind, shape, pieces):
    """A list-of-lists model: the fill value ("" or b""), then each piece in order."""
    fill = "" if kind == "string" else b""
    model = np.empty(shape, dtype=object)
    model[...] = fill
    values = VLEN_VALUES[kind]
    for n, sel in enumerate(pieces):
        region = np.empty(shape, dtype=np.uint8)[sel].shape
        block = np.empty(region, dtype=object)
        block.reshape(-1)[:] = [values[(n * 3 + i) % len(values)]
                                for i in range(int(np.prod(region)))]
        model[sel] = block
    return model


@pytest.mark.parametrize("kind", ["string", "bytes"])
@pytest.mark.parametrize("encoding", [("default", "/"), ("v2", ".")])
def test_variable_length_both_ways(tmp_path, kind, encoding):
    shape, chunks = (5, 4), (2, 3)
    # (zarr-python 3.1 cannot assign one bytes scalar, za[0, 3] = b"..."; a 1x1 block works.)
    pieces = [(slice(0, 3), slice(0, 2)), (slice(1, 4), slice(1, 4)), (slice(0, 1), slice(3, 4))]
    expected = vlen_expected(kind, shape, pieces)
    src = tmp_path / "zarr-python"
    zstore = zarr.storage.LocalStore(str(src))
    zarr.create_group(zstore, path="g", attributes={"k\u00e9": "\u00e9"})
    with warnings.catch_warnings():  # zarr-python 3.1 calls these types unstable
        warnings.simplefilter("ignore")
        za = zarr.create_array(zstore, name="g/v", shape=shape, chunks=chunks,
                               dtype=str if kind == "string" else "bytes",
                               chunk_key_encoding={"name": encoding[0],
                                                   "separator": encoding[1]},
                               dimension_names=["row", None])
    for sel in pieces:
        za[sel] = expected[sel]
    assert np.asarray(za[...], dtype=object).tolist() == expected.tolist()

    node = ArrayNode.of_path("/g/v")
    store = zs.FilesystemStore(src)
    meta = store.array_metadata(node)
    assert (meta.shape, meta.chunks) == (shape, chunks)
    assert meta.dimension_names == ("row", None)
    assert canon(meta.to_dict()) == canon(read_doc(src, "g/v/zarr.json"))
    assert store.read_array(node).tolist() == expected.tolist()
    for sel in [(slice(None, None, 2), slice(1, None, 2)), (slice(1, None, 3),), (4, [3, 0])]:
        want = expected[sel[0], sel[1]] if len(sel) == 2 else expected[sel]
        assert np.asarray(store.read_array(node, sel)).tolist() == want.tolist(), sel

    # zarrsync writes it again, in unaligned pieces; zarr-python reads it exactly.
    dst = tmp_path / "zarrsync"
    out = zs.FilesystemStore(dst)
    out.create_group(GroupNode.of_path("/g"), attrs={"k\u00e9": "\u00e9"})
    out.create_array(node, shape=shape, chunks=chunks, dtype=kind, fill_value=meta.fill_value,
                     codecs=list(meta.codecs), dimension_names=meta.dimension_names,
                     separator=meta.separator, chunk_key_encoding=meta.chunk_key_encoding)
    data = store.read_array(node)
    for sel in unaligned_pieces(shape, chunks, seed=3):
        out.write_array(node, sel, data[sel])
    assert canon(read_doc(dst, "g/v/zarr.json")) == canon(read_doc(src, "g/v/zarr.json"))
    assert stored_chunk_keys(dst, "g/v") == stored_chunk_keys(src, "g/v")
    za = zarr.open_array(zarr.storage.LocalStore(str(dst), read_only=True), path="g/v",
                         mode="r")
    assert np.asarray(za[...], dtype=object).tolist() == expected.tolist()


def interop_cells(name, params):
    """The cells of docs/interop.md each test checks (tests/interop_matrix.py)."""
    recipe = params.get("recipe")
    if recipe is None:
        return []
    label = codec_label(recipe.codecs)
    if name == "test_zarrsync_reads_data":
        return [cell(params["writer"], 3, label, dtype_label(recipe.dtype), "read")]
    if name == "test_reads_zarrsync_rewrite":
        return [cell(params["reader"], 3, label, dtype_label(recipe.dtype), "write")]
    return []
