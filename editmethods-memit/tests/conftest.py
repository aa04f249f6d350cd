"""Statistics of the tests go to a temporary cache, never the user's."""

import pytest


@pytest.fixture(autouse=True)
def _stats_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EDITMETHODS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
