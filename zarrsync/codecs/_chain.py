"""Codec base classes and the codec chain of one array.

A chain is array->array codecs, then exactly one array->bytes codec, then
bytes->bytes codecs (https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#codecs).
Codec objects hold configuration only, never state shared between calls, so
one chain can encode and decode many chunks from many threads at once.
"""

import threading

import numpy as np

from .._kernels import transform
from ..errors import (ArrayToBytesInvariant, CodecError, InvalidCodecOrdering,
                      ZarrSyncError)

__all__ = ["Codec", "ArrayToArrayCodec", "ArrayToBytesCodec", "BytesToBytesCodec",
           "CodecChain"]


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


class BytesToBytesCodec(Codec):
    """Maps bytes to bytes (compression, checksums)."""

    def encode(self, data):
        raise NotImplementedError

    def decode(self, data, size_hint=None):
        """Decode ``data``; ``size_hint`` is the decoded size when known."""
        raise NotImplementedError

    def size_after_encode(self, size):
        """The encoded size for ``size`` input bytes, if fixed, else ``None``."""
        return None

    def thread_decoder(self):
        """This thread's decoder that runs without the GIL, for
        ``ChunkPlan.gather_decoded_many`` (an object with ``raw_decoder()``),
        or ``None`` where this codec has none."""
        return None

    #: True if ``encode_many`` works here.
    encodes_many = False

    def encode_many(self, data, segments, threads):
        """Encode the pieces of ``data`` at ``segments`` (an ``(n, 2)`` uint64
        array of offset, length) in one call, on up to ``threads`` threads;
        a list of ``n`` ``bytes``. Only where ``encodes_many``."""
        raise NotImplementedError


def check_chain_order(codecs):
    """Raise the API errors for a chain that is not array->array*, array->bytes, bytes->bytes*."""
    n_array_bytes = sum(isinstance(c, ArrayToBytesCodec) for c in codecs)
    if n_array_bytes != 1:
        raise ArrayToBytesInvariant(
            f"a codec chain needs exactly one array->bytes codec, got {n_array_bytes} "
            f"in {[c.name for c in codecs]}")
    phase = 0  # 0: array->array, 1: after array->bytes
    for c in codecs:
        if isinstance(c, ArrayToArrayCodec):
            if phase != 0:
                raise InvalidCodecOrdering(
                    f"array->array codec {c.name!r} after the array->bytes codec")
        elif isinstance(c, ArrayToBytesCodec):
            phase = 1
        elif isinstance(c, BytesToBytesCodec):
            if phase != 1:
                raise InvalidCodecOrdering(
                    f"bytes->bytes codec {c.name!r} before the array->bytes codec")
        else:
            raise CodecError(f"not a codec: {c!r}")


