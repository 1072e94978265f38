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

KERNELS = ["copy", "transform", "indexing", "shard"]

extensions = [
    Extension(
        f"zarrsync._kernels.{name}",
        [f"zarrsync/_kernels/{name}.pyx"],
        extra_compile_args=compile_args,
    )
    for name in KERNELS
]

# force: a debug build must not reuse C generated with the checks off.
setup(ext_modules=cythonize(extensions, compiler_directives=directives, force=DEBUG))
