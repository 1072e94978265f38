"""Zarr data types as NumPy dtypes, and their fill values.

Spec: https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#data-types
The core types map to NumPy dtypes in this machine's byte order (the
``bytes`` codec sets the order on disk). ``string`` is NumPy's
``StringDType`` and ``bytes`` an object array of ``bytes``: their elements
are references, not raw bytes, so they are compared and copied by value
(``fill_array``, ``new_filled``, ``all_fill``), and NumPy's fixed-width
types are kept out of the way (a ``str`` or ``bytes`` scalar turned into one
drops trailing NULs).

Extension types (https://github.com/zarr-developers/zarr-extensions/tree/main/data-types)
are written as zarr-python 3.4 writes them: ``numpy.datetime64`` and
``numpy.timedelta64`` (NumPy ``M8``/``m8``), ``fixed_length_utf32`` (``U``),
``null_terminated_bytes`` (``S``), ``raw_bytes`` (``V``; the spec's ``r*``
names are read too), ``struct`` (structured dtypes, packed; the legacy
``structured`` is read too), and the low-precision types of ml_dtypes
(``bfloat16``, ``float8_*``, ``float6_*``, ``float4_e2m1fn``, ``int2``,
``int4``, ``uint2``, ``uint4``), stored one element per byte or word.
Their complex types (``complex_bfloat16``, ``complex_float16``,
``complex_float8_*``, ...; zarr-extensions) have no NumPy type: they are a
struct of ``real`` and ``imag`` fields of the part type, tagged with the
name in the dtype's metadata (``low_complex_name``). ``complex_float32`` and
``complex_float64`` are read as ``complex64`` and ``complex128``.
"""

import base64
import binascii
import math
import re

import ml_dtypes
import numpy as np

from ._kernels import transform, vlen as vlen_kernels
from .errors import InvalidDataType, ParseError, short_repr

__all__ = ["DATA_TYPES", "STRING_DTYPE", "BYTES_DTYPE", "parse_dtype", "dtype_name",
           "data_type_of", "is_vlen", "parse_fill_value", "encode_fill_value",
           "coerce_fill_value", "fill_array", "fill_bytes", "new_filled", "all_fill",
           "coerce_vlen", "coerce_value"]

# -- data types ---------------------------------------------------------------

#: NumPy's variable-width string type: the ``string`` data type in memory.
STRING_DTYPE = np.dtypes.StringDType()
#: Object arrays of ``bytes``: the ``bytes`` data type in memory.
BYTES_DTYPE = np.dtype(object)


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
# Low-precision types of zarr-extensions and tensorstore (float8_e4m3fn), via ml_dtypes.
_ML_NAMES = ("bfloat16", "float8_e3m4", "float8_e4m3", "float8_e4m3b11fnuz", "float8_e4m3fn",
             "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu",
             "float6_e2m3fn", "float6_e3m2fn", "float4_e2m1fn", "int2", "int4", "uint2", "uint4")
ML_DTYPES = {name: np.dtype(getattr(ml_dtypes, name)) for name in _ML_NAMES}
DATA_TYPES.update(ML_DTYPES)
_ML_INTS = frozenset(("int2", "int4", "uint2", "uint4"))
# complex_float32/64 are complex64/128 under their zarr-extensions names.
_ALIASES.update({"complex_float32": "complex64", "complex_float64": "complex128"})
_NAME_OF = {dt: _WRITTEN_NAMES.get(name, name) for name, dt in DATA_TYPES.items()}

#: Where a complex type of a low-precision float keeps its name (dtype metadata).
_COMPLEX_TAG = "zarr_data_type"


def _low_complex(part):
    return np.dtype([("real", DATA_TYPES[part]), ("imag", DATA_TYPES[part])],
                    metadata={_COMPLEX_TAG: "complex_" + part})


#: zarr-extensions' complex types of the low-precision floats, as tagged structs.
LOW_COMPLEX = {"complex_" + part: _low_complex(part)
               for part in ("float16", *(n for n in _ML_NAMES if n not in _ML_INTS))}


def low_complex_name(dtype):
    """The name of a complex type of a low-precision float (``"complex_bfloat16"``),
    or ``None`` for any other dtype."""
    meta = dtype.metadata
    return meta.get(_COMPLEX_TAG) if meta and dtype.fields is not None else None

