"""The shape of the code: no import cycle, layers import downward only, module knowledge in module folders.

The import graph is read from the source (ast), the way Python runs it: `from a.b import c` is an
edge to a.b.c when that is a module, else to a.b; imports under `if TYPE_CHECKING:` never run and
are left out.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "keybuzz"
# Lowest first; a module may import its own layer and the layers below. Longest prefix wins.
LAYERS: list[tuple[str, ...]] = [
    ("keybuzz.errors", "keybuzz.values", "keybuzz.cache", "keybuzz.concurrency", "keybuzz.secrets", "keybuzz.logs",
     "keybuzz.poll", "keybuzz.images", "keybuzz.jsonhttp"),
    ("keybuzz.site",),
    ("keybuzz.render", "keybuzz.containers", "keybuzz.haproxy", "keybuzz.services"),
    ("keybuzz.remote",),
    ("keybuzz.contract",),
    ("keybuzz.renders",),  # each module rendered once per command
    ("keybuzz.volumes",),  # which device holds which data path, what may be done to it (pure)
    ("keybuzz.modules",),
    ("keybuzz.registry", "keybuzz.render_output", "keybuzz.lint"),
    ("keybuzz.drills",),
    ("keybuzz.engine", "keybuzz.volumes.prepare"),
    ("keybuzz.lab",),
    ("keybuzz.cli", "keybuzz.__main__"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str) -> set[str]:
    tree = ast.parse(MODULES[name].read_text())
    skipped = _type_checking_lines(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("keybuzz"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keybuzz"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return {i for i in found if i in MODULES and i != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def layer_of(name: str) -> int:
    best, depth = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > depth:
                best, depth = index, len(prefix)
    if best < 0 and name == "keybuzz":
        return len(LAYERS) - 1
    assert best >= 0, f"{name} is in no layer: add it to LAYERS"
    return best


def test_no_import_cycle() -> None:
    """Tarjan's strongly connected components: every component is a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    assert cycles == []


def test_layers_import_downward_only() -> None:
    upward = [f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})"
              for name, targets in GRAPH.items() for target in targets if layer_of(target) > layer_of(name)]
    assert upward == []


@pytest.mark.parametrize("word", ["postgres", "redis"])
def test_module_names_stay_in_their_folders(word: str) -> None:
    """Outside its folder a module is named by the registry (and, for a role, the site format and its
    example): at most 4 source files."""
    outside = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                     if f"modules/{word}/" not in str(p) and re.search(rf"\b{word}\b", p.read_text()))
    assert len(outside) <= 4, outside


def test_container_cli_argv_is_built_in_one_place() -> None:
    """Only containers.py spells the CLI's subcommands; the rest asks ContainerCli for argv."""
    pattern = re.compile(r"""["'](run|exec|inspect|ps|pull|stop|start|kill|rm)["'],""")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "containers.py" or "/lab/" in str(path):  # the lab drives its own machine's podman
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line) and ("container_cli" in line or "cli" in line.split("[")[0]):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}")
    assert offenders == []
