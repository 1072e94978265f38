"""Zarr v3 ``zarr.json`` documents for arrays and groups.

Parsing validates every field and raises ``ParseError`` naming it; writing
produces the same JSON as zarr-python for the same array (key order, fill
value encodings, codec forms), so the documents interoperate.
Spec: https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#metadata
"""

import base64
import binascii
import json
import math

import numpy as np

from . import codecs as codecs_mod
from .codecs._vlen import BYTES_DTYPE, STRING_DTYPE
from .errors import CodecError, InvalidDataType, ParseError

__all__ = ["ArrayMetadata", "GroupMetadata", "parse_dtype", "parse_fill_value",
           "encode_fill_value", "node_type_of"]

# Zarr v3 core data types -> NumPy (native byte order; the bytes codec sets the order on disk).
DATA_TYPES = {
    "bool": np.dtype("bool"),
    "int8": np.dtype("int8"),
    "int16": np.dtype("int16"),
    "int32": np.dtype("int32"),
    "int64": np.dtype("int64"),
    "uint8": np.dtype("uint8"),
    "uint16": np.dtype("uint16"),
    "uint32": np.dtype("uint32"),
    "uint64": np.dtype("uint64"),
    "float16": np.dtype("float16"),
    "float32": np.dtype("float32"),
    "float64": np.dtype("float64"),
    "complex64": np.dtype("complex64"),
    "complex128": np.dtype("complex128"),
    # Variable-length types (zarr-extensions data-types/string and data-types/bytes):
    # NumPy StringDType, and object arrays of bytes.
    "string": STRING_DTYPE,
    "bytes": BYTES_DTYPE,
}
# Where the name written to zarr.json differs from the DATA_TYPES key: zarr-python
# 3.1 writes "variable_length_bytes" for bytes (and reads "bytes" too), so the
# documents stay identical to its own.
_WRITTEN_NAMES = {"bytes": "variable_length_bytes"}
# Other names accepted for a data type, when reading and from users.
_ALIASES = {"variable_length_bytes": "bytes"}
_NAME_OF = {dt: _WRITTEN_NAMES.get(name, name) for name, dt in DATA_TYPES.items()}

_ARRAY_KEYS = ("zarr_format", "node_type", "shape", "data_type", "chunk_grid",
               "chunk_key_encoding", "fill_value", "codecs", "attributes",
               "dimension_names", "storage_transformers")
_GROUP_KEYS = ("zarr_format", "node_type", "attributes")
# Keys zarr-python writes on groups that older documents may hold as null.
_TOLERATED_GROUP_KEYS = ("consolidated_metadata",)


def parse_dtype(dtype, object_as_bytes=False):
    """The native NumPy dtype for a Zarr data type name or anything ``numpy.dtype`` takes.

    Raises ``InvalidDataType`` for types outside the Zarr v3 core set and the
    variable-length ``string`` (``"string"``, ``str``, any ``StringDType``) and
    ``bytes`` (``"bytes"``, ``bytes``). NumPy's ``object`` is ambiguous (it
    holds either), as for zarr-python, unless ``object_as_bytes``.
    """
    if isinstance(dtype, str) and _ALIASES.get(dtype, dtype) in DATA_TYPES:
        return DATA_TYPES[_ALIASES.get(dtype, dtype)]
    if dtype is str or isinstance(dtype, np.dtypes.StringDType):
        return STRING_DTYPE
    if dtype is bytes:
        return BYTES_DTYPE
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise InvalidDataType(f"not a data type: {dtype!r}") from e
    if dt.kind in "US":
        raise InvalidDataType(f"fixed-width data type {dt} is not supported; use "
                              f"{'string' if dt.kind == 'U' else 'bytes'} (variable length)")
    if dt.kind == "O":
        if object_as_bytes:
            return BYTES_DTYPE
        raise InvalidDataType("data type object is ambiguous; use 'bytes' (object arrays "
                              "of bytes) or 'string'")
    native = dt.newbyteorder("=") if dt.byteorder not in ("=", "|") else dt
    for supported in DATA_TYPES.values():
        if native == supported:
            return supported
    raise InvalidDataType(
        f"data type {dt} is not supported; use one of {sorted(DATA_TYPES)}")


