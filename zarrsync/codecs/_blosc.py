"""The ``blosc`` codec, through numcodecs' Blosc (the one zarr-python uses).

https://zarr-specs.readthedocs.io/en/latest/v3/codecs/blosc/index.html
Chunks are compressed and decompressed by numcodecs (c-blosc 1.x). Stored
data is checked before numcodecs sees it: a blosc 1.x chunk opens with a
16-byte header (https://github.com/Blosc/c-blosc/blob/main/README_CHUNK_FORMAT.rst)
stating its decompressed size (``nbytes``) and its compressed size
(``cbytes``). c-blosc sizes its output from ``nbytes`` and reads ``cbytes``
bytes of input, trusting both, so a chunk is decoded only when ``cbytes``
is exactly its length and ``nbytes`` fits the size the array's metadata
allows (bounded decoding, see ``_base``). numcodecs' own header readers
are private, so the header is read here from the documented format.
"""

import struct

from ..dtypes import is_vlen
from ..errors import CodecError, short_repr
from ._base import BytesToBytesCodec

__all__ = ["Blosc", "decode_blosc", "blosc_header"]

SHUFFLES = ("noshuffle", "shuffle", "bitshuffle")
#: The spec's cnames; numcodecs' build may lack some (``list_compressors()``).
CNAMES = ("lz4", "lz4hc", "blosclz", "zstd", "snappy", "zlib")
HEADER_SIZE = 16
#: c-blosc 1.x writes chunks of format version 2 (and read 1); blosc2's are 3 and up.
_FORMAT_VERSIONS = (1, 2)


def _numcodecs_blosc():
    # Imported on first use: numcodecs takes a while to import.
    from numcodecs import blosc
    return blosc


def blosc_header(data):
    """``(nbytes, blocksize, cbytes)`` from the header of the blosc chunk
    ``data``; ``CodecError`` if it has none."""
    view = memoryview(data).cast("B")
    if len(view) < HEADER_SIZE:
        raise CodecError(f"blosc: a chunk needs a {HEADER_SIZE}-byte header, got "
                         f"{len(view)} bytes")
    version, _, _, _, nbytes, blocksize, cbytes = struct.unpack_from("<BBBBIII", view)
    if version not in _FORMAT_VERSIONS:
        raise CodecError(f"blosc: expected a chunk of format version 1 or 2, got {version}")
    if cbytes != len(view):
        raise CodecError(f"blosc: the header states {cbytes} compressed bytes, the chunk "
                         f"holds {len(view)}")
    return nbytes, blocksize, cbytes


def decode_blosc(data, max_size=None, out=None):
    """The blosc chunk ``data`` decompressed, refused with ``CodecError``
    before decoding if its header is inconsistent or states more than
    ``max_size`` bytes. With ``out``, a writable buffer that the chunk
    must fill exactly, decode into it and return it."""
    nbytes, _, _ = blosc_header(data)
    if max_size is not None and nbytes > max_size:
        raise CodecError(f"blosc: the chunk decodes to {nbytes} bytes, more than the "
                         f"{max_size} bytes expected")
    if out is not None and nbytes != memoryview(out).nbytes:
        raise CodecError(f"blosc: the chunk decodes to {nbytes} bytes, expected "
                         f"{memoryview(out).nbytes}")
    if nbytes == 0:
        # c-blosc refuses to decompress the empty chunks it writes.
        return b"" if out is None else out
    try:
        if out is not None:
            _numcodecs_blosc().decompress(data, out)
            return out
        return _numcodecs_blosc().decompress(data)
    except (RuntimeError, ValueError) as e:
        raise CodecError(f"blosc: the chunk could not be decoded: {e}") from None


def max_blosc_size(size):
    """Most bytes a blosc writer makes of ``size`` bytes: c-blosc stores a
    chunk that does not shrink as it is (16 bytes over); blosc2 has 32."""
    return size + 32


_C_INT_MAX = 2 ** 31 - 1


