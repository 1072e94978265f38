"""The codec chain of one array: its codecs resolved for the chunks they see.

https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#codecs
The chain sums up what its codecs can do (``stores_raw``, ``inner_chunks``,
``native``), and the pipeline picks its steps from that.

The chain also bounds every decode (see ``_base``): each bytes->bytes codec
is given the most bytes its output may hold, from the raw form's size up
through the codecs inside it, and no stage may produce more.
"""

import numpy as np

from .. import config
from ..dtypes import is_vlen
from ..errors import (ArrayToBytesInvariant, CodecError, InvalidCodecOrdering, ZarrSyncError,
                      short_repr)
from ._base import ArrayToArrayCodec, ArrayToBytesCodec, BytesToBytesCodec

__all__ = ["CodecChain", "check_chain_order"]


def check_chain_order(codecs):
    """Raise the API errors for a chain that is not array->array*, array->bytes, bytes->bytes*."""
    n_array_bytes = sum(isinstance(c, ArrayToBytesCodec) for c in codecs)
    if n_array_bytes != 1:
        raise ArrayToBytesInvariant(
            f"a codec chain needs exactly one array->bytes codec, got {n_array_bytes} "
            f"in {[getattr(c, 'name', c) for c in codecs]}")
    phase = 0  # 0: array->array, 1: after array->bytes
    for c in codecs:
        if isinstance(c, ArrayToArrayCodec):
            if phase != 0:
                raise InvalidCodecOrdering(
                    f"array->array codec {c.name!r} after the array->bytes codec; expected "
                    f"the order array->array*, array->bytes, bytes->bytes*")
        elif isinstance(c, ArrayToBytesCodec):
            phase = 1
        elif isinstance(c, BytesToBytesCodec):
            if phase != 1:
                raise InvalidCodecOrdering(
                    f"bytes->bytes codec {c.name!r} before the array->bytes codec; expected "
                    f"the order array->array*, array->bytes, bytes->bytes*")
        else:
            raise CodecError(f"expected a codec object (zarrsync.codecs) or its JSON dict, "
                             f"got {short_repr(c)}")


