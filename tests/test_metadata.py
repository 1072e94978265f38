"""ArrayMetadata / GroupMetadata: every field, every fill value encoding, bad documents."""

import copy
import json
import math

import numpy as np
import pytest

import zarrsync as zs
from zarrsync import ArrayNode, ParseError
from zarrsync.codecs import Bytes, Crc32c, Gzip, Transpose, Zstd
from zarrsync.metadata import (ArrayMetadata, GroupMetadata, encode_fill_value,
                               parse_fill_value)

ALL_TYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
             "uint64", "float16", "float32", "float64", "complex64", "complex128"]


def bits(x, dtype):
    dtype = np.dtype(dtype)
    return int(np.array(x, dtype=dtype).view(f"u{dtype.itemsize}"))


def part_bits(x, dtype):
    """(real bits, imag bits) of a complex scalar."""
    part = np.dtype(f"f{np.dtype(dtype).itemsize // 2}")
    return bits(np.real(x), part), bits(np.imag(x), part)


def array_doc(**changes):
    """A valid zarr.json document for an array, as zarr-python writes it."""
    doc = {
        "shape": [10, 20],
        "data_type": "float32",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [5, 7]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "zstd", "configuration": {"level": 0, "checksum": False}}],
        "attributes": {},
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }
    doc.update(changes)
    return doc


def group_doc(**changes):
    doc = {"attributes": {}, "zarr_format": 3, "node_type": "group"}
    doc.update(changes)
    return doc


# -- parsing every field --------------------------------------------------------------

def test_parse_every_field():
    doc = array_doc(
        shape=[100, 3, 0],
        data_type="int16",
        chunk_grid={"name": "regular", "configuration": {"chunk_shape": [10, 2, 4]}},
        chunk_key_encoding={"name": "default", "configuration": {"separator": "."}},
        fill_value=-5,
        codecs=[{"name": "transpose", "configuration": {"order": [2, 0, 1]}},
                {"name": "bytes", "configuration": {"endian": "big"}},
                {"name": "gzip", "configuration": {"level": 3}},
                {"name": "crc32c"}],
        attributes={"units": "m", "nested": {"a": [1, 2, None]}},
        dimension_names=["t", None, "x"],
    )
    meta = ArrayMetadata.from_json(json.dumps(doc))
    assert meta.shape == (100, 3, 0)
    assert meta.chunks == (10, 2, 4)
    assert meta.dtype == np.dtype("int16")
    assert isinstance(meta.dtype, np.dtype)
    assert meta.fill_value == -5
    assert meta.fill_value.dtype == np.dtype("int16")
    assert meta.separator == "."
    assert meta.chunk_key_encoding == "default"
    assert meta.attributes == {"units": "m", "nested": {"a": [1, 2, None]}}
    assert tuple(meta.dimension_names) == ("t", None, "x")
    assert list(meta.codecs) == [Transpose((2, 0, 1)), Bytes("big"), Gzip(3), Crc32c()]
    assert meta.ndim == 3
    assert meta.data_type == "int16"


def test_parse_minimal_document():
    doc = array_doc()
    del doc["attributes"]
    del doc["storage_transformers"]
    meta = ArrayMetadata.from_dict(doc)
    assert meta.attributes == {}
    assert meta.dimension_names is None
    assert meta.separator == "/"


@pytest.mark.parametrize("name", ALL_TYPES)
def test_every_data_type(name):
    fill = {"b": False, "i": 0, "u": 0, "f": 0.0, "c": [0.0, 0.0]}[np.dtype(name).kind]
    meta = ArrayMetadata.from_dict(array_doc(data_type=name, fill_value=fill))
    assert meta.dtype == np.dtype(name)
    assert meta.to_dict()["data_type"] == name


def test_v2_chunk_key_encoding():
    meta = ArrayMetadata.from_dict(array_doc(chunk_key_encoding={"name": "v2"}))
    assert meta.chunk_key_encoding == "v2"
    assert meta.separator == "."
    meta = ArrayMetadata.from_dict(array_doc(
        chunk_key_encoding={"name": "v2", "configuration": {"separator": "/"}}))
    assert meta.separator == "/"
    assert meta.to_dict()["chunk_key_encoding"] == {"name": "v2",
                                                    "configuration": {"separator": "/"}}


def test_default_encoding_without_configuration():
    meta = ArrayMetadata.from_dict(array_doc(chunk_key_encoding={"name": "default"}))
    assert meta.separator == "/"


def test_from_json_accepts_bytes():
    meta = ArrayMetadata.from_json(json.dumps(array_doc()).encode())
    assert meta.shape == (10, 20)
    g = GroupMetadata.from_json(json.dumps(group_doc(attributes={"a": 1})).encode())
    assert g.attributes == {"a": 1}


