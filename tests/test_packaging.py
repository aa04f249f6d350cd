"""Every distribution of the repository ships typed (PEP 561): a ``py.typed`` marker next to
its package, named in its package data so that the built wheel carries it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = sorted(p.parent for p in [ROOT / "core" / "pyproject.toml",
                                          *ROOT.glob("editmethods-*/pyproject.toml"),
                                          *ROOT.glob("plugins/*/pyproject.toml")])


def _package(dist: Path) -> str:
    found = [p.name for p in (dist / "src").iterdir()
             if p.is_dir() and (p / "__init__.py").is_file()]
    assert len(found) == 1, f"{dist}: expected one package under src/, found {found}"
    return found[0]


def test_every_distribution_is_found():
    names = {d.name for d in DISTRIBUTIONS}
    assert {"core", "editmethods-rome", "editmethods-memit", "editmethods-mend",
            "editmethods-serac", "editmethods-ike", "_template"} <= names


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda d: d.name)
def test_distribution_ships_py_typed(dist):
    package = _package(dist)
    assert (dist / "src" / package / "py.typed").is_file(), f"{dist.name}: no src/{package}/py.typed"
    config = tomllib.loads((dist / "pyproject.toml").read_text())
    data = config.get("tool", {}).get("setuptools", {}).get("package-data", {}).get(package, [])
    assert "py.typed" in data, (f"{dist.name}: add \"py.typed\" to [tool.setuptools.package-data] "
                                f"{package} in pyproject.toml, or the wheel leaves it out")
