"""Build the Cython kernels of zarrsync.

Checks that cost time on hot loops (bounds, wraparound, initialisation) are
off; ZARRSYNC_CYTHON_DEBUG=1 turns them back on for a checked build.
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("ZARRSYNC_CYTHON_DEBUG", "") not in ("", "0")

directives = {
    "language_level": 3,
    "embedsignature": True,
    "binding": True,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
}

compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]

KERNELS = ["copy", "transform", "native", "indexing", "shard", "vlen", "memory", "zstd"]

# Kernels that include NumPy's C headers: vlen reads and writes StringDType
# elements through the NEP 55 string API (NumPy >= 2.0 at build and run time);
# memory allocates arrays through a NEP 49 memory handler.
NUMPY_KERNELS = {"vlen", "memory"}


# Cython's shortcuts into list and str internals are off, so the kernels use
# CPython's public API only (../shared/STYLE.md, ".pyx / .pxd").
PUBLIC_API_ONLY = [("CYTHON_USE_PYLIST_INTERNALS", "0"), ("CYTHON_USE_UNICODE_INTERNALS", "0")]


def build_options(name):
    if name not in NUMPY_KERNELS:
        return {"define_macros": PUBLIC_API_ONLY}
    import numpy

    return {
        "include_dirs": [numpy.get_include()],
        "define_macros": PUBLIC_API_ONLY + [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                                            ("NPY_TARGET_VERSION", "NPY_2_0_API_VERSION")],
    }


extensions = [
    Extension(
        f"zarrsync._kernels.{name}",
        [f"zarrsync/_kernels/{name}.pyx"],
        extra_compile_args=compile_args,
        **build_options(name),
    )
    for name in KERNELS
]

# The generated C goes under build/, out of the package. force: a debug build
# must not reuse C generated with the checks off.
setup(ext_modules=cythonize(extensions, compiler_directives=directives, force=DEBUG,
                            build_dir="build/cython"))
