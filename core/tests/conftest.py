"""Fixtures for the core's tests: tiny random models and plugin managers with no entry points."""

from __future__ import annotations

import pytest

from editmethods import Editor, EditRequest
from editmethods.testing import AddMethod, make_plugins, tiny_model, tiny_tokenizer


@pytest.fixture
def request_fr() -> EditRequest:
    return EditRequest(prompt="The capital of France is", subject="France", target_new="Rome",
                       locality=[("Miles Davis plays the", "trumpet")])


@pytest.fixture
def editor() -> Editor:
    return Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(AddMethod()))
