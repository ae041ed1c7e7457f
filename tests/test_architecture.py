"""The shape of the code: apps depend one way, and no module imports itself back.

`providers` <- `tenants` <- `usage` <- `gateway`: an app may import the apps to its left, never
those to its right. `ragllm/` is split by job: its base modules (settings, Celery, beat jobs,
the admin site, errors, JSON parsing, progress bars) import no app; the shared API base
(`ragllm.api`, `ragllm.schema`) sits on tenants' selectors and serves every app with an API;
the URL and server entry points sit on top and nothing imports them.

Every import counts, the ones inside functions too: a lazy import hides a dependency, it does
not remove it. The walk reads the source (ast), so it sees what the files say, not what one
run happened to import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("providers", "tenants", "usage", "gateway")  # each may import those before it
RAGLLM_BASE = {
    "ragllm",
    "ragllm.admin",
    "ragllm.beat",
    "ragllm.celery",
    "ragllm.errors",
    "ragllm.parsers",
    "ragllm.progress",
    "ragllm.settings",
}
RAGLLM_API = {"ragllm.api", "ragllm.schema"}
RAGLLM_TOP = {"ragllm.urls", "ragllm.asgi", "ragllm.wsgi"}

# Cycles inside providers/ that the providers restructure (issue 9, section 1) removes; listed
# so that this test guards everything else meanwhile. Empty this set once that work is merged.


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in (*APPS, "ragllm"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                modules[_module_name(path)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The project module `name` names (the longest known prefix), or None if not ours."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST, *, typing_only: bool) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth; `typing_only` keeps the `if TYPE_CHECKING:` ones."""
    found = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        if _is_type_checking(node) and not typing_only:
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def imports_of(
    name: str, path: Path, modules: dict[str, Path], *, typing_only: bool = False
) -> set[str]:
    """The project modules `name` imports, wherever the import statement stands.

    Imports under `if TYPE_CHECKING:` never run: they count only with `typing_only`.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in _import_nodes(tree, typing_only=typing_only):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a import b` imports the module a.b when there is one, else a's name b.
            targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            module = _known(target, modules)
            if module is not None and module != name:
                found.add(module)
    return found


def import_graph(*, typing_only: bool = False) -> dict[str, set[str]]:
    modules = project_modules()
    return {
        name: imports_of(name, path, modules, typing_only=typing_only)
        for name, path in modules.items()
    }


def _app(module: str) -> str:
    return module.split(".")[0]


def allowed(importer: str, imported: str) -> bool:
    if imported in RAGLLM_TOP:
        return importer in RAGLLM_TOP
    if importer in RAGLLM_TOP:
        return True
    if imported in RAGLLM_BASE:
        return True
    if importer in RAGLLM_BASE:
        return False
    if importer in RAGLLM_API:
        return imported in RAGLLM_API or _app(imported) in {"providers", "tenants"}
    if _app(importer) not in APPS:
        raise AssertionError(f"{importer}: classify this ragllm module in {__name__}")
    rank = APPS.index(_app(importer))
    if imported in RAGLLM_API:
        return rank >= APPS.index("tenants")
    return APPS.index(_app(imported)) <= rank


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected groups of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_apps_import_only_the_apps_below_them():
    wrong = sorted(
        f"{importer} imports {imported}"
        # Type-only imports count here: they still tie one app to another.
        for importer, targets in import_graph(typing_only=True).items()
        for imported in targets
        if not allowed(importer, imported)
    )
    assert wrong == []


def test_no_modules_import_each_other():
    found = list(cycles(import_graph()))
    assert [sorted(group) for group in found] == []


# --- The checks themselves can fail ------------------------------------------------------------


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("tenants.resolution", "usage.quotas"),
        ("providers.registry", "tenants.models"),
        ("usage.api", "gateway.bundle"),
        ("providers.http", "ragllm.api"),
        ("ragllm.errors", "tenants.models"),
        ("ragllm.api", "usage.selectors"),
        ("gateway.bundle", "ragllm.urls"),
    ],
)
def test_it_refuses_an_import_against_the_direction(importer, imported):
    assert not allowed(importer, imported)


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("gateway.bundle", "usage.quotas"),
        ("usage.ledger", "tenants.services"),
        ("tenants.api", "ragllm.api"),
        ("ragllm.api", "tenants.selectors"),
        ("providers.http", "ragllm.errors"),
        ("ragllm.urls", "usage.api"),
    ],
)
def test_it_allows_an_import_along_the_direction(importer, imported):
    assert allowed(importer, imported)


def test_it_finds_a_cycle_made_by_a_lazy_import(tmp_path, monkeypatch):
    package = tmp_path / "tenants"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("def thing():\n    from tenants import a\n    return a\n")
    (package / "c.py").write_text("from tenants.a import thing\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    modules = {_module_name(p): p for p in sorted(package.glob("*.py"))}
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert graph["tenants.b"] == {"tenants.a"}
    assert cycles(graph) == [{"tenants.a", "tenants.b"}]


def test_an_import_for_type_checking_only_counts_for_direction_not_for_cycles(
    tmp_path, monkeypatch
):
    package = tmp_path / "usage"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from usage.b import thing\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from usage.a import A\n"
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    modules = {_module_name(p): p for p in sorted(package.glob("*.py"))}
    assert imports_of("usage.b", modules["usage.b"], modules) == set()
    assert imports_of("usage.b", modules["usage.b"], modules, typing_only=True) == {"usage.a"}
