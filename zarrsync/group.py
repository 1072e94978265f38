"""``Group``, a view of one group node, and the open functions.

``open_group``, ``open_array`` and ``open`` take a path, a URL (through
``open_store``) or a ``Store``, and a ``mode`` with zarr-python's meanings:

====  ==============================================================
"r"   read only; the node must exist
"r+"  read and write; the node must exist
"a"   read and write; a missing node is created
"w"   create the node, erasing whatever is at its path first
"w-"  create the node; ``NodeExists`` if anything is at its path
====  ==============================================================

The views are thin: every read and write is a method of the store.
"""

import html
import os
from collections.abc import Mapping

from .array import Array, NodeView, _data_type_text, _printable
from .errors import KeyNotFound, NodeExists, NodeInvariant, StoreError
from .nodes import ArrayNode, GroupNode
from .storage import Store, open_store

__all__ = ["Group", "Tree", "open_group", "open_array", "open"]

_MODES = ("r", "r+", "a", "w", "w-")

#: The keywords of ``open_array`` (and ``open``) that describe an array to create.
_ARRAY_KEYWORDS = ("shape", "dtype", "chunks", "fill_value", "codecs", "dimension_names",
                   "separator", "chunk_key_encoding")


def _description(store):
    """How messages name ``store``: its class and path or URL."""
    return store._description()


def _kind(store, path):
    """``"group"``, ``"array"`` or ``None``: what is at ``path`` in ``store``."""
    if store.group_exists(GroupNode.of_path(path)):
        return "group"
    if store.array_exists(ArrayNode.of_path(path)):
        return "array"
    return None


