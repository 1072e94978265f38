"""Hypothesis strategies for zarrsync arrays, plus the NumPy reference model.

Strategies
----------
``dtypes``, ``shapes``, ``chunk_shapes``, ``fill_values``, ``scalars``,
``arrays_of``, ``write_values``, ``codec_chains``, ``sharded_layouts``
(``sharding_indexed`` chains with their shard shape), ``chunk_key_encodings``,
``array_configs``, ``selections`` (the store API's orthogonal selections),
``chunked_write_cases`` (an array and a few write selections),
``fill_mixed_values`` (write values partly fill, in several memory layouts),
``basic_selections`` (NumPy basic indexing, for the ``Array`` view).

Sizes stay small (at most 12 per axis, a few hundred elements in all) so
each example runs in milliseconds; chunk shapes need not divide the shape
and may exceed it. Sharded arrays draw the inner chunk shape first and make
the shard (the array's chunk) a multiple of it; the number of inner chunks
stays small too. ``chunked_write_cases`` goes up to 24 per axis in chunks of
at most 6, so that a write covers many whole chunks.

Reference model
---------------
``orthogonal_index``, ``np_read``, ``np_write``, ``crop_or_pad``,
``chunk_key``, ``expected_chunk_keys``, ``shard_index_entries``,
``expected_empty_inner_chunks`` and ``assert_bitwise_equal`` say, with NumPy
alone and without calling zarrsync, what zarrsync must return and store.
Floating-point data is compared bit for bit: zarrsync stores exactly the
bits it was given (NaN payloads, -0.0), and decides that a chunk is "all
fill value" bitwise.
"""

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

from zarrsync.codecs import Bytes, Crc32c, Gzip, ShardingIndexed, Transpose, Zstd

__all__ = [
    "DTYPES", "MAX_SIDE", "MAX_SIZE", "ArrayConfig", "dtypes", "shapes", "chunk_shapes",
    "fill_values", "scalars", "arrays_of", "write_values", "codec_chains",
    "sharded_layouts", "is_fast_path", "chunk_key_encodings", "array_configs",
    "axis_selections", "selections", "basic_selections", "orthogonal_index", "np_read",
    "np_write", "crop_or_pad", "chunk_key", "expected_chunk_keys", "sharding_config",
    "shard_index_entries", "expected_empty_inner_chunks", "as_bytes",
    "assert_bitwise_equal",
]

