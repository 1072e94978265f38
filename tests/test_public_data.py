"""Public test data from other Zarr implementations, read by zarrsync.

``tests/fixtures/public/<source>/`` holds stores copied unchanged from the test
data that other implementations publish (origins, commits and licences in
``tests/fixtures/public/README.md``). Every outermost ``*.zarr`` directory there, or
directory holding Zarr metadata, is a store;
its nodes are found from its files (``zarr.json``, else ``.zarray`` / ``.zgroup``),
independently of either library. The rule for every array in every store:

* anything that zarr-python reads, zarrsync reads identically: the same shape,
  the same data type (up to byte order), and the same bits in every element
  (NaN payloads, -0.0, NaT, every string); also the same metadata (chunk shape,
  fill value bits, attributes, dimension names) and the same values for a few
  partial selections;
* where the generator's data is known (the generator scripts and Rust tests in
  the source repository), zarrsync reads that data too (``EXPECTED``);
* an array that zarr-python cannot read (a codec or data type it lacks,
  ``NOT_READ_BY_ZARR_PYTHON``) is read by zarrsync and matches the generator's
  data if zarrsync supports the feature, else zarrsync raises a
  ``zarrsync.errors.ZarrSyncError`` whose message names the feature: never a
  crash, never silently wrong data;
* ``find_all_nodes`` finds exactly the nodes the files define.

Zarr v2 stores (``.zarray`` only) are included on purpose: zarrsync must read
them as zarr-python does.
"""

import json
import pathlib
import warnings
import zipfile

import numpy as np
import pytest

import zarrsync as zs
from interop_matrix import cell, codec_label
from zarrsync.errors import ZarrSyncError

zarr = pytest.importorskip("zarr")

PUBLIC = pathlib.Path(__file__).parent / "fixtures" / "public"


# -- the stores and their nodes, from the files alone ---------------------------------------

def _is_store_root(directory):
    return directory.suffix == ".zarr" or any(
        (directory / name).is_file() for name in ("zarr.json", ".zarray", ".zgroup"))


def _stores():
    """Every store under ``PUBLIC``: the outermost directories named ``*.zarr`` or holding
    Zarr metadata (``zarr.json``, ``.zarray``, ``.zgroup``)."""
    found = []
    for path in sorted(p for p in PUBLIC.rglob("*") if p.is_dir()):
        if _is_store_root(path) and not any(path.is_relative_to(f) for f in found):
            found.append(path)
    return found


def _node_type(directory):
    """``"array"``, ``"group"`` or ``None`` for one directory; ``zarr.json`` wins over v2
    documents (as in zarr-python, which warns when both are present)."""
    v3 = directory / "zarr.json"
    if v3.is_file():
        return json.loads(v3.read_text())["node_type"]
    if (directory / ".zarray").is_file():
        return "array"
    if (directory / ".zgroup").is_file():
        return "group"
    return None


def _nodes(store_dir):
    """``(array paths, group paths)`` of one store, as node paths ("/", "/a/b")."""
    arrays, groups = [], []
    for directory in [store_dir] + sorted(p for p in store_dir.rglob("*") if p.is_dir()):
        kind = _node_type(directory)
        rel = directory.relative_to(store_dir).as_posix()
        path = "/" if rel == "." else "/" + rel
        if kind == "array":
            arrays.append(path)
        elif kind == "group":
            groups.append(path)
    return arrays, groups


STORES = _stores()
STORE_IDS = [s.relative_to(PUBLIC).as_posix() for s in STORES]
ARRAYS = [(store, path) for store in STORES for path in _nodes(store)[0]]


def _array_id(store, path):
    """``"<source>/<store>:<path>"``, e.g. ``"zarrs/v2/array_none_C.zarr:/"``."""
    return f"{store.relative_to(PUBLIC).as_posix()}:{path}"


ARRAY_IDS = [_array_id(s, p) for s, p in ARRAYS]


# -- what the generators wrote ----------------------------------------------------------------