def dtype_name(dtype):
    return _NAME_OF[dtype]


# -- fill values ------------------------------------------------------------------

def _uint_view(dtype):
    return np.dtype(f"u{dtype.itemsize}")


def _float_from_json(value, dtype, field):
    """One float component: a number, "NaN", "Infinity", "-Infinity" or "0x..." raw bits."""
    if isinstance(value, bool):
        raise ParseError(f"{field}: expected a number for {dtype.name}, got {value!r}")
    if isinstance(value, (int, float)):
        return np.array(value, dtype=dtype)
    if isinstance(value, str):
        special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        if value in special:
            return np.array(special[value], dtype=dtype)
        if value.startswith("0x"):
            digits = value[2:]
            if len(digits) != 2 * dtype.itemsize:
                raise ParseError(f"{field}: {value!r} must have {2 * dtype.itemsize} hex "
                                 f"digits for {dtype.name}")
            try:
                bits = int(digits, 16)
            except ValueError:
                raise ParseError(f"{field}: {value!r} is not hexadecimal") from None
            return np.array(bits, dtype=_uint_view(dtype)).view(dtype)
    raise ParseError(f"{field}: {value!r} is not a valid {dtype.name} fill value")


def _vlen_fill_from_json(value, dtype, field):
    """``string``: a JSON string. ``bytes``: base64 text, as zarr-python writes it
    (a list of byte values 0..255 is read too)."""
    if dtype.kind == "T":
        if not isinstance(value, str):
            raise ParseError(f"{field}: expected a string for the string data type, "
                             f"got {value!r}")
        return value
    if isinstance(value, str):
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise ParseError(f"{field}: {value!r} is not base64 (the bytes data type's "
                             f"fill value encoding)") from None
    if isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value):
        return bytes(value)
    raise ParseError(f"{field}: expected base64 text for the bytes data type, got {value!r}")


def parse_fill_value(value, dtype, field="fill_value"):
    """A NumPy scalar of ``dtype`` from a ``fill_value`` JSON value (spec encodings).

    For ``string`` and ``bytes`` the result is a ``str`` or ``bytes``.
    """
    kind = dtype.kind
    if kind in "TO":
        return _vlen_fill_from_json(value, dtype, field)
    if kind == "b":
        if not isinstance(value, bool):
            raise ParseError(f"{field}: expected true or false for bool, got {value!r}")
        return np.bool_(value)
    if kind in "iu":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParseError(f"{field}: expected an integer for {dtype.name}, got {value!r}")
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise ParseError(f"{field}: {value} is out of range for {dtype.name}")
        return dtype.type(value)
    if kind == "f":
        return _float_from_json(value, dtype, field)[()]
    if kind == "c":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ParseError(f"{field}: expected [real, imag] for {dtype.name}, got {value!r}")
        part = np.dtype(f"f{dtype.itemsize // 2}")
        re = _float_from_json(value[0], part, field)
        im = _float_from_json(value[1], part, field)
        out = np.empty((), dtype=dtype)
        out.real = re
        out.imag = im
        return out[()]
    raise ParseError(f"{field}: unsupported data type {dtype}")  # pragma: no cover


def _float_to_json(x, dtype):
    x = dtype.type(x)
    if math.isnan(x):
        canonical = np.array(np.nan, dtype=dtype).view(_uint_view(dtype))
        bits = np.array(x, dtype=dtype).view(_uint_view(dtype))
        if bits == canonical:
            return "NaN"
        # A NaN with a payload or sign: keep its exact bits.
        return "0x" + format(int(bits), f"0{2 * dtype.itemsize}x")
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return float(x)


def encode_fill_value(value, dtype):
    """The JSON value zarr-python writes for fill value ``value`` of ``dtype``."""
    kind = dtype.kind
    if kind == "T":
        return str(value)
    if kind == "O":
        return base64.standard_b64encode(bytes(value)).decode("ascii")
    if kind == "b":
        return bool(value)
    if kind in "iu":
        return int(value)
    if kind == "f":
        return _float_to_json(value, dtype)
    if kind == "c":
        part = np.dtype(f"f{dtype.itemsize // 2}")
        value = dtype.type(value)
        return [_float_to_json(value.real, part), _float_to_json(value.imag, part)]
    raise InvalidDataType(f"unsupported data type {dtype}")  # pragma: no cover