class Blosc(BytesToBytesCodec):
    """Blosc compression (the spec's ``blosc`` codec).

    Parameters
    ----------
    cname : {"zstd", "lz4", "lz4hc", "blosclz", "zlib", "snappy"}
        The compressor inside blosc; numcodecs' build must have it
        (``numcodecs.blosc.list_compressors()``).
    clevel : int
        0 (no compression) to 9.
    shuffle : {"shuffle", "noshuffle", "bitshuffle"} or None
        The shuffle filter. ``None`` picks, when bound to an array,
        ``"bitshuffle"`` for 1-byte elements and ``"shuffle"`` otherwise
        (as zarr-python does).
    typesize : int or None
        The element size the shuffle works on; ``None`` takes the data
        type's item size when bound to an array (1 for variable-length data).
    blocksize : int
        Bytes per blosc block; 0 lets blosc choose.

    Notes
    -----
    Decoding is bounded (``decodes_bounded``): the header's sizes are
    checked before anything is decompressed. ``decodes_into`` decodes
    straight into the caller's buffer.
    """

    name = "blosc"
    decodes_bounded = True
    decodes_into = True

    def __init__(self, cname="zstd", clevel=5, shuffle="shuffle", typesize=None, blocksize=0):
        if cname not in CNAMES:
            raise CodecError(f"blosc cname must be one of {list(CNAMES)}, got {cname!r}")
        available = _numcodecs_blosc().list_compressors()
        if cname not in available:
            raise CodecError(f"blosc cname {cname!r} is not in this numcodecs build "
                             f"(it has {available})")
        if isinstance(clevel, bool) or not isinstance(clevel, int) or not 0 <= clevel <= 9:
            raise CodecError(f"blosc clevel must be an integer in 0..9, got {clevel!r}")
        if shuffle is not None and shuffle not in SHUFFLES:
            raise CodecError(f"blosc shuffle must be one of {list(SHUFFLES)}, got {shuffle!r}")
        # c-blosc takes both as a C int.
        if typesize is not None and (isinstance(typesize, bool) or not isinstance(typesize, int)
                                     or not 1 <= typesize <= _C_INT_MAX):
            raise CodecError(f"blosc typesize must be an integer in 1..{_C_INT_MAX}, "
                             f"got {short_repr(typesize)}")
        if (isinstance(blocksize, bool) or not isinstance(blocksize, int)
                or not 0 <= blocksize <= _C_INT_MAX):
            raise CodecError(f"blosc blocksize must be an integer in 0..{_C_INT_MAX}, got "
                             f"{short_repr(blocksize)}")
        self.cname, self.clevel, self.shuffle = cname, clevel, shuffle
        self.typesize, self.blocksize = typesize, blocksize
        self._codec = None

    @classmethod
    def from_config(cls, configuration):
        configuration = dict(configuration or {})
        extra = set(configuration) - {"cname", "clevel", "shuffle", "typesize", "blocksize"}
        if extra:
            raise CodecError(f"unknown blosc configuration fields {sorted(extra)}; expected "
                             f"cname, clevel, shuffle, typesize, blocksize")
        # Absent fields take zarr-python's defaults (shuffle and typesize from the data type).
        return cls(cname=configuration.get("cname", "zstd"),
                   clevel=configuration.get("clevel", 5),
                   shuffle=configuration.get("shuffle"),
                   typesize=configuration.get("typesize"),
                   blocksize=configuration.get("blocksize", 0))

    def to_dict(self):
        # Key order as zarr-python writes it.
        config = {} if self.typesize is None else {"typesize": self.typesize}
        config.update(cname=self.cname, clevel=self.clevel)
        if self.shuffle is not None:
            config["shuffle"] = self.shuffle
        config["blocksize"] = self.blocksize
        return {"name": "blosc", "configuration": config}

    def v2_config(self):
        # numcodecs takes the shuffle as its index and the typesize from the data.
        return {"id": "blosc", "cname": self.cname, "clevel": self.clevel,
                "shuffle": SHUFFLES.index(self.shuffle or "shuffle"),
                "blocksize": self.blocksize}

    def evolve(self, dtype, chunk_shape, fill_value=None):
        if self.typesize is not None and self.shuffle is not None:
            return self
        itemsize = 1 if is_vlen(dtype) else dtype.itemsize
        shuffle = self.shuffle
        if shuffle is None:
            shuffle = "bitshuffle" if itemsize == 1 else "shuffle"
        return Blosc(self.cname, self.clevel, shuffle,
                     itemsize if self.typesize is None else self.typesize, self.blocksize)

    def _numcodecs(self):
        # Built on first use and then shared: numcodecs' Blosc holds no state between calls.
        if self._codec is None:
            self._codec = _numcodecs_blosc().Blosc(
                cname=self.cname, clevel=self.clevel,
                shuffle=SHUFFLES.index(self.shuffle or "shuffle"),
                blocksize=self.blocksize, typesize=self.typesize or 1)
        return self._codec

    def encode(self, data):
        try:
            return bytes(self._numcodecs().encode(data))
        except (ValueError, OverflowError, RuntimeError, TypeError) as e:
            raise CodecError(f"blosc {short_repr(self.to_dict()['configuration'])} could not "
                             f"encode: {e}") from None

    def decode(self, data, max_size=None):
        return decode_blosc(data, max_size)

    def decode_into(self, data, out):
        decode_blosc(data, None, out)
        return memoryview(out).nbytes

    def max_encoded_size(self, size):
        return max_blosc_size(size)
