"""Selections: normalise user indexing into per-axis selections for the kernels.

A selection is a tuple of ``int``, ``slice`` (step >= 1), ``Ellipsis`` or a
1-D integer (or boolean mask) list/array per axis; missing trailing axes
mean the whole axis. Each axis becomes a ``(start, step, count)`` tuple or
an int64 index array, which ``_kernels.indexing.ChunkPlan`` intersects with
the chunk grid.
"""

import operator

import numpy as np

from ._kernels.indexing import COVERED, EDGE, PARTIAL, ChunkPlan
from .errors import InvalidArraySlice, short_repr

__all__ = ["Selection", "normalize_selection", "expand_selection", "ChunkPlan",
           "ElementPlan", "COVERED", "EDGE", "PARTIAL"]


class Selection:
    """A normalised selection of an array of ``shape``.

    Attributes
    ----------
    axes : list
        Per axis, ``(start, step, count)`` or an int64 index array.
    full_shape : tuple
        The selection's shape with every axis kept (int axes have length 1).
    out_shape : tuple
        The shape NumPy gives the result (int axes dropped).
    """

    __slots__ = ("axes", "full_shape", "out_shape")

    def __init__(self, axes, full_shape, out_shape):
        self.axes = axes
        self.full_shape = full_shape
        self.out_shape = out_shape

    def plan(self, shape, chunk_shape, elements=False):
        """The ``ChunkPlan`` of this selection over the grid of ``chunk_shape``;
        an ``ElementPlan`` if ``elements`` (data types whose elements are
        references)."""
        plan = ChunkPlan(shape, chunk_shape, self.axes)
        return ElementPlan(plan) if elements else plan


def _as_index(obj):
    """An ``int`` for integer-like scalars (not bool), else None."""
    if isinstance(obj, (bool, np.bool_)):
        return None
    try:
        return operator.index(obj)
    except TypeError:
        return None


def expand_selection(selection, ndim):
    """``selection`` as a tuple of one entry per axis (``Ellipsis`` expanded)."""
    if not isinstance(selection, tuple):
        selection = (selection,)
    n_ellipsis = sum(1 for s in selection if s is Ellipsis)
    if n_ellipsis > 1:
        raise InvalidArraySlice(f"a selection may hold at most one Ellipsis, got {n_ellipsis}")
    if n_ellipsis:
        i = next(i for i, s in enumerate(selection) if s is Ellipsis)
        fill = ndim - (len(selection) - 1)
        if fill < 0:
            raise InvalidArraySlice(f"too many indices: the array has {ndim} dimensions, "
                                    f"the selection indexes {len(selection) - 1}")
        selection = selection[:i] + (slice(None),) * fill + selection[i + 1:]
    if len(selection) > ndim:
        raise InvalidArraySlice(f"too many indices: the array has {ndim} dimensions, "
                                f"the selection indexes {len(selection)}")
    return selection + (slice(None),) * (ndim - len(selection))


def _strict_bound(value, n, axis, what):
    if value < 0:
        value += n
    if not 0 <= value <= n:
        raise InvalidArraySlice(f"slice {what} {value} is out of bounds for axis {axis} "
                                f"of length {n}")
    return value