class Group(NodeView, Mapping):
    """A view of group ``node`` in ``store``.

    A read-only mapping from member names to views (``Array`` or ``Group``),
    as zarr-python's groups: ``grp["a/b"]``, ``"a" in grp``, ``list(grp)``
    (member names, sorted), ``len(grp)``. Creating members and changing
    ``attrs`` write to the store at once.

    Parameters
    ----------
    store : zarrsync.storage.Store
    node : GroupNode or str
        The group node, or its absolute path (``"/"`` for the root group).

    Raises
    ------
    KeyNotFound
        If no group is at ``node`` in ``store``.

    See Also
    --------
    open_group, open : open a group by path or URL.

    Notes
    -----
    The view pickles with its store, as ``Array`` does. Two views are equal
    if they show the same path of the same store (the same object, or equal
    stores).

    Examples
    --------
    >>> import zarrsync as zs
    >>> root = zs.open_group("memory://")
    >>> temp = root.create_array("climate/temp", shape=(4, 6), chunks=(2, 3),
    ...                          dtype="float32")
    >>> root["climate"]  # doctest: +ELLIPSIS
    <zarrsync.Group /climate in MemoryStore(...)>
    >>> "climate/temp" in root
    True
    >>> print(root.tree())
    /
    └── climate
        └── temp (4, 6) float32, chunks (2, 3)
    """

    _node_class = GroupNode

    @property
    def metadata(self):
        """The group's ``GroupMetadata``, read from the store."""
        return self.store.group_metadata(self.node)

    # -- members ----------------------------------------------------------------------------

    def _member_path(self, name):
        """The absolute path of member ``name`` (``"a"`` or ``"a/b"``); ``KeyNotFound``
        for a name that can name no member."""
        if not isinstance(name, str):
            raise KeyNotFound(f"member names are str, got {type(name).__name__} {name!r}")
        relative = name.strip("/")
        if not relative:
            raise KeyNotFound(f"{name!r} names no member of group {_printable(self.path)}")
        path = self.node.path.rstrip("/") + "/" + relative
        try:
            GroupNode.of_path(path)
        except NodeInvariant as e:
            raise KeyNotFound(f"{_printable(repr(name))} names no member of group "
                              f"{_printable(self.path)}: {e}") from None
        return path

    def _view(self, path):
        """The view of the node at ``path``, or ``None`` if there is none."""
        kind = _kind(self.store, path)
        if kind == "group":
            return Group._existing(self.store, GroupNode.of_path(path))
        if kind == "array":
            return Array._existing(self.store, ArrayNode.of_path(path))
        return None

    def __getitem__(self, name):
        """The ``Array`` or ``Group`` named ``name`` (a path such as ``"a/b"``
        below this group); ``KeyNotFound`` if there is none."""
        view = self._view(self._member_path(name))
        if view is None:
            raise KeyNotFound(f"no array or group {_printable(repr(name))} in group "
                              f"{_printable(self.path)} of {_description(self.store)}")
        return view

    def __contains__(self, name):
        try:
            return _kind(self.store, self._member_path(name)) is not None
        except KeyNotFound:
            return False

    def _children(self):
        arrays, groups = self.store.find_child_nodes(self.node)
        return arrays, groups

    def __iter__(self):
        arrays, groups = self._children()
        return iter(sorted(n.name for n in arrays + groups))

    def __len__(self):
        arrays, groups = self._children()
        return len(arrays) + len(groups)

    def members(self):
        """The arrays and groups directly in this group.

        Returns
        -------
        list of (str, Array or Group)
            ``(name, view)`` pairs sorted by name.
        """
        arrays, groups = self._children()
        views = ([(n.name, Array._existing(self.store, n)) for n in arrays]
                 + [(n.name, Group._existing(self.store, n)) for n in groups])
        return sorted(views, key=lambda item: item[0])

    def arrays(self):
        """The arrays directly in this group: ``(name, Array)`` pairs sorted by name."""
        arrays, _ = self._children()
        return [(n.name, Array._existing(self.store, n)) for n in sorted(arrays)]

    def groups(self):
        """The groups directly in this group: ``(name, Group)`` pairs sorted by name."""
        _, groups = self._children()
        return [(n.name, Group._existing(self.store, n)) for n in sorted(groups)]

    def array_keys(self):
        """The names of the arrays directly in this group, sorted."""
        return [name for name, _ in self.arrays()]

    def group_keys(self):
        """The names of the groups directly in this group, sorted."""
        return [name for name, _ in self.groups()]

    # -- creating members -------------------------------------------------------------------

    def _new_path(self, name):
        if not isinstance(name, str) or not name.strip("/"):
            raise NodeInvariant(f"a member name must be a non-empty str, got {name!r}")
        return self.node.path.rstrip("/") + "/" + name.strip("/")

    def create_group(self, name, attributes=None, *, zarr_format=None):
        """Create the group ``name`` (``"a"`` or ``"a/b"``) in this group.

        Parameters
        ----------
        name : str
            The new group's name, or a path below this group; missing groups
            on the way are created too.
        attributes : dict, optional
            The new group's attributes.
        zarr_format : {3, 2}, optional
            By default the format of the nearest group above it.

        Returns
        -------
        Group

        Raises
        ------
        NodeExists
            If an array is at that path or above it.
        NodeInvariant
            If ``name`` breaks the node-name rules.

        Notes
        -----
        As ``Store.create_group``: a no-op if the group exists already (its
        attributes are left as they are).
        """
        node = GroupNode.of_path(self._new_path(name))
        self.store.create_group(node, attributes, zarr_format=zarr_format)
        return Group._existing(self.store, node)

    def create_array(self, name, **create_array_keywords):
        """Create the array ``name`` (``"a"`` or ``"a/b"``) in this group.

        Parameters
        ----------
        name : str
            The new array's name, or a path below this group; missing groups
            on the way are created too.
        **create_array_keywords
            The keywords of ``Store.create_array``: ``shape``, ``chunks`` and
            ``dtype``, and optionally ``fill_value``, ``codecs``,
            ``dimension_names``, ``attributes``, ``separator``,
            ``chunk_key_encoding``, ``overwrite`` and ``zarr_format``.

        Returns
        -------
        Array

        Raises
        ------
        NodeExists
            If a node is at that path (unless ``overwrite=True``), or an array
            above it.
        NodeInvariant, ParseError, CodecError
            As ``Store.create_array``.
        """
        node = ArrayNode.of_path(self._new_path(name))
        self.store.create_array(node, **create_array_keywords)
        return Array._existing(self.store, node)

    # -- display ----------------------------------------------------------------------------

    def tree(self):
        """The hierarchy below this group, to print: a ``Tree``.

        ``str(grp.tree())`` draws it with box-drawing characters, one member a
        line (each array with its shape, data type and chunk shape);
        Jupyter shows its HTML form, and ``to_dict()`` gives it as JSON-able
        nested dicts.
        """
        return Tree(_tree_entry(self.store, self.node))

    def __repr__(self):
        return f"<zarrsync.Group {_printable(self.path)} in {_printable(repr(self.store))}>"

    def __eq__(self, other):
        if not isinstance(other, Group):
            return NotImplemented
        return (self.node == other.node
                and (self.store is other.store or self.store == other.store))

    def __hash__(self):
        return hash((Group, self.node.path))


