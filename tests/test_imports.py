"""The import graph of `src/tinykws`, read from the sources: no circles, and every import of
tinykws inside a function says why it is not at the top.

Every import counts, also the ones inside functions and under `if TYPE_CHECKING:`: the
graph a reader draws from the files is the one Python runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tinykws"
# Modules whose in-function imports are their design, not an accident: each CLI command
# imports only its own stage, so `tinykws --help` stays fast and a missing optional extra
# (torch, onnx, unicorn) fails only the command that needs it.
LAZY_MODULES = {"cli.py", "cli_data.py", "cli_detect.py",
                # each stage loads when its step runs (the order of the job reads top-down)
                "pipeline.py",
                # the background negatives maker's child imports it: no torch there
                "pipeline_negatives.py"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _target(name: str, modules: dict[str, Path]) -> str:
    """The module `name` (a module, or a name inside one) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def import_graph() -> dict[str, set[str]]:
    """module -> the tinykws modules it imports (anywhere in the file)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                         else node.module for a in node.names]
            else:
                continue
            graph[mod] |= {_target(n, modules) for n in names if n.startswith("tinykws")} - {mod, ""}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle as [a, b, ..., a], or [] when the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str]:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return []

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return []


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert not cycle, "import circle: " + " -> ".join(cycle)


def _unexplained_inner_imports(path: Path) -> list[int]:
    """Lines of `from tinykws ...` imports inside functions with no comment on their line
    or the line above (the comment says why the import waits: optional or costly)."""
    lines = path.read_text().splitlines()
    out = []
    for fn in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        optional = {id(n) for t in ast.walk(fn) if isinstance(t, ast.Try)  # try: import / except
                    for b in t.body for n in ast.walk(b)}                     # ImportError: optional
        for node in ast.walk(fn):
            if id(node) in optional:
                continue
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tinykws"):
                here, above = lines[node.lineno - 1], lines[node.lineno - 2]
                if "#" not in here and not above.strip().startswith("#"):
                    out.append(node.lineno)
    return sorted(set(out))


# the lazy modules import their stages inside the commands by design (LAZY_MODULES): they
# are not parametrized here (CI forbids skips), and the test below keeps the list honest
@pytest.mark.parametrize("path", sorted(p for p in SRC.rglob("*.py")
                                        if p.relative_to(SRC).as_posix() not in LAZY_MODULES),
                         ids=lambda p: str(p.relative_to(SRC)))
def test_tinykws_imports_sit_at_the_top(path: Path):
    rel = path.relative_to(SRC).as_posix()
    assert _unexplained_inner_imports(path) == [], (
        f"{rel}: move these imports to the top, or say on the line above why they wait")


def test_the_lazy_modules_exist_and_are_lazy():
    """Every LAZY_MODULES entry is a module that does import inside functions (a module
    that no longer does goes back under the rule above)."""
    for rel in LAZY_MODULES:
        assert (SRC / rel).is_file(), rel
        inner = [n for fn in ast.walk(ast.parse((SRC / rel).read_text()))
                 if isinstance(fn, ast.FunctionDef) for n in ast.walk(fn)
                 if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("tinykws")]
        assert inner, f"{rel} has no import inside a function: take it out of LAZY_MODULES"
