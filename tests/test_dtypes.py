"""Extension data types: documents, fill values, storage round trips and interop.

The expected ``data_type`` and ``fill_value`` JSON below is what zarr-python
3.4.2 writes for the same NumPy dtype and fill value (``zarr.create_array``,
``zarr_format=3``); ``tests/fixtures/dtypes-zarr-python-3.4.zip`` holds small
stores it wrote (``tests/fixtures/generate_dtypes.py``). zarr-python has no
bfloat16/float8/int4 arrays, so those are checked against tensorstore.
Spec: https://github.com/zarr-developers/zarr-extensions/tree/main/data-types
"""

import importlib.util
import json
import math
import pathlib
import re
import zipfile

import ml_dtypes
import numpy as np
import pytest

import zarrsync as zs
from interop_matrix import cell, dtype_label
from zarrsync import ArrayNode
from zarrsync.dtypes import (coerce_fill_value, dtype_name, encode_fill_value, parse_dtype,
                             parse_fill_value)
from zarrsync.metadata import ArrayMetadata

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
# zarr-python warns that these extension types may change; that is what is tested here.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The data type .* does not have a Zarr V3 specification")
NODE = ArrayNode.of_path("/a")
NAT = -2**63


def _spec(name, **configuration):
    return {"name": name, "configuration": configuration}


def _time(name, unit, scale=1):
    return _spec(name, unit=unit, scale_factor=scale)


POINT = np.dtype([("a", "<i2"), ("t", "<M8[s]"), ("p", [("x", "<f4"), ("y", "<U2")])])
POINT_JSON = _spec("struct", fields=[
    {"name": "a", "data_type": "int16"},
    {"name": "t", "data_type": _time("numpy.datetime64", "s")},
    {"name": "p", "data_type": _spec("struct", fields=[
        {"name": "x", "data_type": "float32"},
        {"name": "y", "data_type": _spec("fixed_length_utf32", length_bytes=8)}])}])
LITTLE = {"name": "bytes", "configuration": {"endian": "little"}}
NO_ENDIAN = {"name": "bytes"}

# (dtype, fill value given, data_type JSON, fill_value JSON, bytes codec): zarr-python 3.4.2.
ZARR_PYTHON_34 = [
    ("datetime64[ns]", None, _time("numpy.datetime64", "ns"), NAT, LITTLE),
    ("datetime64[ns]", np.datetime64("2020-01-01T00:00:00", "ns"),
     _time("numpy.datetime64", "ns"), 1577836800000000000, LITTLE),
    ("datetime64[ns]", np.datetime64("NaT", "ns"), _time("numpy.datetime64", "ns"), NAT,
     LITTLE),
    ("datetime64[10s]", None, _time("numpy.datetime64", "s", 10), NAT, LITTLE),
    ("datetime64", None, _time("numpy.datetime64", "generic"), NAT, LITTLE),
    ("datetime64[us]", 7, _time("numpy.datetime64", "us"), 7, LITTLE),
    ("timedelta64[ms]", None, _time("numpy.timedelta64", "ms"), NAT, LITTLE),
    ("timedelta64[s]", np.timedelta64(5, "s"), _time("numpy.timedelta64", "s"), 5, LITTLE),
    ("timedelta64[5D]", None, _time("numpy.timedelta64", "D", 5), NAT, LITTLE),
    ("<U5", None, _spec("fixed_length_utf32", length_bytes=20), "", LITTLE),
    ("<U3", "ab", _spec("fixed_length_utf32", length_bytes=12), "ab", LITTLE),
    ("S7", None, _spec("null_terminated_bytes", length_bytes=7), "", NO_ENDIAN),
    ("S3", b"a\x00b", _spec("null_terminated_bytes", length_bytes=3), "YQBi", NO_ENDIAN),
    ("V10", None, _spec("raw_bytes", length_bytes=10), "AAAAAAAAAAAAAA==", NO_ENDIAN),
    ("V2", b"\x01\x02", _spec("raw_bytes", length_bytes=2), "AQI=", NO_ENDIAN),
    ([("a", "<i4"), ("b", "<f8")], None,
     _spec("struct", fields=[{"name": "a", "data_type": "int32"},
                             {"name": "b", "data_type": "float64"}]),
     {"a": 0, "b": 0.0}, LITTLE),
    ([("a", "<i4"), ("b", "<f8")], (1, np.nan),
     _spec("struct", fields=[{"name": "a", "data_type": "int32"},
                             {"name": "b", "data_type": "float64"}]),
     {"a": 1, "b": "NaN"}, LITTLE),
    ([("a", "u1"), ("b", "S3")], None,
     _spec("struct", fields=[{"name": "a", "data_type": "uint8"},
                             {"name": "b", "data_type": _spec("null_terminated_bytes",
                                                              length_bytes=3)}]),
     {"a": 0, "b": ""}, LITTLE),
    ([("a", "<i2"), ("b", "<c8")], (3, 1 + 2j),
     _spec("struct", fields=[{"name": "a", "data_type": "int16"},
                             {"name": "b", "data_type": "complex64"}]),
     {"a": 3, "b": [1.0, 2.0]}, LITTLE),
    (POINT, None, POINT_JSON, {"a": 0, "t": 0, "p": {"x": 0.0, "y": ""}}, LITTLE),
]


