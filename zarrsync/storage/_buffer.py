"""The write buffer: partly written chunks kept decoded until they are flushed.

A simulation that writes one time step at a time into chunks spanning
several steps would otherwise decode and re-encode each chunk at every
step. On a store whose ``buffers_writes`` is true, ``write_array`` keeps a
chunk it writes only partly (or an edge chunk, which a growing array writes
into again) in memory, decoded, and later writes go straight into it. The
chunk is encoded and stored once, when:

- a later ``write_array`` of the same array no longer touches it,
- a write covers it entirely (the new value replaces the buffered one),
- anything reads or lists its key, through the hierarchy or the key-value
  methods (``get``, ``get_many``, ``get_partial_values``, ``getsize``,
  ``list_prefix``, ``list_dir``, ``move_prefix``), or
- ``flush()`` or ``close()`` is called.

``set``, ``erase`` and ``erase_prefix`` of a buffered key drop the buffered
chunk (the newer operation wins). So within the process every read sees
every write; what the buffer changes is when the bytes reach the backend,
which matters only to other processes and to a crash. A write buffers at
most ``config.write_buffer_bytes`` of decoded chunks; a larger one stores
its chunks at once.

The key-value methods of every ``Store`` subclass are wrapped once, when the
class is defined (``watch_key_value_methods``); with nothing buffered the
wrapper costs one dictionary lookup.
"""

import functools

__all__ = ["WriteBuffer", "watch_key_value_methods"]


class WriteBuffer:
    """Decoded chunks by key, each with the ``ArrayLayout`` it belongs to.

    ``flush_*`` encode and store buffered chunks through ``store_chunk(key,
    layout, chunk)`` under each chunk's lock (``lock(key)``), which the
    engine provides.
    """

    def __init__(self, store_chunk, lock):
        self.pending = {}
        self._store_chunk = store_chunk
        self._lock = lock

    def take(self, key, layout):
        """The buffered chunk at ``key`` if it was buffered by an array with
        ``layout``'s codecs (a resize keeps them), else ``None``. The caller
        holds the chunk's lock and keeps writing into it."""
        entry = self.pending.get(key)
        if entry is None or entry[0].chain is not layout.chain:
            return None
        return entry[1]

    def keep(self, key, layout, chunk):
        """Buffer ``chunk`` at ``key`` (the caller holds the chunk's lock)."""
        self.pending[key] = (layout, chunk)

    def flush(self, selected=None):
        """Store every buffered chunk whose key ``selected(key)`` holds (all by default)."""
        pending = self.pending
        if not pending:
            return
        for key in [k for k in list(pending) if selected is None or selected(k)]:
            with self._lock(key):
                entry = pending.pop(key, None)
                if entry is None:
                    continue
                try:
                    self._store_chunk(key, *entry)
                except BaseException:
                    pending.setdefault(key, entry)  # nothing lost: still buffered
                    raise

    def flush_keys(self, keys):
        keys = set(keys)
        self.flush(keys.__contains__)

    def flush_prefixes(self, prefixes):
        prefixes = tuple(prefixes)
        self.flush(lambda key: key.startswith(prefixes))

    def drop_keys(self, keys):
        for key in keys:
            self.pending.pop(key, None)

    def drop_prefixes(self, prefixes):
        prefixes = tuple(prefixes)
        for key in [k for k in list(self.pending) if k.startswith(prefixes)]:
            self.pending.pop(key, None)


def _key(args, kwargs):
    return (args[0] if args else kwargs["key"],)


def _keys(args, kwargs):
    return args[0] if args else kwargs["keys"]


def _range_keys(args, kwargs):
    return [r[0] for r in (args[0] if args else kwargs["key_ranges"])]


def _as_list(args, kwargs, name):
    # A generator argument is read here first; the method gets a list of it.
    if args:
        return (list(args[0]),) + args[1:], kwargs
    return args, dict(kwargs, **{name: list(kwargs[name])})


def _prefix(args, kwargs):
    return (args[0] if args else kwargs["prefix"],)


def _old_and_new(args, kwargs):
    return (args[0] if args else kwargs["old"],
            args[1] if len(args) > 1 else kwargs["new"])


# Methods taking an iterable, by argument name.
_ITERABLE_ARGUMENT = {"get_many": "keys", "get_many_ahead": "keys",
                      "get_partial_values": "key_ranges",
                      "get_partial_values_ahead": "key_ranges", "set_many": "keys"}

# method name -> (what to do with buffered chunks first, which keys or prefixes)
_WATCHED = {
    "get": ("flush_keys", _key),
    "getsize": ("flush_keys", _key),
    "get_many": ("flush_keys", _keys),
    "get_many_ahead": ("flush_keys", _keys),
    "get_partial_values": ("flush_keys", _range_keys),
    "get_partial_values_ahead": ("flush_keys", _range_keys),
    "list_prefix": ("flush_prefixes", _prefix),
    "list_dir": ("flush_prefixes", _prefix),
    "move_prefix": ("flush_prefixes", _old_and_new),
    "set": ("drop_keys", _key),
    "set_many": ("drop_keys", _keys),
    "erase": ("drop_keys", _key),
    "erase_prefix": ("drop_prefixes", _prefix),
}


def watch_key_value_methods(cls):
    """Wrap the key-value methods ``cls`` defines so they see buffered chunks."""
    for name, (action, targets) in _WATCHED.items():
        method = cls.__dict__.get(name)
        if method is None or getattr(method, "_zs_watched", False):
            continue
        setattr(cls, name, _watched(method, action, targets, _ITERABLE_ARGUMENT.get(name)))


def _watched(method, action, targets, iterable):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        engine = self.__dict__.get("_zs_hierarchy")
        if engine is not None and engine.buffer is not None and engine.buffer.pending:
            if iterable is not None:
                args, kwargs = _as_list(args, kwargs, iterable)
            getattr(engine.buffer, action)(targets(args, kwargs))
        return method(self, *args, **kwargs)

    wrapper._zs_watched = True
    return wrapper