def coerce_fill_value(value, dtype):
    """A user-given fill value (Python, NumPy or JSON form) as a scalar of ``dtype``.

    ``None`` means the data type's zero (``""`` and ``b""`` for ``string`` and
    ``bytes``, whose fill values are a ``str`` and a ``bytes``). Raises
    ``InvalidDataType`` when the value does not fit the type (e.g. 1.5 for an
    integer array, a ``str`` for a ``bytes`` array).
    """
    if dtype.kind in "TO":
        want = str if dtype.kind == "T" else (bytes, bytearray)
        if value is None:
            return "" if dtype.kind == "T" else b""
        if not isinstance(value, want):
            raise InvalidDataType(f"fill value {value!r} does not fit data type "
                                  f"{dtype_name(dtype)} (expected "
                                  f"{'a str' if dtype.kind == 'T' else 'bytes'})")
        return str(value) if dtype.kind == "T" else bytes(value)
    if value is None:
        return dtype.type(0)
    if isinstance(value, (str, list, tuple)):
        try:
            return parse_fill_value(list(value) if isinstance(value, tuple) else value, dtype)
        except ParseError as e:
            raise InvalidDataType(str(e)) from None
    if isinstance(value, np.generic):
        if value.dtype == dtype:
            # Keep the exact bits: a round trip through a Python float would
            # quiet a signalling NaN of float32/complex64.
            return np.array(value, dtype=dtype)[()]
        value = value.item()
    kind = dtype.kind
    ok = {
        "b": (bool,),
        "i": (int,), "u": (int,),
        "f": (int, float),
        "c": (int, float, complex),
    }[kind]
    if not isinstance(value, ok) or (kind != "b" and isinstance(value, bool)):
        raise InvalidDataType(f"fill value {value!r} does not fit data type {dtype.name}")
    if kind in "iu":
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise InvalidDataType(f"fill value {value} is out of range for {dtype.name}")
    return np.array(value, dtype=dtype)[()]


# -- helpers ------------------------------------------------------------------------

def _require(doc, key, where):
    if key not in doc:
        raise ParseError(f"{where}: missing required field {key!r}")
    return doc[key]


