"""The ``gzip`` codec (RFC 1952), through the fastest deflate library installed.

https://zarr-specs.readthedocs.io/en/latest/v3/codecs/gzip/index.html

Backends, in order of preference (the first importable one is used):

``isal``     python-isal (Intel ISA-L). At level 1, on 1 MiB chunks of a
             smooth float32 field plus noise, it compressed ~25x and
             decompressed ~2x faster than the standard library's zlib, and
             ~9x / ~1.7x faster than zlib-ng, at zlib level 1's ratio.
``zlib-ng``  python-zlib-ng (``zlib_ng.zlib_ng``): a zlib-compatible API,
             levels 0..9 as in zlib. Its level 1 uses static Huffman codes,
             which can make noisy data slightly larger than it was.
``zlib``     the standard library: always there, the slowest.

Every backend writes one gzip member with mtime 0 (so the bytes of a chunk
are reproducible for a given backend, not across backends) and reads what
any of them, or any other gzip or zlib writer, wrote.

ISA-L has only levels 0..3, and its level 0 is its fastest *compressing*
level (on noisy data it expands the chunk), so the Zarr level maps as:

    Zarr level   0            1-3       4-6       7-9
    isal level   zlib, store  1         2         3

Level 0 means "store" in zlib, so with ``isal`` it is written by the
standard library's zlib as stored blocks; 4-6 takes ISA-L's default level,
as zlib's default (6) is in that range; 7-9 its best.

Reading whole chunks goes faster still through libdeflate (the ``deflate``
package's copy, called from ``_kernels.deflate``) where it loads: ~25% less
CPU than ISA-L on the W3 chunks. It decodes a chunk that is exactly one
gzip member straight into a reused buffer (``decode_into``); anything else
(several members, a zlib header, damaged data) is read by the backend as
described below, which also gives the error. ``DECODER`` names the one in
use; ``ZARRSYNC_GZIP_DECODER=backend`` (read at import) or
``set_decoder("backend")`` leaves reading to the backend.

Choosing a backend: ``BACKEND`` names the one in use. The environment
variable ``ZARRSYNC_GZIP`` (``isal``, ``zlib-ng`` or ``zlib``), read at
import, picks one; unset or empty means the first available. A name that is
unknown, or whose package cannot be imported, raises at import rather than
falling back, so a run never measures or tests another backend than the one
it asked for. ``set_backend(name)`` switches at run time (tests, benchmarks).
"""

import importlib.util
import os
import threading
import zlib

from .._kernels import deflate as deflate_kernel
from ..errors import CodecError
from ._chain import BytesToBytesCodec

__all__ = ["BACKEND", "BACKENDS", "DECODER", "Gzip", "GzipDataError", "available_backends",
           "set_backend", "set_decoder"]

_GZIP_WBITS = 16 + zlib.MAX_WBITS   # write a gzip header (mtime 0: reproducible bytes)
_AUTO_WBITS = 32 + zlib.MAX_WBITS   # read gzip or zlib headers
_GZIP_MAGIC = b"\x1f\x8b"

#: Backend names, most preferred first.
BACKENDS = ("isal", "zlib-ng", "zlib")

#: The Zarr level (index) as an ISA-L level; 0 is written by zlib instead.
_ISAL_LEVEL = (None, 1, 1, 1, 2, 2, 2, 3, 3, 3)


class GzipDataError(CodecError, zlib.error):
    """Gzip data the backend in use could not decode (corrupt, or not gzip at all).

    Also a ``zlib.error``, as the codec raised before it had other backends.
    """


class _Backend:
    """One deflate library: ``compress(data, level)`` and ``decompress_member(data,
    size_hint) -> (output, ended, rest)`` for the first gzip or zlib member of
    ``data`` (``ended``: the member was complete; ``rest``: the bytes after it).
    Holds functions only: every call makes its own (de)compressor, so one
    backend serves every thread at once."""

    def __init__(self, name, compress, decompress_member, error):
        self.name = name
        self.compress = compress
        self.decompress_member = decompress_member
        self.error = error  # the library's exception for corrupt data


