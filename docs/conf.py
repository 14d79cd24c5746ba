"""Sphinx configuration of bitfab's documentation (``sphinx-build -W docs OUT``)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import amaranth_inventory  # noqa: E402  (beside this file)
import render_results  # noqa: E402

project = "bitfab"
author = "the bitfab developers"
copyright = "2026, the bitfab developers"

# Docstrings are numpydoc style, with the `Members` section Amaranth's own components
# use for their signature; napoleon renders both (as Amaranth's documentation does),
# where the numpydoc extension drops unknown sections.
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.intersphinx"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_custom_sections = [("Members", "params_style")]
napoleon_use_rtype = False
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "results/*.json", "results_tables.md"]
myst_heading_anchors = 3
html_theme = "alabaster"

# The API reference: every module's docstrings, numpydoc style. Members are listed
# where a module declares them (`__all__`), in source order.
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
# `name` in a docstring refers to code: rendered as a literal, never a broken link.
default_role = "literal"

# Amaranth's API, linked without a download: an inventory of its installed modules
# and the pages of its v0.5 documentation that describe them (`amaranth_inventory`).
intersphinx_mapping = {
    "amaranth": (amaranth_inventory.BASE_URL, str(amaranth_inventory.write(HERE / "_build_inv"))),
}

# The results tables, rendered from the measurement records in docs/results/.
render_results.render(HERE / "results", HERE / "results_tables.md")


def _write_api_reference(target):
    """api.md: an automodule section for every module of the installed packages, found
    from pyproject's package-dir, so a new module is documented without a listing."""
    import tomllib
    root = HERE.parent
    dirs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    lines = ["# API reference", "",
             "Every module's docstrings. Amaranth's own classes link to "
             "[Amaranth's documentation](https://amaranth-lang.org/docs/amaranth/).", ""]
    for package, folder in dirs.items():
        lines += [f"## `{package}`", ""]
        for path in sorted((root / folder).rglob("*.py")):
            parts = [p for p in path.relative_to(root / folder).with_suffix("").parts
                     if p != "__init__"]
            if parts and parts[-1] == "__main__":
                continue
            module = ".".join([package, *parts])
            lines += [f"### `{module}`", "", "```{eval-rst}", f".. automodule:: {module}",
                      "```", ""]
    Path(target).write_text("\n".join(lines))


_write_api_reference(HERE / "api.md")
