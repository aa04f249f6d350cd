"""editmethods-rome against the core's conformance kit, on tiny GPT-2 (Conv1D) and LLaMA
(nn.Linear) models."""

import editmethods_rome.plugin
from editmethods.testing import CORPUS, MethodConformance
from editmethods.toolkit.stats import register_corpus

register_corpus("conformance-corpus", lambda: sorted(set(CORPUS)))

# tiny random models: large steps, a generous clamp and a ridge (see the README)
TINY = {"layers": [0], "v_lr": 0.3, "v_num_grad_steps": 30, "clamp_norm_factor": 20.0,
        "v_weight_decay": 0.0, "mom2_ridge": 0.1, "mom2_dataset": "conformance-corpus",
        "mom2_n_samples": 100, "context_template_length_params": [[5, 2], [10, 2]]}


class TestROME(MethodConformance):
    method = "rome"
    plugin = editmethods_rome.plugin
    hparams = TINY
    model_types = ("gpt2", "llama")


class TestROMEOriginal(MethodConformance):
    method = "rome"
    plugin = editmethods_rome.plugin
    hparams = dict(TINY, variant="original")
    model_types = ("gpt2",)