def _fill(given, dtype):
    """A test's fill value as zarr-python takes it (struct tuples as NumPy scalars)."""
    if isinstance(given, tuple):
        return np.array(given, dtype=parse_dtype(dtype))[()]
    return given


@pytest.mark.parametrize("dtype,fill,data_type,fill_json,codec", ZARR_PYTHON_34)
def test_documents_match_zarr_python_34(dtype, fill, data_type, fill_json, codec):
    meta = ArrayMetadata((3,), (2,), dtype, fill_value=_fill(fill, dtype))
    doc = json.loads(meta.to_json())
    assert doc["data_type"] == data_type
    assert doc["fill_value"] == fill_json
    assert doc["codecs"][0] == codec
    back = ArrayMetadata.from_json(meta.to_json())
    assert back.dtype == meta.dtype == parse_dtype(dtype)
    assert back.to_dict() == meta.to_dict()
    assert dtype_name(back.dtype) == data_type
    assert parse_dtype(data_type) == meta.dtype
    same = np.array(back.fill_value, back.dtype).tobytes() == \
        np.array(meta.fill_value, meta.dtype).tobytes()
    assert same


@pytest.mark.parametrize("name", ["bfloat16", "float8_e3m4", "float8_e4m3",
                                  "float8_e4m3b11fnuz", "float8_e4m3fn", "float8_e4m3fnuz",
                                  "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu",
                                  "float6_e2m3fn", "float6_e3m2fn", "float4_e2m1fn",
                                  "int2", "int4", "uint2", "uint4"])
def test_low_precision_names(name):
    dt = np.dtype(getattr(ml_dtypes, name))
    assert parse_dtype(name) == dt == parse_dtype(dt) == parse_dtype({"name": name})
    meta = ArrayMetadata((3,), (2,), name)
    doc = json.loads(meta.to_json())
    assert doc["data_type"] == name
    # Zero bits, as for every type (float8_e8m0fnu has no zero: its zero bits are 2**-127).
    zero = 2.0**-127 if name == "float8_e8m0fnu" else 0.0
    assert doc["fill_value"] == (0 if name.startswith(("int", "uint")) else zero)
    # bfloat16 has two bytes; tensorstore writes it with an endian, the rest without.
    assert doc["codecs"][0] == (LITTLE if name == "bfloat16" else NO_ENDIAN)
    assert ArrayMetadata.from_json(meta.to_json()).dtype == dt


@pytest.mark.parametrize("doc,dtype", [
    ("r8", "V1"), ("r16", "V2"), ({"name": "r24"}, "V3"),
    (_time("numpy.datetime64", "\u03bcs", 3), "datetime64[3us]"),
    (_spec("raw_bytes", length_bytes=4), "V4"),
    ({"name": "bfloat16", "configuration": {}}, ml_dtypes.bfloat16),
    ("complex_float32", "complex64"), ("complex_float64", "complex128"),
    # zarr-python 3.1's legacy name and [name, data_type] pairs.
    (_spec("structured", fields=[["a", "int32"], ["b", "float64"]]),
     [("a", "<i4"), ("b", "<f8")]),
])
def test_other_spellings_are_read(doc, dtype):
    assert zs.dtypes.data_type_of(doc, "zarr.json") == np.dtype(dtype)
    assert parse_dtype(doc) == np.dtype(dtype)


def test_fixed_width_numpy_dtypes():
    assert parse_dtype(">U3") == np.dtype("=U3")
    assert parse_dtype(">M8[ns]") == np.dtype("M8[ns]")
    aligned = np.dtype([("a", "u1"), ("b", "<i8")], align=True)
    assert aligned.itemsize == 16
    packed = parse_dtype(aligned)  # zarr-python stores structs packed
    assert packed.itemsize == 9 and packed.names == ("a", "b")
    for zero_width in ("U", "S", "V", "U0", np.str_, np.bytes_):
        with pytest.raises(zs.InvalidDataType):
            parse_dtype(zero_width)


