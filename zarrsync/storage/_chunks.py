"""``stored_chunks``: which chunks of an array the store holds, and their sizes.

An array's chunk keys are found by listing the keys under its prefix and
keeping those its chunk key encoding decodes to coordinates inside the chunk
grid, so its metadata documents (``zarr.json``, v2 ``.zarray``/``.zattrs``)
and the keys of other nodes never count: this holds for the root array too,
whose chunk keys share the store's root with everything else.
"""

from collections import namedtuple

from ..errors import NodeInvariant
from ..nodes import ArrayNode

__all__ = ["StoredChunk", "stored_chunks"]

#: One stored chunk (a shard, for a sharded array) of an array.
StoredChunk = namedtuple("StoredChunk", ["chunk_coords", "key", "nbytes"])
StoredChunk.__doc__ = """One chunk object of an array in its store.

Attributes
----------
chunk_coords : tuple of int
    The chunk's coordinates in the array's chunk grid.
key : str
    Its store key, such as ``"grp/arr/c/0/1"``.
nbytes : int
    The size of the stored (encoded) value in bytes.
"""


def stored_chunks(store, node):
    """The chunks of array ``node`` that ``store`` holds, sorted by ``chunk_coords``.

    A list of ``StoredChunk``. Sizes come from ``store.list_prefix_sizes``
    (an object store's listing gives them; elsewhere ``getsize``).
    """
    if not isinstance(node, ArrayNode):
        raise NodeInvariant(f"expected an ArrayNode, got {type(node).__name__}")
    meta = store.array_metadata(node)   # KeyNotFound if absent
    encoding = meta.key_encoding
    prefix = node.key + "/" if node.key else ""
    ndim = meta.ndim
    grid = [-(-s // c) for s, c in zip(meta.shape, meta.chunks)]
    # Every key of the "default" encoding starts with "c"; listing from there
    # skips the documents (and, at the store's root, other nodes' folders).
    listed = prefix + "c" if encoding.name == "default" else prefix
    found = []
    for key, nbytes in store.list_prefix_sizes(listed):
        coords = encoding.coords(prefix, key, ndim)
        if coords is None or any(c >= n for c, n in zip(coords, grid)):
            continue  # a document, another node's key, or a key outside the grid
        found.append(StoredChunk(coords, key, nbytes))
    return sorted(found)
