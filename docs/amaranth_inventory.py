"""An intersphinx inventory of Amaranth's API, made from the installed package.

Sphinx's intersphinx downloads a project's ``objects.inv``; bitfab builds its
documentation without a network, so this writes one instead: every public name
of the Amaranth modules bitfab uses, pointed at the page of Amaranth's
documentation (of the installed version) that describes that module, with the
name as the anchor, as Amaranth's own Sphinx build makes them.
"""

import importlib
import zlib
from pathlib import Path

import amaranth

__all__ = ["BASE_URL", "PAGES", "write"]

BASE_URL = f"https://amaranth-lang.org/docs/amaranth/v{amaranth.__version__}/"
# module -> its page in Amaranth's documentation
PAGES = {"amaranth.hdl": "reference.html", "amaranth.lib.wiring": "stdlib/wiring.html",
         "amaranth.lib.stream": "stdlib/stream.html", "amaranth.lib.data": "stdlib/data.html",
         "amaranth.lib.memory": "stdlib/memory.html", "amaranth.lib.fifo": "stdlib/fifo.html",
         "amaranth.lib.enum": "stdlib/enum.html", "amaranth.lib.io": "stdlib/io.html",
         "amaranth.sim": "simulator.html"}


def _entries():
    for module_name, page in PAGES.items():
        module = importlib.import_module(module_name)
        yield f"{module_name} py:module 0 {page}#module-$ -"
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name, None)
            role = "class" if isinstance(value, type) else "function" if callable(value) \
                else "data"
            yield f"{module_name}.{name} py:{role} 1 {page}#$ -"


def write(folder):
    """Write the inventory as ``folder/amaranth.inv``; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    header = (f"# Sphinx inventory version 2\n# Project: Amaranth\n"
              f"# Version: {amaranth.__version__}\n"
              f"# The remainder of this file is compressed using zlib.\n").encode()
    path = folder / "amaranth.inv"
    path.write_bytes(header + zlib.compress(("\n".join(_entries()) + "\n").encode()))
    return path