def _slice_axis(s, n, axis, clip):
    if s.step is not None and _as_index(s.step) is None:
        raise InvalidArraySlice(f"slice step must be an integer, got {s.step!r}")
    step = 1 if s.step is None else _as_index(s.step)
    if step < 1:
        raise InvalidArraySlice(f"slice step must be >= 1 on axis {axis}, got {step}")
    for bound in (s.start, s.stop):
        if bound is not None and _as_index(bound) is None:
            raise InvalidArraySlice(f"slice bounds must be integers, got {bound!r}")
    if clip:
        start, stop, step = slice(s.start, s.stop, step).indices(n)
    else:
        start = 0 if s.start is None else _strict_bound(_as_index(s.start), n, axis, "start")
        stop = n if s.stop is None else _strict_bound(_as_index(s.stop), n, axis, "stop")
    count = max(0, -((start - stop) // step))
    return (start if count else 0, step, count)


def _list_axis(obj, n, axis):
    arr = np.asarray(obj)
    if arr.ndim != 1:
        raise InvalidArraySlice(f"an index list must be 1-D on axis {axis}, "
                                f"got shape {arr.shape}")
    if arr.dtype == np.bool_:
        if arr.shape[0] != n:
            raise InvalidArraySlice(f"a boolean mask on axis {axis} must have length {n}, "
                                    f"got {arr.shape[0]}")
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise InvalidArraySlice(f"index list on axis {axis} must hold integers, "
                                f"got {arr.dtype}")
    idx = arr.astype(np.int64)
    idx = np.where(idx < 0, idx + n, idx)
    if idx.min() < 0 or idx.max() >= n:
        bad = arr[(idx < 0) | (idx >= n)][0]
        raise InvalidArraySlice(f"index {bad} is out of bounds for axis {axis} of length {n}")
    return np.ascontiguousarray(idx)


def _in_bounds_ints_and_slices(selection, shape):
    """The ``Selection`` of a tuple of one ``int`` or step-1 ``slice`` per axis,
    all within bounds, or None for anything else (the general path then
    normalises it or raises). Point reads come this way: it is several times
    cheaper than the general path."""
    axes, full_shape, out_shape = [], [], []
    for s, n in zip(selection, shape):
        if type(s) is int:  # not bool, not NumPy integers: those take the general path
            if s < 0:
                s += n
            if not 0 <= s < n:
                return None
            axes.append((s, 1, 1))
            full_shape.append(1)
            continue
        if type(s) is not slice or s.step is not None:
            return None
        start, stop = s.start, s.stop
        if start is None:
            start = 0
        elif type(start) is not int:
            return None
        elif start < 0:
            start += n
        if stop is None:
            stop = n
        elif type(stop) is not int:
            return None
        elif stop < 0:
            stop += n
        if not (0 <= start <= n and 0 <= stop <= n):
            return None
        count = stop - start if stop > start else 0
        axes.append((start if count else 0, 1, count))
        full_shape.append(count)
        out_shape.append(count)
    return Selection(axes, tuple(full_shape), tuple(out_shape))


def normalize_selection(selection, shape, clip=False):
    """Normalise ``selection`` for an array of ``shape``.

    With ``clip=False`` (the store API), an int or slice bound beyond the
    shape raises ``InvalidArraySlice``; with ``clip=True`` slices are
    clipped as NumPy does (ints are still checked).
    """
    ndim = len(shape)
    if type(selection) is tuple and len(selection) == ndim:
        simple = _in_bounds_ints_and_slices(selection, shape)
        if simple is not None:
            return simple
    selection = expand_selection(selection, ndim)
    axes, full_shape, out_shape = [], [], []
    for axis, (s, n) in enumerate(zip(selection, shape)):
        i = _as_index(s)
        if i is not None:
            if i < 0:
                i += n
            if not 0 <= i < n:
                raise InvalidArraySlice(
                    f"index {s} is out of bounds for axis {axis} of length {n}")
            axes.append((i, 1, 1))
            full_shape.append(1)
        elif isinstance(s, slice):
            ax = _slice_axis(s, n, axis, clip)
            axes.append(ax)
            full_shape.append(ax[2])
            out_shape.append(ax[2])
        elif isinstance(s, (list, tuple, np.ndarray, range)):
            ax = _list_axis(s, n, axis)
            axes.append(ax)
            full_shape.append(len(ax))
            out_shape.append(len(ax))
        elif s is None or s is np.newaxis:
            raise InvalidArraySlice("newaxis (None) is not supported in a selection")
        else:
            raise InvalidArraySlice(f"unsupported selection on axis {axis}: expected an int, "
                                    f"a slice, ... or a 1-D list of ints or bools, got "
                                    f"{short_repr(s)}")
    return Selection(axes, tuple(full_shape), tuple(out_shape))


def _numpy_index(per_axis):
    """A NumPy index from ``ChunkPlan.element_index`` entries (slices and position
    buffers) selecting their outer product, as the plan's kernels do."""
    axes = [np.frombuffer(a, dtype=np.intp) if isinstance(a, bytearray) else a
            for a in per_axis]
    if not axes:
        return Ellipsis  # rank 0: a 0-d view, not the element itself
    if sum(isinstance(a, np.ndarray) for a in axes) > 1:
        # Several integer-list axes: outer product, as numpy.ix_ (slices as ranges).
        return np.ix_(*[np.arange(a.start, a.stop, a.step) if isinstance(a, slice) else a
                        for a in axes])
    return tuple(axes)


class ElementPlan:
    """A ``ChunkPlan`` whose ``gather``/``scatter`` copy elements with NumPy indexing.

    For object (``bytes``) and ``StringDType`` (``string``) arrays, whose
    elements are references rather than raw bytes, so the plan's byte-copy
    kernels must not move them. Everything else is the wrapped plan's.
    """

    __slots__ = ("plan",)

    def __init__(self, plan):
        self.plan = plan

    def __getattr__(self, name):
        return getattr(self.plan, name)

    def gather(self, i, chunk, out, stream=False):
        """Copy chunk ``i``'s selected elements from ``chunk`` into ``out``."""
        chunk_side, sel_side = self.plan.element_index(i)
        out[_numpy_index(sel_side)] = chunk[_numpy_index(chunk_side)]

    def scatter(self, i, value, chunk):
        """Copy the elements of ``value`` that fall in chunk ``i`` into ``chunk``."""
        chunk_side, sel_side = self.plan.element_index(i)
        chunk[_numpy_index(chunk_side)] = value[_numpy_index(sel_side)]