# zarrs/tests/data/v2_generate.py, v3_generate.py (and zarrs/src/array.rs array_v2_to_v3):
# float32 10x10 arange, chunks 5x5.
ARANGE_10x10 = np.arange(100, dtype=np.float32).reshape(10, 10)
# zarrs/tests/data/zarr_python_adler32.py, zarr_python_fletcher32.py; zarrs/tests/zarr_python.rs
ARANGE_100x100_U16 = np.arange(100 * 100, dtype=np.uint16).reshape(100, 100)
# zarrs/tests/data/zarr_python_numpy_time.py (numpy casts the list to each unit; the
# picosecond cast of 8760 h wraps around, and zarr-python stored the wrapped value)
DATETIMES = np.array([np.datetime64(0, "Y"), np.datetime64("NaT", "s"), np.datetime64("2005-02-03"),
                      np.datetime64("2005-02-03T04:05"), np.datetime64("2005-02-03T04:05:06"),
                      np.datetime64("NaT", "s")])
TIMEDELTAS = np.array([np.timedelta64(8760, "h"), np.timedelta64(2, "W"), np.timedelta64(3, "D"),
                       np.timedelta64(4, "h"), np.timedelta64(5, "m"), np.timedelta64(6, "s"),
                       np.timedelta64(7_000, "ms"), np.timedelta64(8_000_000, "us"),
                       np.timedelta64(9_000_000_000, "ns"), np.timedelta64(0, "ns"),
                       np.timedelta64("NaT", "ns")])
# zarrs/tests/data/zarr_python_fixed_length_utf32.py, zarrs/tests/zarr_python_fixed_length_utf32.rs
UTF32_STRINGS = ["abc", "\N{PARTY POPPER}", "hi", "te", ""]


def _strings(values):
    return np.array(values, dtype=np.dtypes.StringDType())


def _nan_bits(dtype, shape):
    """An array of the canonical quiet NaN of ``dtype`` (the fill value ``"NaN"``)."""
    dtype = np.dtype(dtype)
    bits = {4: 0x7FC00000, 8: 0x7FF8000000000000}[dtype.itemsize]
    return np.full(shape, bits, dtype=f"<u{dtype.itemsize}").view(dtype.newbyteorder("<"))


def _check_array_write_read(a):
    # zarrs/examples/array_write_read.rs never writes chunk [0, 0]: it reads as the fill
    # value NaN (0x7fc00000); the other chunks exist.
    assert a.shape == (8, 8) and a.dtype == np.float32
    _assert_identical(a[:4, :4], _nan_bits("float32", (4, 4)), "chunk [0, 0] (fill value)")
    assert not np.isnan(a[4:, :]).any()


def _check_cities(a):
    # zarrs/tests/cities.rs (the first column of zarrs/tests/data/cities.csv)
    assert a.shape == (47868,)
    assert (a[0], a[47862], a[47867]) == ("Tokyo", "Sariw\u014fn-si", "Charlotte Amalie")


# Values the generators wrote, by array id: an ndarray (must match bit for bit, dtype up
# to byte order), an ``Approx`` (a lossy codec), or a callable that asserts.
class Approx:
    def __init__(self, value, atol):
        self.value, self.atol = value, atol


EXPECTED = {}
for _name in ["array_none_C", "array_none_F", "array_blosc_C", "array_blosc_F", "array_gzip_C",
              "array_bz2_C", "array_zstd_C", "array_pcodec_C"]:
    EXPECTED[f"zarrs/v2/{_name}.zarr:/"] = ARANGE_10x10
for _name in ["array_none", "array_none_transpose", "array_blosc", "array_blosc_transpose",
              "array_gzip", "array_bz2", "array_zstd", "array_pcodec"]:
    EXPECTED[f"zarrs/v3/{_name}.zarr:/"] = ARANGE_10x10
for _name in ["none", "adler32", "blosc", "gzip", "bz2", "zstd", "fletcher32", "zlib", "pcodec"]:
    EXPECTED[f"zarrs/v3_zarr_python/array_{_name}.zarr:/"] = ARANGE_10x10