# Extension types that need a configuration, and their configuration fields.
_TIME_NAMES = {"numpy.datetime64": "M", "numpy.timedelta64": "m"}
_TIME_UNITS = ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "\u03bcs", "ns", "ps", "fs",
               "as", "generic")
_LENGTH_NAMES = {"fixed_length_utf32": "U", "null_terminated_bytes": "S", "raw_bytes": "V"}
_CONFIGURED = ("numpy.datetime64", "numpy.timedelta64", "fixed_length_utf32",
               "null_terminated_bytes", "raw_bytes", "struct", "structured")
#: The largest element of a fixed-width type, in bytes: a document's data type alone
#: cannot make a reader allocate more than this per value.
MAX_ITEMSIZE = 1 << 24
_RAW_BITS = re.compile(r"r([1-9][0-9]{0,10})")


def _family(dtype):
    """What a dtype's values are: "bool", "int", "float", "complex", "lowcomplex",
    "vlen", "time", "utf32", "ntbytes", "raw" or "struct" (NumPy's ``kind``
    mislabels ml_dtypes)."""
    if dtype.fields is not None:
        return "lowcomplex" if low_complex_name(dtype) else "struct"
    ml = _NAME_OF.get(dtype) if dtype.type.__module__.startswith("ml_dtypes") else None
    if ml is not None:
        return "int" if ml in _ML_INTS else "float"
    return {"b": "bool", "i": "int", "u": "int", "f": "float", "c": "complex", "T": "vlen",
            "O": "vlen", "M": "time", "m": "time", "U": "utf32", "S": "ntbytes",
            "V": "raw"}.get(dtype.kind, "other")


def _iinfo(dtype):
    return ml_dtypes.iinfo(dtype) if dtype.kind == "V" else np.iinfo(dtype)


def parse_dtype(dtype, object_as_bytes=False):
    """The native NumPy dtype for a Zarr data type (a name, or the ``{"name": ...,
    "configuration": ...}`` object) or anything ``numpy.dtype`` takes.

    Raises ``InvalidDataType`` for types outside the core set, the extension
    types in this module's docstring and the variable-length ``string``
    (``"string"``, ``str``, any ``StringDType``) and ``bytes`` (``"bytes"``,
    ``bytes``). NumPy's ``object`` is ambiguous (it holds either), as for
    zarr-python, unless ``object_as_bytes``.
    """
    if isinstance(dtype, str) and _ALIASES.get(dtype, dtype) in DATA_TYPES:
        return DATA_TYPES[_ALIASES.get(dtype, dtype)]
    if isinstance(dtype, str) and dtype in LOW_COMPLEX:
        return LOW_COMPLEX[dtype]
    if isinstance(dtype, dict) or (isinstance(dtype, str) and (
            dtype in _CONFIGURED or _RAW_BITS.fullmatch(dtype))):
        try:
            return _from_json(dtype, "data_type")
        except ParseError as e:
            raise InvalidDataType(str(e)) from None
    if dtype is str or isinstance(dtype, np.dtypes.StringDType):
        return STRING_DTYPE
    if dtype is bytes:
        return BYTES_DTYPE
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise InvalidDataType(f"data type {dtype!r} is not supported") from e
    return _native(dt, object_as_bytes)


def _native(dt, object_as_bytes=False):
    """The supported native dtype equal to NumPy dtype ``dt`` (``InvalidDataType`` if none)."""
    if low_complex_name(dt) in LOW_COMPLEX:
        return LOW_COMPLEX[low_complex_name(dt)]
    if dt.fields is not None:
        if not dt.names:
            raise InvalidDataType("a struct data type needs at least one field")
        # Packed and native, as zarr-python stores structs (fields in order, no gaps).
        return _packed_struct([(name, _native(dt.fields[name][0])) for name in dt.names])
    if dt.kind == "O":
        if object_as_bytes:
            return BYTES_DTYPE
        raise InvalidDataType("data type object is ambiguous; use 'bytes' (object arrays "
                              "of bytes) or 'string'")
    if dt.subdtype is not None:
        raise InvalidDataType(f"sub-array data type {dt} is not supported")
    if dt.kind in "USV" and dt.itemsize == 0:
        raise InvalidDataType(f"data type {dt} has no length; give one (e.g. "
                              f"{dt.kind}8) or use {'bytes' if dt.kind == 'S' else 'string'}")
    if dt.kind in "MmUSV" and dt.type.__module__ == "numpy":
        return dt.newbyteorder("=") if dt.byteorder not in ("=", "|") else dt
    native = dt.newbyteorder("=") if dt.byteorder not in ("=", "|") else dt
    for supported in DATA_TYPES.values():
        if native == supported:
            return supported
    raise InvalidDataType(f"data type {str(dt)!r} is not supported")


