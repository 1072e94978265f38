"""The xarray backend: ``xarray.open_dataset(..., engine="zarrsync")``.

Every dataset is written by xarray itself (``to_zarr``, through zarr-python)
at test time, and what engine="zarrsync" opens must be identical to what
engine="zarr" opens: data, coordinates, attributes and the encodings that
decoding uses.
"""

import os
import pickle
import shutil
import warnings

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
pd = pytest.importorskip("pandas")
pytest.importorskip("zarr")

import zarrsync as zs
from zarrsync.xarray_backend import (ZarrsyncBackendArray, ZarrsyncBackendEntrypoint,
                                     ZarrsyncDataStore)

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::RuntimeWarning", "ignore::FutureWarning",
    "ignore::DeprecationWarning")

# Encoding keys that hold zarr-python codec objects (engine="zarr" only).
_ZARR_ONLY_ENCODING = ("compressors", "filters", "serializer")


def _sample(seed=0, t0="2000-01-01"):
    rng = np.random.default_rng(seed)
    temp = rng.standard_normal((6, 5, 4)).astype("f4")
    temp[0, 0, 0] = np.nan
    temp[3, 2, :] = np.nan
    count = np.arange(120, dtype="i2").reshape(6, 5, 4)
    count[1, 1, 1] = -99
    scaled = rng.uniform(0, 10, (6, 5))
    scaled[2, 3] = np.nan
    return xr.Dataset(
        {
            "temp": (("time", "y", "x"), temp, {"units": "K", "long_name": "temperature"}),
            "count": (("time", "y", "x"), count, {}, {"_FillValue": -99}),
            "scaled": (("time", "y"), scaled, {},
                       {"scale_factor": 0.01, "add_offset": 1.0, "dtype": "i2",
                        "_FillValue": -1}),
            "name": (("y",), np.array(["a", "bb", "ccc", "", "eeeee"])),
            "vname": (("x",), np.array(["alpha", "b", "", "delta"], dtype=object)),
            "raw": (("x",), np.array([b"a", b"bb", b"c", b""])),
            "flag": (("y",), np.array([True, False, True, False, True])),
            "duration": (("time",), pd.to_timedelta(np.arange(6), unit="h")),
            "scalar": ((), 3.5, {"note": "0-d"}),
        },
        coords={
            "time": pd.date_range(t0, periods=6, freq="D"),
            "y": np.linspace(-1.0, 1.0, 5),
            "x": np.arange(4, dtype="i4") * 10,
            "lat": (("y", "x"), np.arange(20.0).reshape(5, 4), {"units": "degrees_north"}),
        },
        attrs={"title": "sample", "version": 3, "history": ["a", "b"]},
    )


def _write(ds, path, zarr_format, consolidated, **kwargs):
    encoding = kwargs.pop("encoding", None)
    if encoding is None:
        encoding = {"temp": {"chunks": (2, 5, 2)},
                    "count": {"chunks": (4, 2, 4), "_FillValue": -99}}
    ds.to_zarr(path, mode="w", zarr_format=zarr_format, consolidated=consolidated,
               encoding=encoding, **kwargs)
    return path


