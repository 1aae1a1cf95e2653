"""The size rules of `src/tinykws` (docs/architecture.md): no module over 600 lines, no
function over 100, so a reader can hold each one in view."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tinykws"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100


def oversized(root: Path = SRC) -> list[str]:
    """Every module and function over its limit, as `path: what (lines)`."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel, text = path.relative_to(root).as_posix(), path.read_text()
        if (n := len(text.splitlines())) > MAX_MODULE_LINES:
            out.append(f"{rel}: module ({n} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                    out.append(f"{rel}: {node.name} ({n} lines)")
    return out


def test_oversized_finds_a_long_module_and_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "big.py").write_text("def f():\n" + body + "\n" + "\n" * MAX_MODULE_LINES)
    (tmp_path / "small.py").write_text("def g():\n    return 1\n")
    assert oversized(tmp_path) == [f"big.py: module ({MAX_MODULE_LINES + MAX_FUNCTION_LINES + 1} lines)",
                                   f"big.py: f ({MAX_FUNCTION_LINES + 1} lines)"]


def test_no_module_or_function_in_src_is_too_long():
    assert oversized() == []
