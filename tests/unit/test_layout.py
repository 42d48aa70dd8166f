"""The house rules of the code: which folder may import which, no import cycles, lint clean.

Each package's docstring names what it may import on a line `May import: a, b, c`; a module
obeys the rule of the nearest package that has one. Every import counts: at the top, inside
functions, and under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "projections", "streams")
# What the pure core may never import, whatever its docstring says.
FRAMEWORKS = ("faust", "aiokafka", "aiohttp", "kafka", "mode")
NO_FRAMEWORKS = ("schemas", "projections")
NO_FAUST = ("streams.kafka", "streams.replay", "streams.tools")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = modules()
# C extensions (projections/_fold.c): modules too, importing nothing of ours.
EXTENSIONS = {".".join(path.relative_to(ROOT).with_suffix("").parts) for package in PACKAGES for path in (ROOT / package).rglob("*.c")}


def imports_of(name: str, path: Path) -> Iterator[str]:
    """Every module this one imports, resolved to the most specific module it names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in MODULES or full in EXTENSIONS else base


def rule_of(name: str) -> tuple[str, list[str]]:
    """The nearest package (this module included) whose docstring says what it may import."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        package = ".".join(parts[:end])
        path = MODULES.get(package)
        if path is None:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        for line in doc.splitlines():
            if line.startswith("May import:"):
                return package, [item.strip() for item in line.removeprefix("May import:").split(",")]
    raise AssertionError(f"{name}: no package above it says what it may import")


def covered(target: str, allowed: list[str]) -> bool:
    return any(target == rule or target.startswith(rule + ".") for rule in allowed)


def own(target: str) -> bool:
    return target.split(".")[0] in PACKAGES


GRAPH = {name: sorted({t for t in imports_of(name, path) if own(t) and t != name}) for name, path in MODULES.items()}


class TestImportRules:
    def test_every_folder_says_what_it_may_import(self) -> None:
        for package in ("schemas", "projections", "streams", "streams.kafka", "streams.replay", "streams.live", "streams.tools"):
            assert rule_of(package)[0] == package

    @pytest.mark.parametrize("name", sorted(MODULES))
    def test_a_module_imports_only_what_its_folder_allows(self, name: str) -> None:
        package, allowed = rule_of(name)
        wrong = [t for t in GRAPH[name] if not covered(t, allowed)]
        assert not wrong, f"{name} imports {wrong}; {package} may import only {allowed}"

    @pytest.mark.parametrize("name", sorted(MODULES))
    def test_the_core_never_imports_a_framework_and_only_the_worker_imports_faust(self, name: str) -> None:
        third_party = {t.split(".")[0] for t in imports_of(name, MODULES[name]) if not own(t)}
        if name.split(".")[0] in NO_FRAMEWORKS:
            assert not third_party & set(FRAMEWORKS), f"{name} imports {third_party & set(FRAMEWORKS)}"
        if any(name == p or name.startswith(p + ".") for p in NO_FAUST):
            assert "faust" not in third_party and "mode" not in third_party, f"{name} imports Faust"

    def test_there_is_no_import_cycle(self) -> None:
        cycles = strongly_connected(GRAPH)
        assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)

    def test_the_check_sees_a_cycle_and_a_forbidden_direction(self) -> None:
        assert strongly_connected({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
        assert not covered("streams.tools.broker", rule_of("streams.live.app")[1])
        assert not covered("streams.replay.run", rule_of("streams.live.app")[1])
        assert covered("streams.kafka.topics", rule_of("streams.live.app")[1])


def strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or not."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_ruff_finds_nothing() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 200


def test_no_function_over_60_lines_and_no_class_over_200() -> None:
    """Small functions and classes a reader can hold in mind (STYLE.md): the bar of issue 25."""
    too_long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.end_lineno - node.lineno + 1 > limit:
                too_long.append(f"{name}.{node.name} ({node.end_lineno - node.lineno + 1} lines, at most {limit})")
    assert not too_long, too_long
