"""Distributions share code through public names only.

Every distribution of this repository (the core, the method packages, the plugins) is read
statically, function-level and ``importlib.import_module("...")`` imports included, and:

- no distribution imports another one's private names (``from editmethods_x.y import _z``,
  ``import editmethods_x._y``, ``editmethods.toolkit._moments``): a private name may change
  with any release of its owner, so a sibling that uses it breaks silently;
- a method package imports no other method package, except through the modules listed in
  :data:`SHARED` (MEMIT builds on ROME through ``editmethods_rome.api``); code two methods
  both need belongs in the core's toolkit (``editmethods.toolkit.encoder``, ``.routing``,
  ``.checkpoints``), so that installing one method never installs or registers another;
- no method package's ``pyproject.toml`` depends on another method package, outside
  :data:`SHARED`.

A method package is a distribution whose source declares a method: it implements
``register_methods`` or builds a ``MethodSpec``.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = "editmethods"

#: (importing package, imported package) -> the modules of the imported package it may use.
SHARED: dict[tuple[str, str], set[str]] = {
    ("editmethods_memit", "editmethods_rome"): {"editmethods_rome.api"},
}


def _distributions() -> dict[str, Path]:
    """import name -> its source folder, for every distribution in the repository."""
    found: dict[str, Path] = {}
    for pyproject in [REPO / "core" / "pyproject.toml", *REPO.glob("editmethods-*/pyproject.toml"),
                      *REPO.glob("plugins/*/pyproject.toml")]:
        for init in (pyproject.parent / "src").glob("*/__init__.py"):
            found[init.parent.name] = init.parent
    return found


DISTRIBUTIONS = _distributions()
if CORE not in DISTRIBUTIONS:  # an installed core, away from its repository
    pytest.skip("the repository's distributions are not next to this test", allow_module_level=True)


_DECLARES_METHOD = re.compile(r"def register_methods\b|\bMethodSpec\(")


def _is_method_package(folder: Path) -> bool:
    return any(_DECLARES_METHOD.search(p.read_text()) for p in folder.rglob("*.py"))


METHOD_PACKAGES = {name for name, folder in DISTRIBUTIONS.items()
                   if name != CORE and _is_method_package(folder)}


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, module, names imported from it) for every absolute import in ``tree``."""
    out: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name, []) for a in node.names)
        elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module")
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value, []))
    return out


def _problems(owner: str, path: Path, source: str) -> list[str]:
    """What is wrong with the imports of ``source`` (a file of distribution ``owner``)."""
    lines = source.splitlines()
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    wrong: list[str] = []
    for lineno, module, names in _imports(ast.parse(source)):
        top = module.split(".")[0]
        if top == owner or top not in DISTRIBUTIONS:
            continue
        text = f"{where}:{lineno}: {lines[lineno - 1].strip()}"
        private = [p for p in module.split(".")[1:] if _private(p)] + [n for n in names if _private(n)]
        if private:
            wrong.append(f"{text}  <- private name(s) of {top}: {', '.join(private)}")
        if owner in METHOD_PACKAGES and top in METHOD_PACKAGES:
            allowed = SHARED.get((owner, top), set())
            if module not in allowed:
                through = ", ".join(sorted(allowed)) or "nothing: move shared code to editmethods.toolkit"
                wrong.append(f"{text}  <- method package {owner} imports method package {top} "
                             f"(allowed: {through})")
    return wrong


def test_no_private_or_cross_method_imports():
    wrong: list[str] = []
    for owner, folder in sorted(DISTRIBUTIONS.items()):
        for path in sorted(folder.rglob("*.py")):
            wrong.extend(_problems(owner, path, path.read_text()))
    assert not wrong, "imports that break the distributions' boundaries:\n" + "\n".join(wrong)


def _dist_name(import_name: str) -> str:
    return import_name.replace("_", "-")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="reads pyproject.toml with tomllib")
def test_method_packages_do_not_depend_on_each_other():
    import tomllib

    by_dist = {_dist_name(name): name for name in METHOD_PACKAGES}
    wrong: list[str] = []
    for name in sorted(METHOD_PACKAGES):
        pyproject = DISTRIBUTIONS[name].parents[1] / "pyproject.toml"
        deps = tomllib.loads(pyproject.read_text()).get("project", {}).get("dependencies", [])
        for dep in deps:
            dist = re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0].lower().replace("_", "-")
            other = by_dist.get(dist)
            if other and other != name and (name, other) not in SHARED:
                wrong.append(f"{pyproject.relative_to(REPO)}: {dep!r} (method package {name} "
                             f"depends on method package {other})")
    assert not wrong, "\n".join(wrong)


def test_the_scan_finds_what_it_must():
    # the rules themselves, on made-up sources (so a broken scan cannot pass vacuously)
    assert {"editmethods_rome", "editmethods_memit", "editmethods_ike",
            "editmethods_serac"} <= METHOD_PACKAGES
    assert "editmethods_testbed" not in METHOD_PACKAGES  # models and data, no method
    here = REPO / "editmethods-serac" / "src" / "editmethods_serac" / "x.py"
    bad = ("from editmethods_ike.routing import ContextRouter\n"
           "from editmethods_rome.method import _traced_layer\n"
           "import editmethods._secret\n"
           "def f():\n"
           "    import importlib\n"
           "    importlib.import_module('editmethods_mend._net')\n")
    found = _problems("editmethods_serac", here, bad)
    assert any("x.py:1:" in w and "imports method package editmethods_ike" in w for w in found)
    assert any("x.py:2:" in w and "private name(s) of editmethods_rome: _traced_layer" in w
               for w in found)
    assert any("x.py:3:" in w and "private name(s) of editmethods: _secret" in w for w in found)
    assert any("x.py:6:" in w and "_net" in w for w in found)
    memit = REPO / "editmethods-memit" / "src" / "editmethods_memit" / "y.py"
    assert _problems("editmethods_memit", memit,
                     "from editmethods_rome.api import traced_layer\n"
                     "from editmethods import __version__\n"
                     "from editmethods.toolkit.routing import Route\n") == []
    assert _problems("editmethods_memit", memit, "from editmethods_rome.keys import averaged_keys\n")