def _int_list(value, field, minimum):
    if not isinstance(value, (list, tuple)):
        raise ParseError(f"{field}: expected a list of integers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
            raise ParseError(f"{field}: expected integers >= {minimum}, got {list(value)!r}")
        out.append(int(v))
    return tuple(out)


def _check_header(doc, node_type, where):
    if _require(doc, "zarr_format", where) != 3:
        raise ParseError(f"{where}: zarr_format must be 3, got {doc['zarr_format']!r}")
    if _require(doc, "node_type", where) != node_type:
        raise ParseError(f"{where}: node_type must be {node_type!r}, got {doc['node_type']!r}")


def _check_extra(doc, known, where, tolerated=()):
    """Unknown fields are allowed only as objects with ``"must_understand": false``."""
    extra = {}
    for key, value in doc.items():
        if key in known:
            continue
        if key in tolerated or (isinstance(value, dict) and value.get("must_understand") is False):
            extra[key] = value
        else:
            raise ParseError(f"{where}: unknown field {key!r} (not marked must_understand: false)")
    return extra


def _check_attributes(attributes, where):
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise ParseError(f"{where}: attributes must be a JSON object, got {type(attributes).__name__}")
    try:
        json.dumps(attributes, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise ParseError(f"{where}: attributes are not JSON-serialisable: {e}") from None
    return attributes


def _load_json(text, where):
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ParseError(f"{where}: not UTF-8: {e}") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ParseError(f"{where}: not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ParseError(f"{where}: a zarr.json document must be a JSON object")
    return doc


def _dump_json(doc):
    # zarr-python's form: 2-space indent, ASCII escapes.
    return json.dumps(doc, indent=2)


def node_type_of(text, where="zarr.json"):
    """``"array"`` or ``"group"`` from a ``zarr.json`` document; ``ParseError`` otherwise."""
    doc = _load_json(text, where)
    if doc.get("zarr_format") != 3:
        raise ParseError(f"{where}: zarr_format must be 3, got {doc.get('zarr_format')!r}")
    node_type = doc.get("node_type")
    if node_type not in ("array", "group"):
        raise ParseError(f"{where}: node_type must be 'array' or 'group', got {node_type!r}")
    return node_type


# -- documents --------------------------------------------------------------------

class GroupMetadata:
    """The ``zarr.json`` of a group: its attributes (plus tolerated extensions)."""

    def __init__(self, attributes=None, extra=None):
        self.attributes = dict(_check_attributes(attributes, "group"))
        self.extra = dict(extra or {})

    def to_dict(self):
        doc = {"attributes": self.attributes, "zarr_format": 3, "node_type": "group"}
        doc.update(self.extra)
        return doc

    def to_json(self):
        return _dump_json(self.to_dict())

    @classmethod
    def from_dict(cls, doc, where="zarr.json"):
        _check_header(doc, "group", where)
        extra = _check_extra(doc, _GROUP_KEYS, where, _TOLERATED_GROUP_KEYS)
        return cls(_check_attributes(doc.get("attributes"), where), extra)

    @classmethod
    def from_json(cls, text, where="zarr.json"):
        return cls.from_dict(_load_json(text, where), where)

    def __eq__(self, other):
        return isinstance(other, GroupMetadata) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"GroupMetadata(attributes={self.attributes!r})"


class ArrayMetadata:
    """The ``zarr.json`` of an array.

    Attributes
    ----------
    shape, chunks : tuple of int
    dtype : numpy.dtype
    fill_value : numpy scalar of ``dtype``
    codecs : tuple of Codec
    attributes : dict
    dimension_names : tuple of (str or None), or None
    chunk_key_encoding : {"default", "v2"}
    separator : {"/", "."}
    """

    def __init__(self, shape, chunks, dtype, fill_value=None, codecs=None,
                 attributes=None, dimension_names=None, chunk_key_encoding="default",
                 separator=None, extra=None):
        self.shape = _int_list(shape, "shape", 0)
        self.chunks = _int_list(chunks, "chunk_grid.configuration.chunk_shape", 1)
        if len(self.chunks) != len(self.shape):
            raise ParseError(f"chunk_grid.configuration.chunk_shape: rank {len(self.chunks)} "
                             f"differs from the rank {len(self.shape)} of shape")
        self.dtype = parse_dtype(dtype)
        self.fill_value = coerce_fill_value(fill_value, self.dtype)
        if codecs is None:
            codecs = codecs_mod.default_codecs(self.dtype)
        self.chain = codecs_mod.CodecChain(codecs_mod.parse_codecs(codecs), self.dtype,
                                           self.chunks, self.fill_value)
        self.codecs = self.chain.codecs
        self.attributes = dict(_check_attributes(attributes, "array"))
        if dimension_names is not None:
            if (not isinstance(dimension_names, (list, tuple))
                    or len(dimension_names) != len(self.shape)
                    or not all(n is None or isinstance(n, str) for n in dimension_names)):
                raise ParseError(f"dimension_names: expected {len(self.shape)} strings or "
                                 f"nulls, got {dimension_names!r}")
            dimension_names = tuple(dimension_names)
        self.dimension_names = dimension_names
        if chunk_key_encoding not in ("default", "v2"):
            raise ParseError(f"chunk_key_encoding: name must be 'default' or 'v2', "
                             f"got {chunk_key_encoding!r}")
        self.chunk_key_encoding = chunk_key_encoding
        if separator is None:
            separator = "/" if chunk_key_encoding == "default" else "."
        if separator not in ("/", "."):
            raise ParseError(f"chunk_key_encoding: separator must be '/' or '.', "
                             f"got {separator!r}")
        self.separator = separator
        self.extra = dict(extra or {})

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def data_type(self):
        """The Zarr data type name, such as ``"float32"``."""
        return dtype_name(self.dtype)

    def with_shape(self, shape):
        """A copy of this metadata with another shape."""
        new = object.__new__(ArrayMetadata)
        new.__dict__.update(self.__dict__)
        new.shape = tuple(int(s) for s in shape)
        return new

    def to_dict(self):
        doc = {
            "shape": list(self.shape),
            "data_type": self.data_type,
            "chunk_grid": {"name": "regular",
                           "configuration": {"chunk_shape": list(self.chunks)}},
            "chunk_key_encoding": {"name": self.chunk_key_encoding,
                                   "configuration": {"separator": self.separator}},
            "fill_value": encode_fill_value(self.fill_value, self.dtype),
            "codecs": [c.to_dict() for c in self.codecs],
            "attributes": self.attributes,
        }
        if self.dimension_names is not None:
            doc["dimension_names"] = list(self.dimension_names)
        doc["zarr_format"] = 3
        doc["node_type"] = "array"
        doc["storage_transformers"] = []
        doc.update(self.extra)
        return doc

    def to_json(self):
        return _dump_json(self.to_dict())

    @classmethod
    def from_dict(cls, doc, where="zarr.json"):
        """Validate a parsed ``zarr.json`` object; ``ParseError`` names the bad field."""
        _check_header(doc, "array", where)
        extra = _check_extra(doc, _ARRAY_KEYS, where)
        shape = _int_list(_require(doc, "shape", where), f"{where}: shape", 0)

        data_type = _require(doc, "data_type", where)
        if isinstance(data_type, dict) and set(data_type) <= {"name", "configuration"} \
                and not data_type.get("configuration"):
            data_type = data_type.get("name")  # the object form, e.g. {"name": "string"}
        if not isinstance(data_type, str) or _ALIASES.get(data_type, data_type) not in DATA_TYPES:
            raise ParseError(f"{where}: data_type {data_type!r} is not supported")
        data_type = _ALIASES.get(data_type, data_type)
        dtype = DATA_TYPES[data_type]

        grid = _require(doc, "chunk_grid", where)
        if not isinstance(grid, dict) or grid.get("name") != "regular":
            raise ParseError(f"{where}: chunk_grid must be {{'name': 'regular', ...}}, "
                             f"got {grid!r}")
        config = grid.get("configuration")
        if not isinstance(config, dict) or "chunk_shape" not in config:
            raise ParseError(f"{where}: chunk_grid.configuration.chunk_shape is missing")
        chunks = _int_list(config["chunk_shape"],
                           f"{where}: chunk_grid.configuration.chunk_shape", 1)
        if len(chunks) != len(shape):
            raise ParseError(f"{where}: chunk_grid.configuration.chunk_shape has rank "
                             f"{len(chunks)}, shape has rank {len(shape)}")

        encoding = _require(doc, "chunk_key_encoding", where)
        if isinstance(encoding, str):
            encoding = {"name": encoding}
        if not isinstance(encoding, dict) or encoding.get("name") not in ("default", "v2"):
            raise ParseError(f"{where}: chunk_key_encoding {encoding!r} is not supported")
        enc_config = encoding.get("configuration") or {}
        if not isinstance(enc_config, dict):
            raise ParseError(f"{where}: chunk_key_encoding.configuration must be an object")
        separator = enc_config.get("separator")
        if separator is not None and separator not in ("/", "."):
            raise ParseError(f"{where}: chunk_key_encoding.configuration.separator must be "
                             f"'/' or '.', got {separator!r}")

        fill_value = parse_fill_value(_require(doc, "fill_value", where), dtype,
                                      f"{where}: fill_value")

        codec_docs = _require(doc, "codecs", where)
        if not isinstance(codec_docs, list) or not codec_docs:
            raise ParseError(f"{where}: codecs must be a non-empty list")

        transformers = doc.get("storage_transformers", [])
        if transformers != []:
            raise ParseError(f"{where}: storage_transformers must be empty, got {transformers!r}")

        attributes = _check_attributes(doc.get("attributes"), where)
        try:
            return cls(shape, chunks, data_type, fill_value, codec_docs, attributes,
                       doc.get("dimension_names"), encoding["name"], separator, extra)
        except CodecError as e:
            raise ParseError(f"{where}: codecs: {e}") from e
        except ParseError as e:
            raise ParseError(f"{where}: {e}") from e

    @classmethod
    def from_json(cls, text, where="zarr.json"):
        return cls.from_dict(_load_json(text, where), where)

    def __eq__(self, other):
        return isinstance(other, ArrayMetadata) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return (f"ArrayMetadata(shape={self.shape}, chunks={self.chunks}, "
                f"dtype={self.data_type}, codecs={list(self.codecs)})")
