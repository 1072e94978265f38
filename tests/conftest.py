"""Shared pytest configuration: Hypothesis profiles and store fixtures.

Hypothesis profiles
-------------------
``dev``  few examples, no deadline: the default for local runs.
``ci``   more examples, no deadline, derandomized (reproducible CI runs).

The profile is chosen by ``HYPOTHESIS_PROFILE``; without it, ``ci`` when the
``CI`` environment variable is set (as on GitHub Actions), else ``dev``::

    HYPOTHESIS_PROFILE=ci python -m pytest tests/test_properties.py

Fast paths
----------
``pytest --fast-paths=off`` runs the suite with every native fast path off
(``zarrsync.config.set(fast_paths=False)``): the system libzstd, aligned
outputs and non-temporal stores, and libdeflate reads. Every result must be
the same; CI runs the suite both ways.

Stores
------
``STORE_FACTORIES`` lists ``(id, factory)`` pairs; a factory takes a fresh,
empty directory (a ``pathlib.Path`` that in-memory stores ignore) and returns
a new, empty store. Every fixture below is parametrised over the list, so a
backend is tested everywhere by adding one line to it.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

import zarrsync

# -- Hypothesis profiles --------------------------------------------------------------

settings.register_profile(
    "dev",
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


# -- fast paths -------------------------------------------------------------------------

def pytest_addoption(parser):
    parser.addoption("--fast-paths", choices=("on", "off"), default="on",
                     help="run with zarrsync's native fast paths on (default) or off")
    parser.addoption("--fuzz-examples", type=int, default=None,
                     help="examples per fuzz target (tests/test_fuzz.py); default: its "
                          "CI_EXAMPLES")


def pytest_configure(config):
    zarrsync.config.set(fast_paths=config.getoption("--fast-paths") == "on")


def pytest_report_header(config):
    return f"zarrsync fast paths: {config.getoption('--fast-paths')}"


# -- stores -----------------------------------------------------------------------------

STORE_FACTORIES = [
    ("memory", lambda path: zarrsync.MemoryStore()),
    ("filesystem", lambda path: zarrsync.FilesystemStore(path)),
    # A sibling file: ``path`` may not exist yet, and is unique per store.
    ("zip", lambda path: zarrsync.ZipStore(path.with_name(path.name + ".zip"), mode="w")),
]


@pytest.fixture(params=[f for _, f in STORE_FACTORIES],
                ids=[name for name, _ in STORE_FACTORIES])
def store(request, tmp_path):
    """A new, empty store of each backend (function scope: one per test)."""
    return request.param(tmp_path / "store")


@pytest.fixture(scope="module",
                params=[f for _, f in STORE_FACTORIES],
                ids=[name for name, _ in STORE_FACTORIES])
def store_factory(request, tmp_path_factory):
    """A callable returning a new, empty store of each backend on every call.

    For ``@given`` tests, which need a fresh store per example: Hypothesis
    rejects function-scoped fixtures there, because they are not reset
    between examples.
    """
    factory = request.param

    def make():
        return factory(tmp_path_factory.mktemp("store", numbered=True))

    return make
