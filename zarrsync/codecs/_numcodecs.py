"""The ``numcodecs.*`` codecs, as zarr-python 3 writes them.

zarr-python (``zarr.codecs.numcodecs``) stores a numcodecs codec as
``{"name": "numcodecs.<id>", "configuration": {...}}``, the configuration
being the keyword arguments it was given (numcodecs' ``get_config()``
without ``id``), plus what binding to an array fills in (``elementsize``,
``dtype``, ``decode_dtype``). Two adapters cover them all, one per kind:
``NumcodecsBytesToBytes`` (compressors, checksums, shuffle) and
``NumcodecsArrayToArray`` (filters). Each builds its codec through
numcodecs' public registry (``numcodecs.get_codec``) and encodes with it.

Bounded decoding (see ``_base``). Every bytes->bytes codec here declares
``decodes_bounded``:

- ``zlib``, ``bz2``, ``lzma``: the standard library's decompressor objects
  (the very calls numcodecs makes, taken stream by stream) with
  ``max_length`` one byte past the bound; ``lzma`` also caps the
  decoder's memory (``memlimit``) where the format allows.
- ``gzip``: ISA-L member by member, as the ``gzip`` codec reads; written
  with the standard library's ``GzipFile`` as numcodecs does, but with
  mtime 0, so chunks are reproducible.
- ``lz4``: numcodecs' frame starts with its decoded size (4 bytes, little
  endian), checked before numcodecs decodes.
- ``zstd`` as the ``zstd`` codec reads, ``blosc`` as the ``blosc`` codec
  (sizes from the header first).
- checksums (``crc32``, ``crc32c``, ``adler32``, ``fletcher32``,
  ``jenkins_lookup3``) and ``shuffle``: the output is no larger than the
  input, whose size is checked first.

The array->array codecs decode to the chunk's own size, checked after.
zarr-python's ``numcodecs.pcodec`` and ``numcodecs.zfpy`` (array->bytes,
optional packages) are not supported.
"""

import bz2
import gzip
import io
import lzma
import math
import zlib

import numpy as np

from ..dtypes import is_vlen
from ..errors import CodecError, short_repr
from ._base import ArrayToArrayCodec, BytesToBytesCodec
from ._blosc import decode_blosc, max_blosc_size
from ._gzip import _members as _gzip_members
from ._zstd import Zstd

__all__ = ["NumcodecsBytesToBytes", "NumcodecsArrayToArray", "numcodecs_codec",
           "PREFIX", "BYTES_TO_BYTES", "ARRAY_TO_ARRAY"]

PREFIX = "numcodecs."


def _get_codec(codec_id, configuration):
    """numcodecs' codec for ``codec_id`` and ``configuration``; ``CodecError``
    naming the codec if numcodecs refuses the configuration."""
    import numcodecs   # on first use: numcodecs takes a while to import
    try:
        return numcodecs.get_codec({"id": codec_id, **configuration})
    except Exception as e:   # numcodecs raises TypeError, ValueError, KeyError, ...
        raise CodecError(f"codec {PREFIX}{codec_id}: invalid configuration "
                         f"{short_repr(configuration)}: {e}") from None


def _too_big(codec_id, limit):
    return CodecError(f"{PREFIX}{codec_id}: the data decodes to more than the {limit} "
                      f"bytes expected")


# -- bounded decoders: (numcodecs codec, codec id, config, data, limit) -> bytes-like ----

def _zlib_decode(codec, codec_id, config, data, limit):
    # As numcodecs' zlib.decompress(data): one zlib stream, trailing bytes ignored.
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, 0 if limit is None else limit + 1)
    except zlib.error as e:
        raise CodecError(f"{PREFIX}{codec_id}: the data could not be decoded: {e}") from None
    if limit is not None and len(out) > limit:
        raise _too_big(codec_id, limit)
    if not d.eof:
        raise CodecError(f"{PREFIX}{codec_id}: the data is truncated")
    return out


def _streams(codec_id, make, errors, data, limit):
    """Consecutive streams of ``data`` decoded by decompressors from ``make()``,
    as ``bz2.decompress`` and ``lzma.decompress`` read them (bytes after the
    first stream that start no valid stream are ignored), at most ``limit``."""
    parts, produced = [], 0
    view = memoryview(data).cast("B")
    while len(view):
        d = make()
        try:
            out = d.decompress(view, -1 if limit is None else limit - produced + 1)
        except errors as e:
            if parts:
                break
            raise CodecError(f"{PREFIX}{codec_id}: the data could not be decoded: "
                             f"{e}") from None
        produced += len(out)
        if limit is not None and produced > limit:
            raise _too_big(codec_id, limit)
        if not d.eof:
            raise CodecError(f"{PREFIX}{codec_id}: the data is truncated")
        parts.append(out)
        view = memoryview(d.unused_data)
    return b"".join(parts)