# -- the tree ---------------------------------------------------------------------------------

def _array_entry(store, node):
    meta = store.array_metadata(node)
    inner = meta.chain.inner_chunks   # the codec that holds inner chunks: sharding
    return {
        "name": node.name, "path": node.path, "node_type": "array",
        "zarr_format": meta.zarr_format,
        "shape": list(meta.shape),
        "data_type": meta.data_type,
        "chunks": list(inner.chunk_shape if inner is not None else meta.chunks),
        "shards": list(meta.chunks) if inner is not None else None,
        "_data_type_text": _data_type_text(meta),
    }


def _tree_entry(store, group):
    arrays, groups = store.find_child_nodes(group)
    members = [_array_entry(store, n) for n in arrays] + [_tree_entry(store, n) for n in groups]
    members.sort(key=lambda entry: entry["name"])
    return {"name": group.name, "path": group.path, "node_type": "group",
            "zarr_format": store.group_metadata(group).zarr_format, "members": members}


def _public(entry):
    """``entry`` without its display-only fields, recursively."""
    out = {k: v for k, v in entry.items() if not k.startswith("_")}
    if "members" in out:
        out["members"] = [_public(m) for m in out["members"]]
    return out


def _array_text(entry):
    """``(4, 6) float32, chunks (2, 3)`` (and ``, shards (4, 6)`` if sharded)."""
    text = (f"{tuple(entry['shape'])} {entry['_data_type_text']}, "
            f"chunks {tuple(entry['chunks'])}")
    if entry["shards"] is not None:
        text += f", shards {tuple(entry['shards'])}"
    return text


class Tree:
    """A group's hierarchy, as ``Group.tree()`` returns it.

    ``str()`` draws it with Unicode box-drawing characters::

        /
        ├── climate
        │   └── temp (4, 6) float32, chunks (2, 3)
        └── mask (6,) bool, chunks (6,)

    Members are sorted by name. Unprintable characters in names are shown
    escaped, so a name cannot break the drawing or send control sequences
    to a terminal. ``_repr_html_`` gives the same tree as nested HTML lists
    (names HTML-escaped) for Jupyter, and ``to_dict()`` a JSON-able form.

    Parameters
    ----------
    root : dict
        The group's entry, in the form ``to_dict`` returns.
    """

    def __init__(self, root):
        self._root = root

    def to_dict(self):
        """The tree as nested dicts of JSON-able values.

        Returns
        -------
        dict
            For a group: ``name``, ``path``, ``node_type`` (``"group"``),
            ``zarr_format`` and ``members`` (a list of such dicts, sorted by
            name). For an array: ``name``, ``path``, ``node_type``
            (``"array"``), ``zarr_format``, ``shape``, ``data_type`` (as the
            metadata document writes it), ``chunks`` (the shape of the chunks
            the data is encoded in: for a sharded array, the inner chunks) and
            ``shards`` (the shard shape, or ``None``).
        """
        return _public(self._root)

    def _lines(self, entry, prefix, out):
        members = entry["members"]
        for i, member in enumerate(members):
            last = i == len(members) - 1
            text = _printable(member["name"])
            if member["node_type"] == "array":
                text += " " + _array_text(member)
            out.append(prefix + ("└── " if last else "├── ") + text)
            if member["node_type"] == "group":
                self._lines(member, prefix + ("    " if last else "│   "), out)

    def __str__(self):
        out = [_printable(self._root["path"])]
        self._lines(self._root, "", out)
        return "\n".join(out)

    def __repr__(self):
        return str(self)

    def _html(self, entry):
        name = html.escape(entry["name"] or entry["path"])
        if entry["node_type"] == "array":
            return f"<li>{name} <code>{html.escape(_array_text(entry))}</code></li>"
        inner = "".join(self._html(m) for m in entry["members"])
        return f"<li><strong>{name}</strong>" + (f"<ul>{inner}</ul>" if inner else "") + "</li>"

    def _repr_html_(self):
        return f"<ul class=\"zarrsync-tree\">{self._html(self._root)}</ul>"


# -- the open functions -----------------------------------------------------------------------

def _check_mode(mode):
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, _MODES))}, got {mode!r}")


def _node_path(path):
    """``path`` as an absolute node path (``"a/b"`` and ``"/a/b/"`` are ``"/a/b"``)."""
    if isinstance(path, (GroupNode, ArrayNode)):
        return path.path
    if not isinstance(path, str):
        raise NodeInvariant(f"path must be a str, got {type(path).__name__}")
    return "/" + path.strip("/")