def _open_both(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = xr.open_dataset(path, engine="zarrsync", **kwargs)
        theirs = xr.open_dataset(path, engine="zarr", **kwargs)
    return ours, theirs


def _same_encoding(ours, theirs):
    for name, var in theirs.variables.items():
        expected = {k: v for k, v in var.encoding.items() if k not in _ZARR_ONLY_ENCODING}
        got = dict(ours[name].encoding)
        assert set(got) == set(expected), name
        for key, value in expected.items():
            if key == "dtype":
                assert np.dtype(got[key]) == np.dtype(value), (name, key)
            elif isinstance(value, float) and np.isnan(value):
                assert np.isnan(got[key]), (name, key)
            else:
                np.testing.assert_equal(got[key], value, err_msg=f"{name}: {key}")


@pytest.fixture(scope="module", params=[(2, False), (2, True), (3, False), (3, True)],
                ids=["v2", "v2-consolidated", "v3", "v3-consolidated"])
def written(request, tmp_path_factory):
    zarr_format, consolidated = request.param
    path = tmp_path_factory.mktemp("xr") / "sample.zarr"
    return _write(_sample(), str(path), zarr_format, consolidated)


def test_identical_to_engine_zarr(written):
    ours, theirs = _open_both(written)
    assert set(ours.variables) == set(theirs.variables)
    assert set(ours.coords) == set(theirs.coords)
    _same_encoding(ours, theirs)
    for name in theirs.variables:
        assert ours[name].dtype == theirs[name].dtype, name
    xr.testing.assert_identical(ours.load(), theirs.load())
    # the masks really happened (NaN fills, an int _FillValue, a packed variable)
    assert np.isnan(ours.temp.values[0, 0, 0])
    assert np.isnan(ours["count"].values[1, 1, 1])
    assert np.isnan(ours.scaled.values[2, 3])
    assert ours.time.dtype.kind == "M"


def test_undecoded_identical(written):
    ours, theirs = _open_both(written, decode_cf=False)
    xr.testing.assert_identical(ours.load(), theirs.load())
    ours, theirs = _open_both(written, mask_and_scale=False, decode_times=False)
    xr.testing.assert_identical(ours.load(), theirs.load())


@pytest.mark.parametrize("as_mask", [True, False])
def test_fill_value_as_mask(written, as_mask):
    # xarray 2026.9's engine="zarr" ignores this argument (it always uses its
    # default: True for v2, False for v3); engine="zarrsync" honours it.
    ours = xr.open_dataset(written, engine="zarrsync", use_zarr_fill_value_as_mask=as_mask)
    zarr_format = 2 if os.path.exists(os.path.join(written, ".zgroup")) else 3
    ours_default, theirs = _open_both(written)
    if as_mask == (zarr_format == 2):      # the default rule
        xr.testing.assert_identical(ours.load(), theirs.load())
        return
    count = ours["count"]
    if as_mask:                            # v3: the zarr fill_value (0) masks too
        assert count.encoding["_FillValue"] == 0 and "fill_value" not in count.encoding
        assert np.isnan(count.values[0, 0, 0]) and count.values[0, 0, 1] == 1
    else:                                  # v2: only NaN masks floats, nothing masks ints
        assert "_FillValue" not in ours.temp.encoding
        assert ours["count"].dtype == np.int16 and ours["count"].values[1, 1, 1] == -99
        np.testing.assert_array_equal(ours.temp.values, theirs.temp.values)


@pytest.mark.parametrize("indexers", [
    {"time": slice(1, 5), "x": slice(None, None, 2)},
    {"time": 2, "y": slice(1, 4)},
    {"time": [0, 3, 5], "x": [3, 1]},          # integer lists on two dims at once
    {"time": [5, 1, 1], "y": 4, "x": slice(3, 0, -1)},
    {"time": slice(4, 4)},
    {"y": -1, "x": -2},
])
def test_lazy_isel_identical(written, indexers):
    ours, theirs = _open_both(written)
    xr.testing.assert_identical(ours.isel(indexers).load(), theirs.isel(indexers).load())
    # a lazy selection of a lazy selection
    sub = ours.isel(indexers)
    again = {next(d for d in ("x", "y", "time") if sub.sizes.get(d, 0) > 1): slice(1, None)}
    xr.testing.assert_identical(sub.isel(again).load(), theirs.isel(indexers).isel(again).load())


def test_vectorized_indexing(written):
    ours, theirs = _open_both(written)
    idx = {"time": xr.DataArray([0, 2, 5], dims="p"), "x": xr.DataArray([1, 3, 0], dims="p")}
    xr.testing.assert_identical(ours.temp.isel(idx).load(), theirs.temp.isel(idx).load())


def test_one_read_per_request(written, monkeypatch):
    ours, _ = _open_both(written)
    calls = []
    real = zs.Store.read_array

    def counting(self, node, selection=Ellipsis, dtype=None):
        calls.append((node.path, selection))
        return real(self, node, selection, dtype)

    monkeypatch.setattr(zs.Store, "read_array", counting)
    ours.temp.isel(time=[0, 4, 5], x=[0, 3]).values
    assert len(calls) == 1 and calls[0][0] == "/temp"
    calls.clear()
    ours.temp.values
    assert calls == [("/temp", Ellipsis)]


def test_open_reads_no_chunk(tmp_path):
    path = _write(_sample(), str(tmp_path / "lazy.zarr"), 3, False)
    # Break every chunk of "temp": opening must not notice, loading must.
    broken = 0
    for root, _dirs, files in os.walk(os.path.join(path, "temp", "c")):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"not a chunk")
            broken += 1
    assert broken
    ds = xr.open_dataset(path, engine="zarrsync")
    assert ds.temp.shape == (6, 5, 4)
    assert ds.temp.encoding["chunks"] == (2, 5, 2)
    ds["count"].load()
    with pytest.raises(Exception):
        ds.temp.load()