def _bz2_decode(codec, codec_id, config, data, limit):
    return _streams(codec_id, bz2.BZ2Decompressor, (OSError, ValueError), data, limit)


#: The least memory the lzma decoder may take (xz's preset 9 needs 65 MiB).
_LZMA_MIN_MEMLIMIT = 96 << 20


def _lzma_decode(codec, codec_id, config, data, limit):
    fmt, filters = codec.format, codec.filters
    # A hostile header may ask for a dictionary far larger than the chunk.
    memlimit = max(_LZMA_MIN_MEMLIMIT, 2 * (limit or 0))
    if fmt == lzma.FORMAT_RAW:
        # No memlimit for raw streams: their filters (dictionary sizes) are checked instead.
        for f in filters or ():
            if isinstance(f, dict) and f.get("dict_size", 0) > memlimit:
                raise CodecError(f"{PREFIX}{codec_id}: a dictionary of {f['dict_size']} "
                                 f"bytes is more than the {memlimit} allowed")

        def make():
            return lzma.LZMADecompressor(fmt, filters=filters)
    else:
        def make():
            return lzma.LZMADecompressor(fmt, memlimit=memlimit)
    return _streams(codec_id, make, (lzma.LZMAError, ValueError), data, limit)


def _gzip_decode(codec, codec_id, config, data, limit):
    return _gzip_members(data, limit)


def _lz4_decode(codec, codec_id, config, data, limit):
    # numcodecs' LZ4 frame: the decoded size (int32, little endian), then an LZ4 block.
    if len(data) < 4:
        raise CodecError(f"{PREFIX}{codec_id}: expected a 4-byte size header, got "
                         f"{len(data)} bytes")
    size = int.from_bytes(memoryview(data)[:4], "little", signed=True)
    if size < 0:
        raise CodecError(f"{PREFIX}{codec_id}: the header states a negative size ({size})")
    if limit is not None and size > limit:
        raise _too_big(codec_id, limit)
    return _numcodecs_decode(codec, codec_id, data)


def _zstd_decode(codec, codec_id, config, data, limit):
    return _ZSTD_READER.decode(data, limit)


def _blosc_decode(codec, codec_id, config, data, limit):
    return decode_blosc(data, limit)


def _checksum_decode(codec, codec_id, config, data, limit):
    n = memoryview(data).nbytes
    if n < 4:
        raise CodecError(f"{PREFIX}{codec_id}: expected at least 4 bytes (the checksum), "
                         f"got {n}")
    if limit is not None and n - 4 > limit:
        raise _too_big(codec_id, limit)
    # Decoded into a buffer of our own: numcodecs' jenkins_lookup3 returns
    # nothing unless given one.
    out = np.empty(n - 4, dtype=np.uint8)
    _numcodecs_decode(codec, codec_id, data, out)
    return out


def _same_size_decode(codec, codec_id, config, data, limit):
    n = memoryview(data).nbytes
    if limit is not None and n > limit:
        raise _too_big(codec_id, limit)
    return _numcodecs_decode(codec, codec_id, data)


def _numcodecs_decode(codec, codec_id, data, out=None):
    try:
        return codec.decode(data, out) if out is not None else codec.decode(data)
    except (RuntimeError, ValueError, TypeError) as e:
        raise CodecError(f"{PREFIX}{codec_id}: the data could not be decoded: {e}") from None


def _deflate_bound(size):
    # Above zlib's deflateBound for any settings, with room for headers.
    return size + (size >> 3) + (size >> 7) + (64 << 10)


def _gzip_encode(codec, data):
    # As numcodecs' GZip.encode, with mtime 0: reproducible bytes.
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=codec.level, mtime=0) as f:
        f.write(memoryview(data).cast("B"))
    return buf.getvalue()


_ZSTD_READER = Zstd()


class _Bytes:
    """What the adapter needs to know of one bytes->bytes codec."""

    def __init__(self, decode, max_encoded_size, encode=None, fixed=None, fill=None):
        self.decode = decode
        self.max_encoded_size = max_encoded_size
        self.encode = encode              # None: numcodecs' encode
        self.fixed = fixed                # size -> encoded size, if fixed
        self.fill = fill                  # (key, dtype -> value) bound from the data type


