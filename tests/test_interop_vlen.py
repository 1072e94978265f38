"""Interoperability with zarr-python for ``string`` and ``bytes`` arrays.

Each test moves the raw ``key -> bytes`` contents of one library's in-memory
store into the other's, then reads every element (and orthogonal selections)
and the metadata back; chains are plain, compressed (gzip, zstd, crc32c) and
sharded (byte-range and whole-shard paths). Both libraries write the same
``zarr.json`` documents and the same chunk keys, and for uncompressed chains
the same chunk bytes.

zarr-python 3.1 behaviours the tests allow for, each where it matters:

* with a ``transpose`` codec before ``vlen-utf8`` it serialises the chunk in
  the untransposed order (and reads its own data back transposed): the spec
  orders elements as the transposed array, which zarrsync follows
  (``test_transposed_frame_follows_the_spec``), so transposed vlen chains are
  not exchanged;
* it turns fill values into fixed-width NumPy scalars, which drop trailing
  NULs: it then stores chunks equal to a fill value such as ``"x\\0"`` (and
  drops chunks equal to ``"x"``), so those fill values are exercised only
  where it does not matter (``test_trailing_nul_fill_value_is_kept``); data
  elements with trailing NULs are exchanged everywhere;
* a scalar assignment into a sharded ``bytes`` array fails inside numcodecs,
  so zarr-python writes whole arrays or slices only.
"""

import json
import warnings

import numpy as np
import pytest

import zarrsync as zs
from interop_matrix import cell, codec_label
from zarrsync import ArrayNode

zarr = pytest.importorskip("zarr")

from zarr.codecs import (Crc32cCodec, GzipCodec, ShardingCodec,  # noqa: E402
                         VLenBytesCodec, VLenUTF8Codec, ZstdCodec)
from zarr.core.buffer.cpu import Buffer  # noqa: E402
from zarr.core.dtype import VariableLengthBytes, VariableLengthUTF8  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:The data type .* does not have a Zarr V3 specification"),
    pytest.mark.filterwarnings("ignore:Combining a `sharding_indexed` codec"),
]

T = np.dtypes.StringDType()
O = np.dtype(object)
NODE = ArrayNode.of_path("/data/text")
KEY = NODE.key
SHAPE, CHUNKS = (7, 6), (2, 6)

TEXT = ["", "a", "\x00", "a\x00", "é", "€uro", "𝄞", "日本", "x" * 16, "long " * 30, "t\tn\n"]
BINARY = [b"", b"a", b"\x00", b"a\x00", b"\xff\xfe", b"\xc3(", bytes(range(40)), b"x" * 200]


# -- chains as spec JSON ---------------------------------------------------------------

def vlen(kind):
    return {"name": "vlen-utf8" if kind == "string" else "vlen-bytes", "configuration": {}}


def sharding(chunk_shape, codecs, index_codecs, location="end"):
    return {"name": "sharding_indexed", "configuration": {
        "chunk_shape": list(chunk_shape), "codecs": codecs, "index_codecs": index_codecs,
        "index_location": location}}


BYTES_LE = {"name": "bytes", "configuration": {"endian": "little"}}
CRC = {"name": "crc32c"}


def chain(name, kind):
    v = vlen(kind)
    return {
        "plain": [v],
        "gzip": [v, {"name": "gzip", "configuration": {"level": 1}}],
        "zstd": [v, {"name": "zstd", "configuration": {"level": 0, "checksum": False}}],
        "crc32c": [v, CRC],
        "zstd+crc32c": [v, {"name": "zstd", "configuration": {"level": 3, "checksum": True}},
                        CRC],
        "sharded": [sharding((2, 2), [v, {"name": "zstd", "configuration":
                                          {"level": 1, "checksum": False}}],
                             [BYTES_LE, CRC])],
        "sharded-plain": [sharding((1, 3), [v], [BYTES_LE], "start")],
        "sharded+gzip": [sharding((2, 3), [v, CRC], [BYTES_LE, CRC]),
                         {"name": "gzip", "configuration": {"level": 2}}],
    }[name]


