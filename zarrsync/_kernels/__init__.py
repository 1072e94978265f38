"""Compiled kernels (Cython). They import only libc/cpython (and, in ``vlen``,
NumPy's C API for StringDType elements), never zarrsync.

Every import of a kernel goes through this package, so it checks first that
the kernels are compiled: a checkout's source folder holds only the ``.pyx``
files, and Python imports it instead of the installed package when it runs
in the checkout (``python -m pytest``, ``python -m zarrsync``). Without this
check the first kernel import fails with a bare "cannot import name".
"""

import importlib.util as _util
import os as _os

# Every kernel module (a .pyx beside this file); checked by tests/test_imports.py.
_MODULES = ("copy", "indexing", "memory", "native", "shard", "transform", "vlen", "zstd")


def _missing():
    """The kernels that have no compiled module to import."""
    return [name for name in _MODULES if _util.find_spec(f"{__name__}.{name}") is None]


def _not_compiled_message(missing):
    package = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    return (
        f"zarrsync's compiled kernels are missing ({', '.join(missing)}): Python "
        f"imported the uncompiled source folder {package} instead of an installed "
        f"zarrsync, typically by running from a checkout, whose folder comes first "
        f"on sys.path. Install zarrsync (pip install .) and run from another "
        f"directory or with python -P (which keeps the current directory off "
        f"sys.path), or build the kernels in place in the checkout with "
        f"python setup.py build_ext --inplace."
    )


_absent = _missing()
if _absent:
    raise ImportError(_not_compiled_message(_absent), name=__name__)
del _absent
