"""``ObjectStore``: S3, Google Cloud Storage, Azure and HTTP through obstore.

obstore (Rust's ``object_store``) does the requests, the signing, the
credential sources (options, the standard environment variables, profiles)
and the retries with backoff (5xx, dropped connections, timeouts). This
module maps the key-value interface onto it:

* every call that touches several keys or ranges runs their requests at
  once on one event loop per process, at most ``max_concurrency`` in flight;
* ranges of one key that lie close together are fetched as one request
  (``coalesce`` bytes apart at most) and sliced, so a sharded read takes few
  requests; the responses for one key must carry one ETag, else the key is
  read again (a value other processes rewrote meanwhile is never mixed);
* a value is written by one PUT (or a multipart upload completed at once):
  readers see the old object or the new one;
* errors once retries are spent become ``StoreError`` naming the key, with
  any credential given as an option blotted out.
"""

import asyncio
import atexit
import os
import threading

from ..errors import StoreError
from ._base import Pending, Store

__all__ = ["ObjectStore"]

_MODES = ("r", "r+", "a", "w", "w-")
#: Option names whose values are secrets (never shown in errors or reprs).
_SECRET_WORDS = ("secret", "token", "password", "key", "credential", "sas", "signature")
#: Attempts at reading the ranges of one key from one version of its value.
_VERSION_ATTEMPTS = 5
#: What a conditional read finds when the value is no longer the version asked for.
_CHANGED = object()


def _obstore():
    try:
        import obstore
    except ImportError:   # pragma: no cover - a core dependency
        raise StoreError("ObjectStore needs the obstore package (pip install obstore)") from None
    return obstore


def _precondition_error():
    from obstore.exceptions import PreconditionError
    return PreconditionError


# -- one event loop per process ----------------------------------------------------------

class _Loop:
    """An asyncio loop on a daemon thread, started on first use in each process."""

    _lock = threading.Lock()
    _loop = None
    _pid = None
    _thread = None

    @classmethod
    def start(cls, coroutine):
        """Start ``coroutine`` on the loop (from any thread); a ``concurrent.futures.Future``."""
        return asyncio.run_coroutine_threadsafe(coroutine, cls._get())

    @classmethod
    def _get(cls):
        with cls._lock:
            if cls._loop is None or cls._pid != os.getpid():   # new, or inherited by fork
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="zarrsync-object-store",
                                          daemon=True)
                thread.start()
                cls._loop, cls._pid, cls._thread = loop, os.getpid(), thread
                atexit.register(cls._stop, loop, thread)
            return cls._loop

    @staticmethod
    def _stop(loop, thread):
        # At exit, before the interpreter tears down: a daemon thread still
        # inside the loop (and obstore's runtime) while it does can abort it.
        if thread.is_alive() and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)


def _is_secret(name):
    name = name.lower()
    return any(word in name for word in _SECRET_WORDS)