CHAINS = ["plain", "gzip", "zstd", "crc32c", "zstd+crc32c", "sharded", "sharded-plain",
          "sharded+gzip"]


def uncompressed(name):
    return name in ("plain", "crc32c")


def zarr_codec_args(spec):
    """zarr-python's ``serializer`` / ``compressors`` for a spec chain."""
    serializer, compressors = None, []
    for c in spec:
        cfg = c.get("configuration", {})
        if c["name"] == "vlen-utf8":
            serializer = VLenUTF8Codec()
        elif c["name"] == "vlen-bytes":
            serializer = VLenBytesCodec()
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
    return {"serializer": serializer, "compressors": compressors or None}


# -- data and stores --------------------------------------------------------------------

def as_array(values, kind, shape):
    out = np.empty(len(values), dtype=T if kind == "string" else O)
    for i, v in enumerate(values):
        out[i] = v
    return out.reshape(shape)


def sample(kind, shape, seed):
    rng = np.random.default_rng(seed)
    pool = TEXT if kind == "string" else BINARY
    values = [pool[i] for i in rng.integers(0, len(pool), int(np.prod(shape)))]
    return as_array(values, kind, shape)


def full(kind, shape, value):
    return as_array([value] * int(np.prod(shape)), kind, shape)


def writes(kind, fill):
    """``(selection, value)`` pairs: rows 0-1 stay fill (no chunk), rows 2-3 are
    written with the fill value (no chunk), the rest holds data; edge chunk too."""
    return [
        ((slice(2, 7), slice(None)), sample(kind, (5, 6), 1)),
        ((slice(2, 4), slice(None)), full(kind, (2, 6), fill)),
        ((slice(4, 6), slice(1, 5)), sample(kind, (2, 4), 2)),
        ((6, slice(None)), sample(kind, (6,), 3)),
    ]


def expected_data(kind, fill):
    data = full(kind, SHAPE, fill)
    for sel, value in writes(kind, fill):
        data[sel] = value
    return data


FILLS = {"string": ["", "n/a"], "bytes": [b"", b"\xff"]}
CASES = [(kind, name, fill) for kind in ("string", "bytes") for name in CHAINS
         for fill in FILLS[kind]]


def case_id(case):
    kind, name, fill = case
    return f"{kind}-{name}-fill={fill!r}"


def zarrsync_store(kind, name, fill):
    store = zs.MemoryStore()
    store.create_array(NODE, shape=SHAPE, chunks=CHUNKS, dtype=kind, fill_value=fill,
                       codecs=chain(name, kind))
    for sel, value in writes(kind, fill):
        store.write_array(NODE, sel, value)
    return store


def zarr_python_store(kind, name, fill):
    zstore = zarr.storage.MemoryStore()
    dtype = VariableLengthUTF8() if kind == "string" else VariableLengthBytes()
    arr = zarr.create_array(zstore, name=KEY, shape=SHAPE, chunks=CHUNKS, dtype=dtype,
                            fill_value=fill, **zarr_codec_args(chain(name, kind)))
    for sel, value in writes(kind, fill):
        arr[sel] = value
    return zstore


def to_zarr_python(store):
    return zarr.storage.MemoryStore({k: Buffer.from_bytes(v) for k, v in store.to_dict().items()})


def contents(zstore):
    return {k: v.to_bytes() for k, v in zstore._store_dict.items()}


def assert_same(actual, expected, what=""):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, what
    assert actual.dtype == expected.dtype, (what, actual.dtype, expected.dtype)
    assert actual.tolist() == expected.tolist(), what


def chunk_keys(files):
    return sorted(k for k in files if k.startswith(KEY + "/") and not k.endswith("zarr.json"))


