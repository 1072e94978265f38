"""Tools for testing code that uses zarrsync: a real S3 server on loopback,
and an HTTP proxy in front of it that adds latency and injects faults.

``LocalS3`` runs moto's S3 server (``pip install "moto[server]"``) on
127.0.0.1 at a free port, makes buckets and hands out ``ObjectStore``s on
them. ``FaultProxy`` forwards HTTP requests to it one at a time, each after
``latency`` seconds, and can answer the next requests with a fault instead:
a dropped connection, a 503, or a stall longer than the client's timeout.
Nothing of the client library is mocked: obstore talks HTTP to a server.
zarrsync's own tests and ``benchmarks/compare.py`` use both::

    s3 = LocalS3()
    store = s3.new_store("run.zarr")              # an ObjectStore on a new bucket
    proxy = FaultProxy(s3.endpoint, latency=0.02)
    slow = zs.ObjectStore(store.url, **s3.options(proxy.url))
    proxy.inject("503", "drop")                   # the next two requests fail once
"""

import collections
import http.client
import itertools
import socket
import threading
import time
from urllib.parse import urlsplit

__all__ = ["LocalS3", "FaultProxy"]


class LocalS3:
    """moto's S3 server on 127.0.0.1, started now and stopped by ``stop()``
    (or, given ``endpoint``, one that runs elsewhere, such as another process).

    It checks no signatures; the credentials it is given are ``access_key``
    and ``secret_key`` below, and its region ``region``.
    """

    access_key, secret_key, region = "zarrsync-test-key", "zarrsync-test-secret", "us-east-1"

    def __init__(self, endpoint=None):
        self._names = itertools.count()
        self._server = None
        if endpoint is not None:   # a server started elsewhere (another process)
            self.endpoint = endpoint
            return
        import logging

        from moto.server import ThreadedMotoServer
        logging.getLogger("werkzeug").setLevel(logging.ERROR)   # a line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def stop(self):
        if self._server is not None:
            self._server.stop()

    def new_bucket(self, url=None):
        """The name of a new, empty bucket, made through ``url`` (default: the
        server itself; a proxy's URL works too)."""
        name = f"zarrsync-{next(self._names)}-{int(time.time() * 1000) % 100000}"
        parts = urlsplit(url or self.endpoint)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:   # moto does not check signatures: a plain PUT makes the bucket
            conn.request("PUT", f"/{name}")
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"creating bucket {name}: HTTP {response.status}")
        return name

    def options(self, url=None, **extra):
        """``ObjectStore`` options for the server at ``url`` (default: this one)."""
        return {"endpoint": url or self.endpoint, "region": self.region,
                "access_key_id": self.access_key, "secret_access_key": self.secret_key,
                "client_options": {"allow_http": True}, **extra}

    def new_store(self, prefix="data.zarr", mode="a", url=None, **extra):
        """An ``ObjectStore`` on a new bucket, through ``url`` if given."""
        from .storage import ObjectStore
        return ObjectStore(f"s3://{self.new_bucket()}/{prefix}", mode=mode,
                           **self.options(url, **extra))


# -- the latency and fault proxy ---------------------------------------------------------

def _read_until(sock, marker, limit=1 << 20):
    data = b""
    while marker not in data:
        part = sock.recv(65536)
        if not part:
            return data, False
        data += part
        if len(data) > limit:
            raise ValueError(f"request head larger than {limit} bytes")
    return data, True


def _read_exact(sock, n, data=b""):
    while len(data) < n:
        part = sock.recv(max(65536, n - len(data)))
        if not part:
            break
        data += part
    return data


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` (a URL).

    Each request waits ``latency`` seconds, then goes to the upstream on a
    connection of its own. ``inject(*faults)`` queues faults for the next
    requests: "drop" closes the connection without an answer, "503" answers
    Service Unavailable, "stall" holds the request for ``stall`` seconds and
    then closes. ``requests`` counts the requests seen (by method too), and
    ``most_in_flight`` the most that were being answered at once.
    """

    def __init__(self, upstream, latency=0.02, stall=5.0):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.latency, self.stall = latency, stall
        self.faults = collections.deque()
        self.requests = collections.Counter()
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def inject(self, *faults):
        with self._lock:
            self.faults.extend(faults)

    def count(self, method=None):
        with self._lock:
            return sum(self.requests.values()) if method is None else self.requests[method]

    def reset_counts(self):
        with self._lock:
            self.requests.clear()
            self.most_in_flight = self.in_flight

    def close(self):
        self._closed = True
        self._listener.close()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        try:
            with client:
                while True:
                    head, complete = _read_until(client, b"\r\n\r\n")
                    if not complete:
                        return
                    head, _, rest = head.partition(b"\r\n\r\n")
                    lines = head.split(b"\r\n")
                    method = lines[0].split(b" ", 1)[0].decode()
                    length = 0
                    for line in lines[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value.strip())
                    body = _read_exact(client, length, rest)
                    with self._lock:
                        self.requests[method] += 1
                        fault = self.faults.popleft() if self.faults else None
                        self.in_flight += 1
                        self.most_in_flight = max(self.most_in_flight, self.in_flight)
                    try:
                        response = self._answer(fault, lines, body)
                    finally:
                        # Out of flight before the client can have the answer: the
                        # client's next request never overlaps this one here.
                        with self._lock:
                            self.in_flight -= 1
                    if response is None:
                        return
                    client.sendall(response)
        except OSError:
            return

    def _answer(self, fault, lines, body):
        """The answer to one request (after the latency); ``None`` ends the connection."""
        time.sleep(self.latency)
        if fault == "drop":
            return None
        if fault == "stall":
            time.sleep(self.stall)
            return None
        if fault == "503":
            return (b"HTTP/1.1 503 Service Unavailable\r\n"
                    b"Content-Length: 0\r\nRetry-After: 0\r\n\r\n")
        return self._forward(lines, body)

    def _forward(self, lines, body):
        # One upstream connection per request: it answers and closes.
        kept = [line for line in lines if not line.lower().startswith(b"connection:")]
        request = b"\r\n".join(kept + [b"Connection: close"]) + b"\r\n\r\n" + body
        with socket.create_connection(self.upstream, timeout=30) as upstream:
            upstream.sendall(request)
            parts = []
            while True:
                part = upstream.recv(1 << 20)
                if not part:
                    return b"".join(parts)
                parts.append(part)
