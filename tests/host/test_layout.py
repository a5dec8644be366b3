"""The host package's shape: no import cycles (even through imports inside functions), every
command in the CLI's one table, and no MicroPython code inside the host package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tinysense.paths import REPO_ROOT

HOST = REPO_ROOT / "host" / "tinysense"


def _module_name(path: Path) -> str:
    parts = path.relative_to(HOST.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the tinysense modules it imports anywhere in its body."""
    modules = {_module_name(p): p for p in HOST.rglob("*.py")
               if "snippets" not in p.parts}   # node-side MicroPython, never imported here
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found = [f"{node.module}.{a.name}" for a in node.names
                         if f"{node.module}.{a.name}" in modules]
                targets.update(found or ([node.module] if node.module in modules else []))
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in modules)
        targets.discard(name)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}   # 1: on the path, 2: done
    path: list[str] = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycles_in_host():
    graph = import_graph()
    assert len(graph) > 80 and graph["tinysense.bench.models"]   # the graph is really built
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_command_is_in_the_one_table():
    from tinysense.cli import COMMANDS, build_parser

    parser = build_parser()   # raises if a module registers other commands than listed
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == list(COMMANDS)
    assert all(m.startswith("tinysense.cli.") for m in COMMANDS.values())


def test_micropython_shims_live_outside_the_host_package():
    # the virtual board's machine/os shims are MicroPython code: ports/unix-vboard/
    assert (REPO_ROOT / "ports" / "unix-vboard" / "_vboot.py").exists()
    assert not (HOST / "targets" / "vboard").exists()


def test_the_architecture_doc_lists_every_host_package():
    doc = (REPO_ROOT / "docs" / "architecture.md").read_text()
    packages = sorted(p.parent.name for p in HOST.glob("*/__init__.py"))
    listed = sorted(set(re.findall(r"^\| `([a-z_]+)/` \|", doc, re.MULTILINE)))
    assert listed == packages, f"docs/architecture.md lists {listed}; the tree has {packages}"
