"""The metadata documents of arrays and groups: Zarr v3 ``zarr.json``, and
Zarr v2 ``.zarray``, ``.zgroup``, ``.zattrs`` and ``.zmetadata``.

Parsing validates every field and raises ``ParseError`` naming it; writing
produces the same JSON as zarr-python for the same array (key order, fill
value encodings, codec forms), so the documents interoperate. Both formats
give the same ``ArrayMetadata`` (``zarr_format`` tells which): a v2 array's
fields are translated to a codec chain (see ``_zarr2``).
Spec: https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#metadata
and https://zarr-specs.readthedocs.io/en/latest/v2/v2.0.html
"""

import json
import unicodedata

import numpy as np

from . import _zarr2
from . import codecs as codecs_mod
from . import config
from .dtypes import (coerce_fill_value, data_type_of, dtype_name, encode_fill_value,
                     parse_dtype, parse_fill_value)
from .errors import CodecError, ParseError, short_repr

__all__ = ["ArrayMetadata", "GroupMetadata", "ChunkKeyEncoding", "node_type_of",
           "parse_dtype", "parse_fill_value", "encode_fill_value"]

_ARRAY_KEYS = ("zarr_format", "node_type", "shape", "data_type", "chunk_grid",
               "chunk_key_encoding", "fill_value", "codecs", "attributes",
               "dimension_names", "storage_transformers")
_GROUP_KEYS = ("zarr_format", "node_type", "attributes", "consolidated_metadata")
_CONSOLIDATED_KEYS = ("kind", "must_understand", "metadata")

#: Deepest nesting of JSON arrays and objects a document may have. Real
#: documents need a few levels (attributes perhaps a dozen; a group's
#: consolidated metadata adds three around each node document it holds); the
#: bound keeps every walk over a document far from Python's recursion limit.
MAX_JSON_DEPTH = 128
#: Most dimensions an array may have (NumPy 2's limit).
MAX_RANK = 64
_INT64_MAX = 2 ** 63 - 1


# -- helpers ------------------------------------------------------------------------

def _require(doc, key, where):
    if key not in doc:
        raise ParseError(f"{where}: missing required field {key!r}")
    return doc[key]



