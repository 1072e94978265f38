"""A store on the local file system: one file per key under a root folder.

This is the Zarr v3 file-system store
(https://zarr-specs.readthedocs.io/en/latest/v3/stores/filesystem/index.html):
key ``"grp/arr/c/0/1"`` is the file ``<root>/grp/arr/c/0/1``, so a folder
written by zarr-python, tensorstore or zarrs opens as it is, and theirs read
ours.

Writes are atomic. ``set`` writes the bytes to a temporary file in the
key's folder and moves it into place with ``os.replace``. A reader, another
thread or another process sees the old value or the new one, never a mix.
If the writer fails or is killed mid-write, the old value stays intact. A
temporary file is named ``.<name>.<random>.zarrsync-tmp``. Listing skips
such names, and no key may use them. One a killed writer leaves behind is
harmless, and ``erase_prefix`` of an enclosing prefix removes it.

``erase_prefix`` first moves the folder into a new hidden folder named in
the same form, then deletes that. A concurrent reader sees the whole prefix
at once or none of it. A concurrent writer whose key lay under the prefix
ends up with the old folder (and the value is erased with it) or with a new
folder. What an erase killed midway leaves is no node to any reader: the
node's documents lie a level below the hidden folder.

A file and a folder cannot share a name. So, unlike an in-memory store, key
``"a"`` and key ``"a/b"`` cannot both exist, and setting one while the other
exists raises ``StoreError``. No valid Zarr hierarchy needs both.

Symbolic links. By default (``follow_links=True``) the store follows them as
the operating system does, like zarr-python's ``LocalStore``: a folder of
chunks may be a link to another disk. With ``follow_links=False`` a link
inside the root that leads outside it is never read, listed, written or
deleted through; the key or folder it stands for is absent. Such a store
walks every path from its root folder one segment at a time with
``O_NOFOLLOW`` and ``dir_fd`` (``openat(2)``): a link met on the way is
resolved and checked against the root, and the walk goes on from the root
along the link's real path, itself again without following links, so a link
swapped in during the walk is met and checked, never followed unchecked.
"""

import errno
import os
import secrets
import shutil
import stat

from ..errors import StoreError
from ._base import Store

__all__ = ["FilesystemStore"]

_TMP_SUFFIX = ".zarrsync-tmp"

_MODES = ("r", "r+", "a", "w", "w-")

# Confinement (follow_links=False) opens paths relative to folder descriptors.
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_CAN_CONFINE = bool(_O_NOFOLLOW and _O_DIRECTORY and os.open in os.supports_dir_fd
                    and os.scandir in os.supports_fd and shutil.rmtree.avoids_symlink_attacks)
_DIR_NOFOLLOW = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted under a key must not hang the reader.
_FILE_FOLLOW = os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC
_FILE_NOFOLLOW = _FILE_FOLLOW | _O_NOFOLLOW
# What open(2) says for a link opened with O_NOFOLLOW: ELOOP (Linux, macOS),
# EMLINK (FreeBSD), ENOTDIR with O_DIRECTORY (Linux).
_LINK_ERRNOS = (errno.ELOOP, errno.EMLINK, errno.ENOTDIR)
# Links resolved on one path before giving up, as the kernel's own limit.
_LINK_HOPS = 40
# Looks again at one segment that others keep changing, before giving up.
_RETRIES = 100


def _is_tmp_name(name):
    return name.startswith(".") and name.endswith(_TMP_SUFFIX)


def _tmp_name(name):
    # Short enough for NAME_MAX (255) whatever the key's last segment is.
    return f".{name[:80]}.{secrets.token_hex(8)}{_TMP_SUFFIX}"


def _check_segment(segment, what):
    if segment in ("", ".", ".."):
        raise StoreError(f"invalid {what}: empty, '.' and '..' segments are not allowed")
    if _is_tmp_name(segment):
        raise StoreError(f"invalid {what}: {segment!r} is reserved for temporary files")


def _check_text(text, what):
    if not isinstance(text, str):
        raise TypeError(f"store keys are str, got {type(text).__name__}")
    if "\\" in text or "\x00" in text:
        raise StoreError(f"invalid {what} {text!r}: backslashes and NUL are not allowed")
    if text.startswith("/"):
        raise StoreError(f"invalid {what} {text!r}: keys are relative, not absolute")


def _split_key(key):
    """The segments of ``key``; ``StoreError`` if it could leave the root or is malformed."""
    _check_text(key, "key")
    segments = key.split("/")
    for segment in segments:
        _check_segment(segment, f"key {key!r}")
    return segments


def _split_prefix(prefix):
    """``(folder segments, partial name)`` of a listing prefix.

    ``"a/b/"`` -> ``(["a", "b"], "")``; ``"a/b"`` -> ``(["a"], "b")``.
    """
    _check_text(prefix, "prefix")
    head, _, partial = prefix.rpartition("/")
    folders = head.split("/") if head else []
    for segment in folders:
        _check_segment(segment, f"prefix {prefix!r}")
    return folders, partial


def _as_buffer(value):
    """A byte-wise view of a bytes-like value (copied only if not contiguous)."""
    try:
        return memoryview(value).cast("B")
    except TypeError:
        return memoryview(bytes(value))


#: Attempts of a ``set`` whose folder a concurrent ``erase_prefix`` keeps removing.
_SET_ATTEMPTS = 100