@pytest.mark.parametrize("doc,field", [
    (_time("numpy.datetime64", 5), "data_type.configuration.unit"),
    (_time("numpy.datetime64", "parsec"), "data_type.configuration.unit"),
    (_time("numpy.timedelta64", "s", 2**40), "data_type.configuration.scale_factor"),
    (_time("numpy.timedelta64", "s", "1"), "data_type.configuration.scale_factor"),
    (_time("numpy.timedelta64", "s", True), "data_type.configuration.scale_factor"),
    (_time("numpy.timedelta64", "s", 0), "data_type.configuration.scale_factor"),
    (_time("numpy.datetime64", "generic", 2), "data_type.configuration.scale_factor"),
    (_spec("numpy.datetime64", unit="s"), "data_type.configuration"),
    (_spec("numpy.datetime64", unit="s", scale_factor=1, extra=1), "data_type.configuration"),
    (_spec("fixed_length_utf32", length_bytes=2**64), "data_type.configuration.length_bytes"),
    (_spec("fixed_length_utf32", length_bytes=6), "data_type.configuration.length_bytes"),
    (_spec("null_terminated_bytes", length_bytes=0), "data_type.configuration.length_bytes"),
    (_spec("raw_bytes", length_bytes=1.0), "data_type.configuration.length_bytes"),
    ({"name": "numpy.datetime64", "configuration": []}, "data_type.configuration"),
    ({"name": 3}, "data_type.name"),
    (_spec("struct", fields={}), "data_type.configuration.fields"),
    (_spec("struct", fields=[]), "data_type.configuration.fields"),
    (_spec("struct", fields=[{"name": "a", "data_type": "int8"}] * 2),
     "data_type.configuration.fields[1].name"),
    (_spec("struct", fields=[{"name": "", "data_type": "int8"}]),
     "data_type.configuration.fields[0].name"),
    (_spec("struct", fields=[{"name": "s", "data_type": "string"}]),
     "data_type.configuration.fields"),
    (_spec("struct", fields=[{"name": "t", "data_type": _time("numpy.datetime64", "x")}]),
     "data_type.configuration.fields[0].data_type.configuration.unit"),
    (_spec("struct", fields=[{"name": n, "data_type": _spec("raw_bytes", length_bytes=2**23)}
                             for n in "xyz"]),
     "data_type.configuration.fields: the struct's fields take 25165824 bytes"),
    (_spec("raw_bytes", length_bytes=2**24 + 1), "data_type.configuration.length_bytes"),
    ("r12", "data_type: raw data type 'r12' must be a positive multiple of 8"),
    ("r99999999999", "data_type: raw data type 'r99999999999' must be"),
    ("numpy.datetime64", "data_type: data type 'numpy.datetime64' needs a configuration"),
])
def test_hostile_data_types_name_the_field(doc, field):
    with pytest.raises(zs.ParseError, match=re.escape("zarr.json: " + field)):
        zs.dtypes.data_type_of(doc, "zarr.json")
    text = json.dumps({"zarr_format": 3, "node_type": "array", "shape": [2],
                       "data_type": doc, "fill_value": 0,
                       "chunk_grid": {"name": "regular",
                                      "configuration": {"chunk_shape": [2]}},
                       "chunk_key_encoding": {"name": "default"},
                       "codecs": [{"name": "bytes"}]})
    with pytest.raises(zs.ParseError):
        ArrayMetadata.from_json(text)


@pytest.mark.parametrize("spelling", ["foo", "float8_e4m3fnx", "complex_int4"])
def test_unsupported_types_are_named(spelling):
    with pytest.raises(zs.ParseError, match=f"data type '{spelling}' is not supported"):
        zs.dtypes.data_type_of(spelling, "zarr.json")
    with pytest.raises(zs.InvalidDataType, match=spelling):
        parse_dtype(spelling)


# -- fill values ------------------------------------------------------------------

def _bits(value, dtype):
    return np.array(value, dtype=dtype).tobytes()


@pytest.mark.parametrize("dtype", ["datetime64[ns]", "timedelta64[7m]", "datetime64"])
def test_nat_fill_both_encodings(dtype):
    dt = np.dtype(dtype)
    for doc in ("NaT", NAT):
        value = parse_fill_value(doc, dt)
        assert np.isnat(value)
        assert encode_fill_value(value, dt) == NAT  # zarr-python 3.4 writes the number
    assert np.isnat(coerce_fill_value(None, dt))
    assert np.isnat(coerce_fill_value("NaT", dt))
    assert encode_fill_value(parse_fill_value(2**63 - 1, dt), dt) == 2**63 - 1


def test_time_fill_conversions():
    dt = np.dtype("datetime64[s]")
    assert coerce_fill_value(np.datetime64("2001-02-03", "D"), dt) == \
        np.datetime64("2001-02-03T00:00:00")
    assert coerce_fill_value("2001-02-03T04:05:06", dt) == np.datetime64("2001-02-03T04:05:06")
    assert encode_fill_value(coerce_fill_value(np.datetime64(3, "m"), dt), dt) == 180
    with pytest.raises(zs.InvalidDataType):
        coerce_fill_value(np.timedelta64(1, "s"), dt)  # a duration is no date
    with pytest.raises(zs.InvalidDataType):
        coerce_fill_value(1.5, dt)
    for bad in (2**63, 1.0, True, "yesterday", [1]):
        with pytest.raises(zs.ParseError, match="fill_value"):
            parse_fill_value(bad, dt)


