"""``open_store``: the store a path or URL names."""

import os
import re

from ..errors import StoreError
from ._base import Store
from ._filesystem import FilesystemStore
from ._memory import MemoryStore
from ._object import ObjectStore
from ._zip import ZipStore

__all__ = ["open_store", "OBJECT_STORE_SCHEMES"]

#: URL schemes that name an object store (served by ``ObjectStore``).
OBJECT_STORE_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss", "http",
                        "https")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def open_store(url, mode="a", **options):
    """The store that ``url`` names, opened with ``mode``.

    Parameters
    ----------
    url : str, os.PathLike or Store
        A local path (a folder; a path ending in ``.zip`` is a ``ZipStore``),
        ``file://`` path, ``memory://`` (a new, empty ``MemoryStore``), an object
        store URL (``s3://bucket/prefix``, ``gs://``, ``az://``, ``http(s)://``:
        an ``ObjectStore``), or a store, returned as it is.
    mode : {"r", "r+", "a", "w", "w-"}
        As for the store classes (a ``ZipStore`` takes "r", "w" and "a").
    **options
        Passed to the store class: for example ``follow_links`` for folders,
        or an object store's ``endpoint``, ``region`` and credentials.

    Raises
    ------
    StoreError
        For a URL scheme no store serves.
    """
    if isinstance(url, Store):
        return url
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str):
        raise StoreError(f"expected a path, a URL or a Store, got {type(url).__name__}")
    found = _SCHEME.match(url)
    scheme = found.group(1).lower() if found else None
    if scheme == "memory":
        if options:
            raise StoreError(f"memory:// takes no options, got {sorted(options)}")
        return MemoryStore()
    if scheme in OBJECT_STORE_SCHEMES:
        return ObjectStore(url, mode=mode, **options)
    if scheme == "file":
        url = url[len("file://"):]
    elif scheme is not None:
        raise StoreError(f"no store serves {scheme}:// URLs (zarrsync opens paths, file://, "
                         f"memory://, .zip files and {', '.join(s + '://' for s in OBJECT_STORE_SCHEMES)})")
    if url.lower().endswith(".zip"):
        return ZipStore(url, mode=mode, **options)
    return FilesystemStore(url, mode=mode, **options)
