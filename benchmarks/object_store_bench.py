"""The object store rows of ``compare.py`` (``--s3``): zarrsync's ``ObjectStore``,
zarr-python's ``ObjectStore`` (obstore; its default pipeline, its
FusedCodecPipeline, and the zarrs pipeline) and tensorstore's ``s3`` kvstore on
one S3 server on loopback (moto), each request delayed 20 ms by a proxy, as a
nearby bucket would be. The server and the proxy run in a process of their
own, so that serving requests takes nothing from the process measured.

Rows:

* open a hierarchy of 100 arrays (10 groups of 10), finding every array and
  reading its metadata, without and with consolidated metadata, until every
  array is ready to read (tensorstore has no hierarchy: it lists the keys and
  opens every array; zarrsync's ``find_all_nodes`` reads every node's
  document, or the consolidated copy, and returns the array nodes, each
  ready for ``read_array``);
* a full read of a 256-chunk zstd array (256 x 256 x 256 float32, chunks
  32 x 32 x 64, 256 KiB each);
* 200 point reads, one after another, from a sharded array (256^3 uint16,
  shards 128^3, inner chunks 16^3, zstd).

Each row gives the median seconds of the rounds, and the requests one round
made (counted by the proxy). The "limit" column is what the server and the
latency allow: obstore alone making the fewest requests the row needs, as
concurrently as it may (the full read: every chunk object, 32 in flight; the
point reads: one ranged GET each, one after another; opening: one listing,
then every document at once, or the one consolidated document).
"""

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import zarrsync as zs
from zarrsync.codecs import Bytes, ShardingIndexed, Zstd
from zarrsync.testing import LocalS3

LATENCY = 0.02


_SERVER = """
import json, sys
from zarrsync.testing import FaultProxy, LocalS3
s3 = LocalS3()
proxy = FaultProxy(s3.endpoint, latency=float(sys.argv[1]))
print(json.dumps({"endpoint": s3.endpoint, "proxy": proxy.url}), flush=True)
for line in sys.stdin:
    if line.strip() == "reset":
        proxy.reset_counts()
        print("ok", flush=True)
    elif line.strip() == "count":
        print(proxy.count(), flush=True)
    else:
        break
proxy.close()
s3.stop()
"""


