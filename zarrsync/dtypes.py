"""Zarr data types as NumPy dtypes, and their fill values.

Spec: https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#data-types
The core types map to NumPy dtypes in this machine's byte order (the
``bytes`` codec sets the order on disk). ``string`` is NumPy's
``StringDType`` and ``bytes`` an object array of ``bytes``: their elements
are references, not raw bytes, so they are compared and copied by value
(``fill_array``, ``new_filled``, ``all_fill``), and NumPy's fixed-width
types are kept out of the way (a ``str`` or ``bytes`` scalar turned into one
drops trailing NULs).
"""

import base64
import binascii
import math

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
_NAME_OF = {dt: _WRITTEN_NAMES.get(name, name) for name, dt in DATA_TYPES.items()}


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
    """The Zarr name of a supported dtype, such as ``"float32"``."""
    return _NAME_OF[dtype]


def data_type_of(name, where):
    """The dtype of a data type name read from a document (``ParseError`` otherwise)."""
    if isinstance(name, dict) and set(name) <= {"name", "configuration"} \
            and not name.get("configuration"):
        name = name.get("name")  # the object form, e.g. {"name": "string"}
    if not isinstance(name, str) or _ALIASES.get(name, name) not in DATA_TYPES:
        raise ParseError(f"{where}: data_type {name!r} is not supported")
    return DATA_TYPES[_ALIASES.get(name, name)]


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
        if finite and (out is None or not np.isfinite(out)):
            raise ParseError(f"{field}: {short_repr(value)} is out of range for {dtype.name}")
        return out
    if isinstance(value, str):
        special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        if value in special:
            return np.array(special[value], dtype=dtype)
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


def parse_fill_value(value, dtype, field="fill_value"):
    """A NumPy scalar of ``dtype`` from a ``fill_value`` JSON value (spec encodings).

    For ``string`` and ``bytes`` the result is a ``str`` or ``bytes``.
    """
    kind = dtype.kind
    if kind in "TO":
        return _vlen_fill_from_json(value, dtype, field)
    if kind == "b":
        # Early zarrita wrote 0 and 1; read them (as zarr-python does), write true/false.
        if isinstance(value, int) and value in (0, 1):
            return np.bool_(value)
        raise ParseError(f"{field}: expected true or false for bool, got {value!r}")
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
_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf", "c": "iufc"}


def coerce_value(x, dtype):
    """``x`` as an array of ``dtype`` for a write; ``InvalidDataType`` if its
    type differs (Python scalars and lists are converted when they fit)."""
    if is_vlen(dtype):
        return coerce_vlen(x, dtype)
    if isinstance(x, (np.ndarray, np.generic)):
        if x.dtype.kind not in "biufc" or parse_dtype(x.dtype) != dtype:
            raise InvalidDataType(f"data of dtype {x.dtype} cannot be written to an "
                                  f"array of {dtype}")
        if x.dtype != dtype:  # same type, other byte order
            x = x.astype(dtype)
        return np.asarray(x)
    try:
        probe = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise InvalidDataType(f"cannot write {type(x).__name__} data: {e}") from None
    if probe.dtype.kind not in _ACCEPTED_KINDS[dtype.kind]:
        raise InvalidDataType(f"{probe.dtype.kind!r}-kind data ({type(x).__name__}) "
                              f"cannot be written to an array of {dtype}")
    try:
        return np.asarray(x, dtype=dtype)
    except (OverflowError, ValueError) as e:
        raise InvalidDataType(f"data does not fit {dtype}: {e}") from None