def _checksum():
    return _Bytes(_checksum_decode, lambda n: n + 4, fixed=lambda n: n + 4)


#: numcodecs ids of the bytes->bytes codecs zarr-python writes as ``numcodecs.<id>``.
BYTES_TO_BYTES = {
    "zlib": _Bytes(_zlib_decode, _deflate_bound),
    "gzip": _Bytes(_gzip_decode, _deflate_bound, encode=_gzip_encode),
    "bz2": _Bytes(_bz2_decode, lambda n: n + (n >> 6) + (64 << 10)),
    "lzma": _Bytes(_lzma_decode, lambda n: n + (n >> 6) + (64 << 10)),
    "lz4": _Bytes(_lz4_decode, lambda n: n + n // 255 + 16 + 4),
    "zstd": _Bytes(_zstd_decode, _ZSTD_READER.max_encoded_size),
    "blosc": _Bytes(_blosc_decode, max_blosc_size),
    "shuffle": _Bytes(_same_size_decode, lambda n: n, fixed=lambda n: n,
                      fill=("elementsize", lambda dtype: dtype.itemsize)),
    "crc32": _checksum(),
    "crc32c": _checksum(),
    "adler32": _checksum(),
    "fletcher32": _checksum(),
    "jenkins_lookup3": _checksum(),
}


def _check_id(codec_id, table, kind):
    if codec_id not in table:
        raise CodecError(f"codec {short_repr(PREFIX + str(codec_id))} is not supported "
                         f"({kind}: zarrsync reads {sorted(table)})")


class _NumcodecsCodec:
    """What both adapters share: the id, the configuration as given, numcodecs' codec."""

    def _setup(self, codec_id, configuration, deferred=None):
        """``deferred``: ``(key, placeholder)`` for a key binding fills in;
        until then the codec is checked with the placeholder."""
        if "id" in configuration:
            raise CodecError(f"codec {PREFIX}{codec_id}: the configuration may not hold "
                             f"an 'id'")
        self.codec_id = codec_id
        self.name = PREFIX + codec_id
        # Kept as given (key order too): it is what zarr-python writes back.
        self.configuration = dict(configuration)
        if deferred is not None and self.configuration.get(deferred[0]) is None:
            _get_codec(codec_id, {**self.configuration, deferred[0]: deferred[1]})
            self.codec = None
        else:
            self.codec = _get_codec(codec_id, self.configuration)

    def to_dict(self):
        return {"name": self.name, "configuration": dict(self.configuration)}

    def v2_config(self):
        # numcodecs' own form, every default spelled out, as zarr-python writes it.
        return self._numcodecs().get_config()

    def _numcodecs(self):
        if self.codec is None:
            raise CodecError(f"codec {self.name} is used before it is bound to an array's data "
                             f"type (its chain's evolve step)")
        return self.codec

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.configuration.items())
        return f"{type(self).__name__}({self.codec_id!r}{', ' if args else ''}{args})"


class NumcodecsBytesToBytes(_NumcodecsCodec, BytesToBytesCodec):
    """A numcodecs bytes->bytes codec, stored as ``numcodecs.<codec_id>``.

    Parameters
    ----------
    codec_id : str
        numcodecs' id: ``"zlib"``, ``"gzip"``, ``"bz2"``, ``"lzma"``,
        ``"lz4"``, ``"zstd"``, ``"blosc"``, ``"shuffle"``, ``"crc32"``,
        ``"crc32c"``, ``"adler32"``, ``"fletcher32"`` or ``"jenkins_lookup3"``.
    **configuration
        numcodecs' arguments for it, such as ``level=1``; stored as given.
        ``shuffle`` without ``elementsize`` takes the data type's item size.

    Notes
    -----
    Decoding is bounded for every one of them (``decodes_bounded``); see
    the module docstring for how.
    """

    decodes_bounded = True

    def __init__(self, codec_id, /, **configuration):
        _check_id(codec_id, BYTES_TO_BYTES, "bytes->bytes")
        self._spec = BYTES_TO_BYTES[codec_id]
        self._setup(codec_id, configuration,
                    (self._spec.fill[0], 1) if self._spec.fill else None)
        self.decodes_into = codec_id == "blosc"

    @classmethod
    def from_config(cls, configuration):
        raise CodecError("build numcodecs codecs with codecs.from_dict or "
                         "NumcodecsBytesToBytes(codec_id, **configuration)")

    def evolve(self, dtype, chunk_shape, fill_value=None):
        fill = self._spec.fill
        if fill is None or fill[0] in self.configuration:
            return self
        # As zarr-python: appended after the given keys.
        return NumcodecsBytesToBytes(self.codec_id, **self.configuration,
                                     **{fill[0]: fill[1](dtype)})

    def encode(self, data):
        codec = self._numcodecs()
        try:
            if self._spec.encode is not None:
                return self._spec.encode(codec, data)
            out = codec.encode(data)
        except Exception as e:   # a configuration numcodecs took but cannot use
            raise CodecError(f"codec {self.name} {short_repr(self.configuration)} could "
                             f"not encode: {e}") from None
        return out.tobytes() if isinstance(out, np.ndarray) else bytes(out)

    def decode(self, data, max_size=None):
        return self._spec.decode(self._numcodecs(), self.codec_id, self.configuration, data,
                                 max_size)

    def decode_into(self, data, out):
        # Only blosc declares ``decodes_into``.
        decode_blosc(data, None, out)
        return memoryview(out).nbytes

    def size_after_encode(self, size):
        return None if self._spec.fixed is None else self._spec.fixed(size)

    def max_encoded_size(self, size):
        return self._spec.max_encoded_size(size)