class ServerProcess:
    """moto's S3 server and the latency proxy in a process of their own, as a
    bucket is: serving requests does not take the measured process's GIL."""

    def __init__(self, latency):
        self._process = subprocess.Popen([sys.executable, "-P", "-c", _SERVER, str(latency)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True)
        started = json.loads(self._process.stdout.readline())
        self.s3 = LocalS3(endpoint=started["endpoint"])
        self.url = started["proxy"]

    def _ask(self, command):
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return self._process.stdout.readline().strip()

    def reset_counts(self):
        self._ask("reset")

    def count(self):
        """The requests the proxy has seen since ``reset_counts``."""
        return int(self._ask("count"))

    def close(self):
        self._process.stdin.close()
        self._process.wait(timeout=30)


class Setup:
    """The server, the proxy and the stored data every implementation reads."""

    def __init__(self, quick):
        server = ServerProcess(LATENCY)
        self.s3, self.proxy = server.s3, server
        # tensorstore takes its credentials from the environment.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", self.s3.access_key)
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", self.s3.secret_key)
        side = 128 if quick else 256
        self.full_shape, self.full_chunks = (side, side, side), (32, 32, 64)
        self.shard_shape, self.shard, self.inner = (side, side, side), (128,) * 3, (16,) * 3
        writer_plain = self.s3.new_store("tree.zarr")
        writer_cons = self.s3.new_store("tree.zarr")
        for store in (writer_plain, writer_cons):
            for i in range(100):
                store.create_array(zs.ArrayNode.of_path(f"/g{i // 10}/a{i}"), shape=(100, 100),
                                   chunks=(10, 10), dtype="float32")
        writer_cons.consolidate_metadata()
        self.tree, self.tree_consolidated = writer_plain, writer_cons
        self.data = self.s3.new_store("data.zarr")
        rng = np.random.default_rng(0)
        field = np.cumsum(rng.standard_normal(self.full_shape, dtype=np.float32), axis=2)
        self.full = field
        self.data.create_array(zs.ArrayNode.of_path("/full"), shape=self.full_shape,
                               chunks=self.full_chunks, dtype="float32",
                               codecs=[Bytes(), Zstd(level=1)])
        self.data.write_array(zs.ArrayNode.of_path("/full"), ..., field)
        points = (np.arange(np.prod(self.shard_shape)) % 65521).astype("uint16").reshape(
            self.shard_shape)
        self.points_data = points
        self.data.create_array(zs.ArrayNode.of_path("/sharded"), shape=self.shard_shape,
                               chunks=self.shard, dtype="uint16",
                               codecs=[ShardingIndexed(self.inner, codecs=[Bytes(), Zstd(1)])])
        self.data.write_array(zs.ArrayNode.of_path("/sharded"), ..., points)
        self.points = [tuple(int(v) for v in rng.integers(0, s)) for s in [self.shard_shape]
                       for _ in range(200)]

    def close(self):
        self.proxy.close()

    def bucket_and_prefix(self, store):
        rest = store.url[len("s3://"):]
        bucket, _, prefix = rest.partition("/")
        return bucket, prefix


# -- implementations ------------------------------------------------------------------------

class ZarrsyncS3:
    name = "zarrsync"

    def __init__(self, setup):
        self.setup = setup

    def _open(self, store):
        return zs.ObjectStore(store.url, mode="r", **self.setup.s3.options(self.setup.proxy.url))

    def open_tree(self, consolidated):
        store = self._open(self.setup.tree_consolidated if consolidated else self.setup.tree)
        # find_all_nodes reads every node's document (or the consolidated copy)
        # and keeps each array's for its first read_array.
        arrays, _ = store.find_all_nodes()
        assert len(arrays) == 100
        return [(store, a) for a in arrays]

    def read_full(self):
        return self._open(self.setup.data).read_array(zs.ArrayNode.of_path("/full"))

    def point_reads(self):
        store = self._open(self.setup.data)
        node = zs.ArrayNode.of_path("/sharded")
        return [store.read_array(node, p)[()] for p in self.setup.points]


class ZarrPythonS3:
    name = "zarr-python"

    def __init__(self, setup):
        import zarr
        from obstore.store import S3Store
        self.zarr, self.setup, self.S3Store = zarr, setup, S3Store

    def _store(self, store):
        bucket, prefix = self.setup.bucket_and_prefix(store)
        s3 = self.setup.s3
        client = self.S3Store(bucket, prefix=prefix, endpoint=self.setup.proxy.url,
                              region=s3.region, access_key_id=s3.access_key,
                              secret_access_key=s3.secret_key,
                              client_options={"allow_http": True})
        return self.zarr.storage.ObjectStore(client, read_only=True)

    def _config(self):
        """The zarr configuration arrays are opened under (their codec pipeline)."""
        return contextlib.nullcontext()

    def _open_array(self, path):
        with self._config():
            arr = self.zarr.open_array(self._store(self.setup.data), path=path, mode="r")
        self._check(arr)
        return arr

    def _check(self, arr):
        pass

    def open_tree(self, consolidated):
        store = self._store(self.setup.tree_consolidated if consolidated else self.setup.tree)
        with self._config():
            group = self.zarr.open_group(store, mode="r", use_consolidated=consolidated)
            arrays = [m for _, m in group.members(max_depth=None)
                      if isinstance(m, self.zarr.Array)]
        assert len(arrays) == 100
        for a in arrays:
            self._check(a)
        return [a.metadata for a in arrays]

    def read_full(self):
        return self._open_array("full")[...]

    def point_reads(self):
        a = self._open_array("sharded")
        return [a[p] for p in self.setup.points]


class ZarrPythonFusedS3(ZarrPythonS3):
    """zarr-python with its FusedCodecPipeline (zarr >= 3.4), on the same store."""

    name = "zarr-python fused"

    def __init__(self, setup):
        from zarr.core.codec_pipeline import FusedCodecPipeline
        super().__init__(setup)
        self.pipeline = FusedCodecPipeline

    def _config(self):
        return self.zarr.config.set(
            {"codec_pipeline.path": "zarr.core.codec_pipeline.FusedCodecPipeline"})

    def _check(self, arr):
        if not isinstance(arr._async_array.codec_pipeline, self.pipeline):
            raise RuntimeError("the array does not use the FusedCodecPipeline")


class ZarrsS3(ZarrPythonS3):
    """zarr-python with the zarrs codec pipeline (strict: no silent fallback)."""

    name = "zarrs"

    def __init__(self, setup):
        import zarrs
        super().__init__(setup)
        self.zarrs = zarrs

    def _config(self):
        return self.zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline",
                                     "codec_pipeline.strict": True})

    def _check(self, arr):
        pipeline = arr._async_array.codec_pipeline
        if not isinstance(pipeline, self.zarrs.ZarrsCodecPipeline) or pipeline.impl is None:
            raise RuntimeError(f"the array uses {type(pipeline).__name__}, not the zarrs "
                               f"pipeline (zarrs-python reads object stores through "
                               f"zarr-python's pipeline)")


