"""The xarray rows of ``compare.py`` (``--xarray``): ``xr.open_dataset(path,
engine=E).load()`` with engine="zarrsync" against engine="zarr" (zarr-python,
with its default codec pipeline, its FusedCodecPipeline ("zarr fused"), and
the zarrs pipeline in strict mode ("zarrs")).

The dataset: 10 float32 variables of shape (100, 256, 256) (quick: (20, 128,
128)), chunks (10, 256, 256) (quick: (10, 128, 128)), zstd level 1,
consolidated metadata, written once by xarray's ``to_zarr`` (so by
zarr-python) into a temporary directory. The data is a random walk along the
last axis, which zstd hardly compresses (~1.1x).

Rows:

* open and load the dataset stored as Zarr v3, on the local file system;
* the same stored as Zarr v2;
* the Zarr v3 dataset on an S3 server on loopback (moto, ``zarrsync.testing.LocalS3``),
  each request delayed 20 ms by ``zarrsync.testing.FaultProxy``, both in a
  process of their own, as in ``object_store_bench.py``. engine="zarrsync" opens the ``s3://`` URL with
  ``storage_options``; engine="zarr" is given a ``zarr.storage.ObjectStore``
  (obstore's ``S3Store``) on the same proxy.

Each row gives the median seconds of the rounds (rounds interleaved, the order
of the engines rotating), the median CPU seconds of the process, and a
"limit": the time to read every stored chunk file of the 10 variables (their
bytes, page cache warm) plus the time to decompress them all with
``zstandard`` on one thread divided by the number of CPUs -- a floor for any
engine on this machine (the first touch of the fresh output arrays, which any
engine also pays, is measured and printed but not added). On S3 the limit is
the transfer: obstore alone making the requests of one load in the order
xarray loads the variables, decoding nothing; the notes give the
decompression part and the requests of one load. ratio = the fastest engine="zarr" time /
zarrsync time (> 1: zarrsync is faster); "vs zarr" = the time of engine="zarr" with
zarr-python's default pipeline / zarrsync time.
"""

import os
import shutil
import statistics
import tempfile
import time
import warnings

import numpy as np
import zstandard

from object_store_bench import LATENCY, ServerProcess

ENGINES = ("zarrsync", "zarr", "zarr fused", "zarrs")
#: engine="zarr" under each of zarr-python's codec pipelines (set while opening
#: and loading; strict: zarrs-python must not fall back to zarr-python's own).
_ZARR_PIPELINES = {
    "zarr": {},
    "zarr fused": {"codec_pipeline.path": "zarr.core.codec_pipeline.FusedCodecPipeline"},
    "zarrs": {"codec_pipeline.path": "zarrs.ZarrsCodecPipeline", "codec_pipeline.strict": True},
}
NVARS = 10
_METADATA = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}


def _dataset(shape):
    import xarray as xr
    base = np.random.default_rng(0).standard_normal(shape).astype("f4").cumsum(axis=2)
    return xr.Dataset({f"v{i}": (("t", "y", "x"), base + i) for i in range(NVARS)},
                      coords={"t": np.arange(shape[0]), "y": np.arange(float(shape[1])),
                              "x": np.arange(float(shape[2]))})


