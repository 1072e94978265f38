"""The tests' S3 server: one ``zarrsync.testing.LocalS3`` per test process,
started on first use and stopped at exit, and its helpers as functions."""

import atexit
import threading

from zarrsync.testing import FaultProxy, LocalS3

__all__ = ["endpoint", "new_bucket", "options", "new_store", "FaultProxy", "ACCESS_KEY",
           "SECRET_KEY", "REGION"]

ACCESS_KEY, SECRET_KEY, REGION = LocalS3.access_key, LocalS3.secret_key, LocalS3.region
_lock = threading.Lock()
_server = None


def server():
    """The process's ``LocalS3``, started on first use."""
    global _server
    with _lock:
        if _server is None:
            _server = LocalS3()
            atexit.register(_server.stop)
        return _server


def endpoint():
    return server().endpoint


def new_bucket(url=None):
    return server().new_bucket(url)


def options(url=None, **extra):
    return server().options(url, **extra)


def new_store(prefix="data.zarr", mode="a", url=None, **extra):
    return server().new_store(prefix, mode, url, **extra)
