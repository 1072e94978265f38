"""Sphinx configuration (numpydoc + MyST).

Build: ``python -m sphinx -W --keep-going -b html docs /tmp/zarrsync-docs-html``
(warnings are errors; the output goes outside the checkout). The API
reference (``docs/reference/*.md``) is written by hand with autodoc
directives: nothing is generated into ``docs/``.
"""

project = "zarrsync"
author = "zarrsync developers"
extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_member_order = "bysource"
myst_heading_anchors = 3  # links such as usage.md#opening-data-you-do-not-trust
exclude_patterns = ["_build", "generated", "**/.ipynb_checkpoints"]
html_theme = "alabaster"
