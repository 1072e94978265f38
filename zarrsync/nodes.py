"""Group and array nodes: immutable, hashable paths in a Zarr v3 hierarchy.

A node is only a validated path; it holds no data and no store. Names follow
the Zarr v3 node-name rules
(https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#node-names):
non-empty, no "/", not "." or "..", and not starting with "__" (reserved).
"""

from .errors import NodeInvariant

__all__ = ["GroupNode", "ArrayNode", "validate_name"]


def validate_name(name):
    """Return ``name`` if it is a valid node name, else raise ``NodeInvariant``."""
    if not isinstance(name, str):
        raise NodeInvariant(f"a node name must be a str, got {type(name).__name__}")
    if name == "":
        raise NodeInvariant("a node name must not be empty")
    if "/" in name:
        raise NodeInvariant(f"a node name must not contain '/': {name!r}")
    if name in (".", ".."):
        raise NodeInvariant(f"a node name must not be '.' or '..': {name!r}")
    if name.startswith("__"):
        raise NodeInvariant(f"a node name must not start with '__' (reserved): {name!r}")
    return name


def _split_path(path):
    """Split an absolute node path into its names, validating each one."""
    if not isinstance(path, str):
        raise NodeInvariant(f"a node path must be a str, got {type(path).__name__}")
    if not path.startswith("/"):
        raise NodeInvariant(f"a node path must start with '/': {path!r}")
    if path == "/":
        return []
    if path.endswith("/"):
        raise NodeInvariant(f"a node path must not end with '/': {path!r}")
    return [validate_name(name) for name in path[1:].split("/")]


class _Node:
    __slots__ = ("_path", "_names")

    def __init__(self, names):
        object.__setattr__(self, "_names", tuple(names))
        object.__setattr__(self, "_path", "/" + "/".join(self._names))

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    @property
    def path(self):
        """The absolute path, such as ``"/group/temp"``; the root is ``"/"``."""
        return self._path

    @property
    def name(self):
        """The last path component; the root's name is ``""``."""
        return self._names[-1] if self._names else ""

    @property
    def parent(self):
        """The parent ``GroupNode``; ``None`` for the root."""
        if not self._names:
            return None
        return GroupNode(self._names[:-1])

    @property
    def key(self):
        """The store key prefix of the node, with no leading "/" (root: ``""``)."""
        return "/".join(self._names)

    @property
    def metadata_key(self):
        """The key of the node's ``zarr.json`` document."""
        return self.key + "/zarr.json" if self._names else "zarr.json"

    def ancestors(self):
        """Every group above this node, root first."""
        return [GroupNode(self._names[:i]) for i in range(len(self._names))]

    def is_parent(self, group):
        """True if ``group`` is this node's direct parent."""
        return isinstance(group, GroupNode) and self.parent == group

    def to_path(self):
        return self._path

    def __eq__(self, other):
        return type(self) is type(other) and self._path == other._path

    def __hash__(self):
        return hash((type(self).__name__, self._path))

    def __lt__(self, other):
        if not isinstance(other, _Node):
            return NotImplemented
        # By path; the type breaks the one tie (a group and an array at the
        # same path, such as the two roots), so the order is total and agrees with ==.
        return (self._path, type(self).__name__) < (other._path, type(other).__name__)

    def __repr__(self):
        return f"{type(self).__name__}.of_path({self._path!r})"

    def __str__(self):
        return self._path

    def __reduce__(self):
        return (type(self).of_path, (self._path,))


class GroupNode(_Node):
    """A group in a Zarr v3 hierarchy.

    Examples
    --------
    >>> root = GroupNode.root()
    >>> g = GroupNode.create(root, "group")
    >>> g.path, (root / "group") == g
    ('/group', True)
    """

    __slots__ = ()

    @classmethod
    def root(cls):
        """The root group, path ``"/"``."""
        return cls(())

    @classmethod
    def create(cls, parent, name):
        """The group ``name`` inside group ``parent``."""
        if not isinstance(parent, GroupNode):
            raise NodeInvariant(f"a parent must be a GroupNode, got {type(parent).__name__}")
        return cls(parent._names + (validate_name(name),))

    @classmethod
    def of_path(cls, path):
        """The group at absolute ``path``; ``NodeInvariant`` if the path is invalid."""
        return cls(_split_path(path))

    def is_root(self):
        """True for ``GroupNode.root()``."""
        return not self._names

    def __truediv__(self, name):
        return GroupNode.create(self, name)


class ArrayNode(_Node):
    """An array in a Zarr v3 hierarchy; ``ArrayNode(parent_group, name)``.

    ``ArrayNode.root()`` is an array that is the whole store (its
    ``zarr.json`` at the store's root, as tensorstore and zarrs write arrays):
    path ``"/"``, key ``""``, chunk keys such as ``"c/0/0"``. It is not equal
    to ``GroupNode.root()``, and a store holds at most one of the two.

    Examples
    --------
    >>> a = ArrayNode(GroupNode.of_path("/group"), "temp")
    >>> a.key, a.metadata_key
    ('group/temp', 'group/temp/zarr.json')
    >>> r = ArrayNode.root()
    >>> r.path, r.key, r.metadata_key, r == ArrayNode.of_path("/")
    ('/', '', 'zarr.json', True)
    """

    __slots__ = ()

    def __init__(self, parent, name=None):
        if isinstance(parent, tuple) and name is None:
            names = parent  # internal construction from validated names
        else:
            if not isinstance(parent, GroupNode):
                raise NodeInvariant(
                    f"a parent must be a GroupNode, got {type(parent).__name__}")
            names = parent._names + (validate_name(name),)
        super().__init__(names)

    @classmethod
    def root(cls):
        """The array at the store's root, path ``"/"`` (the store is this one array)."""
        return cls(())

    def is_root(self):
        """True for ``ArrayNode.root()``."""
        return not self._names

    @classmethod
    def create(cls, parent, name):
        """The array ``name`` inside group ``parent``."""
        return cls(parent, name)

    @classmethod
    def of_path(cls, path):
        """The array at absolute ``path`` (``"/"``: ``ArrayNode.root()``);
        ``NodeInvariant`` if the path is invalid."""
        return cls(tuple(_split_path(path)))