def _packed_struct(fields):
    for name, sub in fields:
        if is_vlen(sub) or _NAME_OF.get(sub) in ML_DTYPES:
            # ml_dtypes cannot change byte order inside a struct; vlen has no fixed size.
            raise InvalidDataType(f"struct field {name!r}: data type {dtype_name(sub)!r} "
                                  f"is not supported in a struct")
    try:
        return np.dtype(fields)
    except (TypeError, ValueError) as e:
        raise InvalidDataType(f"struct data type is not valid: {e}") from None


def dtype_name(dtype):
    """The Zarr ``data_type`` value zarr-python 3.4 writes for a supported dtype: a name
    such as ``"float32"``, or an object such as ``{"name": "numpy.datetime64",
    "configuration": {"unit": "ns", "scale_factor": 1}}``."""
    family = _family(dtype)
    if family == "lowcomplex":
        return low_complex_name(dtype)
    if family == "struct":
        return {"name": "struct", "configuration": {"fields": [
            {"name": name, "data_type": dtype_name(dtype.fields[name][0])}
            for name in dtype.names]}}
    if family == "time":
        unit, scale = np.datetime_data(dtype)
        return {"name": "numpy.datetime64" if dtype.kind == "M" else "numpy.timedelta64",
                "configuration": {"unit": unit, "scale_factor": scale}}
    if family in ("utf32", "ntbytes", "raw"):
        name = {"utf32": "fixed_length_utf32", "ntbytes": "null_terminated_bytes",
                "raw": "raw_bytes"}[family]
        return {"name": name, "configuration": {"length_bytes": dtype.itemsize}}
    try:
        return _NAME_OF[dtype]
    except KeyError:
        raise InvalidDataType(f"data type {str(dtype)!r} is not supported") from None


def data_type_of(name, where):
    """The dtype of a ``data_type`` value read from a document (``ParseError`` otherwise)."""
    return _from_json(name, f"{where}: data_type")


def _config_int(config, key, low, high, field):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(f"{field}.configuration.{key}: expected an integer, got "
                         f"{short_repr(value)}")
    if not low <= value <= high:
        raise ParseError(f"{field}.configuration.{key}: {short_repr(value)} is out of range "
                         f"[{low}, {high}]")
    return value


def _check_keys(config, keys, name, field):
    if set(config) != set(keys):
        raise ParseError(f"{field}.configuration: {name} takes exactly {sorted(keys)}, "
                         f"got {short_repr(sorted(config))}")


