"""Codec base classes, and the capabilities the pipeline asks codecs for.

A chain is array->array codecs, then exactly one array->bytes codec, then
bytes->bytes codecs (https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#codecs).
Codec objects hold configuration only, never state shared between calls,
so one codec serves many chunks on many threads at once.

Beyond ``encode`` and ``decode``, a codec may offer capabilities that the
pipeline uses whenever they are there, whatever the codec's name:

- array->bytes: ``stores_raw(dtype)``, the encoding is the chunk's elements
  as they lie in memory (chunks then move between arrays and their stored
  bytes without a chunk array); ``inner_chunks()``, the chunk holds inner
  chunks that can be read and written one by one (sharding).
- bytes->bytes: ``decodes_into``, decoding into a buffer the caller reuses;
  ``native()``, a codec the kernels call without the GIL, so a batch of
  chunks is encoded or decoded in one call; ``decodes_bounded``, see below.

Bounded decoding: stored data is untrusted, so no decode may produce more
than the array's metadata allows. The chain gives each bytes->bytes codec's
``decode`` the most bytes it may produce (``max_size``): the next codec's
input, known exactly for fixed-size data types (``encoded_size``) and
bounded otherwise (``max_encoded_size`` of the codecs inside it, and
``config.max_chunk_bytes`` where nothing smaller is known, as for
variable-length data). A codec with ``decodes_bounded`` refuses data that
would decode to more with a ``CodecError`` before it allocates much more
than ``max_size``; for any other codec the chain checks the size after the
decode, which refuses the chunk but does not bound the memory taken.
"""

from ..errors import CodecError

__all__ = ["Codec", "ArrayToArrayCodec", "ArrayToBytesCodec", "BytesToBytesCodec"]


class Codec:
    """A Zarr v3 codec: a name, a configuration, and encode/decode."""

    #: The spec's codec name, as in ``{"name": ...}``.
    name = None

    @classmethod
    def from_config(cls, configuration):
        """Build the codec from the ``configuration`` object of its JSON form."""
        raise NotImplementedError

    def to_dict(self):
        """The JSON form of the codec, as zarr-python writes it."""
        raise NotImplementedError

    def v2_config(self):
        """This codec as a Zarr v2 ``compressor`` or ``filters`` entry (numcodecs'
        ``{"id": ...}`` form, for the same bytes); ``CodecError`` if v2 has none."""
        raise CodecError(f"Zarr v2 cannot express codec {self.name!r} (it takes numcodecs "
                         f"codecs: zstd, gzip, blosc, crc32c, numcodecs.*, vlen-utf8, "
                         f"vlen-bytes)")

    def evolve(self, dtype, chunk_shape, fill_value=None):
        """This codec adjusted and validated for the chunks it will see.

        ``dtype`` and ``chunk_shape`` describe the codec's input; ``fill_value``
        is the array's (codecs that leave out fill-value chunks need it).
        """
        return self

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(repr(self.to_dict()))

    def __repr__(self):
        config = self.to_dict().get("configuration", {})
        args = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{type(self).__name__}({args})"


class ArrayToArrayCodec(Codec):
    """Maps an array to another array (e.g. ``transpose``)."""

    def resolve_shape(self, shape):
        """The shape of the encoded array for an input of ``shape``."""
        return tuple(shape)

    def resolve_dtype(self, dtype):
        """The data type of the encoded array for an input of ``dtype``
        (after ``evolve``)."""
        return dtype

    def encode(self, array):
        raise NotImplementedError

    def decode(self, array):
        raise NotImplementedError


class ArrayToBytesCodec(Codec):
    """Serialises an array to bytes (e.g. ``bytes``)."""

    def encode(self, array):
        """Bytes (or a bytes-like object) holding ``array``."""
        raise NotImplementedError

    def decode(self, data, shape, dtype):
        """An array of ``shape`` and ``dtype`` from ``data`` (may be read-only)."""
        raise NotImplementedError

    def encoded_size(self, shape, dtype):
        """The encoded size in bytes, or ``None`` if it depends on the data."""
        return None

    def max_encoded_size(self, shape, dtype):
        """The most bytes a chunk of ``shape`` and ``dtype`` may encode to,
        or ``None`` if the data decides (the chain then uses
        ``config.max_chunk_bytes``). Default: ``encoded_size``."""
        return self.encoded_size(shape, dtype)

    def stores_raw(self, dtype):
        """True if a chunk of ``dtype`` is encoded as its elements in C order
        and this machine's byte order, exactly as they lie in memory."""
        return False

    def inner_chunks(self):
        """``None``, or an object that reads and writes this codec's chunks
        inner chunk by inner chunk (see ``codecs.ShardingIndexed``)."""
        return None


class BytesToBytesCodec(Codec):
    """Maps bytes to bytes (compression, checksums)."""

    def encode(self, data):
        """``data`` encoded, as ``bytes``."""
        raise NotImplementedError

    def decode(self, data, max_size=None):
        """``data`` decoded, as a bytes-like object of at most ``max_size``
        bytes (``None``: no bound).

        ``max_size`` is the most the array's metadata allows (exactly the
        size, for fixed-size data types). A codec with ``decodes_bounded``
        raises ``CodecError`` for data that would decode to more, before
        allocating much more than ``max_size``.
        """
        raise NotImplementedError

    def size_after_encode(self, size):
        """The encoded size for ``size`` input bytes, if fixed, else ``None``."""
        return None

    def max_encoded_size(self, size):
        """The most bytes ``encode`` (and any other writer of this codec's
        format, within reason) makes of ``size`` input bytes, or ``None`` if
        unknown. Default: ``size_after_encode``."""
        return self.size_after_encode(size)

    #: True if ``decode(data, max_size)`` refuses data that would decode to
    #: more than ``max_size`` before allocating much more than that.
    decodes_bounded = False

    #: True if the codec has ``decode_into(data, out)``: decode into the
    #: writable buffer ``out``, which ``data`` must fill exactly (else
    #: ``CodecError``, and nothing is written past ``out``); returns ``len(out)``.
    decodes_into = False

    def native(self):
        """This thread's ``_kernels.native.NativeCodec`` doing what this codec
        does, or ``None``; it encodes the same bytes ``encode`` does."""
        return None

    def native_decoder(self, nbytes):
        """``native()`` for decoding chunks of ``nbytes`` in batches, or
        ``None`` where ``decode_into`` decodes such chunks faster one by one."""
        return self.native()