# -- fill values ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype,value,expected", [
    ("bool", True, True), ("bool", False, False),
    ("int8", -128, -128), ("int8", 127, 127), ("uint8", 255, 255),
    ("int64", -2**63, -2**63), ("uint64", 2**64 - 1, 2**64 - 1),
    ("float32", 1.5, 1.5), ("float64", -2.25, -2.25), ("float16", 3, 3.0),
])
def test_plain_fill_values(dtype, value, expected):
    meta = ArrayMetadata.from_dict(array_doc(data_type=dtype, fill_value=value))
    assert meta.fill_value == expected
    assert meta.fill_value.dtype == np.dtype(dtype)
    assert meta.to_dict()["fill_value"] == value
    assert type(meta.to_dict()["fill_value"]) is type(value) or np.dtype(dtype).kind == "f"


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_float_special_fill_values(dtype):
    for text, check in [("NaN", math.isnan), ("Infinity", lambda v: v == math.inf),
                        ("-Infinity", lambda v: v == -math.inf)]:
        meta = ArrayMetadata.from_dict(array_doc(data_type=dtype, fill_value=text))
        assert meta.fill_value.dtype == np.dtype(dtype)
        assert check(float(meta.fill_value))
        assert meta.to_dict()["fill_value"] == text
        assert json.loads(meta.to_json())["fill_value"] == text


@pytest.mark.parametrize("dtype,hexval", [
    ("float16", "0x3c00"),              # 1.0
    ("float16", "0x7e01"),              # a NaN with a payload
    ("float32", "0x3fc00000"),          # 1.5
    ("float32", "0x7fc00001"),          # a NaN with a payload
    ("float32", "0xffc00000"),          # a negative NaN
    ("float64", "0x3ff8000000000000"),  # 1.5
    ("float64", "0x7ff8000000000001"),  # a NaN with a payload
    ("float64", "0x8000000000000000"),  # -0.0
])
def test_hex_fill_values(dtype, hexval):
    meta = ArrayMetadata.from_dict(array_doc(data_type=dtype, fill_value=hexval))
    assert bits(meta.fill_value, dtype) == int(hexval, 16)
    # Re-encoding keeps the exact bits (a plain number or "NaN" where that is exact).
    again = ArrayMetadata.from_json(meta.to_json())
    assert bits(again.fill_value, dtype) == int(hexval, 16)
    encoded = meta.to_dict()["fill_value"]
    if math.isnan(float(meta.fill_value)) and encoded != "NaN":
        assert encoded == hexval


def test_hex_fill_value_uppercase_digits():
    meta = ArrayMetadata.from_dict(array_doc(data_type="float32", fill_value="0x3FC00000"))
    assert meta.fill_value == 1.5


def test_non_canonical_nan_is_written_as_hex():
    dtype = np.dtype("float32")
    nan = np.array(0x7fc00001, dtype="u4").view(dtype)[()]
    assert encode_fill_value(nan, dtype) == "0x7fc00001"
    assert encode_fill_value(np.float32(np.nan), dtype) == "NaN"


def test_negative_zero_fill_value_keeps_sign():
    for dtype in ["float16", "float32", "float64"]:
        meta = ArrayMetadata((2,), (2,), dtype, fill_value=-0.0)
        again = ArrayMetadata.from_json(meta.to_json())
        assert bits(again.fill_value, dtype) == bits(-0.0, dtype)
        assert np.signbit(again.fill_value)


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_fill_values(dtype):
    half = np.dtype(dtype).itemsize // 2
    one_hex = "0x" + format(bits(1.0, f"f{half}"), f"0{2 * half}x")
    cases = [
        ([1.5, -2.0], (1.5, -2.0)),
        ([0, 0], (0.0, 0.0)),
        (["NaN", 1.0], (math.nan, 1.0)),
        (["Infinity", "-Infinity"], (math.inf, -math.inf)),
        ([one_hex, "NaN"], (1.0, math.nan)),
        ([2.0, one_hex], (2.0, 1.0)),
    ]
    for value, (re, im) in cases:
        meta = ArrayMetadata.from_dict(array_doc(data_type=dtype, fill_value=value))
        fv = meta.fill_value
        assert fv.dtype == np.dtype(dtype)
        for got, want in ((fv.real, re), (fv.imag, im)):
            assert (math.isnan(got) and math.isnan(want)) or got == want
        again = ArrayMetadata.from_json(meta.to_json())
        assert part_bits(again.fill_value, dtype) == part_bits(fv, dtype)
        encoded = meta.to_dict()["fill_value"]
        assert isinstance(encoded, list) and len(encoded) == 2


