"""A store in one zip file, read and written with the standard ``zipfile`` module.

It is the same layout as zarr-python's ``ZipStore``: each key is a zip entry
of that name, stored uncompressed by default. Each library reads the
other's archives.

A zip entry cannot be changed or removed in place, so writing is append-only
until ``close``:

* ``set`` of a key that exists appends a new entry. Until the store is
  closed, the file holds both the old and the new entry. Readers that take
  the last entry of a name (``zipfile``, zarr-python) see the new one.
* ``erase`` and ``erase_prefix`` only forget the entries in this store
  object. The bytes stay in the file until ``close``.
* ``close`` (or leaving the ``with`` block) writes the central directory. If
  any entry was replaced or erased, it first copies the live entries into a
  new archive next to the old one and moves that into place with
  ``os.replace``. The closed archive then holds exactly one entry per key.

A store opened with mode "w" or "a" is a complete zip archive only after
``close``. Mode "a" on an archive that already holds several entries of one
name (zarr-python writes those when a key is set twice) uses the last one,
and ``close`` drops the others.

Sharing with other processes: a store open for reading (mode "r") pickles,
and the copy re-opens the archive by its path, read-only. One open for
writing does not: its single writer owns the archive's central directory,
which only its ``close`` writes, so pickling it (or a closed store) raises
``StoreError``. Close it and share ``ZipStore(path, mode="r")`` instead.
"""

import os
import secrets
import struct
import threading
import zipfile
import zlib

from .. import config
from ..errors import StoreError
from ._base import Store

__all__ = ["ZipStore"]

# Entries get this fixed timestamp (the zip epoch), so one sequence of writes
# always makes the same bytes.
_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_MODES = ("r", "w", "a")

# What zipfile raises for a damaged or unreadable entry: a bad header or CRC,
# truncated data, a corrupt deflate stream, an encrypted entry (RuntimeError),
# an unknown compression method or zip version, a name that is not UTF-8
# (ValueError) or a short record (struct.error).
_READ_ERRORS = (zipfile.BadZipFile, OSError, EOFError, zlib.error, RuntimeError,
                NotImplementedError, ValueError, struct.error)
try:
    import lzma
except ImportError:  # Python built without it: zipfile cannot read such entries either
    pass
else:
    _READ_ERRORS += (lzma.LZMAError,)


def _key_problem(name):
    """Why ``name`` is not a valid key (it could escape, or is malformed), or None."""
    if "\\" in name or "\x00" in name:
        return "it holds a backslash or NUL"
    if name.startswith("/"):
        return "it is absolute"
    if any(seg in ("", ".", "..") for seg in name.split("/")):
        return "it has an empty, '.' or '..' segment"
    return None


def _check_key(key):
    if not isinstance(key, str):
        raise TypeError(f"store keys are str, got {type(key).__name__}")
    problem = _key_problem(key)
    if problem:
        raise StoreError(f"invalid key {key!r}: {problem}")


def _size_problem(info, archive_size):
    """Why an entry's sizes cannot be true, or None. zipfile believes them
    and would allocate what they claim before reading."""
    if info.header_offset + info.compress_size > archive_size:
        return (f"its {info.compress_size} bytes at offset {info.header_offset} end past the "
                f"archive's {archive_size}")
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        return (f"it is stored uncompressed, yet claims {info.compress_size} bytes stored "
                f"and {info.file_size} bytes of data")
    return None


def _slice_bounds(size, offset, length):
    start = max(0, size + offset) if offset < 0 else min(offset, size)
    end = size if length is None else min(size, start + max(0, length))
    return start, end