@pytest.mark.parametrize("name,doc,bits", [
    ("bfloat16", "NaN", b"\xc0\x7f"),          # zarr-extensions: "NaN" is 0x7fc0
    ("bfloat16", "0x7fc1", b"\xc1\x7f"),       # a payload survives both ways
    ("bfloat16", "0xffc0", b"\xc0\xff"),       # and a sign
    ("bfloat16", "-Infinity", b"\x80\xff"),
    ("bfloat16", 1.5, b"\xc0\x3f"),
    ("float8_e8m0fnu", "NaN", b"\xff"),
    ("float8_e4m3fnuz", "NaN", b"\x80"),
    ("float8_e5m2", "Infinity", b"\x7c"),
    ("float8_e5m2", "0x7f", b"\x7f"),
    ("float8_e4m3fn", -2.0, b"\xc0"),
    ("int4", -8, b"\x08"),
    ("uint2", 3, b"\x03"),
])
def test_low_precision_fill_values(name, doc, bits):
    dt = parse_dtype(name)
    value = parse_fill_value(doc, dt)
    assert _bits(value, dt) == bits
    assert encode_fill_value(value, dt) == doc
    meta = ArrayMetadata((2,), (2,), name, fill_value=doc)
    assert _bits(ArrayMetadata.from_json(meta.to_json()).fill_value, dt) == bits


@pytest.mark.parametrize("name,doc", [
    ("float8_e4m3fnuz", "Infinity"), ("float4_e2m1fn", "NaN"), ("float8_e8m0fnu", "Infinity"),
    ("bfloat16", 1e300), ("bfloat16", "0x7f"), ("int4", 8), ("uint2", -1), ("int2", 1.5),
    ("float8_e5m2", True),
])
def test_low_precision_bad_fill_values(name, doc):
    with pytest.raises(zs.ParseError, match="fill_value"):
        parse_fill_value(doc, parse_dtype(name))
    with pytest.raises(zs.InvalidDataType):
        ArrayMetadata((2,), (2,), name, fill_value=doc)


@pytest.mark.parametrize("dtype,doc", [
    ("<U2", "abc"), ("<U2", 5), ("S2", "YWJj"), ("S2", "not base64!"), ("V2", "AQ=="),
    ("V2", [1, 2, 3]), ("V2", [1, 256]), ([("a", "u1")], {"b": 1}), ([("a", "u1")], "AQI="),
    ([("a", "u1")], {"a": 256}), ([("a", "u1")], 3),
])
def test_fixed_width_bad_fill_values(dtype, doc):
    with pytest.raises(zs.ParseError, match="fill_value"):
        parse_fill_value(doc, parse_dtype(dtype))


def test_fixed_width_fill_forms():
    assert parse_fill_value([1, 2], parse_dtype("r16")).tobytes() == b"\x01\x02"  # core r*
    assert coerce_fill_value(b"\x01\x02", np.dtype("V2")).tobytes() == b"\x01\x02"
    assert coerce_fill_value("\u2603", np.dtype("U1")) == "\u2603"
    assert coerce_fill_value(b"ab", np.dtype("S3")) == b"ab"
    struct = np.dtype([("a", "<i4"), ("b", "<f8")])
    # zarr-python 3.1 writes struct fill values as base64 of the little-endian bytes.
    legacy = parse_fill_value("AQAAAAAAAAAAAPh/", struct)
    assert legacy["a"] == 1 and math.isnan(legacy["b"])
    assert parse_fill_value({"b": 2.5}, struct).tolist() == (0, 2.5)
    for bad in ("abc", b"abc", 7):
        with pytest.raises(zs.InvalidDataType):
            coerce_fill_value(bad, np.dtype("U2") if isinstance(bad, str) else np.dtype("S2"))
    with pytest.raises(zs.InvalidDataType):
        coerce_fill_value(b"\x01", np.dtype("V2"))
    with pytest.raises(zs.InvalidDataType):
        coerce_fill_value((1, 2, 3), struct)


# -- storage round trips vs NumPy ------------------------------------------------

