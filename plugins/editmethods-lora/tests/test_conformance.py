"""editmethods-lora against the core's conformance kit, on tiny GPT-2, LLaMA and T5."""

import editmethods_lora.plugin
from editmethods.testing import MethodConformance


class TestLoRA(MethodConformance):
    method = "lora"
    plugin = editmethods_lora.plugin
    hparams = {"layers": [0, 1], "rank": 4, "lora_alpha": 8, "num_steps": 15, "lr": 0.05}
    model_types = ("gpt2", "llama", "t5")
    # LoRA keeps the base weights frozen (the method registers writes_weights=False), but an
    # adapter acts on every input that passes through its module, so unrelated prompts are
    # not bit-identical: the kit's "moves less than the edited prompt" check (its
    # writes_weights=True branch) is the one that applies. Exactness is checked after
    # rollback, where the model must be bit-identical to the base again.
    writes_weights = True


class TestLoRAAttention(MethodConformance):
    """EasyEdit-style targets: peft suffix names, here the attention projections."""

    method = "lora"
    plugin = editmethods_lora.plugin
    hparams = {"target_modules": ["q_proj", "v_proj"], "rank": 4, "lora_alpha": 8,
               "num_steps": 15, "lr": 0.05}
    model_types = ("llama",)
    writes_weights = True