def _int_list(value, field, minimum):
    if not isinstance(value, (list, tuple)):
        raise ParseError(f"{field}: expected a list of integers, got {short_repr(value)}")
    if len(value) > MAX_RANK:
        raise ParseError(f"{field}: expected at most {MAX_RANK} dimensions, got {len(value)}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
            raise ParseError(f"{field}: expected integers >= {minimum}, "
                             f"got {short_repr(list(value))}")
        if v > _INT64_MAX:
            raise ParseError(f"{field}: {v} does not fit in int64")
        out.append(int(v))
    return tuple(out)


def _check_grid(shape, chunks):
    """``ParseError`` if the chunk grid reaches past int64: the last chunk of
    an axis ends at most one chunk past the shape, and the kernels compute that end."""
    for d, (n, c) in enumerate(zip(shape, chunks)):
        if n + c > _INT64_MAX:
            raise ParseError(f"shape: {n} on axis {d} with chunks of {c} makes a chunk grid "
                             f"that ends past int64")


def _check_extent(values, itemsize, field):
    """``ParseError`` if ``values`` (a shape) counts more elements, or bytes
    of ``itemsize`` each, than int64 can."""
    count = 1
    for v in values:
        count *= v
    if count * itemsize > _INT64_MAX:
        raise ParseError(f"{field}: {list(values)} holds {count} elements of {itemsize} "
                         f"bytes, more than int64 can count")
    return count * itemsize


def _check_decoded_sizes(chain, field):
    """``ParseError`` if a read must decode more than ``max_chunk_bytes`` at
    once: a chunk, or for shards read in parts (which may be larger), their
    index and their inner chunks."""
    limit = config.get("max_chunk_bytes")
    while True:
        nbytes = _check_extent(chain.chunk_shape, chain.dtype.itemsize, field)
        inner = chain.inner_chunks
        if inner is None:
            if nbytes > limit:
                raise ParseError(f"{field}: chunks of {list(chain.chunk_shape)} hold {nbytes} "
                                 f"bytes decoded, more than max_chunk_bytes ({limit}; "
                                 f"see zarrsync.config)")
            return
        if inner.index_size > limit:
            raise ParseError(f"{field}: the shard index of {inner.n_inner} inner chunks "
                             f"takes {inner.index_size} bytes, more than max_chunk_bytes "
                             f"({limit}; see zarrsync.config)")
        chain, field = inner.inner, f"{field} (sharding_indexed.chunk_shape)"


def _check_header(doc, node_type, where):
    if _require(doc, "zarr_format", where) != 3:
        raise ParseError(f"{where}: zarr_format must be 3, got {short_repr(doc['zarr_format'])}")
    if _require(doc, "node_type", where) != node_type:
        raise ParseError(f"{where}: node_type must be {node_type!r}, "
                         f"got {short_repr(doc['node_type'])}")


def _check_extra(doc, known, where):
    """Unknown fields are allowed only as objects with ``"must_understand": false``."""
    extra = {}
    for key, value in doc.items():
        if key in known:
            continue
        if isinstance(value, dict) and value.get("must_understand") is False:
            extra[key] = value
        else:
            raise ParseError(f"{where}: unknown field {key!r} (not marked must_understand: false)")
    return extra


def _check_attributes(attributes, where):
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise ParseError(f"{where}: attributes must be a JSON object, got {type(attributes).__name__}")
    try:
        json.dumps(attributes, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise ParseError(f"{where}: attributes are not JSON-serialisable: {e}") from None
    return attributes


def _check_depth(doc, where):
    """``ParseError`` if ``doc`` nests deeper than ``MAX_JSON_DEPTH`` (walked
    without recursion)."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ParseError(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))


def check_document_size(size, where):
    """``ParseError`` if a document of ``size`` bytes is over ``max_document_bytes``."""
    limit = config.get("max_document_bytes")
    if size > limit:
        raise ParseError(f"{where}: the document is {size} bytes, more than "
                         f"max_document_bytes ({limit}; see zarrsync.config)")


def load_json(text, where):
    """The JSON object in ``text`` (``str`` or bytes-like); ``ParseError``
    if it is too large, not UTF-8, not JSON, nested too deeply, or not an object."""
    check_document_size(len(text), where)
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ParseError(f"{where}: not UTF-8: {e}") from None
    try:
        doc = json.loads(text)
    except RecursionError:
        raise ParseError(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:  # also integers of more digits than Python converts
        raise ParseError(f"{where}: not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ParseError(f"{where}: a zarr.json document must be a JSON object, "
                         f"got {type(doc).__name__}")
    _check_depth(doc, where)
    return doc


def dump_json(doc):
    # zarr-python's form: 2-space indent, ASCII escapes.
    return json.dumps(doc, indent=2)


def node_type_of(text, where="zarr.json"):
    """``"array"`` or ``"group"`` from a ``zarr.json`` document; ``ParseError`` otherwise."""
    doc = load_json(text, where)
    if doc.get("zarr_format") != 3:
        raise ParseError(f"{where}: zarr_format must be 3, "
                         f"got {short_repr(doc.get('zarr_format'))}")
    node_type = doc.get("node_type")
    if node_type not in ("array", "group"):
        raise ParseError(f"{where}: node_type must be 'array' or 'group', "
                         f"got {short_repr(node_type)}")
    return node_type


# -- documents --------------------------------------------------------------------

def _check_relative_path(path, where):
    """``ParseError`` unless ``path`` is a relative node path such as ``"a/b"``."""
    if not isinstance(path, str) or not path:
        raise ParseError(f"{where}: consolidated_metadata.metadata keys must be non-empty "
                         f"relative paths, got {short_repr(path)}")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ParseError(f"{where}: consolidated_metadata.metadata key {path!r} is not a "
                         f"relative path of node names")


def _parse_consolidated(value, where):
    """The ``consolidated`` dict of a group document's ``consolidated_metadata``
    field (zarr-python's inline form), or ``None`` for null."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ParseError(f"{where}: consolidated_metadata must be an object or null, "
                         f"got {short_repr(value)}")
    for key in value:
        if key not in _CONSOLIDATED_KEYS:
            raise ParseError(f"{where}: consolidated_metadata has an unknown field {key!r}")
    if value.get("kind") != "inline":
        raise ParseError(f"{where}: consolidated_metadata.kind must be 'inline', "
                         f"got {short_repr(value.get('kind'))}")
    if value.get("must_understand", False) is not False:
        raise ParseError(f"{where}: consolidated_metadata.must_understand must be false, "
                         f"got {short_repr(value.get('must_understand'))}")
    entries = _require(value, "metadata", f"{where}: consolidated_metadata")
    if not isinstance(entries, dict):
        raise ParseError(f"{where}: consolidated_metadata.metadata must be an object, "
                         f"got {short_repr(entries)}")
    out = {}
    for path, doc in entries.items():
        _check_relative_path(path, where)
        entry = f"{where}: consolidated_metadata.metadata[{path!r}]"
        if not isinstance(doc, dict):
            raise ParseError(f"{entry}: expected a zarr.json object, got {short_repr(doc)}")
        if doc.get("zarr_format") != 3:
            raise ParseError(f"{entry}: zarr_format must be 3 (a Zarr v3 group's copy holds "
                             f"Zarr v3 nodes), got {short_repr(doc.get('zarr_format'))}")
        if doc.get("node_type") == "group":
            out[path] = GroupMetadata._from_dict(doc, entry, nested=True)
        else:
            out[path] = ArrayMetadata.from_dict(doc, entry)
    _check_nothing_below_arrays(out, f"{where}: consolidated_metadata.metadata")
    return out


def _check_nothing_below_arrays(entries, where):
    """``ParseError`` if a consolidated entry lies below an array's entry."""
    arrays = {p for p, m in entries.items() if isinstance(m, ArrayMetadata)}
    for path in entries:
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in arrays:
                raise ParseError(f"{where}[{path!r}] lies below the array "
                                 f"{'/'.join(parts[:i])!r}, which holds no nodes")


def _check_consolidated(consolidated):
    if consolidated is None:
        return None
    if not isinstance(consolidated, dict):
        raise ParseError(f"consolidated: expected None or a dict, got {short_repr(consolidated)}")
    for path, meta in consolidated.items():
        _check_relative_path(path, "consolidated")
        if not isinstance(meta, (ArrayMetadata, GroupMetadata)):
            raise ParseError(f"consolidated[{path!r}]: expected ArrayMetadata or "
                             f"GroupMetadata, got {type(meta).__name__}")
    return dict(consolidated)


def _parse_zmetadata(doc, where):
    """The ``consolidated`` dict of a v2 ``.zmetadata`` object: ``{"metadata":
    {"a/.zarray": ..., "a/.zattrs": ..., "g/.zgroup": ...}, "zarr_consolidated_format": 1}``."""
    if not isinstance(doc, dict) or doc.get("zarr_consolidated_format") != 1:
        raise ParseError(f"{where}: zarr_consolidated_format must be 1, got "
                         f"{short_repr(doc.get('zarr_consolidated_format') if isinstance(doc, dict) else doc)}")
    entries = doc.get("metadata")
    if not isinstance(entries, dict):
        raise ParseError(f"{where}: metadata must be an object, got {short_repr(entries)}")
    docs = {}
    for key, value in entries.items():
        path, _, name = key.rpartition("/")
        if name not in (_zarr2.ZARRAY, _zarr2.ZGROUP, _zarr2.ZATTRS):
            continue   # not a document zarrsync reads (zarr-python 2 kept others too)
        if not isinstance(value, dict):
            raise ParseError(f"{where}: metadata[{key!r}] must be an object, got "
                             f"{short_repr(value)}")
        if path:
            _check_relative_path(path, where)
        docs.setdefault(path, {})[name] = value
    out = {}
    for path, found in docs.items():
        if not path:
            continue   # the group itself: its own files are read, not this copy
        entry = f"{where}: metadata[{path!r}]"
        if _zarr2.ZARRAY in found:
            out[path] = ArrayMetadata.from_v2(found[_zarr2.ZARRAY], found.get(_zarr2.ZATTRS),
                                              entry)
        elif _zarr2.ZGROUP in found:
            out[path] = GroupMetadata.from_v2(found[_zarr2.ZGROUP], found.get(_zarr2.ZATTRS),
                                              None, entry)
    _check_nothing_below_arrays(out, f"{where}: metadata")
    return out


def _consolidated_order(path):
    # zarr-python's order: shallower paths first, then by case-folded name.
    return path.count("/"), unicodedata.normalize("NFKC", path).casefold()


class GroupMetadata:
    """The ``zarr.json`` of a group: its attributes, consolidated metadata and
    tolerated extensions.

    Attributes
    ----------
    attributes : dict
    consolidated : dict or None
        The consolidated metadata the document holds (zarr-python's
        ``consolidated_metadata`` field, ``"kind": "inline"``): the metadata
        (``ArrayMetadata`` or ``GroupMetadata``) of every node below the group,
        by path relative to it (``"a/b"``); ``None`` if the document holds none.
    """

    def __init__(self, attributes=None, extra=None, consolidated=None, zarr_format=3):
        if zarr_format not in (2, 3):
            raise ParseError(f"zarr_format must be 2 or 3, got {short_repr(zarr_format)}")
        self.zarr_format = zarr_format
        self.attributes = dict(_check_attributes(attributes, "group"))
        self.extra = dict(extra or {})
        self.consolidated = _check_consolidated(consolidated)
        for path, meta in (self.consolidated or {}).items():
            if meta.zarr_format != zarr_format:
                raise ParseError(f"consolidated[{path!r}]: the consolidated metadata of a "
                                 f"Zarr v{zarr_format} group holds only Zarr v{zarr_format} "
                                 f"nodes")

    def to_dict(self):
        """The group's document: ``zarr.json`` (v3), or ``.zgroup`` (v2, whose
        attributes are ``.zattrs`` and consolidated metadata ``.zmetadata``)."""
        if self.zarr_format == 2:
            return {"zarr_format": 2}
        doc = {"attributes": self.attributes, "zarr_format": 3}
        if self.consolidated is not None:
            # zarr-python's form: flat relative paths; group entries hold an empty block.
            doc["consolidated_metadata"] = {
                "kind": "inline", "must_understand": False,
                "metadata": {path: self.consolidated[path].to_dict()
                             for path in sorted(self.consolidated, key=_consolidated_order)}}
        doc["node_type"] = "group"
        doc.update(self.extra)
        return doc

    def to_json(self):
        return dump_json(self.to_dict())

    @classmethod
    def from_dict(cls, doc, where="zarr.json"):
        """Validate a parsed group ``zarr.json`` object (or a v2 ``.zgroup``, with
        no attributes); ``ParseError`` names the bad field (for consolidated
        metadata, the entry's path too)."""
        if doc.get("zarr_format") == 2:
            return cls.from_v2(doc, None, None, where)
        return cls._from_dict(doc, where, nested=False)

    @classmethod
    def _from_dict(cls, doc, where, nested):
        _check_header(doc, "group", where)
        if not nested and doc.get("consolidated_metadata") is not None:
            _check_depth(doc, where)  # entries nest documents inside this one
        extra = _check_extra(doc, _GROUP_KEYS, where)
        consolidated = _parse_consolidated(doc.get("consolidated_metadata"), where)
        return cls(_check_attributes(doc.get("attributes"), where), extra, consolidated)

    @classmethod
    def from_json(cls, text, where="zarr.json"):
        """From a ``zarr.json`` text, or a v2 ``.zgroup`` (with no attributes)."""
        return cls.from_dict(load_json(text, where), where)

    @classmethod
    def from_v2(cls, zgroup, attributes=None, zmetadata=None, where=".zgroup"):
        """A Zarr v2 group from its parsed ``.zgroup``, ``.zattrs`` (or ``None``)
        and ``.zmetadata`` (or ``None``) objects."""
        if not isinstance(zgroup, dict) or zgroup.get("zarr_format") != 2:
            raise ParseError(f"{where}: zarr_format must be 2, got "
                             f"{short_repr(zgroup.get('zarr_format') if isinstance(zgroup, dict) else zgroup)}")
        v3_fields = sorted(set(zgroup) & {"node_type", "attributes"})
        if v3_fields:
            raise ParseError(f"{where}: zarr_format is 2, but the document has the Zarr v3 "
                             f"fields {v3_fields}")
        # Other fields are read leniently: zarr-python 3.1 adds one to .zgroup entries.
        consolidated = None
        if zmetadata is not None:
            consolidated = _parse_zmetadata(zmetadata, where.replace(_zarr2.ZGROUP,
                                                                     _zarr2.ZMETADATA))
        return cls(_check_attributes(attributes, where.replace(_zarr2.ZGROUP, _zarr2.ZATTRS)),
                   consolidated=consolidated, zarr_format=2)

    def zmetadata_dict(self):
        """The v2 ``.zmetadata`` object for this group's consolidated metadata."""
        entries = {_zarr2.ZATTRS: self.attributes, _zarr2.ZGROUP: {"zarr_format": 2}}
        for path, meta in (self.consolidated or {}).items():
            if isinstance(meta, ArrayMetadata):
                entries[f"{path}/{_zarr2.ZARRAY}"] = meta.to_dict()
            else:
                entries[f"{path}/{_zarr2.ZGROUP}"] = meta.to_dict()
            entries[f"{path}/{_zarr2.ZATTRS}"] = meta.attributes
        return {"metadata": dict(sorted(entries.items())), "zarr_consolidated_format": 1}

    def _identity(self):
        if self.zarr_format == 3:
            return self.to_dict()
        return (self.attributes, None if self.consolidated is None else self.zmetadata_dict())

    def __eq__(self, other):
        return (isinstance(other, GroupMetadata) and self.zarr_format == other.zarr_format
                and self._identity() == other._identity())

    def __repr__(self):
        held = ("" if self.consolidated is None
                else f", consolidated={len(self.consolidated)} nodes")
        fmt = ", zarr_format=2" if self.zarr_format == 2 else ""
        return f"GroupMetadata(attributes={self.attributes!r}{held}{fmt})"


class ArrayMetadata:
    """The ``zarr.json`` of an array.

    Attributes
    ----------
    shape, chunks : tuple of int
    dtype : numpy.dtype
    fill_value : numpy scalar of ``dtype``
    codecs : tuple of Codec
    attributes : dict
    dimension_names : tuple of (str or None), or None
        For Zarr v2, xarray's ``_ARRAY_DIMENSIONS`` attribute (where given,
        the names are stored there).
    chunk_key_encoding : {"default", "v2"}
    separator : {"/", "."}
    zarr_format : {2, 3}
        Zarr v2 arrays use the ``"v2"`` chunk key encoding (``separator`` is
        their ``dimension_separator``, ``"."`` by default), and only codecs
        that v2 can express (``CodecError`` otherwise): an optional first
        ``Transpose`` reversing the axes (``order: "F"``), numcodecs filters,
        ``Bytes`` or the vlen codecs, and bytes->bytes codecs (the last is
        the ``compressor``).
    """

    def __init__(self, shape, chunks, dtype, fill_value=None, codecs=None,
                 attributes=None, dimension_names=None, chunk_key_encoding="default",
                 separator=None, extra=None, zarr_format=3):
        if zarr_format not in (2, 3):
            raise ParseError(f"zarr_format must be 2 or 3, got {short_repr(zarr_format)}")
        self.zarr_format = zarr_format
        #: A v2 ``fill_value`` of null (kept as null when written back).
        self.fill_null = False
        self.shape = _int_list(shape, "shape", 0)
        self.chunks = _int_list(chunks, "chunk_grid.configuration.chunk_shape", 1)
        if len(self.chunks) != len(self.shape):
            raise ParseError(f"chunk_grid.configuration.chunk_shape: rank {len(self.chunks)} "
                             f"differs from the rank {len(self.shape)} of shape")
        self.dtype = parse_dtype(dtype)
        _check_extent(self.shape, self.dtype.itemsize, "shape")
        _check_extent(self.chunks, self.dtype.itemsize, "chunk_grid.configuration.chunk_shape")
        _check_grid(self.shape, self.chunks)
        self.fill_value = coerce_fill_value(fill_value, self.dtype)
        if codecs is None:
            codecs = codecs_mod.default_codecs(self.dtype)
        self.chain = codecs_mod.CodecChain(codecs_mod.parse_codecs(codecs), self.dtype,
                                           self.chunks, self.fill_value)
        _check_decoded_sizes(self.chain, "chunk_grid.configuration.chunk_shape")
        self.codecs = self.chain.codecs
        self.attributes = dict(_check_attributes(attributes, "array"))
        if dimension_names is not None:
            if (not isinstance(dimension_names, (list, tuple))
                    or len(dimension_names) != len(self.shape)
                    or not all(n is None or isinstance(n, str) for n in dimension_names)):
                raise ParseError(f"dimension_names: expected {len(self.shape)} strings or "
                                 f"nulls, got {short_repr(dimension_names)}")
            dimension_names = tuple(dimension_names)
        self.key_encoding = ChunkKeyEncoding(chunk_key_encoding, separator)
        self.extra = dict(extra or {})
        self._dimension_names = dimension_names
        if zarr_format == 2:
            self._check_v2(dimension_names)

    def _check_v2(self, dimension_names):
        if self.key_encoding.name != "v2":
            raise ParseError("a Zarr v2 array uses the 'v2' chunk key encoding, not "
                             f"{self.key_encoding.name!r}")
        if self.extra:
            raise ParseError(f"a Zarr v2 array has no extension fields, got "
                             f"{short_repr(sorted(self.extra))}")
        # What the .zarray will say; CodecError / InvalidDataType if v2 cannot say it.
        order, filters, compressor, endian = _zarr2.zarray_fields(self.codecs, self.ndim)
        self._zarray = {"dtype": _zarr2.v2_dtype(self.dtype, endian), "order": order,
                        "filters": filters, "compressor": compressor}
        if dimension_names is not None:
            if any(n is None for n in dimension_names):
                raise ParseError("dimension_names: a Zarr v2 array keeps them in the "
                                 "_ARRAY_DIMENSIONS attribute, which holds strings only")
            self.attributes["_ARRAY_DIMENSIONS"] = list(dimension_names)
        self._dimension_names = None

    @property
    def dimension_names(self):
        """The dimension names: v3's ``dimension_names``, or for v2 xarray's
        ``_ARRAY_DIMENSIONS`` attribute when it holds one string per axis."""
        if self.zarr_format == 3:
            return self._dimension_names
        names = self.attributes.get("_ARRAY_DIMENSIONS")
        if (isinstance(names, list) and len(names) == self.ndim
                and all(isinstance(n, str) for n in names)):
            return tuple(names)
        return None

    @property
    def order(self):
        """The v2 ``order``: ``"F"`` if the chain starts with a transpose that
        reverses the axes of a chunk of rank > 1, else ``"C"``."""
        first = self.codecs[0] if self.codecs else None
        if (type(first) is codecs_mod.Transpose and self.ndim > 1
                and first.order == tuple(reversed(range(self.ndim)))):
            return "F"
        return "C"

    @property
    def chunk_key_encoding(self):
        """The chunk key encoding's name: ``"default"`` or ``"v2"``."""
        return self.key_encoding.name

    @property
    def separator(self):
        """The chunk key encoding's separator: ``"/"`` or ``"."``."""
        return self.key_encoding.separator

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def data_type(self):
        """The Zarr data type name, such as ``"float32"``."""
        return dtype_name(self.dtype)

    def with_shape(self, shape):
        """A copy of this metadata with another shape."""
        new = object.__new__(ArrayMetadata)
        new.__dict__.update(self.__dict__)
        new.shape = _int_list(tuple(shape), "shape", 0)
        _check_extent(new.shape, self.dtype.itemsize, "shape")
        _check_grid(new.shape, self.chunks)
        return new

    def to_dict(self):
        """The array's document: ``zarr.json`` (v3), or ``.zarray`` (v2; its
        attributes are the ``.zattrs`` document)."""
        if self.zarr_format == 2:
            z = self._zarray
            return {"shape": list(self.shape), "chunks": list(self.chunks), "dtype": z["dtype"],
                    "fill_value": (None if self.fill_null else
                                   _zarr2.encode_v2_fill(self.fill_value, self.dtype)),
                    "order": z["order"], "filters": z["filters"],
                    "dimension_separator": self.separator, "compressor": z["compressor"],
                    "zarr_format": 2}
        doc = {
            "shape": list(self.shape),
            "data_type": self.data_type,
            "chunk_grid": {"name": "regular",
                           "configuration": {"chunk_shape": list(self.chunks)}},
            "chunk_key_encoding": self.key_encoding.to_dict(),
            "fill_value": encode_fill_value(self.fill_value, self.dtype),
            "codecs": [c.to_dict() for c in self.codecs],
            "attributes": self.attributes,
        }
        if self.dimension_names is not None:
            doc["dimension_names"] = list(self.dimension_names)
        doc["zarr_format"] = 3
        doc["node_type"] = "array"
        doc["storage_transformers"] = []
        doc.update(self.extra)
        return doc

    def to_json(self):
        return dump_json(self.to_dict())

    @classmethod
    def from_dict(cls, doc, where="zarr.json"):
        """Validate a parsed ``zarr.json`` object (or a v2 ``.zarray``, with no
        attributes); ``ParseError`` names the bad field."""
        if doc.get("zarr_format") == 2:
            return cls.from_v2(doc, None, where)
        _check_header(doc, "array", where)
        extra = _check_extra(doc, _ARRAY_KEYS, where)
        shape = _int_list(_require(doc, "shape", where), f"{where}: shape", 0)

        dtype = data_type_of(_require(doc, "data_type", where), where)

        grid = _require(doc, "chunk_grid", where)
        if not isinstance(grid, dict) or grid.get("name") != "regular":
            raise ParseError(f"{where}: chunk_grid must be {{'name': 'regular', ...}}, "
                             f"got {short_repr(grid)}")
        config = grid.get("configuration")
        if not isinstance(config, dict) or "chunk_shape" not in config:
            raise ParseError(f"{where}: chunk_grid.configuration must be an object with a "
                             f"chunk_shape, got {short_repr(config)}")
        chunks = _int_list(config["chunk_shape"],
                           f"{where}: chunk_grid.configuration.chunk_shape", 1)
        if len(chunks) != len(shape):
            raise ParseError(f"{where}: chunk_grid.configuration.chunk_shape has rank "
                             f"{len(chunks)}, shape has rank {len(shape)}")

        encoding = ChunkKeyEncoding.from_json(_require(doc, "chunk_key_encoding", where),
                                              where)

        fill_value = parse_fill_value(_require(doc, "fill_value", where), dtype,
                                      f"{where}: fill_value")

        codec_docs = _require(doc, "codecs", where)
        if not isinstance(codec_docs, list) or not codec_docs:
            raise ParseError(f"{where}: codecs must be a non-empty list, got "
                             f"{short_repr(codec_docs)}")

        transformers = doc.get("storage_transformers", [])
        if transformers != []:
            raise ParseError(f"{where}: storage_transformers must be empty, "
                             f"got {short_repr(transformers)}")

        attributes = _check_attributes(doc.get("attributes"), where)
        try:
            return cls(shape, chunks, dtype_name(dtype), fill_value, codec_docs, attributes,
                       doc.get("dimension_names"), encoding.name, encoding.separator, extra)
        except CodecError as e:
            raise ParseError(f"{where}: codecs: {e}") from e
        except ParseError as e:
            raise ParseError(f"{where}: {e}") from e

    @classmethod
    def from_v2(cls, zarray, attributes=None, where=".zarray"):
        """A Zarr v2 array from its parsed ``.zarray`` and ``.zattrs`` (or ``None``)
        objects; ``ParseError`` names the bad field, and features zarrsync does
        not read as Zarr v2 ones."""
        if not isinstance(zarray, dict):
            raise ParseError(f"{where}: expected a JSON object, got {short_repr(zarray)}")
        fields = _zarr2.parse_zarray(zarray, where)
        shape = _int_list(fields["shape"], f"{where}: shape", 0)
        chunks = _int_list(fields["chunks"], f"{where}: chunks", 1)
        if len(chunks) != len(shape):
            raise ParseError(f"{where}: chunks has rank {len(chunks)}, shape has rank "
                             f"{len(shape)}")
        dtype = fields["dtype"]
        fill = _zarr2.parse_v2_fill(fields["fill"], dtype, f"{where}: fill_value")
        attributes = _check_attributes(attributes, where.replace(_zarr2.ZARRAY, _zarr2.ZATTRS))
        try:
            meta = cls(shape, chunks, dtype_name(dtype), fill, fields["codecs"], attributes,
                       None, "v2", fields["separator"], zarr_format=2)
        except CodecError as e:
            raise ParseError(f"{where}: codecs: {e}") from e
        except ParseError as e:
            raise ParseError(f"{where}: {e}") from e
        meta.fill_null = fields["fill"] is None
        return meta

    @classmethod
    def from_json(cls, text, where="zarr.json"):
        return cls.from_dict(load_json(text, where), where)

    def __eq__(self, other):
        return (isinstance(other, ArrayMetadata) and self.zarr_format == other.zarr_format
                and self.to_dict() == other.to_dict()
                and self.attributes == other.attributes)

    def __repr__(self):
        fmt = ", zarr_format=2" if self.zarr_format == 2 else ""
        fill = self.fill_value
        if isinstance(fill, np.generic) and fill.dtype.kind in "biufcSU":
            fill = fill.item()  # nan, not np.float32(nan)
        return (f"ArrayMetadata(shape={self.shape}, chunks={self.chunks}, "
                f"dtype={self.data_type}, fill_value={short_repr(fill)}, "
                f"codecs={list(self.codecs)}, dimension_names={self.dimension_names!r}, "
                f"attributes={short_repr(self.attributes, 200)}{fmt})")


class ChunkKeyEncoding:
    """How a chunk's grid coordinates become its store key.

    https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#chunk-key-encoding
    ``"default"``: ``c`` then the coordinates, each after ``separator``
    (``"c/1/2"``; ``"c"`` at rank 0). ``"v2"``: the coordinates joined by
    ``separator`` (``"1.2"``; ``"0"`` at rank 0). Keys are relative to the
    array's prefix (its node key and "/").
    """

    __slots__ = ("name", "separator")

    def __init__(self, name="default", separator=None):
        if name not in ("default", "v2"):
            raise ParseError(f"chunk_key_encoding: name must be 'default' or 'v2', "
                             f"got {name!r}")
        if separator is None:
            separator = "/" if name == "default" else "."
        if separator not in ("/", "."):
            raise ParseError(f"chunk_key_encoding: separator must be '/' or '.', "
                             f"got {separator!r}")
        self.name = name
        self.separator = separator

    @classmethod
    def from_json(cls, value, where="zarr.json"):
        """From a document's ``chunk_key_encoding`` (an object, or a bare name)."""
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict) or value.get("name") not in ("default", "v2"):
            raise ParseError(f"{where}: chunk_key_encoding must be {{'name': 'default' or 'v2', "
                             f"...}}, got {short_repr(value)}")
        configuration = value.get("configuration") or {}
        if not isinstance(configuration, dict):
            raise ParseError(f"{where}: chunk_key_encoding.configuration must be an object, "
                             f"got {short_repr(configuration)}")
        separator = configuration.get("separator")
        if separator is not None and separator not in ("/", "."):
            raise ParseError(f"{where}: chunk_key_encoding.configuration.separator must be "
                             f"'/' or '.', got {short_repr(separator)}")
        return cls(value["name"], separator)

    def to_dict(self):
        return {"name": self.name, "configuration": {"separator": self.separator}}

    def _head(self, prefix):
        return prefix + "c" + self.separator if self.name == "default" else prefix

    def key(self, prefix, coords):
        """The key of the chunk at grid ``coords``."""
        if not coords:
            return prefix + ("c" if self.name == "default" else "0")
        return self._head(prefix) + self.separator.join(map(str, coords))

    def keys(self, prefix, plan):
        """The key of every chunk of ``plan`` (an ``indexing.ChunkPlan``), in plan order."""
        if plan.ndim == 0:
            return [self.key(prefix, ())] * plan.nchunks
        return plan.format_keys(self._head(prefix), self.separator)

    def coords(self, prefix, key, ndim):
        """The grid coordinates ``key`` encodes for an array of rank ``ndim``
        under ``prefix``, or ``None`` if it is no chunk key of that array."""
        if not key.startswith(prefix):
            return None
        rest = key[len(prefix):]
        if ndim == 0:
            return () if rest == ("c" if self.name == "default" else "0") else None
        head = self._head("")
        if not rest.startswith(head):
            return None
        parts = rest[len(head):].split(self.separator)
        if len(parts) != ndim or not all(p.isascii() and p.isdigit() for p in parts):
            return None
        return tuple(int(p) for p in parts)

    def __eq__(self, other):
        return (isinstance(other, ChunkKeyEncoding) and self.name == other.name
                and self.separator == other.separator)

    def __hash__(self):
        return hash((self.name, self.separator))

    def __repr__(self):
        return f"ChunkKeyEncoding({self.name!r}, {self.separator!r})"
