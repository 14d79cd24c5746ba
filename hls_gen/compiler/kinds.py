"""The kinds of design the flow builds, asked in order: the first that accepts a model
(or a saved ``golden.json``) builds it. A new kind is a `DesignKind` module and one
entry here."""

from bitfab.hls_gen.compiler.conv_engine import EngineKind
from bitfab.hls_gen.compiler.graph_kind import GraphKind
from bitfab.hls_gen.compiler.network import NetworkKind
from bitfab.hls_gen.errors import BitfabError

__all__ = ["KINDS", "kind_for_model", "kind_for_golden"]

# Graphs before chains (both freeze to a golden `Graph`); networks last: they take any
# other module, and the freezer names what it cannot map.
KINDS = (EngineKind(), GraphKind(), NetworkKind())


def kind_for_model(model):
    """The kind that builds `model` (a PyTorch module or a frozen golden model)."""
    for kind in KINDS:
        if kind.accepts(model):
            return kind
    raise BitfabError(f"no design kind builds a {type(model).__name__}")


def kind_for_golden(value, where="golden.json"):
    """The kind of a saved golden model (``golden.json`` as a dict)."""
    for kind in KINDS:
        if kind.accepts_golden(value):
            return kind
    raise BitfabError(f"{where}: unknown kind {value.get('kind')!r}; kinds: "
                      f"{', '.join(k.name for k in KINDS)}")