def _open_store(store, mode, clear, options):
    """``(store, cleared)``: the store ``store`` names, opened for ``mode``.

    ``clear`` asks to open a path or URL with mode "w" (erasing everything);
    ``cleared`` tells whether that happened.
    """
    if isinstance(store, Store):
        if options:
            raise StoreError(f"options {sorted(options)} apply to a path or URL, not to "
                             f"a store object ({type(store).__name__})")
        return store, False
    if clear:
        return open_store(store, mode="w", **options), True
    # Otherwise "w" and "w-" are handled node by node: the store opens with
    # "a" (a missing folder is created), then the path is checked or erased.
    store_mode = mode if mode in ("r", "r+") else "a"
    try:
        return open_store(store, mode=store_mode, **options), False
    except ValueError:
        local = os.fspath(store) if isinstance(store, (str, os.PathLike)) else ""
        local = local[len("file://"):] if local.startswith("file://") else local
        if store_mode != "r+" or not local.lower().endswith(".zip"):
            raise
    # A zip file opens with "r", "w" or "a" only: "r+" is "a" on an existing file.
    if not os.path.exists(local):
        raise StoreError(f"cannot open {local!r} with mode 'r+': no such file "
                         f"(modes 'a', 'w' and 'w-' create it)")
    return open_store(store, mode="a", **options), False


def _check_empty(store, node, what):
    """``NodeExists`` for mode "w-" if any key is at or below ``node``'s path."""
    prefix = node.key + "/" if node.key else ""
    found = store.list_prefix(prefix)
    if found:
        raise NodeExists(f"cannot create {what} {_printable(node.path)} (mode 'w-'): "
                         f"{_description(store)} already holds keys there, such as "
                         f"{_printable(repr(found[0]))}")


def _check_ancestors(store, path, what):
    """``NodeExists`` if an array is above ``path`` (checked before erasing anything)."""
    for ancestor in GroupNode.of_path(path).ancestors():
        if store.array_exists(ArrayNode.of_path(ancestor.path)):
            raise NodeExists(f"cannot create {what} {_printable(path)}: "
                             f"{_printable(ancestor.path)} is an array, and an array holds "
                             f"no nodes")


def _group_at(store, cleared, mode, path, attributes, zarr_format):
    """``open_group`` on an opened store."""
    node = GroupNode.of_path(path)
    desc = _description(store)
    if mode == "w":
        if not cleared:
            if node.is_root():
                store.erase_all_nodes()
            else:
                _check_ancestors(store, path, "group")
                if _kind(store, path) == "array":
                    store.erase_array_node(ArrayNode.of_path(path))
                store.erase_group_node(node)   # the group, or stray keys at its path
        store.create_group(node, attributes, zarr_format=zarr_format)
        return Group._existing(store, node)
    kind = _kind(store, path)
    if kind is not None and mode == "w-":
        _refuse_existing("group", path, kind, desc)
    if kind == "group":
        return Group._existing(store, node)
    if kind == "array":
        raise KeyNotFound(f"{_printable(path)} is an array, not a group, in {desc}; use "
                          f"open_array or open")
    if mode in ("r", "r+"):
        raise KeyNotFound(f"no group at {_printable(path)} in {desc} (mode {mode!r} opens "
                          f"an existing group; mode 'a' creates it)")
    if mode == "w-":
        _check_empty(store, node, "group")
    store.create_group(node, attributes, zarr_format=zarr_format)
    return Group._existing(store, node)


def _refuse_existing(what, path, kind, desc):
    raise NodeExists(f"cannot create {what} {_printable(path)} (mode 'w-'): "
                     f"{'a group' if kind == 'group' else 'an array'} exists there in {desc}")


def _array_at(store, mode, path, create):
    """``open_array`` on an opened store; ``create`` holds the creation keywords
    (``shape`` ``None`` if none were given)."""
    node = ArrayNode.of_path(path)
    desc = _description(store)
    if mode in ("w", "w-"):
        if mode == "w-":
            kind = _kind(store, path)
            if kind is not None:
                _refuse_existing("array", path, kind, desc)
            if not node.is_root():
                _check_empty(store, GroupNode.of_path(path), "array")
        store.create_array(node, overwrite=mode == "w", **create)
        return Array._existing(store, node)
    kind = _kind(store, path)
    if kind == "array":
        return Array._existing(store, node)
    if kind == "group":
        raise KeyNotFound(f"{_printable(path)} is a group, not an array, in {desc}; use "
                          f"open_group or open")
    if mode in ("r", "r+"):
        raise KeyNotFound(f"no array at {_printable(path)} in {desc} (mode {mode!r} opens "
                          f"an existing array)")
    if create["shape"] is None:
        raise KeyNotFound(f"no array at {_printable(path)} in {desc}; pass shape=, "
                          f"dtype= and chunks= to create one")
    store.create_array(node, **create)
    return Array._existing(store, node)