def _zlib_like(name, module):
    """A backend over a module with zlib's API (the standard library's, zlib-ng)."""

    def compress(data, level):
        return module.compress(data, level, _GZIP_WBITS)

    def decompress_member(data, size_hint):
        # Not module.decompress(data, wbits, bufsize): it stops after the first
        # member and ignores whatever follows, so a second member or trailing
        # garbage would go unseen. A decompressobj reports both.
        d = module.decompressobj(_AUTO_WBITS)
        out = d.decompress(data)
        return out, d.eof, d.unused_data

    return _Backend(name, compress, decompress_member, module.error)


def _isal():
    from isal import igzip_lib, isal_zlib

    def compress(data, level):
        if level == 0:
            return zlib.compress(data, 0, _GZIP_WBITS)
        return isal_zlib.compress(data, _ISAL_LEVEL[level], _GZIP_WBITS)

    def decompress_member(data, size_hint):
        # IgzipDecompressor allocates max_length bytes up front, so a correct
        # size hint decodes into one buffer with no copy (isal_zlib's
        # decompressobj grows and joins), and unlike isal_zlib.decompress it
        # tells where the member ended.
        flag = igzip_lib.DECOMP_GZIP if data[:2] == _GZIP_MAGIC else igzip_lib.DECOMP_ZLIB
        d = igzip_lib.IgzipDecompressor(flag=flag)
        out = d.decompress(data, size_hint or -1)
        if not d.eof and not d.needs_input:  # more output than the hint: the rest
            out += d.decompress(b"")
        return out, d.eof, d.unused_data

    return _Backend("isal", compress, decompress_member, isal_zlib.error)


def _zlib_ng():
    from zlib_ng import zlib_ng
    return _zlib_like("zlib-ng", zlib_ng)


_LOADERS = {"isal": _isal, "zlib-ng": _zlib_ng, "zlib": lambda: _zlib_like("zlib", zlib)}
_loaded = {}


def _load(name):
    """The backend called ``name``; ImportError if its package is missing."""
    if name not in _LOADERS:
        raise ValueError(f"unknown gzip backend {name!r}: choose from {', '.join(BACKENDS)}")
    if name not in _loaded:
        try:
            _loaded[name] = _LOADERS[name]()
        except ImportError as e:
            package = {"isal": "isal", "zlib-ng": "zlib-ng"}[name]
            raise ImportError(f"gzip backend {name!r} needs the {package!r} package, "
                              f"which cannot be imported: {e}") from e
    return _loaded[name]


def available_backends():
    """The names of the backends whose package imports here, most preferred first."""
    out = []
    for name in BACKENDS:
        try:
            _load(name)
        except ImportError:
            continue
        out.append(name)
    return out


def set_backend(name):
    """Use backend ``name`` from now on, in every thread; returns the previous name.

    ValueError for an unknown name, ImportError if its package is missing.
    """
    global BACKEND, _backend
    backend = _load(name)
    previous = BACKEND
    BACKEND, _backend = name, backend
    return previous


def _chosen_by_environment(variable, choose):
    """Call ``choose(name)`` for the name the environment variable gives, if
    not empty (True then); its errors name the variable."""
    requested = os.environ.get(variable, "")
    if not requested:
        return False
    try:
        choose(requested)
    except (ValueError, ImportError) as e:
        raise type(e)(f"{variable}={requested!r}: {e}") from e
    return True


BACKEND = None
_backend = None
if not _chosen_by_environment("ZARRSYNC_GZIP", set_backend):
    for _name in BACKENDS:  # the first that imports; zlib always does
        try:
            set_backend(_name)
            break
        except ImportError:
            continue