class TensorStoreS3:
    name = "tensorstore"

    def __init__(self, setup):
        import tensorstore
        self.ts, self.setup = tensorstore, setup

    def _kvstore(self, store, path=""):
        bucket, prefix = self.setup.bucket_and_prefix(store)
        return {"driver": "s3", "bucket": bucket, "path": f"{prefix}/{path}",
                "endpoint": self.setup.proxy.url, "aws_region": self.setup.s3.region,
                "aws_credentials": {"type": "environment"}}

    def _open(self, store, path):
        spec = {"driver": "zarr3", "kvstore": self._kvstore(store, path + "/"),
                "context": {"cache_pool": {"total_bytes_limit": 0}}}
        return self.ts.open(spec, open=True, read=True)

    def open_tree(self, consolidated):
        # No hierarchy in tensorstore: list the keys, open every array found.
        store = self.setup.tree_consolidated if consolidated else self.setup.tree
        kv = self.ts.KvStore.open(self._kvstore(store)).result()
        keys = [k.decode() for k in kv.list().result()]
        paths = [k[:-len("/zarr.json")] for k in keys
                 if k.endswith("/zarr.json") and k.count("/") == 2]
        arrays = [f.result() for f in [self._open(store, p) for p in paths]]
        assert len(arrays) == 100
        return arrays

    def read_full(self):
        return self._open(self.setup.data, "full").result().read().result()

    def point_reads(self):
        a = self._open(self.setup.data, "sharded").result()
        return [a[p].read().result() for p in self.setup.points]


class Limit:
    """The fewest requests a row needs, made with obstore alone (no decoding)."""

    name = "limit"

    def __init__(self, setup):
        import obstore
        from obstore.store import from_url
        self.obstore, self.setup = obstore, setup
        clients = {}
        self.client = lambda store: clients.setdefault(
            store.url, from_url(store.url, **setup.s3.options(setup.proxy.url)))

    def _get_all(self, client, keys, ranges=None):
        import asyncio
        obstore = self.obstore

        async def main():
            limit = asyncio.Semaphore(32)

            async def one(key):
                async with limit:
                    return await (await obstore.get_async(client, key)).bytes_async()
            return await asyncio.gather(*(one(k) for k in keys))
        return asyncio.run(main())

    def open_tree(self, consolidated):
        store = self.setup.tree_consolidated if consolidated else self.setup.tree
        client = self.client(store)
        if consolidated:
            return self._get_all(client, ["zarr.json"])
        keys = [m["path"] for batch in self.obstore.list(client) for m in batch
                if m["path"].count("/") == 2]
        return self._get_all(client, keys)

    def read_full(self):
        client = self.client(self.setup.data)
        keys = [m["path"] for batch in self.obstore.list(client, "full/c") for m in batch]
        return self._get_all(client, keys)

    def point_reads(self):
        client = self.client(self.setup.data)
        return [self.obstore.get(client, "sharded/zarr.json", options={"range": (0, 2)}).bytes()
                for _ in self.setup.points]


