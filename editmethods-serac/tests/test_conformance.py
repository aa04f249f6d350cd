"""editmethods-serac against the core's conformance kit, on tiny GPT-2 and LLaMA.

Two counterfactual models: the base model itself reading the edit in context, and a
counterfactual model trained (a few steps) from the tiny base model and saved as a checkpoint.
"""

import tempfile
from pathlib import Path

import editmethods_serac.plugin
from editmethods.testing import MethodConformance, tiny_model, tiny_tokenizer

DATA = Path(__file__).parent / "data" / "counterfact-mini.json"
#: where the trained tiny checkpoint is built (once per test session and model type)
CHECKPOINTS = Path(tempfile.mkdtemp(prefix="serac-conformance-"))


def tiny_checkpoint(model_type: str) -> Path:
    from editmethods_serac.data import read_cases
    from editmethods_serac.train import TrainConfig, train_serac

    folder = CHECKPOINTS / model_type
    if not (folder / "serac.json").is_file():
        train_serac(tiny_model(model_type), tiny_tokenizer(), read_cases(DATA), folder,
                    TrainConfig(steps=30, batch_size=8, lr=3e-3), progress=False)
    return folder


class TestSERACBaseAsCounterfactual(MethodConformance):
    method = "serac"
    plugin = editmethods_serac.plugin
    hparams = {"checkpoint": "base", "threshold": 0.75}
    model_types = ("gpt2", "llama")
    writes_weights = False


class TestSERACTrainedCounterfactual(MethodConformance):
    method = "serac"
    plugin = editmethods_serac.plugin
    hparams = {"checkpoint": str(CHECKPOINTS / "gpt2"), "threshold": 0.75}
    model_types = ("gpt2",)
    writes_weights = False

    def make_editor(self, model_type):
        tiny_checkpoint(model_type)
        return super().make_editor(model_type)