def _from_json(value, field):
    """The native dtype of a ``data_type`` JSON value; ``ParseError`` names the bad field."""
    config = None
    if isinstance(value, dict):
        if not set(value) <= {"name", "configuration"} or "name" not in value:
            raise ParseError(f"{field}: expected {{'name': ..., 'configuration': ...}}, got "
                             f"{short_repr(value)}")
        config = value.get("configuration")
        if config is not None and not isinstance(config, dict):
            raise ParseError(f"{field}.configuration: expected an object, got "
                             f"{short_repr(config)}")
        value = value["name"]
        if not isinstance(value, str):
            raise ParseError(f"{field}.name: expected a string, got {short_repr(value)}")
    elif not isinstance(value, str):
        raise ParseError(f"{field}: {short_repr(value)} is not a data type")
    name = value
    if not config:
        if _ALIASES.get(name, name) in DATA_TYPES:
            return DATA_TYPES[_ALIASES.get(name, name)]
        if name in LOW_COMPLEX:
            return LOW_COMPLEX[name]
        bits = _RAW_BITS.fullmatch(name)
        if bits:  # the core spec's raw bits: r8, r16, ... (whole bytes only)
            nbits = int(bits.group(1))
            if nbits % 8 or nbits // 8 > MAX_ITEMSIZE:
                raise ParseError(f"{field}: raw data type {name!r} must be a positive "
                                 f"multiple of 8 bits, at most {8 * MAX_ITEMSIZE}")
            return np.dtype(f"V{nbits // 8}")
        if name in _CONFIGURED:
            raise ParseError(f"{field}: data type {name!r} needs a configuration")
        raise ParseError(f"{field}: data type {short_repr(name)} is not supported")
    if name in _TIME_NAMES:
        _check_keys(config, ("unit", "scale_factor"), name, field)
        unit = config["unit"]
        if not isinstance(unit, str) or unit not in _TIME_UNITS:
            raise ParseError(f"{field}.configuration.unit: expected one of "
                             f"{list(_TIME_UNITS)}, got {short_repr(unit)}")
        scale = _config_int(config, "scale_factor", 1, 2**31 - 1, field)
        if unit == "generic":
            if scale != 1:
                raise ParseError(f"{field}.configuration.scale_factor: must be 1 for the "
                                 f"generic unit, got {scale}")
            return np.dtype(_TIME_NAMES[name] + "8")
        unit = "us" if unit == "\u03bcs" else unit
        return np.dtype(f"{_TIME_NAMES[name]}8[{scale}{unit}]")
    if name in _LENGTH_NAMES:
        _check_keys(config, ("length_bytes",), name, field)
        kind = _LENGTH_NAMES[name]
        length = _config_int(config, "length_bytes", 1, MAX_ITEMSIZE, field)
        if kind == "U":
            if length % 4:
                raise ParseError(f"{field}.configuration.length_bytes: must be a multiple "
                                 f"of 4 for {name}, got {length}")
            return np.dtype(f"<U{length // 4}").newbyteorder("=")
        return np.dtype(f"{kind}{length}")
    if name in ("struct", "structured"):
        _check_keys(config, ("fields",), name, field)
        return _struct_from_json(config["fields"], name, f"{field}.configuration.fields")
    raise ParseError(f"{field}: data type {short_repr(name)} with a configuration is not "
                     f"supported")


def _struct_from_json(fields, name, field):
    if not isinstance(fields, list) or not fields:
        raise ParseError(f"{field}: expected a non-empty list of fields, got "
                         f"{short_repr(fields)}")
    out = []
    for i, item in enumerate(fields):
        where = f"{field}[{i}]"
        if name == "structured" and isinstance(item, list) and len(item) == 2:
            item = {"name": item[0], "data_type": item[1]}  # legacy [name, data_type] pairs
        if not isinstance(item, dict) or set(item) != {"name", "data_type"}:
            raise ParseError(f"{where}: expected {{'name': ..., 'data_type': ...}}, got "
                             f"{short_repr(item)}")
        fname = item["name"]
        if not isinstance(fname, str) or not fname:
            raise ParseError(f"{where}.name: expected a non-empty string, got "
                             f"{short_repr(fname)}")
        if any(fname == other for other, _ in out):
            raise ParseError(f"{where}.name: field {fname!r} appears twice")
        out.append((fname, _from_json(item["data_type"], f"{where}.data_type")))
    total = sum(sub.itemsize for _, sub in out)
    if total > MAX_ITEMSIZE:
        raise ParseError(f"{field}: the struct's fields take {total} bytes, more than "
                         f"{MAX_ITEMSIZE}")
    try:
        return _packed_struct(out)
    except InvalidDataType as e:
        raise ParseError(f"{field}: {e}") from None


def is_vlen(dtype):
    """True for the variable-length data types (``string`` and ``bytes``)."""
    return dtype.kind in "TO"


# -- fill values ------------------------------------------------------------------


def _uint_view(dtype):
    return np.dtype(f"u{dtype.itemsize}")


def _float_from_json(value, dtype, field):
    """One float component: a number, "NaN", "Infinity", "-Infinity" or "0x..." raw bits."""
    if isinstance(value, bool):
        raise ParseError(f"{field}: expected a number for {dtype.name}, got {value!r}")
    if isinstance(value, (int, float)):
        finite = isinstance(value, int) or math.isfinite(value)
        try:
            with np.errstate(over="ignore"):
                out = np.array(value, dtype=dtype)
        except OverflowError:  # an int beyond float64
            out = None
        if finite and (out is None or not math.isfinite(float(out))):
            raise ParseError(f"{field}: {short_repr(value)} is out of range for {dtype.name}")
        return out
    if isinstance(value, str):
        special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        if value in special:
            out = np.array(special[value], dtype=dtype)
            # Some low-precision types have no NaN or no infinity (they saturate or map to NaN).
            if repr(float(out)) != repr(special[value]):
                raise ParseError(f"{field}: {dtype.name} has no {value}")
            return out
        if value.startswith("0x"):
            digits = value[2:]
            if len(digits) != 2 * dtype.itemsize:
                raise ParseError(f"{field}: {value!r} must have {2 * dtype.itemsize} hex "
                                 f"digits for {dtype.name}")
            if not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ParseError(f"{field}: {value!r} is not hexadecimal")
            bits = int(digits, 16)
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