def test_complex_hex_part_with_payload_round_trips():
    meta = ArrayMetadata.from_dict(array_doc(data_type="complex64",
                                             fill_value=["0x7fc00001", -1.0]))
    assert part_bits(meta.fill_value, "complex64")[0] == 0x7fc00001
    assert meta.to_dict()["fill_value"] == ["0x7fc00001", -1.0]


@pytest.mark.parametrize("dtype,value", [
    ("bool", 2), ("bool", -1), ("bool", 1.0), ("bool", "true"), ("bool", None),
    ("int8", 128), ("int8", -129), ("uint8", -1), ("uint64", 2**64), ("int32", 1.5),
    ("int32", "1"), ("int32", True), ("int32", None), ("int32", "NaN"),
    ("float32", True), ("float32", "nan"), ("float32", "inf"), ("float32", "1.0"),
    ("float32", None), ("float32", [1.0]),
    ("float32", "0x3c00"),              # too few digits for float32
    ("float16", "0x3fc00000"),          # too many digits for float16
    ("float64", "0xzzzzzzzzzzzzzzzz"),  # not hexadecimal
    ("complex64", 1.0), ("complex64", [1.0]), ("complex64", [1.0, 2.0, 3.0]),
    ("complex64", ["0x3ff0000000000000", 0.0]),  # a float64's bits for a float32 part
    ("complex128", [True, 0.0]), ("complex128", "NaN"),
])
def test_bad_fill_values(dtype, value):
    with pytest.raises(ParseError, match="fill_value"):
        ArrayMetadata.from_dict(array_doc(data_type=dtype, fill_value=value))


def test_parse_fill_value_directly():
    assert math.isnan(parse_fill_value("NaN", np.dtype("float64")))
    assert parse_fill_value(-3, np.dtype("int16")) == -3
    assert parse_fill_value([1, 2], np.dtype("complex128")) == 1 + 2j
    assert parse_fill_value(True, np.dtype("bool")) is np.True_


@pytest.mark.parametrize("value", [0, 1])
def test_bool_fill_value_0_or_1_is_read_and_written_as_false_or_true(value):
    # Early zarrita wrote a bool array's fill value as 0 or 1; zarr-python reads it.
    meta = ArrayMetadata.from_dict(array_doc(data_type="bool", fill_value=value))
    assert meta.fill_value is np.bool_(value)
    assert meta.to_dict()["fill_value"] is bool(value)
    assert json.loads(meta.to_json())["fill_value"] is bool(value)


@pytest.mark.parametrize("value", [0, 1])
def test_store_reads_bool_fill_value_0_or_1(value):
    store = zs.MemoryStore()
    store.set("b/zarr.json", json.dumps(array_doc(data_type="bool", fill_value=value,
                                                  shape=[3], chunk_grid={
                                                      "name": "regular", "configuration":
                                                      {"chunk_shape": [2]}})).encode())
    node = ArrayNode.of_path("/b")
    np.testing.assert_array_equal(store.read_array(node), np.full(3, bool(value)))
    store.write_array(node, (0,), not value)
    np.testing.assert_array_equal(store.read_array(node), [not value] + [bool(value)] * 2)
    # Any rewrite of the document writes the spec's form.
    store.set_attributes(node, {"rewritten": True})
    assert json.loads(store.get("b/zarr.json"))["fill_value"] is bool(value)


def test_bool_fill_value_0_or_1_is_refused_on_create():
    # Written strictly: create_array takes True/False only.
    with pytest.raises(zs.InvalidDataType):
        ArrayMetadata((2,), (2,), "bool", fill_value=1)


# -- constructor (the create_array path) -------------------------------------------------

def test_constructor_defaults():
    meta = ArrayMetadata((4, 5), (2, 2), "uint16")
    assert meta.fill_value == 0
    assert meta.attributes == {}
    assert meta.dimension_names is None
    assert meta.separator == "/"
    assert list(meta.codecs) == [Bytes("little"), Zstd(0, False)]


@pytest.mark.parametrize("dtype,zero", [("bool", False), ("int32", 0), ("float64", 0.0),
                                        ("complex64", 0j)])
def test_fill_value_none_means_zero(dtype, zero):
    meta = ArrayMetadata((2,), (2,), dtype, fill_value=None)
    assert meta.fill_value == zero
    assert meta.fill_value.dtype == np.dtype(dtype)


def test_constructor_accepts_numpy_dtypes():
    for spec in (np.float32, np.dtype("float32"), "<f4", ">f4", "f4", "float32"):
        assert ArrayMetadata((2,), (2,), spec).dtype == np.dtype("float32")


@pytest.mark.parametrize("dtype", ["U", "S", "V", "object",
                                   "float128" if hasattr(np, "float128") else "O",
                                   "not-a-type"])
