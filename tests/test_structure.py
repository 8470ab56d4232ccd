"""The package's shape: no import cycle anywhere in ``producer/``, and the
read-only audit imports nothing that writes.

Imports are read from the source with :mod:`ast`, top-level and
function-local alike (a lazy import still makes a cycle, only a hidden one).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "producer"

#: modules that write the catalog: the audit must reach none of them
WRITERS = ("producer.commit", "producer.ingest", "producer.removal", "producer.repair", "producer.api")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The producer module that importing ``name`` loads last (a package's
    ``__init__`` when ``name`` is an attribute of it), or None if not ours."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Producer modules ``module`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from a import b``: module a.b if it is one, else package a
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _target(name, modules)
            if target is not None and target != module:
                out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_cycle_in_producer() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_audit_imports_nothing_that_writes() -> None:
    graph = import_graph()
    assert "producer.audit" in graph
    writers = sorted(reachable(graph, "producer.audit") & set(WRITERS))
    assert not writers, f"producer.audit (read-only) reaches writing modules: {writers}"


def test_cycle_finder_sees_function_local_imports(tmp_path: Path) -> None:
    """The checker itself: a cycle made only of lazy imports is found."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from producer.api import register\n", encoding="utf-8")
    assert _imports("producer.m", source, {"producer.api": source, "producer": source}) == {"producer.api"}


def test_import_producer_and_the_cli_do_not_load_gdal() -> None:
    """`import producer` and `stac-producer --help` stay cheap: rasterio (GDAL,
    about 0.5 s) loads with the first extraction, not at import, and pyarrow /
    duckdb (the mirror and search) with the first write or search. One module
    importing one of them at its top (even for a type) undoes it."""
    heavy = (
        "rasterio",
        "numpy",
        "pyarrow",
        "duckdb",
        "stac_geoparquet",
        "xarray",
        "netCDF4",
        "cftime",
        "zarr",
    )
    code = f"import sys, producer, producer.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    )
    assert out.stdout.strip() == "[]", out.stdout
