"""Zarr v2 documents (``.zarray``, ``.zgroup``, ``.zattrs``, ``.zmetadata``)
translated to and from the codec chain every array uses.

A v2 array has no codec list, but its fields say the same things:
``order: "F"`` is a ``transpose`` that reverses the axes; the byte order of
``dtype`` is the ``bytes`` codec's endian; ``filters`` are array->array codecs
(the object codecs ``vlen-utf8`` and ``vlen-bytes`` are the array->bytes
codec, and byte filters such as ``shuffle`` come after it); ``compressor`` is
the last bytes->bytes codec. So a v2 array is read and written by the same
pipeline, with the same fast paths, as a v3 array.

Spec: https://zarr-specs.readthedocs.io/en/latest/v2/v2.0.html
"""

import base64
import binascii
import re

import numpy as np

from .codecs import (ArrayToArrayCodec, Blosc, Bytes, BytesToBytesCodec, Gzip,
                     NumcodecsArrayToArray, NumcodecsBytesToBytes, Transpose, VlenBytes,
                     VlenUtf8, Zstd)
from .codecs._bytes import NATIVE_ENDIAN, swap_unit
from .codecs._numcodecs import ARRAY_TO_ARRAY, BYTES_TO_BYTES
from .dtypes import (BYTES_DTYPE, STRING_DTYPE, encode_fill_value, low_complex_name, not_a_time,
                     parse_dtype, parse_fill_value)
from .errors import CodecError, InvalidDataType, ParseError, short_repr

__all__ = ["ZARRAY", "ZGROUP", "ZATTRS", "ZMETADATA", "parse_zarray", "zarray_fields",
           "OBJECT_CODECS"]

ZARRAY, ZGROUP, ZATTRS, ZMETADATA = ".zarray", ".zgroup", ".zattrs", ".zmetadata"

#: The object codecs (first filter of a ``|O`` array) zarrsync reads, and the
#: data type each gives.
OBJECT_CODECS = {"vlen-utf8": STRING_DTYPE, "vlen-bytes": BYTES_DTYPE}
_OTHER_OBJECT_CODECS = ("json2", "msgpack2", "pickle", "vlen-array", "json", "msgpack",
                        "categorize")

_ARRAY_KEYS = ("zarr_format", "shape", "chunks", "dtype", "compressor", "fill_value",
               "order", "filters", "dimension_separator")
_TYPESTR = re.compile(r"[<>|=]?[a-zA-Z][0-9]*(\[[0-9]*[a-zA-Z]+\])?")
_SHUFFLE_NAMES = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle", -1: None}
_ENDIAN = {"<": "little", ">": "big", "=": NATIVE_ENDIAN, "|": None}


# -- data types -----------------------------------------------------------------------

def _leaf_orders(dt):
    """The byte orders (``"little"``/``"big"``) of the parts of ``dt`` that have one."""
    if dt.fields is not None:
        return set().union(*(_leaf_orders(dt.fields[n][0]) for n in dt.names))
    if dt.subdtype is not None or swap_unit(dt) <= 1:
        return set()
    return {_ENDIAN[dt.byteorder]}


def _numpy_dtype(value, where):
    """The NumPy dtype of a v2 ``dtype`` field: a type string such as ``"<f8"``,
    or a list of ``[name, type string]`` fields."""
    if isinstance(value, str):
        if not _TYPESTR.fullmatch(value):
            raise ParseError(f"{where}: dtype {short_repr(value)} is not a NumPy type string "
                             f"such as '<f8'")
        spec = value
    elif isinstance(value, list) and value:
        spec = []
        for field in value:
            if (not isinstance(field, list) or len(field) not in (2, 3)
                    or not isinstance(field[0], str) or not isinstance(field[1], str)
                    or not _TYPESTR.fullmatch(field[1])):
                raise ParseError(f"{where}: dtype field {short_repr(field)} is not "
                                 f"[name, type string]")
            if len(field) == 3:
                raise ParseError(f"{where}: Zarr v2 array: dtype field {field[0]!r} has a "
                                 f"shape (sub-array fields are not supported)")
            spec.append((field[0], field[1]))
    else:
        raise ParseError(f"{where}: dtype must be a type string or a list of fields, got "
                         f"{short_repr(value)}")
    try:
        return np.dtype(spec)
    except (TypeError, ValueError) as e:
        raise ParseError(f"{where}: dtype {short_repr(value)} is not valid: {e}") from None


def parse_v2_dtype(value, where):
    """``(native dtype, endian)`` of a v2 ``dtype`` field; ``|O`` gives ``object``,
    which the object codec resolves. ``endian`` is ``"little"``, ``"big"`` or
    ``None`` (no byte order)."""
    dt = _numpy_dtype(value, where)
    if dt.kind == "O":
        return np.dtype(object), None
    orders = _leaf_orders(dt)
    if len(orders) > 1:
        raise ParseError(f"{where}: Zarr v2 array: dtype {short_repr(value)} mixes byte "
                         f"orders, which is not supported")
    try:
        native = parse_dtype(dt)
    except InvalidDataType as e:
        raise ParseError(f"{where}: Zarr v2 array: dtype {short_repr(value)}: {e}") from None
    return native, (orders.pop() if orders else None)


def v2_dtype(dtype, endian):
    """The v2 ``dtype`` field for ``dtype`` stored in byte order ``endian``
    (``InvalidDataType`` for a type v2 has no type string for)."""
    if dtype.kind in "TO":
        return "|O"
    if low_complex_name(dtype):
        raise InvalidDataType(f"Zarr v2 has no type string for data type "
                              f"{low_complex_name(dtype)}; use Zarr v3")
    if dtype.fields is not None:
        return [[name, v2_dtype(dtype.fields[name][0], endian)] for name in dtype.names]
    if dtype.type.__module__.startswith("ml_dtypes"):
        raise InvalidDataType(f"Zarr v2 has no type string for data type {dtype}; "
                              f"use Zarr v3")
    if swap_unit(dtype) <= 1:
        return "|" + dtype.str[1:]
    return {"little": "<", "big": ">"}[endian or "little"] + dtype.str[1:]


# -- fill values ----------------------------------------------------------------------

def _b64(value, field):
    if not isinstance(value, str):
        raise ParseError(f"{field}: expected a base64 string, got {short_repr(value)}")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ParseError(f"{field}: {short_repr(value)} is not base64") from None


def parse_v2_fill(value, dtype, field):
    """The fill value of a v2 ``fill_value`` field (``None``: null, the type's zero)."""
    if value is None:
        return None
    kind = dtype.kind
    if dtype.fields is not None or (kind in "SV" and dtype.type.__module__ == "numpy"):
        raw = _b64(value, field)
        if kind == "S":
            if len(raw) > dtype.itemsize:
                raise ParseError(f"{field}: {len(raw)} bytes do not fit {dtype}")
            return np.array(raw, dtype=dtype)[()]
        if len(raw) != dtype.itemsize:
            raise ParseError(f"{field}: {len(raw)} bytes given for a {dtype.itemsize}-byte "
                             f"{'struct' if dtype.fields is not None else 'raw'} value")
        return np.frombuffer(raw, dtype=dtype).copy()[0]
    if kind == "T":
        # zarr-python 2 wrote 0 for object arrays; zarr-python 3 reads a number as its text.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ParseError(f"{field}: expected a string, got {short_repr(value)}")
        return value
    if kind == "O":
        return b"" if value == 0 else _b64(value, field)
    if kind == "U":
        if not isinstance(value, str) or len(value) > dtype.itemsize // 4:
            raise ParseError(f"{field}: expected a string of at most {dtype.itemsize // 4} "
                             f"characters, got {short_repr(value)}")
        return np.array(value, dtype=dtype)[()]
    if kind in "Mm" and value == "NaT":
        return not_a_time(dtype)
    return parse_fill_value(value, dtype, field)


def encode_v2_fill(value, dtype):
    """The v2 ``fill_value`` field for fill value ``value`` of ``dtype``."""
    kind = dtype.kind
    if dtype.fields is not None or (kind in "SV" and dtype.type.__module__ == "numpy"):
        raw = np.array(value, dtype=dtype).tobytes()
        return base64.standard_b64encode(raw).decode("ascii")
    if kind == "U":
        return str(value)
    out = encode_fill_value(value, dtype)
    if isinstance(out, str) and out.startswith("0x"):
        return "NaN"   # v2 has no form for a NaN's payload
    if isinstance(out, list):
        return ["NaN" if isinstance(p, str) and p.startswith("0x") else p for p in out]
    return out


# -- codecs ---------------------------------------------------------------------------

def _codec_doc(doc, what, where):
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise ParseError(f"{where}: {what} must be an object with an 'id', got "
                         f"{short_repr(doc)}")
    return doc["id"], {k: v for k, v in doc.items() if k != "id"}


def _bytes_codec(codec_id, config, what, where):
    """The bytes->bytes codec of a v2 compressor (or byte filter)."""
    try:
        if codec_id == "zstd" and set(config) <= {"level", "checksum"}:
            return Zstd(level=config.get("level", 0), checksum=config.get("checksum", False))
        if codec_id == "gzip" and set(config) <= {"level"}:
            return Gzip(level=config.get("level", 5))
        if codec_id == "blosc" and set(config) <= {"cname", "clevel", "shuffle", "blocksize",
                                                    "typesize"}:
            shuffle = config.get("shuffle", 1)
            if not isinstance(shuffle, int) or isinstance(shuffle, bool) \
                    or shuffle not in _SHUFFLE_NAMES:
                raise CodecError(f"blosc shuffle must be -1, 0, 1 or 2, got "
                                 f"{short_repr(shuffle)}")
            return Blosc(cname=config.get("cname", "lz4"), clevel=config.get("clevel", 5),
                         shuffle=_SHUFFLE_NAMES[shuffle], typesize=config.get("typesize"),
                         blocksize=config.get("blocksize", 0))
        if codec_id in BYTES_TO_BYTES:
            return NumcodecsBytesToBytes(codec_id, **config)
    except (CodecError, ValueError, TypeError) as e:
        raise ParseError(f"{where}: {what} {short_repr(codec_id)}: {e}") from None
    raise ParseError(f"{where}: Zarr v2 array: {what} {short_repr(codec_id)} is not supported")


def _declared_endian(codec_id, config, endian):
    """The byte order of what a v2 filter makes, given that of what it sees."""
    if codec_id == "packbits":
        return None
    declared = config.get("astype") or config.get("encode_dtype") or config.get("dtype")
    if declared is None or codec_id in ("bitround",):
        return endian
    try:
        dt = np.dtype(declared)
    except (TypeError, ValueError):
        return endian
    orders = _leaf_orders(dt)
    return orders.pop() if orders else None


def parse_zarray(doc, where):
    """The fields of a ``.zarray`` object for ``ArrayMetadata``: a dict with
    ``shape``, ``chunks``, ``dtype``, ``fill_value`` (``None`` for null),
    ``codecs``, ``separator``; ``ParseError`` names a bad field, and what
    zarrsync cannot read is named as a Zarr v2 feature."""
    if doc.get("zarr_format") != 2:
        raise ParseError(f"{where}: zarr_format must be 2, got "
                         f"{short_repr(doc.get('zarr_format'))}")
    v3_fields = sorted(set(doc) & {"node_type", "data_type", "chunk_grid", "codecs"})
    if v3_fields:
        raise ParseError(f"{where}: zarr_format is 2, but the document has the Zarr v3 "
                         f"fields {v3_fields}")
    for key in ("shape", "chunks", "dtype", "compressor", "fill_value", "order", "filters"):
        if key not in doc:
            raise ParseError(f"{where}: missing required field {key!r}")
    unknown = set(doc) - set(_ARRAY_KEYS)
    if unknown:
        raise ParseError(f"{where}: unknown fields {short_repr(sorted(unknown))}; a .zarray holds "
                         f"only {', '.join(_ARRAY_KEYS)}")
    order = doc["order"]
    if order not in ("C", "F"):
        raise ParseError(f"{where}: order must be 'C' or 'F', got {short_repr(order)}")
    separator = doc.get("dimension_separator", ".")
    if separator is None:
        separator = "."
    if separator not in (".", "/"):
        raise ParseError(f"{where}: dimension_separator must be '.' or '/', got "
                         f"{short_repr(separator)}")
    shape, chunks = doc["shape"], doc["chunks"]
    ndim = len(shape) if isinstance(shape, list) else 0

    dtype, endian = parse_v2_dtype(doc["dtype"], f"{where}: dtype")
    filters = doc["filters"]
    if filters is None:
        filters = []
    if not isinstance(filters, list):
        raise ParseError(f"{where}: filters must be a list or null, got {short_repr(filters)}")
    filters = [_codec_doc(f, "filter", where) for f in filters]

    array_array, array_bytes, bytes_bytes = [], None, []
    if order == "F" and ndim > 1:
        array_array.append(Transpose(tuple(reversed(range(ndim)))))
    if dtype.kind == "O":
        if not filters or filters[0][0] not in OBJECT_CODECS:
            named = filters[0][0] if filters else None
            if named in _OTHER_OBJECT_CODECS:
                raise ParseError(f"{where}: Zarr v2 array: object codec {named!r} is not "
                                 f"supported (zarrsync reads vlen-utf8 and vlen-bytes)")
            raise ParseError(f"{where}: Zarr v2 array of dtype '|O' needs an object codec "
                             f"(vlen-utf8 or vlen-bytes) as its first filter")
        codec_id, config = filters.pop(0)
        if config:
            raise ParseError(f"{where}: filter {codec_id!r} takes no configuration, got "
                             f"{short_repr(config)}")
        dtype = OBJECT_CODECS[codec_id]
        array_bytes = VlenUtf8() if codec_id == "vlen-utf8" else VlenBytes()
    for codec_id, config in filters:
        if codec_id in _OTHER_OBJECT_CODECS or codec_id in OBJECT_CODECS:
            raise ParseError(f"{where}: Zarr v2 array: object codec {codec_id!r} is not "
                             f"supported on dtype {short_repr(doc['dtype'])}")
        if codec_id in ARRAY_TO_ARRAY and not bytes_bytes and array_bytes is None:
            try:
                array_array.append(NumcodecsArrayToArray(codec_id, **config))
            except (CodecError, ValueError, TypeError) as e:
                raise ParseError(f"{where}: filter {codec_id!r}: {e}") from None
            endian = _declared_endian(codec_id, config, endian)
        elif codec_id in ARRAY_TO_ARRAY:
            raise ParseError(f"{where}: Zarr v2 array: filter {codec_id!r} after a byte "
                             f"filter is not supported")
        else:
            bytes_bytes.append(_bytes_codec(codec_id, config, "filter", where))
    if array_bytes is None:
        array_bytes = Bytes(endian)
    compressor = doc["compressor"]
    if compressor is not None:
        codec_id, config = _codec_doc(compressor, "compressor", where)
        bytes_bytes.append(_bytes_codec(codec_id, config, "compressor", where))
    return {"shape": shape, "chunks": chunks, "dtype": dtype,
            "codecs": [*array_array, array_bytes, *bytes_bytes],
            "fill": doc["fill_value"], "separator": separator}