def test_unsupported_dtype(dtype):
    with pytest.raises(zs.InvalidDataType):
        ArrayMetadata((2,), (2,), dtype)


@pytest.mark.parametrize("value,dtype", [(1.5, "int32"), (300, "uint8"), (-1, "uint8"),
                                         ("abc", "float32"), (1j, "float64"),
                                         (True, "int8"), (2, "bool")])
def test_constructor_bad_fill_value(value, dtype):
    with pytest.raises(zs.InvalidDataType):
        ArrayMetadata((2,), (2,), dtype, fill_value=value)


def test_constructor_fill_value_forms():
    assert math.isnan(ArrayMetadata((2,), (2,), "float32", fill_value="NaN").fill_value)
    assert ArrayMetadata((2,), (2,), "float32", fill_value=np.float32(2.5)).fill_value == 2.5
    assert ArrayMetadata((2,), (2,), "complex64", fill_value=(1, 2)).fill_value == 1 + 2j
    assert ArrayMetadata((2,), (2,), "complex64", fill_value=3 - 1j).fill_value == 3 - 1j
    assert ArrayMetadata((2,), (2,), "float64", fill_value=7).fill_value == 7.0


@pytest.mark.parametrize("kwargs,field", [
    (dict(shape=(4,), chunks=(2, 2)), "chunk_shape"),
    (dict(shape=(4,), chunks=(0,)), "chunk_shape"),
    (dict(shape=(-1,), chunks=(2,)), "shape"),
    (dict(shape=(4,), chunks=(2,), dimension_names=["a", "b"]), "dimension_names"),
    (dict(shape=(4,), chunks=(2,), dimension_names=[1]), "dimension_names"),
    (dict(shape=(4,), chunks=(2,), separator="-"), "separator"),
    (dict(shape=(4,), chunks=(2,), chunk_key_encoding="v9"), "chunk_key_encoding"),
    (dict(shape=(4,), chunks=(2,), attributes=[1]), "attributes"),
    (dict(shape=(4,), chunks=(2,), attributes={"x": object()}), "attributes"),
])
def test_constructor_rejects(kwargs, field):
    with pytest.raises(ParseError, match=field):
        ArrayMetadata(dtype="int8", **kwargs)


# -- bad documents ---------------------------------------------------------------------

def _mutate(path, value):
    def apply(doc):
        target = doc
        for k in path[:-1]:
            target = target[k]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return apply


_DELETE = object()

BAD_ARRAY_DOCS = [
    (("zarr_format",), _DELETE, "zarr_format"),
    (("zarr_format",), 2, "zarr_format"),
    (("node_type",), _DELETE, "node_type"),
    (("node_type",), "group", "node_type"),
    (("node_type",), "banana", "node_type"),
    (("shape",), _DELETE, "shape"),
    (("shape",), [10, -1], "shape"),
    (("shape",), "10", "shape"),
    (("shape",), [10, 2.5], "shape"),
    (("shape",), [True, 1], "shape"),
    (("data_type",), _DELETE, "data_type"),
    (("data_type",), "int128", "data_type"),
    (("data_type",), "<f4", "data_type"),
    (("data_type",), 5, "data_type"),
    (("chunk_grid",), _DELETE, "chunk_grid"),
    (("chunk_grid",), "regular", "chunk_grid"),
    (("chunk_grid", "name"), "rectangular", "chunk_grid"),
    (("chunk_grid", "configuration"), _DELETE, "chunk_shape"),
    (("chunk_grid", "configuration", "chunk_shape"), [5], "chunk_shape"),
    (("chunk_grid", "configuration", "chunk_shape"), [5, 0], "chunk_shape"),
    (("chunk_grid", "configuration", "chunk_shape"), None, "chunk_shape"),
    (("chunk_key_encoding",), _DELETE, "chunk_key_encoding"),
    (("chunk_key_encoding", "name"), "v3", "chunk_key_encoding"),
    (("chunk_key_encoding", "configuration"), "x", "chunk_key_encoding"),
    (("chunk_key_encoding", "configuration", "separator"), "-", "separator"),
    (("fill_value",), _DELETE, "fill_value"),
    (("fill_value",), "zero", "fill_value"),
    (("codecs",), _DELETE, "codecs"),
    (("codecs",), [], "codecs"),
    (("codecs",), {"name": "bytes"}, "codecs"),
    (("codecs",), [{"name": "unknown-codec"}], "codecs"),
    (("codecs",), [{"name": "zstd", "configuration": {"level": 0}}], "codecs"),
    (("codecs",), [{"name": "bytes"}, {"name": "bytes"}], "codecs"),
    (("codecs",), [{"name": "crc32c"}, {"name": "bytes", "configuration":
                                         {"endian": "little"}}], "codecs"),
    (("codecs",), [{"name": "bytes", "configuration": {"endian": "middle"}}], "codecs"),
    (("codecs",), [{"name": "bytes", "configuration": {"endian": "little", "x": 1}}],
     "codecs"),
    (("codecs",), [{"name": "transpose", "configuration": {"order": [0]}},
                   {"name": "bytes", "configuration": {"endian": "little"}}], "codecs"),
    (("storage_transformers",), [{"name": "some-transformer"}], "storage_transformers"),
    (("storage_transformers",), None, "storage_transformers"),
    (("attributes",), [1, 2], "attributes"),
    (("attributes",), "text", "attributes"),
    (("dimension_names",), ["x"], "dimension_names"),
    (("dimension_names",), ["x", 5], "dimension_names"),
    (("dimension_names",), "xy", "dimension_names"),
    (("unknown_field",), 1, "unknown_field"),
    (("unknown_field",), {"must_understand": True}, "unknown_field"),
    (("unknown_field",), {"value": 1}, "unknown_field"),
]


@pytest.mark.parametrize("path,value,field", BAD_ARRAY_DOCS,
                         ids=[f"{'.'.join(p)}={v if v is not _DELETE else 'deleted'}"
                              for p, v, _ in BAD_ARRAY_DOCS])
def test_bad_array_documents(path, value, field):
    doc = array_doc()
    _mutate(path, value)(doc)
    with pytest.raises(ParseError, match=field):
        ArrayMetadata.from_dict(doc)
    with pytest.raises(ParseError, match=field):
        ArrayMetadata.from_json(json.dumps(doc))


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", "3", "null", b"\xff\xfe{}",
                                  '{"zarr_format": 3'])
def test_not_a_json_object(text):
    with pytest.raises(ParseError):
        ArrayMetadata.from_json(text)
    with pytest.raises(ParseError):
        GroupMetadata.from_json(text)


def test_parse_error_is_value_error():
    with pytest.raises(ValueError):
        ArrayMetadata.from_json("{}")
    assert issubclass(ParseError, zs.ZarrSyncError)


def test_where_names_the_document():
    with pytest.raises(ParseError, match="g/a/zarr.json"):
        ArrayMetadata.from_json(json.dumps(array_doc(shape="x")), "g/a/zarr.json")


@pytest.mark.parametrize("doc,field", [
    (group_doc(zarr_format=2), "zarr_format"),
    ({"node_type": "group"}, "zarr_format"),
    (group_doc(node_type="array"), "node_type"),
    ({"zarr_format": 3}, "node_type"),
    (group_doc(attributes=[1]), "attributes"),
    (group_doc(extra_field=1), "extra_field"),
    (group_doc(extra_field={"must_understand": True}), "extra_field"),
])
def test_bad_group_documents(doc, field):
    with pytest.raises(ParseError, match=field):
        GroupMetadata.from_dict(doc)
    with pytest.raises(ParseError, match=field):
        GroupMetadata.from_json(json.dumps(doc))


# -- extensions: must_understand ---------------------------------------------------------

def test_unknown_array_field_tolerated_and_preserved():
    ext = {"must_understand": False, "configuration": {"k": [1, 2]}}
    meta = ArrayMetadata.from_dict(array_doc(my_extension=ext))
    assert meta.to_dict()["my_extension"] == ext
    assert json.loads(meta.to_json())["my_extension"] == ext
    again = ArrayMetadata.from_json(meta.to_json())
    assert again.to_dict()["my_extension"] == ext


def test_unknown_group_field_tolerated_and_preserved():
    ext = {"must_understand": False, "name": "x"}
    meta = GroupMetadata.from_dict(group_doc(my_extension=ext))
    assert meta.to_dict()["my_extension"] == ext
    assert GroupMetadata.from_json(meta.to_json()).to_dict()["my_extension"] == ext


def test_unknown_fields_preserved_when_the_store_rewrites_documents():
    ext = {"must_understand": False, "v": 1}
    store = zs.MemoryStore()
    store.set("zarr.json", json.dumps(group_doc(ext=ext)).encode())
    store.set("a/zarr.json", json.dumps(array_doc(shape=[10], chunk_grid={
        "name": "regular", "configuration": {"chunk_shape": [5]}}, ext=ext)).encode())
    node = ArrayNode.of_path("/a")
    store.reshape(node, (4,))
    doc = json.loads(store.get("a/zarr.json"))
    assert doc["shape"] == [4]
    assert doc["ext"] == ext
    arr = zs.Array(store, node)
    arr.attrs["new"] = 1
    doc = json.loads(store.get("a/zarr.json"))
    assert doc["ext"] == ext and doc["attributes"] == {"new": 1}
    store.set_attributes(zs.GroupNode.root(), {"g": 2})
    doc = json.loads(store.get("zarr.json"))
    assert doc["ext"] == ext and doc["attributes"] == {"g": 2}


def test_zarr_python_group_consolidated_metadata_null():
    meta = GroupMetadata.from_dict(group_doc(consolidated_metadata=None))
    assert meta.attributes == {}


# -- round trips ---------------------------------------------------------------------

ROUND_TRIP_CASES = [
    dict(shape=(10,), chunks=(3,), dtype="int8"),
    dict(shape=(), chunks=(), dtype="float64", fill_value=1.25),
    dict(shape=(4, 5, 6), chunks=(2, 5, 1), dtype="complex128", fill_value=1 - 2j,
         codecs=[Transpose((2, 1, 0)), Bytes("big"), Gzip(9), Crc32c()],
         attributes={"a": {"b": [1, "c", None, 2.5, True]}},
         dimension_names=["x", None, "z"], separator="."),
    dict(shape=(7, 7), chunks=(7, 7), dtype="float16", fill_value=float("-inf"),
         chunk_key_encoding="v2"),
    dict(shape=(3,), chunks=(3,), dtype="bool", fill_value=True, codecs=[Bytes()]),
    dict(shape=(8,), chunks=(4,), dtype="uint64", fill_value=2**64 - 1,
         codecs=[{"name": "bytes", "configuration": {"endian": "little"}},
                 {"name": "zstd", "configuration": {"level": -5, "checksum": True}}]),
    dict(shape=(2, 2), chunks=(1, 1), dtype="float32", fill_value=float("nan"),
         chunk_key_encoding="v2", separator="/"),
]


@pytest.mark.parametrize("kwargs", ROUND_TRIP_CASES)
def test_json_round_trip(kwargs):
    meta = ArrayMetadata(**kwargs)
    text = meta.to_json()
    assert isinstance(text, str)
    again = ArrayMetadata.from_json(text)
    assert again == meta
    assert again.to_dict() == meta.to_dict()
    assert again.to_json() == text
    assert json.loads(text) == json.loads(json.dumps(meta.to_dict()))
    for field in ("shape", "chunks", "dtype", "attributes", "separator",
                  "chunk_key_encoding", "dimension_names"):
        assert getattr(again, field) == getattr(meta, field)
    assert list(again.codecs) == list(meta.codecs)
    assert bits(again.fill_value, meta.dtype) == bits(meta.fill_value, meta.dtype) \
        if meta.dtype.kind != "c" else part_bits(again.fill_value, meta.dtype) == \
        part_bits(meta.fill_value, meta.dtype)


def test_to_dict_layout():
    meta = ArrayMetadata((6, 4), (3, 2), "int32", fill_value=7, attributes={"k": "v"},
                         dimension_names=["r", "c"])
    doc = meta.to_dict()
    assert doc == {
        "shape": [6, 4],
        "data_type": "int32",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [3, 2]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 7,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "zstd", "configuration": {"level": 0, "checksum": False}}],
        "attributes": {"k": "v"},
        "dimension_names": ["r", "c"],
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }
    assert "dimension_names" not in ArrayMetadata((2,), (2,), "int8").to_dict()


def test_one_byte_types_omit_endian():
    for dtype in ("bool", "int8", "uint8"):
        meta = ArrayMetadata((2,), (2,), dtype, codecs=[Bytes("big")])
        assert meta.to_dict()["codecs"] == [{"name": "bytes"}]
    meta = ArrayMetadata.from_dict(array_doc(data_type="uint8", fill_value=0,
                                             codecs=[{"name": "bytes"}]))
    assert meta.codecs[0].to_dict() == {"name": "bytes"}


def test_multi_byte_type_needs_endian():
    with pytest.raises(ParseError, match="codecs"):
        ArrayMetadata.from_dict(array_doc(codecs=[{"name": "bytes"}]))


def test_group_metadata_round_trip():
    meta = GroupMetadata({"title": "t", "list": [1, 2.5, None], "nested": {"x": True}})
    doc = meta.to_dict()
    assert doc == {"attributes": {"title": "t", "list": [1, 2.5, None],
                                  "nested": {"x": True}},
                   "zarr_format": 3, "node_type": "group"}
    again = GroupMetadata.from_json(meta.to_json())
    assert again == meta
    assert again.attributes == meta.attributes
    assert GroupMetadata().attributes == {}
    assert GroupMetadata.from_dict({"zarr_format": 3, "node_type": "group"}).attributes == {}