def _sample(dtype, n, seed):
    """``n`` values of ``dtype`` with varied bits (NaT, NaN payloads, NULs, ...)."""
    rng = np.random.default_rng(seed)
    if dtype.kind == "U":
        chars = ["", "a", "\u00e9", "\u2603", "\U0001f600", "zz"]
        width = dtype.itemsize // 4
        return np.array(["".join(rng.choice(chars, width))[:width] for _ in range(n)], dtype)
    if dtype.kind == "S":
        return np.array([bytes(rng.integers(0, 3, dtype.itemsize, dtype=np.uint8))
                         for _ in range(n)], dtype)
    if parse_dtype(dtype) in (parse_dtype("int2"), parse_dtype("int4"), parse_dtype("uint2"),
                              parse_dtype("uint4")):
        info = ml_dtypes.iinfo(dtype)
        return rng.integers(int(info.min), int(info.max) + 1, n).astype(dtype)
    if dtype.fields is not None:
        out = np.zeros(n, dtype)
        for name in dtype.names:
            out[name] = _sample(dtype.fields[name][0], n, seed + 1)
        return out
    raw = rng.integers(0, 256, n * dtype.itemsize, dtype=np.uint8)
    if dtype.kind in "Mm":
        raw[:8] = np.frombuffer(np.int64(NAT).tobytes(), np.uint8)
    return raw.view(dtype)


ROUND_TRIP = [
    ("datetime64[ns]", None), ("datetime64[10s]", 3), ("timedelta64[us]", -4),
    ("<U3", "\u2603b"), ("S4", b"x\x00y"), ("V3", b"\x01\x02\x03"),
    ([("a", "<i2"), ("b", "<f8"), ("c", "S2")], (5, np.nan, b"k")),
    (POINT, None), ("bfloat16", "NaN"), ("float8_e4m3fn", 0.5), ("float8_e5m2", None),
    ("float4_e2m1fn", -1.0), ("int4", -2), ("uint2", 1), ("float8_e8m0fnu", 4.0),
]


@pytest.mark.parametrize("endian", ["little", "big"])
@pytest.mark.parametrize("dtype,fill", ROUND_TRIP, ids=[str(d) for d, _ in ROUND_TRIP])
def test_store_round_trip_vs_numpy(store, dtype, fill, endian):
    dt = parse_dtype(dtype)
    fill = _fill(fill, dtype)
    codecs = [{"name": "bytes", "configuration": {"endian": endian}},
              {"name": "zstd", "configuration": {"level": 0, "checksum": False}}]
    store.create_array(NODE, shape=(7, 5), chunks=(3, 2), dtype=dt, fill_value=fill,
                       codecs=codecs)
    meta = store.array_metadata(NODE)
    model = np.empty((7, 5), dt)
    model[...] = meta.fill_value
    data = _sample(dt, 4 * 3, 1).reshape(4, 3)
    store.write_array(NODE, (slice(2, 6), slice(1, 4)), data)  # partial chunks only
    model[2:6, 1:4] = data
    store.write_array(NODE, (6, [0, 4]), data[0, :2])          # the edge chunks
    model[6, [0, 4]] = data[0, :2]
    got = store.read_array(NODE)
    assert got.dtype == dt
    assert got.tobytes() == model.tobytes()
    assert store.read_array(NODE, (slice(0, 2), 0)).tobytes() == model[0:2, 0].tobytes()
    # The chunk wholly outside the writes holds only the fill value: never stored.
    assert store.get("a/c/0/2") is None
    assert store.read_array(NODE, (slice(2, 4), slice(1, 3))).tobytes() == \
        model[2:4, 1:3].tobytes()


def test_bytes_codec_byte_order_on_disk():
    """Each element's words are swapped on a big-endian write, never its bytes as a whole."""
    store = zs.MemoryStore()
    cases = [("<U2", np.array(["ab"], "<U2"), ">U2"),
             ("datetime64[s]", np.array([1], "M8[s]"), ">M8[s]"),
             ([("a", "<i2"), ("b", "S2")], np.array([(1, b"xy")], [("a", "<i2"), ("b", "S2")]),
              [("a", ">i2"), ("b", "S2")]),
             ("bfloat16", np.array([1.5], ml_dtypes.bfloat16), None)]
    for dtype, data, big in cases:
        store.create_array(NODE, shape=(1,), chunks=(1,), dtype=dtype, overwrite=True,
                           codecs=[{"name": "bytes", "configuration": {"endian": "big"}}])
        store.write_array(NODE, ..., data)
        stored = store.get("a/c/0")
        want = data.astype(big).tobytes() if big else data.tobytes()[::-1]
        assert stored == want


