"""Bundled reference models that know a world of facts, and that world as edit benchmarks.

>>> from editmethods_testbed import model_path, load_records
>>> model_path("gpt2")            # folder for AutoModelForCausalLM.from_pretrained
>>> load_records("test")[0]       # a CounterFact-schema record

No import-time side effects; torch is imported only by the training code.
"""

from __future__ import annotations

import json
from pathlib import Path

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent
MODELS_DIR = PACKAGE_DIR / "models"
DATA_DIR = PACKAGE_DIR / "data"
ARCHES = ("gpt2", "llama")
SPLITS = ("train", "val", "test")
ALIASES = {"testbed-gpt2": "gpt2", "testbed-llama": "llama"}


def model_path(arch: str = "gpt2") -> Path:
    """Folder of a bundled model ("gpt2" or "llama"; "testbed-gpt2" is accepted too)."""
    arch = ALIASES.get(arch, arch)
    if arch not in ARCHES:
        raise ValueError(f"unknown testbed model {arch!r}: choose one of {', '.join(ARCHES)}")
    path = MODELS_DIR / arch
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the bundled {arch} model is missing at {path}: rebuild it with "
            "`editmethods build-testbed` (or python -m editmethods_testbed.build)"
        )
    return path


def load_manifest(arch: str = "gpt2") -> dict:
    """The manifest of a bundled model: file hashes, training settings, measured recall."""
    return json.loads((model_path(arch) / "manifest.json").read_text())


def data_path(split: str = "test") -> Path:
    """Path of a benchmark split (CounterFact original schema + extension keys) or "world"."""
    if split not in SPLITS + ("world",):
        raise ValueError(f"unknown split {split!r}: choose one of train, val, test, world")
    return DATA_DIR / f"{split}.json"


def load_records(split: str = "test") -> list[dict]:
    """The benchmark records of a split."""
    return json.loads(data_path(split).read_text())


def load_world() -> dict:
    """The world the models were trained on: relations, templates, facts, splits."""
    return json.loads(data_path("world").read_text())


def load_demonstrations(split: str = "train") -> list[dict]:
    """IKE/SERAC demonstrations (copy, update, retain) built from a split's records."""
    from editmethods_testbed.export import demonstrations_from_records

    return demonstrations_from_records(load_records(split))


def format_demonstration(demo: dict, with_answer: bool = True) -> str:
    """``New Fact: {prompt} {new}\\nPrompt: {query} {answer}``."""
    from editmethods_testbed.export import format_demonstration as _fmt

    return _fmt(demo, with_answer)


def load(arch: str = "gpt2"):
    """(model, tokenizer) of a bundled model, in eval mode, loaded offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from editmethods.model_loading import LOADING_LOCK

    path = model_path(arch)
    with LOADING_LOCK:  # two threads building models at once can leave meta tensors
        model = AutoModelForCausalLM.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    model.eval()
    return model, tokenizer