IMPLEMENTATIONS = (ZarrsyncS3, ZarrPythonS3, ZarrPythonFusedS3, ZarrsS3, TensorStoreS3)


# -- rows -----------------------------------------------------------------------------------

def rows(quick=False, repeats=5, only=""):
    """``[{"label", "seconds": {name: median}, "requests": {name: n}, "ratio"}]``:
    every row, every implementation, rounds interleaved."""
    setup = Setup(quick)
    impls = []
    notes = {}
    for cls in IMPLEMENTATIONS:
        try:
            impls.append(cls(setup))
        except ImportError as e:
            notes[cls.name] = f"not installed: {e}"
    work = [
        ("S3 open 100 arrays, no consolidated metadata", lambda i: i.open_tree(False), None),
        ("S3 open 100 arrays, consolidated metadata", lambda i: i.open_tree(True), None),
        (f"S3 full read {'x'.join(map(str, setup.full_shape))} float32, "
         f"{int(np.prod(np.array(setup.full_shape) // setup.full_chunks))} zstd chunks",
         lambda i: i.read_full(),
         lambda got: np.array_equal(np.asarray(got), setup.full)),
        ("S3 200 point reads, sharded", lambda i: i.point_reads(),
         lambda got: [int(np.asarray(v)) for v in got]
         == [int(setup.points_data[p]) for p in setup.points]),
    ]
    out = []
    try:
        for label, run, check in work:
            if only not in label:
                continue
            row = {"label": label, "seconds": {}, "requests": {}, "notes": dict(notes)}
            live = []
            for impl in impls:
                try:
                    setup.proxy.reset_counts()
                    got = run(impl)   # warm-up, and the request count of one round
                    row["requests"][impl.name] = setup.proxy.count()
                    if check is not None and not check(got):
                        raise AssertionError("read other data")
                    live.append(impl)
                except Exception as e:  # noqa: BLE001 -- a cell that fails is reported
                    row["notes"][impl.name] = f"error: {type(e).__name__}: {e}"[:300]
            times = {impl.name: [] for impl in live}
            for r in range(repeats):
                for impl in live[r % len(live):] + live[:r % len(live)] if live else []:
                    start = time.perf_counter()
                    run(impl)
                    times[impl.name].append(time.perf_counter() - start)
            row["seconds"] = {name: statistics.median(t) for name, t in times.items()}
            limit = Limit(setup)
            run(limit)
            spent = []
            for _ in range(repeats):
                start = time.perf_counter()
                run(limit)
                spent.append(time.perf_counter() - start)
            row["limit"] = statistics.median(spent)
            mine = row["seconds"].get("zarrsync")
            others = [v for k, v in row["seconds"].items() if k != "zarrsync"]
            row["ratio"] = (min(others) / mine) if mine and others else None
            out.append(row)
    finally:
        setup.close()
    return out


def print_rows(rows_):
    names = [cls.name for cls in IMPLEMENTATIONS]
    print("\nObject store rows (S3 on loopback, moto, 20 ms per request through a proxy): "
          "median seconds (requests of one round); ratio = fastest other / zarrsync")
    print("| workload | " + " | ".join(names) + " | ratio | limit |")
    print("|---|" + "---:|" * (len(names) + 2))
    for row in rows_:
        cells = []
        for n in names:
            if n in row["seconds"]:
                cells.append(f"{row['seconds'][n]:.3f} s ({row['requests'][n]})")
            else:
                cells.append("n/a")
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        limit = f"{row['limit']:.3f} s" if row.get("limit") is not None else "n/a"
        print(f"| {row['label']} | " + " | ".join(cells) + f" | {ratio} | {limit} |")
        for n, note in row["notes"].items():
            print(f"    {n}: {note}")