for _store in ["v2/array_zfpy_C.zarr", "v3/array_zfpy.zarr", "v3_zarr_python/array_zfpy.zarr"]:
    # ZFPY(mode=4, tolerance=0.01): fixed accuracy, lossy
    EXPECTED[f"zarrs/{_store}:/"] = Approx(ARANGE_10x10, atol=0.01)
EXPECTED.update({
    "zarrs/zarr_python_compat/adler32.zarr:/": ARANGE_100x100_U16,
    "zarrs/zarr_python_compat/fletcher32.zarr:/": ARANGE_100x100_U16,
    # zarrs/tests/data/v2_fill_value.py, zarrs/tests/zarr_python.rs
    "zarrs/zarr_python_compat/bool_v2_fv_null.zarr:/": np.array([True, False, False, False, False]),
    "zarrs/zarr_python_compat/int_v2_fv_null.zarr:/": np.array([42, 123, 0, 0, 0], dtype=np.int32),
    "zarrs/zarr_python_compat/float_v2_fv_null.zarr:/":
        np.array([3.14, 2.71, 0, 0, 0], dtype=np.float32),
    "zarrs/zarr_python_compat/str_v2_fv_null.zarr:/": _strings(["a", "bb", "", "", ""]),
    # fill_value 0 on a v2 string array: element 4 lies in a chunk never written, and
    # zarr-python 3.1.6 reads it as str(0) == "0" (zarrs reads ""; the generator's own
    # check of "" failed, see v2_fill_value.py). zarrsync follows zarr-python.
    "zarrs/zarr_python_compat/str_v2_fv_0.zarr:/": _strings(["a", "bb", "", "", "0"]),
    "zarrs/zarr_python_compat/fixed_length_utf32_v3_le.zarr:/": np.array(UTF32_STRINGS, "<U4"),
    "zarrs/zarr_python_compat/fixed_length_utf32_v2_le.zarr:/": np.array(UTF32_STRINGS, "<U4"),
    "zarrs/zarr_python_compat/fixed_length_utf32_v2_be.zarr:/": np.array(UTF32_STRINGS, ">U4"),
    # zarrs/tests/data/v3_bytes.py, zarrs/tests/v3_bytes.rs
    "zarrs/zarr_python_compat/v3_bytes.zarr:/":
        np.array([b"New York", b"Los Angeles", b"Chicago"], dtype=object),
    "zarrs/zarr_python_compat/cities_v3.zarr:/": _check_cities,
    # zarrs/tests/data/issue_287.py (shapely.to_wkt of three boxes)
    "zarrs/issue_287.zarr:/meta/date":
        np.array(["2023-01-01", "2023-01-02", "2023-01-03"], dtype="datetime64[ms]"),
    "zarrs/issue_287.zarr:/meta/collection":
        _strings(["collection_a", "collection_b", "collection_c"]),
    "zarrs/issue_287.zarr:/meta/bbox": _strings([
        f"POLYGON (({n} -{n}, {n} {n}, -{n} {n}, -{n} -{n}, {n} -{n}))" for n in (10, 20, 30)]),
    # zarrs/examples/sharded_array_write_read.rs
    "zarrs/sharded_array_write_read.zarr:/group/array":
        np.arange(64, dtype=np.uint16).reshape(8, 8),
    "zarrs/array_write_read.zarr:/group/array": _check_array_write_read,
    # no chunk was ever written: all fill value "NaN"
    "zarrs/hierarchy.zarr:/a/foo": _nan_bits("float64", (10000, 1000)),
    "zarrs/hierarchy.zarr:/a/baz": _nan_bits("float64", (10000, 1000)),
    # zarrs/tests/codec_bitround.rs: [0.0, 0.1, 1.2, 12.3, 123.4, 1234.5, NaN, inf, -inf]
    # rounded to keepbits=3 (the same bits as numcodecs.BitRound(3)); bitround decodes as
    # the identity.
    "zarrs/codec/bitround/bitround_float32.zarr:/": np.array(
        [0, 1037041664, 1067450368, 1094713344, 1123024896, 1151336448, 2143289344,
         2139095040, 4286578688], dtype="<u4").view("<f4"),
    # [0, 1, 10, 11, 100, 123, 200, 208, 209, 255] rounded to 3 significant bits by zarrs
    "zarrs/codec/bitround/bitround_uint8.zarr:/":
        np.array([0, 1, 10, 12, 96, 128, 192, 192, 224, 224], dtype=np.uint8),
})
for _unit in ["Y", "W", "D", "h", "m", "s", "ms", "us", "ns", "10ms", "10us"]:
    EXPECTED[f"zarrs/zarr_python_compat/datetime64[{_unit}].zarr:/"] = \
        DATETIMES.astype(f"datetime64[{_unit}]")
