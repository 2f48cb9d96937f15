"""No import cycles among our own modules (issue #11).

Every module under harness/ and services/ is parsed with ``ast`` (nothing is imported), and
every import of one of our packages becomes an arrow in the module graph: top-level imports,
imports under ``if TYPE_CHECKING:`` and imports inside functions alike. A type-only or deferred
import still ties the two modules together (each needs the other to be understood or to run),
so a circle through one is a circle. Importing ``a.b.c`` is an arrow to ``a.b.c`` only, not to
the packages ``a`` and ``a.b`` that Python also initialises on the way: counting those would make
every package that re-exports its modules a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PACKAGE_DIRS = {
    "netbed": ROOT / "harness" / "netbed",
    "netbed_core": ROOT / "harness" / "netbed_core",
    "netbed_testkit": ROOT / "harness" / "netbed_testkit",
    "netbed_agent": ROOT / "services" / "agent" / "netbed_agent",
    "netbed_router": ROOT / "services" / "router" / "netbed_router",
}
"""Our packages: the top-level name -> its directory."""

def module_name(path: Path) -> str | None:
    """The dotted module name of ``path`` if it belongs to one of our packages."""
    for top, directory in PACKAGE_DIRS.items():
        if path.is_relative_to(directory):
            parts = [top, *path.relative_to(directory).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join(parts)
    return None


def modules() -> dict[str, Path]:
    """Every module of our packages: dotted name -> file."""
    found = {}
    for directory in PACKAGE_DIRS.values():
        for path in sorted(directory.rglob("*.py")):
            name = module_name(path)
            assert name is not None
            found[name] = path
    return found


def imported_names(tree: ast.Module, name: str, is_package: bool) -> Iterator[tuple[str, str | None]]:
    """What ``tree`` (module ``name``) imports, anywhere in the file, as absolute dotted names.

    ``import X`` gives ``(X, None)``; ``from X import y`` gives ``(X.y, X)``: ``y`` may be a
    submodule or a name defined in ``X``, which the caller tells apart.
    """
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):  # walks into functions and `if TYPE_CHECKING:` blocks too
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                yield f"{base}.{alias.name}", base


def graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports."""
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for submodule, base in imported_names(tree, name, path.name == "__init__.py"):
            if base is not None and submodule in mods:
                found: str | None = submodule
            elif base is not None:
                found = base if base in mods else None
            else:  # `import a.b.c`: the longest prefix that is one of our modules
                parts = submodule.split(".")
                found = next((".".join(parts[:i]) for i in range(len(parts), 0, -1)
                              if ".".join(parts[:i]) in mods), None)
            if found is not None and found != name:
                edges[name].add(found)
    return edges


def strongly_connected(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm (iterative): the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(frozenset(component))
    return out


def one_cycle(component: frozenset[str], edges: dict[str, set[str]]) -> list[str]:
    """A closed path through ``component`` starting at its first module, for the message."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth first: the shortest way back to `start`
        following = []
        for node in frontier:
            for child in sorted(edges[node] & component):
                if child == start:
                    path = [start]
                    while node != start:
                        path.append(node)
                        node = previous[node]
                    return [start, *reversed(path[1:]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not a cycle")


def describe(component: frozenset[str], edges: dict[str, set[str]]) -> str:
    return f"{' -> '.join(one_cycle(component, edges))} (component: {', '.join(sorted(component))})"


def test_no_import_cycles() -> None:
    edges = graph()
    cycles = strongly_connected(edges)
    assert not cycles, "import cycles:\n" + "\n".join(describe(c, edges) for c in cycles)


def test_the_graph_sees_type_checking_and_local_imports() -> None:
    """The collector must count the import forms that hid the cycles of issue #11."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from .. import other\n"
        "import netbed_core.netem.model\n"
        "if TYPE_CHECKING:\n"
        "    from .typed import T\n"
        "def f():\n"
        "    from netbed.local import g\n"
    )
    names = set(imported_names(ast.parse(source), "netbed_core.netem.x", is_package=False))
    assert names == {
        ("typing.TYPE_CHECKING", "typing"),
        ("netbed_core.netem.sibling", "netbed_core.netem"),
        ("netbed_core.other", "netbed_core"),
        ("netbed_core.netem.model", None),
        ("netbed_core.netem.typed.T", "netbed_core.netem.typed"),
        ("netbed.local.g", "netbed.local"),
    }


def test_cycle_finder_finds_a_cycle_and_names_it() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    (component,) = strongly_connected(edges)
    assert component == {"a", "b", "c"}
    assert one_cycle(component, edges) == ["a", "b", "c", "a"]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []
