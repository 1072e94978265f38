"""The package's import graph: no cycles, lazy ones included, and imports point down.

The graph is read from the source (every ``import`` statement anywhere in a
module, inside functions too), so an import made at call time counts.
"""

import ast
import pathlib

import pytest

import zarrsync

PACKAGE = pathlib.Path(zarrsync.__file__).parent

#: The layers, top first: a module may import from its own layer or below.
LAYERS = [
    # Integrations, imported by nothing in the package: their libraries load only with them.
    {"zarrsync.dask", "zarrsync.xarray_backend", "zarrsync.testing", "zarrsync.cli",
     "zarrsync.__main__"},
    {"zarrsync", "zarrsync.array", "zarrsync.group"},
    {"zarrsync.storage"},
    {"zarrsync.pipeline"},
    {"zarrsync.metadata"},
    {"zarrsync._zarr2"},
    {"zarrsync.codecs"},
    {"zarrsync.indexing", "zarrsync.dtypes", "zarrsync.nodes", "zarrsync.scheduler",
     "zarrsync._scratch"},
    {"zarrsync.config", "zarrsync.errors"},
    {"zarrsync._kernels"},
]


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path, modules):
    """The zarrsync modules ``path`` imports (anywhere in it)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                # ``from pkg import mod`` imports the module; ``from mod import x`` the module.
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def graph():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    pyx = {module_name(p): p for p in PACKAGE.rglob("*.pyx")}
    edges = {}
    for name, path in modules.items():
        edges[name] = {m for m in imports_of(path, modules.keys() | pyx.keys())
                       if (m in modules or m in pyx) and m != name}
    for name, path in pyx.items():
        text = path.read_text()
        edges[name] = {m for m in pyx if m != name
                       and (f"from {m} cimport" in text or f"from {m} import" in text)}
    return edges


def layer_of(name):
    for depth, layer in enumerate(LAYERS):
        if any(name == top or name.startswith(top + ".") for top in layer):
            # The package itself and its submodules: the longest match wins.
            best = max((top for top in layer if name == top or name.startswith(top + ".")),
                       key=len)
            if best != "zarrsync" or name in ("zarrsync",):
                return depth
    raise AssertionError(f"{name} is in no layer")


def test_no_import_cycles():
    edges = graph()
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in edges[node]:
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in edges:
        if node not in state:
            visit(node, [node])


@pytest.mark.parametrize("name", sorted(graph()))
def test_imports_point_down(name):
    for target in graph()[name]:
        if target.startswith(name + "."):
            continue  # a package re-exporting its own modules
        assert layer_of(target) >= layer_of(name), f"{name} imports {target}, a layer above"


def test_kernels_import_nothing_above_them():
    for name, targets in graph().items():
        if name.startswith("zarrsync._kernels"):
            assert all(t.startswith("zarrsync._kernels") for t in targets), (name, targets)


def test_every_kernel_is_checked_at_import():
    from zarrsync import _kernels

    pyx = sorted(p.stem for p in (PACKAGE / "_kernels").glob("*.pyx"))
    assert sorted(_kernels._MODULES) == pyx


def test_uncompiled_source_folder_says_what_to_do(tmp_path):
    # A checkout before its build: the source folder without compiled modules,
    # imported from the current directory (as "python -m pytest" there would).
    import shutil
    import subprocess
    import sys

    shutil.copytree(PACKAGE, tmp_path / "zarrsync", ignore=shutil.ignore_patterns(
        "*.so", "*.pyd", "*.c", "__pycache__"))
    proc = subprocess.run([sys.executable, "-c", "import zarrsync"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: zarrsync's compiled kernels are missing"), proc.stderr
    assert str(tmp_path / "zarrsync") in last
    for hint in ("uncompiled source folder", "pip install .", "python -P",
                 "python setup.py build_ext --inplace"):
        assert hint in last, (hint, last)