class CodecChain:
    """The codecs of one array, resolved for its data type and chunk shape.

    Parameters
    ----------
    codecs : sequence of Codec
    dtype : numpy.dtype
    chunk_shape : tuple of int
    fill_value : scalar, optional
        The array's fill value (``None``: zero).

    Attributes
    ----------
    raw_nbytes : int or None
        The size of a chunk's raw form (what the array->bytes codec makes), if fixed.
        Otherwise (variable-length data, sharding) ``limits()`` bounds it.
    stores_raw : bool
        A chunk's raw form is its elements in C order and this machine's byte
        order: chunks move between arrays and stored bytes without a chunk array.
    inner_chunks : object or None
        The array->bytes codec's ``inner_chunks()`` when it is the only codec
        (its chunks can then be read and written in parts).
    decodes_into : bool
        ``decode_raw`` decodes into the buffer it is given (no new buffer).
    """

    def __init__(self, codecs, dtype, chunk_shape, fill_value=None):
        codecs = list(codecs)
        check_chain_order(codecs)
        self.dtype = np.dtype(dtype)
        self.chunk_shape = tuple(chunk_shape)
        shape, dtype = self.chunk_shape, self.dtype
        evolved = []
        for c in codecs:
            # Each codec sees what the codecs before it make (filters may change both).
            c = c.evolve(dtype, shape, fill_value)
            evolved.append(c)
            if isinstance(c, ArrayToArrayCodec):
                shape, dtype = c.resolve_shape(shape), np.dtype(c.resolve_dtype(dtype))
            elif isinstance(c, ArrayToBytesCodec):
                self.array_bytes = c
        self.codecs = tuple(evolved)
        self.array_array = tuple(c for c in evolved if isinstance(c, ArrayToArrayCodec))
        self.bytes_bytes = tuple(c for c in evolved if isinstance(c, BytesToBytesCodec))
        #: The shape the array->bytes codec sees (after every array->array codec).
        self.encoded_shape = shape
        #: The data type the array->bytes codec sees.
        self.encoded_dtype = dtype
        self.raw_nbytes = self.array_bytes.encoded_size(shape, dtype)
        # Fixed sizes give limits that never change; others follow the config.
        self._static_limits = self._compute_limits(None)
        self.stores_raw = (not self.array_array and not is_vlen(self.dtype)
                           and self.array_bytes.stores_raw(self.dtype))
        # Partial access works in the array's own coordinates and byte ranges:
        # no codec may transform the chunk before or after.
        self.inner_chunks = (None if self.array_array or self.bytes_bytes
                             else self.array_bytes.inner_chunks())
        #: ``decode_raw`` leaves a chunk's raw form in the ``out`` it is given.
        self.decodes_into = bool(self.bytes_bytes) and self.bytes_bytes[0].decodes_into

    def _compute_limits(self, fallback):
        # ``limits()`` with ``fallback`` where no codec bounds a size;
        # ``None`` if one is needed and ``fallback`` is None.
        raw = self.raw_nbytes
        if raw is None and fallback is not None:
            raw = self.array_bytes.max_encoded_size(self.encoded_shape, self.encoded_dtype)
            raw = fallback if raw is None else raw
        if raw is None:
            return None
        sizes = [raw]
        for c in self.bytes_bytes:
            size = c.max_encoded_size(sizes[-1])
            if size is None:
                if fallback is None:
                    return None
                size = max(sizes[-1], fallback)
            sizes.append(size)
        return sizes[0], tuple(sizes[:-1]), sizes[-1]

    def limits(self):
        """``(raw, decoded, stored)``: the most bytes a chunk's raw form may
        hold (exactly ``raw_nbytes`` when fixed), the most each bytes->bytes
        codec's decode may produce (a tuple, innermost codec first), and the
        most a stored chunk may hold.

        Sizes the codecs do not bound (variable-length data, codecs without
        ``max_encoded_size``) are bounded by ``config.max_chunk_bytes``.
        """
        if self._static_limits is not None:
            return self._static_limits
        return self._compute_limits(config.get("max_chunk_bytes"))

    def encode(self, chunk):
        """Encode one chunk (an array of the chunk shape) to ``bytes``."""
        for c in self.array_array:
            chunk = c.encode(chunk)
        data = self.array_bytes.encode(chunk)
        return self.encode_raw(data)

    def decode(self, data, key=""):
        """Decode the stored ``data`` of chunk ``key`` to an array of the chunk shape.

        The result may be a read-only or strided view; copy it before
        modifying. Any failure raises a ``CodecError`` naming ``key``.
        """
        try:
            raw, decoded, _ = self.limits()
            data = _decode_bounded(self.bytes_bytes, decoded, data)
            if self.raw_nbytes is None and len(data) > raw:
                # Fixed sizes are checked exactly by the array->bytes codec.
                setting = " (config max_chunk_bytes)" if is_vlen(self.dtype) else ""
                raise CodecError(f"{self.array_bytes.name}: the chunk holds {len(data)} bytes, "
                                 f"more than the {raw} allowed{setting}")
            chunk = self.array_bytes.decode(data, self.encoded_shape, self.encoded_dtype)
            for c in reversed(self.array_array):
                chunk = c.decode(chunk)
        except Exception as e:
            raise decode_error(e, key) from e
        return chunk

    def encode_raw(self, raw):
        """The bytes->bytes codecs applied to ``raw``, a chunk's raw form: its
        stored ``bytes``."""
        for c in self.bytes_bytes:
            raw = c.encode(raw)
        return raw if isinstance(raw, bytes) else bytes(raw)

    def decode_raw(self, data, out, key=""):
        """The raw form of the chunk stored as ``data``, checked to be
        ``raw_nbytes`` long: ``data`` itself without bytes->bytes codecs,
        else decoded into ``out`` (a writable buffer of at least
        ``raw_nbytes``) where the innermost codec can, or a new buffer.
        Errors as ``decode``."""
        codecs = self.bytes_bytes
        try:
            if codecs:
                data = _decode_bounded(codecs[1:], self.limits()[1][1:], data)
                if codecs[0].decodes_into:
                    target = memoryview(out)[:self.raw_nbytes]
                    codecs[0].decode_into(data, target)
                    data = target
                else:
                    data = codecs[0].decode(data, self.raw_nbytes)
            if len(data) != self.raw_nbytes:
                raise CodecError(f"expected {self.raw_nbytes} bytes for shape "
                                 f"{self.chunk_shape} of {self.dtype.name}, got {len(data)}")
        except Exception as e:
            raise decode_error(e, key) from e
        return data

    def native(self):
        """This thread's native codec for the whole bytes->bytes part (one
        codec with a ``native()``), or ``None``."""
        if len(self.bytes_bytes) != 1:
            return None
        return self.bytes_bytes[0].native()

    def native_decoder(self, nbytes):
        """``native()`` for decoding chunks whose raw form holds ``nbytes``,
        or ``None`` where the codec decodes them better one at a time."""
        if len(self.bytes_bytes) != 1:
            return None
        return self.bytes_bytes[0].native_decoder(nbytes)

    def to_dicts(self):
        return [c.to_dict() for c in self.codecs]


def _decode_bounded(codecs, limits, data):
    """``data`` decoded by the bytes->bytes ``codecs`` (outermost last), each
    given its limit; a codec that cannot bound its output is checked after."""
    for c, limit in zip(reversed(codecs), reversed(limits)):
        data = c.decode(data, limit)
        n = memoryview(data).nbytes
        if n > limit:
            raise CodecError(f"{c.name}: the data decoded to {n} bytes, more than the "
                             f"{limit} bytes expected")
    return data


def decode_error(e, key):
    """The error to raise for ``e`` while decoding chunk ``key``: zarrsync's own
    errors gain the key, a codec library's error (corrupt data) becomes ``CodecError``."""
    if isinstance(e, ZarrSyncError):
        return type(e)(f"chunk {key!r}: {e}") if key and key not in str(e) else e
    return CodecError(f"chunk {key!r} could not be decoded: {e}")
