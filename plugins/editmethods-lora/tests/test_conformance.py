"""editmethods-lora against the core's conformance kit, on a tiny model of every type its
MethodSpec declares."""

import editmethods_lora.plugin
from editmethods.testing import MethodConformance


class TestLoRA(MethodConformance):
    method = "lora"
    plugin = editmethods_lora.plugin
    hparams = {"layers": [0, 1], "rank": 4, "lora_alpha": 8, "num_steps": 15, "lr": 0.05}
    # LoRA keeps the base weights frozen (the method registers writes_weights=False), but an
    # adapter acts on every input that passes through its module, so unrelated prompts are
    # not bit-identical: they must move less than the edited prompt. Exactness is checked
    # after rollback, where the model must be bit-identical to the base again.
    unrelated_logits_exact = False


class TestLoRAAttention(MethodConformance):
    """EasyEdit-style targets: peft suffix names, here the attention projections."""

    method = "lora"
    plugin = editmethods_lora.plugin
    hparams = {"target_modules": ["q_proj", "v_proj"], "rank": 4, "lora_alpha": 8,
               "num_steps": 15, "lr": 0.05}
    unrelated_logits_exact = False
    skip_model_types = {t: "its attention has no q_proj/v_proj modules"
                        for t in ("gpt2", "gpt_neox", "t5")}
