"""The README's Python example runs as written, on the bundled reference model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_example_edits_and_rolls_back(capsys):
    pytest.importorskip("editmethods_testbed", reason="editmethods-testbed is not installed")
    code = re.search(r"## Python API\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert capsys.readouterr().out.strip().startswith("Warsaw")
    editor, req = namespace["editor"], namespace["req"]
    assert namespace["report"]["reliability"].value == 1.0
    assert editor.edits == [] and not editor.answer(req.prompt).strip().startswith("Warsaw")


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
