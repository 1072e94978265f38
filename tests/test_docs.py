"""The docs site covers the public API: a cheap text check, not a Sphinx build.

Every public name (``zarrsync.__all__``, the stores, codecs, errors, config,
``zarrsync.dask``, the xarray backend, ``zarrsync.testing``) is named by an
autodoc directive in the hand-written reference (``docs/reference/*.md``),
every page is in a toctree, and every operation of the seed (the OCaml
zarr-sync store API) is in the mapping table. The build itself (``python -m
sphinx -W``) runs in CI.
"""

import ast
import pathlib
import re

import pytest

import zarrsync
import zarrsync.codecs
import zarrsync.config
import zarrsync.errors
import zarrsync.storage

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
PACKAGE = ROOT / "zarrsync"

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason="no docs/ beside the tests")

#: The views and open functions that the API contract fixes (API.md).
CONTRACT_NAMES = ["Array", "Group", "open_group", "open_array", "open"]

#: Every operation of the seed's store API (its in-memory backend's page).
SEED_OPERATIONS = [
    "create", "create_group", "create_array", "array_metadata", "group_metadata",
    "find_child_nodes", "find_all_nodes", "erase_group_node", "erase_array_node",
    "erase_all_nodes", "group_exists", "array_exists", "write_array", "read_array",
    "reshape",
]


def _all_of(module):
    """``module.__all__`` read from its source (no import: dask, xarray may be absent)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "__all__" for t in node.targets)):
            return ast.literal_eval(node.value)
    raise AssertionError(f"zarrsync/{module}.py has no __all__")


def _reference_text():
    return "\n".join(p.read_text() for p in sorted(REFERENCE.glob("*.md")))


def _documented():
    """Every dotted name an autodoc directive of the reference names."""
    pattern = re.compile(r"^\.\. auto(?:class|function|exception|data|module|method|"
                         r"attribute)::\s+(\S+)", re.M)
    return set(pattern.findall(_reference_text()))


def _public_names():
    names = [(f"zarrsync.{n}", n) for n in zarrsync.__all__ + CONTRACT_NAMES]
    for module in (zarrsync.codecs, zarrsync.storage, zarrsync.errors, zarrsync.config):
        names += [(f"{module.__name__}.{n}", n) for n in module.__all__]
    for module in ("dask", "xarray_backend", "testing"):
        names += [(f"zarrsync.{module}.{n}", n) for n in _all_of(module)]
    names += [("zarrsync.dask", None), ("zarrsync.xarray_backend", None),
              ("zarrsync.testing", None)]
    return sorted(set(names), key=str)


@pytest.mark.parametrize("dotted, name", _public_names(), ids=lambda v: str(v))
def test_every_public_name_is_in_the_reference(dotted, name):
    documented = _documented()
    modules = {"zarrsync." + m for m in ("codecs", "config", "errors", "metadata", "storage",
                                         "dask", "xarray_backend", "testing")}
    if dotted in modules or (name and f"zarrsync.{name}" in modules):
        # A module: an automodule directive for it.
        module = dotted if dotted in modules else f"zarrsync.{name}"
        assert module in documented, f"no '.. automodule:: {module}' in docs/reference/"
        return
    # Re-exported names may be documented under the top level or their module.
    candidates = {dotted, f"zarrsync.{name}"}
    for module in ("codecs", "storage", "errors", "config", "metadata"):
        candidates.add(f"zarrsync.{module}.{name}")
    assert candidates & documented, f"{dotted} is not documented in docs/reference/*.md"


def _pages():
    """Every page of the site: docs/**/*.md outside build folders."""
    return [p for p in DOCS.rglob("*.md")
            if not any(part.startswith("_") for part in p.relative_to(DOCS).parts)]


def test_every_page_is_in_a_toctree():
    # Toctree entries are relative to their page; every toctree lives in docs/ itself.
    toctrees = re.findall(r"```\{toctree\}(.*?)```", "\n".join(p.read_text() for p in _pages()),
                          re.S)
    listed = {line.strip() for block in toctrees for line in block.splitlines()
              if line.strip() and not line.strip().startswith(":")}
    for page in sorted(str(p.relative_to(DOCS).with_suffix("")) for p in _pages()):
        assert page == "index" or page in listed, f"docs/{page}.md is in no toctree"
    assert "cli" in listed  # docs/cli.md, the command line page


def test_every_seed_operation_is_mapped():
    table = (DOCS / "seed-mapping.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    for op in SEED_OPERATIONS:
        assert any(row.startswith(f"| `{op} ") for row in rows), f"seed operation {op}"
        if op != "create":
            assert callable(getattr(zarrsync.Store, op)), op
            assert any(f"store.{op}(" in row for row in rows), f"Python side of {op}"


@pytest.mark.parametrize("cls, member", [
    ("Array", "append"), ("Array", "info"), ("Array", "resize"), ("Group", "tree"),
    ("Group", "create_array"), ("Group", "create_group"), ("Group", "members"),
])
def test_view_members_have_docstrings(cls, member):
    # ".. autoclass:: zarrsync.Array / :members:" renders members with a docstring only.
    assert "zarrsync." + cls in _documented()
    assert (getattr(getattr(zarrsync, cls), member).__doc__ or "").strip(), f"{cls}.{member}"


def test_every_config_setting_is_in_the_parallelism_guide():
    table = (DOCS / "guides" / "parallelism.md").read_text()
    for name in zarrsync.config.DEFAULTS:
        assert f"| `{name}` |" in table, f"config setting {name} missing from the guide's table"


def test_quickstart_walks_through_the_open_functions_and_views():
    text = (DOCS / "quickstart.md").read_text()
    for needle in ("zs.open_group(", "create_array(", ".append(", ".tree()", ".info",
                   "zs.open_array(", "zs.open(", 'engine="zarrsync"', "zarrsync tree",
                   "pip install"):
        assert needle in text, needle


def test_generated_files_stay_out_of_the_tree():
    conf = (DOCS / "conf.py").read_text()
    assert "sphinx.ext.autosummary" not in conf  # hand-written reference: nothing generated
    assert "docs/generated/" in (ROOT / ".gitignore").read_text()
