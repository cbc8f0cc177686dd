"""The layout's rules, checked on the source: imports point down and never in a circle,
TensorFlow stays out of the foundation and the CLI start-up, and no function grows past 80
lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "mt_cli"
# The layers, lowest first, as the packages under mt_cli/: a module may import from lower
# layers and from its own group (a use case in app/ is a group of its own).
LAYERS = ("core", "model", "engines", "training", "app", "cli")
TF_FREE_LAYERS = ("core", "cli")  # TensorFlow never at module level here
MAX_MODULE_LINES = 450  # one concept a module: past this a module is doing several jobs
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> tuple[int, str]:
    """(rank, group) of an mt_cli module, read from its package name."""
    parts = module.split(".")
    if module == "mt_cli":
        return -1, "mt_cli"  # the version: anyone may read it
    if module == "mt_cli.__main__":
        return len(LAYERS), "mt_cli.__main__"
    if len(parts) < 2 or parts[1] not in LAYERS:
        raise AssertionError(f"{module}: not in a layer package ({', '.join(LAYERS)})")
    rank = LAYERS.index(parts[1])
    if parts[1] == "app" and len(parts) > 2:
        return rank, ".".join(parts[:3])  # use cases do not import each other
    return rank, ".".join(parts[:2])


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def imported(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """(module, node) for every import, at any depth; `from pkg import mod` counts as pkg.mod."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, node))
    return found


def test_every_module_has_a_layer() -> None:
    """Nothing but __init__.py and __main__.py at the top of mt_cli/; every other module sits in
    a layer package."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py"], top
    for name in modules():
        layer(name)


def test_imports_point_down() -> None:
    for name, tree in modules().items():
        rank, group = layer(name)
        for target, node in imported(tree):
            if not target.startswith("mt_cli"):
                continue
            other_rank, other_group = layer(target)
            ok = other_rank < rank or other_group == group
            assert ok, f"{name}:{node.lineno} imports {target} (layer {other_group}) from layer {group}"


def _import_graph() -> dict[str, set[str]]:
    """mt_cli module -> the mt_cli modules it imports, at any depth (inside functions and
    `if TYPE_CHECKING:` too); `from pkg import mod` counts as pkg.mod where that is a module."""
    trees = modules()
    graph: dict[str, set[str]] = {}
    for name, tree in trees.items():
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                subs = {f"{node.module}.{alias.name}" for alias in node.names} & trees.keys()
                targets |= subs or {node.module}
        graph[name] = {t for t in targets if t in trees and t != name}
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (a -> b -> ... -> a), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for target in sorted(graph[node]):
            found = visit(target, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    return next((found for name in sorted(graph) if (found := visit(name, []))), None)


def test_no_import_circles() -> None:
    """No two modules import each other, however indirectly (TYPE_CHECKING imports included: a
    circle there is one concept split across two files)."""
    circle = _circle(_import_graph())
    assert circle is None, " -> ".join(circle or [])


def test_tensorflow_imported_only_at_package_boundaries() -> None:
    """TensorFlow/Keras: at module level anywhere but core/ and cli/; inside a function only in
    the CLI's start_tensorflow."""
    for name, tree in modules().items():
        top_level = {id(node) for node in tree.body}
        for target, node in imported(tree):
            if target.split(".")[0] not in ("tensorflow", "keras"):
                continue
            if id(node) in top_level:
                assert name.split(".")[1] not in TF_FREE_LAYERS, f"{name}:{node.lineno}"
            else:
                assert name == "mt_cli.cli.common", f"{name}:{node.lineno}: function-level TF import"


def test_foundation_cli_and_ctranslate2_path_start_without_tensorflow() -> None:
    """`mt-cli --help` and translating with a CTranslate2 export never load TensorFlow."""
    core = [name for name in modules() if layer(name)[1] == "mt_cli.core"]
    names = sorted([*core, "mt_cli.cli.main", "mt_cli.app.evaluate", "mt_cli.app.translate",
                    "mt_cli.engines.choice", "mt_cli.engines.locate", "mt_cli.engines.ctranslate2"])
    code = ("import sys\n" + "".join(f"import {n}\n" for n in names)
            + "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
            + "print(bad)\nsys.exit(1 if bad else 0)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_function_longer_than_80_lines() -> None:
    long = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert not long, long


def test_no_module_longer_than_450_lines() -> None:
    long = [f"{path.relative_to(REPO)}: {n} lines" for path in sorted((REPO / "mt_cli").rglob("*.py"))
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not long, long


def test_tests_import_helpers_not_conftest() -> None:
    for path in (REPO / "tests").glob("*.py"):
        targets = [target for target, _ in imported(ast.parse(path.read_text()))]
        assert "conftest" not in targets, path


def test_layers_are_called_through_keras() -> None:
    """No `layer.call(...)` bypassing Keras's `__call__` (which builds the layer, opens its name
    scope and passes the training flag on); only `super().call(...)` in an override."""
    bypasses = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "call":
                target = node.func.value
                is_super = isinstance(target, ast.Call) and getattr(target.func, "id", None) == "super"
                if not is_super:
                    bypasses.append(f"{name}:{node.lineno}")
    assert not bypasses, bypasses