def _base64(value, field, what):
    if not isinstance(value, str):
        raise ParseError(f"{field}: expected base64 text for {what}, got {short_repr(value)}")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ParseError(f"{field}: {short_repr(value)} is not base64") from None


def not_a_time(dtype):
    """NaT of the datetime64 or timedelta64 ``dtype``, from its bit pattern
    (NumPy deprecates parsing "NaT" into the generic unit)."""
    bits = np.array(-2**63, dtype=np.dtype(np.int64).newbyteorder(dtype.byteorder))
    return bits.view(dtype)[()]


def _extension_fill_from_json(value, dtype, family, field):
    """Fill values of the configured extension types, as zarr-extensions encodes them."""
    name = dtype_name(dtype)["name"]
    if family == "time":
        # An integer count of units (NaT is -2**63), or "NaT".
        if value == "NaT":
            return not_a_time(dtype)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParseError(f"{field}: expected an integer or 'NaT' for {name}, got "
                             f"{short_repr(value)}")
        if not -2**63 <= value < 2**63:
            raise ParseError(f"{field}: {short_repr(value)} is out of range for {name}")
        return np.array(value, dtype=np.int64).view(dtype)[()]
    if family == "utf32":
        if not isinstance(value, str):
            raise ParseError(f"{field}: expected a string for {name}, got {short_repr(value)}")
        if len(value) > dtype.itemsize // 4:
            raise ParseError(f"{field}: {short_repr(value)} is longer than "
                             f"{dtype.itemsize // 4} code points")
        return np.array(value, dtype=dtype)[()]
    if family == "ntbytes":
        raw = _base64(value, field, name)
        if len(raw) > dtype.itemsize:
            raise ParseError(f"{field}: {len(raw)} bytes do not fit {name} of "
                             f"{dtype.itemsize} bytes")
        return np.array(raw, dtype=dtype)[()]
    if family == "raw":
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                           and 0 <= v <= 255 for v in value):
            raw = bytes(value)  # the core spec's r* encoding: one number per byte
        else:
            raw = _base64(value, field, name)
        if len(raw) != dtype.itemsize:
            raise ParseError(f"{field}: expected {dtype.itemsize} bytes for {name}, got "
                             f"{len(raw)}")
        return np.frombuffer(raw, dtype=dtype).copy()[0]
    # struct: an object of field values (zarr-python 3.4), or base64 of the
    # little-endian packed bytes (zarr-python 3.1's "structured").
    if isinstance(value, str):
        raw = _base64(value, field, name)
        if len(raw) != dtype.itemsize:
            raise ParseError(f"{field}: expected {dtype.itemsize} bytes for {name}, got "
                             f"{len(raw)}")
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)[0]
    if not isinstance(value, dict):
        raise ParseError(f"{field}: expected an object of field values for {name}, got "
                         f"{short_repr(value)}")
    unknown = set(value) - set(dtype.names)
    if unknown:
        raise ParseError(f"{field}: {short_repr(sorted(unknown))} are not fields of the struct")
    out = np.zeros((), dtype=dtype)
    for fname in dtype.names:
        if fname in value:
            out[fname] = parse_fill_value(value[fname], dtype.fields[fname][0],
                                          f"{field}.{fname}")
    return out[()]


