"""The shape of the code, enforced: no import cycles, and no layer importing one above it.

Layers, lowest first (a module may import its own layer and the ones below):
  records:  errors, model, failpoints, identity, settings (what everything shares)
  plumbing: http, raw, raw_stream, report (columns, schemas, build, serialise), sinks,
            staging, quality, checks
  venues:   venues (connectors: fetch + pure parse)
  stages:   config (knows the venue registry), stages, alerts
  shell:    runner, cli (the core's entry points) — and `assets`, the Dagster code location,
            which the core never imports; nor does it import dagster.
The simulator is a test server: the core imports it only from the CLI's `demo`/`simulate`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("etl_project", "assets")

#: Module prefix -> prefixes it must never import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "etl_project.model": ("etl_project",),
    "etl_project.errors": ("etl_project",),
    "etl_project.settings": ("etl_project.config", "etl_project.venues", "etl_project.stages"),
    "etl_project.report": ("etl_project.venues", "etl_project.stages", "etl_project.sinks",
                           "etl_project.config", "assets.runner", "assets.cli"),
    "etl_project.sinks": ("etl_project.venues", "etl_project.stages", "assets.runner",
                          "assets.cli"),
    "etl_project.http": ("etl_project.venues", "etl_project.stages", "etl_project.sinks"),
    "etl_project.raw": ("etl_project.venues", "etl_project.stages"),
    "etl_project.venues": ("etl_project.stages", "etl_project.sinks", "etl_project.config",
                           "assets.runner", "assets.cli"),
    "etl_project.stages": ("assets.runner", "assets.cli"),
    "etl_project": ("assets", "dagster", "dagster_webserver", "dagster_celery"),
}  # fmt: skip


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Modules `path` imports at run time (not under `if TYPE_CHECKING:`), by full name: a
    submodule named in `from package import submodule` counts as that submodule."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            names.update(subs if len(subs) == len(node.names) else {node.module, *subs})
    return names


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(GRAPH[v] & MODULES.keys()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert _cycles() == []


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_a_layer_above_it(layer: str) -> None:
    bad = sorted(
        f"{module} imports {name}"
        for module, names in GRAPH.items()
        if module == layer or module.startswith(layer + ".")
        for name in names
        for banned in FORBIDDEN[layer]
        if (name == banned or name.startswith(banned + "."))
        and not (layer == "etl_project" and name.startswith("etl_project"))
    )
    assert bad == []


def test_the_checker_sees_a_cycle_and_a_violation() -> None:
    """The rules above can fail: the graph holds what the files import."""
    assert "etl_project.model" in GRAPH["etl_project.venues.base"]
    assert "dagster" in GRAPH["assets.definitions"]
