"""No import circles anywhere in bitfab: every module's imports (top-level and inside
functions alike), walked from the source, form a graph without cycles."""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules(root, package_dirs):
    """{dotted module name: path} of every module under `package_dirs`
    ({package: folder}, as pyproject's ``package-dir``)."""
    found = {}
    for package, folder in package_dirs.items():
        for path in (root / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(root / folder).with_suffix("").parts
                     if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def imports(name, path, known):
    """The modules of `known` that module `name` (at `path`) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)] \
                if node.level else []
            prefix = ".".join(base + ([node.module] if node.module else []))
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan), ignoring a
    package's loop with its own submodules (``__init__`` re-exports)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return [c for c in found
            if not all(any(o.startswith(m + ".") for o in c) or any(m.startswith(o + ".")
                       for o in c) for m in c)]


def import_graph(root):
    config = tomllib.loads((root / "pyproject.toml").read_text())
    found = modules(root, config["tool"]["setuptools"]["package-dir"])
    return {name: imports(name, path, found) for name, path in found.items()}


def test_bitfab_has_no_import_cycles():
    graph = import_graph(ROOT)
    assert len(graph) > 60 and "bitfab.hls_gen.compiler.flow" in graph
    assert "bitfab.hls_gen.compiler.kinds" in graph["bitfab.hls_gen.compiler.flow"]
    assert cycles(graph) == []


def test_the_walk_finds_a_cycle_through_an_import_inside_a_function(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from .b import thing\n")
    (tmp_path / "pkg" / "b.py").write_text("def thing():\n    from pkg import c\n")
    (tmp_path / "pkg" / "c.py").write_text("import pkg.a\n")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools.package-dir]\n"pkg" = "pkg"\n')
    assert cycles(import_graph(tmp_path)) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_sim_runs_what_the_compiler_made_and_rtl_stands_alone():
    """`sim/` runs cases the compiler made (its benches compare with the golden model);
    it never builds them from the compiler's plans. `rtl/` imports neither."""
    graph = import_graph(ROOT)
    for package, banned in (("bitfab.sim", ("bitfab.hls_gen.compiler",)),
                            ("bitfab.rtl", ("bitfab.hls_gen", "bitfab.sim"))):
        found = {(module, target) for module, targets in graph.items()
                 if module.startswith(package + ".") or module == package
                 for target in targets if target.startswith(banned)}
        assert found == set(), found
