"""The package's dependency rules, checked on the source (docs/architecture.md): no import cycles among ssl4rl
modules counting imports inside functions, nothing outside `commands/` imports `commands/`, only `backends/`
imports verl or TRL, and ssl4rl's own modules are imported at module top."""

from __future__ import annotations

import ast
import os
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "ssl4rl")


def _modules() -> dict[str, str]:
    modules = {}
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                modules[module.removesuffix(".__init__")] = path
    return modules


MODULES = _modules()


def _target(module: str, path: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not path.endswith("__init__.py"):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _own(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _visit(node, module: str, path: str, in_function: bool, found: list) -> None:
    for child in ast.iter_child_nodes(node):
        inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        if isinstance(child, ast.ImportFrom):
            target = _target(module, path, child)
            names = [target] + [f"{target}.{a.name}" for a in child.names]
        elif isinstance(child, ast.Import):
            names = [a.name for a in child.names]
        else:
            _visit(child, module, path, inner, found)
            continue
        for name in names:
            if name.startswith("ssl4rl"):
                own = _own(name)
                if own and own != module:
                    found.append((own, in_function))
            else:
                found.append((name.split(".")[0], in_function))


def _imports() -> dict[str, list[tuple[str, bool]]]:
    """module -> [(imported ssl4rl module or third-party top-level name, imported inside a function?)]"""
    found = defaultdict(list)
    for module, path in MODULES.items():
        with open(path) as f:
            _visit(ast.parse(f.read()), module, path, False, found[module])
    return found


IMPORTS = _imports()


def test_no_import_cycles():
    graph = {m: {t for t, _ in IMPORTS[m] if t in MODULES} for m in MODULES}
    state: dict[str, int] = {}
    cycles = []

    def walk(node, stack):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                walk(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state:
            walk(module, [module])
    assert not cycles, cycles


def test_the_library_never_imports_commands():
    offenders = [
        (m, t)
        for m in MODULES
        if not m.startswith(("ssl4rl.commands", "ssl4rl.cli"))
        for t, _ in IMPORTS[m]
        if t.startswith("ssl4rl.commands")
    ]
    assert not offenders, offenders


def test_only_backends_import_verl_or_trl():
    offenders = sorted(
        {
            m
            for m in MODULES
            for t, _ in IMPORTS[m]
            if t in ("verl", "trl") and not m.startswith("ssl4rl.backends")
        }
    )
    assert not offenders, offenders


def test_own_modules_are_imported_at_module_top():
    local = sorted({(m, t) for m in MODULES for t, inner in IMPORTS[m] if inner and t.startswith("ssl4rl")})
    assert not local, local