def test_group_and_store_argument(tmp_path):
    path = str(tmp_path / "groups.zarr")
    _sample(0).to_zarr(path, mode="w", zarr_format=3, consolidated=False)
    _sample(1).to_zarr(path, mode="a", group="inner/deeper", zarr_format=3,
                       consolidated=False)
    for group in ("inner/deeper", "/inner/deeper"):
        ours, theirs = _open_both(path, group=group)
        xr.testing.assert_identical(ours.load(), theirs.load())
    ours = xr.open_dataset(path, engine="zarrsync", group="inner/deeper")
    np.testing.assert_array_equal(ours.temp.values, _sample(1).temp.values)
    # a zarrsync store is opened as it is, and left open
    store = zs.open_store(path, mode="r")
    with xr.open_dataset(store, engine="zarrsync", group="/inner/deeper") as ds:
        np.testing.assert_array_equal(ds.lat.values, _sample(1).lat.values)
    assert store.read_array(zs.ArrayNode.of_path("/x")).tolist() == [0, 10, 20, 30]
    with pytest.raises(FileNotFoundError):
        xr.open_dataset(path, engine="zarrsync", group="missing")
    with pytest.raises(ValueError):
        xr.open_dataset(path, engine="zarrsync", zarr_format=2)


def test_zip_store(tmp_path):
    folder = _write(_sample(), str(tmp_path / "z.zarr"), 3, True)
    zipped = shutil.make_archive(str(tmp_path / "z"), "zip", folder)
    assert zipped.endswith(".zip")
    ours = xr.open_dataset(zipped, engine="zarrsync")
    theirs = xr.open_dataset(folder, engine="zarr")
    xr.testing.assert_identical(ours.load(), theirs.load())
    ours.close()


def test_s3(tmp_path):
    """A hierarchy that xarray wrote, copied key by key into a bucket of the
    tests' local S3 server, opened by URL with ``storage_options``."""
    folder = _write(_sample(), str(tmp_path / "s3.zarr"), 3, True)
    store = _bucket_copy(folder, "sample.zarr")
    import s3_server
    ours = xr.open_dataset(store.url, engine="zarrsync",
                           storage_options=s3_server.options())
    theirs = xr.open_dataset(folder, engine="zarr")
    xr.testing.assert_identical(ours.isel(time=[1, 4], x=[0, 2]).load(),
                                theirs.isel(time=[1, 4], x=[0, 2]).load())
    xr.testing.assert_identical(ours.load(), theirs.load())


def _bucket_copy(folder, prefix):
    """The hierarchy in ``folder`` copied key by key into a new prefix of the
    tests' S3 server: its store (skips without one)."""
    try:
        import s3_server
        store = s3_server.new_store(prefix)
    except Exception as err:  # no moto
        pytest.skip(f"no local S3 server: {err}")
    for root, _dirs, files in os.walk(folder):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as fh:
                store.set(os.path.relpath(full, folder).replace(os.sep, "/"), fh.read())
    return store