# -- array->array -------------------------------------------------------------------------

def _native(dtype):
    return np.dtype(dtype).newbyteorder("=")


def _foreign(declared):
    """``declared`` as a dtype if it names a byte order not this machine's, else ``None``."""
    if declared is None:
        return None
    try:
        dt = np.dtype(declared)
    except TypeError:
        return None
    return None if dt.isnative else dt


class _Filter:
    """What the adapter needs to know of one array->array codec: the key
    binding fills in from the data type (and checks it against), the data
    type it encodes to, and the shape."""

    def __init__(self, input_key=None, encoded_dtype=None, shape=None, kinds=None,
                 fillable=True):
        self.input_key = input_key
        self.fillable = fillable    # False: the key is required (zarr-python's delta)
        self.encoded_dtype = encoded_dtype or (lambda config, dtype: dtype)
        self.shape = shape or (lambda shape: tuple(shape))
        self.kinds = kinds


def _astype_or_same(config, dtype):
    return _native(config["astype"]) if config.get("astype") else dtype


#: numcodecs ids of the array->array codecs zarr-python writes as ``numcodecs.<id>``,
#: with what zarr-python's classes for them resolve.
ARRAY_TO_ARRAY = {
    "delta": _Filter("dtype", _astype_or_same, kinds="iuf", fillable=False),
    "fixedscaleoffset": _Filter("dtype", _astype_or_same, kinds="iuf"),
    "quantize": _Filter("dtype", _astype_or_same, kinds="f"),
    "bitround": _Filter(kinds="f"),
    "astype": _Filter("decode_dtype",
                      lambda config, dtype: _native(config["encode_dtype"]), kinds="iufb"),
    "packbits": _Filter(encoded_dtype=lambda config, dtype: np.dtype(np.uint8),
                        shape=lambda shape: (1 + math.ceil(math.prod(shape) / 8),),
                        kinds="b"),
}


