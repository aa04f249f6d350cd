"""Every distribution in the repository is installed and found through its entry point,
exactly as `pip install editmethods-<name>` makes a method appear."""

from __future__ import annotations

import importlib.metadata as metadata
from pathlib import Path

import pytest
import tomllib

from editmethods.plugins import ENV_VAR, Plugins

ROOT = Path(__file__).resolve().parents[1]
DISTS = sorted(
    p.parent for p in [*ROOT.glob("plugins/*/pyproject.toml"), *ROOT.glob("editmethods-*/pyproject.toml")]
    if p.parent.name != "_template"
)


def _entry_points(project_dir: Path) -> dict[str, str]:
    doc = tomllib.loads((project_dir / "pyproject.toml").read_text())
    return doc["project"].get("entry-points", {}).get("editmethods", {})


@pytest.mark.parametrize("project_dir", DISTS, ids=[d.name for d in DISTS])
def test_distribution_is_installed_and_its_plugin_loads(project_dir, monkeypatch):
    doc = tomllib.loads((project_dir / "pyproject.toml").read_text())
    name = doc["project"]["name"]
    assert metadata.version(name), f"{name} is not installed (run make install)"
    eps = _entry_points(project_dir)
    assert eps, f"{name} declares no entry point in the 'editmethods' group"
    monkeypatch.setenv(ENV_VAR, ",".join(eps))
    plugins = Plugins()
    assert plugins.load_errors == {}
    for ep_name in eps:
        assert plugins.pm.has_plugin(ep_name)
    for method in plugins.methods.values():
        assert method.package == name and method.version == doc["project"]["version"]


def test_all_plugins_load_together_without_name_clashes(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    plugins = Plugins()
    assert plugins.load_errors == {}
    assert "ft" in plugins.methods