def _wrapping_ps(values):
    """``values`` cast to picoseconds as the NumPy of the generator did: wrapping
    around on overflow (NumPy 2.5 raises instead)."""
    ns = values.astype("timedelta64[ns]").view("i8")
    with np.errstate(over="ignore"):
        ps = np.where(np.isnat(values), ns, ns * 1000)
    return ps.view("timedelta64[ps]")


for _unit in ["ms", "us", "ns", "ps", "10ms", "10us"]:
    EXPECTED[f"zarrs/zarr_python_compat/timedelta64[{_unit}].zarr:/"] = (
        _wrapping_ps(TIMEDELTAS) if _unit == "ps" else TIMEDELTAS.astype(f"timedelta64[{_unit}]"))



def _zarr2_format_compatibility_data():
    """The arrays of zarr-python 2's ``test_format_compatibility`` (tests/test_storage.py,
    commented out at zarr-python f7993db), which wrote ``fixture/<i>/<j>``: array ``i``
    with compressor ``j`` (None, Zlib(1), BZ2(1), Blosc zstd shuffle 0/1/2, Blosc lz4).
    NumPy's legacy seeded generator gives the same values in every NumPy version."""
    rs = np.random.RandomState(42)
    return [
        np.arange(1111, dtype="<i1"),
        np.arange(1111, dtype="<i2"),
        np.arange(1111, dtype="<i4"),
        np.arange(1111, dtype="<i8"),
        rs.randint(0, 200, size=2222, dtype="u1").astype("<u1"),
        rs.randint(0, 2000, size=2222, dtype="u2").astype("<u2"),
        rs.randint(0, 2000, size=2222, dtype="u4").astype("<u4"),
        rs.randint(0, 2000, size=2222, dtype="u8").astype("<u8"),
        np.linspace(0, 1, 3333, dtype="<f2"),
        np.linspace(0, 1, 3333, dtype="<f4"),
        np.linspace(0, 1, 3333, dtype="<f8"),
        rs.normal(loc=0, scale=1, size=4444).astype("<f2"),
        rs.normal(loc=0, scale=1, size=4444).astype("<f4"),
        rs.normal(loc=0, scale=1, size=4444).astype("<f8"),
        rs.choice([b"A", b"C", b"G", b"T"], size=5555, replace=True).astype("S"),
        rs.choice(["foo", "bar", "baz", "quux"], size=5555, replace=True).astype("<U"),
        rs.choice([0, 1 / 3, 1 / 7, 1 / 9, np.nan], size=5555, replace=True).astype("<f8"),
        rs.randint(0, 2, size=5555, dtype=bool),
        np.arange(20000, dtype="<i4").reshape(2000, 10, order="C"),
        np.arange(20000, dtype="<i4").reshape(200, 100, order="F"),
        np.arange(20000, dtype="<i4").reshape(200, 10, 10, order="C"),
        np.arange(20000, dtype="<i4").reshape(20, 100, 10, order="F"),
        np.arange(20000, dtype="<i4").reshape(20, 10, 10, 10, order="C"),
        np.arange(20000, dtype="<i4").reshape(20, 10, 10, 10, order="F"),
    ]


