"""The codec registry: codec classes by their spec name, and their JSON forms.

Holds no codec itself: ``codecs/__init__`` registers the built-in ones, so
any codec module may build codecs from JSON without importing the others.
"""

from ..errors import CodecError, short_repr
from ._base import Codec

__all__ = ["register_codec", "from_dict", "parse_codecs"]

_REGISTRY = {}


def register_codec(cls):
    """Make ``cls`` (a Codec subclass with a ``name``) known to ``from_dict``."""
    _REGISTRY[cls.name] = cls
    return cls


def from_dict(d):
    """Build a codec from its JSON form: ``{"name": ..., "configuration": {...}}``.

    A bare string is taken as a codec name with no configuration.
    """
    if isinstance(d, Codec):
        return d
    if isinstance(d, str):
        d = {"name": d}
    if not isinstance(d, dict) or "name" not in d:
        raise CodecError(f"a codec must be an object with a 'name', got {short_repr(d)}")
    name = d["name"]
    if not isinstance(name, str):
        raise CodecError(f"a codec name must be a string, got {short_repr(name)}")
    extra = set(d) - {"name", "configuration", "must_understand"}
    if extra:
        raise CodecError(f"codec {short_repr(name)} has unknown fields "
                         f"{short_repr(sorted(extra))}")
    cls = _REGISTRY.get(name)
    if cls is None:
        raise CodecError(f"codec {short_repr(name)} is not supported (unknown to zarrsync)")
    configuration = d.get("configuration", {})
    if not isinstance(configuration, dict):
        raise CodecError(f"codec {name!r} configuration must be an object, got "
                         f"{short_repr(configuration)}")
    return cls.from_config(configuration)


def parse_codecs(codecs):
    """A list of codec objects from codec objects and/or JSON dicts."""
    if isinstance(codecs, (Codec, dict, str)):
        codecs = [codecs]
    if not isinstance(codecs, (list, tuple)):
        raise CodecError(f"codecs must be a list of codecs, got {short_repr(codecs)}")
    return [from_dict(c) for c in codecs]