def _write(ds, path, fmt, chunks):
    if fmt == 3:
        from zarr.codecs import ZstdCodec
        compressor = ZstdCodec(level=1)
    else:
        from numcodecs import Zstd
        compressor = Zstd(level=1)
    enc = {f"v{i}": {"chunks": chunks, "compressors": [compressor]} for i in range(NVARS)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(path, mode="w", zarr_format=fmt, encoding=enc, consolidated=True)


def _chunk_files(path):
    """The stored chunk files of the data variables v0..v9."""
    files = []
    for i in range(NVARS):
        for d, _, names in os.walk(os.path.join(path, f"v{i}")):
            files += [os.path.join(d, n) for n in sorted(names) if n not in _METADATA]
    return files


def _files_of(path):
    for d, _, names in os.walk(path):
        for n in names:
            full = os.path.join(d, n)
            yield os.path.relpath(full, path).replace(os.sep, "/"), full


class Setup:
    """The stored datasets (v3, v2 on disk; v3 in a bucket), written once."""

    def __init__(self, quick, s3=True):
        self.shape = (20, 128, 128) if quick else (100, 256, 256)
        self.chunks = (10,) + self.shape[1:]
        self.chunk_nbytes = int(np.prod(self.chunks)) * 4
        self.root = tempfile.mkdtemp(prefix="zarrsync-xarray-bench-")
        self.s3 = self.proxy = None
        ds = _dataset(self.shape)
        self.expected = {name: ds[name].values for name in ds.data_vars}
        self.paths = {}
        for fmt in (3, 2):
            self.paths[fmt] = os.path.join(self.root, f"ten_v{fmt}.zarr")
            _write(ds, self.paths[fmt], fmt, self.chunks)
        self.url = None
        if s3:
            self.proxy = ServerProcess(LATENCY)   # the server and proxy in their own process
            self.s3 = self.proxy.s3
            store = self.s3.new_store("ten_v3.zarr")   # straight to the server, no delay
            for key, full in _files_of(self.paths[3]):
                with open(full, "rb") as f:
                    store.set(key, f.read())
            self.url = store.url
            store.close()

    def close(self):
        if self.proxy is not None:
            self.proxy.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def stored_bytes(self, fmt):
        return sum(os.path.getsize(f) for f in _chunk_files(self.paths[fmt]))

    # -- what is opened ---------------------------------------------------------------------

    def zarr_s3_store(self):
        import zarr
        from obstore.store import S3Store
        bucket, _, prefix = self.url[len("s3://"):].partition("/")
        s3 = self.s3
        client = S3Store(bucket, prefix=prefix, endpoint=self.proxy.url, region=s3.region,
                         access_key_id=s3.access_key, secret_access_key=s3.secret_key,
                         client_options={"allow_http": True})
        return zarr.storage.ObjectStore(client, read_only=True)

    def load(self, where, engine):
        import xarray as xr
        if engine == "zarrsync":
            if where == "s3":
                ds = xr.open_dataset(self.url, engine="zarrsync",
                                     storage_options=self.s3.options(self.proxy.url))
            else:
                ds = xr.open_dataset(self.paths[where], engine="zarrsync")
            with ds:
                return ds.load()
        import zarr
        with zarr.config.set(_ZARR_PIPELINES[engine]):
            if engine == "zarrs":
                import zarrs  # noqa: F401 -- registers the pipeline; ImportError: n/a
            where_ = self.zarr_s3_store() if where == "s3" else self.paths[where]
            with xr.open_dataset(where_, engine="zarr", consolidated=True) as ds:
                return ds.load()

    def check(self, ds):
        return all(np.array_equal(ds[name].values, want) for name, want in self.expected.items())

    # -- the floor --------------------------------------------------------------------------

    def s3_transfer(self, repeats):
        """(seconds, parts): the requests a load needs, made with obstore alone
        in the order xarray loads (the group document; the 3 coordinates'
        chunks at once; then each variable's chunks at once, one variable
        after another), nothing decoded; medians of ``repeats`` rounds. Also
        the time of all the chunks at once, for comparison."""
        import asyncio

        import obstore
        from obstore.store import from_url
        client = from_url(self.url, **self.s3.options(self.proxy.url))
        variables = [[key for key, _ in _files_of(os.path.join(self.paths[3], f"v{i}"))
                      if key.rsplit("/", 1)[-1] not in _METADATA] for i in range(NVARS)]
        variables = [[f"v{i}/{key}" for key in keys] for i, keys in enumerate(variables)]
        coords = ["t/c/0", "x/c/0", "y/c/0"]

        async def get_all(keys):
            async def one(key):
                return await (await obstore.get_async(client, key)).bytes_async()
            return await asyncio.gather(*(one(k) for k in keys))

        async def in_load_order():
            await get_all(["zarr.json"])
            await get_all(coords)
            for keys in variables:
                await get_all(keys)

        async def at_once():
            await get_all([k for keys in variables for k in keys])

        ordered, together = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            asyncio.run(in_load_order())
            ordered.append(time.perf_counter() - start)
            start = time.perf_counter()
            asyncio.run(at_once())
            together.append(time.perf_counter() - start)
        return statistics.median(ordered), {"all_chunks_at_once": statistics.median(together)}

    def limit(self, fmt, repeats, read=True):
        """(seconds, parts): read every chunk file + zstd-decompress them all on
        one thread / the CPUs; medians of ``repeats`` rounds."""
        files = _chunk_files(self.paths[fmt])
        dctx = zstandard.ZstdDecompressor()
        reads, decodes, touches = [], [], []
        for _ in range(repeats):
            start = time.perf_counter()
            blobs = []
            for name in files:
                with open(name, "rb") as f:
                    blobs.append(f.read())
            reads.append(time.perf_counter() - start)
            start = time.perf_counter()
            for blob in blobs:
                dctx.decompress(blob, max_output_size=self.chunk_nbytes)
            decodes.append(time.perf_counter() - start)
            del blobs
            # Not in the limit: the first touch of a fresh output as large as the
            # 10 variables (what loading them must fill), numpy.empty + fill.
            start = time.perf_counter()
            outs = [np.empty(self.shape, "f4") for _ in range(NVARS)]
            for o in outs:
                o.fill(0)
            touches.append(time.perf_counter() - start)
            del outs
        cpus = os.cpu_count() or 1
        read_s = statistics.median(reads) if read else 0.0
        decode_s = statistics.median(decodes)
        return read_s + decode_s / cpus, {"read": read_s, "zstd_1_thread": decode_s,
                                          "cpus": cpus, "files": len(files),
                                          "output_first_touch": statistics.median(touches)}


# -- rows -----------------------------------------------------------------------------------

def rows(quick=False, repeats=5, only=""):
    """``[{"label", "seconds": {engine: median}, "cpu_seconds": {engine: median},
    "limit", "notes", "ratio"}]``: every row, both engines, rounds interleaved."""
    side = "20x128x128" if quick else "100x256x256"
    work = [
        (f"xarray open+load 10 vars {side} f32, zstd, Zarr v3", 3),
        (f"xarray open+load 10 vars {side} f32, zstd, Zarr v2", 2),
        (f"xarray open+load 10 vars {side} f32, zstd, Zarr v3 on S3 (20 ms/request)", "s3"),
    ]
    work = [(label, where) for label, where in work if only in label]
    if not work:
        return []
    setup = Setup(quick, s3=any(where == "s3" for _, where in work))
    out = []
    try:
        for label, where in work:
            fmt = 3 if where == "s3" else where
            row = {"label": label, "seconds": {}, "cpu_seconds": {}, "notes": {},
                   "stored_mib": setup.stored_bytes(fmt) / 2**20,
                   "load_average": None}
            live = []
            for engine in ENGINES:
                try:
                    if setup.proxy is not None:
                        setup.proxy.reset_counts()
                    got = setup.load(where, engine)   # the warm-up
                    if where == "s3":
                        row["notes"][engine] = f"{setup.proxy.count()} requests per round"
                    if not setup.check(got):
                        raise AssertionError("loaded other data")
                    del got
                    live.append(engine)
                except Exception as e:  # noqa: BLE001 -- a cell that fails is reported
                    row["notes"][engine] = f"error: {type(e).__name__}: {e}"[:300]
            wall = {e: [] for e in live}
            cpu = {e: [] for e in live}
            for r in range(repeats):
                for engine in live[r % len(live):] + live[:r % len(live)] if live else []:
                    c0, t0 = time.process_time(), time.perf_counter()
                    setup.load(where, engine)
                    wall[engine].append(time.perf_counter() - t0)
                    cpu[engine].append(time.process_time() - c0)
            row["seconds"] = {e: statistics.median(t) for e, t in wall.items()}
            row["cpu_seconds"] = {e: statistics.median(t) for e, t in cpu.items()}
            row["limit"], row["limit_parts"] = setup.limit(fmt, repeats, read=where != "s3")
            if where == "s3":
                decode = row["limit"]
                row["limit"], extra = setup.s3_transfer(repeats)
                row["limit_parts"].update(extra, decode_over_cpus=decode)
            mine = row["seconds"].get("zarrsync")
            theirs = [t for e, t in row["seconds"].items() if e != "zarrsync"]
            row["ratio"] = min(theirs) / mine if mine and theirs else None
            zarr_default = row["seconds"].get("zarr")
            row["ratio_zarr"] = zarr_default / mine if mine and zarr_default else None
            row["load_average"] = os.getloadavg()[0]
            out.append(row)
    finally:
        setup.close()
    return out


def print_rows(rows_):
    print("\nxarray rows: xr.open_dataset(path, engine=E).load(), median seconds of the "
          "rounds (median CPU seconds of the process); limit = read the chunk files + "
          "zstd-decompress them on one thread / CPUs (on S3: obstore alone fetching the chunks "
          "in xarray's load order); "
          "ratio = fastest engine=\"zarr\" column / zarrsync (> 1: zarrsync is faster); "
          "vs zarr = the engine=\"zarr\" column (zarr-python's default pipeline) / zarrsync\n")
    print("| workload | stored | " + " | ".join(ENGINES)
          + " | limit | ratio | vs zarr | load avg |")
    print("|---|---:|" + "---:|" * (len(ENGINES) + 4))
    for row in rows_:
        cells = []
        for e in ENGINES:
            if e in row["seconds"]:
                cells.append(f"{row['seconds'][e]:.3f} s ({row['cpu_seconds'][e]:.3f})")
            else:
                cells.append("n/a")
        ratio, vs_zarr = ("n/a" if r is None else f"{r:.2f}x"
                          for r in (row["ratio"], row["ratio_zarr"]))
        print(f"| {row['label']} | {row['stored_mib']:.0f} MiB | " + " | ".join(cells)
              + f" | {row['limit']:.3f} s | {ratio} | {vs_zarr} | {row['load_average']:.1f} |")
    print()
    for row in rows_:
        parts = row["limit_parts"]
        if "all_chunks_at_once" in parts:
            notes = [f"limit: obstore alone making the load's requests in xarray's order "
                     f"(document, coordinates, then each variable's chunks at once), "
                     f"nothing decoded; all 100 chunks at once take "
                     f"{parts['all_chunks_at_once']:.3f} s; zstd {parts['zstd_1_thread']:.3f} s "
                     f"on 1 thread / {parts['cpus']} CPUs = {parts['decode_over_cpus']:.3f} s"]
        else:
            notes = [f"limit: read {parts['read']:.3f} s + zstd {parts['zstd_1_thread']:.3f} s "
                     f"on 1 thread / {parts['cpus']} CPUs ({parts['files']} chunk files); not "
                     f"in it: the first touch of a fresh output as large, "
                     f"{parts['output_first_touch']:.3f} s on 1 thread"]
        notes += [f"{e}: {note}" for e, note in row["notes"].items()]
        print(f"* {row['label']}: " + "; ".join(notes))