_ZARR2_DATA = _zarr2_format_compatibility_data()
_FIXTURE = PUBLIC / "zarr-python" / "fixture"
for _group in (sorted(_FIXTURE.iterdir()) if _FIXTURE.is_dir() else []):
    if _group.name.isdigit():
        for _array in sorted(_group.iterdir()):
            if (_array / ".zarray").is_file():
                EXPECTED[f"zarr-python/fixture:/{_group.name}/{_array.name}"] = \
                    _ZARR2_DATA[int(_group.name)]
# zarr-python 2's tests/test_dim_separator.py: [[1, 2], [3, 4]] as <i8, chunk key "0.0"
# (flat, flat_legacy, meta) or "0/0" (nested: "dimension_separator": "/").
for _name in ["flat", "flat_legacy", "nested", "meta"]:
    EXPECTED[f"zarr-python/fixture:/{_name}"] = np.array([[1, 2], [3, 4]], dtype="<i8")
# nested_legacy holds its chunk at "0/0" but has no "dimension_separator", so by the v2
# spec its key is "0.0": the chunk is missing and the array reads as the fill value 0
# (zarr-python 3 does so; zarr-python 2 read [[1, 2], [3, 4]] through NestedDirectoryStore).
EXPECTED["zarr-python/fixture:/nested_legacy"] = np.zeros((2, 2), dtype="<i8")

# Arrays that zarr-python 3.1 cannot read: (the feature a zarrsync error must name if
# zarrsync does not read them either, what zarr-python's error says). zarrsync either
# reads them (then ``EXPECTED`` must hold) or raises a ZarrSyncError naming the feature.
NOT_READ_BY_ZARR_PYTHON = {
    # zarrs' name for the codec (zarr-python has only numcodecs.bitround)
    "zarrs/codec/bitround/bitround_float32.zarr:/": ("bitround", "bitround"),
    "zarrs/codec/bitround/bitround_uint8.zarr:/": ("bitround", "bitround"),
    # zarrs' optional data type
    "zarrs/v3/array_optional.zarr:/array": ("optional", "optional"),
    "zarrs/v3/array_optional_nested.zarr:/array": ("optional", "optional"),
    # numcodecs.pcodec / numcodecs.zfpy need the pcodec / zfpy packages; where they are
    # installed zarr-python reads these, and zarrsync must then match it as well
    "zarrs/v2/array_pcodec_C.zarr:/": ("pcodec", "pcodec"),
    "zarrs/v3/array_pcodec.zarr:/": ("pcodec", "pcodec"),
    "zarrs/v3_zarr_python/array_pcodec.zarr:/": ("pcodec", "pcodec"),
    "zarrs/v2/array_zfpy_C.zarr:/": ("zfpy", "zfpy"),
    "zarrs/v3/array_zfpy.zarr:/": ("zfpy", "zfpy"),
    "zarrs/v3_zarr_python/array_zfpy.zarr:/": ("zfpy", "zfpy"),
}
# zarr-python 2 wrote "fill_value": 0 for |S1 and <U4 arrays, which the v2 spec does not
# allow (a base64 string for S, a string for U); zarr-python 3 refuses the metadata.
for _key in list(EXPECTED):
    if _key.startswith(("zarr-python/fixture:/14/", "zarr-python/fixture:/15/")):
        NOT_READ_BY_ZARR_PYTHON[_key] = ("fill_value", "Invalid type: 0")

READ_BY_ZARR_PYTHON = [(s, p) for s, p in ARRAYS if _array_id(s, p) not in NOT_READ_BY_ZARR_PYTHON]
NOT_READ = [(s, p) for s, p in ARRAYS if _array_id(s, p) in NOT_READ_BY_ZARR_PYTHON]
WITH_EXPECTED = [(s, p) for s, p in ARRAYS if _array_id(s, p) in EXPECTED
                 and _array_id(s, p) not in NOT_READ_BY_ZARR_PYTHON]


def _ids(pairs):
    return [_array_id(s, p) for s, p in pairs]


# -- reading --------------------------------------------------------------------------------

