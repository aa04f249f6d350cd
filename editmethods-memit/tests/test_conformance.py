"""editmethods-memit against the core's conformance kit, on tiny GPT-2 and LLaMA models."""

import editmethods_memit.plugin
from editmethods.toolkit.stats import register_corpus
from editmethods.testing import CORPUS, MethodConformance

register_corpus("conformance-corpus", lambda: sorted(set(CORPUS)))

# tiny random models: large steps, a generous clamp, small λ and a ridge (see the README)
TINY = {"layers": [0], "v_lr": 0.3, "v_num_grad_steps": 30, "clamp_norm_factor": 20.0,
        "v_weight_decay": 0.0, "mom2_ridge": 0.1, "mom2_update_weight_per_dim": 0.01,
        "mom2_dataset": "conformance-corpus", "mom2_n_samples": 100,
        "context_template_length_params": [[5, 2]]}


class TestMEMIT(MethodConformance):
    method = "memit"
    plugin = editmethods_memit.plugin
    hparams = TINY
    model_types = ("gpt2", "llama")
