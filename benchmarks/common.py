"""Data shared by the asv suites and compare.py: fields that compress like real ones."""

import numpy as np


def smooth_field(shape, dtype="float32", seed=0, noise=1e-3):
    """A smooth field plus small noise (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    axes = [np.linspace(0, 4, n, dtype=np.float64) for n in shape]
    field = np.zeros(shape, dtype=np.float64)
    for i, ax in enumerate(axes):
        view = [1] * len(shape)
        view[i] = len(ax)
        field = field + np.sin(ax * (i + 1)).reshape(view)
    field += rng.normal(0, noise, shape)
    return field.astype(dtype)