#: The Zarr v3 core numeric data types zarrsync supports.
DTYPES = tuple(np.dtype(name) for name in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128"))

#: Largest length of one axis.
MAX_SIDE = 12
#: Largest number of elements of an array (keeps each example fast).
MAX_SIZE = 400


# -- shapes, chunks, data types -------------------------------------------------------------

def dtypes():
    """One of the Zarr v3 core numeric data types (native byte order)."""
    return st.sampled_from(DTYPES)


def _size(shape):
    return math.prod(shape)


def shapes(min_dims=0, max_dims=4, max_side=MAX_SIDE, max_size=MAX_SIZE, ndim=None):
    """Array shapes of rank ``min_dims..max_dims`` (or exactly ``ndim``).

    Zero-length axes are allowed; the element count is at most ``max_size``.
    """
    if ndim is not None:
        min_dims = max_dims = ndim
    # Rank drawn uniformly (array_shapes favours rank 0 heavily); sides
    # mostly positive, so that most arrays hold data across several chunks.
    side = st.one_of(st.integers(1, max_side), st.integers(0, max_side))
    return st.sampled_from(range(min_dims, max_dims + 1)).flatmap(
        lambda nd: st.tuples(*[side] * nd)).filter(lambda s: _size(s) <= max_size)


def chunk_shapes(shape, max_chunks=MAX_SIZE):
    """Regular chunk shapes for ``shape``: positive, not necessarily dividing
    the shape, possibly larger than it; at most ``max_chunks`` chunks."""
    def n_chunks(chunks):
        return math.prod(-(-n // c) for n, c in zip(shape, chunks))

    def axis(n):
        # Half the time at most half the axis, so arrays often span many chunks.
        return st.one_of(st.integers(1, max(1, n // 2)), st.integers(1, max(n, 1) + 3))

    return st.tuples(*[axis(n) for n in shape]).filter(lambda c: n_chunks(c) <= max_chunks)


# -- scalars and arrays of a data type ----------------------------------------------------------

def _from_bits(dtype, raw):
    """A 0-d array of ``dtype`` holding exactly the bytes ``raw``."""
    return np.frombuffer(bytes(raw), dtype=dtype).reshape(())


def _float_specials(dtype):
    """Interesting bit patterns of a float type: zeros, infinities, NaNs with
    and without payload or sign (a signalling NaN too), extremes, subnormals."""
    info = np.finfo(dtype)
    u = np.dtype(f"u{dtype.itemsize}")
    nbits = 8 * dtype.itemsize
    mant = info.nmant
    exp_all = ((1 << (nbits - 1 - mant)) - 1) << mant  # exponent field all ones
    sign = 1 << (nbits - 1)
    quiet = 1 << (mant - 1)
    bit_patterns = [
        exp_all | quiet,              # canonical quiet NaN
        sign | exp_all | quiet,       # negative NaN
        exp_all | quiet | 1,          # quiet NaN with a payload
        exp_all | 1,                  # signalling NaN
        sign,                         # -0.0
        1,                            # smallest subnormal
    ]
    out = [_from_bits(dtype, np.array(b, dtype=u).tobytes()) for b in bit_patterns]
    for v in (0.0, 1.0, -1.0, math.inf, -math.inf, info.max, info.min, info.tiny):
        out.append(np.array(v, dtype=dtype))
    return out


def _raw(dtype):
    """Any bit pattern of ``dtype`` (bool: only False/True)."""
    if dtype.kind == "b":
        return st.booleans().map(lambda b: np.array(b, dtype=dtype))
    return st.binary(min_size=dtype.itemsize, max_size=dtype.itemsize).map(
        lambda raw: _from_bits(dtype, raw))


def _float_scalars(dtype):
    return st.one_of(
        st.sampled_from(_float_specials(dtype)),
        npst.from_dtype(dtype, allow_nan=True, allow_infinity=True).map(
            lambda v: np.array(v, dtype=dtype)),
        _raw(dtype),
    )


def scalars(dtype):
    """0-d arrays of ``dtype``, with bit-level variety for floats (NaN payloads,
    signalling NaNs, -0.0, ±inf, subnormals) and raw bit patterns."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return _raw(dtype)
    if dtype.kind in "iu":
        return st.one_of(npst.from_dtype(dtype).map(lambda v: np.array(v, dtype=dtype)),
                         _raw(dtype))
    if dtype.kind == "f":
        return _float_scalars(dtype)
    if dtype.kind == "c":
        part = np.dtype(f"f{dtype.itemsize // 2}")
        parts = st.tuples(_float_scalars(part), _float_scalars(part)).map(
            lambda ri: _from_bits(dtype, ri[0].tobytes() + ri[1].tobytes()))
        return st.one_of(parts, _raw(dtype))
    raise ValueError(f"no scalars for {dtype}")


def fill_values(dtype):
    """Fill values of ``dtype`` as NumPy scalars (NaN, ±inf, -0.0 and raw bits
    included for floats)."""
    return scalars(dtype).map(lambda a: a[()])


@st.composite
def arrays_of(draw, dtype, shape, fill=None):
    """Arrays of ``dtype`` and ``shape`` (a fresh, writable, C-contiguous array).

    Either a few values (some of them the fill value) repeated in random
    places, so whole chunks often equal the fill value, or seeded random
    bytes, so that almost every element differs (misplaced elements show).
    """
    dtype = np.dtype(dtype)
    shape = tuple(shape)
    if draw(st.booleans()):
        palette_values = scalars(dtype)
        if fill is not None:
            palette_values = st.one_of(st.just(np.array(fill, dtype=dtype)), palette_values)
        palette = draw(st.lists(palette_values, min_size=1, max_size=4))
        palette = np.stack([np.asarray(p, dtype=dtype) for p in palette])
        which = draw(npst.arrays(np.uint8, shape,
                                 elements=st.integers(0, len(palette) - 1)))
        return palette[which]
    seed = draw(st.integers(0, 2**32 - 1))
    raw = np.random.default_rng(seed).integers(
        0, 256, size=_size(shape) * dtype.itemsize, dtype=np.uint8)
    if dtype.kind == "b":
        raw &= 1
    return raw.view(dtype).reshape(shape)


@st.composite
def write_values(draw, dtype, shape, fill):
    """What may be written to a selection of ``shape``: an array of that shape,
    an array that broadcasts to it (trailing axes), a NumPy scalar, the fill
    value, a Python scalar that fits, or the array in the other byte order."""
    dtype = np.dtype(dtype)
    kind = draw(st.sampled_from(
        ["array", "array", "broadcast", "scalar", "fill", "python", "swapped"]))
    if kind == "broadcast":
        k = draw(st.integers(0, len(shape)))
        ones = draw(st.lists(st.booleans(), min_size=len(shape) - k,
                             max_size=len(shape) - k))
        sub = tuple(1 if one else n for one, n in zip(ones, shape[k:]))
        return draw(arrays_of(dtype, sub, fill))
    if kind == "scalar":
        return draw(scalars(dtype))[()]
    if kind == "fill":
        return np.array(fill, dtype=dtype)[()]
    if kind == "python":
        if dtype.kind == "b":
            return draw(st.booleans())
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            return draw(st.integers(int(info.min), int(info.max)))
        # Floats exactly representable in the type, so the cast is exact.
        width = min(32, 8 * dtype.itemsize // (2 if dtype.kind == "c" else 1))
        if dtype.kind == "f":
            return draw(st.floats(width=width))
        return complex(draw(st.floats(width=width)), draw(st.floats(width=width)))
    value = draw(arrays_of(dtype, shape, fill))
    if kind == "swapped" and dtype.itemsize > 1:
        # Same data type, other byte order: zarrsync accepts it (API: same dtype).
        value = value.astype(dtype.newbyteorder("S"))
    return value


# -- codecs and chunk keys ---------------------------------------------------------------------------

def _bytes_to_bytes():
    return st.one_of(
        st.integers(0, 9).map(Gzip),
        st.builds(Zstd, level=st.integers(-5, 5), checksum=st.booleans()),
        st.just(Crc32c()),
    )


@st.composite
def codec_chains(draw, ndim):
    """A valid codec chain for rank ``ndim``: an optional ``Transpose`` with a
    random permutation, ``Bytes`` (little or big endian), then 0-3
    bytes->bytes codecs (gzip, zstd, crc32c) in any order, repeats allowed.

    Sometimes given as spec JSON dicts instead of objects (the API takes
    both), and sometimes ``None`` (the default chain).
    """
    if draw(st.integers(0, 9)) == 0:
        return None
    chain = []
    if draw(st.booleans()):
        chain.append(Transpose(draw(st.permutations(range(ndim)))))
    chain.append(Bytes(draw(st.sampled_from(["little", "big"]))))
    chain.extend(draw(st.lists(_bytes_to_bytes(), max_size=3)))
    if draw(st.integers(0, 4)) == 0:
        chain = [c.to_dict() for c in chain]
    return chain


#: Largest number of inner chunks over a sharded array's whole shard grid
#: (a whole-shard write encodes every inner chunk of its shard).
MAX_INNER_CHUNKS = 96


@st.composite
def _inner_chain(draw, ndim):
    """The inner chunks' chain of a shard: optional ``Transpose``, ``Bytes``
    (little or big), 0-2 of gzip/zstd/crc32c; sometimes ``None`` (default)."""
    if draw(st.integers(0, 5)) == 0:
        return None
    chain = []
    if draw(st.booleans()):
        chain.append(Transpose(draw(st.permutations(range(ndim)))))
    chain.append(Bytes(draw(st.sampled_from(["little", "big"]))))
    chain.extend(draw(st.lists(_bytes_to_bytes(), max_size=2)))
    return chain


@st.composite
def _index_chain(draw):
    """``[Bytes(endian)]`` or ``[Bytes(endian), Crc32c()]``, or ``None`` (the default,
    bytes + crc32c)."""
    if draw(st.integers(0, 5)) == 0:
        return None
    chain = [Bytes(draw(st.sampled_from(["little", "big"])))]
    if draw(st.booleans()):
        chain.append(Crc32c())
    return chain


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def _sharding_codec(draw, inner_shape, nested_ok=True):
    """A ``ShardingIndexed`` with inner chunk shape ``inner_shape`` (whose shard
    shape the caller makes a multiple of it); occasionally nested sharding."""
    ndim = len(inner_shape)
    if nested_ok and draw(st.integers(0, 5)) == 0:
        # Nested: each inner chunk is itself a shard of smaller inner chunks.
        inner_inner = draw(st.tuples(*[st.sampled_from(_divisors(n)) for n in inner_shape])
                           .filter(lambda c: math.prod(n // k for n, k in zip(inner_shape, c))
                                   <= 8), label="nested inner chunk shape")
        codecs = [draw(_sharding_codec(inner_inner, nested_ok=False))]
    else:
        codecs = draw(_inner_chain(ndim))
    return ShardingIndexed(inner_shape, codecs, draw(_index_chain()),
                           draw(st.sampled_from(["start", "end"])))


def is_fast_path(codecs):
    """True if ``codecs`` is ``sharding_indexed`` alone: zarrsync then plans on the
    inner chunk grid and reads byte ranges; other sharded chains (a transpose
    before it, a bytes->bytes codec after it) decode and encode whole shards."""
    if not codecs or len(codecs) != 1:
        return False
    c = codecs[0]
    return isinstance(c, ShardingIndexed) or (
        isinstance(c, dict) and c.get("name") == "sharding_indexed")


@st.composite
def sharded_layouts(draw, shape, path=None):
    """``(chunks, codecs)`` of a sharded array of ``shape`` (rank >= 1).

    The inner chunk shape is drawn first (1..5 per axis, at most the axis
    length, mostly) and the shard shape, the array's chunk shape, is a
    multiple of it (1..4 inner chunks per axis, so it may exceed the array).
    ``path`` is ``"fast"`` (``sharding_indexed`` alone), ``"transpose"`` (a
    ``Transpose`` before it: the sharding codec then sees the transposed
    shard, so its inner shape is transposed too), ``"compress"`` (gzip,
    zstd or crc32c after it) or ``None`` (mostly fast). Sometimes given as
    spec JSON dicts.
    """
    shape = tuple(shape)
    ndim = len(shape)
    assert ndim >= 1, "sharding needs rank >= 1"
    if path is None:
        path = draw(st.sampled_from(["fast", "fast", "fast", "transpose", "compress"]),
                    label="sharding path")

    def inner_chunks(inner, per_shard):
        # Inner chunks over the whole shard grid (shards may overhang the array).
        return math.prod(-(-n // (i * k)) * k for n, i, k in zip(shape, inner, per_shard))

    inner = list(draw(st.tuples(*[st.integers(1, max(1, min(5, n))) for n in shape]),
                      label="inner chunk shape"))
    per_shard = list(draw(st.tuples(*[st.integers(1, 4) for _ in shape]),
                          label="inner chunks per shard"))
    # Too many inner chunks: fewer per shard first, then larger inner chunks
    # (deterministic, so that Hypothesis still shrinks the drawn values).
    while inner_chunks(inner, per_shard) > MAX_INNER_CHUNKS and max(per_shard) > 1:
        per_shard[per_shard.index(max(per_shard))] -= 1
    while inner_chunks(inner, per_shard) > MAX_INNER_CHUNKS:
        d = max(range(ndim), key=lambda d: -(-shape[d] // inner[d]))
        inner[d] += 1
    inner, per_shard = tuple(inner), tuple(per_shard)
    chunks = tuple(i * k for i, k in zip(inner, per_shard))
    if path == "transpose":
        order = draw(st.permutations(range(ndim)), label="transpose before sharding")
        codecs = [Transpose(order),
                  draw(_sharding_codec(tuple(inner[i] for i in order)))]
    else:
        codecs = [draw(_sharding_codec(inner))]
        if path == "compress":
            codecs.extend(draw(st.lists(_bytes_to_bytes(), min_size=1, max_size=2)))
    if draw(st.integers(0, 4)) == 0:
        codecs = [c.to_dict() for c in codecs]
    return chunks, codecs


def chunk_key_encodings():
    """``(chunk_key_encoding, separator)`` pairs."""
    return st.tuples(st.sampled_from(["default", "v2"]), st.sampled_from(["/", "."]))


@dataclass
class ArrayConfig:
    """Everything ``create_array`` needs, drawn together."""

    shape: tuple
    chunks: tuple
    dtype: np.dtype
    fill_value: np.generic
    codecs: list = field(default=None)
    chunk_key_encoding: str = "default"
    separator: str = "/"

    @property
    def ndim(self):
        return len(self.shape)

    def create(self, store, node, **kwargs):
        store.create_array(node, shape=self.shape, chunks=self.chunks, dtype=self.dtype,
                           fill_value=self.fill_value, codecs=self.codecs,
                           chunk_key_encoding=self.chunk_key_encoding,
                           separator=self.separator, **kwargs)

    def reference(self, shape=None):
        """A NumPy array of ``shape`` (default: the config's) holding the fill value."""
        return np.full(self.shape if shape is None else shape,
                       np.array(self.fill_value, dtype=self.dtype))


@st.composite
def array_configs(draw, shape=None, ndim=None, dtype=None, max_chunks=MAX_SIZE,
                  sharded=None, sharding_path=None):
    """An ``ArrayConfig``: shape, chunks, dtype, fill value, codecs and chunk keys.

    ``sharded``: ``True`` always draws a ``sharding_indexed`` layout (see
    ``sharded_layouts``; ``sharding_path`` picks its path), ``False`` never,
    ``None`` about one time in four when the rank is at least 1.
    """
    if shape is None:
        shape = draw(shapes(min_dims=1 if sharded else 0, ndim=ndim), label="shape")
    shape = tuple(shape)
    if sharded is None:
        sharded = len(shape) > 0 and draw(st.integers(0, 3), label="sharded") == 0
    if dtype is None:
        dtype = draw(dtypes(), label="dtype")
    if sharded:
        chunks, codecs = draw(sharded_layouts(shape, sharding_path), label="sharded layout")
        fill = draw(fill_values(dtype), label="fill_value")
    else:
        chunks = draw(chunk_shapes(shape, max_chunks), label="chunks")
        fill = draw(fill_values(dtype), label="fill_value")
        codecs = draw(codec_chains(len(shape)), label="codecs")
    encoding, separator = draw(chunk_key_encodings(), label="chunk_key_encoding")
    return ArrayConfig(shape, chunks, np.dtype(dtype), fill, codecs, encoding, separator)


# -- selections --------------------------------------------------------------------------------------

def _index_lists(n, unique=False):
    """1-D integer lists for an axis of length ``n``: unsorted, negative
    entries, duplicates unless ``unique``; as a list or an int array."""
    if n == 0:
        items = st.just([])
    else:
        items = st.lists(st.integers(-n, n - 1), max_size=min(2 * n + 1, 16),
                         unique_by=(lambda i: i % n) if unique else None)
    return st.tuples(items, st.sampled_from(["list", "int64", "int32", "intp"])).map(
        lambda p: p[0] if p[1] == "list" else np.array(p[0], dtype=p[1]))


def _masks(n):
    return st.one_of(npst.arrays(np.bool_, (n,)),
                     st.lists(st.booleans(), min_size=n, max_size=n))


def _strict_slices(n):
    bound = st.none() | st.integers(-n, n)
    return st.builds(slice, bound, bound, st.none() | st.integers(1, n + 1))


def axis_selections(n, lists=True, masks=True, unique=False):
    """One axis of a store-API selection for an axis of length ``n``: an int
    (negative too), a slice (step >= 1, bounds within ``[-n, n]``, possibly
    empty), an integer list, or a boolean mask."""
    options = [st.just(slice(None)), _strict_slices(n)]
    if n > 0:
        options.append(st.integers(-n, n - 1))
    if lists:
        options.append(_index_lists(n, unique))
    if masks:
        options.append(_masks(n))
    return st.one_of(options)


@st.composite
def _arrange(draw, per_axis, ndim):
    """Present per-axis selections as the API allows: a full tuple, a tuple
    missing trailing axes, a tuple with an Ellipsis standing for whole axes,
    or a bare (non-tuple) selection of axis 0."""
    per_axis = list(per_axis)
    form = draw(st.sampled_from(["tuple", "trailing", "ellipsis", "bare"]))
    if form == "trailing":
        return tuple(per_axis[:draw(st.integers(0, ndim))])
    if form == "ellipsis":
        i = draw(st.integers(0, ndim))
        j = draw(st.integers(i, ndim))
        return tuple(per_axis[:i]) + (Ellipsis,) + tuple(per_axis[j:])
    if form == "bare":
        if ndim == 0:
            return Ellipsis
        if ndim == 1 or draw(st.booleans()):
            return per_axis[0]
    return tuple(per_axis)


@st.composite
def selections(draw, shape, lists=True, masks=True, unique=False):
    """A store-API (orthogonal) selection of an array of ``shape``; every int
    and slice bound is in bounds, as ``read_array``/``write_array`` require."""
    per_axis = [draw(axis_selections(n, lists, masks, unique)) for n in shape]
    return draw(_arrange(per_axis, len(shape)))


def _numpy_slices(n):
    bound = st.none() | st.integers(-2 * n - 3, 2 * n + 3)
    step = st.none() | st.integers(-n - 2, n + 2).filter(lambda s: s != 0)
    return st.builds(slice, bound, bound, step)


@st.composite
def basic_selections(draw, shape):
    """A NumPy basic-indexing selection (ints, slices of any bounds and
    non-zero step, Ellipsis) for the ``Array`` view, which clips as NumPy."""
    per_axis = []
    for n in shape:
        options = [st.just(slice(None)), _numpy_slices(n)]
        if n > 0:
            options.append(st.integers(-n, n - 1))
        per_axis.append(draw(st.one_of(options)))
    return draw(_arrange(per_axis, len(shape)))


# -- the NumPy reference model ----------------------------------------------------------------

def _is_int(s):
    return isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_))


def orthogonal_index(selection, shape):
    """Turn an orthogonal selection into NumPy terms, independently of zarrsync.

    Returns ``(index, out_shape)``: ``index`` holds one intp array per axis
    (an int becomes a one-element array), so ``a[np.ix_(*index)]`` is the
    selection with every axis kept, and ``out_shape`` drops the int axes.
    """
    sel = selection if isinstance(selection, tuple) else (selection,)
    if any(s is Ellipsis for s in sel):
        i = next(k for k, s in enumerate(sel) if s is Ellipsis)
        sel = sel[:i] + (slice(None),) * (len(shape) - len(sel) + 1) + sel[i + 1:]
    sel = sel + (slice(None),) * (len(shape) - len(sel))
    assert len(sel) == len(shape), (selection, shape)
    index, out_shape = [], []
    for s, n in zip(sel, shape):
        if _is_int(s):
            index.append(np.array([s % n], dtype=np.intp))
        elif isinstance(s, slice):
            index.append(np.arange(n, dtype=np.intp)[s])
            out_shape.append(len(index[-1]))
        else:
            a = np.asarray(s)
            if a.dtype == np.bool_:
                a = np.flatnonzero(a)
            a = a.astype(np.intp) % max(n, 1)
            index.append(a)
            out_shape.append(len(a))
    return tuple(index), tuple(out_shape)


def np_read(a, selection):
    """The orthogonal selection ``selection`` of NumPy array ``a`` (a new array)."""
    index, out_shape = orthogonal_index(selection, a.shape)
    if a.ndim == 0:
        return a.copy()
    return a[np.ix_(*index)].reshape(out_shape)


def np_write(a, selection, value):
    """Assign ``value`` to the orthogonal selection of NumPy array ``a`` in place.

    With integer lists on several axes this is the outer product
    (``a[np.ix_(...)] = value``). Duplicate indices: NumPy assigns in
    C order, so the last occurrence wins; zarrsync does the same.
    """
    index, out_shape = orthogonal_index(selection, a.shape)
    value = np.asarray(value)
    if value.dtype != a.dtype:  # Python scalars, other byte order: cast as zarrsync does
        value = value.astype(a.dtype)
    full_shape = tuple(len(i) for i in index)
    value = np.broadcast_to(value, out_shape).reshape(full_shape)
    if a.ndim == 0:
        a[()] = value
    else:
        a[np.ix_(*index)] = value


def crop_or_pad(a, shape, fill):
    """``a`` cropped and/or padded with ``fill`` to ``shape`` (what a resize shows)."""
    out = np.full(shape, np.array(fill, dtype=a.dtype))
    common = tuple(slice(0, min(m, n)) for m, n in zip(a.shape, shape))
    out[common] = a[common]
    return out


def chunk_key(coords, chunk_key_encoding="default", separator="/"):
    """A chunk's key below its array's prefix, per the spec.

    https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#chunk-key-encoding
    """
    parts = [str(c) for c in coords]
    if chunk_key_encoding == "default":
        return separator.join(["c"] + parts)
    return separator.join(parts) if parts else "0"


def sharding_config(codecs):
    """``(chunk_shape, index_location, index_endian, index_crc32c)`` of a chain
    that is ``sharding_indexed`` alone (as a codec object or its JSON form)."""
    (codec,) = codecs
    doc = codec if isinstance(codec, dict) else codec.to_dict()
    config = doc["configuration"]
    index = config.get("index_codecs") or [{"name": "bytes"}, {"name": "crc32c"}]
    endian = index[0].get("configuration", {}).get("endian", "little")
    return (tuple(config["chunk_shape"]), config.get("index_location", "end"), endian,
            [c["name"] for c in index[1:]] == ["crc32c"])


def shard_index_entries(raw, n_inner, index_location, endian, crc):
    """The ``(n_inner, 2)`` uint64 ``(offset, nbytes)`` entries of a stored shard,
    per the spec; asserts the crc32c and that every entry lies in the data.

    https://zarr-specs.readthedocs.io/en/latest/v3/codecs/sharding-indexed/index.html
    """
    import crc32c

    size = 16 * n_inner + (4 if crc else 0)
    assert len(raw) >= size, f"a shard of {len(raw)} bytes cannot hold a {size}-byte index"
    index = raw[:size] if index_location == "start" else raw[len(raw) - size:]
    if crc:
        assert crc32c.crc32c(index[:-4]) == int.from_bytes(index[-4:], "little")
        index = index[:-4]
    entries = np.frombuffer(index, dtype="<u8" if endian == "little" else ">u8")
    entries = entries.astype(np.uint64).reshape(n_inner, 2)
    lo, hi = (size, len(raw)) if index_location == "start" else (0, len(raw) - size)
    for offset, nbytes in entries.tolist():
        if offset == nbytes == 2**64 - 1:
            continue
        assert lo <= offset and offset + nbytes <= hi, (offset, nbytes, lo, hi)
    return entries


def expected_empty_inner_chunks(data, fill, shard_coords, shard_shape, inner_shape):
    """For each inner chunk of the shard at ``shard_coords`` (C order), whether it
    must be left out of the shard: its elements inside the array (``data``) are
    all, bitwise, the fill value (the shard's overhang counts as fill)."""
    fill_row = as_bytes(np.array(fill, dtype=data.dtype))[0]
    per_shard = [s // c for s, c in zip(shard_shape, inner_shape)]
    out = []
    for pos in itertools.product(*[range(n) for n in per_shard]):
        region = tuple(slice(sc * s + p * c, sc * s + (p + 1) * c)
                       for sc, s, p, c in zip(shard_coords, shard_shape, pos, inner_shape))
        out.append(bool((as_bytes(data[region]) == fill_row).all()))
    return out


def as_bytes(a):
    """The elements of ``a`` as rows of raw bytes: shape ``(a.size, itemsize)``."""
    a = np.ascontiguousarray(a)
    return a.reshape(-1).view(np.uint8).reshape(a.size, a.dtype.itemsize)


def expected_chunk_keys(data, config, prefix):
    """Keys of the chunks of ``data`` that differ (bitwise) from the fill value:
    exactly the chunks zarrsync must store."""
    fill = as_bytes(np.array(config.fill_value, dtype=data.dtype))[0]
    grid = [-(-n // c) for n, c in zip(data.shape, config.chunks)]
    keys = set()
    for coords in itertools.product(*[range(g) for g in grid]):
        region = data[tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, config.chunks))]
        if not (as_bytes(region) == fill).all():
            keys.add(prefix + chunk_key(coords, config.chunk_key_encoding, config.separator))
    return keys


def assert_bitwise_equal(actual, expected):
    """``actual`` is an ndarray with ``expected``'s dtype, shape and exact bits."""
    assert isinstance(actual, np.ndarray), f"expected an ndarray, got {type(actual).__name__}"
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    same = (as_bytes(actual) == as_bytes(expected)).all(axis=1).reshape(expected.shape)
    if not same.all():
        bad = np.argwhere(~same) if same.ndim else [()]
        raise AssertionError(
            f"{int((~same).sum())} of {same.size} elements differ, first at {tuple(bad[0])}:\n"
            f"actual:\n{actual!r}\nexpected:\n{expected!r}")


@st.composite
def chunked_write_cases(draw):
    """``(shape, chunks, dtype, fill_value, writes)``: a small array in small
    chunks and one to three orthogonal write selections of slices (some of
    step 2) and sorted index arrays (``orthogonal_index`` turns them into NumPy's terms)."""
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 24), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, min(n, 6))) for n in shape)
    dtype = np.dtype(draw(st.sampled_from(["uint8", "int16", "float32", "float64"])))
    fill_value = draw(st.sampled_from([0, 1, 7]))
    writes = []
    for _ in range(draw(st.integers(1, 3))):
        sel = []
        for n in shape:
            kind = draw(st.sampled_from(["slice", "slice", "slice", "step", "array"]))
            if kind == "array":
                # Sorted unique indices.
                sel.append(np.array(sorted(draw(st.sets(st.integers(0, n - 1), min_size=1)))))
                continue
            start = draw(st.integers(0, n - 1))
            stop = draw(st.integers(start + 1, n))
            sel.append(slice(start, stop, 2 if kind == "step" else 1))
        writes.append(tuple(sel))
    return shape, chunks, dtype, fill_value, writes


@st.composite
def fill_mixed_values(draw, shape, dtype, fill_value):
    """Values of ``shape`` for a write that are all ``fill_value``, none of it
    or about 70% of it, so that chunks all fill (erased, never stored) lie
    next to chunks that are not; laid out in C order, Fortran order (rows
    not contiguous) or with negative strides along the last axis."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    x = rng.integers(0, 100, shape).astype(dtype)
    kind = draw(st.sampled_from(["fill", "random", "mixed"]))
    if kind == "fill":
        x[...] = fill_value
    elif kind == "mixed":
        x[rng.random(shape) < 0.7] = fill_value
    layout = draw(st.sampled_from(["c", "fortran", "reversed"]))
    if layout == "fortran":
        return np.asfortranarray(x)
    if layout == "reversed":
        return np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    return x
