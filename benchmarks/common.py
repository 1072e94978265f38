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


def short_strings(n, mean_len=12, seed=0):
    """``n`` strings of 1..2*mean_len-1 characters (mean ``mean_len``), mostly
    ASCII with some accented and CJK letters, as a NumPy ``StringDType`` array."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 2 * mean_len, n)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789 _-ABCDEFGHIJéüø中"))
    weights = np.ones(len(alphabet))
    weights[-4:] = 0.05  # non-ASCII letters are rare
    chars = rng.choice(alphabet, size=int(lengths.sum()), p=weights / weights.sum())
    text = "".join(chars.tolist())
    ends = np.cumsum(lengths).tolist()
    starts = [0] + ends[:-1]
    return np.array([text[a:b] for a, b in zip(starts, ends)], dtype=np.dtypes.StringDType())