#: Deletions of a renamed folder before ``erase_prefix`` gives up on it; see
#: ``FilesystemStore._remove_tree`` for why one or two always do.
_ERASE_ATTEMPTS = 100


def _ignore_missing_and_refilled(func, path, exc_info):
    """``shutil.rmtree`` error handler: a file removed by someone else is fine,
    and so is a folder a concurrent writer put something into after rmtree
    emptied it (the caller decides whether to delete it again)."""
    exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    if isinstance(exc, FileNotFoundError):
        return
    # rmdir(2) of a non-empty folder: ENOTEMPTY, or EEXIST on some systems.
    if isinstance(exc, OSError) and exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
        return
    raise exc


class _Outside(Exception):
    """A symbolic link on the way leads outside the root (``follow_links=False``)."""

    def __init__(self, link):
        super().__init__(link)
        self.link = link  # its path below the root, "/"-separated


class _NotAFolder(Exception):
    """A segment on the way to a key is a file: a key of the store is a prefix of it."""


def _close_all(fds):
    for fd in fds:
        os.close(fd)


def _at(folder, dir_fd, name):
    """The path argument for ``name`` in a folder given by path or by descriptor."""
    return name if dir_fd is not None else os.path.join(folder, name)


def _lexists(path, dir_fd=None):
    try:
        os.lstat(path, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


class FilesystemStore(Store):
    """A Zarr v3 hierarchy stored as files under a root folder.

    Parameters
    ----------
    path : str or os.PathLike
        The root folder. An existing folder is used as it is, so stores
        written by other Zarr v3 tools open unchanged.
    mode : {"r", "r+", "a", "w", "w-"}, default "a"
        As zarr-python names them. "r": read-only, and the folder must
        exist; every write raises ``ReadOnlyStoreError``. "r+": read and
        write, the folder must exist. "a": read and write, the folder (with
        its parents) is created if missing. "w": as "a", but everything in
        the folder is erased first. "w-": create a new store; ``StoreError``
        if anything exists at ``path``. Modes "r" and "r+" never create
        anything, so a mistyped path is a ``StoreError`` naming it.
    follow_links : bool, default True
        Follow symbolic links inside the root as the operating system does.
        With False, a link inside the root whose target lies outside the
        root is never read, listed, written or deleted through: the key or
        folder it stands for is absent, and writing through it raises
        ``StoreError``. Links whose targets stay inside the root still work.
        The root itself may be a link: it is resolved once, when the store
        is opened, and its real path is the boundary.
    fsync : bool, default False
        Also ``fsync`` each file before moving it into place, and its folder
        after. Without it, writes are atomic against crashes of the process;
        with it, they also survive a crash of the machine, at some speed cost.

    Notes
    -----
    Keys use "/" as separator. A key that is absolute, holds an empty, "."
    or ".." segment, a backslash or a NUL raises ``StoreError``, so no key
    can reach outside the root. A key and a longer key with it as folder
    (``"a"`` and ``"a/b"``) cannot both exist.

    ``follow_links=True`` is the default, as for zarr-python's
    ``LocalStore``: users link data folders into their stores (a folder of
    chunks on another disk, one array shared by two hierarchies), and
    tools that read stores written with zarr-python must see the same
    data. Open data you do not trust (a downloaded archive unpacked to a folder)
    with ``follow_links=False``: a link in it then cannot make zarrsync read,
    overwrite or delete your files elsewhere. Confinement costs a few system
    calls per access (each path is walked from the root, one folder at a
    time); the default pays nothing for it. A confined store also treats
    anything but a regular file (a FIFO, a device) as no value.

    The store is safe to use from several threads and several processes at
    once. Writers of different keys never interfere. Writers of one key
    replace each other's value whole. ``get`` reads one version of a value,
    and so does each key's set of ranges in one ``get_partial_values`` call
    (they are read from one open file). Two separate calls may see two
    versions if another process replaces the value in between.

    The store pickles (after storing any buffered chunks), keeping its mode
    and ``follow_links``: the copy, in another process, reads and writes the
    same folder. It does not open the folder again, so a copy of a "w"
    store does not clear it a second time, nor does a "w-" one fail.

    Examples
    --------
    >>> import zarrsync as zs
    >>> store = zs.FilesystemStore("data.zarr")  # doctest: +SKIP
    >>> store.create_group(zs.GroupNode.root())  # doctest: +SKIP
    >>> zs.FilesystemStore("download.zarr", mode="r", follow_links=False)  # doctest: +SKIP
    """

    # Other processes may replace files while this one reads; one
    # get_partial_values call reads one key from a single open file.
    shared_between_processes = True
    knows_sizes = True

    def __init__(self, path, mode="a", *, follow_links=True, fsync=False):
        if mode not in _MODES:
            raise ValueError(f"FilesystemStore mode must be one of {_MODES}, got {mode!r}")
        if not follow_links and not _CAN_CONFINE:
            raise StoreError("FilesystemStore(follow_links=False) needs O_NOFOLLOW and "
                             "dir_fd support, which this platform lacks")
        self._root = os.path.abspath(os.fspath(path))
        self._mode = mode
        self._read_only = mode == "r"
        self._confined = not follow_links
        self._fsync = bool(fsync)
        self._open_root()
        # The confinement boundary: where the root led when the store was opened.
        self._real_root = os.path.realpath(self._root)
        if mode == "w":
            self.erase_prefix("")

    def _open_root(self):
        root, mode = self._root, self._mode
        try:
            if mode in ("r", "r+"):
                if not os.path.exists(root):
                    raise StoreError(f"cannot open FilesystemStore {root!r} with mode "
                                     f"{mode!r}: no such folder (modes 'a', 'w' and 'w-' "
                                     f"create it)")
            elif mode == "w-":
                os.makedirs(os.path.dirname(root), exist_ok=True)
                # mkdir(2) fails if anything is there: no race with another creator.
                os.mkdir(root)
            else:
                os.makedirs(root, exist_ok=True)
        except FileExistsError:
            if mode == "w-":
                raise StoreError(f"cannot create FilesystemStore {root!r} with mode 'w-': "
                                 f"the path exists (mode 'a' opens it, 'w' clears "
                                 f"it)") from None
            raise StoreError(f"cannot open a FilesystemStore at {root!r}: "
                             f"it exists and is not a folder") from None
        except NotADirectoryError:
            raise StoreError(f"cannot create the store folder {root!r}: a parent of "
                             f"it is a file") from None
        except StoreError:
            raise
        except OSError as e:
            raise StoreError(f"cannot create the store folder {root!r}: {e}") from e
        if not os.path.isdir(root):
            raise StoreError(f"cannot open a FilesystemStore at {root!r}: "
                             f"it is not a folder")

    def __setstate__(self, state):
        # Not __init__: a copy of a "w" store must not clear the folder again,
        # nor may a copy of a "w-" store fail because the folder now exists.
        self.__dict__.update(state)

    @property
    def path(self):
        """The absolute path of the root folder."""
        return self._root

    @property
    def mode(self):
        """The mode the store was opened with: "r", "r+", "a", "w" or "w-"."""
        return self._mode

    @property
    def read_only(self):
        """True for mode "r": every write method raises ``ReadOnlyStoreError``."""
        return self._read_only

    @property
    def follow_links(self):
        """False if links inside the root that lead outside it are refused."""
        return not self._confined

    def _description(self):
        return f"FilesystemStore {self._root!r}"

    def __repr__(self):
        extra = "" if self._mode == "a" else f", mode={self._mode!r}"
        if self._confined:
            extra += ", follow_links=False"
        return f"FilesystemStore({self._root!r}{extra})"

    def _identity(self):
        # Same folder, same rights and same confinement: the stores see the same keys.
        return self._root, self.read_only, self._confined

    def __eq__(self, other):
        return isinstance(other, FilesystemStore) and other._identity() == self._identity()

    def __hash__(self):
        return hash((FilesystemStore,) + self._identity())

    # -- paths ------------------------------------------------------------------------

    def _file(self, key):
        return os.path.join(self._root, *_split_key(key))

    def _folder(self, segments):
        return os.path.join(self._root, *segments)

    # -- confinement (follow_links=False) ---------------------------------------------

    def _resolve(self, segments):
        """Where the link at real path ``segments`` leads, as segments below the real
        root (``[]``: the root itself), or ``None`` if that lies outside the root."""
        real = os.path.realpath(os.path.join(self._real_root, *segments))
        rel = os.path.relpath(real, self._real_root)
        if rel == os.curdir:
            return []
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            return None
        return rel.split(os.sep)

    def _open_folder(self, segments, create=False):
        """``(fds, real)``: descriptors of the root and of every folder down to
        ``segments`` (the last is that folder), and its real path as segments.

        No link is followed unchecked: each segment is opened with ``O_NOFOLLOW``
        relative to its parent; at a link, its target is checked against the
        root and the walk starts again along the target's real path. Returns
        ``None`` if a folder is missing (``create`` makes missing ones);
        raises ``_Outside`` at a link leading outside and ``_NotAFolder`` if a
        segment is a file. The caller closes ``fds``.
        """
        segs = list(segments)
        looks = _RETRIES + len(segs)  # a second look at a segment others just changed
        for _ in range(_LINK_HOPS):
            # The real root itself is no link (unless someone made it one since).
            fds = [os.open(self._real_root, _DIR_NOFOLLOW)]
            try:
                done = 0
                while done < len(segs):
                    seg = segs[done]
                    if looks < 0:
                        raise StoreError(f"cannot walk to {'/'.join(segments)!r} below "
                                         f"{self._root!r}: its folders keep changing")
                    try:
                        fds.append(os.open(seg, _DIR_NOFOLLOW, dir_fd=fds[-1]))
                    except FileNotFoundError:
                        if not create:
                            _close_all(fds)
                            return None
                        try:
                            os.mkdir(seg, dir_fd=fds[-1])
                        except FileExistsError:
                            pass  # made meanwhile, or a link or file is there: look again
                        looks -= 1
                        continue
                    except OSError as e:
                        if e.errno not in _LINK_ERRNOS:
                            raise
                        try:
                            info = os.stat(seg, dir_fd=fds[-1], follow_symlinks=False)
                        except FileNotFoundError:
                            looks -= 1
                            continue  # removed meanwhile: look again
                        if not stat.S_ISLNK(info.st_mode):
                            raise _NotAFolder("/".join(segs[:done + 1])) from None
                        target = self._resolve(segs[:done + 1])
                        if target is None:
                            raise _Outside("/".join(segs[:done + 1])) from None
                        segs = target + segs[done + 1:]
                        break  # walk again from the root, along the link's real path
                    done += 1
                else:
                    return fds, segs
            except BaseException:
                _close_all(fds)
                raise
            _close_all(fds)
        raise StoreError(f"too many symbolic links below {self._root!r} on the way to "
                         f"{'/'.join(segments)!r}")

    def _open_key(self, key):
        """A descriptor open for reading the regular file of ``key``, or ``None``
        if it is absent, not a regular file or reached only through a link that
        leads outside the root."""
        segs = _split_key(key)
        for _ in range(_LINK_HOPS):
            try:
                opened = self._open_folder(segs[:-1])
            except (_Outside, _NotAFolder):
                return None
            if opened is None:
                return None
            fds, real = opened
            try:
                fd = os.open(segs[-1], _FILE_NOFOLLOW, dir_fd=fds[-1])
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
            except OSError as e:
                if e.errno not in _LINK_ERRNOS:
                    raise
                segs = self._resolve(real + segs[-1:])
                if not segs:  # outside, or the root folder itself
                    return None
                continue
            finally:
                _close_all(fds)
            try:
                regular = stat.S_ISREG(os.fstat(fd).st_mode)
            except BaseException:
                os.close(fd)
                raise
            if regular:
                return fd
            os.close(fd)  # a folder, FIFO or device holds no value
            return None
        raise StoreError(f"too many symbolic links below {self._root!r} on the way to "
                         f"key {key!r}")

    # -- reading ----------------------------------------------------------------------

    def get(self, key):
        if self._confined:
            return self._get_confined(key)
        path = self._file(key)
        try:
            fd = os.open(path, _FILE_FOLLOW)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as e:
            raise StoreError(f"cannot read key {key!r} from {path!r}: {e}") from e
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                return None  # a folder, FIFO or device holds no value
            with open(fd, "rb") as f:
                return f.read()
        except OSError as e:
            raise StoreError(f"cannot read key {key!r} from {path!r}: {e}") from e

    def _get_confined(self, key):
        try:
            fd = self._open_key(key)
            if fd is None:
                return None
            with open(fd, "rb") as f:
                return f.read()
        except OSError as e:
            raise StoreError(f"cannot read key {key!r} below {self._root!r}: {e}") from e

    def get_partial_values(self, key_ranges):
        key_ranges = list(key_ranges)
        out = [None] * len(key_ranges)
        by_key = {}
        for i, (key, offset, length) in enumerate(key_ranges):
            by_key.setdefault(key, []).append((i, offset, length))
        for key, ranges in by_key.items():
            path = self._file(key)
            try:
                if self._confined:
                    fd = self._open_key(key)
                    if fd is None:
                        continue
                else:
                    fd = os.open(path, _FILE_FOLLOW)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as e:
                raise StoreError(f"cannot read key {key!r} from {path!r}: {e}") from e
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    continue  # a folder, FIFO or device holds no value
                size = info.st_size
                for i, offset, length in ranges:
                    start = max(0, size + offset) if offset < 0 else min(offset, size)
                    end = size if length is None else min(size, start + max(0, length))
                    out[i] = self._pread(fd, end - start, start)
            except OSError as e:
                raise StoreError(f"cannot read key {key!r} from {path!r}: {e}") from e
            finally:
                os.close(fd)
        return out

    @staticmethod
    def _pread(fd, n, offset):
        """Exactly ``n`` bytes at ``offset`` (fewer only if the file is shorter)."""
        parts = []
        while n > 0:
            chunk = os.pread(fd, n, offset)
            if not chunk:
                break
            parts.append(chunk)
            n -= len(chunk)
            offset += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def getsize(self, key):
        if self._confined:
            try:
                fd = self._open_key(key)
                if fd is None:
                    return None
                try:
                    return os.fstat(fd).st_size
                finally:
                    os.close(fd)
            except OSError as e:
                raise StoreError(f"cannot read the size of key {key!r}: {e}") from e
        try:
            info = os.stat(self._file(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    # -- writing ----------------------------------------------------------------------

    def set(self, key, value):
        if self._read_only:
            self._refuse_writes("set", repr(key))
        segments = _split_key(key)
        data = _as_buffer(value)
        if self._confined:
            return self._set_confined(key, segments, data)
        folder = self._folder(segments[:-1])
        # A concurrent erase may remove the folder between makedirs and the
        # temporary file, or move the temporary file away with its folder
        # before os.replace: start again, as if this write came after the erase.
        for _ in range(_SET_ATTEMPTS):
            try:
                os.makedirs(folder, exist_ok=True)
            except (FileExistsError, NotADirectoryError, FileNotFoundError):
                # Either a key is a prefix of this one, or a concurrent erase
                # removed a folder while makedirs was creating the next one.
                if self._file_among_folders(segments[:-1]):
                    raise StoreError(f"cannot set key {key!r}: a key of the store is a "
                                     f"prefix of it") from None
                continue
            except OSError as e:
                raise StoreError(f"cannot create the folder of key {key!r}: {e}") from e
            if self._write_in(folder, None, segments[-1], data, key):
                return
        # Erased under every attempt: each erase ran during this call, so the
        # write counts as done just before the last one, which removed it.

    def _set_confined(self, key, segments, data):
        for _ in range(_SET_ATTEMPTS):
            try:
                fds, _ = self._open_folder(segments[:-1], create=True)
            except _Outside as e:
                raise StoreError(f"cannot set key {key!r}: {e.link!r} is a symbolic link "
                                 f"that leads outside the store root {self._root!r} "
                                 f"(follow_links=False)") from None
            except _NotAFolder:
                raise StoreError(f"cannot set key {key!r}: a key of the store is a "
                                 f"prefix of it") from None
            except OSError as e:
                raise StoreError(f"cannot create the folder of key {key!r}: {e}") from e
            try:
                # Relative to the folder's descriptor: a link swapped in for one of
                # its parents meanwhile changes nothing.
                if self._write_in(None, fds[-1], segments[-1], data, key):
                    return
            finally:
                _close_all(fds)
        # Erased under every attempt: done just before the last erase (see ``set``).

    def _write_in(self, folder, dir_fd, name, data, key):
        """Write ``data`` as file ``name`` of a folder (by path, or by descriptor):
        a temporary file moved into place. False if a concurrent erase removed the
        folder (the caller starts again); ``StoreError`` on failure.

        ``os.replace`` replaces a link at ``name`` itself: a write never goes
        through a link to its target.
        """
        tmp_name = _tmp_name(name)
        tmp = _at(folder, dir_fd, tmp_name)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666,
                         dir_fd=dir_fd)
        except FileNotFoundError:
            return False  # the folder was just erased
        except OSError as e:
            where = folder if dir_fd is None else os.path.dirname(self._file(key))
            raise StoreError(f"cannot write key {key!r} in {where!r}: {e}") from e
        try:
            try:
                self._write_all(fd, data)
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if dir_fd is None:
                os.replace(tmp, os.path.join(folder, name))
            else:
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except FileNotFoundError:
            self._unlink_quietly(tmp, dir_fd)
            return False  # the temporary file was erased with its folder
        except IsADirectoryError:
            self._unlink_quietly(tmp, dir_fd)
            raise StoreError(f"cannot set key {key!r}: it is a prefix of other keys "
                             f"(a folder of the store)") from None
        except BaseException as e:
            # Any failure (disk full, KeyboardInterrupt): leave the old value.
            self._unlink_quietly(tmp, dir_fd)
            if isinstance(e, OSError):
                raise StoreError(f"cannot write key {key!r}: {e}") from e
            raise
        if self._fsync:
            if dir_fd is None:
                self._fsync_folder(folder)
            else:
                os.fsync(dir_fd)
        return True

    def _file_among_folders(self, segments):
        """True if one of the folders ``segments`` leads through is a file."""
        path = self._root
        for segment in segments:
            path = os.path.join(path, segment)
            try:
                if not stat.S_ISDIR(os.stat(path).st_mode):
                    return True
            except FileNotFoundError:
                return False
            except NotADirectoryError:
                return True
        return False

    @staticmethod
    def _write_all(fd, data):
        while data:
            n = os.write(fd, data)
            data = data[n:]

    @staticmethod
    def _fsync_folder(folder):
        fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _unlink_quietly(path, dir_fd=None):
        try:
            os.unlink(path, dir_fd=dir_fd)
        except OSError:
            pass

    # -- erasing ----------------------------------------------------------------------

    def _prune(self, folder):
        """Remove ``folder`` and its parents up to the root while they are empty."""
        while folder != self._root and folder.startswith(self._root + os.sep):
            try:
                os.rmdir(folder)
            except OSError:
                return  # not empty (or already gone, or in use): stop here
            folder = os.path.dirname(folder)

    @staticmethod
    def _prune_confined(fds, real):
        """``_prune`` for a folder opened by ``_open_folder``: remove it and its
        parents while they are empty, each relative to its parent's descriptor."""
        for i in range(len(real) - 1, -1, -1):
            try:
                os.rmdir(real[i], dir_fd=fds[i])
            except OSError:
                return

    def erase(self, key):
        if self._read_only:
            self._refuse_writes("erase", repr(key))
        if self._confined:
            return self._erase_confined(key)
        path = self._file(key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except PermissionError as e:
            if os.path.isdir(path):  # some systems say EPERM for a folder
                return
            raise StoreError(f"cannot erase key {key!r}: {e}") from e
        except OSError as e:
            raise StoreError(f"cannot erase key {key!r}: {e}") from e
        self._prune(os.path.dirname(path))

    def _erase_confined(self, key):
        segs = _split_key(key)
        try:
            opened = self._open_folder(segs[:-1])
        except (_Outside, _NotAFolder):
            return  # nothing of the store is there
        except OSError as e:
            raise StoreError(f"cannot erase key {key!r}: {e}") from e
        if opened is None:
            return
        fds, real = opened
        try:
            # unlink(2) removes a link itself, never its target.
            os.unlink(segs[-1], dir_fd=fds[-1])
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except PermissionError as e:
            try:
                info = os.stat(segs[-1], dir_fd=fds[-1], follow_symlinks=False)
            except OSError:
                info = None
            if info is not None and stat.S_ISDIR(info.st_mode):
                return  # some systems say EPERM for a folder
            raise StoreError(f"cannot erase key {key!r}: {e}") from e
        except OSError as e:
            raise StoreError(f"cannot erase key {key!r}: {e}") from e
        else:
            self._prune_confined(fds, real)
        finally:
            _close_all(fds)

    def _remove_tree(self, path, dir_fd=None, root_fd=None):
        """Delete file or folder ``path`` (relative to ``dir_fd`` if given, the
        store root then being open as ``root_fd``); a folder is first moved
        out of sight. Links are removed, never followed.

        A concurrent writer never makes this fail. Its call may have looked
        up the folder's path before the rename and create its file or folder
        in the renamed folder after rmtree emptied it; only calls already in
        flight at the rename can, so deleting the renamed folder again until
        it is gone ends (the writer's value is erased with the old folder).
        A file that a writer replaces with a folder between the look and the
        unlink is removed as a folder.
        """
        try:
            info = os.lstat(path, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(info.st_mode):
            try:
                os.unlink(path, dir_fd=dir_fd)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                # EISDIR (Linux) or EPERM (POSIX, macOS): a folder now, unless
                # this is a real permission error.
                if e.errno not in (errno.EISDIR, errno.EPERM):
                    raise
                try:
                    info = os.lstat(path, dir_fd=dir_fd)
                except FileNotFoundError:
                    return
                if not stat.S_ISDIR(info.st_mode):
                    raise
        # The folder goes into a new hidden folder of its own, so what a killed
        # erase leaves holds no metadata document at its top: no reader takes it
        # for a node (zarr-python lists hidden folders too).
        holder_name = _tmp_name("erased")
        holder = holder_name if root_fd is not None else os.path.join(self._root, holder_name)
        os.mkdir(holder, dir_fd=root_fd)
        # By descriptor when confined, so a link swapped in for the holder is not followed.
        holder_fd = None if root_fd is None else os.open(holder, _DIR_NOFOLLOW, dir_fd=root_fd)
        moved = "node" if holder_fd is not None else os.path.join(holder, "node")
        try:
            if self._move_or_delete(path, dir_fd, moved, holder_fd):
                self._delete_moved(moved, holder_fd)
        finally:
            if holder_fd is not None:
                os.close(holder_fd)
            try:
                os.rmdir(holder, dir_fd=root_fd)
            except OSError:
                pass  # left by an erase that failed: hidden, and no node

    @staticmethod
    def _move_or_delete(path, dir_fd, moved, holder_fd):
        """Rename folder ``path`` to ``moved``; True if it moved. When that is on
        another file system, delete the folder in place instead."""
        try:
            os.rename(path, moved, src_dir_fd=dir_fd, dst_dir_fd=holder_fd)
            return True
        except FileNotFoundError:
            return False
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
        # Another file system is mounted there: delete in place. Whatever a
        # writer puts in the folder meanwhile was written after the erase: it stays.
        shutil.rmtree(path, onerror=_ignore_missing_and_refilled, dir_fd=dir_fd)
        return False

    def _delete_moved(self, moved, holder_fd):
        """Delete what ``_move_or_delete`` moved, again while writers that
        looked it up before the move keep adding to it."""
        try:
            info = os.lstat(moved, dir_fd=holder_fd)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(info.st_mode):
            # A writer replaced the folder with a file before the rename.
            self._unlink_quietly(moved, holder_fd)
            return
        for _ in range(_ERASE_ATTEMPTS):
            shutil.rmtree(moved, onerror=_ignore_missing_and_refilled, dir_fd=holder_fd)
            if not _lexists(moved, holder_fd):
                return
        raise OSError(errno.ENOTEMPTY, "writers keep adding to the folder being erased", moved)

    def erase_prefix(self, prefix):
        if self._read_only:
            self._refuse_writes("erase_prefix", repr(prefix))
        folders, partial = _split_prefix(prefix)
        if self._confined:
            return self._erase_prefix_confined(prefix, folders, partial)
        folder = self._folder(folders)
        try:
            if not partial:
                if not folders:  # "" clears the store but keeps its root folder
                    for entry in self._scan(self._root, hidden=True):
                        self._remove_tree(entry.path)
                else:
                    self._remove_tree(folder)
            else:
                for entry in self._scan(folder):
                    if entry.name.startswith(partial):
                        self._remove_tree(entry.path)
        except OSError as e:
            raise StoreError(f"cannot erase prefix {prefix!r}: {e}") from e
        if folders:
            self._prune(folder if partial else os.path.dirname(folder))

    def _erase_prefix_confined(self, prefix, folders, partial):
        # Remove entries of the folder that holds them, by descriptor: the folder
        # "a/b/" is entry "b" of "a"; "a/b" is every entry of "a/" starting with "b".
        parent = folders if partial else folders[:-1]
        try:
            opened = self._open_folder(parent)
        except (_Outside, _NotAFolder):
            return  # nothing of the store is there
        except OSError as e:
            raise StoreError(f"cannot erase prefix {prefix!r}: {e}") from e
        if opened is None:
            return
        fds, real = opened
        try:
            if not folders and not partial:  # "" clears the store but keeps its root
                names = [e.name for e in self._scan(fds[-1], hidden=True)]
            elif partial:
                names = [e.name for e in self._scan(fds[-1]) if e.name.startswith(partial)]
            else:
                names = [folders[-1]]
            for name in names:
                self._remove_tree(name, fds[-1], fds[0])
            if folders:
                self._prune_confined(fds, real)
        except OSError as e:
            raise StoreError(f"cannot erase prefix {prefix!r}: {e}") from e
        finally:
            _close_all(fds)

    # -- listing ----------------------------------------------------------------------

    @staticmethod
    def _scan(folder, hidden=False):
        """The entries of ``folder`` (a path or a descriptor; none if it is missing);
        temporary names are skipped unless ``hidden``."""
        try:
            with os.scandir(folder) as it:
                return [e for e in it if hidden or not _is_tmp_name(e.name)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    @staticmethod
    def _is_dir(entry):
        try:
            return entry.is_dir()
        except OSError:
            return False

    @staticmethod
    def _links_back(entry, folders):
        """True if ``entry``, a link, leads to one of ``folders`` (the folder that
        holds it and those above): listing through it would never end. Costs
        system calls for links only."""
        try:
            if not entry.is_symlink():
                return False
            target = entry.stat()
            for folder in folders:
                info = os.stat(folder)
                if (info.st_ino, info.st_dev) == (target.st_ino, target.st_dev):
                    return True
        except OSError:
            return True  # gone or unreadable: nothing to list there
        return False

    def _above(self, folders):
        """The paths of the root and of each folder down to ``folders``."""
        paths = [self._root]
        for segment in folders:
            paths.append(os.path.join(paths[-1], segment))
        return tuple(paths)

    def _walk(self, folder, key_prefix, out, above):
        """Append the key of every file under ``folder`` to ``out``; ``above`` holds
        ``folder`` and the folders above it."""
        for entry in self._scan(folder):
            if self._is_dir(entry):
                if self._links_back(entry, above):
                    continue
                self._walk(entry.path, key_prefix + entry.name + "/", out,
                           above + (entry.path,))
            else:
                out.append(key_prefix + entry.name)

    def _holds_a_key(self, folder, above):
        """True if some file (not a temporary one) lies anywhere under ``folder``
        (``above``: it and the folders above it).

        Stops at the first one, so a folder of many chunks costs one read.
        """
        try:
            with os.scandir(folder) as it:
                subfolders = []
                for entry in it:
                    if _is_tmp_name(entry.name):
                        continue
                    if not self._is_dir(entry):
                        return True
                    if not self._links_back(entry, above):
                        subfolders.append(entry.path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return any(self._holds_a_key(f, above + (f,)) for f in subfolders)

    def list_prefix(self, prefix):
        folders, partial = _split_prefix(prefix)
        head = "".join(f + "/" for f in folders)
        out = []
        if self._confined:
            self._list_confined(folders, head, partial, out, first_only=False)
            return sorted(out)
        folder = self._folder(folders)
        above = None
        for entry in self._scan(folder):
            if not entry.name.startswith(partial):
                continue
            if self._is_dir(entry):
                above = above or self._above(folders)
                if not self._links_back(entry, above):
                    self._walk(entry.path, head + entry.name + "/", out,
                               above + (entry.path,))
            else:
                out.append(head + entry.name)
        return sorted(out)

    def list_dir(self, prefix):
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        folders, _ = _split_prefix(prefix)
        keys, prefixes = [], []
        if self._confined:
            self._list_dir_confined(folders, keys, prefixes)
            return sorted(keys), sorted(prefixes)
        above = self._above(folders)
        for entry in self._scan(above[-1]):
            if not self._is_dir(entry):
                keys.append(entry.name)
            elif self._links_back(entry, above):
                continue
            elif self._holds_a_key(entry.path, above + (entry.path,)):
                prefixes.append(entry.name)  # an empty folder is no prefix
        return sorted(keys), sorted(prefixes)

    # Listing a confined store: every folder is opened by descriptor from its
    # parent, and a link counts only if its target lies inside the root.

    def _open_listed(self, folders):
        """``(fd, real)`` of a folder to list, or ``None`` if it is not in the store."""
        try:
            opened = self._open_folder(folders)
        except (_Outside, _NotAFolder):
            return None
        if opened is None:
            return None
        fds, real = opened
        _close_all(fds[:-1])
        return fds[-1], real

    def _kind(self, real, entry):
        """What entry ``entry`` of the folder at real path ``real`` holds: ``"key"``
        (a regular file), ``"folder"``, or ``None`` (a link leading outside, a FIFO,
        ...); for a link into the root, what its target holds. Also the real path
        of a folder (``None`` for a folder that is no link: open it from its parent)."""
        try:
            if entry.is_symlink():
                target = self._resolve(real + [entry.name])
                if target is None:
                    return None, None
                mode = os.stat(os.path.join(self._real_root, *target)).st_mode
                if stat.S_ISDIR(mode):
                    return "folder", target
                return ("key", None) if stat.S_ISREG(mode) else (None, None)
            if entry.is_dir(follow_symlinks=False):
                return "folder", None
            return ("key", None) if entry.is_file(follow_symlinks=False) else (None, None)
        except OSError:
            return None, None  # removed meanwhile, or unreadable

    def _children(self, fd, real, partial=""):
        """``[(name, kind, target)]`` of the folder open as ``fd`` whose names start
        with ``partial`` (kind and target as ``_kind`` gives them). A link to this
        folder or one above it is left out: listing it would never end."""
        out = []
        for entry in self._scan(fd):
            if entry.name.startswith(partial):
                kind, target = self._kind(real, entry)
                if kind is None or (target is not None and real[:len(target)] == target):
                    continue
                out.append((entry.name, kind, target))
        return out

    def _open_child(self, fd, real, name, target):
        """``(fd, real)`` of child folder ``name`` (reached through a link to
        ``target`` if it is one), or ``None`` if it is gone or changed meanwhile."""
        if target is not None:
            return self._open_listed(target)
        try:
            return os.open(name, _DIR_NOFOLLOW, dir_fd=fd), real + [name]
        except OSError:
            return None

    def _list_confined(self, folders, key_prefix, partial, out, first_only, fd=None,
                       real=None, seen=()):
        """Append keys under ``folders`` (names starting with ``partial``) to ``out``;
        with ``first_only``, stop at the first and return True. ``seen`` holds the
        real paths of the folders being listed (through links): a link back to one
        is a cycle."""
        if fd is None:
            opened = self._open_listed(folders)
            if opened is None:
                return False
            fd, real = opened
        try:
            seen = seen + (tuple(real),)
            for name, kind, target in self._children(fd, real, partial):
                if kind == "key":
                    out.append(key_prefix + name)
                    if first_only:
                        return True
                    continue
                if target is not None and tuple(target) in seen:
                    continue
                child = self._open_child(fd, real, name, target)
                if child is None:
                    continue
                if self._list_confined(None, key_prefix + name + "/", "", out, first_only,
                                       *child, seen) and first_only:
                    return True
            return False
        finally:
            os.close(fd)

    def _list_dir_confined(self, folders, keys, prefixes):
        opened = self._open_listed(folders)
        if opened is None:
            return
        fd, real = opened
        try:
            for name, kind, target in self._children(fd, real):
                if kind == "key":
                    keys.append(name)
                    continue
                child = self._open_child(fd, real, name, target)
                # An empty folder is no prefix.
                if child is not None and self._list_confined(
                        None, "", "", [], True, *child, (tuple(real),)):
                    prefixes.append(name)
        finally:
            os.close(fd)

    # -- moving -----------------------------------------------------------------------

    def move_prefix(self, old, new):
        """Move every key under ``old`` to ``new``; a folder move when both end in "/"."""
        if self._read_only:
            self._refuse_writes("move_prefix", f"{old!r} to {new!r}")
        if not (old.endswith("/") and new.endswith("/") and old != "/" and new != "/"):
            return super().move_prefix(old, new)
        old_folders, _ = _split_prefix(old)
        new_folders, _ = _split_prefix(new)
        if self._confined:
            return self._move_folder_confined(old, new, old_folders, new_folders)
        src, dst = self._folder(old_folders), self._folder(new_folders)
        if not os.path.isdir(src):
            return
        if dst == src or dst.startswith(src + os.sep):
            raise StoreError(f"cannot move prefix {old!r} into itself ({new!r})")
        try:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            # rename(2) replaces an empty folder but never a non-empty one.
            os.rename(src, dst)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EXDEV):
                raise StoreError(f"cannot move prefix {old!r} to {new!r}: {e}") from e
            # The target holds keys already (or is on another file system):
            # move key by key, each one atomically.
            return super().move_prefix(old, new)
        self._prune(os.path.dirname(src))

    def _move_folder_confined(self, old, new, old_folders, new_folders):
        if new_folders[:len(old_folders)] == old_folders:
            raise StoreError(f"cannot move prefix {old!r} into itself ({new!r})")
        try:
            src = self._open_folder(old_folders[:-1])
        except (_Outside, _NotAFolder):
            return  # nothing of the store is there
        except OSError as e:
            raise StoreError(f"cannot move prefix {old!r} to {new!r}: {e}") from e
        if src is None:
            return
        src_fds, src_real = src
        dst_fds = None
        try:
            name = old_folders[-1]
            try:
                mode = os.stat(name, dir_fd=src_fds[-1], follow_symlinks=False).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return
            if stat.S_ISLNK(mode):
                # Moved as a link (as the default store does) if it leads to a
                # folder of the store; one leading outside is no folder of it.
                target = self._resolve(src_real + [name])
                if target is None or not os.path.isdir(
                        os.path.join(self._real_root, *target)):
                    return
            elif not stat.S_ISDIR(mode):
                return
            try:
                dst_fds, _ = self._open_folder(new_folders[:-1], create=True)
            except _Outside as e:
                raise StoreError(f"cannot move prefix {old!r} to {new!r}: {e.link!r} is a "
                                 f"symbolic link that leads outside the store root "
                                 f"{self._root!r} (follow_links=False)") from None
            except _NotAFolder:
                raise StoreError(f"cannot move prefix {old!r} to {new!r}: a key of the "
                                 f"store is a prefix of {new!r}") from None
            try:
                # rename(2) replaces an empty folder but never a non-empty one.
                os.rename(name, new_folders[-1], src_dir_fd=src_fds[-1],
                          dst_dir_fd=dst_fds[-1])
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EXDEV):
                    raise StoreError(f"cannot move prefix {old!r} to {new!r}: {e}") from e
                # Key by key, each through this store's confined get/set/erase.
                return super().move_prefix(old, new)
            self._prune_confined(src_fds, src_real)
        except OSError as e:
            if isinstance(e, StoreError):
                raise
            raise StoreError(f"cannot move prefix {old!r} to {new!r}: {e}") from e
        finally:
            _close_all(src_fds)
            if dst_fds is not None:
                _close_all(dst_fds)
