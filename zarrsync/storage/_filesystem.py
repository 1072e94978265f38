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

``erase_prefix`` first renames the folder to a hidden name of the same form,
then deletes it. A concurrent reader sees the whole prefix at once or none
of it. A concurrent writer whose key lay under the prefix ends up with the
old folder (and the value is erased with it) or with a new folder.

A file and a folder cannot share a name. So, unlike an in-memory store, key
``"a"`` and key ``"a/b"`` cannot both exist, and setting one while the other
exists raises ``StoreError``. No valid Zarr hierarchy needs both.
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


class FilesystemStore(Store):
    """A Zarr v3 hierarchy stored as files under a root folder.

    Parameters
    ----------
    path : str or os.PathLike
        The root folder. It is created (with its parents) if missing. An
        existing folder is used as it is, so stores written by other Zarr
        v3 tools open unchanged.
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

    The store is safe to use from several threads and several processes at
    once. Writers of different keys never interfere. Writers of one key
    replace each other's value whole. ``get`` reads one version of a value,
    and so does each key's set of ranges in one ``get_partial_values`` call
    (they are read from one open file). Two separate calls may see two
    versions if another process replaces the value in between.

    Examples
    --------
    >>> import zarrsync as zs
    >>> store = zs.FilesystemStore("data.zarr")  # doctest: +SKIP
    >>> store.create_group(zs.GroupNode.root())  # doctest: +SKIP
    """

    # Other processes may replace files while this one reads; one
    # get_partial_values call reads one key from a single open file.
    shared_between_processes = True
    knows_sizes = True

    def __init__(self, path, *, fsync=False):
        self._root = os.path.abspath(os.fspath(path))
        self._fsync = bool(fsync)
        try:
            os.makedirs(self._root, exist_ok=True)
        except FileExistsError:
            raise StoreError(f"cannot open a FilesystemStore at {self._root!r}: "
                             f"it exists and is not a folder") from None
        except OSError as e:
            raise StoreError(f"cannot create the store folder {self._root!r}: {e}") from e
        if not os.path.isdir(self._root):
            raise StoreError(f"cannot open a FilesystemStore at {self._root!r}: "
                             f"it is not a folder")

    @property
    def path(self):
        """The absolute path of the root folder."""
        return self._root

    def __repr__(self):
        return f"FilesystemStore({self._root!r})"

    def __eq__(self, other):
        return isinstance(other, FilesystemStore) and other._root == self._root

    def __hash__(self):
        return hash((FilesystemStore, self._root))

    # -- paths ------------------------------------------------------------------------

    def _file(self, key):
        return os.path.join(self._root, *_split_key(key))

    def _folder(self, segments):
        return os.path.join(self._root, *segments)

    # -- reading ----------------------------------------------------------------------

    def get(self, key):
        path = self._file(key)
        try:
            with open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as e:
            raise StoreError(f"cannot read key {key!r} from {path!r}: {e}") from e

    def get_partial_values(self, key_ranges):
        key_ranges = list(key_ranges)
        out = [None] * len(key_ranges)
        by_key = {}
        for i, (key, offset, length) in enumerate(key_ranges):
            by_key.setdefault(key, []).append((i, offset, length))
        for key, ranges in by_key.items():
            path = self._file(key)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as e:
                raise StoreError(f"cannot read key {key!r} from {path!r}: {e}") from e
            try:
                info = os.fstat(fd)
                if stat.S_ISDIR(info.st_mode):
                    continue
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
        try:
            info = os.stat(self._file(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if stat.S_ISDIR(info.st_mode) else info.st_size

    # -- writing ----------------------------------------------------------------------

    def set(self, key, value):
        segments = _split_key(key)
        data = _as_buffer(value)
        folder = self._folder(segments[:-1])
        target = os.path.join(folder, segments[-1])
        # A concurrent erase may remove the folder between makedirs and the
        # temporary file, or move the temporary file away with its folder
        # before os.replace: start again, as if this write came after the erase.
        for _ in range(100):
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
            tmp = os.path.join(folder, _tmp_name(segments[-1]))
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            except FileNotFoundError:
                continue  # the folder was just erased
            except OSError as e:
                raise StoreError(f"cannot write key {key!r} in {folder!r}: {e}") from e
            try:
                try:
                    self._write_all(fd, data)
                    if self._fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, target)
            except FileNotFoundError:
                self._unlink_quietly(tmp)
                continue  # the temporary file was erased with its folder
            except IsADirectoryError:
                self._unlink_quietly(tmp)
                raise StoreError(f"cannot set key {key!r}: it is a prefix of other keys "
                                 f"(a folder of the store)") from None
            except BaseException as e:
                # Any failure (disk full, KeyboardInterrupt): leave the old value.
                self._unlink_quietly(tmp)
                if isinstance(e, OSError):
                    raise StoreError(f"cannot write key {key!r}: {e}") from e
                raise
            if self._fsync:
                self._fsync_folder(folder)
            return
        raise StoreError(f"cannot write key {key!r}: its folder keeps being erased")

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
    def _unlink_quietly(path):
        try:
            os.unlink(path)
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

    def erase(self, key):
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

    def _remove_tree(self, path):
        """Delete file or folder ``path``; a folder is first renamed out of sight.

        A concurrent writer never makes this fail. Its call may have looked
        up the folder's path before the rename and create its file or folder
        in the renamed folder after rmtree emptied it; only calls already in
        flight at the rename can, so deleting the renamed folder again until
        it is gone ends (the writer's value is erased with the old folder).
        """
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(info.st_mode):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return
        trash = os.path.join(self._root, _tmp_name("erased"))
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            # Another file system is mounted there: delete in place. Whatever a
            # writer puts in the folder meanwhile was written after the erase: it stays.
            shutil.rmtree(path, onerror=_ignore_missing_and_refilled)
            return
        for _ in range(_ERASE_ATTEMPTS):
            shutil.rmtree(trash, onerror=_ignore_missing_and_refilled)
            if not os.path.lexists(trash):
                return
        raise OSError(errno.ENOTEMPTY, "writers keep adding to the folder being erased", trash)

    def erase_prefix(self, prefix):
        folders, partial = _split_prefix(prefix)
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

    # -- listing ----------------------------------------------------------------------

    @staticmethod
    def _scan(folder, hidden=False):
        """The entries of ``folder`` (none if it is missing); temporary names
        are skipped unless ``hidden``."""
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

    def _walk(self, folder, key_prefix, out):
        """Append the key of every file under ``folder`` to ``out``."""
        for entry in self._scan(folder):
            if self._is_dir(entry):
                self._walk(entry.path, key_prefix + entry.name + "/", out)
            else:
                out.append(key_prefix + entry.name)

    def _holds_a_key(self, folder):
        """True if some file (not a temporary one) lies anywhere under ``folder``.

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
                    subfolders.append(entry.path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return any(self._holds_a_key(f) for f in subfolders)

    def list_prefix(self, prefix):
        folders, partial = _split_prefix(prefix)
        folder = self._folder(folders)
        head = "".join(f + "/" for f in folders)
        out = []
        for entry in self._scan(folder):
            if not entry.name.startswith(partial):
                continue
            if self._is_dir(entry):
                self._walk(entry.path, head + entry.name + "/", out)
            else:
                out.append(head + entry.name)
        return sorted(out)

    def list_dir(self, prefix):
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        folders, _ = _split_prefix(prefix)
        keys, prefixes = [], []
        for entry in self._scan(self._folder(folders)):
            if not self._is_dir(entry):
                keys.append(entry.name)
            elif self._holds_a_key(entry.path):  # an empty folder is no prefix
                prefixes.append(entry.name)
        return sorted(keys), sorted(prefixes)

    # -- moving -----------------------------------------------------------------------

    def move_prefix(self, old, new):
        """Move every key under ``old`` to ``new``; a folder move when both end in "/"."""
        if not (old.endswith("/") and new.endswith("/") and old != "/" and new != "/"):
            return super().move_prefix(old, new)
        old_folders, _ = _split_prefix(old)
        new_folders, _ = _split_prefix(new)
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
