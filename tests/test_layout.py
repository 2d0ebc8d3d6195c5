"""The package's rooms import one way: the engine stands alone, the envs need no training code, and no module
imports itself back through others (read from the source with `ast`, so nothing here depends on import order)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "waypoint_gym"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The waypoint_gym modules a file imports, at module level or inside functions (TYPE_CHECKING blocks too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("waypoint_gym")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("waypoint_gym"):
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}  # `from pkg import module`
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {m: {t for t in imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}


@pytest.mark.parametrize(("room", "forbidden"), [
    ("waypoint_gym.engine", ("waypoint_gym.envs", "waypoint_gym.training", "waypoint_gym.evaluation",
                             "waypoint_gym.cli", "waypoint_gym.worlds")),
    ("waypoint_gym.envs", ("waypoint_gym.training", "waypoint_gym.evaluation", "waypoint_gym.cli")),
    ("waypoint_gym.worlds", ("waypoint_gym.envs", "waypoint_gym.training", "waypoint_gym.evaluation",
                             "waypoint_gym.cli")),
    ("waypoint_gym.training", ("waypoint_gym.evaluation", "waypoint_gym.cli")),
    ("waypoint_gym.distributed", ("waypoint_gym.training", "waypoint_gym.evaluation", "waypoint_gym.cli")),
])
def test_imports_run_one_way(room, forbidden):
    wrong = sorted((m, t) for m, targets in GRAPH.items() if m.startswith(room)
                   for t in targets if t.startswith(forbidden))
    assert not wrong, f"{room} must not import {forbidden}: {wrong}"


def test_no_import_loops():
    """Between modules (a package's `__init__` re-exporting its own modules is not a loop)."""
    edges = {m: {t for t in targets if not m.startswith(t + ".")}
             for m, targets in GRAPH.items()}
    done, stack, loops = set(), [], []

    def visit(m: str) -> None:
        if m in stack:
            loops.append(stack[stack.index(m):] + [m])
            return
        if m in done:
            return
        stack.append(m)
        for t in sorted(edges[m]):
            if not m.startswith(t + ".") and not t.startswith(m + "."):  # a package and its own modules
                visit(t)
        stack.pop()
        done.add(m)

    for m in sorted(edges):
        visit(m)
    assert not loops, f"import loops: {loops}"


def test_the_checker_sees_imports():
    """The rules above could pass on a graph that missed every import; they do not."""
    assert "waypoint_gym.engine.controls" in GRAPH["waypoint_gym.engine.world_engine"]
    assert "waypoint_gym.envs.world_batch" in GRAPH["waypoint_gym.envs.world_env"]
    assert "waypoint_gym.envs.world_batch" in GRAPH["waypoint_gym.evaluation.harness"]
