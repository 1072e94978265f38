"""The ``zstd`` codec: libzstd through ``_kernels.zstd`` where it loads, else
the ``zstandard`` package. The optional ``zstd`` extra (``imagecodecs``)
brings a faster-compiled libzstd, used for compressing when installed.

https://github.com/zarr-developers/zarr-extensions/tree/main/codecs/zstd
Contexts are not thread-safe, so each thread keeps its own.
"""

import glob
import importlib.util
import os
import threading

import numpy as np
import zstandard

from .._kernels import zstd as zstd_kernel
from ..errors import CodecError, InvalidZstdLevel
from ._chain import BytesToBytesCodec

_native_lock = threading.Lock()
_native_tried = False
_encoder_path = None


def _spec(name):
    """The import spec of module ``name`` without importing it, or ``None``."""
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _imagecodecs_libzstd():
    """Paths of the libzstd that the ``imagecodecs`` wheel bundles (auditwheel's
    ``imagecodecs.libs`` beside the package, delocate's ``.dylibs`` inside it),
    found without importing the package; ``[]`` if it is not installed."""
    spec = _spec("imagecodecs")
    if spec is None or not spec.submodule_search_locations:
        return []
    package = list(spec.submodule_search_locations)[0]
    return (sorted(glob.glob(os.path.join(os.path.dirname(package), "imagecodecs.libs",
                                          "libzstd*.so*")))
            + sorted(glob.glob(os.path.join(package, ".dylibs", "libzstd*.dylib"))))


def _zstandard_cffi():
    """The path of python-zstandard's cffi backend module, which exports the zstd API."""
    spec = _spec("zstandard._cffi")
    return [spec.origin] if spec is not None and spec.origin else []


#: Libraries that may compress, in order of preference, each with where to
#: look for it. imagecodecs' copy of zstd 1.5.7 (built by GCC 14) compressed
#: W4's inner chunks 8-14% faster on one thread than python-zstandard's copy
#: of the same version (GCC 10), with byte-identical frames.
ENCODERS = {"imagecodecs": _imagecodecs_libzstd, "zstandard": _zstandard_cffi}


def _requested_encoder():
    """The name ``ZARRSYNC_ZSTD_ENCODER`` gives (read at import), or ``None``
    for the first of ``ENCODERS`` that loads. A name that is unknown or whose
    library is not installed raises here, so a run never measures or tests
    another library than the one it asked for."""
    name = os.environ.get("ZARRSYNC_ZSTD_ENCODER", "")
    if not name:
        return None
    if name not in ENCODERS:
        raise ValueError(f"ZARRSYNC_ZSTD_ENCODER={name!r}: not one of {sorted(ENCODERS)}")
    if not ENCODERS[name]():
        raise ImportError(f"ZARRSYNC_ZSTD_ENCODER={name!r}: its library is not installed")
    return name


_REQUESTED_ENCODER = _requested_encoder()


def native_available():
    """True if libzstd can be called without Python in between (``_kernels.zstd``).

    The library that compresses is the first of ``ENCODERS`` that loads
    (``ZARRSYNC_ZSTD_ENCODER`` names one instead); it is opened on first
    use. Frames are decompressed by a system libzstd of 1.5.4 or newer
    where one loads (``SYSTEM_DECODERS``; Debian's decodes ~10% faster than
    python-zstandard's build), unless the environment sets
    ``ZARRSYNC_ZSTD_DECODER=bundled`` (the compressing library decodes).
    """
    global _native_tried, _encoder_path
    if zstd_kernel.version():
        return True
    with _native_lock:
        if not _native_tried:
            names = [_REQUESTED_ENCODER] if _REQUESTED_ENCODER else list(ENCODERS)
            for path in (path for name in names for path in ENCODERS[name]()):
                if zstd_kernel.load(path):
                    _encoder_path = path
                    break
            else:
                if _REQUESTED_ENCODER:  # raised again on every call, never a fallback
                    raise ImportError(f"ZARRSYNC_ZSTD_ENCODER={_REQUESTED_ENCODER!r}: "
                                      "its library does not load")
            _native_tried = True
            if _encoder_path and os.environ.get("ZARRSYNC_ZSTD_DECODER",
                                                "system") != "bundled":
                for name in SYSTEM_DECODERS:
                    if zstd_kernel.load_decoder(name, SYSTEM_DECODER_MIN_VERSION):
                        break
    return bool(zstd_kernel.version())


def encoder_library():
    """The path of the shared library that compresses, or ``None`` when
    python-zstandard's Python API does (``native_available()`` is false)."""
    native_available()
    return _encoder_path


#: Shared libraries tried for decompression, by the names the loader knows them.
SYSTEM_DECODERS = ("libzstd.so.1", "libzstd.1.dylib")
#: The oldest system libzstd used (the one measured: Debian 12's).
SYSTEM_DECODER_MIN_VERSION = 10504

MIN_LEVEL = -131072
MAX_LEVEL = 22