SELECTIONS = [(slice(1, 6, 2), slice(None)), ([6, 0, 4], [5, 1]), (5, slice(0, 6, 4)),
              (slice(3, 7), [0, 0, 3])]


def np_select(data, sel):
    index = [np.arange(n)[s] if isinstance(s, slice) else np.atleast_1d(np.asarray(s))
             for s, n in zip(sel, data.shape)]
    out = data[np.ix_(*index)]
    return out.reshape([len(i) for i, s in zip(index, sel) if not isinstance(s, int)])


# -- both directions ---------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_zarr_python_reads_zarrsync(case):
    kind, name, fill = case
    arr = zarr.open_array(to_zarr_python(zarrsync_store(kind, name, fill)), path=KEY, mode="r")
    expected = expected_data(kind, fill)
    assert arr.fill_value == fill
    assert_same(arr[...], expected, "whole array")
    for sel in SELECTIONS:
        assert_same(arr.get_orthogonal_selection(sel), np_select(expected, sel), str(sel))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_zarrsync_reads_zarr_python(case):
    kind, name, fill = case
    files = contents(zarr_python_store(kind, name, fill))
    store = zs.MemoryStore(files)
    meta = store.array_metadata(NODE)
    assert meta.fill_value == fill and meta.shape == SHAPE and meta.chunks == CHUNKS
    assert meta.dtype == (T if kind == "string" else O)
    assert [c.to_dict() for c in meta.codecs] == json.loads(files[KEY + "/zarr.json"])["codecs"]
    expected = expected_data(kind, fill)
    assert_same(store.read_array(NODE), expected, "whole array")
    for sel in SELECTIONS:
        assert_same(store.read_array(NODE, sel), np_select(expected, sel), str(sel))
    # zarrsync can update what zarr-python wrote, and zarr-python reads the result.
    store.write_array(NODE, (slice(0, 3), 2), sample(kind, (3,), 9))
    expected[0:3, 2] = sample(kind, (3,), 9)
    arr = zarr.open_array(to_zarr_python(store), path=KEY, mode="r")
    assert_same(arr[...], expected, "after a zarrsync update")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_same_documents_and_chunks(case):
    kind, name, fill = case
    ours = zarrsync_store(kind, name, fill).to_dict()
    theirs = contents(zarr_python_store(kind, name, fill))
    assert json.loads(ours[KEY + "/zarr.json"]) == json.loads(theirs[KEY + "/zarr.json"])
    # Neither stores the never-written rows 0-1 nor rows 2-3 written with the fill value.
    assert chunk_keys(ours) == chunk_keys(theirs)
    assert KEY + "/c/0/0" not in ours and KEY + "/c/1/0" not in ours
    if uncompressed(name):
        for key in chunk_keys(ours):
            assert ours[key] == theirs[key], key
    chain_ = zs.MemoryStore(ours).array_metadata(NODE).chain
    for key in chunk_keys(ours):
        assert_same(chain_.decode(ours[key], key), chain_.decode(theirs[key], key), key)


@pytest.mark.parametrize("kind", ["string", "bytes"])
def test_default_chain_matches_zarr_python(kind):
    store = zs.MemoryStore()
    store.create_array(NODE, shape=SHAPE, chunks=CHUNKS, dtype=kind)
    zstore = zarr.storage.MemoryStore()
    zarr.create_array(zstore, name=KEY, shape=SHAPE, chunks=CHUNKS,
                      dtype=str if kind == "string" else VariableLengthBytes())
    ours = json.loads(store.get(KEY + "/zarr.json"))
    assert ours == json.loads(contents(zstore)[KEY + "/zarr.json"])
    assert ours["data_type"] == ("string" if kind == "string" else "variable_length_bytes")


