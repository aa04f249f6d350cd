"""editmethods-ft against the core's conformance kit, on tiny GPT-2, LLaMA and T5."""

import editmethods_ft.plugin
from editmethods.testing import MethodConformance


class TestFTM(MethodConformance):
    method = "ft"
    plugin = editmethods_ft.plugin
    hparams = {"layers": [0, 1], "objective": "target_new", "num_steps": 20, "lr": 0.01}
    model_types = ("gpt2", "llama", "t5")


class TestFTL(MethodConformance):
    method = "ft"
    plugin = editmethods_ft.plugin
    hparams = {"layers": [0, 1], "objective": "prompt_last", "num_steps": 20, "lr": 0.02,
               "norm_constraint": 0.1}
    model_types = ("gpt2", "llama")