def _creation_keywords(mode, shape, dtype, chunks, fill_value, codecs, dimension_names,
                       attributes, separator, chunk_key_encoding, zarr_format):
    """The ``create_array`` keywords of ``open_array``; ``TypeError`` if a mode
    that must create is missing one it needs."""
    create = dict(shape=shape, dtype=dtype, chunks=chunks, fill_value=fill_value,
                  codecs=codecs, dimension_names=dimension_names, attributes=attributes,
                  separator=separator, chunk_key_encoding=chunk_key_encoding,
                  zarr_format=3 if zarr_format is None else zarr_format)
    if shape is not None or mode in ("w", "w-"):
        missing = [k for k in ("shape", "dtype", "chunks") if create[k] is None]
        if missing:
            raise TypeError(f"creating an array needs {', '.join(k + '=' for k in missing)}"
                            f" (mode {mode!r})")
    return create


def open_group(store, mode="a", *, path="/", attributes=None, zarr_format=None,
               **options):
    """Open the group at ``path`` of a store, or create it.

    Parameters
    ----------
    store : str, os.PathLike or Store
        A store, or what ``open_store`` opens: a folder path, a ``.zip`` file,
        ``memory://``, ``file://`` or an object store URL (``s3://bucket/x``).
    mode : {"r", "r+", "a", "w", "w-"}, default "a"
        As in zarr-python: "r" and "r+" need the group to exist ("r" opens a
        path or URL read-only); "a" creates it if it is missing; "w" erases
        whatever is at ``path`` (the whole store if ``path`` is "/"), then
        creates it; "w-" creates it, and raises ``NodeExists`` if anything is
        there.
    path : str, default "/"
        The group's path inside the store (``"a/b"`` and ``"/a/b"`` alike).
    attributes : dict, optional
        The attributes of a group this call creates (ignored otherwise).
    zarr_format : {3, 2}, optional
        The format of a group this call creates (and of missing groups
        above it); by default that of the nearest group above it, or 3.
    **options
        Passed to ``open_store`` when ``store`` is a path or URL (credentials,
        ``endpoint``, ``follow_links``, ...).

    Returns
    -------
    Group

    Raises
    ------
    KeyNotFound
        Modes "r" and "r+": no group at ``path``; any mode but "w" and "w-":
        an array is at ``path``.
    NodeExists
        Mode "w-" with a node or keys at ``path``; an array above ``path``.
    StoreError
        The store cannot be opened (with "r" or "r+": a folder that does not
        exist); ``options`` given with a store object.
    ValueError
        An unknown ``mode``.

    Notes
    -----
    With a store object, ``mode`` decides only what must exist and what is
    created or erased; whether writes are allowed is the store's own mode.
    A ``ZipStore`` opened from a ``.zip`` path for writing must be closed
    (``grp.store.close()``) to complete the file.

    Examples
    --------
    >>> import zarrsync as zs
    >>> grp = zs.open_group("memory://", path="a/b")
    >>> grp.path
    '/a/b'
    >>> zs.open_group(grp.store, mode="r", path="/a").group_keys()
    ['b']
    """
    _check_mode(mode)
    path = _node_path(path)
    GroupNode.of_path(path)   # NodeInvariant before the store is opened
    opened, cleared = _open_store(store, mode, mode == "w" and path == "/", options)
    return _group_at(opened, cleared, mode, path, attributes, zarr_format)