@pytest.mark.parametrize("kind", ["string", "bytes"])
def test_whole_array_write_both_ways(kind):
    # Element by element: every special value at every position, no fill-value chunks.
    data = sample(kind, (40, 30), 5)
    store = zs.MemoryStore()
    store.create_array(NODE, shape=data.shape, chunks=(16, 16), dtype=kind)
    store.write_array(NODE, ..., data)
    assert_same(zarr.open_array(to_zarr_python(store), path=KEY)[...], data)
    zstore = zarr.storage.MemoryStore()
    arr = zarr.create_array(zstore, name=KEY, shape=data.shape, chunks=(16, 16),
                            dtype=str if kind == "string" else VariableLengthBytes())
    arr[...] = data
    assert_same(zs.MemoryStore(contents(zstore)).read_array(NODE), data)


def test_zarrsync_reads_the_bytes_alias():
    # zarr-extensions names the type "bytes"; zarr-python reads either name.
    store = zarrsync_store("bytes", "plain", b"")
    doc = json.loads(store.get(KEY + "/zarr.json"))
    doc["data_type"] = "bytes"
    store.set(KEY + "/zarr.json", json.dumps(doc).encode())
    expected = expected_data("bytes", b"")
    assert_same(store.read_array(NODE), expected)
    assert_same(zarr.open_array(to_zarr_python(store), path=KEY)[...], expected)


@pytest.mark.parametrize("kind", ["string", "bytes"])
def test_trailing_nul_fill_value_is_kept(kind):
    fill = "x\x00" if kind == "string" else b"x\x00"
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(6,), chunks=(2,), dtype=kind, fill_value=fill,
                       codecs=[vlen(kind)])
    store.write_array(NODE, slice(0, 2), full(kind, (2,), fill))     # all fill: not stored
    store.write_array(NODE, slice(2, 4), sample(kind, (2,), 1))
    expected = full(kind, (6,), fill)
    expected[2:4] = sample(kind, (2,), 1)
    assert chunk_keys(store.to_dict()) == [KEY + "/c/1"]
    arr = zarr.open_array(to_zarr_python(store), path=KEY)
    assert arr.fill_value == fill
    assert_same(arr[...], expected)
    # zarr-python stores a chunk equal to this fill value; zarrsync reads it alike.
    arr[0:2] = full(kind, (2,), fill)
    assert_same(zs.MemoryStore(contents(arr.store)).read_array(NODE), expected)


def test_transposed_frame_follows_the_spec():
    # The transpose codec's output is what vlen-utf8 serialises, in C order:
    # [[a, b], [c, d]] transposed is [[a, c], [b, d]] -> a, c, b, d.
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(2, 2), chunks=(2, 2), dtype="string",
                       codecs=[{"name": "transpose", "configuration": {"order": [1, 0]}},
                               vlen("string")])
    store.write_array(NODE, ..., as_array(["a", "b", "c", "d"], "string", (2, 2)))
    assert store.get(KEY + "/c/0/0") == (b"\x04\x00\x00\x00" + b"".join(
        b"\x01\x00\x00\x00" + c for c in (b"a", b"c", b"b", b"d")))
    # zarr-python's numeric arrays agree with that order (same chain, bytes codec).
    zstore = zarr.storage.MemoryStore()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = zarr.create_array(zstore, name=KEY, shape=(2, 2), chunks=(2, 2), dtype="uint8",
                                filters=[zarr.codecs.TransposeCodec(order=(1, 0))],
                                compressors=None)
    arr[...] = np.array([[1, 2], [3, 4]], dtype="uint8")
    assert contents(zstore)[KEY + "/c/0/0"] == bytes([1, 3, 2, 4])


def interop_cells(name, params):
    """The cells of docs/interop.md each test checks (tests/interop_matrix.py)."""
    direction = {"test_zarr_python_reads_zarrsync": "write",
                 "test_zarrsync_reads_zarr_python": "read"}.get(name)
    if direction is None:
        return []
    kind, chain_name, _ = params["case"]
    return [cell("zarr-python", 3, codec_label(chain(chain_name, kind)), kind, direction)]