class ObjectStore(Store):
    """A store in an object store bucket (S3, GCS, Azure) or behind an HTTP(S) URL.

    Parameters
    ----------
    url : str
        ``s3://bucket/prefix``, ``gs://bucket/prefix``, ``az://container/prefix``
        (and the other forms obstore takes), or ``https://host/path``.
    mode : {"r", "r+", "a", "w", "w-"}
        "r" read-only; "r+" read/write, something must be there; "a"
        read/write; "w" erases everything under the prefix first; "w-"
        refuses a prefix that holds anything.
    max_concurrency : int
        Requests in flight at once for this store object, from all its
        callers together (default 32).
    coalesce : int
        Ranges of one object at most this many bytes apart are fetched as one
        request (default 1 MiB, as obstore's ``get_ranges``).
    **options
        obstore's options, as it names them: ``endpoint``, ``region``,
        ``access_key_id``, ``secret_access_key``, ``session_token``,
        ``skip_signature``, ... and ``client_options`` (timeouts,
        ``allow_http``), ``retry_config`` (``max_retries``, ``retry_timeout``,
        ``backoff``). Anything not given comes from the usual environment
        variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
        ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ALLOW_HTTP``, and
        their GCS and Azure counterparts) and profiles.

    Notes
    -----
    The store pickles (its URL, mode and options; the client is made again
    in the other process). Credentials never appear in its repr or errors.
    """

    knows_sizes = True
    shared_between_processes = True
    versions_values = True
    reads_ahead = True

    def __init__(self, url, mode="a", *, max_concurrency=32, coalesce=1 << 20, **options):
        if mode not in _MODES:
            raise ValueError(f"ObjectStore mode must be one of {_MODES}, got {mode!r}")
        if not isinstance(url, str) or "://" not in url:
            raise StoreError(f"ObjectStore needs a URL such as s3://bucket/prefix, got {url!r}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) \
                or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive int, got {max_concurrency!r}")
        self._url = url.rstrip("/")
        self._mode = mode
        self._options = dict(options)
        self._max_concurrency = max_concurrency
        self._coalesce = int(coalesce)
        self._client = None
        self._client_pid = None
        self._semaphore = None
        self._open(mode)

    def _open(self, mode):
        client = self._get_client()   # bad options fail here, not at the first read
        del client
        if mode == "r+" and not self.list_prefix(""):
            raise StoreError(f"{self._description()} holds nothing (mode 'r+' needs an "
                             f"existing store)")
        if mode == "w-" and self.list_prefix(""):
            raise StoreError(f"{self._description()} is not empty (mode 'w-')")
        if mode == "w":
            self.erase_prefix("")

    # -- identity, pickling -------------------------------------------------------------

    @property
    def url(self):
        return self._url

    @property
    def read_only(self):
        return self._mode == "r"

    @property
    def mode(self):
        return self._mode

    def _description(self):
        return f"ObjectStore {self._url!r}"

    def __repr__(self):
        return f"ObjectStore({self._url!r}, mode={self._mode!r})"

    def __getstate__(self):
        state = super().__getstate__()
        state["_client"] = None   # made again in the other process
        state["_client_pid"] = None
        state["_semaphore"] = None
        return state

    def __setstate__(self, state):
        # As it was: "w" must not clear again, "w-" must not fail on its own data.
        self.__dict__.update(state)

    def _get_client(self):
        if self._client is None or self._client_pid != os.getpid():
            from obstore.store import from_url
            _obstore()
            try:
                self._client = from_url(self._url, **self._options)
            except Exception as e:   # obstore's errors for bad URLs and options
                raise StoreError(f"cannot open {self._description()}: "
                                 f"{self._redact(e)}") from None
            self._client_pid = os.getpid()
        return self._client

    def _redact(self, error):
        """``error`` as text with every secret option value blotted out."""
        # obstore appends a multi-line "Debug source" dump: the first part says it.
        text = f"{type(error).__name__}: {str(error).split(chr(10) + chr(10))[0]}"
        for name, value in self._options.items():
            if _is_secret(name) and isinstance(value, str) and value:
                text = text.replace(value, "***")
        return text

    def _fail(self, what, key, error):
        return StoreError(f"{what} {key!r} on {self._description()} failed: "
                          f"{self._redact(error)}")

    # -- running requests ---------------------------------------------------------------

    def _run(self, make_coroutines):
        """Run the coroutines ``make_coroutines(client, limit)`` returns, at most
        ``max_concurrency`` at once; their results in order."""
        return self._start(make_coroutines).result()

    def _start(self, make_coroutines):
        """``_run`` in the background: a ``concurrent.futures.Future``."""
        client = self._get_client()

        async def gather():
            return await asyncio.gather(*make_coroutines(client, self._limit()))
        return _Loop.start(gather())

    def _limit(self):
        """The semaphore that holds this store object's requests in flight to
        ``max_concurrency`` (made on the loop, again after a fork); waiters are
        served in order, so requests started first finish first."""
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._semaphore[0] is not loop:
            self._semaphore = (loop, asyncio.Semaphore(self._max_concurrency))
        return self._semaphore[1]

    # -- reads ----------------------------------------------------------------------------

    def get(self, key):
        return self.get_many([key])[0]

    def get_many(self, keys):
        return self.get_many_ahead(keys)()

    def get_many_ahead(self, keys, buffers=False):
        keys = list(keys)
        if not keys:
            return Pending.ready([])
        obstore = _obstore()
        # obstore's own ``Bytes`` (read-only, with the buffer protocol) where
        # buffers do: no copy in the event loop, which holds the GIL meanwhile.
        convert = (lambda value: value) if buffers else bytes

        async def one(client, limit, key):
            async with limit:
                try:
                    result = await obstore.get_async(client, key)
                    return convert(await result.bytes_async())
                except FileNotFoundError:
                    return None
                except Exception as e:
                    raise self._fail("get", key, e) from None
        return Pending(self._start(lambda client, limit: [one(client, limit, k) for k in keys]))

    def getsize(self, key):
        obstore = _obstore()

        async def one(client, limit):
            async with limit:
                try:
                    return (await obstore.head_async(client, key))["size"]
                except FileNotFoundError:
                    return None
                except Exception as e:
                    raise self._fail("head", key, e) from None
        return self._run(lambda client, limit: [one(client, limit)])[0]

    def get_partial_values(self, key_ranges):
        return self.get_partial_values_ahead(key_ranges)()

    def get_partial_values_ahead(self, key_ranges):
        key_ranges = list(key_ranges)
        by_key = {}
        for i, (key, offset, length) in enumerate(key_ranges):
            by_key.setdefault(key, []).append((i, offset, length))
        if not by_key:
            return Pending.ready([])

        def make(client, limit):
            return [self._read_ranges(client, limit, key, wanted)
                    for key, wanted in by_key.items()]

        def in_order(results):
            out = [None] * len(key_ranges)
            for key_result in results:
                for i, value in key_result:
                    out[i] = value
            return out
        return Pending(self._start(make), in_order)

    def get_ranges_versioned(self, key, ranges):
        """``(values, size, version)``: the ``(offset, length)`` ``ranges`` of
        ``key``, all from one version of its value, with the value's size and
        its version (the ETag); ``(None, None, None)`` if ``key`` is absent.
        The size comes with the ranges: no request of its own."""
        wanted = [(i, off, n) for i, (off, n) in enumerate(ranges)]
        answer, tag, size = self._run(
            lambda client, limit: [self._read_ranges(client, limit, key, wanted, True)])[0]
        if tag is None:
            return None, None, None
        return [value for _, value in sorted(answer, key=lambda pair: pair[0])], size, tag

    def get_ranges_if(self, key, ranges, version):
        """The ``ranges`` of ``key`` if it still holds ``version`` (one request
        per coalesced run, each conditional on the ETag), else ``None``."""
        wanted = [(i, off, n) for i, (off, n) in enumerate(ranges)]
        answer = self._run(lambda client, limit: [
            self._read_ranges_once(client, limit, key, wanted, if_match=version)])[0]
        if answer is _CHANGED or answer is None or answer[1] is None:
            return None
        return [value for _, value in sorted(answer[0], key=lambda pair: pair[0])]

    async def _read_ranges(self, client, limit, key, wanted, with_version=False):
        """``[(index, bytes or None)]`` for the ranges ``wanted`` of ``key``, all
        from one version of its value (requests whose ETags differ are made
        again); with ``with_version``, ``(that list, ETag, size)``."""
        for _ in range(_VERSION_ATTEMPTS):
            answer = await self._read_ranges_once(client, limit, key, wanted)
            if answer is not None:
                return answer if with_version else answer[0]
        raise StoreError(f"{key!r} on {self._description()} kept changing while its ranges "
                         f"were read ({_VERSION_ATTEMPTS} attempts)")

    async def _read_ranges_once(self, client, limit, key, wanted, if_match=None):
        """``(answer, ETag, size)`` (``ETag`` ``None`` if ``key`` is absent), or
        ``None`` if the value changed between the requests; with ``if_match``,
        ``_CHANGED`` if the value is no longer that version."""
        obstore = _obstore()
        # Requests: ("range", start, end) for runs of ranges close together,
        # ("suffix", n) for a negative offset, ("offset", start) to the end.
        plain = sorted((off, off + n, i) for i, off, n in wanted
                       if n is not None and off >= 0 and n > 0)
        requests, members = [], []
        for start, end, i in plain:
            if requests and requests[-1][0] == "range" and start - requests[-1][2] \
                    <= self._coalesce:
                requests[-1] = ("range", requests[-1][1], max(requests[-1][2], end))
                members[-1].append((i, start, end))
            else:
                requests.append(("range", start, end))
                members.append([(i, start, end)])
        other = [(i, off, n) for i, off, n in wanted
                 if not (n is not None and off >= 0 and n > 0)]
        for i, off, n in other:
            if n == 0:
                continue
            requests.append(("suffix", -off) if off < 0 else ("offset", off))
            members.append([(i, off, n)])
        zero = [i for i, off, n in wanted if n == 0]
        if zero or not requests:
            requests.append(("head",))
            members.append([])

        async def fetch(request):
            async with limit:
                try:
                    if request[0] == "head":
                        meta = await obstore.head_async(client, key)
                        return meta["e_tag"], meta["size"], b""
                    options = {"range": ((request[1], request[2]) if request[0] == "range"
                                         else {request[0]: request[1]})}
                    if if_match is not None:
                        options["if_match"] = if_match
                    result = await obstore.get_async(client, key, options=options)
                    data = bytes(await result.bytes_async())
                    return result.meta["e_tag"], result.meta["size"], data
                except FileNotFoundError:
                    return None
                except _precondition_error():
                    return _CHANGED
                except Exception as e:
                    # A start at or past the end is refused (416): empty, if the key exists.
                    if request[0] in ("range", "offset"):
                        try:
                            meta = await obstore.head_async(client, key)
                        except FileNotFoundError:
                            return None
                        except Exception:
                            raise self._fail("get", key, e) from None
                        if meta["size"] <= request[1]:
                            return meta["e_tag"], meta["size"], b""
                    raise self._fail("get", key, e) from None

        results = await asyncio.gather(*(fetch(r) for r in requests))
        if if_match is not None and any(r is None or r is _CHANGED or r[0] != if_match
                                        for r in results):
            return _CHANGED
        if any(r is None for r in results):
            if all(r is None for r in results):
                return [(i, None) for i, _, _ in wanted], None, None
            return None   # erased while read: read again
        if len({tag for tag, _, _ in results}) > 1:
            return None   # rewritten while read: read again
        answer = [(i, b"") for i in zero]
        for request, group, (_, _, data) in zip(requests, members, results):
            for i, first, last in group:
                if request[0] == "range":   # (index, start, end) of one coalesced range
                    answer.append((i, data[first - request[1]:last - request[1]]))
                else:   # (index, offset, length): to the end, or from the end
                    answer.append((i, data if last is None else data[:last]))
        tag, size, _ = results[0]
        return answer, tag, size

    # -- writes ---------------------------------------------------------------------------

    def set(self, key, value):
        self._refuse_writes("set", repr(key))
        self.set_many([key], [value])

    def set_many(self, keys, values):
        keys, values = list(keys), list(values)
        if self.read_only:
            super().set_many(keys, values)   # raises, naming the keys
        obstore = _obstore()
        puts = [(k, bytes(v)) for k, v in zip(keys, values) if v is not None]
        deletes = [k for k, v in zip(keys, values) if v is None]

        async def put(client, limit, key, data):
            async with limit:
                try:
                    await obstore.put_async(client, key, data)
                except Exception as e:
                    raise self._fail("put", key, e) from None
        if puts:
            self._run(lambda client, limit: [put(client, limit, k, d) for k, d in puts])
        for key in deletes:
            self.erase(key)

    def erase(self, key):
        self._refuse_writes("erase", repr(key))
        self._delete([key])

    def _delete(self, keys):
        obstore = _obstore()

        async def delete(client, limit, batch):
            async with limit:
                try:
                    await obstore.delete_async(client, batch)
                except FileNotFoundError:
                    pass
                except Exception as e:
                    raise self._fail("delete", batch[0], e) from None
        batches = [keys[i:i + 1000] for i in range(0, len(keys), 1000)]
        if batches:
            self._run(lambda client, limit: [delete(client, limit, b) for b in batches])

    def erase_prefix(self, prefix):
        self._refuse_writes("erase_prefix", repr(prefix))
        self._delete(self.list_prefix(prefix))

    def move_prefix(self, old, new):
        self._refuse_writes("move_prefix", f"{old!r} to {new!r}")
        obstore = _obstore()
        keys = self.list_prefix(old)

        async def copy(client, limit, key):
            async with limit:
                try:
                    await obstore.copy_async(client, key, new + key[len(old):])
                except Exception as e:
                    raise self._fail("copy", key, e) from None
        # Every value is copied before any is deleted: a failure leaves each reachable.
        if keys:
            self._run(lambda client, limit: [copy(client, limit, k) for k in keys])
        self._delete(keys)

    # -- listing --------------------------------------------------------------------------

    def list_prefix(self, prefix):
        return [key for key, _ in self.list_prefix_sizes(prefix)]

    def list_prefix_sizes(self, prefix):
        obstore = _obstore()
        client = self._get_client()
        # obstore lists whole path segments: list the folder above and filter.
        folder = prefix.rpartition("/")[0]
        try:
            found = [(meta["path"], meta["size"])
                     for batch in obstore.list(client, folder or None) for meta in batch]
        except Exception as e:
            raise self._fail("list", prefix, e) from None
        return [(key, size) for key, size in found if key.startswith(prefix)]

    def list_dir(self, prefix):
        obstore = _obstore()
        client = self._get_client()
        try:
            listing = obstore.list_with_delimiter(client, prefix.rstrip("/") or None)
        except Exception as e:
            raise self._fail("list", prefix, e) from None
        keys = [m["path"][len(prefix):] for m in listing["objects"]
                if m["path"].startswith(prefix)]
        prefixes = [p[len(prefix):].rstrip("/") for p in listing["common_prefixes"]
                    if p.startswith(prefix)]
        return sorted(keys), sorted(prefixes)