def parse_fill_value(value, dtype, field="fill_value"):
    """A NumPy scalar of ``dtype`` from a ``fill_value`` JSON value (spec encodings).

    For ``string`` and ``bytes`` the result is a ``str`` or ``bytes``.
    """
    family = _family(dtype)
    if family == "vlen":
        return _vlen_fill_from_json(value, dtype, field)
    if family == "lowcomplex":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ParseError(f"{field}: expected [real, imag] for {low_complex_name(dtype)}, "
                             f"got {short_repr(value)}")
        out = np.zeros((), dtype=dtype)
        for name, part in zip(("real", "imag"), value):
            out[name] = _float_from_json(part, dtype.fields[name][0], field)
        return out[()]
    if family in ("time", "utf32", "ntbytes", "raw", "struct"):
        return _extension_fill_from_json(value, dtype, family, field)
    if family == "bool":
        # Early zarrita wrote 0 and 1; read them (as zarr-python does), write true/false.
        if isinstance(value, int) and value in (0, 1):
            return np.bool_(value)
        raise ParseError(f"{field}: expected true or false for bool, got {value!r}")
    if family == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParseError(f"{field}: expected an integer for {dtype.name}, got {value!r}")
        info = _iinfo(dtype)
        if not info.min <= value <= info.max:
            raise ParseError(f"{field}: {value} is out of range for {dtype.name}")
        return np.array(value, dtype=dtype)[()]
    if family == "float":
        return _float_from_json(value, dtype, field)[()]
    if family == "complex":
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
    x = np.array(x, dtype=dtype)[()]
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
    family = _family(dtype)
    if dtype.kind == "T" or family == "utf32":
        return str(value)
    if dtype.kind == "O" or family == "ntbytes":
        return base64.standard_b64encode(bytes(value)).decode("ascii")
    if family == "raw":
        return base64.standard_b64encode(np.array(value, dtype=dtype).tobytes()).decode("ascii")
    if family == "time":
        return int(np.array(value, dtype=dtype).view(np.int64))
    if family == "struct":
        value = np.array(value, dtype=dtype)
        return {name: encode_fill_value(value[name][()], dtype.fields[name][0])
                for name in dtype.names}
    if family == "bool":
        return bool(value)
    if family == "int":
        return int(value)
    if family == "float":
        return _float_to_json(value, dtype)
    if family == "complex":
        part = np.dtype(f"f{dtype.itemsize // 2}")
        value = dtype.type(value)
        return [_float_to_json(value.real, part), _float_to_json(value.imag, part)]
    if family == "lowcomplex":
        value = np.array(value, dtype=dtype)
        return [_float_to_json(value[name][()], dtype.fields[name][0])
                for name in ("real", "imag")]
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
    family = _family(dtype)
    if family in ("time", "utf32", "ntbytes", "raw", "struct"):
        return _coerce_extension_fill(value, dtype, family)
    if family == "lowcomplex":
        return _coerce_low_complex_fill(value, dtype)
    if value is None:
        return np.zeros((), dtype=dtype)[()]
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
    ok = {
        "bool": (bool,),
        "int": (int,),
        "float": (int, float),
        "complex": (int, float, complex),
    }[family]
    if not isinstance(value, ok) or (family != "bool" and isinstance(value, bool)):
        raise InvalidDataType(f"fill value {value!r} does not fit data type {dtype.name}")
    if family == "int":
        info = _iinfo(dtype)
        if not info.min <= value <= info.max:
            raise InvalidDataType(f"fill value {value} is out of range for {dtype.name}")
    if family == "float":
        try:
            return _float_from_json(value, dtype, "fill value")[()]
        except ParseError as e:  # a finite value that would become inf or NaN
            raise InvalidDataType(str(e)) from None
    return np.array(value, dtype=dtype)[()]


def _coerce_low_complex_fill(value, dtype):
    """``coerce_fill_value`` for a complex type of a low-precision float: ``None``
    (zero), a number, ``[real, imag]`` in JSON form, or a value of the type."""
    if value is None:
        return np.zeros((), dtype=dtype)[()]
    if isinstance(value, np.void) and low_complex_name(value.dtype) == low_complex_name(dtype):
        return np.array(value, dtype=dtype)[()]
    if isinstance(value, (list, tuple)):
        try:
            return parse_fill_value(list(value), dtype)
        except ParseError as e:
            raise InvalidDataType(str(e)) from None
    if isinstance(value, (int, float, complex, np.number)) and not isinstance(value, bool):
        value = complex(value)
        out = np.zeros((), dtype=dtype)
        out["real"], out["imag"] = value.real, value.imag
        return out[()]
    raise InvalidDataType(f"fill value {short_repr(value)} does not fit data type "
                          f"{low_complex_name(dtype)}")


