"""The ``zstd`` codec.

https://github.com/zarr-developers/zarr-extensions/tree/main/codecs/zstd
Frames are made and read by the system's libzstd where it loads (through
``_kernels.zstd``, opened by its soname: the fast path, also callable
without the GIL for batches of chunks), else by numcodecs' zstd, the one
zarr-python uses. Both write standard frames that record the content size,
and both read every frame of a chunk, refusing truncated frames, trailing
data, and frames holding more than the size the array's metadata implies.
libzstd contexts are not thread-safe, so each thread keeps its own native
context, reconfigured when the level or checksum flag changes.
"""

import threading

from .. import _scratch, config
from .._kernels import zstd as libzstd
from ..errors import CodecError, InvalidZstdLevel
from ._base import BytesToBytesCodec

__all__ = ["Zstd", "native_library"]

MIN_LEVEL = -131072
MAX_LEVEL = 22

_local = threading.local()
_load_lock = threading.Lock()
_tried = False


def native_library():
    """``(soname, version)`` of the system libzstd the fast path uses, such
    as ``("libzstd.so.1", 10504)``, or ``None`` where none loads."""
    global _tried
    if not _tried:
        with _load_lock:
            libzstd.load()
            _tried = True
    version = libzstd.version()
    return (libzstd.soname(), version) if version else None


def _native_context(level, checksum):
    """This thread's libzstd context set to ``level`` and ``checksum``, or
    ``None`` (fast paths off, or no libzstd)."""
    if not config.get("fast_paths") or native_library() is None:
        return None
    ctx = getattr(_local, "native", None)
    if ctx is None:
        ctx = _local.native = libzstd.ZstdContext(level, checksum)
    elif ctx.level != level or ctx.checksum != checksum:
        ctx.configure(level, checksum)
    return ctx


def _numcodecs_zstd():
    # Imported on first use: numcodecs takes a while to import.
    from numcodecs import zstd
    return zstd


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
    decodes_into = True

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

    def native(self):
        return _native_context(self.level, self.checksum)

    def encode(self, data):
        ctx = _native_context(self.level, self.checksum)
        if ctx is None:
            return _numcodecs_zstd().compress(data, self.level, self.checksum)
        out = _scratch.buffer("zstd-frame", ctx.bound(memoryview(data).nbytes))
        try:
            n = ctx.compress_into(data, out)
        except libzstd.ZstdError as e:
            raise CodecError(f"zstd: {e}") from None
        return bytes(memoryview(out)[:n])

    def decode_into(self, data, out):
        expected = memoryview(out).nbytes
        ctx = _native_context(self.level, self.checksum)
        if ctx is None:
            memoryview(out).cast("B")[:] = self.decode(data, expected)
            return expected
        try:
            n = ctx.decompress_into(data, out)
        except libzstd.ZstdError as e:
            raise CodecError(f"zstd: {e}") from None
        if n != expected:
            raise CodecError(f"zstd: the frames hold {n} bytes, expected {expected}")
        return n

    def decode(self, data, decoded_size=None):
        if decoded_size is not None and _native_context(self.level, self.checksum) is not None:
            out = bytearray(decoded_size)
            self.decode_into(data, out)
            return out
        try:
            # Every frame, each checked whole (numcodecs' zstd sizes the output
            # from the frames' content sizes, or streams frames without one).
            decoded = _numcodecs_zstd().decompress(data)
        except (RuntimeError, ValueError, MemoryError) as e:
            raise CodecError(f"zstd: {e}") from None
        if decoded_size is not None and len(decoded) != decoded_size:
            raise CodecError(f"zstd: the frames hold {len(decoded)} bytes, "
                             f"expected {decoded_size}")
        return decoded