class NumcodecsArrayToArray(_NumcodecsCodec, ArrayToArrayCodec):
    """A numcodecs array->array codec (a filter), stored as ``numcodecs.<codec_id>``.

    Parameters
    ----------
    codec_id : str
        numcodecs' id: ``"delta"``, ``"fixedscaleoffset"``, ``"quantize"``,
        ``"bitround"``, ``"astype"`` or ``"packbits"``.
    **configuration
        numcodecs' arguments for it, such as ``dtype="<i4"``; stored as
        given. ``fixedscaleoffset`` and ``quantize`` without ``dtype``, and
        ``astype`` without ``decode_dtype``, take the array's data type.

    Notes
    -----
    A filter may change the data type (``astype``, and ``delta``,
    ``fixedscaleoffset``, ``quantize`` with ``astype``) and the shape
    (``packbits``: bool to ``1 + ceil(n / 8)`` bytes); the codecs after it
    see what it makes. The decoded chunk's size is checked after decoding.
    """

    def __init__(self, codec_id, /, **configuration):
        _check_id(codec_id, ARRAY_TO_ARRAY, "array->array")
        self._spec = ARRAY_TO_ARRAY[codec_id]
        key = self._spec.input_key
        self._setup(codec_id, configuration,
                    (key, "float64") if key and self._spec.fillable else None)
        self._bound = None   # (input dtype, input shape, encoded dtype, encoded shape)
        self._foreign = (None, None)   # the declared (input, output) dtypes not native

    @classmethod
    def from_config(cls, configuration):
        raise CodecError("build numcodecs codecs with codecs.from_dict or "
                         "NumcodecsArrayToArray(codec_id, **configuration)")

    def evolve(self, dtype, chunk_shape, fill_value=None):
        dtype = np.dtype(dtype)
        spec = self._spec
        if is_vlen(dtype) or dtype.kind not in spec.kinds:
            raise CodecError(f"codec {self.name} does not take {dtype} data (expected "
                             f"kinds {spec.kinds!r})")
        config = dict(self.configuration)
        key = spec.input_key
        if key is not None:
            given = config.get(key)
            if given is None and spec.fillable:
                config[key] = str(dtype)   # as zarr-python: appended after the given keys
            elif given is None or _native(given) != dtype:
                raise CodecError(f"codec {self.name}: {key} {short_repr(given)} does not "
                                 f"match the data type it sees ({dtype})")
        # A new object: codecs are shared, and this one is bound to one array.
        codec = NumcodecsArrayToArray(self.codec_id, **config)
        try:
            encoded = spec.encoded_dtype(config, dtype)
        except (TypeError, KeyError) as e:
            raise CodecError(f"codec {self.name}: {e}") from None
        codec._bound = (dtype, tuple(chunk_shape), encoded, spec.shape(chunk_shape))
        # numcodecs views its input as the dtypes the configuration names; a
        # Zarr v2 filter may name a foreign byte order, which the data takes first.
        declared_out = config.get("astype") or config.get("encode_dtype") or config.get(key)
        codec._foreign = (_foreign(config.get(key)), _foreign(declared_out))
        return codec

    def _require_bound(self):
        if self._bound is None:
            raise CodecError(f"codec {self.name} is used before it is bound to an array's data "
                             f"type (its chain's evolve step)")
        return self._bound

    def resolve_shape(self, shape):
        return self._spec.shape(shape)

    def resolve_dtype(self, dtype):
        return self._require_bound()[2]

    def encode(self, array):
        _, _, dtype, shape = self._require_bound()
        if self._foreign[0] is not None:
            array = array.astype(self._foreign[0])
        try:
            out = np.asarray(self._numcodecs().encode(np.ascontiguousarray(array)))
        except Exception as e:   # a configuration numcodecs took but cannot use
            raise CodecError(f"codec {self.name} {short_repr(self.configuration)} could "
                             f"not encode: {e}") from None
        return _as(out, dtype, shape, self.name)

    def decode(self, array):
        dtype, shape, _, _ = self._require_bound()
        if self._foreign[1] is not None:
            array = array.astype(self._foreign[1])
        try:
            out = np.asarray(self._numcodecs().decode(np.ascontiguousarray(array)))
        except (RuntimeError, ValueError, TypeError) as e:
            raise CodecError(f"{self.name}: the data could not be decoded: {e}") from None
        return _as(out, dtype, shape, self.name)


def _as(out, dtype, shape, name):
    """``out`` (what numcodecs made) as ``dtype`` and ``shape``."""
    if out.dtype != dtype:
        if out.dtype.newbyteorder("=") == dtype:
            out = out.astype(dtype)
        elif out.dtype.itemsize == dtype.itemsize and out.dtype.isnative:
            out = out.view(dtype)   # bitround hands back its floats' bits as integers
        else:
            raise CodecError(f"{name}: expected {dtype} data, got {out.dtype}")
    if out.size != math.prod(shape):
        raise CodecError(f"{name}: expected {math.prod(shape)} elements for shape "
                         f"{shape}, got {out.size}")
    return out.reshape(shape)


class _Factory:
    """Builds ``numcodecs.<id>`` codecs from their configuration, for the registry."""

    def __init__(self, cls, codec_id):
        self.cls, self.codec_id, self.name = cls, codec_id, PREFIX + codec_id

    def from_config(self, configuration):
        return self.cls(self.codec_id, **configuration)


def numcodecs_codec(codec_id, /, **configuration):
    """The ``numcodecs.<codec_id>`` codec with ``configuration``, of either kind."""
    if codec_id in ARRAY_TO_ARRAY:
        return NumcodecsArrayToArray(codec_id, **configuration)
    return NumcodecsBytesToBytes(codec_id, **configuration)


def factories():
    """One registry entry per ``numcodecs.<id>`` name."""
    return ([_Factory(NumcodecsBytesToBytes, i) for i in BYTES_TO_BYTES]
            + [_Factory(NumcodecsArrayToArray, i) for i in ARRAY_TO_ARRAY])