def test_metadata_attributes_are_copies():
    attrs = {"a": 1}
    meta = ArrayMetadata((2,), (2,), "int8", attributes=attrs)
    attrs["b"] = 2
    assert meta.attributes == {"a": 1}


def test_deepcopy_and_equality():
    meta = ArrayMetadata((4,), (2,), "float32", fill_value=1.0)
    clone = copy.deepcopy(meta)
    assert clone == meta
    assert meta != ArrayMetadata((4,), (2,), "float32", fill_value=2.0)
    assert meta != GroupMetadata()


# -- hostile documents (issue 19): each raised something other than a ZarrSyncError --

def _store_with(doc_text, key="a/zarr.json"):
    store = zs.MemoryStore()
    store.set(key, doc_text if isinstance(doc_text, bytes) else doc_text.encode())
    return store


def _nested_json(depth, inner="4"):
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize("field", ["shape", "dimension_names", "attributes"])
@pytest.mark.parametrize("depth", [200, 100_000])
def test_deeply_nested_json_is_a_parse_error(field, depth):
    doc = array_doc()
    text = json.dumps({**doc, field: "@@"}).replace('"@@"', _nested_json(depth))
    store = _store_with(text)
    node = ArrayNode.of_path("/a")
    with pytest.raises(ParseError, match="a/zarr.json: JSON nested deeper than 128"):
        store.array_metadata(node)
    with pytest.raises(ParseError, match="nested deeper"):
        store.find_all_nodes()
    with pytest.raises(ParseError, match="nested deeper"):
        store.read_array(node)


def test_nesting_within_the_bound_still_parses():
    attrs = json.loads(_nested_json(100, '{"x": 1}'))
    meta = ArrayMetadata.from_dict(array_doc(attributes={"deep": attrs}))
    assert meta.attributes["deep"] == attrs


@pytest.mark.parametrize("codecs, message", [
    ([{"name": ["bytes"]}], "codec name must be a string, got \\['bytes'\\]"),
    ([{"name": {"a": 1}}], "codec name must be a string"),
    ([{"name": "sharding_indexed", "configuration": {"chunk_shape": [5, 7], "codecs": 5}}],
     "codecs must be a list of codecs, got 5"),
    ([{"name": "bytes", "configuration": {"endian": ["little"]}}], "endian"),
    ([{"name": "bytes"}, {"name": "zstd", "configuration": {"level": [1]}}],
     "zstd level must be an integer"),
    ([{"name": "bytes"}, {"name": "gzip", "configuration": ["level", 1]}],
     "configuration must be an object"),
])
def test_codec_fields_of_the_wrong_type_are_parse_errors(codecs, message):
    with pytest.raises(ParseError, match=message):
        ArrayMetadata.from_dict(array_doc(codecs=codecs))