@pytest.mark.parametrize("drop", [None, ["x"]])
def test_s3_open_reads_the_index_coordinates_together(tmp_path, monkeypatch, drop):
    """On an object store the dimension coordinates, which xarray reads while
    it opens, are read at the same time (one round trip, not one each), once
    each; dropped variables are not read; the dataset equals engine="zarr"'s."""
    import s3_server
    folder = _write(_sample(), str(tmp_path / "idx.zarr"), 3, True)
    store = _bucket_copy(folder, "idx.zarr")
    proxy = s3_server.FaultProxy(s3_server.endpoint(), latency=0.05)
    try:
        remote = zs.ObjectStore(store.url, mode="r", **s3_server.options(proxy.url))
        reads = []
        real = zs.Store.read_array

        def counting(self, node, selection=Ellipsis, dtype=None):
            reads.append(node.path)
            return real(self, node, selection, dtype)

        monkeypatch.setattr(zs.Store, "read_array", counting)
        ours = xr.open_dataset(remote, engine="zarrsync", drop_variables=drop)
        indexes = {"/time", "/y", "/x"} - {f"/{name}" for name in drop or ()}
        assert sorted(reads) == sorted(indexes), reads
        assert proxy.most_in_flight >= 2 * len(indexes)   # each: its chunk and its document
        monkeypatch.undo()
        theirs = xr.open_dataset(folder, engine="zarr", drop_variables=drop)
        xr.testing.assert_identical(ours.load(), theirs.load())
    finally:
        proxy.close()


def test_parts_answered_from_a_read_ahead_equal_the_store_s_reads():
    """Reads of parts that a whole read started ahead answers (CF decoding
    reads a time axis's ends while the dataset opens) index each axis on its
    own, as ``Store.read_array`` does."""
    from zarrsync.xarray_backend import _orthogonal
    store = zs.MemoryStore()
    node = zs.ArrayNode.of_path("/a")
    store.create_array(node, shape=(5, 6, 7), chunks=(2, 3, 4), dtype="int32")
    values = np.arange(210, dtype="int32").reshape(5, 6, 7)
    store.write_array(node, ..., values)
    rows, cols = np.array([0, 2, 4]), np.array([1, 5])
    for sel in [(1, slice(None), 3), (rows, cols, slice(2, 6)), (slice(0, 5, 2), 4, cols),
                (rows, slice(1, 4), np.array([6])), (0, 0, 0)]:
        np.testing.assert_array_equal(_orthogonal(values, sel), store.read_array(node, sel))


@pytest.mark.skipif(not hasattr(xr.Dataset, "load_async"), reason="xarray without load_async")
def test_load_async_reads_the_variables_at_the_same_time(tmp_path, monkeypatch):
    import asyncio
    import threading
    folder = _write(_sample(), str(tmp_path / "async.zarr"), 3, True)
    ours = xr.open_dataset(folder, engine="zarrsync")
    threads = set()
    real = zs.Store.read_array

    def recording(self, node, selection=Ellipsis, dtype=None):
        threads.add(threading.get_ident())
        return real(self, node, selection, dtype)

    monkeypatch.setattr(zs.Store, "read_array", recording)
    loaded = asyncio.run(ours.load_async())
    assert threading.get_ident() not in threads and len(threads) > 1
    monkeypatch.undo()
    xr.testing.assert_identical(loaded, xr.open_dataset(folder, engine="zarr").load())


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        xr.open_dataset(str(tmp_path / "absent.zarr"), engine="zarrsync")


def test_sharded_v3(tmp_path):
    ds = _sample()
    path = _write(ds, str(tmp_path / "sharded.zarr"), 3, False,
                  encoding={"temp": {"chunks": (1, 5, 2), "shards": (2, 5, 4)}})
    ours, theirs = _open_both(path)
    assert ours.temp.encoding["chunks"] == (1, 5, 2)
    assert ours.temp.encoding["shards"] == (2, 5, 4)
    _same_encoding(ours, theirs)
    xr.testing.assert_identical(ours.load(), theirs.load())