def _coerce_extension_fill(value, dtype, family):
    """``coerce_fill_value`` for the configured extension types."""
    name = dtype_name(dtype)["name"]
    if value is None:
        # zarr-python 3.4's defaults: NaT for times, zero bytes otherwise.
        return not_a_time(dtype) if family == "time" else np.zeros((), dtype)[()]

    def bad():  # lazily: the repr of a wide value is costly
        return InvalidDataType(f"fill value {short_repr(value)} does not fit data type "
                               f"{name} ({dtype})")
    if isinstance(value, (dict, list)) or (isinstance(value, str) and family != "utf32"
                                           and not (family == "time" and value == "NaT")):
        if family == "time" and isinstance(value, str):
            try:  # a date or duration in NumPy's text form
                return np.array(value, dtype=dtype)[()]
            except ValueError:
                raise bad() from None
        try:
            return parse_fill_value(value, dtype)
        except ParseError as e:
            raise InvalidDataType(str(e)) from None
    if isinstance(value, np.generic) and value.dtype.kind in "MmUSV" and \
            value.dtype.kind != dtype.kind:
        raise bad()
    try:
        if family == "time":
            if isinstance(value, np.generic) and value.dtype.kind == dtype.kind:
                return np.array(value).astype(dtype)[()]
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                return parse_fill_value(int(value), dtype)
            if isinstance(value, str):  # "NaT"
                return not_a_time(dtype)
            raise bad()
        if family == "utf32":
            if not isinstance(value, str) or len(value) > dtype.itemsize // 4:
                raise bad()
        elif family == "ntbytes":
            if not isinstance(value, (bytes, bytearray)) or len(value) > dtype.itemsize:
                raise bad()
            value = bytes(value)
        elif family == "raw":
            raw = value.tobytes() if isinstance(value, np.void) else value
            if not isinstance(raw, (bytes, bytearray)) or len(raw) != dtype.itemsize:
                raise bad()
            return np.frombuffer(bytes(raw), dtype=dtype).copy()[0]
        elif family == "struct":
            if isinstance(value, np.void) and value.dtype.names is not None:
                if value.dtype.names != dtype.names:
                    raise bad()
                return np.array(value).astype(dtype)[()]
            if not isinstance(value, tuple):
                raise bad()
        return np.array(value, dtype=dtype)[()]
    except (TypeError, ValueError, OverflowError):
        raise bad() from None


# -- chunks and values -----------------------------------------------------------

def fill_array(value, dtype):
    """A 0-d array of ``dtype`` holding exactly ``value``."""
    out = np.empty((), dtype=dtype)
    out[()] = value
    return out


def new_filled(shape, fill):
    """A new C-contiguous array of ``shape`` with every element ``fill`` (a 0-d array)."""
    out = np.empty(shape, dtype=fill.dtype)
    out[...] = fill
    return out


def fill_bytes(fill):
    """The bits of ``fill`` (a 0-d array of a raw data type) as a uint8 array."""
    return fill.reshape(1).view(np.uint8)


def all_fill(chunk, fill):
    """True if every element of ``chunk`` equals ``fill`` (a 0-d array of its
    dtype): bitwise for raw types, so ``-0.0`` differs from ``0.0`` and a chunk
    is only left out when storing nothing loses nothing."""
    if chunk.size == 0:
        return True
    if not is_vlen(chunk.dtype):
        return transform.all_equal(np.ascontiguousarray(chunk).reshape(-1).view(np.uint8),
                                   fill_bytes(fill))
    value = fill[()]
    # Most chunks that hold data differ at their first element.
    if chunk.flat[0] != value:
        return False
    return bool((chunk == fill).all())