def _load_libdeflate():
    """True if libdeflate is loaded (from the ``deflate`` package's extension
    module, found without importing it)."""
    if deflate_kernel.loaded():
        return True
    try:
        spec = importlib.util.find_spec("deflate._deflate")
    except (ImportError, ValueError):
        spec = None
    return bool(spec is not None and spec.origin and deflate_kernel.load(spec.origin))


def set_decoder(name):
    """Read gzip chunks through ``"libdeflate"`` or the ``"backend"`` from now
    on; returns the previous name. ValueError for an unknown name,
    ImportError if libdeflate cannot be loaded (no ``deflate`` package)."""
    global DECODER
    if name not in ("libdeflate", "backend"):
        raise ValueError(f"unknown gzip decoder {name!r}: choose libdeflate or backend")
    if name == "libdeflate" and not _load_libdeflate():
        raise ImportError("gzip decoder 'libdeflate' needs the 'deflate' package, "
                          "whose extension module exports libdeflate")
    previous = DECODER
    DECODER = name
    return previous


DECODER = "backend"
if not _chosen_by_environment("ZARRSYNC_GZIP_DECODER", set_decoder) and _load_libdeflate():
    DECODER = "libdeflate"

_local = threading.local()


def _inflater():
    """This thread's libdeflate decompressor."""
    inflater = getattr(_local, "inflater", None)
    if inflater is None:
        inflater = _local.inflater = deflate_kernel.Inflater()
    return inflater


class Gzip(BytesToBytesCodec):
    """Gzip compression.

    Parameters
    ----------
    level : int
        0 (store) to 9 (smallest). See the module docstring for what each
        level means to each backend.
    """

    name = "gzip"

    def __init__(self, level=5):
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
            raise CodecError(f"gzip level must be an integer in 0..9, got {level!r}")
        self.level = level

    @classmethod
    def from_config(cls, configuration):
        configuration = dict(configuration or {})
        if "level" not in configuration:
            raise CodecError("gzip codec needs a 'level'")
        level = configuration.pop("level")
        if configuration:
            raise CodecError(f"unknown gzip configuration: {sorted(configuration)}")
        return cls(level)

    def to_dict(self):
        return {"name": "gzip", "configuration": {"level": self.level}}

    def encode(self, data):
        return _backend.compress(data, self.level)

    def thread_decoder(self):
        """This thread's libdeflate decompressor, when ``decodes_into``: it
        takes one whole gzip member per chunk, and refuses anything else."""
        return _inflater() if self.decodes_into else None

    @property
    def decodes_into(self):
        """True if ``decode_into`` decodes with libdeflate (``DECODER``)."""
        return DECODER == "libdeflate"

    def decode_into(self, data, out):
        """Decode ``data`` into the writable buffer ``out``; the number of bytes
        it decodes to (``out`` is filled only if that is ``len(out)``).

        One whole gzip member goes through libdeflate straight into ``out``;
        anything else through ``decode``, which reads several members and
        zlib streams and raises for damaged data.
        """
        n = _inflater().gzip_member_into(data, out)
        if n >= 0:
            return n
        decoded = self.decode(data, len(out))
        if len(decoded) == len(out):
            memoryview(out).cast("B")[:] = decoded
        return len(decoded)

    def decode(self, data, size_hint=None):
        backend = _backend  # one backend for the whole call, even if switched meanwhile
        parts = []
        produced = 0
        data = memoryview(data)
        # Concatenated members decode to the concatenation (RFC 1952).
        while len(data):
            hint = size_hint - produced if size_hint and size_hint > produced else None
            try:
                out, ended, rest = backend.decompress_member(data, hint)
            except backend.error as e:
                raise GzipDataError(f"gzip data could not be decoded ({backend.name}): "
                                    f"{e}") from e
            if not ended:
                raise CodecError("gzip data is truncated")
            parts.append(out)
            produced += len(out)
            data = memoryview(rest)
        if not parts:
            return b""
        return parts[0] if len(parts) == 1 else b"".join(parts)
