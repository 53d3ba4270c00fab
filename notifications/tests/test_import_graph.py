"""The import graph holds the layering docs/architecture.md describes.

Every project module is parsed (not imported), and every import in it counts,
module-level or inside a function: a function-level import still ties the two
modules together, it only postpones the moment the circle bites.

- (a) The HTTP layer sits on top: a module outside an `api` package (or an
  `api.py` module) never imports one, so services, selectors, backends, tasks and
  models can be used without the API. Tests, the URL confs that mount the
  surfaces and the app config that loads the schema extensions are above it.
- (b) Apps depend one way: `alerts`, `templates_app`, `builder`, `webhooks` → `notifications`,
  and `builder` → `templates_app` through `builder/templating.py` only.
- (c) No circles between project modules.
"""

from __future__ import annotations

import ast
from collections import deque
from functools import cache
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("notifications", "alerts", "templates_app", "builder", "webhooks", "config", "bench")
APPS = ("notifications", "alerts", "templates_app", "builder", "webhooks")

# Modules above the HTTP layer that may import from it, and why.
API_IMPORTERS_ALLOWED = {
    "config.urls": "mounts the surfaces (the token and health views)",
    "alerts.urls": "mounts the alerts surface",
    "templates_app.urls": "mounts the templates surface",
    "webhooks.urls": "mounts the webhook endpoints of the IBL surface",
    "notifications.apps": "registers the token scheme with drf-spectacular when the app is ready",
}

# Which apps each app may import (besides itself).
APP_DEPENDENCIES = {
    "notifications": set(),
    "templates_app": {"notifications"},
    "alerts": {"notifications", "templates_app"},
    "builder": {"notifications", "templates_app"},
    # Listens to the core's lifecycle signals; the core never imports it.
    "webhooks": {"notifications"},
}
# The one module of an app allowed to reach another app beside `notifications`.
APP_GATEWAYS = {
    ("builder", "templates_app"): {"builder.templating"},
    # Alerts reach templates only for the content front door (renderer_for).
    ("alerts", "templates_app"): {"alerts.services"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    for path in ROOT.glob("*.py"):
        found[_module_name(path)] = path
    return found


def _resolve(name: str) -> str | None:
    """The project module `name` loads, or None for one outside the project."""
    modules = _modules()
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def _imports() -> dict[str, dict[str, int]]:
    """module -> {imported project module: first line}, every import in the file included."""
    modules = _modules()
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # `from pkg import sub` loads the submodule `pkg.sub`; `from mod import name` loads `mod`.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
                ]
            for target in targets:
                resolved = _resolve(target)
                if resolved and resolved != module:
                    edges.setdefault(resolved, node.lineno)
        graph[module] = edges
    return graph


def _is_test(module: str) -> bool:
    parts = module.split(".")
    return "tests" in parts or module == "conftest"


def _in_api_layer(module: str) -> bool:
    return "api" in module.split(".")


def _app(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in APPS else None


def test_nothing_below_the_api_imports_it():
    wrong = [
        f"{module} (line {line}) imports {target}"
        for module, edges in sorted(_imports().items())
        if not _in_api_layer(module) and not _is_test(module) and module not in API_IMPORTERS_ALLOWED
        for target, line in sorted(edges.items())
        if _in_api_layer(target)
    ]
    assert not wrong, "modules below the HTTP layer import it:\n" + "\n".join(wrong)


def test_every_allowed_api_importer_needs_it():
    # An entry that no longer imports the API would silently allow its next import of it.
    graph = _imports()
    unneeded = [
        module for module in API_IMPORTERS_ALLOWED if not any(_in_api_layer(target) for target in graph.get(module, {}))
    ]
    assert not unneeded, f"allowed to import the API but do not: {unneeded}"


def test_apps_depend_one_way():
    wrong = []
    for module, edges in sorted(_imports().items()):
        app = _app(module)
        if app is None or _is_test(module):
            continue
        for target, line in sorted(edges.items()):
            other = _app(target)
            if other is None or other == app:
                continue
            gateway = APP_GATEWAYS.get((app, other))
            if other not in APP_DEPENDENCIES[app] or (gateway is not None and module not in gateway):
                wrong.append(f"{module} (line {line}) imports {target}")
    assert not wrong, "imports against the app dependency direction:\n" + "\n".join(wrong)


def _components(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _shortest_cycle(graph: dict[str, dict[str, int]], start: str, within: set[str]) -> list[str]:
    """The shortest chain start -> ... -> start inside one component (breadth first)."""
    came_from = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node]):
            if child not in within:
                continue
            if child == start:
                chain = [node]
                while came_from[chain[-1]] is not None:
                    chain.append(came_from[chain[-1]])
                return [*reversed(chain), start]
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"{start} is in no cycle")


def _describe(graph: dict[str, dict[str, int]], chain: list[str]) -> str:
    steps = [f"{a} (line {graph[a][b]})" for a, b in pairwise(chain)]
    return " -> ".join([*steps, chain[-1]])


def import_cycles() -> list[str]:
    """Each circle as its modules and the shortest chains round it (a few per circle)."""
    graph = _imports()
    report = []
    for component in _components(graph):
        members = set(component)
        chains = {_describe(graph, _shortest_cycle(graph, module, members)) for module in component}
        shown = sorted(chains, key=lambda chain: (len(chain), chain))[:5]
        report.append(f"{len(component)} modules ({', '.join(component)}):\n" + "\n".join(f"  {c}" for c in shown))
    return report


def test_no_import_cycles():
    cycles = import_cycles()
    assert not cycles, "import cycles between project modules:\n" + "\n".join(cycles)


def test_the_parser_sees_function_level_imports():
    # The scheduler's sources register themselves inside `ready()`: a function-level import.
    assert "notifications.scheduler" in _imports()["notifications.bulk_scheduled"]