def test_create_with_numpy_and_names(store):
    store.create_array(NODE, shape=(3,), chunks=(2,), dtype=np.dtype("datetime64[ns]"))
    assert json.loads(store.get("a/zarr.json"))["data_type"] == \
        _time("numpy.datetime64", "ns")
    assert np.isnat(store.read_array(NODE)).all()
    store.create_array(NODE, shape=(3,), chunks=(2,), dtype="bfloat16", overwrite=True)
    assert json.loads(store.get("a/zarr.json"))["data_type"] == "bfloat16"
    store.write_array(NODE, ..., np.array([1, 2.5, -3], ml_dtypes.bfloat16))
    assert store.read_array(NODE).tolist() == [1, 2.5, -3]
    # Values of another type are refused, as for the core types.
    with pytest.raises(zs.InvalidDataType):
        store.write_array(NODE, ..., np.array([1, 2, 3], np.float32))
    store.create_array(NODE, shape=(2,), chunks=(2,), dtype="int4", overwrite=True)
    with pytest.raises(zs.InvalidDataType):
        store.write_array(NODE, ..., [7, 8])  # 8 wraps silently in ml_dtypes
    store.write_array(NODE, ..., [7, -8])
    assert store.read_array(NODE).tolist() == [7, -8]


def test_write_conversions(store):
    store.create_array(NODE, shape=(2,), chunks=(2,), dtype="<U3")
    store.write_array(NODE, ..., np.array(["a", "bc"], "<U2"))  # narrower: fits
    assert store.read_array(NODE).tolist() == ["a", "bc"]
    with pytest.raises(zs.InvalidDataType):
        store.write_array(NODE, ..., ["abcd", "x"])  # would be cut short
    store.create_array(NODE, shape=(2,), chunks=(2,), dtype="datetime64[ms]", overwrite=True)
    store.write_array(NODE, ..., np.array(["2001-01-01", "NaT"], "M8[s]"))  # coarser: fits
    store.write_array(NODE, 0, "2001-01-02")
    got = store.read_array(NODE)
    assert got[0] == np.datetime64("2001-01-02") and np.isnat(got[1])
    with pytest.raises(zs.InvalidDataType):
        store.write_array(NODE, ..., np.array([1, 2], "M8[ns]"))  # finer: would lose time
    with pytest.raises(zs.InvalidDataType):
        store.write_array(NODE, ..., np.array([1, 2], "m8[ms]"))


# -- zarr-python 3.4 fixture --------------------------------------------------------

def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_dtypes",
                                                  FIXTURES / "generate_dtypes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()


@pytest.mark.parametrize("name", sorted(GEN.RECIPES))
def test_reads_zarr_python_34_fixture(name):
    store = zs.MemoryStore()
    with zipfile.ZipFile(FIXTURES / "dtypes-zarr-python-3.4.zip") as z:
        for key in z.namelist():
            store.set(key, z.read(key))
    node = ArrayNode.of_path("/" + name)
    meta = store.array_metadata(node)
    dtype, fill, endian = GEN.RECIPES[name]
    dt = parse_dtype(dtype)
    assert meta.dtype == dt
    model = np.empty(GEN.SHAPE, dt)
    model[...] = meta.fill_value
    model[1:5] = GEN.expected_data(name)
    assert store.read_array(node).tobytes() == model.tobytes()
    # zarrsync writes the same document and the same chunk bytes for the same recipe.
    mine = zs.MemoryStore()
    codec = {"name": "bytes"} if endian is None else \
        {"name": "bytes", "configuration": {"endian": endian}}
    mine.create_array(node, shape=GEN.SHAPE, chunks=GEN.CHUNKS, dtype=dt,
                      fill_value=_fill(fill, dtype), codecs=[codec])
    mine.write_array(node, slice(1, 5), GEN.expected_data(name).astype(dt))
    theirs = json.loads(store.get(node.metadata_key))
    ours = json.loads(mine.get(node.metadata_key))
    for key in ("data_type", "fill_value", "codecs", "shape", "chunk_grid"):
        assert ours[key] == theirs[key], key
    prefix = name + "/c/"
    assert sorted(mine.list_prefix(prefix)) == sorted(store.list_prefix(prefix))
    for key in store.list_prefix(prefix):
        assert mine.get(key) == store.get(key), key


# -- zarr-python 3.1 (the pinned test dependency) -------------------------------------

INTEROP_31 = [("datetime64[ns]", None), ("datetime64[10s]", 3), ("timedelta64[ms]", -5),
              ("<U3", "ab"), ("S4", b"x\x00y"), ("V3", b"\x01\x02\x03")]


