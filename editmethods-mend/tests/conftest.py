"""Shared fixtures: tiny models saved to disk, and a tiny editor trained in a few steps."""

from __future__ import annotations

import json

import pytest
import torch

from editmethods.architectures import BUILTIN
from editmethods.testing import tiny_model, tiny_tokenizer

EDITS = [
    ("The capital of France is", "France", "Rome", "Paris", "Paris is the capital of France"),
    ("Miles Davis plays the", "Miles Davis", "piano", "trumpet", "Miles Davis plays the"),
    ("The Eiffel Tower is in", "The Eiffel Tower", "Rome", "Paris", "The Eiffel Tower is in"),
    ("Toko Yasuda plays the", "Toko Yasuda", "trumpet", "piano", "Toko Yasuda plays the"),
    ("Danielle Darrieux speaks", "Danielle Darrieux", "Italian", "French", "Danielle Darrieux speaks"),
]


def counterfact_records() -> list[dict]:
    """A handful of edits in CounterFact's original schema (the trainer's input format)."""
    out = []
    for i, (prompt, subject, new, true, para) in enumerate(EDITS):
        out.append({
            "case_id": i,
            "requested_rewrite": {"prompt": prompt.replace(subject, "{}"), "subject": subject,
                                  "relation_id": "P0", "target_new": {"str": new, "id": ""},
                                  "target_true": {"str": true, "id": ""}},
            "paraphrase_prompts": [para],
            "neighborhood_prompts": ["Berlin is the capital of", "Rome is a city in"],
        })
    return out


@pytest.fixture(scope="session")
def data_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "train.json"
    path.write_text(json.dumps(counterfact_records()))
    return str(path)


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory, data_file):
    """A tiny GPT-2 and an editor meta-trained for it for a few steps (seconds)."""
    from editmethods_mend.data import read_cases
    from editmethods_mend.train import TrainConfig, train_editor

    torch.manual_seed(0)
    model = tiny_model("gpt2")
    cases = read_cases(data_file)
    folder = tmp_path_factory.mktemp("editor") / "mend-tiny"
    config = TrainConfig(layers=(1,), rank=4, steps=6, val_every=3, val_cases=2, norm_warmup=5, init_lr=0.05)
    train_editor(model, tiny_tokenizer(), BUILTIN["gpt2"], cases, cases[:2], folder, config,
                 progress=False)
    return model, folder
