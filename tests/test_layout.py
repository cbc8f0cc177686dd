"""The layout's rules, checked on the source: imports point down, TensorFlow stays out of the
foundation and the CLI start-up, and no function grows past 80 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "mt_cli"
FOUNDATION = {"mt_cli", "mt_cli.errors", "mt_cli.config", "mt_cli.textio", "mt_cli.tokenizer",
              "mt_cli.files", "mt_cli.batching", "mt_cli.hypothesis", "mt_cli.quiet", "mt_cli.extras",
              "mt_cli.alignment", "mt_cli.microbatch", "mt_cli.constraints", "mt_cli.hardware",
              "mt_cli.runtime"}
USE_CASES = {"mt_cli.translate", "mt_cli.evaluate", "mt_cli.quickstart", "mt_cli.curves",
             "mt_cli.attention_maps", "mt_cli.serve"}
TF_PACKAGES = ("mt_cli.model", "mt_cli.export", "mt_cli.training")
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> tuple[int, str]:
    """(rank, group): a module may import lower ranks, and its own group."""
    if module in FOUNDATION:
        return 0, "foundation"
    for rank, package in enumerate(("mt_cli.model", "mt_cli.export", "mt_cli.training"), start=1):
        if module == package or module.startswith(package + "."):
            return rank, package
    if module in USE_CASES:
        return 4, module  # use cases do not import each other
    return 5, "mt_cli.cli"  # mt_cli.cli.* and mt_cli.__main__


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
    known = FOUNDATION | USE_CASES
    for name in modules():
        assert (name in known or name.startswith(TF_PACKAGES + ("mt_cli.cli",))
                or name == "mt_cli.__main__"), f"{name}: place it in a layer (tests/test_layout.py)"


def test_imports_point_down() -> None:
    for name, tree in modules().items():
        rank, group = layer(name)
        for target, node in imported(tree):
            if not target.startswith("mt_cli"):
                continue
            other_rank, other_group = layer(target)
            ok = other_rank < rank or other_group == group
            assert ok, f"{name}:{node.lineno} imports {target} (layer {other_group}) from layer {group}"


def test_tensorflow_imported_only_at_package_boundaries() -> None:
    """TensorFlow/Keras: at module level inside model/export/training and the use cases that
    need them; inside a function only in the CLI's start_tensorflow."""
    for name, tree in modules().items():
        top_level = {id(node) for node in tree.body}
        for target, node in imported(tree):
            if target.split(".")[0] not in ("tensorflow", "keras"):
                continue
            if id(node) in top_level:
                assert name.startswith(TF_PACKAGES) or name in USE_CASES, f"{name}:{node.lineno}"
            else:
                assert name == "mt_cli.cli.common", f"{name}:{node.lineno}: function-level TF import"


def test_foundation_cli_and_ctranslate2_path_start_without_tensorflow() -> None:
    """`mt-cli --help` and translating with a CTranslate2 export never load TensorFlow."""
    names = sorted(FOUNDATION | {"mt_cli.cli.app", "mt_cli.evaluate", "mt_cli.translate",
                                 "mt_cli.export.locate", "mt_cli.export.ct2_translator"})
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


def test_tests_import_helpers_not_conftest() -> None:
    for path in (REPO / "tests").glob("*.py"):
        targets = [target for target, _ in imported(ast.parse(path.read_text()))]
        assert "conftest" not in targets, path
