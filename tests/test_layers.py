"""The layers of bulkops' code (docs/architecture.md): each imports only those below it,
the export engine reads the store through its one interface, and no modules import each
other in a circle. Read from the source, so a new upward import fails here at once."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.layout import ROOT, project_packages

# Bottom up. A package not listed here fails test_every_package_has_a_layer.
LAYERS = [
    "bulkops.fhir",
    "bulkops",
    "accounts",
    "fhirstore",
    "submissions",
    "exports",
    "remotes",
    "transfers",
    "schedules",
    "console",
    "bench",
]
# The project's URLconf joins every app's routes: the one module allowed above its layer.
COMPOSITION_ROOT = "bulkops.urls"
STORE_INTERFACE = "fhirstore.reads"
# The apps built on the store that must use only its interface (bench measures it raw).
ENGINE = {"exports", "remotes", "transfers", "schedules"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> Iterator[Path]:
    for package in {name.split(".")[0] for name in [*project_packages(), "bench"]}:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                yield path


def resolve(name: str) -> str:
    """`a.b.c` as the module it names: a.b when c is a name inside a.b."""
    path = ROOT.joinpath(*name.split("."))
    if path.with_suffix(".py").exists() or (path / "__init__.py").exists():
        return name
    return name.rpartition(".")[0]


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (an import inside a function is still
    a dependency), plus URLconfs it includes by name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(resolve(f"{node.module}.{alias.name}") for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "include"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def layer_of(module: str) -> int | None:
    matches = [
        i for i, layer in enumerate(LAYERS) if module == layer or module.startswith(f"{layer}.")
    ]
    return max(matches, key=lambda i: len(LAYERS[i])) if matches else None


def graph() -> dict[str, set[str]]:
    return {
        module_name(path): {m for m in imports_of(path) if layer_of(m) is not None}
        for path in source_files()
    }


def test_every_package_has_a_layer() -> None:
    assert [p for p in project_packages() if layer_of(p) is None] == []


def test_nothing_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        if module != COMPOSITION_ROOT
        for target in targets
        if layer_of(target) > layer_of(module)  # type: ignore[operator]
    ]
    assert upward == []


def test_the_fhir_rules_need_no_django() -> None:
    framework = [
        f"{module_name(path)} -> {name}"
        for path in (ROOT / "bulkops" / "fhir").rglob("*.py")
        for name in imports_of(path)
        if name.split(".")[0] in {"django", "rest_framework", "celery"}
    ]
    assert framework == []


def test_the_export_engine_reads_the_store_only_through_its_interface() -> None:
    bypasses = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        if module.split(".")[0] in ENGINE
        for target in targets
        if target.split(".")[0] == "fhirstore" and target != STORE_INTERFACE
    ]
    assert bypasses == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    edges = graph()
    # A package's __init__ re-exporting its own modules is not a circle back to it.
    edges = {m: {t for t in ts if not m.startswith(f"{t}.")} for m, ts in edges.items()}
    circles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                circles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert circles == []
