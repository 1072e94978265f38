"""Property tests: ``string`` and ``bytes`` arrays behave exactly like NumPy arrays.

Each test draws an array (shape, chunk shape, ``string`` or ``bytes``, fill
value, a vlen codec chain: plain, compressed, transposed or sharded, and a
chunk key encoding), applies the same writes to zarrsync and to a NumPy array
(``StringDType`` or object), and compares every read element for element.
Values are random unicode (empty strings, NULs, trailing NULs, non-BMP
characters) or random bytes. Exactly the chunks that are not all fill value
must be stored.

Run more examples with ``HYPOTHESIS_PROFILE=ci`` (see ``conftest.py``).
"""

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import zarrsync as zs
from zarrsync import ArrayNode
from zarrsync.codecs import (Crc32c, Gzip, ShardingIndexed, Transpose, VlenBytes, VlenUtf8,
                             Zstd)

from strategies import basic_selections, chunk_key, orthogonal_index, selections, shapes

T = np.dtypes.StringDType()
O = np.dtype(object)
NODE = ArrayNode.of_path("/group/text")
PREFIX = NODE.key + "/"


# -- strategies -------------------------------------------------------------------------

# Any code point UTF-8 can carry (no lone surrogates), NUL and non-BMP included.
_chars = st.characters(codec="utf-8")
_SPECIAL_TEXT = ["", "\x00", "a\x00", "\x00\x00", "𝄞", "\U0010ffff", "é" * 9, "x" * 16]
_SPECIAL_BYTES = [b"", b"\x00", b"a\x00", b"\xff" * 3, b"\xc3(", b"x" * 16]


def texts():
    return st.one_of(st.sampled_from(_SPECIAL_TEXT), st.text(_chars, max_size=20))


def binaries():
    return st.one_of(st.sampled_from(_SPECIAL_BYTES), st.binary(max_size=20))


def elements(kind):
    return texts() if kind == "string" else binaries()


def as_array(values, kind, shape):
    """An array of ``kind`` holding exactly ``values`` (set one by one, so no
    fixed-width detour drops a trailing NUL)."""
    out = np.empty(len(values), dtype=T if kind == "string" else O)
    for i, v in enumerate(values):
        out[i] = v
    return out.reshape(shape)


@st.composite
def arrays(draw, kind, shape, fill):
    """Values from a small palette (the fill value often among them, so whole
    chunks are often fill) or all drawn independently."""
    n = int(np.prod(shape, dtype=np.int64))
    if draw(st.booleans()):
        palette = draw(st.lists(elements(kind), min_size=1, max_size=3)) + [fill]
        values = draw(st.lists(st.sampled_from(palette), min_size=n, max_size=n))
    else:
        values = draw(st.lists(elements(kind), min_size=n, max_size=n))
    return as_array(values, kind, shape)


@st.composite
def write_values(draw, kind, shape, fill):
    """An array of the selection's shape, one that broadcasts, a scalar, or a
    (nested) list; for strings also an object array of ``str``."""
    form = draw(st.sampled_from(["array", "array", "broadcast", "scalar", "list", "object"]))
    if form == "scalar":
        return draw(st.one_of(elements(kind), st.just(fill)))
    if form == "broadcast":
        sub = tuple(1 if draw(st.booleans()) else n for n in shape)
        return draw(arrays(kind, sub, fill))
    value = draw(arrays(kind, shape, fill))
    if form == "list" and value.size:  # (a list cannot hold a zero-size shape)
        return value.tolist()
    if form == "object" and kind == "string":
        return value.astype(object)
    return value


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def chains(draw, kind, chunks):
    """A vlen codec chain: optional transpose, the vlen codec, 0-2 bytes->bytes
    codecs; or sharding (inner chunks dividing ``chunks``, inner vlen chain),
    alone (the byte-range path) or followed by a checksum (the whole-shard path)."""
    vlen = VlenUtf8() if kind == "string" else VlenBytes()
    compressors = st.lists(st.one_of(st.integers(0, 9).map(Gzip),
                                     st.builds(Zstd, level=st.integers(-3, 5),
                                               checksum=st.booleans()),
                                     st.just(Crc32c())), max_size=2)
    form = draw(st.sampled_from(["plain", "plain", "sharded", "sharded+crc32c", "default"]))
    if form == "default":
        return None
    ndim = len(chunks)
    inner = [vlen] + draw(compressors)
    if ndim and draw(st.booleans()):
        inner.insert(0, Transpose(draw(st.permutations(range(ndim)))))
    if form == "plain" or ndim == 0:
        return inner
    inner_shape = tuple(draw(st.sampled_from(_divisors(c))) for c in chunks)
    chain = [ShardingIndexed(inner_shape, codecs=inner,
                             index_location=draw(st.sampled_from(["start", "end"])))]
    return chain + ([Crc32c()] if form == "sharded+crc32c" else [])


@st.composite
def configs(draw):
    kind = draw(st.sampled_from(["string", "bytes"]), label="kind")
    shape = draw(shapes(max_dims=3, max_side=8, max_size=120), label="shape")
    chunks = tuple(draw(st.integers(1, max(n, 1) + 1)) for n in shape)
    fill = draw(st.one_of(st.none(), elements(kind)), label="fill_value")
    codecs = draw(chains(kind, chunks), label="codecs")
    encoding, separator = draw(st.tuples(st.sampled_from(["default", "v2"]),
                                         st.sampled_from(["/", "."])))
    return dict(kind=kind, shape=shape, chunks=chunks, fill=fill, codecs=codecs,
                encoding=encoding, separator=separator)


# -- the NumPy model ---------------------------------------------------------------------

