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


def test_make_bench_splices_both_tables_into_the_readme(tmp_path):
    import importlib.util

    from editmethods.evaluation.reporting import markers, splice_marked

    text = README.read_text()
    starts = [text.index(markers(name)[0]) for name in ("smollm2", "testbed")]
    ends = [text.index(markers(name)[1]) for name in ("smollm2", "testbed")]
    assert starts[0] < ends[0] < starts[1] < ends[1]  # the real model's table comes first

    spec = importlib.util.spec_from_file_location(
        "bench_reference", README.parent / "benchmarks" / "bench_reference.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert [name for name, _, _ in script.TABLES] == ["smollm2", "testbed"]
    copy = tmp_path / "README.md"
    copy.write_text(text)
    script.splice_readme(copy, {"smollm2": "| real |\n", "testbed": "| testbed |"})
    spliced = copy.read_text()
    assert f"{markers('smollm2')[0]}\n| real |\n{markers('smollm2')[1]}" in spliced
    assert f"{markers('testbed')[0]}\n| testbed |\n{markers('testbed')[1]}" in spliced
    # everything outside the markers is kept as it was
    assert spliced.split(markers("smollm2")[0])[0] == text.split(markers("smollm2")[0])[0]
    assert spliced.split(markers("testbed")[1])[1] == text.split(markers("testbed")[1])[1]
    assert splice_marked(spliced, "testbed", "| testbed |") == spliced  # idempotent
    with pytest.raises(ValueError, match="bench:nosuch"):
        splice_marked(text, "nosuch", "x")
    with pytest.raises(ValueError, match="comes before"):
        splice_marked("<!-- /bench:x -->\n<!-- bench:x -->\n", "x", "y")