class CodecChain:
    """The codecs of one array, resolved for its data type and chunk shape.

    Parameters
    ----------
    codecs : sequence of Codec
    dtype : numpy.dtype
    chunk_shape : tuple of int
    fill_value : scalar, optional
        The array's fill value (``None``: zero).
    """

    def __init__(self, codecs, dtype, chunk_shape, fill_value=None):
        codecs = list(codecs)
        check_chain_order(codecs)
        self.dtype = np.dtype(dtype)
        self.chunk_shape = tuple(chunk_shape)
        shape = self.chunk_shape
        evolved = []
        array_array = []
        for c in codecs:
            c = c.evolve(self.dtype, shape, fill_value)
            evolved.append(c)
            if isinstance(c, ArrayToArrayCodec):
                array_array.append(c)
                shape = c.resolve_shape(shape)
            elif isinstance(c, ArrayToBytesCodec):
                self.array_bytes = c
        self.codecs = tuple(evolved)
        self.array_array = tuple(array_array)
        self.bytes_bytes = tuple(c for c in evolved if isinstance(c, BytesToBytesCodec))
        #: The shape the array->bytes codec sees (after every array->array codec).
        self.encoded_shape = shape
        # The input size of each bytes->bytes codec's decode, where known.
        sizes = [self.array_bytes.encoded_size(shape, self.dtype)]
        for c in self.bytes_bytes[:-1]:
            sizes.append(None if sizes[-1] is None else c.size_after_encode(sizes[-1]))
        self._decode_sizes = tuple(reversed(sizes))
        #: True when a chunk's stored form, bytes->bytes codecs undone, is its
        #: elements in C order and this machine's byte order: chunks then move
        #: between the array and ``bytes`` without an intermediate chunk array.
        self.native_bytes = (not array_array and self.dtype.kind not in "OT"
                             and getattr(self.array_bytes, "native_for", None) is not None
                             and self.array_bytes.native_for(self.dtype))
        self._local = threading.local()

    def encode(self, chunk):
        """Encode one chunk (an array of the chunk shape) to ``bytes``."""
        for c in self.array_array:
            chunk = c.encode(chunk)
        data = self.array_bytes.encode(chunk)
        for c in self.bytes_bytes:
            data = c.encode(data)
        return data if isinstance(data, bytes) else bytes(data)

    def decode(self, data, key=""):
        """Decode the stored ``data`` of chunk ``key`` to an array of the chunk shape.

        The result may be a read-only or strided view; copy it before
        modifying. Any failure raises a ``CodecError`` naming ``key``.
        """
        try:
            for c, size in zip(reversed(self.bytes_bytes), self._decode_sizes):
                data = c.decode(data, size)
            chunk = self.array_bytes.decode(data, self.encoded_shape, self.dtype)
            for c in reversed(self.array_array):
                chunk = c.decode(chunk)
        except Exception as e:
            raise _decode_error(e, key) from e
        return chunk

    def encode_native(self, raw):
        """Encode a chunk given as its ``bytes`` in C order (``native_bytes`` chains)."""
        for c in self.bytes_bytes:
            raw = c.encode(raw)
        return raw if isinstance(raw, bytes) else bytes(raw)

    def encode_covered(self, plan, i, value, fill_bytes):
        """Chunk ``i`` of ``plan`` encoded straight from ``value``, or ``None``
        when all of it has the bits of ``fill_bytes`` (``native_bytes`` chains;
        a chunk ``plan.covers_inner_chunk(i)``).

        No chunk array: the selection is copied into a new ``bytes`` that is
        the stored value (uncompressed), or into this thread's scratch buffer
        that the compressor reads.
        """
        raw = plan.scatter_to_bytes(i, value, self.scratch() if self.bytes_bytes else None)
        return self._encode_unless_fill(raw, fill_bytes)

    def encode_covered_group(self, plan, indices, value, fill_bytes):
        """``encode_covered`` for a few chunks ``indices`` of ``plan`` next to
        each other in ``value``: a list holding each one's encoding, or
        ``None`` where it is all fill.

        The chunks are gathered together into this thread's group buffer,
        their rows walked side by side (``plan.scatter_many_to_bytes``): the
        value is read in runs as long as the group is wide, instead of one
        chunk's short runs far apart. Then each is encoded from its place
        in that buffer.
        """
        nbytes = self._decode_sizes[-1]
        need = len(indices) * nbytes
        with memoryview(self._thread_buffer("group", need)) as view:
            plan.scatter_many_to_bytes(indices, value, view[:need])
            return [self._encode_unless_fill(view[k * nbytes:(k + 1) * nbytes], fill_bytes)
                    for k in range(len(indices))]

    def _encode_unless_fill(self, raw, fill_bytes):
        # ``encode_native(raw)``, or None if ``raw`` has the bits of ``fill_bytes`` throughout.
        return None if transform.all_equal(raw, fill_bytes) else self.encode_native(raw)

    def encode_covered_many(self, plan, indices, value, fill_bytes, threads):
        """``encode_covered`` for the chunks ``indices`` of ``plan`` at once:
        a list holding each one's encoding, or ``None`` where it is all fill.

        For many small chunks: one copy of all of them into one buffer, one
        fill check, and one call that compresses them on ``threads`` threads
        without the GIL, instead of a Python round trip per chunk. Only for
        ``native_bytes`` chains whose single bytes->bytes codec ``encodes_many``.
        """
        codec, = self.bytes_bytes
        nbytes = self._decode_sizes[-1]
        raw = bytearray(len(indices) * nbytes)
        plan.scatter_many_to_bytes(indices, value, raw)
        rows = np.frombuffer(raw, dtype=np.uint8).reshape(len(indices), nbytes)
        fill_row = np.resize(np.frombuffer(fill_bytes, dtype=np.uint8), nbytes)
        stored = np.flatnonzero((rows != fill_row).any(axis=1))
        out = [None] * len(indices)
        if len(stored):
            segments = np.empty((len(stored), 2), dtype=np.uint64)
            segments[:, 0] = stored * nbytes
            segments[:, 1] = nbytes
            for k, frame in zip(stored.tolist(), codec.encode_many(raw, segments, threads)):
                out[k] = frame
        return out

    @property
    def encodes_many(self):
        """True if ``encode_covered_many`` applies to this chain."""
        return (self.native_bytes and len(self.bytes_bytes) == 1
                and self.bytes_bytes[0].encodes_many)

    def gather_stored(self, plan, i, data, out, key=""):
        """Decode chunk ``i``'s stored ``data`` and copy its selected elements
        into ``out`` (``plan.gather``); errors as ``decode``."""
        if self.native_bytes:
            plan.gather_raw(i, self._decode_native_reused(data, key), out)
        else:
            plan.gather(i, self.decode(data, key), out)

    def gather_stored_many(self, plan, indices, datas, out, name_of):
        """``gather_stored`` of chunk ``indices[k]`` from its stored ``datas[k]``
        for every ``k``; ``name_of(k)`` is its key for errors.

        A ``native_bytes`` chain of one codec with a ``thread_decoder``
        decodes them all in one call without the GIL (a batch of a shard's
        inner chunks took one GIL hand-off per chunk otherwise). A chunk that
        decoder refuses goes through ``gather_stored``, which decodes it
        another way or raises, and the batch goes on after it.
        """
        decoder = (self.bytes_bytes[0].thread_decoder()
                   if self.native_bytes and len(self.bytes_bytes) == 1 else None)
        if decoder is None:
            for k, (i, data) in enumerate(zip(indices, datas)):
                self.gather_stored(plan, i, data, out, name_of(k))
            return
        indices = np.asarray(indices, dtype=np.int64)
        buf = self._thread_buffer("decoded")
        start = 0
        while start < len(datas):
            refused = plan.gather_decoded_many(indices, datas, start, out, decoder, buf)
            if refused < 0:
                return
            self.gather_stored(plan, int(indices[refused]), datas[refused], out,
                               name_of(refused))
            start = refused + 1

    def scratch(self):
        """This thread's reusable buffer of one decoded chunk's size: where a
        whole chunk is gathered before compression (a fresh buffer per chunk
        measured 6-60% slower on two threads)."""
        return self._thread_buffer("scratch")

    def _thread_buffer(self, name, nbytes=None):
        # This thread's bytearray ``name`` of at least ``nbytes`` (default: one
        # decoded chunk's size), made on first use and replaced when too small.
        nbytes = self._decode_sizes[-1] if nbytes is None else nbytes
        buf = getattr(self._local, name, None)
        if buf is None or len(buf) < nbytes:
            buf = bytearray(nbytes)
            setattr(self._local, name, buf)
        return buf

    def _check_decoded_size(self, n):
        expected = self._decode_sizes[-1]
        if n != expected:
            raise CodecError(f"expected {expected} bytes for shape {self.chunk_shape} "
                             f"of {self.dtype.name}, got {n}")

    def _decode_native_reused(self, data, key):
        """``decode_native`` into this thread's reused buffer where the last
        codec to undo can write into one (``decodes_into``: zstd through
        libzstd, gzip through libdeflate), else ``decode_native``. The result
        is valid until this thread decodes again."""
        codecs = self.bytes_bytes
        if not codecs or not getattr(codecs[0], "decodes_into", False):
            return self.decode_native(data, key)
        buf = self._thread_buffer("decoded")
        try:
            for c, size in zip(reversed(codecs[1:]), self._decode_sizes):
                data = c.decode(data, size)
            self._check_decoded_size(codecs[0].decode_into(data, buf))
        except Exception as e:
            raise _decode_error(e, key) from e
        return buf

    def decode_native(self, data, key=""):
        """The chunk's elements as bytes in C order (``native_bytes`` chains);
        errors as ``decode``."""
        try:
            for c, size in zip(reversed(self.bytes_bytes), self._decode_sizes):
                data = c.decode(data, size)
            self._check_decoded_size(len(data))
        except Exception as e:
            raise _decode_error(e, key) from e
        return data

    def to_dicts(self):
        return [c.to_dict() for c in self.codecs]

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_local"]  # scratch buffers belong to this process's threads
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()


def _decode_error(e, key):
    """The error to raise for ``e`` while decoding chunk ``key``: zarrsync's own
    errors gain the key, a codec library's error (corrupt data) becomes ``CodecError``."""
    if isinstance(e, ZarrSyncError):
        return type(e)(f"chunk {key!r}: {e}") if key and key not in str(e) else e
    return CodecError(f"chunk {key!r} could not be decoded: {e}")
