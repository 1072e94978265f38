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

import json
import os

import pytest
from hypothesis import HealthCheck, settings

import s3_server
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
    parser.addoption("--interop-matrix", default=None, metavar="PATH",
                     help="write the interop matrix cells the run tested, with their "
                          "outcomes, to PATH as JSON (see tests/interop_matrix.py)")
    parser.addoption("--fuzz-examples", type=int, default=None,
                     help="examples per fuzz target (tests/test_fuzz.py); default: its "
                          "CI_EXAMPLES")


def pytest_configure(config):
    zarrsync.config.set(fast_paths=config.getoption("--fast-paths") == "on")
    config.addinivalue_line("markers", "interop: a test that moves data between zarrsync "
                                       "and another library (cells in its module's "
                                       "interop_cells)")


# -- the interop matrix -------------------------------------------------------------------
#
# A module that defines ``interop_cells(name, params)`` declares, per test, the
# cells of docs/interop.md it checks; their outcomes are written with
# --interop-matrix (tests/interop_matrix.py renders the page from them).

_CELLS = pytest.StashKey()
_OUTCOMES = {}


def pytest_collection_modifyitems(config, items):
    for item in items:
        declare = getattr(getattr(item, "module", None), "interop_cells", None)
        if declare is None:
            continue
        callspec = getattr(item, "callspec", None)
        cells = declare(item.originalname, callspec.params if callspec else {})
        if cells:
            item.add_marker(pytest.mark.interop)
            item.stash[_CELLS] = cells


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    cells = item.stash.get(_CELLS, None)
    if cells is None or not (report.when == "call" or report.failed or report.skipped):
        return
    previous = _OUTCOMES.get(item.nodeid, (cells, "passed"))[1]
    state = "failed" if "failed" in (previous, report.outcome) else report.outcome
    _OUTCOMES[item.nodeid] = (cells, state)


def pytest_sessionfinish(session):
    path = session.config.getoption("--interop-matrix")
    if path:
        rows = [dict(c, outcome=state) for cells, state in _OUTCOMES.values() for c in cells
                if state != "skipped"]
        with open(path, "w") as f:
            json.dump(rows, f, indent=1)


def pytest_report_header(config):
    return f"zarrsync fast paths: {config.getoption('--fast-paths')}"


# -- stores -----------------------------------------------------------------------------

STORE_FACTORIES = [
    ("memory", lambda path: zarrsync.MemoryStore()),
    ("filesystem", lambda path: zarrsync.FilesystemStore(path)),
    # A sibling file: ``path`` may not exist yet, and is unique per store.
    ("zip", lambda path: zarrsync.ZipStore(path.with_name(path.name + ".zip"), mode="w")),
    # A bucket of its own on the moto S3 server the tests start (tests/s3_server.py).
    ("s3", lambda path: s3_server.new_store()),
]


@pytest.fixture(params=[f for _, f in STORE_FACTORIES],
                ids=[name for name, _ in STORE_FACTORIES])
def store(request, tmp_path):
    """A new, empty store of each backend (function scope: one per test)."""
    return request.param(tmp_path / "store")


#: The backends the Hypothesis tests run on: not S3, whose examples would each
#: make a bucket and dozens of HTTP requests (minutes per test); the contract
#: and the hierarchy tests cover it.
PROPERTY_FACTORIES = [(name, f) for name, f in STORE_FACTORIES if name != "s3"]


@pytest.fixture(scope="module",
                params=[f for _, f in PROPERTY_FACTORIES],
                ids=[name for name, _ in PROPERTY_FACTORIES])
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