def fill_of(config):
    if config["fill"] is not None:
        return config["fill"]
    return "" if config["kind"] == "string" else b""


def reference(config, shape=None):
    shape = config["shape"] if shape is None else shape
    return as_array([fill_of(config)] * int(np.prod(shape, dtype=np.int64)), config["kind"],
                    shape)


def np_write(a, sel, value, kind):
    """Orthogonal assignment (outer product; duplicates: the last one wins)."""
    index, out_shape = orthogonal_index(sel, a.shape)
    if isinstance(value, (str, bytes)):
        value = as_array([value], kind, ())
    else:
        value = np.asarray(value, dtype=a.dtype) if isinstance(value, list) else value
        value = value.astype(a.dtype) if value.dtype != a.dtype else value
    full = tuple(len(i) for i in index)
    value = np.broadcast_to(value, out_shape).reshape(full)
    if a.ndim == 0:
        a[...] = value
    else:
        a[np.ix_(*index)] = value


def np_read(a, sel):
    index, out_shape = orthogonal_index(sel, a.shape)
    return a.copy() if a.ndim == 0 else a[np.ix_(*index)].reshape(out_shape)


def assert_same(actual, expected):
    assert isinstance(actual, np.ndarray)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.tolist() == expected.tolist(), (actual, expected)


def expected_keys(data, config):
    """Chunks holding an element other than the fill value (shards for sharded
    arrays, since a shard is the array's chunk)."""
    fill = as_array([fill_of(config)], config["kind"], ())
    chunks = config["chunks"]
    grid = [-(-n // c) for n, c in zip(data.shape, chunks)]
    keys = set()
    for coords in itertools.product(*map(range, grid)):
        region = data[tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, chunks))
                      or Ellipsis]  # rank 0: a 0-d array, not a str to compare
        if not (region == fill).all():
            keys.add(PREFIX + chunk_key(coords, config["encoding"], config["separator"]))
    return keys


def create(config):
    store = zs.MemoryStore()
    store.create_array(NODE, shape=config["shape"], chunks=config["chunks"],
                       dtype=config["kind"], fill_value=config["fill"], codecs=config["codecs"],
                       chunk_key_encoding=config["encoding"], separator=config["separator"])
    return store


def check_contents(store, config, expected):
    assert_same(store.read_array(NODE), expected)
    stored = set(store.list_prefix(PREFIX)) - {NODE.metadata_key}
    assert stored == expected_keys(expected, config)


def random_writes(data, store, config, expected, max_writes=4):
    for _ in range(data.draw(st.integers(0, max_writes), label="number of writes")):
        sel = data.draw(selections(expected.shape), label="write selection")
        _, out_shape = orthogonal_index(sel, expected.shape)
        value = data.draw(write_values(config["kind"], out_shape, fill_of(config)),
                          label="value")
        store.write_array(NODE, sel, value)
        np_write(expected, sel, value, config["kind"])


# -- properties --------------------------------------------------------------------------

@given(data=st.data())
def test_writes_then_reads_match_numpy(data):
    config = data.draw(configs(), label="config")
    store = create(config)
    assert store.array_metadata(NODE).fill_value == fill_of(config)
    expected = reference(config)
    random_writes(data, store, config, expected)
    for _ in range(data.draw(st.integers(1, 3), label="number of reads")):
        sel = data.draw(selections(expected.shape), label="read selection")
        assert_same(store.read_array(NODE, sel), np_read(expected, sel))
    check_contents(store, config, expected)


@given(data=st.data())
def test_resize_matches_numpy(data):
    config = data.draw(configs(), label="config")
    store = create(config)
    expected = reference(config)
    random_writes(data, store, config, expected, max_writes=2)
    for _ in range(data.draw(st.integers(1, 2), label="number of resizes")):
        shape = data.draw(shapes(ndim=len(config["shape"]), max_side=8, max_size=120),
                          label="new shape")
        store.reshape(NODE, shape)
        grown = reference(config, shape)
        common = tuple(slice(0, min(m, n)) for m, n in zip(expected.shape, shape))
        grown[common] = expected[common]
        expected = grown
        check_contents(store, config, expected)
        random_writes(data, store, config, expected, max_writes=1)
        check_contents(store, config, expected)


@given(data=st.data())
def test_array_view_matches_numpy(data):
    config = data.draw(configs(), label="config")
    store = create(config)
    arr = zs.Array(store, NODE)
    expected = data.draw(arrays(config["kind"], config["shape"], fill_of(config)),
                         label="contents")
    arr[...] = expected
    for _ in range(data.draw(st.integers(1, 3), label="number of reads")):
        sel = data.draw(basic_selections(expected.shape), label="selection")
        ref = expected[sel]
        if not isinstance(ref, np.ndarray):  # NumPy gives a scalar; zarrsync a 0-d array
            ref = as_array([ref], config["kind"], ())
        assert_same(np.asarray(arr[sel]), ref)
    check_contents(store, config, expected)


@given(kind=st.sampled_from(["string", "bytes"]),
       values=st.data())
def test_codec_round_trip_and_framing(kind, values):
    items = values.draw(st.lists(elements(kind), min_size=1, max_size=30), label="items")
    codec = VlenUtf8() if kind == "string" else VlenBytes()
    array = as_array(items, kind, (len(items),))
    encoded = codec.encode(array)
    raw = [x.encode("utf-8") if kind == "string" else x for x in items]
    assert encoded == len(raw).to_bytes(4, "little") + b"".join(
        len(x).to_bytes(4, "little") + x for x in raw)
    assert_same(codec.decode(encoded, array.shape, array.dtype), array)
