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

Where the ``zstandard`` package carries a newer zstd than the system's,
chunks of ``BUNDLED_MIN_BYTES`` or more are decoded by it instead, straight
into their buffer (a stream reader over whole frames, checked by ``_scan``
first): newer zstd decodes poorly compressible data, such as most floating
point arrays, up to 1.2x faster (docs/performance.md).

Bounded decoding (``decode(data, max_size)``), on both routes: the frames'
headers are read first (``_scan``, RFC 8878), and frames that declare more
than ``max_size`` are refused before anything is allocated. Frames that
declare their content size are decoded into a buffer of exactly that size
(numcodecs' ``decompress(data, dest)`` never allocates or writes past
``dest``). Frames without a content size (streaming writers) may decode to
at most an upper bound read from their block headers: the fast path
decodes them into ``min(bound, max_size)`` bytes; the portable route
streams them through numcodecs when the bound fits ``max_size`` (its
growing buffer, the result and libzstd's window then hold about three times
the bound at most, or twice the input), else reads them only if they fill
exactly ``max_size`` bytes (fixed-size data types), and refuses them
otherwise. numcodecs refuses frames of no content; those are
checked by decoding them followed by a frame of one byte.
"""

import functools
import threading

from .. import _scratch, config
from .._kernels import zstd as libzstd
from ..errors import CodecError, InvalidZstdLevel
from ._base import BytesToBytesCodec

__all__ = ["BUNDLED_MIN_BYTES", "Zstd", "native_library"]

MIN_LEVEL = -131072
MAX_LEVEL = 22

# The frame format: https://www.rfc-editor.org/rfc/rfc8878#section-3.1
_FRAME_MAGIC = 0xFD2FB528
_SKIPPABLE_MAGIC = 0x184D2A50  # the low 4 bits are free
_BLOCK_MAX = 128 << 10

#: Chunks at least this large go to ``zstandard`` where its zstd is newer:
#: below it, a Python call per chunk costs more than the newer zstd saves.
BUNDLED_MIN_BYTES = 256 << 10

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


@functools.cache
def _zstandard():
    """The ``zstandard`` module, or ``None`` where it does not import
    (imported on first use, as numcodecs is)."""
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard


@functools.cache
def _bundled_is_newer():
    # Newer zstd decodes literals faster (1.5.6 unrolled its Huffman decoder
    # by hand; gcc builds of older ones leave the loops rolled).
    zstandard = _zstandard()
    if zstandard is None:
        return False
    major, minor, patch = zstandard.ZSTD_VERSION[:3]   # libzstd numbers 1.5.7 as 10507
    native = native_library()
    return major * 10000 + minor * 100 + patch > (native[1] if native else 0)


def _bundled_decodes(nbytes):
    """True if chunks of ``nbytes`` are decoded by ``zstandard`` (its zstd is
    newer than the system's, and they are large enough that a call per chunk
    costs nothing); fast paths only."""
    return (nbytes >= BUNDLED_MIN_BYTES and config.get("fast_paths")
            and _bundled_is_newer())


def _bundled_decompressor():
    # zstandard's decompressors are not thread-safe: one per thread.
    dctx = getattr(_local, "bundled", None)
    if dctx is None:
        dctx = _local.bundled = _zstandard().ZstdDecompressor()
    return dctx


def _numcodecs_zstd():
    # Imported on first use: numcodecs takes a while to import.
    from numcodecs import zstd
    return zstd


@functools.cache
def _one_byte_frame():
    """A frame holding the byte 0, by numcodecs."""
    return bytes(_numcodecs_zstd().compress(b"\0", 1))


def _truncated(pos):
    return CodecError(f"zstd: the data ends inside a frame (truncated at byte {pos})")


def _frame_header(view, pos):
    """``(content size or None, window size, checksum flag, header end)`` of
    the frame starting at ``pos`` (after its magic number)."""
    n = len(view)
    if pos + 5 > n:
        raise _truncated(n)
    descriptor = view[pos + 4]
    if descriptor & 0x08:
        raise CodecError(f"zstd: the frame at byte {pos} sets a reserved header bit")
    single_segment = (descriptor >> 5) & 1
    size_bytes = (single_segment, 2, 4, 8)[descriptor >> 6]
    at = pos + 5
    window = None
    if not single_segment:
        if at >= n:
            raise _truncated(n)
        exponent, mantissa = view[at] >> 3, view[at] & 7
        window = (1 << (10 + exponent)) + (1 << (7 + exponent)) * mantissa
        at += 1
    at += (0, 1, 2, 4)[descriptor & 3]   # dictionary id
    if at + size_bytes > n:
        raise _truncated(n)
    content = None
    if size_bytes:
        content = int.from_bytes(view[at:at + size_bytes], "little")
        content += 256 if size_bytes == 2 else 0
    if single_segment:
        window = content
    return content, window, (descriptor >> 2) & 1, at + size_bytes


def _first_content_size(view):
    """The content size the first frame of ``view`` declares, or ``None``
    (none declared, or not a whole frame header: ``_scan`` says why)."""
    if len(view) < 4 or int.from_bytes(view[:4], "little") != _FRAME_MAGIC:
        return None
    try:
        return _frame_header(view, 0)[0]
    except CodecError:
        return None


def _scan(view, limit):
    """``(size, exact)``: what the zstd frames in ``view`` decode to, from
    their frame and block headers alone (RFC 8878, section 3.1).

    ``exact`` when every frame declares its content size, the sum; else an
    upper bound (a compressed block holds at most 128 KiB, and no more than
    its frame's window), and ``(limit + 1, False)`` as soon as that bound
    passes ``limit`` (``None``: no limit). Raises ``CodecError`` when the
    frames declare more than ``limit``, or ``view`` is not whole frames.
    """
    n, pos, total, exact = len(view), 0, 0, True
    while pos < n:
        if pos + 4 > n:
            raise _truncated(n)
        magic = int.from_bytes(view[pos:pos + 4], "little")
        if magic & 0xFFFFFFF0 == _SKIPPABLE_MAGIC:
            if pos + 8 > n:
                raise _truncated(n)
            pos += 8 + int.from_bytes(view[pos + 4:pos + 8], "little")
            if pos > n:
                raise _truncated(n)
            continue
        if magic != _FRAME_MAGIC:
            raise CodecError(f"zstd: the data at byte {pos} is not a zstd frame")
        content, window, checksum, pos = _frame_header(view, pos)
        if content is not None:
            total += content
            if limit is not None and total > limit:
                raise CodecError(f"zstd: the frames declare {total} bytes, more than the "
                                 f"{limit} bytes expected")
        else:
            exact = False
        most = min(window, _BLOCK_MAX)
        while True:
            if pos + 3 > n:
                raise _truncated(n)
            header = view[pos] | view[pos + 1] << 8 | view[pos + 2] << 16
            kind, size = (header >> 1) & 3, header >> 3
            if kind == 3:
                raise CodecError(f"zstd: the block at byte {pos} has the reserved type")
            pos += 3 + (1 if kind == 1 else size)   # an RLE block stores one byte
            if content is None:
                total += most if kind == 2 else size
                if limit is not None and total > limit:
                    return limit + 1, False
            if header & 1:   # the last block
                break
        pos += 4 * checksum
        if pos > n:
            raise _truncated(n)
    return total, exact


def _error(e, limit):
    """The ``CodecError`` for ``e``, a decoder's error for frames decoded
    into a buffer of ``limit`` bytes."""
    return CodecError(f"zstd: {e} (the frames may hold at most {limit} bytes here)")


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
            raise CodecError(f"unknown zstd configuration fields {sorted(configuration)}; "
                             f"expected level, checksum")
        return cls(level, checksum)

    def to_dict(self):
        return {"name": "zstd",
                "configuration": {"level": self.level, "checksum": self.checksum}}

    def v2_config(self):
        # As zarr-python writes it: tensorstore refuses a "checksum" field.
        return ({"id": "zstd", "level": self.level, "checksum": True} if self.checksum
                else {"id": "zstd", "level": self.level})

    def native(self):
        return _native_context(self.level, self.checksum)

    def native_decoder(self, nbytes):
        return None if _bundled_decodes(nbytes) else self.native()

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

    decodes_bounded = True

    def max_encoded_size(self, size):
        # ZSTD_COMPRESSBOUND (zstd.h), with room for other writers' several
        # frames or skippable frames.
        return size + (size >> 7) + (64 << 10)

    def decode_into(self, data, out):
        expected = memoryview(out).nbytes
        if _bundled_decodes(expected):
            return self._bundled_into(memoryview(data).cast("B"), out, expected)
        ctx = _native_context(self.level, self.checksum)
        if ctx is None:
            return self._portable_into(memoryview(data).cast("B"), out, expected)
        try:
            n = ctx.decompress_into(data, out)
        except libzstd.ZstdError as e:
            raise _error(e, expected) from None
        if n != expected:
            raise CodecError(f"zstd: the frames hold {n} bytes, expected {expected}")
        return n

    def decode(self, data, max_size=None):
        view = memoryview(data).cast("B")
        first = _first_content_size(view)
        if max_size is not None and first is not None and first > max_size:
            raise CodecError(f"zstd: a frame declares {first} bytes, more than the "
                             f"{max_size} bytes expected")
        if first is not None and first == max_size:
            # The usual chunk: one frame of exactly the size expected (any
            # further frame overflows the buffer, which the decoders refuse).
            size, exact = first, True
        else:
            size, exact = _scan(view, max_size)
        if exact:
            out = bytearray(size)
            self.decode_into(view, out)
            return out
        ctx = _native_context(self.level, self.checksum)
        if ctx is not None:
            # ``size`` bounds what frames without a content size hold.
            out = bytearray(size if max_size is None else min(size, max_size))
            try:
                n = ctx.decompress_into(view, out)
            except libzstd.ZstdError as e:
                raise _error(e, len(out)) from None
            del out[n:]
            return out
        if max_size is not None and size >= max_size:
            # They may hold ``max_size`` or more: numcodecs reads them into a
            # buffer only if they fill it exactly (as fixed-size chunks do).
            out = bytearray(max_size)
            try:
                _numcodecs_zstd().decompress(view, out)
                return out
            except (RuntimeError, ValueError) as e:
                if size > max_size:
                    raise CodecError(
                        f"zstd: frames without a content size, which may hold more than "
                        f"the {max_size} bytes expected, did not decode to exactly that "
                        f"many ({e})") from None
        try:
            # numcodecs streams frames without a content size: at most ``size``.
            return _numcodecs_zstd().decompress(view)
        except (RuntimeError, ValueError, MemoryError) as e:
            raise CodecError(f"zstd: {e}") from None

    def _bundled_into(self, view, out, expected):
        """``decode_into`` by ``zstandard``, straight into ``out``."""
        # Whole frames, declaring no more than ``expected``: a stream reader
        # alone would stop quietly at a cut frame or before extra content.
        size, exact = _scan(view, expected)
        if exact and size != expected:
            raise CodecError(f"zstd: the frames hold {size} bytes, expected {expected}")
        target = memoryview(out).cast("B")
        filled = 0
        try:
            with _bundled_decompressor().stream_reader(view, read_across_frames=True) as reader:
                while filled < expected:
                    n = reader.readinto(target[filled:])
                    if not n:
                        break
                    filled += n
                more = reader.read(1)
        except _zstandard().ZstdError as e:
            raise _error(e, expected) from None
        if filled != expected or more:
            held = f"{filled}" if not more else f"more than {expected}"
            raise CodecError(f"zstd: the frames hold {held} bytes, expected {expected}")
        return expected

    def _portable_into(self, view, out, expected):
        """``decode_into`` by numcodecs' zstd, which decodes into ``out``."""
        if _first_content_size(view) != expected:
            size, exact = _scan(view, expected)
            if exact and size != expected:
                raise CodecError(f"zstd: the frames hold {size} bytes, expected {expected}")
        try:
            if expected == 0:
                # numcodecs refuses frames of no content: a frame of one byte
                # after them has it check them whole.
                one = bytearray(1)
                _numcodecs_zstd().decompress(bytes(view) + _one_byte_frame(), one)
                if one != b"\0":
                    raise CodecError("zstd: the frames hold data, expected 0 bytes")
            else:
                # Into ``out`` alone: numcodecs refuses frames declaring more,
                # and frames without a content size must fill it exactly.
                _numcodecs_zstd().decompress(view, out)
        except (RuntimeError, ValueError) as e:
            raise _error(e, expected) from None
        return expected
