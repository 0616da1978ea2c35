"""The code layout: the engine imports no training code, and its modules import each other without cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import deepiso.realtime
import deepiso.testing

ENGINE_ONLY = """
import importlib, pkgutil, sys
import deepiso.realtime as rt
from deepiso.realtime import cli
cli.build_parser()
names = ["host", "chain", "dsp", "windows", "frame", "plugins", "plugins.basic", "plugins.isolator",
         "plugins.resample", "onnx_model", "streams", "devices", "priority", "pulse", "live", "demo",
         "virtual_device"]
names += [m.name.removeprefix("deepiso.realtime.") for m in pkgutil.walk_packages(rt.__path__, "deepiso.realtime.")]
for name in names:
    importlib.import_module("deepiso.realtime." + name)
loaded = sorted(m for m in sys.modules
                if m.split(".")[0] == "torch" or m.startswith(("deepiso.train", "deepiso.export")))
print("loaded:", loaded)
sys.exit(1 if loaded else 0)
"""


def test_the_engine_imports_no_training_code_until_a_command_needs_it():
    out = subprocess.run([sys.executable, "-c", ENGINE_ONLY], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def _modules(package: str, folder: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([package, *parts])] = path
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Which of ``modules`` each one imports: at module level, in functions or under ``TYPE_CHECKING``."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        wanted: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                wanted.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                submodules = {f"{source}.{alias.name}" for alias in node.names} & modules.keys()
                wanted.update(submodules or {source})
        graph[name] = {m for m in wanted if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_engine_modules_import_each_other_without_cycles():
    modules = _modules("deepiso.realtime", Path(deepiso.realtime.__path__[0]))
    modules.update(_modules("deepiso.testing", Path(deepiso.testing.__path__[0])))
    graph = import_graph(modules)
    assert "deepiso.realtime.plugins.resample" in graph["deepiso.realtime.host"]  # the graph sees real imports
    assert cycles(graph) == []


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    # guards the test above: a cycle closed by a function-local relative import is found
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "a.py").write_text("from .b import B\n")
    (tmp_path / "b.py").write_text("B = 1\n\ndef f():\n    from . import a\n    return a\n")
    (tmp_path / "c.py").write_text("import pkg.a\n")
    graph = import_graph(_modules("pkg", tmp_path))
    assert graph["pkg.b"] == {"pkg.a"} and graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