class ZipStore(Store):
    """A Zarr v3 hierarchy in a zip file.

    Parameters
    ----------
    path : str or os.PathLike
        The zip file.
    mode : {"r", "w", "a"}, default "r"
        "r" reads an existing archive; writes raise ``ReadOnlyStoreError``.
        "w" creates a new archive, replacing any file at ``path``.
        "a" opens an existing archive (or creates one) to read and write.
    compression : int, default ``zipfile.ZIP_STORED``
        The ``zipfile`` compression of new entries. Chunks are usually
        compressed by their codecs already.
    compresslevel : int, optional
        Passed to ``zipfile`` with ``compression``.

    Notes
    -----
    Zip entries are append-only, so replacing or erasing a key leaves the
    old bytes in the file until ``close``, which compacts the archive; see
    the module documentation. An entry whose name is absolute, holds ".."
    (or "." or empty) segments or a backslash could escape where the
    archive is unpacked, and raises ``StoreError`` when the archive is
    opened. Directory entries (names ending in "/") are ignored.

    All methods hold one lock, so the store may be shared by threads.

    A store open with mode "r" pickles: the copy (in another process, say)
    opens the archive again by its path, read-only. A store open for writing
    raises ``StoreError`` when pickled: only it can write the central
    directory, at ``close``. So does a closed store.

    Examples
    --------
    >>> import zarrsync as zs
    >>> with zs.ZipStore("data.zip", mode="w") as store:  # doctest: +SKIP
    ...     store.create_group(zs.GroupNode.root())
    """

    # Chunk writes append entries until ``close`` compacts them: buffering
    # partial chunks saves both the re-encoding and the dead entries.
    buffers_writes = True
    knows_sizes = True

    def __init__(self, path, mode="r", *, compression=zipfile.ZIP_STORED,
                 compresslevel=None):
        if mode not in _MODES:
            raise ValueError(f"ZipStore mode must be one of {_MODES}, got {mode!r}")
        self._path = os.path.abspath(os.fspath(path))
        self._mode = mode
        if mode == "r":
            self.buffers_writes = False  # writes must raise ReadOnlyStoreError at once
        self._compression = compression
        self._compresslevel = compresslevel
        self._lock = threading.RLock()
        self._zf = None
        self._entries = {}   # key -> the ZipInfo of its live entry
        self._dead = 0       # entries in the file that are replaced or erased
        if mode == "a" and os.path.exists(self._path) and os.path.getsize(self._path) \
                and not zipfile.is_zipfile(self._path):
            # zipfile would append an archive to any file; refuse instead.
            raise StoreError(f"cannot open {self._path!r} with mode 'a': not a zip file")
        try:
            zf = zipfile.ZipFile(self._path, mode, compression=compression,
                                 compresslevel=compresslevel, allowZip64=True)
        except zipfile.BadZipFile as e:
            raise StoreError(f"cannot open {self._path!r}: not a valid zip file ({e})") from e
        except OSError as e:
            raise StoreError(f"cannot open zip file {self._path!r} (mode {mode!r}): {e}") from e
        except _READ_ERRORS as e:
            raise StoreError(f"cannot open {self._path!r}: not a zip file zarrsync can "
                             f"read ({type(e).__name__}: {e})") from e
        try:
            archive_size = os.path.getsize(self._path)
            for info in zf.infolist():
                name = info.filename
                is_dir = name.endswith("/")
                problem = (_key_problem(name.rstrip("/") if is_dir else name)
                           or _size_problem(info, archive_size))
                if is_dir and name.strip("/") and not problem:
                    continue  # a directory entry holds no value
                if problem or is_dir:
                    raise StoreError(f"{self._path!r}: entry {name!r} is rejected: {problem}")
                if name in self._entries:
                    self._dead += 1
                self._entries[name] = info
        except BaseException:
            zf.close()
            raise
        self._zf = zf

    @property
    def path(self):
        """The absolute path of the zip file."""
        return self._path

    @property
    def mode(self):
        """The mode the archive was opened with: "r", "w" or "a"."""
        return self._mode

    @property
    def read_only(self):
        """True for mode "r": every write method raises ``ReadOnlyStoreError``."""
        return self._mode == "r"

    @property
    def closed(self):
        return self._zf is None

    def _description(self):
        return f"ZipStore {self._path!r}"

    # -- pickling ---------------------------------------------------------------------

    def __getstate__(self):
        if self._zf is None:
            raise StoreError(f"cannot pickle ZipStore {self._path!r}: it is closed; "
                             f"share ZipStore(path, mode='r') instead")
        if self._mode != "r":
            raise StoreError(
                f"cannot pickle ZipStore {self._path!r} open with mode {self._mode!r}: "
                f"its one writer owns the archive's central directory (written at close), "
                f"so no other process can read or write it meanwhile; close it and share "
                f"ZipStore(path, mode='r') instead")
        # Everything the copy needs to open the archive again, read-only.
        return {"path": self._path, "compression": self._compression,
                "compresslevel": self._compresslevel}

    def __setstate__(self, state):
        self.__init__(state["path"], "r", compression=state["compression"],
                      compresslevel=state["compresslevel"])

    def __repr__(self):
        state = "closed" if self._zf is None else f"{len(self._entries)} keys"
        return f"ZipStore({self._path!r}, mode={self._mode!r}; {state})"

    # -- checks -----------------------------------------------------------------------

    def _open_zip(self):
        if self._zf is None:
            raise StoreError(f"ZipStore {self._path!r} is closed")
        return self._zf

    def _writable_zip(self, call, target):
        """The open ``ZipFile``; ``ReadOnlyStoreError`` naming ``call`` in mode "r"."""
        zf = self._open_zip()
        self._refuse_writes(call, target)
        return zf

    # -- reading ----------------------------------------------------------------------

    def _check_inflated_size(self, key, info, end):
        """``StoreError`` if reading an entry compressed in the archive up to byte
        ``end`` inflates more than ``max_chunk_bytes``. zipfile stops at the
        declared size, so this bounds what a zip bomb makes a read allocate."""
        limit = config.get("max_chunk_bytes")
        if info.compress_type != zipfile.ZIP_STORED and end > limit:
            raise StoreError(f"{self._path!r}: entry {key!r} is compressed in the archive "
                             f"and reading it takes {end} bytes of its declared "
                             f"{info.file_size}, more than max_chunk_bytes ({limit}; see "
                             f"zarrsync.config)")

    def _read(self, zf, key, info):
        self._check_inflated_size(key, info, info.file_size)
        try:
            return zf.read(info)
        except _READ_ERRORS as e:
            raise StoreError(f"{self._path!r}: cannot read entry {key!r}: {e}") from e

    def get(self, key):
        with self._lock:
            zf = self._open_zip()
            info = self._entries.get(key)
            return None if info is None else self._read(zf, key, info)

    def get_many(self, keys):
        with self._lock:
            zf = self._open_zip()
            out = []
            for key in keys:
                info = self._entries.get(key)
                out.append(None if info is None else self._read(zf, key, info))
            return out

    def get_partial_values(self, key_ranges):
        out = []
        with self._lock:
            zf = self._open_zip()
            for key, offset, length in key_ranges:
                info = self._entries.get(key)
                if info is None:
                    out.append(None)
                    continue
                start, end = _slice_bounds(info.file_size, offset, length)
                self._check_inflated_size(key, info, end)
                try:
                    with zf.open(info) as f:
                        # Seeking a stored entry skips straight to the range.
                        f.seek(start)
                        out.append(f.read(end - start))
                except _READ_ERRORS as e:
                    raise StoreError(f"{self._path!r}: cannot read entry {key!r}: {e}") from e
        return out

    def getsize(self, key):
        with self._lock:
            self._open_zip()
            info = self._entries.get(key)
            return None if info is None else info.file_size

    # -- writing ----------------------------------------------------------------------

    def set(self, key, value):
        _check_key(key)
        # tobytes() copies, so a caller may reuse a mutable buffer at once.
        data = value if isinstance(value, bytes) else memoryview(value).tobytes()
        info = zipfile.ZipInfo(key, date_time=_DATE_TIME)
        info.compress_type = self._compression
        info.external_attr = 0o644 << 16  # a regular file, rw-r--r--
        with self._lock:
            zf = self._writable_zip("set", repr(key))
            # The older entry stays in the file until close() compacts it.
            # Forget it in zipfile's name map first, so zipfile does not warn
            # "Duplicate name" (we track entries ourselves).
            zf.NameToInfo.pop(key, None)
            try:
                zf.writestr(info, data, compresslevel=self._compresslevel)
            except (OSError, ValueError) as e:
                raise StoreError(f"{self._path!r}: cannot write entry {key!r}: {e}") from e
            if key in self._entries:
                self._dead += 1
            self._entries[key] = info

    def erase(self, key):
        with self._lock:
            self._writable_zip("erase", repr(key))
            if self._entries.pop(key, None) is not None:
                self._dead += 1

    def erase_prefix(self, prefix):
        with self._lock:
            self._writable_zip("erase_prefix", repr(prefix))
            doomed = [k for k in self._entries if k.startswith(prefix)]
            for key in doomed:
                del self._entries[key]
            self._dead += len(doomed)

    def move_prefix(self, old, new):
        """Copy every key under ``old`` to ``new``, then erase the old keys (one step
        for other threads: the lock is held throughout)."""
        with self._lock:
            self._writable_zip("move_prefix", f"{old!r} to {new!r}")
            super().move_prefix(old, new)

    # -- listing ----------------------------------------------------------------------

    def list_prefix(self, prefix):
        with self._lock:
            self._open_zip()
            return sorted(k for k in self._entries if k.startswith(prefix))

    def list_dir(self, prefix):
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        keys, prefixes = set(), set()
        n = len(prefix)
        with self._lock:
            self._open_zip()
            for k in self._entries:
                if k.startswith(prefix):
                    head, sep, _ = k[n:].partition("/")
                    (prefixes if sep else keys).add(head)
        return sorted(keys), sorted(prefixes)

    # -- closing ----------------------------------------------------------------------

    def close(self):
        """Finish the archive: compact it if entries were replaced or erased, then close.

        Idempotent. After ``close`` every method raises ``StoreError``.
        """
        if self._zf is not None and self._mode != "r":
            self.flush()
        with self._lock:
            zf = self._zf
            if zf is None:
                return
            self._zf = None
            if self._mode == "r" or not self._dead:
                zf.close()
                return
            tmp = os.path.join(os.path.dirname(self._path),
                               f".{os.path.basename(self._path)[:80]}."
                               f"{secrets.token_hex(8)}.zarrsync-tmp")
            try:
                try:
                    self._copy_live_entries(zf, tmp)
                finally:
                    zf.close()
                os.replace(tmp, self._path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            self._dead = 0

    def _copy_live_entries(self, zf, tmp):
        live = sorted(self._entries.items(), key=lambda item: item[1].header_offset)
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as out:
            for key, info in live:
                new = zipfile.ZipInfo(key, date_time=info.date_time)
                new.compress_type = info.compress_type
                new.external_attr = info.external_attr
                new.comment = info.comment
                out.writestr(new, self._read(zf, key, info),
                             compresslevel=self._compresslevel)

    def __del__(self):
        # A zip being written is unreadable without its central directory:
        # finish it even if the caller forgot to close the store.
        if getattr(self, "_zf", None) is not None:
            try:
                self.close()
            except Exception:
                pass