@pytest.mark.parametrize("changes, message", [
    ({"shape": [2 ** 64, 1]}, "shape: 18446744073709551616 does not fit in int64"),
    ({"shape": [2 ** 62, 4]}, "shape: .* more than int64 can count"),
    ({"shape": [1] * 65, "chunk_grid": {"name": "regular",
                                        "configuration": {"chunk_shape": [1] * 65}}},
     "at most 64 dimensions"),
    ({"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2 ** 63, 1]}}},
     "chunk_shape: 9223372036854775808 does not fit in int64"),
    ({"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2 ** 40, 2 ** 30]}}},
     "chunk_shape: .* more than int64 can count"),
    ({"shape": [2 ** 63 - 1, 1], "data_type": "int8", "fill_value": 0},
     "shape: 9223372036854775807 on axis 0 with chunks of 5 makes a chunk grid that ends "
     "past int64"),
    ({"fill_value": 10 ** 400}, "fill_value: 1000.* is out of range for float32"),
    ({"fill_value": 1e300}, "fill_value: 1e\\+300 is out of range for float32"),
    ({"fill_value": "0x-fff0000"}, "is not hexadecimal"),
])
def test_overflowing_numbers_are_parse_errors_naming_the_field(changes, message):
    with pytest.raises(ParseError, match=message):
        ArrayMetadata.from_dict(array_doc(**changes))


def test_float_fill_values_that_round_into_range_are_read():
    meta = ArrayMetadata.from_dict(array_doc(data_type="float16", fill_value=65519))
    assert meta.fill_value == np.float16(65504)


LITTLE = {"name": "bytes", "configuration": {"endian": "little"}}


def test_chunks_larger_than_max_chunk_bytes_are_parse_errors():
    """The declared chunk, or a sharded array's inner chunk or shard index,
    may not decode to more than ``max_chunk_bytes``: never a MemoryError."""
    huge = array_doc(shape=[2 ** 40], chunk_grid={
        "name": "regular", "configuration": {"chunk_shape": [2 ** 40]}})
    with pytest.raises(ParseError, match="chunk_shape: chunks of \\[1099511627776\\] hold "
                                         "4398046511104 bytes decoded, more than "
                                         "max_chunk_bytes"):
        _store_with(json.dumps(huge)).read_array(ArrayNode.of_path("/a"), (slice(0, 1),))
    with zs.config.set(max_chunk_bytes=1 << 20):
        ArrayMetadata.from_dict(array_doc(shape=[512, 512], chunk_grid={
            "name": "regular", "configuration": {"chunk_shape": [512, 512]}}))  # 1 MiB
        with pytest.raises(ParseError, match="max_chunk_bytes \\(1048576"):
            ArrayMetadata.from_dict(array_doc(shape=[513, 512], chunk_grid={
                "name": "regular", "configuration": {"chunk_shape": [513, 512]}}))
        sharded = {"name": "sharding_indexed", "configuration": {
            "chunk_shape": [1, 1], "codecs": [LITTLE],
            "index_codecs": [LITTLE]}}
        with pytest.raises(ParseError, match="shard index of 262144 inner chunks"):
            ArrayMetadata.from_dict(array_doc(shape=[512, 512], codecs=[sharded], chunk_grid={
                "name": "regular", "configuration": {"chunk_shape": [512, 512]}}))
        inner = {"name": "sharding_indexed", "configuration": {
            "chunk_shape": [1024, 512], "codecs": [LITTLE]}}
        with pytest.raises(ParseError, match="sharding_indexed.chunk_shape"):
            ArrayMetadata.from_dict(array_doc(shape=[2048, 512], codecs=[inner], chunk_grid={
                "name": "regular", "configuration": {"chunk_shape": [2048, 512]}}))


def test_resizing_past_int64_is_an_invalid_resize_shape():
    store = zs.MemoryStore()
    node = ArrayNode.of_path("/a")
    store.create_array(node, shape=(4,), chunks=(2,), dtype="float64")
    with pytest.raises(zs.InvalidResizeShape, match="more than int64 can count"):
        store.reshape(node, (2 ** 61,))
    bools = ArrayNode.of_path("/b")
    store.create_array(bools, shape=(4,), chunks=(2,), dtype="bool")
    with pytest.raises(zs.InvalidResizeShape, match="ends past int64"):
        store.reshape(bools, (2 ** 63 - 2,))
    assert store.array_metadata(node).shape == (4,)


def test_a_grid_ending_near_int64_reads_its_last_elements():
    """The largest shape whose chunk grid fits: the fuzzer's MemoryError at
    2 ** 63 - 1 was the grid's end overflowing in the kernels."""
    store = zs.MemoryStore()
    node = ArrayNode.of_path("/a")
    n = 2 ** 63 - 5
    store.create_array(node, shape=(n,), chunks=(4,), dtype="bool")
    store.write_array(node, (slice(n - 2, n),), np.array([True, False]))
    np.testing.assert_array_equal(store.read_array(node, (slice(n - 3, n),)),
                                  [False, True, False])


def test_documents_larger_than_max_document_bytes_are_refused_unread():
    doc = json.dumps(array_doc(attributes={"pad": "x" * 5000})).encode()
    store = _store_with(doc)
    node = ArrayNode.of_path("/a")
    assert store.array_metadata(node).attributes["pad"] == "x" * 5000
    with zs.config.set(max_document_bytes=4096):
        fresh = _store_with(doc)
        for call in (lambda: fresh.array_metadata(node), fresh.find_all_nodes):
            with pytest.raises(ParseError, match="more than max_document_bytes"):
                call()
        with pytest.raises(ParseError, match="more than max_document_bytes"):
            _store_with(doc, "zarr.json").group_metadata(zs.GroupNode.root())


def test_hostile_values_are_cut_short_in_messages():
    with pytest.raises(ParseError) as info:
        ArrayMetadata.from_dict(array_doc(shape="s" * 10_000))
    assert len(str(info.value)) < 200


def test_array_metadata_repr_shows_fill_value_dimension_names_and_attributes():
    meta = ArrayMetadata((3, 4), (2, 2), "float32", fill_value=float("nan"),
                         dimension_names=["x", None], attributes={"units": "K"})
    text = repr(meta)
    assert "fill_value=nan" in text
    assert "dimension_names=('x', None)" in text
    assert "attributes={'units': 'K'}" in text
    assert "fill_value=0," in repr(ArrayMetadata((3,), (2,), "int8"))
    huge = ArrayMetadata((3,), (2,), "int8", attributes={"pad": "x" * 10_000})
    assert len(repr(huge)) < 500
