"""The headless core's import graph has no circles: a module never imports, at any depth and not even for
type checking, a module that imports it. Layers stay readable from the bottom (errors, models, store) up to
the core, the API parts over it and the daemon and CLI on top."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mist_core"


def module_names() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the package that ``name`` imports anywhere in its text (lazy and type-only included)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                child = f"{source}.{alias.name}"
                found.add(child if child in known else source)
    return {m for m in found if m in known and m != name}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
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
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_core_has_no_import_circles() -> None:
    modules = module_names()
    graph = {name: imports_of(name, path, set(modules)) for name, path in modules.items()}
    assert circles(graph) == []


def test_the_core_and_its_collaborators_never_import_the_api_parts() -> None:
    # The parts sit above the core: the core, the pipeline, the orders and the git side get what they need
    # handed in, so none of them names mist_core.local.
    modules = module_names()
    known = set(modules)
    below = [n for n in modules if not n.startswith(("mist_core.local", "mist_core.daemon", "mist_core.cli"))]
    below.remove("mist_core")  # the package's face hands LocalMist on, lazily
    offenders = {
        name: sorted(m for m in imports_of(name, modules[name], known) if m.startswith("mist_core.local"))
        for name in below
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_an_api_part_imports_no_other_part_and_not_the_view() -> None:
    modules = module_names()
    known = set(modules)
    shared = {"mist_core.local.part"}
    parts = [
        n for n in modules if n.startswith("mist_core.local.") and n not in shared | {"mist_core.local.view"}
    ]
    offenders = {
        name: sorted(
            m
            for m in imports_of(name, modules[name], known)
            if m.startswith("mist_core.local") and m not in shared
        )
        for name in parts
    }
    assert {name: found for name, found in offenders.items() if found} == {}
