"""The ``transpose`` codec: permute the axes of a chunk.

https://zarr-specs.readthedocs.io/en/latest/v3/codecs/transpose/index.html
Encoding and decoding are views (no copy); the bytes codec (or the chunk
copy kernels) move the elements once, in the permuted order.

Read leniently: documents that zarrita and early zarr-python v3 wrote may
give the order as ``"C"`` (the identity) or ``"F"`` (the axes reversed);
they are read as that permutation and written back as the explicit list,
the only form the spec has.
"""

from ..errors import InvalidTransposeOrder
from ._base import ArrayToArrayCodec


class Transpose(ArrayToArrayCodec):
    """Permute chunk axes: encoded axis ``i`` is input axis ``order[i]``.

    Parameters
    ----------
    order : sequence of int
        A permutation of ``range(ndim)``.
    """

    name = "transpose"

    def __init__(self, order):
        if isinstance(order, (str, bytes)) or not hasattr(order, "__iter__"):
            raise InvalidTransposeOrder(
                f"transpose order must be a list of integers, got {order!r}")
        order = tuple(order)
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in order):
            raise InvalidTransposeOrder(f"transpose order must hold integers, got {order!r}")
        if sorted(order) != list(range(len(order))):
            raise InvalidTransposeOrder(
                f"transpose order {list(order)} is not a permutation of 0..{len(order) - 1}")
        self.order = order
        self.inverse = tuple(order.index(i) for i in range(len(order)))

    @classmethod
    def from_config(cls, configuration):
        configuration = dict(configuration or {})
        if "order" not in configuration:
            raise InvalidTransposeOrder(f"transpose codec configuration needs an 'order', got "
                                        f"the fields {sorted(configuration)}")
        order = configuration.pop("order")
        if configuration:
            raise InvalidTransposeOrder(
                f"unknown transpose configuration fields {sorted(configuration)}; expected "
                f"only order")
        if isinstance(order, str) and order in ("C", "F"):
            return _MemoryOrderTranspose(order)
        return cls(order)

    def to_dict(self):
        return {"name": "transpose", "configuration": {"order": list(self.order)}}

    def evolve(self, dtype, chunk_shape, fill_value=None):
        if len(self.order) != len(chunk_shape):
            raise InvalidTransposeOrder(
                f"transpose order {list(self.order)} has {len(self.order)} axes, "
                f"the chunk has {len(chunk_shape)}")
        return self

    def resolve_shape(self, shape):
        return tuple(shape[i] for i in self.order)

    def encode(self, array):
        return array.transpose(self.order)

    def decode(self, array):
        return array.transpose(self.inverse)


class _MemoryOrderTranspose(Transpose):
    """A transpose whose order was read as ``"C"`` or ``"F"``: its permutation
    depends on the chunk's rank, so ``evolve`` (which knows it) gives the
    ``Transpose`` with the explicit order, the one the chain keeps and writes."""

    def __init__(self, memory_order):
        self.memory_order = memory_order
        self.order = self.inverse = None

    def to_dict(self):
        return {"name": "transpose", "configuration": {"order": self.memory_order}}

    def evolve(self, dtype, chunk_shape, fill_value=None):
        axes = range(len(chunk_shape))
        return Transpose(axes if self.memory_order == "C" else reversed(axes))

    def resolve_shape(self, shape):
        return self.evolve(None, shape).resolve_shape(shape)