def coerce_vlen(x, dtype):
    """``x`` as an array of the vlen ``dtype``; ``InvalidDataType`` if it is not text
    (``string``) or ``bytes`` (``bytes``).

    ``string`` takes ``StringDType``, ``str_`` (``U``) and object arrays of
    ``str``, and ``str`` scalars and (nested) lists; ``bytes`` takes object
    arrays of ``bytes`` and ``bytes`` scalars and lists.
    """
    if dtype.kind == "T":
        if isinstance(x, np.ndarray) and x.dtype.kind in "TU":
            if hasattr(x.dtype, "na_object"):
                # A StringDType with missing values: cast would turn NA into text.
                missing = vlen_kernels.first_missing(np.ascontiguousarray(x).reshape(-1))
                if missing >= 0:
                    raise InvalidDataType(f"element {missing} of the data is missing "
                                          f"({x.dtype.na_object!r}); a string array holds "
                                          f"only strings")
            return x if x.dtype == STRING_DTYPE else x.astype(STRING_DTYPE)
        if isinstance(x, str):
            return fill_array(x, STRING_DTYPE)
        if isinstance(x, np.ndarray) and x.dtype.kind != "O":
            raise InvalidDataType(f"data of dtype {x.dtype} cannot be written to a "
                                  f"string array")
        try:
            # coerce=False: a non-str element raises rather than becoming str(obj).
            return np.asarray(x, dtype=np.dtypes.StringDType(coerce=False)).astype(
                STRING_DTYPE)
        except (ValueError, TypeError) as e:
            raise InvalidDataType(f"only str data can be written to a string array: "
                                  f"{e}") from None
    if isinstance(x, bytes):
        return fill_array(x, BYTES_DTYPE)
    if isinstance(x, np.ndarray) and x.dtype.kind != "O":
        raise InvalidDataType(f"data of dtype {x.dtype} cannot be written to a bytes "
                              f"array (use an object array of bytes)")
    if isinstance(x, (str, np.generic)):
        raise InvalidDataType(f"{type(x).__name__} data cannot be written to a bytes array")
    try:
        values = np.asarray(x, dtype=BYTES_DTYPE)
    except (ValueError, TypeError) as e:
        raise InvalidDataType(f"cannot write {type(x).__name__} data: {e}") from None
    flat = np.ascontiguousarray(values).reshape(-1)
    bad = vlen_kernels.first_not_bytes(flat)
    if bad >= 0:
        raise InvalidDataType(f"only bytes can be written to a bytes array, got "
                              f"{type(flat[bad]).__name__} {flat[bad]!r:.40}")
    return values


# Which Python value kinds a data type accepts on write (NumPy kind letters).
_ACCEPTED_KINDS = {"bool": "b", "int": "iu", "float": "iuf", "complex": "iufc",
                   "utf32": "U", "ntbytes": "S", "raw": "SV", "struct": "V"}


def coerce_value(x, dtype):
    """``x`` as an array of ``dtype`` for a write; ``InvalidDataType`` if its
    type differs (Python scalars and lists are converted when they fit)."""
    if is_vlen(dtype):
        return coerce_vlen(x, dtype)
    family = _family(dtype)
    if family == "lowcomplex" and isinstance(x, (np.ndarray, np.generic)) and \
            x.dtype.kind in "iufc":
        # Complex (or real) numbers: each part rounded to the part type.
        x = np.asarray(x)
        out = np.empty(x.shape, dtype=dtype)
        out["real"], out["imag"] = x.real, x.imag if x.dtype.kind == "c" else 0
        return out
    if isinstance(x, (np.ndarray, np.generic)):
        try:
            same = x.dtype.kind not in "OT" and parse_dtype(x.dtype) == dtype
        except InvalidDataType:
            same = False
        # Narrower strings and coarser time units fit without loss.
        if not same and family in ("time", "utf32", "ntbytes") and \
                x.dtype.kind == dtype.kind and np.can_cast(x.dtype, dtype, "safe"):
            same = True
        if not same:
            raise InvalidDataType(f"data of dtype {x.dtype} cannot be written to an "
                                  f"array of {dtype}")
        if x.dtype != dtype:  # same type, other byte order, width or layout
            x = x.astype(dtype)
        return np.asarray(x)
    try:
        probe = np.asarray(x, dtype=dtype if family == "struct" else None)
    except (ValueError, TypeError) as e:
        raise InvalidDataType(f"cannot write {type(x).__name__} data: {e}") from None
    accepted = _ACCEPTED_KINDS.get(family, dtype.kind + "U")  # times: also from text
    if probe.dtype.kind not in accepted or (
            family in ("utf32", "ntbytes") and probe.dtype.itemsize > dtype.itemsize) or (
            family == "raw" and probe.dtype.itemsize != dtype.itemsize):
        raise InvalidDataType(f"{probe.dtype} data ({type(x).__name__}) cannot be written "
                              f"to an array of {dtype}")
    if family == "int" and probe.size and dtype.kind == "V":
        info = _iinfo(dtype)  # ml_dtypes' small ints wrap silently
        if probe.min() < info.min or probe.max() > info.max:
            raise InvalidDataType(f"data does not fit {dtype}: values outside "
                                  f"[{info.min}, {info.max}]")
    try:
        return np.asarray(x, dtype=dtype)
    except (OverflowError, ValueError) as e:
        raise InvalidDataType(f"data does not fit {dtype}: {e}") from None
