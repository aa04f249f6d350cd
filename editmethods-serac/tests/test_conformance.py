"""editmethods-serac against the core's conformance kit, on a tiny model of every type its
MethodSpec declares.

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

#: A random model does not read the fact put in its context: on the tiny GPT-2 and LLaMA it
#: raises the target by chance, on the tiny GPT-J and Qwen2 it lowers it (France -> Rome:
#: -13.84 -> -14.46 and -11.94 -> -12.81), on GPT-NeoX it lowers the second fact of a batch.
#: The routing mechanics (exact rollback, unrelated prompts bit-identical, saved edits) run on
#: every type; the effect is checked by the trained counterfactual below and on the testbed model.
RANDOM_MODEL_IGNORES_CONTEXT = {
    **{f"test_apply_changes_prediction[{t}]": "a random model does not read its context"
       for t in ("gptj", "qwen2")},
    **{f"test_batch_of_two_moves_both_targets[{t}]": "a random model does not read its context"
       for t in ("gptj", "gpt_neox", "qwen2")},
}


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
    skip_checks = RANDOM_MODEL_IGNORES_CONTEXT


class TestSERACTrainedCounterfactual(MethodConformance):
    method = "serac"
    plugin = editmethods_serac.plugin
    hparams = {"checkpoint": str(CHECKPOINTS / "gpt2"), "threshold": 0.75}
    # hparams name one checkpoint, trained from the tiny GPT-2: other bases would refuse it
    skip_model_types = {t: "the trained checkpoint is built from the tiny GPT-2 only"
                        for t in ("gptj", "gpt_neox", "llama", "mistral", "qwen2")}

    def make_editor(self, model_type):
        tiny_checkpoint(model_type)
        return super().make_editor(model_type)