class Zstd(BytesToBytesCodec):
    """Zstandard compression.

    Parameters
    ----------
    level : int
        -131072 to 22; 0 means zstd's default level (3).
    checksum : bool
        Write a content checksum into each frame.
    """

    name = "zstd"

    def __init__(self, level=0, checksum=False):
        if isinstance(level, bool) or not isinstance(level, int):
            raise InvalidZstdLevel(f"zstd level must be an integer, got {level!r}")
        if not MIN_LEVEL <= level <= MAX_LEVEL:
            raise InvalidZstdLevel(
                f"zstd level must be in {MIN_LEVEL}..{MAX_LEVEL}, got {level}")
        if not isinstance(checksum, bool):
            raise CodecError(f"zstd checksum must be true or false, got {checksum!r}")
        self.level = level
        self.checksum = checksum
        self._local = threading.local()

    @classmethod
    def from_config(cls, configuration):
        configuration = dict(configuration or {})
        level = configuration.pop("level", 0)
        checksum = configuration.pop("checksum", False)
        if configuration:
            raise CodecError(f"unknown zstd configuration: {sorted(configuration)}")
        return cls(level, checksum)

    def to_dict(self):
        return {"name": "zstd",
                "configuration": {"level": self.level, "checksum": self.checksum}}

    def _compressor(self):
        c = getattr(self._local, "compressor", None)
        if c is None:
            c = zstandard.ZstdCompressor(level=self.level, write_checksum=self.checksum,
                                         write_content_size=True)
            self._local.compressor = c
        return c

    def native_context(self):
        """This thread's ``_kernels.zstd.Context`` for this level and checksum
        flag, or ``None`` when ``native_available()`` is false."""
        ctx = getattr(self._local, "native", None)
        if ctx is None and native_available():
            ctx = self._local.native = zstd_kernel.Context(self.level, self.checksum)
        return ctx

    def native_decompressor(self):
        """This thread's ``_kernels.zstd.DContext``, or ``None`` when
        ``native_available()`` is false."""
        dctx = getattr(self._local, "native_d", None)
        if dctx is None and native_available():
            dctx = self._local.native_d = zstd_kernel.DContext()
        return dctx

    def thread_decoder(self):
        """``native_decompressor()``: libzstd without the GIL, when loaded."""
        return self.native_decompressor()

    @property
    def decodes_into(self):
        """True if ``decode_into`` can be used (libzstd is loaded)."""
        return native_available()

    def decode_into(self, data, out):
        """Decompress ``data`` into the writable buffer ``out`` (when
        ``decodes_into``); the number of bytes written. ``CodecError`` if
        ``data`` is not zstd frames or holds more than ``len(out)`` bytes."""
        try:
            return self.native_decompressor().decompress_into(data, out)
        except zstd_kernel.ZstdFailed as e:
            raise CodecError(f"zstd: {e}") from e

    def _decompressor(self):
        d = getattr(self._local, "decompressor", None)
        if d is None:
            d = zstandard.ZstdDecompressor()
            self._local.decompressor = d
        return d

    def encode(self, data):
        """One frame holding ``data``: with this thread's ``native_context``
        (no block pre-splitting, see ``_kernels.zstd.Context``) or, without
        it, python-zstandard."""
        ctx = self.native_context()
        if ctx is None:
            return self._compressor().compress(data)
        try:
            return ctx.compress(data)
        except zstd_kernel.ZstdFailed as e:
            raise CodecError(f"zstd: {e}") from e

    # python-zstandard's C backend compresses a batch of inputs on its own
    # threads without the GIL; its cffi backend does not have the call.
    encodes_many = hasattr(zstandard.ZstdCompressor, "multi_compress_to_buffer")

    def encode_many(self, data, segments, threads):
        pieces = zstandard.BufferWithSegments(data, np.ascontiguousarray(
            segments, dtype=np.uint64).tobytes())
        try:
            frames = self._compressor().multi_compress_to_buffer(pieces, threads=threads)
        except zstandard.ZstdError as e:
            raise CodecError(f"zstd: {e}") from e
        return [frames[k].tobytes() for k in range(len(frames))]

    def decode(self, data, size_hint=None):
        dctx = self._decompressor()
        try:
            return dctx.decompress(data, max_output_size=size_hint or 0)
        except zstandard.ZstdError as e:
            if "could not determine content size" not in str(e):
                raise CodecError(f"zstd: {e}") from e
        # Frames written without a content size (streaming writers). A
        # decompressobj returns what it has for a truncated frame, so check
        # that the frame ended.
        dobj = dctx.decompressobj()
        try:
            out = dobj.decompress(data)
        except zstandard.ZstdError as e:
            raise CodecError(f"zstd: {e}") from e
        if not dobj.eof:
            raise CodecError("zstd: the frame is truncated")
        return out

    def __getstate__(self):
        return {"level": self.level, "checksum": self.checksum}

    def __setstate__(self, state):
        self.__init__(state["level"], state["checksum"])
