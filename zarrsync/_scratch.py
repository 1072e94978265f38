"""Scratch buffers that belong to the thread using them.

A chunk is gathered before it is compressed, and decompressed before it is
copied out, into a buffer the thread reuses instead of new memory per chunk
(new memory costs a page fault per 4 KiB on first touch). Each thread keeps
at most ``config.scratch_keep_bytes`` of them in all, one per purpose;
beyond that a buffer is made for the task and freed with it. The buffers go
when their thread ends. Nothing here is tied to an array.
"""

import threading

from . import config

__all__ = ["buffer", "kept_bytes", "release"]

_local = threading.local()


def buffer(purpose, nbytes):
    """This thread's writable buffer for ``purpose`` (a short name), of at
    least ``nbytes`` bytes and unspecified contents. Valid until this thread
    asks for the same purpose again."""
    kept = _local.__dict__
    buf = kept.get(purpose)
    if buf is not None and len(buf) >= nbytes:
        return buf
    kept.pop(purpose, None)
    buf = bytearray(nbytes)
    if kept_bytes() + nbytes <= config.get("scratch_keep_bytes"):
        kept[purpose] = buf
    return buf


def kept_bytes():
    """Bytes this thread keeps in scratch buffers."""
    return sum(len(b) for b in _local.__dict__.values())


def release():
    """Free every scratch buffer this thread keeps."""
    _local.__dict__.clear()