def _open_zarr_python(store_dir, path):
    with warnings.catch_warnings():
        # "both zarr.json and .zarray exist" (zarrs' v3/ stores), "consolidated_metadata
        # is null" (issue_287.zarr), unstable extension data types, ...
        warnings.simplefilter("ignore")
        return zarr.open_array(zarr.storage.LocalStore(store_dir, read_only=True),
                               path=path.strip("/"), mode="r")


def _read_zarr_python(store_dir, path, selection=Ellipsis):
    z = _open_zarr_python(store_dir, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(z[selection])


def _zs_node(path):
    return zs.ArrayNode.root() if path == "/" else zs.ArrayNode.of_path(path)


def _read_zarrsync(store_dir, path, selection=Ellipsis):
    store = zs.FilesystemStore(str(store_dir), mode="r")
    return store.read_array(_zs_node(path), selection)


# -- comparing ------------------------------------------------------------------------------

def _native(a):
    """The same values in native byte order, bits unchanged."""
    if a.dtype.kind in "biufcmMUSV" and not a.dtype.isnative:
        return a.byteswap().view(a.dtype.newbyteorder("="))
    return a


def _same_dtype(actual, expected):
    if expected.kind in "biufcmMUSV":
        return actual.newbyteorder("=") == expected.newbyteorder("=")
    return actual == expected  # StringDType, object


def _assert_identical(actual, expected, what=""):
    """Same shape, same data type up to byte order, and the same bits in every element."""
    assert isinstance(actual, np.ndarray), f"{what}: {type(actual)} is not a numpy array"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert _same_dtype(actual.dtype, expected.dtype), \
        f"{what}: dtype {actual.dtype!r} != {expected.dtype!r}"
    if expected.dtype.kind in "biufcmMUSV":
        a, e = np.ascontiguousarray(_native(actual)), np.ascontiguousarray(_native(expected))
        size = e.dtype.itemsize
        if size in (1, 2, 4, 8):
            a, e = a.view(f"u{size}"), e.view(f"u{size}")
        else:
            a = a.view(np.uint8).reshape(a.shape + (-1,))
            e = e.view(np.uint8).reshape(e.shape + (-1,))
        if not np.array_equal(a, e):
            differ = np.argwhere(a != e)[:5]
            if a.ndim > actual.ndim:
                differ = np.unique(differ[:, :-1], axis=0)
            details = "; ".join(
                f"{tuple(int(i) for i in idx)}: {actual[tuple(idx)]!r} vs {expected[tuple(idx)]!r}"
                f" (bits {_hex(a[tuple(idx)])} vs {_hex(e[tuple(idx)])})" for idx in differ)
            raise AssertionError(f"{what}: elements differ, first at {details}")
    else:
        a, e = actual.ravel().tolist(), expected.ravel().tolist()
        differ = [i for i, (x, y) in enumerate(zip(a, e)) if type(x) is not type(y) or x != y]
        assert not differ, "{}: elements differ, first at {}".format(
            what, "; ".join(f"[{i}]: {a[i]!r} vs {e[i]!r}" for i in differ[:5]))


def _hex(bits):
    return "0x" + np.atleast_1d(bits).tobytes()[::-1].hex() if np.ndim(bits) == 0 \
        else "0x" + bytes(bits).hex()


def _check_expected(actual, expected, what):
    if callable(expected):
        expected(actual)
    elif isinstance(expected, Approx):
        assert actual.shape == expected.value.shape and actual.dtype == expected.value.dtype, \
            f"{what}: {actual.shape} {actual.dtype}"
        np.testing.assert_allclose(actual, expected.value, rtol=0, atol=expected.atol)
    else:
        _assert_identical(actual, expected, what)


def _fill_bits(value, dtype):
    """A fill value as comparable bits (``None`` stays ``None``)."""
    if value is None:
        return None
    if dtype.kind in "biufcmM":
        return _native(np.asarray(value, dtype=dtype)).tobytes()
    return value if isinstance(value, (str, bytes)) else str(value)


def _selections(shape):
    """A few partial reads: inside one chunk, across chunk boundaries, one element."""
    if not shape:
        return []
    cap = 300  # keeps the 10000 x 1000 arrays quick; still crosses chunk boundaries
    return [
        tuple(slice(n // 3, min(n - n // 4, n // 3 + cap)) for n in shape),
        tuple(slice(1, min(n, 1 + cap)) for n in shape),
        (shape[0] - 1,) + tuple(slice(n - min(n, cap), None) for n in shape[1:]),
        tuple(0 for n in shape),
    ]


# -- tests ----------------------------------------------------------------------------------

def test_every_store_is_documented():
    """Each vendored store is listed in the README (origin, commit, licence), and the
    vendored data stays small."""
    readme = (PUBLIC / "README.md").read_text()
    assert STORES, "no stores under tests/fixtures/public"
    for store in STORES:
        source = store.relative_to(PUBLIC).parts[0]
        assert f"## {source}" in readme, f"{source}: no section in the README"
        # each store, or the folder of stores holding it, is named in the README
        first = store.relative_to(PUBLIC / source).parts[0]
        assert f"`{first}" in readme, f"{store}: {first} is not in the README"
    total = sum(f.stat().st_size for f in PUBLIC.rglob("*") if f.is_file())
    assert total < 2_000_000, f"tests/fixtures/public holds {total} bytes"
    for store in STORES:
        arrays, groups = _nodes(store)
        assert arrays or groups, f"{store}: no Zarr node in it"


@pytest.mark.parametrize("store_dir", STORES, ids=STORE_IDS)
def test_find_all_nodes(store_dir):
    """zarrsync finds exactly the arrays and groups that the store's files define."""
    arrays, groups = _nodes(store_dir)
    store = zs.FilesystemStore(str(store_dir), mode="r")
    found_arrays, found_groups = store.find_all_nodes()
    assert sorted(a.path for a in found_arrays) == sorted(arrays)
    assert sorted(g.path for g in found_groups) == sorted(groups)


@pytest.mark.parametrize("store_dir,path", READ_BY_ZARR_PYTHON, ids=_ids(READ_BY_ZARR_PYTHON))
def test_metadata_matches_zarr_python(store_dir, path):
    z = _open_zarr_python(store_dir, path)
    md = zs.FilesystemStore(str(store_dir), mode="r").array_metadata(_zs_node(path))
    assert tuple(md.shape) == tuple(z.shape)
    # zarr-python's .chunks is the inner chunk shape of a sharded array; zarrsync's is the
    # chunk grid's (the shard shape), as in zarr.json
    assert tuple(md.chunks) == tuple(z.shards or z.chunks)
    assert _same_dtype(np.dtype(md.dtype), np.dtype(z.dtype)), f"{md.dtype!r} != {z.dtype!r}"
    dtype = np.dtype(z.dtype)
    if z.fill_value is None:
        # a v2 ``"fill_value": null``: zarr-python keeps None and reads missing chunks as
        # the data type's zero; zarrsync may keep None or give that zero
        assert md.fill_value is None or \
            _fill_bits(md.fill_value, dtype) == _fill_bits(np.zeros((), dtype)[()], dtype)
    else:
        assert _fill_bits(md.fill_value, dtype) == _fill_bits(z.fill_value, dtype)
    assert dict(md.attributes) == dict(z.attrs)
    if z.metadata.zarr_format == 3:
        names = z.metadata.dimension_names
        assert (tuple(md.dimension_names) if md.dimension_names is not None else None) == \
            (tuple(names) if names is not None else None)


@pytest.mark.parametrize("store_dir,path", READ_BY_ZARR_PYTHON, ids=_ids(READ_BY_ZARR_PYTHON))
def test_read_matches_zarr_python(store_dir, path):
    """The whole array and a few partial selections, bit for bit."""
    expected = _read_zarr_python(store_dir, path)
    actual = _read_zarrsync(store_dir, path)
    _assert_identical(actual, expected, f"{_array_id(store_dir, path)}[...]")
    for selection in _selections(expected.shape):
        _assert_identical(_read_zarrsync(store_dir, path, selection),
                          expected[selection + (Ellipsis,)],
                          f"{_array_id(store_dir, path)}[{selection}]")


@pytest.mark.parametrize("store_dir,path", WITH_EXPECTED, ids=_ids(WITH_EXPECTED))
def test_read_matches_generator_data(store_dir, path):
    """zarrsync reads the values that the generator script or Rust test wrote."""
    key = _array_id(store_dir, path)
    _check_expected(_read_zarrsync(store_dir, path), EXPECTED[key], key)


@pytest.mark.parametrize("store_dir,path", NOT_READ, ids=_ids(NOT_READ))
def test_feature_zarr_python_lacks(store_dir, path):
    """zarrsync reads the generator's data, or names the feature it does not support."""
    key = _array_id(store_dir, path)
    feature, zarr_python_says = NOT_READ_BY_ZARR_PYTHON[key]
    try:
        reference = _read_zarr_python(store_dir, path)
    except Exception as e:  # noqa: BLE001 - zarr-python lacks the feature: the usual case
        assert zarr_python_says in str(e), f"zarr-python failed for another reason: {e!r}"
        reference = None
    try:
        actual = _read_zarrsync(store_dir, path)
    except ZarrSyncError as e:
        assert feature in str(e), \
            f"zarrsync's error does not name the unsupported {feature!r}: {type(e).__name__}: {e}"
        return
    assert key in EXPECTED, f"zarrsync now reads {key}: add the generator's data to EXPECTED"
    _check_expected(actual, EXPECTED[key], key)
    if reference is not None:
        _assert_identical(actual, reference, key)


@pytest.mark.parametrize("store_dir", STORES, ids=STORE_IDS)
def test_zip_store_reads_the_same(store_dir, tmp_path):
    """The same store zipped (entries named by store key, as zarr-python's ZipStore
    writes them) reads through ``ZipStore`` exactly as through ``FilesystemStore``."""
    archive = tmp_path / "store.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(store_dir.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(store_dir).as_posix())
    arrays, groups = _nodes(store_dir)
    fs = zs.FilesystemStore(str(store_dir), mode="r")
    with zs.ZipStore(str(archive), mode="r") as zstore:
        found_arrays, found_groups = zstore.find_all_nodes()
        assert sorted(a.path for a in found_arrays) == sorted(arrays)
        assert sorted(g.path for g in found_groups) == sorted(groups)
        for path in arrays:
            node = _zs_node(path)
            try:
                expected = fs.read_array(node)
            except ZarrSyncError as e:
                with pytest.raises(type(e)):
                    zstore.read_array(node)
                continue
            _assert_identical(zstore.read_array(node), expected, f"zip {path}")


GROUPS = [(store, path) for store in STORES for path in _nodes(store)[1]]


@pytest.mark.parametrize("store_dir,path", GROUPS, ids=_ids(GROUPS))
def test_group_attributes_match_zarr_python(store_dir, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = zarr.open_group(zarr.storage.LocalStore(store_dir, read_only=True),
                            path=path.strip("/"), mode="r")
    node = zs.GroupNode.root() if path == "/" else zs.GroupNode.of_path(path)
    md = zs.FilesystemStore(str(store_dir), mode="r").group_metadata(node)
    assert dict(md.attributes) == dict(g.attrs)


def interop_cells(name, params):
    """The cells of docs/interop.md each test checks (tests/interop_matrix.py):
    the published stores, by source."""
    if name not in ("test_read_matches_zarr_python", "test_read_matches_generator_data"):
        return []
    store_dir, path = params["store_dir"], params["path"]
    source = store_dir.relative_to(PUBLIC).parts[0]
    try:
        meta = zs.FilesystemStore(store_dir, mode="r").array_metadata(_zs_node(path))
    except zs.ZarrSyncError:
        return []
    data_type = meta.data_type
    return [cell(f"{source} test data", meta.zarr_format, codec_label(meta.codecs),
                 data_type if isinstance(data_type, str) else data_type["name"], "read")]