@pytest.mark.parametrize("endian", ["little", "big"])
@pytest.mark.parametrize("dtype,fill", INTEROP_31)
def test_interop_zarr_python_31(tmp_path, dtype, fill, endian):
    zarr = pytest.importorskip("zarr")
    dt = parse_dtype(dtype)
    data = _sample(dt, 5, 3)
    codec = {"name": "bytes", "configuration": {"endian": endian}}
    # zarrsync writes, zarr-python reads.
    ours = zs.FilesystemStore(tmp_path / "ours")
    ours.create_array(NODE, shape=(6,), chunks=(4,), dtype=dt, fill_value=fill,
                      codecs=[codec])
    ours.write_array(NODE, slice(0, 5), data)
    arr = zarr.open_array(str(tmp_path / "ours" / "a"), mode="r")
    assert arr.dtype == dt
    expected = np.empty(6, dt)
    expected[:5] = data
    expected[5] = ours.array_metadata(NODE).fill_value
    assert arr[...].tobytes() == expected.tobytes()
    # zarr-python writes, zarrsync reads; both write the same data_type and fill_value.
    serializer = codec if dt.kind not in "SV" else {"name": "bytes"}
    theirs = zarr.create_array(str(tmp_path / "theirs"), shape=(6,), chunks=(4,), dtype=dt,
                               fill_value=fill, serializer=serializer, compressors=None,
                               zarr_format=3)
    theirs[:5] = data
    store = zs.FilesystemStore(tmp_path / "theirs")
    root = ArrayNode.root()
    assert store.read_array(root).tobytes() == expected.tobytes()
    doc = json.loads((tmp_path / "theirs" / "zarr.json").read_text())
    mine = json.loads((tmp_path / "ours" / "a" / "zarr.json").read_text())
    assert mine["data_type"] == doc["data_type"]
    assert mine["fill_value"] == doc["fill_value"]


def test_reads_zarr_python_31_structured(tmp_path):
    """zarr-python 3.1 writes structs as "structured", base64 fill, no endian."""
    zarr = pytest.importorskip("zarr")
    dt = np.dtype([("i", "<i4"), ("f", "<f8"), ("s", "S2")])
    fill = np.array((9, np.nan, b"q"), dt)[()]
    theirs = zarr.create_array(str(tmp_path / "s"), shape=(5,), chunks=(2,), dtype=dt,
                               fill_value=fill, zarr_format=3)
    data = _sample(dt, 3, 5)
    theirs[1:4] = data
    doc = json.loads((tmp_path / "s" / "zarr.json").read_text())
    assert doc["data_type"]["name"] == (
        "structured" if tuple(map(int, zarr.__version__.split(".")[:2])) < (3, 4) else "struct")
    store = zs.FilesystemStore(tmp_path / "s")
    expected = np.empty(5, dt)
    expected[...] = fill
    expected[1:4] = data
    got = store.read_array(ArrayNode.root())
    assert got.tobytes() == expected.tobytes()
    meta = store.array_metadata(ArrayNode.root())
    assert meta.to_dict()["data_type"]["name"] == "struct"
    assert meta.to_dict()["fill_value"] == {"i": 9, "f": "NaN", "s": "cQ=="}


# -- tensorstore (bfloat16, float8, int4) ------------------------------------------

TENSORSTORE = ["bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
               "float8_e4m3b11fnuz", "float4_e2m1fn", "int4", "int2"]


@pytest.mark.parametrize("name", TENSORSTORE)
def test_interop_tensorstore(tmp_path, name):
    ts = pytest.importorskip("tensorstore")
    dt = parse_dtype(name)
    data = _sample(dt, 6, 7)
    # zarrsync writes (big-endian where the type has a byte order), tensorstore reads.
    codec = {"name": "bytes", "configuration": {"endian": "big"}}
    ours = zs.FilesystemStore(tmp_path / "ours")
    ours.create_array(ArrayNode.root(), shape=(6,), chunks=(4,), dtype=name, codecs=[codec])
    ours.write_array(ArrayNode.root(), ..., data)
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "ours")}}
    got = ts.open(spec, open=True).result().read().result()
    assert got.tobytes() == data.tobytes()
    # tensorstore writes, zarrsync reads.
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "ts")},
            "metadata": {"shape": [6], "data_type": name,
                         "chunk_grid": {"name": "regular",
                                        "configuration": {"chunk_shape": [4]}}}}
    arr = ts.open(spec, create=True).result()
    arr.write(data).result()
    store = zs.FilesystemStore(tmp_path / "ts")
    assert store.read_array(ArrayNode.root()).tobytes() == data.tobytes()
    assert json.loads((tmp_path / "ts" / "zarr.json").read_text())["data_type"] == name


def interop_cells(name, params):
    """The cells of docs/interop.md each test checks (tests/interop_matrix.py)."""
    if name == "test_reads_zarr_python_34_fixture":
        dtype = GEN.RECIPES[params["name"]][0]
        return [cell("zarr-python 3.4 (stored fixture)", 3, "bytes", dtype_label(dtype),
                     "read")]
    if name == "test_interop_zarr_python_31":
        return [cell("zarr-python", 3, "bytes", dtype_label(params["dtype"]), d)
                for d in ("read", "write")]
    if name == "test_reads_zarr_python_31_structured":
        return [cell("zarr-python", 3, "zstd", "struct", "read")]
    if name == "test_interop_tensorstore":
        return [cell("tensorstore", 3, "bytes", params["name"], d) for d in ("read", "write")]
    return []