def open_array(store, mode="a", *, path="/", shape=None, dtype=None, chunks=None,
               fill_value=None, codecs=None, dimension_names=None, attributes=None,
               separator=None, chunk_key_encoding=None, zarr_format=None, **options):
    """Open the array at ``path`` of a store, or create it.

    Parameters
    ----------
    store : str, os.PathLike or Store
        A store, or what ``open_store`` opens (see ``open_group``).
    mode : {"r", "r+", "a", "w", "w-"}, default "a"
        "r" and "r+" need the array to exist; "a" opens it, or creates it
        when ``shape`` (with ``dtype`` and ``chunks``) is given; "w" creates
        it, replacing any node at ``path``; "w-" creates it, and raises
        ``NodeExists`` if anything is there.
    path : str, default "/"
        The array's path inside the store; "/" is the root array (the whole
        store, ``zarr.json`` at its root).
    shape, dtype, chunks : optional
        The new array's shape, data type and chunk shape, as for
        ``Store.create_array``: needed to create an array, and used only then.
    fill_value, codecs, dimension_names, attributes : optional
        As for ``Store.create_array``; used only when the array is created.
    separator, chunk_key_encoding, zarr_format : optional
        As for ``Store.create_array``; used only when the array is created.
    **options
        Passed to ``open_store`` when ``store`` is a path or URL.

    Returns
    -------
    Array

    Raises
    ------
    KeyNotFound
        No array at ``path`` (and nothing to create it from), or a group is
        there (modes "r", "r+", "a").
    NodeExists
        Mode "w-" with a node or keys at ``path``; an array above ``path``.
    TypeError
        Modes "w" and "w-" without ``shape``, ``dtype`` and ``chunks``.
    StoreError, ValueError
        As for ``open_group``.

    Examples
    --------
    >>> import zarrsync as zs
    >>> arr = zs.open_array("memory://", mode="w", path="t", shape=(3,), chunks=(2,),
    ...                     dtype="int16")
    >>> zs.open_array(arr.store, mode="r", path="/t").shape
    (3,)
    """
    _check_mode(mode)
    path = _node_path(path)
    ArrayNode.of_path(path)   # NodeInvariant before the store is opened
    create = _creation_keywords(mode, shape, dtype, chunks, fill_value, codecs,
                                dimension_names, attributes, separator, chunk_key_encoding,
                                zarr_format)
    # Mode "w" erases through create_array(overwrite=True), which checks the
    # new metadata first: a bad argument must not have cleared the store.
    opened, _ = _open_store(store, mode, False, options)
    return _array_at(opened, mode, path, create)


def open(store, mode="a", *, path="/", **keywords):  # noqa: A001 (zarr.open's name)
    """Open the array or group at ``path`` of a store, whichever is there.

    Parameters
    ----------
    store : str, os.PathLike or Store
        A store, or what ``open_store`` opens (see ``open_group``).
    mode : {"r", "r+", "a", "w", "w-"}, default "a"
        As for ``open_group``. With array keywords (``shape``, ``dtype``,
        ``chunks``, ...) this is ``open_array``; otherwise "w" and "w-"
        create a group, and "a" creates one if nothing is at ``path``.
    path : str, default "/"
        The node's path inside the store.
    **keywords
        ``open_array``'s array keywords, ``attributes`` and ``zarr_format``
        (for a node this call creates), and options for ``open_store``.

    Returns
    -------
    Array or Group

    Raises
    ------
    KeyNotFound
        Modes "r" and "r+" with nothing at ``path``.
    NodeExists, StoreError, ValueError
        As for ``open_group`` and ``open_array``.

    Examples
    --------
    >>> import zarrsync as zs
    >>> grp = zs.open_group("memory://")
    >>> _ = grp.create_array("t", shape=(2,), chunks=(2,), dtype="uint8")
    >>> zs.open(grp.store, mode="r", path="t")
    <zarrsync.Array /t shape=(2,) chunks=(2,) dtype=uint8>
    >>> zs.open(grp.store, mode="r")  # doctest: +ELLIPSIS
    <zarrsync.Group / in MemoryStore(...)>
    """
    _check_mode(mode)
    path = _node_path(path)
    if any(keywords.get(k) is not None for k in _ARRAY_KEYWORDS):
        return open_array(store, mode, path=path, **keywords)
    for k in _ARRAY_KEYWORDS:
        keywords.pop(k, None)
    attributes = keywords.pop("attributes", None)
    zarr_format = keywords.pop("zarr_format", None)
    if mode in ("w", "w-"):
        return open_group(store, mode, path=path, attributes=attributes,
                          zarr_format=zarr_format, **keywords)
    GroupNode.of_path(path)   # NodeInvariant before the store is opened
    opened, _ = _open_store(store, mode, False, keywords)
    kind = _kind(opened, path)
    if kind == "array":
        return Array._existing(opened, ArrayNode.of_path(path))
    if kind == "group":
        return Group._existing(opened, GroupNode.of_path(path))
    if mode in ("r", "r+"):
        raise KeyNotFound(f"no array or group at {_printable(path)} in "
                          f"{_description(opened)}")
    return _group_at(opened, False, mode, path, attributes, zarr_format)
