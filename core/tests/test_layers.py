"""The core's import graph reads contract -> toolkit / evaluation -> CLI, with no import
pointing back up, and no import cycle between modules (type-checking-only imports aside:
they never run).

Checked statically over every module's imports, function-level ones included, so that a
lazy import cannot hide a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import editmethods

ROOT = Path(editmethods.__file__).parent
#: A part may import the parts listed for it (and itself), nothing else of the core.
ALLOWED = {
    "contract": {"contract"},
    "toolkit": {"contract", "toolkit", "evaluation"},
    "evaluation": {"contract", "evaluation"},
    "cli": {"contract", "toolkit", "evaluation", "cli"},
}


def part(module: str) -> str:
    head = module.split(".")[1] if module.count(".") else ""
    return head if head in {"toolkit", "evaluation", "cli"} else "contract"


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for sub in ast.walk(child):
                    if hasattr(sub, "lineno"):
                        lines.add(sub.lineno)
    return lines


def core_imports() -> dict[str, set[str]]:
    """module -> core modules it imports at run time."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        skip = _type_checking_lines(tree)
        targets: set[str] = set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name == "editmethods" or name.startswith("editmethods."):
                    # keep the longest prefix that is a module of the core
                    parts = name.split(".")
                    for i in range(len(parts), 0, -1):
                        candidate = ".".join(parts[:i])
                        file = ROOT.parent.joinpath(*candidate.split("."))
                        if file.with_suffix(".py").is_file() or (file / "__init__.py").is_file():
                            if candidate != module:
                                targets.add(candidate)
                            break
        graph[module] = targets
    return graph


def test_no_import_points_back_up():
    wrong = sorted(
        f"{module} ({part(module)}) imports {target} ({part(target)})"
        for module, targets in core_imports().items() for target in targets
        if part(target) not in ALLOWED[part(module)]
    )
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = core_imports()
    # the package itself re-exports its public names: leave those edges out
    graph = {m: {t for t in ts if t != "editmethods"} for m, ts in graph.items()}
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)
    assert not cycles, "\n".join(cycles)