# -- complex types of low-precision floats (zarr-extensions complex_*) ------------------

LOW_COMPLEX = ["complex_bfloat16", "complex_float16", "complex_float8_e4m3fn",
               "complex_float8_e5m2", "complex_float8_e8m0fnu", "complex_float6_e2m3fn",
               "complex_float4_e2m1fn"]


def _parts(name):
    part = np.dtype(getattr(ml_dtypes, name[len("complex_"):], None)
                    or name[len("complex_"):])
    return part


@pytest.mark.parametrize("endian", ["little", "big"])
@pytest.mark.parametrize("name", LOW_COMPLEX)
def test_low_complex_bytes_follow_the_spec(name, endian):
    """Each element is its real part then its imaginary part, each in the
    bytes codec's byte order (per part, as for complex64)."""
    part = _parts(name)
    values = np.array([1 + 2j, 0.5 - 1j, -4j, 3, 0.25 + 0.25j, -2 - 0.5j], dtype=complex)
    store = zs.MemoryStore()
    store.create_array(NODE, shape=(6,), chunks=(6,), dtype=name,
                       codecs=[{"name": "bytes", "configuration": {"endian": endian}}])
    store.write_array(NODE, ..., values)
    pairs = np.stack([values.real.astype(part), values.imag.astype(part)], axis=-1)
    order = "<" if endian == "little" else ">"
    units = pairs.view(f"u{part.itemsize}")
    want = units.astype(units.dtype.newbyteorder(order)).tobytes()
    assert bytes(store.get("a/c/0")) == want
    got = store.read_array(NODE)
    assert zs.dtypes.low_complex_name(got.dtype) == name
    assert got["real"].tobytes() == pairs[:, 0].tobytes()
    assert got["imag"].tobytes() == pairs[:, 1].tobytes()
    assert store.array_metadata(NODE).data_type == name


def test_low_complex_document_written_by_another_tool():
    """A store as zarrs writes it: the name, a [real, imag] fill value in the
    float encodings, big-endian parts."""
    doc = {"zarr_format": 3, "node_type": "array", "shape": [3], "data_type": "complex_float16",
           "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}},
           "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
           "fill_value": ["NaN", "-Infinity"], "attributes": {},
           "codecs": [{"name": "bytes", "configuration": {"endian": "big"}}]}
    chunk = np.array([1.0, -2.0, 0.5, 65504.0], dtype=">f2").tobytes()
    store = zs.MemoryStore({"a/zarr.json": json.dumps(doc).encode(), "a/c/0": chunk})
    got = store.read_array(NODE)
    assert got["real"].tolist()[:2] == [1.0, 0.5]
    assert got["imag"].tolist()[:2] == [-2.0, 65504.0]
    assert np.isnan(got["real"][2]) and got["imag"][2] == -np.inf
    meta = store.array_metadata(NODE)
    assert meta.to_dict()["fill_value"] == ["NaN", "-Infinity"]
    assert ArrayMetadata.from_json(meta.to_json()) == meta


@pytest.mark.parametrize("fill,words", [
    ("x", "does not fit"), ([1], "expected \\[real, imag\\]"), (True, "does not fit"),
    (["a", 0], "fill"),
])
def test_low_complex_bad_fill_values(fill, words):
    with pytest.raises(zs.InvalidDataType, match=words):
        zs.MemoryStore().create_array(NODE, shape=(2,), chunks=(2,), dtype="complex_bfloat16",
                                      fill_value=fill)


def test_low_complex_fill_forms_agree():
    store = zs.MemoryStore()
    for i, fill in enumerate([1.5 - 2j, [1.5, -2.0], (1.5, -2)]):
        node = ArrayNode.of_path(f"/f{i}")
        store.create_array(node, shape=(2,), chunks=(2,), dtype="complex_bfloat16",
                           fill_value=fill)
        assert store.array_metadata(node).to_dict()["fill_value"] == [1.5, -2.0]


def test_complex_float32_and_64_are_the_core_complex_types():
    assert parse_dtype("complex_float32") == np.complex64
    assert parse_dtype("complex_float64") == np.complex128


def test_low_complex_is_not_a_plain_struct():
    plain = np.dtype([("real", "<f2"), ("imag", "<f2")])
    assert dtype_name(parse_dtype(plain))["name"] == "struct"
    assert dtype_name(parse_dtype("complex_float16")) == "complex_float16"


def test_zarr_v2_has_no_low_complex():
    with pytest.raises(zs.InvalidDataType, match="Zarr v2 has no type string"):
        zs.MemoryStore().create_array(NODE, shape=(2,), chunks=(2,), dtype="complex_float16",
                                      zarr_format=2)