def test_dask_chunks_and_pickle(written):
    pytest.importorskip("dask")
    ds = xr.open_dataset(written, engine="zarrsync", chunks={})
    assert ds.temp.chunks == ((2, 2, 2), (5,), (2, 2))
    theirs = xr.open_dataset(written, engine="zarr", chunks={})
    xr.testing.assert_identical(ds.compute(), theirs.compute())
    # what dask.distributed ships to workers
    again = pickle.loads(pickle.dumps(ds))
    xr.testing.assert_identical(again.compute(), theirs.compute())
    store = zs.open_store(written, mode="r")
    data_store = pickle.loads(pickle.dumps(ZarrsyncDataStore(store)))
    assert sorted(data_store.get_variables()) == sorted(theirs.variables)
    array = ZarrsyncBackendArray(store, zs.ArrayNode.of_path("/x"), (4,), np.dtype("i4"))
    assert pickle.loads(pickle.dumps(array)).get_array().tolist() == [0, 10, 20, 30]


def test_open_mfdataset(tmp_path):
    pytest.importorskip("dask")
    paths = []
    for i, fmt in enumerate((2, 3, 3)):
        ds = _sample(i, t0=f"2001-0{i + 1}-01")
        paths.append(_write(ds, str(tmp_path / f"part{i}.zarr"), fmt, i != 1))
    kwargs = dict(combine="nested", concat_dim="time", data_vars="all", coords="different",
                  compat="equals", join="outer")
    ours = xr.open_mfdataset(paths, engine="zarrsync", **kwargs)
    theirs = xr.open_mfdataset(paths, engine="zarr", **kwargs)
    assert ours.sizes["time"] == 18
    xr.testing.assert_identical(ours.compute(), theirs.compute())


def test_guess_can_open(tmp_path):
    entry = ZarrsyncBackendEntrypoint()
    path = _write(_sample(), str(tmp_path / "plain"), 2, False)
    assert entry.guess_can_open(path)                      # holds .zgroup
    assert entry.guess_can_open(os.path.join(path, ".zgroup"))
    assert entry.guess_can_open("s3://bucket/data.zarr")
    assert entry.guess_can_open("s3://bucket/data.zarr/")
    assert entry.guess_can_open("https://host/x/zarr.json")
    assert entry.guess_can_open(zs.MemoryStore())
    assert not entry.guess_can_open(str(tmp_path / "file.nc"))
    assert not entry.guess_can_open(str(tmp_path))
    assert not entry.guess_can_open(b"bytes")
    assert "zarrsync" in xr.backends.list_engines()


class _CountingStore(zs.FilesystemStore):
    """A folder store that records the documents the backend reads."""

    def get_partial_values(self, key_ranges):
        key_ranges = list(key_ranges)
        self.__dict__.setdefault("read", []).extend(k for k, _, _ in key_ranges)
        return super().get_partial_values(key_ranges)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_consolidated_metadata_spares_a_read_per_variable(tmp_path, zarr_format):
    """With consolidated metadata, opening reads the group's documents only,
    as engine="zarr" does: on an object store each read is a round trip."""
    ds = xr.Dataset({f"v{i}": (("t", "x"), np.full((3, 4), float(i))) for i in range(5)},
                    coords={"x": np.arange(4)})
    ds.to_zarr(tmp_path / "c.zarr", zarr_format=zarr_format, consolidated=True)
    store = _CountingStore(tmp_path / "c.zarr", mode="r")
    opened = xr.open_dataset(store, engine="zarrsync")
    per_array = {k.partition("/")[0] for k in store.read if "/" in k
                 and k.rpartition("/")[2] in ("zarr.json", ".zarray", ".zattrs")}
    # Only the index coordinate, which xarray loads at once (reading its data
    # checks its own document); no variable's document.
    assert per_array == {"x"}, per_array
    xr.testing.assert_identical(opened.load(),
                                xr.open_dataset(tmp_path / "c.zarr", engine="zarr").load())
