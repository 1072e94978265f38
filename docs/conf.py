"""Sphinx configuration (numpydoc + MyST). Build: sphinx-build docs docs/_build."""

project = "zarrsync"
author = "zarrsync developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
autosummary_generate = True
numpydoc_show_class_members = False
myst_heading_anchors = 3  # links such as usage.md#opening-data-you-do-not-trust
exclude_patterns = ["_build"]
html_theme = "alabaster"