def zarray_fields(codecs, ndim):
    """``(order, filters, compressor, endian)`` of a v2 ``.zarray`` for an array's
    codec chain (bound to its data type): ``endian`` is the byte order of its
    ``dtype`` field. ``CodecError`` if v2 cannot express the chain."""
    order = "C"
    rest = list(codecs)
    if rest and type(rest[0]) is Transpose:
        axes = tuple(range(ndim))
        if rest[0].order == tuple(reversed(axes)):
            order = "F" if ndim > 1 else "C"
        elif rest[0].order != axes:
            raise CodecError(f"Zarr v2 cannot express transpose order {list(rest[0].order)}: "
                             f"its order is 'C' or 'F' (the axes reversed)")
        rest.pop(0)
    filters, object_codec, bytes_bytes, endian = [], [], [], None
    for codec in rest:
        if isinstance(codec, Transpose):
            raise CodecError("Zarr v2 can express a transpose only as the first codec "
                             "(order 'F')")
        if isinstance(codec, Bytes):
            endian = codec.endian
        elif isinstance(codec, ArrayToArrayCodec):
            filters.append(codec.v2_config())
        elif isinstance(codec, BytesToBytesCodec):
            bytes_bytes.append(codec.v2_config())
        else:   # another array->bytes codec: an object codec, first of the filters
            object_codec.append(codec.v2_config())
    # v2 stores what the last filter makes as it lies in memory.
    made = endian
    for f in filters:
        made = _declared_endian(f["id"], f, made)
    if endian is not None and made is not None and made != endian:
        raise CodecError(f"Zarr v2 stores the filters' output in its own byte order "
                         f"({made}); the bytes codec asks for {endian}")
    # The data type's own byte order is the one the first filter takes, if it says.
    declared = next((_declared_endian("", {"dtype": f.get("dtype", f.get("decode_dtype"))},
                                      None) for f in filters[:1]
                     if f.get("dtype", f.get("decode_dtype"))), None)
    filters = object_codec + filters + bytes_bytes[:-1]
    return order, filters or None, bytes_bytes[-1] if bytes_bytes else None, declared or endian
